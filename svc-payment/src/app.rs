//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the saga consumer (of every
//! order, or of one shard of them) and the router.

use axum::extract::FromRef;
use common::{
    auth::Verifier,
    db::Db,
    runtime::{App, Runtime, Service},
};
use tokio_util::sync::CancellationToken;

use crate::{SERVICE, config::Config, gateway::Gateway, saga::Saga};

const MIGRATIONS: &[&str] =
    &[include_str!("../migrations/0001_payments.sql"), include_str!("../migrations/0002_closed_orders.sql")];

/// What the HTTP handlers share; each asks only for its part.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub verifier: Verifier,
    pub gateway: Gateway,
    /// This instance's shard, if it runs as one.
    pub shard: Option<common::bus::Shards>,
}

impl Service for Config {
    const NAME: &'static str = SERVICE;

    /// Starts the runtime and the consumer charging and refunding through the gateway.
    async fn build(self, stop: CancellationToken) -> anyhow::Result<App> {
        let config = self;
        let mut runtime = Runtime::start(SERVICE, &config.common, config.http_addr, MIGRATIONS, stop).await?;
        let gateway = config.gateway()?;
        tracing::info!(
            url = gateway.url(),
            timeout_ms = config.gateway_timeout_ms,
            retries = config.gateway_retries,
            breaker_failures = config.breaker_failures,
            "payment gateway configured"
        );
        let saga = Saga::new(gateway.clone());
        if let Some(shard) = config.shard {
            // Refuse to start against a shard stream partitioned into another number of shards.
            use common::consumer::Handler;
            shard.ensure_stream(&runtime.js, SERVICE, saga.consumes(), runtime.replicas).await?;
            tracing::info!(%shard, "consuming one shard of the orders");
        }
        runtime.consume_shard(saga, config.shard);
        // The saga console shows the breaker next to the service's other figures.
        let watched = gateway.clone();
        runtime
            .ops()
            .extra("gateway", move || serde_json::json!({"url": watched.url(), "breaker": watched.breaker_state()}));
        let state =
            AppState { db: runtime.db.clone(), verifier: runtime.verifier.clone(), gateway, shard: config.shard };
        runtime.serving(crate::api::router(state))
    }
}
