//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the consumer and the router.

use axum::extract::FromRef;
use common::{
    auth::Verifier,
    db::Db,
    runtime::{App, Runtime, Service},
};
use tokio_util::sync::CancellationToken;

use crate::{SERVICE, api, config::Config, expiry::Expiry, saga::Saga, waiters::Waiters};

pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_orders.sql"),
    include_str!("../migrations/0002_deadline.sql"),
    include_str!("../migrations/0003_console.sql"),
];

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
    /// How long a new order's saga may take (`ORDER_DEADLINE_SECS`).
    #[from_ref(skip)]
    pub deadline: std::time::Duration,
}

impl Service for Config {
    const NAME: &'static str = SERVICE;

    /// Starts the runtime, the consumer (the saga and its trace) and the expiry of overdue orders.
    async fn build(self, stop: CancellationToken) -> anyhow::Result<App> {
        let mut runtime = Runtime::start(SERVICE, &self.common, self.http_addr, MIGRATIONS, stop).await?;
        let waiters = Waiters::default();
        runtime.spawn(waiters.follow(&runtime.nats, runtime.stop.clone()).await?);
        runtime.consume(Saga::new(waiters.clone(), self.order_deadline()));
        runtime.spawn(Expiry::new(runtime.db.clone(), waiters.clone()).run(runtime.stop.clone()));
        runtime.spawn(crate::housekeeping::run(runtime.db.clone(), runtime.stop.clone()));
        let state = AppState {
            db: runtime.db.clone(),
            verifier: runtime.verifier.clone(),
            waiters,
            stop: runtime.stop.clone(),
            deadline: self.order_deadline(),
        };
        let console = crate::console::ConsoleState {
            db: runtime.db.clone(),
            verifier: runtime.verifier.clone(),
            nats: runtime.nats.clone(),
            live: crate::console::Live::default(),
            stop: runtime.stop.clone(),
        };
        // One document for both: the console's routes are documented like the API's.
        runtime.serving(api::routes().with_state(state).merge(crate::console::router(console)))
    }
}
