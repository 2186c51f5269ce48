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
    /// The payloads of the day's `settlement.closed`: one, or one per
    /// [`SettlementClosed::PAYOUTS_PER_PART`] sellers (in seller order) when more sellers had
    /// entries that day.
    pub fn events(&self) -> Vec<SettlementClosed> {
        let chunks: Vec<&[SellerPayout]> = if self.payouts.is_empty() {
            vec![&[]]
        } else {
            self.payouts.chunks(SettlementClosed::PAYOUTS_PER_PART).collect()
        };
        let parts = u32::try_from(chunks.len()).expect("fewer than 4 billion parts");
        (1..=parts)
            .zip(chunks)
            .map(|(part, payouts)| SettlementClosed {
                date: self.date.to_string(),
                time_zone: self.time_zone.clone(),
                fee_rate_bps: u32::from(self.fee_rate.bps()),
                payouts: payouts.to_vec(),
                ledger_entries: self.ledger_entries,
                part,
                parts,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use common::Won;

    use super::*;

    fn record(sellers: usize) -> CloseRecord {
        let payouts = (0..sellers)
            .map(|i| SellerPayout {
                seller_id: Uuid::from_u128(i as u128 + 1),
                gross: Won(1_000_000_000),
                refunds: Won(0),
                net: Won(1_000_000_000),
                fee: Won(30_000_000),
                payout: Won(970_000_000),
                orders: 1_000_000,
            })
            .collect();
        CloseRecord {
            date: jiff::civil::date(2026, 11, 30),
            time_zone: "Asia/Seoul".into(),
            fee_rate: FeeRate::DEFAULT,
            closed_at: Timestamp::UNIX_EPOCH,
            event_id: Uuid::now_v7(),
            ledger_entries: 7,
            payouts,
        }
    }

    #[test]
    fn a_day_that_fits_one_event_is_announced_in_one_and_serialises_as_before() {
        for sellers in [0, 1, SettlementClosed::PAYOUTS_PER_PART] {
            let events = record(sellers).events();
            assert_eq!(events.len(), 1, "{sellers} sellers");
            let json = serde_json::to_value(&events[0]).unwrap();
            assert!(json.get("part").is_none() && json.get("parts").is_none(), "{json}");
        }
    }

    #[test]
    fn thousands_of_sellers_are_announced_in_parts_each_far_below_the_payload_limit() {
        let day = record(2 * SettlementClosed::PAYOUTS_PER_PART + 500);
        let events = day.events();

        assert_eq!(
            events.iter().map(|e| (e.part, e.parts, e.payouts.len())).collect::<Vec<_>>(),
            [(1, 3, 1000), (2, 3, 1000), (3, 3, 500)]
        );
        let all: Vec<_> = events.iter().flat_map(|e| e.payouts.clone()).collect();
        assert_eq!(all, day.payouts, "every payout once, in seller order");
        for e in &events {
            assert_eq!((e.ledger_entries, e.fee_rate_bps, e.date.as_str()), (7, 300, "2026-11-30"));
            let size = serde_json::to_vec(e).unwrap().len();
            assert!(size < 512 * 1024, "part {} is {size} bytes", e.part);
        }
    }
}
