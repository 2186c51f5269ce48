//! Failpoints: named places where a test or `./shop chaos` makes the code fail on purpose, at the
//! moments where a crash is most dangerous. Built on the `fail` crate with its `failpoints`
//! feature always compiled in, and off unless configured: an unconfigured point costs one read
//! of an empty registry.
//!
//! A point is configured with `fail`'s action syntax (`return`, `50%return`, `3*return`, `off`),
//! from `FAILPOINTS=<name>=<actions>;...` at start-up ([`configure_from_env`]), at run time through
//! an admin endpoint (`PUT /admin/failpoints/{name}`), or by a test ([`configure`]). Where
//! the action says `return`, [`fire`] answers `true` and the caller abandons its work as a crash
//! would (see each point's doc); every firing is counted, so a fault test can prove its fault
//! fired ([`hits`]).
//!
//! Names are `<service>.<point>`, so one process holding several services (the test harness)
//! can aim at one of them.

use std::{
    collections::BTreeMap,
    sync::{LazyLock, Mutex},
};

/// After the relay's publishes were acknowledged, before it marks their rows: the rows are
/// published again (the broker and the consumers drop the copies).
pub const RELAY_AFTER_PUBLISH: &str = "relay.after_publish";
/// Inside the consumer's transaction, after the handler's writes: the transaction rolls back and
/// the message is retried (no partial rows).
pub const CONSUMER_IN_TRANSACTION: &str = "consumer.in_transaction";
/// After the consumer's transaction committed, before the ack: the message is not acknowledged
/// and comes back after the ack wait (the dedupe row makes the copy a no-op).
pub const CONSUMER_AFTER_COMMIT: &str = "consumer.after_commit";
/// After a compensation (a release, a refund) committed, before the ack: as
/// [`CONSUMER_AFTER_COMMIT`], for the events that undo an order.
pub const COMPENSATION_AFTER_COMMIT: &str = "compensation.after_commit";
/// In the payment gateway, after a charge or refund is recorded, before the answer: the caller
/// sees a failure for a call that took effect, and retries with the same idempotency key.
pub const GATEWAY_ANSWER_LOST: &str = "gateway.answer_lost";

/// Every point, for listings.
pub const ALL: [&str; 5] = [
    RELAY_AFTER_PUBLISH,
    CONSUMER_IN_TRANSACTION,
    CONSUMER_AFTER_COMMIT,
    COMPENSATION_AFTER_COMMIT,
    GATEWAY_ANSWER_LOST,
];

/// How often each configured point fired, by full name. A process-wide registry because `fail`'s
/// own is one.
static HITS: LazyLock<Mutex<BTreeMap<String, u64>>> = LazyLock::new(Default::default);

/// The full name of `point` in `service`.
pub fn name(service: &str, point: &str) -> String {
    format!("{service}.{point}")
}

/// Whether `point` of `service` is to fail now; counts the firing. Cheap when nothing is
/// configured.
pub fn fire(service: &str, point: &str) -> bool {
    let name = name(service, point);
    let fired = fail::eval(&name, |_| ()).is_some();
    if fired {
        *HITS.lock().unwrap_or_else(|e| e.into_inner()).entry(name.clone()).or_default() += 1;
        tracing::warn!(failpoint = name, "failpoint fired");
    }
    fired
}

/// How often the point named `name` (`<service>.<point>`) has fired in this process.
pub fn hits(name: &str) -> u64 {
    HITS.lock().unwrap_or_else(|e| e.into_inner()).get(name).copied().unwrap_or(0)
}

/// Sets the point named `name` to `actions` (`fail`'s syntax; `off` turns it off).
pub fn configure(name: &str, actions: &str) -> Result<(), String> {
    if !ALL.iter().any(|point| name.ends_with(&format!(".{point}"))) {
        return Err(format!("no failpoint is named {name:?}; points are <service>.<one of {ALL:?}>"));
    }
    fail::cfg(name, actions)
}

/// Turns the point named `name` off.
pub fn clear(name: &str) {
    fail::remove(name);
}

/// Applies `FAILPOINTS` (`<name>=<actions>;...`), if set. A malformed entry fails start-up.
pub fn configure_from_env() -> anyhow::Result<()> {
    let Ok(spec) = std::env::var("FAILPOINTS") else { return Ok(()) };
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, actions) =
            entry.split_once('=').ok_or_else(|| anyhow::anyhow!("FAILPOINTS entry {entry:?} is not name=actions"))?;
        configure(name.trim(), actions.trim()).map_err(|e| anyhow::anyhow!("FAILPOINTS entry {entry:?}: {e}"))?;
        tracing::warn!(failpoint = name.trim(), actions = actions.trim(), "failpoint configured");
    }
    Ok(())
}

/// Every configured point with its actions and hit count, and every point that fired.
pub fn list() -> Vec<(String, String, u64)> {
    let hits = HITS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out: BTreeMap<String, (String, u64)> =
        hits.into_iter().map(|(name, n)| (name, ("off".to_owned(), n))).collect();
    for (name, actions) in fail::list() {
        out.entry(name).or_insert_with(|| (String::new(), 0)).0 = actions;
    }
    out.into_iter().map(|(name, (actions, n))| (name, actions, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconfigured_point_never_fires() {
        assert!(!fire("unit-a", CONSUMER_AFTER_COMMIT));
        assert_eq!(hits("unit-a.consumer.after_commit"), 0);
    }

    #[test]
    fn a_configured_point_fires_as_often_as_it_says_and_counts() {
        configure("unit-b.relay.after_publish", "2*return").unwrap();
        let fired: Vec<bool> = (0..4).map(|_| fire("unit-b", RELAY_AFTER_PUBLISH)).collect();
        assert_eq!(fired, [true, true, false, false]);
        assert_eq!(hits("unit-b.relay.after_publish"), 2);
        assert!(!fire("unit-c", RELAY_AFTER_PUBLISH), "another service's point is not configured");
        clear("unit-b.relay.after_publish");
    }

    #[test]
    fn unknown_points_and_bad_actions_are_refused() {
        assert!(configure("unit-d.no.such.point", "return").is_err());
        assert!(configure("unit-d.consumer.after_commit", "sometimes").is_err());
    }
}
