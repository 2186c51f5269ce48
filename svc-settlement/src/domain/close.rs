//! A closed business day.

use common::event::{SellerPayout, SettlementClosed};
use jiff::{Timestamp, civil::Date};
use uuid::Uuid;

use super::FeeRate;

/// A closed business day: the payouts it was settled with, when, and the `settlement.closed`
/// event that announced it. Written once, never changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRecord {
    pub date: Date,
    pub time_zone: String,
    /// The rate the day was settled at; its reports keep using it.
    pub fee_rate: FeeRate,
    pub closed_at: Timestamp,
    pub event_id: Uuid,
    /// How many ledger entries (all days) were booked when the day closed: where the close sits
    /// in the ledger, which the rebuild replays it at.
    pub ledger_entries: u64,
    /// One per seller with entries that day, ordered by seller id.
    pub payouts: Vec<SellerPayout>,
}

impl CloseRecord {
    /// The payload of the day's `settlement.closed` event.
    pub fn event(&self) -> SettlementClosed {
        SettlementClosed {
            date: self.date.to_string(),
            time_zone: self.time_zone.clone(),
            fee_rate_bps: u32::from(self.fee_rate.bps()),
            payouts: self.payouts.clone(),
            ledger_entries: self.ledger_entries,
        }
    }
}
