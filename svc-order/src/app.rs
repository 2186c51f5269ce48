//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the two consumers and the router.

use axum::extract::FromRef;
use common::{
    auth::Verifier,
    db::Db,
    runtime::{App, Runtime, Service},
};
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE, api,
    config::Config,
    saga::{Saga, Trace},
    waiters::Waiters,
};

pub(crate) const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_orders.sql")];

/// Everything the handlers use; each handler extracts only the parts it needs. The handlers that
/// honour `Prefer: wait`, the users of `waiters` and `stop`, take the whole state.
#[derive(Clone, Debug, FromRef)]
pub struct AppState {
    pub db: Db,
    pub verifier: Verifier,
    #[from_ref(skip)]
    pub waiters: Waiters,
    /// Cancelled at shutdown: waiting requests answer at once instead of holding the shutdown up.
    #[from_ref(skip)]
    pub stop: CancellationToken,
}

impl Service for Config {
    const NAME: &'static str = SERVICE;

    /// Starts the runtime and both consumers (the saga and its trace).
    async fn build(self, stop: CancellationToken) -> anyhow::Result<App> {
        let mut runtime = Runtime::start(SERVICE, &self.common, self.http_addr, MIGRATIONS, stop).await?;
        let waiters = Waiters::default();
        runtime.consume(Saga::new(waiters.clone()));
        runtime.consume(Trace);
        let state = AppState {
            db: runtime.db.clone(),
            verifier: runtime.verifier.clone(),
            waiters,
            stop: runtime.stop.clone(),
        };
        runtime.serving(api::router(state))
    }
}
