//! Replaying the payment events into a fresh database through the live service's own handler
//! and dedupe, closing each day when the replayed ledger reaches the close's watermark.

use std::sync::Arc;

use async_nats::jetstream;
use common::{
    Envelope,
    consumer::{self, Handler, Outcome},
    db::Db,
    event::SellerPayout,
};
use jiff::Timestamp;

use super::{
    CloseMismatch, Summary,
    closes::{Published, Watermarks},
    stream::History,
};
use crate::{closing, domain::Rules, saga::Saga, store};

/// The state of the replay.
pub struct Replay {
    db: Db,
    rules: Rules,
    handler: Arc<dyn Handler>,
    /// The published closes not replayed yet.
    closes: Watermarks,
    /// Entries in the replayed ledger, all days.
    entries: u64,
    /// Events the handler asked to retry (a refund before its sale), with the reason.
    deferred: Vec<(Envelope, String)>,
    summary: Summary,
}

impl Replay {
    /// A replay into `db` (fresh, migrated), closing days at `closes`; `summary` holds what
    /// reading the closes found.
    pub fn new(db: Db, rules: Rules, closes: Watermarks, summary: Summary) -> Self {
        let handler: Arc<dyn Handler> = Arc::new(Saga::new(rules.clone()));
        Replay { db, rules, handler, closes, entries: 0, deferred: Vec::new(), summary }
    }

    /// Replays the payment events through stream sequence `last_seq`, then the closes the ledger
    /// never passed. Events still deferred are reported as unapplied.
    pub async fn run(mut self, js: &jetstream::Context, last_seq: u64) -> anyhow::Result<Summary> {
        let mut history = History::open(js, &common::bus::filter_subjects(self.handler.consumes()), last_seq).await?;
        while let Some((_, msg)) = history.next().await? {
            self.summary.messages += 1;
            match Envelope::decode(msg.subject.as_str(), &msg.payload) {
                Ok(envelope) => {
                    if self.apply(envelope).await? {
                        self.retry_deferred().await?;
                    }
                }
                Err(error) => self.summary.rejected.push(format!("{}: {error}", msg.subject)),
            }
        }
        // Closes taken after the last entry; then any whose count the replay never reached
        // (their mismatch says so).
        self.close_due().await?;
        for close in self.closes.rest() {
            self.close(close).await?;
        }
        self.summary.unapplied = self.deferred.iter().map(|(e, reason)| format!("{}: {reason}", e.id)).collect();
        Ok(self.summary)
    }

    /// Applies one payment event exactly as the live consumer does, after the closes that took
    /// effect before it. Returns whether the handler accepted it (booked, or a repeat).
    async fn apply(&mut self, envelope: Envelope) -> anyhow::Result<bool> {
        self.close_due().await?;
        let id = envelope.id;
        match consumer::apply(&self.db, self.handler.clone(), envelope.clone()).await {
            Outcome::Applied => {
                self.summary.applied += 1;
                // A repeat of a booked payment is applied but books nothing: count, don't assume.
                self.entries = self.db.read(store::ledger::count_entries).await?;
                Ok(true)
            }
            Outcome::Duplicate => {
                self.summary.duplicates += 1;
                Ok(false)
            }
            Outcome::DeadLettered(reason) => {
                self.summary.rejected.push(format!("{id}: {reason}"));
                Ok(false)
            }
            Outcome::Retry(reason) | Outcome::NotYet(reason) => {
                self.deferred.push((envelope, reason));
                Ok(false)
            }
        }
    }

    /// Something was booked: deferred events may apply now (live, their redelivery would).
    async fn retry_deferred(&mut self) -> anyhow::Result<()> {
        loop {
            let waiting = std::mem::take(&mut self.deferred);
            if waiting.is_empty() {
                return Ok(());
            }
            let mut progressed = false;
            for (envelope, _) in waiting {
                progressed |= self.apply(envelope).await?;
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Closes the days the live service closed while its ledger held as many entries as ours does.
    async fn close_due(&mut self) -> anyhow::Result<()> {
        for close in self.closes.due(self.entries) {
            self.close(close).await?;
        }
        Ok(())
    }

    /// Closes the day through the live code path, recorded with the event's own id and time and
    /// settled at its own fee rate (not today's `FEE_RATE_BPS`), and checks it against what the
    /// event published.
    async fn close(&mut self, close: Published) -> anyhow::Result<()> {
        let at = Timestamp::from_nanosecond(close.envelope.occurred_at.unix_timestamp_nanos())?;
        let rules = Rules { fee_rate: close.fee_rate, ..self.rules.clone() };
        let (date, event_id) = (close.date, close.envelope.id);
        let record = self.db.write(move |tx| closing::record_close(tx, &rules, date, at, event_id)).await?;
        self.summary.closes += 1;
        let published = sorted(&close.closed.payouts);
        if published != record.payouts || close.closed.ledger_entries != record.ledger_entries {
            self.summary.close_mismatches.push(CloseMismatch {
                date: close.closed.date,
                published,
                replayed: record.payouts,
                published_ledger_entries: close.closed.ledger_entries,
                replayed_ledger_entries: record.ledger_entries,
            });
        }
        Ok(())
    }
}

fn sorted(payouts: &[SellerPayout]) -> Vec<SellerPayout> {
    let mut payouts = payouts.to_vec();
    payouts.sort_by_key(|p| p.seller_id);
    payouts
}
