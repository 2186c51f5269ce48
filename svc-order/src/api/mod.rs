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

use axum::{
    Router,
    routing::{get, post},
};
use common::{
    auth::AuthUser,
    http::{ApiError, Code},
};
use uuid::Uuid;

use crate::{
    app::AppState,
    domain::{InvalidInput, Order},
};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", post(create_order::create_order))
        // A static segment wins over a parameter in axum's router, so `me` is never taken for an id.
        .route("/orders/me", get(orders::my_orders))
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/trace", get(trace::get_trace))
        .route("/admin/orders", get(admin::all_orders))
        .with_state(state)
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
