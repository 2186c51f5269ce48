//! How soon each service is ready once started: from its spawn to the first `200` of
//! `/health/ready` (connected to NATS, its database open and migrated, its consumers and relay
//! started), polled every millisecond.
//!
//! Each binary the load stack runs is started twice on a scratch nats-server of its own (so the
//! stack's figures are not disturbed, and nothing the stack holds is touched): on an empty data
//! folder (a first start: the database created, the stream and consumers too), then again on
//! that folder (a restart).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::Command;
use tokio::time::{Instant, sleep};

use super::raw::{Scratch, free_port};
use crate::audit::{DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD};
use crate::proc::Managed;

/// The longest a start may take before it counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A service's time to ready.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub first_start: Duration,
    pub restart: Duration,
}

/// Starts each of `binaries` (service name, path) twice, one after the other, with its output in
/// `logs`; returns each one's times.
pub async fn measure(
    nats_bin: &Path,
    dir: &Path,
    logs: &Path,
    binaries: &[(String, PathBuf)],
) -> Result<BTreeMap<String, Ready>> {
    let scratch = Scratch::start(nats_bin, &dir.join("nats"), None).await?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).pool_max_idle_per_host(0).build()?;
    let mut times = BTreeMap::new();
    for (name, bin) in binaries {
        let data = dir.join(name);
        std::fs::create_dir_all(&data)?;
        let first_start = start(&http, name, bin, &scratch.url, &data, logs).await;
        let restart = match first_start {
            Ok(_) => start(&http, name, bin, &scratch.url, &data, logs).await,
            Err(_) => Ok(Duration::ZERO),
        };
        match (first_start, restart) {
            (Ok(first_start), Ok(restart)) => {
                times.insert(name.clone(), Ready { first_start, restart });
            }
            (Err(e), _) | (_, Err(e)) => {
                scratch.stop().await;
                return Err(e.context(format!("measuring how soon {name} is ready")));
            }
        }
    }
    scratch.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(times)
}

/// Starts `bin` on `data`, waits for its first `200` on `/health/ready`, stops it; returns the
/// time from spawn to ready.
async fn start(
    http: &reqwest::Client,
    name: &str,
    bin: &Path,
    nats_url: &str,
    data: &Path,
    logs: &Path,
) -> Result<Duration> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(format!("ready-{name}.log")))
        .context("cannot open the readiness log")?;
    let mut cmd = Command::new(bin);
    cmd.env("NATS_URL", nats_url)
        .env("HTTP_ADDR", &addr)
        .env("DATA_DIR", data)
        // Never called while it starts; nothing listens there.
        .env("GATEWAY_URL", format!("http://127.0.0.1:{}", free_port()?))
        .env("SEED_DEMO", "false")
        // The scratch server has no accounts.
        .env_remove("NATS_USER")
        .env_remove("NATS_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .process_group(0);
    for (var, value) in [("ADMIN_EMAIL", DEV_ADMIN_EMAIL), ("ADMIN_PASSWORD", DEV_ADMIN_PASSWORD)] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, value);
        }
    }
    let spawned = Instant::now();
    let mut child = Managed::spawn(name, &mut cmd)?;
    let url = format!("http://{addr}/health/ready");
    let ready = loop {
        if let Ok(res) = http.get(&url).send().await
            && res.status().is_success()
        {
            break Ok(spawned.elapsed());
        }
        if let Some(status) = child.try_exit_status() {
            break Err(anyhow::anyhow!("{name} exited ({status}) before it was ready"));
        }
        if spawned.elapsed() > READY_TIMEOUT {
            break Err(anyhow::anyhow!("{name} was not ready within {} s", READY_TIMEOUT.as_secs()));
        }
        sleep(Duration::from_millis(1)).await;
    };
    child.terminate()?;
    if child.wait_until(Instant::now() + Duration::from_secs(10)).await.is_none() {
        child.kill().await;
        bail!("{name} did not stop within 10 s of SIGTERM");
    }
    ready
}
