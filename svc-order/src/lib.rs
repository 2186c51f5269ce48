//! svc-order: the client's entry point of the choreographed order saga. It never calls another
//! service; it stores orders, starts each saga with an event and follows the saga's events to the
//! order's outcome.
//!
//! **Choreography** (the reactions are [`saga`]'s `on_<event>` functions, one per event consumed)
//! - Consumes (durable `svc-order`, one consumer for both purposes): `order.created` (a
//!   hand-published one creates its order), `stock.reserved`, `stock.rejected`,
//!   `payment.completed`, `payment.failed`, `payment.cancelled` to react; and every `order.*`,
//!   `stock.*` and `payment.*` event type, recorded for the trace.
//! - Publishes from requests: `POST /orders` → `order.created.<orderId>`.
//! - Publishes from reactions: `stock.rejected` → `order.failed`; `payment.completed` →
//!   `order.paid`; `payment.failed` → `order.failed`; `payment.cancelled` → `order.cancelled`.
//!   `order.created` and `stock.reserved` only move the order along.
//! - Publishes from its deadline ([`expiry`]): an order not ended `ORDER_DEADLINE_SECS` after it
//!   was placed → `order.expired`.
//!
//! **Serves** (default `127.0.0.1:8083`, Bearer token, any role):
//! - `POST /orders`: places an order (`Idempotency-Key` for safe retries, `Prefer: wait=N` to
//!   wait up to N s, at most 30, for the outcome instead of taking a `202`).
//! - `GET /orders/me`: the caller's orders, newest first, paged.
//! - `GET /orders/{id}`, `GET /orders/{id}/trace`: one order (with `Prefer: wait=N`, answered
//!   once its saga has settled), and its saga's events in causal order; for the owner or an admin.
//! - `GET /admin/orders` (admins): every order, oldest first, paged, with its `deadlineAt`.
//! - Every service's admin routes (`common::admin`): `/admin/outbox`, `/admin/dead-letters`,
//!   `/admin/failpoints`.
//! - `GET /console` and `/console/api/*` (admins; a session cookie or a Bearer token): the saga
//!   console ([`console`]), fed by every service's NATS services API endpoints (`common::micro`).
//!
//! **Owns** the `orders` table (with their state machine, [`domain`]) and the saga trace.
//!
//! Modules: [`config`] (flags), [`app`] (wiring: `impl Service for Config`), [`api`] (routes),
//! [`domain`] (pure rules), [`store`] (SQL), [`saga`] (the reactions), [`expiry`] (the saga
//! deadline), [`housekeeping`] (the trace's retention), [`waiters`] (requests waiting on an
//! order), [`console`] (the saga console).

pub mod api;
pub mod app;
pub mod config;
pub mod console;
pub mod domain;
pub mod expiry;
pub mod housekeeping;
pub mod saga;
pub mod store;
pub mod waiters;

pub use config::Config;

/// The service's name: its producer name, durable consumer name and database file name.
pub const SERVICE: &str = "svc-order";

/// svc-order's OpenAPI document, as it serves it at `/openapi.json`: its API and the saga
/// console's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut paths = api::routes().into_openapi();
    paths.merge(console::routes().into_openapi());
    common::openapi::document(SERVICE, env!("CARGO_PKG_VERSION"), paths)
}
