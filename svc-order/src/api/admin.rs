//! `GET /admin/orders`: every order, oldest first, for audits.

use axum::extract::State;
use common::{
    Role,
    auth::AuthUser,
    db::Db,
    http::{ApiError, Json, Query},
    openapi::Problem,
    paging::{Page, PageQuery},
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::{domain::Order, store};

/// An order as an admin sees it: the owner's view plus the saga deadline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminOrder {
    #[serde(flatten)]
    pub order: Order,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub deadline_at: OffsetDateTime,
}

/// Every order, oldest first, with its saga deadline (admins).
#[utoipa::path(get, path = "/admin/orders", tag = "svc-order", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of every order, with its deadline", body = Page<AdminOrder>),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn all_orders(
    State(db): State<Db>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<AdminOrder>>, ApiError> {
    user.require(&[Role::Admin])?;
    let paging = query.parse()?;
    let (orders, total) = db.read(move |c| store::list_orders(c, paging)).await?;
    let items = orders.into_iter().map(|order| AdminOrder { deadline_at: order.deadline_at, order }).collect();
    Ok(Json(Page::new(items, paging, total)))
}
