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

mod app;
mod events;
pub mod fixtures;

pub use app::{Builder, DeadLetter, TestApp, TestBus, WAIT};
pub use events::{EventLog, settled, snapshot_order, transcript};

use std::{
    future::Future,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::config::CommonConfig;

/// A `nats-server` child process with JetStream, killed on drop. Stopped and restarted through
/// `&self`, so a server that several services share (a [`TestBus`]) can crash under them.
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

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url()).await.expect("connect to test nats-server")
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
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server (run the tests through ./shop test, or set NATS_SERVER_BIN)");
        *self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(child);
        let url = self.url();
        eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                let client = async_nats::connect(&url).await.ok()?;
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

/// A fresh data directory and the matching common config for one service under test.
pub fn common_config(nats: &NatsServer, data_dir: &tempfile::TempDir) -> CommonConfig {
    CommonConfig { nats_url: nats.url(), data_dir: data_dir.path().to_path_buf(), ack_wait_secs: 30 }
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
    pub async fn publish(nats: &NatsServer) -> Self {
        let js = async_nats::jetstream::new(nats.client().await);
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
