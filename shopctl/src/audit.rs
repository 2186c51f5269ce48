//! `shopctl audit`: checks the whole system's invariants through the services' admin APIs.
//!
//! Three steps, so that `shopctl chaos` can run them too: [`fetch`] reads everything over HTTP as
//! an admin into a [`Snapshot`], [`check`] (pure) turns it into a [`Report`] of [`Violation`]s, and
//! [`print`] shows it. The reads are not one transaction across services, so the audit is meant
//! for a system at rest (after a load or chaos run has drained), not one still taking orders.
//!
//! What must hold, per order, once its saga has ended (see docs/EVENTS.md):
//!
//! | order end                     | gateway (charges for the order)  | svc-payment      | reservation                |
//! |-------------------------------|----------------------------------|------------------|----------------------------|
//! | PAID                          | one SUCCEEDED, its amount, unrefunded | a COMPLETED one | RESERVED                 |
//! | FAILED (stock rejected)       | Σ charged = Σ refunded           | none COMPLETED   | REJECTED                   |
//! | FAILED (payment declined)     | Σ charged = Σ refunded           | none COMPLETED   | RELEASED                   |
//! | CANCELLED                     | Σ charged = Σ refunded           | none COMPLETED   | RELEASED                   |
//! | EXPIRED                       | Σ charged = Σ refunded           | none COMPLETED   | RELEASED, REJECTED or none |
//!
//! An EXPIRED order may have had its stock rejected (the rejection came after the deadline) or
//! never reserved (its `order.created` reached svc-product after `order.expired` closed it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use common::admin::OutboxBacklog;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

/// Development defaults for the admin account, as `shopctl up` sets them (see up.rs).
pub const DEV_ADMIN_EMAIL: &str = "admin@msa-shop.local";
pub const DEV_ADMIN_PASSWORD: &str = "admin-dev-password-1";

/// An order whose deadline passed longer ago than this must have ended.
const STUCK_AFTER: time::Duration = time::Duration::seconds(10);
/// The largest page the services serve.
const PAGE_SIZE: usize = 100;
/// The largest page the gateway serves.
const CHARGES_PAGE: usize = 1000;

/// Where each service answers; the defaults are the addresses `shopctl up` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub user: String,
    pub product: String,
    pub order: String,
    pub payment: String,
    pub settlement: String,
    pub gateway: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            user: "http://127.0.0.1:8081".into(),
            product: "http://127.0.0.1:8082".into(),
            order: "http://127.0.0.1:8083".into(),
            payment: "http://127.0.0.1:8084".into(),
            settlement: "http://127.0.0.1:8085".into(),
            gateway: "http://127.0.0.1:8090".into(),
        }
    }
}

impl Endpoints {
    /// The services with an admin API every service has (`/admin/outbox`, `/admin/dead-letters`).
    fn services(&self) -> [(&'static str, &str); 5] {
        [
            ("svc-user", &self.user),
            ("svc-product", &self.product),
            ("svc-order", &self.order),
            ("svc-payment", &self.payment),
            ("svc-settlement", &self.settlement),
        ]
    }
}

/// `GET /admin/orders` (svc-order).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: String,
    pub product_id: String,
    pub quantity: i64,
    pub status: String,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub payment_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub deadline_at: OffsetDateTime,
}

impl Order {
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "PAID" | "FAILED" | "CANCELLED" | "EXPIRED")
    }
}

/// `GET /admin/products` (svc-product).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: String,
    pub seller_id: String,
    pub stock: i64,
    pub stocked: i64,
    pub reserved: i64,
}

/// `GET /admin/reservations` (svc-product).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub order_id: String,
    pub product_id: String,
    pub quantity: i64,
    pub status: String,
}

/// `GET /admin/payments` (svc-payment).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub id: String,
    pub order_id: String,
    pub amount: i64,
    /// COMPLETED, FAILED or CANCELLED.
    pub status: String,
}

impl Payment {
    /// Completed at some point: a sale was booked for it.
    fn ever_completed(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETED" | "CANCELLED")
    }
}

/// `GET /v1/charges` (the payment gateway): the money that really moved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    pub seq: i64,
    pub id: String,
    /// The order id.
    pub reference: String,
    pub amount: i64,
    /// SUCCEEDED or DECLINED.
    pub status: String,
    /// Won refunded: 0 or the amount.
    #[serde(default)]
    pub refunded: i64,
}

impl Charge {
    fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

/// `GET /admin/ledger` (svc-settlement).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub id: String,
    /// SALE or REFUND.
    pub kind: String,
    pub payment_id: String,
    pub order_id: String,
    pub seller_id: String,
    pub amount: i64,
    pub business_date: String,
}

/// One seller's net (sales minus refunds) for one business day, as svc-settlement's daily report
/// states it (summed over the seller's categories).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedNet {
    pub date: String,
    pub seller_id: String,
    pub net: i64,
}

/// A dead letter of some service, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSummary {
    #[serde(default)]
    pub service: String,
    pub seq: i64,
    pub consumer: String,
    pub subject: String,
    #[serde(default)]
    pub message_id: Option<String>,
    pub deliveries: i64,
    pub reason: String,
    #[serde(default)]
    pub replayed_at: Option<String>,
}

/// Everything the audit reads, as it was read.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When the orders were read: the clock the deadlines are judged by.
    pub fetched_at: OffsetDateTime,
    pub orders: Vec<Order>,
    pub products: Vec<Product>,
    pub reservations: Vec<Reservation>,
    pub payments: Vec<Payment>,
    pub charges: Vec<Charge>,
    pub ledger: Vec<LedgerEntry>,
    /// The daily reports of every business day the ledger has entries on.
    pub reported: Vec<ReportedNet>,
    /// Each service's outbox backlog, by service name.
    pub outboxes: BTreeMap<String, OutboxBacklog>,
    pub dead_letters: Vec<DeadLetterSummary>,
}

/// One broken invariant, naming the ids involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Past its deadline (by more than 10 s) and still running.
    Stuck {
        order: String,
        status: String,
        overdue_secs: i64,
    },
    /// More than one SUCCEEDED charge for one order.
    ChargedTwice {
        order: String,
        charges: Vec<String>,
    },
    /// PAID, but the gateway has no SUCCEEDED charge for it.
    PaidWithoutCharge {
        order: String,
    },
    /// PAID, but its charge is not of the order's amount or was refunded.
    PaidChargeWrong {
        order: String,
        charge: String,
        amount: i64,
        refunded: i64,
        expected: Option<i64>,
    },
    /// PAID, but svc-payment has no COMPLETED payment for it.
    PaidWithoutPayment {
        order: String,
    },
    /// Ended unpaid, but the gateway kept money: charged and refunded differ.
    NotRefunded {
        order: String,
        status: String,
        charged: i64,
        refunded: i64,
    },
    /// Ended unpaid, but svc-payment holds a COMPLETED payment for it.
    CompletedPaymentForUnpaid {
        order: String,
        status: String,
        payment: String,
    },
    /// svc-payment's status says otherwise than the gateway's charges.
    PaymentDisagrees {
        payment: String,
        order: String,
        status: String,
        gateway: &'static str,
    },
    /// `stocked != stock + reserved`: units appeared or vanished.
    StockMismatch {
        product: String,
        stocked: i64,
        stock: i64,
        reserved: i64,
    },
    /// A RESERVED reservation for an order that ended unpaid (or that svc-order does not know).
    LeakedStock {
        order: String,
        status: String,
        product: String,
        quantity: i64,
    },
    /// A PAID order whose reservation is not RESERVED.
    PaidWithoutReservation {
        order: String,
        reservation: Option<String>,
    },
    /// An unpaid end whose reservation is in a state that end cannot leave.
    ReservationMismatch {
        order: String,
        status: String,
        reservation: Option<String>,
        expected: &'static str,
    },
    /// A completed payment without exactly one SALE of its amount for its product's seller.
    SaleMissing {
        payment: String,
        order: String,
        found: usize,
    },
    SaleWrong {
        payment: String,
        entry: String,
        amount: i64,
        expected_amount: i64,
        seller: String,
        expected_seller: Option<String>,
    },
    /// A CANCELLED payment without exactly one REFUND of its amount.
    RefundMissing {
        payment: String,
        order: String,
        found: usize,
    },
    RefundWrong {
        payment: String,
        entry: String,
        amount: i64,
        expected_amount: i64,
    },
    /// An entry for a payment that never completed (or was never refunded, for a REFUND).
    UnexpectedEntry {
        entry: String,
        kind: String,
        payment: String,
        status: Option<String>,
    },
    /// The ledger's SALE − REFUND of a seller's day differs from the daily report.
    ReportDiffers {
        date: String,
        seller: String,
        ledger: i64,
        report: i64,
    },
    /// Outbox rows not yet published.
    Unpublished {
        service: String,
        count: i64,
        oldest_ms: Option<i64>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Violation::*;
        match self {
            Stuck { order, status, overdue_secs } => {
                write!(f, "stuck: order {order} is {status} {overdue_secs} s after its deadline")
            }
            ChargedTwice { order, charges } => {
                write!(f, "charged twice: order {order} has SUCCEEDED charges {}", charges.join(", "))
            }
            PaidWithoutCharge { order } => {
                write!(f, "paid without charge: order {order} is PAID, the gateway never charged it")
            }
            PaidChargeWrong { order, charge, amount, refunded, expected } => write!(
                f,
                "paid charge wrong: order {order} (amount {}) has charge {charge} of {amount}, refunded {refunded}",
                expected.map_or("none".to_owned(), |a| a.to_string())
            ),
            PaidWithoutPayment { order } => write!(f, "paid without payment: order {order} has no COMPLETED payment"),
            NotRefunded { order, status, charged, refunded } => {
                write!(f, "not refunded: order {order} is {status}; gateway charged {charged}, refunded {refunded}")
            }
            CompletedPaymentForUnpaid { order, status, payment } => {
                write!(
                    f,
                    "completed payment for unpaid order: order {order} is {status}, payment {payment} is COMPLETED"
                )
            }
            PaymentDisagrees { payment, order, status, gateway } => write!(
                f,
                "payment disagrees with gateway: payment {payment} (order {order}) is {status}, the gateway's charge is {gateway}"
            ),
            StockMismatch { product, stocked, stock, reserved } => {
                write!(f, "stock mismatch: product {product} stocked {stocked} != stock {stock} + reserved {reserved}")
            }
            LeakedStock { order, status, product, quantity } => write!(
                f,
                "leaked stock: order {order} is {status} but holds {quantity} units of product {product} RESERVED"
            ),
            PaidWithoutReservation { order, reservation } => write!(
                f,
                "paid without reservation: order {order} is PAID, its reservation is {}",
                reservation.as_deref().unwrap_or("missing")
            ),
            ReservationMismatch { order, status, reservation, expected } => write!(
                f,
                "reservation mismatch: order {order} is {status}, its reservation is {} (expected {expected})",
                reservation.as_deref().unwrap_or("missing")
            ),
            SaleMissing { payment, order, found } => {
                write!(f, "sale missing: payment {payment} (order {order}) has {found} SALE entries, not 1")
            }
            SaleWrong { payment, entry, amount, expected_amount, seller, expected_seller } => write!(
                f,
                "sale wrong: entry {entry} of payment {payment} books {amount} for seller {seller}; expected {expected_amount} for {}",
                expected_seller.as_deref().unwrap_or("an unknown seller")
            ),
            RefundMissing { payment, order, found } => {
                write!(
                    f,
                    "refund missing: payment {payment} (order {order}) is CANCELLED with {found} REFUND entries, not 1"
                )
            }
            RefundWrong { payment, entry, amount, expected_amount } => {
                write!(f, "refund wrong: entry {entry} of payment {payment} books {amount}, expected {expected_amount}")
            }
            UnexpectedEntry { entry, kind, payment, status } => write!(
                f,
                "unexpected entry: {kind} {entry} for payment {payment}, which is {}",
                status.as_deref().unwrap_or("unknown to svc-payment")
            ),
            ReportDiffers { date, seller, ledger, report } => {
                write!(f, "report differs: seller {seller} on {date}: ledger net {ledger}, daily report net {report}")
            }
            Unpublished { service, count, oldest_ms } => write!(
                f,
                "unpublished: {service} has {count} outbox rows unpublished (oldest created at {} ms)",
                oldest_ms.map_or("-".to_owned(), |ms| ms.to_string())
            ),
        }
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub orders: usize,
    /// Orders by status.
    pub outcomes: BTreeMap<String, usize>,
    pub violations: Vec<Violation>,
    /// Unpublished outbox rows, by service.
    pub unpublished: BTreeMap<String, i64>,
    pub dead_letters: Vec<DeadLetterSummary>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks every invariant over `snap`.
pub fn check(snap: &Snapshot) -> Report {
    let mut v = Vec::new();
    let orders: BTreeMap<&str, &Order> = snap.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut charges: BTreeMap<&str, Vec<&Charge>> = BTreeMap::new();
    for c in &snap.charges {
        charges.entry(c.reference.as_str()).or_default().push(c);
    }
    let mut payments: BTreeMap<&str, Vec<&Payment>> = BTreeMap::new();
    for p in &snap.payments {
        payments.entry(p.order_id.as_str()).or_default().push(p);
    }
    let reservations: BTreeMap<&str, &Reservation> =
        snap.reservations.iter().map(|r| (r.order_id.as_str(), r)).collect();
    let products: BTreeMap<&str, &Product> = snap.products.iter().map(|p| (p.id.as_str(), p)).collect();

    for order in &snap.orders {
        check_deadline(snap.fetched_at, order, &mut v);
        let charged: Vec<&Charge> =
            charges.get(order.id.as_str()).into_iter().flatten().copied().filter(|c| c.succeeded()).collect();
        if charged.len() > 1 {
            v.push(Violation::ChargedTwice {
                order: order.id.clone(),
                charges: charged.iter().map(|c| c.id.clone()).collect(),
            });
        }
        if !order.is_terminal() {
            continue; // in flight: its money and stock may still move
        }
        let paid_for = payments.get(order.id.as_str()).map(Vec::as_slice).unwrap_or_default();
        check_money(order, &charged, paid_for, &mut v);
        check_reservation(order, reservations.get(order.id.as_str()).copied(), &mut v);
    }
    // Stock held for an order svc-order never heard of will never be released.
    for r in &snap.reservations {
        if r.status == "RESERVED" && !orders.contains_key(r.order_id.as_str()) {
            v.push(Violation::LeakedStock {
                order: r.order_id.clone(),
                status: "unknown to svc-order".into(),
                product: r.product_id.clone(),
                quantity: r.quantity,
            });
        }
    }
    for p in &snap.products {
        if p.stocked != p.stock + p.reserved {
            v.push(Violation::StockMismatch {
                product: p.id.clone(),
                stocked: p.stocked,
                stock: p.stock,
                reserved: p.reserved,
            });
        }
    }
    check_payments_against_gateway(snap, &orders, &charges, &mut v);
    check_ledger(snap, &orders, &products, &mut v);
    let mut unpublished = BTreeMap::new();
    for (service, backlog) in &snap.outboxes {
        unpublished.insert(service.clone(), backlog.unpublished);
        if backlog.unpublished != 0 {
            v.push(Violation::Unpublished {
                service: service.clone(),
                count: backlog.unpublished,
                oldest_ms: backlog.oldest,
            });
        }
    }
    let mut outcomes = BTreeMap::new();
    for o in &snap.orders {
        *outcomes.entry(o.status.clone()).or_insert(0) += 1;
    }
    Report { orders: snap.orders.len(), outcomes, violations: v, unpublished, dead_letters: snap.dead_letters.clone() }
}

fn check_deadline(now: OffsetDateTime, order: &Order, v: &mut Vec<Violation>) {
    let overdue = now - order.deadline_at;
    if !order.is_terminal() && overdue > STUCK_AFTER {
        v.push(Violation::Stuck {
            order: order.id.clone(),
            status: order.status.clone(),
            overdue_secs: overdue.whole_seconds(),
        });
    }
}

/// A terminal order's money: the gateway's charges and svc-payment's payments for it.
fn check_money(order: &Order, charged: &[&Charge], payments: &[&Payment], v: &mut Vec<Violation>) {
    let completed = payments.iter().find(|p| p.status == "COMPLETED");
    if order.status == "PAID" {
        match charged {
            [] => v.push(Violation::PaidWithoutCharge { order: order.id.clone() }),
            [c] if Some(c.amount) != order.amount || c.refunded != 0 => v.push(Violation::PaidChargeWrong {
                order: order.id.clone(),
                charge: c.id.clone(),
                amount: c.amount,
                refunded: c.refunded,
                expected: order.amount,
            }),
            _ => {} // one right charge, or several: ChargedTwice already says so
        }
        if completed.is_none() {
            v.push(Violation::PaidWithoutPayment { order: order.id.clone() });
        }
        return;
    }
    let (sum_charged, sum_refunded) = charged.iter().fold((0, 0), |(c, r), ch| (c + ch.amount, r + ch.refunded));
    if sum_charged != sum_refunded {
        v.push(Violation::NotRefunded {
            order: order.id.clone(),
            status: order.status.clone(),
            charged: sum_charged,
            refunded: sum_refunded,
        });
    }
    if let Some(p) = completed {
        v.push(Violation::CompletedPaymentForUnpaid {
            order: order.id.clone(),
            status: order.status.clone(),
            payment: p.id.clone(),
        });
    }
}

/// The reservation an order's end leaves, as svc-product's saga makes it (see the module doc).
fn check_reservation(order: &Order, reservation: Option<&Reservation>, v: &mut Vec<Violation>) {
    let status = reservation.map(|r| r.status.as_str());
    if order.status == "PAID" {
        if status != Some("RESERVED") {
            v.push(Violation::PaidWithoutReservation {
                order: order.id.clone(),
                reservation: status.map(str::to_owned),
            });
        }
        return;
    }
    if let Some(r) = reservation.filter(|r| r.status == "RESERVED") {
        v.push(Violation::LeakedStock {
            order: order.id.clone(),
            status: order.status.clone(),
            product: r.product_id.clone(),
            quantity: r.quantity,
        });
        return;
    }
    let stock_refused = matches!(order.failure_reason.as_deref(), Some("OUT_OF_STOCK" | "PRODUCT_NOT_FOUND"));
    let (ok, expected) = match order.status.as_str() {
        "FAILED" if stock_refused => (status == Some("REJECTED"), "REJECTED"),
        "FAILED" | "CANCELLED" => (status == Some("RELEASED"), "RELEASED"),
        _ => (matches!(status, None | Some("RELEASED" | "REJECTED")), "RELEASED, REJECTED or none"),
    };
    if !ok {
        v.push(Violation::ReservationMismatch {
            order: order.id.clone(),
            status: order.status.clone(),
            reservation: status.map(str::to_owned),
            expected,
        });
    }
}

/// svc-payment's status against the gateway's charges for the same order: COMPLETED ⇔ a charge
/// succeeded and is unrefunded; CANCELLED ⇔ it was refunded; FAILED ⇔ no money kept or returned.
fn check_payments_against_gateway(
    snap: &Snapshot,
    orders: &BTreeMap<&str, &Order>,
    charges: &BTreeMap<&str, Vec<&Charge>>,
    v: &mut Vec<Violation>,
) {
    for p in &snap.payments {
        if orders.get(p.order_id.as_str()).is_some_and(|o| !o.is_terminal()) {
            continue;
        }
        let succeeded: Vec<&Charge> =
            charges.get(p.order_id.as_str()).into_iter().flatten().copied().filter(|c| c.succeeded()).collect();
        let gateway = if succeeded.iter().any(|c| c.refunded == 0) {
            "succeeded and unrefunded"
        } else if succeeded.iter().any(|c| c.refunded > 0) {
            "refunded"
        } else {
            "absent or declined"
        };
        let agrees = match p.status.as_str() {
            "COMPLETED" => gateway == "succeeded and unrefunded",
            "CANCELLED" => gateway == "refunded",
            _ => gateway == "absent or declined",
        };
        if !agrees {
            v.push(Violation::PaymentDisagrees {
                payment: p.id.clone(),
                order: p.order_id.clone(),
                status: p.status.clone(),
                gateway,
            });
        }
    }
}

/// The ledger against the payments: one SALE per completed payment, one REFUND per cancelled one,
/// nothing else; and against svc-settlement's own daily reports.
fn check_ledger(
    snap: &Snapshot,
    orders: &BTreeMap<&str, &Order>,
    products: &BTreeMap<&str, &Product>,
    v: &mut Vec<Violation>,
) {
    let mut entries: BTreeMap<(&str, &str), Vec<&LedgerEntry>> = BTreeMap::new();
    for e in &snap.ledger {
        entries.entry((e.payment_id.as_str(), e.kind.as_str())).or_default().push(e);
    }
    let payments: BTreeMap<&str, &Payment> = snap.payments.iter().map(|p| (p.id.as_str(), p)).collect();
    for p in &snap.payments {
        let seller = orders
            .get(p.order_id.as_str())
            .and_then(|o| products.get(o.product_id.as_str()))
            .map(|prod| prod.seller_id.clone());
        let sales = entries.get(&(p.id.as_str(), "SALE")).map(Vec::as_slice).unwrap_or_default();
        if p.ever_completed() {
            match sales {
                [e] if e.amount != p.amount || Some(&e.seller_id) != seller.as_ref() => v.push(Violation::SaleWrong {
                    payment: p.id.clone(),
                    entry: e.id.clone(),
                    amount: e.amount,
                    expected_amount: p.amount,
                    seller: e.seller_id.clone(),
                    expected_seller: seller.clone(),
                }),
                [_] => {}
                _ => v.push(Violation::SaleMissing {
                    payment: p.id.clone(),
                    order: p.order_id.clone(),
                    found: sales.len(),
                }),
            }
        }
        let refunds = entries.get(&(p.id.as_str(), "REFUND")).map(Vec::as_slice).unwrap_or_default();
        if p.status == "CANCELLED" {
            match refunds {
                [e] if e.amount != p.amount => v.push(Violation::RefundWrong {
                    payment: p.id.clone(),
                    entry: e.id.clone(),
                    amount: e.amount,
                    expected_amount: p.amount,
                }),
                [_] => {}
                _ => v.push(Violation::RefundMissing {
                    payment: p.id.clone(),
                    order: p.order_id.clone(),
                    found: refunds.len(),
                }),
            }
        }
    }
    for e in &snap.ledger {
        let payment = payments.get(e.payment_id.as_str());
        let allowed = payment.is_some_and(|p| match e.kind.as_str() {
            "SALE" => p.ever_completed(),
            _ => p.status == "CANCELLED",
        });
        if !allowed {
            v.push(Violation::UnexpectedEntry {
                entry: e.id.clone(),
                kind: e.kind.clone(),
                payment: e.payment_id.clone(),
                status: payment.map(|p| p.status.clone()),
            });
        }
    }
    let mut nets: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for e in &snap.ledger {
        let sign = if e.kind == "SALE" { 1 } else { -1 };
        *nets.entry((e.business_date.as_str(), e.seller_id.as_str())).or_default() += sign * e.amount;
    }
    let reported: BTreeMap<(&str, &str), i64> =
        snap.reported.iter().map(|r| ((r.date.as_str(), r.seller_id.as_str()), r.net)).collect();
    let days: BTreeSet<&str> = snap.reported.iter().map(|r| r.date.as_str()).collect();
    let keys: BTreeSet<(&str, &str)> = nets.keys().chain(reported.keys()).copied().collect();
    for key @ (date, seller) in keys {
        if !days.contains(date) {
            continue; // that day's report was not read
        }
        let (ledger, report) = (nets.get(&key).copied().unwrap_or(0), reported.get(&key).copied().unwrap_or(0));
        if ledger != report {
            v.push(Violation::ReportDiffers { date: date.into(), seller: seller.into(), ledger, report });
        }
    }
}

/// The one-line summary, then a line per violation and per dead letter.
pub fn print(report: &Report) {
    let outcomes: Vec<String> = report.outcomes.iter().map(|(status, n)| format!("{status} {n}")).collect();
    let outcomes = if outcomes.is_empty() { String::new() } else { format!(" ({})", outcomes.join(", ")) };
    println!(
        "audit: {} orders{outcomes}; {} violations; {} unpublished; {} dead letters",
        report.orders,
        report.violations.len(),
        report.unpublished.values().sum::<i64>(),
        report.dead_letters.len()
    );
    for violation in &report.violations {
        println!("violation: {violation}");
    }
    for d in &report.dead_letters {
        let replayed = if d.replayed_at.is_some() { " (replayed)" } else { "" };
        println!(
            "dead letter: {} #{} [{}] {} msg-id={} after {} deliveries{replayed}: {}",
            d.service,
            d.seq,
            d.consumer,
            d.subject,
            d.message_id.as_deref().unwrap_or("-"),
            d.deliveries,
            d.reason
        );
    }
}

/// `shopctl audit`: fetch, check, print; non-zero on any violation.
pub fn run(endpoints: &Endpoints, email: &str, password: &str) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let snapshot = runtime.block_on(async {
        let http = client()?;
        let token = login(&http, &endpoints.user, email, password).await?;
        fetch(endpoints, &token).await
    })?;
    let report = check(&snapshot);
    print(&report);
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("building the HTTP client")
}

/// Logs in at svc-user (`POST /auth/login`) and returns the access token.
pub async fn login(http: &reqwest::Client, user_url: &str, email: &str, password: &str) -> Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Login {
        access_token: String,
    }
    let url = format!("{user_url}/auth/login");
    let res = http
        .post(&url)
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .with_context(|| format!("POST {url} (is svc-user up?)"))?;
    Ok(answer::<Login>(res, &url).await.context("logging in as the admin")?.access_token)
}

/// Reads everything [`check`] needs, as the admin `token` may.
pub async fn fetch(endpoints: &Endpoints, token: &str) -> Result<Snapshot> {
    let http = client()?;
    let fetched_at = OffsetDateTime::now_utc();
    let orders: Vec<Order> = all_pages(&http, token, &format!("{}/admin/orders", endpoints.order)).await?;
    let products = all_pages(&http, token, &format!("{}/admin/products", endpoints.product)).await?;
    let reservations = all_pages(&http, token, &format!("{}/admin/reservations", endpoints.product)).await?;
    let payments = all_pages(&http, token, &format!("{}/admin/payments", endpoints.payment)).await?;
    let charges = all_charges(&http, &endpoints.gateway).await?;
    let ledger: Vec<LedgerEntry> = all_pages(&http, token, &format!("{}/admin/ledger", endpoints.settlement)).await?;
    let days: BTreeSet<&str> = ledger.iter().map(|e| e.business_date.as_str()).collect();
    let mut reported = Vec::new();
    for day in days {
        reported.extend(daily_nets(&http, token, &endpoints.settlement, day).await?);
    }
    let mut outboxes = BTreeMap::new();
    let mut dead_letters = Vec::new();
    for (service, base) in endpoints.services() {
        let url = format!("{base}/admin/outbox");
        outboxes.insert(service.to_owned(), get::<OutboxBacklog>(&http, token, &url).await?);
        let letters: Vec<DeadLetterSummary> = all_pages(&http, token, &format!("{base}/admin/dead-letters")).await?;
        dead_letters.extend(letters.into_iter().map(|d| DeadLetterSummary { service: service.to_owned(), ..d }));
    }
    Ok(Snapshot {
        fetched_at,
        orders,
        products,
        reservations,
        payments,
        charges,
        ledger,
        reported,
        outboxes,
        dead_letters,
    })
}

async fn answer<T: DeserializeOwned>(res: reqwest::Response, url: &str) -> Result<T> {
    let status = res.status();
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        bail!("{url} answered {status}: {body}");
    }
    res.json().await.with_context(|| format!("reading the answer of {url}"))
}

async fn get<T: DeserializeOwned>(http: &reqwest::Client, token: &str, url: &str) -> Result<T> {
    let res = http.get(url).bearer_auth(token).send().await.with_context(|| format!("GET {url}"))?;
    answer(res, url).await
}

/// Every item of a paged admin list (`?page=&size=` → `{items, page, size, total}`).
async fn all_pages<T: DeserializeOwned>(http: &reqwest::Client, token: &str, url: &str) -> Result<Vec<T>> {
    #[derive(Deserialize)]
    struct Page<T> {
        items: Vec<T>,
        total: usize,
    }
    let mut all = Vec::new();
    for page in 1.. {
        let page: Page<T> = get(http, token, &format!("{url}?page={page}&size={PAGE_SIZE}")).await?;
        let last = page.items.len() < PAGE_SIZE;
        all.extend(page.items);
        if last || all.len() >= page.total {
            break;
        }
    }
    Ok(all)
}

/// Every charge the gateway recorded, following `next` until it is null.
async fn all_charges(http: &reqwest::Client, gateway: &str) -> Result<Vec<Charge>> {
    #[derive(Deserialize)]
    struct Charges {
        items: Vec<Charge>,
        next: Option<i64>,
    }
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let url = format!("{gateway}/v1/charges?after={after}&limit={CHARGES_PAGE}");
        let res = http.get(&url).send().await.with_context(|| format!("GET {url} (is the payment gateway up?)"))?;
        let page: Charges = answer(res, &url).await?;
        all.extend(page.items);
        match page.next {
            Some(next) if next > after => after = next,
            _ => break,
        }
    }
    Ok(all)
}

/// Each seller's net on `day`, from svc-settlement's daily report.
async fn daily_nets(http: &reqwest::Client, token: &str, settlement: &str, day: &str) -> Result<Vec<ReportedNet>> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        seller_id: String,
        net: i64,
    }
    #[derive(Deserialize)]
    struct Daily {
        rows: Vec<Row>,
    }
    let daily: Daily = get(http, token, &format!("{settlement}/settlements/daily?date={day}")).await?;
    let mut nets: BTreeMap<String, i64> = BTreeMap::new();
    for row in daily.rows {
        *nets.entry(row.seller_id).or_default() += row.net;
    }
    Ok(nets.into_iter().map(|(seller_id, net)| ReportedNet { date: day.to_owned(), seller_id, net }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn order(id: &str, status: &str) -> Order {
        Order {
            id: id.into(),
            product_id: "p1".into(),
            quantity: 2,
            status: status.into(),
            failure_reason: None,
            amount: Some(2000),
            payment_id: None,
            deadline_at: at(NOW + 600),
        }
    }

    fn charge(id: &str, order: &str, amount: i64, refunded: i64) -> Charge {
        Charge { seq: 1, id: id.into(), reference: order.into(), amount, status: "SUCCEEDED".into(), refunded }
    }

    fn payment(id: &str, order: &str, status: &str) -> Payment {
        Payment { id: id.into(), order_id: order.into(), amount: 2000, status: status.into() }
    }

    fn reservation(order: &str, status: &str) -> Reservation {
        Reservation { order_id: order.into(), product_id: "p1".into(), quantity: 2, status: status.into() }
    }

    fn entry(id: &str, kind: &str, payment: &str, amount: i64) -> LedgerEntry {
        LedgerEntry {
            id: id.into(),
            kind: kind.into(),
            payment_id: payment.into(),
            order_id: "o".into(),
            seller_id: "s1".into(),
            amount,
            business_date: "2027-01-15".into(),
        }
    }

    /// A consistent system: one order of each end, with everything the saga leaves behind.
    fn clean() -> Snapshot {
        let mut out_of_stock = order("o-oos", "FAILED");
        out_of_stock.failure_reason = Some("OUT_OF_STOCK".into());
        out_of_stock.amount = None;
        let mut declined = order("o-declined", "FAILED");
        declined.failure_reason = Some("PAYMENT_DECLINED".into());
        let mut expired = order("o-expired", "EXPIRED");
        expired.deadline_at = at(NOW - 60);
        let mut in_flight = order("o-running", "STOCK_RESERVED");
        in_flight.deadline_at = at(NOW - 5);
        Snapshot {
            fetched_at: at(NOW),
            orders: vec![
                order("o-paid", "PAID"),
                out_of_stock,
                declined,
                order("o-cancelled", "CANCELLED"),
                expired,
                in_flight,
            ],
            products: vec![Product { id: "p1".into(), seller_id: "s1".into(), stock: 96, stocked: 100, reserved: 4 }],
            reservations: vec![
                reservation("o-paid", "RESERVED"),
                reservation("o-oos", "REJECTED"),
                reservation("o-declined", "RELEASED"),
                reservation("o-cancelled", "RELEASED"),
                reservation("o-expired", "RELEASED"),
                reservation("o-running", "RESERVED"),
            ],
            payments: vec![
                payment("pay-paid", "o-paid", "COMPLETED"),
                payment("pay-declined", "o-declined", "FAILED"),
                payment("pay-cancelled", "o-cancelled", "CANCELLED"),
                payment("pay-expired", "o-expired", "CANCELLED"),
            ],
            charges: vec![
                charge("ch-paid", "o-paid", 2000, 0),
                Charge { status: "DECLINED".into(), ..charge("ch-declined", "o-declined", 2000, 0) },
                charge("ch-cancelled", "o-cancelled", 2000, 2000),
                charge("ch-expired", "o-expired", 2000, 2000),
            ],
            ledger: vec![
                entry("e1", "SALE", "pay-paid", 2000),
                entry("e2", "SALE", "pay-cancelled", 2000),
                entry("e3", "REFUND", "pay-cancelled", 2000),
                entry("e4", "SALE", "pay-expired", 2000),
                entry("e5", "REFUND", "pay-expired", 2000),
            ],
            reported: vec![ReportedNet { date: "2027-01-15".into(), seller_id: "s1".into(), net: 2000 }],
            outboxes: [("svc-order".to_owned(), OutboxBacklog { unpublished: 0, oldest: None })].into(),
            dead_letters: vec![],
        }
    }

    fn violations(snap: &Snapshot) -> Vec<Violation> {
        check(snap).violations
    }

    fn order_mut<'a>(snap: &'a mut Snapshot, id: &str) -> &'a mut Order {
        snap.orders.iter_mut().find(|o| o.id == id).unwrap()
    }

    fn reservation_mut<'a>(snap: &'a mut Snapshot, order: &str) -> &'a mut Reservation {
        snap.reservations.iter_mut().find(|r| r.order_id == order).unwrap()
    }

    #[test]
    fn a_consistent_system_has_no_violations_and_counts_its_outcomes() {
        let report = check(&clean());
        assert_eq!(report.violations, []);
        assert_eq!(report.orders, 6);
        assert_eq!(report.outcomes["FAILED"], 2);
        assert_eq!(report.outcomes["PAID"], 1);
        assert_eq!(report.unpublished["svc-order"], 0);
    }

    #[test]
    fn a_running_order_more_than_10_s_past_its_deadline_is_stuck() {
        let mut snap = clean();
        order_mut(&mut snap, "o-running").deadline_at = at(NOW - 11);
        assert_eq!(
            violations(&snap),
            [Violation::Stuck { order: "o-running".into(), status: "STOCK_RESERVED".into(), overdue_secs: 11 }]
        );
    }

    #[test]
    fn two_succeeded_charges_for_one_order_are_a_double_charge() {
        let mut snap = clean();
        snap.charges.push(charge("ch-again", "o-cancelled", 2000, 2000));
        assert_eq!(
            violations(&snap),
            [Violation::ChargedTwice {
                order: "o-cancelled".into(),
                charges: vec!["ch-cancelled".into(), "ch-again".into()]
            }]
        );
    }

    #[test]
    fn a_paid_order_needs_a_charge() {
        let mut snap = clean();
        snap.charges.retain(|c| c.id != "ch-paid");
        let found = violations(&snap);
        assert!(found.contains(&Violation::PaidWithoutCharge { order: "o-paid".into() }), "{found:?}");
    }

    #[test]
    fn a_paid_orders_charge_is_of_its_amount_and_unrefunded() {
        let mut snap = clean();
        snap.charges[0].amount = 1999;
        let found = violations(&snap);
        assert!(
            matches!(&found[..], [Violation::PaidChargeWrong { order, amount: 1999, .. }] if order == "o-paid"),
            "{found:?}"
        );
    }

    #[test]
    fn a_paid_order_needs_a_completed_payment() {
        let mut snap = clean();
        snap.payments.retain(|p| p.id != "pay-paid");
        let found = violations(&snap);
        assert!(found.contains(&Violation::PaidWithoutPayment { order: "o-paid".into() }), "{found:?}");
    }

    #[test]
    fn an_unpaid_end_with_money_kept_at_the_gateway_is_not_refunded() {
        let mut snap = clean();
        snap.charges.iter_mut().find(|c| c.id == "ch-expired").unwrap().refunded = 0;
        let found = violations(&snap);
        assert!(
            found.contains(&Violation::NotRefunded {
                order: "o-expired".into(),
                status: "EXPIRED".into(),
                charged: 2000,
                refunded: 0
            }),
            "{found:?}"
        );
    }

    #[test]
    fn an_unpaid_end_with_a_completed_payment_is_a_violation() {
        let mut snap = clean();
        snap.payments.push(payment("pay-x", "o-oos", "COMPLETED"));
        let found = violations(&snap);
        assert!(
            found.contains(&Violation::CompletedPaymentForUnpaid {
                order: "o-oos".into(),
                status: "FAILED".into(),
                payment: "pay-x".into()
            }),
            "{found:?}"
        );
    }

    #[test]
    fn a_payment_whose_status_contradicts_the_gateway_disagrees() {
        let mut snap = clean();
        snap.payments.iter_mut().find(|p| p.id == "pay-declined").unwrap().status = "CANCELLED".into();
        let found = violations(&snap);
        assert!(
            found.contains(&Violation::PaymentDisagrees {
                payment: "pay-declined".into(),
                order: "o-declined".into(),
                status: "CANCELLED".into(),
                gateway: "absent or declined",
            }),
            "{found:?}"
        );
    }

    #[test]
    fn stocked_must_be_stock_plus_reserved() {
        let mut snap = clean();
        snap.products[0].stock = 95;
        assert_eq!(
            violations(&snap),
            [Violation::StockMismatch { product: "p1".into(), stocked: 100, stock: 95, reserved: 4 }]
        );
    }

    #[test]
    fn stock_still_reserved_for_an_unpaid_end_is_leaked() {
        let mut snap = clean();
        reservation_mut(&mut snap, "o-cancelled").status = "RESERVED".into();
        snap.products[0].reserved = 6;
        snap.products[0].stock = 94;
        assert_eq!(
            violations(&snap),
            [Violation::LeakedStock {
                order: "o-cancelled".into(),
                status: "CANCELLED".into(),
                product: "p1".into(),
                quantity: 2
            }]
        );
    }

    #[test]
    fn stock_reserved_for_an_order_svc_order_does_not_know_is_leaked() {
        let mut snap = clean();
        snap.reservations.push(reservation("o-ghost", "RESERVED"));
        let found = violations(&snap);
        assert!(matches!(&found[..], [Violation::LeakedStock { order, .. }] if order == "o-ghost"), "{found:?}");
    }

    #[test]
    fn a_paid_order_holds_its_reservation() {
        let mut snap = clean();
        reservation_mut(&mut snap, "o-paid").status = "RELEASED".into();
        let found = violations(&snap);
        assert!(
            found.contains(&Violation::PaidWithoutReservation {
                order: "o-paid".into(),
                reservation: Some("RELEASED".into())
            }),
            "{found:?}"
        );
    }

    #[test]
    fn each_unpaid_end_leaves_its_own_reservation_status() {
        let mut snap = clean();
        reservation_mut(&mut snap, "o-oos").status = "RELEASED".into();
        snap.reservations.retain(|r| r.order_id != "o-declined");
        let found = violations(&snap);
        assert_eq!(
            found,
            [
                Violation::ReservationMismatch {
                    order: "o-oos".into(),
                    status: "FAILED".into(),
                    reservation: Some("RELEASED".into()),
                    expected: "REJECTED"
                },
                Violation::ReservationMismatch {
                    order: "o-declined".into(),
                    status: "FAILED".into(),
                    reservation: None,
                    expected: "RELEASED"
                },
            ]
        );
    }

    #[test]
    fn an_expired_order_may_have_no_reservation() {
        let mut snap = clean();
        snap.reservations.retain(|r| r.order_id != "o-expired");
        assert_eq!(violations(&snap), []);
    }

    #[test]
    fn a_completed_payment_needs_one_sale() {
        let mut snap = clean();
        snap.ledger.retain(|e| e.id != "e1");
        snap.reported[0].net = 0;
        assert_eq!(
            violations(&snap),
            [Violation::SaleMissing { payment: "pay-paid".into(), order: "o-paid".into(), found: 0 }]
        );
    }

    #[test]
    fn a_sale_books_the_payments_amount_for_the_products_seller() {
        let mut snap = clean();
        snap.ledger[0].seller_id = "s2".into();
        let found = violations(&snap);
        assert!(
            matches!(&found[0], Violation::SaleWrong { payment, seller, .. } if payment == "pay-paid" && seller == "s2"),
            "{found:?}"
        );
    }

    #[test]
    fn a_cancelled_payment_needs_one_refund() {
        let mut snap = clean();
        snap.ledger.retain(|e| e.id != "e3");
        snap.reported[0].net = 4000;
        assert_eq!(
            violations(&snap),
            [Violation::RefundMissing { payment: "pay-cancelled".into(), order: "o-cancelled".into(), found: 0 }]
        );
    }

    #[test]
    fn a_refund_books_the_payments_amount() {
        let mut snap = clean();
        snap.ledger.iter_mut().find(|e| e.id == "e5").unwrap().amount = 1000;
        snap.reported[0].net = 3000;
        let found = violations(&snap);
        assert!(
            matches!(&found[..], [Violation::RefundWrong { entry, amount: 1000, .. }] if entry == "e5"),
            "{found:?}"
        );
    }

    #[test]
    fn entries_for_payments_that_never_completed_are_unexpected() {
        let mut snap = clean();
        snap.ledger.push(entry("e9", "SALE", "pay-declined", 2000));
        snap.reported[0].net = 4000;
        assert_eq!(
            violations(&snap),
            [Violation::UnexpectedEntry {
                entry: "e9".into(),
                kind: "SALE".into(),
                payment: "pay-declined".into(),
                status: Some("FAILED".into())
            }]
        );
    }

    #[test]
    fn the_ledger_must_add_up_to_the_daily_report() {
        let mut snap = clean();
        snap.reported[0].net = 1000;
        assert_eq!(
            violations(&snap),
            [Violation::ReportDiffers { date: "2027-01-15".into(), seller: "s1".into(), ledger: 2000, report: 1000 }]
        );
    }

    #[test]
    fn an_unpublished_outbox_row_is_a_violation() {
        let mut snap = clean();
        snap.outboxes.insert("svc-product".into(), OutboxBacklog { unpublished: 3, oldest: Some(42) });
        let report = check(&snap);
        assert_eq!(
            report.violations,
            [Violation::Unpublished { service: "svc-product".into(), count: 3, oldest_ms: Some(42) }]
        );
        assert_eq!(report.unpublished["svc-product"], 3);
    }

    #[test]
    fn dead_letters_are_listed_but_are_no_violation() {
        let mut snap = clean();
        snap.dead_letters.push(DeadLetterSummary {
            service: "svc-order".into(),
            seq: 1,
            consumer: "svc-order".into(),
            subject: "order.created.x".into(),
            message_id: None,
            deliveries: 1,
            reason: "undecodable".into(),
            replayed_at: None,
        });
        let report = check(&snap);
        assert!(report.is_clean());
        assert_eq!(report.dead_letters.len(), 1);
    }

    #[test]
    fn violations_name_their_ids() {
        let v = Violation::ChargedTwice { order: "o-1".into(), charges: vec!["ch-1".into(), "ch-2".into()] };
        assert_eq!(v.to_string(), "charged twice: order o-1 has SUCCEEDED charges ch-1, ch-2");
    }

    #[test]
    fn the_admin_order_wire_shape_is_read() {
        let json = r#"{"id":"o","userId":"u","productId":"p","quantity":2,"paymentMethod":"CARD","status":"PAID",
            "unitPrice":1000,"amount":2000,"paymentId":"pay","createdAt":"2027-01-15T00:00:00Z",
            "updatedAt":"2027-01-15T00:00:01Z","deadlineAt":"2027-01-15T00:10:00Z"}"#;
        let o: Order = serde_json::from_str(json).unwrap();
        assert_eq!((o.amount, o.failure_reason), (Some(2000), None));
    }
}
