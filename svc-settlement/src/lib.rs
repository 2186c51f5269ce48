//! svc-settlement: the sales ledger sellers are paid from.
//!
//! **Choreography** (the reactions are [`saga`]'s `on_<event>` functions, one per event consumed)
//! - Consumes (durable `svc-settlement`): `payment.completed`, `payment.cancelled`.
//! - Publishes from requests: `POST /settlements/close` → `settlement.closed.<date>` with each
//!   seller's payout, in the transaction that closes the day; the scheduler ([`schedule`]) closes
//!   due days the same way.
//! - Publishes from reactions: nothing. `payment.completed` and `payment.cancelled` each book one
//!   SALE or REFUND entry (at most one of each per payment) on the local date of the event's
//!   `occurredAt` in `TIME_ZONE`, or on the day after the latest closed day when that date is on
//!   or before it.
//!
//! **Serves** (default `127.0.0.1:8085`): daily and monthly reports per seller and category
//! (`GET /settlements/daily`, `GET /settlements/monthly`) and `POST /settlements/close`; for
//! admins `GET /admin/ledger` (every entry, paged), plus every service's admin routes
//! (`common::admin`).
//!
//! **Owns** the append-only `ledger`, `closed_days` and `payouts`; [`rebuild`] replays the stream
//! into a fresh database and compares it with the live one.
//!
//! Modules: [`config`] (flags), [`app`] (wiring: `impl Service for Config`), [`api`] (routes),
//! [`domain`] (pure rules: calendar, fees, entries, reports), [`store`] (SQL), [`saga`] (the
//! reactions), [`closing`] (closing a day), [`schedule`] (the automatic close), [`clock`]
//! (injectable time), [`rebuild`].

pub mod api;
pub mod app;
pub mod clock;
pub mod closing;
pub mod config;
pub mod domain;
pub mod rebuild;
pub mod saga;
pub mod schedule;
pub mod store;

pub use config::Config;

/// The service's name: its producer name, durable consumer and database file.
pub const SERVICE: &str = "svc-settlement";

/// svc-settlement's OpenAPI document, as it serves it at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(SERVICE, env!("CARGO_PKG_VERSION"), api::routes().into_openapi())
}
