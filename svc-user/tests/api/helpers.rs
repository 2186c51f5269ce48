//! Starting svc-user for real: its own nats-server, a fresh data directory, port 0.

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use common::harness::{EventLog, NatsServer, common_config};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use svc_user::{App, Config};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something asynchronous (an event, a relay round) before failing.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A password that meets the policy.
pub const PASSWORD: &str = "correct-horse-42";

/// A running svc-user and everything it runs on.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub nats: NatsServer,
    /// A plain client of the same server, for JetStream and KV inspection.
    pub nats_client: async_nats::Client,
    /// Every event published since the app started (and across restarts on the same server).
    pub events: EventLog,
    pub data_dir: TempDir,
    stop: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
}

/// The bootstrap admin's credentials, if any.
pub type Admin<'a> = Option<(&'a str, &'a str)>;

pub async fn spawn_app() -> TestApp {
    spawn_app_with_admin(None).await
}

pub async fn spawn_app_with_admin(admin: Admin<'_>) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    TestApp::start(NatsServer::start().await, data_dir, admin).await
}

impl TestApp {
    /// Starts svc-user on `nats` with `data_dir`, which may hold the database of an earlier run.
    pub async fn start(nats: NatsServer, data_dir: TempDir, admin: Admin<'_>) -> TestApp {
        let nats_client = nats.client().await;
        let events = EventLog::record(&nats_client).await;
        let config = Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            common: common_config(&nats, &data_dir),
            admin_email: admin.map(|(email, _)| email.to_owned()),
            admin_password: admin.map(|(_, password)| password.to_owned()),
            token_ttl_secs: 3600,
        };
        let stop = CancellationToken::new();
        let app = App::build(config, stop.clone()).await.expect("svc-user starts");
        let addr = app.addr();
        let server = tokio::spawn(app.run_until_stopped());
        TestApp { addr, client: reqwest::Client::new(), nats, nats_client, events, data_dir, stop, server }
    }

    /// Stops the service gracefully and hands back what it ran on, so it can start again.
    pub async fn shut_down(self) -> (NatsServer, TempDir) {
        self.stop.cancel();
        self.server.await.expect("server task").expect("svc-user stops cleanly");
        (self.nats, self.data_dir)
    }

    /// Stops the service and starts it again on the same NATS server and data directory.
    pub async fn restart(self, admin: Admin<'_>) -> TestApp {
        let (nats, data_dir) = self.shut_down().await;
        TestApp::start(nats, data_dir, admin).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn sign_up(&self, body: &Value) -> Response {
        self.client.post(self.url("/users")).json(body).send().await.expect("POST /users")
    }

    /// Signs up `email` with [`PASSWORD`], expecting success; returns the created user.
    pub async fn register(&self, email: &str) -> Value {
        let res = self.sign_up(&json!({"email": email, "password": PASSWORD, "name": "Kim Lee"})).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.unwrap()
    }

    pub async fn log_in(&self, email: &str, password: &str) -> Response {
        let body = json!({"email": email, "password": password});
        self.client.post(self.url("/auth/login")).json(&body).send().await.expect("POST /auth/login")
    }

    /// Logs in, expecting success; returns the access token.
    pub async fn token(&self, email: &str, password: &str) -> String {
        let res = self.log_in(email, password).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        body["accessToken"].as_str().expect("accessToken").to_owned()
    }

    pub async fn me(&self, token: Option<&str>) -> Response {
        let req = self.client.get(self.url("/users/me"));
        let req = match token {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        req.send().await.expect("GET /users/me")
    }

    /// A connection to the service's own database file, for looking behind the API.
    pub fn db(&self) -> rusqlite::Connection {
        Self::db_at(&self.data_dir)
    }

    /// The database in `data_dir`, for looking behind (or changing under) a stopped service.
    pub fn db_at(data_dir: &TempDir) -> rusqlite::Connection {
        rusqlite::Connection::open(data_dir.path().join("svc-user.db")).expect("open svc-user.db")
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |row| row.get(0)).expect(sql)
    }

    /// Waits until the outbox relay has published every row (JetStream acked them all).
    pub async fn outbox_drained(&self) {
        let drained = common::harness::eventually(DEADLINE, || async {
            (self.count("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0).then_some(())
        })
        .await;
        drained.expect("the outbox relay published every row");
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
