//! The whole order saga in one process: svc-product, svc-order and svc-payment (and
//! svc-settlement for the cancel path), each a [`TestApp`] on one shared [`TestBus`], and the
//! payment gateway svc-payment charges through: one real nats-server, a token issuer whose key the services learn through the key bucket, and the event
//! log. Each service's end-of-test check runs as the shop is dropped.

use std::sync::Arc;

use common::{
    Envelope, Role,
    harness::{TestApp, TestBus, transcript},
};
use payment_gateway::harness::TestGateway;
use serde_json::{Value, json};
use uuid::Uuid;

pub use common::harness::{WAIT, json};

pub struct Shop {
    pub bus: Arc<TestBus>,
    pub js: async_nats::jetstream::Context,
    pub http: reqwest::Client,
    pub order: TestApp<svc_order::Config>,
    pub product: TestApp<svc_product::Config>,
    pub payment: TestApp<svc_payment::Config>,
    pub settlement: TestApp<svc_settlement::Config>,
    // After the services: dropped last, so their end-of-test checks run while it still answers.
    pub gateway: TestGateway,
}

impl Shop {
    /// Starts every saga service. `gateway_args` configures the simulated payment gateway.
    pub async fn start(gateway_args: &[&str]) -> Shop {
        Self::start_with(&[], gateway_args).await
    }

    /// Starts every saga service, svc-order with `order_args` (e.g. a short deadline).
    pub async fn start_with(order_args: &[&str], gateway_args: &[&str]) -> Shop {
        Self::start_full(order_args, &[], gateway_args).await
    }

    /// Starts every saga service with its own flags: svc-order's, svc-payment's (besides the
    /// gateway's URL, which it is given) and the gateway's.
    pub async fn start_full(order_args: &[&str], payment_args: &[&str], gateway_args: &[&str]) -> Shop {
        Self::start_on(TestBus::start().await, order_args, payment_args, gateway_args).await
    }

    /// [`Shop::start_full`] on `bus` (e.g. a 3-node cluster's).
    pub async fn start_on(
        bus: Arc<TestBus>,
        order_args: &[&str],
        payment_args: &[&str],
        gateway_args: &[&str],
    ) -> Shop {
        let gateway = TestGateway::start(gateway_args).await;
        let url = gateway.url();
        let payment_args: Vec<&str> =
            ["--gateway-url", url.as_str()].into_iter().chain(payment_args.iter().copied()).collect();
        Shop {
            product: TestApp::builder().on(&bus).start().await,
            order: TestApp::builder().on(&bus).args(order_args).start().await,
            payment: TestApp::builder().on(&bus).args(&payment_args).start().await,
            settlement: TestApp::builder().on(&bus).start().await,
            gateway,
            js: bus.js.clone(),
            http: reqwest::Client::new(),
            bus,
        }
    }

    pub fn token(&self, user: Uuid, role: Role) -> String {
        self.bus.token_for(user, role)
    }

    /// A seller's new product; returns its id.
    pub async fn product(&self, seller: Uuid, price: i64, stock: i64, category: &str) -> Uuid {
        let body = json!({"name": "Test product", "price": price, "stock": stock, "category": category});
        let res = self
            .http
            .post(self.product.url("/products"))
            .bearer_auth(self.token(seller, Role::Seller))
            .json(&body)
            .send()
            .await
            .expect("request");
        let product = json(res, 201).await;
        product["id"].as_str().expect("id").parse().expect("uuid")
    }

    pub async fn stock(&self, product: Uuid) -> i64 {
        let res = self.http.get(self.product.url(&format!("/products/{product}"))).send().await.expect("request");
        json(res, 200).await["stock"].as_i64().expect("stock")
    }

    /// `POST /orders` as `customer`, with `Prefer: wait=<wait>` when given.
    pub async fn place_order(
        &self,
        customer: Uuid,
        product: Uuid,
        quantity: u32,
        wait: Option<u32>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(self.order.url("/orders"))
            .bearer_auth(self.token(customer, Role::Customer))
            .json(&json!({"productId": product, "quantity": quantity, "paymentMethod": "CARD"}));
        if let Some(wait) = wait {
            req = req.header("Prefer", format!("wait={wait}"));
        }
        req.send().await.expect("request")
    }

    pub async fn get_order(&self, customer: Uuid, order: &str) -> Value {
        let res = self
            .http
            .get(self.order.url(&format!("/orders/{order}")))
            .bearer_auth(self.token(customer, Role::Customer))
            .send()
            .await
            .expect("request");
        json(res, 200).await
    }

    /// The id of the payment for `order`, if svc-payment has one (asked as an admin).
    pub async fn payment_of(&self, order: &str) -> Option<String> {
        let res = self
            .http
            .get(self.payment.url(&format!("/payments?orderId={order}")))
            .bearer_auth(self.token(Uuid::now_v7(), Role::Admin))
            .send()
            .await
            .expect("request");
        if res.status() == 404 {
            return None;
        }
        json(res, 200).await["id"].as_str().map(str::to_owned)
    }

    pub async fn cancel_payment(&self, payer: Uuid, payment: &str) -> reqwest::Response {
        self.http
            .post(self.payment.url(&format!("/payments/{payment}/cancel")))
            .bearer_auth(self.token(payer, Role::Customer))
            .send()
            .await
            .expect("request")
    }

    /// Publishes an envelope as a person with the `nats` CLI would: on its subject, with
    /// `Nats-Msg-Id` = `msg_id` when given. Returns whether JetStream called it a duplicate.
    pub async fn publish(&self, env: &Envelope, msg_id: Option<&str>) -> bool {
        self.bus.send(env, msg_id).await.await.expect("ack").duplicate
    }

    /// What the gateway holds for `order` agrees with how it ended: a paid order was charged once
    /// and kept it; any other end keeps nothing (every charge refunded in full).
    pub async fn assert_money(&self, order: &str, status: &str) {
        let charges = self.gateway.charges_of(order).await;
        let succeeded: Vec<&Value> = charges.iter().filter(|c| c["status"] == "SUCCEEDED").collect();
        let kept: i64 = succeeded.iter().map(|c| c["amount"].as_i64().unwrap() - c["refunded"].as_i64().unwrap()).sum();
        if status == "PAID" {
            assert_eq!(succeeded.len(), 1, "a paid order is charged once: {charges:?}");
            assert_eq!(kept, succeeded[0]["amount"].as_i64().unwrap(), "and keeps it: {charges:?}");
        } else {
            assert!(succeeded.len() <= 1, "charged at most once: {charges:?}");
            assert_eq!(kept, 0, "a {status} order keeps no money: {charges:?}");
        }
    }

    /// Waits until nothing more can happen in any service (see `common::harness::settled`).
    pub async fn settled(&self) {
        let databases =
            [self.order.db_path(), self.product.db_path(), self.payment.db_path(), self.settlement.db_path()];
        self.bus.settled(&databases).await;
    }

    /// The saga of `order` as a stable transcript, once the system has settled.
    pub async fn transcript(&self, order: &str, names: &[(&str, String)]) -> Value {
        self.settled().await;
        let mut all = vec![("order", order.to_owned())];
        all.extend(names.iter().cloned());
        transcript(&self.bus.events.saga(order).await, &all)
    }

    /// The business days svc-settlement booked `order`'s ledger entries on.
    pub fn business_days(&self, order: &str) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.settlement.db_path()).expect("open database");
        let mut stmt = conn.prepare("SELECT DISTINCT business_date FROM ledger WHERE order_id = ?1").expect("prepare");
        stmt.query_map([order], |r| r.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
    }

    /// `GET /settlements/daily?date=<date>` as `seller`.
    pub async fn daily_report(&self, seller: Uuid, date: &str) -> Value {
        let res = self
            .http
            .get(self.settlement.url(&format!("/settlements/daily?date={date}")))
            .bearer_auth(self.token(seller, Role::Seller))
            .send()
            .await
            .expect("request");
        json(res, 200).await
    }
}
