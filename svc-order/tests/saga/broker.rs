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

/// The scene of the two tests below: a shop whose svc-product is stopped (so nothing consumes
/// `order.created`), with one product of 10 in stock and one customer.
struct Loss {
    shop: Shop,
    product: Uuid,
    customer: Uuid,
    orders: Vec<String>,
}

impl Loss {
    async fn start() -> Loss {
        let mut shop = Shop::start(&[]).await;
        let product = shop.product(Uuid::now_v7(), 1_000, 10, "books").await;
        shop.product.stop().await;
        Loss { shop, product, customer: Uuid::now_v7(), orders: Vec::new() }
    }

    async fn place(&mut self, n: usize) {
        for _ in 0..n {
            let order = json(self.shop.place_order(self.customer, self.product, 1, None).await, 202).await;
            self.orders.push(order["id"].as_str().unwrap().to_owned());
        }
    }

    fn unpublished(&self) -> i64 {
        self.shop.order.count("SELECT count(*) FROM outbox WHERE published_at IS NULL", [])
    }

    /// Waits until the orders' `order.created` are acknowledged, then deletes them from the
    /// stream, as a crash before the broker's next sync would. Returns (subject, sequence) of each.
    async fn lose_what_was_acknowledged(&self) -> Vec<(String, u64)> {
        let published = eventually(WAIT, || async { (self.unpublished() == 0).then_some(()) });
        published.await.expect("svc-order's relay published the order.created events");
        let stream = self.shop.js.get_stream(common::bus::STREAM).await.unwrap();
        let mut lost = Vec::new();
        for id in &self.orders {
            let subject = format!("order.created.{id}");
            let seq = stream.get_last_raw_message_by_subject(&subject).await.unwrap().sequence;
            assert!(stream.delete_message(seq).await.unwrap());
            lost.push((subject, seq));
        }
        lost
    }

    /// The fault fired and was repaired: each lost event is in the stream again, stored anew (a
    /// later sequence) by the relay's re-send, not the copy that was deleted.
    async fn until_sent_again(&self, lost: &[(String, u64)]) {
        let stream = self.shop.js.get_stream(common::bus::STREAM).await.unwrap();
        for (subject, seq) in lost {
            let stored = eventually(WAIT, || async {
                let msg = stream.get_last_raw_message_by_subject(subject).await.ok()?;
                (msg.sequence > *seq).then_some(())
            });
            stored.await.unwrap_or_else(|| panic!("{subject} was not sent again after the broker came back"));
        }
    }

    /// svc-product back, and every order ends PAID, once: stock, reservations, payments, money.
    async fn every_order_paid_once(mut self) {
        self.shop.product.start().await;
        let shop = &self.shop;
        for id in &self.orders {
            let paid = eventually(WAIT, || async {
                (shop.get_order(self.customer, id).await["status"] == "PAID").then_some(())
            });
            paid.await.unwrap_or_else(|| panic!("order {id} did not end PAID"));
        }
        shop.settled().await;
        let n = self.orders.len() as i64;
        assert_eq!(shop.stock(self.product).await, 10 - n);
        assert_eq!(shop.product.count("SELECT count(*) FROM reservations WHERE status = 'RESERVED'", []), n);
        assert_eq!(shop.payment.count("SELECT count(*) FROM payments WHERE status = 'COMPLETED'", []), n);
        for id in &self.orders {
            shop.assert_money(id, "PAID").await;
        }
    }
}

/// An OS crash of the broker's machine loses what JetStream acknowledged but had not synced yet
/// (`sync_interval` in nats/nats-server.conf). The test makes that loss happen for certain: three
/// orders' `order.created` events are acknowledged, then deleted from the stream, and the broker
/// restarts on its store (which also forgets their ids in its duplicate window, as a crashed
/// server does). svc-product is stopped meanwhile, so nothing has consumed them. After the
/// restart svc-order's relay re-sends its most recent rows, and every order ends PAID, once.
#[tokio::test]
async fn events_the_broker_acknowledged_and_then_lost_are_sent_again_and_every_saga_ends() {
    let mut scene = Loss::start().await;
    scene.place(3).await;
    let lost = scene.lose_what_was_acknowledged().await;
    scene.shop.bus.nats.restart().await;
    scene.until_sent_again(&lost).await;
    scene.every_order_paid_once().await;
}

/// The same loss, with orders still coming in while the broker is down, as they do when only the
/// broker's machine crashed. The outage lasts longer than the re-send window (the lost rows'
/// publish times are moved a minute back, as if the broker had stayed down a minute), and the
/// orders placed meanwhile go out first thing when it is back: the re-send must come before them,
/// or its window, anchored on the newest publish, would be theirs and miss the lost events.
#[tokio::test]
async fn events_lost_by_the_broker_come_back_even_if_orders_were_placed_while_it_was_down() {
    let mut scene = Loss::start().await;
    scene.place(3).await;
    let lost = scene.lose_what_was_acknowledged().await;
    scene.shop.bus.nats.stop();
    let backdated = scene
        .shop
        .order
        .connection()
        .execute("UPDATE outbox SET published_at = published_at - 60000 WHERE published_at IS NOT NULL", []);
    assert_eq!(backdated.unwrap(), 3);
    scene.place(2).await;
    assert_eq!(scene.unpublished(), 2);
    scene.shop.bus.nats.restart().await;
    scene.until_sent_again(&lost).await;
    scene.every_order_paid_once().await;
}
