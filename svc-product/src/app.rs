//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the saga consumer, the optional
//! demo catalogue and the HTTP router, built once and run until stopped.

use anyhow::Context;
use axum::extract::FromRef;
use common::{
    auth::Verifier,
    db::Db,
    runtime::{App, Runtime, Service},
};
use tokio_util::sync::CancellationToken;

use crate::{SERVICE, api, config::Config, saga, seed};

/// svc-product's own tables, after the plumbing ones.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_products.sql"),
    include_str!("../migrations/0002_closed_orders.sql"),
    include_str!("../migrations/0003_stocked.sql"),
];

/// What the handlers share; each asks only for the part it uses.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub verifier: Verifier,
}

impl Service for Config {
    const NAME: &'static str = SERVICE;

    /// Starts the runtime, seeds the demo catalogue if asked to, and registers the saga consumer.
    async fn build(self, stop: CancellationToken) -> anyhow::Result<App> {
        let mut runtime = Runtime::start(SERVICE, &self.common, self.http_addr, MIGRATIONS, stop).await?;
        if self.seed_demo {
            seed::seed_demo_catalogue(&runtime.db).await.context("seeding the demo catalogue")?;
        }
        runtime.consume(saga::Saga);
        let routes = api::router(AppState { db: runtime.db.clone(), verifier: runtime.verifier.clone() });
        runtime.serving(routes)
    }
}
