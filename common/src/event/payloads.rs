//! Every event's payload: what each event says, field by field (camelCase on the wire).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::vocabulary::{OrderFailure, PaymentDecline, PaymentMethod, ReleaseReason, Role, StockRejection, Won};

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

/// `order.expired.<orderId>`: the order was neither paid nor failed within its deadline
/// (`ORDER_DEADLINE_SECS` after it was placed). Its saga is over: svc-product gives the stock
/// back and svc-payment refunds a charge that arrives or arrived for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderExpired {
    pub order_id: Uuid,
    /// The deadline that passed, in seconds after the order was placed.
    pub after_secs: u64,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Which part of the day's close this event is, from 1. A day with more sellers than fit one
    /// event ([`SettlementClosed::PAYOUTS_PER_PART`]) is announced in several, committed together,
    /// each with its share of the payouts and the same date, rate and `ledgerEntries`, so no
    /// event nears the broker's payload limit. Absent (1 of 1) for a day that fits one event.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub part: u32,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub parts: u32,
}

impl SettlementClosed {
    /// Payouts per event: about 200 KB of JSON, a fifth of NATS's default 1 MB `max_payload`.
    pub const PAYOUTS_PER_PART: usize = 1000;
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}
