//! Rebuilding the ledger from the event stream (`shopctl settlement rebuild`).
//!
//! [`run`] reads `SHOP_EVENTS` from its first message through its last sequence at the start, in
//! two ephemeral ordered consumers, into a fresh `<data_dir>/svc-settlement.rebuild.db`:
//!
//! 1. `settlement.closed.*`: every published close with its watermark `ledgerEntries`, how many
//!    ledger entries (all days) the live service had booked when the close committed.
//! 2. `payment.completed.*` and `payment.cancelled.*`, in stream order, through the live
//!    service's own handler and dedupe (so the rebuilt file is what the service would have
//!    written). Whenever the replayed ledger holds exactly as many entries as a pending close's
//!    watermark (0 included, before the first event), the day is closed through the live closing
//!    code, recorded with the event's id and time, before the next event is applied; events for it
//!    that come later become adjustments on the next open day, as they did live. The payouts and
//!    the count the replay closes with are checked against the published ones.
//!
//! Then every (business day, seller, category) figure and every closed day is compared with the
//! live database, which is only read.
//!
//! The watermark, not the event's position, says where a close took effect: `settlement.closed`
//! is published by the outbox relay moments after the close commits, so payment events booked
//! after it can sit before it in the stream. The replay reproduces the live booking exactly when
//! the live consumer processed the payment events in stream order. A transient retry (a refund
//! redelivered after later events, because its sale was not booked yet) can reorder live
//! processing; the replay cannot know that order, and the comparison reports what differs, as
//! close mismatches and differences.
//!
//! With [`Options::swap`] the rebuilt file replaces the live one, which is kept beside it as
//! `svc-settlement.db.replaced-<unix ms>`. Only while svc-settlement is stopped: the swap refuses
//! a live database that another connection holds open, one whose outbox still has unpublished
//! events, and a replay that could not see the whole history (messages older than the stream's
//! max age are gone).

use std::path::PathBuf;

use anyhow::Context;
use async_nats::jetstream;
use common::{db::Db, event::SellerPayout};
use serde::Serialize;
use uuid::Uuid;

use crate::{SERVICE, app::MIGRATIONS, config::Config, domain::Figures};

mod closes;
mod compare;
mod replay;
mod stream;
mod swap;

/// How to rebuild.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Replace the live database with the rebuilt one (svc-settlement must be stopped).
    pub swap: bool,
}

/// What a rebuild found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub live_db: PathBuf,
    pub rebuilt_db: PathBuf,
    /// The stream still holds its first message, so the replay saw the whole history.
    pub complete: bool,
    /// Messages read from the stream.
    pub messages: u64,
    /// Payment events the handler accepted: booked, or a repeat of a payment booked already.
    pub applied: u64,
    /// Messages skipped as seen before: an event id already processed, or a close re-published.
    pub duplicates: u64,
    /// Days closed at the watermark of their `settlement.closed`.
    pub closes: u64,
    /// Events the live consumer would dead-letter: `<event id or subject>: <reason>`.
    pub rejected: Vec<String>,
    /// Events still failing at the end (e.g. a refund whose sale never came).
    pub unapplied: Vec<String>,
    /// Replayed closes that differ from what their `settlement.closed` published.
    pub close_mismatches: Vec<CloseMismatch>,
    /// Where the rebuilt ledger differs from the live one.
    pub differences: Vec<Difference>,
    /// With `swap`: where the replaced live file was moved (`None` if there was none).
    pub replaced: Option<PathBuf>,
    pub swapped: bool,
}

impl Summary {
    /// The rebuilt ledger equals the live one and agrees with every published close.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty() && self.close_mismatches.is_empty() && self.unapplied.is_empty()
    }
}

/// A replayed close that does not reproduce its published payouts, or that the replay could
/// only take with another number of ledger entries (it ran out of entries before the watermark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseMismatch {
    pub date: String,
    pub published: Vec<SellerPayout>,
    pub replayed: Vec<SellerPayout>,
    pub published_ledger_entries: u64,
    pub replayed_ledger_entries: u64,
}

/// One difference between the live and the rebuilt ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Difference {
    /// A (business day, seller, category) row differs or exists on one side only.
    #[serde(rename_all = "camelCase")]
    Figures { date: String, seller_id: Uuid, category: String, live: Option<Figures>, rebuilt: Option<Figures> },
    /// A day is closed on one side only.
    #[serde(rename_all = "camelCase")]
    Closed { date: String, live: bool, rebuilt: bool },
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "replayed {} messages into {}", self.messages, self.rebuilt_db.display())?;
        writeln!(
            f,
            "  booked {}, duplicates {}, closes {}, rejected {}, unapplied {}",
            self.applied,
            self.duplicates,
            self.closes,
            self.rejected.len(),
            self.unapplied.len()
        )?;
        if !self.complete {
            writeln!(f, "  INCOMPLETE: the stream no longer holds its oldest messages")?;
        }
        for r in self.rejected.iter().chain(&self.unapplied) {
            writeln!(f, "  skipped {r}")?;
        }
        for m in &self.close_mismatches {
            if m.published != m.replayed {
                writeln!(f, "  close of {} does not reproduce its published payouts", m.date)?;
            }
            if m.published_ledger_entries != m.replayed_ledger_entries {
                writeln!(
                    f,
                    "  close of {} was taken after {} ledger entries live, after {} in the replay",
                    m.date, m.published_ledger_entries, m.replayed_ledger_entries
                )?;
            }
        }
        for d in &self.differences {
            match d {
                Difference::Figures { date, seller_id, category, live, rebuilt } => {
                    writeln!(f, "  {date} {seller_id} {category}: live {live:?}, rebuilt {rebuilt:?}")?
                }
                Difference::Closed { date, live, rebuilt } => {
                    writeln!(f, "  {date}: closed live {live}, closed rebuilt {rebuilt}")?
                }
            }
        }
        if self.is_clean() {
            writeln!(f, "the rebuilt ledger equals the live one ({})", self.live_db.display())?;
        }
        if self.swapped {
            let replaced = self.replaced.as_ref().map_or("nothing".into(), |p| p.display().to_string());
            writeln!(f, "swapped: {} now holds the rebuilt ledger (replaced {replaced})", self.live_db.display())?;
        }
        Ok(())
    }
}

/// Rebuilds the ledger from the stream into a fresh file, compares it with the live one and,
/// with `options.swap`, replaces the live file.
pub async fn run(config: &Config, options: Options) -> anyhow::Result<Summary> {
    let rules = config.rules();
    let (live, rebuilt) = (config.db_path(), config.rebuild_db_path());
    let nats = common::bus::connect(&config.common.nats_url, &format!("{SERVICE}-rebuild")).await?;
    let js = jetstream::new(nats.clone());
    let (complete, last_seq) = stream_bounds(&js).await?;

    swap::remove_database(&rebuilt)?;
    let db = Db::open(&rebuilt, MIGRATIONS).await.context("creating the rebuild database")?;
    crate::app::ensure_time_zone(&db, &rules).await?;
    let mut summary = Summary::default();
    let closes = closes::scan(&js, last_seq, &rules, &mut summary).await?;
    let mut summary = replay::Replay::new(db, rules.clone(), closes, summary).run(&js, last_seq).await?;
    summary.complete = complete;
    summary.live_db = live.clone();
    summary.rebuilt_db = rebuilt.clone();
    let _ = nats.flush().await;

    let (l, r) = (live.clone(), rebuilt.clone());
    summary.differences = tokio::task::spawn_blocking(move || compare::compare(&l, &r, &rules)).await??;

    if options.swap {
        anyhow::ensure!(
            summary.complete,
            "not swapping: the stream no longer holds the whole history, the rebuilt ledger would lose entries"
        );
        summary.replaced = tokio::task::spawn_blocking(move || swap::swap(&live, &rebuilt)).await??;
        summary.swapped = true;
    }
    Ok(summary)
}

/// Whether the stream still holds its first message, and its last sequence now: the replay
/// covers exactly the messages up to it.
async fn stream_bounds(js: &jetstream::Context) -> anyhow::Result<(bool, u64)> {
    let mut stream = js.get_stream(common::bus::STREAM).await.context("opening the event stream")?;
    let state = &stream.info().await?.state;
    Ok((state.first_sequence <= 1, state.last_sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_is_clean_only_without_differences_mismatches_or_leftovers() {
        let mut s = Summary::default();
        assert!(s.is_clean());
        s.unapplied.push("x: refund before sale".into());
        assert!(!s.is_clean());
    }
}
