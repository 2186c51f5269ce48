//! The console's live views: the overview (computed at most once a second, however many pages
//! are open), the feed and the stuck list (per page, for its filters), pushed as server-sent
//! events every second; and one saga's timeline. Only reads, on the read pool: the saga's writer
//! never waits for the console.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use common::{
    db::{Db, DbError, now, now_ms},
    http::{ApiError, Code, Json, Path, Query, path_id},
    micro::{self, ServiceStats},
    permissions::SERVICES,
};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::{sync::Mutex, time::Instant};
use uuid::Uuid;

use super::{
    Admin, ConsoleState,
    view::{self, LastEvent, Overview, SagaSummary, ServiceStatus, TimelineEvent},
};
use crate::{
    domain::{OrderStatus, causal_order},
    store::{self, SagaFilter},
};
use common::openapi::Problem;

/// How often the stream pushes.
const TICK: Duration = Duration::from_secs(1);
/// How long the overview waits for each service's `stats`.
const STATS_TIMEOUT: Duration = Duration::from_millis(800);
const FEED_LIMIT: usize = 50;
const STUCK_LIMIT: usize = 100;
const DEFAULT_STUCK_SECS: u64 = 10;

/// The overview, shared by every open console and recomputed when a second old.
#[derive(Clone, Debug, Default)]
pub struct Live {
    last: Arc<Mutex<Option<Computed>>>,
}

/// An overview and when it was computed.
type Computed = (Instant, Arc<Overview>);

impl Live {
    async fn overview(&self, db: &Db, nats: &async_nats::Client) -> Result<Arc<Overview>, ApiError> {
        // Held while computing: a second page waits for this answer instead of asking again.
        let mut last = self.last.lock().await;
        if let Some((at, overview)) = last.as_ref()
            && at.elapsed() < TICK - Duration::from_millis(100)
        {
            return Ok(overview.clone());
        }
        let overview = Arc::new(compute_overview(db, nats).await?);
        *last = Some((Instant::now(), overview.clone()));
        Ok(overview)
    }
}

async fn compute_overview(db: &Db, nats: &async_nats::Client) -> Result<Overview, ApiError> {
    let since = now_ms() - view::RATE_WINDOW_SECS * 1000;
    let db_part = db.read(move |c| Ok::<_, DbError>((store::count_by_status(c)?, store::placed_since(c, since)?)));
    let asks = SERVICES.iter().map(|s| async move {
        ServiceStatus::of(s.name, micro::request::<ServiceStats>(nats, s.name, "stats", &(), STATS_TIMEOUT).await)
    });
    let (db_part, services) = tokio::join!(db_part, futures_util::future::join_all(asks));
    let (counts, placed) = db_part?;
    Ok(Overview {
        at: now(),
        sagas: view::by_state(&counts),
        orders_per_second: placed as f64 / view::RATE_WINDOW_SECS as f64,
        services,
    })
}

/// Sagas by state, the order rate and every service's figures.
///
/// Computed at most once a second however many pages ask; a service that does not answer
/// `stats` within 0.8 s is `up: false` with the `error`. For an `ADMIN` session: the console's
/// session cookie (`shop_console`, set by `POST /console/api/login`) or `Authorization: Bearer`.
#[utoipa::path(get, path = "/console/api/overview", tag = "svc-order",
    security(("bearer" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The overview", body = Overview),
        (status = 401, description = super::UNAUTHENTICATED, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = super::NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn overview(State(state): State<ConsoleState>, _: Admin) -> Result<Json<Overview>, ApiError> {
    Ok(Json(Overview::clone(&*state.live.overview(&state.db, &state.nats).await?)))
}

/// The feed's filters, as the query gives them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedQuery {
    state: Option<String>,
    user: Option<String>,
    product: Option<String>,
    limit: Option<usize>,
    stuck_secs: Option<u64>,
}

impl FeedQuery {
    fn filter(&self) -> Result<SagaFilter, ApiError> {
        let id = |raw: &Option<String>, field: &str| {
            raw.as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    Uuid::parse_str(s.trim())
                        .map_err(|_| ApiError::invalid(Code::InvalidQuery, field, format!("`{s}` is not a UUID")))
                })
                .transpose()
        };
        let status = self
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                OrderStatus::parse(s)
                    .ok_or_else(|| ApiError::invalid(Code::InvalidQuery, "state", format!("`{s}` is no order state")))
            })
            .transpose()?;
        Ok(SagaFilter { status, user_id: id(&self.user, "user")?, product_id: id(&self.product, "product")? })
    }

    fn stuck_secs(&self) -> u64 {
        self.stuck_secs.unwrap_or(DEFAULT_STUCK_SECS).clamp(1, 86_400)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Sagas {
    sagas: Vec<SagaSummary>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stuck {
    older_than_secs: u64,
    sagas: Vec<SagaSummary>,
}

async fn feed(db: &Db, filter: SagaFilter, limit: usize) -> Result<Sagas, ApiError> {
    let sagas = db
        .read(move |c| {
            let orders = store::recent_orders(c, filter, limit)?;
            summaries(c, &orders)
        })
        .await?;
    Ok(Sagas { sagas })
}

async fn stuck_sagas(db: &Db, older_than_secs: u64) -> Result<Stuck, ApiError> {
    let before = now_ms() - older_than_secs as i64 * 1000;
    let sagas = db
        .read(move |c| {
            let orders = store::stuck_orders(c, before, STUCK_LIMIT)?;
            summaries(c, &orders)
        })
        .await?;
    Ok(Stuck { older_than_secs, sagas })
}

fn summaries(c: &rusqlite::Connection, orders: &[crate::domain::Order]) -> Result<Vec<SagaSummary>, DbError> {
    let at = now();
    orders
        .iter()
        .map(|o| {
            let last = store::last_saga_event(c, o.id)?.map(|(event_type, producer, occurred_at)| LastEvent {
                event_type,
                producer,
                occurred_at,
            });
            Ok(SagaSummary::of(o, last, at))
        })
        .collect()
}

/// The most recently updated sagas, newest first, of a state, user and product (each optional).
///
/// For an `ADMIN` session: the console's session cookie (`shop_console`, set by
/// `POST /console/api/login`) or `Authorization: Bearer`.
#[utoipa::path(get, path = "/console/api/sagas", tag = "svc-order",
    security(("bearer" = []), ("console_session" = [])),
    params(
        ("state" = Option<OrderStatus>, Query, description = "Only sagas in this state"),
        ("user" = Option<Uuid>, Query, description = "Only this user's sagas"),
        ("product" = Option<Uuid>, Query, description = "Only sagas of this product"),
        ("limit" = Option<u64>, Query, description = "How many (default 50, taken as 1 to 500)"),
    ),
    responses(
        (status = 200, description = "The feed", body = Sagas),
        (status = 400, description = "`INVALID_QUERY`: a `state` that is no order state, a `user` or `product` that \
         is not a UUID, an unknown parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = super::UNAUTHENTICATED, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = super::NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn sagas(State(db): State<Db>, _: Admin, Query(query): Query<FeedQuery>) -> Result<Json<Sagas>, ApiError> {
    let limit = query.limit.unwrap_or(FEED_LIMIT).clamp(1, 500);
    Ok(Json(feed(&db, query.filter()?, limit).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StuckQuery {
    older_than_secs: Option<u64>,
}

/// The stuck sagas: still running, and placed more than `olderThanSecs` ago.
///
/// Every saga still `PENDING` or `STOCK_RESERVED`, stalest first, at most 100. For an `ADMIN` session: the console's session cookie (`shop_console`, set by
/// `POST /console/api/login`) or `Authorization: Bearer`.
#[utoipa::path(get, path = "/console/api/stuck", tag = "svc-order",
    security(("bearer" = []), ("console_session" = [])),
    params(("olderThanSecs" = Option<u64>, Query, description = "Placed more than this long ago (default 10, taken as 1 to 86400)")),
    responses(
        (status = 200, description = "The stuck sagas", body = Stuck),
        (status = 401, description = super::UNAUTHENTICATED, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = super::NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stuck(State(db): State<Db>, _: Admin, Query(query): Query<StuckQuery>) -> Result<Json<Stuck>, ApiError> {
    let secs = query.older_than_secs.unwrap_or(DEFAULT_STUCK_SECS).clamp(1, 86_400);
    Ok(Json(stuck_sagas(&db, secs).await?))
}

/// One event of `GET /console/api/stream` as a client parses it: the document's schema for the
/// stream is one event's (OpenAPI 3.1 has no `itemSchema`), which is how schemathesis reads it.
#[derive(utoipa::ToSchema)]
#[schema(as = ConsoleStreamEvent)]
#[allow(dead_code)] // a schema only: the events themselves are axum's `Event`s
pub struct StreamEvent {
    #[schema(pattern = "^(overview|feed|stuck)$", example = "overview")]
    event: String,
    /// A JSON object: an `overview` as `GET /console/api/overview` answers, a `feed` `{sagas}`, a
    /// `stuck` `{olderThanSecs, sagas}`.
    data: String,
}

/// Server-sent events: `overview` every second, `feed` and `stuck` when they changed.
///
/// `overview` (as `GET /console/api/overview`) every second, `feed` (`{sagas}`, as
/// `GET /console/api/sagas` with the same filters) and `stuck` (`{olderThanSecs, sagas}`) whenever
/// they changed, checked every second, until the page goes away or the service stops (the page
/// then reconnects). A round that fails is skipped; the next one tries again. For an `ADMIN`
/// session: the console's session cookie (`shop_console`, set by `POST /console/api/login`: an
/// `EventSource` cannot send an `Authorization` header) or `Authorization: Bearer`.
#[utoipa::path(get, path = "/console/api/stream", tag = "svc-order",
    security(("bearer" = []), ("console_session" = [])),
    params(
        ("state" = Option<OrderStatus>, Query, description = "The feed's: only sagas in this state"),
        ("user" = Option<Uuid>, Query, description = "The feed's: only this user's sagas"),
        ("product" = Option<Uuid>, Query, description = "The feed's: only sagas of this product"),
        ("stuckSecs" = Option<u64>, Query, description = "The stuck list's `olderThanSecs` (default 10, taken as 1 to 86400)"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream` of `overview`, `feed` and `stuck` events, \
         each `data` a JSON object (the schema is one event's)", content_type = "text/event-stream", body = StreamEvent),
        (status = 400, description = "`INVALID_QUERY`: a `state` that is no order state, a `user` or `product` that \
         is not a UUID, an unknown parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = super::UNAUTHENTICATED, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = super::NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream(
    State(state): State<ConsoleState>,
    _: Admin,
    Query(query): Query<FeedQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = query.filter()?;
    let stuck_secs = query.stuck_secs();
    struct Round {
        state: ConsoleState,
        tick: tokio::time::Interval,
        queued: std::collections::VecDeque<Event>,
        last_feed: String,
        last_stuck: String,
    }
    let round = Round {
        state,
        tick: tokio::time::interval(TICK),
        queued: Default::default(),
        last_feed: String::new(),
        last_stuck: String::new(),
    };
    let events = futures_util::stream::unfold(round, move |mut r| async move {
        while r.queued.is_empty() {
            tokio::select! {
                _ = r.tick.tick() => {}
                // The service is stopping: end the stream (the page reconnects to the next one).
                _ = r.state.stop.cancelled() => return None,
            }
            let (overview, feed, stuck) = tokio::join!(
                r.state.live.overview(&r.state.db, &r.state.nats),
                feed(&r.state.db, filter, FEED_LIMIT),
                stuck_sagas(&r.state.db, stuck_secs)
            );
            if let Ok(overview) = overview
                && let Ok(data) = serde_json::to_string(&*overview)
            {
                r.queued.push_back(Event::default().event("overview").data(data));
            }
            for (name, part, last) in [
                ("feed", feed.ok().and_then(|f| serde_json::to_string(&f).ok()), &mut r.last_feed),
                ("stuck", stuck.ok().and_then(|s| serde_json::to_string(&s).ok()), &mut r.last_stuck),
            ] {
                if let Some(data) = part
                    && data != *last
                {
                    r.queued.push_back(Event::default().event(name).data(data.clone()));
                    *last = data;
                }
            }
        }
        let next = r.queued.pop_front().map(Ok);
        next.map(|e| (e, r))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// One saga: its order (if svc-order holds one) and every event recorded for it, causes first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SagaTimeline)]
pub struct Saga {
    /// `null` for a saga svc-order holds events but no order for.
    order: Option<SagaSummary>,
    events: Vec<TimelineEvent>,
    /// The commands that show the saga's events in a terminal as they happen.
    watch: Vec<String>,
}

/// One saga's timeline: its order, its events in causal order, how to watch it.
///
/// For an `ADMIN` session: the console's session cookie (`shop_console`, set by
/// `POST /console/api/login`) or `Authorization: Bearer`.
#[utoipa::path(get, path = "/console/api/sagas/{id}", tag = "svc-order",
    security(("bearer" = []), ("console_session" = [])),
    params(("id" = String, Path, description = "The saga's order id (a UUID)")),
    responses(
        (status = 200, description = "The saga", body = Saga),
        (status = 401, description = super::UNAUTHENTICATED, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = super::NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`ORDER_NOT_FOUND`: neither an order nor events with this id, or not a UUID",
         body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn saga(State(db): State<Db>, _: Admin, Path(id): Path<String>) -> Result<Json<Saga>, ApiError> {
    let not_found = || ApiError::new(Code::OrderNotFound, "no saga with this id");
    let id = path_id(&id, not_found)?;
    let (order, events) = db
        .read(move |c| {
            let order = store::find_order(c, id)?;
            let order = match order {
                Some(o) => summaries(c, std::slice::from_ref(&o))?.pop(),
                None => None,
            };
            Ok::<_, DbError>((order, store::saga_events_with_envelopes(c, id)?))
        })
        .await?;
    if order.is_none() && events.is_empty() {
        return Err(not_found());
    }
    let (events, mut envelopes): (Vec<_>, std::collections::HashMap<Uuid, serde_json::Value>) = events
        .into_iter()
        .map(|(e, envelope)| {
            let id = e.id;
            (e, (id, envelope))
        })
        .unzip();
    let ordered = causal_order(events)
        .into_iter()
        .map(|e| {
            let envelope = envelopes.remove(&e.id).unwrap_or_default();
            (e, envelope)
        })
        .collect();
    Ok(Json(Saga { order, events: view::timeline(ordered), watch: view::watch_lines(id) }))
}
