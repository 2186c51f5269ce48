//! `GET /orders/{id}`, `GET /orders/me` and `GET /orders/{id}/trace`.

use common::{Role, event::PaymentDecline};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Play, TestApp, redacted};

#[tokio::test]
async fn an_order_is_visible_to_its_owner_and_admins_only() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let id = app.place(&kim).await["id"].as_str().unwrap().to_owned();
    let path = format!("/orders/{id}");

    assert_eq!(app.get(&kim, &path).await.status(), StatusCode::OK);
    assert_eq!(app.get(&app.user(Role::Admin), &path).await.status(), StatusCode::OK);
    for (user, path) in [
        (app.customer(), path.clone()),
        (app.user(Role::Seller), path.clone()),
        (kim, format!("/orders/{}", uuid::Uuid::now_v7())),
        (app.customer(), "/orders/not-an-id".into()),
    ] {
        let res = app.get(&user, &path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "ORDER_NOT_FOUND");
    }
    let anonymous = app.http.get(app.url(&format!("/orders/{id}"))).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn my_orders_come_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let mut placed = Vec::new();
    for _ in 0..3 {
        placed.push(app.place(&kim).await["id"].clone());
    }
    app.place(&app.customer()).await; // someone else's

    let first: Value = app.get(&kim, "/orders/me?size=2").await.json().await.unwrap();
    let second: Value = app.get(&kim, "/orders/me?page=2&size=2").await.json().await.unwrap();

    let ids = |page: &Value| page["items"].as_array().unwrap().iter().map(|o| o["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), [placed[2].clone(), placed[1].clone()]);
    assert_eq!(ids(&second), [placed[0].clone()]);
    assert_eq!((&first["page"], &first["size"], &first["total"]), (&json!(1), &json!(2), &json!(3)));
    assert_eq!((&second["page"], &second["total"]), (&json!(2), &json!(3)));

    let defaults: Value = app.get(&kim, "/orders/me").await.json().await.unwrap();
    assert_eq!((&defaults["page"], &defaults["size"]), (&json!(1), &json!(20)));
    for query in ["size=0", "size=101", "page=0", "page=x"] {
        let res = app.get(&kim, &format!("/orders/me?{query}")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "INVALID_QUERY");
    }
}

#[tokio::test]
async fn the_trace_lists_the_sagas_events_causes_first() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let (id, created) = app.placed(&kim).await;
    app.bus.play(&created, Play::Declined(PaymentDecline::Declined)).await;
    app.bus.wait_for("order.failed", &id).await;

    let path = format!("/orders/{id}/trace");
    let trace: Value = common::harness::eventually(crate::helpers::WAIT, || async {
        let trace: Value = app.get(&kim, &path).await.json().await.ok()?;
        (trace["events"].as_array()?.len() == 4).then_some(trace)
    })
    .await
    .expect("four events traced");

    let events = trace["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["order.created", "stock.reserved", "payment.failed", "order.failed"]);
    for pair in events.windows(2) {
        assert_eq!(pair[1]["causationId"], pair[0]["id"], "each event caused by the one before");
    }
    assert_eq!(trace["orderId"], id.as_str());
    redacted().bind(|| insta::assert_json_snapshot!("declined_trace", trace));

    assert_eq!(app.get(&app.user(Role::Admin), &path).await.status(), StatusCode::OK);
    assert_eq!(app.get(&app.customer(), &path).await.status(), StatusCode::NOT_FOUND);
}
