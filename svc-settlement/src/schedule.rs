//! The automatic daily close.
//!
//! Every tick (`CLOSE_TICK_SECS`, default 60 s) the scheduler looks for business days that have
//! ledger entries, are not closed, and ended at least `CLOSE_GRACE_SECS` (default 3600 s) ago by
//! the injected [`Clock`]. The first tick that finds such days records a progress target: the
//! stream's last sequence at that moment. The days are closed, oldest first, once the durable
//! consumer's ack floor has reached the target, so every payment event that was in the stream
//! when the days fell due (a backlog after downtime, say) is booked on its own day first instead
//! of becoming an adjustment. A consumer with nothing pending or unacknowledged has reached any
//! target too: its ack floor only moves on acks, so it can stay below a target that is a message
//! it does not consume (a `settlement.closed`, another service's event).
//!
//! Unlike waiting for an idle consumer, the target does not move: steady traffic after it cannot
//! hold the close back. A message before it that is being retried (a refund that came before its
//! sale) holds it back until it is booked or dead-lettered.

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
use common::db::Db;

/// The automatic close, and the progress target it waits for.
#[derive(Debug, Clone)]
pub struct Scheduler {
    db: Db,
    js: jetstream::Context,
    rules: Rules,
    clock: Arc<dyn Clock>,
    grace: SignedDuration,
    tick: Duration,
    /// The stream sequence the consumer must have acknowledged through before the due days
    /// close; recorded by the first round that found days due, cleared once they are closed.
    target: Option<u64>,
}

impl Scheduler {
    pub fn new(
        db: Db,
        js: jetstream::Context,
        rules: Rules,
        clock: Arc<dyn Clock>,
        grace: SignedDuration,
        tick: Duration,
    ) -> Self {
        Scheduler { db, js, rules, clock, grace, tick, target: None }
    }

    /// Runs until `stop` is cancelled. The first round runs at once.
    pub async fn run(mut self, stop: CancellationToken) {
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

    /// One round: once the consumer has reached the progress target, closes every due day, one
    /// transaction per day. Returns how many it closed.
    pub async fn close_due_days(&mut self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let open = self.db.read(store::ledger::open_days_with_entries).await?;
        let due: Vec<_> = open.into_iter().filter(|d| self.rules.calendar.is_due(*d, now, self.grace)).collect();
        if due.is_empty() {
            // Nothing to wait for (closed by hand in the meantime, say).
            self.target = None;
            return Ok(0);
        }
        let target = match self.target {
            Some(target) => target,
            None => {
                let target = self.stream_last_sequence().await?;
                self.target = Some(target);
                target
            }
        };
        match self.consumer_progress().await {
            Some(progress) if progress.has_reached(target) => {}
            progress => {
                tracing::info!(
                    days = due.len(),
                    target,
                    ack_floor = progress.map(|p| p.ack_floor),
                    "days are due but the consumer has not booked everything before them yet; closing later"
                );
                return Ok(0);
            }
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
        // Days that fall due later get a target of their own.
        self.target = None;
        Ok(closed)
    }

    /// The stream's last sequence now: every message the consumer must have dealt with before the
    /// days due now are closed.
    async fn stream_last_sequence(&self) -> anyhow::Result<u64> {
        let mut stream = self.js.get_stream(common::bus::STREAM).await?;
        Ok(stream.info().await?.state.last_sequence)
    }

    /// Where our durable consumer stands. Unknown (NATS down, the consumer not created yet) is
    /// `None`, which reaches no target: closing waits for the next tick.
    async fn consumer_progress(&self) -> Option<Progress> {
        let stream = self.js.get_stream(common::bus::STREAM).await.ok()?;
        let info = stream.consumer_info(crate::SERVICE).await.ok()?;
        Some(Progress {
            ack_floor: info.ack_floor.stream_sequence,
            num_pending: info.num_pending,
            num_ack_pending: info.num_ack_pending,
        })
    }
}

/// The parts of the durable consumer's state the close waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Every message at or below this stream sequence that the consumer takes has been acked
    /// (booked, skipped as a duplicate, or dead-lettered).
    pub ack_floor: u64,
    /// Messages not delivered yet.
    pub num_pending: u64,
    /// Messages delivered and not acked yet (in work, or waiting for a retry).
    pub num_ack_pending: usize,
}

impl Progress {
    /// Whether every message the consumer takes up to stream sequence `target` is dealt with.
    /// The ack floor says so directly; an idle consumer has dealt with everything, even when its
    /// floor stopped below `target` because the messages after it are not on its subjects.
    pub fn has_reached(self, target: u64) -> bool {
        self.ack_floor >= target || (self.num_pending == 0 && self.num_ack_pending == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(ack_floor: u64, num_pending: u64, num_ack_pending: usize) -> Progress {
        Progress { ack_floor, num_pending, num_ack_pending }
    }

    #[test]
    fn the_target_is_reached_when_the_ack_floor_gets_there_however_busy_the_consumer_is() {
        assert!(progress(10, 500, 64).has_reached(10));
        assert!(progress(11, 500, 64).has_reached(10));
        assert!(!progress(9, 500, 64).has_reached(10));
    }

    #[test]
    fn a_message_being_retried_before_the_target_holds_the_close_back() {
        // A refund at 7 waits for its sale: the floor stays at 6 whatever is acked after it.
        assert!(!progress(6, 0, 1).has_reached(10));
    }

    #[test]
    fn an_idle_consumer_has_reached_a_target_beyond_its_own_subjects() {
        // The last message is a settlement.closed the consumer never takes: its floor stays below.
        assert!(progress(9, 0, 0).has_reached(10));
        assert!(!progress(9, 1, 0).has_reached(10));
    }
}
