//! svc-payment's part of the order saga: it charges reserved orders, and gives the money back of
//! orders that end unpaid.
//!
//! | consumed         | emitted (same transaction as the payment row)                               |
//! |------------------|-----------------------------------------------------------------------------|
//! | `stock.reserved` | `payment.completed`, or `payment.failed` with the decline reason; nothing   |
//! |                  | for an order already closed                                                 |
//! | `order.failed`   | `payment.cancelled` (a full refund) if the order's payment is completed     |
//! | `order.expired`  | `payment.cancelled` (a full refund) if the order's payment is completed     |
//!
//! The gateway is a remote service: every call to it happens in [`Handler::prepare`], before the
//! consumer's transaction and outside it, so no network wait holds the database's writer; its
//! answer is then committed with the dedupe row (the transaction re-checks what the call
//! assumed). Calls carry idempotency keys derived from the order, so a call repeated after a
//! crash, a timeout or a lost answer charges or refunds nothing more. While the gateway cannot be
//! reached the reaction fails transiently and the event comes back later: a charge is postponed,
//! never declined for it, and the order's deadline bounds the wait.
//!
//! An order is charged at most once: a `stock.reserved` for an order that already has a payment
//! (a redelivery, a re-publish under a new message id, or a second event for the same order)
//! changes nothing and emits nothing. An order that fails or expires is remembered as closed, so
//! whichever arrives first, its charge or its end, no money is kept for it: a charge already made
//! is refunded when the order closes, and one asked for after that is never made.

use common::{
    Envelope, Event, EventType,
    consumer::{BoxFuture, Effect, Handler, HandlerError},
    db::{Db, now_ms},
    event::StockReserved,
    outbox,
};
use rusqlite::Transaction;
use uuid::Uuid;

use crate::{
    SERVICE,
    domain::{Charge, Payment, PaymentStatus},
    gateway::{ChargeAnswer, Gateway, GatewayError, RefundAnswer},
    store,
};

/// The consumer's handler: the gateway it charges through.
#[derive(Debug, Clone)]
pub struct Saga {
    gateway: Gateway,
}

impl Saga {
    pub fn new(gateway: Gateway) -> Self {
        Saga { gateway }
    }
}

impl Handler for Saga {
    fn name(&self) -> &'static str {
        SERVICE
    }

    fn consumes(&self) -> &'static [EventType] {
        &[EventType::StockReserved, EventType::OrderFailed, EventType::OrderExpired]
    }

    /// Asks the gateway, then returns the reaction that records its answer.
    fn prepare<'a>(
        &'a self,
        db: &'a Db,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<Option<Effect>, HandlerError>> {
        Box::pin(async move {
            let cause = envelope.clone();
            let effect: Effect = match &envelope.event {
                Event::StockReserved(reserved) => {
                    let answer = ask_charge(&self.gateway, db, reserved).await?;
                    let reserved = reserved.clone();
                    Box::new(move |tx| on_stock_reserved(tx, &cause, &reserved, answer))
                }
                Event::OrderFailed(e) => {
                    let refund = ask_refund(&self.gateway, db, e.order_id).await?;
                    let order = e.order_id;
                    Box::new(move |tx| close(tx, &cause, order, refund))
                }
                Event::OrderExpired(e) => {
                    let refund = ask_refund(&self.gateway, db, e.order_id).await?;
                    let order = e.order_id;
                    Box::new(move |tx| close(tx, &cause, order, refund))
                }
                _ => return Err(HandlerError::unhandled(SERVICE, envelope)),
            };
            Ok(Some(effect))
        })
    }

    /// The reactions without the gateway's answer: they apply what needs none (a duplicate, a
    /// closed order) and fail transiently otherwise. The consumer always prepares first.
    fn handle(&self, tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::StockReserved(reserved) => on_stock_reserved(tx, envelope, reserved, None),
            Event::OrderFailed(e) => close(tx, envelope, e.order_id, None),
            Event::OrderExpired(e) => close(tx, envelope, e.order_id, None),
            _ => Err(HandlerError::unhandled(SERVICE, envelope)),
        }
    }
}

/// The gateway's verdict on the reserved order, or `None` when it must not be charged (it has a
/// payment already, or it is closed).
async fn ask_charge(
    gateway: &Gateway,
    db: &Db,
    reserved: &StockReserved,
) -> Result<Option<ChargeAnswer>, HandlerError> {
    let order = reserved.order_id;
    let settled = db.lookup(|c| {
        Ok::<_, rusqlite::Error>(
            store::find_payment_by_order(c, order)?.is_some() || common::closed::reason(c, order)?.is_some(),
        )
    })?;
    if settled {
        return Ok(None);
    }
    let answer = gateway.charge(order, reserved.amount, reserved.payment_method).await.map_err(gateway_error)?;
    Ok(Some(answer))
}

/// What the gateway refunded for the closing order, or `None` when there is nothing to ask: the
/// order was closed before, or its payment failed or was refunded already. With no payment at all
/// the gateway is still asked, because a charge may have gone through whose answer never came
/// back: the refund takes it back, or voids the key so it can never succeed.
async fn ask_refund(gateway: &Gateway, db: &Db, order: Uuid) -> Result<Option<RefundAnswer>, HandlerError> {
    let (closed, payment) = db.lookup(|c| {
        Ok::<_, rusqlite::Error>((common::closed::reason(c, order)?.is_some(), store::find_payment_by_order(c, order)?))
    })?;
    let holds_money = match payment {
        Some(p) => p.status == PaymentStatus::Completed,
        None => !closed,
    };
    if !holds_money {
        return Ok(None);
    }
    Ok(Some(gateway.refund(order).await.map_err(gateway_error)?))
}

fn gateway_error(e: GatewayError) -> HandlerError {
    // Both are retried: an outage passes, and a refusal is a bug a redeploy fixes; neither may
    // lose the event or decide the order.
    HandlerError::Transient(e.into())
}

/// Records the verdict on the reserved order once and announces it.
fn on_stock_reserved(
    tx: &Transaction<'_>,
    envelope: &Envelope,
    reserved: &StockReserved,
    answer: Option<ChargeAnswer>,
) -> Result<(), HandlerError> {
    let charge = Charge::from(reserved);
    if let Some(existing) = store::find_payment_by_order(tx, charge.order_id)? {
        let (order, id) = (charge.order_id, existing.id);
        tracing::info!(order.id = %order, payment.id = %id, "order already has a payment; nothing to do");
        return Ok(());
    }
    if common::closed::reason(tx, charge.order_id)?.is_some() {
        tracing::info!(order.id = %charge.order_id, "order closed before it was charged; not charging");
        return Ok(());
    }
    let verdict = match answer {
        Some(ChargeAnswer::Succeeded) => Ok(()),
        Some(ChargeAnswer::Declined(reason)) => Err(reason),
        Some(ChargeAnswer::Voided) => {
            // Only a refund of this order voids its key, and that closes the order first: seen
            // here, the close is still to come (a replayed or re-published event). Nothing was
            // charged; nothing is announced.
            tracing::warn!(order.id = %charge.order_id, "the gateway voided this order's charge; nothing charged");
            return Ok(());
        }
        None => return Err(HandlerError::Transient(anyhow::anyhow!("the gateway's verdict is missing"))),
    };
    let (payment, event) = Payment::settle(Uuid::now_v7(), charge, verdict, now_ms());
    if !store::insert_payment(tx, &payment)? {
        // Unreachable while the check above runs in the same immediate transaction; the unique
        // index is the guarantee should that ever change.
        return Ok(());
    }
    outbox::append(tx, &Envelope::caused_by(SERVICE, envelope, event))?;
    let (order, id) = (payment.charge.order_id, payment.id);
    match payment.decline_reason {
        None => {
            tracing::debug!(order.id = %order, payment.id = %id, amount = payment.charge.amount.0, "payment completed")
        }
        Some(reason) => tracing::debug!(order.id = %order, payment.id = %id, ?reason, "payment declined"),
    }
    Ok(())
}

/// The order failed or passed its deadline: record the refund the gateway made, if it made one,
/// and charge the order never.
fn close(
    tx: &Transaction<'_>,
    cause: &Envelope,
    order_id: Uuid,
    refund: Option<RefundAnswer>,
) -> Result<(), HandlerError> {
    common::closed::close(tx, order_id, cause.event.event_type())?;
    let Some(payment) = store::find_payment_by_order(tx, order_id)? else {
        tracing::info!(order.id = %order_id, ?refund, "order closed before any charge; none will be made");
        return Ok(());
    };
    // Only a completed payment holds money: a failed one charged nothing, a cancelled one is
    // refunded already (by its payer, or by an earlier close).
    let Ok((refunded, event)) = payment.cancel(now_ms()) else {
        tracing::info!(order.id = %order_id, payment.id = %payment.id, status = ?payment.status, "nothing to refund");
        return Ok(());
    };
    match refund {
        Some(RefundAnswer::Refunded(_)) => {}
        Some(RefundAnswer::NothingToRefund) => {
            // The gateway holds no charge for a payment recorded as completed: the two ledgers
            // disagree, which no retry mends. Loudly, for a person.
            let id = payment.id;
            return Err(HandlerError::Reject(format!("the gateway holds no charge for the completed payment {id}")));
        }
        None => {
            let id = payment.id;
            return Err(HandlerError::Transient(anyhow::anyhow!("the completed payment {id} is not refunded yet")));
        }
    }
    if store::mark_cancelled(tx, &refunded)? {
        outbox::append(tx, &Envelope::caused_by(SERVICE, cause, event))?;
        tracing::debug!(order.id = %order_id, payment.id = %payment.id, amount = payment.charge.amount.0, "refunded: the order ended unpaid");
    }
    Ok(())
}
