//! The broker crashes under the shop and stays down for 30 s: orders in flight when it dies,
//! orders placed while it is down, orders placed after it is back. Nothing is lost and nothing is
//! done twice.

use std::time::Duration;

use common::harness::eventually;
use uuid::Uuid;

use crate::helpers::{Shop, WAIT, json};

#[tokio::test]
async fn orders_placed_before_during_and_after_a_30_s_broker_outage_all_end_paid_once() {
    let shop = Shop::start(&[]).await;
    let seller = Uuid::now_v7();
    let product = shop.product(seller, 1_000, 100, "books").await;
    let customer = Uuid::now_v7();
    let mut orders = Vec::new();
    let mut place = async || {
        let order = json(shop.place_order(customer, product, 1, None).await, 202).await;
        orders.push(order["id"].as_str().unwrap().to_owned());
    };

    // In flight: placed and not waited for, then the broker dies (SIGKILL).
    for _ in 0..10 {
        place().await;
    }
    shop.bus.nats.stop();
    let down_since = tokio::time::Instant::now();
    // The fault fired: svc-order sees the broker gone...
    let unready = eventually(WAIT, || async {
        let res = shop.http.get(shop.order.url("/health/ready")).send().await.ok()?;
        (res.status() == 503).then_some(())
    });
    unready.await.expect("svc-order reports the broker gone");
    // ...and still takes orders, their order.created kept in its outbox.
    for _ in 0..10 {
        place().await;
    }
    let waiting = shop.order.count("SELECT count(*) FROM outbox WHERE published_at IS NULL", []);
    assert!(waiting >= 10, "the orders placed while the broker was down wait in the outbox ({waiting})");

    // The outage lasts 30 s (the fault itself, not a wait for anything): every service stays up
    // and keeps answering meanwhile.
    tokio::time::sleep_until(down_since + Duration::from_secs(30)).await;
    for port_of in [shop.product.url("/health/live"), shop.payment.url("/health/live"), shop.order.url("/health/live")]
    {
        assert_eq!(
            shop.http.get(port_of).send().await.unwrap().status(),
            200,
            "still serving while the broker is down"
        );
    }
    shop.bus.nats.restart().await;
    for _ in 0..10 {
        place().await;
    }

    for id in &orders {
        let paid =
            eventually(WAIT, || async { (shop.get_order(customer, id).await["status"] == "PAID").then_some(()) });
        paid.await.unwrap_or_else(|| panic!("order {id} did not end PAID"));
    }
    shop.settled().await;
    assert_eq!(shop.stock(product).await, 70);
    assert_eq!(shop.product.count("SELECT count(*) FROM reservations WHERE status = 'RESERVED'", []), 30);
    assert_eq!(shop.payment.count("SELECT count(*) FROM payments WHERE status = 'COMPLETED'", []), 30);
    assert_eq!(shop.order.count("SELECT count(*) FROM outbox WHERE published_at IS NULL", []), 0);
}
