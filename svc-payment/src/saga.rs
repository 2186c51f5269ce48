//! svc-payment's part of the order saga: it reacts to `stock.reserved` alone.
//!
//! | consumed         | emitted (same transaction as the payment row)                   |
//! |------------------|-----------------------------------------------------------------|
//! | `stock.reserved` | `payment.completed`, or `payment.failed` with the decline reason |
//!
//! An order is charged at most once: a `stock.reserved` for an order that already has a payment
//! (a redelivery, a re-publish under a new message id, or a second event for the same order)
//! changes nothing and emits nothing.

use common::{
    Envelope, Event, EventType,
    consumer::{Handler, HandlerError},
    db::now_ms,
    event::StockReserved,
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
        &[EventType::StockReserved]
    }

    fn handle(&self, tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::StockReserved(reserved) => on_stock_reserved(&self.gateway, tx, envelope, reserved),
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
