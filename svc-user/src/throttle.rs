//! Login throttling: repeated failed logins for one email, or from one client, are answered 429
//! `TOO_MANY_ATTEMPTS` with `Retry-After`, before any password is hashed (so a guessing run also
//! stops costing Argon2 time).
//!
//! - **Per account**, keyed on the email as sent (trimmed and lowercased like [`Email`]), never on
//!   the account: an unknown email is counted and locked exactly like a registered one, so a 429
//!   tells nothing about which emails have accounts. [`Policy::max_failures`] failures, each within
//!   [`Policy::window`] of the one before, lock the email for [`Policy::lockout`]; failures are
//!   remembered until a window has passed since the last one and since the lock ended, and while
//!   they are, each further failure (the first attempt after a lock ends, if it fails) locks it
//!   again for twice as long, up to [`Policy::max_lockout`]. A successful login forgets them.
//! - **Per client** (its IP address), the same with the client policy. A success does not reset
//!   it: knowing one account's password must not buy more guesses at the others. The address is
//!   the connection's (`ConnectInfo`, which `common::http::serve` gives every request); behind a
//!   reverse proxy every client would share one address, and forwarded headers are not trusted.
//! - Attempts still hashing count against what is left, so a burst of concurrent guesses cannot
//!   all pass the check before the first of them has failed.
//! - **Memory is bounded**: each table holds at most its capacity; a new key past that evicts the
//!   one due to be forgotten first. Filling a table to evict a lock costs one Argon2 hash per key,
//!   which [`crate::hashing`] keeps to a few dozen a second.
//!
//! Hand-written, not a crate: `governor` (not in the tree) limits the *rate of requests*; this
//! counts *outcomes* (failures, not attempts), escalates the lock and resets on success, in two
//! small tables behind one mutex that is never held across an `.await`.

use std::{
    collections::{BTreeMap, HashMap},
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use common::http::{ApiError, Code};

use crate::domain::Email;

/// When failures lock a key, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures that lock the key.
    pub max_failures: u32,
    /// How long a failure is remembered after the key's last one.
    pub window: Duration,
    /// The first lock; each further one doubles it.
    pub lockout: Duration,
    /// The longest lock.
    pub max_lockout: Duration,
}

impl Policy {
    /// The length of the `n`th lock in a row (from 1).
    fn lock(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.lockout.saturating_mul(factor).min(self.max_lockout)
    }
}

/// Both tables' policies and their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub account: Policy,
    pub client: Policy,
    /// Keys each table holds at most.
    pub capacity: usize,
}

/// How an attempt ended, as far as counting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Failed,
    /// Forgets the key's failures.
    Succeeded,
    /// Neither (an error, or the client gone before the answer): counts for nothing.
    Inconclusive,
}

/// The failures of many keys under one policy, in at most `capacity` entries. Time is passed in,
/// so the rules are tested without a clock.
#[derive(Debug)]
pub struct Limiter<K> {
    policy: Policy,
    capacity: usize,
    entries: HashMap<K, Entry>,
    /// Every key by the instant it is due to be forgotten (a counter breaks ties): the first is
    /// the one to drop when it is due, or to evict when the table is full.
    by_expiry: BTreeMap<(Instant, u64), K>,
    seq: u64,
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    /// Locks in a row since the failures were last forgotten.
    locks: u32,
    in_flight: u32,
    locked_until: Option<Instant>,
    /// The last failure, or the start of the first attempt.
    last_seen: Instant,
    slot: (Instant, u64),
}

impl Entry {
    // A window after the last failure or the end of the lock, whichever is later: the first
    // failure after a lock, however long, still counts and locks again.
    fn expires(&self, window: Duration) -> Instant {
        self.locked_until.map_or(self.last_seen, |until| until.max(self.last_seen)) + window
    }
}

/// What a client that is turned away only because attempts are still in flight should wait.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(policy: Policy, capacity: usize) -> Self {
        Limiter { policy, capacity: capacity.max(1), entries: HashMap::new(), by_expiry: BTreeMap::new(), seq: 0 }
    }

    /// Whether an attempt for `key` may go ahead at `now`; if not, how long until it may.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        self.forget_expired(now);
        let Some(entry) = self.entries.get(key) else { return Ok(()) };
        if let Some(until) = entry.locked_until
            && until > now
        {
            return Err(until - now);
        }
        // Once a lock has ended, one attempt at a time: its failure locks again.
        let left = self.policy.max_failures.saturating_sub(entry.failures).max(1);
        if entry.in_flight >= left {
            return Err(IN_FLIGHT_RETRY);
        }
        Ok(())
    }

    /// Counts an attempt for `key` as in flight until [`Limiter::finish`].
    pub fn start(&mut self, key: &K, now: Instant) {
        self.entry(key, now).in_flight += 1;
        self.reslot(key);
    }

    /// Ends an attempt [`Limiter::start`]ed for `key`; returns the lock a failure started.
    pub fn finish(&mut self, key: &K, outcome: Outcome, now: Instant) -> Option<Duration> {
        let policy = self.policy;
        // The entry may be gone (expired or evicted meanwhile): a failure still counts.
        if !self.entries.contains_key(key) && outcome != Outcome::Failed {
            return None;
        }
        let entry = self.entry(key, now);
        entry.in_flight = entry.in_flight.saturating_sub(1);
        let mut locked = None;
        match outcome {
            Outcome::Failed => {
                entry.failures = entry.failures.saturating_add(1);
                entry.last_seen = now;
                if entry.failures >= policy.max_failures {
                    entry.locks = entry.locks.saturating_add(1);
                    let lock = policy.lock(entry.locks);
                    entry.locked_until = Some(now + lock);
                    locked = Some(lock);
                }
            }
            Outcome::Succeeded => (entry.failures, entry.locks, entry.locked_until) = (0, 0, None),
            Outcome::Inconclusive => {}
        }
        if entry.failures == 0 && entry.in_flight == 0 && entry.locked_until.is_none() {
            self.remove(key);
        } else {
            self.reslot(key);
        }
        locked
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry(&mut self, key: &K, now: Instant) -> &mut Entry {
        if !self.entries.contains_key(key) {
            while self.entries.len() >= self.capacity {
                let Some((_, evicted)) = self.by_expiry.pop_first() else { break };
                self.entries.remove(&evicted);
            }
            let entry =
                Entry { failures: 0, locks: 0, in_flight: 0, locked_until: None, last_seen: now, slot: (now, 0) };
            self.entries.insert(key.clone(), entry);
            self.reslot(key);
        }
        self.entries.get_mut(key).expect("inserted above")
    }

    // Files the entry under its current expiry.
    fn reslot(&mut self, key: &K) {
        let Some(entry) = self.entries.get_mut(key) else { return };
        self.by_expiry.remove(&entry.slot);
        self.seq += 1;
        entry.slot = (entry.expires(self.policy.window), self.seq);
        self.by_expiry.insert(entry.slot, key.clone());
    }

    fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.by_expiry.remove(&entry.slot);
        }
    }

    fn forget_expired(&mut self, now: Instant) {
        while let Some(first) = self.by_expiry.first_entry() {
            if first.key().0 > now {
                break;
            }
            self.entries.remove(&first.remove());
        }
    }
}

/// The two tables, shared by every login. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LoginThrottle {
    tables: Arc<Mutex<Tables>>,
}

#[derive(Debug)]
struct Tables {
    accounts: Limiter<Arc<str>>,
    clients: Limiter<IpAddr>,
}

impl LoginThrottle {
    pub fn new(settings: Settings) -> Self {
        let tables = Tables {
            accounts: Limiter::new(settings.account, settings.capacity),
            clients: Limiter::new(settings.client, settings.capacity),
        };
        LoginThrottle { tables: Arc::new(Mutex::new(tables)) }
    }

    /// Starts a login attempt for `email` (as sent) from `client`, or says how long to wait.
    pub fn begin(&self, email: &str, client: Option<IpAddr>) -> Result<Attempt, Throttled> {
        let account: Arc<str> = account_key(email).into();
        let client = client.map(client_key);
        let now = Instant::now();
        let mut tables = self.tables();
        let account_wait = tables.accounts.check(&account, now).err();
        let client_wait = client.and_then(|ip| tables.clients.check(&ip, now).err());
        if let Some(retry_after) = account_wait.max(client_wait) {
            return Err(Throttled { retry_after });
        }
        tables.accounts.start(&account, now);
        if let Some(ip) = client {
            tables.clients.start(&ip, now);
        }
        Ok(Attempt { throttle: self.clone(), account, client, outcome: Outcome::Inconclusive })
    }

    /// Keys held by the account and the client table.
    pub fn tracked(&self) -> (usize, usize) {
        let tables = self.tables();
        (tables.accounts.len(), tables.clients.len())
    }

    // A panic elsewhere cannot leave the counters half-updated: every update is a few
    // assignments, so a poisoned lock is still a consistent one.
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The per-account key for `email` as sent: normalised like [`Email`], so `Kim@x.com` and
/// `kim@x.com` are one key whether or not either is an account, and cut one byte past the longest
/// email, so a huge body cannot make a huge key (nothing that long is an account).
fn account_key(email: &str) -> String {
    let mut key = Email::normalise(email);
    if key.len() > Email::MAX_LEN {
        let mut end = Email::MAX_LEN + 1;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key.truncate(end);
    }
    key
}

/// The per-client key for `ip`: an IPv4 address, or the /64 an IPv6 address is in (one host
/// commonly holds a whole /64, and could otherwise take a fresh address per guess).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// A login attempt under way. [`Attempt::failed`] or [`Attempt::succeeded`] say how it ended;
/// dropped without either (an error, or the request dropped) it counts for nothing.
#[must_use = "an attempt counts only once it is said to have failed"]
#[derive(Debug)]
pub struct Attempt {
    throttle: LoginThrottle,
    account: Arc<str>,
    client: Option<IpAddr>,
    outcome: Outcome,
}

impl Attempt {
    pub fn failed(mut self) {
        self.outcome = Outcome::Failed;
    }

    pub fn succeeded(mut self) {
        self.outcome = Outcome::Succeeded;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut tables = self.throttle.tables();
        // The email is not logged: people type passwords into the email field.
        if let Some(lock) = tables.accounts.finish(&self.account, self.outcome, now) {
            tracing::warn!(lock.secs = lock.as_secs(), "repeated failed logins for one email: locked");
        }
        if let Some(ip) = self.client {
            let outcome = if self.outcome == Outcome::Succeeded { Outcome::Inconclusive } else { self.outcome };
            if let Some(lock) = tables.clients.finish(&ip, outcome, now) {
                tracing::warn!(client.ip = %ip, lock.secs = lock.as_secs(), "repeated failed logins from one client: locked");
            }
        }
    }
}

/// A login refused before it was tried: 429 `TOO_MANY_ATTEMPTS` with `Retry-After`. The answer
/// is the same whichever limit was hit and whether or not the email has an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

impl Throttled {
    /// The wait in whole seconds, rounded up and at least 1: a client retrying on time must not
    /// be early.
    pub fn retry_after_secs(&self) -> u64 {
        (self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)).max(1)
    }
}

impl IntoResponse for Throttled {
    fn into_response(self) -> Response {
        let problem = ApiError::new(Code::TooManyAttempts, "too many failed logins; try again later");
        ([(header::RETRY_AFTER, HeaderValue::from(self.retry_after_secs()))], problem).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn policy() -> Policy {
        Policy { max_failures: 5, window: 900 * SEC, lockout: 60 * SEC, max_lockout: 900 * SEC }
    }

    fn fail(limiter: &mut Limiter<&'static str>, key: &'static str, now: Instant) -> Option<Duration> {
        limiter.check(&key, now).expect("the attempt is let through");
        limiter.start(&key, now);
        limiter.finish(&key, Outcome::Failed, now)
    }

    #[test]
    fn five_failures_lock_the_key_and_the_sixth_attempt_is_told_how_long_to_wait() {
        let mut limiter = Limiter::new(policy(), 100);
        let t0 = Instant::now();
        for i in 0..4 {
            assert_eq!(fail(&mut limiter, "kim", t0 + i * SEC), None);
        }
        assert_eq!(fail(&mut limiter, "kim", t0 + 4 * SEC), Some(60 * SEC));

        assert_eq!(limiter.check(&"kim", t0 + 10 * SEC), Err(54 * SEC));
        assert_eq!(limiter.check(&"lee", t0 + 10 * SEC), Ok(()), "other keys are not affected");
    }

    #[test]
    fn each_lock_in_a_row_doubles_up_to_the_longest() {
        let mut limiter = Limiter::new(policy(), 100);
        let mut now = Instant::now();
        for _ in 0..4 {
            fail(&mut limiter, "kim", now);
        }
        let mut locks = Vec::new();
        for _ in 0..6 {
            let lock = fail(&mut limiter, "kim", now).expect("every failure from the fifth on locks");
            locks.push(lock.as_secs());
            now += lock;
        }
        assert_eq!(locks, [60, 120, 240, 480, 900, 900]);
    }

    #[test]
    fn a_success_forgets_the_failures_and_the_locks() {
        let mut limiter = Limiter::new(policy(), 100);
        let now = Instant::now();
        for _ in 0..4 {
            fail(&mut limiter, "kim", now);
        }
        limiter.start(&"kim", now);
        limiter.finish(&"kim", Outcome::Succeeded, now);

        assert!(limiter.is_empty());
        for _ in 0..4 {
            assert_eq!(fail(&mut limiter, "kim", now), None, "a fresh count");
        }
    }

    #[test]
    fn failures_are_forgotten_a_window_after_the_last_one_or_after_the_lock() {
        let mut limiter = Limiter::new(policy(), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&mut limiter, "kim", t0);
        }
        fail(&mut limiter, "kim", t0 + 899 * SEC);
        assert_eq!(fail(&mut limiter, "kim", t0 + 1798 * SEC), Some(60 * SEC), "the window runs from the last failure");

        // Locked until t0 + 1858 s, then remembered for another window.
        assert_eq!(limiter.check(&"kim", t0 + 2757 * SEC), Ok(()));
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.check(&"kim", t0 + 2758 * SEC), Ok(()));
        assert!(limiter.is_empty());
    }

    #[test]
    fn attempts_in_flight_count_against_what_is_left() {
        let mut limiter = Limiter::new(policy(), 100);
        let now = Instant::now();
        for _ in 0..3 {
            fail(&mut limiter, "kim", now);
        }
        for _ in 0..2 {
            limiter.check(&"kim", now).unwrap();
            limiter.start(&"kim", now);
        }
        assert_eq!(limiter.check(&"kim", now), Err(IN_FLIGHT_RETRY), "two left, both in flight");

        limiter.finish(&"kim", Outcome::Inconclusive, now);
        assert_eq!(limiter.check(&"kim", now), Ok(()));
    }

    #[test]
    fn an_inconclusive_attempt_counts_for_nothing_and_leaves_nothing_behind() {
        let mut limiter = Limiter::new(policy(), 100);
        let now = Instant::now();
        for _ in 0..10 {
            limiter.check(&"kim", now).unwrap();
            limiter.start(&"kim", now);
            assert_eq!(limiter.finish(&"kim", Outcome::Inconclusive, now), None);
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn a_flood_of_distinct_keys_never_grows_the_table_past_its_capacity() {
        let mut limiter = Limiter::new(policy(), 100);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            let key = format!("flood-{i}@example.com");
            let now = t0 + Duration::from_millis(u64::from(i));
            limiter.check(&key, now).unwrap();
            limiter.start(&key, now);
            limiter.finish(&key, Outcome::Failed, now);
            assert!(limiter.len() <= 100, "{} keys after {i}", limiter.len());
        }
        assert_eq!(limiter.len(), 100);
        assert_eq!(limiter.by_expiry.len(), 100, "the index holds exactly the entries");
        assert!(limiter.entries.contains_key("flood-9999@example.com"), "the newest is kept");
        assert!(!limiter.entries.contains_key("flood-0@example.com"), "the oldest is evicted");
    }

    #[test]
    fn a_full_table_evicts_the_key_due_to_be_forgotten_first_so_a_lock_outlives_older_failures() {
        let mut limiter = Limiter::new(Policy { max_failures: 2, window: 10 * SEC, ..policy() }, 2);
        let t0 = Instant::now();
        fail(&mut limiter, "locked", t0);
        fail(&mut limiter, "locked", t0); // forgotten when its lock ends, at t0 + 60 s
        fail(&mut limiter, "older", t0 + SEC); // forgotten at t0 + 11 s

        fail(&mut limiter, "newer", t0 + 2 * SEC);

        assert!(limiter.entries.contains_key("locked") && limiter.entries.contains_key("newer"));
        assert!(!limiter.entries.contains_key("older"));
        assert_eq!(limiter.check(&"locked", t0 + 2 * SEC), Err(58 * SEC));
    }

    #[test]
    fn the_login_throttle_stays_within_its_capacity_under_a_flood_of_emails() {
        let settings =
            Settings { account: policy(), client: Policy { max_failures: u32::MAX, ..policy() }, capacity: 50 };
        let throttle = LoginThrottle::new(settings);
        let client = Some(IpAddr::from([203, 0, 113, 7]));
        for i in 0..5_000 {
            throttle.begin(&format!("random-{i}@example.com"), client).unwrap().failed();
        }
        assert_eq!(throttle.tracked(), (50, 1));
    }

    #[test]
    fn unknown_and_known_emails_alike_are_keyed_on_the_normalised_email_as_sent() {
        assert_eq!(account_key("  Kim@Example.COM "), "kim@example.com");
        assert_eq!(account_key("not an email"), "not an email");
        let huge = "é".repeat(10_000);
        assert!(account_key(&huge).len() <= Email::MAX_LEN + 1);
    }

    #[test]
    fn an_ipv6_client_is_keyed_on_its_64_prefix_and_a_mapped_ipv4_one_on_its_ipv4_address() {
        let key = |ip: &str| client_key(ip.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
    }

    #[test]
    fn a_client_is_throttled_across_emails_and_a_success_does_not_reset_it() {
        let client_policy = Policy { max_failures: 3, ..policy() };
        let throttle = LoginThrottle::new(Settings { account: policy(), client: client_policy, capacity: 100 });
        let ip = Some(IpAddr::from([203, 0, 113, 7]));
        throttle.begin("a@example.com", ip).unwrap().failed();
        throttle.begin("b@example.com", ip).unwrap().failed();
        throttle.begin("mine@example.com", ip).unwrap().succeeded();
        throttle.begin("c@example.com", ip).unwrap().failed();

        assert!(throttle.begin("d@example.com", ip).is_err());
        assert!(throttle.begin("d@example.com", Some(IpAddr::from([203, 0, 113, 8]))).is_ok());
        assert!(throttle.begin("d@example.com", None).is_ok(), "without an address only the account counts");
    }

    #[test]
    fn the_wait_is_whole_seconds_rounded_up_and_never_zero() {
        let secs = |d| Throttled { retry_after: d }.retry_after_secs();
        assert_eq!(secs(Duration::ZERO), 1);
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(SEC), 1);
        assert_eq!(secs(Duration::from_millis(59_001)), 60);
    }

    #[tokio::test]
    async fn throttled_is_a_429_problem_that_says_when_to_retry() {
        let res = Throttled { retry_after: Duration::from_millis(1500) }.into_response();

        assert_eq!(res.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(res.into_body(), 64 * 1024).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "TOO_MANY_ATTEMPTS");
    }
}
