//! A running svc-order on a free port with a fresh database and its own nats-server, tokens from a
//! test issuer, and a stand-in for svc-product and svc-payment: their events, published by hand.

use std::{ops::Deref, sync::Arc};

use async_nats::jetstream::consumer::{self, PullConsumer};
use common::{
    Envelope, Event, Role,
    event::{PaymentDecline, StockRejection},
    harness::{self, TestBus},
};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use svc_order::Config;
use uuid::Uuid;

pub use common::harness::WAIT;
pub use common::harness::fixtures::{
    UNIT_PRICE, created_data, hand_made_order, payment_cancelled, payment_completed, payment_failed, stock_rejected,
    stock_reserved,
};

/// svc-order under test (see [`harness::TestApp`]), plus the requests its tests are written in
/// and `bus`, the stand-in for the other services.
pub struct TestApp {
    app: harness::TestApp<Config>,
    pub bus: Bus,
}

common::deref_test_app!(TestApp => Config);

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawns svc-order with extra flags (e.g. `--order-deadline-secs 1`).
    pub async fn spawn_with(flags: &[&str]) -> Self {
        let app = harness::TestApp::builder().args(flags).start().await;
        TestApp { bus: Bus(app.bus.clone()), app }
    }

    /// A fresh user with `role` and a bearer token for them.
    pub fn user(&self, role: Role) -> User {
        let id = Uuid::now_v7();
        User { id, token: self.token_for(id, role) }
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

    /// Places a valid order (2 units) and waits for its `order.created`; returns both.
    pub async fn placed(&self, user: &User) -> (String, Envelope) {
        let id = self.place(user).await["id"].as_str().expect("order id").to_owned();
        let created = self.bus.wait_for("order.created", &id).await;
        (id, created)
    }

    pub async fn get(&self, user: &User, path: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(&user.token).send().await.unwrap()
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

/// The stream as the other services see it: publish events by hand (see [`TestBus`]), watch
/// what comes out, play the other services' parts.
#[derive(Clone)]
pub struct Bus(Arc<TestBus>);

impl Deref for Bus {
    type Target = TestBus;
    fn deref(&self) -> &TestBus {
        &self.0
    }
}

impl Bus {
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
            Play::Rejected(reason) => {
                self.publish(&stock_rejected(created, reason)).await;
            }
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

/// Snapshot settings that replace what changes from run to run: ids and times.
pub fn redacted() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[uuid]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[time]");
    settings
}
