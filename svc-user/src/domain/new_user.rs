//! A sign-up request turned into domain types, or the first field that breaks a rule.

use common::Role;

use super::{InvalidInput, Password};

/// An email address, trimmed and lowercased: the form it is stored, compared and shown in, so
/// `Kim@Example.com` and `kim@example.com` are one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit on a mail path, in bytes.
    pub const MAX_LEN: usize = 254;
    const MAX_LOCAL_LEN: usize = 64;

    /// Checks the shape only (`local@domain.tld`); whether mail arrives is not ours to know here.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        const SHAPE: InvalidInput = InvalidInput::Email("email must look like name@example.com");
        let email = Self::normalise(raw);
        if email.len() > Self::MAX_LEN {
            return Err(InvalidInput::Email("email must be at most 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(SHAPE);
        };
        let local_ok = !local.is_empty() && local.len() <= Self::MAX_LOCAL_LEN;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        let chars_ok = !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if local_ok && domain_ok && chars_ok { Ok(Email(email)) } else { Err(SHAPE) }
    }

    /// `raw` in the form addresses are compared in (trimmed, lowercased), whether or not it is
    /// one: what login throttling keys on, so an unknown email counts like a registered one.
    pub fn normalise(raw: &str) -> String {
        raw.trim().to_lowercase()
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised address, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX_CHARS: usize = 100;

    /// Trims `raw` and checks it against the rules above.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidInput::Name("name must not be empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(InvalidInput::Name("name must be at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidInput::Name("name must not contain control characters"));
        }
        Ok(Name(name.to_owned()))
    }

    /// The trimmed name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// An account about to be created. Its `Debug` is safe to log: [`Password`] redacts itself.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub name: Name,
    pub role: Role,
}

impl NewUser {
    /// A self-service sign-up. The role defaults to customer; nobody signs themselves up as an
    /// admin (admins come from the bootstrap configuration only). Fields are checked in request
    /// order and the first one at fault is reported.
    pub fn parse(email: &str, password: String, name: &str, role: Option<&str>) -> Result<Self, InvalidInput> {
        Ok(NewUser {
            email: Email::parse(email)?,
            password: Password::parse(password)?,
            name: Name::parse(name)?,
            role: sign_up_role(role)?,
        })
    }

    /// The bootstrap administrator from the service's configuration: the same email and password
    /// rules as anyone else, because an admin account is the last one that should be weak.
    pub fn admin(email: &str, password: String) -> Result<Self, InvalidInput> {
        Ok(NewUser {
            email: Email::parse(email)?,
            password: Password::parse(password)?,
            name: Name::parse("Administrator")?,
            role: Role::Admin,
        })
    }
}

fn sign_up_role(raw: Option<&str>) -> Result<Role, InvalidInput> {
    match raw.map(Role::parse) {
        None => Ok(Role::Customer),
        Some(Some(Role::Admin)) => Err(InvalidInput::Role("admin accounts cannot be created by signing up")),
        Some(Some(role)) => Ok(role),
        Some(None) => Err(InvalidInput::Role("role must be CUSTOMER or SELLER")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "s3cret-enough";

    fn sign_up(email: &str, name: &str, role: Option<&str>) -> Result<NewUser, InvalidInput> {
        NewUser::parse(email, PASSWORD.into(), name, role)
    }

    #[test]
    fn an_email_is_trimmed_and_lowercased() {
        assert_eq!(Email::parse("  Kim.Lee@Example.COM ").unwrap().as_str(), "kim.lee@example.com");
    }

    #[test]
    fn emails_without_the_local_at_domain_dot_tld_shape_are_rejected() {
        for raw in ["", "kim", "kim@", "@example.com", "kim@example", "kim@@example.com", "kim@a@example.com"] {
            assert_eq!(Email::parse(raw).unwrap_err().field(), "email", "{raw:?} was accepted");
        }
    }

    #[test]
    fn an_email_with_a_malformed_domain_is_rejected() {
        for raw in ["kim@.example.com", "kim@example.com.", "kim@example..com"] {
            assert!(Email::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn an_email_with_whitespace_or_control_characters_inside_is_rejected() {
        for raw in ["kim lee@example.com", "kim@exam\tple.com", "kim\u{0}@example.com"] {
            assert!(Email::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn an_email_may_be_254_bytes_but_not_255() {
        let at_limit = format!("{}@{}.com", "k".repeat(64), "d".repeat(254 - 64 - 1 - 4));
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
        let over = format!("{}@{}.com", "k".repeat(64), "d".repeat(254 - 64 - 4));
        assert!(Email::parse(&over).is_err());
    }

    #[test]
    fn a_local_part_over_64_bytes_is_rejected() {
        assert!(Email::parse(&format!("{}@example.com", "k".repeat(65))).is_err());
    }

    #[test]
    fn a_name_is_trimmed() {
        assert_eq!(Name::parse("  Kim Lee ").unwrap().into_string(), "Kim Lee");
    }

    #[test]
    fn an_empty_or_blank_name_is_rejected() {
        assert!(Name::parse("").is_err());
        assert!(Name::parse(" \t ").is_err());
    }

    #[test]
    fn a_name_may_have_100_characters_but_not_101() {
        assert!(Name::parse(&"é".repeat(100)).is_ok());
        assert!(Name::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn a_name_with_control_characters_is_rejected() {
        assert!(Name::parse("Kim\nLee").is_err());
    }

    #[test]
    fn the_role_defaults_to_customer() {
        assert_eq!(sign_up("kim@example.com", "Kim", None).unwrap().role, Role::Customer);
    }

    #[test]
    fn customers_and_sellers_may_sign_up() {
        assert_eq!(sign_up("kim@example.com", "Kim", Some("CUSTOMER")).unwrap().role, Role::Customer);
        assert_eq!(sign_up("kim@example.com", "Kim", Some("SELLER")).unwrap().role, Role::Seller);
    }

    #[test]
    fn nobody_signs_up_as_an_admin() {
        let err = sign_up("kim@example.com", "Kim", Some("ADMIN")).unwrap_err();
        assert_eq!(err, InvalidInput::Role("admin accounts cannot be created by signing up"));
    }

    #[test]
    fn an_unknown_or_lowercase_role_is_rejected() {
        for role in ["OWNER", "seller", ""] {
            assert_eq!(sign_up("kim@example.com", "Kim", Some(role)).unwrap_err().field(), "role");
        }
    }

    #[test]
    fn the_first_field_at_fault_is_the_one_reported() {
        let err = NewUser::parse("not-an-email", "short".into(), "", Some("ADMIN")).unwrap_err();
        assert_eq!(err.field(), "email");
        let err = NewUser::parse("kim@example.com", "short".into(), "", None).unwrap_err();
        assert_eq!(err.field(), "password");
        assert_eq!(sign_up("kim@example.com", " ", None).unwrap_err().field(), "name");
    }

    #[test]
    fn the_bootstrap_admin_is_an_admin_under_the_same_rules() {
        let admin = NewUser::admin("Root@Example.com", PASSWORD.into()).unwrap();
        assert_eq!((admin.role, admin.email.as_str()), (Role::Admin, "root@example.com"));
        assert_eq!(NewUser::admin("root@example.com", "password".into()).unwrap_err().field(), "password");
    }
}
