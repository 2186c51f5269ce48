//! Wiring: configuration in, a running svc-user out.

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
    domain::{NewUser, PasswordHash},
    hashing::Hashing,
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

/// The hash unknown emails are checked against at login (see [`PasswordHash::decoy`]).
#[derive(Clone, Debug)]
pub struct DecoyHash(pub PasswordHash);

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
        let decoy = hashing.run(PasswordHash::decoy).await??;

        let state = AppState {
            db: runtime.db.clone(),
            verifier: runtime.verifier.clone(),
            tokens,
            decoy: DecoyHash(decoy),
            hashing,
            throttle,
        };
        let login = state.clone();
        runtime.ops().endpoint("login", move |body| api::console_log_in(login.clone(), body));
        runtime.serving(api::router(state))
    }
}

/// Creates the configured admin unless an account with that email exists. An existing admin is
/// left exactly as it is (the configured password is not re-applied); an existing account of
/// another role is an error, which stops the start: quietly going on would leave the operator
/// without the admin they configured, and promoting the account would hand a stranger the keys.
/// This goes through sign-up's own path and lets the unique index decide, at the price of one
/// password hash per start.
async fn bootstrap_admin(db: &Db, hashing: &Hashing, admin: NewUser) -> anyhow::Result<()> {
    let email = admin.email.clone();
    match api::register(db, hashing, admin).await {
        Ok(user) => tracing::info!(user.id = %user.id, admin.email = %email.as_str(), "bootstrap admin created"),
        Err(api::RegisterError::EmailTaken) => {
            let existing = {
                let email = email.clone();
                db.read(move |c| store::find_by_email(c, &email)).await?
            };
            match existing {
                Some((user, _)) if user.role == Role::Admin => {
                    tracing::info!(admin.email = %email.as_str(), "bootstrap admin already exists; left unchanged")
                }
                Some((user, _)) => anyhow::bail!(
                    "ADMIN_EMAIL {} belongs to an existing {} account, not an ADMIN one; refusing to start \
                     (choose another ADMIN_EMAIL, or change that account's role by hand)",
                    email.as_str(),
                    user.role.as_str()
                ),
                // Taken a moment ago, gone now: deleted by hand in between. A new start will do.
                None => {
                    anyhow::bail!("ADMIN_EMAIL {}: the account vanished during start-up; start again", email.as_str())
                }
            }
        }
        Err(api::RegisterError::Failed(e)) => return Err(e.context("creating the bootstrap admin")),
        Err(api::RegisterError::Hashing(e)) => {
            return Err(anyhow::Error::new(e).context("creating the bootstrap admin"));
        }
    }
    Ok(())
}
