//! Wiring: the runtime (database, NATS, auth keys, outbox relay), the ledger consumer, the close
//! scheduler and the router.

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, extract::FromRef};
use common::{
    auth::Verifier,
    db::{Db, DbError},
    runtime::Runtime,
};
use tokio::net::TcpListener;
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

/// A built service: listener bound, consumer and scheduler started, ready to serve.
#[derive(Debug)]
pub struct App {
    runtime: Runtime,
    listener: TcpListener,
    addr: SocketAddr,
    routes: Router,
}

impl App {
    /// Builds the service on the system clock.
    pub async fn build(config: Config, stop: CancellationToken) -> anyhow::Result<App> {
        Self::build_with_clock(config, stop, Arc::new(SystemClock)).await
    }

    /// Builds the service on `clock`, which drives the automatic close (tests pass a
    /// [`crate::clock::ManualClock`]).
    pub async fn build_with_clock(
        config: Config,
        stop: CancellationToken,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let listener = TcpListener::bind(config.http_addr).await?;
        let addr = listener.local_addr()?;
        let runtime = Runtime::start(SERVICE, &config.common, MIGRATIONS, stop).await?;
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
        Ok(App { routes: crate::api::router(state), runtime, listener, addr })
    }

    /// The address the HTTP API listens on (the real port when configured with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the stop token is cancelled, then lets the relay, consumer and scheduler finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.runtime.serve(self.listener, self.routes).await
    }
}

/// Pins the ledger's time zone at first start and refuses to start in another one: business
/// dates already booked would silently mean something else.
pub async fn ensure_time_zone(db: &Db, rules: &Rules) -> anyhow::Result<()> {
    let name = rules.calendar.name().to_owned();
    let wanted = name.clone();
    let pinned = db.write(move |tx| store::days::pin_time_zone(tx, &wanted).map_err(DbError::from)).await?;
    if pinned != name {
        anyhow::bail!(
            "this ledger keeps business days in time zone {pinned}, but TIME_ZONE is {name}; \
             changing the time zone of an existing ledger is not supported"
        );
    }
    Ok(())
}
