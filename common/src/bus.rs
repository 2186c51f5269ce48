//! JetStream topology, declared in code and applied idempotently at start-up.
//!
//! One stream holds every domain event; each service reads it through its own durable pull
//! consumer filtered to the subjects it reacts to. `nats/README.md` documents the same topology
//! for people with a `nats` CLI.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};

use crate::{consumer::Handler, event::EventType};
use backon::{ExponentialBuilder, Retryable};

/// The stream of every domain event.
pub const STREAM: &str = "SHOP_EVENTS";
/// Subjects captured by [`STREAM`], one wildcard per aggregate.
pub const STREAM_SUBJECTS: &[&str] = &["user.>", "order.>", "stock.>", "payment.>", "settlement.>"];
/// How long events stay in the stream (and so how far back a consumer can be rebuilt).
pub const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// JetStream's publish dedupe window for `Nats-Msg-Id`. The consumers' processed tables are the
/// real guarantee; the window only saves work.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Who a client is to NATS (see [`crate::permissions`]): a user and its password, from
/// configuration. Credentials in the URL (`nats://user:password@host`) work as well.
#[derive(Clone, Default, clap::Args)]
pub struct NatsAuth {
    /// The NATS user this process connects as (each service has its own).
    #[arg(long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// Its password.
    #[arg(long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let password = self.password.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsAuth").field("user", &self.user).field("password", &password).finish()
    }
}

impl NatsAuth {
    pub fn new(user: &str, password: &str) -> Self {
        NatsAuth { user: Some(user.to_owned()), password: Some(password.to_owned()) }
    }
}

/// Connects to NATS as `auth`'s user. `url` may list several servers separated by commas
/// (async-nats does not split them itself). Replies arrive on the user's own inbox prefix, the
/// only one its permissions let it read. The client reconnects forever on its own once connected.
pub async fn connect(url: &str, name: &str, auth: &NatsAuth) -> anyhow::Result<async_nats::Client> {
    let servers: Vec<async_nats::ServerAddr> = url.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
    let mut options = async_nats::ConnectOptions::new().name(name).retry_on_initial_connect();
    let user = auth.user.clone().or_else(|| servers.first().and_then(|s| s.username()).map(str::to_owned));
    if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(user) = user {
        options = options.custom_inbox_prefix(crate::permissions::inbox_prefix(&user));
    }
    Ok(options.connect(servers).await?)
}

/// The stream definition. Limits retention keeps messages after they are consumed, which both
/// lets JetStream rebuild its dedupe window after a restart and lets a ledger be rebuilt.
pub fn stream_config() -> stream::Config {
    stream::Config {
        name: STREAM.to_owned(),
        description: Some("msa-shop domain events".to_owned()),
        subjects: STREAM_SUBJECTS.iter().map(|s| (*s).to_owned()).collect(),
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: STREAM_MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// Creates or updates the stream, retrying while the server is still starting.
pub async fn ensure_stream(js: &jetstream::Context) -> anyhow::Result<stream::Stream> {
    let create = || async { js.create_or_update_stream(stream_config()).await };
    create.retry(startup_backoff()).await?;
    Ok(js.get_stream(STREAM).await?)
}

/// How one handler consumes: its durable name and the subjects of the events it reacts to, both
/// taken from the [`Handler`] (so the filter cannot drift from what it handles), and the tuning.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    durable: String,
    filter_subjects: Vec<String>,
    /// Deliveries a [`crate::consumer::HandlerError::NotYet`] event waits before it is
    /// dead-lettered as an orphan (1 + 2 + 4 + 8 s of backoff with the default 5). Transient
    /// failures are retried without limit.
    pub patience: i64,
    pub ack_wait: Duration,
}

/// The subject filter selecting exactly the events of `types`.
pub fn filter_subjects(types: &[EventType]) -> Vec<String> {
    types.iter().map(|t| t.filter_subject()).collect()
}

impl ConsumerSpec {
    /// The spec of `handler`'s durable consumer: named after it, filtered to exactly the event
    /// types it declares.
    pub fn of(handler: &dyn Handler) -> Self {
        ConsumerSpec {
            durable: handler.name().to_owned(),
            filter_subjects: filter_subjects(handler.consumes()),
            patience: 5,
            ack_wait: Duration::from_secs(30),
        }
    }

    pub fn durable(&self) -> &str {
        &self.durable
    }

    pub fn filter_subjects(&self) -> &[String] {
        &self.filter_subjects
    }

    pub fn config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.durable.clone()),
            description: Some(format!("{} reactions", self.durable)),
            filter_subjects: self.filter_subjects.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_wait: self.ack_wait,
            // No limit: the server never gives up on a message by itself. Only the consumer ends
            // its deliveries (`Term`), and only once its dead-letter row is written.
            max_deliver: -1,
            ..Default::default()
        }
    }

    /// Creates or updates the durable consumer on the stream.
    pub async fn ensure(&self, stream: &stream::Stream) -> anyhow::Result<pull::Stream> {
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream.create_consumer(self.config()).await?;
        Ok(consumer
            .stream()
            .max_messages_per_batch(crate::consumer::BATCH)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?)
    }
}

/// Backoff for start-up calls against a server that may still be coming up.
pub fn startup_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(30)
}
