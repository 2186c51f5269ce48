//! The faults a real PG shows its callers, simulated on `POST /v1/charges` and `POST /v1/refunds`
//! and changed at run time through `PUT /v1/faults`.
//!
//! A call meets them in this order ([`Faults::before`], then the work, then [`Faults::after`]):
//!
//! 1. `down`: 503 `GATEWAY_UNAVAILABLE` at once.
//! 2. `latencyMs` of sleep.
//! 3. a draw under `failBps`: 503 `GATEWAY_UNAVAILABLE`, nothing recorded.
//! 4. a draw under `timeoutBps`: `hangMs` of silence, then 504 `GATEWAY_TIMEOUT`, nothing recorded.
//! 5. the work, committed.
//! 6. a draw under `loseAnswerBps`, or the failpoint `payment-gateway.gateway.answer_lost`:
//!    `hangMs` of silence, then 504 `GATEWAY_TIMEOUT` although the effect is committed.
//!
//! The draws are fresh randomness per call, not the seeded verdict draw of [`crate::rules`]: a
//! retry of a failed call may well get through.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::http::{ApiError, Code};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::rules::BPS_SCALE;

/// The fault settings, as flags set them at start and `PUT /v1/faults` changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSettings {
    pub latency_ms: u64,
    pub fail_bps: u16,
    pub timeout_bps: u16,
    pub lose_answer_bps: u16,
    pub down: bool,
    pub hang_ms: u64,
}

impl FaultSettings {
    pub const MAX_LATENCY_MS: u64 = 60_000;
    pub const MAX_HANG_MS: u64 = 120_000;
}

/// A `PUT /v1/faults` body: every field optional, an omitted one stays as it is. Wide integer types,
/// so that an out-of-range number is this module's 400 rather than a type error.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultsUpdate {
    pub latency_ms: Option<u64>,
    pub fail_bps: Option<u64>,
    pub timeout_bps: Option<u64>,
    pub lose_answer_bps: Option<u64>,
    pub down: Option<bool>,
    pub hang_ms: Option<u64>,
}

impl FaultSettings {
    /// These settings with `update` applied, or a 400 naming the first field out of range.
    pub fn updated(self, update: &FaultsUpdate) -> Result<FaultSettings, ApiError> {
        fn within(field: &str, value: Option<u64>, max: u64, current: u64) -> Result<u64, ApiError> {
            match value {
                None => Ok(current),
                Some(v) if v <= max => Ok(v),
                Some(v) => Err(ApiError::invalid(Code::BadRequest, field, format!("{field} is {v}, above {max}"))),
            }
        }
        let bps = |field, value, current: u16| {
            within(field, value, u64::from(BPS_SCALE), u64::from(current)).map(|v| v as u16)
        };
        Ok(FaultSettings {
            latency_ms: within("latencyMs", update.latency_ms, Self::MAX_LATENCY_MS, self.latency_ms)?,
            fail_bps: bps("failBps", update.fail_bps, self.fail_bps)?,
            timeout_bps: bps("timeoutBps", update.timeout_bps, self.timeout_bps)?,
            lose_answer_bps: bps("loseAnswerBps", update.lose_answer_bps, self.lose_answer_bps)?,
            down: update.down.unwrap_or(self.down),
            hang_ms: within("hangMs", update.hang_ms, Self::MAX_HANG_MS, self.hang_ms)?,
        })
    }
}

/// How often each fault fired since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fired {
    pub failed: u64,
    pub timed_out: u64,
    pub answers_lost: u64,
    pub refused_while_down: u64,
}

/// `GET /v1/faults`: the settings and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultsView {
    #[serde(flatten)]
    pub settings: FaultSettings,
    pub fired: Fired,
}

/// The live faults, shared by every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Mutex<FaultSettings>,
    failed: AtomicU64,
    timed_out: AtomicU64,
    answers_lost: AtomicU64,
    refused_while_down: AtomicU64,
    /// Cut a hang short at shutdown, so a stopping gateway does not wait out two minutes.
    stop: CancellationToken,
}

impl Faults {
    pub fn new(settings: FaultSettings, stop: CancellationToken) -> Self {
        Faults {
            inner: Arc::new(Inner {
                settings: Mutex::new(settings),
                failed: AtomicU64::new(0),
                timed_out: AtomicU64::new(0),
                answers_lost: AtomicU64::new(0),
                refused_while_down: AtomicU64::new(0),
                stop,
            }),
        }
    }

    pub fn settings(&self) -> FaultSettings {
        *self.inner.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn view(&self) -> FaultsView {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultsView {
            settings: self.settings(),
            fired: Fired {
                failed: count(&self.inner.failed),
                timed_out: count(&self.inner.timed_out),
                answers_lost: count(&self.inner.answers_lost),
                refused_while_down: count(&self.inner.refused_while_down),
            },
        }
    }

    /// Applies `update` in one step (all fields or none) and answers the new state.
    pub fn update(&self, update: &FaultsUpdate) -> Result<FaultsView, ApiError> {
        {
            let mut settings = self.inner.settings.lock().unwrap_or_else(|e| e.into_inner());
            *settings = settings.updated(update)?;
            tracing::warn!(faults = ?*settings, "gateway faults changed");
        }
        Ok(self.view())
    }

    /// The faults before the work: `Err` is the answer, and nothing is to be recorded.
    pub async fn before(&self) -> Result<(), ApiError> {
        let settings = self.settings();
        if settings.down {
            self.inner.refused_while_down.fetch_add(1, Ordering::Relaxed);
            return Err(unavailable("the gateway is down"));
        }
        if settings.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(settings.latency_ms)).await;
        }
        if draw(settings.fail_bps) {
            self.inner.failed.fetch_add(1, Ordering::Relaxed);
            return Err(unavailable("the gateway failed the call (simulated)"));
        }
        if draw(settings.timeout_bps) {
            self.inner.timed_out.fetch_add(1, Ordering::Relaxed);
            self.hang(settings.hang_ms).await;
            return Err(timeout());
        }
        Ok(())
    }

    /// The faults after the committed work: `Err` is a lost answer (a 504 for a call that took
    /// effect), from a draw or from the failpoint.
    pub async fn after(&self) -> Result<(), ApiError> {
        let settings = self.settings();
        let lost =
            draw(settings.lose_answer_bps) || common::faults::fire(crate::SERVICE, common::faults::GATEWAY_ANSWER_LOST);
        if lost {
            self.inner.answers_lost.fetch_add(1, Ordering::Relaxed);
            self.hang(settings.hang_ms).await;
            return Err(timeout());
        }
        Ok(())
    }

    async fn hang(&self, ms: u64) {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => {}
            () = self.inner.stop.cancelled() => {}
        }
    }
}

/// `true` with a chance of `bps` in 10,000.
fn draw(bps: u16) -> bool {
    bps > 0 && rand::thread_rng().gen_range(0..BPS_SCALE) < bps
}

fn unavailable(detail: &str) -> ApiError {
    ApiError::new(Code::GatewayUnavailable, detail)
}

fn timeout() -> ApiError {
    ApiError::new(Code::GatewayTimeout, "the gateway did not answer in time; the call may have taken effect")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> FaultSettings {
        FaultSettings { latency_ms: 0, fail_bps: 0, timeout_bps: 0, lose_answer_bps: 0, down: false, hang_ms: 10 }
    }

    #[test]
    fn an_update_changes_only_the_fields_it_names() {
        let update = FaultsUpdate { fail_bps: Some(10_000), down: Some(true), ..Default::default() };
        let next = healthy().updated(&update).unwrap();
        assert_eq!(next, FaultSettings { fail_bps: 10_000, down: true, ..healthy() });
    }

    #[test]
    fn an_out_of_range_update_is_refused_whole() {
        for update in [
            FaultsUpdate { fail_bps: Some(10_001), ..Default::default() },
            FaultsUpdate { timeout_bps: Some(10_001), ..Default::default() },
            FaultsUpdate { lose_answer_bps: Some(u64::MAX), ..Default::default() },
            FaultsUpdate { latency_ms: Some(60_001), ..Default::default() },
            FaultsUpdate { down: Some(true), hang_ms: Some(120_001), ..Default::default() },
        ] {
            let faults = Faults::new(healthy(), CancellationToken::new());
            let err = faults.update(&update).unwrap_err();
            assert_eq!(err.code(), Code::BadRequest, "{update:?}");
            assert_eq!(faults.settings(), healthy(), "{update:?} changed something");
        }
    }

    #[test]
    fn the_draws_are_never_at_zero_and_always_at_full_rate() {
        assert!((0..1_000).all(|_| !draw(0)));
        assert!((0..1_000).all(|_| draw(BPS_SCALE)));
    }

    #[tokio::test]
    async fn a_down_gateway_refuses_and_counts() {
        let faults = Faults::new(FaultSettings { down: true, fail_bps: 10_000, ..healthy() }, CancellationToken::new());
        assert_eq!(faults.before().await.unwrap_err().code(), Code::GatewayUnavailable);
        assert_eq!(faults.view().fired, Fired { refused_while_down: 1, ..Fired::default() });
    }
}
