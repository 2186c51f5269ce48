//! The event contract: one envelope, one enum of every event, one place that maps events to subjects.
//!
//! On the wire an event is plain JSON (camelCase) so a person can read it with `nats sub` and write one
//! with `nats pub`:
//!
//! ```json
//! {"id":"0193...","type":"user.registered","correlationId":"0193...","causationId":null,
//!  "occurredAt":"2026-11-24T09:00:00Z","producer":"svc-user","version":1,"data":{...}}
//! ```
//!
//! Subjects read `<aggregate>.<event>.<key>`: `nats sub 'user.>'` watches a domain and
//! `nats sub '*.*.<key>'` watches one saga.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The schema version every event type is written with today. A consumer rejects (dead-letters) an
/// event written with a newer version than it understands instead of guessing.
pub const SCHEMA_VERSION: u32 = 1;

/// Declares a closed vocabulary of the contract: an enum whose variants travel as fixed wire
/// names, the same in JSON (serde), in the database and in logs, each written once here.
macro_rules! vocabulary {
    ($( $(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $wire:literal, )* } )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $wire)] $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// The wire name, e.g. `OUT_OF_STOCK`.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $wire, )* }
            }

            /// The value with this wire name, if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $( $wire => Some($name::$variant), )* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

vocabulary! {
    /// Roles are part of the contract because `user.registered` carries one.
    Role {
        Customer = "CUSTOMER",
        Seller = "SELLER",
        Admin = "ADMIN",
    }

    /// How an order is paid.
    PaymentMethod {
        Card = "CARD",
        BankTransfer = "BANK_TRANSFER",
    }

    /// Why svc-product could not reserve stock.
    StockRejection {
        OutOfStock = "OUT_OF_STOCK",
        ProductNotFound = "PRODUCT_NOT_FOUND",
    }

    /// Why the simulated gateway declined a payment.
    PaymentDecline {
        /// The amount is above the per-payment limit.
        LimitExceeded = "LIMIT_EXCEEDED",
        /// The gateway's (seeded, configurable) random decline.
        Declined = "DECLINED",
    }

    /// Why an order failed, as its owner sees it.
    OrderFailure {
        OutOfStock = "OUT_OF_STOCK",
        ProductNotFound = "PRODUCT_NOT_FOUND",
        PaymentDeclined = "PAYMENT_DECLINED",
    }

    /// Why reserved stock went back on the shelf.
    ReleaseReason {
        PaymentFailed = "PAYMENT_FAILED",
        PaymentCancelled = "PAYMENT_CANCELLED",
    }
}

/// Won, the Korean currency. It has no minor unit, so amounts are whole numbers: never floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Won(pub i64);

impl Won {
    /// `self * quantity`, or `None` on overflow.
    pub fn times(self, quantity: u32) -> Option<Won> {
        self.0.checked_mul(i64::from(quantity)).map(Won)
    }
}

impl std::fmt::Display for Won {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} KRW", self.0)
    }
}

/// `user.registered.<userId>`: an account exists. Never carries the password or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserRegistered {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
}

/// `order.created.<orderId>`: a customer asked for `quantity` of a product. Starts the saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderCreated {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub product_id: Uuid,
    pub quantity: u32,
    pub payment_method: PaymentMethod,
}

/// `stock.reserved.<orderId>`: stock is held for the order, priced at reservation time. Carries
/// what the payment needs (payer, method) so svc-payment reacts to this event alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StockReserved {
    pub order_id: Uuid,
    pub product_id: Uuid,
    pub quantity: u32,
    pub unit_price: Won,
    pub amount: Won,
    pub seller_id: Uuid,
    pub category: String,
    pub user_id: Uuid,
    pub payment_method: PaymentMethod,
}

/// `stock.rejected.<orderId>`: no stock was reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StockRejected {
    pub order_id: Uuid,
    pub product_id: Uuid,
    pub quantity: u32,
    pub reason: StockRejection,
}

/// `stock.released.<orderId>`: a reservation was returned to stock (compensation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StockReleased {
    pub order_id: Uuid,
    pub product_id: Uuid,
    pub quantity: u32,
    pub reason: ReleaseReason,
}

/// `payment.completed.<orderId>`: the order was charged. Carries seller and category so
/// settlement can book it without asking anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentCompleted {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount: Won,
    pub method: PaymentMethod,
    pub seller_id: Uuid,
    pub category: String,
    pub product_id: Uuid,
    pub quantity: u32,
}

/// `payment.failed.<orderId>`: the gateway declined; nothing was charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentFailed {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount: Won,
    pub method: PaymentMethod,
    pub reason: PaymentDecline,
}

/// `payment.cancelled.<orderId>`: a completed payment was refunded in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentCancelled {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount: Won,
    pub seller_id: Uuid,
    pub category: String,
    pub product_id: Uuid,
    pub quantity: u32,
}

/// `order.paid.<orderId>`: the saga ended well.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderPaid {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Won,
}

/// `order.failed.<orderId>`: the saga ended without a sale. `detail` refines the reason
/// (e.g. the gateway's `LIMIT_EXCEEDED`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderFailed {
    pub order_id: Uuid,
    pub reason: OrderFailure,
    pub detail: Option<String>,
}

/// `order.cancelled.<orderId>`: a paid order was cancelled and refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Won,
}

/// One seller's figures for a closed business day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SellerPayout {
    pub seller_id: Uuid,
    pub gross: Won,
    pub refunds: Won,
    pub net: Won,
    pub fee: Won,
    pub payout: Won,
    pub orders: i64,
}

/// `settlement.closed.<YYYY-MM-DD>`: a business day is closed and will never change again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettlementClosed {
    pub date: String,
    pub time_zone: String,
    /// The platform fee rate the day was settled at, in basis points (300 = 3 %): the payouts are
    /// computed with it, so a rebuild settles the day at this rate whatever `FEE_RATE_BPS` is now.
    pub fee_rate_bps: u32,
    pub payouts: Vec<SellerPayout>,
    /// How many ledger entries svc-settlement had booked (all days) when it closed the day: the
    /// close's position in the ledger, so a rebuild from the stream closes the day at exactly the
    /// same point even though this event is published a moment after the close.
    pub ledger_entries: u64,
}

/// Declares [`Event`] from one table: variant (= payload type), event type, and the subject key.
macro_rules! events {
    ($( $variant:ident = $type:literal, key: |$e:ident| $key:expr; )*) => {
        /// Every event of the system. The serde tag is the event type, which is also the first two
        /// tokens of its subject.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum Event {
            $( #[serde(rename = $type)] $variant($variant), )*
        }

        /// The type of an [`Event`], without its payload: what a consumer declares it handles.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $( $variant, )*
        }

        impl EventType {
            /// Every event type, in declaration order.
            pub const ALL: &[EventType] = &[$(EventType::$variant),*];

            /// The wire name, e.g. `order.created`: the serde tag and the subject's first tokens.
            pub fn as_str(self) -> &'static str {
                match self { $( EventType::$variant => $type, )* }
            }
        }

        impl Event {
            /// Every event type's wire name, in declaration order.
            pub const TYPES: &[&str] = &[$($type),*];

            /// The event type, e.g. `order.created`.
            pub fn event_type(&self) -> &'static str {
                self.kind().as_str()
            }

            /// The event's [`EventType`].
            pub fn kind(&self) -> EventType {
                match self { $( Event::$variant(_) => EventType::$variant, )* }
            }

            /// The last subject token: the aggregate's key (the order id for the order saga).
            pub fn key(&self) -> String {
                match self { $( Event::$variant($e) => $key.to_string(), )* }
            }
        }
    };
}

events! {
    UserRegistered = "user.registered", key: |e| e.user_id;
    OrderCreated = "order.created", key: |e| e.order_id;
    OrderPaid = "order.paid", key: |e| e.order_id;
    OrderFailed = "order.failed", key: |e| e.order_id;
    OrderCancelled = "order.cancelled", key: |e| e.order_id;
    StockReserved = "stock.reserved", key: |e| e.order_id;
    StockRejected = "stock.rejected", key: |e| e.order_id;
    StockReleased = "stock.released", key: |e| e.order_id;
    PaymentCompleted = "payment.completed", key: |e| e.order_id;
    PaymentFailed = "payment.failed", key: |e| e.order_id;
    PaymentCancelled = "payment.cancelled", key: |e| e.order_id;
    SettlementClosed = "settlement.closed", key: |e| e.date;
}

impl EventType {
    /// The subject filter that selects every event of this type: `<aggregate>.<event>.*`.
    pub fn filter_subject(self) -> String {
        format!("{}.*", self.as_str())
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// `<aggregate>.<event>.<key>`.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.event_type(), self.key())
    }
}

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
            Event::OrderFailed(_) => Ok(()),
            Event::SettlementClosed(e) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> Envelope {
        Envelope::new(
            "svc-user",
            Event::UserRegistered(UserRegistered {
                user_id: Uuid::now_v7(),
                email: "kim@example.com".into(),
                name: "Kim".into(),
                role: Role::Customer,
            }),
        )
    }

    #[test]
    fn an_envelope_round_trips_through_its_subject() {
        let env = registered();
        let decoded = Envelope::decode(&env.subject(), &env.to_json()).unwrap();
        // RFC 3339 keeps nanoseconds, so the round trip is exact.
        assert_eq!(decoded, env);
    }

    #[test]
    fn the_wire_shape_is_flat_camel_case_json() {
        let env = registered();
        let json: serde_json::Value = serde_json::from_slice(&env.to_json()).unwrap();
        assert_eq!(json["type"], "user.registered");
        assert_eq!(json["producer"], "svc-user");
        assert_eq!(json["version"], 1);
        assert_eq!(json["correlationId"], json["data"]["userId"]);
        assert!(json["causationId"].is_null());
        assert_eq!(json["data"]["role"], "CUSTOMER");
    }

    #[test]
    fn subjects_read_aggregate_event_key() {
        let env = registered();
        let Event::UserRegistered(data) = &env.event else { unreachable!() };
        assert_eq!(env.subject(), format!("user.registered.{}", data.user_id));
    }

    #[test]
    fn a_caused_event_keeps_the_saga_and_points_at_its_cause() {
        let cause = registered();
        let effect = Envelope::caused_by("svc-other", &cause, cause.event.clone());
        assert_eq!(effect.correlation_id, cause.correlation_id);
        assert_eq!(effect.causation_id, Some(cause.id));
        assert_ne!(effect.id, cause.id);
    }

    #[test]
    fn every_type_is_a_two_token_subject_prefix_inside_the_stream() {
        for ty in Event::TYPES {
            let aggregate = ty.split('.').next().unwrap();
            assert_eq!(ty.split('.').count(), 2, "{ty}");
            assert!(crate::bus::STREAM_SUBJECTS.contains(&format!("{aggregate}.>").as_str()), "{ty} not in the stream");
        }
    }

    #[test]
    fn money_never_overflows_silently() {
        assert_eq!(Won(15_000).times(3), Some(Won(45_000)));
        assert_eq!(Won(i64::MAX).times(2), None);
    }

    #[test]
    fn garbage_is_malformed() {
        let err = Envelope::decode("user.registered.x", b"{not json").unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)));
    }

    #[test]
    fn an_unknown_event_type_is_malformed() {
        let env = registered();
        let text = String::from_utf8(env.to_json()).unwrap().replace("user.registered", "user.exploded");
        assert!(matches!(Envelope::decode(&env.subject(), text.as_bytes()), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn an_event_on_the_wrong_subject_is_rejected() {
        let env = registered();
        let err = Envelope::decode("user.registered.someone-else", &env.to_json()).unwrap_err();
        assert!(matches!(err, DecodeError::SubjectMismatch { .. }));
    }

    #[test]
    fn a_newer_schema_version_is_rejected() {
        let mut env = registered();
        env.version = SCHEMA_VERSION + 1;
        let err = Envelope::decode(&env.subject(), &env.to_json()).unwrap_err();
        assert_eq!(err, DecodeError::UnsupportedVersion(SCHEMA_VERSION + 1));
    }

    #[test]
    fn a_correlation_id_other_than_the_key_is_rejected() {
        let mut env = registered();
        env.correlation_id = "another-saga".into();
        assert!(matches!(Envelope::decode(&env.subject(), &env.to_json()), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn unknown_envelope_fields_are_rejected() {
        let env = registered();
        let mut json: serde_json::Value = serde_json::from_slice(&env.to_json()).unwrap();
        json["causationID"] = serde_json::Value::Null;
        let err = Envelope::decode(&env.subject(), json.to_string().as_bytes()).unwrap_err();
        assert_eq!(err, DecodeError::Malformed("unknown field `causationID` in the envelope".into()));
    }

    #[test]
    fn contract_rules_are_checked_at_decoding() {
        let order = Uuid::now_v7();
        let reserved = |quantity, unit_price, amount| {
            Envelope::new(
                "svc-product",
                Event::StockReserved(StockReserved {
                    order_id: order,
                    product_id: order,
                    quantity,
                    unit_price: Won(unit_price),
                    amount: Won(amount),
                    seller_id: order,
                    category: "books".into(),
                    user_id: order,
                    payment_method: PaymentMethod::Card,
                }),
            )
        };
        let decode = |env: Envelope| Envelope::decode(&env.subject(), &env.to_json());
        assert!(decode(reserved(2, 15_000, 30_000)).is_ok());
        for (q, price, amount) in [(0, 15_000, 0), (2, 15_000, 29_999), (1, 0, 0), (2, i64::MAX, 1)] {
            assert!(
                matches!(decode(reserved(q, price, amount)), Err(DecodeError::Invalid(_))),
                "{q} x {price} = {amount}"
            );
        }
    }

    #[test]
    fn unknown_data_fields_are_rejected() {
        let env = registered();
        let mut json: serde_json::Value = serde_json::from_slice(&env.to_json()).unwrap();
        json["data"]["password"] = "hunter2".into();
        let err = Envelope::decode(&env.subject(), json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)));
    }
}
