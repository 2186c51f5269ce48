//! The business calendar: which day an instant is booked on, when a day ends, and the strict
//! `YYYY-MM-DD` / `YYYY-MM` forms days and months take on the wire and in the database.

use std::str::FromStr;

use jiff::{SignedDuration, Timestamp, civil::Date, tz::TimeZone};

/// Years a business day may fall in. Bounded so every day has a next day and so dates compare
/// correctly as `YYYY-MM-DD` text in SQL.
pub const YEARS: std::ops::RangeInclusive<i16> = 1970..=9998;

/// Business days are local dates in one IANA time zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    name: String,
    tz: TimeZone,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?} (expected an IANA name such as Asia/Seoul)")]
pub struct UnknownTimeZone(String);

/// A day outside [`YEARS`]: no business day can be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is outside the supported years {start}..={end}", start = YEARS.start(), end = YEARS.end())]
pub struct OutOfRange(pub Date);

impl Calendar {
    /// The calendar of the IANA zone `name` (from the bundled tz database, not the host's).
    pub fn new(name: &str) -> Result<Self, UnknownTimeZone> {
        let tz = TimeZone::get(name).map_err(|_| UnknownTimeZone(name.to_owned()))?;
        let name = tz.iana_name().unwrap_or(name).to_owned();
        Ok(Calendar { name, tz })
    }

    /// The zone's canonical IANA name, e.g. `Asia/Seoul`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local date of `at`: the day something that happened then is booked on.
    pub fn date_of(&self, at: Timestamp) -> Date {
        at.to_zoned(self.tz.clone()).date()
    }

    /// The instant `day` ends: the first instant of the next local day (DST-safe).
    pub fn end_of(&self, day: Date) -> Result<Timestamp, OutOfRange> {
        let next = day.tomorrow().map_err(|_| OutOfRange(day))?;
        next.to_zoned(self.tz.clone()).map(|z| z.timestamp()).map_err(|_| OutOfRange(day))
    }

    /// Whether `day` is over at `now` (so it may be closed by hand).
    pub fn has_ended(&self, day: Date, now: Timestamp) -> bool {
        self.end_of(day).is_ok_and(|end| now >= end)
    }

    /// Whether the scheduler should close `day` at `now`: it ended at least `grace` ago.
    pub fn is_due(&self, day: Date, now: Timestamp, grace: SignedDuration) -> bool {
        self.end_of(day).ok().and_then(|end| end.checked_add(grace).ok()).is_some_and(|due| now >= due)
    }
}

impl FromStr for Calendar {
    type Err = UnknownTimeZone;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Calendar::new(s)
    }
}

impl PartialEq for Calendar {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Why a day or month on the wire was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDay {
    #[error("{0:?} is not a date of the form YYYY-MM-DD")]
    Format(String),
    #[error("{0:?} is not a day of the calendar")]
    NoSuchDay(String),
    #[error("{0:?} is not a month of the form YYYY-MM")]
    MonthFormat(String),
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
}

/// Parses exactly `YYYY-MM-DD` (no week dates, no `+` years, no time) within [`YEARS`].
pub fn parse_day(s: &str) -> Result<Date, InvalidDay> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    let (Some(year), Some(month), Some(day)) = (digits(s, 0..4), digits(s, 5..7), digits(s, 8..10)) else {
        return Err(InvalidDay::Format(s.to_owned()));
    };
    if !shape_ok {
        return Err(InvalidDay::Format(s.to_owned()));
    }
    let date = Date::new(year as i16, month as i8, day as i8).map_err(|_| InvalidDay::NoSuchDay(s.to_owned()))?;
    in_range(date)
}

/// `date` if it lies within [`YEARS`].
pub fn in_range(date: Date) -> Result<Date, InvalidDay> {
    if YEARS.contains(&date.year()) { Ok(date) } else { Err(OutOfRange(date).into()) }
}

/// The decimal number in `s[range]`, if that is all ASCII digits.
fn digits(s: &str, range: std::ops::Range<usize>) -> Option<u16> {
    let part = s.get(range)?;
    part.bytes().all(|b| b.is_ascii_digit()).then(|| part.parse().ok()).flatten()
}

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    first: Date,
}

impl Month {
    /// Parses exactly `YYYY-MM` within [`YEARS`].
    pub fn parse(s: &str) -> Result<Self, InvalidDay> {
        let format = || InvalidDay::MonthFormat(s.to_owned());
        if s.len() != 7 || s.as_bytes()[4] != b'-' {
            return Err(format());
        }
        let (year, month) = digits(s, 0..4).zip(digits(s, 5..7)).ok_or_else(format)?;
        let first = Date::new(year as i16, month as i8, 1).map_err(|_| format())?;
        Ok(Month { first: in_range(first)? })
    }

    pub fn first_day(self) -> Date {
        self.first
    }

    pub fn last_day(self) -> Date {
        self.first.last_of_month()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.first.year(), self.first.month())
    }
}

/// The day an entry that counts from `start` on is booked on: `start` itself when it is after
/// every closed day, otherwise the day after the latest closed day (an adjustment). Never an open
/// day on or before the latest closed day, such as an old day without entries or a gap between
/// closes: the days up to the latest close stay as they were reported.
pub fn booking_day(start: Date, latest_closed: Option<Date>) -> Result<Date, OutOfRange> {
    let day = match latest_closed {
        Some(closed) if closed >= start => closed.tomorrow().map_err(|_| OutOfRange(closed))?,
        _ => start,
    };
    if YEARS.contains(&day.year()) { Ok(day) } else { Err(OutOfRange(day)) }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn seoul() -> Calendar {
        Calendar::new("Asia/Seoul").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn one_second_before_and_at_local_midnight_are_different_business_days() {
        let cal = seoul();
        assert_eq!(cal.date_of(ts("2026-11-30T23:59:59+09:00")), date(2026, 11, 30));
        assert_eq!(cal.date_of(ts("2026-12-01T00:00:00+09:00")), date(2026, 12, 1));
    }

    #[test]
    fn the_business_day_is_the_local_date_whatever_offset_the_event_was_written_with() {
        let cal = seoul();
        // 15:00 UTC is midnight in Seoul.
        assert_eq!(cal.date_of(ts("2026-11-30T14:59:59Z")), date(2026, 11, 30));
        assert_eq!(cal.date_of(ts("2026-11-30T15:00:00Z")), date(2026, 12, 1));
        assert_eq!(Calendar::new("UTC").unwrap().date_of(ts("2026-11-30T15:00:00Z")), date(2026, 11, 30));
    }

    #[test]
    fn a_day_ends_at_the_next_local_midnight() {
        let cal = seoul();
        assert_eq!(cal.end_of(date(2026, 11, 30)).unwrap(), ts("2026-12-01T00:00:00+09:00"));
        assert!(!cal.has_ended(date(2026, 11, 30), ts("2026-11-30T23:59:59.999+09:00")));
        assert!(cal.has_ended(date(2026, 11, 30), ts("2026-12-01T00:00:00+09:00")));
    }

    #[test]
    fn a_day_is_due_for_closing_only_once_the_grace_period_after_its_end_has_passed() {
        let cal = seoul();
        let grace = SignedDuration::from_secs(3600);
        assert!(!cal.is_due(date(2026, 11, 30), ts("2026-12-01T00:59:59+09:00"), grace));
        assert!(cal.is_due(date(2026, 11, 30), ts("2026-12-01T01:00:00+09:00"), grace));
    }

    #[test]
    fn a_day_with_a_daylight_saving_change_ends_at_local_midnight_too() {
        let cal = Calendar::new("America/New_York").unwrap();
        // 2026-11-01 is 25 hours long in New York.
        assert_eq!(cal.end_of(date(2026, 11, 1)).unwrap(), ts("2026-11-02T00:00:00-05:00"));
        assert_eq!(cal.end_of(date(2026, 10, 31)).unwrap(), ts("2026-11-01T00:00:00-04:00"));
    }

    #[test]
    fn time_zone_names_are_iana_names_and_are_canonicalised() {
        assert_eq!(Calendar::new("asia/seoul").unwrap().name(), "Asia/Seoul");
        assert!(Calendar::new("Mars/Olympus").is_err());
        assert!(Calendar::new("").is_err());
    }

    #[test]
    fn only_plain_calendar_dates_parse_as_days() {
        assert_eq!(parse_day("2026-11-30"), Ok(date(2026, 11, 30)));
        for bad in ["2026-11-31", "2026-02-29", "2026-13-01", "2026-00-10"] {
            assert!(matches!(parse_day(bad), Err(InvalidDay::NoSuchDay(_))), "{bad}");
        }
        for bad in ["20261130", "2026-1-30", "2026-11-30T00:00", "+02026-11-30", "2026-11-3x", "", "２０２６-11-30"]
        {
            assert!(matches!(parse_day(bad), Err(InvalidDay::Format(_))), "{bad}");
        }
        assert!(matches!(parse_day("1969-12-31"), Err(InvalidDay::OutOfRange(_))));
        assert!(matches!(parse_day("9999-12-31"), Err(InvalidDay::OutOfRange(_))));
    }

    #[test]
    fn months_parse_as_year_and_month_and_know_their_last_day() {
        let feb = Month::parse("2028-02").unwrap();
        assert_eq!((feb.first_day(), feb.last_day()), (date(2028, 2, 1), date(2028, 2, 29)));
        assert_eq!(feb.to_string(), "2028-02");
        for bad in ["2028-2", "2028-13", "2028/02", "2028-02-01", "abcd-ef", ""] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_entry_dated_after_every_closed_day_is_booked_on_its_own_day() {
        assert_eq!(booking_day(date(2026, 11, 30), None), Ok(date(2026, 11, 30)));
        assert_eq!(booking_day(date(2026, 11, 30), Some(date(2026, 11, 29))), Ok(date(2026, 11, 30)));
        // An empty day after the latest close is still open for its own events.
        assert_eq!(booking_day(date(2026, 12, 5), Some(date(2026, 11, 29))), Ok(date(2026, 12, 5)));
    }

    #[test]
    fn an_entry_dated_on_or_before_the_latest_closed_day_is_booked_the_day_after_it() {
        let latest = Some(date(2026, 12, 3));
        assert_eq!(booking_day(date(2026, 12, 3), latest), Ok(date(2026, 12, 4)));
        assert_eq!(booking_day(date(2026, 11, 30), latest), Ok(date(2026, 12, 4)));
    }

    #[test]
    fn a_day_left_open_before_a_closed_day_takes_no_late_entries() {
        // Dec 2 was never closed (it had no entries), Dec 3 was: a late Dec 2 event must not
        // land on Dec 2, or December would change after it was reported closed.
        assert_eq!(booking_day(date(2026, 12, 2), Some(date(2026, 12, 3))), Ok(date(2026, 12, 4)));
        assert_eq!(booking_day(date(2026, 1, 1), Some(date(2026, 12, 3))), Ok(date(2026, 12, 4)));
    }

    #[test]
    fn no_day_is_booked_past_the_supported_years() {
        let last = date(*YEARS.end(), 12, 31);
        assert!(booking_day(last, Some(last)).is_err());
    }
}
