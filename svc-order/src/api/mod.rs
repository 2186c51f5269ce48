//! The HTTP API: the router and thin handlers (extract -> parse -> one transaction -> respond).
//!
//! - [`admin`]: `GET /admin/orders`, every order for an admin.
//! - [`create_order`]: `POST /orders`, with `Idempotency-Key` and `Prefer: wait=N`.
//! - [`orders`]: `GET /orders/me` and `GET /orders/{id}` (also with `Prefer: wait=N`).
//! - [`trace`]: `GET /orders/{id}/trace`.
//! - [`wait`]: `Prefer: wait=N`, waiting for a saga to settle.

pub mod admin;
pub mod create_order;
pub mod orders;
pub mod trace;
pub mod wait;

use common::{
    auth::AuthUser,
    http::{ApiError, Code},
    openapi::OpenApiRouter,
};
use uuid::Uuid;

use crate::{
    app::AppState,
    domain::{InvalidInput, Order},
};

/// svc-order's API routes, each with its OpenAPI description (the console's are in
/// [`crate::console`]).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(common::openapi::routes!(create_order::create_order))
        // A static segment wins over a parameter in axum's router, so `me` is never taken for an id.
        .routes(common::openapi::routes!(orders::my_orders))
        .routes(common::openapi::routes!(orders::get_order))
        .routes(common::openapi::routes!(trace::get_trace))
        .routes(common::openapi::routes!(admin::all_orders))
}

/// Where an order can be read.
pub fn location(order: Uuid) -> String {
    format!("/orders/{order}")
}

/// The 404 for an order that does not exist or that the caller may not see: the two are
/// indistinguishable on purpose.
fn order_not_found() -> ApiError {
    ApiError::new(Code::OrderNotFound, "no such order")
}

/// Owners see their orders, admins see every order.
fn may_see(user: &AuthUser, order: &Order) -> bool {
    order.user_id == user.id || user.is_admin()
}

/// Request input that breaks a rule: the problem names the field (or header) at fault; its code
/// says whether that is a 422 (the body) or a 400 (a header, not the request's content).
fn invalid(e: InvalidInput) -> ApiError {
    ApiError::invalid(e.code(), e.field(), e.to_string())
}
