//! `shopctl chaos`: the whole system under a steady order load while a seeded schedule breaks it,
//! then the audit. Proves, with figures, that whatever crashes no order is lost, none stays stuck,
//! no effect happens twice and no outbox row is left unpublished.
//!
//! It runs a stack of its own (`up`'s machinery, in `.data/chaos/`, on ports shifted by
//! `--port-offset`, each child's output in `.data/chaos/logs/`), so it never touches the data of
//! `./shop up`. While `--orders` orders go in through `POST /orders` from `--concurrency` clients,
//! every `--fault-every-ms` it draws one fault from the seed:
//!
//! | fault                | how                                                                 |
//! |----------------------|---------------------------------------------------------------------|
//! | kill a service       | SIGKILL; `up`'s supervisor starts it again (1 s, doubling)          |
//! | kill the gateway     | the same, for `payment-gateway`                                      |
//! | kill the broker      | SIGKILL `nats-server`; restarted like the services                  |
//! | pause the broker     | SIGSTOP, then SIGCONT 1-3 s later                                   |
//! | kill a NATS node     | `--cluster`, for kill the broker: SIGKILL the node leading `SHOP_EVENTS` |
//! | pause a NATS node    | `--cluster`, for pause the broker: SIGSTOP one node, SIGCONT 1-3 s later |
//! | failpoint            | `PUT /admin/failpoints/<service>.<point>` at 25 % for 3 s            |
//! | gateway outage       | `PUT /v1/faults`: down, failing, timing out or losing answers, 2-4 s |
//! | duplicate            | an earlier event published again under its own message id          |
//! | stale re-publish     | an earlier event published again under a new message id            |
//! | malformed event      | not an envelope, on `order.created.<uuid>`: must be dead-lettered   |
//!
//! With `--cluster` the stack's NATS is the 3-node cluster of `./shop up --cluster` (the stream
//! and the key bucket in 3 copies). Its leader is found through the stream info's
//! `cluster.leader`; a killed node is restarted like the services. A node fault is skipped unless
//! every node runs and holds a current copy of the stream, so at most one node is ever down and
//! the quorum (2 of 3) holds.
//!
//! Then every fault is undone, the system is left to settle (every order ended, outboxes empty,
//! consumers caught up; with `--cluster`, every node back with a current copy of the stream),
//! and the audit runs. It prints the figures and exits non-zero unless
//! nothing was lost, stuck, duplicated or left unpublished, and the faults demonstrably took
//! effect: messages were redelivered, failpoints fired, or consumers skipped duplicates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use async_nats::jetstream;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep};

use crate::audit::{self, Endpoints, Violation};
use crate::checkout::Checkout;
use crate::own_stack::{self, endpoints, expect, sign_up};
use crate::up::{self, Layout, SERVICES, Stack};

/// What `shopctl chaos` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Orders to place.
    #[arg(long, default_value_t = 2000)]
    pub orders: usize,
    /// Orders per second, on a fixed schedule (an open loop: a slow system falls behind it, the
    /// schedule does not wait).
    #[arg(long, default_value_t = 40)]
    pub rate: u32,
    /// Clients placing orders at once: the most orders in flight at the HTTP entry.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seed of the fault schedule and of the load: the same seed draws the same faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Milliseconds between two faults.
    #[arg(long, default_value_t = 1500)]
    pub fault_every_ms: u64,
    /// Added to every port `./shop up` uses, so both can run at once.
    #[arg(long, default_value_t = 10_000)]
    pub port_offset: u16,
    /// Seconds the system may take to settle after the last fault.
    #[arg(long, default_value_t = 300)]
    pub settle_secs: u64,
    /// Use the binaries in this folder (e.g. `target/debug`) instead of building release ones.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where the run keeps its state and logs (emptied first); default `.data/chaos`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run NATS as a 3-node cluster (its stores in the run's folder, on the shifted ports); the
    /// broker faults then hit one node at a time: the stream's leader killed, a node paused.
    #[arg(long)]
    pub cluster: bool,
}

/// How long the cluster's nodes may take, after the system settled, to be back with a current
/// copy of the stream each.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Each order's saga must end within this many seconds (`ORDER_DEADLINE_SECS`), so that one
/// stopped by an outage expires within the run.
const ORDER_DEADLINE_SECS: u64 = 20;
/// Every point `chaos` turns on, and the services where it matters.
const FAILPOINTS: [(&str, &str); 8] = [
    ("svc-payment", common::faults::CONSUMER_AFTER_COMMIT),
    ("svc-product", common::faults::CONSUMER_AFTER_COMMIT),
    ("svc-order", common::faults::CONSUMER_AFTER_COMMIT),
    ("svc-product", common::faults::CONSUMER_IN_TRANSACTION),
    ("svc-payment", common::faults::CONSUMER_IN_TRANSACTION),
    ("svc-product", common::faults::COMPENSATION_AFTER_COMMIT),
    ("svc-payment", common::faults::COMPENSATION_AFTER_COMMIT),
    ("svc-order", common::faults::RELAY_AFTER_PUBLISH),
];

pub fn run(checkout: &Checkout, options: &Options) -> Result<ExitCode> {
    own_stack::block_on(chaos(checkout, options))?
}

async fn chaos(checkout: &Checkout, options: &Options) -> Result<ExitCode> {
    let root = options.data_dir.clone().unwrap_or_else(|| checkout.data_dir().join("chaos"));
    let env = vec![
        ("ORDER_DEADLINE_SECS".into(), ORDER_DEADLINE_SECS.to_string()),
        // A message left unacknowledged by a crash comes back after 3 s, not 30.
        ("ACK_WAIT_SECS".into(), "3".into()),
        ("GATEWAY_HANG_MS".into(), "3000".into()),
        ("DECLINE_RATE_BPS".into(), "500".into()),
        ("DECLINE_SEED".into(), options.seed.to_string()),
        ("SEED_DEMO".into(), "false".into()),
    ];
    let layout = own_stack::layout(root, options.port_offset, env, options.bin_dir.clone(), options.cluster)?;
    let figures =
        own_stack::with_stack("chaos", async |stack: &mut Stack| drive(checkout, stack, &layout, options).await)
            .await?;
    figures.print(options, &layout);
    Ok(if figures.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// What one run measured.
#[derive(Debug, Default)]
struct Figures {
    accepted: usize,
    refused: usize,
    report: audit::Report,
    lost: Vec<String>,
    stuck: usize,
    duplicate_effects: usize,
    redeliveries: u64,
    duplicates_skipped: u64,
    faults: BTreeMap<&'static str, usize>,
    failpoint_hits: u64,
    /// Nodes SIGKILLed while leading the stream (`--cluster`).
    leader_kills: usize,
    /// `--cluster`: seconds after settling until every node held a current copy of the stream,
    /// or what was still missing when time ran out.
    rejoined: Option<Result<f64, String>>,
    load_secs: f64,
    settle_secs: f64,
}

impl Figures {
    fn passed(&self) -> bool {
        self.report.is_clean()
            && self.lost.is_empty()
            && self.stuck == 0
            && self.duplicate_effects == 0
            && self.unpublished() == 0
            && self.faults_took_effect()
            && self.rejoined.as_ref().is_none_or(Result::is_ok)
    }

    /// The proof that the run tested something: a counter only a fault moves. Which one moves
    /// depends on timing (a broker killed while nothing was in flight redelivers nothing), so any
    /// of them counts.
    fn faults_took_effect(&self) -> bool {
        self.redeliveries > 0 || self.failpoint_hits > 0 || self.duplicates_skipped > 0 || self.leader_kills > 0
    }

    fn unpublished(&self) -> i64 {
        self.report.unpublished.values().sum()
    }

    fn print(&self, options: &Options, layout: &Layout) {
        audit::print(&self.report);
        let faults: Vec<String> = self.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let outcomes: Vec<String> = self.report.outcomes.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!();
        println!(
            "chaos: seed {}, {} orders at {}/s from {} clients",
            options.seed, options.orders, options.rate, options.concurrency
        );
        println!(
            "  orders accepted      {} ({} refused by a crashing svc-order and not retried)",
            self.accepted, self.refused
        );
        println!("  outcomes             {}", outcomes.join(", "));
        println!("  lost                 {}", self.lost.len());
        println!("  stuck                {}", self.stuck);
        println!("  duplicate effects    {}", self.duplicate_effects);
        println!("  unpublished rows     {}", self.unpublished());
        println!("  redeliveries         {} (duplicates skipped {})", self.redeliveries, self.duplicates_skipped);
        println!("  dead letters         {}", self.report.dead_letters.len());
        println!("  faults               {} ({})", self.faults.values().sum::<usize>(), faults.join(", "));
        println!("  failpoint firings    {}", self.failpoint_hits);
        match &self.rejoined {
            None => {}
            Some(Ok(secs)) => println!(
                "  leader kills         {}; every node rejoined, all copies of the stream current {secs:.1} s after settling",
                self.leader_kills
            ),
            Some(Err(missing)) => println!(
                "  leader kills         {}; NOT rejoined within {} s: {missing}",
                self.leader_kills,
                REJOIN_TIMEOUT.as_secs()
            ),
        }
        println!("  load                 {:.1} s", self.load_secs);
        println!("  settled after        {:.1} s after the last fault", self.settle_secs);
        println!(
            "  logs                 {}",
            layout.logs.as_ref().map_or_else(String::new, |d| d.display().to_string())
        );
        for id in &self.lost {
            println!("  lost order {id}");
        }
        println!("chaos: {}", if self.passed() { "PASSED" } else { "FAILED" });
    }
}

/// Everyone the load is placed by, and what they order.
struct Shoppers {
    customers: Vec<String>,
    /// (product id, weight): ample stock, short stock (runs out), above the payment limit.
    products: Vec<(String, u32)>,
}

async fn drive(checkout: &Checkout, stack: &mut Stack, layout: &Layout, options: &Options) -> Result<Figures> {
    up::launch(checkout, stack, layout, &layout.nats_url(), true).await?;
    let endpoints = endpoints(layout);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let admin = audit::login(&http, &endpoints.user, audit::DEV_ADMIN_EMAIL, audit::DEV_ADMIN_PASSWORD).await?;
    let shoppers = shoppers(&http, &endpoints, options).await?;
    let operator = crate::credentials::Credentials::operator();
    let nats = common::bus::connect(&layout.nats_url(), "shopctl-chaos", &operator)
        .await
        .context("connecting to the chaos broker")?;
    let js = jetstream::new(nats);
    eprintln!(
        "chaos: {} customers, {} products; placing {} orders",
        shoppers.customers.len(),
        shoppers.products.len(),
        options.orders
    );

    let mut figures = Figures::default();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let shoppers = Arc::new(shoppers);
    let started = Instant::now();
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..options.concurrency {
        let (http, url, shoppers, next, accepted, refused) =
            (http.clone(), endpoints.order.clone(), shoppers.clone(), next.clone(), accepted.clone(), refused.clone());
        let (total, seed) = (options.orders, options.seed.wrapping_add(worker as u64 + 1));
        let every = Duration::from_secs_f64(1.0 / f64::from(options.rate.max(1)));
        load.spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                tokio::time::sleep_until(started + every * i as u32).await;
                match place(&http, &url, &shoppers, &mut rng).await {
                    Some(id) => accepted.lock().await.push(id),
                    None => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut undo: Vec<(Instant, Undo)> = Vec::new();
    // Counted in a task of its own: a service that is starting (its port bound, its NATS
    // connection not yet made) holds a request until it times out, and the fault loop must never
    // wait for that, or the undo that resumes a paused broker comes half a minute late.
    let counters = Arc::new(Mutex::new(Counters::default()));
    let poller = {
        let (counters, endpoints, admin) = (counters.clone(), endpoints.clone(), admin.clone());
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        tokio::spawn(async move {
            loop {
                counters.lock().await.poll(&http, &endpoints, &admin).await;
                sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let mut next_fault = Instant::now() + Duration::from_millis(options.fault_every_ms);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while !load.is_empty() {
        tokio::select! {
            done = load.join_next() => {
                if let Some(Err(e)) = done {
                    bail!("a load client failed: {e}");
                }
            }
            _ = tick.tick() => {
                up::supervise(stack)?;
                let now = Instant::now();
                for (_, u) in take_due(&mut undo, now) {
                    u.apply(stack, &http, &endpoints, &admin).await;
                }
                if now >= next_fault {
                    let fault = draw(&mut rng, layout.cluster);
                    *figures.faults.entry(fault.name()).or_default() += 1;
                    let at = started.elapsed().as_secs_f64();
                    // Bounded: a publish to a paused broker must not hold up the undo that
                    // resumes it.
                    let applied = tokio::time::timeout(
                        Duration::from_secs(3),
                        fault.apply(stack, &http, &endpoints, &admin, &js, &mut rng),
                    );
                    match applied.await.unwrap_or_else(|_| Err(anyhow!("timed out"))) {
                        Ok((what, then)) => {
                            eprintln!("chaos: {at:6.1} s  {what}");
                            figures.leader_kills += usize::from(matches!(fault, Fault::KillLeaderNode));
                            if let Some((after, u)) = then {
                                undo.push((now + after, u));
                            }
                        }
                        Err(e) => eprintln!("chaos: {at:6.1} s  {}: {e:#} (counted: it may still take effect)", fault.name()),
                    }
                    next_fault = now + Duration::from_millis(options.fault_every_ms);
                }
            }
        }
    }
    figures.load_secs = started.elapsed().as_secs_f64();
    // Undo what is still on, then give the supervisor time to bring everything back.
    for (_, u) in undo.drain(..) {
        u.apply(stack, &http, &endpoints, &admin).await;
    }
    let last_fault = Instant::now();
    poller.abort();
    let mut counters = counters.lock().await;
    eprintln!("chaos: load done in {:.1} s; every fault undone; waiting for the system to settle", figures.load_secs);

    let accepted = accepted.lock().await.clone();
    let deadline = last_fault + Duration::from_secs(options.settle_secs);
    let snapshot = loop {
        up::supervise(stack)?;
        counters.poll(&http, &endpoints, &admin).await;
        if let Some(snapshot) = settled(&endpoints, &admin, &js).await {
            break snapshot;
        }
        if Instant::now() >= deadline {
            eprintln!("chaos: not settled within {} s; auditing what there is", options.settle_secs);
            break audit::fetch(&endpoints, &admin).await?;
        }
        sleep(Duration::from_millis(500)).await;
    };
    figures.settle_secs = last_fault.elapsed().as_secs_f64();
    if layout.cluster {
        figures.rejoined = Some(rejoined(stack, &js).await);
    }
    counters.poll(&http, &endpoints, &admin).await;

    let report = audit::check(&snapshot);
    let known: std::collections::HashSet<&str> = snapshot.orders.iter().map(|o| o.id.as_str()).collect();
    figures.lost = accepted.iter().filter(|id| !known.contains(id.as_str())).cloned().collect();
    figures.stuck = snapshot.orders.iter().filter(|o| !o.is_terminal()).count();
    figures.duplicate_effects = report.violations.iter().filter(|v| is_duplicate(v)).count();
    figures.accepted = accepted.len();
    figures.refused = refused.load(Ordering::Relaxed);
    figures.redeliveries = counters.total(|s| s.redeliveries);
    figures.duplicates_skipped = counters.total(|s| s.duplicates);
    figures.failpoint_hits = counters.failpoint_hits;
    figures.report = report;
    Ok(figures)
}

/// The violations that mean an effect happened twice: a second charge, a second SALE or REFUND
/// booked for one payment.
fn is_duplicate(v: &Violation) -> bool {
    match v {
        Violation::ChargedTwice { .. } => true,
        Violation::SaleMissing { found, .. } | Violation::RefundMissing { found, .. } => *found > 1,
        _ => false,
    }
}

/// A seller with three products and `concurrency` customers, signed up through svc-user.
async fn shoppers(http: &reqwest::Client, endpoints: &Endpoints, options: &Options) -> Result<Shoppers> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let seller = sign_up(http, endpoints, &format!("seller-{run}@chaos.local"), "SELLER").await?;
    let mut products = Vec::new();
    for (name, price, stock, weight) in [
        ("Plenty", 10_000, 1_000_000, 16),
        ("Scarce", 20_000, (options.orders / 10).max(5), 3),
        ("Too dear", 2_000_000, 1_000, 1),
    ] {
        let body = json!({"name": name, "price": price, "stock": stock, "category": "chaos"});
        let res = http.post(format!("{}/products", endpoints.product)).bearer_auth(&seller).json(&body).send().await?;
        let product: Value = expect(res, 201).await?;
        products.push((product["id"].as_str().context("product id")?.to_owned(), weight));
    }
    let mut customers = Vec::new();
    for i in 0..options.concurrency.max(1) {
        customers.push(sign_up(http, endpoints, &format!("customer-{i}-{run}@chaos.local"), "CUSTOMER").await?);
    }
    Ok(Shoppers { customers, products })
}

/// Places one order as a client that retries under its `Idempotency-Key` until svc-order answers
/// (it may be restarting); returns the order id, or `None` if it gave up after 60 s.
async fn place(http: &reqwest::Client, url: &str, shoppers: &Shoppers, rng: &mut StdRng) -> Option<String> {
    let customer = &shoppers.customers[rng.gen_range(0..shoppers.customers.len())];
    let total: u32 = shoppers.products.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    let product = shoppers.products.iter().find(|(_, w)| {
        let hit = pick < *w;
        pick = pick.saturating_sub(*w);
        hit
    })?;
    let body = json!({"productId": product.0, "quantity": rng.gen_range(1..=2), "paymentMethod": "CARD"});
    let key = uuid::Uuid::now_v7().to_string();
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let res = http
            .post(format!("{url}/orders"))
            .bearer_auth(customer)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        if let Ok(res) = res
            && res.status().is_success()
            && let Ok(order) = res.json::<Value>().await
            && let Some(id) = order["id"].as_str()
        {
            return Some(id.to_owned());
        }
        sleep(Duration::from_millis(200)).await;
    }
    None
}

/// One fault of the schedule.
#[derive(Debug, Clone, Copy)]
enum Fault {
    KillService,
    KillGateway,
    KillBroker,
    PauseBroker,
    /// `--cluster`'s kill the broker.
    KillLeaderNode,
    /// `--cluster`'s pause the broker.
    PauseNode,
    Failpoint,
    GatewayOutage,
    Duplicate,
    StaleRepublish,
    Malformed,
}

/// How to end a fault that lasts.
#[derive(Debug, Clone)]
enum Undo {
    Resume(u32),
    Failpoint { service: &'static str, name: String },
    GatewayFaults,
}

/// Draws the next fault: kills and broker trouble a little less often than the cheap ones. On a
/// cluster the broker's faults are a node's, with the same weights.
fn draw(rng: &mut StdRng, cluster: bool) -> Fault {
    const TABLE: [(Fault, u32); 9] = [
        (Fault::KillService, 3),
        (Fault::KillGateway, 1),
        (Fault::KillBroker, 1),
        (Fault::PauseBroker, 1),
        (Fault::Failpoint, 3),
        (Fault::GatewayOutage, 2),
        (Fault::Duplicate, 2),
        (Fault::StaleRepublish, 2),
        (Fault::Malformed, 1),
    ];
    let total: u32 = TABLE.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    for (fault, weight) in TABLE {
        if pick < weight {
            return match (fault, cluster) {
                (Fault::KillBroker, true) => Fault::KillLeaderNode,
                (Fault::PauseBroker, true) => Fault::PauseNode,
                _ => fault,
            };
        }
        pick -= weight;
    }
    Fault::Duplicate
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::KillService => "kill service",
            Fault::KillGateway => "kill gateway",
            Fault::KillBroker => "kill broker",
            Fault::PauseBroker => "pause broker",
            Fault::KillLeaderNode => "kill leader node",
            Fault::PauseNode => "pause node",
            Fault::Failpoint => "failpoint",
            Fault::GatewayOutage => "gateway outage",
            Fault::Duplicate => "duplicate",
            Fault::StaleRepublish => "stale re-publish",
            Fault::Malformed => "malformed event",
        }
    }

    /// Applies the fault; says what it did and, for one that lasts, when and how to end it.
    async fn apply(
        self,
        stack: &mut Stack,
        http: &reqwest::Client,
        endpoints: &Endpoints,
        admin: &str,
        js: &jetstream::Context,
        rng: &mut StdRng,
    ) -> Result<(String, Option<(Duration, Undo)>)> {
        match self {
            Fault::KillService => {
                let services: Vec<usize> =
                    (0..stack.services.len()).filter(|i| stack.services[*i].name != "payment-gateway").collect();
                let i = services[rng.gen_range(0..services.len())];
                let child = &mut stack.services[i];
                let pid = child.pid().context("not running (being restarted)")?;
                signal("KILL", pid)?;
                Ok((format!("kill -9 {} (pid {pid})", child.name), None))
            }
            Fault::KillGateway => {
                let child = stack.services.iter().find(|c| c.name == "payment-gateway").context("no gateway")?;
                let pid = child.pid().context("not running (being restarted)")?;
                signal("KILL", pid)?;
                Ok((format!("kill -9 payment-gateway (pid {pid})"), None))
            }
            Fault::KillBroker => {
                let pid = stack.nats.first().and_then(|n| n.pid()).context("not running (being restarted)")?;
                signal("KILL", pid)?;
                Ok((format!("kill -9 nats-server (pid {pid})"), None))
            }
            Fault::KillLeaderNode => {
                let leader = spare_node(stack, js).await?;
                let node = &stack.nats[leader];
                let pid = node.pid().context("not running (being restarted)")?;
                signal("KILL", pid)?;
                Ok((format!("kill -9 {} (pid {pid}), the leader of {}", node.name, common::bus::STREAM), None))
            }
            Fault::PauseBroker | Fault::PauseNode => {
                let i = match self {
                    Fault::PauseNode => spare_node(stack, js).await.map(|_| rng.gen_range(0..stack.nats.len()))?,
                    _ => 0,
                };
                let node = stack.nats.get(i).context("no nats-server")?;
                let pid = node.pid().context("not running (being restarted)")?;
                signal("STOP", pid)?;
                let pause = Duration::from_millis(rng.gen_range(1000..3000));
                let what = format!("kill -STOP {} (pid {pid}) for {pause:?}", node.name);
                Ok((what, Some((pause, Undo::Resume(pid)))))
            }
            Fault::Failpoint => {
                let (service, point) = FAILPOINTS[rng.gen_range(0..FAILPOINTS.len())];
                let name = common::faults::name(service, point);
                let url = format!("{}/admin/failpoints/{name}", url_of(endpoints, service));
                let res = http.put(url).bearer_auth(admin).json(&json!({"actions": "25%return"})).send().await?;
                expect(res, 200).await?;
                Ok((
                    format!("failpoint {name} at 25 % for 3 s"),
                    Some((Duration::from_secs(3), Undo::Failpoint { service, name })),
                ))
            }
            Fault::GatewayOutage => {
                let settings = match rng.gen_range(0..4) {
                    0 => json!({"down": true}),
                    1 => json!({"failBps": 5000}),
                    2 => json!({"timeoutBps": 3000}),
                    _ => json!({"loseAnswerBps": 5000}),
                };
                let res = http.put(format!("{}/v1/faults", endpoints.gateway)).json(&settings).send().await?;
                expect(res, 200).await?;
                let lasts = Duration::from_millis(rng.gen_range(2000..4000));
                Ok((format!("gateway faults {settings} for {lasts:?}"), Some((lasts, Undo::GatewayFaults))))
            }
            Fault::Duplicate | Fault::StaleRepublish => {
                let stream = js.get_stream(common::bus::STREAM).await?;
                let last = stream.get_info().await?.state.last_sequence;
                if last == 0 {
                    bail!("the stream is empty");
                }
                let seq = rng.gen_range(1..=last);
                let msg = stream.get_raw_message(seq).await?;
                let subject = msg.subject.to_string();
                let id = match self {
                    Fault::Duplicate => msg
                        .headers
                        .get(async_nats::header::NATS_MESSAGE_ID)
                        .map(|v| v.as_str().to_owned())
                        .context("no message id")?,
                    _ => uuid::Uuid::now_v7().to_string(),
                };
                let publish = jetstream::message::PublishMessage::build().payload(msg.payload).message_id(&id);
                js.send_publish(subject.clone(), publish).await?.await?;
                Ok((format!("{} of stream message {seq} ({subject})", self.name()), None))
            }
            Fault::Malformed => {
                let subject = format!("order.created.{}", uuid::Uuid::now_v7());
                let id = uuid::Uuid::now_v7().to_string();
                let publish = jetstream::message::PublishMessage::build()
                    .payload("{\"chaos\": \"not an envelope\"}".into())
                    .message_id(&id);
                js.send_publish(subject.clone(), publish).await?.await?;
                Ok((format!("malformed event on {subject}"), None))
            }
        }
    }
}

/// How long undoing a fault over HTTP may take before the loop goes on without it.
const UNDO_TIMEOUT: Duration = Duration::from_secs(3);

impl Undo {
    /// Ends the fault; a failure is reported, not fatal (the process may be gone already).
    async fn apply(&self, _stack: &mut Stack, http: &reqwest::Client, endpoints: &Endpoints, admin: &str) {
        let result = match self {
            Undo::Resume(pid) => signal("CONT", *pid).map(|_| format!("kill -CONT nats-server (pid {pid})")),
            Undo::Failpoint { service, name } => {
                let url = format!("{}/admin/failpoints/{name}", url_of(endpoints, service));
                // Bounded: a service that is starting holds the request (see the counters' task).
                let put = http.put(url).bearer_auth(admin).json(&json!({"actions": "off"}));
                match put.timeout(UNDO_TIMEOUT).send().await {
                    Ok(_) => Ok(format!("failpoint {name} off")),
                    Err(e) => Err(e.into()),
                }
            }
            Undo::GatewayFaults => {
                let off = json!({"down": false, "failBps": 0, "timeoutBps": 0, "loseAnswerBps": 0});
                match http.put(format!("{}/v1/faults", endpoints.gateway)).json(&off).timeout(UNDO_TIMEOUT).send().await
                {
                    Ok(_) => Ok("gateway faults off".to_owned()),
                    Err(e) => Err(e.into()),
                }
            }
        };
        match result {
            Ok(what) => eprintln!("chaos:          {what}"),
            Err(e) => eprintln!("chaos:          could not undo {self:?}: {e:#} (a restart undoes it)"),
        }
    }
}

fn take_due(undo: &mut Vec<(Instant, Undo)>, now: Instant) -> Vec<(Instant, Undo)> {
    let (due, later): (Vec<_>, Vec<_>) = undo.drain(..).partition(|(at, _)| *at <= now);
    *undo = later;
    due
}

fn url_of<'a>(endpoints: &'a Endpoints, service: &str) -> &'a str {
    match service {
        "svc-user" => &endpoints.user,
        "svc-product" => &endpoints.product,
        "svc-order" => &endpoints.order,
        "svc-payment" => &endpoints.payment,
        _ => &endpoints.settlement,
    }
}

/// Which node of the cluster leads the stream, if the cluster can spare a node: every node
/// running and not paused, each holding a current copy. Otherwise an error: a second node down
/// (or one still catching up) would take the quorum with it.
async fn spare_node(stack: &mut Stack, js: &jetstream::Context) -> Result<usize> {
    for node in &mut stack.nats {
        if node.try_exit_status().is_some() || node.pid().is_none_or(is_paused) {
            bail!("skipped: {} is down, and a second node down would lose the quorum", node.name);
        }
    }
    // Under load a follower can be a moment behind: it gets a little time before the skip.
    let until = Instant::now() + Duration::from_millis(1500);
    let info = loop {
        let info = crate::cluster::stream_cluster(js).await?;
        match crate::cluster::all_current(&info, stack.nats.len()) {
            Ok(()) => break info,
            Err(missing) if Instant::now() >= until => bail!("skipped: {missing}"),
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    };
    let leader = info.leader.unwrap_or_default();
    // The config names node `i` `node-<i>`; shopctl calls its process `nats-node-<i>`.
    stack
        .nats
        .iter()
        .position(|n| n.name == format!("nats-{leader}"))
        .with_context(|| format!("no node named {leader}"))
}

/// Whether the process `pid` is stopped (SIGSTOP): state `T` in `/proc/<pid>/stat`.
fn is_paused(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses and may hold anything.
    stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
}

/// Waits until every node of the cluster runs again (the supervisor restarts a killed one) and
/// holds a current copy of the stream: the seconds it took, or what was still missing after
/// [`REJOIN_TIMEOUT`].
async fn rejoined(stack: &mut Stack, js: &jetstream::Context) -> Result<f64, String> {
    let started = Instant::now();
    loop {
        up::supervise(stack).map_err(|e| format!("{e:#}"))?;
        let missing = match crate::cluster::stream_cluster(js).await {
            Ok(info) => crate::cluster::all_current(&info, stack.nats.len()).err(),
            Err(e) => Some(format!("{e:#}")),
        };
        match missing {
            None => return Ok(started.elapsed().as_secs_f64()),
            Some(missing) if started.elapsed() >= REJOIN_TIMEOUT => return Err(missing),
            Some(_) => sleep(Duration::from_millis(250)).await,
        }
    }
}

fn signal(sig: &str, pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status()?;
    if !status.success() {
        bail!("kill -{sig} {pid} failed ({status})");
    }
    Ok(())
}

/// Consumer figures of every service, added up across its restarts (a restarted process counts
/// from zero again: what it counted before is kept).
#[derive(Debug, Default)]
struct Counters {
    /// Per service: (what earlier processes counted, what the current one has counted).
    stats: BTreeMap<&'static str, (common::consumer::Stats, common::consumer::Stats)>,
    failpoint_hits: u64,
    failpoint_last: BTreeMap<String, u64>,
}

impl Counters {
    async fn poll(&mut self, http: &reqwest::Client, endpoints: &Endpoints, admin: &str) {
        for service in SERVICES.iter().filter(|s| s.name.starts_with("svc-")) {
            let base = url_of(endpoints, service.name);
            let got = async {
                let res = http.get(format!("{base}/admin/consumers")).bearer_auth(admin).send().await.ok()?;
                res.json::<Value>().await.ok()
            };
            if let Some(v) = got.await {
                let now = common::consumer::Stats {
                    redeliveries: v["redeliveries"].as_u64().unwrap_or(0),
                    duplicates: v["duplicates"].as_u64().unwrap_or(0),
                    dead_lettered: v["deadLettered"].as_u64().unwrap_or(0),
                };
                self.observe(service.name, now);
            }
            let points = async {
                let res = http.get(format!("{base}/admin/failpoints")).bearer_auth(admin).send().await.ok()?;
                res.json::<Vec<Value>>().await.ok()
            };
            for point in points.await.unwrap_or_default() {
                let (Some(name), Some(hits)) = (point["name"].as_str(), point["hits"].as_u64()) else { continue };
                let last = self.failpoint_last.entry(name.to_owned()).or_default();
                self.failpoint_hits += if hits >= *last { hits - *last } else { hits };
                *last = hits;
            }
        }
    }

    /// Takes `now`, the current figures of `service`'s process; a figure lower than the last one
    /// seen means a new process, and what the old one counted is kept.
    fn observe(&mut self, service: &'static str, now: common::consumer::Stats) {
        let (before, last) = self.stats.entry(service).or_default();
        if now.redeliveries < last.redeliveries
            || now.duplicates < last.duplicates
            || now.dead_lettered < last.dead_lettered
        {
            before.redeliveries += last.redeliveries;
            before.duplicates += last.duplicates;
            before.dead_lettered += last.dead_lettered;
        }
        *last = now;
    }

    fn total(&self, field: impl Fn(&common::consumer::Stats) -> u64) -> u64 {
        self.stats.values().map(|(before, last)| field(before) + field(last)).sum()
    }
}

/// The audit's snapshot once the system is at rest: every order ended, every outbox drained,
/// every durable consumer caught up; `None` while it is not.
async fn settled(endpoints: &Endpoints, admin: &str, js: &jetstream::Context) -> Option<audit::Snapshot> {
    if !own_stack::consumers_caught_up(js).await.unwrap_or(false) {
        return None;
    }
    let snapshot = audit::fetch(endpoints, admin).await.ok()?;
    let at_rest =
        snapshot.orders.iter().all(audit::Order::is_terminal) && snapshot.outboxes.values().all(|o| o.unpublished == 0);
    at_rest.then_some(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_faults_and_every_kind_comes_up() {
        let names = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..200).map(|_| draw(&mut rng, false).name()).collect::<Vec<_>>()
        };
        assert_eq!(names(7), names(7));
        assert_ne!(names(7), names(8));
        let kinds: std::collections::BTreeSet<_> = names(7).into_iter().collect();
        assert_eq!(kinds.len(), 9, "{kinds:?}");
    }

    #[test]
    fn on_a_cluster_the_broker_faults_are_node_faults() {
        let mut rng = StdRng::seed_from_u64(7);
        let kinds: std::collections::BTreeSet<_> = (0..200).map(|_| draw(&mut rng, true).name()).collect();
        assert_eq!(kinds.len(), 9, "{kinds:?}");
        assert!(kinds.contains("kill leader node") && kinds.contains("pause node"), "{kinds:?}");
        assert!(!kinds.contains("kill broker") && !kinds.contains("pause broker"), "{kinds:?}");
    }

    /// The seed of the cluster run in tests/chaos.rs.
    const CLUSTER_TEST_SEED: u64 = 69;

    #[test]
    fn seed_draws_a_leader_kill_first_on_a_cluster() {
        // tests/chaos.rs relies on it: its first fault comes while every node is up, so
        // it kills the leader whatever the timing (later draws depend on what faults consume).
        let mut rng = StdRng::seed_from_u64(CLUSTER_TEST_SEED);
        assert_eq!(draw(&mut rng, true).name(), "kill leader node");
    }

    #[test]
    fn a_stopped_process_is_paused_and_a_running_one_is_not() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(!is_paused(pid));
        signal("STOP", pid).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !is_paused(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(is_paused(pid));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn counts_survive_a_restart_of_the_process_that_counted_them() {
        let stats = |redeliveries, duplicates| common::consumer::Stats { redeliveries, duplicates, dead_lettered: 0 };
        let mut counters = Counters::default();
        counters.observe("svc-order", stats(5, 1));
        counters.observe("svc-order", stats(9, 2));
        counters.observe("svc-order", stats(3, 0)); // restarted: counting from 0 again
        counters.observe("svc-product", stats(4, 4));
        assert_eq!(counters.total(|s| s.redeliveries), 9 + 3 + 4);
        assert_eq!(counters.total(|s| s.duplicates), 2 + 4);
    }

    #[test]
    fn only_a_second_effect_counts_as_a_duplicate() {
        let twice = Violation::ChargedTwice { order: "o".into(), charges: vec!["a".into(), "b".into()] };
        let two_sales = Violation::SaleMissing { payment: "p".into(), order: "o".into(), found: 2 };
        let no_sale = Violation::SaleMissing { payment: "p".into(), order: "o".into(), found: 0 };
        assert!(is_duplicate(&twice) && is_duplicate(&two_sales));
        assert!(!is_duplicate(&no_sale));
    }
}
