//! `shopctl load`: the saga's throughput, latency and cost on this machine, measured through the
//! real REST entry, with figures anyone can reproduce.
//!
//! It runs a stack of its own (`up`'s machinery and the configuration `./shop up` ships, in
//! `.data/load/`, on ports shifted by `--port-offset`), signs up a seller and a few customers,
//! lists one product with ample stock, and then:
//!
//! 1. warms up (orders not counted) and measures the raw JetStream publish rate of this machine on
//!    a scratch nats-server: once with JetStream's default sync interval (the yardstick of the
//!    `ratio` line) and once with the project's own (`sync_interval` in `nats/nats-server.conf`),
//!    with messages of the events' mean size, pipelined as the relays publish;
//! 2. runs one phase per `--concurrency` value, each a closed loop of that many clients for
//!    `--duration-secs` (or, with `--rate`, one open loop on a fixed schedule, latency counted
//!    from each order's scheduled send). Every order is `POST /orders` with `Prefer: wait=10`, so
//!    its latency is the time to its saga's end; one answered before the end is polled until it;
//! 3. after each phase waits until the system is at rest (every consumer caught up, every outbox
//!    empty) and reads, per process, CPU time, bytes written to storage and memory from `/proc`;
//! 4. audits the whole system at the end, as `./shop audit` does.
//!
//! It prints a row per phase (orders/s, p50/p95/p99 to the saga's end, CPU µs and KB written per
//! order over all processes, events per order, `ratio`), a table per process, and the targets
//! beside them; docs/PERFORMANCE.md keeps the results. It exits non-zero if an order did not end
//! PAID or the audit found anything.

mod procfs;
mod raw;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use async_nats::jetstream;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::{Instant, sleep, sleep_until};

use crate::audit::{self, Endpoints};
use crate::chaos::{endpoints, expect, sign_up};
use crate::checkout::Checkout;
use crate::proc::Signals;
use crate::up::{self, Layout, Stack};
use procfs::Sample;

/// What `shopctl load` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Clients placing orders at once, one closed-loop phase per value (each client sends its
    /// next order when its last one's saga ended).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub concurrency: Vec<usize>,
    /// Instead of closed loops: one open-loop phase at this many orders per second, on a fixed
    /// schedule (latency counted from each order's scheduled send).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Seconds each phase places orders for.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Orders placed before the first phase, not counted.
    #[arg(long, default_value_t = 200)]
    pub warm_up: usize,
    /// Messages published for each raw JetStream measurement.
    #[arg(long, default_value_t = 50_000)]
    pub raw_messages: usize,
    /// Only measure the raw JetStream publish rate (no stack, no orders).
    #[arg(long)]
    pub raw_only: bool,
    /// The sync interval of the second raw measurement; default: nats/nats-server.conf's.
    #[arg(long)]
    pub sync_interval: Option<String>,
    /// Added to every port `./shop up` uses, so both can run at once.
    #[arg(long, default_value_t = 20_000)]
    pub port_offset: u16,
    /// Use the binaries in this folder (e.g. `target/debug`) instead of building release ones.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where the run keeps its state and logs (emptied first); default `.data/load`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The targets the figures are judged against (docs/PERFORMANCE.md).
mod target {
    pub const RATIO: f64 = 0.25;
    pub const CPU_US_PER_ORDER: f64 = 300.0;
    pub const KB_PER_ORDER: f64 = 16.0;
    pub const P50_MS_ONE_CLIENT: f64 = 4.0;
    pub const P99_MS_ONE_CLIENT: f64 = 10.0;
    pub const IDLE_MB: f64 = 20.0;
    pub const PEAK_MB: f64 = 50.0;
}

/// Customers at most: orders are spread over them round-robin (signing up costs an Argon2 hash).
const MAX_CUSTOMERS: usize = 16;
/// Orders in flight at most in an open loop.
const MAX_IN_FLIGHT: usize = 4096;
const PRICE: i64 = 1_000;

pub fn run(checkout: &Checkout, options: &Options) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(load(checkout, options))
}

async fn load(checkout: &Checkout, options: &Options) -> Result<ExitCode> {
    let root = options.data_dir.clone().unwrap_or_else(|| checkout.data_dir().join("load"));
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("cannot clear {}", root.display()))?;
    }
    let nats_bin = {
        let checkout = checkout.clone();
        tokio::task::spawn_blocking(move || crate::nats::ensure_nats_server(&checkout)).await??
    };
    let project_sync = match &options.sync_interval {
        Some(v) => Some(v.clone()),
        None => raw::configured_sync_interval(&checkout.nats_conf())?,
    };
    if options.raw_only {
        let raw = raw_rates(&nats_bin, &root, project_sync.as_deref(), options.raw_messages, 400).await?;
        raw.print();
        return Ok(ExitCode::SUCCESS);
    }

    let mut signals = Signals::install()?;
    let layout = Layout {
        data_root: root.clone(),
        nats_cwd: root.clone(),
        port_offset: options.port_offset,
        env: vec![("SEED_DEMO".into(), "false".into())],
        logs: Some(root.join("logs")),
        build_args: up::BUILD_ARGS.to_vec(),
        bin_dir: options.bin_dir.clone(),
    };
    let mut stack = Stack::default();
    let outcome = tokio::select! {
        result = drive(checkout, &mut stack, &layout, options, &nats_bin, project_sync) => result,
        sig = signals.recv() => Err(anyhow!("{sig} received")),
    };
    eprintln!("load: stopping the stack");
    stack.shutdown(&mut signals).await;
    let report = outcome?;
    report.print();
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report.to_json())?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The two raw publish rates.
#[derive(Debug, Clone)]
struct Raw {
    size: usize,
    default_sync: f64,
    project_sync: Option<String>,
    project: f64,
}

impl Raw {
    fn print(&self) {
        println!(
            "raw JetStream publish rate ({} B messages, {} in flight): {:.0}/s with the default sync interval; \
             {:.0}/s with the project's ({})",
            self.size,
            raw::IN_FLIGHT,
            self.default_sync,
            self.project,
            self.project_sync.as_deref().map_or("default", |s| s)
        );
    }
}

async fn raw_rates(
    nats_bin: &std::path::Path,
    root: &std::path::Path,
    project_sync: Option<&str>,
    messages: usize,
    size: usize,
) -> Result<Raw> {
    eprintln!("load: measuring the raw JetStream publish rate ({messages} messages of {size} B)");
    let dir = root.join("raw");
    let default_sync = raw::publish_rate(nats_bin, &dir, None, messages, size).await?;
    let project = match project_sync {
        None => default_sync,
        Some(v) => raw::publish_rate(nats_bin, &dir, Some(v), messages, size).await?,
    };
    Ok(Raw { size, default_sync, project_sync: project_sync.map(str::to_owned), project })
}

/// Who places the orders, and what they order.
struct Shop {
    http: reqwest::Client,
    endpoints: Endpoints,
    customers: Vec<String>,
    product: String,
}

/// One order's end, as the client saw it.
#[derive(Debug, Clone)]
struct Placed {
    latency: Duration,
    status: String,
}

/// What one phase measured.
#[derive(Debug, Clone)]
struct Phase {
    label: String,
    concurrency: Option<usize>,
    orders: Vec<Placed>,
    /// From the first send to the last saga's end.
    elapsed: Duration,
    /// Open loop: orders sent later than scheduled by more than 10 ms (the client fell behind).
    late: usize,
    events: u64,
    /// Per process: (CPU µs, bytes written) during the phase, until the system was at rest.
    usage: BTreeMap<String, (u64, u64)>,
    generator_cpu_us: u64,
}

impl Phase {
    fn count(&self) -> usize {
        self.orders.len()
    }

    fn rate(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let mut ms: Vec<f64> = self.orders.iter().map(|o| o.latency.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        percentile(&ms, p)
    }

    fn per_order(&self, value: u64) -> f64 {
        value as f64 / self.count().max(1) as f64
    }

    fn cpu_us(&self) -> f64 {
        self.per_order(self.usage.values().map(|(cpu, _)| cpu).sum())
    }

    fn kb_written(&self) -> f64 {
        self.per_order(self.usage.values().map(|(_, w)| w).sum()) / 1024.0
    }

    fn events_per_order(&self) -> f64 {
        self.per_order(self.events)
    }

    fn not_paid(&self) -> usize {
        self.orders.iter().filter(|o| o.status != "PAID").count()
    }
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Everything a run measured.
struct Report {
    raw: Raw,
    phases: Vec<Phase>,
    /// Per process: resident memory once started and idle, and the most it ever had.
    memory: BTreeMap<String, (u64, u64)>,
    audit: audit::Report,
    nats_version: String,
}

async fn drive(
    checkout: &Checkout,
    stack: &mut Stack,
    layout: &Layout,
    options: &Options,
    nats_bin: &std::path::Path,
    project_sync: Option<String>,
) -> Result<Report> {
    up::launch(checkout, stack, layout, &layout.nats_url(), true).await?;
    let shop = Arc::new(open_shop(layout, options).await?);
    let admin =
        audit::login(&shop.http, &shop.endpoints.user, audit::DEV_ADMIN_EMAIL, audit::DEV_ADMIN_PASSWORD).await?;
    let operator = crate::credentials::Credentials::operator();
    let js = jetstream::new(
        common::bus::connect(&layout.nats_url(), "shopctl-load", &operator)
            .await
            .context("connecting to the broker")?,
    );
    let pids = pids(stack);
    let idle: BTreeMap<String, Sample> = sample_all(&pids);

    eprintln!("load: warming up with {} orders", options.warm_up);
    let per_client = options.warm_up.div_ceil(8).max(1);
    closed_loop(&shop, 8, None, Some(per_client)).await?;
    at_rest(&shop, &admin, &js).await?;
    let (messages, bytes) = stream_state(&js).await?;
    let size = bytes.checked_div(messages).map_or(400, |b| b as usize);
    let raw = raw_rates(nats_bin, &layout.data_root, project_sync.as_deref(), options.raw_messages, size).await?;

    let mut phases = Vec::new();
    let duration = Duration::from_secs(options.duration_secs);
    let plan: Vec<(String, Option<usize>)> = match options.rate {
        Some(rate) => vec![(format!("rate {rate}/s"), None)],
        None => options
            .concurrency
            .iter()
            .map(|c| (format!("{c} client{}", if *c == 1 { "" } else { "s" }), Some(*c)))
            .collect(),
    };
    for (label, concurrency) in plan {
        eprintln!("load: phase {label} for {} s", options.duration_secs);
        let before = sample_all(&pids);
        let generator_before = Sample::own().unwrap_or_default();
        let seq_before = stream_state(&js).await?.0;
        let started = Instant::now();
        let (orders, late) = match concurrency {
            Some(c) => (closed_loop(&shop, c, Some(duration), None).await?, 0),
            None => open_loop(&shop, options.rate.unwrap_or(1), duration).await?,
        };
        let elapsed = started.elapsed();
        at_rest(&shop, &admin, &js).await?;
        let after = sample_all(&pids);
        let generator_after = Sample::own().unwrap_or_default();
        let events = stream_state(&js).await?.0.saturating_sub(seq_before);
        let usage = after
            .iter()
            .map(|(name, a)| {
                let b = before.get(name).copied().unwrap_or_default();
                (name.clone(), (a.cpu_us.saturating_sub(b.cpu_us), a.written.saturating_sub(b.written)))
            })
            .collect();
        phases.push(Phase {
            label,
            concurrency,
            orders,
            elapsed,
            late,
            events,
            usage,
            generator_cpu_us: generator_after.cpu_us.saturating_sub(generator_before.cpu_us),
        });
    }

    let end = sample_all(&pids);
    let memory =
        end.iter().map(|(name, s)| (name.clone(), (idle.get(name).map_or(0, |i| i.rss), s.peak_rss))).collect();
    eprintln!("load: auditing");
    let snapshot = audit::fetch(&shop.endpoints, &admin).await?;
    let audit = audit::check(&snapshot);
    let nats_version = std::process::Command::new(nats_bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Ok(Report { raw, phases, memory, audit, nats_version })
}

/// A seller with one product of ample stock, and the customers.
async fn open_shop(layout: &Layout, options: &Options) -> Result<Shop> {
    let endpoints = endpoints(layout);
    let max_clients = options.concurrency.iter().copied().max().unwrap_or(1).max(8);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(max_clients.min(MAX_IN_FLIGHT))
        .build()?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let seller = sign_up(&http, &endpoints, &format!("seller-{run}@load.local"), "SELLER").await?;
    let body = json!({"name": "Load", "price": PRICE, "stock": 1_000_000, "category": "load"});
    let res = http.post(format!("{}/products", endpoints.product)).bearer_auth(&seller).json(&body).send().await?;
    let product = expect(res, 201).await?["id"].as_str().context("product id")?.to_owned();
    let mut customers = Vec::new();
    for i in 0..max_clients.min(MAX_CUSTOMERS) {
        customers.push(sign_up(&http, &endpoints, &format!("customer-{i}-{run}@load.local"), "CUSTOMER").await?);
    }
    Ok(Shop { http, endpoints, customers, product })
}

/// `clients` clients, each placing an order as soon as its last one ended, until `duration` is
/// up or each has placed `each` orders.
async fn closed_loop(
    shop: &Arc<Shop>,
    clients: usize,
    duration: Option<Duration>,
    each: Option<usize>,
) -> Result<Vec<Placed>> {
    let until = duration.map(|d| Instant::now() + d);
    let placed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients.max(1) {
        let (shop, placed) = (shop.clone(), placed.clone());
        tasks.spawn(async move {
            let customer = &shop.customers[client % shop.customers.len()];
            let mut n = 0;
            while until.is_none_or(|u| Instant::now() < u) && each.is_none_or(|e| n < e) {
                let sent = Instant::now();
                let status = place(&shop, customer).await?;
                placed.lock().await.push(Placed { latency: sent.elapsed(), status });
                n += 1;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(std::mem::take(&mut *placed.lock().await))
}

/// Orders at `rate` per second for `duration`, each sent at its scheduled time whatever the
/// others are doing; latency is counted from the schedule. Returns the orders and how many were
/// sent more than 10 ms late.
async fn open_loop(shop: &Arc<Shop>, rate: u32, duration: Duration) -> Result<(Vec<Placed>, usize)> {
    let total = (f64::from(rate) * duration.as_secs_f64()) as usize;
    let every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let mut late = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let scheduled = started + every * i as u32;
        sleep_until(scheduled).await;
        let permit = slots.clone().acquire_owned().await?;
        if scheduled.elapsed() > Duration::from_millis(10) {
            late += 1;
        }
        let shop = shop.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let customer = &shop.customers[i % shop.customers.len()];
            let status = place(&shop, customer).await?;
            Ok::<_, anyhow::Error>(Placed { latency: scheduled.elapsed(), status })
        });
    }
    let mut placed = Vec::with_capacity(total);
    while let Some(done) = tasks.join_next().await {
        placed.push(done??);
    }
    Ok((placed, late))
}

/// Places one order and returns its status once its saga ended.
async fn place(shop: &Shop, customer: &str) -> Result<String> {
    let body = json!({"productId": shop.product, "quantity": 1, "paymentMethod": "CARD"});
    let res = shop
        .http
        .post(format!("{}/orders", shop.endpoints.order))
        .bearer_auth(customer)
        .header("Prefer", "wait=10")
        .json(&body)
        .send()
        .await?;
    let code = res.status().as_u16();
    let order: Value = res.json().await.unwrap_or(Value::Null);
    match code {
        201 => return Ok(order["status"].as_str().unwrap_or("?").to_owned()),
        202 => {}
        // A failure the saga ended with (declined, out of stock): a problem, not an order.
        400..=499 => return Ok(order["code"].as_str().unwrap_or("FAILED").to_owned()),
        _ => bail!("POST /orders answered {code}: {order}"),
    }
    let id = order["id"].as_str().context("202 without an order id")?.to_owned();
    loop {
        let res = shop.http.get(format!("{}/orders/{id}", shop.endpoints.order)).bearer_auth(customer).send().await?;
        let order: Value = expect(res, 200).await?;
        let status = order["status"].as_str().unwrap_or("?");
        if !matches!(status, "PENDING" | "STOCK_RESERVED") {
            return Ok(status.to_owned());
        }
        sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until every durable consumer has caught up and every outbox is empty.
async fn at_rest(shop: &Shop, admin: &str, js: &jetstream::Context) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if consumers_caught_up(js).await.unwrap_or(false) && outboxes_empty(shop, admin).await.unwrap_or(false) {
            return Ok(());
        }
        sleep(Duration::from_millis(50)).await;
    }
    bail!("the system did not come to rest within 120 s")
}

async fn consumers_caught_up(js: &jetstream::Context) -> Result<bool> {
    use futures_util::StreamExt;
    let stream = js.get_stream(common::bus::STREAM).await?;
    let mut names = stream.consumer_names();
    while let Some(name) = names.next().await {
        let info = stream.consumer_info(name?).await?;
        if info.num_pending > 0 || info.num_ack_pending > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn outboxes_empty(shop: &Shop, admin: &str) -> Result<bool> {
    let e = &shop.endpoints;
    for base in [&e.user, &e.product, &e.order, &e.payment, &e.settlement] {
        let res = shop.http.get(format!("{base}/admin/outbox")).bearer_auth(admin).send().await?;
        if expect(res, 200).await?["unpublished"].as_i64() != Some(0) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The stream's message count and bytes (no message is ever deleted during a run).
async fn stream_state(js: &jetstream::Context) -> Result<(u64, u64)> {
    let state = js.get_stream(common::bus::STREAM).await?.get_info().await?.state;
    Ok((state.last_sequence, state.bytes))
}

fn pids(stack: &Stack) -> Vec<(String, u32)> {
    let mut pids: Vec<(String, u32)> = stack.services.iter().filter_map(|s| Some((s.name.clone(), s.pid()?))).collect();
    if let Some(pid) = stack.nats.as_ref().and_then(|n| n.pid()) {
        pids.push(("nats-server".into(), pid));
    }
    pids
}

fn sample_all(pids: &[(String, u32)]) -> BTreeMap<String, Sample> {
    pids.iter().filter_map(|(name, pid)| Some((name.clone(), Sample::of(*pid)?))).collect()
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

impl Report {
    fn passed(&self) -> bool {
        self.audit.is_clean() && self.phases.iter().all(|p| p.not_paid() == 0 && p.count() > 0)
    }

    fn ratio(&self, phase: &Phase) -> f64 {
        phase.rate() * phase.events_per_order() / self.raw.default_sync.max(1.0)
    }

    fn print(&self) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let date = time::OffsetDateTime::now_utc().date();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!();
        println!("load: `shopctl {}` on {date}, {cpus} CPUs, {}", args.join(" "), self.nats_version);
        self.raw.print();
        println!();
        println!(
            "{:<12} {:>7} {:>9} {:>8} {:>8} {:>8} {:>10} {:>9} {:>8} {:>7}",
            "phase", "orders", "orders/s", "p50 ms", "p95 ms", "p99 ms", "CPU µs/o", "KB/order", "events/o", "ratio"
        );
        for p in &self.phases {
            println!(
                "{:<12} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>10.0} {:>9.1} {:>8.2} {:>7.3}",
                p.label,
                p.count(),
                p.rate(),
                p.percentile_ms(50.0),
                p.percentile_ms(95.0),
                p.percentile_ms(99.0),
                p.cpu_us(),
                p.kb_written(),
                p.events_per_order(),
                self.ratio(p)
            );
        }
        for p in &self.phases {
            if p.not_paid() > 0 {
                println!("  {}: {} orders did not end PAID", p.label, p.not_paid());
            }
            if p.late > 0 {
                println!("  {}: {} orders sent more than 10 ms after their schedule", p.label, p.late);
            }
        }
        println!();
        let names: Vec<&String> = self.memory.keys().collect();
        print!("{:<16}", "per process");
        for p in &self.phases {
            print!(" {:>22}", format!("{}: CPU µs, KB /order", p.label.split(' ').next().unwrap_or("")));
        }
        println!(" {:>8} {:>8}", "idle MB", "peak MB");
        for name in names {
            print!("{name:<16}");
            for p in &self.phases {
                let (cpu, written) = p.usage.get(name).copied().unwrap_or_default();
                print!(" {:>22}", format!("{:.0} {:.1}", p.per_order(cpu), p.per_order(written) / 1024.0));
            }
            let (idle, peak) = self.memory[name];
            println!(" {:>8.1} {:>8.1}", mb(idle), mb(peak));
        }
        print!("{:<16}", "(load generator)");
        for p in &self.phases {
            print!(" {:>22}", format!("{:.0} -", p.per_order(p.generator_cpu_us)));
        }
        println!();

        println!();
        println!("targets (2 cores, everything on this machine):");
        if let Some(best) = self.phases.iter().max_by(|a, b| a.rate().total_cmp(&b.rate())) {
            let ratio = self.ratio(best);
            println!("  ratio ≥ {}: {ratio:.3} at {} ({})", target::RATIO, best.label, mark(ratio >= target::RATIO));
            let cpu = best.cpu_us();
            println!(
                "  CPU ≤ {} µs/order: {cpu:.0} at {} ({})",
                target::CPU_US_PER_ORDER,
                best.label,
                mark(cpu <= target::CPU_US_PER_ORDER)
            );
            let kb = best.kb_written();
            println!(
                "  written ≤ {} KB/order: {kb:.1} at {} ({})",
                target::KB_PER_ORDER,
                best.label,
                mark(kb <= target::KB_PER_ORDER)
            );
        }
        if let Some(one) = self.phases.iter().find(|p| p.concurrency == Some(1)) {
            let (p50, p99) = (one.percentile_ms(50.0), one.percentile_ms(99.0));
            println!(
                "  one client p50 ≤ {} ms, p99 ≤ {} ms: {p50:.2} ms, {p99:.2} ms ({})",
                target::P50_MS_ONE_CLIENT,
                target::P99_MS_ONE_CLIENT,
                mark(p50 <= target::P50_MS_ONE_CLIENT && p99 <= target::P99_MS_ONE_CLIENT)
            );
        }
        let services: Vec<(&String, &(u64, u64))> =
            self.memory.iter().filter(|(n, _)| n.as_str() != "nats-server").collect();
        let idle = services.iter().map(|(_, (i, _))| *i).max().unwrap_or(0);
        let peak = services.iter().map(|(_, (_, p))| *p).max().unwrap_or(0);
        println!(
            "  each service ≤ {} MB idle, ≤ {} MB at peak: largest {:.1} MB idle, {:.1} MB peak ({})",
            target::IDLE_MB,
            target::PEAK_MB,
            mb(idle),
            mb(peak),
            mark(mb(idle) <= target::IDLE_MB && mb(peak) <= target::PEAK_MB)
        );
        println!();
        audit::print(&self.audit);
        println!("load: {}", if self.passed() { "PASSED (every order PAID, audit clean)" } else { "FAILED" });
    }

    fn to_json(&self) -> Value {
        json!({
            "raw": {"messageBytes": self.raw.size, "defaultSync": self.raw.default_sync,
                    "projectSync": self.raw.project_sync, "project": self.raw.project},
            "phases": self.phases.iter().map(|p| json!({
                "phase": p.label, "orders": p.count(), "ordersPerSec": p.rate(),
                "p50Ms": p.percentile_ms(50.0), "p95Ms": p.percentile_ms(95.0), "p99Ms": p.percentile_ms(99.0),
                "cpuUsPerOrder": p.cpu_us(), "kbWrittenPerOrder": p.kb_written(),
                "eventsPerOrder": p.events_per_order(), "ratio": self.ratio(p),
                "perProcess": p.usage.iter().map(|(n, (cpu, w))| (n.clone(), json!({
                    "cpuUsPerOrder": p.per_order(*cpu), "kbWrittenPerOrder": p.per_order(*w) / 1024.0,
                }))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "memory": self.memory.iter().map(|(n, (idle, peak))| (n.clone(), json!({"idleMb": mb(*idle), "peakMb": mb(*peak)})))
                .collect::<serde_json::Map<_, _>>(),
            "auditClean": self.audit.is_clean(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
