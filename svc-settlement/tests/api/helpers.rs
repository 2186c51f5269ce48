//! A real svc-settlement on port 0 with a fresh SQLite file, a real nats-server, a token issuer,
//! an event recorder and a manual clock; plus the few ways tests poke and observe it.

use std::sync::Arc;

use common::{
    Envelope, Event, PaymentMethod, Role, Won,
    event::{PaymentCancelled, PaymentCompleted},
    harness,
};
use jiff::Timestamp;
use serde_json::Value;
use svc_settlement::{Config, clock::ManualClock};
use uuid::Uuid;

pub use common::harness::{WAIT, json};

/// svc-settlement under test (see [`harness::TestApp`]) on a manual clock, plus the requests its
/// tests are written in.
pub struct TestApp {
    app: harness::TestApp<Config>,
    /// Drives the automatic close; starts where the test said and moves only when told.
    pub clock: Arc<ManualClock>,
}

common::deref_test_app!(TestApp => Config);

/// A grace period of 136 years: the automatic close never closes anything.
const NO_AUTOMATIC_CLOSE: &str = "4294967295";

/// Starts svc-settlement with its clock at `now` (RFC 3339) plus `extra_args`. The scheduler
/// closes nothing unless `extra_args` set `--close-grace-secs`: a test that is not about it must
/// not find a day closed because it ran long.
pub async fn spawn_app(now: &str, extra_args: &[&str]) -> TestApp {
    let mut args = Vec::new();
    if !extra_args.contains(&"--close-grace-secs") {
        args.extend(["--close-grace-secs", NO_AUTOMATIC_CLOSE]);
    }
    args.extend_from_slice(extra_args);
    let clock = Arc::new(ManualClock::new(at(now)));
    let on_clock = clock.clone();
    let app = harness::TestApp::builder()
        .args(&args)
        .build_with(move |config: Config, stop| config.build_with_clock(stop, on_clock.clone()))
        .start()
        .await;
    TestApp { app, clock }
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
            req = req.bearer_auth(self.token_for(id, role));
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
