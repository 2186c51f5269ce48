//! svc-user: accounts and authentication for msa-shop.
//!
//! - **Owns** the `users` table (emails unique case-insensitively, Argon2id password hashes) and
//!   the Ed25519 key that signs every access token in the system.
//! - **Serves** `POST /users` (sign up), `POST /auth/login` (access token) and `GET /users/me`;
//!   see [`api`].
//! - **Publishes** `user.registered.<userId>` through the outbox (never with a password or hash),
//!   and the public half of each signing key in use as a JWK in the `auth-keys` KV bucket, from
//!   which every service's `Verifier` learns it.
//! - **Consumes** no events; it watches the `auth-keys` bucket, where deleting a key retires it
//!   (see [`keys`]).

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod hashing;
pub mod keys;
pub mod store;

pub use config::Config;

/// The service's name: its NATS connection name, its database file and its events' producer.
pub const SERVICE: &str = "svc-user";
