//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the two consumers and the router.

use std::net::SocketAddr;

use axum::{Router, extract::FromRef};
use common::{auth::Verifier, db::Db, runtime::Runtime};
use tokio::net::TcpListener;
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

/// A built service, listening but not yet serving.
#[derive(Debug)]
pub struct App {
    runtime: Runtime,
    listener: TcpListener,
    addr: SocketAddr,
    routes: Router,
}

impl App {
    /// Binds the listener, starts the runtime and both consumers. Stops when `stop` is cancelled.
    pub async fn build(config: Config, stop: CancellationToken) -> anyhow::Result<App> {
        let listener = TcpListener::bind(config.http_addr).await?;
        let addr = listener.local_addr()?;
        let runtime = Runtime::start(SERVICE, &config.common, MIGRATIONS, stop).await?;
        let waiters = Waiters::default();
        runtime.consume(Saga::new(waiters.clone()));
        runtime.consume(Trace);
        let state = AppState {
            db: runtime.db.clone(),
            verifier: runtime.verifier.clone(),
            waiters,
            stop: runtime.stop.clone(),
        };
        Ok(App { routes: api::router(state), runtime, listener, addr })
    }

    /// The address the HTTP API listens on (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the stop token is cancelled, then lets the relay and consumers finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.runtime.serve(self.listener, self.routes).await
    }
}
