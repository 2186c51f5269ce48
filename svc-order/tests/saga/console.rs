//! The saga console's API (`/console/api/*`) over the whole saga: the feed, the stuck list with
//! the service a saga waits on, the timeline against the trace, and a dead letter replayed with a
//! fixed payload completing its saga. The other services' figures and dead letters come over the
//! NATS services API, as in production. (The page itself is driven in Chromium by
//! `shopctl console-check`.)

use common::{
    Role,
    harness::{eventually, json},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Shop, WAIT};

struct Console {
    shop: Shop,
    admin: String,
    customer: Uuid,
    product: Uuid,
}

impl Console {
    async fn start() -> Console {
        let shop = Shop::start(&[]).await;
        let seller = Uuid::now_v7();
        let product = shop.product(seller, 12_000, 50, "books").await;
        let admin = shop.token(Uuid::now_v7(), Role::Admin);
        Console { shop, admin, customer: Uuid::now_v7(), product }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.shop.http.get(self.shop.order.url(path)).bearer_auth(&self.admin).send().await.expect("request")
    }

    async fn api(&self, path: &str) -> Value {
        json(self.get(path).await, 200).await
    }

    /// Polls `path` until `found` picks something out of its answer.
    async fn until<T>(&self, path: &str, what: &str, found: impl Fn(&Value) -> Option<T>) -> T {
        eventually(WAIT, || async { found(&self.api(path).await) })
            .await
            .unwrap_or_else(|| panic!("{what}: never seen in {path}"))
    }

    async fn order_status(&self, order: &str) -> String {
        self.shop.get_order(self.customer, order).await["status"].as_str().unwrap().to_owned()
    }
}

fn saga_in<'a>(answer: &'a Value, order: &str) -> Option<&'a Value> {
    answer["sagas"].as_array()?.iter().find(|s| s["orderId"] == order)
}

#[tokio::test]
async fn the_feed_shows_each_saga_and_its_timeline_is_the_trace() {
    let c = Console::start().await;
    let res = c.shop.place_order(c.customer, c.product, 2, Some(10)).await;
    let order = json(res, 201).await["id"].as_str().unwrap().to_owned();

    let feed = c.api(&format!("/console/api/sagas?user={}", c.customer)).await;
    let saga = saga_in(&feed, &order).expect("the order in the feed");
    assert_eq!((saga["status"].as_str(), saga["amount"].as_i64()), (Some("PAID"), Some(24_000)));
    assert_eq!(saga["waitingOn"], Value::Null);
    let other = c.api(&format!("/console/api/sagas?user={}", Uuid::now_v7())).await;
    assert!(saga_in(&other, &order).is_none(), "the user filter let another user's saga through");
    let failed = c.api("/console/api/sagas?state=FAILED").await;
    assert!(saga_in(&failed, &order).is_none(), "the state filter let a PAID saga through");

    // The timeline has every event the trace has, in the same order, each with its envelope.
    let trace = json(
        c.shop
            .http
            .get(c.shop.order.url(&format!("/orders/{order}/trace")))
            .bearer_auth(&c.admin)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let ids = |events: &Value| -> Vec<String> {
        events.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
    };
    // The settlement's booking of the sale is no saga event svc-order records; wait for the last one.
    let saga = c
        .until(&format!("/console/api/sagas/{order}"), "the whole timeline", |s| {
            (s["events"].as_array()?.len() == trace["events"].as_array()?.len()).then(|| s.clone())
        })
        .await;
    assert_eq!(ids(&saga["events"]), ids(&trace["events"]));
    let first = &saga["events"][0];
    assert_eq!((first["type"].as_str(), first["sinceStartMs"].as_i64()), (Some("order.created"), Some(0)));
    assert!(saga["events"].as_array().unwrap().iter().all(|e| e["envelope"]["id"] == e["id"]));
    assert_eq!(saga["watch"][0], format!("nats sub '*.*.{order}'"));

    // The overview counts it and hears from every service that runs here (svc-user does not).
    let overview = c.api("/console/api/overview").await;
    assert!(overview["sagas"]["PAID"].as_i64().unwrap() >= 1, "{overview}");
    let services: Vec<(&str, bool)> = overview["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["up"] == true))
        .collect();
    assert_eq!(
        services,
        [
            ("svc-user", false),
            ("svc-product", true),
            ("svc-order", true),
            ("svc-payment", true),
            ("svc-settlement", true)
        ]
    );
    let payment = &overview["services"][3];
    assert_eq!(payment["gateway"]["breaker"], "CLOSED", "{payment}");
    assert_eq!(payment["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn with_the_gateway_down_a_saga_is_stuck_waiting_on_svc_payment_until_it_returns() {
    let c = Console::start().await;
    c.shop.gateway.faults(json!({"down": true})).await;
    let res = c.shop.place_order(c.customer, c.product, 1, None).await;
    let order = json(res, 202).await["id"].as_str().unwrap().to_owned();
    let stuck = c
        .until("/console/api/stuck?olderThanSecs=1", "the order among the stuck", |s| saga_in(s, &order).cloned())
        .await;
    assert_eq!((stuck["status"].as_str(), stuck["waitingOn"].as_str()), (Some("STOCK_RESERVED"), Some("svc-payment")));
    assert_eq!(stuck["lastEvent"]["type"], "stock.reserved", "{stuck}");
    assert_eq!(c.order_status(&order).await, "STOCK_RESERVED", "the outage really held the saga");

    c.shop.gateway.faults(json!({"down": false})).await;
    c.until("/console/api/stuck?olderThanSecs=1", "the order leaving the stuck", |s| {
        saga_in(s, &order).is_none().then_some(())
    })
    .await;
    assert_eq!(c.order_status(&order).await, "PAID");
}

#[tokio::test]
async fn a_malformed_event_is_a_dead_letter_and_its_fixed_replay_completes_the_saga() {
    let c = Console::start().await;
    let order = Uuid::now_v7();
    let event = json!({
        "id": Uuid::now_v7(), "type": "order.created", "correlationId": order, "causationId": null,
        "occurredAt": "2026-12-01T09:00:00Z", "producer": "by-hand", "version": 1,
        "data": {"orderId": order, "userId": c.customer, "productId": c.product, "quantity": "one", "paymentMethod": "CARD"}
    });
    let msg_id = Uuid::now_v7().to_string();
    let publish =
        async_nats::jetstream::message::PublishMessage::build().payload(event.to_string().into()).message_id(&msg_id);
    c.shop.js.send_publish(format!("order.created.{order}"), publish).await.unwrap().await.unwrap();

    // Both consumers of order.created refuse it.
    let letters = c
        .until("/console/api/dead-letters", "both dead letters", |d| {
            let of_it: Vec<Value> =
                d["deadLetters"].as_array()?.iter().filter(|l| l["messageId"] == msg_id.as_str()).cloned().collect();
            (of_it.len() == 2).then_some(of_it)
        })
        .await;
    // (Expected, as the harness asks to be told.)
    c.shop.order.dead_letter(&msg_id).await;
    c.shop.product.dead_letter(&msg_id).await;
    let mut holders: Vec<&str> = letters.iter().map(|l| l["service"].as_str().unwrap()).collect();
    holders.sort();
    assert_eq!(holders, ["svc-order", "svc-product"]);
    let letter = letters.iter().find(|l| l["service"] == "svc-product").unwrap();
    assert!(letter["reason"].as_str().unwrap().contains("malformed"), "{letter}");

    let replay = |service: String, seq: i64, body: Value| {
        let c = &c;
        async move {
            c.shop
                .http
                .post(c.shop.order.url(&format!("/console/api/dead-letters/{service}/{seq}/replay")))
                .bearer_auth(&c.admin)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let seq = letter["seq"].as_i64().unwrap();
    let bad = json(replay("svc-product".into(), seq, json!({"payload": "{not json"})).await, 422).await;
    assert_eq!(bad["code"], "INVALID_PAYLOAD");
    let missing = json(replay("svc-product".into(), 999, json!({})).await, 404).await;
    assert_eq!(missing["code"], "DEAD_LETTER_NOT_FOUND");

    let mut fixed = event.clone();
    fixed["data"]["quantity"] = json!(1);
    let done = json(replay("svc-product".into(), seq, json!({"payload": fixed.to_string()})).await, 202).await;
    assert_eq!(done["publishedBy"], "svc-order", "order.* is svc-order's to publish: {done}");
    assert_eq!(done["marked"].as_array().unwrap().len(), 2, "both copies marked: {done}");

    let order = order.to_string();
    let ended = c
        .until(&format!("/console/api/sagas/{order}"), "the replayed saga ending", |s| {
            (s["order"]["status"] == "PAID").then(|| s.clone())
        })
        .await;
    let types: Vec<&str> = ended["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(types.starts_with(&["order.created", "stock.reserved"]), "{types:?}");
    let after = c.api("/console/api/dead-letters").await;
    let still: Vec<&Value> =
        after["deadLetters"].as_array().unwrap().iter().filter(|l| l["messageId"] == msg_id.as_str()).collect();
    assert!(still.iter().all(|l| !l["replayedAt"].is_null()), "{still:?}");
}

#[tokio::test]
async fn the_console_api_is_for_admins_and_refuses_bad_filters() {
    let c = Console::start().await;
    let none = c.shop.http.get(c.shop.order.url("/console/api/overview")).send().await.unwrap();
    assert_eq!(json(none, 401).await["code"], "UNAUTHENTICATED");
    let customer = c.shop.token(c.customer, Role::Customer);
    let res = c.shop.http.get(c.shop.order.url("/console/api/sagas")).bearer_auth(customer).send().await.unwrap();
    assert_eq!(json(res, 403).await["code"], "FORBIDDEN");
    let res = c.shop.http.get(c.shop.order.url("/console/api/sagas")).header("Cookie", "shop_console=forged").send();
    assert_eq!(json(res.await.unwrap(), 401).await["code"], "INVALID_TOKEN");
    assert_eq!(json(c.get("/console/api/sagas?state=LOST").await, 400).await["code"], "INVALID_QUERY");
    assert_eq!(json(c.get("/console/api/sagas?user=nope").await, 400).await["code"], "INVALID_QUERY");
    let page = c.shop.http.get(c.shop.order.url("/console")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn an_open_console_stream_ends_when_svc_order_stops_instead_of_holding_its_shutdown_up() {
    // A request timeout far beyond the wait: were the stream to run on, the shutdown would wait
    // for it that long (the drain), and this test would fail at its deadline.
    let mut shop = Shop::start_with(&["--http-request-timeout-secs", "600"], &[]).await;
    let admin = shop.token(Uuid::now_v7(), Role::Admin);
    let mut stream =
        shop.http.get(shop.order.url("/console/api/stream")).bearer_auth(&admin).send().await.expect("request");
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut seen = String::new();
    while !seen.contains("event: overview") {
        let chunk = tokio::time::timeout(WAIT, stream.chunk()).await.expect("an overview within the wait");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().expect("the stream runs")));
    }
    tokio::time::timeout(WAIT, shop.order.stop()).await.expect("svc-order stops with a console stream open");
    let ended = tokio::time::timeout(WAIT, async { while let Ok(Some(_)) = stream.chunk().await {} }).await;
    assert!(ended.is_ok(), "the stream ran on after svc-order stopped");
}
