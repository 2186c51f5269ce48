//! The published closes, as watermarks.
//!
//! Each `settlement.closed` carries `ledgerEntries`: how many ledger entries (all days) the live
//! service had booked when the close committed. The replay closes the day when its own ledger
//! holds exactly that many, before booking the next entry, wherever the event sits in the stream,
//! and settles it at the event's `feeRateBps`, the rate it was settled at live.

use std::collections::{HashMap, VecDeque};

use anyhow::bail;
use async_nats::jetstream;
use common::{Envelope, Event, EventType, event::SettlementClosed};
use jiff::civil::Date;
use uuid::Uuid;

use super::{Summary, stream::History};
use crate::domain::{FeeRate, Rules, calendar::parse_day};

/// What announces a close.
const CLOSES: &[EventType] = &[EventType::SettlementClosed];

/// A published close, waiting for the replayed ledger to reach its watermark.
#[derive(Debug, Clone)]
pub struct Published {
    pub date: Date,
    /// Stream sequence of the event: orders closes with the same watermark.
    pub seq: u64,
    /// The rate the day was settled at live (`feeRateBps`), checked.
    pub fee_rate: FeeRate,
    pub envelope: Envelope,
    pub closed: SettlementClosed,
}

/// The published closes not replayed yet, by watermark, then stream position.
#[derive(Debug, Default)]
pub struct Watermarks {
    pending: VecDeque<Published>,
}

impl Watermarks {
    pub fn new(mut closes: Vec<Published>) -> Self {
        closes.sort_by_key(|c| (c.closed.ledger_entries, c.seq));
        Watermarks { pending: closes.into() }
    }

    /// The time zone of the first close published (by stream position), if any.
    pub fn first_time_zone(&self) -> Option<&str> {
        self.pending.iter().min_by_key(|c| c.seq).map(|c| c.closed.time_zone.as_str())
    }

    /// Refuses to replay closes taken in another time zone than the ledger's: their days would
    /// not be the days the replayed entries are booked on.
    pub fn check_time_zone(&self, rules: &Rules) -> anyhow::Result<()> {
        if let Some(other) = self.pending.iter().find(|c| c.closed.time_zone != rules.calendar.name()) {
            bail!(
                "day {} was closed in time zone {}, but the ledger keeps business days in {}; \
                 a ledger whose time zone changed cannot be rebuilt",
                other.closed.date,
                other.closed.time_zone,
                rules.calendar.name()
            );
        }
        Ok(())
    }

    /// The closes that take effect while the replayed ledger holds `entries` entries, before the
    /// next one is booked: every close whose watermark is at most that, in order.
    pub fn due(&mut self, entries: u64) -> Vec<Published> {
        let n = self.pending.iter().take_while(|c| c.closed.ledger_entries <= entries).count();
        self.pending.drain(..n).collect()
    }

    /// Every close left, whatever its watermark: the replay ran out of entries before reaching it.
    pub fn rest(&mut self) -> Vec<Published> {
        self.pending.drain(..).collect()
    }
}

/// Reads every `settlement.closed` through stream sequence `last_seq`. The first close of a day
/// counts; the same event again is a duplicate, a further part of that close (same watermark and
/// rate) adds nothing, another close of the day is rejected, and so is a close with a fee rate out
/// of range.
pub async fn scan(js: &jetstream::Context, last_seq: u64, summary: &mut Summary) -> anyhow::Result<Watermarks> {
    let mut history = History::open(js, &common::bus::filter_subjects(CLOSES), last_seq).await?;
    let mut first: HashMap<Date, (Uuid, u64, u32)> = HashMap::new();
    let mut closes = Vec::new();
    while let Some((seq, msg)) = history.next().await? {
        summary.messages += 1;
        let envelope = match Envelope::decode(msg.subject.as_str(), &msg.payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                summary.rejected.push(format!("{}: {error}", msg.subject));
                continue;
            }
        };
        // The subject filter and `decode`'s subject check admit nothing else.
        let Event::SettlementClosed(closed) = &envelope.event else { continue };
        let date = match parse_day(&closed.date) {
            Ok(date) => date,
            Err(error) => {
                summary.rejected.push(format!("{}: {error}", envelope.id));
                continue;
            }
        };
        let Some(fee_rate) = u16::try_from(closed.fee_rate_bps).ok().and_then(|bps| FeeRate::new(bps).ok()) else {
            summary.rejected.push(format!("{}: fee rate {} bps is out of range", envelope.id, closed.fee_rate_bps));
            continue;
        };
        match first.get(&date) {
            Some((id, ..)) if *id == envelope.id => summary.duplicates += 1, // the same close re-published
            Some((_, entries, bps))
                if closed.parts > 1 && (*entries, *bps) == (closed.ledger_entries, closed.fee_rate_bps) =>
            {
                // Another part of the same close: its watermark and rate are the close's.
            }
            Some((id, ..)) => summary.rejected.push(format!("{}: {date} was closed before by {id}", envelope.id)),
            None => {
                first.insert(date, (envelope.id, closed.ledger_entries, closed.fee_rate_bps));
                closes.push(Published { date, seq, fee_rate, closed: closed.clone(), envelope });
            }
        }
    }
    Ok(Watermarks::new(closes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(day: i8, seq: u64, ledger_entries: u64) -> Published {
        let date = jiff::civil::date(2026, 11, day);
        let closed = SettlementClosed {
            date: date.to_string(),
            time_zone: "Asia/Seoul".into(),
            fee_rate_bps: 300,
            payouts: vec![],
            ledger_entries,
            part: 1,
            parts: 1,
        };
        let envelope = Envelope::new("svc-settlement", Event::SettlementClosed(closed.clone()));
        Published { date, seq, fee_rate: FeeRate::DEFAULT, envelope, closed }
    }

    fn days(closes: Vec<Published>) -> Vec<i8> {
        closes.iter().map(|c| c.date.day()).collect()
    }

    #[test]
    fn a_close_is_due_when_the_ledger_holds_its_count_whatever_its_stream_position() {
        // Nov 28 was published last but closed first, before any entry.
        let mut marks = Watermarks::new(vec![published(29, 10, 3), published(30, 20, 5), published(28, 30, 0)]);
        assert_eq!(days(marks.due(0)), [28]);
        assert_eq!(days(marks.due(2)), [] as [i8; 0]);
        assert_eq!(days(marks.due(3)), [29]);
        assert_eq!(days(marks.due(4)), [] as [i8; 0]);
        assert_eq!(days(marks.due(5)), [30]);
        assert!(marks.rest().is_empty());
    }

    #[test]
    fn closes_with_the_same_count_take_effect_in_stream_order() {
        let mut marks = Watermarks::new(vec![published(30, 9, 4), published(28, 7, 4), published(29, 8, 4)]);
        assert_eq!(days(marks.due(4)), [28, 29, 30]);
    }

    #[test]
    fn the_first_close_published_names_the_ledgers_time_zone_and_every_close_must_agree() {
        let mut paris = published(30, 2, 1);
        paris.closed.time_zone = "Europe/Paris".into();
        let marks = Watermarks::new(vec![paris, published(29, 1, 5)]);
        assert_eq!(marks.first_time_zone(), Some("Asia/Seoul"));
        let seoul = Rules { calendar: "Asia/Seoul".parse().unwrap(), fee_rate: FeeRate::DEFAULT };
        let err = marks.check_time_zone(&seoul).unwrap_err().to_string();
        assert!(err.contains("closed in time zone Europe/Paris"), "{err}");
        assert_eq!(Watermarks::default().first_time_zone(), None);
    }

    #[test]
    fn closes_the_replay_never_reaches_are_left_for_the_end() {
        let mut marks = Watermarks::new(vec![published(29, 1, 1), published(30, 2, 9)]);
        assert_eq!(days(marks.due(1)), [29]);
        assert_eq!(days(marks.rest()), [30]);
    }
}
