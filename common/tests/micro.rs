//! The NATS services API every service answers on (`common::micro`), against a real nats-server
//! with the production permissions: discovery (`$SRV.PING`, what `nats micro ls` sends) finds all
//! five with their versions; the console's host reads any service's figures and dead letters and
//! replays through the subject's owner; another service may not ask at all.

use std::{collections::BTreeMap, time::Duration};

use common::{
    db::Db,
    harness::NatsServer,
    micro::{self, DeadLetters, Marked, Ops, OpsError, Republished, ServiceStats},
    permissions::{self, SERVICES},
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ASK: Duration = Duration::from_secs(3);

struct Services {
    dbs: BTreeMap<&'static str, Db>,
    _dir: tempfile::TempDir,
    stop: CancellationToken,
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Every service's endpoints, each on its own connection as its own NATS user, over its own
/// database; svc-payment with an extra figure like its gateway's.
async fn serve_all(nats: &NatsServer) -> Services {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let mut dbs = BTreeMap::new();
    for service in &SERVICES {
        let db = Db::open(&dir.path().join(format!("{}.db", service.name)), &[]).await.unwrap();
        let client = nats.client_as(&nats.auth(service.name)).await;
        let mut ops = Ops::default();
        if service.name == "svc-payment" {
            ops.extra("gateway", || json!({"breaker": "CLOSED"}));
        }
        tokio::spawn(micro::serve(service.name, "0.1.0", client, db.clone(), vec![], ops, stop.clone()));
        dbs.insert(service.name, db);
    }
    Services { dbs, _dir: dir, stop }
}

/// The services that answer `$SRV.PING` within `deadline`, by name, with their versions: waits
/// until all five have answered (they register in the background) or the deadline passes.
async fn discovered(client: &async_nats::Client, deadline: Duration) -> BTreeMap<String, String> {
    let until = tokio::time::Instant::now() + deadline;
    let mut found = BTreeMap::new();
    while found.len() < SERVICES.len() && tokio::time::Instant::now() < until {
        let inbox = client.new_inbox();
        let mut answers = client.subscribe(inbox.clone()).await.unwrap();
        client.publish_with_reply("$SRV.PING", inbox, "".into()).await.unwrap();
        let round = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(answer)) = tokio::time::timeout_at(round, answers.next()).await {
            let pong: Value = serde_json::from_slice(&answer.payload).unwrap();
            assert_eq!(pong["type"], "io.nats.micro.v1.ping_response", "{pong}");
            found.insert(pong["name"].as_str().unwrap().to_owned(), pong["version"].as_str().unwrap().to_owned());
        }
    }
    found
}

#[tokio::test]
async fn nats_micro_ls_lists_the_five_services_with_their_versions() {
    let nats = NatsServer::start().await;
    let _services = serve_all(&nats).await;
    let operator = nats.client().await;
    let found = discovered(&operator, Duration::from_secs(10)).await;
    let names: Vec<&str> = found.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
    expected.sort();
    assert_eq!(names, expected);
    assert!(found.values().all(|v| v == "0.1.0"), "{found:?}");
}

#[tokio::test]
async fn the_console_reads_every_service_and_no_other_service_may_ask() {
    let nats = NatsServer::start().await;
    let services = serve_all(&nats).await;
    discovered(&nats.client().await, Duration::from_secs(10)).await;
    let console = nats.client_as(&nats.auth(permissions::CONSOLE)).await;
    for service in &SERVICES {
        let stats: ServiceStats = micro::request(&console, service.name, "stats", &(), ASK).await.unwrap();
        assert_eq!(stats.service, service.name);
        assert_eq!(stats.outbox.unpublished, 0);
    }
    let payment: ServiceStats = micro::request(&console, "svc-payment", "stats", &(), ASK).await.unwrap();
    assert_eq!(payment.extras["gateway"]["breaker"], "CLOSED");
    let product: ServiceStats = micro::request(&console, "svc-product", "stats", &(), ASK).await.unwrap();
    assert!(product.extras.is_empty());

    // svc-payment may not publish on ops.>: its request never reaches svc-product.
    let other = nats.client_as(&nats.auth("svc-payment")).await;
    let refused = micro::request::<ServiceStats>(&other, "svc-product", "stats", &(), Duration::from_secs(2)).await;
    assert!(refused.is_err(), "svc-payment read svc-product's figures: {refused:?}");
    drop(services);
}

#[tokio::test]
async fn a_replay_is_published_by_the_owner_of_its_subject_and_marks_every_copy() {
    let nats = NatsServer::start().await;
    let services = serve_all(&nats).await;
    discovered(&nats.client().await, Duration::from_secs(10)).await;
    let console = nats.client_as(&nats.auth(permissions::CONSOLE)).await;
    for (service, consumer) in [("svc-product", "svc-product"), ("svc-order", "svc-order")] {
        services.dbs[service]
            .write(move |tx| -> Result<usize, common::db::DbError> {
                Ok(tx.execute(
                    "INSERT INTO dead_letter (consumer, subject, message_id, stream_seq, deliveries, reason, payload,
                                              created_at) VALUES (?1, 'order.created.1', 'm-1', 7, 1, 'malformed', x'7b7d', 1000)",
                    [consumer],
                )?)
            })
            .await
            .unwrap();
    }
    let listed: DeadLetters = micro::request(&console, "svc-product", "dead-letters", &json!({}), ASK).await.unwrap();
    assert_eq!((listed.count.total, listed.count.unreplayed, listed.items.len()), (1, 1, 1));
    assert_eq!(listed.items[0].payload, "{}");
    let one: DeadLetters =
        micro::request(&console, "svc-product", "dead-letters", &json!({"seq": 2}), ASK).await.unwrap();
    assert!(one.items.is_empty(), "there is no #2");

    // Only the owner of `order.*` publishes it, and only JSON.
    let republish = |service: &'static str, subject: &'static str, payload: &'static str| {
        let console = console.clone();
        async move {
            micro::request::<Republished>(
                &console,
                service,
                "republish",
                &json!({"subject": subject, "payload": payload}),
                ASK,
            )
            .await
        }
    };
    let not_owner = republish("svc-product", "order.created.1", "{}").await.unwrap_err();
    assert_eq!((not_owner.status, not_owner.code.as_str()), (403, "NOT_OWNER"));
    let not_json = republish("svc-order", "order.created.1", "{nope").await.unwrap_err();
    assert_eq!((not_json.status, not_json.code.as_str()), (422, "INVALID_PAYLOAD"));
    let wildcard = republish("svc-order", "order.>", "{}").await.unwrap_err();
    assert_eq!(wildcard.code, "INVALID_SUBJECT");
    let done = republish("svc-order", "order.created.1", "{\"fixed\":true}").await.unwrap();
    let row: (String, Vec<u8>) = services.dbs["svc-order"]
        .read(move |c| {
            c.query_row("SELECT subject, payload FROM outbox WHERE id = ?1", [&done.message_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .await
        .unwrap();
    assert_eq!(row, ("order.created.1".to_owned(), b"{\"fixed\":true}".to_vec()));

    for service in ["svc-product", "svc-order"] {
        let marked: Marked =
            micro::request(&console, service, "replayed", &json!({"messageId": "m-1"}), ASK).await.unwrap();
        assert_eq!(marked.marked, [1], "{service}");
        let again: Marked =
            micro::request(&console, service, "replayed", &json!({"messageId": "m-1"}), ASK).await.unwrap();
        assert!(again.marked.is_empty(), "{service} marked a replayed letter twice");
    }
    let after: DeadLetters = micro::request(&console, "svc-product", "dead-letters", &json!({}), ASK).await.unwrap();
    assert_eq!(after.count.unreplayed, 0);
    assert!(after.items[0].replayed_at.is_some());

    let bad: OpsError =
        micro::request::<Marked>(&console, "svc-order", "replayed", &json!({"what": 1}), ASK).await.unwrap_err();
    assert_eq!(bad.status, 400);
}
