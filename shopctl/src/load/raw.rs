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

/// Messages per second through a scratch server with `sync_interval` (`None`: the default).
pub async fn publish_rate(
    nats_bin: &Path,
    dir: &Path,
    sync_interval: Option<&str>,
    messages: usize,
    size: usize,
) -> Result<f64> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let conf = dir.join("raw.conf");
    let sync = sync_interval.map(|v| format!("  sync_interval: {v}\n")).unwrap_or_default();
    let store: PathBuf = dir.join("store");
    std::fs::write(
        &conf,
        format!("listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n{sync}}}\n", store.display()),
    )?;
    let mut cmd = Command::new(nats_bin);
    cmd.arg("-c").arg(&conf).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut server = Managed::spawn("scratch nats-server", &mut cmd)?;
    let rate = measure(port, messages, size).await;
    server.kill().await;
    let _ = std::fs::remove_dir_all(dir);
    rate
}

async fn measure(port: u16, messages: usize, size: usize) -> Result<f64> {
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = loop {
        match async_nats::connect(&url).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(20)).await,
            Err(e) => bail!("the scratch nats-server did not answer at {url}: {e}"),
        }
    };
    let js = jetstream::new(client);
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

fn free_port() -> Result<u16> {
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
