//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the ledger consumer, the close
//! scheduler and the router.

use std::sync::Arc;

use axum::extract::FromRef;
use common::{
    auth::Verifier,
    db::Db,
    runtime::{App, Runtime, Service},
};
use tokio_util::sync::CancellationToken;

use crate::{
    SERVICE,
    clock::{Clock, SystemClock},
    config::Config,
    domain::Rules,
    saga::Saga,
    schedule::Scheduler,
    store,
};

/// svc-settlement's own migrations, after the plumbing tables `common` adds.
pub const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_ledger.sql")];

/// What the HTTP handlers share; each asks only for its part.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub verifier: Verifier,
    pub rules: Rules,
    pub clock: Arc<dyn Clock>,
}

impl Service for Config {
    const NAME: &'static str = SERVICE;

    /// Builds the service on the system clock.
    async fn build(self, stop: CancellationToken) -> anyhow::Result<App> {
        self.build_with_clock(stop, Arc::new(SystemClock)).await
    }
}

impl Config {
    /// Builds the service on `clock`, which drives the automatic close (tests pass a
    /// [`crate::clock::ManualClock`]): the runtime, the ledger consumer and the close scheduler.
    pub async fn build_with_clock(self, stop: CancellationToken, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let config = self;
        let mut runtime = Runtime::start(SERVICE, &config.common, config.http_addr, MIGRATIONS, stop).await?;
        let rules = config.rules();
        ensure_time_zone(&runtime.db, &rules).await?;
        tracing::info!(
            time_zone = rules.calendar.name(),
            fee_rate_bps = rules.fee_rate.bps(),
            close_grace_secs = config.close_grace_secs,
            close_tick_secs = config.close_tick_secs,
            "settlement configured"
        );
        runtime.consume(Saga::new(rules.clone()));
        let scheduler = Scheduler::new(
            runtime.db.clone(),
            runtime.js.clone(),
            rules.clone(),
            clock.clone(),
            config.close_grace(),
            config.close_tick(),
        );
        runtime.spawn(scheduler.run(runtime.stop.clone()));
        let state = AppState { db: runtime.db.clone(), verifier: runtime.verifier.clone(), rules, clock };
        runtime.serving(crate::api::router(state))
    }
}

/// Pins the ledger's time zone at first start and refuses to start in another one: business
/// dates already booked would silently mean something else.
pub async fn ensure_time_zone(db: &Db, rules: &Rules) -> anyhow::Result<()> {
    let name = rules.calendar.name().to_owned();
    let wanted = name.clone();
    let pinned = db.write(move |tx| store::days::pin_time_zone(tx, &wanted)).await?;
    if pinned != name {
        anyhow::bail!(
            "this ledger keeps business days in time zone {pinned}, but TIME_ZONE is {name}; \
             changing the time zone of an existing ledger is not supported"
        );
    }
    Ok(())
}
