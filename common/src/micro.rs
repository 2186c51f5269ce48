//! Every service on the NATS services API (`async_nats::service`): `nats micro ls`, `info` and
//! `stats` list the five services with their versions and endpoints, and the saga console
//! (svc-order) reads every other service's figures and dead letters through these endpoints,
//! never over HTTP. Started by [`crate::runtime::Runtime::serving`].
//!
//! Endpoints, all JSON, on `ops.<service>.<endpoint>` ([`subject`]):
//!
//! | endpoint       | request                    | answer                                             |
//! |----------------|----------------------------|----------------------------------------------------|
//! | `stats`        | (none)                     | [`ServiceStats`]: outbox, consumer lag, dead letters, extras |
//! | `dead-letters` | `{"limit", "seq"}` (both optional) | [`DeadLetters`]: the newest first, and the counts  |
//! | `republish`    | `{"subject", "payload"}`   | `{"messageId"}`: the payload into this service's outbox |
//! | `replayed`     | `{"messageId"}` or `{"seq"}` | `{"marked": [seq...]}`: dead letters marked replayed |
//!
//! plus what a service adds itself ([`Ops::endpoint`], e.g. svc-user's `login`). Who may ask is
//! NATS's business (`crate::permissions`): only svc-order (the console) and the operator may
//! publish on `ops.>`; each service subscribes to its own endpoints and answers through
//! `allow_responses`. `republish` takes only subjects its service owns: a replayed dead letter
//! is published again by the owner of its subject, like any event of that owner.
//!
//! An error answer carries the NATS service error headers: the code is the HTTP status it
//! stands for, the description `<CODE>: <detail>` ([`OpsError`]).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_nats::service::ServiceExt;
use bytes::Bytes;
use futures_util::{StreamExt, future::BoxFuture};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{
    admin::{DeadLetter, OutboxBacklog, dead_letter_from, outbox_backlog},
    db::{Db, DbError, now_ms},
    permissions,
};

/// The first token of every endpoint's subject.
pub const PREFIX: &str = "ops";

/// The subject of `service`'s `endpoint`.
pub fn subject(service: &str, endpoint: &str) -> String {
    format!("{PREFIX}.{service}.{endpoint}")
}

/// An endpoint's refusal: `status` is the HTTP status it stands for, `code` a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct OpsError {
    pub status: u16,
    pub code: String,
    pub detail: String,
}

impl OpsError {
    pub fn new(status: u16, code: &str, detail: impl Into<String>) -> Self {
        OpsError { status, code: code.to_owned(), detail: detail.into() }
    }

    fn bad_request(detail: impl Into<String>) -> Self {
        OpsError::new(400, "BAD_REQUEST", detail)
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "ops endpoint failed");
        OpsError::new(500, "INTERNAL", "the service could not answer")
    }

    /// Back from the service error headers of an answer.
    fn from_answer(code: &str, description: &str) -> Self {
        let status = code.parse().unwrap_or(500);
        match description.split_once(": ") {
            Some((code, detail)) => OpsError::new(status, code, detail),
            None => OpsError::new(status, "ERROR", description),
        }
    }
}

impl From<crate::http::ApiError> for OpsError {
    fn from(e: crate::http::ApiError) -> Self {
        OpsError::new(e.status().as_u16(), e.code().as_str(), e.detail())
    }
}

impl From<DbError> for OpsError {
    fn from(e: DbError) -> Self {
        OpsError::internal(e)
    }
}

impl From<rusqlite::Error> for OpsError {
    fn from(e: rusqlite::Error) -> Self {
        OpsError::internal(e)
    }
}

/// Answers one request: its payload in, a JSON answer out.
pub type Handler = Arc<dyn Fn(Bytes) -> BoxFuture<'static, Result<Value, OpsError>> + Send + Sync>;
/// A figure a service adds to its [`ServiceStats`] (svc-payment: its gateway's breaker).
pub type Extra = Arc<dyn Fn() -> Value + Send + Sync>;

/// What a service adds to the endpoints every service has.
#[derive(Clone, Default)]
pub struct Ops {
    endpoints: Vec<(&'static str, Handler)>,
    extras: Vec<(&'static str, Extra)>,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoints: Vec<_> = self.endpoints.iter().map(|(name, _)| *name).collect();
        let extras: Vec<_> = self.extras.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Ops").field("endpoints", &endpoints).field("extras", &extras).finish()
    }
}

impl Ops {
    /// Adds the endpoint `name`, answered by `handler` with the request's JSON body.
    pub fn endpoint<Req, Fut, Ans>(&mut self, name: &'static str, handler: impl Fn(Req) -> Fut + Send + Sync + 'static)
    where
        Req: DeserializeOwned + Send + 'static,
        Fut: Future<Output = Result<Ans, OpsError>> + Send + 'static,
        Ans: Serialize,
    {
        self.endpoints.push((name, typed(handler)));
    }

    /// Adds `figure()` to every `stats` answer, under `name`.
    pub fn extra(&mut self, name: &'static str, figure: impl Fn() -> Value + Send + Sync + 'static) {
        self.extras.push((name, Arc::new(figure)));
    }
}

/// An empty body (or `null`) reads as `{}`, so requests without parameters need none.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, OpsError> {
    let body = if body.trim_ascii().is_empty() || body.trim_ascii() == b"null" { b"{}".as_slice() } else { body };
    serde_json::from_slice(body)
        .map_err(|e| OpsError::bad_request(format!("the request is not what the endpoint takes: {e}")))
}

/// One durable consumer's backlog on the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerLag {
    pub name: String,
    /// Messages of its filter not yet delivered.
    pub pending: u64,
    /// Delivered, not yet acknowledged.
    pub ack_pending: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterCount {
    pub total: i64,
    pub unreplayed: i64,
}

/// A service's figures, as its `stats` endpoint answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStats {
    pub service: String,
    pub version: String,
    pub outbox: OutboxBacklog,
    /// `None` when JetStream did not answer (the figure is unknown, not zero).
    pub consumers: Option<Vec<ConsumerLag>>,
    pub dead_letters: DeadLetterCount,
    /// What the process's consumers have seen since it started.
    pub counters: CountersView,
    /// The service's own figures ([`Ops::extra`]), by name.
    #[serde(default)]
    pub extras: BTreeMap<String, Value>,
}

/// [`crate::consumer::Stats`], readable back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountersView {
    pub redeliveries: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
}

/// The `dead-letters` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetters {
    pub count: DeadLetterCount,
    /// The newest first, at most the limit asked for.
    pub items: Vec<DeadLetter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLettersRequest {
    #[serde(default = "default_limit")]
    limit: u32,
    /// Just this one (the answer's `items` is empty if there is none).
    seq: Option<i64>,
}

fn default_limit() -> u32 {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepublishRequest {
    subject: String,
    payload: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Republished {
    pub message_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplayedRequest {
    message_id: Option<String>,
    seq: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Marked {
    pub marked: Vec<i64>,
}

/// What the endpoints every service has work on.
#[derive(Clone)]
struct Context {
    service: &'static str,
    db: Db,
    js: async_nats::jetstream::Context,
    /// Each durable consumer, with the stream it reads (the event stream, or a shard stream).
    durables: Vec<(String, String)>,
    extras: Vec<(&'static str, Extra)>,
}

/// Registers the service `service` (version `version`) and answers its endpoints until `stop`.
/// Retries the registration while NATS is unreachable; a service keeps running without it.
pub async fn serve(
    service: &'static str,
    version: &'static str,
    nats: async_nats::Client,
    db: Db,
    durables: Vec<(String, String)>,
    ops: Ops,
    stop: CancellationToken,
) {
    let js = async_nats::jetstream::new(nats.clone());
    let ctx = Context { service, db, js, durables, extras: ops.extras.clone() };
    let mut endpoints: Vec<(&'static str, Handler)> = vec![
        ("stats", handler(ctx.clone(), stats)),
        ("dead-letters", handler(ctx.clone(), dead_letters)),
        ("republish", handler(ctx.clone(), republish)),
        ("replayed", handler(ctx.clone(), replayed)),
    ];
    endpoints.extend(ops.endpoints);
    let mut delay = Duration::from_millis(200);
    let registered = loop {
        let attempt = register(service, version, &nats, &endpoints);
        tokio::select! {
            _ = stop.cancelled() => return,
            r = attempt => match r {
                Ok(registered) => break registered,
                Err(error) => {
                    tracing::warn!(%error, "cannot register on the NATS services API; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    };
    let (micro, streams) = registered;
    tracing::debug!(service, "registered on the NATS services API");
    let tasks = tokio_util::task::TaskTracker::new();
    for (mut requests, handler) in streams {
        let stop = stop.clone();
        let inner = tasks.clone();
        tasks.spawn(async move {
            loop {
                let request = tokio::select! {
                    _ = stop.cancelled() => break,
                    r = requests.next() => match r { Some(r) => r, None => break },
                };
                let handler = handler.clone();
                // Concurrently: a slow answer (a login's hash) never holds up the others.
                inner.spawn(async move {
                    let answer = match handler(request.message.payload.clone()).await {
                        Ok(value) => Ok(Bytes::from(value.to_string())),
                        Err(e) => {
                            Err(async_nats::service::error::Error { code: e.status as usize, status: e.to_string() })
                        }
                    };
                    if let Err(error) = request.respond(answer).await {
                        tracing::debug!(%error, "could not answer an ops request");
                    }
                });
            }
        });
    }
    tasks.close();
    tasks.wait().await;
    let _ = micro.stop().await;
}

type Registered = (async_nats::service::Service, Vec<(async_nats::service::endpoint::Endpoint, Handler)>);

async fn register(
    service: &'static str,
    version: &'static str,
    nats: &async_nats::Client,
    endpoints: &[(&'static str, Handler)],
) -> Result<Registered, async_nats::Error> {
    let micro = nats
        .service_builder()
        .description(format!("msa-shop {service}: figures, dead letters and replays for the saga console"))
        .start(service, version)
        .await?;
    let group = micro.group(format!("{PREFIX}.{service}"));
    let mut streams = Vec::with_capacity(endpoints.len());
    for (name, handler) in endpoints {
        // Named plainly (`stats`, not `ops-svc-order-stats`): `nats micro info` lists them so.
        streams.push((group.endpoint_builder().name(*name).add(*name).await?, handler.clone()));
    }
    Ok((micro, streams))
}

/// A [`Handler`] of a typed function: the request's JSON parsed into `Req` (a 400 if it is not
/// one), the answer serialised.
fn typed<Req, Fut, Ans>(handler: impl Fn(Req) -> Fut + Send + Sync + 'static) -> Handler
where
    Req: DeserializeOwned + Send + 'static,
    Fut: Future<Output = Result<Ans, OpsError>> + Send + 'static,
    Ans: Serialize,
{
    let handler = Arc::new(handler);
    Arc::new(move |body: Bytes| {
        let request = parse::<Req>(&body);
        let handler = handler.clone();
        Box::pin(async move {
            let answer = handler(request?).await?;
            serde_json::to_value(answer).map_err(OpsError::internal)
        })
    })
}

/// One of the endpoints every service has, over `ctx`.
fn handler<Req, Fut, Ans>(ctx: Context, f: fn(Context, Req) -> Fut) -> Handler
where
    Req: DeserializeOwned + Send + 'static,
    Fut: Future<Output = Result<Ans, OpsError>> + Send + 'static,
    Ans: Serialize,
{
    typed(move |request| f(ctx.clone(), request))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParameters {}

async fn stats(ctx: Context, _: NoParameters) -> Result<ServiceStats, OpsError> {
    let (outbox, dead_letters) =
        ctx.db.read(|c| Ok::<_, DbError>((outbox_backlog(c)?, count_dead_letters(c)?))).await?;
    let consumers = consumer_lag(&ctx.js, &ctx.durables).await;
    let counters = crate::consumer::stats();
    Ok(ServiceStats {
        service: ctx.service.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        outbox,
        consumers,
        dead_letters,
        counters: CountersView {
            redeliveries: counters.redeliveries,
            duplicates: counters.duplicates,
            dead_lettered: counters.dead_lettered,
        },
        extras: ctx.extras.iter().map(|(name, figure)| ((*name).to_owned(), figure())).collect(),
    })
}

async fn consumer_lag(js: &async_nats::jetstream::Context, durables: &[(String, String)]) -> Option<Vec<ConsumerLag>> {
    let mut lags = Vec::with_capacity(durables.len());
    for (stream, durable) in durables {
        let stream = js.get_stream_no_info(stream).await.ok()?;
        let info = tokio::time::timeout(Duration::from_secs(2), stream.consumer_info(durable)).await.ok()?.ok()?;
        lags.push(ConsumerLag {
            name: durable.clone(),
            pending: info.num_pending,
            ack_pending: info.num_ack_pending as u64,
        });
    }
    Some(lags)
}

/// How many dead letters there are, and how many of them were never replayed.
pub fn count_dead_letters(conn: &Connection) -> rusqlite::Result<DeadLetterCount> {
    conn.prepare_cached("SELECT count(*), count(*) FILTER (WHERE replayed_at IS NULL) FROM dead_letter")?
        .query_row([], |r| Ok(DeadLetterCount { total: r.get(0)?, unreplayed: r.get(1)? }))
}

async fn dead_letters(ctx: Context, request: DeadLettersRequest) -> Result<DeadLetters, OpsError> {
    let limit = request.limit.clamp(1, 1000);
    let (count, items) = ctx
        .db
        .read(move |c| {
            let items = c
                .prepare_cached(
                    "SELECT seq, consumer, subject, message_id, stream_seq, deliveries, reason, payload, created_at,
                            replayed_at
                     FROM dead_letter WHERE ?2 IS NULL OR seq = ?2 ORDER BY seq DESC LIMIT ?1",
                )?
                .query_map(params![limit, request.seq], dead_letter_from)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok::<_, DbError>((count_dead_letters(c)?, items))
        })
        .await?;
    Ok(DeadLetters { count, items })
}

/// The service that owns (alone may publish) `subject`, by the permissions' table.
pub fn owner_of(subject: &str) -> Option<&'static str> {
    permissions::SERVICES.iter().find(|s| s.publishes.iter().any(|p| covers(p, subject))).map(|s| s.name)
}

/// Whether the NATS subject pattern `pattern` (`stock.>`, at most a trailing `>`) covers the
/// literal `subject`.
fn covers(pattern: &str, subject: &str) -> bool {
    match pattern.strip_suffix('>') {
        Some(prefix) => subject.len() > prefix.len() && subject.starts_with(prefix),
        None => pattern == subject,
    }
}

/// A subject an event may be published on: dot-separated non-empty tokens, no wildcards, no
/// whitespace.
fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= 256
        && subject.split('.').all(|t| {
            !t.is_empty() && !t.contains(['*', '>']) && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        })
}

async fn republish(ctx: Context, request: RepublishRequest) -> Result<Republished, OpsError> {
    if !valid_subject(&request.subject) {
        return Err(OpsError::new(422, "INVALID_SUBJECT", format!("`{}` is not a subject", request.subject)));
    }
    if owner_of(&request.subject) != Some(ctx.service) {
        return Err(OpsError::new(
            403,
            "NOT_OWNER",
            format!("{} does not publish on {}; its owner does", ctx.service, request.subject),
        ));
    }
    if let Err(e) = serde_json::from_str::<Value>(&request.payload) {
        return Err(OpsError::new(422, "INVALID_PAYLOAD", format!("the payload is not JSON: {e}")));
    }
    // A fresh message id: the original may still be inside JetStream's dedupe window. Consumers
    // that applied the event before skip it by its envelope id.
    let id = uuid::Uuid::now_v7().to_string();
    let row = (id.clone(), request.subject.clone(), request.payload.into_bytes());
    ctx.db
        .write(move |tx| {
            crate::outbox::append_raw(tx, &row.0, &row.1, &row.2)?;
            Ok::<_, DbError>(())
        })
        .await?;
    tracing::warn!(subject = request.subject, msg.id = id, "event published again through the ops API");
    Ok(Republished { message_id: id })
}

async fn replayed(ctx: Context, request: ReplayedRequest) -> Result<Marked, OpsError> {
    let marked = ctx
        .db
        .write(move |tx| {
            let now = now_ms();
            let marked = match (&request.message_id, request.seq) {
                (Some(id), None) => tx
                    .prepare_cached(
                        "UPDATE dead_letter SET replayed_at = ?1 WHERE message_id = ?2 AND replayed_at IS NULL
                         RETURNING seq",
                    )?
                    .query_map(params![now, id], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?,
                (None, Some(seq)) => tx
                    .prepare_cached("UPDATE dead_letter SET replayed_at = ?1 WHERE seq = ?2 RETURNING seq")?
                    .query_map(params![now, seq], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?,
                _ => return Err(OpsError::bad_request("give either `messageId` or `seq`")),
            };
            Ok(marked)
        })
        .await?;
    Ok(Marked { marked })
}

/// Asks `service`'s `endpoint` with `body`, waiting at most `timeout`.
pub async fn request<Ans: DeserializeOwned>(
    nats: &async_nats::Client,
    service: &str,
    endpoint: &str,
    body: &impl Serialize,
    timeout: Duration,
) -> Result<Ans, OpsError> {
    let payload = Bytes::from(serde_json::to_vec(body).map_err(OpsError::internal)?);
    let asked = nats.request(subject(service, endpoint), payload);
    let answer = match tokio::time::timeout(timeout, asked).await {
        Err(_) => return Err(OpsError::new(504, "NO_ANSWER", format!("{service} did not answer within {timeout:?}"))),
        Ok(Err(e)) => return Err(OpsError::new(503, "UNREACHABLE", format!("{service}: {e}"))),
        Ok(Ok(answer)) => answer,
    };
    if let Some(headers) = &answer.headers
        && let Some(code) = headers.get(async_nats::service::NATS_SERVICE_ERROR_CODE)
    {
        let description = headers.get(async_nats::service::NATS_SERVICE_ERROR).map(|v| v.as_str()).unwrap_or("");
        return Err(OpsError::from_answer(code.as_str(), description));
    }
    serde_json::from_slice(&answer.payload).map_err(|e| OpsError::new(502, "BAD_ANSWER", format!("{service}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_has_the_owner_the_permissions_give_it() {
        assert_eq!(owner_of("order.created.1"), Some("svc-order"));
        assert_eq!(owner_of("stock.reserved.1"), Some("svc-product"));
        assert_eq!(owner_of("payment.completed.1"), Some("svc-payment"));
        assert_eq!(owner_of("settlement.closed.2026-12-01"), Some("svc-settlement"));
        assert_eq!(owner_of("user.registered.1"), Some("svc-user"));
        assert_eq!(owner_of("orders.created.1"), None);
        assert_eq!(owner_of("order"), None);
    }

    #[test]
    fn only_literal_subjects_are_valid() {
        assert!(valid_subject("order.created.0193"));
        for bad in ["", "order..created", "order.*.x", "order.>", "order.created x", ".order", "order."] {
            assert!(!valid_subject(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_error_survives_the_headers() {
        let e = OpsError::new(422, "INVALID_PAYLOAD", "the payload is not JSON: x");
        assert_eq!(OpsError::from_answer(&e.status.to_string(), &e.to_string()), e);
        assert_eq!(OpsError::from_answer("503", "no colon"), OpsError::new(503, "ERROR", "no colon"));
    }

    #[test]
    fn an_empty_request_reads_as_an_empty_object() {
        assert!(parse::<NoParameters>(b"").is_ok());
        assert!(parse::<NoParameters>(b" \n").is_ok());
        assert!(parse::<NoParameters>(b"null").is_ok());
        assert_eq!(parse::<DeadLettersRequest>(b"{\"limit\": 5}").unwrap().limit, 5);
        assert_eq!(parse::<NoParameters>(b"{\"x\":1}").unwrap_err().status, 400);
    }
}
