//! `Idempotency-Key`: a retried request returns the order the first one placed.

use common::event::StockRejection;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, order_body, stock_rejected};

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_same_order_and_emits_nothing_new() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let body = order_body();
    let first = app.post_order(&kim, &body).header("idempotency-key", "checkout 42").send().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_str().unwrap().to_owned();

    let retry = app.post_order(&kim, &body).header("idempotency-key", "checkout 42").send().await.unwrap();

    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    assert_eq!(retry.headers()["location"], format!("/orders/{id}").as_str());
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], id.as_str());

    // Once the saga has ended, a retry that waits gets the outcome, as the first request would.
    let created = app.bus.wait_for("order.created", &id).await;
    app.bus.publish(&stock_rejected(&created, StockRejection::OutOfStock)).await;
    app.bus.wait_for("order.failed", &id).await;
    let late = app
        .post_order(&kim, &body)
        .header("idempotency-key", "checkout 42")
        .header("prefer", "wait=5")
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::CONFLICT);

    // The relay publishes in commit order: a second order.created would precede order.failed.
    assert_eq!(app.bus.count("order.created", &id).await, 1);
    assert_eq!(app.count("SELECT count(*) FROM orders", []), 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let body = order_body();
    app.post_order(&kim, &body).header("idempotency-key", "k-1").send().await.unwrap();

    let mut other = body.clone();
    other["quantity"] = json!(5);
    let res = app.post_order(&kim, &other).header("idempotency-key", "k-1").send().await.unwrap();

    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.count("SELECT count(*) FROM orders", []), 1);
}

#[tokio::test]
async fn keys_belong_to_their_user() {
    let app = TestApp::spawn().await;
    let body = order_body();
    let (kim, lee) = (app.customer(), app.customer());
    let a: Value =
        app.post_order(&kim, &body).header("idempotency-key", "k-1").send().await.unwrap().json().await.unwrap();
    let b: Value =
        app.post_order(&lee, &body).header("idempotency-key", "k-1").send().await.unwrap().json().await.unwrap();
    assert_ne!(a["id"], b["id"]);
    assert_eq!(b["userId"], json!(lee.id));
}

#[tokio::test]
async fn concurrent_retries_with_one_key_place_one_order() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let body = order_body();
    let requests = (0..8).map(|_| app.post_order(&kim, &body).header("idempotency-key", "double-click").send());
    let answers = futures_util::future::join_all(requests).await;
    let mut ids = Vec::new();
    for res in answers {
        let res = res.unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        ids.push(res.json::<Value>().await.unwrap()["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every retry got the one order");
    assert_eq!(app.count("SELECT count(*) FROM orders", []), 1);
    assert_eq!(app.count("SELECT count(*) FROM outbox", []), 1);
}
