//! svc-payment: the simulated payment gateway of the order saga.
//!
//! - Consumes `stock.reserved.*` (durable consumer `svc-payment`) and charges each order at most
//!   once through the deterministic [`gateway`], storing one payment per order.
//! - Publishes `payment.completed` or `payment.failed` (with `LIMIT_EXCEEDED` or `DECLINED`) in the
//!   transaction that stores the payment.
//! - Serves `GET /payments/{id}` and `GET /payments?orderId=` to the payer and to admins.
//! - `POST /payments/{id}/cancel` refunds a completed payment in full and publishes
//!   `payment.cancelled` in the same transaction (svc-order, svc-product and svc-settlement react).
//!
//! Modules: [`config`] (flags), [`app`] (wiring), [`api`] (routes), [`domain`] and [`gateway`]
//! (pure rules), [`store`] (SQL), [`saga`] (the reaction).

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
