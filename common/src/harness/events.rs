//! What the tests see of the stream: every event recorded in order, the check that the system
//! has gone quiet, and saga transcripts for snapshots.

use std::{path::PathBuf, sync::Arc, time::Duration};

use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::eventually;
use crate::event::Envelope;

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
    pub async fn record(client: &async_nats::Client, replicas: usize) -> Self {
        use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
        let js = async_nats::jetstream::new(client.clone());
        let stream = crate::bus::ensure_stream(&js, replicas).await.expect("stream");
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

/// Whether nothing more can happen by itself: no outbox (the SQLite files `databases`) holds an
/// unpublished row, and each durable consumer on the stream (only those named in `consumers`, if
/// given) has acknowledged everything. Looked at twice, with the stream's end unchanged between:
/// a consumer may have committed (and the relay published) follow-up events since the first look.
pub(crate) async fn quiet(
    js: &async_nats::jetstream::Context,
    databases: &[PathBuf],
    consumers: Option<&[String]>,
) -> Option<u64> {
    let outboxes_empty = || {
        databases.iter().all(|db| {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE;
            let Ok(conn) = rusqlite::Connection::open_with_flags(db, flags) else { return false };
            conn.query_row("SELECT count(*) FROM outbox WHERE published_at IS NULL", [], |r| r.get::<_, i64>(0))
                .is_ok_and(|n| n == 0)
        })
    };
    if !outboxes_empty() {
        return None;
    }
    let mut streams = consumer_streams(js).await;
    let last = streams.first_mut()?.info().await.ok()?.state.last_sequence;
    for stream in &mut streams {
        let info = stream.info().await.ok()?;
        // A shard stream must also have copied everything from the event stream.
        if info.sources.iter().any(|source| source.lag > 0) {
            return None;
        }
        let mut infos = stream.consumers();
        while let Some(info) = infos.next().await {
            let info = info.ok()?;
            let Some(name) = info.config.durable_name.as_deref() else { continue };
            let ours = consumers.is_none_or(|names| names.iter().any(|n| n == name));
            if ours && (info.num_pending > 0 || info.num_ack_pending > 0) {
                return None;
            }
        }
    }
    let unchanged = streams.first_mut()?.info().await.ok()?.state.last_sequence == last;
    (unchanged && outboxes_empty()).then_some(last)
}

/// The streams durable consumers read: the event stream first, then every service's shard
/// stream ([`crate::bus::Shards`]).
pub(crate) async fn consumer_streams(
    js: &async_nats::jetstream::Context,
) -> Vec<async_nats::jetstream::stream::Stream> {
    let mut streams = Vec::new();
    let Ok(events) = js.get_stream(crate::bus::STREAM).await else { return streams };
    streams.push(events);
    let shard_stream = crate::bus::Shards::stream_name("");
    let mut names = js.stream_names();
    while let Some(Ok(name)) = names.next().await {
        if name.starts_with(&shard_stream)
            && let Ok(stream) = js.get_stream(&name).await
        {
            streams.push(stream);
        }
    }
    streams
}

/// The durable consumer `name`, on whichever of the [`consumer_streams`] it reads.
pub(crate) async fn durable_info(
    js: &async_nats::jetstream::Context,
    name: &str,
) -> Option<async_nats::jetstream::consumer::Info> {
    for stream in consumer_streams(js).await {
        if let Ok(info) = stream.consumer_info(name).await {
            return Some(info);
        }
    }
    None
}

/// Waits until the whole system is quiet (see [`quiet`], every durable consumer) and `log` has
/// read the stream to its end. After that nothing more can happen by itself, so a snapshot taken
/// then is complete. Returns `false` if that did not happen within `deadline`.
pub async fn settled(
    js: &async_nats::jetstream::Context,
    databases: &[PathBuf],
    log: &EventLog,
    deadline: Duration,
) -> bool {
    eventually(deadline, || async {
        let last = quiet(js, databases, None).await?;
        (log.last_seq().await >= last).then_some(())
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
