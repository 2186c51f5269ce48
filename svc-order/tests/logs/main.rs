//! One order's log lines, in every service it goes through, carry one trace id: the one its
//! `POST /orders` answered with in `traceparent`, carried from service to service in the NATS
//! headers of the events (`common::trace`). The lines are the ones `LOG_FORMAT=json` writes.

#[path = "../saga/helpers.rs"]
#[allow(dead_code, unused_imports)] // the saga tests' helpers; this test uses a few
mod helpers;

use std::collections::BTreeSet;

use common::harness::CapturedLogs;
use helpers::{Shop, json};
use serde_json::Value;
use uuid::Uuid;

/// The `trace_id` of the spans a line was logged in (`None` outside any traced span).
fn trace_ids(line: &Value) -> BTreeSet<String> {
    line["spans"].as_array().into_iter().flatten().filter_map(|s| s["trace_id"].as_str().map(str::to_owned)).collect()
}

/// The span `name` a line was logged in, if any.
fn span<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["spans"].as_array().into_iter().flatten().find(|s| s["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_of_one_order_in_every_service_carries_its_trace_id() {
    // The consumers log each event they apply at debug; every request is logged at info.
    let logs = CapturedLogs::install("info,common=debug");
    let shop = Shop::start(&[]).await;
    let seller = Uuid::now_v7();
    let product = shop.product(seller, 15_000, 5, "books").await;

    let customer = Uuid::now_v7();
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let res = shop
        .http
        .post(shop.order.url("/orders"))
        .bearer_auth(shop.token(customer, common::Role::Customer))
        .header("traceparent", caller)
        .header("Prefer", "wait=10")
        .json(&serde_json::json!({"productId": product, "quantity": 1, "paymentMethod": "CARD"}))
        .send()
        .await
        .unwrap();
    let answered = res.headers()["traceparent"].to_str().unwrap().to_owned();
    let order = json(res, 201).await;
    assert_eq!(order["status"], "PAID", "{order}");
    let order_id = order["id"].as_str().unwrap().to_owned();
    // The caller's trace goes on; the answer names this request's own step of it.
    let trace = "0af7651916cd43dd8448eb211c80319c";
    assert!(answered.starts_with(&format!("00-{trace}-")) && answered != caller, "{answered}");
    shop.settled().await;

    // Every line about one of the order's events (its subject ends with the order id), in every
    // consumer, carries the trace id; and every service of the saga logged some.
    let lines = logs.lines();
    let about_order: Vec<&Value> = lines
        .iter()
        .filter(|l| span(l, "event").is_some_and(|s| s["subject"].as_str().is_some_and(|s| s.ends_with(&order_id))))
        .collect();
    let consumers: BTreeSet<&str> =
        about_order.iter().filter_map(|l| span(l, "event").and_then(|s| s["consumer"].as_str())).collect();
    assert_eq!(
        consumers,
        BTreeSet::from(["svc-order", "svc-payment", "svc-product", "svc-settlement"]),
        "every service of the saga logged about the order"
    );
    for line in &about_order {
        assert_eq!(trace_ids(line), BTreeSet::from([trace.to_owned()]), "a line of the order's saga: {line}");
    }
    // The request itself, and the gateway's answer to svc-payment's charge, are in the trace too.
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| span(l, "http").is_some_and(|s| s["http.path"] == "/orders" || s["http.path"] == "/v1/charges"))
        .collect();
    let paths: BTreeSet<&str> =
        requests.iter().filter_map(|l| span(l, "http").and_then(|s| s["http.path"].as_str())).collect();
    assert_eq!(paths, BTreeSet::from(["/orders", "/v1/charges"]), "{requests:?}");
    for line in requests {
        assert_eq!(trace_ids(line), BTreeSet::from([trace.to_owned()]), "{line}");
    }
    // A request that comes without a `traceparent` starts a trace of its own.
    let other = shop.place_order(customer, product, 1, Some(10)).await;
    let other_trace = other.headers()["traceparent"].to_str().unwrap()[3..35].to_owned();
    assert_ne!(other_trace, trace);
    assert_eq!(json(other, 201).await["status"], "PAID");
}
