//! `Prefer: wait=N`: on `POST /orders` the answer is the saga's outcome, or a 202 after N s; on
//! `GET /orders/{id}` the order once its saga has settled, or as it stands after N s.

use std::time::Duration;

use common::{
    Envelope,
    event::{PaymentDecline, StockRejection},
};
use reqwest::{Response, StatusCode, header};
use serde_json::Value;

use crate::helpers::{Play, TestApp, User, order_body, redacted, stock_reserved};

/// Places an order asking to wait `prefer`, while the stand-in services play `play` (if any).
async fn place_and_wait(app: &TestApp, prefer: &str, play: Option<Play>) -> Response {
    if let Some(play) = play {
        app.bus.play_when_created(play);
    }
    app.post_order(&app.customer(), &order_body()).header("prefer", prefer).send().await.unwrap()
}

fn header<'a>(res: &'a Response, name: &str) -> &'a str {
    res.headers().get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
}

/// The status, the Location and the body, after checking the preference was applied.
async fn answer(res: Response, applied: &str) -> (StatusCode, String, Value) {
    assert_eq!(header(&res, "preference-applied"), applied);
    let location = header(&res, header::LOCATION.as_str()).to_owned();
    (res.status(), location, res.json().await.unwrap())
}

#[tokio::test]
async fn a_paid_order_is_answered_201_created() {
    let app = TestApp::spawn().await;
    let res = place_and_wait(&app, "wait=5", Some(Play::Paid)).await;

    let (status, location, order) = answer(res, "wait=5").await;

    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(location, format!("/orders/{}", order["id"].as_str().unwrap()));
    redacted().bind(|| insta::assert_json_snapshot!("created_paid_order", order));
    // The answer comes on the commit; the announcement follows through the outbox.
    app.bus.wait_for("order.paid", order["id"].as_str().unwrap()).await;
}

#[tokio::test]
async fn an_order_out_of_stock_is_answered_409() {
    let app = TestApp::spawn().await;
    let res = place_and_wait(&app, "respond-async, wait=5", Some(Play::Rejected(StockRejection::OutOfStock))).await;

    let (status, location, problem) = answer(res, "wait=5").await;

    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("OUT_OF_STOCK")));
    let id = location.strip_prefix("/orders/").unwrap();
    assert_eq!(problem["orderId"], id, "the problem names the order");
    assert!(problem["detail"].as_str().unwrap().contains(id));
    redacted().bind(|| insta::assert_json_snapshot!("out_of_stock", problem));
}

#[tokio::test]
async fn a_declined_payment_is_answered_402_with_the_decline_reason() {
    let app = TestApp::spawn().await;
    let res = place_and_wait(&app, "wait=5", Some(Play::Declined(PaymentDecline::LimitExceeded))).await;

    let (status, location, problem) = answer(res, "wait=5").await;

    assert_eq!((status, problem["code"].as_str()), (StatusCode::PAYMENT_REQUIRED, Some("PAYMENT_DECLINED")));
    assert_eq!(location, format!("/orders/{}", problem["orderId"].as_str().unwrap()));
    assert!(problem["detail"].as_str().unwrap().contains("LIMIT_EXCEEDED"));
    redacted().bind(|| insta::assert_json_snapshot!("payment_declined", problem));
}

#[tokio::test]
async fn an_unknown_product_is_answered_404() {
    let app = TestApp::spawn().await;
    let res = place_and_wait(&app, "wait=5", Some(Play::Rejected(StockRejection::ProductNotFound))).await;

    let (status, location, problem) = answer(res, "wait=5").await;

    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("PRODUCT_NOT_FOUND")));
    // Not to be mistaken for a missing order: the order exists, FAILED, where Location says.
    let id = location.strip_prefix("/orders/").unwrap();
    assert_eq!(problem["orderId"], id);
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE id = ?1 AND status = 'FAILED'", [&id]), 1);
    redacted().bind(|| insta::assert_json_snapshot!("product_not_found", problem));
}

#[tokio::test]
async fn a_saga_still_running_when_the_wait_ends_is_answered_202() {
    let app = TestApp::spawn().await;
    let res = place_and_wait(&app, "wait=1", None).await;

    let (status, location, order) = answer(res, "wait=1").await;

    assert_eq!((status, order["status"].as_str()), (StatusCode::ACCEPTED, Some("PENDING")));
    assert_eq!(location, format!("/orders/{}", order["id"].as_str().unwrap()));
}

#[tokio::test]
async fn a_wait_longer_than_30_seconds_is_capped_and_said_so() {
    let app = TestApp::spawn().await;
    let res = place_and_wait(&app, "wait=600", Some(Play::Paid)).await;
    let (status, _, _) = answer(res, "wait=30").await;
    assert_eq!(status, StatusCode::CREATED);
}

/// `GET /orders/{id}` with `prefer`; a client that gives up after 10 s.
async fn read_and_wait(app: &TestApp, user: &User, id: &str, prefer: &str) -> Response {
    let req = app.http.get(app.url(&format!("/orders/{id}"))).bearer_auth(&user.token).header("prefer", prefer);
    req.timeout(Duration::from_secs(10)).send().await.unwrap()
}

#[tokio::test]
async fn reading_an_order_with_prefer_wait_answers_once_its_saga_has_settled() {
    let app = TestApp::spawn().await;
    let customer = app.customer();
    let placed = app.place(&customer).await;
    let id = placed["id"].as_str().unwrap().to_owned();
    let created: Envelope = app.bus.wait_for("order.created", &id).await;

    // The read is sent while the saga is still PENDING; the saga ends while it waits.
    let (res, ()) = tokio::join!(
        read_and_wait(&app, &customer, &id, "wait=5"),
        app.bus.play(&created, Play::Declined(PaymentDecline::LimitExceeded)),
    );

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "preference-applied"), "wait=5");
    let order: Value = res.json().await.unwrap();
    assert_eq!((order["status"].as_str(), order["failureReason"].as_str()), (Some("FAILED"), Some("PAYMENT_DECLINED")));
}

#[tokio::test]
async fn reading_an_order_whose_saga_runs_on_answers_it_as_it_stands_when_the_wait_ends() {
    let app = TestApp::spawn().await;
    let customer = app.customer();
    let id = app.place(&customer).await["id"].as_str().unwrap().to_owned();

    let res = read_and_wait(&app, &customer, &id, "wait=1").await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "preference-applied"), "wait=1");
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "PENDING");
}

#[tokio::test]
async fn a_wait_that_ends_before_the_saga_answers_the_steps_taken_meanwhile() {
    // Only the saga's end wakes a waiter; the reservation made while it waited must still show.
    let app = TestApp::spawn().await;
    let customer = app.customer();
    let (id, created) = app.placed(&customer).await;

    let (res, ()) = tokio::join!(read_and_wait(&app, &customer, &id, "wait=2"), async {
        app.bus.publish(&stock_reserved(&created)).await;
        app.order_with_status(&customer, &id, "STOCK_RESERVED").await;
    });

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "STOCK_RESERVED");
}

#[tokio::test]
async fn reading_someone_elses_order_with_prefer_wait_is_a_404_at_once() {
    let app = TestApp::spawn().await;
    let id = app.place(&app.customer()).await["id"].as_str().unwrap().to_owned();

    // Were it to wait first, the client would give up: nothing plays this saga.
    let res = read_and_wait(&app, &app.customer(), &id, "wait=30").await;

    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.headers().get("preference-applied").is_none());
}

/// Nobody answers the order (svc-product down, say) and its deadline is shorter than the wait:
/// the expiry ends the saga and the waiting request answers with it.
#[tokio::test]
async fn an_order_that_expires_while_the_request_waits_is_answered_409_order_expired() {
    let app = TestApp::spawn_with(&["--order-deadline-secs", "1"]).await;
    let res = place_and_wait(&app, "wait=10", None).await;

    let (status, location, problem) = answer(res, "wait=10").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "ORDER_EXPIRED");
    let id = problem["orderId"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/orders/{id}"));
    let expired = app.bus.wait_for("order.expired", &id).await;
    let common::Event::OrderExpired(data) = &expired.event else { unreachable!() };
    assert_eq!(data.after_secs, 1);
    assert_eq!(app.count("SELECT count(*) FROM orders WHERE status = 'EXPIRED'", []), 1);
}
