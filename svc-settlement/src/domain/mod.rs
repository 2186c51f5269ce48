//! Pure settlement rules; no I/O, clocks passed in.
//!
//! - [`calendar`]: business days in a time zone, day ends, the booking rule for closed days.
//! - [`figures`]: the fee rate and the rounding rule.
//! - [`entry`]: what a payment event books, and when two postings contradict each other.
//! - [`close`]: the record of a closed day.
//! - [`report`]: rows, totals and seller payouts from per-day sums.
//! - [`access`]: who may read and close what.

pub mod access;
pub mod calendar;
pub mod close;
pub mod entry;
pub mod figures;
pub mod report;

pub use calendar::{Calendar, Month};
pub use close::CloseRecord;
pub use entry::{Entry, Kind, Posting};
pub use figures::{FeeRate, Figures, Overflow, Sums};

/// The rules a ledger is kept by. Both are configuration; changing the time zone of an existing
/// ledger is refused at start-up, changing the fee rate applies to days not yet closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub calendar: Calendar,
    pub fee_rate: FeeRate,
}
