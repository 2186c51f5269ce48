//! `POST /settlements/close?date=YYYY-MM-DD`: an admin closes a business day now.

use axum::extract::State;
use common::{
    auth::AuthUser,
    event::SellerPayout,
    http::{ApiError, Code, Json, Query},
    openapi::Problem,
};
use serde::{Deserialize, Serialize};

use super::{forbidden, invalid_date, missing, overflow};
use crate::{
    app::AppState,
    closing::{self, CloseError},
    domain::{CloseRecord, access::may_close, calendar::parse_day},
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CloseQuery {
    /// The business day to close, `YYYY-MM-DD` (required).
    date: Option<String>,
}

/// A close record on the wire; the same body every time the day is closed again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseView {
    date: String,
    time_zone: String,
    closed_at: String,
    fee_rate_bps: u16,
    /// The id of the day's `settlement.closed` event.
    event_id: String,
    /// How many ledger entries (all days) were booked when the day closed.
    ledger_entries: u64,
    payouts: Vec<SellerPayout>,
}

impl From<&CloseRecord> for CloseView {
    fn from(r: &CloseRecord) -> Self {
        CloseView {
            date: r.date.to_string(),
            time_zone: r.time_zone.clone(),
            closed_at: r.closed_at.to_string(),
            fee_rate_bps: r.fee_rate.bps(),
            event_id: r.event_id.to_string(),
            ledger_entries: r.ledger_entries,
            payouts: r.payouts.clone(),
        }
    }
}

/// Closes the day (grace period does not apply: the admin decides), or answers with the existing
/// close. 409 `DAY_NOT_ENDED` while the day is not over in the service's time zone.
/// Close a business day (admins): its figures never change again; emits `settlement.closed`.
#[utoipa::path(post, path = "/settlements/close", tag = "svc-settlement", security(("bearer" = [])),
    params(CloseQuery),
    responses(
        (status = 200, description = "The close record (also when the day was closed before)", body = CloseView),
        (status = 400, description = "`INVALID_QUERY` (no `date`) or `INVALID_DATE`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`DAY_NOT_ENDED`: the business day has not ended yet (`endsAt` says when)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn close(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<CloseQuery>,
) -> Result<Json<CloseView>, ApiError> {
    may_close(&user).map_err(forbidden)?;
    let date = parse_day(q.date.as_deref().ok_or_else(|| missing("date"))?).map_err(invalid_date)?;
    let now = state.clock.now();
    let rules = state.rules.clone();
    match state.db.write(move |tx| closing::close_day(tx, &rules, date, now)).await {
        Ok(closed) => Ok(Json(closed.record().into())),
        Err(CloseError::NotEnded(date)) => {
            let ends_at = state.rules.calendar.end_of(date).map(|t| t.to_string()).unwrap_or_default();
            Err(ApiError::new(
                Code::DayNotEnded,
                format!("business day {date} has not ended yet in {}", state.rules.calendar.name()),
            )
            .with_member("endsAt", ends_at))
        }
        Err(CloseError::Overflow(e)) => Err(overflow(e)),
        Err(CloseError::Db(e)) => Err(e.into()),
    }
}
