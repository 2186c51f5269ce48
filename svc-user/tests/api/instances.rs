//! Two svc-user instances on one database (one deployment scaled to two processes): an account
//! signed up through either logs in through the other, both sign with the one active key, and a
//! token either signed is accepted by both.

use common::harness;
use reqwest::StatusCode;
use serde_json::json;
use svc_user::Config;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn a_second_instance_on_the_same_database_shares_accounts_and_the_signing_key() {
    let a = spawn_app().await;
    let b = harness::TestApp::<Config>::builder().beside(&a).args(&["--token-ttl-secs", "3600"]).start().await;
    let b_url = |path: &str| b.url(path);

    let res = b
        .http
        .post(b_url("/users"))
        .json(&json!({"email": "b@example.com", "password": PASSWORD, "name": "Bo"}))
        .send();
    assert_eq!(res.await.unwrap().status(), StatusCode::CREATED);
    a.register("a@example.com").await;
    // Signed up through b, logged in through a, and the other way round.
    let from_a = a.token("b@example.com", PASSWORD).await;
    let login = json!({"email": "a@example.com", "password": PASSWORD});
    let res = b.http.post(b_url("/auth/login")).json(&login).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let from_b = res.json::<serde_json::Value>().await.unwrap()["accessToken"].as_str().unwrap().to_owned();

    // One key between them: the second instance found the first's instead of adding its own.
    assert_eq!(a.count("SELECT count(*) FROM signing_keys", []), 1, "one signing key");
    for token in [&from_a, &from_b] {
        assert_eq!(a.me(Some(token)).await.status(), StatusCode::OK);
        let res = b.http.get(b_url("/users/me")).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}
