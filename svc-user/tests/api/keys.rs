use common::{Role, auth::Verifier, harness::NatsServer};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::helpers::{PASSWORD, TestApp, spawn_app};

#[tokio::test]
async fn another_service_verifies_its_tokens_with_only_the_key_bucket_to_go_on() {
    let app = spawn_app().await;
    let user = app.register("kim@example.com").await;
    let token = app.token("kim@example.com", PASSWORD).await;

    // What any other service does: a verifier that knows nothing but what the bucket tells it.
    let verifier = Verifier::new();
    let stop = CancellationToken::new();
    let js = async_nats::jetstream::new(app.nats.client().await);
    verifier.watch(&js, stop.clone()).await.unwrap();

    let claims = verifier.verify(&token).expect("the token verifies");
    assert_eq!(claims.sub.to_string(), user["id"].as_str().unwrap());
    assert_eq!(claims.role, Role::Customer);
    stop.cancel();
}

#[tokio::test]
async fn a_restart_keeps_the_signing_key_so_earlier_tokens_stay_valid() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    let token = app.token("kim@example.com", PASSWORD).await;

    // A fresh NATS server has an empty key bucket: the old token can only verify if the restarted
    // service signs with, and publishes, the very key it had before.
    let (_old_nats, data_dir) = app.shut_down().await;
    let app = TestApp::start(NatsServer::start().await, data_dir, None).await;

    assert_eq!(app.me(Some(&token)).await.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT count(*) FROM signing_keys"), 1);
}
