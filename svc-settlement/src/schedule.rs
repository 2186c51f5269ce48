//! The automatic daily close.
//!
//! Every tick (`CLOSE_TICK_SECS`, default 60 s) the scheduler closes, oldest first, every business
//! day that has ledger entries, is not closed, and ended at least `CLOSE_GRACE_SECS` (default
//! 3600 s) ago by the injected [`Clock`]. It skips a tick while the consumer still has messages
//! pending or unacknowledged, so a backlog (e.g. after downtime) is booked on its own days before
//! they close instead of becoming adjustments.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use jiff::SignedDuration;
use tokio_util::sync::CancellationToken;

use crate::{
    clock::Clock,
    closing::{self, CloseError, Closed},
    domain::Rules,
    store,
};
use common::db::{Db, DbError};

/// What the scheduler needs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    pub db: Db,
    pub js: jetstream::Context,
    pub rules: Rules,
    pub clock: Arc<dyn Clock>,
    pub grace: SignedDuration,
    pub tick: Duration,
}

impl Scheduler {
    /// Runs until `stop` is cancelled. The first round runs at once.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.close_due_days().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(days = n, "scheduler closed business days"),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "scheduler could not close days; will retry")
                }
            }
        }
    }

    /// One round: closes every due day, one transaction per day. Returns how many it closed.
    pub async fn close_due_days(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let open = self.db.read(|c| store::ledger::open_days_with_entries(c).map_err(DbError::from)).await?;
        let due: Vec<_> = open.into_iter().filter(|d| self.rules.calendar.is_due(*d, now, self.grace)).collect();
        if due.is_empty() {
            return Ok(0);
        }
        if !self.consumer_caught_up().await {
            tracing::info!(days = due.len(), "days are due but the consumer is catching up; closing later");
            return Ok(0);
        }
        let mut closed = 0;
        for date in due {
            let rules = self.rules.clone();
            let outcome = self.db.write(move |tx| closing::close_day(tx, &rules, date, now)).await;
            match outcome {
                Ok(Closed::Now(_)) => closed += 1,
                // Closed by hand in the meantime.
                Ok(Closed::Already(_)) => {}
                Err(CloseError::NotEnded(_)) => {} // cannot happen once due; harmless if it does
                Err(e) => return Err(e.into()),
            }
        }
        Ok(closed)
    }

    /// Whether our durable consumer has nothing pending or unacknowledged. Unknown (NATS down, the
    /// consumer not created yet) counts as not caught up: closing waits for the next tick.
    async fn consumer_caught_up(&self) -> bool {
        let info = async {
            let stream = self.js.get_stream(common::bus::STREAM).await.ok()?;
            stream.consumer_info(crate::SERVICE).await.ok()
        };
        info.await.is_some_and(|i| i.num_pending == 0 && i.num_ack_pending == 0)
    }
}
