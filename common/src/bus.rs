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

/// The stream definition, kept in `replicas` copies (one per cluster node up to 3; see
/// [`crate::config::CommonConfig::nats_replicas`]). Limits retention keeps messages after they
/// are consumed, which both lets JetStream rebuild its dedupe window after a restart and lets a
/// ledger be rebuilt.
pub fn stream_config(replicas: usize) -> stream::Config {
    stream::Config {
        name: STREAM.to_owned(),
        description: Some("msa-shop domain events".to_owned()),
        subjects: STREAM_SUBJECTS.iter().map(|s| (*s).to_owned()).collect(),
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: STREAM_MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Creates or updates the stream with `replicas` copies, retrying while the server (or, on a
/// cluster, its meta leader) is still starting.
pub async fn ensure_stream(js: &jetstream::Context, replicas: usize) -> anyhow::Result<stream::Stream> {
    // Both calls retried: on a cluster just starting, a freshly created stream can take a while
    // to answer (its own leader is elected after the create).
    let ensure = || async {
        js.create_or_update_stream(stream_config(replicas)).await?;
        anyhow::Ok(js.get_stream(STREAM).await?)
    };
    ensure.retry(startup_backoff()).await
}

/// A service that runs as several instances each owning a database of its own: `of` shards,
/// this instance owning shard `shard`. Each order's events go to exactly one shard, chosen by
/// NATS from the order id (`{{partition(of, 1)}}`, FNV-1a of the subject's key, [`Shards::of_key`]).
///
/// The service's shard stream `SHARDS_<SERVICE>` sources from [`STREAM`] the events it reacts to
/// and stores each again as `shard.<service>.<k>.<subject>`; the instance of shard `k` reads
/// `shard.<service>.<k>.>` through its durable `<service>-<k>`. The stream sources from the
/// event stream's beginning when it is created: choose sharding when deploying; splitting an
/// existing database by shard is not built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shards {
    pub shard: u32,
    pub of: u32,
}

impl std::str::FromStr for Shards {
    type Err = String;

    /// `K/N`: shard K (from 0) of N (1 to 64).
    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s.split_once('/').and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((shard, of)) if (1..=64).contains(&of) && shard < of => Ok(Shards { shard, of }),
            _ => Err(format!("`{s}` is not a shard `K/N` with 0 <= K < N <= 64")),
        }
    }
}

impl std::fmt::Display for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.shard, self.of)
    }
}

impl Shards {
    /// The shard stream of `service`: `SHARDS_SVC_PAYMENT` for `svc-payment`.
    pub fn stream_name(service: &str) -> String {
        format!("SHARDS_{}", service.to_ascii_uppercase().replace('-', "_"))
    }

    /// What the subjects of `service`'s shard `shard` start with.
    pub fn prefix(service: &str, shard: u32) -> String {
        format!("shard.{service}.{shard}.")
    }

    /// The shard (of `of`) an event keyed `key` (its subject's last token, the order id) goes
    /// to, as nats-server's `partition` transform computes it: FNV-1a (32 bits) of the key,
    /// modulo `of`. For routing a request to the instance that holds the order.
    pub fn of_key(key: &str, of: u32) -> u32 {
        let hash = key.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        hash % of.max(1)
    }

    /// Whether this instance holds the order keyed `key`.
    pub fn owns(&self, key: &str) -> bool {
        Self::of_key(key, self.of) == self.shard
    }

    /// The shard stream of `service` for the events of `types`, in `replicas` copies.
    pub fn stream_config(&self, service: &str, types: &[EventType], replicas: usize) -> stream::Config {
        let transforms = types
            .iter()
            .map(|t| stream::SubjectTransform {
                source: t.filter_subject(),
                destination: format!("shard.{service}.{{{{partition({},1)}}}}.{t}.{{{{wildcard(1)}}}}", self.of),
            })
            .collect();
        stream::Config {
            name: Self::stream_name(service),
            description: Some(format!("{service}'s events in {} shards by order id", self.of)),
            sources: Some(vec![stream::Source {
                name: STREAM.to_owned(),
                subject_transforms: transforms,
                ..Default::default()
            }]),
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: STREAM_MAX_AGE,
            num_replicas: replicas,
            ..Default::default()
        }
    }

    /// Creates the shard stream, or checks that the existing one has as many shards: changing
    /// the count would move orders between instances that do not share their databases. The
    /// event stream it sources from is the runtime's to declare (at start, before any consumer).
    pub async fn ensure_stream(
        &self,
        js: &jetstream::Context,
        service: &str,
        types: &[EventType],
        replicas: usize,
    ) -> anyhow::Result<stream::Stream> {
        let config = self.stream_config(service, types, replicas);
        let wanted = &config.sources.as_ref().expect("sources")[0].subject_transforms;
        let ensure = || async {
            let stream = match js.get_stream(&config.name).await {
                Ok(stream) => stream,
                Err(e) if not_found(&e) => {
                    js.create_stream(config.clone()).await?;
                    js.get_stream(&config.name).await?
                }
                Err(e) => return Err(e.into()),
            };
            anyhow::Ok(stream)
        };
        let mut stream = ensure.retry(startup_backoff()).await?;
        let info = stream.info().await?;
        let has = info.config.sources.as_ref().and_then(|s| s.first()).map(|s| &s.subject_transforms);
        anyhow::ensure!(
            has == Some(wanted),
            "{} is partitioned differently ({has:?}); this instance expects {} shards: resharding a running \
             service is not supported",
            config.name,
            self.of
        );
        Ok(stream)
    }
}

/// Whether JetStream answered that there is no such stream (rather than not answering).
fn not_found(error: &jetstream::context::GetStreamError) -> bool {
    use jetstream::context::GetStreamErrorKind;
    matches!(error.kind(), GetStreamErrorKind::JetStream(e) if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// How one handler consumes: its durable name and the subjects of the events it reacts to, both
/// taken from the [`Handler`] (so the filter cannot drift from what it handles), and the tuning.
/// A sharded handler ([`ConsumerSpec::shard`]) reads its shard of the service's shard stream.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    durable: String,
    filter_subjects: Vec<String>,
    /// The handler's name and event types, and its shard, when it reads a shard stream.
    sharded: Option<(String, Vec<EventType>, Shards)>,
    /// Deliveries a [`crate::consumer::HandlerError::NotYet`] event waits before it is
    /// dead-lettered as an orphan (1 + 2 + 4 + 8 s of backoff with the default 5). Transient
    /// failures are retried without limit.
    pub patience: i64,
    pub ack_wait: Duration,
    /// The stream's replica count, for declaring it again on reattaching (the consumer inherits it).
    pub replicas: usize,
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
            replicas: 1,
            sharded: None,
        }
    }

    /// The spec of `handler`'s shard `shards.shard`: the durable `<name>-<shard>` on the shard
    /// stream, filtered to that shard's subjects.
    pub fn shard(handler: &dyn Handler, shards: Shards) -> Self {
        let name = handler.name();
        ConsumerSpec {
            durable: format!("{name}-{}", shards.shard),
            filter_subjects: vec![format!("{}>", Shards::prefix(name, shards.shard))],
            sharded: Some((name.to_owned(), handler.consumes().to_vec(), shards)),
            ..Self::of(handler)
        }
    }

    /// The name of the stream this consumer reads.
    pub fn stream_name(&self) -> String {
        match &self.sharded {
            None => STREAM.to_owned(),
            Some((service, _, _)) => Shards::stream_name(service),
        }
    }

    /// The stream this consumer reads, created (or updated) if need be.
    pub async fn ensure_stream(&self, js: &jetstream::Context) -> anyhow::Result<stream::Stream> {
        match &self.sharded {
            None => ensure_stream(js, self.replicas).await,
            Some((service, types, shards)) => shards.ensure_stream(js, service, types, self.replicas).await,
        }
    }

    /// A delivered subject as the event was published: without the shard prefix, if any.
    pub fn event_subject<'a>(&self, subject: &'a str) -> &'a str {
        match &self.sharded {
            None => subject,
            Some((service, _, shards)) => {
                subject.strip_prefix(&Shards::prefix(service, shards.shard)).unwrap_or(subject)
            }
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
            // Two missed heartbeats (4 s) say the pull request is lost, e.g. to a cluster node
            // that died; the consumer then pulls again instead of waiting for the 30 s expiry.
            .heartbeat(Duration::from_secs(2))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_written_k_of_n() {
        assert_eq!("1/2".parse(), Ok(Shards { shard: 1, of: 2 }));
        assert_eq!(Shards { shard: 0, of: 3 }.to_string(), "0/3");
        for bad in ["2/2", "0/0", "1", "-1/2", "0/65", "a/b", ""] {
            assert!(bad.parse::<Shards>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_partition_is_fnv_1a_of_the_key() {
        // The published FNV-1a 32-bit test vectors.
        assert_eq!(Shards::of_key("a", 1_000_003), 0xe40c_292c % 1_000_003);
        assert_eq!(Shards::of_key("foobar", 1_000_003), 0xbf9c_f968 % 1_000_003);
        assert_eq!(Shards::of_key("foobar", 2), 0xbf9c_f968 % 2);
        assert!(Shards { shard: 0, of: 1 }.owns("anything"));
    }

    #[test]
    fn the_shard_stream_moves_each_event_under_its_shard_prefix() {
        let config = Shards { shard: 0, of: 2 }.stream_config("svc-payment", &[EventType::StockReserved], 3);
        assert_eq!(config.name, "SHARDS_SVC_PAYMENT");
        assert_eq!(config.num_replicas, 3);
        let source = &config.sources.expect("sourced")[0];
        assert_eq!(source.name, STREAM);
        assert_eq!(source.subject_transforms[0].source, "stock.reserved.*");
        assert_eq!(
            source.subject_transforms[0].destination,
            "shard.svc-payment.{{partition(2,1)}}.stock.reserved.{{wildcard(1)}}"
        );
        assert!(Shards::prefix("svc-payment", 1).ends_with(".1."));
    }
}
