//! One scenario per saga path, each with its snapshot.

use common::{
    Envelope, Event, PaymentMethod,
    event::{OrderCreated, PaymentDecline},
    harness::{eventually, fixtures},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Shop, WAIT, json};

/// Everyone taking part in one scenario.
struct Cast {
    shop: Shop,
    seller: Uuid,
    customer: Uuid,
    product: Uuid,
}

impl Cast {
    /// A shop with one seller offering one product at `price` with `stock` units.
    async fn new(price: i64, stock: i64) -> Cast {
        Self::on(Shop::start(&[]).await, price, stock).await
    }

    /// `shop` with one seller offering one product at `price` with `stock` units.
    async fn on(shop: Shop, price: i64, stock: i64) -> Cast {
        let seller = Uuid::now_v7();
        let product = shop.product(seller, price, stock, "books").await;
        Cast { shop, seller, customer: Uuid::now_v7(), product }
    }

    /// What a scenario's snapshot holds: the saga transcript, the order as its owner sees it and
    /// the stock left. Ids become placeholders; the order's must match the saga's.
    async fn outcome(&self, order: &str) -> Value {
        self.shop.settled().await;
        let mut names = vec![
            ("customer", self.customer.to_string()),
            ("seller", self.seller.to_string()),
            ("product", self.product.to_string()),
        ];
        if let Some(payment) = self.shop.payment_of(order).await {
            names.push(("payment", payment));
        }
        let events = self.shop.transcript(order, &names).await;
        let view = self.shop.get_order(self.customer, order).await;
        self.shop.assert_money(order, view["status"].as_str().unwrap()).await;
        assert_eq!(view["userId"], json!(self.customer));
        assert_eq!(view["productId"], json!(self.product));
        // The trace orders siblings by time, the transcript by type (to be deterministic): the
        // same events either way, and causes before effects in both.
        let mut trace = self.trace(order).await;
        let mut logged: Vec<String> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"].as_str().unwrap().rsplit_once('.').unwrap().0.to_owned())
            .collect();
        assert_eq!(trace.first(), logged.first(), "the saga starts the same way");
        trace.sort();
        logged.sort();
        assert_eq!(trace, logged, "trace and event log disagree");
        json!({
            "events": events,
            "order": redact_order(view),
            "stock": self.shop.stock(self.product).await,
        })
    }

    async fn trace(&self, order: &str) -> Vec<String> {
        let res = self
            .shop
            .http
            .get(self.shop.order.url(&format!("/orders/{order}/trace")))
            .bearer_auth(self.shop.token(self.customer, common::Role::Customer))
            .send()
            .await
            .unwrap();
        let trace = json(res, 200).await;
        trace["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
    }
}

fn redact_order(mut view: Value) -> Value {
    for (field, placeholder) in [
        ("id", "[order]"),
        ("userId", "[customer]"),
        ("productId", "[product]"),
        ("paymentId", "[payment]"),
        ("createdAt", "[time]"),
        ("updatedAt", "[time]"),
    ] {
        if view.get(field).is_some_and(|v| !v.is_null()) {
            view[field] = json!(placeholder);
        }
    }
    view
}

#[tokio::test]
async fn happy_path() {
    let cast = Cast::new(15_000, 10).await;

    let res = cast.shop.place_order(cast.customer, cast.product, 2, Some(10)).await;

    assert_eq!(res.headers()["preference-applied"], "wait=10");
    let order = json(res, 201).await;
    assert_eq!((order["status"].as_str(), order["amount"].as_i64()), (Some("PAID"), Some(30_000)));
    let outcome = cast.outcome(order["id"].as_str().unwrap()).await;
    assert_eq!(outcome["stock"], 8);
    insta::assert_json_snapshot!(outcome);
}

#[tokio::test]
async fn out_of_stock() {
    let cast = Cast::new(15_000, 1).await;

    let res = cast.shop.place_order(cast.customer, cast.product, 2, Some(10)).await;

    let problem = json(res, 409).await;
    assert_eq!(problem["code"], "OUT_OF_STOCK");
    let outcome = cast.outcome(problem["orderId"].as_str().expect("orderId in the problem")).await;
    assert_eq!(outcome["stock"], 1);
    insta::assert_json_snapshot!(outcome);
}

#[tokio::test]
async fn payment_declined_releases_the_stock() {
    // 2 x 600,000 won is above the gateway's default 1,000,000 won limit.
    let cast = Cast::new(600_000, 5).await;

    let res = cast.shop.place_order(cast.customer, cast.product, 2, Some(10)).await;

    let problem = json(res, 402).await;
    assert_eq!(problem["code"], "PAYMENT_DECLINED");
    let outcome = cast.outcome(problem["orderId"].as_str().expect("orderId in the problem")).await;
    assert_eq!(outcome["stock"], 5, "the reservation was released");
    insta::assert_json_snapshot!(outcome);
}

#[tokio::test]
async fn unknown_product() {
    let cast = Cast::new(15_000, 5).await;
    let missing = Uuid::now_v7();

    let res = cast.shop.place_order(cast.customer, missing, 1, Some(10)).await;

    let problem = json(res, 404).await;
    assert_eq!(problem["code"], "PRODUCT_NOT_FOUND");
    let order = problem["orderId"].as_str().expect("orderId in the problem").to_owned();
    cast.shop.settled().await;
    let names = [("customer", cast.customer.to_string()), ("product", missing.to_string())];
    let events = cast.shop.transcript(&order, &names).await;
    let view = redact_order(cast.shop.get_order(cast.customer, &order).await);
    insta::assert_json_snapshot!(json!({"events": events, "order": view}), {".order.productId" => "[product]"});
}

#[tokio::test]
async fn a_hand_published_duplicate_order_created_has_one_effect() {
    let cast = Cast::new(15_000, 10).await;
    let order = Uuid::now_v7();
    let created = Envelope::new(
        "by-hand",
        Event::OrderCreated(OrderCreated {
            order_id: order,
            user_id: cast.customer,
            product_id: cast.product,
            quantity: 1,
            payment_method: PaymentMethod::BankTransfer,
        }),
    );
    let msg_id = created.id.to_string();

    assert!(!cast.shop.publish(&created, Some(&msg_id)).await, "first publish is stored");
    assert!(cast.shop.publish(&created, Some(&msg_id)).await, "same Nats-Msg-Id: JetStream drops it");
    // Past the dedupe window JetStream would store it again; without the header it does now.
    assert!(!cast.shop.publish(&created, None).await);

    let outcome = cast.outcome(&order.to_string()).await;
    assert_eq!(outcome["stock"], 9, "reserved once");
    assert_eq!(outcome["order"]["status"], "PAID");
    assert_eq!(cast.shop.payment.count("SELECT count(*) FROM payments", []), 1, "charged once");
    insta::assert_json_snapshot!(outcome);
}

#[tokio::test]
async fn a_republished_payment_completed_has_one_effect() {
    let cast = Cast::new(15_000, 10).await;
    let order = json(cast.shop.place_order(cast.customer, cast.product, 1, Some(10)).await, 201).await;
    let id = order["id"].as_str().unwrap().to_owned();
    cast.shop.settled().await;
    let completed = cast
        .shop
        .bus
        .events
        .saga(&id)
        .await
        .into_iter()
        .find(|e| matches!(e.event, Event::PaymentCompleted(_)))
        .expect("payment.completed");

    // Re-published under a new message id, as after JetStream's dedupe window.
    assert!(!cast.shop.publish(&completed, Some(&Uuid::now_v7().to_string())).await);

    let outcome = cast.outcome(&id).await;
    assert_eq!(outcome["order"]["status"], "PAID");
    let paid = outcome["events"].as_array().unwrap().iter().filter(|e| e["subject"] == "order.paid.[order]").count();
    assert_eq!(paid, 1);
    insta::assert_json_snapshot!(outcome);
}

#[tokio::test]
async fn a_malformed_order_created_is_dead_lettered_and_the_shop_keeps_serving() {
    let cast = Cast::new(15_000, 10).await;
    let shop = &cast.shop;
    let subject = format!("order.created.{}", Uuid::now_v7());
    let ack = shop
        .js
        .send_publish(
            subject.clone(),
            async_nats::jetstream::message::PublishMessage::build().payload("{\"oops\"".into()),
        )
        .await
        .unwrap();
    ack.await.unwrap();

    let order = json(shop.place_order(cast.customer, cast.product, 1, Some(10)).await, 201).await;

    assert_eq!(order["status"], "PAID");
    shop.settled().await;
    let refused = |dead: Vec<common::harness::DeadLetter>| dead.iter().filter(|d| d.subject == subject).count();
    assert_eq!(refused(shop.product.dead_letters()), 1);
    assert!(refused(shop.order.dead_letters()) >= 1, "svc-order's consumers refuse it too");
}

#[tokio::test]
async fn cancel_path_refunds_returns_stock_and_books_the_refund() {
    let cast = Cast::new(15_000, 10).await;
    let order = json(cast.shop.place_order(cast.customer, cast.product, 3, Some(10)).await, 201).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let payment = order["paymentId"].as_str().expect("paid order has a payment").to_owned();

    let cancelled = json(cast.shop.cancel_payment(cast.customer, &payment).await, 200).await;

    assert_eq!(cancelled["status"], "CANCELLED");
    let outcome = cast.outcome(&id).await;
    assert_eq!(outcome["order"]["status"], "CANCELLED");
    assert_eq!(outcome["stock"], 10, "the stock came back once");
    // Settlement booked the sale and the refund on the same business day: the seller nets 0.
    let day = cast.shop.business_days(&id);
    assert_eq!(day.len(), 1, "sale and refund on one day: {day:?}");
    let report = cast.shop.daily_report(cast.seller, &day[0]).await;
    let totals = &report["totals"];
    assert_eq!((totals["gross"].as_i64(), totals["refunds"].as_i64()), (Some(45_000), Some(45_000)));
    assert_eq!(
        (totals["net"].as_i64(), totals["fee"].as_i64(), totals["orders"].as_i64()),
        (Some(0), Some(0), Some(1))
    );
    insta::assert_json_snapshot!(outcome);
}

impl Cast {
    /// Places an order for `quantity` without waiting; returns its id.
    async fn place(&self, quantity: u32) -> String {
        let order = json(self.shop.place_order(self.customer, self.product, quantity, None).await, 202).await;
        order["id"].as_str().unwrap().to_owned()
    }

    /// Waits until the order has `status`.
    async fn until_status(&self, order: &str, status: &str) {
        let reached = eventually(WAIT, || async {
            (self.shop.get_order(self.customer, order).await["status"] == status).then_some(())
        });
        reached.await.unwrap_or_else(|| panic!("order {order} did not become {status}"));
    }

    /// Waits until an event of `event_type` for `order` is on the bus.
    async fn event(&self, order: &str, event_type: &str) -> Envelope {
        let seen =
            self.shop.bus.events.wait_for(WAIT, |e| e.correlation_id == order && e.event.event_type() == event_type);
        seen.await.unwrap_or_else(|| panic!("no {event_type} for order {order}"))
    }

    /// The events of `type` in `outcome`'s transcript.
    fn count(outcome: &Value, event_type: &str) -> usize {
        let prefix = format!("{event_type}.");
        outcome["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["subject"].as_str().unwrap().starts_with(&prefix))
            .count()
    }
}

/// The outside fault run's "money taken, no goods": svc-payment is down while the order's stock
/// is reserved, a `payment.failed` is published for it by hand, and svc-payment, back, charges
/// the reservation it missed. The charge is refunded once, as the order had already failed.
#[tokio::test]
async fn a_charge_made_after_its_order_failed_is_refunded_once() {
    let mut cast = Cast::new(15_000, 10).await;
    cast.shop.payment.stop().await;
    let id = cast.place(2).await;
    let reserved = cast.event(&id, "stock.reserved").await;

    let mut declined = fixtures::payment_failed(&reserved, PaymentDecline::Declined);
    declined.producer = "by-hand".into();
    assert!(!cast.shop.publish(&declined, Some(&declined.id.to_string())).await);
    cast.until_status(&id, "FAILED").await;
    cast.shop.payment.start().await;
    cast.event(&id, "payment.cancelled").await;

    let outcome = cast.outcome(&id).await;
    assert_eq!(outcome["order"]["status"], "FAILED");
    assert_eq!(outcome["stock"], 10, "the stock is back");
    assert_eq!((Cast::count(&outcome, "payment.completed"), Cast::count(&outcome, "payment.cancelled")), (1, 1));
    assert_eq!(cast.shop.payment.count("SELECT count(*) FROM payments WHERE status = 'CANCELLED'", []), 1);
    let day = cast.shop.business_days(&id);
    let report = cast.shop.daily_report(cast.seller, &day[0]).await;
    assert_eq!((report["totals"]["gross"].as_i64(), report["totals"]["net"].as_i64()), (Some(30_000), Some(0)));
    insta::assert_json_snapshot!(outcome);
}

/// svc-payment down past the deadline: the order expires, svc-product gives the stock back at
/// once, and svc-payment, back, charges the reservation it missed and refunds it as the order
/// has expired. No money and no stock stay with an order that was never paid.
#[tokio::test]
async fn an_order_past_its_deadline_expires_and_keeps_neither_stock_nor_money() {
    let mut cast = Cast::on(Shop::start_with(&["--order-deadline-secs", "2"], &[]).await, 15_000, 10).await;
    cast.shop.payment.stop().await;
    let id = cast.place(3).await;

    cast.until_status(&id, "EXPIRED").await;
    cast.event(&id, "stock.released").await;
    assert_eq!(cast.shop.stock(cast.product).await, 10, "released before svc-payment is back");
    cast.shop.payment.start().await;
    cast.event(&id, "payment.cancelled").await;

    let outcome = cast.outcome(&id).await;
    assert_eq!(outcome["order"]["status"], "EXPIRED");
    assert_eq!(outcome["stock"], 10);
    assert_eq!((Cast::count(&outcome, "payment.completed"), Cast::count(&outcome, "payment.cancelled")), (1, 1));
    assert_eq!(Cast::count(&outcome, "order.paid"), 0);
    insta::assert_json_snapshot!(outcome);
}

/// svc-product down past the deadline: the order expires while PENDING. svc-product, back, answers
/// the order.created it missed and then the order.expired behind it, so the stock comes back; svc-payment
/// heard of the expiry before the reservation and never charges.
#[tokio::test]
async fn an_order_that_expires_before_its_stock_is_reserved_gets_the_stock_back_and_is_never_charged() {
    let mut cast = Cast::on(Shop::start_with(&["--order-deadline-secs", "2"], &[]).await, 15_000, 10).await;
    cast.shop.product.stop().await;
    let id = cast.place(1).await;

    cast.until_status(&id, "EXPIRED").await;
    cast.shop.product.start().await;
    cast.event(&id, "stock.released").await;

    let outcome = cast.outcome(&id).await;
    assert_eq!(outcome["order"]["status"], "EXPIRED");
    assert_eq!(outcome["stock"], 10);
    assert_eq!(cast.shop.payment_of(&id).await, None, "never charged");
    insta::assert_json_snapshot!(outcome);
}
