//! Pure account types: what a valid sign-up is and how passwords are kept. No I/O; the clock and
//! the database are the callers' business.
//!
//! - [`new_user`]: [`Email`], [`Name`], the sign-up role rule and [`NewUser::parse`].
//! - [`password`]: the [`Password`] policy and the Argon2id [`PasswordHash`].

pub mod new_user;
pub mod password;

use common::Role;
use time::OffsetDateTime;
use uuid::Uuid;

pub use new_user::{Email, Name, NewUser};
pub use password::{HashError, Password, PasswordHash};

/// Why a sign-up was refused. Each variant is the request field at fault; the text says what the
/// rule is, never what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("{0}")]
    Email(&'static str),
    #[error("{0}")]
    Password(&'static str),
    #[error("{0}")]
    Name(&'static str),
    #[error("{0}")]
    Role(&'static str),
}

impl InvalidInput {
    /// The name of the request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            InvalidInput::Email(_) => "email",
            InvalidInput::Password(_) => "password",
            InvalidInput::Name(_) => "name",
            InvalidInput::Role(_) => "role",
        }
    }
}

/// An account as the service hands it around: everything but the password hash, which only the
/// login path reads, next to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    /// Normalised, see [`Email`].
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
}
