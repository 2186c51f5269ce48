//! The transactional outbox and its relay.
//!
//! A service never publishes directly: it [`append`]s the event inside the transaction of the
//! state change it announces. The [`Relay`] publishes unpublished rows in order with
//! `Nats-Msg-Id = event id`, awaits each JetStream ack, and only then marks the rows published.
//! A crash between ack and mark re-publishes the same ids on restart; JetStream drops them as
//! duplicates within its window and the consumers' processed tables drop them beyond it.
//!
//! JetStream acknowledges a publish before it syncs it to disk (every `sync_interval`: see
//! `nats/nats-server.conf`), so an OS crash of the broker's machine can lose the last acknowledged
//! messages. The relay covers that window: on every connection to NATS, the first included, and
//! before it publishes anything over it, it re-sends the rows it published in the last
//! [`Relay::with_resend_window`] before its newest publish ([`resend_recent`]), under their own
//! ids. JetStream drops the ones it kept as duplicates, stores the lost ones again, and the
//! consumers skip anything they applied already.
//!
//! A row no publish can ever take (larger than the server's `max_payload`) is set aside instead
//! of blocking every row behind it: moved, with its reason, into the service's `dead_letter`
//! table (consumer `outbox`), where `./shop dead-letter list|replay <service>` shows and re-sends
//! it, once the limit allows. Every other failure (no connection, a timeout) keeps the row and
//! retries.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream::{
    self,
    context::{PublishAckFuture, PublishErrorKind},
    message::PublishMessage,
};
use rusqlite::{Connection, Transaction, params};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbError, now_ms};
use crate::event::Envelope;

/// Rows published per round; their acks are awaited together (pipelined), then marked in one
/// transaction.
const BATCH: usize = 256;
/// A safety net next to the commit notification (e.g. for rows written by another process such as
/// `shopctl outbox republish`).
const POLL_TICK: Duration = Duration::from_secs(1);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Rows deleted per housekeeping transaction.
const PURGE_BATCH: usize = 1000;
/// Published rows are kept this long so they can be re-published; matches the stream's max age.
pub const RETENTION: Duration = crate::bus::STREAM_MAX_AGE;
/// How far back from its newest publish the relay re-sends on each connection: far more than the
/// shipped broker's `sync_interval` (100 ms), to cover the fsync itself and slow disks.
pub const RESEND_WINDOW: Duration = Duration::from_secs(5);

/// Writes `envelope` to the outbox inside the caller's transaction, as a step of the current
/// trace ([`crate::trace::for_new_event`]).
pub fn append(tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), DbError> {
    append_raw(tx, &envelope.id.to_string(), &envelope.subject(), &envelope.to_json())
}

/// Writes a row of any payload (a dead letter published again, see [`crate::micro`]) to the
/// outbox inside the caller's transaction; `id` becomes its `Nats-Msg-Id`.
pub fn append_raw(tx: &Transaction<'_>, id: &str, subject: &str, payload: &[u8]) -> Result<(), DbError> {
    let traceparent = crate::trace::for_new_event().header();
    tx.prepare_cached(
        "INSERT INTO outbox (id, subject, payload, created_at, traceparent) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, subject, payload, now_ms(), traceparent])?;
    Ok(())
}

/// One outbox row ready to go.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: i64,
    pub id: String,
    pub subject: String,
    pub payload: Vec<u8>,
    pub created_at: i64,
    /// Sent as the message's `traceparent` header; `None` on rows written before it existed.
    pub traceparent: Option<String>,
}

/// The oldest unpublished rows, in commit order.
pub fn pending(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Pending>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, subject, payload, created_at, traceparent FROM outbox
         WHERE published_at IS NULL ORDER BY seq LIMIT ?1",
    )?;
    stmt.query_map([limit as i64], |r| {
        Ok(Pending {
            seq: r.get(0)?,
            id: r.get(1)?,
            subject: r.get(2)?,
            payload: r.get(3)?,
            created_at: r.get(4)?,
            traceparent: r.get(5)?,
        })
    })?
    .collect()
}

pub fn mark_published(tx: &Transaction<'_>, seqs: &[i64], at_ms: i64) -> Result<(), DbError> {
    let mut stmt = tx.prepare_cached("UPDATE outbox SET published_at = ?1 WHERE seq = ?2")?;
    for seq in seqs {
        stmt.execute(params![at_ms, seq])?;
    }
    Ok(())
}

/// Marks the rows published within `window_ms` of the newest publish as unpublished again.
/// Returns how many rows will be sent again.
///
/// Anchored on the newest publish, not on the clock: every ack proves the broker was up, so what
/// a crash lost was acknowledged at most its `sync_interval` before the newest ack it gave,
/// however long the broker (or the service) then stayed down. That holds only if nothing was
/// published over a new connection yet, which is why the relay calls this before it publishes.
/// Rows set aside are in `dead_letter`, no longer in the outbox: never re-sent. Both lookups run
/// on the `outbox_published_at` index, so the work is the window's rows, never the table's.
pub fn resend_recent(tx: &Transaction<'_>, window_ms: i64) -> Result<usize, DbError> {
    Ok(tx.execute(
        "UPDATE outbox SET published_at = NULL
         WHERE published_at IS NOT NULL
           AND published_at >= (SELECT max(published_at) FROM outbox WHERE published_at IS NOT NULL) - ?1",
        [window_ms],
    )?)
}

/// Marks published rows as unpublished again so the relay sends them once more, e.g. after the
/// stream lost messages. Returns how many rows were reset.
pub fn republish_since(tx: &Transaction<'_>, since_ms: i64) -> rusqlite::Result<usize> {
    tx.execute("UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL AND created_at >= ?1", [since_ms])
}

/// The `consumer` of the dead letters the relay sets aside.
pub const SET_ASIDE: &str = "outbox";

/// Moves the unpublishable row `row` out of the outbox into `dead_letter`, with `reason`.
pub fn set_aside(tx: &Transaction<'_>, row: &Pending, reason: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO dead_letter (consumer, subject, message_id, stream_seq, deliveries, reason, payload, created_at)
         VALUES (?1, ?2, ?3, 0, 1, ?4, ?5, ?6)",
        params![SET_ASIDE, row.subject, row.id, reason, row.payload, now_ms()],
    )?;
    tx.execute("DELETE FROM outbox WHERE seq = ?1", [row.seq])?;
    Ok(())
}

/// Deletes up to `limit` published rows older than `older_than_ms`. Returns how many went.
pub fn purge_published(tx: &Transaction<'_>, older_than_ms: i64, limit: usize) -> Result<usize, DbError> {
    Ok(tx.execute(
        "DELETE FROM outbox WHERE seq IN
           (SELECT seq FROM outbox WHERE published_at IS NOT NULL AND published_at < ?1 LIMIT ?2)",
        params![older_than_ms, limit as i64],
    )?)
}

/// Publishes a service's outbox to JetStream.
pub struct Relay {
    /// The service whose outbox this is: the scope of its failpoint.
    name: &'static str,
    db: Db,
    js: jetstream::Context,
    wake: Arc<Notify>,
    poll_tick: Duration,
    /// See [`resend_recent`]; zero re-sends nothing.
    resend_window: Duration,
    /// The client's own count of the connections it made (the first, then each reconnection).
    /// It moves before anything can arrive over a new connection, so a round that reads the same
    /// count before and after awaiting its acks got every ack over the connection it counts.
    stats: Arc<async_nats::Statistics>,
    /// The count the last re-send was made for.
    resent_for: AtomicU64,
}

impl Relay {
    /// The relay of `name`'s outbox in `db`, re-sending the last [`RESEND_WINDOW`] on each
    /// connection of `js`'s client.
    pub fn new(name: &'static str, db: Db, js: jetstream::Context) -> Self {
        let wake = db.committed();
        let stats = js.client().statistics();
        Relay {
            name,
            db,
            js,
            wake,
            poll_tick: POLL_TICK,
            resend_window: RESEND_WINDOW,
            stats,
            resent_for: AtomicU64::new(0),
        }
    }

    /// How far back from its newest publish the relay re-sends on each connection to NATS (see
    /// [`resend_recent`]). Must exceed the broker's `sync_interval`; zero turns re-sending off
    /// (for a broker that syncs before it acknowledges, `sync_interval: always`).
    pub fn with_resend_window(mut self, window: Duration) -> Self {
        self.resend_window = window;
        self
    }

    /// Overrides the poll tick (tests set it very long to prove the commit wake-up works alone).
    pub fn with_poll_tick(mut self, tick: Duration) -> Self {
        self.poll_tick = tick;
        self
    }

    /// Runs until `stop` is cancelled. While NATS is unreachable it keeps the rows and retries
    /// with capped exponential backoff; nothing is ever marked without an ack.
    pub async fn run(self, stop: CancellationToken) {
        let mut delay = RETRY_MIN;
        let mut last_purge = 0;
        loop {
            match self.publish_pending().await {
                Ok(n) => {
                    delay = RETRY_MIN;
                    if n == BATCH {
                        continue; // more are waiting
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?delay, "outbox relay could not publish; will retry");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(RETRY_MAX);
                    continue;
                }
            }
            if now_ms() - last_purge > 3_600_000 {
                last_purge = now_ms();
                self.purge().await;
            }
            // A reconnection while idle is noticed on the tick: nothing is published before.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll_tick) => {}
            }
        }
    }

    /// One round: on a new connection, first the re-send ([`resend_recent`]); then publish up to
    /// `BATCH` rows, await every ack, mark the acked prefix. Returns how many rows were published
    /// (and marked).
    pub async fn publish_pending(&self) -> anyhow::Result<usize> {
        let connects = self.stats.connects.load(Ordering::Acquire);
        self.resend_on_new_connection(connects).await?;
        let rows = self.db.lookup(|c| pending(c, BATCH))?;
        if rows.is_empty() {
            return Ok(0);
        }
        // Send the whole batch before awaiting acks (pipelining), but mark only the prefix that
        // was acked so order is kept and nothing unacked is ever marked.
        let mut in_flight: Vec<(i64, i64, PublishAckFuture)> = Vec::with_capacity(rows.len());
        let mut poison = Vec::new();
        let mut failure = None;
        for row in &rows {
            let mut msg = PublishMessage::build().payload(row.payload.clone().into()).message_id(&row.id);
            if let Some(traceparent) = &row.traceparent {
                msg = msg.header(crate::trace::HEADER, traceparent.as_str());
            }
            match self.js.send_publish(row.subject.clone(), msg).await {
                Ok(ack) => in_flight.push((row.seq, row.created_at, ack)),
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    poison.push((row.clone(), format!("set aside by the outbox relay: {e}")));
                }
                Err(e) => {
                    failure = Some(anyhow::Error::from(e));
                    break;
                }
            }
        }
        let mut acked = Vec::with_capacity(in_flight.len());
        // Rows are stamped with the time of their last ack, not of the mark: acks behind them
        // timing out on a crashed broker must not move the re-send window's anchor past the crash.
        let mut acked_at = now_ms();
        let lag = metrics::histogram!(crate::metrics::OUTBOX_PUBLISH_LAG, "service" => self.name);
        for (seq, created_at, ack) in in_flight {
            match ack.await {
                Ok(_) => {
                    acked.push(seq);
                    acked_at = now_ms();
                    lag.record((acked_at - created_at).max(0) as f64 / 1000.0);
                }
                Err(e) => {
                    failure.get_or_insert(e.into());
                    break;
                }
            }
        }
        for (row, reason) in poison {
            let (seq, id, subject) = (row.seq, row.id.clone(), row.subject.clone());
            self.db.write(move |tx| set_aside(tx, &row, &reason)).await?;
            tracing::error!(
                outbox.seq = seq,
                event.id = id,
                subject,
                "outbox row can never be published; set aside as a dead letter"
            );
        }
        if self.stats.connects.load(Ordering::Acquire) != connects && !acked.is_empty() {
            // The client reconnected while the acks came in: some may be from a broker that has
            // since crashed. Unmarked, the rows go out again after the next round's re-send.
            tracing::debug!(rows = acked.len(), "reconnected to NATS while publishing; these rows go out again");
            acked.clear();
        }
        let n = acked.len();
        if n > 0 && crate::faults::fire(self.name, crate::faults::RELAY_AFTER_PUBLISH) {
            // As if the process died between the acks and the mark: the rows stay unpublished
            // and go out again under the same ids.
            anyhow::bail!(
                "failpoint {}.{}: {n} acknowledged rows left unmarked",
                self.name,
                crate::faults::RELAY_AFTER_PUBLISH
            );
        }
        if n > 0 {
            self.db.write(move |tx| mark_published(tx, &acked, acked_at)).await?;
            metrics::counter!(crate::metrics::OUTBOX_PUBLISHED, "service" => self.name).increment(n as u64);
            tracing::debug!(published = n, "outbox relay published");
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Once per connection (the first included: a broker's OS crash usually takes the services
    /// down too), before anything is published over it: [`resend_recent`]. Connections made
    /// while the relay was busy count as one, so a flapping connection re-sends at most the
    /// window's rows per round. Until the re-send has committed the count is not taken, so a
    /// failed one is tried again.
    async fn resend_on_new_connection(&self, connects: u64) -> Result<(), DbError> {
        if connects == self.resent_for.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !self.resend_window.is_zero() {
            let window = self.resend_window;
            let rows = self.db.write(move |tx| resend_recent(tx, window.as_millis() as i64)).await?;
            if rows > 0 {
                tracing::info!(
                    rows,
                    window_ms = window.as_millis() as u64,
                    "connected to NATS: re-sending the newest published outbox rows, which a broker crash may have lost"
                );
            }
        }
        self.resent_for.store(connects, Ordering::Relaxed);
        Ok(())
    }

    /// Housekeeping: published outbox rows past [`RETENTION`], processed ids past twice that
    /// (longer than any message can stay in the stream, so no redelivery outlives its dedupe row)
    /// and dead letters past [`crate::consumer::DEAD_LETTER_RETENTION`].
    /// In small batches, each its own short transaction, so request handlers and consumers never
    /// wait long behind it for the database's single writer.
    async fn purge(&self) {
        let cutoff = now_ms() - RETENTION.as_millis() as i64;
        let processed_cutoff = now_ms() - 2 * RETENTION.as_millis() as i64;
        let dead_letter_cutoff = now_ms() - crate::consumer::DEAD_LETTER_RETENTION.as_millis() as i64;
        let mut total = 0;
        loop {
            let batch = self.db.write(move |tx| {
                let outbox = purge_published(tx, cutoff, PURGE_BATCH)?;
                let processed = crate::consumer::purge_processed(tx, processed_cutoff, PURGE_BATCH)?;
                let dead = crate::consumer::purge_dead_letters(tx, dead_letter_cutoff, PURGE_BATCH)?;
                Ok::<_, DbError>((outbox, processed, dead))
            });
            match batch.await {
                Ok((outbox, processed, dead)) => {
                    total += outbox + processed + dead;
                    if outbox < PURGE_BATCH && processed < PURGE_BATCH && dead < PURGE_BATCH {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "could not purge the outbox");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(rows = total, "purged outbox, processed and dead-letter rows past retention");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_resend_takes_the_rows_published_within_the_window_of_the_newest_publish() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("r.db"), &[]).await.unwrap();
        db.write(|tx| {
            for (i, published) in [Some(1_000), Some(8_000), Some(9_500), Some(10_000), None].into_iter().enumerate() {
                tx.execute(
                    "INSERT INTO outbox (id, subject, payload, created_at, published_at) VALUES (?1, 's', x'', 0, ?2)",
                    params![i.to_string(), published],
                )?;
            }
            Ok::<_, DbError>(())
        })
        .await
        .unwrap();
        // 2 s back from the newest publish (10 000): the rows published at 8 000 and later.
        assert_eq!(db.write(|tx| resend_recent(tx, 2_000)).await.unwrap(), 3);
        let unpublished: Vec<String> = db
            .read(|c| {
                let mut stmt = c.prepare("SELECT id FROM outbox WHERE published_at IS NULL ORDER BY seq")?;
                stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()
            })
            .await
            .unwrap();
        assert_eq!(unpublished, ["1", "2", "3", "4"], "the old row stays published");
        // Called again, the newest publish left is the one at 1 000: it goes too.
        assert_eq!(db.write(|tx| resend_recent(tx, 2_000)).await.unwrap(), 1, "only the row at 1 000 is left");
    }

    #[tokio::test]
    async fn purging_takes_old_published_rows_in_bounded_batches_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("o.db"), &[]).await.unwrap();
        db.write(|tx| {
            for (i, published) in [Some(10), Some(20), Some(30), None, Some(5_000)].into_iter().enumerate() {
                tx.execute(
                    "INSERT INTO outbox (id, subject, payload, created_at, published_at) VALUES (?1, 's', x'', 0, ?2)",
                    params![i.to_string(), published],
                )?;
            }
            Ok::<_, DbError>(())
        })
        .await
        .unwrap();
        let purge = |limit| db.write(move |tx| purge_published(tx, 1_000, limit));
        assert_eq!(purge(2).await.unwrap(), 2);
        assert_eq!(purge(2).await.unwrap(), 1);
        assert_eq!(purge(2).await.unwrap(), 0);
        let left: Vec<String> = db
            .read(|c| {
                let mut stmt = c.prepare("SELECT id FROM outbox ORDER BY seq")?;
                stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()
            })
            .await
            .unwrap();
        assert_eq!(left, ["3", "4"], "unpublished and recent rows stay");
    }
}
