//! `GET /orders/{id}/trace`: every event of an order's saga, whoever produced it, causes first.

use axum::extract::State;
use common::{
    auth::AuthUser,
    db::{Db, DbError},
    http::{ApiError, Json, Path, path_id},
    openapi::Problem,
};
use serde::Serialize;
use uuid::Uuid;

use super::{may_see, order_not_found};
use crate::{
    domain::{TraceEvent, causal_order},
    store,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub order_id: Uuid,
    pub events: Vec<TraceEvent>,
}

/// An order's saga, event by event, each after its cause.
///
/// For the order's owner or an admin. Admins may also trace a saga svc-order holds no order for
/// (events published by hand for an unknown order), which is how such sagas are debugged.
#[utoipa::path(get, path = "/orders/{id}/trace", tag = "svc-order", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The saga's events", body = Trace),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`ORDER_NOT_FOUND`: unknown, not the caller's, or not a UUID", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_trace(State(db): State<Db>, user: AuthUser, Path(id): Path<String>) -> Result<Json<Trace>, ApiError> {
    let id = path_id(&id, order_not_found)?;
    let (order, events) =
        db.read(move |c| Ok::<_, DbError>((store::find_order(c, id)?, store::saga_events(c, id)?))).await?;
    let visible = match &order {
        Some(order) => may_see(&user, order),
        None => user.is_admin() && !events.is_empty(),
    };
    if !visible {
        return Err(order_not_found());
    }
    Ok(Json(Trace { order_id: id, events: causal_order(events) }))
}
