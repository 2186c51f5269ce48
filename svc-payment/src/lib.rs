//! svc-payment: the simulated payment gateway of the order saga.
//!
//! - Consumes `stock.reserved.*` (durable consumer `svc-payment`) and charges each order at most
//!   once through the deterministic [`gateway`], storing one payment per order.
//! - Publishes `payment.completed` or `payment.failed` (with `LIMIT_EXCEEDED` or `DECLINED`) in the
//!   transaction that stores the payment.
//! - Serves `GET /payments/{id}` and `GET /payments?orderId=` to the payer and to admins.
//!
//! Modules: [`config`] (flags), [`app`] (wiring), [`api`] (routes), [`domain`] and [`gateway`]
//! (pure rules), [`store`] (SQL), [`saga`] (the reaction).

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod gateway;
pub mod saga;
pub mod store;

pub use app::App;
pub use config::Config;
