//! What an operator sees of the saga: the metrics every service serves at `/metrics`, and a
//! readiness that says which of its dependencies fails.

use common::{
    harness::{TestApp, TestBus, WAIT, eventually, fixtures},
    outbox,
};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Shop, json};

/// The value of the series `name` whose labels include every one of `labels`, summed over the
/// series that match (0 when none does).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

async fn scrape(shop: &Shop, app_url: String) -> String {
    let res = shop.http.get(app_url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    res.text().await.unwrap()
}

#[tokio::test]
async fn a_scrape_after_a_few_orders_holds_the_saga_and_plumbing_counters() {
    let shop = Shop::start(&[]).await;
    let product = shop.product(Uuid::now_v7(), 9_000, 10, "books").await;
    // The recorder is the process's, shared with the other tests of this binary running at the
    // same time: every figure is checked as a growth of at least this test's own share.
    let before = scrape(&shop, shop.order.url("/metrics")).await;
    let orders = 3;
    for _ in 0..orders {
        let res = shop.place_order(Uuid::now_v7(), product, 1, Some(10)).await;
        assert_eq!(json(res, 201).await["status"], "PAID");
    }
    shop.settled().await;

    let after = scrape(&shop, shop.order.url("/metrics")).await;
    let grew = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels) - sample(&before, name, labels);
    let n = f64::from(orders);
    assert!(grew("saga_started_total", &[("service", "svc-order")]) >= n, "{after}");
    assert!(grew("saga_ended_total", &[("service", "svc-order"), ("outcome", "paid")]) >= n, "{after}");
    let post_orders = [("service", "svc-order"), ("method", "POST"), ("route", "/orders"), ("status", "201")];
    assert!(grew("http_server_request_duration_seconds_count", &post_orders) >= n, "{after}");
    assert!(grew("http_server_request_duration_seconds_bucket", &[("route", "/orders"), ("le", "+Inf")]) >= n);
    for consumer in ["svc-order", "svc-product", "svc-payment", "svc-settlement"] {
        let applied = [("consumer", consumer), ("outcome", "applied")];
        assert!(grew("consumer_messages_total", &applied) >= n, "{consumer}: {after}");
        assert_eq!(sample(&after, "consumer_attached", &[("consumer", consumer)]), 1.0, "{consumer}");
    }
    let handled = [("consumer", "svc-product"), ("event_type", "order.created")];
    assert!(grew("consumer_handle_duration_seconds_count", &handled) >= n, "{after}");
    for service in ["svc-order", "svc-product", "svc-payment"] {
        assert!(grew("outbox_published_total", &[("service", service)]) >= n, "{service}: {after}");
        assert!(grew("outbox_publish_lag_seconds_count", &[("service", service)]) >= n, "{service}");
    }
    let charged = [("service", "svc-payment"), ("operation", "charge"), ("result", "ok")];
    assert!(grew("gateway_requests_total", &charged) >= n, "{after}");
    assert_eq!(sample(&after, "gateway_breaker_state", &[("service", "svc-payment")]), 0.0, "closed");
    // Sampled at the scrape: nothing waits in svc-order's outbox once the system has settled.
    assert_eq!(sample(&after, "outbox_backlog_rows", &[("service", "svc-order")]), 0.0);
    // Every metric is described, with its type, for Prometheus.
    for name in ["saga_started_total", "consumer_messages_total", "outbox_backlog_rows"] {
        assert!(after.contains(&format!("# TYPE {name} ")), "{name} has no TYPE line");
    }
    // A path no route serves is counted under one label, however many such paths there are.
    shop.http.get(shop.order.url("/no/such/route/42")).send().await.unwrap();
    let after = scrape(&shop, shop.order.url("/metrics")).await;
    assert!(sample(&after, "http_server_request_duration_seconds_count", &[("route", "unmatched")]) >= 1.0);
    assert!(!after.contains("/no/such/route"), "a path became a label value");
}

async fn readiness(app: &TestApp<svc_product::Config>) -> (u16, Value) {
    let res = reqwest::get(app.url("/health/ready")).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

fn failing(body: &Value) -> Vec<String> {
    let checks = if body.is_array() { body } else { &body["checks"] };
    checks.as_array().unwrap().iter().filter(|c| c["ok"] == false).map(|c| c["name"].as_str().unwrap().into()).collect()
}

#[tokio::test]
async fn readiness_names_what_fails_while_the_broker_is_down_and_recovers_when_it_is_back() {
    let bus = TestBus::start().await;
    let product =
        TestApp::<svc_product::Config>::builder().on(&bus).args(&["--ready-max-outbox-backlog", "0"]).start().await;
    let (status, checks) = readiness(&product).await;
    assert_eq!(status, 200, "{checks}");
    let names: Vec<&str> = checks.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["nats", "keys", "consumer:svc-product", "database", "outbox"]);

    bus.nats.stop();
    // An event committed while the broker is away waits in the outbox: over the backlog of 0.
    let stranded = fixtures::stock_reserved(&fixtures::hand_made_order(Uuid::now_v7()));
    product.db().write(move |tx| outbox::append(tx, &stranded)).await.unwrap();
    let down = eventually(WAIT, || async {
        let (status, body) = readiness(&product).await;
        (status == 503 && failing(&body).contains(&"nats".to_owned())).then_some(body)
    })
    .await
    .expect("readiness fails once NATS is gone");
    assert_eq!(down["code"], "NOT_READY");
    assert!(failing(&down).contains(&"outbox".to_owned()), "{down}");
    let detail = down["detail"].as_str().unwrap();
    assert!(detail.contains("nats:") && detail.contains("outbox: 1 unpublished, over 0"), "{detail}");

    bus.nats.restart().await;
    let up = eventually(WAIT, || async {
        let (status, body) = readiness(&product).await;
        (status == 200).then_some(body)
    })
    .await
    .expect("ready again once NATS is back and the outbox drained");
    assert!(failing(&up).is_empty(), "{up}");
}

#[tokio::test]
async fn a_service_that_knows_no_key_to_verify_tokens_with_is_not_ready_until_it_learns_one() {
    // No issuer and no svc-user: the key bucket holds nothing yet.
    let product = TestApp::<svc_product::Config>::builder().without_issuer().start().await;
    let (status, body) = readiness(&product).await;
    assert_eq!((status, failing(&body)), (503, vec!["keys".to_owned()]), "{body}");
    // Once a key is published (as svc-user publishes its own), the watch learns it: ready.
    let _issuer = common::harness::TestIssuer::publish(&product.bus.nats).await;
    let ready = common::harness::eventually(crate::helpers::WAIT, || async {
        let (status, body) = readiness(&product).await;
        (status == 200).then_some(body)
    });
    assert!(ready.await.is_some(), "still not ready after a key was published");
}
