//! Reading the stream's history: an ephemeral ordered consumer filtered to some subjects, from
//! the stream's first message through the last sequence the rebuild started at.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::Ordered, pull::OrderedConfig},
};
use futures_util::StreamExt;

/// Longest wait for the next message before the replay gives up.
const IDLE: Duration = Duration::from_secs(30);

/// The stream's messages on some subjects, in stream order, up to a fixed sequence.
pub struct History {
    /// `None` once the last message at or before `last_seq` has been read.
    messages: Option<Ordered>,
    last_seq: u64,
}

impl History {
    /// Opens the history of `subjects` through stream sequence `last_seq`.
    pub async fn open(js: &jetstream::Context, subjects: &[String], last_seq: u64) -> anyhow::Result<History> {
        let stream = js.get_stream(common::bus::STREAM).await.context("opening the event stream")?;
        let config = OrderedConfig {
            filter_subjects: subjects.to_vec(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await?;
        let messages = if last_seq == 0 || consumer.cached_info().num_pending == 0 {
            None
        } else {
            Some(consumer.messages().await?)
        };
        Ok(History { messages, last_seq })
    }

    /// The next message and its stream sequence, or `None` at the end.
    pub async fn next(&mut self) -> anyhow::Result<Option<(u64, jetstream::Message)>> {
        let Some(messages) = self.messages.as_mut() else { return Ok(None) };
        let next = tokio::time::timeout(IDLE, messages.next()).await.context("the stream stopped delivering")?;
        let msg = next.context("the replay consumer ended early")??;
        let info = msg.info().map_err(|e| anyhow::anyhow!("message without JetStream metadata: {e}"))?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        // Events published after the rebuild started are not part of it.
        if seq > self.last_seq {
            self.messages = None;
            return Ok(None);
        }
        if pending == 0 || seq == self.last_seq {
            self.messages = None;
        }
        Ok(Some((seq, msg)))
    }
}
