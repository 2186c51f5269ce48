//! The published closes, as watermarks.
//!
//! Each `settlement.closed` carries `ledgerEntries`: how many ledger entries (all days) the live
//! service had booked when the close committed. The replay closes the day when its own ledger
//! holds exactly that many, before booking the next entry, wherever the event sits in the stream.

use std::collections::{HashMap, VecDeque};

use anyhow::bail;
use async_nats::jetstream;
use common::{Envelope, Event, event::SettlementClosed};
use jiff::civil::Date;
use uuid::Uuid;

use super::{Summary, stream::History};
use crate::domain::{Rules, calendar::parse_day};

/// What announces a close.
pub const SUBJECTS: &[&str] = &["settlement.closed.*"];

/// A published close, waiting for the replayed ledger to reach its watermark.
#[derive(Debug, Clone)]
pub struct Published {
    pub date: Date,
    /// Stream sequence of the event: orders closes with the same watermark.
    pub seq: u64,
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
/// counts; the same event again is a duplicate, another close of the day is rejected.
pub async fn scan(
    js: &jetstream::Context,
    last_seq: u64,
    rules: &Rules,
    summary: &mut Summary,
) -> anyhow::Result<Watermarks> {
    let mut history = History::open(js, SUBJECTS, last_seq).await?;
    let mut first: HashMap<Date, Uuid> = HashMap::new();
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
        if closed.time_zone != rules.calendar.name() {
            bail!(
                "day {} was closed in time zone {}, but the rebuild runs with {}; rebuild with --time-zone {}",
                closed.date,
                closed.time_zone,
                rules.calendar.name(),
                closed.time_zone
            );
        }
        let date = match parse_day(&closed.date) {
            Ok(date) => date,
            Err(error) => {
                summary.rejected.push(format!("{}: {error}", envelope.id));
                continue;
            }
        };
        match first.get(&date) {
            Some(id) if *id == envelope.id => summary.duplicates += 1, // the same close re-published
            Some(id) => summary.rejected.push(format!("{}: {date} was closed before by {id}", envelope.id)),
            None => {
                first.insert(date, envelope.id);
                closes.push(Published { date, seq, closed: closed.clone(), envelope });
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
            payouts: vec![],
            ledger_entries,
        };
        let envelope = Envelope::new("svc-settlement", Event::SettlementClosed(closed.clone()));
        Published { date, seq, envelope, closed }
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
    fn closes_the_replay_never_reaches_are_left_for_the_end() {
        let mut marks = Watermarks::new(vec![published(29, 1, 1), published(30, 2, 9)]);
        assert_eq!(days(marks.due(1)), [29]);
        assert_eq!(days(marks.rest()), [30]);
    }
}
