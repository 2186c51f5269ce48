//! `shopctl`: the msa-shop developer tool, usually run through `./shop` at the repository root.
//!
//! Each subcommand lives in its own module; to add one, add a variant to [`Command`] and an arm
//! to the `match` in [`main`].

mod deadletter;
mod nats;
mod outbox;
mod proc;
mod settlement;
mod test;
mod up;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    Up,
    /// Work with a service's transactional outbox.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// What a service's consumers refused.
    #[command(subcommand)]
    DeadLetter(DeadLetterCommand),
    /// svc-settlement's ledger.
    #[command(subcommand)]
    Settlement(SettlementCommand),
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
        /// The service's DATA_DIR; default: where `shop up` keeps it (.data/<service>).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::EnsureNats => nats::ensure_nats_server().map(|bin| {
            println!("{}", bin.display());
            ExitCode::SUCCESS
        }),
        Command::Test { cargo_args } => test::run(&cargo_args),
        Command::Up => up::run(),
        Command::Outbox(OutboxCommand::Republish { service, since, data_dir }) => {
            outbox::republish(&service, data_dir.as_deref(), since.as_deref())
        }
        Command::DeadLetter(DeadLetterCommand::List { service, data_dir }) => {
            deadletter::list(&service, data_dir.as_deref())
        }
        Command::DeadLetter(DeadLetterCommand::Replay { service, seqs, data_dir, nats_url }) => {
            deadletter::replay(&service, data_dir.as_deref(), &nats_url, &seqs)
        }
        Command::Settlement(SettlementCommand::Rebuild { swap, force, data_dir, nats_url }) => {
            settlement::rebuild(data_dir.as_deref(), &nats_url, swap, force)
        }
    };
    result.unwrap_or_else(|err| {
        eprintln!("shopctl: error: {err:#}");
        ExitCode::FAILURE
    })
}

/// The repository root: the directory holding the workspace `Cargo.toml`.
///
/// Taken from the compile-time manifest dir, which is correct because shopctl is only ever run
/// from the checkout it was built in (`./shop` builds it on every call).
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("shopctl lives one level below the workspace root")
}

/// Where project-local tools (the Python venv with nats-server) are installed.
fn tools_dir() -> PathBuf {
    repo_root().join(".tools")
}

/// `<data_dir or .data/<service>>/<service>.db`, the layout `shopctl up` and the services use.
fn service_db(service: &str, dir: Option<&Path>) -> PathBuf {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| data_dir().join(service));
    dir.join(format!("{service}.db"))
}

/// Where `shopctl up` keeps the state of NATS and the services between runs.
fn data_dir() -> PathBuf {
    repo_root().join(".data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_database_follows_the_up_layout() {
        assert!(service_db("svc-order", None).ends_with(".data/svc-order/svc-order.db"));
        assert_eq!(service_db("svc-order", Some(Path::new("/x"))), Path::new("/x/svc-order.db"));
    }
}
