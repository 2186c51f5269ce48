//! Wiring: the database, the listener, the router with health checks and the common layers, and
//! serving until the stop token is cancelled.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    extract::{FromRef, State},
    routing::get,
};
use common::{
    db::Db,
    http::{ApiError, Code, Limits},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE,
    config::Config,
    faults::{FaultSettings, Faults},
    rules::Rules,
};

/// The gateway's own SQL, after the plumbing tables `Db::open` creates.
pub const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_gateway.sql")];

/// What the HTTP handlers share; each asks only for its part.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub rules: Rules,
    pub faults: Faults,
}

/// A built gateway: database open and migrated, listener bound, ready to serve.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    stop: CancellationToken,
}

impl App {
    /// Opens (creating) `<data-dir>/payment-gateway.db`, binds `--http-addr` (port 0 picks a free
    /// one) and builds the router. Serving starts with [`App::run_until_stopped`]; cancelling
    /// `stop` ends it.
    pub async fn build(config: Config, stop: CancellationToken) -> anyhow::Result<App> {
        let db = Db::open(&config.db_path(), MIGRATIONS).await?;
        let listener =
            TcpListener::bind(config.http_addr).await.with_context(|| format!("binding {}", config.http_addr))?;
        let addr = listener.local_addr()?;
        let rules = config.rules();
        let faults = Faults::new(config.faults(), stop.clone());
        tracing::info!(
            limit = rules.limit().0,
            decline_rate_bps = rules.decline_rate().bps(),
            faults = ?faults.settings(),
            "gateway configured"
        );
        let router = finish(crate::api::router(AppState { db: db.clone(), rules, faults }), db);
        Ok(App { listener, addr, router, stop })
    }

    /// The address the API listens on (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves within `limits()` until the stop token is cancelled, then lets the requests in flight
    /// finish (a hang is cut short by the same token).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let App { listener, addr, router, stop } = self;
        tracing::info!(service = SERVICE, %addr, "listening");
        common::http::serve(listener, router, limits(), stop).await?;
        tracing::info!(service = SERVICE, "stopped");
        Ok(())
    }
}

/// The common defaults, but with a request timeout above the longest simulated fault (latency
/// plus hang), so that a hang the caller asked for still ends in its 504, not in the server's 503.
fn limits() -> Limits {
    let longest_fault = Duration::from_millis(FaultSettings::MAX_LATENCY_MS + FaultSettings::MAX_HANG_MS);
    Limits { request_timeout: longest_fault + Duration::from_secs(5), ..Limits::default() }
}

/// `common::http::finish_router`'s health checks, fallbacks and layers, with a readiness of its
/// own: the database (the gateway has no bus).
fn finish(routes: Router, db: Db) -> Router {
    common::http::finish("payment-gateway", routes, Router::new().route("/health/ready", get(ready)).with_state(db))
}

async fn ready(State(db): State<Db>) -> Result<&'static str, ApiError> {
    db.ping().await.map_err(|_| ApiError::new(Code::NotReady, "database unavailable"))?;
    Ok("ready")
}
