//! `GET /settlements/daily` and `GET /settlements/monthly`.
//!
//! Both answer `{date|month, timeZone, closed, rows: [{sellerId, category, gross, refunds, net,
//! orders, fee, payout}], totals: {gross, refunds, net, orders, fee, payout}}`. Rows are per
//! seller and category, ordered by seller id then category; adjustments count on the day they
//! are booked on. A closed day is reported at the fee rate it was closed with. Each report is
//! read in one read transaction, so its figures and its `closed` flag agree.

use axum::extract::State;
use common::{
    auth::AuthUser,
    db::DbError,
    http::{ApiError, Code, Json, Query},
    openapi::Problem,
};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{forbidden, invalid_date, missing, overflow};
use crate::{
    app::AppState,
    domain::{
        FeeRate, Figures, Month,
        access::report_scope,
        calendar::parse_day,
        report::{self, DayGroup, Row},
    },
    store::{self, ledger::Filter},
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// The business day, `YYYY-MM-DD` (required).
    date: Option<String>,
    seller_id: Option<String>,
    category: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct MonthlyQuery {
    /// The month, `YYYY-MM` (required).
    month: Option<String>,
    seller_id: Option<String>,
    category: Option<String>,
}

/// A daily report on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyReport {
    date: String,
    time_zone: String,
    /// The day is closed: these figures are final.
    closed: bool,
    rows: Vec<Row>,
    totals: Figures,
}

/// A monthly report on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthlyReport {
    month: String,
    time_zone: String,
    /// The month is final: it has ended, a day on or after its last day is closed (so nothing can
    /// be booked in it any more) and every one of its days with entries is closed.
    closed: bool,
    rows: Vec<Row>,
    totals: Figures,
}

/// `GET /settlements/daily?date=YYYY-MM-DD[&sellerId=][&category=]`
/// One business day's sales per seller and category (a seller sees only its own).
#[utoipa::path(get, path = "/settlements/daily", tag = "svc-settlement", security(("bearer" = [])), params(DailyQuery),
    responses(
        (status = 200, description = "The day's report", body = DailyReport),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: a customer, or a seller naming another seller", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "`INVALID_QUERY` (a missing parameter, a `sellerId` that is not a UUID), \
         `INVALID_DATE` or `INVALID_MONTH`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn daily(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<DailyQuery>,
) -> Result<Json<DailyReport>, ApiError> {
    let seller_id = scope(&user, q.seller_id.as_deref())?;
    let date = parse_day(q.date.as_deref().ok_or_else(|| missing("date"))?).map_err(invalid_date)?;
    let filter = Filter { from: Some(date), to: Some(date), seller_id, category: category(q.category) };
    let (groups, close) = state
        .db
        .read(move |c| {
            store::in_snapshot(c, |tx| {
                Ok::<_, DbError>((store::ledger::day_groups(tx, &filter)?, store::days::find_close(tx, date)?))
            })
        })
        .await?;
    let rate = close.as_ref().map_or(state.rules.fee_rate, |c| c.fee_rate);
    let (rows, totals) = rows_and_totals(&groups, |_| rate)?;
    Ok(Json(DailyReport {
        date: date.to_string(),
        time_zone: state.rules.calendar.name().to_owned(),
        closed: close.is_some(),
        rows,
        totals,
    }))
}

/// `GET /settlements/monthly?month=YYYY-MM[&sellerId=][&category=]`: the month's business days
/// summed, each day settled at its own rate (so the month equals the sum of its daily reports).
/// One month's sales per seller and category, each day at its own fee rate.
#[utoipa::path(get, path = "/settlements/monthly", tag = "svc-settlement", security(("bearer" = [])),
    params(MonthlyQuery),
    responses(
        (status = 200, description = "The month's report", body = MonthlyReport),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: a customer, or a seller naming another seller", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "`INVALID_QUERY` (a missing parameter, a `sellerId` that is not a UUID), \
         `INVALID_DATE` or `INVALID_MONTH`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn monthly(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<MonthlyQuery>,
) -> Result<Json<MonthlyReport>, ApiError> {
    let seller_id = scope(&user, q.seller_id.as_deref())?;
    let raw = q.month.as_deref().ok_or_else(|| missing("month"))?;
    let month = Month::parse(raw).map_err(|e| ApiError::invalid(Code::InvalidMonth, "month", e.to_string()))?;
    let (first, last) = (month.first_day(), month.last_day());
    let filter = Filter { from: Some(first), to: Some(last), seller_id, category: category(q.category) };
    let (groups, rates, open, latest_closed) = state
        .db
        .read(move |c| {
            store::in_snapshot(c, |tx| {
                let groups = store::ledger::day_groups(tx, &filter)?;
                let rates = store::days::close_rates(tx, first, last)?;
                let open = store::ledger::open_days_with_entries(tx)?;
                let latest_closed = store::days::latest_closed_day(tx)?;
                Ok::<_, DbError>((groups, rates, open, latest_closed))
            })
        })
        .await?;
    let default_rate = state.rules.fee_rate;
    let (rows, totals) = rows_and_totals(&groups, |d| rates.get(&d).copied().unwrap_or(default_rate))?;
    // Final only once a day on or after the month's last day is closed: until then an event dated
    // in the month can still be booked on its own (open) day.
    let ended = state.rules.calendar.has_ended(last, state.clock.now());
    let closed = ended && latest_closed.is_some_and(|d| d >= last) && !open.iter().any(|d| (first..=last).contains(d));
    Ok(Json(MonthlyReport {
        month: month.to_string(),
        time_zone: state.rules.calendar.name().to_owned(),
        closed,
        rows,
        totals,
    }))
}

/// The seller filter the caller gets: the role is checked before the parameter is parsed, so a
/// customer is told 403 whatever it sent.
fn scope(user: &AuthUser, seller_id: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    report_scope(user, None).map_err(forbidden)?;
    let asked = seller_id
        .map(|s| {
            Uuid::parse_str(s).map_err(|_| ApiError::invalid(Code::InvalidQuery, "sellerId", "sellerId must be a UUID"))
        })
        .transpose()?;
    report_scope(user, asked).map_err(forbidden)
}

/// An empty `category=` means no category filter.
fn category(raw: Option<String>) -> Option<String> {
    raw.filter(|c| !c.is_empty())
}

fn rows_and_totals(groups: &[DayGroup], rate_of: impl Fn(Date) -> FeeRate) -> Result<(Vec<Row>, Figures), ApiError> {
    let rows = report::rows(groups, rate_of).map_err(overflow)?;
    let totals = report::totals(&rows).map_err(overflow)?;
    Ok((rows, totals))
}
