//! `GET /orders/me` and `GET /orders/{id}`.

use axum::extract::State;
use common::{
    auth::AuthUser,
    db::{Db, DbError},
    http::{ApiError, Json, Path, Query},
};
use serde::{Deserialize, Serialize};

use super::{invalid, may_see, order_not_found, parse_order_id};
use crate::{
    domain::{Order, Page},
    store,
};

/// `?page=1&size=20`, checked by [`Page::parse`].
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub page: Option<i64>,
    pub size: Option<i64>,
}

/// One page of a listing, the shape every msa-shop listing has.
#[derive(Debug, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub size: u32,
    pub total: i64,
}

/// The caller's orders, newest first.
pub async fn my_orders(
    State(db): State<Db>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<Paged<Order>>, ApiError> {
    let page = Page::parse(query.page, query.size).map_err(invalid)?;
    let (items, total) = db.read(move |c| store::list_orders_by_user(c, user.id, page).map_err(DbError::from)).await?;
    Ok(Json(Paged { items, page: page.number, size: page.size, total }))
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
