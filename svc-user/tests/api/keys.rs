use async_nats::jetstream::{self, kv};
use common::{
    Role,
    auth::{AuthError, KEYS_BUCKET, SigningKey, Verifier},
    harness::{TestBus, eventually},
};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::helpers::{PASSWORD, TestApp, WAIT, fresh_bus, spawn_app};

#[tokio::test]
async fn another_service_verifies_its_tokens_with_only_the_key_bucket_to_go_on() {
    let app = spawn_app().await;
    let user = app.register("kim@example.com").await;
    let token = app.token("kim@example.com", PASSWORD).await;

    // What any other service does: a verifier that knows nothing but what the bucket tells it.
    let verifier = Verifier::new();
    let stop = CancellationToken::new();
    let js = async_nats::jetstream::new(app.bus.client.clone());
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
    let (_old_bus, data_dir) = app.shut_down().await;
    let app = TestApp::start(fresh_bus().await, data_dir, None).await;

    assert_eq!(app.me(Some(&token)).await.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT count(*) FROM signing_keys", []), 1);
}

#[tokio::test]
async fn deleting_the_active_key_from_the_bucket_retires_it_and_logins_go_on_with_a_new_one() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    let old_token = app.token("kim@example.com", PASSWORD).await;
    let [old_kid] = kids_in_use(&app).try_into().unwrap();

    keys_bucket(&app.bus).await.delete(&old_kid).await.unwrap();

    let rejected = eventually(WAIT, || async {
        (app.me(Some(&old_token)).await.status() == StatusCode::UNAUTHORIZED).then_some(())
    });
    rejected.await.expect("the deleted key's tokens are refused");
    // Logins sign with a fresh key as soon as svc-user has rotated; until then their tokens
    // carry the deleted key and are refused like the old one.
    let new_token = eventually(WAIT, || async {
        let token = app.token("kim@example.com", PASSWORD).await;
        (app.me(Some(&token)).await.status() == StatusCode::OK).then_some(token)
    });
    let new_token = new_token.await.expect("a new login's token is accepted");
    let [new_kid] = kids_in_use(&app).try_into().unwrap();
    assert_ne!(new_kid, old_kid);
    assert_eq!(app.count("SELECT count(*) FROM signing_keys WHERE retired_at IS NOT NULL", []), 1);
    // Any other service learns the new key from the bucket alone, and not the old one.
    let (verifier, stop) = (Verifier::new(), CancellationToken::new());
    verifier.watch(&jetstream::new(app.bus.client.clone()), stop.clone()).await.unwrap();
    assert!(verifier.verify(&new_token).is_ok());
    assert_eq!(verifier.verify(&old_token), Err(AuthError::UnknownKey));
    stop.cancel();

    // A restart publishes the new key again but never the retired one.
    let app = app.restart(None).await;

    assert_eq!(keys_bucket(&app.bus).await.get(&old_kid).await.unwrap(), None, "the retired key is back");
    assert_eq!(app.me(Some(&old_token)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(Some(&new_token)).await.status(), StatusCode::OK);
    assert_eq!(kids_in_use(&app), [new_kid]);
}

#[tokio::test]
async fn a_key_purged_while_svc_user_was_down_is_retired_at_the_next_start() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    let old_token = app.token("kim@example.com", PASSWORD).await;
    let [old_kid] = kids_in_use(&app).try_into().unwrap();

    let (bus, data_dir) = app.shut_down().await;
    keys_bucket(&bus).await.purge(&old_kid).await.unwrap();
    let app = TestApp::start(bus, data_dir, None).await;

    // The start itself reconciles, so nothing here needs to wait.
    assert_eq!(app.me(Some(&old_token)).await.status(), StatusCode::UNAUTHORIZED);
    let new_token = app.token("kim@example.com", PASSWORD).await;
    assert_eq!(app.me(Some(&new_token)).await.status(), StatusCode::OK);
    assert_eq!(keys_bucket(&app.bus).await.get(&old_kid).await.unwrap(), None);
    assert!(!kids_in_use(&app).contains(&old_kid));
}

#[tokio::test]
async fn deleting_an_older_key_in_use_retires_it_and_leaves_logins_alone() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    let token = app.token("kim@example.com", PASSWORD).await;
    // An older key still in use (say, from before an upgrade): published at start, not signed with.
    let older = SigningKey::generate();
    let (bus, data_dir) = app.shut_down().await;
    TestApp::db_at(&data_dir)
        .execute(
            "INSERT INTO signing_keys (kid, pkcs8_der, created_at) VALUES (?1, ?2, 0)",
            rusqlite::params![older.kid(), older.to_pkcs8_der()],
        )
        .unwrap();
    let app = TestApp::start(bus, data_dir, None).await;
    let bucket = keys_bucket(&app.bus).await;
    assert!(bucket.get(older.kid()).await.unwrap().is_some(), "a key in use is published");

    bucket.delete(older.kid()).await.unwrap();

    let retired = eventually(WAIT, || async {
        let sql = "SELECT count(*) FROM signing_keys WHERE kid = ?1 AND retired_at IS NOT NULL";
        let retired = app.count(sql, [older.kid()]);
        (retired == 1).then_some(())
    });
    retired.await.expect("the older key is marked retired");
    assert_eq!(app.count("SELECT count(*) FROM signing_keys", []), 2, "no new key for an older one");
    assert_eq!(app.me(Some(&token)).await.status(), StatusCode::OK);
    let again = app.token("kim@example.com", PASSWORD).await;
    assert_eq!(app.me(Some(&again)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tampered_key_in_the_bucket_is_repaired_and_tokens_signed_before_keep_working() {
    let app = spawn_app().await;
    app.register("kim@example.com").await;
    let token = app.token("kim@example.com", PASSWORD).await;
    let [kid] = kids_in_use(&app).try_into().unwrap();
    let bucket = keys_bucket(&app.bus).await;
    let genuine = bucket.get(&kid).await.unwrap().expect("the key is published");

    // Someone with write access replaces svc-user's public key by another, under the same kid.
    let mut forged = SigningKey::generate().public_jwk();
    forged.kid = kid.clone();
    bucket.put(&kid, serde_json::to_vec(&forged).unwrap().into()).await.unwrap();

    let repaired = eventually(WAIT, || async { (bucket.get(&kid).await.ok()?? == genuine).then_some(()) });
    repaired.await.expect("svc-user puts its own public key back");
    // A verifier that knows only the bucket (any other service) accepts the old token again.
    let verifier = Verifier::new();
    let stop = CancellationToken::new();
    let reader = app.bus.nats.client_as(&app.bus.nats.auth("svc-order")).await;
    verifier.watch(&jetstream::new(reader), stop.clone()).await.unwrap();
    assert!(verifier.verify(&token).is_ok(), "the repaired key verifies the earlier token");
    let ok = eventually(WAIT, || async { (app.me(Some(&token)).await.status() == StatusCode::OK).then_some(()) });
    ok.await.expect("svc-user itself accepts the earlier token");
    assert_eq!(kids_in_use(&app), [kid], "repaired, not rotated");
    stop.cancel();
}

/// The bucket as a person retiring a key reaches it: with svc-user's credentials, the only ones
/// that may write it.
async fn keys_bucket(bus: &TestBus) -> kv::Store {
    let owner = bus.nats.client_as(&bus.nats.auth(common::permissions::KEY_OWNER)).await;
    jetstream::new(owner).get_key_value(KEYS_BUCKET).await.expect("the auth-keys bucket")
}

/// The ids of svc-user's signing keys that are not retired, oldest first.
fn kids_in_use(app: &TestApp) -> Vec<String> {
    let db = app.connection();
    let mut query = db.prepare("SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY rowid").unwrap();
    query.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}
