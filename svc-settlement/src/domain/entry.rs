//! Ledger entries: what a payment event books, and the checks that keep one payment to at most
//! one SALE and one REFUND that match each other.

use common::{
    Envelope, Won,
    event::{PaymentCancelled, PaymentCompleted},
};
use jiff::{Timestamp, civil::Date};
use uuid::Uuid;

/// A sale (from `payment.completed`) or its full refund (from `payment.cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Sale,
    Refund,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sale => "SALE",
            Kind::Refund => "REFUND",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SALE" => Some(Kind::Sale),
            "REFUND" => Some(Kind::Refund),
            _ => None,
        }
    }
}

/// Why a payment event cannot be booked. svc-payment never publishes these; a hand-written or
/// corrupted event can, and it is dead-lettered rather than booked. (A non-positive amount is
/// refused earlier, when the event is decoded.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPosting {
    #[error("category must not be empty")]
    EmptyCategory,
    #[error("occurredAt {0} is outside the supported years")]
    OccurredAtOutOfRange(String),
    #[error("{kind} of payment {payment} does not match the {existing_kind} already booked for it ({detail})")]
    Mismatch { kind: &'static str, existing_kind: &'static str, payment: Uuid, detail: &'static str },
}

/// What one payment event asks the ledger to book, before a business day is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// The event's id, which becomes the entry's id.
    pub id: Uuid,
    pub kind: Kind,
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub seller_id: Uuid,
    pub category: String,
    /// Positive for both kinds; the kind says which way it counts.
    pub amount: Won,
    /// The envelope's `occurredAt`: decides the business day, not the time it arrived.
    pub occurred_at: Timestamp,
}

impl Posting {
    pub fn sale(envelope: &Envelope, e: &PaymentCompleted) -> Result<Self, InvalidPosting> {
        Self::parse(envelope, Kind::Sale, e.payment_id, e.order_id, e.seller_id, &e.category, e.amount)
    }

    pub fn refund(envelope: &Envelope, e: &PaymentCancelled) -> Result<Self, InvalidPosting> {
        Self::parse(envelope, Kind::Refund, e.payment_id, e.order_id, e.seller_id, &e.category, e.amount)
    }

    fn parse(
        envelope: &Envelope,
        kind: Kind,
        payment_id: Uuid,
        order_id: Uuid,
        seller_id: Uuid,
        category: &str,
        amount: Won,
    ) -> Result<Self, InvalidPosting> {
        if category.trim().is_empty() {
            return Err(InvalidPosting::EmptyCategory);
        }
        let occurred_at = Timestamp::from_nanosecond(envelope.occurred_at.unix_timestamp_nanos())
            .map_err(|_| InvalidPosting::OccurredAtOutOfRange(envelope.occurred_at.to_string()))?;
        Ok(Posting {
            id: envelope.id,
            kind,
            payment_id,
            order_id,
            seller_id,
            category: category.to_owned(),
            amount,
            occurred_at,
        })
    }

    /// Whether `self` says the same as `booked` (the same kind for the same payment, e.g. the
    /// event re-published under a new id). Different facts for one payment are a contradiction.
    pub fn repeats(&self, booked: &Entry) -> Result<(), InvalidPosting> {
        self.matches(booked)
    }

    /// Checks that this refund refunds `sale` in full: same order, seller, category and amount.
    pub fn refunds(&self, sale: &Entry) -> Result<(), InvalidPosting> {
        self.matches(sale)
    }

    fn matches(&self, booked: &Entry) -> Result<(), InvalidPosting> {
        let b = &booked.posting;
        let detail = if self.payment_id != b.payment_id {
            "payment"
        } else if self.order_id != b.order_id {
            "order"
        } else if self.seller_id != b.seller_id {
            "seller"
        } else if self.category != b.category {
            "category"
        } else if self.amount != b.amount {
            "amount"
        } else {
            return Ok(());
        };
        Err(InvalidPosting::Mismatch {
            kind: self.kind.as_str(),
            existing_kind: b.kind.as_str(),
            payment: self.payment_id,
            detail,
        })
    }
}

/// A booked ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub posting: Posting,
    /// The local date the event happened on.
    pub event_date: Date,
    /// The day it counts on: `event_date`, or a later day when that one was already closed.
    pub business_date: Date,
    pub created_at_ms: i64,
}

impl Entry {
    /// Booked later than it happened because its own day was closed.
    pub fn is_adjustment(&self) -> bool {
        self.business_date != self.event_date
    }
}

#[cfg(test)]
mod tests {
    use common::{Event, PaymentMethod};
    use jiff::civil::date;

    use super::*;

    fn completed(amount: i64, category: &str) -> (Envelope, PaymentCompleted) {
        let e = PaymentCompleted {
            payment_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            amount: Won(amount),
            method: PaymentMethod::Card,
            seller_id: Uuid::now_v7(),
            category: category.into(),
            product_id: Uuid::now_v7(),
            quantity: 1,
        };
        (Envelope::new("svc-payment", Event::PaymentCompleted(e.clone())), e)
    }

    fn refund_of(e: &PaymentCompleted) -> (Envelope, PaymentCancelled) {
        let c = PaymentCancelled {
            payment_id: e.payment_id,
            order_id: e.order_id,
            user_id: e.user_id,
            amount: e.amount,
            seller_id: e.seller_id,
            category: e.category.clone(),
            product_id: e.product_id,
            quantity: e.quantity,
        };
        (Envelope::new("svc-payment", Event::PaymentCancelled(c.clone())), c)
    }

    fn booked(posting: Posting) -> Entry {
        Entry { posting, event_date: date(2026, 11, 30), business_date: date(2026, 11, 30), created_at_ms: 0 }
    }

    #[test]
    fn a_completed_payment_posts_a_sale_with_the_events_id_and_time() {
        let (env, e) = completed(15_000, "books");
        let p = Posting::sale(&env, &e).unwrap();
        assert_eq!((p.id, p.kind, p.amount, p.seller_id), (env.id, Kind::Sale, Won(15_000), e.seller_id));
        assert_eq!(p.occurred_at.as_nanosecond(), env.occurred_at.unix_timestamp_nanos());
    }

    #[test]
    fn a_payment_without_a_category_is_not_booked() {
        // A payment of nothing never gets here: decoding refuses it (`Event::validate`).
        let (env, e) = completed(100, "  ");
        assert_eq!(Posting::sale(&env, &e), Err(InvalidPosting::EmptyCategory));
    }

    #[test]
    fn a_refund_must_match_its_sale_to_the_won() {
        let (env, e) = completed(15_000, "books");
        let sale = booked(Posting::sale(&env, &e).unwrap());
        let (renv, r) = refund_of(&e);
        assert_eq!(Posting::refund(&renv, &r).unwrap().refunds(&sale), Ok(()));

        let partial = PaymentCancelled { amount: Won(14_999), ..r.clone() };
        let err = Posting::refund(&renv, &partial).unwrap().refunds(&sale).unwrap_err();
        assert!(matches!(err, InvalidPosting::Mismatch { detail: "amount", .. }), "{err}");
        let elsewhere = PaymentCancelled { category: "toys".into(), ..r };
        let err = Posting::refund(&renv, &elsewhere).unwrap().refunds(&sale).unwrap_err();
        assert!(matches!(err, InvalidPosting::Mismatch { detail: "category", .. }), "{err}");
    }

    #[test]
    fn the_same_payment_republished_under_a_new_id_repeats_the_booked_entry() {
        let (env, e) = completed(15_000, "books");
        let sale = booked(Posting::sale(&env, &e).unwrap());
        let again = Envelope::new("svc-payment", env.event.clone());
        assert_eq!(Posting::sale(&again, &e).unwrap().repeats(&sale), Ok(()));
        let changed = PaymentCompleted { amount: Won(16_000), ..e };
        assert!(Posting::sale(&again, &changed).unwrap().repeats(&sale).is_err());
    }
}
