//! Starting svc-user for real: its own nats-server, a fresh data directory, port 0.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use common::harness::{self, NatsServer, TestBus};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use svc_user::Config;
use tempfile::TempDir;

pub use common::harness::WAIT;

/// A password that meets the policy.
pub const PASSWORD: &str = "correct-horse-42";

/// svc-user under test (see [`harness::TestApp`]) on a bus without the test issuer (svc-user signs
/// its own tokens), plus the requests its tests are written in.
pub struct TestApp {
    app: harness::TestApp<Config>,
}

common::deref_test_app!(TestApp => Config);

/// The bootstrap admin's credentials, if any.
pub type Admin<'a> = Option<(&'a str, &'a str)>;

pub async fn spawn_app() -> TestApp {
    spawn_app_with_admin(None).await
}

pub async fn spawn_app_with_admin(admin: Admin<'_>) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    TestApp::start(fresh_bus().await, data_dir, admin).await
}

/// svc-user with `args` after the usual flags (e.g. a login throttle fast enough for a test).
pub async fn spawn_app_with_args(args: &[&str]) -> TestApp {
    let mut all = flags(None);
    all.extend(args);
    let bus = fresh_bus().await;
    TestApp { app: harness::TestApp::builder().on(&bus).args(&all).start().await }
}

/// A bus on a fresh nats-server: an empty key bucket.
pub async fn fresh_bus() -> Arc<TestBus> {
    TestBus::on(NatsServer::start().await, false).await
}

/// The flags for `admin` and hour-long tokens.
fn flags(admin: Admin<'_>) -> Vec<&str> {
    let mut flags = vec!["--token-ttl-secs", "3600"];
    if let Some((email, password)) = admin {
        flags.extend(["--admin-email", email, "--admin-password", password]);
    }
    flags
}

impl TestApp {
    /// Starts svc-user on `bus` with `data_dir`, which may hold the database of an earlier run.
    pub async fn start(bus: Arc<TestBus>, data_dir: TempDir, admin: Admin<'_>) -> TestApp {
        TestApp { app: harness::TestApp::builder().on(&bus).data_dir(data_dir).args(&flags(admin)).start().await }
    }

    /// Stops the service gracefully and hands back what it ran on, so it can start again.
    pub async fn shut_down(self) -> (Arc<TestBus>, TempDir) {
        self.app.shut_down().await
    }

    /// Stops the service and starts it again on the same bus and data directory.
    pub async fn restart(mut self, admin: Admin<'_>) -> TestApp {
        self.app.restart_with(&flags(admin)).await;
        self
    }

    pub async fn sign_up(&self, body: &Value) -> Response {
        self.http.post(self.url("/users")).json(body).send().await.expect("POST /users")
    }

    /// Signs up `email` with [`PASSWORD`], expecting success; returns the created user.
    pub async fn register(&self, email: &str) -> Value {
        let res = self.sign_up(&json!({"email": email, "password": PASSWORD, "name": "Kim Lee"})).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.unwrap()
    }

    pub async fn log_in(&self, email: &str, password: &str) -> Response {
        let body = json!({"email": email, "password": password});
        self.http.post(self.url("/auth/login")).json(&body).send().await.expect("POST /auth/login")
    }

    /// Logs in, expecting success; returns the access token.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let res = self.log_in(email, password).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        body["accessToken"].as_str().expect("accessToken").to_owned()
    }

    pub async fn me(&self, token: Option<&str>) -> Response {
        let req = self.http.get(self.url("/users/me"));
        let req = match token {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        req.send().await.expect("GET /users/me")
    }

    /// The database in `data_dir`, for looking behind (or changing under) a stopped service.
    pub fn db_at(data_dir: &TempDir) -> rusqlite::Connection {
        rusqlite::Connection::open(data_dir.path().join("svc-user.db")).expect("open svc-user.db")
    }
}

/// Everything written through `tracing` by this test binary, from the first call on.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test binary, a global subscriber that records every event at every level
/// (TRACE included) and every span field, and returns its buffer.
pub fn capture_logs() -> CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        logs
    })
    .clone()
}
