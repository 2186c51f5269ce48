//! The HTTP API: payments for their payer and for admins, and the refund (cancel) endpoint.
//!
//! | route                          | answer                                                      |
//! |--------------------------------|-------------------------------------------------------------|
//! | `GET /payments/{id}`           | 200 payment; 404 `PAYMENT_NOT_FOUND`; 401 without a token    |
//! | `GET /payments?orderId=<uuid>` | the same for the order's payment; 400 `INVALID_QUERY`; 421 `WRONG_SHARD` from a shard that does not hold the order |
//! | `POST /payments/{id}/cancel`   | 200 cancelled payment; 409 `ALREADY_CANCELLED`, `PAYMENT_NOT_CANCELLABLE`; 404; 503 `GATEWAY_UNAVAILABLE` |
//! | `GET /admin/payments`          | every payment, paged, oldest first; admins only (403)        |
//! | `GET /admin/gateway`           | the gateway's URL and breaker state; admins only (403)       |
//!
//! A payment the caller may not see answers exactly like a missing one, so ids leak nothing.

use axum::extract::State;
use common::{
    Envelope, PaymentMethod, Role, Won,
    auth::AuthUser,
    bus::Shards,
    db::{Db, from_ms, now_ms},
    event::PaymentDecline,
    http::{ApiError, Code, Json, Path, Query, path_id},
    openapi::{OpenApiRouter, Problem},
    outbox,
    paging::{Page, PageQuery},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    SERVICE,
    app::AppState,
    domain::{CancelRefused, Payment, PaymentStatus},
    gateway::{BreakerState, Gateway, GatewayError, RefundAnswer},
    store,
};

/// svc-payment's routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(common::openapi::routes!(find_by_order))
        .routes(common::openapi::routes!(get_payment))
        .routes(common::openapi::routes!(cancel_payment))
        .routes(common::openapi::routes!(all_payments))
        .routes(common::openapi::routes!(gateway_status))
}

pub fn router(state: AppState) -> OpenApiRouter {
    routes().with_state(state)
}

/// A payment on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount: Won,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_reason: Option<PaymentDecline>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub cancelled_at: Option<OffsetDateTime>,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        PaymentView {
            id: p.id,
            order_id: p.charge.order_id,
            user_id: p.charge.user_id,
            amount: p.charge.amount,
            method: p.charge.method,
            status: p.status,
            decline_reason: p.decline_reason,
            created_at: from_ms(p.created_at_ms),
            updated_at: from_ms(p.updated_at_ms),
            cancelled_at: p.cancelled_at_ms.map(from_ms),
        }
    }
}

/// A payment, for its payer or an admin.
#[utoipa::path(get, path = "/payments/{id}", tag = "svc-payment", security(("bearer" = [])),
    params(("id" = String, Path, description = "The payment's id (a UUID)")),
    responses(
        (status = 200, description = "The payment", body = PaymentView),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`PAYMENT_NOT_FOUND`: none, not the caller's, or not a UUID", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_payment(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    // An id that is not a UUID names no payment: the same 404 as any other.
    let id = path_id(&id, not_found)?;
    let payment = db.read(move |c| store::find_payment(c, id)).await?;
    visible(payment, &user)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ByOrder {
    /// The order whose payment this is.
    order_id: Uuid,
}

/// An order's payment, for its payer or an admin.
#[utoipa::path(get, path = "/payments", tag = "svc-payment", security(("bearer" = [])), params(ByOrder),
    responses(
        (status = 200, description = "The order's payment", body = PaymentView),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`PAYMENT_NOT_FOUND`: none, not the caller's, or not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 421, description = "`WRONG_SHARD`: a sharded instance, and another shard holds the order (the detail names it)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn find_by_order(
    State(db): State<Db>,
    State(shard): State<Option<Shards>>,
    user: AuthUser,
    Query(query): Query<ByOrder>,
) -> Result<Json<PaymentView>, ApiError> {
    let order = query.order_id.to_string();
    if let Some(shard) = shard.filter(|s| !s.owns(&order)) {
        let owner = Shards::of_key(&order, shard.of);
        return Err(ApiError::new(
            Code::WrongShard,
            format!("order {order} is held by shard {owner}/{}, not by this one ({shard})", shard.of),
        ));
    }
    let payment = db.read(move |c| store::find_payment_by_order(c, query.order_id)).await?;
    visible(payment, &user)
}

/// Cancel a completed payment: refunded in full, then `payment.cancelled`.
///
/// `POST /payments/{id}/cancel`: refunds a completed payment in full. The gateway refunds first
/// (under the order's refund key, so a retried cancel or a concurrent close refunds once); then
/// the cancellation and its `payment.cancelled` commit together, and svc-order, svc-product and
/// svc-settlement react to it. A gateway that cannot be reached answers 503 and changes nothing.
#[utoipa::path(post, path = "/payments/{id}/cancel", tag = "svc-payment", security(("bearer" = [])),
    params(("id" = String, Path, description = "The payment's id (a UUID)")),
    responses(
        (status = 200, description = "The payment, `CANCELLED`", body = PaymentView),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`PAYMENT_NOT_FOUND`: none, not the caller's, or not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`ALREADY_CANCELLED`, or `PAYMENT_NOT_CANCELLABLE` (it failed: nothing to refund)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`GATEWAY_UNAVAILABLE`: nothing changed, try again later (or `BUSY`, `REQUEST_TIMEOUT`)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_payment(
    State(db): State<Db>,
    State(gateway): State<Gateway>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    let id = path_id(&id, not_found)?;
    let payment =
        db.read(move |c| store::find_payment(c, id)).await?.filter(|p| p.visible_to(&user)).ok_or_else(not_found)?;
    // Refused before the gateway is bothered when the payment holds no money.
    payment.cancel(now_ms()).map_err(refused)?;
    match gateway.refund(payment.charge.order_id).await {
        Ok(RefundAnswer::Refunded(_)) => {}
        Ok(RefundAnswer::NothingToRefund) => {
            return Err(ApiError::internal("the gateway holds no charge for a completed payment"));
        }
        Err(GatewayError::Unavailable(why)) => {
            tracing::warn!(payment.id = %id, why, "cannot cancel: the payment gateway is unavailable");
            return Err(ApiError::new(
                Code::GatewayUnavailable,
                "the payment gateway cannot be reached; try again later",
            ));
        }
        Err(e @ GatewayError::Refused { .. }) => {
            return Err(ApiError::internal(format!("the payment gateway refused a refund of {id}: {e}")));
        }
    }
    let cancelled = db
        .write(move |tx| {
            let payment = store::find_payment(tx, id)?.ok_or_else(not_found)?;
            let (cancelled, event) = payment.cancel(now_ms()).map_err(refused)?;
            // The immediate transaction already serialises cancels; the guarded update is the
            // last word should that ever change.
            if !store::mark_cancelled(tx, &cancelled)? {
                return Err(refused(CancelRefused::AlreadyCancelled));
            }
            outbox::append(tx, &Envelope::new(SERVICE, event))?;
            Ok::<_, ApiError>(cancelled)
        })
        .await?;
    tracing::info!(payment.id = %cancelled.id, order.id = %cancelled.charge.order_id, "payment cancelled");
    Ok(Json(cancelled.into()))
}

/// `GET /admin/payments?page=&size=`: every payment, oldest first, for audits. Admins only.
#[utoipa::path(get, path = "/admin/payments", tag = "svc-payment", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of payments, oldest first", body = Page<PaymentView>),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
async fn all_payments(
    State(db): State<Db>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<PaymentView>>, ApiError> {
    user.require(&[Role::Admin])?;
    let paging = query.parse()?;
    let (payments, total) = db.read(move |c| store::list_payments(c, paging)).await?;
    Ok(Json(Page::new(payments.into_iter().map(PaymentView::from).collect(), paging, total)))
}

/// The gateway as svc-payment sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct GatewayStatus {
    url: String,
    breaker: BreakerState,
}

/// `GET /admin/gateway`: where the gateway is and whether the breaker lets calls through.
#[utoipa::path(get, path = "/admin/gateway", tag = "svc-payment", security(("bearer" = [])),
    responses(
        (status = 200, description = "The gateway's URL and its breaker's state", body = GatewayStatus),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
async fn gateway_status(State(gateway): State<Gateway>, user: AuthUser) -> Result<Json<GatewayStatus>, ApiError> {
    user.require(&[Role::Admin])?;
    Ok(Json(GatewayStatus { url: gateway.url().to_owned(), breaker: gateway.breaker_state() }))
}

fn refused(reason: CancelRefused) -> ApiError {
    let code = match reason {
        CancelRefused::AlreadyCancelled => Code::AlreadyCancelled,
        CancelRefused::NotCompleted => Code::PaymentNotCancellable,
    };
    ApiError::new(code, reason.to_string())
}

fn visible(payment: Option<Payment>, user: &AuthUser) -> Result<Json<PaymentView>, ApiError> {
    match payment {
        Some(p) if p.visible_to(user) => Ok(Json(p.into())),
        _ => Err(not_found()),
    }
}

fn not_found() -> ApiError {
    ApiError::new(Code::PaymentNotFound, "no such payment")
}
