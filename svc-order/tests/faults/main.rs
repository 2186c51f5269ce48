//! The saga under injected faults: each test turns on one failpoint (or a gateway fault), proves it
//! fired, and shows the saga's outcome is what it would have been without it: charged once, one
//! effect, no partial rows, nothing kept by an order that did not end paid.
//!
//! Failpoints are process-wide, and every service of the shop runs in this process, so the tests
//! of this binary take turns ([`Scene::start`] holds [`SERIAL`]).

#[path = "../saga/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use common::{Role, faults, harness::eventually};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use crate::helpers::{Shop, WAIT, json};

static SERIAL: Mutex<()> = Mutex::const_new(());

/// One shop with one product, one seller and one customer, holding the turn.
struct Scene {
    shop: Shop,
    customer: Uuid,
    product: Uuid,
    _turn: MutexGuard<'static, ()>,
}

const PRICE: i64 = 12_000;
const STOCK: i64 = 10;

impl Scene {
    async fn start(order_args: &[&str], payment_args: &[&str], gateway_args: &[&str]) -> Scene {
        let turn = SERIAL.lock().await;
        let shop = Shop::start_full(order_args, payment_args, gateway_args).await;
        let product = shop.product(Uuid::now_v7(), PRICE, STOCK, "books").await;
        Scene { shop, customer: Uuid::now_v7(), product, _turn: turn }
    }

    async fn place(&self) -> String {
        let order = json(self.shop.place_order(self.customer, self.product, 1, None).await, 202).await;
        order["id"].as_str().unwrap().to_owned()
    }

    async fn status(&self, order: &str) -> String {
        self.shop.get_order(self.customer, order).await["status"].as_str().unwrap().to_owned()
    }

    async fn until_status(&self, order: &str, status: &str) {
        let reached = eventually(WAIT, || async { (self.status(order).await == status).then_some(()) });
        reached.await.unwrap_or_else(|| panic!("order {order} did not become {status}"));
    }

    /// How many events of `event_type` for `order` the stream holds.
    async fn events(&self, order: &str, event_type: &str) -> usize {
        let saga = self.shop.bus.events.saga(order).await;
        saga.iter().filter(|e| e.event.event_type() == event_type).count()
    }

    /// svc-payment's view of its gateway (`GET /admin/gateway`).
    async fn breaker(&self) -> String {
        let res = self
            .shop
            .http
            .get(self.shop.payment.url("/admin/gateway"))
            .bearer_auth(self.shop.token(Uuid::now_v7(), Role::Admin))
            .send()
            .await
            .unwrap();
        json(res, 200).await["breaker"].as_str().unwrap().to_owned()
    }

    async fn until_breaker(&self, state: &str) {
        let reached = eventually(WAIT, || async { (self.breaker().await == state).then_some(()) });
        reached.await.unwrap_or_else(|| panic!("the breaker did not become {state}"));
    }

    fn payments(&self, order: &str) -> i64 {
        self.shop.payment.count("SELECT count(*) FROM payments WHERE order_id = ?1", [order])
    }
}

/// A failpoint turned on for the test, off again when dropped (also when the test fails).
struct Failpoint(String);

impl Failpoint {
    fn set(service: &str, point: &str, actions: &str) -> Failpoint {
        let name = faults::name(service, point);
        faults::configure(&name, actions).unwrap();
        Failpoint(name)
    }

    fn hits(&self) -> u64 {
        faults::hits(&self.0)
    }

    async fn until_fired(&self) {
        let fired = eventually(WAIT, || async { (self.hits() > 0).then_some(()) });
        fired.await.unwrap_or_else(|| panic!("failpoint {} never fired", self.0));
    }
}

impl Drop for Failpoint {
    fn drop(&mut self) {
        faults::clear(&self.0);
    }
}

fn succeeded(charges: &[Value]) -> Vec<&Value> {
    charges.iter().filter(|c| c["status"] == "SUCCEEDED").collect()
}

#[tokio::test]
async fn a_crash_after_the_payment_committed_but_before_the_ack_charges_once() {
    let scene = Scene::start(&[], &["--ack-wait-secs", "2"], &[]).await;
    let before = faults::hits("svc-payment.consumer.after_commit");
    let fp = Failpoint::set("svc-payment", faults::CONSUMER_AFTER_COMMIT, "1*return");
    let order = scene.place().await;
    scene.until_status(&order, "PAID").await;
    // Settled means every consumer's ack floor passed the stream's end: the stock.reserved left
    // unacknowledged came back after the ack wait, and this time was acknowledged.
    scene.shop.settled().await;

    assert_eq!(fp.hits() - before, 1, "the failpoint fired once");
    let charges = scene.shop.gateway.charges_of(&order).await;
    assert_eq!(charges.len(), 1, "charged once: {charges:?}");
    assert_eq!(scene.payments(&order), 1);
    assert_eq!(scene.events(&order, "payment.completed").await, 1);
    assert_eq!(scene.status(&order).await, "PAID");
}

#[tokio::test]
async fn a_relay_crash_after_the_ack_but_before_the_mark_publishes_again_with_one_effect() {
    let scene = Scene::start(&[], &[], &[]).await;
    let fp = Failpoint::set("svc-order", faults::RELAY_AFTER_PUBLISH, "1*return");
    let order = scene.place().await;
    scene.until_status(&order, "PAID").await;
    scene.shop.settled().await;

    assert_eq!(fp.hits(), 1, "the failpoint fired once");
    // The row went out twice under one message id; JetStream kept one, and one was applied.
    assert_eq!(scene.events(&order, "order.created").await, 1);
    assert_eq!(scene.shop.product.count("SELECT count(*) FROM reservations WHERE order_id = ?1", [&order]), 1);
    assert_eq!(scene.shop.stock(scene.product).await, STOCK - 1);
    assert_eq!(scene.shop.gateway.charges_of(&order).await.len(), 1);
    let unpublished = scene.shop.order.count("SELECT count(*) FROM outbox WHERE published_at IS NULL", []);
    assert_eq!(unpublished, 0, "the rows were marked in the end");
}

#[tokio::test]
async fn a_crash_inside_the_consumers_transaction_leaves_no_partial_rows() {
    let scene = Scene::start(&[], &[], &[]).await;
    let fp = Failpoint::set("svc-product", faults::CONSUMER_IN_TRANSACTION, "return");
    let order = scene.place().await;
    fp.until_fired().await;

    // The reservation, the stock taken and the stock.reserved outbox row were all written
    // before the crash, and none of them is there.
    let product = &scene.shop.product;
    assert_eq!(product.count("SELECT count(*) FROM reservations WHERE order_id = ?1", [&order]), 0);
    assert_eq!(product.count("SELECT count(*) FROM outbox WHERE subject LIKE 'stock.%'", []), 0);
    assert_eq!(product.count("SELECT count(*) FROM processed WHERE consumer = 'svc-product'", []), 0);
    assert_eq!(scene.shop.stock(scene.product).await, STOCK);
    assert_eq!(scene.status(&order).await, "PENDING");

    drop(fp);
    scene.until_status(&order, "PAID").await;
    scene.shop.settled().await;
    assert_eq!(product.count("SELECT count(*) FROM reservations WHERE order_id = ?1", [&order]), 1);
    assert_eq!(scene.shop.stock(scene.product).await, STOCK - 1);
    assert_eq!(scene.events(&order, "stock.reserved").await, 1);
}

#[tokio::test]
async fn a_charge_whose_answer_is_lost_is_retried_under_its_key_and_charges_nothing_more() {
    let scene = Scene::start(&[], &[], &["--hang-ms", "50"]).await;
    let fp = Failpoint::set("payment-gateway", faults::GATEWAY_ANSWER_LOST, "1*return");
    let order = scene.place().await;
    scene.until_status(&order, "PAID").await;
    scene.shop.settled().await;

    assert_eq!(fp.hits(), 1, "the answer was lost once");
    assert_eq!(scene.shop.gateway.fault_state().await["fired"]["answersLost"], 1);
    let charges = scene.shop.gateway.charges_of(&order).await;
    assert_eq!(charges.len(), 1, "the retry replayed the charge: {charges:?}");
    assert_eq!(charges[0]["amount"], PRICE);
    assert_eq!(scene.payments(&order), 1);
}

/// svc-payment flags for a breaker that opens after two failed calls and probes soon.
const QUICK_BREAKER: [&str; 4] = ["--breaker-failures", "2", "--gateway-retries", "1"];

#[tokio::test]
async fn while_the_gateway_is_down_the_breaker_opens_and_the_charge_waits_then_pays_on_recovery() {
    let scene = Scene::start(&[], &QUICK_BREAKER, &[]).await;
    scene.shop.gateway.faults(json!({"down": true})).await;
    let order = scene.place().await;
    scene.until_breaker("OPEN").await;

    let refused = scene.shop.gateway.fault_state().await["fired"]["refusedWhileDown"].as_u64().unwrap();
    assert!(refused >= 2, "the gateway refused {refused} calls");
    assert_eq!(scene.status(&order).await, "STOCK_RESERVED", "postponed, not declined");
    assert_eq!(scene.payments(&order), 0);

    scene.shop.gateway.faults(json!({"down": false})).await;
    scene.until_status(&order, "PAID").await;
    scene.until_breaker("CLOSED").await;
    scene.shop.settled().await;
    assert_eq!(succeeded(&scene.shop.gateway.charges_of(&order).await).len(), 1);
}

#[tokio::test]
async fn an_order_that_waits_out_its_deadline_on_a_down_gateway_expires_releases_stock_and_keeps_no_money() {
    let scene = Scene::start(&["--order-deadline-secs", "2"], &QUICK_BREAKER, &[]).await;
    scene.shop.gateway.faults(json!({"down": true})).await;
    let order = scene.place().await;
    scene.until_breaker("OPEN").await;
    scene.until_status(&order, "EXPIRED").await;
    let released = eventually(WAIT, || async { (scene.shop.stock(scene.product).await == STOCK).then_some(()) });
    released.await.expect("the expired order's stock is released");

    scene.shop.gateway.faults(json!({"down": false})).await;
    scene.shop.settled().await;
    // Once the gateway is back, svc-payment may meet the postponed charge before the expiry: it
    // charges, then refunds. Either way no money is kept.
    let charges = scene.shop.gateway.charges_of(&order).await;
    for charge in succeeded(&charges) {
        assert_eq!(charge["refunded"], charge["amount"], "a charge of the expired order was kept: {charges:?}");
    }
    let kept = scene
        .shop
        .payment
        .count("SELECT count(*) FROM payments WHERE order_id = ?1 AND status = 'COMPLETED'", [&order]);
    assert_eq!(kept, 0);
    assert_eq!(scene.status(&order).await, "EXPIRED");
}

#[tokio::test]
async fn a_payment_that_completes_after_its_order_expired_is_refunded_once() {
    // The charge takes 3 s at the gateway; the order's deadline is 2 s.
    let scene =
        Scene::start(&["--order-deadline-secs", "2"], &["--gateway-timeout-ms", "8000"], &["--latency-ms", "3000"])
            .await;
    let order = scene.place().await;
    scene.until_status(&order, "EXPIRED").await;
    let refunded = eventually(WAIT, || async {
        let charges = scene.shop.gateway.charges_of(&order).await;
        (charges.len() == 1 && charges[0]["refunded"] == charges[0]["amount"]).then_some(charges)
    });
    let charges = refunded.await.expect("the late charge is refunded");
    scene.shop.settled().await;

    assert_eq!(charges[0]["status"], "SUCCEEDED");
    assert_eq!(scene.events(&order, "payment.completed").await, 1, "the charge went through, late");
    assert_eq!(scene.events(&order, "payment.cancelled").await, 1, "and was refunded once");
    assert_eq!(scene.status(&order).await, "EXPIRED");
    assert_eq!(scene.shop.stock(scene.product).await, STOCK);
}
