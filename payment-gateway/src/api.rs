//! The HTTP API: thin handlers, extract -> parse -> faults -> one transaction -> faults -> respond.
//!
//! | route                | answer                                                                      |
//! |----------------------|-----------------------------------------------------------------------------|
//! | `POST /v1/charges`   | 201 new charge; 200 + `Idempotent-Replayed` stored charge or VOIDED key; 422 `IDEMPOTENCY_KEY_REUSED` |
//! | `POST /v1/refunds`   | 201 REFUNDED or NOTHING_TO_REFUND; 200 replay; 409 `ALREADY_REFUNDED`; 422 `IDEMPOTENCY_KEY_REUSED` |
//! | `GET /v1/charges`    | the ledger, `?after=<seq>&limit=1..=1000`; 400 `INVALID_QUERY`              |
//! | `GET /v1/faults`     | the fault settings and how often each fired                                 |
//! | `PUT /v1/faults`     | changes the settings named in the body; 400 when one is out of range        |
//!
//! Both POSTs need an `Idempotency-Key` (400 `IDEMPOTENCY_KEY_REQUIRED`) and meet the simulated
//! faults (503 `GATEWAY_UNAVAILABLE`, 504 `GATEWAY_TIMEOUT`), replays included.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use common::{
    PaymentMethod, Won,
    db::{Db, now_ms},
    event::PaymentDecline,
    http::{ApiError, Code, Json, Query},
};
use rusqlite::Transaction;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    app::AppState,
    faults::{Faults, FaultsUpdate, FaultsView},
    rules::Rules,
    store::{self, Charge, ChargeRequest, ChargeStatus, KeyState, Refund, RefundStatus},
};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Longest idempotency key, in characters.
pub const MAX_KEY_LEN: usize = 255;
/// Largest page of `GET /v1/charges`.
pub const MAX_PAGE: u32 = 1_000;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/charges", post(create_charge).get(list_charges))
        .route("/v1/refunds", post(create_refund))
        .route("/v1/faults", get(get_faults).put(put_faults))
        .with_state(state)
}

/// The body of `POST /v1/charges`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChargeBody {
    reference: Uuid,
    amount: i64,
    method: PaymentMethod,
}

impl ChargeBody {
    fn parse(self) -> Result<ChargeRequest, ApiError> {
        if self.amount < 1 {
            return Err(ApiError::invalid(Code::InvalidBody, "amount", "amount is a whole number of won, at least 1"));
        }
        Ok(ChargeRequest { reference: self.reference, amount: Won(self.amount), method: self.method })
    }
}

/// `POST /v1/charges`
async fn create_charge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<ChargeBody>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let request = body.parse()?;
    state.faults.before().await?;
    let rules = state.rules;
    let outcome = state.db.write(move |tx| charge(tx, rules, key, request)).await?;
    if let ChargeOutcome::Created(c) = &outcome {
        tracing::info!(charge.id = %c.id, charge.reference = %c.reference, charge.status = c.status.as_str(), "charged");
    }
    state.faults.after().await?;
    Ok(outcome.into_response())
}

enum ChargeOutcome {
    Created(Charge),
    Replayed(Charge),
    Voided(VoidedKey),
}

/// A charge call's answer for a key a refund voided first: the request echoed, nothing charged.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VoidedKey {
    id: Option<Uuid>,
    key: String,
    reference: Uuid,
    amount: Won,
    method: PaymentMethod,
    status: ChargeStatus,
    decline_code: Option<PaymentDecline>,
    refunded: Won,
    /// When the key was voided, unix ms.
    created_at: i64,
}

impl IntoResponse for ChargeOutcome {
    fn into_response(self) -> Response {
        match self {
            ChargeOutcome::Created(c) => (StatusCode::CREATED, Json(c)).into_response(),
            ChargeOutcome::Replayed(c) => replayed(Json(c)),
            ChargeOutcome::Voided(v) => (StatusCode::OK, Json(v)).into_response(),
        }
    }
}

/// The verdict and its row, in the caller's transaction. The insert comes first and the key's
/// UNIQUE constraint decides whether this call is the one that charges.
fn charge(tx: &Transaction<'_>, rules: Rules, key: String, request: ChargeRequest) -> Result<ChargeOutcome, ApiError> {
    let decline = rules.decide(request.reference, request.amount, request.method).err();
    let charge = Charge {
        id: Uuid::now_v7(),
        key,
        reference: request.reference,
        amount: request.amount,
        method: request.method,
        status: if decline.is_some() { ChargeStatus::Declined } else { ChargeStatus::Succeeded },
        decline_code: decline,
        refunded: Won(0),
        created_at: now_ms(),
    };
    if store::insert_charge(tx, &charge)? {
        return Ok(ChargeOutcome::Created(charge));
    }
    match store::find_key(tx, &charge.key)? {
        Some(KeyState::Charged(earlier)) if earlier.request() == request => Ok(ChargeOutcome::Replayed(earlier)),
        Some(KeyState::Charged(earlier)) => Err(reused(format!(
            "this Idempotency-Key already made charge {} with a different reference, amount or method",
            earlier.id
        ))),
        Some(KeyState::Voided { at }) => Ok(ChargeOutcome::Voided(VoidedKey {
            id: None,
            key: charge.key,
            reference: request.reference,
            amount: request.amount,
            method: request.method,
            status: ChargeStatus::Voided,
            decline_code: None,
            refunded: Won(0),
            created_at: at,
        })),
        None => Err(ApiError::internal("a charge key conflicted with no row")),
    }
}

/// The body of `POST /v1/refunds`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RefundBody {
    charge_key: String,
}

/// `POST /v1/refunds`
async fn create_refund(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<RefundBody>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let charge_key = parse_key(body.charge_key.as_bytes())
        .map_err(|detail| ApiError::invalid(Code::InvalidBody, "chargeKey", detail))?;
    state.faults.before().await?;
    let outcome = state.db.write(move |tx| refund(tx, key, charge_key)).await?;
    let response = match outcome {
        RefundOutcome::Created(r) => {
            tracing::info!(refund.id = %r.id, refund.status = r.status.as_str(), refund.amount = r.amount.0, "refund recorded");
            (StatusCode::CREATED, Json(r)).into_response()
        }
        RefundOutcome::Replayed(r) => replayed(Json(r)),
    };
    state.faults.after().await?;
    Ok(response)
}

enum RefundOutcome {
    Created(Refund),
    Replayed(Refund),
}

/// Gives back the charge under `charge_key` in full, once; a key that holds no charge yet is
/// voided, so a charge arriving after its refund (a reordered retry) can never take money.
fn refund(tx: &Transaction<'_>, key: String, charge_key: String) -> Result<RefundOutcome, ApiError> {
    // The immediate transaction serialises refunds, so this read is not racy; the refund key's
    // UNIQUE constraint stays the last word below.
    if let Some(earlier) = store::find_refund(tx, &key)? {
        if earlier.charge_key != charge_key {
            return Err(reused(format!("this Idempotency-Key already refunded charge key {:?}", earlier.charge_key)));
        }
        return Ok(RefundOutcome::Replayed(earlier));
    }
    let now = now_ms();
    let (charge_id, amount, status) = match store::find_key(tx, &charge_key)? {
        None => {
            store::insert_void(tx, &charge_key, now)?;
            (None, Won(0), RefundStatus::NothingToRefund)
        }
        Some(KeyState::Voided { .. }) => (None, Won(0), RefundStatus::NothingToRefund),
        Some(KeyState::Charged(c)) if c.status == ChargeStatus::Declined => {
            (Some(c.id), Won(0), RefundStatus::NothingToRefund)
        }
        Some(KeyState::Charged(c)) if c.refunded.0 > 0 => {
            return Err(ApiError::new(Code::AlreadyRefunded, format!("charge {} was refunded already", c.id)));
        }
        Some(KeyState::Charged(c)) => (Some(c.id), c.amount, RefundStatus::Refunded),
    };
    let refund = Refund { id: Uuid::now_v7(), key, charge_key, charge_id, amount, status, created_at: now };
    if !store::insert_refund(tx, &refund)? {
        return Err(ApiError::internal("a refund key appeared inside an immediate transaction"));
    }
    Ok(RefundOutcome::Created(refund))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

/// One ledger row: its position and the charge.
#[derive(Debug, Serialize)]
struct LedgerItem {
    seq: i64,
    #[serde(flatten)]
    charge: Charge,
}

#[derive(Debug, Serialize)]
struct LedgerPage {
    items: Vec<LedgerItem>,
    /// The `after` of the next page; `null` when this page was the last.
    next: Option<i64>,
}

/// `GET /v1/charges?after=&limit=`
async fn list_charges(State(db): State<Db>, Query(query): Query<LedgerQuery>) -> Result<Json<LedgerPage>, ApiError> {
    let after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid(Code::InvalidQuery, "after", "after is a ledger position, 0 or more"));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(Code::InvalidQuery, "limit", format!("limit is 1 to {MAX_PAGE}")));
    }
    let rows = db.read(move |c| store::list_charges(c, after, limit)).await?;
    let next = if rows.len() == limit as usize { rows.last().map(|(seq, _)| *seq) } else { None };
    let items = rows.into_iter().map(|(seq, charge)| LedgerItem { seq, charge }).collect();
    Ok(Json(LedgerPage { items, next }))
}

/// `GET /v1/faults`
async fn get_faults(State(faults): State<Faults>) -> Json<FaultsView> {
    Json(faults.view())
}

/// `PUT /v1/faults`
async fn put_faults(
    State(faults): State<Faults>,
    Json(update): Json<FaultsUpdate>,
) -> Result<Json<FaultsView>, ApiError> {
    faults.update(&update).map(Json)
}

/// The `Idempotency-Key` header: exactly one, 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let required = |detail: &str| ApiError::invalid(Code::IdempotencyKeyRequired, "Idempotency-Key", detail);
    match (values.next(), values.next()) {
        (Some(value), None) => parse_key(value.as_bytes()).map_err(required),
        (None, _) => Err(required("send an Idempotency-Key header")),
        (Some(_), Some(_)) => Err(required("send one Idempotency-Key header, not several")),
    }
}

/// An idempotency key from raw bytes (header values need not be UTF-8).
fn parse_key(raw: &[u8]) -> Result<String, &'static str> {
    if raw.is_empty() || raw.len() > MAX_KEY_LEN {
        return Err("an idempotency key has 1 to 255 characters");
    }
    if !raw.iter().all(u8::is_ascii_graphic) {
        return Err("an idempotency key is visible ASCII (no spaces, no control characters)");
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

fn reused(detail: String) -> ApiError {
    ApiError::new(Code::IdempotencyKeyReused, detail)
}

/// A 200 with the stored body and `Idempotent-Replayed: true`.
fn replayed(body: impl IntoResponse) -> Response {
    (StatusCode::OK, [(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"))], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotency_key_is_1_to_255_visible_ascii_characters() {
        for good in ["k", "order-0193:charge", &"x".repeat(255)] {
            assert_eq!(parse_key(good.as_bytes()).as_deref(), Ok(good));
        }
        for bad in ["", " ", "a b", "tab\t", "é", &"x".repeat(256)] {
            assert!(parse_key(bad.as_bytes()).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_missing_or_doubled_header_is_idempotency_key_required() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap_err().code(), Code::IdempotencyKeyRequired);
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        assert_eq!(idempotency_key(&headers).unwrap(), "a");
        headers.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert_eq!(idempotency_key(&headers).unwrap_err().code(), Code::IdempotencyKeyRequired);
    }
}
