//! svc-settlement's reactions: it books payment events in the ledger and emits nothing in reply.
//!
//! | consumed            | effect (same transaction as the dedupe row)                    |
//! |---------------------|----------------------------------------------------------------|
//! | `payment.completed` | one SALE entry for the payment                                 |
//! | `payment.cancelled` | one REFUND entry for the payment; retried until its SALE is in |
//!
//! A payment is booked at most once per kind whatever is redelivered or re-published under new
//! ids: the same facts again change nothing, different facts for a booked payment are
//! dead-lettered. An entry is booked on its own date (a refund: its own date or its sale's
//! business day, whichever is later) unless that day is on or before the latest closed day; then
//! it is booked on the day after the latest closed day (an adjustment). So a closed day, and any
//! day before the latest close, never changes.

use common::{
    Envelope, Event, EventType,
    consumer::{Handler, HandlerError},
    db::now_ms,
    event::{PaymentCancelled, PaymentCompleted},
};
use jiff::civil::Date;
use rusqlite::Transaction;

use crate::{
    SERVICE,
    domain::{Entry, Kind, Posting, Rules, calendar},
    store,
};

/// The consumer's handler: the rules entries are booked by.
#[derive(Debug, Clone)]
pub struct Saga {
    rules: Rules,
}

impl Saga {
    pub fn new(rules: Rules) -> Self {
        Saga { rules }
    }
}

impl Handler for Saga {
    fn name(&self) -> &'static str {
        SERVICE
    }

    /// The events svc-settlement books; also what a rebuild replays from the stream.
    fn consumes(&self) -> &'static [EventType] {
        &[EventType::PaymentCompleted, EventType::PaymentCancelled]
    }

    fn handle(&self, tx: &Transaction<'_>, envelope: &Envelope) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::PaymentCompleted(completed) => on_payment_completed(&self.rules, tx, envelope, completed),
            Event::PaymentCancelled(cancelled) => on_payment_cancelled(&self.rules, tx, envelope, cancelled),
            _ => Err(HandlerError::unhandled(SERVICE, envelope)),
        }
    }
}

/// Books the sale on its day (or, when that day is on or before the latest closed day, on the day
/// after the latest closed day).
fn on_payment_completed(
    rules: &Rules,
    tx: &Transaction<'_>,
    envelope: &Envelope,
    completed: &PaymentCompleted,
) -> Result<(), HandlerError> {
    let posting = Posting::sale(envelope, completed).map_err(reject)?;
    if let Some(booked) = store::ledger::find_entry(tx, posting.payment_id, Kind::Sale)? {
        return already_booked(&posting, &booked);
    }
    let event_date = event_date(rules, &posting)?;
    book(tx, posting, event_date, event_date)
}

/// Books the full refund of a booked sale; before the sale is in, retries (redeliveries can
/// reorder), so a refund with no sale at all ends in the dead-letter table after the consumer's
/// `patience`.
fn on_payment_cancelled(
    rules: &Rules,
    tx: &Transaction<'_>,
    envelope: &Envelope,
    cancelled: &PaymentCancelled,
) -> Result<(), HandlerError> {
    let posting = Posting::refund(envelope, cancelled).map_err(reject)?;
    if let Some(booked) = store::ledger::find_entry(tx, posting.payment_id, Kind::Refund)? {
        return already_booked(&posting, &booked);
    }
    let Some(sale) = store::ledger::find_entry(tx, posting.payment_id, Kind::Sale)? else {
        return Err(HandlerError::NotYet(format!(
            "refund of payment {} arrived before its sale; retrying later",
            posting.payment_id
        )));
    };
    posting.refunds(&sale).map_err(reject)?;
    let event_date = event_date(rules, &posting)?;
    // A refund never counts before its sale: it starts from its sale's business day when that is
    // later than its own date. Only skewed clocks (a refund stamped before its sale) make that
    // happen: a sale booked as an adjustment went to the day after the latest close of the time,
    // and as closes only move forward, a refund dated before that day is moved past it anyway.
    book(tx, posting, event_date, event_date.max(sale.business_date))
}

/// Appends the entry on `start`, or on the day after the latest closed day when `start` is on or
/// before it ([`calendar::booking_day`]).
fn book(tx: &Transaction<'_>, posting: Posting, event_date: Date, start: Date) -> Result<(), HandlerError> {
    let latest_closed = store::days::latest_closed_day(tx)?;
    let business_date = calendar::booking_day(start, latest_closed).map_err(reject)?;
    let entry = Entry { posting, event_date, business_date, created_at_ms: now_ms() };
    if !store::ledger::insert_entry(tx, &entry)? {
        // Unreachable while the checks above run in the same immediate transaction; the unique
        // index is the guarantee should that ever change.
        return Ok(());
    }
    let p = &entry.posting;
    tracing::debug!(
        payment.id = %p.payment_id,
        seller.id = %p.seller_id,
        kind = p.kind.as_str(),
        amount = p.amount.0,
        %event_date,
        %business_date,
        adjustment = entry.is_adjustment(),
        "booked"
    );
    Ok(())
}

/// The local date the posting happened on, if it is one the ledger can hold.
fn event_date(rules: &Rules, posting: &Posting) -> Result<Date, HandlerError> {
    calendar::in_range(rules.calendar.date_of(posting.occurred_at)).map_err(reject)
}

/// The payment already has an entry of this kind: a repeat is a no-op, a contradiction is refused.
fn already_booked(posting: &Posting, booked: &Entry) -> Result<(), HandlerError> {
    posting.repeats(booked).map_err(reject)?;
    tracing::info!(
        payment.id = %posting.payment_id,
        kind = posting.kind.as_str(),
        entry.id = %booked.posting.id,
        "payment already booked; nothing to do"
    );
    Ok(())
}

fn reject(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Reject(e.to_string())
}
