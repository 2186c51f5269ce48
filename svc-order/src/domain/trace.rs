//! A saga's events as a reader wants them: causes before their effects, otherwise by time.

use std::collections::HashSet;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// One event of an order's saga, as `GET /orders/{id}/trace` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceEvent {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub subject: String,
    pub producer: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    pub causation_id: Option<Uuid>,
    /// The event's payload (docs/EVENTS.md).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Orders `events` so that every event comes after its cause; among the events whose causes are
/// already listed (siblings such as `order.failed` and `stock.released`, or unrelated roots) the
/// earliest `occurredAt` comes first, then the event type, then the id, so the result is the same
/// every time. Clocks of different services may disagree, which is why time alone is not enough.
///
/// An event whose cause is not among `events` (e.g. a hand-published one) counts as a root.
/// Events caught in a causation cycle (only hand-made events can form one) are kept, at the end.
pub fn causal_order(mut events: Vec<TraceEvent>) -> Vec<TraceEvent> {
    events.sort_by(|a, b| (a.occurred_at, &a.event_type, a.id).cmp(&(b.occurred_at, &b.event_type, b.id)));
    let ids: HashSet<Uuid> = events.iter().map(|e| e.id).collect();
    let mut listed = HashSet::with_capacity(events.len());
    let mut ordered = Vec::with_capacity(events.len());
    // Sagas have a handful of events: a quadratic scan is simpler than a priority queue.
    while let Some(next) =
        events.iter().position(|e| e.causation_id.is_none_or(|c| !ids.contains(&c) || listed.contains(&c)))
    {
        let event = events.remove(next);
        listed.insert(event.id);
        ordered.push(event);
    }
    ordered.extend(events);
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, at_ms: i64, cause: Option<&TraceEvent>) -> TraceEvent {
        TraceEvent {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            subject: format!("{event_type}.x"),
            producer: "test".into(),
            occurred_at: OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(at_ms),
            causation_id: cause.map(|c| c.id),
            data: serde_json::Value::Null,
        }
    }

    fn types(events: &[TraceEvent]) -> Vec<&str> {
        events.iter().map(|e| e.event_type.as_str()).collect()
    }

    #[test]
    fn a_chain_comes_out_cause_first_even_when_clocks_disagree() {
        let created = event("order.created", 10, None);
        let reserved = event("stock.reserved", 5, Some(&created)); // the product service's clock is behind
        let paid = event("payment.completed", 7, Some(&reserved));
        let ordered = causal_order(vec![paid, reserved, created]);
        assert_eq!(types(&ordered), ["order.created", "stock.reserved", "payment.completed"]);
    }

    #[test]
    fn siblings_come_by_time_then_by_type() {
        let failed = event("payment.failed", 1, None);
        let released = event("stock.released", 3, Some(&failed));
        let order_failed = event("order.failed", 3, Some(&failed));
        let late = event("order.cancelled", 2, Some(&failed));
        let ordered = causal_order(vec![released, order_failed, failed, late]);
        assert_eq!(types(&ordered), ["payment.failed", "order.cancelled", "order.failed", "stock.released"]);
    }

    #[test]
    fn an_event_whose_cause_is_missing_counts_as_a_root() {
        let outside = event("order.created", 0, None);
        let orphan = event("stock.reserved", 5, Some(&outside));
        let root = event("order.created", 9, None);
        assert_eq!(types(&causal_order(vec![root, orphan])), ["stock.reserved", "order.created"]);
    }

    #[test]
    fn events_in_a_causation_cycle_are_kept_at_the_end() {
        let root = event("order.created", 50, None);
        let mut a = event("stock.reserved", 1, None);
        let b = event("payment.completed", 2, Some(&a));
        a.causation_id = Some(b.id);
        let ordered = causal_order(vec![a, root, b]);
        assert_eq!(types(&ordered), ["order.created", "stock.reserved", "payment.completed"]);
    }

    #[test]
    fn no_events_make_an_empty_trace() {
        assert!(causal_order(Vec::new()).is_empty());
    }
}
