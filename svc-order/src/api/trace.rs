//! `GET /orders/{id}/trace`: every event of an order's saga, whoever produced it, causes first.

use axum::extract::State;
use common::{
    auth::AuthUser,
    db::{Db, DbError},
    http::{ApiError, Json, Path, path_id},
};
use serde::Serialize;
use uuid::Uuid;

use super::{may_see, order_not_found};
use crate::{
    domain::{TraceEvent, causal_order},
    store,
};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub order_id: Uuid,
    pub events: Vec<TraceEvent>,
}

/// For the order's owner or an admin. Admins may also trace a saga svc-order holds no order for
/// (events published by hand for an unknown order), which is how such sagas are debugged.
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
