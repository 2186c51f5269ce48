//! Spawns svc-product in-process on port 0 with a fresh database and its own nats-server, and
//! offers the few requests and events the tests are written in.

use common::{
    Envelope, Event, PaymentMethod, Role, Won,
    db::DbError,
    event::{OrderCreated, PaymentCancelled, PaymentDecline, PaymentFailed},
    harness,
};
use serde_json::Value;
use uuid::Uuid;

use svc_product::Config;

pub use common::harness::WAIT;

/// svc-product under test (see [`harness::TestApp`]), plus the requests its tests are written in.
pub struct TestApp {
    app: harness::TestApp<Config>,
}

common::deref_test_app!(TestApp => Config);

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Spawns the service with extra command-line flags (e.g. `--seed-demo`).
    pub async fn spawn_with(flags: &[&str]) -> Self {
        TestApp { app: harness::TestApp::builder().args(flags).start().await }
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

    /// The events svc-product emitted for `order_id`, from its outbox (what it committed, however
    /// many copies the bus carried), in commit order.
    pub async fn emitted_for(&self, order_id: Uuid) -> Vec<Envelope> {
        let key = format!("%.{order_id}");
        self.db()
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
