//! Wiring: configuration in, a running svc-user out.

use std::sync::Arc;

use axum::extract::FromRef;
use common::{
    Role,
    auth::Verifier,
    db::Db,
    runtime::{App, Runtime, Service},
};
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE, api,
    config::Config,
    domain::{Email, HashError, NewUser, PasswordHash, User},
    hashing::{Hashing, HashingError},
    keys::{self, Tokens},
    store,
    throttle::LoginThrottle,
};

/// svc-user's own migrations, after the plumbing tables `common` adds.
pub const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_users.sql")];

/// What the handlers share. Each handler asks only for the parts it uses (`FromRef` makes each
/// field a sub-state); [`Verifier`] among them is what lets `AuthUser` extract.
#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub db: Db,
    pub verifier: Verifier,
    pub tokens: Tokens,
    pub decoy: DecoyHash,
    pub hashing: Hashing,
    pub throttle: LoginThrottle,
}

/// The hash unknown emails are checked against at login (see [`PasswordHash::decoy`]). Made in
/// the background as the service starts, so readiness does not wait for an Argon2 run; a login
/// that comes first waits for it (and makes it, if the background run failed).
#[derive(Clone, Debug, Default)]
pub struct DecoyHash(Arc<tokio::sync::OnceCell<PasswordHash>>);

impl DecoyHash {
    pub async fn get(&self, hashing: &Hashing) -> Result<PasswordHash, DecoyError> {
        let made = self.0.get_or_try_init(|| async {
            match hashing.run(PasswordHash::decoy).await {
                Ok(Ok(hash)) => Ok(hash),
                Ok(Err(e)) => Err(DecoyError::Hash(e)),
                Err(e) => Err(DecoyError::Hashing(e)),
            }
        });
        made.await.cloned()
    }
}

/// Why the decoy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DecoyError {
    #[error(transparent)]
    Hashing(#[from] HashingError),
    #[error("cannot make the decoy hash: {0}")]
    Hash(HashError),
}

impl Service for Config {
    const NAME: &'static str = SERVICE;

    /// Starts the shared runtime (listener, database, NATS, key watch, outbox relay), creates the
    /// bootstrap admin if configured (refusing to start if its email is another role's account)
    /// and brings the signing keys in line with the bucket (see [`keys`]).
    async fn build(self, stop: CancellationToken) -> anyhow::Result<App> {
        let config = self;
        // A bad admin setting is a configuration error: report it before touching anything.
        let admin = config
            .admin()
            .map(|(email, password)| NewUser::admin(email, password.to_owned()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("ADMIN_{}: {e}", e.field().to_uppercase()))?;
        let throttle = LoginThrottle::new(config.login.settings()?);
        let mut runtime = Runtime::start(SERVICE, &config.common, config.http_addr, MIGRATIONS, stop).await?;

        let hashing = Hashing::per_cpu();
        // Before the keys are published: a start refused here leaves the bucket as it was.
        if let Some(admin) = admin {
            bootstrap_admin(&runtime.db, &hashing, admin).await?;
        }
        let tokens = keys::start(&runtime, config.token_ttl()).await?;
        let decoy = DecoyHash::default();
        let (making, with) = (decoy.clone(), hashing.clone());
        runtime.spawn(async move {
            if let Err(error) = making.get(&with).await {
                tracing::warn!(%error, "could not make the login decoy hash; the first login makes it");
            }
        });

        let state =
            AppState { db: runtime.db.clone(), verifier: runtime.verifier.clone(), tokens, decoy, hashing, throttle };
        let login = state.clone();
        runtime.ops().endpoint("login", move |body| api::console_log_in(login.clone(), body));
        runtime.serving(api::router(state))
    }
}

/// Creates the configured admin unless an account with that email exists. An existing admin is
/// left exactly as it is (the configured password is not re-applied); an existing account of
/// another role is an error, which stops the start: quietly going on would leave the operator
/// without the admin they configured, and promoting the account would hand a stranger the keys.
/// An account found at once costs no password hash (a restart); otherwise this goes through
/// sign-up's own path and lets the unique index decide (two instances starting together).
async fn bootstrap_admin(db: &Db, hashing: &Hashing, admin: NewUser) -> anyhow::Result<()> {
    let email = admin.email.clone();
    if let Some(existing) = find(db, &email).await? {
        return keep_existing_admin(&email, Some(existing));
    }
    match api::register(db, hashing, admin).await {
        Ok(user) => tracing::info!(user.id = %user.id, admin.email = %email.as_str(), "bootstrap admin created"),
        Err(api::RegisterError::EmailTaken) => return keep_existing_admin(&email, find(db, &email).await?),
        Err(e) => {
            return Err(anyhow::Error::new(e).context("creating the bootstrap admin"));
        }
    }
    Ok(())
}

async fn find(db: &Db, email: &Email) -> anyhow::Result<Option<User>> {
    let email = email.clone();
    Ok(db.read(move |c| store::find_by_email(c, &email)).await?.map(|(user, _)| user))
}

/// The start goes on if the account of the admin's email is an admin.
fn keep_existing_admin(email: &Email, existing: Option<User>) -> anyhow::Result<()> {
    match existing {
        Some(user) if user.role == Role::Admin => {
            tracing::info!(admin.email = %email.as_str(), "bootstrap admin already exists; left unchanged");
            Ok(())
        }
        Some(user) => anyhow::bail!(
            "ADMIN_EMAIL {} belongs to an existing {} account, not an ADMIN one; refusing to start \
             (choose another ADMIN_EMAIL, or change that account's role by hand)",
            email.as_str(),
            user.role.as_str()
        ),
        // Taken a moment ago, gone now: deleted by hand in between. A new start will do.
        None => anyhow::bail!("ADMIN_EMAIL {}: the account vanished during start-up; start again", email.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_decoy_is_made_once_and_shared_by_every_clone() {
        let (decoy, hashing) = (DecoyHash::default(), Hashing::per_cpu());
        let other = decoy.clone();
        let (a, b) = tokio::join!(decoy.get(&hashing), other.get(&hashing));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a == b, "one hash, not one per caller");
        assert!(decoy.get(&hashing).await.unwrap() == a);
        assert!(!a.verify("any password").unwrap(), "a decoy matches nothing anyone types");
    }
}
