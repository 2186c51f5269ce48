//! svc-product: the catalogue, its stock, and the stock reservations of the order saga.
//!
//! **Choreography** (the reactions are [`saga`]'s `on_<event>` functions, one per event consumed)
//! - Consumes (durable `svc-product`): `order.created`, `payment.failed`, `payment.cancelled`,
//!   `order.failed`, `order.expired`.
//! - Publishes from requests: nothing.
//! - Publishes from reactions: `order.created` → `stock.reserved` or `stock.rejected` (every order
//!   that is not closed gets exactly one answer); `payment.failed`, `payment.cancelled`,
//!   `order.failed` and `order.expired` → `stock.released` (once, and only for a reservation that
//!   holds stock). An order that failed or expired is closed: nothing is reserved for it later.
//!
//! **Serves** (default `127.0.0.1:8082`): `GET /products` (public, filter by `category` and
//! `sellerId`, paged, newest first), `GET /products/{id}` (public), `POST /products` (sellers and
//! admins) and `POST /products/{id}/restock` (the product's seller or an admin); for admins,
//! `GET /admin/products` (stock accounts: `stock`, `stocked`, `reserved`) and
//! `GET /admin/reservations`, plus every service's admin routes (`common::admin`).
//!
//! **Owns** the `products` (stock never below 0) and `reservations` tables.
//!
//! Modules: [`config`] (flags), [`app`] (wiring: `impl Service for Config`), [`api`] (routes),
//! [`domain`] (pure rules), [`store`] (SQL), [`saga`] (the reactions), [`seed`] (the demo
//! catalogue and its fixed ids).

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

/// svc-product's OpenAPI document, as it serves it at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(SERVICE, env!("CARGO_PKG_VERSION"), api::routes().into_openapi())
}
