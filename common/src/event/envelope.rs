//! The envelope every event travels in, and decoding: one place that checks the contract.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    SCHEMA_VERSION,
    payloads::{StockRejected, StockReleased},
    table::Event,
    vocabulary::Won,
};

/// The envelope every event travels in. `id` is a UUIDv7 and doubles as the `Nats-Msg-Id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub id: Uuid,
    #[serde(flatten)]
    pub event: Event,
    /// The saga's key: for the order saga the order id, for an account the user id.
    pub correlation_id: String,
    /// The id of the event this one reacts to; `None` for events caused by a request.
    pub causation_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub producer: String,
    pub version: u32,
}

impl Envelope {
    /// A new event caused by a request (the start of a saga).
    pub fn new(producer: &str, event: Event) -> Self {
        let correlation_id = event.key();
        Envelope {
            id: Uuid::now_v7(),
            event,
            correlation_id,
            causation_id: None,
            occurred_at: OffsetDateTime::now_utc(),
            producer: producer.to_owned(),
            version: SCHEMA_VERSION,
        }
    }

    /// A new event caused by `cause`: same saga, causation pointing at the cause.
    pub fn caused_by(producer: &str, cause: &Envelope, event: Event) -> Self {
        Envelope {
            correlation_id: cause.correlation_id.clone(),
            causation_id: Some(cause.id),
            ..Envelope::new(producer, event)
        }
    }

    pub fn subject(&self) -> String {
        self.event.subject()
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).expect("event serialises")
    }

    /// Decodes a message as received on `subject`. Everything that makes an event untrustworthy is
    /// an error here, so the consumer can dead-letter it instead of retrying it forever.
    pub fn decode(subject: &str, payload: &[u8]) -> Result<Self, DecodeError> {
        let json: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        // `deny_unknown_fields` does not combine with the flattened event, so the envelope's own
        // keys are checked here: a misspelt `causationID` must not pass as an absent one.
        if let Some(unknown) = json.as_object().and_then(|o| o.keys().find(|k| !ENVELOPE_KEYS.contains(&k.as_str()))) {
            return Err(DecodeError::Malformed(format!("unknown field `{unknown}` in the envelope")));
        }
        let envelope: Envelope = serde_json::from_value(json).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if envelope.version > SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion(envelope.version));
        }
        let expected = envelope.subject();
        if subject != expected {
            return Err(DecodeError::SubjectMismatch { subject: subject.to_owned(), expected });
        }
        // Every event's saga key is its subject key (the order id for the whole order saga), so
        // a trace keyed by correlation id can never lose a hand-published event.
        if envelope.correlation_id != envelope.event.key() {
            return Err(DecodeError::Invalid(format!(
                "correlationId {} is not the event's key {}",
                envelope.correlation_id,
                envelope.event.key()
            )));
        }
        envelope.event.validate().map_err(DecodeError::Invalid)?;
        Ok(envelope)
    }
}

/// The envelope's own JSON keys (`type` and `data` belong to the flattened [`Event`]).
const ENVELOPE_KEYS: &[&str] =
    &["id", "type", "data", "correlationId", "causationId", "occurredAt", "producer", "version"];

impl Event {
    /// The rules of the contract every consumer relies on, checked once at decoding so that all
    /// services refuse exactly the same events: quantities of at least one, positive money,
    /// amounts that are unit price times quantity, payouts that add up.
    pub fn validate(&self) -> Result<(), String> {
        fn quantity(q: u32) -> Result<(), String> {
            if q == 0 { Err("quantity must be at least 1".into()) } else { Ok(()) }
        }
        fn positive(what: &str, amount: Won) -> Result<(), String> {
            if amount.0 > 0 { Ok(()) } else { Err(format!("{what} must be positive, got {}", amount.0)) }
        }
        match self {
            Event::UserRegistered(e) if e.email.trim().is_empty() => Err("email must not be empty".into()),
            Event::UserRegistered(_) => Ok(()),
            Event::OrderCreated(e) => quantity(e.quantity),
            Event::StockReserved(e) => {
                quantity(e.quantity)?;
                positive("unitPrice", e.unit_price)?;
                if e.unit_price.times(e.quantity) != Some(e.amount) {
                    return Err(format!(
                        "amount {} is not unitPrice {} x quantity {}",
                        e.amount.0, e.unit_price.0, e.quantity
                    ));
                }
                Ok(())
            }
            Event::StockRejected(StockRejected { quantity: q, .. })
            | Event::StockReleased(StockReleased { quantity: q, .. }) => quantity(*q),
            Event::PaymentCompleted(e) => quantity(e.quantity).and(positive("amount", e.amount)),
            Event::PaymentCancelled(e) => quantity(e.quantity).and(positive("amount", e.amount)),
            Event::PaymentFailed(e) => positive("amount", e.amount),
            Event::OrderPaid(e) => positive("amount", e.amount),
            Event::OrderCancelled(e) => positive("amount", e.amount),
            Event::OrderFailed(_) | Event::OrderExpired(_) => Ok(()),
            Event::SettlementClosed(e) => {
                if e.part == 0 || e.part > e.parts {
                    return Err(format!("part {} of {} does not exist", e.part, e.parts));
                }
                if e.fee_rate_bps > 10_000 {
                    return Err(format!("feeRateBps {} is above 10000 (100 %)", e.fee_rate_bps));
                }
                for p in &e.payouts {
                    if p.gross.0.checked_sub(p.refunds.0) != Some(p.net.0)
                        || p.fee.0.checked_add(p.payout.0) != Some(p.net.0)
                    {
                        return Err(format!("payout of seller {} does not add up", p.seller_id));
                    }
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("unsupported schema version {0} (this service reads up to {SCHEMA_VERSION})")]
    UnsupportedVersion(u32),
    #[error("published on {subject} but the event belongs on {expected}")]
    SubjectMismatch { subject: String, expected: String },
    #[error("invalid event: {0}")]
    Invalid(String),
}
