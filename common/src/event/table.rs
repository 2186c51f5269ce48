//! The event table: every event with its type and subject key, and the [`EventType`]s consumers
//! declare.

use serde::{Deserialize, Serialize};

use super::payloads::{
    OrderCancelled, OrderCreated, OrderExpired, OrderFailed, OrderPaid, PaymentCancelled, PaymentCompleted,
    PaymentFailed, SettlementClosed, StockRejected, StockReleased, StockReserved, UserRegistered,
};

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
    OrderExpired = "order.expired", key: |e| e.order_id;
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
