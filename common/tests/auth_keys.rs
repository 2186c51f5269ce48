//! Key distribution through the JetStream KV bucket: a verifier that only watches the bucket
//! learns, rotates and forgets keys without a restart.

use std::time::Duration;

use common::{
    Role,
    auth::{self, AuthError, SigningKey, Verifier},
    harness::{NatsServer, eventually},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn verifiers_follow_the_key_bucket_through_a_rotation() {
    let nats = NatsServer::start().await;
    let js = async_nats::jetstream::new(nats.client().await);
    let bucket = auth::keys_bucket(&js).await.unwrap();
    let first = SigningKey::generate();
    auth::publish_key(&bucket, &first.public_jwk()).await.unwrap();

    // A verifier started after the key was published loads it before `watch` returns.
    let stop = CancellationToken::new();
    let verifier = Verifier::new();
    verifier.watch(&js, stop.clone()).await.unwrap();
    let old_token = first.issue(Uuid::now_v7(), Role::Customer, Duration::from_secs(60));
    assert!(verifier.verify(&old_token).is_ok());

    // Rotation: a new key appears; tokens of both keys verify meanwhile.
    let second = SigningKey::generate();
    let new_token = second.issue(Uuid::now_v7(), Role::Seller, Duration::from_secs(60));
    assert_eq!(verifier.verify(&new_token), Err(AuthError::UnknownKey));
    auth::publish_key(&bucket, &second.public_jwk()).await.unwrap();
    eventually(WAIT, || async { verifier.verify(&new_token).ok() }).await.expect("new key learnt");
    assert!(verifier.verify(&old_token).is_ok());

    // Retiring the old key revokes its tokens everywhere.
    bucket.delete(first.kid()).await.unwrap();
    eventually(WAIT, || async { (verifier.verify(&old_token) == Err(AuthError::UnknownKey)).then_some(()) })
        .await
        .expect("old key forgotten");
    assert!(verifier.verify(&new_token).is_ok());
    stop.cancel();
}

#[tokio::test]
async fn a_verifier_on_an_empty_bucket_starts_without_waiting() {
    let nats = NatsServer::start().await;
    let js = async_nats::jetstream::new(nats.client().await);
    let verifier = Verifier::new();
    tokio::time::timeout(Duration::from_secs(2), verifier.watch(&js, CancellationToken::new()))
        .await
        .expect("watch returned promptly")
        .unwrap();
}
