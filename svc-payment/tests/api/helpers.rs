//! A real svc-payment on port 0 with a fresh SQLite file, a real nats-server, a token issuer and an
//! event recorder; plus the few ways tests poke and observe it.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use async_nats::jetstream::{self, message::PublishMessage};
use clap::Parser;
use common::{
    Envelope, Event, PaymentMethod, Role, Won,
    event::StockReserved,
    harness::{EventLog, NatsServer, TestIssuer, eventually},
};
use svc_payment::{App, Config};
use tokio_util::sync::DropGuard;
use uuid::Uuid;

/// How long a test waits for anything asynchronous before failing.
pub const WAIT: Duration = Duration::from_secs(15);

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub js: jetstream::Context,
    pub events: EventLog,
    pub issuer: TestIssuer,
    db_path: PathBuf,
    // Dropped in declaration order: stop the app before its server and data go away.
    _stop: DropGuard,
    _data: tempfile::TempDir,
    _nats: NatsServer,
}

/// Starts svc-payment with the default gateway plus `extra_args` (e.g. `--payment-limit 10`).
pub async fn spawn_app(extra_args: &[&str]) -> TestApp {
    let nats = NatsServer::start().await;
    // Published before the app starts so its verifier knows the key from the first request on.
    let issuer = TestIssuer::publish(&nats).await;
    let data = tempfile::tempdir().expect("data dir");
    let url = nats.url();
    let dir = data.path().to_str().expect("utf-8 temp path");
    let mut args = vec!["svc-payment", "--http-addr", "127.0.0.1:0", "--nats-url", &url, "--data-dir", dir];
    args.extend_from_slice(extra_args);
    let config = Config::parse_from(args);
    let db_path = config.common.db_path("svc-payment");

    let stop = tokio_util::sync::CancellationToken::new();
    let app = App::build(config, stop.clone()).await.expect("svc-payment builds");
    let addr = app.addr();
    tokio::spawn(app.run_until_stopped());

    let client = nats.client().await;
    let events = EventLog::record(&client).await;
    TestApp {
        addr,
        http: reqwest::Client::new(),
        js: jetstream::new(client),
        events,
        issuer,
        db_path,
        _stop: stop.drop_guard(),
        _data: data,
        _nats: nats,
    }
}

/// A consistent `stock.reserved` for a new order: `quantity` x `unit_price`, paid by `user`.
pub fn reserved(user: Uuid, unit_price: i64, quantity: u32, method: PaymentMethod) -> StockReserved {
    StockReserved {
        order_id: Uuid::now_v7(),
        product_id: Uuid::now_v7(),
        quantity,
        unit_price: Won(unit_price),
        amount: Won(unit_price * i64::from(quantity)),
        seller_id: Uuid::now_v7(),
        category: "books".into(),
        user_id: user,
        payment_method: method,
    }
}

/// The envelope svc-product would publish for `reserved`.
pub fn envelope(reserved: &StockReserved) -> Envelope {
    Envelope::new("svc-product", Event::StockReserved(reserved.clone()))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path`, with a bearer token for `caller` if given.
    pub async fn get(&self, path: &str, caller: Option<(Uuid, Role)>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some((id, role)) = caller {
            req = req.bearer_auth(self.issuer.token(id, role));
        }
        req.send().await.expect("request sent")
    }

    /// `POST /payments/{id}/cancel` as `caller`.
    pub async fn cancel(&self, payment: Uuid, caller: (Uuid, Role)) -> reqwest::Response {
        let req = self.http.post(self.url(&format!("/payments/{payment}/cancel")));
        req.bearer_auth(self.issuer.token(caller.0, caller.1)).send().await.expect("request sent")
    }

    /// Publishes `env` on JetStream with `Nats-Msg-Id = env.id`, as the outbox relay would.
    /// Returns the stream sequence it was stored at.
    pub async fn publish(&self, env: &Envelope) -> u64 {
        self.publish_as(env, &env.id.to_string()).await
    }

    /// Publishes `env` under another message id, as a re-publish past the dedupe window would.
    pub async fn publish_as(&self, env: &Envelope, msg_id: &str) -> u64 {
        let msg = PublishMessage::build().payload(env.to_json().into()).message_id(msg_id);
        let ack = self.js.send_publish(env.subject(), msg).await.expect("publish sent");
        let ack = ack.await.expect("publish acked");
        assert!(!ack.duplicate, "JetStream dropped {msg_id} as a duplicate");
        ack.sequence
    }

    /// The `payment.*` event for `order`, once the relay published it.
    pub async fn payment_event(&self, order: Uuid) -> Envelope {
        let key = order.to_string();
        self.events
            .wait_for(WAIT, |e| e.event.event_type().starts_with("payment.") && e.event.key() == key)
            .await
            .unwrap_or_else(|| panic!("no payment.* event for order {order}"))
    }

    /// Waits until svc-payment's consumer has acknowledged everything up to stream sequence `seq`
    /// (applied, skipped as a duplicate, or dead-lettered): after that its effects are committed.
    pub async fn consumed_through(&self, seq: u64) {
        let caught_up = eventually(WAIT, || async {
            let stream = self.js.get_stream(common::bus::STREAM).await.ok()?;
            let info = stream.consumer_info("svc-payment").await.ok()?;
            (info.ack_floor.stream_sequence >= seq).then_some(())
        })
        .await;
        caught_up.unwrap_or_else(|| panic!("svc-payment did not consume through sequence {seq}"));
    }

    /// `SELECT count(*) FROM <table_and_filter>` on svc-payment's database, with `?1 = arg`.
    pub fn count(&self, table_and_filter: &str, arg: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db_path).expect("open svc-payment.db");
        conn.query_row(&format!("SELECT count(*) FROM {table_and_filter}"), [arg], |r| r.get(0)).expect("count")
    }

    /// Why the message `msg_id` was dead-lettered.
    pub fn dead_letter_reason(&self, msg_id: &str) -> String {
        let conn = rusqlite::Connection::open(&self.db_path).expect("open svc-payment.db");
        conn.query_row("SELECT reason FROM dead_letter WHERE message_id = ?1", [msg_id], |r| r.get(0))
            .expect("dead letter")
    }

    /// How many payment rows `order` has.
    pub fn payments_of(&self, order: Uuid) -> i64 {
        self.count("payments WHERE order_id = ?1", &order.to_string())
    }

    /// How many `payment.*` events for `order` sit in the outbox (published or not).
    pub fn payment_events_in_outbox(&self, order: Uuid) -> i64 {
        self.count("outbox WHERE subject LIKE 'payment.%.' || ?1", &order.to_string())
    }
}

/// A body as JSON, after checking the status.
pub async fn json(res: reqwest::Response, status: u16) -> serde_json::Value {
    let actual = res.status().as_u16();
    let body = res.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {body}");
    serde_json::from_str(&body).expect("JSON body")
}
