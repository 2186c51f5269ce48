//! svc-settlement: the sales ledger sellers are paid from.
//!
//! - Consumes `payment.completed.*` and `payment.cancelled.*` (durable consumer `svc-settlement`)
//!   into an append-only ledger: one SALE or REFUND entry per payment event, at most one of each
//!   per payment, booked on the local date of the event's `occurredAt` in `TIME_ZONE`, or on the
//!   day after the latest closed day when that date is on or before it.
//! - Closes business days, by the scheduler ([`schedule`]) or by an admin, and publishes
//!   `settlement.closed.<date>` with each seller's payout in the transaction that closes the day.
//! - Serves daily and monthly reports per seller and category (`GET /settlements/daily`,
//!   `GET /settlements/monthly`) and `POST /settlements/close`.
//! - [`rebuild`] replays the stream into a fresh database and compares it with the live one.
//!
//! Modules: [`config`] (flags), [`app`] (wiring), [`api`] (routes), [`domain`] (pure rules:
//! calendar, fees, entries, reports), [`store`] (SQL), [`saga`] (the reactions), [`closing`]
//! (closing a day), [`schedule`] (the automatic close), [`clock`] (injectable time), [`rebuild`].

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
