//! `GET /orders/me` and `GET /orders/{id}`.

use axum::extract::State;
use common::{
    auth::AuthUser,
    db::{Db, DbError},
    http::{ApiError, Json, Path, Query},
    paging::{Page, PageQuery},
};

use super::{may_see, order_not_found, parse_order_id};
use crate::{domain::Order, store};

/// The caller's orders, newest first.
pub async fn my_orders(
    State(db): State<Db>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<Order>>, ApiError> {
    let paging = query.parse()?;
    let (items, total) =
        db.read(move |c| store::list_orders_by_user(c, user.id, paging).map_err(DbError::from)).await?;
    Ok(Json(Page::new(items, paging, total)))
}

/// One order, for its owner or an admin; a 404 for everyone else.
pub async fn get_order(State(db): State<Db>, user: AuthUser, Path(id): Path<String>) -> Result<Json<Order>, ApiError> {
    let id = parse_order_id(&id)?;
    let order = db.read(move |c| store::find_order(c, id).map_err(DbError::from)).await?;
    match order {
        Some(order) if may_see(&user, &order) => Ok(Json(order)),
        _ => Err(order_not_found()),
    }
}
