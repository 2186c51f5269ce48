//! svc-order's part of the order saga: it follows stock and payment events to move its orders
//! along their state machine, and announces each ending (`order.paid`, `order.failed`,
//! `order.cancelled`). The same consumer records every saga event for the trace endpoint.
//!
//! Every reaction reads the order's state and decides (see [`crate::domain::Transition`]), so
//! duplicates and late events change nothing and announce nothing twice. An event that
//! contradicts its order (another product, quantity or amount) is dead-lettered; one for an order
//! svc-order does not know yet is retried, as its `order.created` may still be on its way.

use common::{
    Envelope, Event, EventType,
    consumer::{Handler, HandlerError},
    event::{
        OrderCancelled, OrderCreated, OrderFailed, OrderFailure, OrderPaid, PaymentCancelled, PaymentCompleted,
        PaymentFailed, StockRejected, StockRejection, StockReserved,
    },
    outbox,
};
use std::time::Duration;

use rusqlite::Transaction;
use uuid::Uuid;

use crate::{
    SERVICE,
    domain::{Change, NewOrder, Order, Quantity, Transition},
    store,
    waiters::Waiters,
};

/// The saga reactions and the trace (durable consumer `svc-order`), plus the wake-up of requests
/// waiting on the order once a reaction is committed. One consumer for both: each event is
/// delivered, deduplicated and committed once, not once per purpose.
#[derive(Debug, Clone)]
pub struct Saga {
    waiters: Waiters,
    /// The deadline of an order a hand-published `order.created` creates.
    deadline: Duration,
}

impl Saga {
    pub fn new(waiters: Waiters, deadline: Duration) -> Self {
        Saga { waiters, deadline }
    }
}

impl Handler for Saga {
    fn name(&self) -> &'static str {
        SERVICE
    }

    fn consumes(&self) -> &'static [EventType] {
        &[
            EventType::OrderCreated,
            EventType::OrderPaid,
            EventType::OrderFailed,
            EventType::OrderCancelled,
            EventType::OrderExpired,
            EventType::StockReserved,
            EventType::StockRejected,
            EventType::StockReleased,
            EventType::PaymentCompleted,
            EventType::PaymentFailed,
            EventType::PaymentCancelled,
        ]
    }

    /// The reaction, if the event calls for one, then the event's place in the trace: an event
    /// the saga cannot apply yet is traced when it can, one it rejects is not traced at all.
    fn handle(&self, tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::OrderCreated(e) => on_order_created(tx, envelope, e, self.deadline)?,
            Event::StockReserved(e) => on_stock_reserved(tx, envelope, e)?,
            Event::StockRejected(e) => on_stock_rejected(tx, envelope, e)?,
            Event::PaymentCompleted(e) => on_payment_completed(tx, envelope, e)?,
            Event::PaymentFailed(e) => on_payment_failed(tx, envelope, e)?,
            Event::PaymentCancelled(e) => on_payment_cancelled(tx, envelope, e)?,
            // svc-order's own announcements and svc-product's releases: traced, nothing to do.
            Event::OrderPaid(_)
            | Event::OrderFailed(_)
            | Event::OrderCancelled(_)
            | Event::OrderExpired(_)
            | Event::StockReleased(_) => {}
            _ => return Err(HandlerError::unhandled(SERVICE, envelope)),
        }
        trace(tx, envelope)
    }

    fn committed(&self, envelope: &Envelope) {
        // A saga's end is counted when this consumer applies svc-order's own announcement of it:
        // once per event (the dedupe row), and only once the announcement is durable and
        // published, whichever code path (a reaction, the expiry sweep) made it.
        let outcome = match envelope.event.kind() {
            EventType::OrderPaid => Some("paid"),
            EventType::OrderFailed => Some("failed"),
            EventType::OrderExpired => Some("expired"),
            EventType::OrderCancelled => Some("cancelled"),
            _ => None,
        };
        if let Some(outcome) = outcome {
            metrics::counter!(common::metrics::SAGA_ENDED, "service" => SERVICE, "outcome" => outcome).increment(1);
        }
        // Waiters wait for the saga's end: only the events that can end it wake them (each wake
        // costs a re-read). svc-order's own announcements follow a change already signalled, a
        // reservation or a release ends nothing. Every saga event's key is its order id.
        let may_end = matches!(
            envelope.event.kind(),
            EventType::StockRejected
                | EventType::PaymentCompleted
                | EventType::PaymentFailed
                | EventType::PaymentCancelled
        );
        if may_end && let Ok(order) = Uuid::parse_str(&envelope.event.key()) {
            self.waiters.notify(order);
        }
    }
}

/// Records the event into `saga_events` if it belongs to a saga svc-order knows (idempotent on the
/// event id). An `order.created` always counts (it created its order, just now if it was published
/// by hand); any other event of an order svc-order never heard of (a stranger's hand-published
/// `order.paid`, say) is kept nowhere.
fn trace(tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
    let origin = matches!(envelope.event, Event::OrderCreated(_));
    if !origin && !store::saga_is_known(tx, &envelope.correlation_id)? {
        tracing::info!(order.id = %envelope.correlation_id, "event of an order svc-order never heard of; not traced");
        return Ok(());
    }
    store::insert_saga_event(tx, envelope)?;
    Ok(())
}

/// Our own `order.created` finds its order stored and changes nothing. One published by hand
/// (docs/EVENTS.md shows how) for an order svc-order has never seen creates that order, PENDING,
/// so its owner can follow it like any other. Any quantity svc-product and svc-payment accept is
/// accepted here too (the REST limit of 100 is the entry's rule), so the saga never charges an
/// order svc-order did not store.
fn on_order_created(
    tx: &Transaction<'_>,
    envelope: &Envelope,
    e: &OrderCreated,
    deadline: Duration,
) -> Result<(), HandlerError> {
    let quantity =
        Quantity::new(e.quantity).ok_or_else(|| HandlerError::Reject("order.created asks for 0 units".into()))?;
    let new = NewOrder { product_id: e.product_id, quantity, payment_method: e.payment_method };
    let order = Order::place(e.order_id, e.user_id, new, envelope.occurred_at, deadline);
    if store::insert_order(tx, &order, None)? {
        tracing::info!(order.id = %e.order_id, user.id = %e.user_id, "order created from an order.created svc-order did not publish");
    }
    Ok(())
}

fn on_stock_reserved(tx: &Transaction<'_>, envelope: &Envelope, e: &StockReserved) -> Result<(), HandlerError> {
    let change = Change::StockReserved {
        product_id: e.product_id,
        quantity: e.quantity,
        unit_price: e.unit_price,
        amount: e.amount,
    };
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
    let change = Change::Paid { payment_id: e.payment_id, amount: e.amount };
    if let Some(order) = move_order(tx, envelope, e.order_id, change)? {
        // The order's own amount, which the payment was checked against.
        let amount = order
            .amount
            .ok_or_else(|| HandlerError::Reject(format!("order {} was paid without a reserved amount", order.id)))?;
        let paid = OrderPaid { order_id: e.order_id, payment_id: e.payment_id, amount };
        emit(tx, envelope, Event::OrderPaid(paid))?;
    }
    Ok(())
}

fn on_payment_failed(tx: &Transaction<'_>, envelope: &Envelope, e: &PaymentFailed) -> Result<(), HandlerError> {
    let (reason, detail) = (OrderFailure::PaymentDeclined, Some(e.reason.as_str().to_owned()));
    if move_order(tx, envelope, e.order_id, Change::Failed { reason, detail: detail.clone() })?.is_some() {
        emit(tx, envelope, Event::OrderFailed(OrderFailed { order_id: e.order_id, reason, detail }))?;
    }
    Ok(())
}

fn on_payment_cancelled(tx: &Transaction<'_>, envelope: &Envelope, e: &PaymentCancelled) -> Result<(), HandlerError> {
    let change = Change::Cancelled { payment_id: e.payment_id, amount: e.amount };
    if let Some(order) = move_order(tx, envelope, e.order_id, change)? {
        // The order's own amount, which the refund was checked against.
        let amount = order.amount.unwrap_or(e.amount);
        let cancelled = OrderCancelled { order_id: e.order_id, payment_id: e.payment_id, amount };
        emit(tx, envelope, Event::OrderCancelled(cancelled))?;
    }
    Ok(())
}

/// Applies `change` to the order if the state machine allows it, and returns the moved order;
/// `None` when the change is ignored. An early change is retried, a contradicting one rejected.
///
/// An order svc-order does not know is retried too. Every stock or payment event follows an
/// `order.created` that this consumer also receives, so a missing order means that event has not
/// been applied yet (a hand-published one was Nak'd, say) and is coming. A true orphan is
/// dead-lettered, visibly, once the retries run out.
fn move_order(
    tx: &Transaction<'_>,
    envelope: &Envelope,
    order_id: Uuid,
    change: Change,
) -> Result<Option<Order>, HandlerError> {
    let event_type = envelope.event.event_type();
    let Some(order) = store::find_order(tx, order_id)? else {
        return Err(HandlerError::NotYet(format!(
            "{event_type} for order {order_id}, which svc-order does not know (yet); waiting for its order.created"
        )));
    };
    match order.apply(change, common::db::now()) {
        Transition::Applied(next) => {
            store::update_order(tx, &next)?;
            // One INFO line per saga, at its end; every step before it at DEBUG.
            if next.status.is_settled() {
                tracing::info!(order.id = %order_id, from = %order.status, order.status = %next.status, "order ended");
            } else {
                tracing::debug!(order.id = %order_id, from = %order.status, to = %next.status, "order moved");
            }
            Ok(Some(next))
        }
        Transition::Ignored { status } => {
            tracing::info!(order.id = %order_id, order.status = %status, "{event_type} changes nothing; ignored");
            Ok(None)
        }
        Transition::Early { status } => Err(HandlerError::NotYet(format!(
            "{event_type} arrived while order {order_id} is {status}; waiting for the step before it"
        ))),
        Transition::Contradicted(why) => {
            Err(HandlerError::Reject(format!("{event_type} contradicts its order: {why}")))
        }
    }
}

fn emit(tx: &Transaction<'_>, cause: &Envelope, event: Event) -> Result<(), HandlerError> {
    outbox::append(tx, &Envelope::caused_by(SERVICE, cause, event))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use common::{
        PaymentMethod, Won,
        consumer::{Outcome, apply},
        db::{Db, DbError},
        harness::fixtures::{self, UNIT_PRICE},
    };

    use super::*;
    use crate::domain::OrderStatus;

    /// svc-order's database in `dir`, migrated as the service migrates it.
    async fn database(dir: &tempfile::TempDir) -> Db {
        Db::open(&dir.path().join("svc-order.db"), crate::app::MIGRATIONS).await.unwrap()
    }

    /// Applies `event` as the saga consumer does: dedupe row, reaction and outbox in one transaction.
    async fn handle(db: &Db, event: &Envelope) -> Outcome {
        apply(db, Arc::new(Saga::new(Waiters::default(), Duration::from_secs(600))), event.clone()).await
    }

    fn created(quantity: u32) -> Envelope {
        let event = OrderCreated {
            order_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            product_id: Uuid::now_v7(),
            quantity,
            payment_method: PaymentMethod::Card,
        };
        Envelope::new("by-hand", Event::OrderCreated(event))
    }

    /// svc-product's reservation for `created`, after `edit`.
    fn reserved(created: &Envelope, edit: impl FnOnce(&mut StockReserved)) -> Envelope {
        let mut reserved = fixtures::stock_reserved(created);
        let Event::StockReserved(data) = &mut reserved.event else { unreachable!() };
        edit(data);
        reserved
    }

    /// svc-payment's charge of `amount` for `reserved`.
    fn completed(reserved: &Envelope, amount: Won) -> Envelope {
        let mut completed = fixtures::payment_completed(reserved);
        let Event::PaymentCompleted(data) = &mut completed.event else { unreachable!() };
        data.amount = amount;
        completed
    }

    async fn order_of(db: &Db, created: &Envelope) -> Option<Order> {
        let id = Uuid::parse_str(&created.correlation_id).unwrap();
        db.read(move |c| store::find_order(c, id)).await.unwrap()
    }

    /// What svc-order announced, in commit order.
    async fn announced(db: &Db) -> Vec<Envelope> {
        db.read(|c| {
            let mut stmt = c.prepare("SELECT subject, payload FROM outbox ORDER BY seq")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
            Ok::<_, DbError>(
                rows.map(|row| row.map(|(s, p)| Envelope::decode(&s, &p).unwrap())).collect::<Result<_, _>>()?,
            )
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn an_event_for_an_order_not_created_yet_is_retried_and_applies_once_the_order_is_in() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let created = created(2);
        let reserved = reserved(&created, |_| {});

        let early = handle(&db, &reserved).await;

        assert!(matches!(&early, Outcome::NotYet(why) if why.contains("does not know")), "{early:?}");
        assert_eq!(handle(&db, &created).await, Outcome::Applied);
        // The failed attempt left no dedupe row behind: the redelivery is applied, not skipped.
        assert_eq!(handle(&db, &reserved).await, Outcome::Applied);
        let order = order_of(&db, &created).await.unwrap();
        assert_eq!((order.status, order.amount), (OrderStatus::StockReserved, Some(Won(30_000))));
    }

    #[tokio::test]
    async fn a_reservation_that_contradicts_the_order_is_dead_lettered_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let created = created(2);
        handle(&db, &created).await;

        let other_product = reserved(&created, |r| r.product_id = Uuid::now_v7());
        let other_quantity = reserved(&created, |r| {
            r.quantity = 3;
            r.amount = UNIT_PRICE.times(3).unwrap();
        });
        let wrong_amount = reserved(&created, |r| r.amount = Won(29_999));
        for event in [other_product, other_quantity, wrong_amount] {
            let outcome = handle(&db, &event).await;
            assert!(matches!(&outcome, Outcome::DeadLettered(why) if why.contains("contradicts")), "{outcome:?}");
        }

        assert_eq!(order_of(&db, &created).await.unwrap().status, OrderStatus::Pending);
        assert_eq!(handle(&db, &reserved(&created, |_| {})).await, Outcome::Applied, "the true one still applies");
    }

    #[tokio::test]
    async fn a_payment_of_other_than_the_reserved_amount_is_dead_lettered_and_announces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let created = created(2);
        let reserved = reserved(&created, |_| {});
        handle(&db, &created).await;
        handle(&db, &reserved).await;

        let short = handle(&db, &completed(&reserved, Won(29_999))).await;

        assert!(matches!(&short, Outcome::DeadLettered(why) if why.contains("contradicts")), "{short:?}");
        assert_eq!(order_of(&db, &created).await.unwrap().status, OrderStatus::StockReserved);
        assert!(announced(&db).await.is_empty());
    }

    #[tokio::test]
    async fn an_order_created_for_more_units_than_a_request_may_ask_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir).await;
        let created = created(crate::domain::MAX_QUANTITY_PER_REQUEST + 50);

        assert_eq!(handle(&db, &created).await, Outcome::Applied);

        let order = order_of(&db, &created).await.expect("the order is stored");
        assert_eq!((order.quantity.get(), order.status), (150, OrderStatus::Pending));
        assert_eq!(handle(&db, &reserved(&created, |_| {})).await, Outcome::Applied);
    }
}
