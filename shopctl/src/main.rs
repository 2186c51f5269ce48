//! `shopctl`: the msa-shop developer tool, usually run through `./shop` at the repository root.
//!
//! Each subcommand lives in its own module; to add one, add a variant to [`Command`] and an arm
//! to the `match` in [`main`].

mod api_check;
mod audit;
mod browser;
mod chaos;
mod checkout;
mod cluster;
#[cfg(test)]
mod compose_check;
mod console_check;
mod credentials;
mod deadletter;
mod load;
mod nats;
mod outbox;
mod own_stack;
mod proc;
mod settlement;
mod supervise;
mod test;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::checkout::Checkout;

#[derive(Parser)]
#[command(name = "shopctl", version, about = "msa-shop developer tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the path of a usable nats-server binary, installing the pinned one if needed.
    EnsureNats,
    /// Run the workspace test suite against the pinned nats-server.
    ///
    /// Extra arguments go to `cargo test`, e.g. `shop test -- -p common -- --nocapture`.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CARGO_ARGS")]
        cargo_args: Vec<String>,
    },
    /// Start NATS (unless one answers at NATS_URL) and the services; stop them on Ctrl-C.
    Up {
        /// Run NATS as the 3-node JetStream cluster of nats/cluster/ (client ports 4222-4224),
        /// the event stream and key bucket in 3 copies: any one node may go down.
        #[arg(long)]
        cluster: bool,
    },
    /// Work with a service's transactional outbox.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// What a service's consumers refused.
    #[command(subcommand)]
    DeadLetter(DeadLetterCommand),
    /// svc-settlement's ledger.
    #[command(subcommand)]
    Settlement(SettlementCommand),
    /// Check the whole system's invariants through the services' admin APIs (orders, money at
    /// the gateway, payments, stock, ledger, outboxes); list dead letters. Exits non-zero on any
    /// violation. Meant for a system at rest, e.g. after a load or chaos run.
    Audit(AuditArgs),
    /// Break the system on a seeded schedule under an order load (its own stack in .data/chaos,
    /// ports shifted by --port-offset), let it settle and audit it; prints the figures and exits
    /// non-zero unless nothing was lost, stuck, duplicated or left unpublished.
    Chaos(chaos::Options),
    /// Measure the saga's throughput, latency to its end, CPU, disk writes and memory per process
    /// through the REST entry (its own stack in .data/load, ports shifted by --port-offset),
    /// beside this machine's raw JetStream publish rate; audits at the end.
    Load(load::Options),
    /// Drive the saga console (svc-order's /console) in headless Chromium against a stack of its
    /// own (.data/console-check, ports shifted by --port-offset): login, live feed, stuck sagas
    /// during a gateway outage, saga timelines, dead letters replayed from the page; saves a
    /// screenshot of each view. Installs Chromium, Playwright and nats-py if missing.
    ConsoleCheck(console_check::Options),
    /// Fuzz every service's OpenAPI document with schemathesis against a stack of its own
    /// (.data/api-check, ports shifted by --port-offset): no 5xx, no answer the document does not
    /// describe. Installs the pinned schemathesis into .tools/venv if missing.
    ApiCheck(api_check::Options),
}

#[derive(clap::Args)]
struct AuditArgs {
    #[arg(long, env = "ADMIN_EMAIL", default_value = audit::DEV_ADMIN_EMAIL)]
    admin_email: String,
    #[arg(long, env = "ADMIN_PASSWORD", default_value = audit::DEV_ADMIN_PASSWORD, hide_env_values = true)]
    admin_password: String,
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    user_url: String,
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    product_url: String,
    #[arg(long, default_value = "http://127.0.0.1:8083")]
    order_url: String,
    #[arg(long, default_value = "http://127.0.0.1:8084")]
    payment_url: String,
    #[arg(long, default_value = "http://127.0.0.1:8085")]
    settlement_url: String,
    /// The payment gateway (no auth).
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    gateway_url: String,
}

impl AuditArgs {
    fn endpoints(&self) -> audit::Endpoints {
        let trim = |url: &str| url.trim_end_matches('/').to_owned();
        audit::Endpoints {
            user: trim(&self.user_url),
            product: trim(&self.product_url),
            order: trim(&self.order_url),
            payment: trim(&self.payment_url),
            settlement: trim(&self.settlement_url),
            gateway: trim(&self.gateway_url),
        }
    }
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// List a service's dead letters with their reasons.
    List {
        /// The service, e.g. svc-product.
        service: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Publish dead letters again (the given numbers, or every one not replayed yet) once their
    /// cause is fixed. Safe: consumers that applied an event before skip it.
    Replay {
        service: String,
        /// Dead-letter numbers as `list` shows them; none means all not yet replayed.
        seqs: Vec<i64>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
}

#[derive(Subcommand)]
enum SettlementCommand {
    /// Rebuild the ledger from the event stream into a fresh database and compare it with the
    /// live one; exits non-zero when they differ.
    Rebuild {
        /// Replace the live database with the rebuilt one (stop svc-settlement first); refused
        /// unless the rebuild reproduces the live ledger or only adds to it.
        #[arg(long)]
        swap: bool,
        /// With --swap: replace the live database whatever the comparison found.
        #[arg(long, requires = "swap")]
        force: bool,
        /// svc-settlement's DATA_DIR; default: where `shop up` keeps it (.data/svc-settlement).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Queue a service's already-published events to be published again (e.g. after the stream
    /// lost them). Safe to repeat: every consumer applies an event id once.
    Republish {
        /// The service, e.g. svc-order.
        service: String,
        /// Only events created at or after this time (RFC 3339); default: every kept event.
        #[arg(long)]
        since: Option<String>,
        /// The service's DATA_DIR; default: where `shop up` keeps it (`.data/<service>`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = std::env::current_dir()
        .context("cannot read the working directory")
        .and_then(|cwd| Checkout::containing(&cwd))
        .and_then(|checkout| run(cli.command, &checkout));
    result.unwrap_or_else(|err| {
        eprintln!("shopctl: error: {err:#}");
        ExitCode::FAILURE
    })
}

fn run(command: Command, checkout: &Checkout) -> anyhow::Result<ExitCode> {
    match command {
        Command::EnsureNats => nats::ensure_nats_server(checkout).map(|bin| {
            println!("{}", bin.display());
            ExitCode::SUCCESS
        }),
        Command::Test { cargo_args } => test::run(checkout, &cargo_args),
        Command::Up { cluster } => up::run(checkout, cluster),
        Command::Outbox(OutboxCommand::Republish { service, since, data_dir }) => {
            outbox::republish(&service, &checkout.service_db(&service, data_dir.as_deref()), since.as_deref())
        }
        Command::DeadLetter(DeadLetterCommand::List { service, data_dir }) => {
            deadletter::list(&service, &checkout.service_db(&service, data_dir.as_deref()))
        }
        Command::DeadLetter(DeadLetterCommand::Replay { service, seqs, data_dir, nats_url }) => {
            deadletter::replay(&service, &checkout.service_db(&service, data_dir.as_deref()), &nats_url, &seqs)
        }
        Command::Settlement(SettlementCommand::Rebuild { swap, force, data_dir, nats_url }) => {
            let data_dir = data_dir.unwrap_or_else(|| checkout.service_data_dir("svc-settlement"));
            settlement::rebuild(&data_dir, &nats_url, swap, force)
        }
        Command::Audit(args) => audit::run(&args.endpoints(), &args.admin_email, &args.admin_password),
        Command::Chaos(options) => chaos::run(checkout, &options),
        Command::Load(options) => load::run(checkout, &options),
        Command::ConsoleCheck(options) => console_check::run(checkout, &options),
        Command::ApiCheck(options) => api_check::run(checkout, &options),
    }
}
