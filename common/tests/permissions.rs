//! NATS accounts and permissions, against a real nats-server started with `nats/accounts.conf`
//! (every harness server is): no anonymous connection, each service publishes only its own
//! events, only svc-user writes the keys, and the operator publishes events by hand but cannot
//! touch the keys. Plus the verifier's key integrity: a key stored under another name is ignored.

use std::time::Duration;

use async_nats::jetstream;
use common::{
    auth::{self, KEYS_BUCKET, SigningKey, Verifier},
    harness::{NatsServer, eventually},
    permissions,
};
use tokio_util::sync::CancellationToken;

/// Whether publishing `subject` as `client` is stored: `false` when the server refuses it (the
/// PubAck never comes, or comes as an error).
async fn stored(client: &async_nats::Client, subject: &str) -> bool {
    let js = jetstream::new(client.clone());
    let publish = async { js.publish(subject.to_owned(), "{}".into()).await?.await.map_err(anyhow::Error::from) };
    matches!(tokio::time::timeout(Duration::from_secs(3), publish).await, Ok(Ok(_)))
}

#[test]
fn the_checked_in_accounts_conf_is_what_the_code_declares() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../nats/accounts.conf");
    let rendered = permissions::accounts_conf();
    if std::env::var_os("UPDATE_ACCOUNTS_CONF").is_some() {
        std::fs::write(path, &rendered).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "nats/accounts.conf differs from common::permissions: rerun with UPDATE_ACCOUNTS_CONF=1 and review the diff"
    );
}

#[tokio::test]
async fn an_anonymous_connection_and_a_wrong_password_are_refused() {
    let nats = NatsServer::start().await;
    let anonymous = async_nats::ConnectOptions::new().connect(nats.url()).await;
    assert!(anonymous.is_err(), "an anonymous client connected");
    let wrong = async_nats::ConnectOptions::with_user_and_password("svc-order".into(), "guess".into())
        .connect(nats.url())
        .await;
    assert!(wrong.is_err(), "a wrong password connected");
}

#[tokio::test]
async fn svc_payment_may_publish_its_events_but_not_order_events_nor_write_the_keys() {
    let nats = NatsServer::start().await;
    let owner = nats.client_as(&nats.auth(permissions::KEY_OWNER)).await;
    auth::keys_bucket(&jetstream::new(owner), 1).await.unwrap();
    let payment = nats.client_as(&nats.auth("svc-payment")).await;
    common::bus::ensure_stream(&jetstream::new(payment.clone()), 1).await.unwrap();

    assert!(stored(&payment, "payment.completed.0193").await, "its own event");
    assert!(!stored(&payment, "order.paid.0193").await, "svc-payment published order.paid");

    let js = jetstream::new(payment);
    let bucket = js.get_key_value(KEYS_BUCKET).await.expect("it may read the keys");
    let evil = SigningKey::generate().public_jwk();
    let put =
        tokio::time::timeout(Duration::from_secs(3), bucket.put(&evil.kid, serde_json::to_vec(&evil).unwrap().into()));
    assert!(!matches!(put.await, Ok(Ok(_))), "svc-payment wrote a key");
    let operator = jetstream::new(nats.client().await);
    let kv = operator.get_key_value(KEYS_BUCKET).await.unwrap();
    assert_eq!(kv.get(&evil.kid).await.unwrap(), None);
}

#[tokio::test]
async fn the_operator_publishes_any_event_by_hand_but_cannot_write_the_keys() {
    let nats = NatsServer::start().await;
    let owner = nats.client_as(&nats.auth(permissions::KEY_OWNER)).await;
    auth::keys_bucket(&jetstream::new(owner), 1).await.unwrap();
    let operator = nats.client().await;
    common::bus::ensure_stream(&jetstream::new(operator.clone()), 1).await.unwrap();

    for subject in ["order.created.0193", "stock.reserved.0193", "payment.failed.0193"] {
        assert!(stored(&operator, subject).await, "the operator could not publish {subject}");
    }
    let bucket = jetstream::new(operator).get_key_value(KEYS_BUCKET).await.unwrap();
    let evil = SigningKey::generate().public_jwk();
    let put =
        tokio::time::timeout(Duration::from_secs(3), bucket.put(&evil.kid, serde_json::to_vec(&evil).unwrap().into()));
    assert!(!matches!(put.await, Ok(Ok(_))), "the operator wrote a key");
}

#[tokio::test]
async fn a_key_stored_under_another_name_is_ignored_and_cannot_replace_a_real_one() {
    let nats = NatsServer::start().await;
    let owner = jetstream::new(nats.client_as(&nats.auth(permissions::KEY_OWNER)).await);
    let bucket = auth::keys_bucket(&owner, 1).await.unwrap();
    let (real, evil) = (SigningKey::generate(), SigningKey::generate());
    auth::publish_key(&bucket, &real.public_jwk()).await.unwrap();

    let verifier = Verifier::new();
    let stop = CancellationToken::new();
    verifier.watch(&jetstream::new(nats.client_as(&nats.auth("svc-order")).await), stop.clone()).await.unwrap();
    let real_token = real.issue(uuid::Uuid::now_v7(), common::Role::Admin, Duration::from_secs(60));
    assert!(verifier.verify(&real_token).is_ok());

    // A JWK carrying the real key's kid, put under some other name: it must not take the real
    // key's place in the verifier, nor verify tokens of its own.
    let mut forged = evil.public_jwk();
    forged.kid = real.kid().to_owned();
    bucket.put("innocent-looking", serde_json::to_vec(&forged).unwrap().into()).await.unwrap();
    let evil_token = evil.issue(uuid::Uuid::now_v7(), common::Role::Admin, Duration::from_secs(60));
    // A marker after it: once the verifier has seen the marker, it has seen the forgery too.
    let marker = SigningKey::generate();
    auth::publish_key(&bucket, &marker.public_jwk()).await.unwrap();
    let marker_token = marker.issue(uuid::Uuid::now_v7(), common::Role::Customer, Duration::from_secs(60));
    let seen = eventually(Duration::from_secs(10), || async { verifier.verify(&marker_token).ok() });
    seen.await.expect("the verifier follows the bucket");

    assert!(verifier.verify(&evil_token).is_err(), "a forged key verified a token");
    assert!(verifier.verify(&real_token).is_ok(), "the forgery replaced the real key");
    // Deleting the forgery's entry leaves the real key in place.
    bucket.delete("innocent-looking").await.unwrap();
    assert!(verifier.verify(&real_token).is_ok());
    stop.cancel();
}
