//! svc-order: the client's entry point of the choreographed order saga. It never calls another
//! service; it stores orders, starts each saga with an event and follows the saga's events to the
//! order's outcome.
//!
//! Serves (Bearer token, any role):
//! - `POST /orders`: places an order (`Idempotency-Key` for safe retries, `Prefer: wait=N` to
//!   wait up to N s, at most 30, for the outcome instead of taking a `202`).
//! - `GET /orders/me`: the caller's orders, newest first, paged.
//! - `GET /orders/{id}`, `GET /orders/{id}/trace`: one order (with `Prefer: wait=N`, answered
//!   once its saga has settled), and its saga's events in causal order; for the owner or an admin.
//!
//! Publishes `order.created` (a new order), `order.paid`, `order.failed` and `order.cancelled`.
//! Consumes (durable `svc-order`) `order.created` (hand-published orders), `stock.reserved`,
//! `stock.rejected`, `payment.completed`, `payment.failed` and `payment.cancelled`; and (durable
//! `svc-order-trace`) every `order.*`, `stock.*` and `payment.*` event type for the trace.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod saga;
pub mod store;
pub mod waiters;

pub use config::Config;

/// The service's name: its producer name, durable consumer name and database file name.
pub const SERVICE: &str = "svc-order";
