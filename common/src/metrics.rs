//! Prometheus metrics (`metrics` with `metrics-exporter-prometheus`), served at `GET /metrics` in
//! the text exposition format.
//!
//! Names follow Prometheus' conventions: base units (`_seconds`, `_bytes`), `_total` on counters,
//! and only label values from a bounded set (a route's template, never its path; an event type,
//! never an id). Every series carries `service`, as several services share a process in tests.
//! Recording is a few atomic operations on the hot path; rendering happens on a scrape.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_server_request_duration_seconds` | histogram | `service`, `method`, `route`, `status` |
//! | `saga_started_total` | counter | `service` |
//! | `saga_ended_total` | counter | `service`, `outcome` (`paid`, `failed`, `expired`, `cancelled`) |
//! | `consumer_handle_duration_seconds` | histogram | `service`, `consumer`, `event_type` |
//! | `consumer_messages_total` | counter | `service`, `consumer`, `outcome` (`applied`, `duplicate`, `dead_lettered`, `retry`, `not_yet`) |
//! | `consumer_redeliveries_total` | counter | `service`, `consumer` |
//! | `consumer_dead_letters_total` | counter | `service`, `consumer` |
//! | `consumer_attached` | gauge (0/1) | `service`, `consumer` |
//! | `outbox_published_total` | counter | `service` |
//! | `outbox_publish_lag_seconds` | histogram | `service`: commit to JetStream ack |
//! | `outbox_backlog_rows` | gauge | `service`: unpublished rows, at the scrape |
//! | `outbox_oldest_unpublished_age_seconds` | gauge | `service`: 0 when none, at the scrape |
//! | `gateway_requests_total` | counter | `service`, `operation` (`charge`, `refund`), `result` |
//! | `gateway_retries_total` | counter | `service`, `operation` |
//! | `gateway_breaker_state` | gauge | `service`: 0 closed, 1 open (calls refused), 2 half-open (probing) |

use std::{sync::OnceLock, time::Duration};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::db::{Db, now_ms};

pub const HTTP_REQUEST_DURATION: &str = "http_server_request_duration_seconds";
pub const SAGA_STARTED: &str = "saga_started_total";
pub const SAGA_ENDED: &str = "saga_ended_total";
pub const HANDLE_DURATION: &str = "consumer_handle_duration_seconds";
pub const CONSUMER_MESSAGES: &str = "consumer_messages_total";
pub const REDELIVERIES: &str = "consumer_redeliveries_total";
pub const DEAD_LETTERS: &str = "consumer_dead_letters_total";
pub const CONSUMER_ATTACHED: &str = "consumer_attached";
pub const OUTBOX_PUBLISHED: &str = "outbox_published_total";
pub const OUTBOX_PUBLISH_LAG: &str = "outbox_publish_lag_seconds";
pub const OUTBOX_BACKLOG: &str = "outbox_backlog_rows";
pub const OUTBOX_OLDEST_AGE: &str = "outbox_oldest_unpublished_age_seconds";
pub const GATEWAY_REQUESTS: &str = "gateway_requests_total";
pub const GATEWAY_RETRIES: &str = "gateway_retries_total";
pub const GATEWAY_BREAKER_STATE: &str = "gateway_breaker_state";

/// Histogram buckets for every `_seconds` metric: half a millisecond to half a minute (the
/// longest `Prefer: wait`).
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// How often histograms are drained into their buckets when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same handle) and starts its
/// upkeep. Until it is called, recording is a no-op.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed");
        describe();
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            })
            .expect("spawn the metrics upkeep thread");
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(HTTP_REQUEST_DURATION, Unit::Seconds, "HTTP requests served, by route template and status");
    describe_counter!(SAGA_STARTED, "Orders placed: sagas started");
    describe_counter!(SAGA_ENDED, "Sagas ended, by outcome");
    describe_histogram!(HANDLE_DURATION, Unit::Seconds, "Time a consumer's handler took to apply one event");
    describe_counter!(CONSUMER_MESSAGES, "Messages a consumer processed, by outcome");
    describe_counter!(REDELIVERIES, "Messages delivered more than once");
    describe_counter!(DEAD_LETTERS, "Messages dead-lettered");
    describe_gauge!(CONSUMER_ATTACHED, "1 while the durable consumer is attached to its stream");
    describe_counter!(OUTBOX_PUBLISHED, "Outbox rows published and acknowledged by JetStream");
    describe_histogram!(OUTBOX_PUBLISH_LAG, Unit::Seconds, "From an outbox row's commit to its JetStream ack");
    describe_gauge!(OUTBOX_BACKLOG, "Outbox rows not yet published");
    describe_gauge!(OUTBOX_OLDEST_AGE, Unit::Seconds, "Age of the oldest unpublished outbox row");
    describe_counter!(GATEWAY_REQUESTS, "Calls to the payment gateway, by operation and result");
    describe_counter!(GATEWAY_RETRIES, "Gateway calls retried");
    describe_gauge!(GATEWAY_BREAKER_STATE, "The gateway circuit breaker: 0 closed, 1 open, 2 half-open");
}

#[derive(Clone)]
pub(crate) struct ScrapeState {
    service: &'static str,
    db: Db,
}

/// `GET /metrics` of `service`.
pub fn routes(service: &'static str, db: Db) -> Router {
    install();
    Router::new().route("/metrics", get(scrape)).with_state(ScrapeState { service, db })
}

/// The Prometheus text exposition of this process's metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String,
               content_type = "text/plain")))]
pub(crate) async fn scrape(State(s): State<ScrapeState>) -> Response {
    // Sampled here rather than on every write: a count on the outbox's partial index.
    if let Ok(backlog) = s.db.lookup(crate::admin::outbox_backlog) {
        metrics::gauge!(OUTBOX_BACKLOG, "service" => s.service).set(backlog.unpublished as f64);
        let age = backlog.oldest.map_or(0.0, |at| (now_ms() - at).max(0) as f64 / 1000.0);
        metrics::gauge!(OUTBOX_OLDEST_AGE, "service" => s.service).set(age);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], install().render()).into_response()
}

/// Middleware: one histogram sample per request, labelled with the route's template (`/orders/{id}`,
/// or `unmatched` for paths no route serves, so a scan cannot create series).
pub async fn track(service: &'static str, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::histogram!(HTTP_REQUEST_DURATION, "service" => service, "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    res
}

/// The label value of a consumer outcome.
pub fn outcome_label(outcome: &crate::consumer::Outcome) -> &'static str {
    use crate::consumer::Outcome;
    match outcome {
        Outcome::Applied => "applied",
        Outcome::Duplicate => "duplicate",
        Outcome::DeadLettered(_) => "dead_lettered",
        Outcome::Retry(_) => "retry",
        Outcome::NotYet(_) => "not_yet",
    }
}
