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

/// The bucket as svc-user writes it (the only user that may), and a JetStream context as any other
/// service reads it.
async fn bucket_and_reader(nats: &NatsServer) -> (async_nats::jetstream::kv::Store, async_nats::jetstream::Context) {
    let owner = async_nats::jetstream::new(nats.client_as(&nats.auth(common::permissions::KEY_OWNER)).await);
    let bucket = auth::keys_bucket(&owner, 1).await.unwrap();
    (bucket, async_nats::jetstream::new(nats.client_as(&nats.auth("svc-order")).await))
}

#[tokio::test]
async fn verifiers_follow_the_key_bucket_through_a_rotation() {
    let nats = NatsServer::start().await;
    let (bucket, js) = bucket_and_reader(&nats).await;
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
    let (_bucket, js) = bucket_and_reader(&nats).await;
    let verifier = Verifier::new();
    tokio::time::timeout(Duration::from_secs(2), verifier.watch(&js, CancellationToken::new()))
        .await
        .expect("watch returned promptly")
        .unwrap();
}

#[tokio::test]
async fn a_verifier_starts_before_the_bucket_exists_and_learns_the_keys_once_it_does() {
    let nats = NatsServer::start().await;
    let js = async_nats::jetstream::new(nats.client_as(&nats.auth("svc-order")).await);
    let verifier = Verifier::new();
    let stop = CancellationToken::new();
    tokio::time::timeout(Duration::from_secs(2), verifier.watch(&js, stop.clone()))
        .await
        .expect("watch returned promptly without a bucket")
        .unwrap();

    let (bucket, _) = bucket_and_reader(&nats).await;
    let key = SigningKey::generate();
    auth::publish_key(&bucket, &key.public_jwk()).await.unwrap();
    let token = key.issue(Uuid::now_v7(), Role::Customer, Duration::from_secs(60));
    eventually(WAIT, || async { verifier.verify(&token).ok() })
        .await
        .expect("the key is learnt once the bucket exists");
    stop.cancel();
}

#[tokio::test]
async fn a_verifier_keeps_following_the_bucket_across_a_broker_restart() {
    let nats = NatsServer::start().await;
    let (bucket, js) = bucket_and_reader(&nats).await;
    let first = SigningKey::generate();
    auth::publish_key(&bucket, &first.public_jwk()).await.unwrap();
    let verifier = Verifier::new();
    let stop = CancellationToken::new();
    verifier.watch(&js, stop.clone()).await.unwrap();

    nats.restart().await;

    // A retirement and a new key made after the restart both reach the verifier.
    let second = SigningKey::generate();
    let new_token = second.issue(Uuid::now_v7(), Role::Seller, Duration::from_secs(60));
    let old_token = first.issue(Uuid::now_v7(), Role::Seller, Duration::from_secs(60));
    let published = eventually(WAIT, || async { auth::publish_key(&bucket, &second.public_jwk()).await.ok() });
    published.await.expect("the bucket takes keys again");
    bucket.delete(first.kid()).await.unwrap();
    eventually(WAIT, || async { verifier.verify(&new_token).ok() }).await.expect("new key learnt after the restart");
    eventually(WAIT, || async { (verifier.verify(&old_token) == Err(AuthError::UnknownKey)).then_some(()) })
        .await
        .expect("retired key forgotten after the restart");
    stop.cancel();
}
