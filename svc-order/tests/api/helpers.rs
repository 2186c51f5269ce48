//! A running svc-order on a free port with a fresh database and its own nats-server, tokens from a
//! test issuer, and a stand-in for svc-product and svc-payment: their events, published by hand.

use std::{net::SocketAddr, time::Duration};

use async_nats::jetstream::{
    self,
    consumer::{self, PullConsumer},
    message::PublishMessage,
};
use clap::Parser;
use common::{
    Envelope, Event, PaymentMethod, Role, Won,
    event::{
        OrderCreated, PaymentCancelled, PaymentCompleted, PaymentDecline, PaymentFailed, StockRejected, StockRejection,
        StockReserved,
    },
    harness::{EventLog, NatsServer, TestIssuer},
};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use svc_order::{App, Config};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a test waits for anything asynchronous before failing.
pub const WAIT: Duration = Duration::from_secs(15);
/// The unit price the stand-in svc-product charges.
pub const UNIT_PRICE: Won = Won(15_000);

pub struct TestApp {
    pub addr: SocketAddr,
    /// Kept for the test's lifetime: dropping it stops the server.
    _nats: NatsServer,
    pub issuer: TestIssuer,
    pub bus: Bus,
    pub http: reqwest::Client,
    stop: CancellationToken,
    data: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let nats = NatsServer::start().await;
        // Before the app starts, so its verifier loads the test key with the initial key load.
        let issuer = TestIssuer::publish(&nats).await;
        let data = tempfile::tempdir().unwrap();
        let config = Config::parse_from([
            "svc-order",
            "--http-addr",
            "127.0.0.1:0",
            "--nats-url",
            &nats.url(),
            "--data-dir",
            data.path().to_str().unwrap(),
        ]);
        let stop = CancellationToken::new();
        let app = App::build(config, stop.clone()).await.expect("svc-order starts");
        let addr = app.addr();
        tokio::spawn(app.run_until_stopped());
        let client = nats.client().await;
        let bus = Bus { events: EventLog::record(&client).await, js: jetstream::new(client) };
        TestApp { addr, _nats: nats, issuer, bus, http: reqwest::Client::new(), stop, data }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A fresh user with `role` and a bearer token for them.
    pub fn user(&self, role: Role) -> User {
        let id = Uuid::now_v7();
        User { id, token: self.issuer.token(id, role) }
    }

    pub fn customer(&self) -> User {
        self.user(Role::Customer)
    }

    /// `POST /orders` with `body`, ready for extra headers.
    pub fn post_order(&self, user: &User, body: &Value) -> RequestBuilder {
        self.http.post(self.url("/orders")).bearer_auth(&user.token).json(body)
    }

    /// Places a valid order and returns its (202) body.
    pub async fn place(&self, user: &User) -> Value {
        let res = self.post_order(user, &order_body()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        res.json().await.unwrap()
    }

    pub async fn get(&self, user: &User, path: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(&user.token).send().await.unwrap()
    }

    /// `SELECT count(*) ...` straight from the service's database file.
    pub fn count(&self, sql: &str) -> i64 {
        let db = rusqlite::Connection::open(self.data.path().join("svc-order.db")).unwrap();
        db.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Polls `GET /orders/{id}` until the order has `status`.
    pub async fn order_with_status(&self, user: &User, id: &str, status: &str) -> Value {
        common::harness::eventually(WAIT, || async {
            let res = self.get(user, &format!("/orders/{id}")).await;
            let body: Value = res.json().await.ok()?;
            (body["status"] == status).then_some(body)
        })
        .await
        .unwrap_or_else(|| panic!("order {id} did not become {status}"))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// A valid order request.
pub fn order_body() -> Value {
    json!({"productId": Uuid::now_v7(), "quantity": 2, "paymentMethod": "CARD"})
}

/// How the stand-in services answer an order.
#[derive(Debug, Clone, Copy)]
pub enum Play {
    /// Stock reserved, payment completed.
    Paid,
    /// Stock rejected.
    Rejected(StockRejection),
    /// Stock reserved, payment declined.
    Declined(PaymentDecline),
}

/// The stream as the other services see it: publish events by hand, watch what comes out.
#[derive(Clone)]
pub struct Bus {
    pub js: jetstream::Context,
    pub events: EventLog,
}

impl Bus {
    /// Publishes `env` as its producer's relay would, with `Nats-Msg-Id` = the event id.
    pub async fn publish(&self, env: &Envelope) {
        self.publish_with_msg_id(env, &env.id.to_string()).await;
    }

    /// Publishes `env` with any `Nats-Msg-Id`: another id gets past JetStream's dedupe, as a
    /// re-publish after the dedupe window would.
    pub async fn publish_with_msg_id(&self, env: &Envelope, msg_id: &str) {
        let msg = PublishMessage::build().payload(env.to_json().into()).message_id(msg_id);
        self.js.send_publish(env.subject(), msg).await.unwrap().await.unwrap();
    }

    /// Waits for an event of `event_type` in the saga of `order`.
    pub async fn wait_for(&self, event_type: &str, order: &str) -> Envelope {
        self.events
            .wait_for(WAIT, |e| e.event.event_type() == event_type && e.correlation_id == order)
            .await
            .unwrap_or_else(|| panic!("no {event_type} for order {order}"))
    }

    /// svc-order's saga consumer as JetStream sees it (`None` until the app has created it).
    pub async fn saga_consumer(&self) -> Option<consumer::Info> {
        let mut consumer: PullConsumer =
            self.js.get_consumer_from_stream("svc-order", common::bus::STREAM).await.ok()?;
        consumer.info().await.ok().cloned()
    }

    /// How many events of `event_type` the saga of `order` has seen.
    pub async fn count(&self, event_type: &str, order: &str) -> usize {
        self.events.saga(order).await.iter().filter(|e| e.event.event_type() == event_type).count()
    }

    /// Plays svc-product's and svc-payment's parts for the order `created` started.
    pub async fn play(&self, created: &Envelope, play: Play) {
        match play {
            Play::Paid => {
                let reserved = stock_reserved(created);
                self.publish(&reserved).await;
                self.publish(&payment_completed(&reserved)).await;
            }
            Play::Rejected(reason) => self.publish(&stock_rejected(created, reason)).await,
            Play::Declined(decline) => {
                let reserved = stock_reserved(created);
                self.publish(&reserved).await;
                self.publish(&payment_failed(&reserved, decline)).await;
            }
        }
    }

    /// Plays `play` in the background as soon as the next order is created (the test app's
    /// first and only one), while the test's request is still waiting.
    pub fn play_when_created(&self, play: Play) {
        let bus = self.clone();
        tokio::spawn(async move {
            let created = bus.events.wait_for(WAIT, |e| matches!(e.event, Event::OrderCreated(_))).await;
            bus.play(&created.expect("an order.created"), play).await;
        });
    }
}

pub fn created_data(env: &Envelope) -> OrderCreated {
    match &env.event {
        Event::OrderCreated(c) => c.clone(),
        other => panic!("expected order.created, got {other:?}"),
    }
}

fn reserved_data(env: &Envelope) -> StockReserved {
    match &env.event {
        Event::StockReserved(r) => r.clone(),
        other => panic!("expected stock.reserved, got {other:?}"),
    }
}

/// svc-product's answer when it has stock.
pub fn stock_reserved(created: &Envelope) -> Envelope {
    let c = created_data(created);
    let event = Event::StockReserved(StockReserved {
        order_id: c.order_id,
        product_id: c.product_id,
        quantity: c.quantity,
        unit_price: UNIT_PRICE,
        amount: UNIT_PRICE.times(c.quantity).unwrap(),
        seller_id: Uuid::now_v7(),
        category: "books".into(),
        user_id: c.user_id,
        payment_method: c.payment_method,
    });
    Envelope::caused_by("svc-product", created, event)
}

pub fn stock_rejected(created: &Envelope, reason: StockRejection) -> Envelope {
    let c = created_data(created);
    let event = Event::StockRejected(StockRejected {
        order_id: c.order_id,
        product_id: c.product_id,
        quantity: c.quantity,
        reason,
    });
    Envelope::caused_by("svc-product", created, event)
}

pub fn payment_completed(reserved: &Envelope) -> Envelope {
    let r = reserved_data(reserved);
    let event = Event::PaymentCompleted(PaymentCompleted {
        payment_id: Uuid::now_v7(),
        order_id: r.order_id,
        user_id: r.user_id,
        amount: r.amount,
        method: r.payment_method,
        seller_id: r.seller_id,
        category: r.category,
        product_id: r.product_id,
        quantity: r.quantity,
    });
    Envelope::caused_by("svc-payment", reserved, event)
}

pub fn payment_failed(reserved: &Envelope, reason: PaymentDecline) -> Envelope {
    let r = reserved_data(reserved);
    let event = Event::PaymentFailed(PaymentFailed {
        payment_id: Uuid::now_v7(),
        order_id: r.order_id,
        user_id: r.user_id,
        amount: r.amount,
        method: r.payment_method,
        reason,
    });
    Envelope::caused_by("svc-payment", reserved, event)
}

pub fn payment_cancelled(completed: &Envelope) -> Envelope {
    let Event::PaymentCompleted(p) = &completed.event else { panic!("expected payment.completed") };
    let event = Event::PaymentCancelled(PaymentCancelled {
        payment_id: p.payment_id,
        order_id: p.order_id,
        user_id: p.user_id,
        amount: p.amount,
        seller_id: p.seller_id,
        category: p.category.clone(),
        product_id: p.product_id,
        quantity: p.quantity,
    });
    Envelope::caused_by("svc-payment", completed, event)
}

/// An `order.created` as a person would publish it with the `nats` CLI, for an order svc-order
/// has never stored.
pub fn hand_made_order(user: Uuid) -> Envelope {
    let event = Event::OrderCreated(OrderCreated {
        order_id: Uuid::now_v7(),
        user_id: user,
        product_id: Uuid::now_v7(),
        quantity: 1,
        payment_method: PaymentMethod::BankTransfer,
    });
    Envelope::new("nats-cli", event)
}

/// Snapshot settings that replace what changes from run to run: ids and times.
pub fn redacted() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[uuid]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[time]");
    settings
}
