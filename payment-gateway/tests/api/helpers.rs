//! A real payment-gateway on port 0 with a fresh SQLite file in a temporary directory, and the
//! few requests its tests are written in.

use std::path::Path;

use payment_gateway::harness;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use uuid::Uuid;

/// Failpoints are process-wide: a test that configures one takes this lock exclusively
/// ([`exclusive`]), every other test shares it ([`shared`]), so no other test's charge can
/// consume the failpoint's firing.
static FAILPOINTS: RwLock<()> = RwLock::const_new(());

pub async fn shared() -> RwLockReadGuard<'static, ()> {
    FAILPOINTS.read().await
}

pub async fn exclusive() -> RwLockWriteGuard<'static, ()> {
    FAILPOINTS.write().await
}

/// A running gateway (see [`harness::TestGateway`]) and the requests its tests are written in.
pub struct TestGateway {
    pub gateway: harness::TestGateway,
    pub http: reqwest::Client,
}

/// Starts a gateway on a fresh data directory with `extra_args` (e.g. `--payment-limit=10`).
pub async fn spawn(extra_args: &[&str]) -> TestGateway {
    TestGateway { gateway: harness::TestGateway::start(extra_args).await, http: reqwest::Client::new() }
}

/// Starts a gateway on the data directory `dir`, which the caller keeps.
pub async fn spawn_in(dir: &Path, extra_args: &[&str]) -> TestGateway {
    TestGateway { gateway: harness::TestGateway::start_in(dir, extra_args).await, http: reqwest::Client::new() }
}

/// A charge body for `reference`.
pub fn charge_body(reference: Uuid, amount: i64) -> Value {
    json!({ "reference": reference, "amount": amount, "method": "CARD" })
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url())
    }

    /// `POST /v1/charges` with `key` as the Idempotency-Key (none if `None`).
    pub async fn charge(&self, key: Option<&str>, body: &Value) -> Response {
        let mut req = self.http.post(self.url("/v1/charges")).json(body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        req.send().await.expect("request sent")
    }

    /// `POST /v1/refunds` of the charge under `charge_key`, with `key` as the Idempotency-Key.
    pub async fn refund(&self, key: &str, charge_key: &str) -> Response {
        let req = self.http.post(self.url("/v1/refunds")).header("Idempotency-Key", key);
        req.json(&json!({ "chargeKey": charge_key })).send().await.expect("request sent")
    }

    /// `PUT /v1/faults` with `body`, asserting it was accepted.
    pub async fn set_faults(&self, body: Value) -> Value {
        let res = self.http.put(self.url("/v1/faults")).json(&body).send().await.expect("request sent");
        assert_eq!(res.status(), StatusCode::OK, "faults {body} refused");
        res.json().await.unwrap()
    }

    /// The whole ledger (`GET /v1/charges`, first page of 1000).
    pub async fn ledger(&self) -> Vec<Value> {
        let res = self.http.get(self.url("/v1/charges?limit=1000")).send().await.expect("request sent");
        assert_eq!(res.status(), StatusCode::OK);
        let page: Value = res.json().await.unwrap();
        page["items"].as_array().expect("items").clone()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.expect("request sent")
    }

    /// Stops serving and waits until the server ended.
    pub async fn stop(self) {
        self.gateway.stop().await;
    }
}

/// The status and JSON body of `res`.
pub async fn answer(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    (status, res.json().await.expect("a JSON body"))
}

/// Whether `res` says it is a replay.
pub fn is_replayed(res: &Response) -> bool {
    res.headers().get("idempotent-replayed").is_some_and(|v| v == "true")
}
