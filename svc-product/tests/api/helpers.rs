//! Spawns svc-product in-process on port 0 with a fresh database and its own nats-server, and
//! offers the few requests and events the tests are written in.

use std::{net::SocketAddr, time::Duration};

use async_nats::jetstream::{self, consumer::PullConsumer, context::PublishAckFuture, message::PublishMessage};
use clap::Parser;
use common::{
    Envelope, Event, PaymentMethod, Role, Won, bus,
    db::{Db, DbError},
    event::{OrderCreated, PaymentCancelled, PaymentDecline, PaymentFailed},
    harness::{EventLog, NatsServer, TestIssuer, eventually},
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use svc_product::{App, Config, SERVICE};

/// How long anything may take to happen before a test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub db: Db,
    pub js: jetstream::Context,
    pub events: EventLog,
    pub issuer: TestIssuer,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
    // Last: the server outlives the app's connection until the app is told to stop.
    _nats: NatsServer,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawns the service with extra command-line flags (e.g. `--seed-demo`).
    pub async fn spawn_with(flags: &[&str]) -> Self {
        let nats = NatsServer::start().await;
        // Published before the app starts, so its verifier loads the key at start-up.
        let issuer = TestIssuer::publish(&nats).await;
        let client = nats.client().await;
        let events = EventLog::record(&client).await;
        let dir = tempfile::tempdir().unwrap();
        let url = nats.url();
        let data_dir = dir.path().to_str().unwrap();
        let args = ["svc-product", "--http-addr", "127.0.0.1:0", "--nats-url", &url, "--data-dir", data_dir];
        let config = Config::parse_from(args.iter().chain(flags));
        let stop = CancellationToken::new();
        let app = App::build(config, stop.clone()).await.expect("svc-product builds");
        let (addr, db) = (app.addr(), app.db());
        tokio::spawn(app.run_until_stopped());
        TestApp {
            addr,
            http: reqwest::Client::new(),
            db,
            js: jetstream::new(client),
            events,
            issuer,
            stop,
            _dir: dir,
            _nats: nats,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A fresh user with `role` and a bearer token for them.
    pub fn user(&self, role: Role) -> (Uuid, String) {
        let id = Uuid::now_v7();
        (id, self.issuer.token(id, role))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    /// Lists a product as the holder of `token`; panics unless it was created.
    pub async fn create_product(&self, token: &str, name: &str, category: &str, price: i64, stock: i64) -> Value {
        let body = serde_json::json!({"name": name, "category": category, "price": price, "stock": stock});
        let res = self.post("/products", Some(token), body).await;
        assert_eq!(res.status(), 201, "creating {name}");
        res.json().await.unwrap()
    }

    /// A product listed by a fresh seller; returns its id.
    pub async fn product_with_stock(&self, price: i64, stock: i64) -> Uuid {
        let (_, token) = self.user(Role::Seller);
        let product = self.create_product(&token, "Drip Bags", "coffee", price, stock).await;
        product["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn stock(&self, product_id: Uuid) -> i64 {
        let res = self.get(&format!("/products/{product_id}")).await;
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["stock"].as_i64().unwrap()
    }

    /// Publishes `env` as its producer's relay would: `Nats-Msg-Id` = event id.
    pub async fn publish(&self, env: &Envelope) {
        self.publish_with_msg_id(env, &env.id.to_string()).await;
    }

    /// Publishes `env` under any `Nats-Msg-Id`, e.g. to get past JetStream's dedupe window.
    pub async fn publish_with_msg_id(&self, env: &Envelope, msg_id: &str) {
        self.send(env, msg_id).await.await.expect("JetStream acked the event");
    }

    /// Sends without awaiting the ack, so many events can be in flight at once.
    pub async fn send(&self, env: &Envelope, msg_id: &str) -> PublishAckFuture {
        let msg = PublishMessage::build().payload(env.to_json().into()).message_id(msg_id);
        self.js.send_publish(env.subject(), msg).await.expect("publish")
    }

    /// Waits until svc-product's consumer has acked everything in the stream and its outbox has
    /// published everything it committed: the state is final and every reaction is countable.
    pub async fn settled(&self) {
        let js = self.js.clone();
        eventually(WAIT, || {
            let js = js.clone();
            async move {
                let mut consumer: PullConsumer = js.get_consumer_from_stream(SERVICE, bus::STREAM).await.ok()?;
                let info = consumer.info().await.ok()?;
                (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
            }
        })
        .await
        .expect("svc-product's consumer did not drain");
        eventually(WAIT, || async {
            (self.count("SELECT count(*) FROM outbox WHERE published_at IS NULL").await == 0).then_some(())
        })
        .await
        .expect("svc-product's outbox did not drain");
    }

    /// A single number from svc-product's database.
    pub async fn count(&self, sql: &'static str) -> i64 {
        self.db.read(move |c| c.query_row(sql, [], |r| r.get(0))).await.unwrap()
    }

    /// The events svc-product emitted for `order_id`, from its outbox (what it committed, however
    /// many copies the bus carried), in commit order.
    pub async fn emitted_for(&self, order_id: Uuid) -> Vec<Envelope> {
        let key = format!("%.{order_id}");
        self.db
            .read(move |c| {
                let mut stmt = c.prepare("SELECT subject, payload FROM outbox WHERE subject LIKE ?1 ORDER BY seq")?;
                let rows = stmt.query_map([key], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
                let rows = rows.collect::<Result<Vec<_>, _>>()?;
                Ok::<_, DbError>(rows.iter().map(|(s, p)| Envelope::decode(s, p).unwrap()).collect())
            })
            .await
            .unwrap()
    }
}

/// `order.created` for `quantity` units of `product_id`, by a fresh customer paying by card.
pub fn order_created(product_id: Uuid, quantity: u32) -> Envelope {
    order_created_for(Uuid::now_v7(), product_id, quantity)
}

/// `order.created` with a given order id (a new event id every call).
pub fn order_created_for(order_id: Uuid, product_id: Uuid, quantity: u32) -> Envelope {
    Envelope::new(
        "test-order",
        Event::OrderCreated(OrderCreated {
            order_id,
            user_id: Uuid::now_v7(),
            product_id,
            quantity,
            payment_method: PaymentMethod::Card,
        }),
    )
}

/// `payment.failed` for `order_id`, caused by `cause` (e.g. the `stock.reserved`).
pub fn payment_failed(cause: &Envelope, order_id: Uuid, amount: Won) -> Envelope {
    let failed = PaymentFailed {
        payment_id: Uuid::now_v7(),
        order_id,
        user_id: Uuid::now_v7(),
        amount,
        method: PaymentMethod::Card,
        reason: PaymentDecline::Declined,
    };
    Envelope::caused_by("test-payment", cause, Event::PaymentFailed(failed))
}

/// `payment.cancelled` for `order_id`, caused by `cause`.
pub fn payment_cancelled(cause: &Envelope, order_id: Uuid, product_id: Uuid, quantity: u32, amount: Won) -> Envelope {
    let cancelled = PaymentCancelled {
        payment_id: Uuid::now_v7(),
        order_id,
        user_id: Uuid::now_v7(),
        amount,
        seller_id: Uuid::now_v7(),
        category: "coffee".into(),
        product_id,
        quantity,
    };
    Envelope::caused_by("test-payment", cause, Event::PaymentCancelled(cancelled))
}

/// The event types in `events`, in order.
pub fn types(events: &[Envelope]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.event_type()).collect()
}
