//! The plumbing against a real nats-server: the outbox relay and the idempotent consumer keep
//! their promises through outages, crashes, duplicates and poison messages.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{PullConsumer, pull},
    message::PublishMessage,
};
use common::{
    Envelope, Event, EventType, Role,
    bus::{self, ConsumerSpec},
    consumer::{self, Handler, HandlerError, Outcome, handler_fn},
    db::{Db, DbError},
    event::UserRegistered,
    harness::{NatsServer, eventually},
    outbox::{self, Relay},
};
use futures_util::StreamExt;
use rusqlite::Transaction;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);
/// A table the test handler writes one row to per applied event: the observable "effect".
const EFFECTS: &[&str] = &["CREATE TABLE effects (event_id TEXT NOT NULL) STRICT;"];

struct Fixture {
    nats: NatsServer,
    _dir: tempfile::TempDir,
    db: Db,
    js: jetstream::Context,
    stop: CancellationToken,
}

impl Fixture {
    async fn new() -> Self {
        let nats = NatsServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("svc.db"), EFFECTS).await.unwrap();
        let js = jetstream::new(bus::connect(&nats.url(), "plumbing-test", &nats.operator()).await.unwrap());
        bus::ensure_stream(&js, 1).await.unwrap();
        Fixture { nats, _dir: dir, db, js, stop: CancellationToken::new() }
    }

    /// Commits an event through the outbox, as a service would.
    async fn commit_event(&self) -> Envelope {
        let env = registered();
        let row = env.clone();
        self.db.write(move |tx| outbox::append(tx, &row)).await.unwrap();
        env
    }

    fn start_relay(&self) {
        tokio::spawn(Relay::new("plumbing", self.db.clone(), self.js.clone()).run(self.stop.clone()));
    }

    fn start_consumer(&self, handler: impl Handler) {
        self.start_tuned_consumer(handler, |_| {});
    }

    /// Starts `handler`'s consumer with its spec changed by `tune` (shorter waits, fewer tries).
    fn start_tuned_consumer(&self, handler: impl Handler, tune: impl FnOnce(&mut ConsumerSpec)) {
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let mut spec = ConsumerSpec::of(&*handler);
        tune(&mut spec);
        tokio::spawn(consumer::run(
            self.js.clone(),
            spec,
            self.db.clone(),
            handler.clone(),
            consumer::Attached::new(handler.name(), common::bus::STREAM, handler.name()),
            self.stop.clone(),
        ));
    }

    async fn count(&self, sql: &'static str) -> i64 {
        self.db.read(move |c| c.query_row(sql, [], |r| r.get(0))).await.unwrap()
    }

    async fn effects(&self) -> i64 {
        self.count("SELECT count(*) FROM effects").await
    }

    async fn unpublished(&self) -> i64 {
        self.count("SELECT count(*) FROM outbox WHERE published_at IS NULL").await
    }

    /// When `env`'s outbox row was marked published.
    async fn published_at(&self, env: &Envelope) -> Option<i64> {
        let id = env.id.to_string();
        self.db
            .read(move |c| c.query_row("SELECT published_at FROM outbox WHERE id = ?1", [id], |r| r.get(0)))
            .await
            .unwrap()
    }

    async fn stream_messages(&self) -> u64 {
        self.js.get_stream(bus::STREAM).await.unwrap().info().await.unwrap().state.messages
    }

    /// Publishes raw bytes, as someone with the `nats` CLI would.
    async fn publish_raw(&self, subject: &str, payload: Vec<u8>, msg_id: Option<&str>) -> bool {
        let mut msg = PublishMessage::build().payload(payload.into());
        if let Some(id) = msg_id {
            msg = msg.message_id(id);
        }
        self.js.send_publish(subject.to_owned(), msg).await.unwrap().await.unwrap().duplicate
    }

    /// Waits until the durable consumer has nothing pending and nothing unacknowledged.
    async fn drained(&self, durable: &str) {
        let js = self.js.clone();
        eventually(WAIT, || {
            let js = js.clone();
            async move {
                let mut c: PullConsumer = js.get_consumer_from_stream(durable, bus::STREAM).await.ok()?;
                let info = c.info().await.ok()?;
                (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
            }
        })
        .await
        .expect("consumer did not drain");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn registered() -> Envelope {
    Envelope::new(
        "plumbing-test",
        Event::UserRegistered(UserRegistered {
            user_id: Uuid::now_v7(),
            email: "a@example.com".into(),
            name: "A".into(),
            role: Role::Customer,
        }),
    )
}

/// Records one effect row per applied event.
fn record_effect(tx: &Transaction<'_>, env: &Envelope) -> Result<(), HandlerError> {
    tx.execute("INSERT INTO effects (event_id) VALUES (?1)", [env.id.to_string()])?;
    Ok(())
}

/// The events the test handlers consume.
const USERS: &[EventType] = &[EventType::UserRegistered];

/// [`record_effect`] as the handler of the durable consumer `name`.
fn recorder(name: &'static str) -> impl Handler {
    handler_fn(name, USERS, record_effect)
}

#[tokio::test]
async fn an_event_committed_while_nats_is_down_is_published_once_it_returns() {
    let fx = Fixture::new().await;
    fx.nats.stop();
    let env = fx.commit_event().await;

    // The relay tries, fails, keeps the row.
    let relay = Relay::new("plumbing", fx.db.clone(), fx.js.clone());
    assert!(relay.publish_pending().await.is_err(), "publishing without a server must fail");
    assert_eq!(fx.unpublished().await, 1);

    fx.nats.restart().await;
    fx.start_relay();
    eventually(WAIT, || async { (fx.unpublished().await == 0).then_some(()) }).await.expect("row published");

    // Exactly one copy in the stream, even if the client also flushed its buffered attempt.
    assert_eq!(fx.stream_messages().await, 1);
    let msg =
        fx.js.get_stream(bus::STREAM).await.unwrap().get_last_raw_message_by_subject(&env.subject()).await.unwrap();
    assert_eq!(Envelope::decode(&msg.subject, &msg.payload).unwrap(), env);
    assert_eq!(msg.headers.get("Nats-Msg-Id").map(|v| v.to_string()), Some(env.id.to_string()));
}

#[tokio::test]
async fn a_relay_that_crashes_between_ack_and_mark_causes_no_second_effect() {
    let fx = Fixture::new().await;
    fx.commit_event().await;
    let relay = Relay::new("plumbing", fx.db.clone(), fx.js.clone());
    assert_eq!(relay.publish_pending().await.unwrap(), 1);

    // The crash: JetStream acked, but the mark never committed.
    fx.db.write(|tx| tx.execute("UPDATE outbox SET published_at = NULL", []).map_err(DbError::from)).await.unwrap();
    assert_eq!(relay.publish_pending().await.unwrap(), 1, "the restarted relay publishes the row again");
    assert_eq!(fx.unpublished().await, 0);
    assert_eq!(fx.stream_messages().await, 1, "JetStream dropped the re-publish as a duplicate");

    fx.start_consumer(recorder("crash-test"));
    fx.drained("crash-test").await;
    assert_eq!(fx.effects().await, 1);
}

#[tokio::test]
async fn a_republished_message_id_changes_nothing_even_past_the_dedupe_window() {
    let fx = Fixture::new().await;
    fx.start_consumer(recorder("republish-test"));
    let env = registered();

    assert!(!fx.publish_raw(&env.subject(), env.to_json(), Some(&env.id.to_string())).await);
    assert!(fx.publish_raw(&env.subject(), env.to_json(), Some(&env.id.to_string())).await, "in-window duplicate");
    // Without the header JetStream cannot dedupe, as after the window: the processed table must.
    assert!(!fx.publish_raw(&env.subject(), env.to_json(), None).await);
    assert_eq!(fx.stream_messages().await, 2);

    fx.drained("republish-test").await;
    assert_eq!(fx.effects().await, 1);
    assert_eq!(fx.count("SELECT count(*) FROM processed").await, 1);
}

#[tokio::test]
async fn a_redelivery_after_a_crash_before_the_ack_changes_nothing() {
    let fx = Fixture::new().await;
    let env = registered();
    fx.publish_raw(&env.subject(), env.to_json(), Some(&env.id.to_string())).await;

    // Take the message, commit its effect, then "crash" before acking.
    let handler: Arc<dyn Handler> = Arc::new(recorder("redelivery-test"));
    let mut crash_spec = ConsumerSpec::of(&*handler);
    crash_spec.ack_wait = Duration::from_secs(1);
    let stream = fx.js.get_stream(bus::STREAM).await.unwrap();
    let consumer: PullConsumer = stream.create_consumer(crash_spec.config()).await.unwrap();
    let mut batch = consumer.fetch().max_messages(1).messages().await.unwrap();
    let msg = batch.next().await.unwrap().unwrap();
    let decoded = Envelope::decode(&msg.subject, &msg.payload).unwrap();
    assert_eq!(consumer::apply(&fx.db, handler, decoded).await, Outcome::Applied);
    drop(msg);

    // After ack_wait the server redelivers; the consumer finds the id and only acks.
    fx.start_tuned_consumer(recorder("redelivery-test"), |spec| spec.ack_wait = Duration::from_secs(1));
    fx.drained("redelivery-test").await;
    assert_eq!(fx.effects().await, 1);
}

#[tokio::test]
async fn a_malformed_message_is_dead_lettered_and_valid_ones_behind_it_still_flow() {
    let fx = Fixture::new().await;
    let before = registered();
    let after = registered();
    fx.publish_raw(&before.subject(), before.to_json(), None).await;
    fx.publish_raw("user.registered.garbage", b"{not json".to_vec(), Some("poison-1")).await;
    let mut wrong_subject = registered();
    wrong_subject.correlation_id = "x".into();
    fx.publish_raw("user.registered.someone-else", wrong_subject.to_json(), None).await;
    fx.publish_raw(&after.subject(), after.to_json(), None).await;

    fx.start_consumer(recorder("poison-test"));
    fx.drained("poison-test").await;

    assert_eq!(fx.effects().await, 2);
    let rows: Vec<(String, Option<String>, String)> = fx
        .db
        .read(|c| {
            let mut stmt = c.prepare("SELECT subject, message_id, reason FROM dead_letter ORDER BY seq")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_deref()), ("user.registered.garbage", Some("poison-1")));
    assert!(rows[0].2.starts_with("malformed event"), "{}", rows[0].2);
    assert!(rows[1].2.contains("belongs on user.registered."), "{}", rows[1].2);
}

#[tokio::test]
async fn a_rejected_event_is_dead_lettered_without_its_effect() {
    let fx = Fixture::new().await;
    let env = registered();
    fx.publish_raw(&env.subject(), env.to_json(), None).await;
    fx.start_consumer(handler_fn("reject-test", USERS, |tx: &Transaction<'_>, env: &Envelope| {
        record_effect(tx, env)?; // rolled back with the rejection
        Err(HandlerError::Reject("quantity must be positive".into()))
    }));
    fx.drained("reject-test").await;
    assert_eq!(fx.effects().await, 0);
    assert_eq!(fx.count("SELECT count(*) FROM dead_letter WHERE reason = 'quantity must be positive'").await, 1);
}

#[tokio::test]
async fn an_event_the_handler_does_not_declare_is_dead_lettered_before_any_effect() {
    let fx = Fixture::new().await;
    let orders_only = handler_fn("orders-only", &[EventType::OrderCreated], record_effect);
    let spec = ConsumerSpec::of(&orders_only);
    assert_eq!(spec.filter_subjects(), ["order.created.*"], "the filter is the declared events");

    // Past the filter (a replay, a filter widened by hand), a user.registered reaches it anyway.
    let outcome = consumer::apply(&fx.db, Arc::new(orders_only), registered()).await;

    assert_eq!(outcome, Outcome::DeadLettered("orders-only does not handle user.registered".into()));
    assert_eq!(fx.effects().await, 0);
    assert_eq!(fx.count("SELECT count(*) FROM processed").await, 0, "a replay after a fix applies it");
}

#[tokio::test]
async fn a_durable_whose_handler_learnt_an_event_takes_the_new_filter_at_start() {
    let fx = Fixture::new().await;
    let stream = fx.js.get_stream(bus::STREAM).await.unwrap();
    let before = ConsumerSpec::of(&handler_fn("learner", &[EventType::OrderCreated], record_effect));
    let after =
        ConsumerSpec::of(&handler_fn("learner", &[EventType::OrderCreated, EventType::OrderPaid], record_effect));

    before.ensure(&stream).await.expect("the first start creates the durable");
    after.ensure(&stream).await.expect("a later start updates it, as an upgraded service does");

    let mut consumer: PullConsumer = fx.js.get_consumer_from_stream("learner", bus::STREAM).await.unwrap();
    let filters = consumer.info().await.unwrap().config.filter_subjects.clone();
    assert_eq!(filters, ["order.created.*", "order.paid.*"]);
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_applied_once() {
    let fx = Fixture::new().await;
    let env = registered();
    fx.publish_raw(&env.subject(), env.to_json(), None).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    fx.start_consumer(handler_fn("flaky-test", USERS, move |tx: &Transaction<'_>, env: &Envelope| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(HandlerError::Transient(anyhow::anyhow!("database hiccup")));
        }
        record_effect(tx, env)
    }));
    fx.drained("flaky-test").await;
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(fx.effects().await, 1);
    assert_eq!(fx.count("SELECT count(*) FROM dead_letter").await, 0);
}

#[tokio::test]
async fn an_event_that_never_becomes_applicable_is_dead_lettered_once_its_patience_runs_out() {
    let fx = Fixture::new().await;
    let env = registered();
    fx.publish_raw(&env.subject(), env.to_json(), None).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let orphan = handler_fn("orphan-test", USERS, move |_: &Transaction<'_>, _: &Envelope| {
        seen.fetch_add(1, Ordering::SeqCst);
        Err(HandlerError::NotYet("its order never came".into()))
    });
    fx.start_tuned_consumer(orphan, |spec| spec.patience = 2);
    fx.drained("orphan-test").await;
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(
        fx.count("SELECT count(*) FROM dead_letter WHERE reason LIKE 'gave up after 2 attempts: %never came%'").await,
        1
    );
}

/// A database that stays locked, a disk that stays full: however many deliveries it takes, the
/// event is applied once the fault passes, and never dead-lettered.
#[tokio::test]
async fn a_transient_failure_is_retried_past_any_delivery_count_until_it_passes() {
    let fx = Fixture::new().await;
    let env = registered();
    fx.publish_raw(&env.subject(), env.to_json(), Some(&env.id.to_string())).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    let flaky = handler_fn("flaky-test", USERS, move |tx: &Transaction<'_>, env: &Envelope| {
        // Fails on the first three deliveries: more than the patience an orphan gets.
        if seen.fetch_add(1, Ordering::SeqCst) < 3 {
            return Err(HandlerError::Transient(anyhow::anyhow!("database is locked")));
        }
        record_effect(tx, env)
    });
    fx.start_tuned_consumer(flaky, |spec| spec.patience = 2);
    eventually(WAIT, || async { (fx.effects().await == 1).then_some(()) }).await.expect("applied in the end");
    fx.drained("flaky-test").await;
    assert_eq!(attempts.load(Ordering::SeqCst), 4, "three failed deliveries, then the one that applied it");
    assert_eq!(fx.count("SELECT count(*) FROM dead_letter").await, 0);
}

#[tokio::test]
async fn the_relay_publishes_in_commit_order() {
    let fx = Fixture::new().await;
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(fx.commit_event().await.id);
    }
    fx.start_relay();
    eventually(WAIT, || async { (fx.unpublished().await == 0).then_some(()) }).await.expect("all published");

    let stream = fx.js.get_stream(bus::STREAM).await.unwrap();
    let mut published = Vec::new();
    for seq in 1..=300 {
        let msg = stream.get_raw_message(seq).await.unwrap();
        published.push(Envelope::decode(&msg.subject, &msg.payload).unwrap().id);
    }
    assert_eq!(published, ids);
}

#[tokio::test]
async fn the_relay_wakes_on_commit_without_waiting_for_its_tick() {
    let fx = Fixture::new().await;
    // With an hour-long tick only the commit notification can wake the relay in time.
    let relay = Relay::new("plumbing", fx.db.clone(), fx.js.clone()).with_poll_tick(Duration::from_secs(3600));
    tokio::spawn(relay.run(fx.stop.clone()));
    for _ in 0..3 {
        fx.commit_event().await;
        eventually(WAIT, || async { (fx.unpublished().await == 0).then_some(()) }).await.expect("woken by the commit");
    }
    assert_eq!(fx.stream_messages().await, 3);
}

/// Durables created before the server stopped counting deliveries (`max_deliver` 6) lose the
/// limit at their next start: the server must never drop a message the consumer still retries.
#[tokio::test]
async fn a_durable_created_with_a_delivery_limit_loses_it_at_start() {
    let fx = Fixture::new().await;
    let stream = fx.js.get_stream(bus::STREAM).await.unwrap();
    let spec = ConsumerSpec::of(&recorder("limited"));
    stream.create_consumer(pull::Config { max_deliver: 6, ..spec.config() }).await.expect("an old durable");

    spec.ensure(&stream).await.expect("a later start updates it");

    let mut consumer: PullConsumer = fx.js.get_consumer_from_stream("limited", bus::STREAM).await.unwrap();
    assert_eq!(consumer.info().await.unwrap().config.max_deliver, -1);
}

/// A row larger than the server's max_payload can never be published: it is set aside, visibly,
/// and the rows behind it are published in order instead of waiting behind it for ever.
#[tokio::test]
async fn an_unpublishable_outbox_row_is_set_aside_and_the_rows_behind_it_go_out() {
    let fx = Fixture::new().await;
    let huge = Envelope::new(
        "plumbing-test",
        Event::UserRegistered(UserRegistered {
            user_id: Uuid::now_v7(),
            email: "huge@example.com".into(),
            name: "x".repeat(2 * 1024 * 1024),
            role: Role::Customer,
        }),
    );
    let row = huge.clone();
    fx.db.write(move |tx| outbox::append(tx, &row)).await.unwrap();
    let behind = fx.commit_event().await;
    fx.start_relay();

    eventually(WAIT, || async { (fx.unpublished().await == 0).then_some(()) }).await.expect("the outbox drains");
    assert_eq!(fx.stream_messages().await, 1, "only the row behind it reached the stream");
    let (consumer, message_id, reason): (String, String, String) = fx
        .db
        .read(|c| {
            c.query_row("SELECT consumer, message_id, reason FROM dead_letter", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
        })
        .await
        .unwrap();
    assert_eq!((consumer.as_str(), message_id), (outbox::SET_ASIDE, huge.id.to_string()));
    assert!(reason.contains("max payload"), "{reason}");
    assert_eq!(
        fx.count("SELECT count(*) FROM outbox").await,
        1,
        "the set-aside row left the outbox; {} stayed",
        behind.id
    );
}

/// What an OS crash of the broker's machine does, made certain: acknowledged messages gone from
/// the stream, and from the broker's duplicate window once it restarts. On its next connection,
/// before publishing anything over it, the relay re-sends what it published in its re-send window
/// before its newest publish, under the same ids: the lost messages are stored again. Older rows
/// and rows set aside are not sent again, and without another connection nothing is.
#[tokio::test]
async fn on_a_new_connection_the_relay_resends_its_newest_rows_which_the_broker_lost() {
    let fx = Fixture::new().await;
    let huge = Envelope::new(
        "plumbing-test",
        Event::UserRegistered(UserRegistered {
            user_id: Uuid::now_v7(),
            email: "huge@example.com".into(),
            name: "x".repeat(2 * 1024 * 1024),
            role: Role::Customer,
        }),
    );
    let old = fx.commit_event().await;
    let row = huge.clone();
    fx.db.write(move |tx| outbox::append(tx, &row)).await.unwrap();
    let lost = [fx.commit_event().await, fx.commit_event().await];
    let relay = Relay::new("plumbing", fx.db.clone(), fx.js.clone()).with_resend_window(Duration::from_secs(5));
    assert_eq!(relay.publish_pending().await.unwrap(), 3, "the huge row is set aside");
    // `old` was published a minute before the others, long before any unsynced window.
    let old_id = old.id.to_string();
    let backdate = move |tx: &Transaction<'_>| {
        tx.execute("UPDATE outbox SET published_at = published_at - 60000 WHERE id = ?1", [&old_id])
    };
    fx.db.write(move |tx| backdate(tx).map_err(DbError::from)).await.unwrap();
    let old_published = fx.published_at(&old).await;

    let stream = fx.js.get_stream(bus::STREAM).await.unwrap();
    let mut lost_seqs = Vec::new();
    for env in &lost {
        let seq = stream.get_last_raw_message_by_subject(&env.subject()).await.unwrap().sequence;
        assert!(stream.delete_message(seq).await.unwrap());
        lost_seqs.push(seq);
    }
    fx.nats.restart().await;
    let stream = fx.js.get_stream(bus::STREAM).await.unwrap();
    for env in &lost {
        assert!(stream.get_last_raw_message_by_subject(&env.subject()).await.is_err(), "lost until re-sent");
    }

    // The relay's client reconnects by itself; its first round over the new connection re-sends.
    let resent = eventually(WAIT, || async { relay.publish_pending().await.ok().filter(|n| *n > 0) });
    assert_eq!(resent.await, Some(2), "the two newest rows, not the old one nor the set-aside one");
    for (env, seq) in lost.iter().zip(lost_seqs) {
        let msg = stream.get_last_raw_message_by_subject(&env.subject()).await.expect("stored again");
        assert!(msg.sequence > seq, "a new copy, not the deleted one");
        assert_eq!(msg.headers.get("Nats-Msg-Id").map(|v| v.to_string()), Some(env.id.to_string()));
    }
    assert_eq!(fx.published_at(&old).await, old_published, "the old row was not sent again");
    assert_eq!(fx.stream_messages().await, 3);
    assert_eq!(fx.count("SELECT count(*) FROM dead_letter").await, 1);
    assert_eq!(relay.publish_pending().await.unwrap(), 0, "one re-send per connection");

    // A relay that starts (a service restarted with the broker) re-sends on its first connection
    // too; JetStream, which holds these, drops them as duplicates.
    let restarted = Relay::new("plumbing", fx.db.clone(), fx.js.clone()).with_resend_window(Duration::from_secs(5));
    assert_eq!(restarted.publish_pending().await.unwrap(), 2);
    assert_eq!(fx.stream_messages().await, 3);
}

/// Re-sending off (`OUTBOX_RESEND_SECS=0`, for a broker that syncs before it acknowledges): a
/// message the broker lost stays lost.
#[tokio::test]
async fn with_a_zero_resend_window_the_relay_sends_nothing_again() {
    let fx = Fixture::new().await;
    let lost = fx.commit_event().await;
    let relay = Relay::new("plumbing", fx.db.clone(), fx.js.clone()).with_resend_window(Duration::ZERO);
    assert_eq!(relay.publish_pending().await.unwrap(), 1);
    let stream = fx.js.get_stream(bus::STREAM).await.unwrap();
    let seq = stream.get_last_raw_message_by_subject(&lost.subject()).await.unwrap().sequence;
    assert!(stream.delete_message(seq).await.unwrap());
    fx.nats.restart().await;

    let reconnected =
        eventually(WAIT, || async { (fx.js.client().statistics().connects.load(Ordering::Relaxed) > 1).then_some(()) });
    reconnected.await.expect("the client reconnected");
    assert_eq!(relay.publish_pending().await.unwrap(), 0);
    assert_eq!(fx.stream_messages().await, 0);
}
