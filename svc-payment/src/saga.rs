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
//! An order is charged at most once: a `stock.reserved` for an order that already has a payment
//! (a redelivery, a re-publish under a new message id, or a second event for the same order)
//! changes nothing and emits nothing. An order that fails or expires is remembered as closed, so
//! whichever arrives first, its charge or its end, no money is kept for it: a charge already made
//! is refunded when the order closes, and one asked for after that is never made.

use common::{
    Envelope, Event, EventType,
    consumer::{Handler, HandlerError},
    db::now_ms,
    event::{OrderExpired, OrderFailed, StockReserved},
    outbox,
};
use rusqlite::Transaction;
use uuid::Uuid;

use crate::{
    SERVICE,
    domain::{Charge, Payment},
    gateway::Gateway,
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

    fn handle(&self, tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::StockReserved(reserved) => on_stock_reserved(&self.gateway, tx, envelope, reserved),
            Event::OrderFailed(e) => on_order_failed(tx, envelope, e),
            Event::OrderExpired(e) => on_order_expired(tx, envelope, e),
            _ => Err(HandlerError::unhandled(SERVICE, envelope)),
        }
    }
}

/// Charges the reserved order once and announces the verdict.
fn on_stock_reserved(
    gateway: &Gateway,
    tx: &Transaction<'_>,
    envelope: &Envelope,
    reserved: &StockReserved,
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
    // Inside the write transaction on purpose: the verdict and its row commit together, and the
    // verdict is a pure function of the order, so a retry after a rollback reaches the same one.
    let verdict = gateway.charge(charge.order_id, charge.amount, charge.method);
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
            tracing::info!(order.id = %order, payment.id = %id, amount = payment.charge.amount.0, "payment completed")
        }
        Some(reason) => tracing::info!(order.id = %order, payment.id = %id, ?reason, "payment declined"),
    }
    Ok(())
}

/// The order failed: refund its charge, if one went through, and charge it never.
fn on_order_failed(tx: &Transaction<'_>, cause: &Envelope, e: &OrderFailed) -> Result<(), HandlerError> {
    close(tx, cause, e.order_id)
}

/// The order passed its deadline: refund its charge, if one went through, and charge it never.
fn on_order_expired(tx: &Transaction<'_>, cause: &Envelope, e: &OrderExpired) -> Result<(), HandlerError> {
    close(tx, cause, e.order_id)
}

fn close(tx: &Transaction<'_>, cause: &Envelope, order_id: Uuid) -> Result<(), HandlerError> {
    common::closed::close(tx, order_id, cause.event.event_type())?;
    let Some(payment) = store::find_payment_by_order(tx, order_id)? else {
        tracing::info!(order.id = %order_id, "order closed before any charge; none will be made");
        return Ok(());
    };
    // Only a completed payment holds money: a failed one charged nothing, a cancelled one is
    // refunded already (by its payer, or by an earlier close).
    let Ok((refunded, event)) = payment.cancel(now_ms()) else {
        tracing::info!(order.id = %order_id, payment.id = %payment.id, status = ?payment.status, "nothing to refund");
        return Ok(());
    };
    if store::mark_cancelled(tx, &refunded)? {
        outbox::append(tx, &Envelope::caused_by(SERVICE, cause, event))?;
        tracing::info!(order.id = %order_id, payment.id = %payment.id, amount = payment.charge.amount.0, "refunded: the order ended unpaid");
    }
    Ok(())
}
