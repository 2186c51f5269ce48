//! Where a close took effect live.
//!
//! The live service closes a day in a transaction and the relay publishes `settlement.closed`
//! moments later, so the event can sit in the stream after payment events the live service only
//! booked once the day was closed (on the next open day). Those events form a suffix, in stream
//! order, of the day's entries in the replay: the live consumer takes messages in order, so
//! everything it had not yet booked at the close came after everything it had. The cut is the
//! shortest such suffix whose removal leaves every seller's gross, refunds and orders exactly as
//! the close published them; the next replay closes the day just before it, and the published
//! payouts are then checked in full.

use std::collections::BTreeMap;

use common::event::SellerPayout;
use uuid::Uuid;

use crate::domain::{Kind, Sums};

/// One entry the replay booked on the closed day, with the stream position it was booked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booked {
    pub seq: u64,
    pub seller_id: Uuid,
    pub kind: Kind,
    pub amount: i64,
}

/// The stream sequence of the first entry of the shortest suffix whose removal reproduces
/// `published`, or `None` when nothing needs removing or no suffix fits.
pub fn find_cut(entries: &[Booked], published: &[SellerPayout]) -> Option<u64> {
    let target: BTreeMap<Uuid, Sums> = published
        .iter()
        .map(|p| (p.seller_id, Sums { gross: p.gross, refunds: p.refunds, orders: p.orders }))
        .collect();
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| e.seq);
    let mut sums: BTreeMap<Uuid, (Sums, usize)> = BTreeMap::new();
    for e in &sorted {
        let (s, n) = sums.entry(e.seller_id).or_default();
        apply(s, e, 1);
        *n += 1;
    }
    if present(&sums) == target {
        return None;
    }
    for e in sorted.iter().rev() {
        let (s, n) = sums.get_mut(&e.seller_id).expect("counted above");
        apply(s, e, -1);
        *n -= 1;
        if present(&sums) == target {
            return Some(e.seq);
        }
    }
    None
}

fn apply(sums: &mut Sums, e: &Booked, sign: i64) {
    match e.kind {
        Kind::Sale => {
            sums.gross.0 += sign * e.amount;
            sums.orders += sign;
        }
        Kind::Refund => sums.refunds.0 += sign * e.amount,
    }
}

/// The sellers that still have entries, as a close would list them.
fn present(sums: &BTreeMap<Uuid, (Sums, usize)>) -> BTreeMap<Uuid, Sums> {
    sums.iter().filter(|(_, (_, n))| *n > 0).map(|(seller, (s, _))| (*seller, *s)).collect()
}

#[cfg(test)]
mod tests {
    use common::Won;

    use super::*;

    fn booked(seq: u64, seller: Uuid, kind: Kind, amount: i64) -> Booked {
        Booked { seq, seller_id: seller, kind, amount }
    }

    fn payout(seller: Uuid, gross: i64, refunds: i64, orders: i64) -> SellerPayout {
        let net = gross - refunds;
        SellerPayout {
            seller_id: seller,
            gross: Won(gross),
            refunds: Won(refunds),
            net: Won(net),
            fee: Won(0),
            payout: Won(net),
            orders,
        }
    }

    #[test]
    fn a_close_published_after_everything_it_counted_needs_no_cut() {
        let a = Uuid::now_v7();
        let entries = [booked(1, a, Kind::Sale, 1_000), booked(2, a, Kind::Refund, 1_000)];
        assert_eq!(find_cut(&entries, &[payout(a, 1_000, 1_000, 1)]), None);
    }

    #[test]
    fn entries_booked_live_after_the_close_are_the_suffix_the_cut_removes() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let entries = [
            booked(1, a, Kind::Sale, 1_000),
            booked(2, b, Kind::Sale, 2_000),
            booked(5, b, Kind::Refund, 2_000), // after the close, live
            booked(7, a, Kind::Sale, 3_000),   // after the close, live
        ];
        let published = [payout(a, 1_000, 0, 1), payout(b, 2_000, 0, 1)];
        assert_eq!(find_cut(&entries, &published), Some(5));
    }

    #[test]
    fn a_seller_whose_only_entries_came_after_the_close_drops_out() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let entries = [booked(1, a, Kind::Sale, 1_000), booked(3, b, Kind::Sale, 2_000)];
        assert_eq!(find_cut(&entries, &[payout(a, 1_000, 0, 1)]), Some(3));
    }

    #[test]
    fn figures_no_suffix_can_explain_are_left_for_the_report() {
        let a = Uuid::now_v7();
        let entries = [booked(1, a, Kind::Sale, 1_000), booked(2, a, Kind::Sale, 2_000)];
        // Live counted the second but not the first: not a suffix (out-of-order redelivery).
        assert_eq!(find_cut(&entries, &[payout(a, 2_000, 0, 1)]), None);
    }
}
