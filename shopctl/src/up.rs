//! `shopctl up`: NATS plus every service on this machine, until Ctrl-C.
//!
//! Each child runs in its own process group, so a Ctrl-C in the terminal reaches only shopctl,
//! which then stops the services first (they may still publish or ack while draining) and the
//! nats-server it started last. A child that dies meanwhile, nats-server included, is started
//! again with backoff while the others keep running ([`crate::supervise`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::env;
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
}

impl Layout {
    /// `up`'s: the checkout's `.data/`, the documented ports, output to the terminal.
    pub fn up(checkout: &Checkout) -> Self {
        Layout {
            data_root: checkout.data_dir(),
            nats_cwd: checkout.root().to_path_buf(),
            port_offset: 0,
            env: Vec::new(),
            logs: None,
            build_args: BUILD_ARGS.to_vec(),
            bin_dir: None,
        }
    }

    pub fn addr(&self, service: &Service) -> String {
        format!("127.0.0.1:{}", service.port + self.port_offset)
    }

    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", NATS_DEFAULT_PORT + self.port_offset)
    }

    /// The base URL of the service `name`.
    pub fn url(&self, name: &str) -> String {
        let service = SERVICES.iter().find(|s| s.name == name).expect("a known service");
        format!("http://{}", self.addr(service))
    }

    pub fn service_data_dir(&self, name: &str) -> PathBuf {
        self.data_root.join(name)
    }

    /// Where the nats-server we start writes its pid, so the next run can recognise one left
    /// behind.
    pub fn nats_pid_file(&self) -> PathBuf {
        self.nats_cwd.join(".data/nats/nats-server.pid")
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
const NATS_MONITOR_URL: &str = "http://127.0.0.1:8222";

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

const NATS_START_TIMEOUT: Duration = Duration::from_secs(15);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The build that `up` runs, and `./shop` runs before it: every binary of the workspace (shopctl
/// and the services) in one cargo invocation, so that they share one release dependency tree
/// (cargo unifies features per invocation; built separately, crates would be built twice).
pub const BUILD_ARGS: [&str; 4] = ["build", "--release", "--workspace", "--bins"];

pub fn run(checkout: &Checkout) -> Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(up(checkout))
}

/// Everything `up` has started, so that one place can stop it all whatever happened.
#[derive(Default)]
pub struct Stack {
    build: Option<Managed>,
    pub services: Vec<Managed>,
    /// How to start each of `services` again, in the same order.
    service_restarts: Vec<Restarts>,
    /// Only set if shopctl started nats-server itself (not if one was already running).
    pub nats: Option<Managed>,
    nats_restarts: Option<Restarts>,
}

impl Stack {
    /// Services first, while NATS is still there for them to drain into; NATS last.
    pub async fn shutdown(&mut self, signals: &mut Signals) {
        if let Some(build) = &mut self.build {
            build.stop(STOP_GRACE, signals).await;
        }
        stop_all(&mut self.services, STOP_GRACE, signals).await;
        if let Some(nats) = &mut self.nats {
            nats.stop(STOP_GRACE, signals).await;
        }
    }
}

async fn up(checkout: &Checkout) -> Result<ExitCode> {
    // First of all: once installed, SIGINT/SIGTERM no longer kill us outright, so we always get
    // to stop the children.
    let mut signals = Signals::install()?;
    let mut stack = Stack::default();

    let outcome = tokio::select! {
        result = start_and_watch(checkout, &mut stack) => result.map(|never| match never {}),
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
async fn start_and_watch(checkout: &Checkout, stack: &mut Stack) -> Result<Infallible> {
    let layout = Layout::up(checkout);
    let nats_url =
        env::var("NATS_URL").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| DEFAULT_NATS_URL.to_owned());
    let nats_started = launch(checkout, stack, &layout, &nats_url, false).await?;
    let services: Vec<&Service> = SERVICES.iter().collect();
    print_summary(checkout, &layout, &nats_url, nats_started, &services);

    // Polling is plenty for noticing a crash, and `try_wait` never reaps behind our back (see
    // `Managed::terminate`).
    loop {
        sleep(Duration::from_millis(500)).await;
        supervise(stack)?;
    }
}

/// Builds, starts NATS (unless one answers at `nats_url`; with `own_nats` that is an error) and
/// every service as `layout` says, and waits until all are ready. Returns whether it started
/// nats-server.
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

    let nats_addr = first_server_addr(nats_url)?;
    if own_nats && accepts_tcp(&nats_addr).await {
        bail!("something already answers at {nats_url}; this run needs a nats-server of its own");
    }
    let credentials = Credentials::load_or_create(&layout.data_root)?;
    let nats_started = start_nats_unless_running(checkout, stack, layout, &credentials, nats_url, &nats_addr).await?;

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
    if let (Some(nats), Some(restarts)) = (stack.nats.as_mut(), stack.nats_restarts.as_mut()) {
        restarts.watch(nats, now)?;
    }
    for (service, restarts) in stack.services.iter_mut().zip(&mut stack.service_restarts) {
        restarts.watch(service, now)?;
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

/// Returns whether shopctl started nats-server (false: one was already answering).
async fn start_nats_unless_running(
    checkout: &Checkout,
    stack: &mut Stack,
    layout: &Layout,
    credentials: &Credentials,
    nats_url: &str,
    addr: &ServerAddr,
) -> Result<bool> {
    stop_orphaned_nats(checkout, layout).await?;
    if accepts_tcp(addr).await {
        eprintln!("shopctl: using the NATS server already answering at {addr}");
        return Ok(false);
    }
    if !addr.is_local() {
        bail!(
            "nothing answers at NATS_URL={nats_url}, and {} is not this machine, so shopctl \
             cannot start a server there",
            addr.host
        );
    }

    let bin = {
        let checkout = checkout.clone();
        tokio::task::spawn_blocking(move || ensure_nats_server(&checkout)).await??
    };
    // nats-server writes its pid file there before it creates its store (on a fresh clone nothing
    // else has created the folder yet).
    let pid_file = layout.nats_pid_file();
    create_dir(pid_file.parent().expect("the pid file is inside .data/nats"))?;
    let command = nats_command(checkout, layout, credentials.server_env(), bin, pid_file, addr)?;
    let mut cmd = command();
    eprintln!("shopctl: starting {:?}", cmd.as_std());
    let nats = stack.nats.insert(Managed::spawn("nats-server", &mut cmd)?);
    stack.nats_restarts = Some(Restarts::new(command, Instant::now()));

    let deadline = Instant::now() + NATS_START_TIMEOUT;
    loop {
        if let Some(status) = nats.try_exit_status() {
            bail!("nats-server exited ({status}) before accepting connections; see its log above");
        }
        if accepts_tcp(addr).await {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            bail!("nats-server did not accept connections at {addr} within {}s", NATS_START_TIMEOUT.as_secs());
        }
        sleep(POLL_INTERVAL).await;
    }
}

/// How nats-server is started, the first time and after it died.
fn nats_command(
    checkout: &Checkout,
    layout: &Layout,
    env: Vec<(String, String)>,
    bin: PathBuf,
    pid_file: PathBuf,
    addr: &ServerAddr,
) -> Result<impl Fn() -> Command + Send + use<>> {
    let (cwd, conf) = (layout.nats_cwd.clone(), checkout.nats_conf());
    let (host, port) = (addr.host.clone(), addr.port.to_string());
    let monitor = (NATS_MONITOR_PORT + layout.port_offset).to_string();
    let logs = layout.clone();
    logs.output("nats-server")?;
    Ok(move || {
        let mut cmd = Command::new(&bin);
        // The config's `store_dir` is relative to the working directory, hence `current_dir`
        // (nats-server refuses a `--store_dir` flag when the config sets one too). The listen
        // address follows NATS_URL; flags override the config's `listen` and `http`.
        cmd.current_dir(&cwd)
            .arg("-c")
            .arg(&conf)
            .args(["-a", &host, "-p", &port, "-m", &monitor])
            .arg("--pid")
            .arg(&pid_file)
            // The passwords nats/accounts.conf reads: never on the command line.
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0);
        if let Ok((out, err)) = logs.output("nats-server") {
            cmd.stdout(out).stderr(err);
        }
        cmd
    })
}

/// Stops a nats-server that an earlier `shopctl up` started and could not stop (it was killed
/// with SIGKILL: services stop on their own then, via their stdin pipe, but nats-server cannot).
/// Recognised by the pid file it wrote and, against pid reuse, by its command line.
async fn stop_orphaned_nats(checkout: &Checkout, layout: &Layout) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(layout.nats_pid_file()) else { return Ok(()) };
    let Ok(pid) = text.trim().parse::<u32>() else { return Ok(()) };
    let conf = checkout.nats_conf();
    let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&*conf.to_string_lossy()))
        .unwrap_or(false);
    if !ours {
        return Ok(());
    }
    eprintln!("shopctl: stopping the nats-server (pid {pid}) an earlier shopctl left behind");
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().context("cannot run kill(1)")?;
    let deadline = Instant::now() + STOP_GRACE;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() >= deadline {
            bail!("the nats-server left behind (pid {pid}) did not stop within {}s", STOP_GRACE.as_secs());
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
    for child in stack.services.iter_mut().chain(stack.nats.as_mut()) {
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

fn print_summary(checkout: &Checkout, layout: &Layout, nats_url: &str, nats_started: bool, services: &[&Service]) {
    let nats_note = if nats_started {
        format!(
            "started by shopctl; monitoring {NATS_MONITOR_URL}; data {}",
            checkout.data_dir().join("nats").display()
        )
    } else {
        "already running, not managed by shopctl".to_owned()
    };
    println!();
    println!("msa-shop is up. Ctrl-C stops everything.");
    println!();
    println!("  {:<16} {:<28} notes", "component", "listens on");
    println!("  {:<16} {:<28} {nats_note}", "nats", nats_url);
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

/// The host and port of one NATS server.
#[derive(Debug, PartialEq, Eq)]
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
