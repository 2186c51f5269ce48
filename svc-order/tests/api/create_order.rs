//! `POST /orders` without waiting: validation, the 202, and the `order.created` it emits.

use common::PaymentMethod;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, created_data, order_body, redacted};

#[tokio::test]
async fn a_valid_order_is_accepted_pending_with_its_location() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let body = json!({"productId": Uuid::now_v7(), "quantity": 3, "paymentMethod": "BANK_TRANSFER"});

    let res = app.post_order(&kim, &body).send().await.unwrap();

    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert!(res.headers().get("preference-applied").is_none());
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let order: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/orders/{}", order["id"].as_str().unwrap()));
    assert_eq!((&order["userId"], &order["productId"]), (&json!(kim.id), &body["productId"]));
    redacted().bind(|| insta::assert_json_snapshot!("accepted_order", order));
}

#[tokio::test]
async fn a_placed_order_emits_order_created_once_with_the_order() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let order = app.place(&kim).await;
    let id = order["id"].as_str().unwrap();

    let created = app.bus.wait_for("order.created", id).await;

    let data = created_data(&created);
    assert_eq!(data.order_id.to_string(), id);
    assert_eq!(data.user_id, kim.id);
    assert_eq!(data.product_id.to_string(), order["productId"].as_str().unwrap());
    assert_eq!((data.quantity, data.payment_method), (2, PaymentMethod::Card));
    assert_eq!((created.producer.as_str(), created.causation_id), ("svc-order", None));
    assert_eq!(created.subject(), format!("order.created.{id}"));
    assert_eq!(app.bus.count("order.created", id).await, 1);
}

#[tokio::test]
async fn invalid_orders_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let product = Uuid::now_v7();
    let cases = [
        (json!({"productId": product, "quantity": 0, "paymentMethod": "CARD"}), "INVALID_QUANTITY", "quantity"),
        (json!({"productId": product, "quantity": 101, "paymentMethod": "CARD"}), "INVALID_QUANTITY", "quantity"),
        (json!({"productId": product, "quantity": "2", "paymentMethod": "CARD"}), "INVALID_QUANTITY", "quantity"),
        (
            json!({"productId": product, "quantity": 1, "paymentMethod": "PAYPAL"}),
            "INVALID_PAYMENT_METHOD",
            "paymentMethod",
        ),
        (json!({"productId": product, "quantity": 1, "paymentMethod": 5}), "INVALID_PAYMENT_METHOD", "paymentMethod"),
        (json!({"productId": "p-1", "quantity": 1, "paymentMethod": "CARD"}), "INVALID_PRODUCT_ID", "productId"),
        (json!({"productId": null, "quantity": 1, "paymentMethod": "CARD"}), "INVALID_PRODUCT_ID", "productId"),
        (json!({"productId": product, "paymentMethod": "CARD"}), "INVALID_BODY", "quantity"),
    ];
    for (body, code, field) in cases {
        let res = app.post_order(&kim, &body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
        let problem: Value = res.json().await.unwrap();
        assert_eq!((problem["code"].as_str(), problem["field"].as_str()), (Some(code), Some(field)), "{body}");
    }

    let malformed = app
        .http
        .post(app.url("/orders"))
        .bearer_auth(&kim.token)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"productId\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json::<Value>().await.unwrap()["code"], "MALFORMED_JSON");

    let anonymous = app.http.post(app.url("/orders")).json(&order_body()).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let bad_key = app.post_order(&kim, &order_body()).header("idempotency-key", "").send().await.unwrap();
    assert_eq!(bad_key.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad_key.json::<Value>().await.unwrap()["code"], "INVALID_IDEMPOTENCY_KEY");

    assert_eq!(app.count("SELECT count(*) FROM orders", []), 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox", []), 0);
}

#[tokio::test]
async fn an_unknown_field_in_the_body_is_refused_naming_it_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let kim = app.customer();
    let product = Uuid::now_v7();
    for (body, field) in [
        (json!({"productId": product, "quantity": 1, "paymentMethod": "CARD", "coupon": "FREE"}), "coupon"),
        // A misspelt field is not taken for an absent one.
        (json!({"productID": product, "productId": product, "quantity": 1, "paymentMethod": "CARD"}), "productID"),
    ] {
        let res = app.post_order(&kim, &body).send().await.unwrap();

        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(
            (problem["code"].as_str(), problem["field"].as_str()),
            (Some("INVALID_BODY"), Some(field)),
            "{body}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM orders", []), 0);
}

#[tokio::test]
async fn an_invalid_quantity_is_a_problem_naming_the_rule() {
    let app = TestApp::spawn().await;
    let body = json!({"productId": Uuid::now_v7(), "quantity": 101, "paymentMethod": "CARD"});
    let problem: Value = app.post_order(&app.customer(), &body).send().await.unwrap().json().await.unwrap();
    insta::assert_json_snapshot!("invalid_quantity", problem);
}
