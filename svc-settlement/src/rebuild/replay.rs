//! One replay pass: the stream's ledger events and closes, applied to a fresh database through
//! the live service's own handler and dedupe.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::OrderedConfig},
};
use common::{
    Envelope, Event,
    consumer::{self, Handler, Outcome},
    db::{Db, DbError},
    event::SettlementClosed,
};
use futures_util::StreamExt;
use jiff::{Timestamp, civil::Date};
use uuid::Uuid;

use super::{
    CloseMismatch, MovedClose, Summary,
    cut::{self, Booked},
};
use crate::{
    SERVICE, closing,
    domain::{CloseRecord, Rules, calendar::parse_day},
    saga::Saga,
    store,
};

/// What the replay reads: the ledger's events and the closes.
pub const REPLAYS: &[&str] = &["payment.completed.*", "payment.cancelled.*", "settlement.closed.*"];
/// Longest wait for the next message before the replay gives up.
const IDLE: Duration = Duration::from_secs(30);

/// A close the next pass applies just before stream message `before_seq` instead of at its
/// event's own position (see [`super::cut`]).
#[derive(Debug, Clone)]
pub struct Cut {
    pub date: Date,
    pub before_seq: u64,
    pub envelope: Envelope,
    pub event_seq: u64,
    pub closed: SettlementClosed,
    /// Entries of the day between the cut and the event, booked live on a later day.
    pub moved: usize,
}

/// Replays `replay`'s pass from the stream's first message through `last_seq`. Returns a cut
/// when a close turned out to have taken effect earlier than its event's position: the pass is
/// then void and must be run again with it.
pub async fn replay_stream(js: &jetstream::Context, replay: &mut Replay, last_seq: u64) -> anyhow::Result<Option<Cut>> {
    let stream = js.get_stream(common::bus::STREAM).await.context("opening the event stream")?;
    let config = OrderedConfig {
        filter_subjects: REPLAYS.iter().map(|s| (*s).to_owned()).collect(),
        deliver_policy: DeliverPolicy::All,
        ..Default::default()
    };
    let consumer = stream.create_consumer(config).await?;
    if last_seq == 0 || consumer.cached_info().num_pending == 0 {
        return Ok(None);
    }
    let mut messages = consumer.messages().await?;
    loop {
        let next = tokio::time::timeout(IDLE, messages.next()).await.context("the stream stopped delivering")?;
        let msg = next.context("the replay consumer ended early")??;
        let info = msg.info().map_err(|e| anyhow::anyhow!("message without JetStream metadata: {e}"))?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        // Events published after the rebuild started are not part of it.
        if seq > last_seq {
            return Ok(None);
        }
        if let Some(cut) = replay.message(seq, msg.subject.as_str(), &msg.payload).await? {
            return Ok(Some(cut));
        }
        if pending == 0 || seq == last_seq {
            return Ok(None);
        }
    }
}

/// The state of one pass.
pub struct Replay {
    db: Db,
    rules: Rules,
    handler: Arc<dyn Handler>,
    /// Cuts not applied yet, ordered by `before_seq`.
    cuts: Vec<Cut>,
    /// Days a cut closed in this pass.
    cut_days: HashSet<Date>,
    /// Stream position each booked entry (by event id) was booked at.
    booked_at: HashMap<Uuid, u64>,
    /// Events the handler asked to retry (a refund before its sale), with the reason.
    deferred: Vec<(Envelope, String)>,
    summary: Summary,
}

impl Replay {
    pub fn new(db: Db, rules: Rules, mut cuts: Vec<Cut>) -> Self {
        cuts.sort_by_key(|c| c.before_seq);
        let handler: Arc<dyn Handler> = Arc::new(Saga::new(rules.clone()));
        Replay {
            db,
            rules,
            handler,
            cuts,
            cut_days: HashSet::new(),
            booked_at: HashMap::new(),
            deferred: Vec::new(),
            summary: Summary::default(),
        }
    }

    /// The pass's findings; events still deferred are reported as unapplied.
    pub fn finish(mut self) -> Summary {
        self.summary.unapplied = self.deferred.iter().map(|(e, reason)| format!("{}: {reason}", e.id)).collect();
        self.summary
    }

    async fn message(&mut self, seq: u64, subject: &str, payload: &[u8]) -> anyhow::Result<Option<Cut>> {
        self.apply_cuts_before(seq).await?;
        self.summary.messages += 1;
        let envelope = match Envelope::decode(subject, payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                self.summary.rejected.push(format!("{subject}: {error}"));
                return Ok(None);
            }
        };
        if let Event::SettlementClosed(closed) = &envelope.event {
            return self.close(seq, &envelope, closed).await;
        }
        if self.apply(seq, envelope).await {
            self.retry_deferred(seq).await;
        }
        Ok(None)
    }

    /// Applies one payment event exactly as the live consumer does. Returns whether it booked.
    async fn apply(&mut self, seq: u64, envelope: Envelope) -> bool {
        let id = envelope.id;
        match consumer::apply(&self.db, SERVICE, self.handler.clone(), envelope.clone()).await {
            Outcome::Applied => {
                self.summary.applied += 1;
                self.booked_at.insert(id, seq);
                true
            }
            Outcome::Duplicate => {
                self.summary.duplicates += 1;
                false
            }
            Outcome::DeadLettered(reason) => {
                self.summary.rejected.push(format!("{id}: {reason}"));
                false
            }
            Outcome::Retry(reason) => {
                self.deferred.push((envelope, reason));
                false
            }
        }
    }

    /// Something was booked: deferred events may apply now (live, their redelivery would).
    async fn retry_deferred(&mut self, seq: u64) {
        loop {
            let waiting = std::mem::take(&mut self.deferred);
            if waiting.is_empty() {
                return;
            }
            let mut progressed = false;
            for (envelope, _) in waiting {
                progressed |= self.apply(seq, envelope).await;
            }
            if !progressed {
                return;
            }
        }
    }

    /// A `settlement.closed` at its stream position: close the day and check what was published.
    async fn close(&mut self, seq: u64, envelope: &Envelope, closed: &SettlementClosed) -> anyhow::Result<Option<Cut>> {
        let Some(date) = self.closed_day(envelope, closed)? else { return Ok(None) };
        if self.cut_days.contains(&date) {
            self.summary.closes += 1; // closed (and checked) at its cut
            return Ok(None);
        }
        let Some(record) = self.record(date, envelope).await? else {
            self.summary.duplicates += 1; // the same close re-published
            return Ok(None);
        };
        self.summary.closes += 1;
        let published = sorted(&closed.payouts);
        if published == record.payouts {
            return Ok(None);
        }
        let booked = self.booked_on(date).await?;
        if let Some(before_seq) = cut::find_cut(&booked, &published) {
            let moved = booked.iter().filter(|b| b.seq >= before_seq).count();
            let cut =
                Cut { date, before_seq, envelope: envelope.clone(), event_seq: seq, closed: closed.clone(), moved };
            return Ok(Some(cut));
        }
        self.summary.close_mismatches.push(CloseMismatch {
            date: closed.date.clone(),
            published,
            replayed: record.payouts,
        });
        Ok(None)
    }

    /// Closes the days whose cut lies at or before stream message `seq`.
    async fn apply_cuts_before(&mut self, seq: u64) -> anyhow::Result<()> {
        while self.cuts.first().is_some_and(|c| c.before_seq <= seq) {
            let cut = self.cuts.remove(0);
            self.cut_days.insert(cut.date);
            let Some(record) = self.record(cut.date, &cut.envelope).await? else { continue };
            let published = sorted(&cut.closed.payouts);
            if published != record.payouts {
                let date = cut.closed.date.clone();
                self.summary.close_mismatches.push(CloseMismatch { date, published, replayed: record.payouts });
            }
            self.summary.moved_closes.push(MovedClose {
                date: cut.closed.date.clone(),
                event_seq: cut.event_seq,
                before_seq: cut.before_seq,
                moved: cut.moved,
            });
        }
        Ok(())
    }

    /// The day a `settlement.closed` closes, after checking it was closed in our time zone.
    fn closed_day(&mut self, envelope: &Envelope, closed: &SettlementClosed) -> anyhow::Result<Option<Date>> {
        if closed.time_zone != self.rules.calendar.name() {
            bail!(
                "day {} was closed in time zone {}, but the rebuild runs with {}; rebuild with --time-zone {}",
                closed.date,
                closed.time_zone,
                self.rules.calendar.name(),
                closed.time_zone
            );
        }
        match parse_day(&closed.date) {
            Ok(date) => Ok(Some(date)),
            Err(error) => {
                self.summary.rejected.push(format!("{}: {error}", envelope.id));
                Ok(None)
            }
        }
    }

    /// Records the close of `date` as the event describes it (its id and time), from the ledger
    /// as it stands; `None` if the day is closed already.
    async fn record(&self, date: Date, envelope: &Envelope) -> anyhow::Result<Option<CloseRecord>> {
        let at = Timestamp::from_nanosecond(envelope.occurred_at.unix_timestamp_nanos())?;
        let (rules, event_id) = (self.rules.clone(), envelope.id);
        let record = self
            .db
            .write(move |tx| match store::days::find_close(tx, date)? {
                Some(_) => Ok(None),
                None => closing::record_close(tx, &rules, date, at, event_id).map(Some),
            })
            .await?;
        Ok(record)
    }

    /// The entries booked on `date` with the stream position each was booked at.
    async fn booked_on(&self, date: Date) -> anyhow::Result<Vec<Booked>> {
        let entries = self.db.read(move |c| store::ledger::entries_on(c, date).map_err(DbError::from)).await?;
        entries
            .into_iter()
            .map(|(id, seller_id, kind, amount)| {
                let seq = *self.booked_at.get(&id).context("an entry the replay did not book")?;
                Ok(Booked { seq, seller_id, kind, amount: amount.0 })
            })
            .collect()
    }
}

fn sorted(payouts: &[common::event::SellerPayout]) -> Vec<common::event::SellerPayout> {
    let mut payouts = payouts.to_vec();
    payouts.sort_by_key(|p| p.seller_id);
    payouts
}
