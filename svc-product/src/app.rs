//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the saga consumer, the optional
//! demo catalogue and the HTTP router, built once and run until stopped.

use std::net::SocketAddr;

use anyhow::Context;
use axum::{Router, extract::FromRef};
use common::{auth::Verifier, db::Db, runtime::Runtime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{SERVICE, api, config::Config, saga, seed};

/// svc-product's own tables, after the plumbing ones.
pub const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_products.sql")];

/// What the handlers share; each asks only for the part it uses.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub verifier: Verifier,
}

/// A built service, listening but not yet serving.
#[derive(Debug)]
pub struct App {
    runtime: Runtime,
    listener: TcpListener,
    routes: Router,
    addr: SocketAddr,
}

impl App {
    /// Binds the listener (port 0 picks a free one), starts the runtime, seeds the demo catalogue
    /// if asked to, and registers the saga consumer. Stops when `stop` is cancelled.
    pub async fn build(config: Config, stop: CancellationToken) -> anyhow::Result<App> {
        let listener =
            TcpListener::bind(config.http_addr).await.with_context(|| format!("binding {}", config.http_addr))?;
        let addr = listener.local_addr()?;
        let runtime = Runtime::start(SERVICE, &config.common, MIGRATIONS, stop).await?;
        if config.seed_demo {
            seed::seed_demo_catalogue(&runtime.db).await.context("seeding the demo catalogue")?;
        }
        runtime.consume(saga::Saga);
        let routes = api::router(AppState { db: runtime.db.clone(), verifier: runtime.verifier.clone() });
        Ok(App { runtime, listener, routes, addr })
    }

    /// The address the HTTP API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service's database, for tests and tools that inspect its state.
    pub fn db(&self) -> Db {
        self.runtime.db.clone()
    }

    /// Serves HTTP and runs the relay and consumer until the stop token is cancelled.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.runtime.serve(self.listener, self.routes).await
    }
}
