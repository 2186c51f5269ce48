//! Money rules: the fee rate, and the figures of a group of ledger entries.
//!
//! The rounding rule, in full: for each business day, seller and category, `net = gross -
//! refunds`; when `net > 0` the platform fee is `floor(net * rate_bps / 10000)` (rounded down to
//! the won, in the seller's favour), otherwise the fee is 0; `payout = net - fee`, so `fee +
//! payout = net` exactly and a negative net is paid out as a negative payout (a debit carried to
//! the seller). Anything larger (a seller's day, a report's totals, a month) is the plain sum of
//! those per-day-seller-category figures: fees are never recomputed on a sum. All arithmetic is
//! integer won, checked for overflow.

use std::str::FromStr;

use common::Won;
use serde::Serialize;

/// The platform's fee rate in basis points (1 bps = 0.01 %), 0..=10000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeRate(u16);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fee rate is 0..=10000 basis points, got {0:?}")]
pub struct InvalidFeeRate(String);

impl FeeRate {
    /// 3 %.
    pub const DEFAULT: FeeRate = FeeRate(300);
    pub const MAX_BPS: u16 = 10_000;

    pub fn new(bps: u16) -> Result<Self, InvalidFeeRate> {
        if bps <= Self::MAX_BPS { Ok(FeeRate(bps)) } else { Err(InvalidFeeRate(bps.to_string())) }
    }

    pub fn bps(self) -> u16 {
        self.0
    }

    /// The fee on `net`: rounded down to the won for a positive net, 0 for a zero or negative one.
    pub fn fee_on(self, net: Won) -> Won {
        if net.0 <= 0 {
            return Won(0);
        }
        // In i128 the product cannot overflow; the quotient is at most `net`, so it fits an i64.
        let fee = i128::from(net.0) * i128::from(self.0) / i128::from(Self::MAX_BPS);
        Won(i64::try_from(fee).expect("a fee is at most the net"))
    }
}

impl FromStr for FeeRate {
    type Err = InvalidFeeRate;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<u16>().ok().and_then(|bps| FeeRate::new(bps).ok()).ok_or_else(|| InvalidFeeRate(s.to_owned()))
    }
}

/// A sum overflowed an i64 of won: the ledger holds more than any real figure could.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a settlement figure overflowed")]
pub struct Overflow;

/// What a group of ledger entries adds up to before any fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    /// Sum of SALE amounts.
    pub gross: Won,
    /// Sum of REFUND amounts (positive).
    pub refunds: Won,
    /// Number of SALE entries; refunds do not reduce it.
    pub orders: i64,
}

/// The settled figures of a group (a day-seller-category row, or a sum of such rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub gross: Won,
    pub refunds: Won,
    pub net: Won,
    pub orders: i64,
    pub fee: Won,
    pub payout: Won,
}

impl Figures {
    /// Applies the fee rule to one business day's sums for one seller and category.
    pub fn settle(sums: Sums, rate: FeeRate) -> Result<Self, Overflow> {
        let net = Won(sums.gross.0.checked_sub(sums.refunds.0).ok_or(Overflow)?);
        let fee = rate.fee_on(net);
        // 0 <= fee <= net when net > 0 and fee = 0 otherwise: cannot overflow.
        let payout = Won(net.0 - fee.0);
        Ok(Figures { gross: sums.gross, refunds: sums.refunds, net, orders: sums.orders, fee, payout })
    }

    /// Field-wise sum; fees are added, never recomputed.
    pub fn checked_add(self, other: Figures) -> Result<Self, Overflow> {
        let add = |a: Won, b: Won| a.0.checked_add(b.0).map(Won).ok_or(Overflow);
        Ok(Figures {
            gross: add(self.gross, other.gross)?,
            refunds: add(self.refunds, other.refunds)?,
            net: add(self.net, other.net)?,
            orders: self.orders.checked_add(other.orders).ok_or(Overflow)?,
            fee: add(self.fee, other.fee)?,
            payout: add(self.payout, other.payout)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(gross: i64, refunds: i64, bps: u16) -> Figures {
        Figures::settle(Sums { gross: Won(gross), refunds: Won(refunds), orders: 1 }, FeeRate::new(bps).unwrap())
            .unwrap()
    }

    #[test]
    fn the_fee_rounds_down_to_the_won_in_the_sellers_favour() {
        let f = settle(999, 0, 300);
        assert_eq!((f.net, f.fee, f.payout), (Won(999), Won(29), Won(970)));
        // 29.97 won is 29, not 30.
        assert_eq!(FeeRate::DEFAULT.fee_on(Won(999)), Won(29));
        assert_eq!(FeeRate::DEFAULT.fee_on(Won(1_000)), Won(30));
        assert_eq!(FeeRate::DEFAULT.fee_on(Won(33)), Won(0));
        assert_eq!(FeeRate::DEFAULT.fee_on(Won(34)), Won(1));
    }

    #[test]
    fn fee_and_payout_always_add_up_to_the_net() {
        for bps in [0, 1, 299, 300, 333, 9_999, 10_000] {
            for net in [-12_345, -1, 0, 1, 7, 33, 999, 10_001, 123_456_789, i64::MAX] {
                let f = settle(net.max(0), (-net).max(0), bps);
                assert_eq!(f.fee.0 + f.payout.0, f.net.0, "net {net} at {bps} bps");
                assert!(f.fee.0 >= 0 && f.fee.0 <= f.net.0.max(0), "net {net} at {bps} bps");
            }
        }
    }

    #[test]
    fn a_negative_net_pays_no_fee_and_is_paid_out_as_a_debit() {
        let f = settle(1_000, 5_000, 300);
        assert_eq!((f.net, f.fee, f.payout), (Won(-4_000), Won(0), Won(-4_000)));
    }

    #[test]
    fn zero_and_full_rates_are_the_extremes() {
        assert_eq!(settle(12_345, 0, 0).fee, Won(0));
        assert_eq!(settle(12_345, 0, 10_000).payout, Won(0));
    }

    #[test]
    fn the_largest_net_does_not_overflow_the_fee() {
        assert_eq!(FeeRate::new(10_000).unwrap().fee_on(Won(i64::MAX)), Won(i64::MAX));
        assert_eq!(FeeRate::DEFAULT.fee_on(Won(i64::MAX)), Won(276_701_161_105_643_274));
    }

    #[test]
    fn sums_add_fees_instead_of_recomputing_them() {
        // Two rows of 999 at 3 %: 29 + 29 = 58, where a fee on the summed 1998 would be 59.
        let row = settle(999, 0, 300);
        let total = row.checked_add(row).unwrap();
        assert_eq!((total.net, total.fee, total.payout, total.orders), (Won(1_998), Won(58), Won(1_940), 2));
    }

    #[test]
    fn overflowing_sums_are_errors_not_wrapped_numbers() {
        let big = settle(i64::MAX, 0, 0);
        assert_eq!(big.checked_add(big), Err(Overflow));
        let under = Figures::settle(Sums { gross: Won(0), refunds: Won(i64::MIN), orders: 0 }, FeeRate::DEFAULT);
        assert_eq!(under, Err(Overflow));
    }

    #[test]
    fn fee_rates_are_whole_basis_points_up_to_one_hundred_percent() {
        assert_eq!("300".parse::<FeeRate>(), Ok(FeeRate::DEFAULT));
        assert_eq!("10000".parse::<FeeRate>().map(FeeRate::bps), Ok(10_000));
        for bad in ["10001", "-1", "2.5", "", "3%"] {
            assert!(bad.parse::<FeeRate>().is_err(), "{bad}");
        }
    }
}
