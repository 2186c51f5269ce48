//! Test harness (feature `harness`): a real `nats-server` on a free port with its own temporary
//! store, fresh data directories, an event recorder and polling helpers. Used by every crate's
//! integration tests; nothing here is a mock.

use std::{
    future::Future,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::Mutex;

use crate::{config::CommonConfig, event::Envelope};

/// A `nats-server` child process with JetStream, killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub async fn start() -> Self {
        let store = tempfile::tempdir().expect("temp dir for JetStream");
        let mut server = NatsServer { child: None, port: free_port(), store };
        server.launch().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url()).await.expect("connect to test nats-server")
    }

    /// Stops the server (SIGKILL: like a crash; JetStream keeps what it stored).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    async fn launch(&mut self) {
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server (run the tests through ./shop test, or set NATS_SERVER_BIN)");
        self.child = Some(child);
        let url = self.url();
        eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                let client = async_nats::connect(&url).await.ok()?;
                async_nats::jetstream::new(client).query_account().await.ok().map(|_| ())
            }
        })
        .await
        .expect("nats-server did not become ready within 10 s");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The nats-server binary: `NATS_SERVER_BIN` (as `./shop test` sets it), else the project-local
/// one `./shop` installs, else whatever is on `PATH`.
///
/// The checkout is the one cargo runs the test in (`CARGO_MANIFEST_DIR` at run time, the tested
/// crate one level below the root), not the one this crate was compiled in.
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return bin.into();
    }
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|crate_dir| PathBuf::from(crate_dir).join("../.tools/venv/bin/nats-server"))
        .filter(|local| local.exists())
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// A fresh data directory and the matching common config for one service under test.
pub fn common_config(nats: &NatsServer, data_dir: &tempfile::TempDir) -> CommonConfig {
    CommonConfig { nats_url: nats.url(), data_dir: data_dir.path().to_path_buf() }
}

/// Polls `probe` until it returns `Some` or `deadline` passes. The way tests wait: never a sleep.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Records every domain event stored in the stream, in stream order, read through an ordered
/// JetStream consumer: what JetStream dropped as a duplicate never shows, and an envelope stored
/// twice (re-published without its `Nats-Msg-Id`) is recorded once, as consumers apply it once.
#[derive(Debug, Clone)]
pub struct EventLog {
    inner: Arc<Mutex<Recorded>>,
}

#[derive(Debug, Default)]
struct Recorded {
    events: Vec<(String, Envelope)>,
    /// Stream sequence of the last message read.
    last_seq: u64,
}

impl EventLog {
    pub async fn record(client: &async_nats::Client) -> Self {
        use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
        let js = async_nats::jetstream::new(client.clone());
        let stream = crate::bus::ensure_stream(&js).await.expect("stream");
        let consumer = stream
            .create_consumer(OrderedConfig { deliver_policy: DeliverPolicy::All, ..Default::default() })
            .await
            .expect("ordered consumer");
        let mut messages = consumer.messages().await.expect("ordered consumer messages");
        let inner: Arc<Mutex<Recorded>> = Arc::default();
        let recorded = inner.clone();
        tokio::spawn(async move {
            while let Some(msg) = messages.next().await {
                let Ok(msg) = msg else { continue };
                let seq = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
                let mut rec = recorded.lock().await;
                rec.last_seq = rec.last_seq.max(seq);
                if let Ok(env) = Envelope::decode(&msg.subject, &msg.payload)
                    && !rec.events.iter().any(|(_, e)| e.id == env.id)
                {
                    rec.events.push((msg.subject.to_string(), env));
                }
            }
        });
        EventLog { inner }
    }

    pub async fn all(&self) -> Vec<(String, Envelope)> {
        self.inner.lock().await.events.clone()
    }

    /// The events of one saga (by correlation id), in stream order.
    pub async fn saga(&self, correlation_id: &str) -> Vec<Envelope> {
        let rec = self.inner.lock().await;
        rec.events.iter().filter(|(_, e)| e.correlation_id == correlation_id).map(|(_, e)| e.clone()).collect()
    }

    /// Waits until an event matching `pred` has been seen.
    pub async fn wait_for(&self, deadline: Duration, pred: impl Fn(&Envelope) -> bool) -> Option<Envelope> {
        eventually(deadline, || async {
            self.inner.lock().await.events.iter().map(|(_, e)| e).find(|e| pred(e)).cloned()
        })
        .await
    }

    /// The stream sequence of the last message read.
    pub async fn last_seq(&self) -> u64 {
        self.inner.lock().await.last_seq
    }
}

/// Waits until the whole system is quiet: no outbox (the SQLite files `databases`) holds an
/// unpublished row, every durable consumer on the stream has acknowledged everything, and `log`
/// has read the stream to its end. After that nothing more can happen by itself, so a snapshot
/// taken then is complete. Returns `false` if that did not happen within `deadline`.
pub async fn settled(
    js: &async_nats::jetstream::Context,
    databases: &[PathBuf],
    log: &EventLog,
    deadline: Duration,
) -> bool {
    let outboxes_empty = || {
        databases.iter().all(|db| {
            let Ok(conn) = rusqlite::Connection::open(db) else { return false };
            conn.query_row("SELECT count(*) FROM outbox WHERE published_at IS NULL", [], |r| r.get::<_, i64>(0))
                .is_ok_and(|n| n == 0)
        })
    };
    eventually(deadline, || async {
        if !outboxes_empty() {
            return None;
        }
        let mut stream = js.get_stream(crate::bus::STREAM).await.ok()?;
        let last = stream.info().await.ok()?.state.last_sequence;
        let mut consumers = stream.consumers();
        while let Some(info) = consumers.next().await {
            let info = info.ok()?;
            if info.config.durable_name.is_some() && (info.num_pending > 0 || info.num_ack_pending > 0) {
                return None;
            }
        }
        // Checked again: a consumer may have committed (and the relay published) follow-up events
        // since the first look.
        let unchanged = stream.info().await.ok()?.state.last_sequence == last;
        (unchanged && outboxes_empty() && log.last_seq().await >= last).then_some(())
    })
    .await
    .is_some()
}

/// `events` in a causal order that is the same run after run whatever the timing, for snapshots:
/// each root (an event caused by a request) in the order they happened, each followed by
/// everything it caused, depth first; siblings (e.g. `order.failed` and `stock.released`, both
/// caused by `payment.failed`) by event type. Not svc-order's `/trace` order, which puts siblings
/// in the order they happened (`svc_order::domain::causal_order`): a reader wants time there.
pub fn snapshot_order(events: &[Envelope]) -> Vec<Envelope> {
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id).collect();
    let mut roots: Vec<&Envelope> =
        events.iter().filter(|e| e.causation_id.is_none_or(|c| !ids.contains(&c))).collect();
    roots.sort_by_key(|e| (e.occurred_at, e.event.event_type()));
    let mut ordered = Vec::with_capacity(events.len());
    // An explicit stack instead of recursion; children are pushed in reverse so the first sibling
    // (by type) comes out first.
    let mut stack: Vec<&Envelope> = roots.into_iter().rev().collect();
    while let Some(e) = stack.pop() {
        ordered.push(e.clone());
        let mut children: Vec<&Envelope> = events.iter().filter(|c| c.causation_id == Some(e.id)).collect();
        children.sort_by_key(|c| std::cmp::Reverse((c.event.event_type(), c.occurred_at)));
        stack.extend(children);
    }
    ordered
}

/// A saga's events as a stable, readable transcript for snapshots: causal order, UUIDs replaced
/// by placeholders (`names` first, e.g. `("order", id)`, then `[id-N]` by first appearance),
/// times dropped, each event's cause named by its position and type.
pub fn transcript(events: &[Envelope], names: &[(&str, String)]) -> serde_json::Value {
    let ordered = snapshot_order(events);
    let mut placeholders: std::collections::HashMap<String, String> =
        names.iter().map(|(name, id)| (id.clone(), format!("[{name}]"))).collect();
    let position: std::collections::HashMap<_, _> =
        ordered.iter().enumerate().map(|(i, e)| (e.id, format!("#{} {}", i + 1, e.event.event_type()))).collect();
    let mut out = Vec::new();
    for e in &ordered {
        let mut data = serde_json::to_value(&e.event).expect("event serialises")["data"].take();
        replace_ids(&mut data, &mut placeholders);
        let mut subject = serde_json::Value::String(e.subject());
        replace_ids(&mut subject, &mut placeholders);
        out.push(serde_json::json!({
            "subject": subject,
            "producer": e.producer,
            "causedBy": e.causation_id.map(|c| position.get(&c).cloned().unwrap_or_else(|| "[outside]".into())),
            "data": data,
        }));
    }
    serde_json::Value::Array(out)
}

fn replace_ids(value: &mut serde_json::Value, names: &mut std::collections::HashMap<String, String>) {
    match value {
        serde_json::Value::String(s) => {
            let replaced: Vec<String> = s
                .split('.')
                .map(|token| {
                    if uuid::Uuid::parse_str(token).is_ok() {
                        let n = names.len() + 1;
                        names.entry(token.to_owned()).or_insert_with(|| format!("[id-{n}]")).clone()
                    } else {
                        token.to_owned()
                    }
                })
                .collect();
            *s = replaced.join(".");
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| replace_ids(v, names)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| replace_ids(v, names)),
        _ => {}
    }
}

/// Signs tokens for tests of services other than svc-user: a key of its own, published to the
/// key bucket exactly as svc-user publishes its key, so services verify these tokens for real.
#[derive(Debug)]
pub struct TestIssuer {
    key: crate::auth::SigningKey,
}

impl TestIssuer {
    pub async fn publish(nats: &NatsServer) -> Self {
        let js = async_nats::jetstream::new(nats.client().await);
        let key = crate::auth::SigningKey::generate();
        let bucket = crate::auth::keys_bucket(&js).await.expect("key bucket");
        crate::auth::publish_key(&bucket, &key.public_jwk()).await.expect("publish test key");
        TestIssuer { key }
    }

    /// A bearer token for `user` with `role`, valid for an hour.
    pub fn token(&self, user: uuid::Uuid, role: crate::Role) -> String {
        self.key.issue(user, role, Duration::from_secs(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{OrderFailed, OrderFailure, PaymentMethod, ReleaseReason, StockReleased};
    use crate::{Event, event::OrderCreated};

    #[test]
    fn causal_order_is_the_same_whatever_order_events_arrive_in() {
        let order = uuid::Uuid::now_v7();
        let created = Envelope::new(
            "svc-order",
            Event::OrderCreated(OrderCreated {
                order_id: order,
                user_id: order,
                product_id: order,
                quantity: 1,
                payment_method: PaymentMethod::Card,
            }),
        );
        let released = Envelope::caused_by(
            "svc-product",
            &created,
            Event::StockReleased(StockReleased {
                order_id: order,
                product_id: order,
                quantity: 1,
                reason: ReleaseReason::PaymentFailed,
            }),
        );
        let failed = Envelope::caused_by(
            "svc-order",
            &created,
            Event::OrderFailed(OrderFailed { order_id: order, reason: OrderFailure::PaymentDeclined, detail: None }),
        );
        let later_root = Envelope::new(
            "svc-order",
            Event::OrderFailed(OrderFailed { order_id: order, reason: OrderFailure::OutOfStock, detail: None }),
        );
        let types = |events: Vec<Envelope>| -> Vec<&'static str> {
            snapshot_order(&events).iter().map(|e| e.event.event_type()).collect()
        };
        let expected = ["order.created", "order.failed", "stock.released", "order.failed"];
        assert_eq!(types(vec![created.clone(), released.clone(), failed.clone(), later_root.clone()]), expected);
        assert_eq!(types(vec![later_root, failed, released, created]), expected);
    }
}
