//! A real svc-settlement on port 0 with a fresh SQLite file, a real nats-server, a token issuer,
//! an event recorder and a manual clock; plus the few ways tests poke and observe it.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_nats::jetstream::{self, message::PublishMessage};
use clap::Parser;
use common::{
    Envelope, Event, PaymentMethod, Role, Won,
    event::{PaymentCancelled, PaymentCompleted},
    harness::{EventLog, NatsServer, TestIssuer, eventually},
};
use jiff::Timestamp;
use serde_json::Value;
use svc_settlement::{App, Config, clock::ManualClock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a test waits for anything asynchronous before failing.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub js: jetstream::Context,
    pub events: EventLog,
    pub issuer: TestIssuer,
    /// Drives the automatic close; starts where the test said and moves only when told.
    pub clock: Arc<ManualClock>,
    pub config: Config,
    stop: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _data: tempfile::TempDir,
    _nats: NatsServer,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A grace period of 136 years: the automatic close never closes anything.
const NO_AUTOMATIC_CLOSE: &str = "4294967295";

/// Starts svc-settlement with its clock at `now` (RFC 3339) plus `extra_args`. The scheduler
/// closes nothing unless `extra_args` set `--close-grace-secs`: a test that is not about it must
/// not find a day closed because it ran long.
pub async fn spawn_app(now: &str, extra_args: &[&str]) -> TestApp {
    let nats = NatsServer::start().await;
    // Published before the app starts so its verifier knows the key from the first request on.
    let issuer = TestIssuer::publish(&nats).await;
    let data = tempfile::tempdir().expect("data dir");
    let url = nats.url();
    let dir = data.path().to_str().expect("utf-8 temp path");
    let mut args = vec!["svc-settlement", "--http-addr", "127.0.0.1:0", "--nats-url", &url, "--data-dir", dir];
    if !extra_args.contains(&"--close-grace-secs") {
        args.extend(["--close-grace-secs", NO_AUTOMATIC_CLOSE]);
    }
    args.extend_from_slice(extra_args);
    let config = Config::parse_from(args);

    let client = nats.client().await;
    let events = EventLog::record(&client).await;
    let mut app = TestApp {
        addr: "127.0.0.1:0".parse().unwrap(),
        http: reqwest::Client::new(),
        js: jetstream::new(client),
        events,
        issuer,
        clock: Arc::new(ManualClock::new(at(now))),
        config,
        stop: CancellationToken::new(),
        server: None,
        _data: data,
        _nats: nats,
    };
    app.start().await;
    app
}

/// An RFC 3339 instant.
pub fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn offset(t: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(t.as_nanosecond()).expect("in range")
}

/// A `payment.completed` for a new order of `seller` in `category`, occurred at `when`.
pub fn sale(seller: Uuid, category: &str, amount: i64, when: Timestamp) -> Envelope {
    let data = PaymentCompleted {
        payment_id: Uuid::now_v7(),
        order_id: Uuid::now_v7(),
        user_id: Uuid::now_v7(),
        amount: Won(amount),
        method: PaymentMethod::Card,
        seller_id: seller,
        category: category.into(),
        product_id: Uuid::now_v7(),
        quantity: 1,
    };
    let mut env = Envelope::new("svc-payment", Event::PaymentCompleted(data));
    env.occurred_at = offset(when);
    env
}

/// The `payment.cancelled` refunding `sale` in full, occurred at `when`.
pub fn refund(sale: &Envelope, when: Timestamp) -> Envelope {
    let s = completed(sale);
    let data = PaymentCancelled {
        payment_id: s.payment_id,
        order_id: s.order_id,
        user_id: s.user_id,
        amount: s.amount,
        seller_id: s.seller_id,
        category: s.category.clone(),
        product_id: s.product_id,
        quantity: s.quantity,
    };
    let mut env = Envelope::caused_by("svc-payment", sale, Event::PaymentCancelled(data));
    env.occurred_at = offset(when);
    env
}

pub fn completed(env: &Envelope) -> &PaymentCompleted {
    match &env.event {
        Event::PaymentCompleted(c) => c,
        other => panic!("not a payment.completed: {other:?}"),
    }
}

pub fn admin() -> Option<(Uuid, Role)> {
    Some((Uuid::now_v7(), Role::Admin))
}

impl TestApp {
    /// Builds and starts the service on the test's config and clock.
    pub async fn start(&mut self) {
        self.stop = CancellationToken::new();
        let app = App::build_with_clock(self.config.clone(), self.stop.clone(), self.clock.clone())
            .await
            .expect("svc-settlement builds");
        self.addr = app.addr();
        self.server = Some(tokio::spawn(app.run_until_stopped()));
    }

    /// Stops the service gracefully (the database and NATS stay).
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("svc-settlement stops cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path`, with a bearer token for `caller` if given.
    pub async fn get(&self, path: &str, caller: Option<(Uuid, Role)>) -> reqwest::Response {
        self.send(self.http.get(self.url(path)), caller).await
    }

    /// `POST path` without a body.
    pub async fn post(&self, path: &str, caller: Option<(Uuid, Role)>) -> reqwest::Response {
        self.send(self.http.post(self.url(path)), caller).await
    }

    async fn send(&self, mut req: reqwest::RequestBuilder, caller: Option<(Uuid, Role)>) -> reqwest::Response {
        if let Some((id, role)) = caller {
            req = req.bearer_auth(self.issuer.token(id, role));
        }
        req.send().await.expect("request sent")
    }

    /// The daily report for `date` as an admin sees it.
    pub async fn daily(&self, date: &str) -> Value {
        json(self.get(&format!("/settlements/daily?date={date}"), admin()).await, 200).await
    }

    /// The monthly report for `month` as an admin sees it.
    pub async fn monthly(&self, month: &str) -> Value {
        json(self.get(&format!("/settlements/monthly?month={month}"), admin()).await, 200).await
    }

    /// Closes `date` as an admin; the response is returned unchecked.
    pub async fn close(&self, date: &str) -> reqwest::Response {
        self.post(&format!("/settlements/close?date={date}"), admin()).await
    }

    /// Publishes `env` with `Nats-Msg-Id = env.id`, as the outbox relay would. Returns its
    /// stream sequence.
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

    /// Publishes `env` without any `Nats-Msg-Id`: JetStream cannot dedupe it at all.
    pub async fn publish_bare(&self, env: &Envelope) -> u64 {
        let ack = self.js.publish(env.subject(), env.to_json().into()).await.expect("publish sent");
        ack.await.expect("publish acked").sequence
    }

    /// Waits until the consumer has acknowledged everything up to stream sequence `seq` (applied,
    /// skipped as a duplicate, or dead-lettered): after that its effects are committed.
    pub async fn consumed_through(&self, seq: u64) {
        let caught_up = eventually(WAIT, || async {
            let stream = self.js.get_stream(common::bus::STREAM).await.ok()?;
            let info = stream.consumer_info("svc-settlement").await.ok()?;
            (info.ack_floor.stream_sequence >= seq).then_some(())
        })
        .await;
        caught_up.unwrap_or_else(|| panic!("svc-settlement did not consume through sequence {seq}"));
    }

    /// Publishes every envelope in order and waits until all are consumed.
    pub async fn publish_all(&self, envs: &[Envelope]) {
        let mut last = 0;
        for env in envs {
            last = self.publish(env).await;
        }
        self.consumed_through(last).await;
    }

    /// `SELECT count(*) FROM <table_and_filter>` on the service's database, with `?1 = arg`.
    pub fn count(&self, table_and_filter: &str, arg: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.config.db_path()).expect("open svc-settlement.db");
        conn.query_row(&format!("SELECT count(*) FROM {table_and_filter}"), [arg], |r| r.get(0)).expect("count")
    }

    /// The `settlement.closed` events for `date` seen so far.
    pub async fn closed_events(&self, date: &str) -> Vec<Envelope> {
        let subject = format!("settlement.closed.{date}");
        self.events.all().await.into_iter().filter(|(s, _)| *s == subject).map(|(_, e)| e).collect()
    }

    /// Waits for the `settlement.closed` event of `date`.
    pub async fn closed_event(&self, date: &str) -> Envelope {
        let subject = format!("settlement.closed.{date}");
        self.events
            .wait_for(WAIT, |e| e.subject() == subject)
            .await
            .unwrap_or_else(|| panic!("no settlement.closed for {date}"))
    }
}

/// A body as JSON, after checking the status.
pub async fn json(res: reqwest::Response, status: u16) -> Value {
    let actual = res.status().as_u16();
    let body = res.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {body}");
    serde_json::from_str(&body).expect("JSON body")
}
