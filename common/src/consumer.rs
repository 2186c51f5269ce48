//! The idempotent consumer.
//!
//! Messages are applied in batches (whatever has been delivered, up to [`BATCH`]): one
//! `BEGIN IMMEDIATE` transaction, and in it, per message, a savepoint holding the insert of its id
//! into `processed` (a conflict means we have seen it: skip) and the service's handler (its state
//! change and follow-up outbox rows); one commit; then each message is acked. Poison is
//! dead-lettered at once (its row in the same transaction); a transient failure is retried until
//! it passes, however long that takes; one message's failure undoes only its own savepoint; no
//! message is ever dropped:
//!
//! | outcome                                    | what happens                                |
//! |--------------------------------------------|---------------------------------------------|
//! | undecodable, wrong subject, newer version  | dead-letter row, then `Term`                |
//! | a type the handler does not declare        | dead-letter row, then `Term`                |
//! | handler says [`HandlerError::Reject`]      | dead-letter row, then `Term`                |
//! | handler or database fails transiently      | `Nak`, 1 s doubling to 30 s, for ever       |
//! | handler says [`HandlerError::NotYet`]      | `Nak` with the same delays ...              |
//! | ... still not applicable after `patience`  | dead-letter row ("gave up"), then `Term`    |
//! | the batch cannot be written or committed   | every message `Nak`ed: dead-lettering is    |
//! |                                            | retried like any transient failure, never   |
//! |                                            | `Term`ed before its row committed           |
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

use async_nats::jetstream::{self, AckKind, consumer::pull::MessagesErrorKind};
pub use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use rusqlite::{Transaction, params};
use tokio_util::sync::CancellationToken;

use crate::bus::ConsumerSpec;
use crate::db::{Db, DbError, now_ms};
use crate::event::{Envelope, EventType};
use crate::faults;
use crate::metrics as m;
use crate::trace::{self, TraceContext};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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

/// Whether a durable consumer is attached to the stream (readiness, and the `consumer_attached`
/// gauge): set once its pull stream is open, cleared while it is being (re-)attached.
#[derive(Debug, Clone)]
pub struct Attached {
    consumer: &'static str,
    stream: Arc<str>,
    durable: Arc<str>,
    attached: Arc<std::sync::atomic::AtomicBool>,
}

impl Attached {
    /// Not attached yet: the handler `consumer` through the durable `durable` on `stream` (the
    /// handler's name on the event stream, or `<name>-<shard>` on its shard stream).
    pub fn new(consumer: &'static str, stream: &str, durable: &str) -> Self {
        let attached = Attached { consumer, stream: stream.into(), durable: durable.into(), attached: Arc::default() };
        attached.set(false);
        attached
    }

    pub fn consumer(&self) -> &'static str {
        self.consumer
    }

    pub fn durable(&self) -> &str {
        &self.durable
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn is_attached(&self) -> bool {
        self.attached.load(Ordering::Relaxed)
    }

    fn set(&self, attached: bool) {
        self.attached.store(attached, Ordering::Relaxed);
        metrics::gauge!(m::CONSUMER_ATTACHED, "service" => self.consumer, "consumer" => self.consumer)
            .set(f64::from(u8::from(attached)));
    }
}

pub fn stats() -> Stats {
    Stats {
        redeliveries: REDELIVERIES.load(Ordering::Relaxed),
        duplicates: DUPLICATES.load(Ordering::Relaxed),
        dead_lettered: DEAD_LETTERED.load(Ordering::Relaxed),
    }
}

/// The most messages applied in one transaction: what one pull brings
/// ([`ConsumerSpec::ensure`] asks for batches of this size).
pub const BATCH: usize = 64;

/// Consumes the stream through `spec`'s durable consumer until `stop` is cancelled.
///
/// Each round takes the first message that arrives and every other one already delivered (up to
/// [`BATCH`], without waiting for more), applies them in one transaction ([`process_batch`]) and
/// acknowledges them after its commit: one fsync for the whole batch, so a busy consumer writes
/// and syncs once per batch instead of once per message, and an idle one answers at once.
pub async fn run(
    js: jetstream::Context,
    spec: ConsumerSpec,
    db: Db,
    handler: Arc<dyn Handler>,
    attached: Attached,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(200);
    while !stop.is_cancelled() {
        attached.set(false);
        let messages = async {
            let stream = spec.ensure_stream(&js).await?;
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
        attached.set(true);
        let mut ended = false;
        while !ended {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = messages.next() => next,
            };
            let mut batch = match next {
                Some(Ok(msg)) => vec![msg],
                // Missed heartbeats: the pull request is gone (its consumer's leader moved to
                // another node, say) and would only be renewed when it expires: pull again now.
                Some(Err(error)) if error.kind() == MessagesErrorKind::MissingHeartbeat => {
                    tracing::warn!(%error, consumer = spec.durable(), "pull consumer lost its pull request; pulling again");
                    break;
                }
                // Other hiccups do not end the pull stream: keep going.
                Some(Err(error)) => {
                    tracing::warn!(%error, consumer = spec.durable(), "pull consumer hiccup");
                    continue;
                }
                None => break, // stream ended: re-attach
            };
            while batch.len() < BATCH {
                match messages.next().now_or_never() {
                    Some(Some(Ok(msg))) => batch.push(msg),
                    Some(Some(Err(error))) => {
                        tracing::warn!(%error, consumer = spec.durable(), "pull consumer hiccup");
                        ended = error.kind() == MessagesErrorKind::MissingHeartbeat;
                        break;
                    }
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    None => break, // nothing more delivered yet
                }
            }
            process_batch(&db, &spec, &handler, batch).await;
        }
    }
}

/// A delivered message as the batch's transaction needs it.
struct Delivery {
    subject: String,
    msg_id: Option<String>,
    stream_seq: u64,
    deliveries: i64,
    payload: bytes::Bytes,
    /// This message's step of its trace: a child of the `traceparent` it came with (or a new
    /// trace, for a hand-published event without one), the context of what handling it writes.
    trace: TraceContext,
    /// The span everything about this message is logged in (`trace_id` among its fields).
    span: tracing::Span,
}

impl Delivery {
    fn of(msg: &jetstream::Message, consumer: &'static str, spec: &ConsumerSpec) -> Self {
        let (stream_seq, deliveries) = match msg.info() {
            Ok(info) => (info.stream_sequence, info.delivered),
            Err(_) => (0, 1),
        };
        let header = |name: &str| msg.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        let msg_id = header(async_nats::header::NATS_MESSAGE_ID.as_ref());
        let trace = header(trace::HEADER)
            .as_deref()
            .and_then(TraceContext::parse)
            .map_or_else(TraceContext::root, |c| c.child());
        // As the event was published: a shard stream stores it under a prefix.
        let subject = spec.event_subject(&msg.subject).to_owned();
        let span =
            tracing::info_span!("event", trace_id = %trace.trace_id(), consumer, subject, msg.id = msg_id.as_deref());
        Delivery { subject, msg_id, stream_seq, deliveries, payload: msg.payload.clone(), trace, span }
    }
}

/// What the batch's transaction does with one message.
#[allow(clippy::large_enum_variant)] // at most BATCH of them, for the length of one transaction
enum Task {
    /// Apply the event: `effect` if [`Handler::prepare`] decided one, else [`Handler::handle`].
    Apply { envelope: Envelope, effect: Option<Effect> },
    /// Record a dead-letter row with this reason.
    DeadLetter(String),
    /// Nothing to write: the outcome is known already (a `prepare` that must be retried).
    Settled(Outcome),
}

/// Processes delivered messages together: decodes each, runs the handler's `prepare` step (one
/// call per message, at once for messages of distinct keys), then applies every message in one
/// transaction, each in a savepoint of its own so that one that fails or is rejected leaves the
/// others' effects in place; commits; and only then acknowledges each message as its outcome
/// requires. Outcomes are returned in the messages' order.
pub async fn process_batch(
    db: &Db,
    spec: &ConsumerSpec,
    handler: &Arc<dyn Handler>,
    msgs: Vec<jetstream::Message>,
) -> Vec<Outcome> {
    let consumer = handler.name();
    let deliveries: Vec<Delivery> = msgs.iter().map(|m| Delivery::of(m, consumer, spec)).collect();
    let redelivered = deliveries.iter().filter(|d| d.deliveries > 1).count() as u64;
    REDELIVERIES.fetch_add(redelivered, Ordering::Relaxed);
    if redelivered > 0 {
        metrics::counter!(m::REDELIVERIES, "service" => consumer, "consumer" => consumer).increment(redelivered);
    }

    let decoded: Vec<Result<Envelope, String>> = deliveries
        .iter()
        .map(|d| {
            let envelope = Envelope::decode(&d.subject, &d.payload).map_err(|e| e.to_string())?;
            if handler.consumes().contains(&envelope.event.kind()) {
                Ok(envelope)
            } else {
                Err(unhandled(consumer, &envelope))
            }
        })
        .collect();
    let prepared = prepare_all(db, handler, &decoded, &deliveries).await;
    let tasks: Vec<Task> = decoded
        .into_iter()
        .zip(prepared)
        .zip(&deliveries)
        .map(|((decoded, prepared), delivery)| match (decoded, prepared) {
            (Err(reason), _) => Task::DeadLetter(reason),
            (Ok(envelope), Ok(effect)) => Task::Apply { envelope, effect },
            (Ok(envelope), Err(error)) => match settle(failed(error, consumer, &envelope), delivery, spec.patience) {
                Outcome::DeadLettered(reason) => Task::DeadLetter(reason),
                other => Task::Settled(other),
            },
        })
        .collect();

    let (patience, handler_tx) = (spec.patience, handler.clone());
    let written = db
        .write(move |tx| {
            let mut out = Vec::with_capacity(tasks.len());
            for (task, delivery) in tasks.into_iter().zip(deliveries) {
                let _entered = delivery.span.clone().entered();
                let (outcome, applied) = match task {
                    Task::Settled(outcome) => (outcome, None),
                    Task::DeadLetter(reason) => {
                        insert_dead_letter(tx, consumer, &delivery, &reason)?;
                        (Outcome::DeadLettered(reason), None)
                    }
                    Task::Apply { envelope, effect } => {
                        crate::db::run_cached(tx, "SAVEPOINT message")?;
                        let started = std::time::Instant::now();
                        let applied =
                            trace::on_thread(Some(delivery.trace), || apply_in(tx, &*handler_tx, &envelope, effect));
                        if matches!(applied, Ok(Outcome::Applied)) {
                            metrics::histogram!(m::HANDLE_DURATION, "service" => consumer, "consumer" => consumer,
                                "event_type" => envelope.event.event_type())
                            .record(started.elapsed().as_secs_f64());
                        }
                        match applied {
                            Ok(outcome) => {
                                crate::db::run_cached(tx, "RELEASE message")?;
                                (outcome, Some(envelope))
                            }
                            Err(error) => {
                                // Nothing of this message stays; the others' effects do.
                                crate::db::rollback_to(tx, "message")?;
                                match settle(failed(error, consumer, &envelope), &delivery, patience) {
                                    Outcome::DeadLettered(reason) => {
                                        insert_dead_letter(tx, consumer, &delivery, &reason)?;
                                        (Outcome::DeadLettered(reason), None)
                                    }
                                    other => (other, None),
                                }
                            }
                        }
                    }
                };
                out.push((outcome, applied, delivery));
            }
            Ok::<_, DbError>(out)
        })
        .await;

    let results: Vec<(Outcome, bool)> = match written {
        Ok(out) => out
            .into_iter()
            .map(|(outcome, applied, delivery)| {
                let _entered = delivery.span.enter();
                let acked = after_commit(handler, &outcome, applied.as_ref(), &delivery);
                metrics::counter!(m::CONSUMER_MESSAGES, "service" => consumer, "consumer" => consumer,
                    "outcome" => m::outcome_label(&outcome))
                .increment(1);
                (outcome, acked)
            })
            .collect(),
        // Nothing committed: every message comes back, its dead letter (if any) recorded then.
        Err(error) => {
            tracing::warn!(%error, consumer, messages = msgs.len(), "could not apply a batch of events; will retry");
            (0..msgs.len()).map(|_| (Outcome::Retry(format!("could not apply the batch: {error}")), true)).collect()
        }
    };

    let mut outcomes = Vec::with_capacity(results.len());
    for (msg, (outcome, ack)) in msgs.into_iter().zip(results) {
        let deliveries = msg.info().map_or(1, |i| i.delivered);
        let kind = match &outcome {
            Outcome::Applied | Outcome::Duplicate => AckKind::Ack,
            Outcome::DeadLettered(_) => AckKind::Term,
            Outcome::Retry(_) | Outcome::NotYet(_) => AckKind::Nak(Some(retry_delay(deliveries))),
        };
        if ack && let Err(error) = msg.ack_with(kind).await {
            // The effect is committed; a redelivery will find the message id and be skipped.
            tracing::warn!(%error, consumer, "could not acknowledge message");
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// Runs `prepare` for every event of the batch. Messages of distinct keys (orders) are prepared
/// at once; if two share a key they are prepared one after the other, in delivery order.
async fn prepare_all(
    db: &Db,
    handler: &Arc<dyn Handler>,
    decoded: &[Result<Envelope, String>],
    deliveries: &[Delivery],
) -> Vec<Result<Option<Effect>, HandlerError>> {
    use tracing::Instrument as _;
    let prepare = |(d, delivery): (&Result<Envelope, String>, &Delivery)| {
        let handler = handler.clone();
        let envelope = d.as_ref().ok().cloned();
        let (ctx, span) = (delivery.trace, delivery.span.clone());
        let prepared = async move {
            match envelope {
                Some(envelope) => handler.prepare(db, &envelope).await,
                None => Ok(None),
            }
        };
        trace::scope(ctx, prepared).instrument(span)
    };
    let keys: Vec<String> = decoded.iter().filter_map(|d| d.as_ref().ok()).map(|e| e.event.key()).collect();
    let distinct = keys.iter().collect::<std::collections::HashSet<_>>().len() == keys.len();
    if distinct {
        futures_util::future::join_all(decoded.iter().zip(deliveries).map(prepare)).await
    } else {
        let mut out = Vec::with_capacity(decoded.len());
        for d in decoded.iter().zip(deliveries) {
            out.push(prepare(d).await);
        }
        out
    }
}

/// What is done once the batch committed, for one message: counters, logs, the handler's
/// [`Handler::committed`], and the after-commit failpoints. Returns whether to acknowledge it.
fn after_commit(handler: &Arc<dyn Handler>, outcome: &Outcome, applied: Option<&Envelope>, d: &Delivery) -> bool {
    let consumer = handler.name();
    match (outcome, applied) {
        (Outcome::Duplicate, _) => {
            DUPLICATES.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(consumer, msg.id = d.msg_id.as_deref(), "duplicate message skipped");
        }
        (Outcome::DeadLettered(reason), _) => {
            DEAD_LETTERED.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::DEAD_LETTERS, "service" => consumer, "consumer" => consumer).increment(1);
            tracing::error!(
                consumer,
                subject = d.subject,
                msg.id = d.msg_id.as_deref(),
                stream.seq = d.stream_seq,
                reason,
                "message dead-lettered"
            );
        }
        (Outcome::Applied, Some(envelope)) => {
            handler.committed(envelope);
            let compensation = matches!(envelope.event.kind(), EventType::OrderFailed | EventType::OrderExpired);
            let point = if compensation { faults::COMPENSATION_AFTER_COMMIT } else { faults::CONSUMER_AFTER_COMMIT };
            if faults::fire(consumer, point) {
                // As if the process died between the commit and the ack: no ack, so the broker
                // delivers the message again after the ack wait.
                return false;
            }
        }
        _ => {}
    }
    true
}

/// Applies one decoded event exactly once for the handler's consumer: dedupe row, handler effect
/// and follow-up outbox rows in one transaction. Neither acks nor records dead letters:
/// [`process_batch`] does that. Used where events come from elsewhere than a live consumer
/// (svc-settlement's rebuild).
///
/// An event of a type the handler does not declare is dead-lettered before anything is written,
/// so that replaying it once the handler learnt the type applies it.
pub async fn apply(db: &Db, handler: Arc<dyn Handler>, envelope: Envelope) -> Outcome {
    let consumer = handler.name();
    if !handler.consumes().contains(&envelope.event.kind()) {
        return Outcome::DeadLettered(unhandled(consumer, &envelope));
    }
    let effect = match handler.prepare(db, &envelope).await {
        Ok(effect) => effect,
        Err(error) => return failed(error, consumer, &envelope),
    };
    let after = handler.clone();
    let event = envelope.clone();
    match db.write(move |tx| apply_in(tx, &*handler, &envelope, effect)).await {
        Ok(Outcome::Applied) => {
            after.committed(&event);
            Outcome::Applied
        }
        Ok(Outcome::Duplicate) => {
            DUPLICATES.fetch_add(1, Ordering::Relaxed);
            Outcome::Duplicate
        }
        Ok(other) => other,
        Err(error) => failed(error, consumer, &event),
    }
}

/// Inside the caller's transaction: the dedupe row, then the effect. `Duplicate` when the
/// message id was applied before (nothing else is written).
fn apply_in(
    tx: &Transaction<'_>,
    handler: &dyn Handler,
    envelope: &Envelope,
    effect: Option<Effect>,
) -> Result<Outcome, HandlerError> {
    let consumer = handler.name();
    let fresh = tx
        .prepare_cached(
            "INSERT INTO processed (consumer, message_id, processed_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![consumer, envelope.id.to_string(), now_ms()])?
        == 1;
    if !fresh {
        return Ok(Outcome::Duplicate);
    }
    match effect {
        Some(effect) => effect(tx)?,
        None => handler.handle(tx, envelope)?,
    }
    if faults::fire(consumer, faults::CONSUMER_IN_TRANSACTION) {
        // As if the process died mid-transaction: nothing of it commits.
        return Err(HandlerError::Transient(anyhow::anyhow!(
            "failpoint {consumer}.{}",
            faults::CONSUMER_IN_TRANSACTION
        )));
    }
    tracing::debug!(consumer, event.id = %envelope.id, event.type = envelope.event.event_type(), "event applied");
    Ok(Outcome::Applied)
}

/// The outcome of a handler's failure, logged with the event it failed on.
fn failed(error: HandlerError, consumer: &str, envelope: &Envelope) -> Outcome {
    let (event_id, event_type) = (envelope.id, envelope.event.event_type());
    match error {
        HandlerError::Reject(reason) => Outcome::DeadLettered(reason),
        HandlerError::NotYet(reason) => {
            tracing::info!(consumer, event.id = %event_id, event.type = event_type, reason, "event not applicable yet; will retry");
            Outcome::NotYet(reason)
        }
        HandlerError::Transient(error) => {
            let error = format!("{error:#}");
            tracing::warn!(consumer, event.id = %event_id, event.type = event_type, error, "event failed; will retry");
            Outcome::Retry(error)
        }
    }
}

/// A `NotYet` that has waited out the consumer's patience becomes a dead letter ("gave up").
fn settle(outcome: Outcome, delivery: &Delivery, patience: i64) -> Outcome {
    match outcome {
        Outcome::NotYet(reason) if delivery.deliveries >= patience => {
            Outcome::DeadLettered(format!("gave up after {} attempts: {reason}", delivery.deliveries))
        }
        other => other,
    }
}

/// Records `delivery` as a dead letter of `consumer`, inside the batch's transaction: the `Term`
/// that ends its deliveries is only sent once this row committed, so no message is ever lost
/// silently (if the row cannot be written, the whole batch is retried).
fn insert_dead_letter(tx: &Transaction<'_>, consumer: &str, d: &Delivery, reason: &str) -> Result<(), DbError> {
    tx.prepare_cached(
        "INSERT INTO dead_letter (consumer, subject, message_id, stream_seq, deliveries, reason, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        consumer,
        d.subject,
        d.msg_id,
        d.stream_seq as i64,
        d.deliveries,
        reason,
        &d.payload[..],
        now_ms()
    ])?;
    Ok(())
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
