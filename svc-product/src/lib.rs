//! svc-product: the catalogue, its stock, and the stock reservations of the order saga.
//!
//! Serves (HTTP, default `127.0.0.1:8082`): `GET /products` (public, filter by `category` and
//! `sellerId`, paged, newest first), `GET /products/{id}` (public), `POST /products` (sellers and
//! admins) and `POST /products/{id}/restock` (the product's seller or an admin).
//!
//! Consumes (durable `svc-product`): `order.created`, `payment.failed`, `payment.cancelled`.
//! Publishes (through its outbox): `stock.reserved`, `stock.rejected`, `stock.released`.
//! See [`saga`] for when each is emitted.
//!
//! - [`config`]: flags and environment.
//! - [`app`]: builds and runs the service.
//! - [`api`]: routes and handlers.
//! - [`domain`]: pure types and rules, unit-tested.
//! - [`store`]: the SQL.
//! - [`saga`]: the reactions to other services' events.
//! - [`seed`]: the demo catalogue and its fixed ids.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod saga;
pub mod seed;
pub mod store;

pub use config::Config;

/// The service's name: its producer name on events, its durable consumer and its database file.
pub const SERVICE: &str = "svc-product";
