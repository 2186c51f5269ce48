//! The idempotent consumer.
//!
//! Per message, one `BEGIN IMMEDIATE` transaction: insert the message id into `processed` (a
//! conflict means we have seen it: commit, ack, skip), run the service's handler (its state change
//! and follow-up outbox rows), commit; then ack. Poison is dead-lettered at once; a transient
//! failure is retried until it passes, however long that takes; no message is ever dropped:
//!
//! | outcome                                    | what happens                                |
//! |--------------------------------------------|---------------------------------------------|
//! | undecodable, wrong subject, newer version  | dead-letter row, then `Term`                |
//! | a type the handler does not declare        | dead-letter row, then `Term`                |
//! | handler says [`HandlerError::Reject`]      | dead-letter row, then `Term`                |
//! | handler or database fails transiently      | `Nak`, 1 s doubling to 30 s, for ever       |
//! | handler says [`HandlerError::NotYet`]      | `Nak` with the same delays ...              |
//! | ... still not applicable after `patience`  | dead-letter row ("gave up"), then `Term`    |
//! | the dead-letter row cannot be written      | `Nak`: dead-lettering is retried like any   |
//! |                                            | transient failure, never `Term`ed before it |
//!
//! The durable consumer has no server-side `max_deliver`: only this code ends a message's
//! deliveries, and only after its dead-letter row committed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
pub use futures_util::future::BoxFuture;
use rusqlite::{Transaction, params};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bus::ConsumerSpec;
use crate::db::{Db, DbError, now_ms};
use crate::event::{Envelope, EventType};
use crate::faults;

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is well-formed JSON but makes no sense (e.g. it contradicts its order). Retrying
    /// will not help: dead-letter it.
    #[error("rejected: {0}")]
    Reject(String),
    /// The event depends on one this consumer has not applied yet (its order's `order.created`,
    /// the sale a refund refunds): retried with backoff, as redelivery can reorder events, and
    /// dead-lettered once it has waited [`ConsumerSpec::patience`] deliveries: an orphan, visibly.
    #[error("not yet applicable: {0}")]
    NotYet(String),
    /// Something that passes (a busy or locked database, a full disk, a bug fixed by a
    /// redeploy): retried until it succeeds, whatever the delivery count. Never dead-lettered.
    #[error("transient: {0}")]
    Transient(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for HandlerError {
    fn from(e: rusqlite::Error) -> Self {
        HandlerError::Transient(e.into())
    }
}

impl From<DbError> for HandlerError {
    fn from(e: DbError) -> Self {
        HandlerError::Transient(e.into())
    }
}

impl HandlerError {
    /// For the catch-all arm of a handler's match: an event the handler does not react to. The
    /// consumer never passes one (see [`Handler::consumes`]); were it to, it is dead-lettered.
    pub fn unhandled(handler: &str, event: &Envelope) -> Self {
        HandlerError::Reject(unhandled(handler, event))
    }
}

fn unhandled(handler: &str, event: &Envelope) -> String {
    format!("{handler} does not handle {}", event.event.event_type())
}

/// A service's reactions: the events it consumes and one match over them. `handle` runs inside the
/// consumer's transaction; everything it writes (state and outbox rows) commits with the dedupe
/// row.
pub trait Handler: Send + Sync + 'static {
    /// The durable consumer's name (the service's name for its saga reactions).
    fn name(&self) -> &'static str;

    /// Every event type `handle` reacts to. The consumer's subject filter is derived from this
    /// list ([`ConsumerSpec::of`]), so the two cannot drift; an event of any other type that still
    /// reaches the consumer (a replay, a filter changed by hand) is dead-lettered, never silently
    /// acknowledged.
    fn consumes(&self) -> &'static [EventType];

    fn handle(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), HandlerError>;

    /// Work that must happen before the transaction and outside it: a call to another system (svc-payment's
    /// gateway) that must not hold the database's only writer while it waits on the network.
    /// `Some(effect)` stands in for `handle` on this delivery: the consumer runs it inside the
    /// transaction, after the dedupe row. An error is handled as one from `handle` (a gateway
    /// that cannot be reached is `Transient`: the message comes back later). It runs again on
    /// every delivery, duplicates included, so what it calls must be idempotent (the gateway's
    /// `Idempotency-Key`). Default: nothing to prepare.
    fn prepare<'a>(&'a self, _db: &'a Db, _event: &'a Envelope) -> BoxFuture<'a, Result<Option<Effect>, HandlerError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Called after `handle`'s transaction committed (never for duplicates), e.g. to wake
    /// in-process waiters. Must not fail: the effect is already durable.
    fn committed(&self, _event: &Envelope) {}
}

/// The transactional part of a reaction decided by [`Handler::prepare`].
pub type Effect = Box<dyn FnOnce(&Transaction<'_>) -> Result<(), HandlerError> + Send>;

/// A [`Handler`] made of a closure, for tests of the plumbing itself.
pub struct FnHandler<F> {
    name: &'static str,
    consumes: &'static [EventType],
    f: F,
}

/// The closure as the handler of the durable consumer `name`, reacting to `consumes`.
pub fn handler_fn<F>(name: &'static str, consumes: &'static [EventType], f: F) -> FnHandler<F>
where
    F: Fn(&Transaction<'_>, &Envelope) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    FnHandler { name, consumes, f }
}

impl<F> Handler for FnHandler<F>
where
    F: Fn(&Transaction<'_>, &Envelope) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn consumes(&self) -> &'static [EventType] {
        self.consumes
    }

    fn handle(&self, tx: &Transaction<'_>, event: &Envelope) -> Result<(), HandlerError> {
        (self.f)(tx, event)
    }
}

/// What became of one message; returned for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    DeadLettered(String),
    /// A transient failure: delivered again later, for as long as it takes.
    Retry(String),
    /// Not applicable yet: delivered again later, until the consumer's patience runs out.
    NotYet(String),
}

/// What this process's consumers have seen since it started: the figures `shopctl chaos`
/// reports (a process-wide count, as the metrics of a process are).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Messages delivered more than once (a crash before the ack, a Nak, an ack wait run out).
    pub redeliveries: u64,
    /// Messages whose id a consumer had already applied: skipped.
    pub duplicates: u64,
    pub dead_lettered: u64,
}

static REDELIVERIES: AtomicU64 = AtomicU64::new(0);
static DUPLICATES: AtomicU64 = AtomicU64::new(0);
static DEAD_LETTERED: AtomicU64 = AtomicU64::new(0);

pub fn stats() -> Stats {
    Stats {
        redeliveries: REDELIVERIES.load(Ordering::Relaxed),
        duplicates: DUPLICATES.load(Ordering::Relaxed),
        dead_lettered: DEAD_LETTERED.load(Ordering::Relaxed),
    }
}

/// Consumes the stream through `spec`'s durable consumer until `stop` is cancelled.
pub async fn run(
    js: jetstream::Context,
    spec: ConsumerSpec,
    db: Db,
    handler: Arc<dyn Handler>,
    stop: CancellationToken,
) {
    debug_assert_eq!(spec.durable(), handler.name(), "a consumer spec runs with the handler it was made of");
    let mut delay = Duration::from_millis(200);
    while !stop.is_cancelled() {
        let messages = async {
            let stream = crate::bus::ensure_stream(&js).await?;
            spec.ensure(&stream).await
        };
        let mut messages = tokio::select! {
            _ = stop.cancelled() => return,
            m = messages => match m {
                Ok(m) => m,
                Err(error) => {
                    tracing::warn!(%error, consumer = spec.durable(), "cannot attach consumer; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        };
        delay = Duration::from_millis(200);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(msg)) => {
                    process(&db, &spec, handler.clone(), msg).await;
                }
                // Missing heartbeats and similar hiccups do not end the pull stream: keep going.
                Some(Err(error)) => tracing::warn!(%error, consumer = spec.durable(), "pull consumer hiccup"),
                None => break, // stream ended: re-attach
            }
        }
    }
}

/// Processes one message end to end, acking or terminating it as the outcome requires.
pub async fn process(db: &Db, spec: &ConsumerSpec, handler: Arc<dyn Handler>, msg: jetstream::Message) -> Outcome {
    let (stream_seq, deliveries) = match msg.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(_) => (0, 1),
    };
    if deliveries > 1 {
        REDELIVERIES.fetch_add(1, Ordering::Relaxed);
    }
    let msg_id =
        msg.headers.as_ref().and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID)).map(|v| v.as_str().to_owned());
    let subject = msg.subject.to_string();

    let outcome = match Envelope::decode(&subject, &msg.payload) {
        Err(error) => {
            let span = tracing::error_span!("event", consumer = spec.durable());
            let reason = error.to_string();
            Some(
                dead_letter(db, spec, &subject, msg_id.clone(), stream_seq, deliveries, &reason, &msg.payload)
                    .instrument(span)
                    .await,
            )
        }
        Ok(envelope) => {
            let span = tracing::info_span!(
                "event",
                event.id = %envelope.id,
                event.type = envelope.event.event_type(),
                correlation.id = %envelope.correlation_id,
                consumer = spec.durable(),
            );
            let compensation = matches!(envelope.event.kind(), EventType::OrderFailed | EventType::OrderExpired);
            async {
                let outcome = apply(db, handler, envelope).await;
                let point =
                    if compensation { faults::COMPENSATION_AFTER_COMMIT } else { faults::CONSUMER_AFTER_COMMIT };
                if outcome == Outcome::Applied && faults::fire(spec.durable(), point) {
                    // As if the process died between the commit and the ack: no ack, so the
                    // broker delivers the message again after the ack wait.
                    return None;
                }
                Some(match outcome {
                    Outcome::NotYet(reason) if deliveries >= spec.patience => {
                        let reason = format!("gave up after {deliveries} attempts: {reason}");
                        dead_letter(db, spec, &subject, msg_id, stream_seq, deliveries, &reason, &msg.payload).await
                    }
                    Outcome::DeadLettered(reason) => {
                        dead_letter(db, spec, &subject, msg_id, stream_seq, deliveries, &reason, &msg.payload).await
                    }
                    other => other,
                })
            }
            .instrument(span)
            .await
        }
    };
    let Some(outcome) = outcome else {
        return Outcome::Applied;
    };

    let ack = match &outcome {
        Outcome::Applied | Outcome::Duplicate => AckKind::Ack,
        Outcome::DeadLettered(_) => AckKind::Term,
        Outcome::Retry(_) | Outcome::NotYet(_) => AckKind::Nak(Some(retry_delay(deliveries))),
    };
    if let Err(error) = msg.ack_with(ack).await {
        // The effect is committed; a redelivery will find the message id and be skipped.
        tracing::warn!(%error, "could not acknowledge message");
    }
    outcome
}

/// Applies one decoded event exactly once for the handler's consumer: dedupe row, handler effect
/// and follow-up outbox rows in one transaction. Does not ack: [`process`] does that after the commit.
///
/// An event of a type the handler does not declare is dead-lettered before anything is written,
/// so that replaying it once the handler learnt the type applies it.
pub async fn apply(db: &Db, handler: Arc<dyn Handler>, envelope: Envelope) -> Outcome {
    if !handler.consumes().contains(&envelope.event.kind()) {
        return Outcome::DeadLettered(unhandled(handler.name(), &envelope));
    }
    let consumer = handler.name();
    let id = envelope.id;
    let effect = match handler.prepare(db, &envelope).await {
        Ok(effect) => effect,
        Err(error) => return failed(error),
    };
    let after = handler.clone();
    let event = envelope.clone();
    let res = db
        .write(move |tx| {
            let fresh = tx.execute(
                "INSERT INTO processed (consumer, message_id, processed_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![consumer, id.to_string(), now_ms()],
            )? == 1;
            if !fresh {
                return Ok(Outcome::Duplicate);
            }
            match effect {
                Some(effect) => effect(tx)?,
                None => handler.handle(tx, &envelope)?,
            }
            if faults::fire(consumer, faults::CONSUMER_IN_TRANSACTION) {
                // As if the process died mid-transaction: nothing of it commits.
                return Err(HandlerError::Transient(anyhow::anyhow!(
                    "failpoint {consumer}.{}",
                    faults::CONSUMER_IN_TRANSACTION
                )));
            }
            Ok::<_, HandlerError>(Outcome::Applied)
        })
        .await;
    match res {
        Ok(Outcome::Duplicate) => {
            DUPLICATES.fetch_add(1, Ordering::Relaxed);
            tracing::info!("duplicate message skipped");
            Outcome::Duplicate
        }
        Ok(outcome) => {
            tracing::debug!("event applied");
            after.committed(&event);
            outcome
        }
        Err(error) => failed(error),
    }
}

/// The outcome of a handler's failure.
fn failed(error: HandlerError) -> Outcome {
    match error {
        HandlerError::Reject(reason) => Outcome::DeadLettered(reason),
        HandlerError::NotYet(reason) => {
            tracing::info!(reason, "event not applicable yet; will retry");
            Outcome::NotYet(reason)
        }
        HandlerError::Transient(error) => {
            tracing::warn!(error = %format!("{error:#}"), "event failed; will retry");
            Outcome::Retry(format!("{error:#}"))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn dead_letter(
    db: &Db,
    spec: &ConsumerSpec,
    subject: &str,
    msg_id: Option<String>,
    stream_seq: u64,
    deliveries: i64,
    reason: &str,
    payload: &[u8],
) -> Outcome {
    let (consumer, subject_owned, reason_owned, payload, id) =
        (spec.durable().to_owned(), subject.to_owned(), reason.to_owned(), payload.to_vec(), msg_id.clone());
    let res = db
        .write(move |tx| {
            tx.execute(
                "INSERT INTO dead_letter (consumer, subject, message_id, stream_seq, deliveries, reason, payload, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![consumer, subject_owned, id, stream_seq as i64, deliveries, reason_owned, payload, now_ms()],
            )
            .map_err(DbError::from)
        })
        .await;
    match res {
        Ok(_) => {
            DEAD_LETTERED.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                subject,
                msg.id = msg_id.as_deref(),
                stream.seq = stream_seq,
                reason,
                "message dead-lettered"
            );
            Outcome::DeadLettered(reason.to_owned())
        }
        // Without the dead-letter row we must not Term, or the message would be lost silently:
        // delivered again, it is dead-lettered again, until the row commits.
        Err(error) => {
            tracing::warn!(subject, msg.id = msg_id.as_deref(), %error, reason, "could not record a dead letter; will retry");
            Outcome::Retry(format!("could not record dead letter: {error}"))
        }
    }
}

/// Nak delay for the `deliveries`-th attempt: 1 s, 2 s, 4 s ... capped at 30 s.
fn retry_delay(deliveries: i64) -> Duration {
    let exp = deliveries.clamp(1, 6) as u32 - 1;
    Duration::from_secs(1 << exp).min(Duration::from_secs(30))
}

/// Deletes up to `limit` processed ids older than `older_than_ms`; they must outlive the stream's
/// max age so no redelivery can outlast its dedupe row. Returns how many went.
pub fn purge_processed(tx: &Transaction<'_>, older_than_ms: i64, limit: usize) -> Result<usize, DbError> {
    Ok(tx.execute(
        "DELETE FROM processed WHERE (consumer, message_id) IN
           (SELECT consumer, message_id FROM processed WHERE processed_at < ?1 LIMIT ?2)",
        params![older_than_ms, limit as i64],
    )?)
}

/// How long a dead letter is kept for a person to look at and replay (`./shop dead-letter`):
/// long enough to outlast a holiday, short enough that a poison flood cannot fill the disk.
pub const DEAD_LETTER_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Deletes up to `limit` dead letters recorded before `older_than_ms`. Returns how many went.
pub fn purge_dead_letters(tx: &Transaction<'_>, older_than_ms: i64, limit: usize) -> Result<usize, DbError> {
    Ok(tx.execute(
        "DELETE FROM dead_letter WHERE seq IN (SELECT seq FROM dead_letter WHERE created_at < ?1 LIMIT ?2)",
        params![older_than_ms, limit as i64],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn purging_processed_ids_takes_old_ones_in_bounded_batches() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("p.db"), &[]).await.unwrap();
        let rows = [("a", "1", 10), ("a", "2", 20), ("b", "1", 30), ("b", "2", 5_000)];
        db.write(move |tx| {
            for (consumer, id, at) in rows {
                tx.execute("INSERT INTO processed VALUES (?1, ?2, ?3)", params![consumer, id, at])?;
            }
            Ok::<_, DbError>(())
        })
        .await
        .unwrap();
        let purge = |limit| db.write(move |tx| purge_processed(tx, 1_000, limit));
        assert_eq!(purge(2).await.unwrap(), 2);
        assert_eq!(purge(2).await.unwrap(), 1);
        let left: i64 = db.read(|c| c.query_row("SELECT count(*) FROM processed", [], |r| r.get(0))).await.unwrap();
        assert_eq!(left, 1, "the recent id stays");
    }

    #[tokio::test]
    async fn purging_dead_letters_takes_old_ones_and_keeps_recent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("d.db"), &[]).await.unwrap();
        db.write(|tx| {
            for at in [10, 20, 5_000] {
                tx.execute(
                    "INSERT INTO dead_letter (consumer, subject, stream_seq, deliveries, reason, payload, created_at)
                     VALUES ('c', 's', 1, 1, 'r', x'00', ?1)",
                    [at],
                )?;
            }
            Ok::<_, DbError>(())
        })
        .await
        .unwrap();
        assert_eq!(db.write(|tx| purge_dead_letters(tx, 1_000, 10)).await.unwrap(), 2);
        let left: i64 = db.read(|c| c.query_row("SELECT count(*) FROM dead_letter", [], |r| r.get(0))).await.unwrap();
        assert_eq!(left, 1, "the recent dead letter stays");
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
