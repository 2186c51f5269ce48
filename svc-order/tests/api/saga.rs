//! The saga as svc-order follows it: hand-published stock and payment events move the order and
//! make it announce its outcome exactly once.

use common::{
    Envelope, Event, Won,
    event::{PaymentDecline, StockRejection, StockReserved},
    harness::{eventually, transcript},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Play, TestApp, UNIT_PRICE, WAIT, hand_made_order, payment_cancelled, payment_completed, payment_failed,
    stock_rejected, stock_reserved,
};

#[tokio::test]
async fn reserved_stock_and_a_completed_payment_make_the_order_paid() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let (id, created) = app.placed(&kim).await;

    let reserved = stock_reserved(&created);
    app.bus.publish(&reserved).await;
    let order = app.order_with_status(&kim, &id, "STOCK_RESERVED").await;
    assert_eq!((&order["unitPrice"], &order["amount"]), (&json!(UNIT_PRICE.0), &json!(2 * UNIT_PRICE.0)));

    let completed = payment_completed(&reserved);
    app.bus.publish(&completed).await;
    let paid = app.bus.wait_for("order.paid", &id).await;

    let Event::PaymentCompleted(payment) = &completed.event else { unreachable!() };
    let Event::OrderPaid(data) = &paid.event else { unreachable!() };
    assert_eq!((paid.causation_id, paid.producer.as_str()), (Some(completed.id), "svc-order"));
    let order = app.order_with_status(&kim, &id, "PAID").await;
    assert_eq!(order["paymentId"], json!(payment.payment_id));
    assert_eq!((json!(data.payment_id), json!(data.amount)), (order["paymentId"].clone(), order["amount"].clone()));

    let names = [("order", id.clone()), ("user", kim.id.to_string())];
    let saga = transcript(&app.bus.events.saga(&id).await, &names);
    insta::assert_json_snapshot!("paid_saga", saga);
}

#[tokio::test]
async fn rejected_stock_fails_the_order_with_the_reason() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    for (reason, code) in
        [(StockRejection::OutOfStock, "OUT_OF_STOCK"), (StockRejection::ProductNotFound, "PRODUCT_NOT_FOUND")]
    {
        let (id, created) = app.placed(&kim).await;

        app.bus.publish(&stock_rejected(&created, reason)).await;

        let failed = app.bus.wait_for("order.failed", &id).await;
        let Event::OrderFailed(data) = &failed.event else { unreachable!() };
        assert_eq!(serde_json::to_value(data).unwrap()["reason"], code);
        assert_eq!(data.detail, None);
        let order = app.order_with_status(&kim, &id, "FAILED").await;
        assert_eq!(order["failureReason"], code);
        assert!(order.get("failureDetail").is_none());
    }
}

#[tokio::test]
async fn a_declined_payment_fails_the_order_with_the_decline_reason() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let (id, created) = app.placed(&kim).await;

    app.bus.play(&created, Play::Declined(PaymentDecline::LimitExceeded)).await;

    let failed = app.bus.wait_for("order.failed", &id).await;
    let data = serde_json::to_value(&failed.event).unwrap()["data"].take();
    assert_eq!(data, json!({"orderId": id, "reason": "PAYMENT_DECLINED", "detail": "LIMIT_EXCEEDED"}));
    let order = app.order_with_status(&kim, &id, "FAILED").await;
    assert_eq!(
        (&order["failureReason"], &order["failureDetail"]),
        (&json!("PAYMENT_DECLINED"), &json!("LIMIT_EXCEEDED"))
    );
    assert_eq!(order["amount"], json!(2 * UNIT_PRICE.0), "the reservation's price stays on the failed order");
}

#[tokio::test]
async fn a_payment_redelivered_or_repeated_pays_once_and_a_refund_cancels_the_order() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let (id, created) = app.placed(&kim).await;
    let reserved = stock_reserved(&created);
    app.bus.publish(&reserved).await;
    let completed = payment_completed(&reserved);
    app.bus.publish(&completed).await;
    app.bus.wait_for("order.paid", &id).await;

    // The same event again under another Nats-Msg-Id (JetStream stores it again) ...
    app.bus.publish_as(&completed, "republished-after-the-dedupe-window").await;
    // ... and a second event reporting the same payment: the order is PAID already.
    app.bus.publish(&payment_completed(&reserved)).await;
    // A late failure cannot undo a payment either.
    app.bus.publish(&payment_failed(&reserved, PaymentDecline::Declined)).await;
    let cancelled = payment_cancelled(&completed);
    app.bus.publish(&cancelled).await;

    // The relay publishes in commit order and the consumer works in stream order, so once the
    // cancellation is announced, any second order.paid or order.failed would have been seen.
    let announced = app.bus.wait_for("order.cancelled", &id).await;
    assert_eq!(app.bus.count("order.paid", &id).await, 1);
    assert_eq!(app.bus.count("order.failed", &id).await, 0);
    let Event::OrderCancelled(data) = &announced.event else { unreachable!() };
    let Event::PaymentCompleted(payment) = &completed.event else { unreachable!() };
    assert_eq!(
        (data.payment_id, data.amount, announced.causation_id),
        (payment.payment_id, payment.amount, Some(cancelled.id))
    );
    app.order_with_status(&kim, &id, "CANCELLED").await;
}

#[tokio::test]
async fn a_hand_published_order_created_creates_the_order_for_its_user() {
    let app = TestApp::spawn().await;
    let lee = app.customer();
    let created = hand_made_order(lee.id);
    let id = created.correlation_id.clone();

    app.bus.publish(&created).await;

    let order = app.order_with_status(&lee, &id, "PENDING").await;
    assert_eq!(
        (&order["userId"], &order["paymentMethod"], &order["quantity"]),
        (&json!(lee.id), &json!("BANK_TRANSFER"), &json!(1))
    );
    let mine: Value = app.get(&lee, "/orders/me").await.json().await.unwrap();
    assert_eq!(mine["items"][0]["id"], id);

    // And the saga goes on as for any order.
    app.bus.play(&created, Play::Paid).await;
    app.bus.wait_for("order.paid", &id).await;
    app.order_with_status(&lee, &id, "PAID").await;
    assert_eq!(app.bus.count("order.created", &id).await, 1, "svc-order did not announce it a second time");
}

#[tokio::test]
async fn a_hand_published_order_created_for_more_than_100_units_is_stored_and_followed() {
    let app = TestApp::spawn().await;
    let lee = app.customer();
    let mut created = hand_made_order(lee.id);
    let Event::OrderCreated(data) = &mut created.event else { unreachable!() };
    data.quantity = 150; // POST /orders would refuse it; svc-product and svc-payment take it
    let id = created.correlation_id.clone();

    app.bus.publish(&created).await;

    let order = app.order_with_status(&lee, &id, "PENDING").await;
    assert_eq!(order["quantity"], 150);
    app.bus.play(&created, Play::Paid).await;
    let paid = app.bus.wait_for("order.paid", &id).await;
    let Event::OrderPaid(data) = &paid.event else { unreachable!() };
    assert_eq!(data.amount, UNIT_PRICE.times(150).unwrap());
    assert_eq!(app.count("SELECT count(*) FROM dead_letter", []), 0);
}

#[tokio::test]
async fn a_stock_event_that_overtakes_its_order_created_is_applied_once_the_order_is_in() {
    let app = TestApp::spawn().await;
    let lee = app.customer();
    let created = hand_made_order(lee.id);
    let id = created.correlation_id.clone();
    let reserved = stock_reserved(&created);

    // As when svc-order Nak'd a hand-published order.created once: what follows it comes first.
    app.bus.publish(&reserved).await;
    app.bus.publish(&created).await;

    let order = app.order_with_status(&lee, &id, "STOCK_RESERVED").await;
    assert_eq!(order["amount"], json!(UNIT_PRICE.0));
    app.bus.publish(&payment_completed(&reserved)).await;
    app.bus.wait_for("order.paid", &id).await;
    assert_eq!(app.count("SELECT count(*) FROM dead_letter", []), 0);
}

#[tokio::test]
async fn events_for_an_order_nobody_created_are_retried_not_acknowledged() {
    let app = TestApp::spawn().await;
    let owner = app.customer();
    let stranger = hand_made_order(owner.id);
    // Never published: svc-order never hears of this order, only of what follows it.
    let orphan = stock_reserved(&stranger);
    let orphan_seq = app.bus.publish(&orphan).await;

    // Nak'd and delivered again, rather than acknowledged as handled. After the consumer's last
    // attempt it is dead-lettered like any event that keeps failing (common's consumer, proved by
    // `plumbing::a_message_failing_on_every_attempt_is_dead_lettered_on_the_last`).
    let consumer = eventually(WAIT, || async { app.bus.saga_consumer().await.filter(|c| c.num_redelivered >= 1) })
        .await
        .expect("the event is delivered again");
    assert_eq!(consumer.num_ack_pending, 1, "still unacknowledged");
    assert_eq!(app.count("SELECT count(*) FROM dead_letter", []), 0, "not dead-lettered before its retries ran out");

    // Meanwhile the events behind it flow on.
    let kim = app.customer();
    let (id, created) = app.placed(&kim).await;
    app.bus.publish(&stock_rejected(&created, StockRejection::OutOfStock)).await;
    app.bus.wait_for("order.failed", &id).await;
    let admin = app.user(common::Role::Admin);
    let res = app.get(&admin, &format!("/orders/{}", stranger.correlation_id)).await;
    assert_eq!(res.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(app.count("SELECT count(*) FROM orders", []), 1);

    // The trace keeps nothing of an order svc-order never heard of, for an admin or anyone.
    app.bus.consumed_through(&["svc-order"], orphan_seq).await;
    let path = format!("/orders/{}/trace", stranger.correlation_id);
    assert_eq!(app.get(&admin, &path).await.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(app.get(&owner, &path).await.status(), reqwest::StatusCode::NOT_FOUND);
    let traced = "SELECT count(*) FROM saga_events WHERE order_id = ?1";
    assert_eq!(app.count(traced, [&stranger.correlation_id]), 0);

    // Its retries run out in the end.
    let dead = app.dead_letter(&orphan.id.to_string()).await;
    assert!(dead.reason.starts_with("gave up after"), "{dead:?}");
}

/// `stock_reserved(created)` after `edit`.
fn reserved_with(created: &Envelope, edit: impl FnOnce(&mut StockReserved)) -> Envelope {
    let mut reserved = stock_reserved(created);
    let Event::StockReserved(data) = &mut reserved.event else { unreachable!() };
    edit(data);
    reserved
}

#[tokio::test]
async fn a_reservation_or_payment_that_contradicts_the_order_is_dead_lettered() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let (id, created) = app.placed(&kim).await;

    app.bus.publish(&reserved_with(&created, |r| r.product_id = Uuid::now_v7())).await;
    let three_units = reserved_with(&created, |r| {
        r.quantity = 3;
        r.amount = UNIT_PRICE.times(3).unwrap();
    });
    app.bus.publish(&three_units).await;
    let reserved = stock_reserved(&created);
    app.bus.publish(&reserved).await;
    let order = app.order_with_status(&kim, &id, "STOCK_RESERVED").await;
    assert_eq!(order["amount"], json!(2 * UNIT_PRICE.0));

    let mut short = payment_completed(&reserved);
    let Event::PaymentCompleted(payment) = &mut short.event else { unreachable!() };
    payment.amount = Won(payment.amount.0 - 1);
    app.bus.publish(&short).await;
    app.bus.publish(&payment_completed(&reserved)).await;

    // The consumer works in stream order: the contradictions were handled before this.
    let paid = app.bus.wait_for("order.paid", &id).await;
    let Event::OrderPaid(data) = &paid.event else { unreachable!() };
    assert_eq!(data.amount, Won(2 * UNIT_PRICE.0), "the order's own amount");
    assert_eq!(app.bus.count("order.paid", &id).await, 1);
    let dead = app.dead_letters();
    assert_eq!(dead.len(), 3, "{dead:#?}");
    assert!(dead.iter().all(|d| d.consumer == "svc-order" && d.reason.contains("contradicts")), "{dead:#?}");
}

#[tokio::test]
async fn a_payment_that_overtakes_its_reservation_is_applied_after_it() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let (id, created) = app.placed(&kim).await;
    let reserved = stock_reserved(&created);

    // As after a redelivery: the payment first. It is retried until the reservation is in.
    app.bus.publish(&payment_completed(&reserved)).await;
    app.bus.publish(&reserved).await;

    app.bus.wait_for("order.paid", &id).await;
    let order = app.order_with_status(&kim, &id, "PAID").await;
    assert_eq!(order["unitPrice"], json!(UNIT_PRICE.0));
    assert_eq!(app.count("SELECT count(*) FROM dead_letter", []), 0);
}

/// A database locked for longer than the old retry budget (5 deliveries, then the dead-letter
/// table): the consumer keeps retrying for as long as the lock holds, and the saga completes once
/// it is released. Nothing is dead-lettered (the end-of-test check would say so).
#[tokio::test]
async fn a_database_locked_past_the_old_retry_budget_stalls_the_saga_and_loses_nothing() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let (id, created) = app.placed(&kim).await;
    app.settled().await;
    let before = app.bus.saga_consumer().await.expect("saga consumer").delivered.consumer_sequence;

    // What a stuck migration or a backup tool would do: hold the write lock.
    let lock = rusqlite::Connection::open(app.db_path()).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let reserved = stock_reserved(&created);
    app.bus.publish(&reserved).await;
    // The fault fired: the reservation was delivered more often than the old budget allowed,
    // each delivery failing on the lock.
    let past_budget = eventually(std::time::Duration::from_secs(180), || async {
        let info = app.bus.saga_consumer().await?;
        (info.delivered.consumer_sequence >= before + 6).then_some(())
    });
    past_budget.await.expect("six deliveries while locked");
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 'PENDING'", []), 1, "nothing applied yet");
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);

    app.bus.publish(&payment_completed(&reserved)).await;
    let order = app.order_with_status(&kim, &id, "PAID").await;
    assert_eq!(order["amount"], json!(2 * UNIT_PRICE.0));
    assert!(app.dead_letters().is_empty());
}
