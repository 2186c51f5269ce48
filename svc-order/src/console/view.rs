//! What the saga console shows, as pure data: sagas, the timeline of one, the services' figures.
//! Built from the store's rows and the services' `stats` answers; no I/O here.

use std::collections::BTreeMap;

use common::{
    Won,
    micro::{ConsumerLag, DeadLetterCount, OpsError, ServiceStats},
};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Order, OrderStatus, TraceEvent};

/// The newest event seen of a saga.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastEvent {
    #[serde(rename = "type")]
    #[schema(example = "stock.reserved")]
    pub event_type: String,
    #[schema(example = "svc-product")]
    pub producer: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
}

/// One saga in the feed or the stuck list.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SagaSummary {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub product_id: Uuid,
    pub quantity: u32,
    pub status: OrderStatus,
    /// The order's `failureReason` (`OUT_OF_STOCK`, `PRODUCT_NOT_FOUND`, `PAYMENT_DECLINED`), when FAILED.
    #[schema(value_type = Option<common::event::OrderFailure>)]
    pub failure_reason: Option<String>,
    pub amount: Option<Won>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub deadline_at: OffsetDateTime,
    /// Since the order was placed.
    pub age_ms: i64,
    pub last_event: Option<LastEvent>,
    /// The service whose event the saga waits for; none once it has ended.
    #[schema(value_type = Option<String>, example = "svc-payment")]
    pub waiting_on: Option<&'static str>,
}

/// Whose move it is: a placed order waits for svc-product's reservation (or refusal), a reserved
/// one for svc-payment's charge (or decline); an ended saga waits for nobody.
pub fn waiting_on(status: OrderStatus) -> Option<&'static str> {
    match status {
        OrderStatus::Pending => Some("svc-product"),
        OrderStatus::StockReserved => Some("svc-payment"),
        OrderStatus::Paid | OrderStatus::Failed | OrderStatus::Cancelled | OrderStatus::Expired => None,
    }
}

impl SagaSummary {
    pub fn of(order: &Order, last_event: Option<LastEvent>, now: OffsetDateTime) -> Self {
        SagaSummary {
            order_id: order.id,
            user_id: order.user_id,
            product_id: order.product_id,
            quantity: order.quantity.get(),
            status: order.status,
            failure_reason: order.failure_reason.map(|r| r.as_str().to_owned()),
            amount: order.amount,
            created_at: order.created_at,
            updated_at: order.updated_at,
            deadline_at: order.deadline_at,
            age_ms: (now - order.created_at).whole_milliseconds() as i64,
            last_event,
            waiting_on: waiting_on(order.status),
        }
    }
}

/// One event on a saga's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEvent {
    pub id: Uuid,
    #[serde(rename = "type")]
    #[schema(example = "order.created")]
    pub event_type: String,
    pub subject: String,
    pub producer: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    pub causation_id: Option<Uuid>,
    /// From the first event of the timeline.
    pub since_start_ms: i64,
    /// From the event before it on the timeline (0 for the first).
    pub since_previous_ms: i64,
    /// The whole event, as it was published.
    #[schema(value_type = Object)]
    pub envelope: Value,
}

/// `events` (already in causal order) with the time between steps.
pub fn timeline(events: Vec<(TraceEvent, Value)>) -> Vec<TimelineEvent> {
    let start = events.first().map(|(e, _)| e.occurred_at);
    let mut previous = start;
    events
        .into_iter()
        .map(|(e, envelope)| {
            let ms = |from: Option<OffsetDateTime>| from.map_or(0, |f| (e.occurred_at - f).whole_milliseconds() as i64);
            let event = TimelineEvent {
                since_start_ms: ms(start),
                since_previous_ms: ms(previous),
                id: e.id,
                event_type: e.event_type,
                subject: e.subject,
                producer: e.producer,
                occurred_at: e.occurred_at,
                causation_id: e.causation_id,
                envelope,
            };
            previous = Some(event.occurred_at);
            event
        })
        .collect()
}

/// The commands that show a saga's events in a terminal as they happen.
pub fn watch_lines(order_id: Uuid) -> Vec<String> {
    vec![
        format!("nats sub '*.*.{order_id}'"),
        format!(".tools/venv/bin/python nats/tools/sub.py '*.*.{order_id}' --replay"),
    ]
}

/// One service in the overview.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[schema(value_type = String, example = "svc-product")]
    pub name: &'static str,
    /// Whether it answered `stats` in time; when not, `error` says why and the figures are `null`.
    pub up: bool,
    pub error: Option<String>,
    pub version: Option<String>,
    pub outbox: Option<common::admin::OutboxBacklog>,
    #[schema(value_type = Vec<ConsumerLagSchema>)]
    pub consumers: Vec<ConsumerLag>,
    /// Undelivered messages of all its consumers; `null` when JetStream did not say.
    pub lag: Option<u64>,
    #[schema(value_type = Option<DeadLetterCountSchema>)]
    pub dead_letters: Option<DeadLetterCount>,
    /// svc-payment's gateway: `{url, breaker}`; `null` for the other services.
    #[schema(value_type = Option<Object>)]
    pub gateway: Option<Value>,
}

/// One durable consumer's backlog on the stream.
// [`ConsumerLag`]'s schema: the type is `common::micro`'s, which derives none.
#[derive(utoipa::ToSchema)]
#[schema(as = ConsumerLag)]
#[allow(dead_code)] // a schema only
pub struct ConsumerLagSchema {
    name: String,
    /// Messages of its filter not yet delivered.
    pending: u64,
    /// Delivered, not yet acknowledged.
    #[schema(rename = "ackPending")]
    ack_pending: u64,
}

/// How many dead letters a service holds, and how many of them were not replayed.
// [`DeadLetterCount`]'s schema: the type is `common::micro`'s, which derives none.
#[derive(utoipa::ToSchema)]
#[schema(as = DeadLetterCount)]
#[allow(dead_code)] // a schema only
pub struct DeadLetterCountSchema {
    total: i64,
    unreplayed: i64,
}

impl ServiceStatus {
    pub fn of(name: &'static str, answer: Result<ServiceStats, OpsError>) -> Self {
        match answer {
            Ok(mut stats) => {
                // Unknown (JetStream did not answer) is no lag of 0; no consumers at all is.
                let lag = stats.consumers.as_ref().map(|c| c.iter().map(|c| c.pending).sum());
                let consumers = stats.consumers.unwrap_or_default();
                ServiceStatus {
                    name,
                    up: true,
                    error: None,
                    version: Some(stats.version),
                    outbox: Some(stats.outbox),
                    lag,
                    consumers,
                    dead_letters: Some(stats.dead_letters),
                    gateway: stats.extras.remove("gateway"),
                }
            }
            Err(e) => ServiceStatus {
                name,
                up: false,
                error: Some(e.detail),
                version: None,
                outbox: None,
                consumers: Vec::new(),
                lag: None,
                dead_letters: None,
                gateway: None,
            },
        }
    }
}

/// The overview: sagas by state, the order rate, every service's figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Every state, zero included.
    #[schema(value_type = BTreeMap<String, i64>,
        example = json!({"PENDING": 1, "STOCK_RESERVED": 0, "PAID": 40, "FAILED": 2, "CANCELLED": 0, "EXPIRED": 0}))]
    pub sagas: BTreeMap<&'static str, i64>,
    /// Orders placed over the last 10 s ([`RATE_WINDOW_SECS`]), per second.
    pub orders_per_second: f64,
    pub services: Vec<ServiceStatus>,
}

/// The window the order rate is averaged over.
pub const RATE_WINDOW_SECS: i64 = 10;

/// Every state with its count, zero for those with no order.
pub fn by_state(counts: &[(OrderStatus, i64)]) -> BTreeMap<&'static str, i64> {
    let all = [
        OrderStatus::Pending,
        OrderStatus::StockReserved,
        OrderStatus::Paid,
        OrderStatus::Failed,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ];
    all.into_iter().map(|s| (s.as_str(), counts.iter().filter(|(c, _)| *c == s).map(|(_, n)| n).sum())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, at_ms: i64) -> (TraceEvent, Value) {
        let e = TraceEvent {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            subject: format!("{event_type}.x"),
            producer: "svc-order".into(),
            occurred_at: OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(at_ms),
            causation_id: None,
            data: Value::Null,
        };
        (e, serde_json::json!({"type": event_type}))
    }

    #[test]
    fn a_running_saga_waits_on_the_service_whose_event_comes_next_and_an_ended_one_on_nobody() {
        assert_eq!(waiting_on(OrderStatus::Pending), Some("svc-product"));
        assert_eq!(waiting_on(OrderStatus::StockReserved), Some("svc-payment"));
        for ended in [OrderStatus::Paid, OrderStatus::Failed, OrderStatus::Cancelled, OrderStatus::Expired] {
            assert_eq!(waiting_on(ended), None, "{ended}");
        }
    }

    #[test]
    fn the_timeline_counts_from_the_first_event_and_from_the_one_before() {
        let t = timeline(vec![
            event("order.created", 1000),
            event("stock.reserved", 1012),
            event("payment.completed", 1040),
        ]);
        let steps: Vec<_> = t.iter().map(|e| (e.since_start_ms, e.since_previous_ms)).collect();
        assert_eq!(steps, [(0, 0), (12, 12), (40, 28)]);
        assert_eq!(t[2].envelope["type"], "payment.completed");
        assert!(timeline(Vec::new()).is_empty());
    }

    #[test]
    fn every_state_is_counted_even_without_orders() {
        let counts = by_state(&[(OrderStatus::Paid, 3), (OrderStatus::Pending, 1)]);
        assert_eq!(counts.len(), 6);
        assert_eq!((counts["PAID"], counts["PENDING"], counts["EXPIRED"]), (3, 1, 0));
    }

    #[test]
    fn a_service_that_does_not_answer_is_down_with_the_reason() {
        let status =
            ServiceStatus::of("svc-product", Err(OpsError::new(504, "NO_ANSWER", "svc-product did not answer")));
        assert!(!status.up);
        assert_eq!(status.error.as_deref(), Some("svc-product did not answer"));
        assert_eq!(status.lag, None);
    }
}
