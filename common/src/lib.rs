//! What every msa-shop service shares.
//!
//! - [`event`]: the event envelope and the one enum of every event, mapped to subjects.
//! - [`bus`]: the JetStream stream and consumer definitions, applied idempotently at start-up.
//! - [`closed`]: the orders a saga participant remembers as ended unpaid.
//! - [`faults`]: failpoints at the dangerous moments, off unless configured, with hit counters.
//! - [`db`]: the SQLite pool (WAL, `synchronous=FULL`) and embedded migrations.
//! - [`outbox`]: `append` inside the business transaction, and the relay that publishes.
//! - [`consumer`]: the idempotent consumer with dead-lettering.
//! - [`auth`]: Ed25519 JWTs, keys distributed through a JetStream KV bucket.
//! - [`http`]: problem+json errors, extractors, layers, health and readiness.
//! - [`metrics`]: Prometheus metrics and `GET /metrics`.
//! - [`openapi`]: every service's OpenAPI document, `GET /openapi.json` and Swagger UI.
//! - [`trace`]: W3C `traceparent` from the HTTP entry through every event of a saga.
//! - [`paging`]: `?page=&size=` of every list and the `{items, page, size, total}` it answers.
//! - [`admin`]: the admin routes every service serves (outbox, dead letters, failpoints).
//! - [`micro`]: every service on the NATS services API: figures, dead letters and replays for the
//!   saga console (`nats micro ls`).
//! - [`permissions`]: who may connect to NATS and publish what, rendered into `nats/accounts.conf`.
//! - [`runtime`]: wires the above together for one service.
//! - `harness` (feature): real nats-server and helpers for tests.

pub mod admin;
pub mod auth;
pub mod bus;
pub mod closed;
pub mod config;
pub mod consumer;
pub mod db;
pub mod event;
pub mod faults;
pub mod http;
pub mod metrics;
pub mod micro;
pub mod openapi;
pub mod outbox;
pub mod paging;
pub mod permissions;
pub mod runtime;
pub mod telemetry;
pub mod trace;

#[cfg(feature = "harness")]
pub mod harness;

pub use event::{Envelope, Event, EventType, PaymentMethod, Quantity, Role, Won};
