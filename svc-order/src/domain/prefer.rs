//! The `wait` preference of RFC 7240 (`Prefer: wait=5`): how long a client is willing to wait for
//! its order's outcome before taking a `202 Accepted`.
//!
//! Only `wait` is read. Other preferences (`respond-async`, `return=minimal`, ...) and their
//! parameters are skipped, as the RFC asks of preferences a server does not support. An invalid
//! `wait` value is ignored the same way, and of several `wait`s only the first counts (RFC 7240
//! section 2).

use std::time::Duration;

/// A honoured `wait` preference, in whole seconds, capped at [`Wait::MAX_SECS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(u64);

impl Wait {
    /// The longest a request waits, whatever it asks: long enough for a saga on a healthy system
    /// (tens of milliseconds), short enough not to pile up open connections.
    pub const MAX_SECS: u64 = 30;

    /// The wait requested by a request's `Prefer` header values, if any.
    pub fn from_prefer<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Wait> {
        let first_wait = values
            .into_iter()
            .flat_map(|value| split_unquoted(value, ','))
            .filter_map(|preference| {
                // Parameters after `;` belong to the preference; `wait` defines none.
                let head = split_unquoted(preference, ';').next().unwrap_or_default();
                let (name, value) = head.split_once('=').unwrap_or((head, ""));
                name.trim().eq_ignore_ascii_case("wait").then_some(value)
            })
            .next()?;
        parse_seconds(first_wait).map(|secs| Wait(secs.min(Self::MAX_SECS)))
    }

    pub fn secs(self) -> u64 {
        self.0
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

/// The value of a `Preference-Applied` header for this wait.
impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wait={}", self.0)
    }
}

/// `delta-seconds` (RFC 9111): digits only, possibly quoted; too many digits saturate.
fn parse_seconds(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let digits = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

/// Splits on `sep` outside double-quoted strings, so `foo="a,wait=3"` stays one preference.
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    s.split(move |c: char| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        }
        c == sep && !quoted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(values: &[&str]) -> Option<u64> {
        Wait::from_prefer(values.iter().copied()).map(Wait::secs)
    }

    #[test]
    fn wait_is_read_in_seconds() {
        assert_eq!(wait(&["wait=5"]), Some(5));
        assert_eq!(wait(&["wait=0"]), Some(0));
    }

    #[test]
    fn no_prefer_header_or_no_wait_means_no_waiting() {
        assert_eq!(wait(&[]), None);
        assert_eq!(wait(&["respond-async"]), None);
        assert_eq!(wait(&["return=minimal", "handling=lenient"]), None);
    }

    #[test]
    fn other_preferences_around_wait_are_tolerated() {
        assert_eq!(wait(&["respond-async, wait=10"]), Some(10));
        assert_eq!(wait(&["return=representation", "respond-async;x=1, wait=3"]), Some(3));
    }

    #[test]
    fn names_are_case_insensitive_and_whitespace_is_allowed_around_the_equals_sign() {
        assert_eq!(wait(&["WAIT = 7"]), Some(7));
        assert_eq!(wait(&["  Wait=7 ; foo=bar"]), Some(7));
    }

    #[test]
    fn a_quoted_value_is_accepted() {
        assert_eq!(wait(&["wait=\"4\""]), Some(4));
    }

    #[test]
    fn waits_above_30_seconds_are_capped() {
        assert_eq!(wait(&["wait=31"]), Some(30));
        assert_eq!(wait(&["wait=99999999999999999999999"]), Some(30));
    }

    #[test]
    fn an_invalid_wait_is_ignored() {
        for value in ["wait", "wait=", "wait=-1", "wait=1.5", "wait=abc", "wait=+3"] {
            assert_eq!(wait(&[value]), None, "{value:?}");
        }
    }

    #[test]
    fn only_the_first_wait_counts() {
        assert_eq!(wait(&["wait=2, wait=9"]), Some(2));
        assert_eq!(wait(&["wait=2", "wait=9"]), Some(2));
        assert_eq!(wait(&["wait=x, wait=9"]), None);
    }

    #[test]
    fn a_comma_inside_a_quoted_value_does_not_start_a_preference() {
        assert_eq!(wait(&["foo=\"a, wait=3\""]), None);
        assert_eq!(wait(&["foo=\"a\\\", wait=3\", wait=4"]), Some(4));
    }

    #[test]
    fn the_applied_preference_reads_like_the_request() {
        assert_eq!(Wait::from_prefer(["wait=45"]).unwrap().to_string(), "wait=30");
    }
}
