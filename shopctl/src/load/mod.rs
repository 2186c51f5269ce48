//! `shopctl load`: the saga's throughput, latency and cost on this machine, measured through the
//! real REST entry, with figures anyone can reproduce.
//!
//! It runs a stack of its own (`up`'s machinery and the configuration `./shop up` ships, in
//! `.data/load/`, on ports shifted by `--port-offset`; with `--cluster`, NATS as the 3-node
//! cluster of `./shop up --cluster`), signs up a seller and up to 16 customers, lists one product
//! with ample stock, and then:
//!
//! 1. warms up (`--warm-up` orders, not counted), and measures the raw JetStream publish rate of
//!    this machine on a scratch nats-server: once with JetStream's default sync interval (the
//!    yardstick of the `ratio` line) and once with the project's own (`sync_interval` in
//!    `nats/nats-server.conf`), pipelined as the relays publish, with messages of the mean size
//!    of the events the warm-up published (so it runs after the warm-up, the stack at rest);
//! 2. runs one phase per `--concurrency` value, each a closed loop of that many clients for
//!    `--duration-secs` (or, with `--rate`, one open loop on a fixed schedule, latency counted
//!    from each order's scheduled send). Every order is `POST /orders` with `Prefer: wait=10`, so
//!    its latency is the time to its saga's end; one answered before the end is followed with
//!    `GET /orders/{id}` and `Prefer: wait=10` until it;
//! 3. after each phase waits until the system is at rest (every consumer caught up, every outbox
//!    empty) and reads, per process, CPU time and bytes written to storage from `/proc`; memory
//!    once idle (before the first phase) and at its peak (`VmHWM`, at the end);
//!    With `--console N`, one more phase at the highest concurrency runs with N saga console
//!    streams open (`GET /console/api/stream`, as N open pages), so the cost of watching shows as
//!    a ratio to the same load without them, in the same run;
//! 4. audits the whole system, as `./shop audit` does;
//! 5. measures how soon each service is ready after its start ([`ready`]).
//!
//! It prints a row per phase (orders/s, p50/p95/p99 to the saga's end, CPU µs and KB written per
//! order over all processes, events per order, `ratio`), tables per process, and the targets
//! beside them ([`report`]); docs/PERFORMANCE.md keeps the results. It exits non-zero if an order
//! did not end PAID or the audit found anything.

mod procfs;
mod raw;
mod ready;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio::time::{Instant, sleep, sleep_until};

use crate::audit::{self, Endpoints};
use crate::checkout::Checkout;
use crate::own_stack::{self, endpoints, expect, sign_up};
use crate::up::{self, Layout, Stack};
use procfs::Sample;
use raw::Raw;
use report::{Phase, Placed, Report};

/// What `shopctl load` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Clients placing orders at once, one closed-loop phase per value (each client sends its
    /// next order when its last one's saga ended).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub concurrency: Vec<usize>,
    /// Instead of closed loops: one open-loop phase at this many orders per second, on a fixed
    /// schedule (latency counted from each order's scheduled send).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Seconds each phase places orders for.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// At most this many orders per phase (the phase ends early when they are placed).
    #[arg(long)]
    pub orders: Option<usize>,
    /// Orders placed before the first phase, not counted.
    #[arg(long, default_value_t = 200)]
    pub warm_up: usize,
    /// Messages published for each raw JetStream measurement.
    #[arg(long, default_value_t = 50_000)]
    pub raw_messages: usize,
    /// Only measure the raw JetStream publish rate (no stack, no orders), with 400 B messages.
    #[arg(long)]
    pub raw_only: bool,
    /// The sync interval of the second raw measurement; default: nats/nats-server.conf's.
    #[arg(long)]
    pub sync_interval: Option<String>,
    /// Saga console pages (server-sent event streams) kept open during one more phase at the
    /// highest concurrency: the saga's throughput while it is watched, beside the same phase
    /// without. 0: no such phase.
    #[arg(long, default_value_t = 0)]
    pub console: usize,
    /// Added to every port `./shop up` uses, so both can run at once.
    #[arg(long, default_value_t = 20_000)]
    pub port_offset: u16,
    /// Run the stack's NATS as the 3-node cluster of `./shop up --cluster` (stream and key
    /// bucket in 3 copies), on the shifted ports; the raw measurements stay on one server.
    #[arg(long)]
    pub cluster: bool,
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

/// Customers at most: orders are spread over them round-robin (signing up costs an Argon2 hash).
const MAX_CUSTOMERS: usize = 16;
/// Orders in flight at most in an open loop.
const MAX_IN_FLIGHT: usize = 4096;
/// Well under the gateway's limit (1,000,000 won).
const PRICE: i64 = 1_000;
/// The most svc-product takes at once: hours of orders at the rates measured so far.
const STOCK: i64 = 1_000_000;
/// Message size of `--raw-only`, about an event's.
const RAW_ONLY_SIZE: usize = 400;
/// Events read back from the stream to find their mean size.
const SIZE_SAMPLE: usize = 200;

pub fn run(checkout: &Checkout, options: &Options) -> Result<ExitCode> {
    own_stack::block_on(load(checkout, options))?
}

async fn load(checkout: &Checkout, options: &Options) -> Result<ExitCode> {
    let root = options.data_dir.clone().unwrap_or_else(|| checkout.data_dir().join("load"));
    let env = vec![("SEED_DEMO".into(), "false".into())];
    let layout = own_stack::layout(root, options.port_offset, env, options.bin_dir.clone(), options.cluster)?;
    let nats_bin = {
        let checkout = checkout.clone();
        tokio::task::spawn_blocking(move || crate::nats::ensure_nats_server(&checkout)).await??
    };
    let project_sync = match &options.sync_interval {
        Some(v) => Some(v.clone()),
        None => raw::configured_sync_interval(&checkout.nats_conf())?,
    };
    if options.raw_only {
        let raw = Raw::measure(
            &nats_bin,
            &layout.data_root.join("raw"),
            project_sync.as_deref(),
            options.raw_messages,
            RAW_ONLY_SIZE,
        )
        .await?;
        raw.print();
        return Ok(ExitCode::SUCCESS);
    }
    let drive = async |stack: &mut Stack| drive(checkout, stack, &layout, options, &nats_bin, project_sync).await;
    let report = own_stack::with_stack("load", drive).await?;
    report.print();
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report.to_json())?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Who places the orders, and what they order.
struct Shop {
    http: reqwest::Client,
    endpoints: Endpoints,
    customers: Vec<String>,
    product: String,
}

async fn drive(
    checkout: &Checkout,
    stack: &mut Stack,
    layout: &Layout,
    options: &Options,
    nats_bin: &Path,
    project_sync: Option<String>,
) -> Result<Report> {
    up::launch(checkout, stack, layout, &layout.nats_url(), true).await?;
    let (shop, admin) = open_shop(layout, options).await?;
    let shop = Arc::new(shop);
    let operator = crate::credentials::Credentials::operator();
    let js = jetstream::new(
        common::bus::connect(&layout.nats_url(), "shopctl-load", &operator)
            .await
            .context("connecting to the broker")?,
    );
    let pids = pids(stack);
    let idle = sample_all(&pids);

    eprintln!("load: warming up with {} orders", options.warm_up);
    closed_loop(&shop, 8, None, Some(options.warm_up.max(1))).await?;
    at_rest(&shop, &admin, &js).await?;
    let size = mean_event_size(&js).await?;
    let raw =
        Raw::measure(nats_bin, &layout.data_root.join("raw"), project_sync.as_deref(), options.raw_messages, size)
            .await?;

    let mut phases = Vec::new();
    let duration = Duration::from_secs(options.duration_secs);
    // (label, clients or None for the open loop, console pages open)
    let mut plan: Vec<(String, Option<usize>, usize)> = match options.rate {
        Some(rate) => vec![(format!("rate {rate}/s"), None, 0)],
        None => options
            .concurrency
            .iter()
            .map(|c| (format!("{c} client{}", if *c == 1 { "" } else { "s" }), Some(*c), 0))
            .collect(),
    };
    if options.console > 0
        && let Some((label, concurrency, _)) = plan.iter().max_by_key(|(_, c, _)| c.unwrap_or(usize::MAX)).cloned()
    {
        // Short, to fit the tables' columns: `64+4 pages`.
        let base = concurrency.map_or_else(|| label.clone(), |c| c.to_string());
        plan.push((format!("{base}+{} pages", options.console), concurrency, options.console));
    }
    for (label, concurrency, consoles) in plan {
        eprintln!("load: phase {label} for {} s", options.duration_secs);
        let watching = Watchers::open(&shop.endpoints.order, &admin, consoles).await?;
        let before = sample_all(&pids);
        let generator_before = Sample::own().unwrap_or_default();
        let seq_before = stream_sequence(&js).await?;
        let started = Instant::now();
        let (orders, late) = match (concurrency, options.rate) {
            (Some(c), _) => (closed_loop(&shop, c, Some(duration), options.orders).await?, 0),
            (None, rate) => open_loop(&shop, rate.unwrap_or(1), duration, options.orders).await?,
        };
        let elapsed = started.elapsed();
        let console_updates = watching.close();
        at_rest(&shop, &admin, &js).await?;
        let after = sample_all(&pids);
        let generator_after = Sample::own().unwrap_or_default();
        let events = stream_sequence(&js).await?.saturating_sub(seq_before);
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
            consoles,
            console_updates,
        });
    }

    let end = sample_all(&pids);
    let memory =
        end.iter().map(|(name, s)| (name.clone(), (idle.get(name).map_or(0, |i| i.rss), s.peak_rss))).collect();
    eprintln!("load: auditing");
    let snapshot = audit::fetch(&shop.endpoints, &admin).await?;
    let audit = audit::check(&snapshot);

    eprintln!("load: measuring how soon each service is ready after its start");
    let binaries: Vec<(String, PathBuf)> = pids
        .iter()
        .filter(|(name, _)| !name.starts_with("nats-"))
        .filter_map(|(name, pid)| Some((name.clone(), std::fs::read_link(format!("/proc/{pid}/exe")).ok()?)))
        .collect();
    let logs = layout.logs.clone().unwrap_or_else(|| layout.data_root.clone());
    let ready = ready::measure(nats_bin, &layout.data_root.join("ready"), &logs, &binaries).await?;

    let nats_version = std::process::Command::new(nats_bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Ok(Report { raw, phases, memory, ready, audit, nats_version })
}

/// Saga console pages open during a phase: each an admin's `GET /console/api/stream`, read as a
/// browser would, counting the overviews it is sent (the proof that it was live).
struct Watchers {
    tasks: tokio::task::JoinSet<()>,
    updates: Arc<AtomicU64>,
}

impl Watchers {
    /// Opens `pages` streams and waits for each to answer; none for 0.
    async fn open(order_url: &str, admin: &str, pages: usize) -> Result<Watchers> {
        let updates = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        // No overall timeout: a stream lasts the whole phase.
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        for _ in 0..pages {
            let res = http.get(format!("{order_url}/console/api/stream")).bearer_auth(admin).send().await?;
            if !res.status().is_success() {
                bail!("the console stream answered {}", res.status());
            }
            let updates = updates.clone();
            tasks.spawn(async move {
                let mut res = res;
                while let Ok(Some(chunk)) = res.chunk().await {
                    let n = chunk.windows(b"event: overview".len()).filter(|w| w == b"event: overview").count();
                    updates.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
        Ok(Watchers { tasks, updates })
    }

    /// Closes the streams; returns how many overviews they received.
    fn close(mut self) -> u64 {
        self.tasks.abort_all();
        self.updates.load(Ordering::Relaxed)
    }
}

/// A seller with one product of ample stock, and the customers; and the admin's token.
async fn open_shop(layout: &Layout, options: &Options) -> Result<(Shop, String)> {
    let endpoints = endpoints(layout);
    let max_clients = options.concurrency.iter().copied().max().unwrap_or(1).max(8);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(max_clients.min(MAX_IN_FLIGHT))
        .build()?;
    let admin = audit::login(&http, &endpoints.user, audit::DEV_ADMIN_EMAIL, audit::DEV_ADMIN_PASSWORD).await?;
    own_stack::until_tokens_accepted(&http, &endpoints, &admin).await?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let seller = sign_up(&http, &endpoints, &format!("seller-{run}@load.local"), "SELLER").await?;
    let body = json!({"name": "Load", "price": PRICE, "stock": STOCK, "category": "load"});
    let res = http.post(format!("{}/products", endpoints.product)).bearer_auth(&seller).json(&body).send().await?;
    let product = expect(res, 201).await?["id"].as_str().context("product id")?.to_owned();
    let mut customers = Vec::new();
    for i in 0..max_clients.min(MAX_CUSTOMERS) {
        customers.push(sign_up(&http, &endpoints, &format!("customer-{i}-{run}@load.local"), "CUSTOMER").await?);
    }
    Ok((Shop { http, endpoints, customers, product }, admin))
}

/// `clients` clients, each placing an order as soon as its last one ended, until `duration` is
/// up or `cap` orders were placed in all.
async fn closed_loop(
    shop: &Arc<Shop>,
    clients: usize,
    duration: Option<Duration>,
    cap: Option<usize>,
) -> Result<Vec<Placed>> {
    let until = duration.map(|d| Instant::now() + d);
    let placed = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients.max(1) {
        let (shop, placed, sent) = (shop.clone(), placed.clone(), sent.clone());
        tasks.spawn(async move {
            let customer = &shop.customers[client % shop.customers.len()];
            while until.is_none_or(|u| Instant::now() < u)
                && cap.is_none_or(|cap| sent.fetch_add(1, Ordering::Relaxed) < cap)
            {
                let start = Instant::now();
                let status = place(&shop, customer).await?;
                placed.lock().await.push(Placed { latency: start.elapsed(), status });
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(std::mem::take(&mut *placed.lock().await))
}

/// Orders at `rate` per second for `duration` (`cap` at most), each sent at its scheduled time
/// whatever the others are doing; latency is counted from the schedule. Returns the orders and
/// how many were sent more than 10 ms late (too many in flight, or the client fell behind).
async fn open_loop(
    shop: &Arc<Shop>,
    rate: u32,
    duration: Duration,
    cap: Option<usize>,
) -> Result<(Vec<Placed>, usize)> {
    let scheduled = (f64::from(rate) * duration.as_secs_f64()) as usize;
    let total = cap.map_or(scheduled, |cap| cap.min(scheduled));
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
    let mut order: Value = res.json().await.unwrap_or(Value::Null);
    match code {
        201 => return Ok(order["status"].as_str().unwrap_or("?").to_owned()),
        202 => {}
        // A saga that ended unpaid (declined, out of stock, expired) is a problem naming its order;
        // any other problem (a refused token, say) is no end of a saga.
        400..=499 if order["orderId"].is_string() => return Ok(order["code"].as_str().unwrap_or("FAILED").to_owned()),
        _ => bail!("POST /orders answered {code}: {order}"),
    }
    // The wait ran out before the saga ended: follow the order until it has.
    let id = order["id"].as_str().context("202 without an order id")?.to_owned();
    loop {
        match order["status"].as_str().unwrap_or("?") {
            "PENDING" | "STOCK_RESERVED" => {}
            status => return Ok(status.to_owned()),
        }
        let url = format!("{}/orders/{id}", shop.endpoints.order);
        let res = shop.http.get(url).bearer_auth(customer).header("Prefer", "wait=10").send().await?;
        order = expect(res, 200).await?;
    }
}

/// Waits until every durable consumer has caught up and every outbox is empty.
async fn at_rest(shop: &Shop, admin: &str, js: &jetstream::Context) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if own_stack::consumers_caught_up(js).await.unwrap_or(false)
            && outboxes_empty(shop, admin).await.unwrap_or(false)
        {
            return Ok(());
        }
        sleep(Duration::from_millis(50)).await;
    }
    bail!("the system did not come to rest within 120 s")
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

/// The stream's last sequence number (no message is deleted during a run).
async fn stream_sequence(js: &jetstream::Context) -> Result<u64> {
    Ok(js.get_stream(common::bus::STREAM).await?.get_info().await?.state.last_sequence)
}

/// The mean payload size of the last events in the stream (those of the warm-up).
async fn mean_event_size(js: &jetstream::Context) -> Result<usize> {
    let stream = js.get_stream(common::bus::STREAM).await?;
    let last = stream_sequence(js).await?;
    let (mut bytes, mut n) = (0, 0);
    for seq in (1..=last).rev().take(SIZE_SAMPLE) {
        let message = stream.get_raw_message(seq).await.with_context(|| format!("reading stream message {seq}"))?;
        bytes += message.payload.len();
        n += 1;
    }
    Ok(bytes.checked_div(n).unwrap_or(RAW_ONLY_SIZE))
}

fn pids(stack: &Stack) -> Vec<(String, u32)> {
    // The services, then nats-server or the cluster's nodes (`nats-node-1`, ...).
    stack.services.iter().chain(&stack.nats).filter_map(|s| Some((s.name.clone(), s.pid()?))).collect()
}

fn sample_all(pids: &[(String, u32)]) -> BTreeMap<String, Sample> {
    pids.iter().filter_map(|(name, pid)| Some((name.clone(), Sample::of(*pid)?))).collect()
}
