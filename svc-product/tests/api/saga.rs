//! svc-product's saga reactions, driven by events published by hand on JetStream and observed
//! through its outbox, its database and the bus.

use common::{
    Event, PaymentMethod, Won,
    db::DbError,
    event::{ReleaseReason, StockRejection},
    harness::{eventually, fixtures, transcript},
};
use uuid::Uuid;

use crate::helpers::{TestApp, WAIT, order_created, order_created_for, payment_cancelled, payment_failed, types};

fn order_id_of(env: &common::Envelope) -> Uuid {
    match &env.event {
        Event::OrderCreated(e) => e.order_id,
        other => panic!("not an order.created: {other:?}"),
    }
}

#[tokio::test]
async fn an_order_within_stock_reserves_it_at_the_current_price() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(15_000, 5).await;
    let order = order_created(product, 3);
    let order_id = order_id_of(&order);
    app.publish(&order).await;

    let reserved =
        app.events.wait_for(WAIT, |e| e.event.event_type() == "stock.reserved").await.expect("stock.reserved");
    let Event::StockReserved(r) = &reserved.event else { unreachable!() };
    let Event::OrderCreated(o) = &order.event else { unreachable!() };
    assert_eq!((r.order_id, r.product_id, r.quantity), (order_id, product, 3));
    assert_eq!((r.unit_price, r.amount), (Won(15_000), Won(45_000)));
    assert_eq!((r.user_id, r.payment_method), (o.user_id, PaymentMethod::Card), "forwarded from order.created");
    assert_eq!(r.category, "coffee");
    assert_eq!(
        (reserved.causation_id, reserved.correlation_id.as_str()),
        (Some(order.id), order.correlation_id.as_str())
    );
    assert_eq!(app.stock(product).await, 2);

    let seller: serde_json::Value = app.get(&format!("/products/{product}")).await.json().await.unwrap();
    assert_eq!(r.seller_id.to_string(), seller["sellerId"].as_str().unwrap());
    app.settled().await;
    insta::assert_json_snapshot!(transcript(&app.events.saga(&order_id.to_string()).await, &names(order_id, product)));
}

#[tokio::test]
async fn an_order_for_more_than_the_stock_is_rejected_and_the_stock_is_untouched() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(15_000, 2).await;
    let order = order_created(product, 3);
    app.publish(&order).await;

    let rejected = app.events.wait_for(WAIT, |e| e.event.event_type() == "stock.rejected").await.expect("rejected");
    let Event::StockRejected(r) = &rejected.event else { unreachable!() };
    assert_eq!(
        (r.order_id, r.product_id, r.quantity, r.reason),
        (order_id_of(&order), product, 3, StockRejection::OutOfStock)
    );
    assert_eq!(app.stock(product).await, 2);
}

#[tokio::test]
async fn an_order_for_an_unknown_product_is_rejected_as_not_found() {
    let app = TestApp::spawn().await;
    let product = Uuid::now_v7();
    let order = order_created(product, 1);
    let order_id = order_id_of(&order);
    app.publish(&order).await;

    let rejected = app.events.wait_for(WAIT, |e| e.event.event_type() == "stock.rejected").await.expect("rejected");
    let Event::StockRejected(r) = &rejected.event else { unreachable!() };
    assert_eq!(r.reason, StockRejection::ProductNotFound);
    app.settled().await;
    insta::assert_json_snapshot!(transcript(&app.events.saga(&order_id.to_string()).await, &names(order_id, product)));
}

#[tokio::test]
async fn one_order_reserves_once_however_often_and_under_whatever_id_it_arrives() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(10_000, 10).await;
    let order = order_created(product, 4);
    let order_id = order_id_of(&order);

    app.publish(&order).await;
    // The same envelope under another Nats-Msg-Id: past JetStream's dedupe, caught by the
    // consumer's processed table.
    app.publish_as(&order, "a-different-nats-msg-id").await;
    // The same order in a new envelope (new event id): only the reservation row catches it.
    app.publish(&order_created_for(order_id, product, 4)).await;
    app.settled().await;

    assert_eq!(types(&app.emitted_for(order_id).await), ["stock.reserved"]);
    assert_eq!(app.stock(product).await, 6, "taken once");
    assert_eq!(app.count("SELECT count(*) FROM reservations", []), 1);
    assert_eq!(app.count("SELECT count(*) FROM processed", []), 2, "two distinct event ids were applied");
}

#[tokio::test]
async fn a_rejected_order_stays_rejected_when_it_arrives_again_after_a_restock() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(10_000, 1).await;
    let order = order_created(product, 2);
    let order_id = order_id_of(&order);
    app.publish(&order).await;
    app.settled().await;

    let (_, admin) = app.user(common::Role::Admin);
    let res = app.post(&format!("/products/{product}/restock"), Some(&admin), serde_json::json!({"quantity": 5})).await;
    assert_eq!(res.status(), 200);
    app.publish(&order_created_for(order_id, product, 2)).await;
    app.settled().await;

    assert_eq!(types(&app.emitted_for(order_id).await), ["stock.rejected"]);
    assert_eq!(app.stock(product).await, 6);
}

#[tokio::test]
async fn a_failed_payment_releases_the_stock_exactly_once() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(15_000, 5).await;
    let order = order_created(product, 3);
    let order_id = order_id_of(&order);
    app.publish(&order).await;
    let reserved = app.events.wait_for(WAIT, |e| e.event.event_type() == "stock.reserved").await.expect("reserved");
    assert_eq!(app.stock(product).await, 2);

    // Two payment.failed with different event ids: both get past every message-level dedupe.
    app.publish(&payment_failed(&reserved, order_id, Won(45_000))).await;
    app.publish(&payment_failed(&reserved, order_id, Won(45_000))).await;
    app.settled().await;

    assert_eq!(types(&app.emitted_for(order_id).await), ["stock.reserved", "stock.released"]);
    let released = app.events.wait_for(WAIT, |e| e.event.event_type() == "stock.released").await.expect("released");
    let Event::StockReleased(r) = &released.event else { unreachable!() };
    assert_eq!((r.order_id, r.product_id, r.quantity, r.reason), (order_id, product, 3, ReleaseReason::PaymentFailed));
    assert_eq!(app.stock(product).await, 5, "given back once");
    insta::assert_json_snapshot!(transcript(&app.events.saga(&order_id.to_string()).await, &names(order_id, product)));
}

#[tokio::test]
async fn a_cancelled_payment_releases_the_stock_with_its_own_reason() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(15_000, 5).await;
    let order = order_created(product, 2);
    let order_id = order_id_of(&order);
    app.publish(&order).await;
    let reserved = app.events.wait_for(WAIT, |e| e.event.event_type() == "stock.reserved").await.expect("reserved");

    app.publish(&payment_cancelled(&reserved, order_id, product, 2, Won(30_000))).await;
    let released = app.events.wait_for(WAIT, |e| e.event.event_type() == "stock.released").await.expect("released");
    let Event::StockReleased(r) = &released.event else { unreachable!() };
    assert_eq!((r.quantity, r.reason), (2, ReleaseReason::PaymentCancelled));
    assert_eq!(app.stock(product).await, 5);
}

#[tokio::test]
async fn a_payment_failure_without_held_stock_releases_nothing() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(15_000, 1).await;
    // One order that was never seen, one whose reservation was rejected.
    let unknown = order_created(product, 1);
    let rejected = order_created(product, 2);
    app.publish(&rejected).await;
    app.settled().await;

    app.publish(&payment_failed(&unknown, order_id_of(&unknown), Won(15_000))).await;
    app.publish(&payment_failed(&rejected, order_id_of(&rejected), Won(30_000))).await;
    app.settled().await;

    assert!(app.emitted_for(order_id_of(&unknown)).await.is_empty());
    assert_eq!(types(&app.emitted_for(order_id_of(&rejected)).await), ["stock.rejected"]);
    assert_eq!(app.stock(product).await, 1);
    assert_eq!(app.count("SELECT count(*) FROM dead_letter", []), 0);
}

#[tokio::test]
async fn an_order_for_zero_units_is_dead_lettered_without_a_reaction() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(15_000, 5).await;
    let order = order_created(product, 0);
    app.publish(&order).await;
    app.settled().await;

    assert!(app.emitted_for(order_id_of(&order)).await.is_empty());
    let dead = app.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].consumer, "svc-product");
    assert_eq!(app.count("SELECT count(*) FROM reservations", []), 0);
    assert_eq!(app.stock(product).await, 5);
}

// svc-product answers order.created one at a time, so this proves the decision on the stock it
// reads; the guarded UPDATE behind it is proved by `store::tests`, which call it with more units
// than there are.
#[tokio::test]
async fn sixty_concurrent_orders_for_fifty_units_reserve_exactly_fifty() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(1_000, 50).await;
    let orders: Vec<_> = (0..60).map(|_| order_created(product, 1)).collect();

    // All 60 in flight before any ack is awaited.
    let mut acks = Vec::with_capacity(orders.len());
    for order in &orders {
        acks.push(app.bus.send(order, Some(&order.id.to_string())).await);
    }
    for ack in acks {
        ack.await.expect("JetStream acked the order");
    }

    eventually(WAIT, || async { (app.count("SELECT count(*) FROM reservations", []) == 60).then_some(()) })
        .await
        .expect("the orders were not all answered");
    app.settled().await;

    assert_eq!(app.stock(product).await, 0);
    assert_eq!(app.count("SELECT count(*) FROM reservations WHERE status = 'RESERVED'", []), 50);
    assert_eq!(app.count("SELECT count(*) FROM reservations WHERE status = 'REJECTED'", []), 10);
    assert_eq!(app.count("SELECT count(*) FROM outbox WHERE subject LIKE 'stock.reserved.%'", []), 50);
    assert_eq!(app.count("SELECT count(*) FROM outbox WHERE subject LIKE 'stock.rejected.%'", []), 10);
    assert_eq!(app.count("SELECT coalesce(sum(amount), 0) FROM reservations", []), 50_000);
    let rejections = eventually(WAIT, || async {
        let all = app.events.all().await;
        let rejected: Vec<_> = all
            .iter()
            .filter_map(|(_, e)| match &e.event {
                Event::StockRejected(r) => Some(r.reason),
                _ => None,
            })
            .collect();
        (rejected.len() == 10).then_some(rejected)
    })
    .await
    .expect("10 stock.rejected on the bus");
    assert!(rejections.iter().all(|r| *r == StockRejection::OutOfStock));
}

/// Placeholders for a saga transcript.
fn names(order_id: Uuid, product_id: Uuid) -> Vec<(&'static str, String)> {
    vec![("order", order_id.to_string()), ("product", product_id.to_string())]
}

#[tokio::test]
async fn the_schema_itself_refuses_negative_stock() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(1_000, 1).await;
    let oversold = app
        .db()
        .write(move |tx| {
            tx.execute("UPDATE products SET stock = stock - 2 WHERE id = ?1", [product.to_string()])
                .map_err(DbError::from)
        })
        .await;
    assert!(matches!(&oversold, Err(DbError::Sqlite(e)) if e.to_string().contains("CHECK")), "{oversold:?}");
    assert_eq!(app.stock(product).await, 1);
}

#[tokio::test]
async fn an_order_that_expires_gives_its_stock_back_once() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(1_000, 5).await;
    let order = order_created(product, 2);
    let order_id = order_id_of(&order);
    app.publish(&order).await;
    app.events
        .wait_for(WAIT, |e| e.event.event_type() == "stock.reserved" && e.correlation_id == order.correlation_id)
        .await
        .expect("reserved");

    // The expiry, and a copy under another id: one release.
    let expired = fixtures::order_expired(order_id);
    app.publish(&expired).await;
    app.publish_as(&expired, "a-copy-of-the-expiry").await;
    app.publish(&fixtures::order_failed(order_id)).await;
    app.settled().await;

    let emitted = app.emitted_for(order_id).await;
    assert_eq!(types(&emitted), ["stock.reserved", "stock.released"]);
    let Event::StockReleased(released) = &emitted[1].event else { unreachable!() };
    assert_eq!(released.reason, ReleaseReason::OrderExpired);
    assert_eq!(app.stock(product).await, 5);
}

/// The expiry overtook the order (a redelivered `order.created`): nothing is reserved for an order
/// nobody will pay for, and nothing is announced.
#[tokio::test]
async fn an_order_created_after_its_order_closed_reserves_nothing() {
    let app = TestApp::spawn().await;
    let product = app.product_with_stock(1_000, 5).await;
    let order = order_created(product, 2);
    let order_id = order_id_of(&order);
    app.publish(&fixtures::order_expired(order_id)).await;
    app.publish(&order).await;
    app.settled().await;

    assert!(app.emitted_for(order_id).await.is_empty());
    assert_eq!(app.count("SELECT count(*) FROM reservations", []), 0);
    assert_eq!(app.count("SELECT count(*) FROM closed_orders WHERE reason = 'ORDER_EXPIRED'", []), 1);
    assert_eq!(app.stock(product).await, 5);
}
