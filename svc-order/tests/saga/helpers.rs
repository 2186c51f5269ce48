//! The whole order saga in one process: svc-product, svc-order and svc-payment (and
//! svc-settlement for the cancel path) on port 0 with fresh SQLite files, one real nats-server,
//! a token issuer whose key the services learn through the key bucket, and the event log.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use async_nats::jetstream::{self, message::PublishMessage};
use clap::Parser;
use common::{
    Envelope, Role,
    harness::{EventLog, NatsServer, TestIssuer, settled, transcript},
};
use serde_json::{Value, json};
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Shop {
    pub http: reqwest::Client,
    pub js: jetstream::Context,
    pub events: EventLog,
    pub issuer: TestIssuer,
    pub order: SocketAddr,
    pub product: SocketAddr,
    pub payment: SocketAddr,
    pub settlement: SocketAddr,
    databases: Vec<PathBuf>,
    // Dropped in declaration order: the services stop before their files and server go.
    _stop: DropGuard,
    _data: tempfile::TempDir,
    _nats: NatsServer,
}

/// Builds `Config` for one service the way its binary would parse flags.
fn args<'a>(name: &'a str, nats: &'a str, dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![name, "--http-addr", "127.0.0.1:0", "--nats-url", nats, "--data-dir", dir];
    args.extend_from_slice(extra);
    args
}

impl Shop {
    /// Starts every saga service. `payment_args` configures the simulated gateway.
    pub async fn start(payment_args: &[&str]) -> Shop {
        let nats = NatsServer::start().await;
        let issuer = TestIssuer::publish(&nats).await;
        let data = tempfile::tempdir().expect("data dir");
        let url = nats.url();
        let stop = CancellationToken::new();
        let dir = |name: &str| data.path().join(name).to_str().expect("utf-8 path").to_owned();
        let (product_dir, order_dir, payment_dir, settlement_dir) =
            (dir("product"), dir("order"), dir("payment"), dir("settlement"));

        let product = svc_product::App::build(
            svc_product::Config::parse_from(args("svc-product", &url, &product_dir, &[])),
            stop.clone(),
        )
        .await
        .expect("svc-product builds");
        let order = svc_order::App::build(
            svc_order::Config::parse_from(args("svc-order", &url, &order_dir, &[])),
            stop.clone(),
        )
        .await
        .expect("svc-order builds");
        let payment = svc_payment::App::build(
            svc_payment::Config::parse_from(args("svc-payment", &url, &payment_dir, payment_args)),
            stop.clone(),
        )
        .await
        .expect("svc-payment builds");
        let settlement = svc_settlement::App::build(
            svc_settlement::Config::parse_from(args("svc-settlement", &url, &settlement_dir, &[])),
            stop.clone(),
        )
        .await
        .expect("svc-settlement builds");
        let (product_addr, order_addr, payment_addr, settlement_addr) =
            (product.addr(), order.addr(), payment.addr(), settlement.addr());
        tokio::spawn(product.run_until_stopped());
        tokio::spawn(order.run_until_stopped());
        tokio::spawn(payment.run_until_stopped());
        tokio::spawn(settlement.run_until_stopped());

        let client = nats.client().await;
        let databases = [
            (product_dir, "svc-product"),
            (order_dir, "svc-order"),
            (payment_dir, "svc-payment"),
            (settlement_dir, "svc-settlement"),
        ]
        .iter()
        .map(|(dir, name)| PathBuf::from(dir).join(format!("{name}.db")))
        .collect();
        Shop {
            http: reqwest::Client::new(),
            events: EventLog::record(&client).await,
            js: jetstream::new(client),
            issuer,
            order: order_addr,
            product: product_addr,
            payment: payment_addr,
            settlement: settlement_addr,
            databases,
            _stop: stop.drop_guard(),
            _data: data,
            _nats: nats,
        }
    }

    pub fn token(&self, user: Uuid, role: Role) -> String {
        self.issuer.token(user, role)
    }

    /// A seller's new product; returns its id.
    pub async fn product(&self, seller: Uuid, price: i64, stock: i64, category: &str) -> Uuid {
        let body = json!({"name": "Test product", "price": price, "stock": stock, "category": category});
        let res = self
            .http
            .post(format!("http://{}/products", self.product))
            .bearer_auth(self.token(seller, Role::Seller))
            .json(&body)
            .send()
            .await
            .expect("request");
        let product = json_of(res, 201).await;
        product["id"].as_str().expect("id").parse().expect("uuid")
    }

    pub async fn stock(&self, product: Uuid) -> i64 {
        let res = self.http.get(format!("http://{}/products/{product}", self.product)).send().await.expect("request");
        json_of(res, 200).await["stock"].as_i64().expect("stock")
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
            .post(format!("http://{}/orders", self.order))
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
            .get(format!("http://{}/orders/{order}", self.order))
            .bearer_auth(self.token(customer, Role::Customer))
            .send()
            .await
            .expect("request");
        json_of(res, 200).await
    }

    /// The id of the payment for `order`, if svc-payment has one (asked as an admin).
    pub async fn payment_of(&self, order: &str) -> Option<String> {
        let res = self
            .http
            .get(format!("http://{}/payments?orderId={order}", self.payment))
            .bearer_auth(self.token(Uuid::now_v7(), Role::Admin))
            .send()
            .await
            .expect("request");
        if res.status() == 404 {
            return None;
        }
        json_of(res, 200).await["id"].as_str().map(str::to_owned)
    }

    pub async fn cancel_payment(&self, payer: Uuid, payment: &str) -> reqwest::Response {
        self.http
            .post(format!("http://{}/payments/{payment}/cancel", self.payment))
            .bearer_auth(self.token(payer, Role::Customer))
            .send()
            .await
            .expect("request")
    }

    /// Publishes an envelope as a person with the `nats` CLI would: on its subject, with
    /// `Nats-Msg-Id` = `msg_id` when given. Returns whether JetStream called it a duplicate.
    pub async fn publish(&self, env: &Envelope, msg_id: Option<&str>) -> bool {
        let mut msg = PublishMessage::build().payload(env.to_json().into());
        if let Some(id) = msg_id {
            msg = msg.message_id(id);
        }
        let ack = self.js.send_publish(env.subject(), msg).await.expect("publish").await.expect("ack");
        ack.duplicate
    }

    /// Waits until nothing more can happen (see `common::harness::settled`).
    pub async fn settle(&self) {
        assert!(settled(&self.js, &self.databases, &self.events, WAIT).await, "the system did not settle");
    }

    /// The saga of `order` as a stable transcript, once the system has settled.
    pub async fn transcript(&self, order: &str, names: &[(&str, String)]) -> Value {
        self.settle().await;
        let mut all = vec![("order", order.to_owned())];
        all.extend(names.iter().cloned());
        transcript(&self.events.saga(order).await, &all)
    }

    /// The business days svc-settlement booked `order`'s ledger entries on.
    pub fn business_days(&self, order: &str) -> Vec<String> {
        let db = self.databases.iter().find(|p| p.ends_with("svc-settlement.db")).expect("settlement database");
        let conn = rusqlite::Connection::open(db).expect("open database");
        let mut stmt = conn.prepare("SELECT DISTINCT business_date FROM ledger WHERE order_id = ?1").expect("prepare");
        stmt.query_map([order], |r| r.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
    }

    /// `GET /settlements/daily?date=<date>` as `seller`.
    pub async fn daily_report(&self, seller: Uuid, date: &str) -> Value {
        let res = self
            .http
            .get(format!("http://{}/settlements/daily?date={date}", self.settlement))
            .bearer_auth(self.token(seller, Role::Seller))
            .send()
            .await
            .expect("request");
        json_of(res, 200).await
    }

    /// How many rows `sql` counts in the database of `service` (e.g. "svc-product").
    pub fn count(&self, service: &str, sql: &str) -> i64 {
        let db = self.databases.iter().find(|p| p.ends_with(format!("{service}.db"))).expect("known service");
        let conn = rusqlite::Connection::open(db).expect("open database");
        conn.query_row(sql, [], |r| r.get(0)).expect("count")
    }
}

/// The body as JSON after checking the status.
pub async fn json_of(res: reqwest::Response, status: u16) -> Value {
    let actual = res.status().as_u16();
    let body = res.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {body}");
    serde_json::from_str(&body).expect("JSON body")
}
