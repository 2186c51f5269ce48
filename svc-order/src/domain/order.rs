//! An order and the state machine its saga drives:
//!
//! ```text
//! PENDING ──stock.reserved──▶ STOCK_RESERVED ──payment.completed──▶ PAID ──payment.cancelled──▶ CANCELLED
//!    │                              │
//!    ├──stock.rejected──────────────┴──payment.failed / stock.rejected──▶ FAILED (reason, detail)
//!    │                              │
//!    └──deadline passed─────────────┴──deadline passed──▶ EXPIRED (order.expired)
//! ```
//!
//! FAILED, EXPIRED and CANCELLED are final; PAID only moves to CANCELLED.
//!
//! Events arrive at least once and, after redeliveries, not necessarily in order, so a
//! transition is a decision, never an assumption: see [`Transition`].

use std::time::Duration;

use common::{
    PaymentMethod, Won,
    event::{OrderCreated, OrderExpired, OrderFailure},
};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{NewOrder, Quantity};

/// Where an order's saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    StockReserved,
    Paid,
    Failed,
    Cancelled,
    /// Neither paid nor failed within its deadline: the saga gave up (`order.expired`).
    Expired,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::StockReserved => "STOCK_RESERVED",
            OrderStatus::Paid => "PAID",
            OrderStatus::Failed => "FAILED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::StockReserved, Self::Paid, Self::Failed, Self::Cancelled, Self::Expired]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// Whether the saga that created the order has ended: a client waiting for the outcome gets
    /// its answer. PAID counts, although a later refund may still cancel the order.
    pub fn is_settled(self) -> bool {
        !matches!(self, OrderStatus::Pending | OrderStatus::StockReserved)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order as stored and as shown to its owner (the JSON body of the order endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    pub product_id: Uuid,
    pub quantity: Quantity,
    pub payment_method: PaymentMethod,
    pub status: OrderStatus,
    /// Set exactly when the status is FAILED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<OrderFailure>,
    /// Refines the reason, e.g. the gateway's `LIMIT_EXCEEDED` for a declined payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_detail: Option<String>,
    /// Priced by svc-product when it reserved the stock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<Won>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Won>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// When the order expires unless its saga has ended: `created_at` + `ORDER_DEADLINE_SECS`.
    #[serde(skip)]
    pub deadline_at: OffsetDateTime,
}

/// What a saga event says happened to an order, with the facts the order can check it against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    StockReserved {
        product_id: Uuid,
        quantity: u32,
        unit_price: Won,
        amount: Won,
    },
    Failed {
        reason: OrderFailure,
        detail: Option<String>,
    },
    Paid {
        payment_id: Uuid,
        amount: Won,
    },
    Cancelled {
        payment_id: Uuid,
        amount: Won,
    },
    /// The deadline passed (svc-order's own expiry, not an event).
    Expired,
}

impl Change {
    /// The status this change leads to.
    pub fn target(&self) -> OrderStatus {
        match self {
            Change::StockReserved { .. } => OrderStatus::StockReserved,
            Change::Failed { .. } => OrderStatus::Failed,
            Change::Paid { .. } => OrderStatus::Paid,
            Change::Cancelled { .. } => OrderStatus::Cancelled,
            Change::Expired => OrderStatus::Expired,
        }
    }
}

/// The decision about a [`Change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The order moves: store the new state (and announce it).
    Applied(Order),
    /// The order is already there or past the point where the change means anything (a final
    /// state, a duplicate, a contradicting late event): nothing to do, nothing to announce.
    Ignored { status: OrderStatus },
    /// The change presupposes a step the order has not taken yet (paid before its stock was
    /// reserved): a redelivery overtook its predecessor. Retry later rather than lose it.
    Early { status: OrderStatus },
    /// The event contradicts the order (another product or quantity, a charge other than the
    /// reserved amount): it is not about this order as placed, so no retry can make it apply.
    Contradicted(String),
}

impl Order {
    /// A new order as its customer placed it at `at`: PENDING, with no price or payment yet, to
    /// expire `deadline` later unless its saga ends first.
    pub fn place(id: Uuid, user_id: Uuid, new: NewOrder, at: OffsetDateTime, deadline: Duration) -> Self {
        Order {
            id,
            user_id,
            product_id: new.product_id,
            quantity: new.quantity,
            payment_method: new.payment_method,
            status: OrderStatus::Pending,
            failure_reason: None,
            failure_detail: None,
            unit_price: None,
            amount: None,
            payment_id: None,
            created_at: at,
            updated_at: at,
            deadline_at: at + deadline,
        }
    }

    /// The `order.expired` payload announcing that this order passed its deadline.
    pub fn expired_event(&self) -> OrderExpired {
        let after = (self.deadline_at - self.created_at).whole_seconds();
        OrderExpired { order_id: self.id, after_secs: u64::try_from(after).unwrap_or(0) }
    }

    /// The `order.created` payload that starts this order's saga.
    pub fn created_event(&self) -> OrderCreated {
        OrderCreated {
            order_id: self.id,
            user_id: self.user_id,
            product_id: self.product_id,
            quantity: self.quantity.get(),
            payment_method: self.payment_method,
        }
    }

    /// Decides what `change` does to this order at time `at`. A change that contradicts the order
    /// is refused whatever the status; otherwise the whole state machine is this table, and
    /// everything not listed is ignored.
    pub fn apply(&self, change: Change, at: OffsetDateTime) -> Transition {
        use OrderStatus::*;
        if let Some(contradiction) = self.contradiction(&change) {
            return Transition::Contradicted(contradiction);
        }
        match (self.status, change.target()) {
            (Pending, StockReserved)
            | (Pending | StockReserved, Failed | Expired)
            | (StockReserved, Paid)
            | (Paid, Cancelled) => Transition::Applied(self.changed(change, at)),
            (Pending, Paid) | (Pending | StockReserved, Cancelled) => Transition::Early { status: self.status },
            _ => Transition::Ignored { status: self.status },
        }
    }

    /// What in `change` cannot be true of this order, if anything. The reservation must be for the
    /// order's product and quantity at unit price x quantity; the payment must charge what was
    /// reserved (known once the stock is reserved: a payment before that is early, not wrong).
    fn contradiction(&self, change: &Change) -> Option<String> {
        let id = self.id;
        match *change {
            Change::StockReserved { product_id, quantity, unit_price, amount } => {
                if product_id != self.product_id {
                    Some(format!("stock reserved for product {product_id}; order {id} is for {}", self.product_id))
                } else if quantity != self.quantity.get() {
                    Some(format!("stock reserved for {quantity} units; order {id} is for {}", self.quantity.get()))
                } else if unit_price.times(quantity) != Some(amount) {
                    Some(format!("reserved amount {amount} is not unit price {unit_price} x quantity {quantity}"))
                } else {
                    None
                }
            }
            Change::Paid { amount, .. } => match self.amount {
                Some(reserved) if reserved != amount => {
                    Some(format!("payment of {amount} for order {id}, whose reserved amount is {reserved}"))
                }
                _ => None,
            },
            // A refund must be of this order's payment, in full.
            Change::Cancelled { payment_id, amount } => {
                if self.payment_id.is_some_and(|paid| paid != payment_id) {
                    Some(format!("payment {payment_id} cancelled; order {id} was paid by {:?}", self.payment_id))
                } else if self.amount.is_some_and(|reserved| reserved != amount) {
                    Some(format!("refund of {amount} for order {id}, whose amount is {:?}", self.amount))
                } else {
                    None
                }
            }
            Change::Failed { .. } | Change::Expired => None,
        }
    }

    fn changed(&self, change: Change, at: OffsetDateTime) -> Order {
        let mut next = Order { status: change.target(), updated_at: at, ..self.clone() };
        match change {
            Change::StockReserved { unit_price, amount, .. } => {
                next.unit_price = Some(unit_price);
                next.amount = Some(amount);
            }
            Change::Failed { reason, detail } => {
                next.failure_reason = Some(reason);
                next.failure_detail = detail;
            }
            Change::Paid { payment_id, .. } => next.payment_id = Some(payment_id),
            Change::Cancelled { .. } | Change::Expired => {}
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use common::event::PaymentDecline;

    use super::*;

    const PRODUCT: Uuid = Uuid::from_u128(0x0193a000_0000_7000_8000_000000000001);

    /// An order for 2 units of [`PRODUCT`].
    fn pending() -> Order {
        let new =
            NewOrder { product_id: PRODUCT, quantity: Quantity::new(2).unwrap(), payment_method: PaymentMethod::Card };
        Order::place(Uuid::now_v7(), Uuid::now_v7(), new, OffsetDateTime::UNIX_EPOCH, Duration::from_secs(600))
    }

    fn at(order: &Order, status: OrderStatus) -> Order {
        Order { status, ..order.clone() }
    }

    /// What svc-product reserves for [`pending`]'s order.
    fn reserve() -> Change {
        Change::StockReserved { product_id: PRODUCT, quantity: 2, unit_price: Won(15_000), amount: Won(30_000) }
    }

    fn fail(reason: OrderFailure) -> Change {
        Change::Failed { reason, detail: None }
    }

    /// What svc-payment charges for [`reserve`]'s reservation.
    fn paid() -> Change {
        Change::Paid { payment_id: Uuid::now_v7(), amount: Won(30_000) }
    }

    fn cancel() -> Change {
        Change::Cancelled { payment_id: Uuid::now_v7(), amount: Won(30_000) }
    }

    fn applied(t: Transition) -> Order {
        match t {
            Transition::Applied(order) => order,
            other => panic!("expected the change to apply, got {other:?}"),
        }
    }

    fn later() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(5)
    }

    #[test]
    fn a_placed_order_is_pending_without_price_or_payment() {
        let order = pending();
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!((order.unit_price, order.amount, order.payment_id, order.failure_reason), (None, None, None, None));
    }

    #[test]
    fn reserving_stock_records_the_price_and_the_time() {
        let order = applied(pending().apply(reserve(), later()));
        assert_eq!(order.status, OrderStatus::StockReserved);
        assert_eq!((order.unit_price, order.amount), (Some(Won(15_000)), Some(Won(30_000))));
        assert_eq!((order.created_at, order.updated_at), (OffsetDateTime::UNIX_EPOCH, later()));
    }

    #[test]
    fn a_reserved_order_is_paid_with_the_payment_id() {
        let payment_id = Uuid::now_v7();
        let reserved = applied(pending().apply(reserve(), later()));
        let order = applied(reserved.apply(Change::Paid { payment_id, amount: Won(30_000) }, later()));
        assert_eq!(
            (order.status, order.payment_id, order.amount),
            (OrderStatus::Paid, Some(payment_id), Some(Won(30_000)))
        );
    }

    #[test]
    fn a_pending_or_reserved_order_fails_with_its_reason_and_detail() {
        for from in [OrderStatus::Pending, OrderStatus::StockReserved] {
            let change =
                Change::Failed { reason: OrderFailure::PaymentDeclined, detail: Some("LIMIT_EXCEEDED".into()) };
            let order = applied(at(&pending(), from).apply(change, later()));
            assert_eq!(order.status, OrderStatus::Failed);
            assert_eq!(order.failure_reason, Some(OrderFailure::PaymentDeclined));
            assert_eq!(order.failure_detail.as_deref(), Some("LIMIT_EXCEEDED"));
        }
    }

    #[test]
    fn a_paid_order_can_be_cancelled() {
        let order = applied(at(&pending(), OrderStatus::Paid).apply(cancel(), later()));
        assert_eq!(order.status, OrderStatus::Cancelled);
    }

    #[test]
    fn a_refund_of_another_payment_or_amount_contradicts_the_order() {
        let reserved = applied(pending().apply(reserve(), later()));
        let payment_id = Uuid::now_v7();
        let paid_order = applied(reserved.apply(Change::Paid { payment_id, amount: Won(30_000) }, later()));
        let other_payment = Change::Cancelled { payment_id: Uuid::now_v7(), amount: Won(30_000) };
        let partial = Change::Cancelled { payment_id, amount: Won(10_000) };
        for change in [other_payment, partial] {
            assert!(matches!(paid_order.apply(change, later()), Transition::Contradicted(_)));
        }
        let full = Change::Cancelled { payment_id, amount: Won(30_000) };
        assert_eq!(applied(paid_order.apply(full, later())).status, OrderStatus::Cancelled);
    }

    #[test]
    fn nothing_moves_an_order_out_of_failed_or_cancelled() {
        for from in [OrderStatus::Failed, OrderStatus::Cancelled] {
            for change in [reserve(), fail(OrderFailure::OutOfStock), paid(), cancel()] {
                assert_eq!(at(&pending(), from).apply(change, later()), Transition::Ignored { status: from });
            }
        }
    }

    #[test]
    fn a_paid_order_ignores_everything_but_a_cancellation() {
        for change in [reserve(), fail(OrderFailure::PaymentDeclined), paid()] {
            let paid_order = at(&pending(), OrderStatus::Paid);
            assert_eq!(paid_order.apply(change, later()), Transition::Ignored { status: OrderStatus::Paid });
        }
    }

    #[test]
    fn a_second_reservation_is_ignored() {
        let reserved = applied(pending().apply(reserve(), later()));
        assert_eq!(reserved.apply(reserve(), later()), Transition::Ignored { status: OrderStatus::StockReserved });
    }

    #[test]
    fn a_payment_before_the_reservation_is_early() {
        assert_eq!(pending().apply(paid(), later()), Transition::Early { status: OrderStatus::Pending });
    }

    #[test]
    fn a_reservation_for_another_product_or_quantity_contradicts_the_order_whatever_its_status() {
        let other_product = Change::StockReserved {
            product_id: Uuid::now_v7(),
            quantity: 2,
            unit_price: Won(15_000),
            amount: Won(30_000),
        };
        let other_quantity =
            Change::StockReserved { product_id: PRODUCT, quantity: 3, unit_price: Won(15_000), amount: Won(45_000) };
        for status in [OrderStatus::Pending, OrderStatus::StockReserved, OrderStatus::Failed] {
            for change in [other_product.clone(), other_quantity.clone()] {
                let decision = at(&pending(), status).apply(change.clone(), later());
                assert!(matches!(decision, Transition::Contradicted(_)), "{status}, {change:?}: {decision:?}");
            }
        }
    }

    #[test]
    fn a_reservation_whose_amount_is_not_unit_price_times_quantity_contradicts_the_order() {
        for (unit_price, amount) in [(15_000, 29_999), (15_000, 15_000), (i64::MAX, 1)] {
            let change = Change::StockReserved {
                product_id: PRODUCT,
                quantity: 2,
                unit_price: Won(unit_price),
                amount: Won(amount),
            };
            assert!(
                matches!(pending().apply(change, later()), Transition::Contradicted(_)),
                "{unit_price} x 2 = {amount}"
            );
        }
    }

    #[test]
    fn a_payment_of_other_than_the_reserved_amount_contradicts_the_order() {
        let reserved = applied(pending().apply(reserve(), later()));
        let short = Change::Paid { payment_id: Uuid::now_v7(), amount: Won(29_999) };
        assert!(matches!(reserved.apply(short.clone(), later()), Transition::Contradicted(_)));
        let paid_order = applied(reserved.apply(paid(), later()));
        assert!(matches!(paid_order.apply(short, later()), Transition::Contradicted(_)), "even once paid");
    }

    #[test]
    fn a_cancellation_before_the_payment_is_early() {
        for from in [OrderStatus::Pending, OrderStatus::StockReserved] {
            assert_eq!(at(&pending(), from).apply(cancel(), later()), Transition::Early { status: from });
        }
    }

    #[test]
    fn only_pending_and_stock_reserved_are_unsettled() {
        use OrderStatus::*;
        let unsettled: Vec<_> =
            [Pending, StockReserved, Paid, Failed, Cancelled].into_iter().filter(|s| !s.is_settled()).collect();
        assert_eq!(unsettled, [Pending, StockReserved]);
    }

    #[test]
    fn statuses_round_trip_through_their_wire_names() {
        use OrderStatus::*;
        for status in [Pending, StockReserved, Paid, Failed, Cancelled] {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(OrderStatus::parse("pending"), None);
    }

    #[test]
    fn decline_codes_are_the_wire_spelling() {
        for decline in [PaymentDecline::LimitExceeded, PaymentDecline::Declined] {
            assert_eq!(serde_json::to_value(decline).unwrap(), decline.as_str());
        }
    }

    #[test]
    fn the_created_event_carries_the_order_as_placed() {
        let order = pending();
        let event = order.created_event();
        assert_eq!((event.order_id, event.user_id, event.product_id), (order.id, order.user_id, order.product_id));
        assert_eq!((event.quantity, event.payment_method), (2, PaymentMethod::Card));
    }
}
