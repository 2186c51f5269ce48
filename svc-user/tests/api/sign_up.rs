use common::{Event, Role, bus::STREAM};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, WAIT, spawn_app};

#[tokio::test]
async fn signing_up_creates_the_user_and_says_where_it_lives() {
    let app = spawn_app().await;

    let res = app.sign_up(&json!({"email": " Kim.Lee@Example.com ", "password": PASSWORD, "name": " Kim Lee "})).await;

    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/users/{}", body["id"].as_str().unwrap()));
    insta::assert_json_snapshot!(body, {".id" => "[id]", ".createdAt" => "[time]"});
}

#[tokio::test]
async fn signing_up_publishes_exactly_one_user_registered_event_without_secrets() {
    let app = spawn_app().await;

    let user = app.register("kim@example.com").await;
    let id = user["id"].as_str().unwrap();

    let event = app.events.wait_for(WAIT, |e| e.correlation_id == id).await.expect("user.registered published");
    let Event::UserRegistered(data) = &event.event else { panic!("not user.registered: {event:?}") };
    assert_eq!(event.subject(), format!("user.registered.{id}"));
    assert_eq!((data.email.as_str(), data.name.as_str(), data.role), ("kim@example.com", "Kim Lee", Role::Customer));
    let transcript = common::harness::transcript(std::slice::from_ref(&event), &[("user", id.to_owned())]);
    insta::assert_json_snapshot!(transcript);

    // Once the relay has nothing left to send, the stream holds that one event and nothing else.
    app.settled().await;
    let js = async_nats::jetstream::new(app.bus.client.clone());
    let mut stream = js.get_stream(STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    let stored = stream.get_last_raw_message_by_subject(&event.subject()).await.unwrap();
    assert_eq!(stored.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()), Some(event.id.to_string()));
    let payload = String::from_utf8(stored.payload.to_vec()).unwrap();
    for secret in ["password", "hash", "$argon2", PASSWORD] {
        assert!(!payload.to_lowercase().contains(&secret.to_lowercase()), "the event carries {secret:?}: {payload}");
    }
}

#[tokio::test]
async fn an_email_taken_in_another_case_is_a_conflict_and_changes_nothing() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;

    let res = app.sign_up(&json!({"email": "KIM@Example.COM", "password": "other-pass-7", "name": "Impostor"})).await;

    assert_eq!(res.status(), StatusCode::CONFLICT);
    let problem: Value = res.json().await.unwrap();
    insta::assert_json_snapshot!(problem);
    assert_eq!(app.count("SELECT count(*) FROM users", []), 1);
    assert_eq!(app.count("SELECT count(*) FROM outbox", []), 1);
    app.token("kim@example.com", PASSWORD).await; // the first account is untouched
}

#[tokio::test]
async fn concurrent_sign_ups_with_one_email_create_exactly_one_account() {
    let app = spawn_app().await;

    let mut attempts = tokio::task::JoinSet::new();
    for email in ["race@example.com", "Race@example.com", "RACE@EXAMPLE.COM", "race@Example.com"] {
        let req = app.http.post(app.url("/users")).json(&json!({"email": email, "password": PASSWORD, "name": "R"}));
        attempts.spawn(async move { req.send().await.unwrap().status() });
    }
    let mut statuses = attempts.join_all().await;
    statuses.sort();

    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT, StatusCode::CONFLICT, StatusCode::CONFLICT]);
    assert_eq!(app.count("SELECT count(*) FROM users", []), 1);
    assert_eq!(app.count("SELECT count(*) FROM outbox", []), 1);
}

#[tokio::test]
async fn a_seller_can_sign_up_but_nobody_signs_up_as_admin() {
    let app = spawn_app().await;

    let seller = json!({"email": "s@example.com", "password": PASSWORD, "name": "S", "role": "SELLER"});
    let seller: Value = app.sign_up(&seller).await.json().await.unwrap();
    assert_eq!(seller["role"], "SELLER");

    let res = app.sign_up(&json!({"email": "a@example.com", "password": PASSWORD, "name": "A", "role": "ADMIN"})).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = res.json().await.unwrap();
    insta::assert_json_snapshot!(problem);
    assert_eq!(app.count("SELECT count(*) FROM users WHERE role = 'ADMIN'", []), 0);
}

/// Sends `body` to `POST /users` expecting a 422 problem, and checks nothing was created.
async fn rejected(body: Value) -> Value {
    let app = spawn_app().await;
    let res = app.sign_up(&body).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(app.count("SELECT count(*) FROM users", []), 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox", []), 0);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_weak_password_is_rejected_naming_the_field() {
    let problem = rejected(json!({"email": "kim@example.com", "password": "password", "name": "Kim"})).await;
    insta::assert_json_snapshot!(problem);
}

#[tokio::test]
async fn an_invalid_email_is_rejected_naming_the_field() {
    let problem = rejected(json!({"email": "kim.example.com", "password": PASSWORD, "name": "Kim"})).await;
    insta::assert_json_snapshot!(problem);
}

#[tokio::test]
async fn a_missing_field_is_rejected_naming_it() {
    let problem = rejected(json!({"email": "kim@example.com", "name": "Kim"})).await;
    assert_eq!((problem["code"].as_str(), problem["field"].as_str()), (Some("INVALID_BODY"), Some("password")));
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let app = spawn_app().await;

    let res = app
        .http
        .post(app.url("/users"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(r#"{"email": "kim@example.com", "#)
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let problem: Value = res.json().await.unwrap();
    insta::assert_json_snapshot!(problem);
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_an_unsupported_media_type() {
    let app = spawn_app().await;
    let body = json!({"email": "kim@example.com", "password": PASSWORD, "name": "Kim"}).to_string();

    let res = app.http.post(app.url("/users")).header(header::CONTENT_TYPE, "text/plain").body(body).send().await;

    let res = res.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(app.count("SELECT count(*) FROM users", []), 0);
}
