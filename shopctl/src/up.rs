//! `shopctl up`: NATS plus every service on this machine, until Ctrl-C.
//!
//! Each child runs in its own process group, so a Ctrl-C in the terminal reaches only shopctl,
//! which then stops the services first (they may still publish or ack while draining) and the
//! nats-server it started last. A child that dies meanwhile, nats-server included, is started
//! again with backoff while the others keep running ([`crate::supervise`]).
//!
//! With `--cluster`, NATS is the 3-node JetStream cluster of `nats/cluster/` instead of one
//! server: each node a child of its own, supervised the same way, and the services are given
//! every node's URL and `NATS_REPLICAS=3`, so the event stream and the key bucket survive the
//! loss of any one node.

use std::collections::HashMap;
use std::convert::Infallible;
use std::env;
use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::{Instant, sleep, timeout};

use crate::checkout::Checkout;
use crate::credentials::Credentials;
use crate::nats::ensure_nats_server;
use crate::proc::{Managed, Signals, cargo, stop_all};
use crate::supervise::Restarts;
use common::bus::NatsAuth;

/// A service `up` can start: a binary of the workspace with the package's name (the five
/// services, and the simulated payment gateway svc-payment charges through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub name: &'static str,
    /// Its documented port on loopback (a [`Layout`] may shift it).
    pub port: u16,
}

/// In start order: the payment gateway before svc-payment, which charges through it.
pub const SERVICES: &[Service] = &[
    Service { name: "payment-gateway", port: 8090 },
    Service { name: "svc-user", port: 8081 },
    Service { name: "svc-product", port: 8082 },
    Service { name: "svc-order", port: 8083 },
    Service { name: "svc-payment", port: 8084 },
    Service { name: "svc-settlement", port: 8085 },
];

/// Where and how a stack runs: `up`'s (the checkout's `.data/`, the documented ports, output to
/// the terminal) or one of its own (`shopctl chaos`: its own folder, shifted ports, log files).
#[derive(Debug, Clone)]
pub struct Layout {
    /// One folder per service under it.
    pub data_root: PathBuf,
    /// nats-server's working directory: the config's relative `store_dir` (`.data/nats`) and the
    /// pid file resolve against it.
    pub nats_cwd: PathBuf,
    /// Added to every documented port (services, NATS and its monitor).
    pub port_offset: u16,
    /// Extra environment for every service (a short order deadline, say).
    pub env: Vec<(String, String)>,
    /// `Some(dir)`: each child's output goes to `<dir>/<name>.log` instead of the terminal.
    pub logs: Option<PathBuf>,
    /// The cargo invocation that builds (or finds) the binaries.
    pub build_args: Vec<&'static str>,
    /// `Some(dir)`: run the binaries already in `dir` (e.g. `target/debug`), build nothing.
    pub bin_dir: Option<PathBuf>,
    /// NATS is the 3-node cluster of `nats/cluster/` (its stores under `nats_cwd`'s
    /// `.data/nats-cluster/`), not one server.
    pub cluster: bool,
}

impl Layout {
    /// `up`'s: the checkout's `.data/`, the documented ports, output to the terminal.
    pub fn up(checkout: &Checkout, cluster: bool) -> Self {
        Layout {
            data_root: checkout.data_dir(),
            nats_cwd: checkout.root().to_path_buf(),
            port_offset: 0,
            env: Vec::new(),
            logs: None,
            build_args: BUILD_ARGS.to_vec(),
            bin_dir: None,
            cluster,
        }
    }

    pub fn addr(&self, service: &Service) -> String {
        format!("127.0.0.1:{}", service.port + self.port_offset)
    }

    /// The NATS URL of the servers this layout starts: one, or every node of the cluster,
    /// comma-separated (as `NATS_URL` takes them).
    pub fn nats_url(&self) -> String {
        let nodes = if self.cluster { CLUSTER_NODES } else { 1 };
        let url = |i| format!("nats://127.0.0.1:{}", NATS_DEFAULT_PORT + i + self.port_offset);
        (0..nodes).map(url).collect::<Vec<_>>().join(",")
    }

    /// The base URL of the service `name`.
    pub fn url(&self, name: &str) -> String {
        let service = SERVICES.iter().find(|s| s.name == name).expect("a known service");
        format!("http://{}", self.addr(service))
    }

    pub fn service_data_dir(&self, name: &str) -> PathBuf {
        self.data_root.join(name)
    }

    /// The nats-servers to start: the single server at `nats_url`'s first address, or the
    /// cluster's nodes on this layout's ports (`nats_url` is then [`Layout::nats_url`]).
    fn nats_nodes(&self, checkout: &Checkout, nats_url: &str) -> Result<Vec<NatsNode>> {
        let offset = self.port_offset;
        if !self.cluster {
            return Ok(vec![NatsNode {
                name: "nats-server".to_owned(),
                conf: checkout.nats_conf(),
                addr: first_server_addr(nats_url)?,
                monitor_port: NATS_MONITOR_PORT + offset,
                routes: None,
                // Where the pid is written, so the next run can recognise a server left behind.
                pid_file: self.nats_cwd.join(".data/nats/nats-server.pid"),
                store: self.nats_cwd.join(".data/nats"),
            }]);
        }
        let routes: Vec<String> =
            (0..CLUSTER_NODES).map(|i| format!("nats://127.0.0.1:{}", NATS_ROUTE_PORT + i + offset)).collect();
        let node = |i: u16| NatsNode {
            name: format!("nats-node-{}", i + 1),
            conf: checkout.nats_cluster_conf(i + 1),
            addr: ServerAddr { host: "127.0.0.1".to_owned(), port: NATS_DEFAULT_PORT + i + offset },
            monitor_port: NATS_MONITOR_PORT + i + offset,
            routes: Some((NATS_ROUTE_PORT + i + offset, routes.clone())),
            pid_file: self.nats_cwd.join(format!(".data/nats-cluster/node-{}.pid", i + 1)),
            store: self.nats_cwd.join(format!(".data/nats-cluster/node-{}", i + 1)),
        };
        Ok((0..CLUSTER_NODES).map(node).collect())
    }

    /// Output of the child `name`: our terminal, or its log file.
    fn output(&self, name: &str) -> Result<(Stdio, Stdio)> {
        match &self.logs {
            None => Ok((Stdio::inherit(), Stdio::inherit())),
            Some(dir) => {
                create_dir(dir)?;
                let path = dir.join(format!("{name}.log"));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                Ok((Stdio::from(file.try_clone()?), Stdio::from(file)))
            }
        }
    }
}

const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
const NATS_DEFAULT_PORT: u16 = 4222;
/// Must match `http:` in nats/nats-server.conf (`-m` sets it, shifted by a [`Layout`]'s offset).
const NATS_MONITOR_PORT: u16 = 8222;
/// The nodes of `--cluster`'s cluster, as nats/cluster/ configures them: node `i` (from 1)
/// listens on [`NATS_DEFAULT_PORT`], [`NATS_MONITOR_PORT`] and [`NATS_ROUTE_PORT`] plus `i - 1`.
pub const CLUSTER_NODES: u16 = 3;
/// Must match `cluster.listen` in nats/cluster/node-1.conf (`--cluster` sets it, shifted).
const NATS_ROUTE_PORT: u16 = 6222;

/// Development defaults for svc-user's bootstrap admin account, as documented in docs/API-SPEC.md.
/// The password must pass svc-user's policy (8+ characters, a letter and a digit).
const DEV_ADMIN_EMAIL: &str = "admin@msa-shop.local";
const DEV_ADMIN_PASSWORD: &str = "admin-dev-password-1";

pub(crate) const ADMIN_DEFAULTS: [(&str, &str); 2] =
    [("ADMIN_EMAIL", DEV_ADMIN_EMAIL), ("ADMIN_PASSWORD", DEV_ADMIN_PASSWORD)];

/// Other development defaults, applied unless set: svc-product seeds the demo catalogue.
pub(crate) const DEV_DEFAULTS: [(&str, &str); 1] = [("SEED_DEMO", "true")];

/// Runtime defaults, applied unless set: one async worker thread per service (tokio's own
/// variable). Every process of the stack shares this one machine, so more workers per service
/// only add thread wake-ups; each service's SQLite writer and blocking pool keep threads of their
/// own. `./shop load` measured 7 % more orders/s this way (docs/PERFORMANCE.md).
pub(crate) const RUNTIME_DEFAULTS: [(&str, &str); 1] = [("TOKIO_WORKER_THREADS", "1")];

/// Until every server we started answers JetStream requests (a cluster: has a meta leader, and
/// each stream it stores a leader of its own).
const NATS_START_TIMEOUT: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The build that `up` runs, and `./shop` runs before it: every binary of the workspace (shopctl
/// and the services) in one cargo invocation, so that they share one release dependency tree
/// (cargo unifies features per invocation; built separately, crates would be built twice).
pub const BUILD_ARGS: [&str; 4] = ["build", "--release", "--workspace", "--bins"];

pub fn run(checkout: &Checkout, cluster: bool) -> Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(up(checkout, cluster))
}

/// Everything `up` has started, so that one place can stop it all whatever happened.
#[derive(Default)]
pub struct Stack {
    build: Option<Managed>,
    pub services: Vec<Managed>,
    /// How to start each of `services` again, in the same order.
    service_restarts: Vec<Restarts>,
    /// The nats-servers shopctl started itself (none that was already running): the server, or
    /// the cluster's nodes in order (`nats-node-1`, ...).
    pub nats: Vec<Managed>,
    /// How to start each of `nats` again, in the same order.
    nats_restarts: Vec<Restarts>,
}

impl Stack {
    /// Services first, while NATS is still there for them to drain into; NATS last.
    pub async fn shutdown(&mut self, signals: &mut Signals) {
        if let Some(build) = &mut self.build {
            build.stop(STOP_GRACE, signals).await;
        }
        stop_all(&mut self.services, STOP_GRACE, signals).await;
        stop_all(&mut self.nats, STOP_GRACE, signals).await;
    }
}

async fn up(checkout: &Checkout, cluster: bool) -> Result<ExitCode> {
    // First of all: once installed, SIGINT/SIGTERM no longer kill us outright, so we always get
    // to stop the children.
    let mut signals = Signals::install()?;
    let mut stack = Stack::default();

    let outcome = tokio::select! {
        result = start_and_watch(checkout, &mut stack, cluster) => result.map(|never| match never {}),
        sig = signals.recv() => {
            eprintln!("\nshopctl: {sig} received, shutting down");
            Ok(())
        }
    };
    if let Err(err) = &outcome {
        eprintln!("shopctl: error: {err:#}\nshopctl: shutting down");
    }
    stack.shutdown(&mut signals).await;
    Ok(if outcome.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Builds, starts and then watches everything; returns only on failure (a signal ends it from
/// outside, by dropping this future). Every child is put into `stack` right after it is spawned,
/// with no `await` in between, so dropping this future never loses track of one.
async fn start_and_watch(checkout: &Checkout, stack: &mut Stack, cluster: bool) -> Result<Infallible> {
    let layout = Layout::up(checkout, cluster);
    let from_env = env::var("NATS_URL").ok().filter(|u| !u.trim().is_empty());
    let nats_url = match from_env {
        Some(url) if cluster => {
            eprintln!("shopctl: warning: ignoring NATS_URL={url}: --cluster runs the cluster of nats/cluster/");
            layout.nats_url()
        }
        Some(url) => url,
        None if cluster => layout.nats_url(),
        None => DEFAULT_NATS_URL.to_owned(),
    };
    let nats_started = launch(checkout, stack, &layout, &nats_url, false).await?;
    let services: Vec<&Service> = SERVICES.iter().collect();
    print_summary(&layout, &nats_url, &layout.nats_nodes(checkout, &nats_url)?, nats_started, &services);

    // Polling is plenty for noticing a crash, and `try_wait` never reaps behind our back (see
    // `Managed::terminate`).
    loop {
        sleep(Duration::from_millis(500)).await;
        supervise(stack)?;
    }
}

/// Builds, starts NATS (unless one answers at `nats_url`; with `own_nats` that is an error) and
/// every service as `layout` says, and waits until all are ready. Returns whether it started
/// nats-server (with a cluster: any node).
pub async fn launch(
    checkout: &Checkout,
    stack: &mut Stack,
    layout: &Layout,
    nats_url: &str,
    own_nats: bool,
) -> Result<bool> {
    let root = checkout.root();
    let services: Vec<&Service> = SERVICES.iter().collect(); // all of them, in start order

    // Build before starting anything, so a compile error leaves nothing to clean up.
    let binaries = match &layout.bin_dir {
        None => build(checkout, stack, &layout.build_args).await?,
        Some(dir) => {
            let found: HashMap<String, PathBuf> =
                SERVICES.iter().map(|s| (s.name.to_owned(), dir.join(s.name))).filter(|(_, p)| p.is_file()).collect();
            eprintln!("shopctl: using the binaries in {}", dir.display());
            found
        }
    };

    let nodes = layout.nats_nodes(checkout, nats_url)?;
    if own_nats {
        for node in &nodes {
            if accepts_tcp(&node.addr).await {
                bail!("something already answers at {}; this run needs a nats-server of its own", node.addr);
            }
        }
    }
    let credentials = Credentials::load_or_create(&layout.data_root)?;
    let nats_started = start_nats_unless_running(checkout, stack, layout, &credentials, nats_url, &nodes).await?;

    for (var, value) in ADMIN_DEFAULTS {
        if env::var_os(var).is_none() {
            eprintln!(
                "shopctl: warning: {var} not set, using the development default `{value}`; \
                 never use it outside development"
            );
        }
    }

    for service in &services {
        let data_dir = layout.service_data_dir(service.name);
        create_dir(&data_dir)?;
        let bin = binaries
            .get(service.name)
            .ok_or_else(|| anyhow!("`cargo {}` built no binary named {}", layout.build_args.join(" "), service.name))?;
        let auth = credentials.service(service.name);
        let command = service_command(root, bin.clone(), service, layout, nats_url.to_owned(), auth, data_dir)?;
        stack.services.push(Managed::spawn(service.name, &mut command())?);
        stack.service_restarts.push(Restarts::new(command, Instant::now()));
    }

    wait_until_ready(stack, layout, &services).await?;
    Ok(nats_started)
}

/// How a service is started, the first time and after it died.
fn service_command(
    root: &Path,
    bin: PathBuf,
    service: &Service,
    layout: &Layout,
    nats_url: String,
    auth: Option<NatsAuth>,
    data_dir: PathBuf,
) -> Result<impl Fn() -> Command + Send + use<>> {
    let (root, http_addr, gateway_url) = (root.to_path_buf(), layout.addr(service), layout.url("payment-gateway"));
    // One copy of the stream and the key bucket per node; unset on a single server, whose
    // default (1) a NATS_REPLICAS of our own environment may override for a server of its own.
    let replicas = layout.cluster.then(|| CLUSTER_NODES.to_string());
    let (logs, name) = (layout.clone(), service.name);
    // Fail now, not in the restart loop, if the log file cannot be opened.
    logs.output(name)?;
    Ok(move || {
        let mut cmd = Command::new(&bin);
        // The rest of our environment (RUST_LOG, ADMIN_*, ...) is inherited.
        cmd.current_dir(&root)
            .env("NATS_URL", &nats_url)
            .env("HTTP_ADDR", &http_addr)
            .env("DATA_DIR", &data_dir)
            .env("GATEWAY_URL", &gateway_url)
            .envs(replicas.iter().map(|r| ("NATS_REPLICAS", r)))
            // We hold the write end of the service's stdin for as long as we live; with this
            // variable set the service stops when it reads EOF, so even a SIGKILLed shopctl
            // leaves no service behind (no parent-death signal without `unsafe`).
            .env("STOP_ON_STDIN_EOF", "1")
            .stdin(Stdio::piped())
            .process_group(0);
        for (var, value) in ADMIN_DEFAULTS.iter().chain(&DEV_DEFAULTS).chain(&RUNTIME_DEFAULTS) {
            if env::var_os(var).is_none() {
                cmd.env(var, value);
            }
        }
        // Its own NATS user (the gateway has none: it is no NATS client).
        if let Some(NatsAuth { user: Some(user), password: Some(password) }) = &auth {
            cmd.env("NATS_USER", user).env("NATS_PASSWORD", password);
        }
        cmd.envs(logs.env.iter().map(|(k, v)| (k, v)));
        if let Ok((out, err)) = logs.output(name) {
            cmd.stdout(out).stderr(err);
        }
        cmd
    })
}

/// One look at every child: a dead one is reported and, when its delay is up, started again.
pub fn supervise(stack: &mut Stack) -> Result<()> {
    let now = Instant::now();
    let nats = stack.nats.iter_mut().zip(&mut stack.nats_restarts);
    for (child, restarts) in nats.chain(stack.services.iter_mut().zip(&mut stack.service_restarts)) {
        restarts.watch(child, now)?;
    }
    Ok(())
}

/// Runs [`BUILD_ARGS`] and returns where cargo put each binary, by name. Cargo says so itself in
/// its JSON messages, which honours `CARGO_TARGET_DIR` and any other target-dir setting. Its
/// progress ("Compiling ...") and diagnostics still go to our stderr.
async fn build(checkout: &Checkout, stack: &mut Stack, args: &[&str]) -> Result<HashMap<String, PathBuf>> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(checkout.root())
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // After ./shop this is a no-op that only tells us where the binaries are.
    eprintln!("shopctl: building the services, or finding them built (cargo {})", args.join(" "));
    let build = stack.build.insert(Managed::spawn("cargo build", &mut cmd)?);
    let stdout = build.take_stdout().context("cargo's stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut binaries = HashMap::new();
    while let Some(line) = lines.next_line().await.context("cannot read cargo's messages")? {
        if let Some((name, path)) = built_binary(&line) {
            binaries.insert(name, path);
        }
    }
    let status = build.wait().await?;
    stack.build = None;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    Ok(binaries)
}

/// The binary a line of cargo's `--message-format=json` output reports, if it reports one.
fn built_binary(line: &str) -> Option<(String, PathBuf)> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let name = message["target"]["name"].as_str()?;
    let executable = message["executable"].as_str()?;
    Some((name.to_owned(), PathBuf::from(executable)))
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Starts every node of `nodes` that does not answer yet (none answering is the usual case) and
/// waits until JetStream answers through each. Returns whether it started any.
async fn start_nats_unless_running(
    checkout: &Checkout,
    stack: &mut Stack,
    layout: &Layout,
    credentials: &Credentials,
    nats_url: &str,
    nodes: &[NatsNode],
) -> Result<bool> {
    let mut bin = None;
    let mut started = false;
    for node in nodes {
        stop_orphaned_nats(node).await?;
        if accepts_tcp(&node.addr).await {
            eprintln!("shopctl: using the NATS server already answering at {}", node.addr);
            continue;
        }
        if !node.addr.is_local() {
            bail!(
                "nothing answers at NATS_URL={nats_url}, and {} is not this machine, so shopctl \
                 cannot start a server there",
                node.addr.host
            );
        }
        let bin = match &bin {
            Some(bin) => bin,
            None => {
                let checkout = checkout.clone();
                bin.insert(tokio::task::spawn_blocking(move || ensure_nats_server(&checkout)).await??)
            }
        };
        // nats-server writes its pid file there before it creates its store (on a fresh clone
        // nothing else has created the folder yet).
        create_dir(node.pid_file.parent().expect("the pid file is inside .data"))?;
        let command = nats_command(layout, credentials.server_env(), bin.clone(), node)?;
        let mut cmd = command();
        eprintln!("shopctl: starting {:?}", cmd.as_std());
        stack.nats.push(Managed::spawn(&node.name, &mut cmd)?);
        stack.nats_restarts.push(Restarts::new(command, Instant::now()));
        started = true;
    }
    if started {
        wait_until_serving(stack, layout, nodes).await?;
    }
    Ok(started)
}

/// Waits until JetStream answers through every node: on a cluster, once a meta leader is
/// elected, for which 2 of the 3 nodes must be up, and each stored stream has a leader. A server we started that exits meanwhile is a
/// start-up failure (a bad setting, a port in use).
async fn wait_until_serving(stack: &mut Stack, layout: &Layout, nodes: &[NatsNode]) -> Result<()> {
    let operator = Credentials::operator();
    let deadline = Instant::now() + NATS_START_TIMEOUT;
    let mut waiting: Vec<&NatsNode> = nodes.iter().collect();
    loop {
        check_alive(stack, layout)?;
        let mut still = Vec::new();
        for node in waiting {
            if !jetstream_answers(&node.addr, &operator).await {
                still.push(node);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let names: Vec<&str> = waiting.iter().map(|n| n.name.as_str()).collect();
            bail!(
                "JetStream did not answer through {} within {}s{}",
                names.join(", "),
                NATS_START_TIMEOUT.as_secs(),
                if nodes.len() > 1 { " (a cluster elects its meta leader once 2 of its 3 nodes are up)" } else { "" }
            );
        }
        sleep(POLL_INTERVAL).await;
    }
}

/// Whether JetStream serves through the server at `addr`, asked as the operator: it answers an
/// account-info request (on a cluster: it knows the meta leader, which answers those), and
/// every stream already stored answers too. After a cluster's restart from its stores each
/// stream (the events, the key bucket) elects a leader of its own only after the meta leader;
/// until then the services' requests to it time out.
async fn jetstream_answers(addr: &ServerAddr, operator: &NatsAuth) -> bool {
    use futures_util::StreamExt;
    let (Some(user), Some(password)) = (operator.user.clone(), operator.password.clone()) else { return false };
    let ask = async {
        // Not `common::bus::connect`: that one retries a refused connection forever.
        let client =
            async_nats::ConnectOptions::new().user_and_password(user, password).connect(addr.to_string()).await?;
        let js = async_nats::jetstream::new(client);
        js.query_account().await?;
        let mut names = js.stream_names();
        while let Some(name) = names.next().await {
            let stream = js.get_stream(name?).await?;
            let cluster = stream.cached_info().cluster.as_ref();
            anyhow::ensure!(cluster.is_none_or(|c| c.leader.is_some()), "a stream has no leader yet");
        }
        anyhow::Ok(())
    };
    matches!(timeout(Duration::from_secs(2), ask).await, Ok(Ok(())))
}

/// How a nats-server is started, the first time and after it died.
fn nats_command(
    layout: &Layout,
    env: Vec<(String, String)>,
    bin: PathBuf,
    node: &NatsNode,
) -> Result<impl Fn() -> Command + Send + use<>> {
    let (cwd, args, name) = (layout.nats_cwd.clone(), node.args(), node.name.clone());
    let logs = layout.clone();
    logs.output(&name)?;
    Ok(move || {
        let mut cmd = Command::new(&bin);
        // The config's `store_dir` is relative to the working directory, hence `current_dir`
        // (nats-server refuses a `--store_dir` flag when the config sets one too).
        cmd.current_dir(&cwd)
            .args(&args)
            // The passwords nats/accounts.conf reads: never on the command line.
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0);
        if let Ok((out, err)) = logs.output(&name) {
            cmd.stdout(out).stderr(err);
        }
        cmd
    })
}

/// Stops a nats-server that an earlier `shopctl up` started as `node` and could not stop (it
/// was killed with SIGKILL: services stop on their own then, via their stdin pipe, but
/// nats-server cannot). Recognised by the pid file it wrote and, against pid reuse, by its
/// command line.
async fn stop_orphaned_nats(node: &NatsNode) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(&node.pid_file) else { return Ok(()) };
    let Ok(pid) = text.trim().parse::<u32>() else { return Ok(()) };
    let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&*node.conf.to_string_lossy()))
        .unwrap_or(false);
    if !ours {
        return Ok(());
    }
    eprintln!("shopctl: stopping the {} (pid {pid}) an earlier shopctl left behind", node.name);
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().context("cannot run kill(1)")?;
    let deadline = Instant::now() + STOP_GRACE;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() >= deadline {
            bail!("the {} left behind (pid {pid}) did not stop within {}s", node.name, STOP_GRACE.as_secs());
        }
        sleep(POLL_INTERVAL).await;
    }
    Ok(())
}

async fn accepts_tcp(addr: &ServerAddr) -> bool {
    let target = addr.to_string();
    matches!(timeout(Duration::from_secs(1), TcpStream::connect(target)).await, Ok(Ok(_)))
}

/// Polls every service's readiness endpoint until all answer 200, one fails, or time runs out.
async fn wait_until_ready(stack: &mut Stack, layout: &Layout, services: &[&Service]) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut ready = vec![false; services.len()];
    let mut last_answer: Vec<String> = vec!["no answer yet".to_owned(); services.len()];
    for service in services {
        eprintln!("shopctl: waiting for {} at http://{}/health/ready", service.name, layout.addr(service));
    }
    loop {
        check_alive(stack, layout)?;
        for (i, service) in services.iter().enumerate() {
            if ready[i] {
                continue;
            }
            match http_get_status(&layout.addr(service), "/health/ready").await {
                Ok(200) => {
                    ready[i] = true;
                    eprintln!("shopctl: {} is ready", service.name);
                }
                Ok(code) => last_answer[i] = format!("HTTP {code}"),
                Err(err) => last_answer[i] = format!("{err:#}"),
            }
        }
        if ready.iter().all(|r| *r) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let waiting: Vec<String> = services
                .iter()
                .zip(&ready)
                .zip(&last_answer)
                .filter(|((_, ready), _)| !**ready)
                .map(|((s, _), answer)| format!("{} (last: {answer})", s.name))
                .collect();
            bail!("not ready after {}s: {}", READY_TIMEOUT.as_secs(), waiting.join(", "));
        }
        sleep(POLL_INTERVAL).await;
    }
}

/// Fails if any child we started has exited: before everything is ready, a death is a start-up
/// failure (a bad setting, a port in use) that restarting would only repeat.
fn check_alive(stack: &mut Stack, layout: &Layout) -> Result<()> {
    for child in stack.services.iter_mut().chain(&mut stack.nats) {
        if let Some(status) = child.try_exit_status() {
            // Logged to a file (a run's own stack, whose folder may be a temporary one): its
            // last lines say why, here where they are read.
            let last =
                layout.logs.as_ref().map_or_else(String::new, |dir| log_tail(&dir.join(format!("{}.log", child.name))));
            let place = if layout.logs.is_some() { "its last log lines:" } else { "see its log above" };
            bail!("{} exited unexpectedly ({status}); {place}{last}", child.name);
        }
    }
    Ok(())
}

/// The last lines of the log file `path`, each on a line of its own, indented; empty if none.
fn log_tail(path: &Path) -> String {
    const LINES: usize = 15;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].iter().map(|l| format!("\n    {l}")).collect()
}

/// A minimal HTTP/1.1 GET returning the status code; enough for a readiness probe.
async fn http_get_status(addr: &str, path: &str) -> Result<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: shopctl\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        // Read the whole (small) response so the server sees an orderly close, not a reset.
        let mut response = Vec::new();
        stream.take(64 * 1024).read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    let response = timeout(Duration::from_secs(2), exchange).await.map_err(|_| anyhow!("timed out"))??;
    parse_status_line(&response).ok_or_else(|| anyhow!("not an HTTP response"))
}

/// The status code from the first line of an HTTP/1.x response (`HTTP/1.1 200 OK`).
fn parse_status_line(response: &[u8]) -> Option<u16> {
    let line_end = response.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&response[..line_end]).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

fn print_summary(layout: &Layout, nats_url: &str, nodes: &[NatsNode], nats_started: bool, services: &[&Service]) {
    let nats_note = |node: &NatsNode| {
        if nats_started {
            format!(
                "started by shopctl; monitoring http://127.0.0.1:{}; data {}",
                node.monitor_port,
                node.store.display()
            )
        } else {
            "already running, not managed by shopctl".to_owned()
        }
    };
    println!();
    println!("msa-shop is up. Ctrl-C stops everything.");
    println!();
    println!("  {:<16} {:<28} notes", "component", "listens on");
    if layout.cluster {
        let quorum = CLUSTER_NODES / 2 + 1;
        println!(
            "  {:<16} {:<28} {CLUSTER_NODES} nodes; stream and key bucket in {CLUSTER_NODES} copies (R{CLUSTER_NODES}), \
             quorum {quorum}: any one node may go down",
            "nats cluster", ""
        );
        for node in nodes {
            println!("  {:<16} {:<28} {}", node.name, format!("nats://{}", node.addr), nats_note(node));
        }
    } else {
        println!("  {:<16} {:<28} {}", "nats", nats_url, nats_note(&nodes[0]));
    }
    let operator = Credentials::operator();
    let default =
        if Credentials::operator_is_default() { " (development default: set NATS_OPERATOR_USER/PASSWORD)" } else { "" };
    println!(
        "  {:<16} {:<28} user {} password {}{default}",
        "nats operator",
        "",
        operator.user.unwrap_or_default(),
        operator.password.unwrap_or_default()
    );
    for service in services {
        let url = layout.url(service.name);
        println!("  {:<16} {:<28} data {}", service.name, url, layout.service_data_dir(service.name).display());
    }
    println!();
}

/// A nats-server shopctl may start: the single server, or one node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NatsNode {
    /// Its name in what shopctl says and its log file's: `nats-server`, or `nats-node-<i>` for
    /// the node whose `server_name` (as JetStream names a stream's leader) is `node-<i>`.
    name: String,
    conf: PathBuf,
    /// Where it listens for clients: NATS_URL's first server, or the node's shifted port.
    addr: ServerAddr,
    monitor_port: u16,
    /// A cluster node's route port, and every node's route URL.
    routes: Option<(u16, Vec<String>)>,
    pid_file: PathBuf,
    /// Where its configuration keeps its JetStream store (relative to the working directory).
    store: PathBuf,
}

impl NatsNode {
    /// Its command line: the configuration, then what a layout changes in it (the listen address
    /// from NATS_URL, every port shifted by the offset) and the pid file. Flags take precedence
    /// over the configuration's `listen`, `http`, `cluster.listen` and `cluster.routes`.
    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-c".into(), self.conf.clone().into()];
        args.extend(
            ["-a", &self.addr.host, "-p", &self.addr.port.to_string(), "-m", &self.monitor_port.to_string()]
                .map(OsString::from),
        );
        args.extend(["--pid".into(), self.pid_file.clone().into()]);
        if let Some((port, routes)) = &self.routes {
            let listen = format!("nats://127.0.0.1:{port}");
            args.extend(["--cluster", &listen, "--routes", &routes.join(",")].map(OsString::from));
        }
        args
    }
}

/// The host and port of one NATS server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerAddr {
    host: String,
    port: u16,
}

impl ServerAddr {
    /// Whether shopctl may start a server here: only loopback addresses.
    fn is_local(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The first server of a `NATS_URL`, which may list several separated by commas
/// (`nats://user:pw@host:4222,nats://other:4222`). Scheme and credentials are optional.
fn first_server_addr(urls: &str) -> Result<ServerAddr> {
    let first = urls.split(',').map(str::trim).find(|u| !u.is_empty()).ok_or_else(|| anyhow!("NATS_URL is empty"))?;
    let invalid = || anyhow!("cannot parse NATS_URL entry {first:?}");
    let without_scheme = first.split_once("://").map_or(first, |(_, rest)| rest);
    let authority = without_scheme.split(['/', '?']).next().unwrap_or(without_scheme);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);

    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, rest) = bracketed.split_once(']').ok_or_else(invalid)?;
        (host, rest.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(invalid());
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| invalid())?,
        None => NATS_DEFAULT_PORT,
    };
    Ok(ServerAddr { host: host.to_owned(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_childs_last_log_lines_are_quoted_and_a_missing_log_quotes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc-payment.log");
        let lines: Vec<String> = (1..=20).map(|i| format!("line {i}")).collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        let tail = log_tail(&path);
        assert!(tail.starts_with("\n    line 6\n") && tail.ends_with("\n    line 20"), "{tail}");
        assert_eq!(log_tail(&dir.path().join("none.log")), "");
    }

    fn addr(host: &str, port: u16) -> ServerAddr {
        ServerAddr { host: host.to_owned(), port }
    }

    #[test]
    fn first_server_of_nats_url() {
        assert_eq!(first_server_addr(DEFAULT_NATS_URL).unwrap(), addr("127.0.0.1", 4222));
        assert_eq!(first_server_addr("nats://a:4333, nats://b:4444").unwrap(), addr("a", 4333));
        assert_eq!(first_server_addr(" ,nats://b:4444").unwrap(), addr("b", 4444));
        assert_eq!(first_server_addr("localhost").unwrap(), addr("localhost", 4222));
        assert_eq!(first_server_addr("tls://user:p@ss@example.com:7422").unwrap(), addr("example.com", 7422));
        assert_eq!(first_server_addr("nats://[::1]:4223").unwrap(), addr("::1", 4223));
        assert_eq!(first_server_addr("nats://[::1]").unwrap(), addr("::1", 4222));
        assert_eq!(first_server_addr("nats://127.0.0.1:4222/").unwrap(), addr("127.0.0.1", 4222));
    }

    #[test]
    fn bad_nats_urls_are_errors() {
        assert!(first_server_addr("").is_err());
        assert!(first_server_addr(" , ").is_err());
        assert!(first_server_addr("nats://:4222").is_err());
        assert!(first_server_addr("nats://host:notaport").is_err());
        assert!(first_server_addr("nats://[::1:4222").is_err());
    }

    #[test]
    fn server_addr_display_and_locality() {
        assert_eq!(addr("::1", 4222).to_string(), "[::1]:4222");
        assert_eq!(addr("127.0.0.1", 4222).to_string(), "127.0.0.1:4222");
        assert!(addr("127.0.0.1", 1).is_local());
        assert!(addr("::1", 1).is_local());
        assert!(addr("localhost", 1).is_local());
        assert!(!addr("10.0.0.1", 1).is_local());
        assert!(!addr("nats.example.com", 1).is_local());
    }

    #[test]
    fn status_line_parsing() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\ncontent-length: 0\r\n"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), None, "incomplete line");
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20 OK\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn cargo_names_the_binaries_it_built() {
        let bin = r#"{"reason":"compiler-artifact","package_id":"path+file:///c/svc-user#0.1.0","target":{"kind":["bin"],"name":"svc-user"},"executable":"/t/release/svc-user","fresh":true}"#;
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"common"},"executable":null}"#;
        assert_eq!(built_binary(bin), Some(("svc-user".to_owned(), PathBuf::from("/t/release/svc-user"))));
        assert_eq!(built_binary(lib), None);
        assert_eq!(built_binary(r#"{"reason":"build-finished","success":true}"#), None);
        assert_eq!(built_binary("warning: not json"), None);
    }

    #[test]
    fn shop_builds_what_up_builds() {
        // `./shop` builds shopctl with the same invocation, so `up`'s build finds everything fresh
        // and both share one dependency tree.
        let script = include_str!("../../shop");
        let build = format!("cargo {}", BUILD_ARGS.join(" "));
        assert!(script.contains(&build), "./shop does not run `{build}`");
    }

    fn layout(cluster: bool, port_offset: u16) -> Layout {
        let checkout = Checkout::containing(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        Layout { port_offset, nats_cwd: PathBuf::from("/run"), ..Layout::up(&checkout, cluster) }
    }

    fn nodes(layout: &Layout, nats_url: &str) -> Vec<NatsNode> {
        let checkout = Checkout::containing(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        layout.nats_nodes(&checkout, nats_url).unwrap()
    }

    fn args(node: &NatsNode) -> Vec<String> {
        node.args().iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn the_single_server_listens_where_nats_url_says_on_shifted_monitoring() {
        let layout = layout(false, 10_000);
        assert_eq!(layout.nats_url(), "nats://127.0.0.1:14222");
        let single = nodes(&layout, "nats://localhost:4333,nats://other:4222");
        assert_eq!(single.len(), 1);
        let node = &single[0];
        assert_eq!((node.name.as_str(), node.routes.as_ref()), ("nats-server", None));
        assert!(node.conf.ends_with("nats/nats-server.conf"));
        let args = args(node);
        assert_eq!(args[2..8], ["-a", "localhost", "-p", "4333", "-m", "18222"]);
        assert_eq!(args[8..], ["--pid", "/run/.data/nats/nats-server.pid"]);
    }

    #[test]
    fn a_cluster_is_three_nodes_on_consecutive_ports_each_routed_to_all() {
        let layout = layout(true, 10_000);
        let url = layout.nats_url();
        assert_eq!(url, "nats://127.0.0.1:14222,nats://127.0.0.1:14223,nats://127.0.0.1:14224");
        let cluster = nodes(&layout, &url);
        let names: Vec<&str> = cluster.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["nats-node-1", "nats-node-2", "nats-node-3"]);
        let routes = "nats://127.0.0.1:16222,nats://127.0.0.1:16223,nats://127.0.0.1:16224";
        let node_2 = args(&cluster[1]);
        assert!(cluster[1].conf.ends_with("nats/cluster/node-2.conf"));
        assert_eq!(node_2[2..8], ["-a", "127.0.0.1", "-p", "14223", "-m", "18223"]);
        assert_eq!(
            node_2[8..],
            ["--pid", "/run/.data/nats-cluster/node-2.pid", "--cluster", "nats://127.0.0.1:16223", "--routes", routes]
        );
        let stores: std::collections::BTreeSet<_> = cluster.iter().map(|n| &n.store).collect();
        assert_eq!(stores.len(), 3, "a store each");
    }

    #[test]
    fn the_cluster_configs_say_what_up_starts_the_nodes_with() {
        // shopctl's flags override ports, but a node started by hand (nats/README.md) runs on
        // the files alone: they must agree with the unshifted layout.
        let configs = [
            include_str!("../../nats/cluster/node-1.conf"),
            include_str!("../../nats/cluster/node-2.conf"),
            include_str!("../../nats/cluster/node-3.conf"),
        ];
        let layout = layout(true, 0);
        let cluster = nodes(&layout, &layout.nats_url());
        let single = include_str!("../../nats/nats-server.conf");
        for (i, (conf, node)) in configs.iter().zip(&cluster).enumerate() {
            let name = format!("node-{}", i + 1);
            let (route_port, routes) = node.routes.clone().unwrap();
            let expected = [
                format!("server_name: {name}\n"),
                format!("listen: 127.0.0.1:{}\n", node.addr.port),
                format!("http: 127.0.0.1:{}\n", node.monitor_port),
                format!("store_dir: \".data/nats-cluster/{name}\"\n"),
                format!("listen: 127.0.0.1:{route_port}\n"),
                "include ../accounts.conf\n".to_owned(),
                "name: msa-shop\n".to_owned(),
            ];
            for line in expected.iter().chain(&routes.iter().map(|r| format!("    {r}\n")).collect::<Vec<_>>()) {
                assert!(conf.contains(line.as_str()), "{name}.conf has no `{}`", line.trim());
            }
            assert_eq!(node.name, format!("nats-{name}"), "the process is named after the server");
            assert_eq!(node.store, Path::new("/run").join(format!(".data/nats-cluster/{name}")));
            let sync = |c: &str| c.lines().map(str::trim).find(|l| l.starts_with("sync_interval")).map(str::to_owned);
            assert_eq!(sync(conf), sync(single), "{name}.conf syncs as nats-server.conf does");
        }
    }

    #[test]
    fn service_table_is_consistent() {
        let mut names: Vec<_> = SERVICES.iter().map(|s| s.name).collect();
        let mut addrs: Vec<_> = SERVICES.iter().map(|s| s.port).collect();
        names.sort_unstable();
        names.dedup();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(names.len(), SERVICES.len(), "duplicate service name");
        assert_eq!(addrs.len(), SERVICES.len(), "duplicate HTTP address");
    }
}
