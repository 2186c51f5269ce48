//! Test harness (feature `harness`): a real `nats-server` on a free port with its own temporary
//! store, every service started the way its binary starts ([`TestApp`]), an event recorder and
//! polling helpers. Used by every crate's integration tests; nothing here is a mock.
//!
//! - this module: [`NatsServer`], [`eventually`], [`TestIssuer`].
//! - [`app`]: [`TestBus`] (the stream as the tests see it) and [`TestApp`] (one service under
//!   test, with its end-of-test check).
//! - [`events`]: [`EventLog`], [`settled`], saga [`transcript`]s for snapshots.
//! - [`fixtures`]: the events svc-product and svc-payment answer with, for tests that stand in
//!   for them.
//! - [`fuzz`]: the inputs and the property of every service's property tests.

mod app;
mod events;
pub mod fixtures;
pub mod fuzz;
pub mod spec;

pub use app::{Builder, DeadLetter, TestApp, TestBus, WAIT};
pub use events::{EventLog, settled, snapshot_order, transcript};

use std::{
    future::Future,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{bus::NatsAuth, config::CommonConfig};

/// The operator's name on test servers.
const OPERATOR: &str = "operator";

/// A `nats-server` child process with JetStream and the production permissions
/// (`nats/accounts.conf`, as [`crate::permissions`] renders it), killed on drop. Stopped and
/// restarted through `&self`, so a server that several services share (a [`TestBus`]) can crash
/// under them. Every client connects as a user: a service as itself ([`NatsServer::auth`]), the
/// tests' own clients as the operator ([`NatsServer::client`]).
#[derive(Debug)]
pub struct NatsServer {
    child: std::sync::Mutex<Option<Child>>,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub async fn start() -> Self {
        let store = tempfile::tempdir().expect("temp dir for JetStream");
        let server = NatsServer { child: std::sync::Mutex::default(), port: free_port(), store };
        server.launch().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The credentials of the service user `user` on this server.
    pub fn auth(&self, user: &str) -> NatsAuth {
        NatsAuth::new(user, &format!("harness-{user}"))
    }

    /// The operator's credentials: watch everything, publish events by hand, never the keys.
    pub fn operator(&self) -> NatsAuth {
        NatsAuth::new(OPERATOR, "harness-operator")
    }

    /// A client connected as the operator, as a person with the `nats` CLI would be.
    pub async fn client(&self) -> async_nats::Client {
        self.client_as(&self.operator()).await
    }

    /// A client connected as `auth`'s user.
    pub async fn client_as(&self, auth: &NatsAuth) -> async_nats::Client {
        crate::bus::connect(&self.url(), "test", auth).await.expect("connect to test nats-server")
    }

    /// Stops the server (SIGKILL: like a crash; JetStream keeps what it stored).
    pub fn stop(&self) {
        let child = self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&self) {
        self.stop();
        self.launch().await;
    }

    async fn launch(&self) {
        let conf = self.store.path().join("accounts.conf");
        std::fs::write(&conf, crate::permissions::accounts_conf()).expect("write accounts.conf");
        let mut cmd = Command::new(nats_server_bin());
        cmd.arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .env(crate::permissions::OPERATOR_USER_ENV, OPERATOR)
            .env(crate::permissions::OPERATOR_PASSWORD_ENV, "harness-operator")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for service in &crate::permissions::SERVICES {
            cmd.env(crate::permissions::password_env(service.name), format!("harness-{}", service.name));
        }
        // NATS_HARNESS_LOG=<dir>: each server logs there (permission violations are named in it).
        if let Some(dir) = std::env::var_os("NATS_HARNESS_LOG") {
            cmd.arg("-l").arg(std::path::Path::new(&dir).join(format!("nats-{}.log", self.port)));
        }
        let child = cmd.spawn().expect("spawn nats-server (run the tests through ./shop test, or set NATS_SERVER_BIN)");
        *self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(child);
        let (url, operator) = (self.url(), self.operator());
        eventually(Duration::from_secs(10), || {
            let (url, operator) = (url.clone(), operator.clone());
            async move {
                let options = async_nats::ConnectOptions::new()
                    .user_and_password(operator.user.clone()?, operator.password.clone()?);
                let client = options.connect(&url).await.ok()?;
                async_nats::jetstream::new(client).query_account().await.ok().map(|_| ())
            }
        })
        .await
        .expect("nats-server did not become ready within 10 s");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The nats-server binary: `NATS_SERVER_BIN` (as `./shop test` sets it), else the project-local
/// one `./shop` installs, else whatever is on `PATH`.
///
/// The checkout is the one cargo runs the test in (`CARGO_MANIFEST_DIR` at run time, the tested
/// crate one level below the root), not the one this crate was compiled in.
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return bin.into();
    }
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|crate_dir| PathBuf::from(crate_dir).join("../.tools/venv/bin/nats-server"))
        .filter(|local| local.exists())
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// The common config of the service `service` under test: `nats` as that service's user, and a
/// fresh data directory.
pub fn common_config(nats: &NatsServer, service: &str, data_dir: &tempfile::TempDir) -> CommonConfig {
    CommonConfig {
        nats_url: nats.url(),
        data_dir: data_dir.path().to_path_buf(),
        ack_wait_secs: 30,
        http_header_timeout_secs: 10,
        http_request_timeout_secs: 35,
        http_max_connections: 1024,
        outbox_resend_secs: 5,
        ready_max_outbox_backlog: 10_000,
        nats_auth: nats.auth(service),
    }
}

/// A response's body as JSON, after checking its status (the body is in the failure message).
pub async fn json(res: reqwest::Response, status: u16) -> serde_json::Value {
    let actual = res.status().as_u16();
    let body = res.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {body}");
    serde_json::from_str(&body).expect("JSON body")
}

/// Polls `probe` until it returns `Some` or `deadline` passes. The way tests wait: never a sleep.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Signs tokens for tests of services other than svc-user: a key of its own, published to the
/// key bucket exactly as svc-user publishes its key, so services verify these tokens for real.
#[derive(Debug)]
pub struct TestIssuer {
    key: crate::auth::SigningKey,
}

impl TestIssuer {
    /// Publishes a fresh key as svc-user would (only svc-user may write the bucket).
    pub async fn publish(nats: &NatsServer) -> Self {
        let owner = nats.auth(crate::permissions::KEY_OWNER);
        let js = async_nats::jetstream::new(nats.client_as(&owner).await);
        let key = crate::auth::SigningKey::generate();
        let bucket = crate::auth::keys_bucket(&js).await.expect("key bucket");
        crate::auth::publish_key(&bucket, &key.public_jwk()).await.expect("publish test key");
        TestIssuer { key }
    }

    /// A bearer token for `user` with `role`, valid for an hour.
    pub fn token(&self, user: uuid::Uuid, role: crate::Role) -> String {
        self.key.issue(user, role, Duration::from_secs(3600))
    }
}

/// The log lines of this process, as `LOG_FORMAT=json` writes them ([`crate::telemetry`]),
/// captured in memory for a test to read. Installs the process's global subscriber: for a test
/// binary of its own (one per process), as every service under test logs through it.
#[derive(Clone, Debug, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Captures every line `filter` (an `EnvFilter` directive, e.g. `info,common=debug`) lets
    /// through, from now on.
    pub fn install(filter: &str) -> Self {
        use tracing_subscriber::prelude::*;
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(filter))
            .with(crate::telemetry::json_layer(move || writer.clone()))
            .init();
        logs
    }

    /// Every line so far, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}")))
            .collect()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
