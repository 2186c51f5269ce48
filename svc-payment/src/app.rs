//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the saga consumer and the router.

use axum::extract::FromRef;
use common::{
    auth::Verifier,
    db::Db,
    runtime::{App, Runtime, Service},
};
use tokio_util::sync::CancellationToken;

use crate::{SERVICE, config::Config, saga::Saga};

const MIGRATIONS: &[&str] =
    &[include_str!("../migrations/0001_payments.sql"), include_str!("../migrations/0002_closed_orders.sql")];

/// What the HTTP handlers share; each asks only for its part.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub verifier: Verifier,
}

impl Service for Config {
    const NAME: &'static str = SERVICE;

    /// Starts the runtime and the `stock.reserved` consumer charging through the gateway.
    async fn build(self, stop: CancellationToken) -> anyhow::Result<App> {
        let config = self;
        let mut runtime = Runtime::start(SERVICE, &config.common, config.http_addr, MIGRATIONS, stop).await?;
        let gateway = config.gateway();
        tracing::info!(
            limit = gateway.limit().0,
            decline_rate_bps = config.decline_rate_bps.bps(),
            latency_ms = config.latency_ms,
            "gateway configured"
        );
        runtime.consume(Saga::new(gateway));
        let state = AppState { db: runtime.db.clone(), verifier: runtime.verifier.clone() };
        runtime.serving(crate::api::router(state))
    }
}
