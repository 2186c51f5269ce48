//! payment-gateway: the simulated payment gateway (PG) that svc-payment charges through, as a
//! remote HTTP API with the contract real PGs have.
//!
//! **Serves** (default `127.0.0.1:8090`, JSON in camelCase, money in whole won, problems as
//! `application/problem+json` with a stable `code`):
//! - `POST /v1/charges` with an `Idempotency-Key`: charges an order (`reference`) once per key;
//!   the verdict follows the deterministic [`rules`] (limit, seeded decline rate).
//! - `POST /v1/refunds` with an `Idempotency-Key`: refunds the charge under `chargeKey` in full,
//!   once; a key with no charge yet is voided, so a late charge under it takes nothing.
//! - `GET /v1/charges?after=&limit=`: the ledger, for audits.
//! - `GET` / `PUT /v1/faults`: the simulated [`faults`] (down, latency, failures, timeouts, lost
//!   answers) and how often each fired.
//! - `GET /health/live`, `GET /health/ready`.
//!
//! **Owns** the `charges` and `refunds` tables (one row per idempotency key). It uses no bus:
//! it publishes and consumes nothing.
//!
//! Modules: [`config`] (flags), [`app`] (wiring), [`api`] (routes), [`rules`] (the verdict),
//! [`faults`] (the simulated failures), [`store`] (SQL); `harness` (feature) starts one for tests.

/// The service name: its database file and its failpoints' prefix.
pub const SERVICE: &str = "payment-gateway";

pub mod api;
pub mod app;
pub mod config;
pub mod faults;
pub mod rules;
pub mod store;

#[cfg(feature = "harness")]
pub mod harness;

pub use app::App;
pub use config::Config;
