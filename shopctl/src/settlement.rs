//! `shopctl settlement rebuild`: rebuild svc-settlement's ledger from the event stream and compare
//! it with the live one (see `svc_settlement::rebuild`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

/// Replays the stream into `<data_dir>/svc-settlement.rebuild.db` and compares; with `swap`,
/// replaces the live database (svc-settlement must be stopped) if the rebuild only adds to it,
/// or whatever it found with `force`. Settings the service reads from
/// the environment (`TIME_ZONE`, `FEE_RATE_BPS`) are read the same way here.
pub fn rebuild(data_dir: &Path, nats_url: &str, swap: bool, force: bool) -> Result<ExitCode> {
    let dir = data_dir.to_str().context("the data directory is not UTF-8")?;
    let mut config =
        svc_settlement::Config::try_parse_from(["svc-settlement", "--data-dir", dir, "--nats-url", nats_url])?;
    // The rebuild reads the stream through consumers of its own: the operator's right.
    config.common.nats_auth = crate::credentials::Credentials::operator();
    let summary = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(svc_settlement::rebuild::run(&config, svc_settlement::rebuild::Options { swap, force }))?;
    println!("{summary}");
    Ok(if summary.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
