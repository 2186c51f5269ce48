//! The HTTP API: the router and thin handlers (extract -> parse -> one transaction -> respond).
//!
//! - [`create_order`]: `POST /orders`, with `Idempotency-Key` and `Prefer: wait=N`.
//! - [`orders`]: `GET /orders/me` and `GET /orders/{id}` (also with `Prefer: wait=N`).
//! - [`trace`]: `GET /orders/{id}/trace`.
//! - [`wait`]: `Prefer: wait=N`, waiting for a saga to settle.

pub mod create_order;
pub mod orders;
pub mod trace;
pub mod wait;

use axum::{
    Router,
    extract::FromRef,
    http::StatusCode,
    routing::{get, post},
};
use common::{auth::AuthUser, auth::Verifier, db::Db, http::ApiError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    domain::{InvalidInput, Order},
    waiters::Waiters,
};

/// Everything the handlers use; each handler extracts only the parts it needs. The handlers that
/// honour `Prefer: wait`, the users of `waiters` and `stop`, take the whole state.
#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub db: Db,
    pub verifier: Verifier,
    #[from_ref(skip)]
    pub waiters: Waiters,
    /// Cancelled at shutdown: waiting requests answer at once instead of holding the shutdown up.
    #[from_ref(skip)]
    pub stop: CancellationToken,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orders", post(create_order::create_order))
        // A static segment wins over a parameter in axum's router, so `me` is never taken for an id.
        .route("/orders/me", get(orders::my_orders))
        .route("/orders/{id}", get(orders::get_order))
        .route("/orders/{id}/trace", get(trace::get_trace))
        .with_state(state)
}

/// Where an order can be read.
pub fn location(order: Uuid) -> String {
    format!("/orders/{order}")
}

/// The 404 for an order that does not exist or that the caller may not see: the two are
/// indistinguishable on purpose.
fn order_not_found() -> ApiError {
    ApiError::not_found("ORDER_NOT_FOUND", "no such order")
}

/// An order id from a path; anything that is not a UUID names no order.
fn parse_order_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| order_not_found())
}

/// Owners see their orders, admins see every order.
fn may_see(user: &AuthUser, order: &Order) -> bool {
    order.user_id == user.id || user.is_admin()
}

/// Request input that breaks a rule: 422 naming the field, or 400 for a header, which is not the
/// request's content.
fn invalid(e: InvalidInput) -> ApiError {
    match e {
        InvalidInput::IdempotencyKey(_) => {
            let mut err = ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string());
            err.field = Some(e.field().to_owned());
            err
        }
        _ => ApiError::invalid(e.code(), e.field(), e.to_string()),
    }
}
