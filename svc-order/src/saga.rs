//! svc-order's part of the order saga: it follows stock and payment events to move its orders
//! along their state machine, and announces each ending (`order.paid`, `order.failed`,
//! `order.cancelled`). A second consumer records every saga event for the trace endpoint.
//!
//! Every reaction reads the order's state and decides (see [`crate::domain::Transition`]), so
//! duplicates and late events change nothing and announce nothing twice.

use common::{
    Envelope, Event,
    bus::ConsumerSpec,
    consumer::{Handler, HandlerError},
    event::{
        OrderCancelled, OrderCreated, OrderFailed, OrderFailure, OrderPaid, PaymentCancelled, PaymentCompleted,
        PaymentFailed, StockRejected, StockRejection, StockReserved,
    },
    outbox,
};
use rusqlite::Transaction;
use uuid::Uuid;

use crate::{
    SERVICE,
    domain::{Change, NewOrder, Order, Quantity, Transition, decline_code},
    store,
    waiters::Waiters,
};

/// The saga consumer: durable `svc-order`, filtered to exactly the events it reacts to.
pub fn consumer() -> ConsumerSpec {
    ConsumerSpec::new(
        SERVICE,
        &[
            "order.created.*",
            "stock.reserved.*",
            "stock.rejected.*",
            "payment.completed.*",
            "payment.failed.*",
            "payment.cancelled.*",
        ],
    )
}

/// The trace consumer: durable `svc-order-trace`, every order, stock and payment event.
pub fn trace_consumer() -> ConsumerSpec {
    ConsumerSpec::new("svc-order-trace", &["order.>", "stock.>", "payment.>"])
}

/// The saga reactions, plus the wake-up of requests waiting on the order once a reaction is
/// committed.
#[derive(Debug, Clone)]
pub struct Saga {
    waiters: Waiters,
}

impl Saga {
    pub fn new(waiters: Waiters) -> Self {
        Saga { waiters }
    }
}

impl Handler for Saga {
    fn handle(&self, tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::OrderCreated(e) => on_order_created(tx, envelope, e),
            Event::StockReserved(e) => on_stock_reserved(tx, envelope, e),
            Event::StockRejected(e) => on_stock_rejected(tx, envelope, e),
            Event::PaymentCompleted(e) => on_payment_completed(tx, envelope, e),
            Event::PaymentFailed(e) => on_payment_failed(tx, envelope, e),
            Event::PaymentCancelled(e) => on_payment_cancelled(tx, envelope, e),
            _ => Ok(()), // outside the filter: cannot arrive
        }
    }

    fn committed(&self, envelope: &Envelope) {
        // Every saga event's key is its order id. Waking on an event that changed nothing only
        // costs the waiter a re-read.
        if let Ok(order) = Uuid::parse_str(&envelope.event.key()) {
            self.waiters.notify(order);
        }
    }
}

/// Records every event into `saga_events` (idempotent on the event id).
#[derive(Debug, Clone, Copy)]
pub struct Trace;

impl Handler for Trace {
    fn handle(&self, tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        store::insert_saga_event(tx, envelope)?;
        Ok(())
    }
}

/// Our own `order.created` finds its order stored and changes nothing. One published by hand
/// (docs/EVENTS.md shows how) for an order svc-order has never seen creates that order, PENDING,
/// so its owner can follow it like any other.
fn on_order_created(tx: &Transaction<'_>, envelope: &Envelope, e: &OrderCreated) -> Result<(), HandlerError> {
    let quantity = Quantity::new(e.quantity).map_err(|err| HandlerError::Reject(format!("order.created: {err}")))?;
    let new = NewOrder { product_id: e.product_id, quantity, payment_method: e.payment_method };
    let order = Order::place(e.order_id, e.user_id, new, envelope.occurred_at);
    if store::insert_order(tx, &order, None)? {
        tracing::info!(order.id = %e.order_id, user.id = %e.user_id, "order created from an order.created svc-order did not publish");
    }
    Ok(())
}

fn on_stock_reserved(tx: &Transaction<'_>, envelope: &Envelope, e: &StockReserved) -> Result<(), HandlerError> {
    let change = Change::StockReserved { unit_price: e.unit_price, amount: e.amount };
    move_order(tx, envelope, e.order_id, change)?;
    Ok(())
}

fn on_stock_rejected(tx: &Transaction<'_>, envelope: &Envelope, e: &StockRejected) -> Result<(), HandlerError> {
    let reason = match e.reason {
        StockRejection::OutOfStock => OrderFailure::OutOfStock,
        StockRejection::ProductNotFound => OrderFailure::ProductNotFound,
    };
    if move_order(tx, envelope, e.order_id, Change::Failed { reason, detail: None })?.is_some() {
        let failed = OrderFailed { order_id: e.order_id, reason, detail: None };
        emit(tx, envelope, Event::OrderFailed(failed))?;
    }
    Ok(())
}

fn on_payment_completed(tx: &Transaction<'_>, envelope: &Envelope, e: &PaymentCompleted) -> Result<(), HandlerError> {
    if move_order(tx, envelope, e.order_id, Change::Paid { payment_id: e.payment_id })?.is_some() {
        // The amount charged, as the payment service reports it.
        let paid = OrderPaid { order_id: e.order_id, payment_id: e.payment_id, amount: e.amount };
        emit(tx, envelope, Event::OrderPaid(paid))?;
    }
    Ok(())
}

fn on_payment_failed(tx: &Transaction<'_>, envelope: &Envelope, e: &PaymentFailed) -> Result<(), HandlerError> {
    let (reason, detail) = (OrderFailure::PaymentDeclined, Some(decline_code(e.reason).to_owned()));
    if move_order(tx, envelope, e.order_id, Change::Failed { reason, detail: detail.clone() })?.is_some() {
        emit(tx, envelope, Event::OrderFailed(OrderFailed { order_id: e.order_id, reason, detail }))?;
    }
    Ok(())
}

fn on_payment_cancelled(tx: &Transaction<'_>, envelope: &Envelope, e: &PaymentCancelled) -> Result<(), HandlerError> {
    if move_order(tx, envelope, e.order_id, Change::Cancelled)?.is_some() {
        let cancelled = OrderCancelled { order_id: e.order_id, payment_id: e.payment_id, amount: e.amount };
        emit(tx, envelope, Event::OrderCancelled(cancelled))?;
    }
    Ok(())
}

/// Applies `change` to the order if the state machine allows it, and returns the moved order.
/// `None` when there is nothing to do: an ignored change, or an order svc-order does not know
/// (events for such orders are legitimate when people publish sagas by hand, so they are logged
/// and acknowledged, not dead-lettered). An early change is retried.
fn move_order(
    tx: &Transaction<'_>,
    envelope: &Envelope,
    order_id: Uuid,
    change: Change,
) -> Result<Option<Order>, HandlerError> {
    let event_type = envelope.event.event_type();
    let Some(order) = store::find_order(tx, order_id)? else {
        tracing::warn!(order.id = %order_id, "{event_type} for an order svc-order does not know; ignored");
        return Ok(None);
    };
    match order.apply(change, common::db::now()) {
        Transition::Applied(next) => {
            store::update_order(tx, &next)?;
            tracing::info!(order.id = %order_id, from = %order.status, to = %next.status, "order moved");
            Ok(Some(next))
        }
        Transition::Ignored { status } => {
            tracing::info!(order.id = %order_id, order.status = %status, "{event_type} changes nothing; ignored");
            Ok(None)
        }
        Transition::Early { status } => Err(HandlerError::Transient(anyhow::anyhow!(
            "{event_type} arrived while order {order_id} is {status}; waiting for the step before it"
        ))),
    }
}

fn emit(tx: &Transaction<'_>, cause: &Envelope, event: Event) -> Result<(), HandlerError> {
    outbox::append(tx, &Envelope::caused_by(SERVICE, cause, event))?;
    Ok(())
}
