//! Closing a business day: settle its ledger, record the payouts, announce `settlement.closed`,
//! all in the caller's transaction. Used by `POST /settlements/close`, the scheduler and the
//! rebuild.

use common::{Envelope, Event, db::DbError, outbox};
use jiff::{Timestamp, civil::Date};
use rusqlite::Transaction;
use uuid::Uuid;

use crate::{
    domain::{CloseRecord, Overflow, Rules, report},
    store::{self, ledger::Filter},
};

/// What closing a day did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Closed now; `settlement.closed` is in the outbox.
    Now(CloseRecord),
    /// It was closed before: the same record, nothing emitted.
    Already(CloseRecord),
}

impl Closed {
    pub fn record(&self) -> &CloseRecord {
        match self {
            Closed::Now(r) | Closed::Already(r) => r,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("business day {0} has not ended yet")]
    NotEnded(Date),
    #[error(transparent)]
    Overflow(#[from] Overflow),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for CloseError {
    fn from(e: rusqlite::Error) -> Self {
        CloseError::Db(e.into())
    }
}

/// Closes `date` at `now` (the service's clock) unless it is closed already. Idempotent: a
/// closed day answers with its record and emits nothing. A day that has not ended is refused.
pub fn close_day(tx: &Transaction<'_>, rules: &Rules, date: Date, now: Timestamp) -> Result<Closed, CloseError> {
    if let Some(existing) = store::days::find_close(tx, date)? {
        return Ok(Closed::Already(existing));
    }
    if !rules.calendar.has_ended(date, now) {
        return Err(CloseError::NotEnded(date));
    }
    let event_id = Uuid::now_v7();
    let record = record_close(tx, rules, date, now, event_id)?;
    let events = record.events();
    let parts = events.len();
    for (i, closed) in events.into_iter().enumerate() {
        let mut envelope = Envelope::new(crate::SERVICE, Event::SettlementClosed(closed));
        // The record and its (first) event share id and time, so either finds the other.
        if i == 0 {
            envelope.id = event_id;
        }
        envelope.occurred_at = to_offset(now);
        outbox::append(tx, &envelope)?;
    }
    tracing::info!(
        date = %date,
        sellers = record.payouts.len(),
        ledger_entries = record.ledger_entries,
        event.id = %event_id,
        parts,
        "business day closed"
    );
    Ok(Closed::Now(record))
}

/// Settles `date` from the ledger as it stands and records the close (no event): the shared
/// core of [`close_day`] and of replaying a `settlement.closed` in the rebuild. The record keeps
/// how many entries the ledger held, read in the same transaction (closing books nothing).
pub fn record_close(
    tx: &Transaction<'_>,
    rules: &Rules,
    date: Date,
    at: Timestamp,
    event_id: Uuid,
) -> Result<CloseRecord, CloseError> {
    let groups = store::ledger::day_groups(tx, &Filter::days(date, date))?;
    let rows = report::rows(&groups, |_| rules.fee_rate)?;
    let ledger_entries = store::ledger::count_entries(tx)?;
    let record = CloseRecord {
        date,
        time_zone: rules.calendar.name().to_owned(),
        fee_rate: rules.fee_rate,
        closed_at: at,
        event_id,
        ledger_entries,
        payouts: report::payouts(&rows)?,
    };
    store::days::insert_close(tx, &record)?;
    Ok(record)
}

/// `jiff` to `time`, for the envelope. Every `Timestamp` is within `time`'s default range.
pub fn to_offset(at: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
