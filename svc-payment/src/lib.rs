//! svc-payment: the order saga's payments, charged and refunded through the payment gateway.
//!
//! **Choreography** (the reactions are [`saga`]'s `on_<event>` functions, one per event consumed)
//! - Consumes (durable `svc-payment`): `stock.reserved`, `order.failed`, `order.expired`.
//! - Publishes from requests: `POST /payments/{id}/cancel` → `payment.cancelled` (a completed
//!   payment refunded in full; svc-order, svc-product and svc-settlement react).
//! - Publishes from reactions: `stock.reserved` → `payment.completed` or `payment.failed` (with
//!   `LIMIT_EXCEEDED` or `DECLINED`): each order is charged at most once through the remote
//!   payment gateway ([`gateway`]: idempotency keys, timeout, retries, circuit breaker), and never
//!   once it is closed; `order.failed` and `order.expired` → a full refund,
//!   `payment.cancelled`, of a completed charge, and the order is closed.
//!
//! **Serves** (default `127.0.0.1:8084`): `GET /payments/{id}` and `GET /payments?orderId=` to the
//! payer and to admins, `POST /payments/{id}/cancel`, and `GET /admin/payments` (every payment,
//! paged, for audits).
//!
//! **Owns** the `payments` table: one payment per order.
//!
//! Modules: [`config`] (flags), [`app`] (wiring: `impl Service for Config`), [`api`] (routes),
//! [`domain`] (pure rules), [`store`] (SQL), [`saga`] (the reaction), [`gateway`] (the
//! gateway's client).

/// The service name: its consumer, its database file and the `producer` of its events.
pub const SERVICE: &str = "svc-payment";

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod gateway;
pub mod saga;
pub mod store;

pub use config::Config;

/// svc-payment's OpenAPI document, as it serves it at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(SERVICE, env!("CARGO_PKG_VERSION"), api::routes().into_openapi())
}
