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

/// A `nats-server` with JetStream and the production permissions (`nats/accounts.conf`, as
/// [`crate::permissions`] renders it): one child process ([`NatsServer::start`]) or a 3-node
/// cluster on loopback ([`NatsServer::cluster`]), killed on drop. Stopped and restarted through
/// `&self`, whole or node by node, so a server that several services share (a [`TestBus`]) can
/// crash under them. Every client connects as a user: a service as itself
/// ([`NatsServer::auth`]), the tests' own clients as the operator ([`NatsServer::client`]).
#[derive(Debug)]
pub struct NatsServer {
    nodes: Vec<Node>,
}

/// One server process: its client port, its route port (in a cluster) and its own store.
#[derive(Debug)]
struct Node {
    child: std::sync::Mutex<Option<Child>>,
    name: String,
    port: u16,
    route_port: Option<u16>,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub async fn start() -> Self {
        let server = NatsServer { nodes: vec![Node::new("harness", None)] };
        server.launch(0).await;
        server
    }

    /// Starts a 3-node JetStream cluster on loopback (free ports, a store each, routes between
    /// all three, as `nats/cluster/` configures `./shop up --cluster`) and waits until it has
    /// elected a meta leader. Services on it keep the stream in [`NatsServer::replicas`] copies.
    pub async fn cluster() -> Self {
        let nodes = (1..=3).map(|i| Node::new(&format!("node-{i}"), Some(free_port()))).collect();
        let server = NatsServer { nodes };
        // All three at once: a JetStream cluster needs a quorum before any one is ready.
        futures_util::future::join_all((0..server.nodes.len()).map(|i| server.launch(i))).await;
        server
    }

    /// Every node's client URL, comma-separated (as `NATS_URL` takes them).
    pub fn url(&self) -> String {
        (0..self.nodes.len()).map(|i| self.node_url(i)).collect::<Vec<_>>().join(",")
    }

    /// The client URL of node `i` alone.
    pub fn node_url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// How many nodes there are: 1, or 3 for a cluster.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The node named `name` (as JetStream names a stream's leader), if it is one of these.
    pub fn node_named(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The replica count for the stream and buckets: one per node.
    pub fn replicas(&self) -> usize {
        self.nodes.len()
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

    /// Stops every node (SIGKILL: like a crash; JetStream keeps what it stored).
    pub fn stop(&self) {
        (0..self.nodes.len()).for_each(|i| self.stop_node(i));
    }

    /// Stops node `i` alone (SIGKILL), the others running on.
    pub fn stop_node(&self, i: usize) {
        let child = self.nodes[i].child.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again, every node on the same ports with the same store.
    pub async fn restart(&self) {
        self.stop();
        futures_util::future::join_all((0..self.nodes.len()).map(|i| self.launch(i))).await;
    }

    /// Starts node `i` again (stopped or not) on its ports and store; it rejoins the cluster.
    pub async fn restart_node(&self, i: usize) {
        self.stop_node(i);
        self.launch(i).await;
    }

    async fn launch(&self, i: usize) {
        let node = &self.nodes[i];
        let conf = node.store.path().join("accounts.conf");
        std::fs::write(&conf, crate::permissions::accounts_conf()).expect("write accounts.conf");
        let mut cmd = Command::new(nats_server_bin());
        cmd.arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-p", &node.port.to_string(), "-js", "-sd"])
            .arg(node.store.path())
            .args(["-n", &node.name])
            .env(crate::permissions::OPERATOR_USER_ENV, OPERATOR)
            .env(crate::permissions::OPERATOR_PASSWORD_ENV, "harness-operator")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(route_port) = node.route_port {
            let routes: Vec<String> =
                self.nodes.iter().filter_map(|n| n.route_port).map(|p| format!("nats://127.0.0.1:{p}")).collect();
            cmd.args(["--cluster_name", "harness", "--cluster", &format!("nats://127.0.0.1:{route_port}")])
                .args(["--routes", &routes.join(",")]);
        }
        for service in &crate::permissions::SERVICES {
            cmd.env(crate::permissions::password_env(service.name), format!("harness-{}", service.name));
        }
        // NATS_HARNESS_LOG=<dir>: each server logs there (permission violations are named in it).
        if let Some(dir) = std::env::var_os("NATS_HARNESS_LOG") {
            cmd.arg("-l").arg(std::path::Path::new(&dir).join(format!("nats-{}.log", node.port)));
        }
        let child = cmd.spawn().expect("spawn nats-server (run the tests through ./shop test, or set NATS_SERVER_BIN)");
        *node.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(child);
        // Ready once JetStream answers through this node (in a cluster: once there is a meta leader).
        let (url, operator) = (self.node_url(i), self.operator());
        eventually(Duration::from_secs(30), || {
            let (url, operator) = (url.clone(), operator.clone());
            async move {
                let options = async_nats::ConnectOptions::new()
                    .user_and_password(operator.user.clone()?, operator.password.clone()?);
                let client = options.connect(&url).await.ok()?;
                async_nats::jetstream::new(client).query_account().await.ok().map(|_| ())
            }
        })
        .await
        .unwrap_or_else(|| panic!("nats-server {} did not become ready within 30 s", node.name));
    }
}

impl Node {
    fn new(name: &str, route_port: Option<u16>) -> Self {
        let store = tempfile::tempdir().expect("temp dir for JetStream");
        Node { child: std::sync::Mutex::default(), name: name.to_owned(), port: free_port(), route_port, store }
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
        nats_replicas: u8::try_from(nats.replicas()).expect("a handful of nodes"),
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
        let bucket = crate::auth::keys_bucket(&js, nats.replicas()).await.expect("key bucket");
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
