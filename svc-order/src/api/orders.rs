//! `GET /orders/me` and `GET /orders/{id}`.

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use common::{
    auth::AuthUser,
    db::Db,
    http::{ApiError, Json, Path, Query, path_id},
    openapi::Problem,
    paging::{Page, PageQuery},
};

use super::{may_see, order_not_found, wait};
use crate::app::AppState;
use crate::{domain::Order, store};

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/orders/me", tag = "svc-order", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of the caller's orders", body = Page<Order>),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn my_orders(
    State(db): State<Db>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<Order>>, ApiError> {
    let paging = query.parse()?;
    let (items, total) = db.read(move |c| store::list_orders_by_user(c, user.id, paging)).await?;
    Ok(Json(Page::new(items, paging, total)))
}

/// An order, for its owner or an admin; with `Prefer: wait=N`, once its saga has ended.
///
/// A 404 for everyone else. With `Prefer: wait=N`, an order whose saga is still running is
/// answered once it has settled (or after N seconds, as it stands).
#[utoipa::path(get, path = "/orders/{id}", tag = "svc-order", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID)"), ("Prefer" = Option<String>, Header, description = "`wait=N` (seconds, at most 30): answer once the saga has ended or N seconds have passed")),
    responses(
        (status = 200, description = "The order", body = Order,
         headers(("Preference-Applied" = String, description = "`wait=N`, when it waited"))),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`ORDER_NOT_FOUND`: unknown, not the caller's, or not a UUID", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(&id, order_not_found)?;
    let order = state.db.lookup(|c| store::find_order(c, id))?;
    let order = match order {
        Some(order) if may_see(&user, &order) => order,
        _ => return Err(order_not_found()),
    };
    Ok(match wait::requested(&headers) {
        None => Json(order).into_response(),
        Some(wait) => wait::applied(wait, Json(wait::until_settled(&state, order, wait).await).into_response()),
    })
}
