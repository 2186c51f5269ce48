//! What a rebuild found, and whether it may replace the live ledger.

use std::path::PathBuf;

use common::event::SellerPayout;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::Figures;

/// What a rebuild found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub live_db: PathBuf,
    pub rebuilt_db: PathBuf,
    /// The stream still holds its first message, so the replay saw the whole history.
    pub complete: bool,
    /// Messages read from the stream.
    pub messages: u64,
    /// Payment events the handler accepted: booked, or a repeat of a payment booked already.
    pub applied: u64,
    /// Messages skipped as seen before: an event id already processed, or a close re-published.
    pub duplicates: u64,
    /// Days closed at the watermark of their `settlement.closed`.
    pub closes: u64,
    /// Events the live consumer would dead-letter: `<event id or subject>: <reason>`.
    pub rejected: Vec<String>,
    /// Events still failing at the end (e.g. a refund whose sale never came).
    pub unapplied: Vec<String>,
    /// Replayed closes that differ from what their `settlement.closed` published.
    pub close_mismatches: Vec<CloseMismatch>,
    /// Where the rebuilt ledger differs from the live one.
    pub differences: Vec<Difference>,
    /// With `swap`: where the replaced live file was moved (`None` if there was none).
    pub replaced: Option<PathBuf>,
    pub swapped: bool,
}

impl Summary {
    /// The rebuilt ledger equals the live one and agrees with every published close.
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty() && self.close_mismatches.is_empty() && self.unapplied.is_empty()
    }

    /// The rebuilt ledger may replace the live one without `force`: the replay saw the whole
    /// history, agrees with every published close, and only adds to the live ledger (rows and
    /// closes the live file lacks, as when it was lost or damaged), changing and dropping nothing.
    /// Events left unapplied do not stand in the way: had the live service booked them, the
    /// comparison would show it.
    pub fn is_safe_to_swap(&self) -> bool {
        self.complete && self.close_mismatches.is_empty() && self.differences.iter().all(Difference::only_adds)
    }
}

/// A replayed close that does not reproduce its published payouts, or that the replay could
/// only take with another number of ledger entries (it ran out of entries before the watermark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseMismatch {
    pub date: String,
    pub published: Vec<SellerPayout>,
    pub replayed: Vec<SellerPayout>,
    pub published_ledger_entries: u64,
    pub replayed_ledger_entries: u64,
}

/// One difference between the live and the rebuilt ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Difference {
    /// A (business day, seller, category) row differs or exists on one side only.
    #[serde(rename_all = "camelCase")]
    Figures { date: String, seller_id: Uuid, category: String, live: Option<Figures>, rebuilt: Option<Figures> },
    /// A day is closed on one side only.
    #[serde(rename_all = "camelCase")]
    Closed { date: String, live: bool, rebuilt: bool },
}

impl Difference {
    /// The rebuilt ledger has something the live one lacks: a row missing live, a day not closed
    /// live.
    pub fn only_adds(&self) -> bool {
        matches!(self, Difference::Figures { live: None, .. } | Difference::Closed { live: false, rebuilt: true, .. })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "replayed {} messages into {}", self.messages, self.rebuilt_db.display())?;
        writeln!(
            f,
            "  booked {}, duplicates {}, closes {}, rejected {}, unapplied {}",
            self.applied,
            self.duplicates,
            self.closes,
            self.rejected.len(),
            self.unapplied.len()
        )?;
        if !self.complete {
            writeln!(f, "  INCOMPLETE: the stream no longer holds its oldest messages")?;
        }
        for r in self.rejected.iter().chain(&self.unapplied) {
            writeln!(f, "  skipped {r}")?;
        }
        for m in &self.close_mismatches {
            if m.published != m.replayed {
                writeln!(f, "  close of {} does not reproduce its published payouts", m.date)?;
            }
            if m.published_ledger_entries != m.replayed_ledger_entries {
                writeln!(
                    f,
                    "  close of {} was taken after {} ledger entries live, after {} in the replay",
                    m.date, m.published_ledger_entries, m.replayed_ledger_entries
                )?;
            }
        }
        for d in &self.differences {
            match d {
                Difference::Figures { date, seller_id, category, live, rebuilt } => {
                    writeln!(f, "  {date} {seller_id} {category}: live {live:?}, rebuilt {rebuilt:?}")?
                }
                Difference::Closed { date, live, rebuilt } => {
                    writeln!(f, "  {date}: closed live {live}, closed rebuilt {rebuilt}")?
                }
            }
        }
        if self.is_clean() {
            writeln!(f, "the rebuilt ledger equals the live one ({})", self.live_db.display())?;
        }
        if self.swapped {
            let replaced = self.replaced.as_ref().map_or("nothing".into(), |p| p.display().to_string());
            writeln!(f, "swapped: {} now holds the rebuilt ledger (replaced {replaced})", self.live_db.display())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_is_clean_only_without_differences_mismatches_or_leftovers() {
        let mut s = Summary::default();
        assert!(s.is_clean());
        s.unapplied.push("x: refund before sale".into());
        assert!(!s.is_clean());
    }

    fn figures(date: &str, live: Option<Figures>, rebuilt: Option<Figures>) -> Difference {
        Difference::Figures { date: date.into(), seller_id: Uuid::nil(), category: "books".into(), live, rebuilt }
    }

    #[test]
    fn only_a_complete_rebuild_that_adds_to_the_live_ledger_is_safe_to_swap() {
        let some = Some(Figures::default());
        let complete = Summary { complete: true, ..Summary::default() };
        assert!(complete.is_safe_to_swap(), "a clean rebuild");
        assert!(!Summary::default().is_safe_to_swap(), "the stream lost its oldest messages");

        let lost = Summary {
            differences: vec![
                figures("2026-11-30", None, some),
                Difference::Closed { date: "2026-11-30".into(), live: false, rebuilt: true },
            ],
            unapplied: vec!["x: refund before sale".into()],
            ..complete.clone()
        };
        assert!(lost.is_safe_to_swap(), "the live database lost rows and closes");

        for changes in [
            figures("2026-11-30", some, None),
            figures("2026-11-30", some, Some(Figures { orders: 1, ..Figures::default() })),
            Difference::Closed { date: "2026-11-30".into(), live: true, rebuilt: false },
        ] {
            let s =
                Summary { differences: vec![figures("2026-12-01", None, some), changes.clone()], ..complete.clone() };
            assert!(!s.is_safe_to_swap(), "{changes:?}");
        }
        let mismatch = CloseMismatch {
            date: "2026-11-30".into(),
            published: vec![],
            replayed: vec![],
            published_ledger_entries: 1,
            replayed_ledger_entries: 2,
        };
        assert!(!Summary { close_mismatches: vec![mismatch], ..complete }.is_safe_to_swap());
    }
}
