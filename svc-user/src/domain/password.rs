//! Passwords: the policy a new one must meet, and how it is kept (Argon2id, never the password).
//!
//! Neither type has `Display`, and both redact their `Debug`, so neither can reach a log line or
//! an error message by accident.

use std::fmt;

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier},
};

use super::InvalidInput;

/// Failure inside the hashing library (not a wrong password, which is `Ok(false)`).
pub use argon2::password_hash::Error as HashError;

/// A password that meets the policy: 8 to 128 characters (not bytes), with at least one letter
/// and at least one digit. Taken verbatim: no trimming, no normalisation.
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// Long enough for any passphrase; bounds what one request can make us hash.
    pub const MAX_CHARS: usize = 128;

    /// Checks `raw` against the policy, or says which rule it breaks.
    pub fn parse(raw: String) -> Result<Self, InvalidInput> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(InvalidInput::Password("password must be at least 8 characters"));
        }
        if chars > Self::MAX_CHARS {
            return Err(InvalidInput::Password("password must be at most 128 characters"));
        }
        if !raw.chars().any(char::is_alphabetic) || !raw.chars().any(char::is_numeric) {
            return Err(InvalidInput::Password("password must contain at least one letter and one digit"));
        }
        Ok(Password(raw))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// An Argon2id hash as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). The string
/// carries its own salt and parameters, so hashes made before a parameter change still verify.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Hashes with Argon2id's default parameters and a fresh random salt. Slow on purpose (tens of
    /// milliseconds of CPU): call it off the async worker threads.
    pub fn new(password: &Password) -> Result<Self, HashError> {
        Self::of(&password.0)
    }

    /// A hash for logins with an unknown email to be checked against, so that they take as long
    /// as logins with a known one. What it hashes does not matter: a match without an account is
    /// still a failed login.
    pub fn decoy() -> Result<Self, HashError> {
        Self::of("decoy: no account has this password hash")
    }

    fn of(secret: &str) -> Result<Self, HashError> {
        Ok(PasswordHash(Argon2::default().hash_password(secret.as_bytes())?.to_string()))
    }

    /// A hash as stored by [`PasswordHash::as_phc`].
    pub fn from_phc(phc: String) -> Self {
        PasswordHash(phc)
    }

    /// The PHC string, for storage only.
    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is the password this hash was made from. As slow as [`PasswordHash::new`].
    pub fn verify(&self, candidate: &str) -> Result<bool, HashError> {
        match Argon2::default().verify_password(candidate.as_bytes(), self.0.as_str()) {
            Ok(()) => Ok(true),
            Err(HashError::PasswordInvalid) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(raw: &str) -> Option<&'static str> {
        Password::parse(raw.to_owned()).err().map(|e| e.field())
    }

    #[test]
    fn a_password_of_8_characters_with_a_letter_and_a_digit_is_accepted() {
        assert_eq!(field_of("abcdefg1"), None);
    }

    #[test]
    fn a_password_shorter_than_8_characters_is_weak() {
        assert_eq!(field_of("abcdef1"), Some("password"));
    }

    #[test]
    fn a_password_may_have_128_characters_but_not_129() {
        assert_eq!(field_of(&format!("{}1", "a".repeat(127))), None);
        assert_eq!(field_of(&format!("{}1", "a".repeat(128))), Some("password"));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 7 characters but 13 bytes: still too short.
        assert_eq!(field_of("éééééé1"), Some("password"));
        assert_eq!(field_of("ééééééé1"), None);
    }

    #[test]
    fn a_password_without_a_digit_or_without_a_letter_is_weak() {
        assert_eq!(field_of("password-only"), Some("password"));
        assert_eq!(field_of("1234567890"), Some("password"));
    }

    #[test]
    fn a_password_is_taken_verbatim() {
        let password = Password::parse("  spaced out 1  ".into()).unwrap();
        assert_eq!(password.0, "  spaced out 1  ");
    }

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let hash = PasswordHash::new(&Password::parse("correct horse 1".into()).unwrap()).unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$"));
        assert_eq!(hash.verify("correct horse 1"), Ok(true));
        assert_eq!(hash.verify("correct horse 2"), Ok(false));
        assert_eq!(hash.verify(""), Ok(false));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let password = Password::parse("correct horse 1".into()).unwrap();
        assert_ne!(PasswordHash::new(&password).unwrap(), PasswordHash::new(&password).unwrap());
    }

    #[test]
    fn a_corrupt_stored_hash_is_an_error_not_a_mismatch() {
        assert!(PasswordHash::from_phc("$argon2id$garbage".into()).verify("anything1").is_err());
    }

    #[test]
    fn neither_a_password_nor_its_hash_shows_in_debug_output() {
        let password = Password::parse("correct horse 1".into()).unwrap();
        let hash = PasswordHash::new(&password).unwrap();
        let printed = format!("{password:?} {hash:?}");
        assert!(!printed.contains("horse") && !printed.contains("argon2"), "{printed}");
    }
}
