//! svc-payment's client of the payment gateway (`payment-gateway`, a separate HTTP service that
//! simulates a real PG): charges and refunds over HTTP, each under an `Idempotency-Key` derived
//! from the order, so that however often a call is retried (a timeout, a lost answer, a crash
//! before the verdict committed, a redelivered event) the order is charged at most once and
//! refunded at most once.
//!
//! | call                  | key                 | answer                                          |
//! |-----------------------|---------------------|-------------------------------------------------|
//! | `POST /v1/charges`    | `charge-<orderId>`  | SUCCEEDED, DECLINED (+ reason), or VOIDED: the  |
//! |                       |                     | key was refunded before any charge was made     |
//! | `POST /v1/refunds`    | `refund-<orderId>`  | REFUNDED, or NOTHING_TO_REFUND (and the charge  |
//! |                       |                     | key is voided, so a late charge cannot succeed) |
//!
//! Every call has a timeout, is retried a few times with jittered exponential backoff (`backon`)
//! when the gateway fails or does not answer, and goes through a circuit breaker (`failsafe`):
//! after [`BreakerSettings::failures`] consecutive failures the breaker opens and calls fail at
//! once ([`GatewayError::Unavailable`]) until a probe succeeds. The saga treats that as transient:
//! the event is delivered again later, never declined for it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use backon::{ExponentialBuilder, Retryable};
use common::{PaymentMethod, Won, event::PaymentDecline};
use failsafe::{
    StateMachine,
    backoff::{self, Exponential},
    failure_policy::{self, ConsecutiveFailures},
    futures::CircuitBreaker,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::SERVICE;

/// The gateway's verdict on a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeAnswer {
    Succeeded,
    Declined(PaymentDecline),
    /// The charge key was voided by a refund before any charge: nothing was or will be charged.
    Voided,
}

/// What a refund did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundAnswer {
    /// The charge was refunded in full (now, or by an earlier call with the same key).
    Refunded(Won),
    /// There was no successful charge to refund; none can be made under the order's key now.
    NothingToRefund,
}

/// Why a call got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The gateway failed, timed out or is unreachable (after the retries), or the breaker is
    /// open. Transient: ask again later.
    #[error("payment gateway unavailable: {0}")]
    Unavailable(String),
    /// The gateway refused the request itself (a 4xx): a bug on one side, not an outage.
    #[error("payment gateway refused the request: {status} {code}")]
    Refused { status: u16, code: String },
}

/// The breaker's state, as shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// How the breaker and the retries behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Further attempts after the first, within one call.
    pub retries: usize,
    /// Consecutive failed attempts that open the breaker.
    pub failures: u32,
    /// How long the breaker stays open at first; doubles up to 30 s while probes fail.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings { timeout: Duration::from_secs(2), retries: 2, failures: 5, open_for: Duration::from_secs(1) }
    }
}

type Breaker = StateMachine<ConsecutiveFailures<Exponential>, Watch>;

/// The gateway client; cheap to clone (one connection pool, one breaker).
#[derive(Debug, Clone)]
pub struct Gateway {
    http: reqwest::Client,
    url: String,
    breaker: Breaker,
    state: Arc<AtomicU8>,
    retries: usize,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("state", &self.state.load(Ordering::Relaxed)).finish()
    }
}

/// Records the breaker's transitions for [`Gateway::breaker_state`] and logs them.
#[derive(Clone)]
struct Watch {
    state: Arc<AtomicU8>,
}

impl failsafe::Instrument for Watch {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        self.state.store(BreakerState::Open as u8, Ordering::Relaxed);
        breaker_gauge(1.0);
        tracing::warn!("payment gateway breaker opened: charges are postponed until it answers again");
    }

    fn on_half_open(&self) {
        self.state.store(BreakerState::HalfOpen as u8, Ordering::Relaxed);
        breaker_gauge(2.0);
        tracing::info!("payment gateway breaker half-open: probing");
    }

    fn on_closed(&self) {
        self.state.store(BreakerState::Closed as u8, Ordering::Relaxed);
        breaker_gauge(0.0);
        tracing::info!("payment gateway breaker closed: the gateway answers again");
    }
}

/// `gateway_breaker_state`: 0 closed, 1 open, 2 half-open (probing).
fn breaker_gauge(state: f64) {
    metrics::gauge!(common::metrics::GATEWAY_BREAKER_STATE, "service" => SERVICE).set(state);
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChargeRequest {
    reference: Uuid,
    amount: Won,
    method: PaymentMethod,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChargeBody {
    status: String,
    decline_code: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundRequest {
    charge_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundBody {
    status: String,
    amount: Won,
}

/// One attempt's failure: whether to retry it, and whether it counts against the gateway.
#[derive(Debug)]
enum Attempt {
    /// Transport error, timeout or 5xx: retried, and counted by the breaker.
    Outage(String),
    /// The breaker is open: not retried (the breaker decides when to probe).
    Open,
    /// A 4xx: the gateway answered; neither retried nor counted.
    Refused { status: u16, code: String },
}

impl Gateway {
    pub fn new(url: &str, settings: BreakerSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(settings.timeout).build()?;
        let state = Arc::new(AtomicU8::new(BreakerState::Closed as u8));
        let policy = failure_policy::consecutive_failures(
            settings.failures,
            backoff::exponential(settings.open_for, Duration::from_secs(30).max(settings.open_for)),
        );
        let breaker = failsafe::Config::new().failure_policy(policy).instrument(Watch { state: state.clone() }).build();
        breaker_gauge(0.0);
        Ok(Gateway { http, url: url.trim_end_matches('/').to_owned(), breaker, state, retries: settings.retries })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn breaker_state(&self) -> BreakerState {
        match self.state.load(Ordering::Relaxed) {
            s if s == BreakerState::Open as u8 => BreakerState::Open,
            s if s == BreakerState::HalfOpen as u8 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    /// Charges `amount` for `order_id`, once whatever the retries.
    pub async fn charge(
        &self,
        order_id: Uuid,
        amount: Won,
        method: PaymentMethod,
    ) -> Result<ChargeAnswer, GatewayError> {
        let body = ChargeRequest { reference: order_id, amount, method };
        let answer: ChargeBody = self.post("/v1/charges", &charge_key(order_id), &body).await?;
        match (answer.status.as_str(), answer.decline_code.as_deref()) {
            ("SUCCEEDED", _) => Ok(ChargeAnswer::Succeeded),
            ("VOIDED", _) => Ok(ChargeAnswer::Voided),
            ("DECLINED", Some(code)) => PaymentDecline::parse(code)
                .map(ChargeAnswer::Declined)
                .ok_or_else(|| refused(200, format!("unknown decline code {code}"))),
            (status, _) => Err(refused(200, format!("unknown charge status {status}"))),
        }
    }

    /// Refunds whatever was charged for `order_id`, once whatever the retries; voids the order's
    /// charge key when nothing was.
    pub async fn refund(&self, order_id: Uuid) -> Result<RefundAnswer, GatewayError> {
        let body = RefundRequest { charge_key: charge_key(order_id) };
        let answer: RefundBody = self.post("/v1/refunds", &format!("refund-{order_id}"), &body).await?;
        match answer.status.as_str() {
            "REFUNDED" => Ok(RefundAnswer::Refunded(answer.amount)),
            "NOTHING_TO_REFUND" => Ok(RefundAnswer::NothingToRefund),
            status => Err(refused(200, format!("unknown refund status {status}"))),
        }
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        body: &B,
    ) -> Result<T, GatewayError> {
        let url = format!("{}{path}", self.url);
        let operation = if path.ends_with("refunds") { "refund" } else { "charge" };
        let attempt = || async {
            let result = if !self.breaker.is_call_permitted() {
                Err(Attempt::Open)
            } else {
                let call = self.send::<B, T>(&url, key, body);
                match self.breaker.call_with(|e: &Attempt| matches!(e, Attempt::Outage(_)), call).await {
                    Ok(answer) => Ok(answer),
                    Err(failsafe::Error::Rejected) => Err(Attempt::Open),
                    Err(failsafe::Error::Inner(e)) => Err(e),
                }
            };
            let label = match &result {
                Ok(_) => "ok",
                Err(Attempt::Outage(_)) => "outage",
                Err(Attempt::Open) => "breaker_open",
                Err(Attempt::Refused { .. }) => "refused",
            };
            metrics::counter!(common::metrics::GATEWAY_REQUESTS, "service" => SERVICE, "operation" => operation,
                "result" => label)
            .increment(1);
            result
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(self.retries)
            .with_jitter();
        attempt
            .retry(backoff)
            .when(|e| matches!(e, Attempt::Outage(_)))
            .notify(|e, after| {
                metrics::counter!(common::metrics::GATEWAY_RETRIES, "service" => SERVICE, "operation" => operation)
                    .increment(1);
                tracing::info!(error = ?e, retry_in = ?after, path, "payment gateway call failed; retrying")
            })
            .await
            .map_err(|e| match e {
                Attempt::Outage(why) => GatewayError::Unavailable(why),
                Attempt::Open => GatewayError::Unavailable("the breaker is open".into()),
                Attempt::Refused { status, code } => GatewayError::Refused { status, code },
            })
    }

    async fn send<B: Serialize, T: DeserializeOwned>(&self, url: &str, key: &str, body: &B) -> Result<T, Attempt> {
        let res = self
            .http
            .post(url)
            .header("Idempotency-Key", key)
            // The gateway's log lines of this call carry the saga's trace id too.
            .header(common::trace::HEADER, common::trace::for_new_event().header())
            .json(body)
            .send()
            .await
            .map_err(|e| Attempt::Outage(without_url(e)))?;
        let status = res.status();
        if status.is_server_error() {
            return Err(Attempt::Outage(format!("{status}")));
        }
        if !status.is_success() {
            let code = res.json::<serde_json::Value>().await.ok().and_then(|v| v["code"].as_str().map(str::to_owned));
            return Err(Attempt::Refused { status: status.as_u16(), code: code.unwrap_or_default() });
        }
        res.json::<T>().await.map_err(|e| Attempt::Outage(format!("unreadable answer: {}", without_url(e))))
    }
}

/// The idempotency key of `order_id`'s one charge.
pub fn charge_key(order_id: Uuid) -> String {
    format!("charge-{order_id}")
}

fn refused(status: u16, code: String) -> GatewayError {
    GatewayError::Refused { status, code }
}

fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_derived_from_the_order_so_every_retry_reuses_them() {
        let order = Uuid::from_u128(7);
        assert_eq!(charge_key(order), format!("charge-{order}"));
        assert_eq!(charge_key(order), charge_key(order));
    }

    #[tokio::test]
    async fn an_unreachable_gateway_opens_the_breaker_and_then_fails_fast() {
        // Port 9 on loopback: nothing listens, so every attempt is refused at once.
        let settings = BreakerSettings { retries: 0, failures: 3, ..BreakerSettings::default() };
        let gateway = Gateway::new("http://127.0.0.1:9", settings).unwrap();
        for _ in 0..3 {
            let e = gateway.charge(Uuid::now_v7(), Won(1), PaymentMethod::Card).await.unwrap_err();
            assert!(matches!(e, GatewayError::Unavailable(ref why) if why.contains("connect")), "{e}");
        }
        assert_eq!(gateway.breaker_state(), BreakerState::Open);
        let e = gateway.charge(Uuid::now_v7(), Won(1), PaymentMethod::Card).await.unwrap_err();
        assert!(matches!(e, GatewayError::Unavailable(ref why) if why.contains("breaker")), "{e}");
    }
}
