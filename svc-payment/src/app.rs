//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the saga consumer and the router.

use std::net::SocketAddr;

use axum::{Router, extract::FromRef};
use common::{auth::Verifier, db::Db, runtime::Runtime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{SERVICE, config::Config, saga::Saga};

const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_payments.sql")];

/// What the HTTP handlers share; each asks only for its part.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub verifier: Verifier,
}

/// A built service: listener bound, consumer started, ready to serve.
#[derive(Debug)]
pub struct App {
    runtime: Runtime,
    listener: TcpListener,
    addr: SocketAddr,
    routes: Router,
}

impl App {
    /// Binds the listener, starts the runtime and the `stock.reserved` consumer.
    pub async fn build(config: Config, stop: CancellationToken) -> anyhow::Result<App> {
        let listener = TcpListener::bind(config.http_addr).await?;
        let addr = listener.local_addr()?;
        let runtime = Runtime::start(SERVICE, &config.common, MIGRATIONS, stop).await?;
        let gateway = config.gateway();
        tracing::info!(
            limit = gateway.limit().0,
            decline_rate_bps = config.decline_rate_bps.bps(),
            latency_ms = config.latency_ms,
            "gateway configured"
        );
        runtime.consume(Saga::new(gateway));
        let state = AppState { db: runtime.db.clone(), verifier: runtime.verifier.clone() };
        Ok(App { routes: crate::api::router(state), runtime, listener, addr })
    }

    /// The address the HTTP API listens on (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the stop token is cancelled, then lets the relay and consumer finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.runtime.serve(self.listener, self.routes).await
    }
}
