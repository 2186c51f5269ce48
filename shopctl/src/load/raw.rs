//! The machine's raw JetStream publish rate: what the saga's throughput is measured against.
//!
//! A scratch nats-server of its own (loopback, a free port, its own store, no accounts), one
//! file-backed stream, and `messages` publishes of `size` bytes, each with its own `Nats-Msg-Id`
//! as the relays send them, pipelined with at most [`IN_FLIGHT`] acks outstanding.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use tokio::process::Command;
use tokio::time::{Instant, sleep};

use crate::proc::Managed;

/// Publishes awaiting their ack at most (the relay's batch).
pub const IN_FLIGHT: usize = 256;

/// The JetStream sync setting of `nats/nats-server.conf`: the value of its `sync_interval`, or
/// `None` when it has none (the server's default, 2 minutes).
pub fn configured_sync_interval(conf: &Path) -> Result<Option<String>> {
    let text = std::fs::read_to_string(conf).with_context(|| format!("cannot read {}", conf.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find_map(|l| l.strip_prefix("sync_interval"))
        .map(|v| v.trim_start_matches([':', '=', ' ']).trim().trim_matches('"').to_owned()))
}

/// A nats-server of the run's own: loopback, a free port, its own store in `dir`, no accounts.
pub struct Scratch {
    server: Managed,
    pub url: String,
    dir: PathBuf,
}

impl Scratch {
    /// Starts one with JetStream's `sync_interval` (`None`: the default) and waits until it
    /// accepts clients.
    pub async fn start(nats_bin: &Path, dir: &Path, sync_interval: Option<&str>) -> Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let conf = dir.join("scratch.conf");
        let sync = sync_interval.map(|v| format!("  sync_interval: {v}\n")).unwrap_or_default();
        let store = dir.join("store");
        std::fs::write(
            &conf,
            format!("listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n{sync}}}\n", store.display()),
        )?;
        let mut cmd = Command::new(nats_bin);
        cmd.arg("-c").arg(&conf).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let server = Managed::spawn("scratch nats-server", &mut cmd)?;
        let scratch = Scratch { server, url: format!("nats://127.0.0.1:{port}"), dir: dir.to_owned() };
        drop(scratch.connect().await?);
        Ok(scratch)
    }

    /// A client of it, retrying while it starts (10 s at most).
    pub async fn connect(&self) -> Result<async_nats::Client> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match async_nats::connect(&self.url).await {
                Ok(c) => return Ok(c),
                Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(20)).await,
                Err(e) => bail!("the scratch nats-server did not answer at {}: {e}", self.url),
            }
        }
    }

    /// Kills it and removes its store.
    pub async fn stop(mut self) {
        self.server.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The two raw publish rates.
#[derive(Debug, Clone)]
pub struct Raw {
    pub size: usize,
    pub messages: usize,
    pub default_sync: f64,
    /// The project's `sync_interval`; `None`: it sets none (the default).
    pub project_sync: Option<String>,
    pub project: f64,
}

impl Raw {
    /// Measures both rates, one scratch server in `dir` after the other: `messages` publishes of
    /// `size` bytes with the default sync interval, then with `project_sync` (`None`: the default
    /// too, so measured once).
    pub async fn measure(
        nats_bin: &Path,
        dir: &Path,
        project_sync: Option<&str>,
        messages: usize,
        size: usize,
    ) -> Result<Raw> {
        eprintln!("load: measuring the raw JetStream publish rate ({messages} messages of {size} B)");
        let mut rates = Vec::new();
        for sync in [None, project_sync] {
            if let (None, Some(&default)) = (sync, rates.first()) {
                rates.push(default);
                continue;
            }
            let scratch = Scratch::start(nats_bin, dir, sync).await?;
            let rate = measure(&scratch, messages, size).await;
            scratch.stop().await;
            rates.push(rate?);
        }
        let project_sync = project_sync.map(str::to_owned);
        Ok(Raw { size, messages, default_sync: rates[0], project_sync, project: rates[1] })
    }

    pub fn print(&self) {
        println!(
            "raw JetStream publish rate ({} messages of {} B, {} in flight): {:.0}/s with the default sync \
             interval; {:.0}/s with the project's ({})",
            self.messages,
            self.size,
            IN_FLIGHT,
            self.default_sync,
            self.project,
            self.project_sync
                .as_deref()
                .map_or_else(|| "none set: the default".to_owned(), |s| format!("sync_interval {s}"))
        );
    }
}

async fn measure(scratch: &Scratch, messages: usize, size: usize) -> Result<f64> {
    let js = jetstream::new(scratch.connect().await?);
    js.create_stream(stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("creating the scratch stream")?;
    let payload: bytes::Bytes = vec![b'x'; size].into();
    // A warm-up the figure leaves out: connections, the stream's first block.
    publish(&js, &payload, messages / 10, "warm").await?;
    let started = Instant::now();
    publish(&js, &payload, messages, "run").await?;
    Ok(messages as f64 / started.elapsed().as_secs_f64())
}

async fn publish(js: &jetstream::Context, payload: &bytes::Bytes, n: usize, tag: &str) -> Result<()> {
    let mut acks: VecDeque<PublishAckFuture> = VecDeque::with_capacity(IN_FLIGHT);
    for i in 0..n {
        if acks.len() == IN_FLIGHT
            && let Some(ack) = acks.pop_front()
        {
            ack.await?;
        }
        let msg = PublishMessage::build().payload(payload.clone()).message_id(format!("{tag}-{i}"));
        acks.push_back(js.send_publish(format!("raw.{}", i % 16), msg).await?);
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_interval_is_read_from_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("n.conf");
        std::fs::write(&conf, "jetstream {\n  # sync_interval: always\n  sync_interval: 1s\n}\n").unwrap();
        assert_eq!(configured_sync_interval(&conf).unwrap().as_deref(), Some("1s"));
        std::fs::write(&conf, "jetstream {\n  sync_interval: \"always\" # fsync each write\n}\n").unwrap();
        assert_eq!(configured_sync_interval(&conf).unwrap().as_deref(), Some("always"));
        std::fs::write(&conf, "jetstream {\n  store_dir: x\n}\n").unwrap();
        assert_eq!(configured_sync_interval(&conf).unwrap(), None);
    }
}
