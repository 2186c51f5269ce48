//! svc-product's part of the order saga: one match over the events its consumer receives, one
//! `on_<event>` function each. Each runs inside the consumer's transaction, next to the dedupe row,
//! and appends its follow-up event to the outbox in that same transaction.
//!
//! | consumed            | emitted                                                                  |
//! |---------------------|--------------------------------------------------------------------------|
//! | `order.created`     | `stock.reserved`, or `stock.rejected` (OUT_OF_STOCK / PRODUCT_NOT_FOUND) |
//! | `payment.failed`    | `stock.released` (PAYMENT_FAILED) if stock is held for the order         |
//! | `payment.cancelled` | `stock.released` (PAYMENT_CANCELLED) if stock is held for the order      |
//! | `order.failed`      | `stock.released` (ORDER_FAILED) if stock is held for the order           |
//! | `order.expired`     | `stock.released` (ORDER_EXPIRED) if stock is held for the order          |
//!
//! An order that failed or expired is remembered as closed: its `order.created`, should it arrive
//! after that (a redelivery), reserves nothing and gets no answer, as nobody waits for one.
//!
//! The processed table drops a redelivered event id; the reservation row keyed by order id makes
//! each reaction idempotent on business grounds too (a new event id for the same order changes
//! nothing). No reaction assumes an arrival order: each reads the reservation's state first.

use common::{
    Envelope, Event, EventType,
    consumer::{Handler, HandlerError},
    event::{
        OrderCreated, OrderExpired, OrderFailed, PaymentCancelled, PaymentFailed, ReleaseReason, StockRejected,
        StockRejection, StockReleased, StockReserved,
    },
    outbox,
};
use rusqlite::Transaction;
use uuid::Uuid;

use crate::{
    SERVICE,
    domain::{Decision, Quantity, decide},
    store,
};

/// svc-product's reactions: its durable consumer `svc-product` receives exactly these events.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saga;

impl Handler for Saga {
    fn name(&self) -> &'static str {
        SERVICE
    }

    fn consumes(&self) -> &'static [EventType] {
        &[
            EventType::OrderCreated,
            EventType::PaymentFailed,
            EventType::PaymentCancelled,
            EventType::OrderFailed,
            EventType::OrderExpired,
        ]
    }

    fn handle(&self, tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::OrderCreated(e) => on_order_created(tx, envelope, e),
            Event::PaymentFailed(e) => on_payment_failed(tx, envelope, e),
            Event::PaymentCancelled(e) => on_payment_cancelled(tx, envelope, e),
            Event::OrderFailed(e) => on_order_failed(tx, envelope, e),
            Event::OrderExpired(e) => on_order_expired(tx, envelope, e),
            _ => Err(HandlerError::unhandled(SERVICE, envelope)),
        }
    }
}

/// Reserves stock for a new order, or records why not. Every order gets exactly one answer.
fn on_order_created(tx: &Transaction<'_>, cause: &Envelope, e: &OrderCreated) -> Result<(), HandlerError> {
    let quantity =
        Quantity::new(e.quantity).ok_or_else(|| HandlerError::Reject("order.created asks for 0 units".into()))?;
    if let Some(answered) = store::find_reservation(tx, e.order_id)? {
        let status = answered.status.as_str();
        tracing::info!(order.id = %e.order_id, status, "order already answered; nothing to do");
        return Ok(());
    }
    if let Some(reason) = common::closed::reason(tx, e.order_id)? {
        tracing::info!(order.id = %e.order_id, reason, "order closed before its stock was asked for; nothing reserved");
        return Ok(());
    }
    let product = store::find_product(tx, e.product_id)?;
    let decision = match decide(product.as_ref(), quantity).map_err(|err| HandlerError::Reject(err.to_string()))? {
        // The guarded UPDATE is the authority, not the read before it. Inside this immediate
        // transaction both agree; should they not, refusing is the safe answer.
        Decision::Reserve { product, .. } if !store::take_stock(tx, product.id, quantity)? => {
            Decision::Reject(StockRejection::OutOfStock)
        }
        decision => decision,
    };
    store::insert_reservation(tx, e.order_id, e.product_id, quantity, decision)?;

    let answer = match decision {
        Decision::Reserve { product, unit_price, amount } => {
            tracing::debug!(
                order.id = %e.order_id, product.id = %product.id, quantity = quantity.get(), %amount,
                "stock reserved"
            );
            Event::StockReserved(StockReserved {
                order_id: e.order_id,
                product_id: product.id,
                quantity: quantity.get(),
                unit_price,
                amount,
                seller_id: product.seller_id,
                category: product.category.clone(),
                user_id: e.user_id,
                payment_method: e.payment_method,
            })
        }
        Decision::Reject(reason) => {
            tracing::debug!(
                order.id = %e.order_id, product.id = %e.product_id, quantity = quantity.get(), ?reason,
                "stock rejected"
            );
            Event::StockRejected(StockRejected {
                order_id: e.order_id,
                product_id: e.product_id,
                quantity: quantity.get(),
                reason,
            })
        }
    };
    outbox::append(tx, &Envelope::caused_by(SERVICE, cause, answer))?;
    Ok(())
}

/// The payment was declined: give the held stock back.
fn on_payment_failed(tx: &Transaction<'_>, cause: &Envelope, e: &PaymentFailed) -> Result<(), HandlerError> {
    release(tx, cause, e.order_id, ReleaseReason::PaymentFailed)
}

/// The payment was refunded: give the held stock back.
fn on_payment_cancelled(tx: &Transaction<'_>, cause: &Envelope, e: &PaymentCancelled) -> Result<(), HandlerError> {
    release(tx, cause, e.order_id, ReleaseReason::PaymentCancelled)
}

/// The order failed: give the held stock back, and reserve none for it later.
fn on_order_failed(tx: &Transaction<'_>, cause: &Envelope, e: &OrderFailed) -> Result<(), HandlerError> {
    close(tx, cause, e.order_id, ReleaseReason::OrderFailed)
}

/// The order passed its deadline: give the held stock back, and reserve none for it later.
fn on_order_expired(tx: &Transaction<'_>, cause: &Envelope, e: &OrderExpired) -> Result<(), HandlerError> {
    close(tx, cause, e.order_id, ReleaseReason::OrderExpired)
}

fn close(tx: &Transaction<'_>, cause: &Envelope, order_id: Uuid, reason: ReleaseReason) -> Result<(), HandlerError> {
    common::closed::close(tx, order_id, reason.as_str())?;
    release(tx, cause, order_id, reason)
}

/// Releases the order's reservation exactly once: only a RESERVED one, flipped to RELEASED in the
/// same transaction that puts the units back and announces `stock.released`. Anything else (no
/// reservation, rejected, already released) is a repeat or an out-of-order event: log and ignore.
fn release(tx: &Transaction<'_>, cause: &Envelope, order_id: Uuid, reason: ReleaseReason) -> Result<(), HandlerError> {
    let Some(reservation) = store::find_reservation(tx, order_id)? else {
        tracing::info!(order.id = %order_id, ?reason, "no reservation for this order; nothing to release");
        return Ok(());
    };
    if !reservation.status.can_release() || !store::mark_released(tx, order_id, reason.as_str())? {
        let status = reservation.status.as_str();
        tracing::info!(order.id = %order_id, status, ?reason, "reservation not held; nothing to release");
        return Ok(());
    }
    if !store::add_stock(tx, reservation.product_id, reservation.quantity)? {
        // Products are never deleted, so this is corrupt state: no retry will fix it.
        return Err(HandlerError::Reject(format!("reserved product {} no longer exists", reservation.product_id)));
    }
    tracing::debug!(
        order.id = %order_id, product.id = %reservation.product_id, quantity = reservation.quantity.get(), ?reason,
        "stock released"
    );
    let released = Event::StockReleased(StockReleased {
        order_id,
        product_id: reservation.product_id,
        quantity: reservation.quantity.get(),
        reason,
    });
    outbox::append(tx, &Envelope::caused_by(SERVICE, cause, released))?;
    Ok(())
}
