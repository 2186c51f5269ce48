//! `shopctl api-check`: schemathesis against every service's OpenAPI document, on a stack of
//! its own (`.data/api-check/`, ports shifted by `--port-offset`, logs in `logs/`).
//!
//! Each service's `/openapi.json` is fuzzed with schemathesis (pinned, installed into the
//! project venv): generated requests, valid and invalid, with an admin's token, checked for what
//! the issue asks: no 5xx (`not_a_server_error`), and no answer the document does not describe
//! (its status, content type, headers and body schema). Exits non-zero with schemathesis's report
//! on any finding.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::audit;
use crate::browser;
use crate::checkout::Checkout;
use crate::own_stack;
use crate::up::{self, Layout, Stack};

/// The schemathesis the documents are checked with.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// What an answer must not do: the "no 5xx, no response that contradicts the document".
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// The services with a document, as `./shop up` names them.
const SERVICES: [&str; 5] = ["svc-user", "svc-product", "svc-order", "svc-payment", "svc-settlement"];

/// What `shopctl api-check` is told.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Added to every port `./shop up` uses, so both can run at once.
    #[arg(long, default_value_t = 18_000)]
    pub port_offset: u16,
    /// Use the binaries in this folder (e.g. `target/debug`) instead of building release ones.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where the run keeps its state and logs (emptied first); default `.data/api-check`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Generated requests per operation.
    #[arg(long, default_value_t = 25)]
    pub max_examples: u32,
    /// The generator's seed: the same seed sends the same requests.
    #[arg(long, default_value_t = 14)]
    pub seed: u64,
}

pub fn run(checkout: &Checkout, options: &Options) -> Result<ExitCode> {
    // Before the stack: installing can take a minute, and needs none of it.
    let python = browser::ensure_packages(checkout, &[("schemathesis", SCHEMATHESIS_VERSION)])?;
    let schemathesis = python.with_file_name("schemathesis");
    own_stack::block_on(check(checkout, options, &schemathesis))?
}

async fn check(checkout: &Checkout, options: &Options, schemathesis: &Path) -> Result<ExitCode> {
    let root = options.data_dir.clone().unwrap_or_else(|| checkout.data_dir().join("api-check"));
    let env = vec![("SEED_DEMO".into(), "true".into())];
    let layout = own_stack::layout(root.clone(), options.port_offset, env, options.bin_dir.clone())?;
    let failed = own_stack::with_stack("api-check", async |stack: &mut Stack| {
        fuzz(checkout, stack, &layout, options, schemathesis, &root).await
    })
    .await?;
    if failed.is_empty() {
        println!("api-check: PASSED (schemathesis {SCHEMATHESIS_VERSION}: {} services, nothing found)", SERVICES.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("api-check: FAILED: schemathesis found problems in {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// Runs schemathesis on each service; returns the services it found something in.
async fn fuzz(
    checkout: &Checkout,
    stack: &mut Stack,
    layout: &Layout,
    options: &Options,
    schemathesis: &Path,
    root: &Path,
) -> Result<Vec<&'static str>> {
    up::launch(checkout, stack, layout, &layout.nats_url(), true).await?;
    let endpoints = own_stack::endpoints(layout);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let admin = audit::login(&http, &endpoints.user, audit::DEV_ADMIN_EMAIL, audit::DEV_ADMIN_PASSWORD).await?;
    own_stack::until_tokens_accepted(&http, &endpoints, &admin).await?;
    let mut failed = Vec::new();
    for service in SERVICES {
        let base = layout.url(service);
        eprintln!("api-check: schemathesis on {service} ({base}/openapi.json)");
        let mut cmd = tokio::process::Command::new(schemathesis);
        cmd.current_dir(root)
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args(["--checks", CHECKS])
            .args(["--max-examples", &options.max_examples.to_string(), "--seed", &options.seed.to_string()])
            .args(["--phases", "examples,coverage,fuzzing", "--workers", "2", "--request-timeout", "40"])
            // It sets failpoints: the faults it would inject would break the rest of the run
            // (and a failpoint's effects are what the fault tests check, not this).
            .args(["--exclude-path", "/admin/failpoints/{name}"])
            .args(["--no-color", "--generation-database", "none"])
            .arg("--header")
            .arg(format!("Authorization: Bearer {admin}"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let status = cmd.status().await.with_context(|| format!("cannot run {}", schemathesis.display()))?;
        if !status.success() {
            failed.push(service);
        }
    }
    Ok(failed)
}
