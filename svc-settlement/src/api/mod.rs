//! The HTTP API: settlement reports for sellers and admins, and the close for admins.
//!
//! | route                                                   | who                 | answer       |
//! |---------------------------------------------------------|---------------------|--------------|
//! | `GET /settlements/daily?date=YYYY-MM-DD[&sellerId=&category=]` | seller (own), admin | 200 report |
//! | `GET /settlements/monthly?month=YYYY-MM[&sellerId=&category=]` | seller (own), admin | 200 report |
//! | `POST /settlements/close?date=YYYY-MM-DD`               | admin               | 200 close record, also when already closed |
//! | `GET /admin/ledger?page=&size=`                          | admin               | 200 page of ledger entries, in booking order |
//!
//! Errors: 401 `UNAUTHENTICATED`/`INVALID_TOKEN`; 403 `FORBIDDEN` (customer, a seller naming
//! another seller, a non-admin closing); 400 `INVALID_DATE`, `INVALID_MONTH` or `INVALID_QUERY`
//! (missing parameter, sellerId not a UUID); 409 `DAY_NOT_ENDED`.

mod admin;
mod close;
mod reports;

use common::{
    http::{ApiError, Code},
    openapi::OpenApiRouter,
};

use crate::{
    app::AppState,
    domain::{Overflow, access::Forbidden, calendar::InvalidDay},
};

/// svc-settlement's routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(common::openapi::routes!(reports::daily))
        .routes(common::openapi::routes!(reports::monthly))
        .routes(common::openapi::routes!(close::close))
        .routes(common::openapi::routes!(admin::ledger))
}

pub fn router(state: AppState) -> OpenApiRouter {
    routes().with_state(state)
}

/// 403 `FORBIDDEN`, saying which rule of report access the caller broke.
fn forbidden(e: Forbidden) -> ApiError {
    ApiError::new(Code::Forbidden, e.to_string())
}

fn invalid_date(e: InvalidDay) -> ApiError {
    ApiError::invalid(Code::InvalidDate, "date", e.to_string())
}

fn missing(field: &str) -> ApiError {
    ApiError::invalid(Code::InvalidQuery, field, format!("missing query parameter `{field}`"))
}

fn overflow(e: Overflow) -> ApiError {
    ApiError::internal(e)
}
