//! `POST /orders`: store the order and its `order.created` in one transaction, then answer at once
//! (`202`) or, with `Prefer: wait=N`, when the saga has ended or N seconds have passed.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use common::{
    Envelope, Event,
    auth::AuthUser,
    db::Db,
    event::OrderFailure,
    http::{ApiError, Code, Json},
    openapi::Problem,
    outbox,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{invalid, location, wait};
use crate::{
    SERVICE,
    app::AppState,
    domain::{IdempotencyKey, InvalidInput, NewOrder, Order, OrderStatus},
    store,
};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The request body, as loosely typed as JSON itself: a field of the wrong JSON type is reported
/// by [`NewOrder::parse`] as that field's problem (422 naming it), not as an unreadable body. An
/// unknown field (a misspelt `productID`, say) is a 422 `INVALID_BODY` naming it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"productId": "01938000-0000-7000-8000-000000000103", "quantity": 2, "paymentMethod": "CARD"}))]
pub struct CreateOrderBody {
    #[schema(value_type = String, format = Uuid)]
    pub product_id: serde_json::Value,
    /// 1 to 100.
    #[schema(value_type = u32)]
    pub quantity: serde_json::Value,
    #[schema(value_type = common::PaymentMethod)]
    pub payment_method: serde_json::Value,
}

impl CreateOrderBody {
    fn parse(&self) -> Result<NewOrder, InvalidInput> {
        // A non-string is as wrong as an empty string, and is reported with the same rule.
        fn text(v: &serde_json::Value) -> &str {
            v.as_str().unwrap_or_default()
        }
        NewOrder::parse(text(&self.product_id), &self.quantity, text(&self.payment_method))
    }
}

/// Place an order: it starts the saga (`order.created`).
///
/// Answers at once with 202, or with `Prefer: wait=N` once the saga has ended (201 paid, a problem
/// naming the failure) or N seconds have passed (202). Every answer about the order has its
/// `Location`, and every answer after a wait its `Preference-Applied`. An order stored but not
/// read again while waiting is answered 202 as placed: a client without an `Idempotency-Key`
/// would retry an error into a second order.
#[utoipa::path(post, path = "/orders", tag = "svc-order", security(("bearer" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 100 printable ASCII characters (space \
         included), sent at most once; per user: a retry with the same key and body answers with the order placed \
         first (by the same rules as a first request), the same key with another body is 422 `IDEMPOTENCY_KEY_REUSED`"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` (RFC 7240; seconds, taken as at most 30): answer \
         once the saga has ended or N seconds have passed. Other preferences, and an invalid `wait`, are ignored"),
    ),
    request_body = CreateOrderBody,
    responses(
        (status = 201, description = "Waited: the order is `PAID` (or since `CANCELLED`)", body = Order,
         headers(("Location" = String, description = "`/orders/{id}`"),
                 ("Preference-Applied" = String, description = "`wait=N`, N as taken (at most 30)"))),
        (status = 202, description = "The order, its saga running (or, for a retry without `Prefer: wait`, as it \
         stands)", body = Order,
         headers(("Location" = String, description = "`/orders/{id}`"),
                 ("Preference-Applied" = String, description = "`wait=N`, when it waited"))),
        (status = 400, description = "`INVALID_IDEMPOTENCY_KEY`: empty, over 100 bytes, not printable ASCII, or sent \
         twice (or a malformed body)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "Waited: `PAYMENT_DECLINED`, the detail naming the gateway's reason (`orderId`)",
         body = Problem, content_type = "application/problem+json", headers(
             ("Location" = String, description = "`/orders/{id}`"),
             ("Preference-Applied" = String, description = "`wait=N`"))),
        (status = 404, description = "Waited: `PRODUCT_NOT_FOUND` (`orderId`)", body = Problem,
         content_type = "application/problem+json", headers(
             ("Location" = String, description = "`/orders/{id}`"),
             ("Preference-Applied" = String, description = "`wait=N`"))),
        (status = 409, description = "Waited: `OUT_OF_STOCK`, or `ORDER_EXPIRED` when the deadline is shorter than the \
         wait (`orderId`)", body = Problem, content_type = "application/problem+json", headers(
             ("Location" = String, description = "`/orders/{id}`"),
             ("Preference-Applied" = String, description = "`wait=N`"))),
        (status = 422, description = "`INVALID_PRODUCT_ID`, `INVALID_QUANTITY`, `INVALID_PAYMENT_METHOD` (`field`), \
         `IDEMPOTENCY_KEY_REUSED` or `INVALID_BODY`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_order(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Json(body): Json<CreateOrderBody>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let wait = wait::requested(&headers);
    let new = body.parse().map_err(invalid)?;
    let (order, placed) = place(&state.db, user.id, new, key, state.deadline).await?;
    if placed {
        metrics::counter!(common::metrics::SAGA_STARTED, "service" => SERVICE).increment(1);
    }
    let Some(wait) = wait else {
        return Ok(accepted(order));
    };
    let order = wait::until_settled(&state, order, wait).await;
    Ok(wait::applied(wait, outcome(order)))
}

/// The `Idempotency-Key` header, if sent (once).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => IdempotencyKey::parse(value.as_bytes()).map(Some).map_err(invalid),
        (Some(_), Some(_)) => Err(invalid(InvalidInput::IdempotencyKey("send at most one Idempotency-Key"))),
    }
}

/// Stores a new PENDING order with its `order.created`, or finds the order an earlier request
/// with the same key placed (`false`: nothing new). The UNIQUE (user, key) constraint decides,
/// inside the transaction.
async fn place(
    db: &Db,
    user: Uuid,
    new: NewOrder,
    key: Option<IdempotencyKey>,
    deadline: std::time::Duration,
) -> Result<(Order, bool), ApiError> {
    db.write(move |tx| {
        let order = Order::place(Uuid::now_v7(), user, new, common::db::now(), deadline);
        if store::insert_order(tx, &order, key.as_ref())? {
            outbox::append(tx, &Envelope::new(SERVICE, Event::OrderCreated(order.created_event())))?;
            tracing::debug!(order.id = %order.id, user.id = %user, "order placed");
            return Ok((order, true));
        }
        // Not inserted: with fresh UUIDv7 ids only the key can have collided.
        let key = key.ok_or_else(|| ApiError::internal("an order without an idempotency key was not inserted"))?;
        let earlier = store::find_by_idempotency_key(tx, user, &key)?
            .ok_or_else(|| ApiError::internal("an idempotency key collided with no order"))?;
        if !new.matches(&earlier) {
            return Err(ApiError::new(
                Code::IdempotencyKeyReused,
                format!("this Idempotency-Key already placed order {} with a different body", earlier.id),
            ));
        }
        tracing::info!(order.id = %earlier.id, "idempotent retry: the order placed earlier is returned");
        Ok((earlier, false))
    })
    .await
}

/// `202 Accepted`: the order as it stands, and where to follow it.
fn accepted(order: Order) -> Response {
    with_location(order.id, (StatusCode::ACCEPTED, Json(order)).into_response())
}

/// The answer after waiting: `201` for a paid (or since cancelled) order, a problem naming the
/// failure for a failed one, `202` when the saga is still running.
fn outcome(order: Order) -> Response {
    let id = order.id;
    let res = match order.status {
        OrderStatus::Pending | OrderStatus::StockReserved => return accepted(order),
        OrderStatus::Paid | OrderStatus::Cancelled => (StatusCode::CREATED, Json(order)).into_response(),
        OrderStatus::Failed => failure(&order).into_response(),
        OrderStatus::Expired => expired(&order).into_response(),
    };
    with_location(id, res)
}

/// The problem for a failed order. It carries the `orderId` (and `Location`), so the client can
/// still read the order it placed.
fn failure(order: &Order) -> ApiError {
    let id = order.id;
    let problem = match order.failure_reason {
        Some(OrderFailure::OutOfStock) => ApiError::new(
            Code::OutOfStock,
            format!("order {id} failed: product {} has fewer than {} in stock", order.product_id, order.quantity.get()),
        ),
        Some(OrderFailure::ProductNotFound) => ApiError::new(
            Code::ProductNotFound,
            format!("order {id} failed: product {} does not exist", order.product_id),
        ),
        Some(OrderFailure::PaymentDeclined) => ApiError::new(
            Code::PaymentDeclined,
            format!(
                "order {id} failed: the payment was declined ({})",
                order.failure_detail.as_deref().unwrap_or("no reason given")
            ),
        ),
        None => return ApiError::internal(format!("order {id} is FAILED without a reason")),
    };
    problem.with_member("orderId", id.to_string())
}

/// The problem for an order that expired while the request waited (only with a wait longer
/// than the deadline). Nothing is charged and the stock is back, or will be shortly.
fn expired(order: &Order) -> ApiError {
    let after = (order.deadline_at - order.created_at).whole_seconds();
    ApiError::new(
        Code::OrderExpired,
        format!("order {} expired: its saga did not end within {after} s; nothing is kept charged", order.id),
    )
    .with_member("orderId", order.id.to_string())
}

fn with_location(order: Uuid, mut res: Response) -> Response {
    res.headers_mut().insert(header::LOCATION, header_value(&location(order)));
    res
}

fn header_value(s: &str) -> HeaderValue {
    // Built from UUIDs, digits and ASCII words only.
    HeaderValue::from_str(s).expect("a valid header value")
}

#[cfg(test)]
mod tests {
    use common::{PaymentMethod, auth::Verifier};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::{
        domain::{Quantity, Wait},
        waiters::Waiters,
    };

    fn state(db: Db) -> AppState {
        AppState {
            db,
            verifier: Verifier::new(),
            waiters: Waiters::default(),
            stop: CancellationToken::new(),
            deadline: std::time::Duration::from_secs(600),
        }
    }

    fn placed() -> Order {
        let new = NewOrder {
            product_id: Uuid::now_v7(),
            quantity: Quantity::new(2).unwrap(),
            payment_method: PaymentMethod::Card,
        };
        Order::place(Uuid::now_v7(), Uuid::now_v7(), new, common::db::now(), std::time::Duration::from_secs(600))
    }

    /// The answer `POST /orders` with `Prefer: wait=5` gives once its order was committed.
    async fn answer_after_waiting(db: Db, placed: Order) -> Response {
        let wait = Wait::from_prefer(["wait=5"]).unwrap();
        outcome(wait::until_settled(&state(db), placed, wait).await)
    }

    async fn assert_accepted_as_placed(res: Response, placed: &Order) {
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(res.headers()[header::LOCATION], format!("/orders/{}", placed.id));
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap(), serde_json::to_value(placed).unwrap());
    }

    #[tokio::test]
    async fn an_order_that_cannot_be_read_again_while_waiting_is_answered_202_as_placed() {
        let dir = tempfile::tempdir().unwrap();
        // No orders table: every re-read fails.
        let broken = Db::open(&dir.path().join("svc-order.db"), &[]).await.unwrap();
        let placed = placed();

        let res = answer_after_waiting(broken, placed.clone()).await;

        assert_accepted_as_placed(res, &placed).await;
    }

    #[tokio::test]
    async fn an_order_that_vanished_while_waiting_is_answered_202_as_placed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("svc-order.db"), crate::app::MIGRATIONS).await.unwrap();
        let placed = placed(); // never stored: as if deleted after its commit

        let res = answer_after_waiting(db, placed.clone()).await;

        assert_accepted_as_placed(res, &placed).await;
    }
}
