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
//! The rebuild keeps the ledger's time zone: the live database's pinned `time_zone` or, when the
//! database is lost, the first published close's. It refuses to run when `TIME_ZONE` disagrees.
//! Each close is settled at the fee rate its event published, whatever `FEE_RATE_BPS` is now.
//!
//! With [`Options::swap`] the rebuilt file replaces the live one, which is kept beside it as
//! `svc-settlement.db.replaced-<unix ms>`. Only while svc-settlement is stopped: before the replay
//! starts and again right before the files move, the swap refuses a live database that another
//! connection holds open and one whose outbox still has unpublished events. And only when the
//! rebuilt ledger is safe to take ([`Summary::is_safe_to_swap`]): it agrees with every published
//! close and only adds to the live ledger (the lost or damaged database), from a replay that saw
//! the whole history (messages older than the stream's max age are gone). [`Options::force`]
//! swaps whatever the comparison found; it never overrides the checks on the live file.

use anyhow::Context;
use async_nats::jetstream;
use common::db::Db;

use crate::{SERVICE, app::MIGRATIONS, config::Config};

mod closes;
mod compare;
mod replay;
mod settings;
mod stream;
mod summary;
mod swap;

pub use summary::{CloseMismatch, Difference, Summary};

/// How to rebuild.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Replace the live database with the rebuilt one (svc-settlement must be stopped), if the
    /// rebuilt ledger is safe to take ([`Summary::is_safe_to_swap`]).
    pub swap: bool,
    /// With `swap`: replace the live database even when the rebuilt one changes or drops what the
    /// live one holds, or the replay missed the stream's oldest messages.
    pub force: bool,
}

/// Rebuilds the ledger from the stream into a fresh file, compares it with the live one and,
/// with `options.swap`, replaces the live file.
pub async fn run(config: &Config, options: Options) -> anyhow::Result<Summary> {
    let (live, rebuilt) = (config.db_path(), config.rebuild_db_path());
    if options.swap {
        // Before replaying anything: a swap that cannot happen should not cost a replay first.
        let l = live.clone();
        tokio::task::spawn_blocking(move || swap::check_live(&l)).await??;
    }
    // As whoever runs the rebuild (`shopctl settlement rebuild` connects as the operator): it
    // reads the whole stream through consumers of its own, which svc-settlement's user may not make.
    let nats =
        common::bus::connect(&config.common.nats_url, &format!("{SERVICE}-rebuild"), &config.common.nats_auth).await?;
    let js = jetstream::new(nats.clone());
    let (complete, last_seq) = stream_bounds(&js).await?;

    let mut summary = Summary::default();
    let closes = closes::scan(&js, last_seq, &mut summary).await?;
    let l = live.clone();
    let live_zone = tokio::task::spawn_blocking(move || settings::live_time_zone(&l)).await??;
    let rules = settings::ledger_rules(config.rules(), live_zone.as_deref(), closes.first_time_zone())?;
    closes.check_time_zone(&rules)?;

    swap::remove_database(&rebuilt)?;
    let db = Db::open(&rebuilt, MIGRATIONS).await.context("creating the rebuild database")?;
    crate::app::ensure_time_zone(&db, &rules).await?;
    let mut summary = replay::Replay::new(db, rules.clone(), closes, summary).run(&js, last_seq).await?;
    summary.complete = complete;
    summary.live_db = live.clone();
    summary.rebuilt_db = rebuilt.clone();
    let _ = nats.flush().await;

    let (l, r) = (live.clone(), rebuilt.clone());
    summary.differences = tokio::task::spawn_blocking(move || compare::compare(&l, &r, &rules)).await??;

    if options.swap {
        if !summary.is_safe_to_swap() && !options.force {
            let why = if summary.complete {
                "the rebuilt ledger would change or drop what the live one holds"
            } else {
                "the stream no longer holds the whole history, the rebuilt ledger would lose entries"
            };
            anyhow::bail!(
                "{summary}not swapping: {why}; {} is kept for inspection, --force swaps anyway",
                rebuilt.display()
            );
        }
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
