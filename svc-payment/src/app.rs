//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the saga consumer and the router.

use std::net::SocketAddr;

use axum::extract::FromRef;
use common::{auth::Verifier, bus::ConsumerSpec, db::Db, runtime::Runtime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{SERVICE, config::Config, saga::Saga};

/// The subjects the saga reacts to.
pub const CONSUMES: &[&str] = &["stock.reserved.*"];
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
        runtime.consume(ConsumerSpec::new(SERVICE, CONSUMES), Saga::new(gateway));
        Ok(App { runtime, listener, addr })
    }

    /// The address the HTTP API listens on (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the stop token is cancelled, then lets the relay and consumer finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let state = AppState { db: self.runtime.db.clone(), verifier: self.runtime.verifier.clone() };
        self.runtime.serve(self.listener, crate::api::router(state)).await
    }
}
