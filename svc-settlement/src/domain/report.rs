//! Turning the ledger's per-day sums into report rows, totals and seller payouts, by the rule in
//! [`super::figures`]: settle each (day, seller, category) at that day's rate, then only add.

use std::collections::BTreeMap;

use common::event::SellerPayout;
use jiff::civil::Date;
use serde::Serialize;
use uuid::Uuid;

use super::figures::{FeeRate, Figures, Overflow, Sums};

/// The ledger summed for one business day, seller and category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayGroup {
    pub date: Date,
    pub seller_id: Uuid,
    pub category: String,
    pub sums: Sums,
}

/// One report row: a seller's figures in one category over the report's days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub seller_id: Uuid,
    pub category: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Rows per seller and category, ordered by seller then category. Each group is settled at the
/// rate of its own day (`rate_of`), so a month is exactly the sum of its days.
pub fn rows(groups: &[DayGroup], rate_of: impl Fn(Date) -> FeeRate) -> Result<Vec<Row>, Overflow> {
    let mut by_key: BTreeMap<(Uuid, &str), Figures> = BTreeMap::new();
    for g in groups {
        let day = Figures::settle(g.sums, rate_of(g.date))?;
        let sum = by_key.entry((g.seller_id, g.category.as_str())).or_default();
        *sum = sum.checked_add(day)?;
    }
    Ok(by_key
        .into_iter()
        .map(|((seller_id, category), figures)| Row { seller_id, category: category.to_owned(), figures })
        .collect())
}

/// The sum of `rows`.
pub fn totals(rows: &[Row]) -> Result<Figures, Overflow> {
    rows.iter().try_fold(Figures::default(), |sum, row| sum.checked_add(row.figures))
}

/// One payout per seller, summed across categories, ordered by seller id: what
/// `settlement.closed` carries and what a seller's daily report totals show.
pub fn payouts(rows: &[Row]) -> Result<Vec<SellerPayout>, Overflow> {
    let mut by_seller: BTreeMap<Uuid, Figures> = BTreeMap::new();
    for row in rows {
        let sum = by_seller.entry(row.seller_id).or_default();
        *sum = sum.checked_add(row.figures)?;
    }
    Ok(by_seller
        .into_iter()
        .map(|(seller_id, f)| SellerPayout {
            seller_id,
            gross: f.gross,
            refunds: f.refunds,
            net: f.net,
            fee: f.fee,
            payout: f.payout,
            orders: f.orders,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use common::Won;
    use jiff::civil::date;

    use super::*;

    fn group(day: u8, seller: Uuid, category: &str, gross: i64, refunds: i64, orders: i64) -> DayGroup {
        DayGroup {
            date: date(2026, 11, day as i8),
            seller_id: seller,
            category: category.into(),
            sums: Sums { gross: Won(gross), refunds: Won(refunds), orders },
        }
    }

    #[test]
    fn a_month_row_is_the_sum_of_its_days_each_settled_at_its_own_rate() {
        let seller = Uuid::now_v7();
        let groups = [group(1, seller, "books", 999, 0, 1), group(2, seller, "books", 999, 0, 1)];
        let rows = rows(&groups, |d| if d.day() == 1 { FeeRate::DEFAULT } else { FeeRate::new(0).unwrap() }).unwrap();
        assert_eq!(rows.len(), 1);
        let f = rows[0].figures;
        assert_eq!((f.gross, f.net, f.orders, f.fee, f.payout), (Won(1_998), Won(1_998), 2, Won(29), Won(1_969)));
    }

    #[test]
    fn a_negative_day_does_not_cancel_the_fee_of_a_positive_one() {
        let seller = Uuid::now_v7();
        let groups = [group(1, seller, "books", 10_000, 0, 1), group(2, seller, "books", 0, 10_000, 0)];
        let f = rows(&groups, |_| FeeRate::DEFAULT).unwrap()[0].figures;
        assert_eq!((f.net, f.fee, f.payout), (Won(0), Won(300), Won(-300)));
    }

    #[test]
    fn a_sellers_payout_is_the_sum_of_its_category_rows() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let groups = [group(1, a, "books", 999, 0, 1), group(1, a, "toys", 999, 0, 1), group(1, b, "toys", 0, 500, 0)];
        let rows = rows(&groups, |_| FeeRate::DEFAULT).unwrap();
        let payouts = payouts(&rows).unwrap();
        let of = |s: Uuid| payouts.iter().find(|p| p.seller_id == s).unwrap();
        assert_eq!((of(a).net, of(a).fee, of(a).payout, of(a).orders), (Won(1_998), Won(58), Won(1_940), 2));
        assert_eq!((of(b).net, of(b).fee, of(b).payout, of(b).orders), (Won(-500), Won(0), Won(-500), 0));
        let t = totals(&rows).unwrap();
        assert_eq!((t.net, t.fee, t.payout), (Won(1_498), Won(58), Won(1_440)));
    }

    #[test]
    fn rows_and_payouts_are_ordered_by_seller_then_category() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let groups = [group(1, b, "toys", 1, 0, 1), group(1, a, "toys", 1, 0, 1), group(1, a, "books", 1, 0, 1)];
        let rows = rows(&groups, |_| FeeRate::DEFAULT).unwrap();
        let keys: Vec<_> = rows.iter().map(|r| (r.seller_id, r.category.as_str())).collect();
        assert_eq!(keys, [(a, "books"), (a, "toys"), (b, "toys")]);
        assert_eq!(payouts(&rows).unwrap().iter().map(|p| p.seller_id).collect::<Vec<_>>(), [a, b]);
    }
}
