use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn a_registered_user_gets_a_bearer_token_that_is_not_cached() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;

    let res = app.log_in("kim@example.com", PASSWORD).await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["accessToken"].as_str().unwrap().split('.').count(), 3, "a JWS compact token");
    insta::assert_json_snapshot!(body, {".accessToken" => "[token]"});
}

#[tokio::test]
async fn the_email_is_matched_whatever_its_case_and_surrounding_spaces() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;

    assert_eq!(app.log_in(" KIM@Example.com ", PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_password_an_unknown_email_and_a_non_email_get_the_same_401() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;

    let mut problems = Vec::new();
    for (email, password) in
        [("kim@example.com", "wrong-password-1"), ("nobody@example.com", PASSWORD), ("not an email", PASSWORD)]
    {
        let res = app.log_in(email, password).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{email}");
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
        problems.push(res.json::<Value>().await.unwrap());
    }

    assert!(problems.iter().all(|p| *p == problems[0]), "the bodies differ: {problems:#?}");
    let problem = &problems[0];
    insta::assert_json_snapshot!(problem);
}

#[tokio::test]
async fn the_password_is_compared_verbatim() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;

    for near_miss in [" correct-horse-42", "correct-horse-42 ", "CORRECT-HORSE-42", ""] {
        assert_eq!(app.log_in("kim@example.com", near_miss).await.status(), StatusCode::UNAUTHORIZED, "{near_miss:?}");
    }
}
