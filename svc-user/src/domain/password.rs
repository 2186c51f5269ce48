//! Passwords: the policy a new one must meet, and how it is kept (Argon2id, never the password).
//!
//! Neither type has `Display`, and both redact their `Debug`, so neither can reach a log line or
//! an error message by accident.

use std::fmt;

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{
        self,
        phc::{self, Output, ParamsString, Salt},
    },
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
        let (argon2, params) = (Argon2::default(), Params::default());
        let salt = password_hash::try_generate_salt().map_err(|_| HashError::Crypto)?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2.hash_password_into_with_memory(secret.as_bytes(), &salt, &mut out, working_memory(&params))?;
        let hash = phc::PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::default().into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(Salt::new(&salt)?),
            hash: Some(Output::new(&out)?),
        };
        Ok(PasswordHash(hash.to_string()))
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
        // With the algorithm, version and parameters the hash was made with, whatever today's are.
        let hash = phc::PasswordHash::new(&self.0)?;
        let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
            return Ok(false); // as the library answers: a hash without salt or output matches nothing
        };
        let params = Params::try_from(&hash)?;
        let version = hash.version.map(Version::try_from).transpose()?.unwrap_or_default();
        let argon2 = Argon2::new(Algorithm::try_from(hash.algorithm.as_str())?, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        argon2.hash_password_into_with_memory(candidate.as_bytes(), salt, &mut out, working_memory(&params))?;
        // `Output`'s equality is constant-time.
        Ok(Output::new(&out)? == *expected)
    }
}

/// Argon2's working memory for one hash with `params` (19 MiB by default), zeroed, reserved with
/// room to spare beyond [`RESERVED`]. glibc serves a request that large with a fresh mapping and
/// unmaps it when it is freed, whatever it did before, so every page a hash touched goes back to
/// the system as soon as the hash is done. A smaller request, as the library's own allocation is,
/// falls under glibc's moving mmap threshold after the first hash and stays in the heap for good
/// (measured: 157 MB resident after ten hashes one after the other, 645 MB after forty on the
/// blocking pool; with this, the heap does not grow).
fn working_memory(params: &Params) -> Vec<Block> {
    let blocks = params.block_count();
    let mut memory = Vec::with_capacity(blocks.max(RESERVED / Block::SIZE));
    memory.resize(blocks, Block::new());
    memory
}

/// glibc's largest dynamic mmap threshold on 64-bit (`DEFAULT_MMAP_THRESHOLD_MAX`, 32 MiB) and
/// a little more: larger requests are always mapped, never kept in the heap.
const RESERVED: usize = 33 * 1024 * 1024;

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_hashes_and_the_librarys_verify_each_other() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = PasswordHash::of("correct horse 1").unwrap();
        assert!(Argon2::default().verify_password(b"correct horse 1", ours.as_phc()).is_ok());
        assert!(Argon2::default().verify_password(b"correct horse 2", ours.as_phc()).is_err());

        // Stored before this code hashed with its own memory, and with other parameters.
        let theirs = Argon2::default().hash_password(b"correct horse 1").unwrap().to_string();
        let other_params = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap())
            .hash_password(b"correct horse 1")
            .unwrap()
            .to_string();
        for phc in [theirs, other_params] {
            let stored = PasswordHash::from_phc(phc.clone());
            assert!(stored.verify("correct horse 1").unwrap(), "{phc}");
            assert!(!stored.verify("correct horse 2").unwrap(), "{phc}");
        }
        assert!(ours.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", ours.as_phc());
    }

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
