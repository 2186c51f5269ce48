//! A real svc-payment on port 0 with a fresh SQLite file, a real nats-server, a real payment
//! gateway, a token issuer and an event recorder; plus the few ways tests poke and observe it.

use common::{Envelope, Event, PaymentMethod, Role, Won, event::StockReserved, harness};
use payment_gateway::harness::TestGateway;
use svc_payment::Config;
use uuid::Uuid;

pub use common::harness::{WAIT, json};

/// svc-payment under test (see [`harness::TestApp`]), plus the requests its tests are written in.
pub struct TestApp {
    // Declared first, so dropped first: the service's end-of-test check runs while its gateway
    // still answers.
    app: harness::TestApp<Config>,
    pub gateway: TestGateway,
}

common::deref_test_app!(TestApp => Config);

/// Starts svc-payment on a gateway started with `gateway_args` (e.g. `--payment-limit 10`).
pub async fn spawn_app(gateway_args: &[&str]) -> TestApp {
    spawn_app_with(gateway_args, &[]).await
}

/// Starts svc-payment with `args` on a gateway started with `gateway_args`.
pub async fn spawn_app_with(gateway_args: &[&str], args: &[&str]) -> TestApp {
    let gateway = TestGateway::start(gateway_args).await;
    let url = gateway.url();
    let all: Vec<&str> = ["--gateway-url", url.as_str()].into_iter().chain(args.iter().copied()).collect();
    TestApp { app: harness::TestApp::builder().args(&all).start().await, gateway }
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
    /// `GET path`, with a bearer token for `caller` if given.
    pub async fn get(&self, path: &str, caller: Option<(Uuid, Role)>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some((id, role)) = caller {
            req = req.bearer_auth(self.token_for(id, role));
        }
        req.send().await.expect("request sent")
    }

    /// `POST /payments/{id}/cancel` as `caller`.
    pub async fn cancel(&self, payment: Uuid, caller: (Uuid, Role)) -> reqwest::Response {
        let req = self.http.post(self.url(&format!("/payments/{payment}/cancel")));
        req.bearer_auth(self.token_for(caller.0, caller.1)).send().await.expect("request sent")
    }

    /// The `payment.*` event for `order`, once the relay published it.
    pub async fn payment_event(&self, order: Uuid) -> Envelope {
        let key = order.to_string();
        self.events
            .wait_for(WAIT, |e| e.event.event_type().starts_with("payment.") && e.event.key() == key)
            .await
            .unwrap_or_else(|| panic!("no payment.* event for order {order}"))
    }

    /// `POST path` to the gateway under the idempotency `key`, as svc-payment would send it.
    pub async fn gateway_post(&self, path: &str, key: &str, body: serde_json::Value) -> reqwest::Response {
        let url = format!("{}{path}", self.gateway.url());
        self.http.post(url).header("Idempotency-Key", key).json(&body).send().await.expect("request sent")
    }

    /// How many payment rows `order` has.
    pub fn payments_of(&self, order: Uuid) -> i64 {
        self.count("SELECT count(*) FROM payments WHERE order_id = ?1", [order.to_string()])
    }

    /// How many `payment.*` events for `order` sit in the outbox (published or not).
    pub fn payment_events_in_outbox(&self, order: Uuid) -> i64 {
        self.count("SELECT count(*) FROM outbox WHERE subject LIKE 'payment.%.' || ?1", [order.to_string()])
    }
}
