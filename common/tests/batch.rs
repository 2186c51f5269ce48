//! One transaction for a batch of messages, a savepoint for each: a message the handler rejects,
//! one it cannot apply yet, one that is malformed and one seen before each get their own outcome,
//! and none of them undoes or blocks the effects of the others.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer::PullConsumer, message::PublishMessage};
use common::{
    Envelope, Event, Role,
    bus::{self, ConsumerSpec},
    consumer::{self, Handler, HandlerError, Outcome, handler_fn},
    db::Db,
    event::{EventType, UserRegistered},
    harness::{NatsServer, eventually},
};
use futures_util::StreamExt;
use uuid::Uuid;

const EFFECTS: &[&str] = &["CREATE TABLE effects (event_id TEXT NOT NULL) STRICT;"];

fn registered(name: &str) -> Envelope {
    Envelope::new(
        "batch-test",
        Event::UserRegistered(UserRegistered {
            user_id: Uuid::now_v7(),
            email: "a@example.com".into(),
            name: name.into(),
            role: Role::Customer,
        }),
    )
}

#[tokio::test]
async fn each_message_of_a_batch_gets_its_own_outcome_and_keeps_its_own_effect() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("svc.db"), EFFECTS).await.unwrap();
    let js = jetstream::new(bus::connect(&nats.url(), "batch-test", &nats.operator()).await.unwrap());
    let stream = bus::ensure_stream(&js, 1).await.unwrap();

    // Writes its effect first, then decides by the user's name: so a rejected or postponed
    // message proves its savepoint was rolled back.
    let handler: Arc<dyn Handler> = Arc::new(handler_fn("batcher", &[EventType::UserRegistered], |tx, env| {
        tx.execute("INSERT INTO effects (event_id) VALUES (?1)", [env.id.to_string()])?;
        let Event::UserRegistered(e) = &env.event else { unreachable!() };
        match e.name.as_str() {
            "reject" => Err(HandlerError::Reject("rejected by the test".into())),
            "later" => Err(HandlerError::NotYet("not yet, says the test".into())),
            "flaky" => Err(HandlerError::Transient(anyhow::anyhow!("flaky, says the test"))),
            _ => Ok(()),
        }
    }));
    let mut spec = ConsumerSpec::of(&*handler);
    spec.patience = 100;

    let first = registered("fine");
    let plan = [
        ("fine", Some(first.clone())),
        ("reject", None),
        ("fine", None),
        ("malformed", None),
        ("later", None),
        ("again", Some(first.clone())), // the first event once more, under another message id
        ("flaky", None),
        ("fine", None),
    ];
    let mut good = Vec::new();
    for (name, envelope) in &plan {
        let (subject, payload) = match (name, envelope) {
            (&"malformed", _) => (format!("user.registered.{}", Uuid::now_v7()), b"{not json".to_vec()),
            (_, Some(env)) => (env.subject(), env.to_json()),
            (_, None) => {
                let env = registered(name);
                if *name == "fine" {
                    good.push(env.id.to_string());
                }
                (env.subject(), env.to_json())
            }
        };
        let msg = PublishMessage::build().payload(payload.into()).message_id(Uuid::now_v7().to_string());
        js.send_publish(subject, msg).await.unwrap().await.unwrap();
    }
    good.insert(0, first.id.to_string());

    let consumer: PullConsumer = stream.create_consumer(spec.config()).await.unwrap();
    let mut batch = Vec::new();
    let mut fetched =
        consumer.fetch().max_messages(plan.len()).expires(Duration::from_secs(5)).messages().await.unwrap();
    while let Some(msg) = fetched.next().await {
        batch.push(msg.unwrap());
        if batch.len() == plan.len() {
            break;
        }
    }
    assert_eq!(batch.len(), plan.len(), "every message is delivered in one fetch");

    let outcomes = consumer::process_batch(&db, &spec, &handler, batch).await;
    let kinds: Vec<&str> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::DeadLettered(_) => "dead-lettered",
            Outcome::Retry(_) => "retry",
            Outcome::NotYet(_) => "not yet",
        })
        .collect();
    assert_eq!(
        kinds,
        ["applied", "dead-lettered", "applied", "dead-lettered", "not yet", "duplicate", "retry", "applied"]
    );

    let (effects, dead_letters, processed): (Vec<String>, Vec<String>, i64) = db
        .read(|c| {
            let effects = c
                .prepare("SELECT event_id FROM effects ORDER BY rowid")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            let dead = c
                .prepare("SELECT reason FROM dead_letter WHERE consumer = 'batcher' ORDER BY seq")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            let processed =
                c.query_row("SELECT count(*) FROM processed WHERE consumer = 'batcher'", [], |r| r.get(0))?;
            Ok::<_, rusqlite::Error>((effects, dead, processed))
        })
        .await
        .unwrap();
    assert_eq!(effects, good, "exactly the applied messages left an effect, once each");
    assert_eq!(processed, 3, "only applied messages are recorded as processed");
    assert_eq!(dead_letters.len(), 2, "{dead_letters:?}");
    assert!(dead_letters[0].contains("rejected by the test"), "{dead_letters:?}");

    // The ones to retry come back; the others were acknowledged or terminated (acks are sent
    // asynchronously: poll until the server has them all).
    let pending = eventually(Duration::from_secs(10), || async {
        let info = stream.consumer_info("batcher").await.ok()?;
        (info.num_ack_pending == 2).then_some(())
    });
    pending.await.expect("the postponed and the flaky message wait for redelivery, the others are done");
}
