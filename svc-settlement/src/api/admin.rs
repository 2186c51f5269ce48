//! `GET /admin/ledger`: every ledger entry, in booking order, for audits.

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
use uuid::Uuid;

use crate::{domain::Entry, store};

/// A ledger entry on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// The id of the payment event that booked it.
    id: Uuid,
    /// `SALE` or `REFUND`.
    #[schema(value_type = String)]
    kind: &'static str,
    payment_id: Uuid,
    order_id: Uuid,
    seller_id: Uuid,
    category: String,
    /// Won; positive for both kinds.
    amount: i64,
    /// The event's `occurredAt`.
    occurred_at: String,
    /// The local date of `occurredAt`.
    event_date: String,
    /// The day it is booked on: `eventDate`, or later when that day was closed (an adjustment).
    business_date: String,
}

impl From<Entry> for LedgerEntry {
    fn from(e: Entry) -> Self {
        let p = e.posting;
        LedgerEntry {
            id: p.id,
            kind: p.kind.as_str(),
            payment_id: p.payment_id,
            order_id: p.order_id,
            seller_id: p.seller_id,
            category: p.category,
            amount: p.amount.0,
            occurred_at: p.occurred_at.to_string(),
            event_date: e.event_date.to_string(),
            business_date: e.business_date.to_string(),
        }
    }
}

#[utoipa::path(get, path = "/admin/ledger", tag = "svc-settlement", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of ledger entries, in booking order", body = Page<LedgerEntry>),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ledger(
    State(db): State<Db>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<LedgerEntry>>, ApiError> {
    user.require(&[Role::Admin])?;
    let paging = query.parse()?;
    let (entries, total) = db.read(move |c| store::ledger::list_entries(c, paging)).await?;
    Ok(Json(Page::new(entries.into_iter().map(LedgerEntry::from).collect(), paging, total)))
}
