//! svc-user: accounts and authentication for msa-shop.
//!
//! **Choreography**
//! - Consumes: no events. It watches the `auth-keys` KV bucket, where deleting a key retires it
//!   (see [`keys`]).
//! - Publishes from requests: `POST /users` → `user.registered.<userId>` (never with a password
//!   or hash); and the public half of each signing key in use, as a JWK in `auth-keys`, from which
//!   every service's `Verifier` learns it.
//! - Publishes from reactions: nothing.
//!
//! **Serves** (default `127.0.0.1:8081`): `POST /users` (sign up), `POST /auth/login` (access
//! token) and `GET /users/me`; see [`api`].
//!
//! **Owns** the `users` table (emails unique case-insensitively, Argon2id password hashes) and the
//! Ed25519 keys that sign every access token in the system (`signing_keys`).
//!
//! Modules: [`config`] (flags), [`app`] (wiring: `impl Service for Config`), [`api`] (routes),
//! [`domain`] (pure rules), [`store`] (SQL), [`hashing`] (Argon2 off the runtime), [`throttle`]
//! (failed-login limits), [`keys`] (signing keys and the bucket).

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod hashing;
pub mod keys;
pub mod store;
pub mod throttle;

pub use config::Config;

/// svc-user's OpenAPI document, as it serves it at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(SERVICE, env!("CARGO_PKG_VERSION"), api::routes().into_openapi())
}

/// The service's name: its NATS connection name, its database file and its events' producer.
pub const SERVICE: &str = "svc-user";
