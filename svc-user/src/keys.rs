//! The signing key's life, driven by the `auth-keys` bucket.
//!
//! svc-user signs with the newest key in its database that is not retired, and publishes the
//! public half of every such key. An operator retires a key by deleting (or purging) it from the
//! bucket: every verifier stops accepting its tokens, and svc-user, which watches the bucket too,
//! marks it retired; if it was the key being signed with, a fresh one is generated, persisted and
//! published, and logins go on signing with that. A deletion made while svc-user was down is
//! found at the next start, before anything is published, so a retired key never comes back.
//!
//! Only svc-user may write the bucket (NATS permissions), and svc-user checks what it holds: a
//! value under one of its keys' ids that is not that key's public half is put right at start
//! and whenever the watch shows it, so tokens keep verifying everywhere.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context;
use async_nats::jetstream::kv;
use backon::Retryable;
use common::{
    auth::{self, SigningKey, Verifier},
    db::{Db, now_ms},
    runtime::Runtime,
};
use futures_util::StreamExt;
use rusqlite::Transaction;
use tokio_util::sync::CancellationToken;

use crate::{domain::User, store};

/// Issues access tokens: the key currently signed with and how long a token lives. Clones share
/// the key, so a rotation reaches every handler at once.
#[derive(Clone, Debug)]
pub struct Tokens {
    key: Arc<RwLock<Arc<SigningKey>>>,
    ttl: Duration,
}

impl Tokens {
    pub fn new(key: SigningKey, ttl: Duration) -> Self {
        Tokens { key: Arc::new(RwLock::new(Arc::new(key))), ttl }
    }

    /// A signed access token naming `user` and its role.
    pub fn issue(&self, user: &User) -> String {
        self.current().issue(user.id, user.role, self.ttl)
    }

    /// How long each token is valid from issue.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The id of the key tokens are signed with now.
    pub fn kid(&self) -> String {
        self.current().kid().to_owned()
    }

    // The lock is held only to clone or swap the `Arc`, never while signing.
    fn current(&self) -> Arc<SigningKey> {
        self.key.read().expect("signing key lock").clone()
    }

    fn switch_to(&self, key: SigningKey) {
        *self.key.write().expect("signing key lock") = Arc::new(key);
    }
}

/// Reconciles the database with the bucket, publishes the keys in use and returns the tokens
/// signed with the active one; a spawned task then follows deletions until the service stops.
pub async fn start(runtime: &Runtime, ttl: Duration) -> anyhow::Result<Tokens> {
    let keys = Keys {
        db: runtime.db.clone(),
        bucket: auth::keys_bucket(&runtime.js, runtime.replicas).await?,
        verifier: runtime.verifier.clone(),
    };
    // Watching before reconciling: a deletion landing in between is delivered, not missed. Both
    // retried while the bucket does not answer yet (a cluster still electing its leader).
    let changes = (|| keys.bucket.watch(">"))
        .retry(common::bus::startup_backoff())
        .await
        .context("watching the auth-keys bucket")?;
    let key = (|| keys.first_key()).retry(common::bus::startup_backoff()).await?;
    tracing::info!(kid = key.kid(), "signing key published");
    let tokens = Tokens::new(key, ttl);
    runtime.spawn(keys.follow(changes, tokens.clone(), runtime.stop.clone()));
    Ok(tokens)
}

struct Keys {
    db: Db,
    bucket: kv::Store,
    verifier: Verifier,
}

impl Keys {
    /// Each key in use published again (or retired, if deleted from the bucket while we were
    /// down), then the active one. Repeatable: a retry after a failure halfway changes nothing.
    async fn first_key(&self) -> anyhow::Result<SigningKey> {
        for (kid, der) in self.db.read(store::find_signing_keys_in_use).await? {
            let key = SigningKey::from_pkcs8_der(kid, &der)?;
            if !self.publish(&key).await? {
                self.retire(key.kid()).await?;
                tracing::warn!(kid = key.kid(), "signing key was deleted from the bucket while we were down: retired");
            }
        }
        self.activate(None).await
    }

    /// Handles each change of the bucket until `stop`: a deletion retires the key; a put under
    /// one of our keys' ids that is not our public key (tampering, or a bug elsewhere) is
    /// repaired. A watch that ends is logged and established again, and what may have been
    /// missed meanwhile is reconciled.
    async fn follow(self, mut watch: kv::Watch, tokens: Tokens, stop: CancellationToken) {
        loop {
            let entry = tokio::select! {
                _ = stop.cancelled() => return,
                entry = watch.next() => entry,
            };
            let entry = match entry {
                Some(Ok(entry)) => entry,
                Some(Err(error)) => {
                    tracing::warn!(%error, "auth key watch error");
                    continue;
                }
                None => {
                    tracing::error!("auth key watch ended; establishing it again");
                    match self.rewatch(&tokens, &stop).await {
                        Some(again) => {
                            watch = again;
                            continue;
                        }
                        None => return,
                    }
                }
            };
            let kid = entry.key.clone();
            // Until this succeeds, logins may sign with a key nobody accepts: worth retrying hard.
            let handled =
                (|| self.on_change(&entry, &tokens)).retry(common::bus::startup_backoff()).notify(|error, after| {
                    tracing::warn!(error = format!("{error:#}"), kid, ?after, "handling a key change failed")
                });
            tokio::select! {
                _ = stop.cancelled() => return,
                result = handled => if let Err(error) = result {
                    tracing::error!(error = format!("{error:#}"), kid, "could not handle a change of the auth-keys bucket");
                },
            }
        }
    }

    /// A new watch (retried until the bucket answers), and every key in use checked against the
    /// bucket as it is now: what changed while no one watched is caught up with.
    async fn rewatch(&self, tokens: &Tokens, stop: &CancellationToken) -> Option<kv::Watch> {
        let again = || async {
            let watch = self.bucket.watch(">").await?;
            self.reconcile(tokens).await?;
            anyhow::Ok(watch)
        };
        let retried = again.retry(common::bus::startup_backoff().without_max_times()).notify(|error, after| {
            tracing::warn!(error = format!("{error:#}"), ?after, "re-establishing the auth key watch failed")
        });
        tokio::select! {
            _ = stop.cancelled() => None,
            watch = retried => watch.ok(),
        }
    }

    /// Each key in use: still in the bucket as ours (repaired if not), or retired if deleted.
    async fn reconcile(&self, tokens: &Tokens) -> anyhow::Result<()> {
        for (kid, der) in self.db.read(store::find_signing_keys_in_use).await? {
            let key = SigningKey::from_pkcs8_der(kid, &der)?;
            if !self.publish(&key).await? {
                self.on_deleted(key.kid(), tokens).await?;
            }
        }
        Ok(())
    }

    async fn on_change(&self, entry: &kv::Entry, tokens: &Tokens) -> anyhow::Result<()> {
        if matches!(entry.operation, kv::Operation::Delete | kv::Operation::Purge) {
            return self.on_deleted(&entry.key, tokens).await;
        }
        // A put: ours only if it is under the id of a key we sign with (or did).
        let ours = self.db.read(store::find_signing_keys_in_use).await?.into_iter().find(|(kid, _)| *kid == entry.key);
        if let Some((kid, der)) = ours {
            let key = SigningKey::from_pkcs8_der(kid, &der)?;
            self.publish(&key).await?;
        }
        Ok(())
    }

    async fn on_deleted(&self, kid: &str, tokens: &Tokens) -> anyhow::Result<()> {
        // The verifier's own watch drops the key as well; doing it here too orders it after any
        // `insert` made by `publish`, which may have raced with that watch.
        self.verifier.remove(kid);
        if tokens.kid() == kid {
            let key = self.activate(Some(kid.to_owned())).await?;
            tracing::warn!(retired.kid = kid, kid = key.kid(), "active signing key deleted from the bucket: rotated");
            tokens.switch_to(key);
        } else if self.retire(kid).await? {
            tracing::info!(kid, "signing key deleted from the bucket: retired");
        }
        Ok(())
    }

    /// Retires `retired` (if given) and returns the key to sign with from now on, published.
    async fn activate(&self, mut retired: Option<String>) -> anyhow::Result<SigningKey> {
        loop {
            let key = self.db.write(move |tx| next_active(tx, retired.as_deref(), now_ms())).await?;
            if self.publish(&key).await? {
                return Ok(key);
            }
            // Deleted between our look and our publish: that key is retired too.
            retired = Some(key.kid().to_owned());
        }
    }

    async fn retire(&self, kid: &str) -> anyhow::Result<bool> {
        let kid = kid.to_owned();
        self.db.write(move |tx| Ok::<_, anyhow::Error>(store::retire_signing_key(tx, &kid, now_ms())?)).await
    }

    /// Makes sure `key`'s public half is in the bucket and known to our verifier, unless an
    /// operator deleted it from the bucket, in which case it says so (false) and publishes nothing.
    async fn publish(&self, key: &SigningKey) -> anyhow::Result<bool> {
        let jwk = key.public_jwk();
        let value = serde_json::to_vec(&jwk)?;
        loop {
            match self.bucket.entry(&jwk.kid).await.context("reading the auth-keys bucket")? {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    if serde_json::from_slice::<auth::PublicJwk>(&entry.value).ok().as_ref() == Some(&jwk) {
                        break;
                    }
                    // Something else sits under our key's id: put our public key back, over
                    // exactly what we read (a deletion landing meanwhile wins).
                    tracing::error!(
                        kid = jwk.kid,
                        "the auth-keys bucket holds another value under our key id: repairing it"
                    );
                    match self.bucket.update(&jwk.kid, value.clone().into(), entry.revision).await {
                        Ok(_) => break,
                        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                        Err(e) => return Err(anyhow::Error::new(e).context("repairing a signing key")),
                    }
                }
                // A delete or purge marker: the key was retired there.
                Some(_) => return Ok(false),
                // Expecting revision 0 writes only a key with no history at all (a fresh bucket,
                // a new key), so a deletion landing meanwhile is never overwritten.
                None => match self.bucket.update(&jwk.kid, value.clone().into(), 0).await {
                    Ok(_) => break,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                    Err(e) => return Err(anyhow::Error::new(e).context("publishing a signing key")),
                },
            }
        }
        // The bucket watch delivers the key as well, but only eventually; the tokens this service
        // issues must verify here from the first request on.
        self.verifier.insert(&jwk)?;
        Ok(true)
    }
}

/// In one immediate transaction, so two instances on one file agree: retires `retired` (if
/// given) and returns the newest key in use, created after `retired` if that was given, or a
/// fresh key persisted now. An older key is never promoted in place of a retired one.
fn next_active(tx: &Transaction<'_>, retired: Option<&str>, now_ms: i64) -> anyhow::Result<SigningKey> {
    let found = match retired {
        Some(kid) => {
            store::retire_signing_key(tx, kid, now_ms)?;
            store::find_signing_key_after(tx, kid)?
        }
        None => store::find_active_signing_key(tx)?,
    };
    if let Some((kid, der)) = found {
        return SigningKey::from_pkcs8_der(kid, &der);
    }
    let key = SigningKey::generate();
    store::insert_signing_key(tx, key.kid(), &key.to_pkcs8_der(), now_ms)?;
    tracing::info!(kid = key.kid(), "generated a new signing key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use common::Role;
    use rusqlite::Connection;
    use uuid::Uuid;

    use super::*;

    fn migrated() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../migrations/0001_users.sql")).unwrap();
        conn
    }

    fn next(conn: &mut Connection, retired: Option<&str>) -> SigningKey {
        let tx = conn.transaction().unwrap();
        let key = next_active(&tx, retired, 1).unwrap();
        tx.commit().unwrap();
        key
    }

    fn in_use(conn: &Connection) -> Vec<String> {
        store::find_signing_keys_in_use(conn).unwrap().into_iter().map(|(kid, _)| kid).collect()
    }

    #[test]
    fn the_first_start_generates_a_key_and_later_starts_keep_it() {
        let mut conn = migrated();
        let first = next(&mut conn, None);
        let again = next(&mut conn, None);
        assert_eq!(again.public_jwk(), first.public_jwk());
        assert_eq!(in_use(&conn), [first.kid()]);
    }

    #[test]
    fn retiring_the_active_key_replaces_it_with_a_fresh_one() {
        let mut conn = migrated();
        let old = next(&mut conn, None);
        let new = next(&mut conn, Some(old.kid()));
        assert_ne!(new.kid(), old.kid());
        assert_eq!(in_use(&conn), [new.kid()]);
    }

    #[test]
    fn a_second_instance_retiring_the_same_key_adopts_the_first_ones_replacement() {
        let mut conn = migrated();
        let old = next(&mut conn, None);
        let replacement = next(&mut conn, Some(old.kid()));
        let adopted = next(&mut conn, Some(old.kid()));
        assert_eq!(adopted.public_jwk(), replacement.public_jwk());
        assert_eq!(in_use(&conn), [replacement.kid()]);
    }

    #[test]
    fn an_older_key_in_use_is_not_promoted_when_the_active_one_is_retired() {
        let mut conn = migrated();
        let older = next(&mut conn, None);
        let tx = conn.transaction().unwrap();
        let active = SigningKey::generate();
        store::insert_signing_key(&tx, active.kid(), &active.to_pkcs8_der(), 2).unwrap();
        tx.commit().unwrap();

        let new = next(&mut conn, Some(active.kid()));

        assert!(new.kid() != older.kid() && new.kid() != active.kid());
        assert_eq!(in_use(&conn), [older.kid(), new.kid()]);
    }

    #[test]
    fn a_switch_reaches_every_clone_of_the_tokens() {
        let (old, new) = (SigningKey::generate(), SigningKey::generate());
        let new_jwk = new.public_jwk();
        let tokens = Tokens::new(old, Duration::from_secs(60));
        let handler_copy = tokens.clone();

        tokens.switch_to(new);

        assert_eq!(handler_copy.kid(), new_jwk.kid);
        let verifier = Verifier::new();
        verifier.insert(&new_jwk).unwrap();
        let user = User {
            id: Uuid::now_v7(),
            email: "kim@example.com".into(),
            name: "Kim".into(),
            role: Role::Customer,
            created_at: common::db::now(),
        };
        assert!(verifier.verify(&handler_copy.issue(&user)).is_ok(), "signed with the new key");
    }
}
