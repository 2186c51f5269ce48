//! The admin routes every service serves on top of its own, merged in by
//! [`crate::runtime::Runtime::serving`]: what its outbox still holds, what its consumers refused,
//! and its failpoints. Admins only: 401 without a valid token, 403 for any other role.
//!
//! | route                             | answer                                                    |
//! |-----------------------------------|-----------------------------------------------------------|
//! | `GET /admin/outbox`               | `{"unpublished": n, "oldest": ms or null}`                |
//! | `GET /admin/dead-letters`         | page of dead letters, oldest first                        |
//! | `GET /admin/consumers`            | `{"redeliveries", "duplicates", "deadLettered"}` so far   |
//! | `GET /admin/failpoints`           | `[{"name", "actions", "hits"}]` of this service           |
//! | `PUT /admin/failpoints/{name}`    | `{"actions": "return"}` sets, `{"actions": "off"}` clears |

use axum::{
    Router,
    extract::{FromRef, State},
    routing::{get, put},
};
use rusqlite::{Connection, Row};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    Role,
    auth::{AuthUser, Verifier},
    db::{Db, time_at},
    faults,
    http::{ApiError, Code, Json, Path, Query},
    paging::{Page, PageQuery, Paging},
};

#[derive(Debug, Clone, FromRef)]
pub(crate) struct AdminState {
    db: Db,
    verifier: Verifier,
    #[from_ref(skip)]
    service: &'static str,
}

/// The admin routes of the service `service`, over its database.
pub fn routes(service: &'static str, db: Db, verifier: Verifier) -> Router {
    Router::new()
        .route("/admin/outbox", get(outbox))
        .route("/admin/dead-letters", get(dead_letters))
        .route("/admin/consumers", get(consumers))
        .route("/admin/failpoints", get(failpoints))
        .route("/admin/failpoints/{name}", put(set_failpoint))
        .with_state(AdminState { db, verifier, service })
}

/// The outbox's backlog: how many rows wait for the relay, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxBacklog {
    pub unpublished: i64,
    /// `created_at` (unix milliseconds) of the oldest unpublished row.
    pub oldest: Option<i64>,
}

/// A message a consumer refused, as `GET /admin/dead-letters` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub seq: i64,
    pub consumer: String,
    pub subject: String,
    pub message_id: Option<String>,
    pub stream_seq: i64,
    pub deliveries: i64,
    pub reason: String,
    /// The message body, lossily decoded as UTF-8.
    pub payload: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When `shopctl dead-letter replay` published it again.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub replayed_at: Option<OffsetDateTime>,
}

/// A failpoint of this service, as `GET /admin/failpoints` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Failpoint {
    pub name: String,
    pub actions: String,
    pub hits: u64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailpointBody {
    actions: String,
}

fn admin(user: AuthUser) -> Result<(), ApiError> {
    user.require(&[Role::Admin])
}

#[utoipa::path(get, path = "/admin/outbox", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "The outbox rows not yet published", body = OutboxBacklog),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn outbox(State(db): State<Db>, user: AuthUser) -> Result<Json<OutboxBacklog>, ApiError> {
    admin(user)?;
    Ok(Json(db.read(outbox_backlog).await?))
}

#[utoipa::path(get, path = "/admin/dead-letters", tag = "operations", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of dead letters, oldest first", body = Page<DeadLetter>),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn dead_letters(
    State(db): State<Db>,
    user: AuthUser,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page<DeadLetter>>, ApiError> {
    admin(user)?;
    let paging = query.parse()?;
    let (items, total) = db.read(move |c| list_dead_letters(c, paging)).await?;
    Ok(Json(Page::new(items, paging, total)))
}

/// What the process's consumers have seen since it started (see [`crate::consumer::Stats`]).
#[utoipa::path(get, path = "/admin/consumers", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "What this process's consumers have seen since it started", body = crate::consumer::Stats),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn consumers(user: AuthUser) -> Result<Json<crate::consumer::Stats>, ApiError> {
    admin(user)?;
    Ok(Json(crate::consumer::stats()))
}

#[utoipa::path(get, path = "/admin/failpoints", tag = "operations", security(("bearer" = [])),
    responses(
        (status = 200, description = "This service's failpoints", body = Vec<Failpoint>),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn failpoints(
    State(state): State<AdminState>,
    user: AuthUser,
) -> Result<Json<Vec<Failpoint>>, ApiError> {
    admin(user)?;
    let prefix = format!("{}.", state.service);
    let points = faults::list()
        .into_iter()
        .filter(|(name, _, _)| name.starts_with(&prefix))
        .map(|(name, actions, hits)| Failpoint { name, actions, hits })
        .collect();
    Ok(Json(points))
}

/// Sets (or, with `off`, clears) a failpoint. `name` is the full `<service>.<point>`, or just
/// the point, meaning this service's.
#[utoipa::path(put, path = "/admin/failpoints/{name}", tag = "operations", security(("bearer" = [])),
    params(("name" = String, Path, description = "`<service>.<point>`, or the point alone")),
    request_body = FailpointBody,
    responses(
        (status = 200, description = "The failpoint as set", body = Failpoint),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: not an admin", body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn set_failpoint(
    State(state): State<AdminState>,
    user: AuthUser,
    Path(name): Path<String>,
    Json(body): Json<FailpointBody>,
) -> Result<Json<Failpoint>, ApiError> {
    admin(user)?;
    let name = if faults::ALL.contains(&name.as_str()) { faults::name(state.service, &name) } else { name };
    let actions = body.actions.trim().to_owned();
    faults::configure(&name, &actions).map_err(|e| ApiError::invalid(Code::BadRequest, "actions", e))?;
    if actions == "off" {
        faults::clear(&name);
    }
    tracing::warn!(failpoint = name, actions, "failpoint configured through the admin API");
    Ok(Json(Failpoint { hits: faults::hits(&name), name, actions }))
}

/// How many outbox rows are unpublished, and the creation time of the oldest.
pub fn outbox_backlog(conn: &Connection) -> rusqlite::Result<OutboxBacklog> {
    conn.query_row("SELECT count(*), min(created_at) FROM outbox WHERE published_at IS NULL", [], |r| {
        Ok(OutboxBacklog { unpublished: r.get(0)?, oldest: r.get(1)? })
    })
}

/// One page of dead letters, oldest first, and how many there are.
pub fn list_dead_letters(conn: &Connection, paging: Paging) -> rusqlite::Result<(Vec<DeadLetter>, i64)> {
    let tx = conn.unchecked_transaction()?;
    let total = tx.query_row("SELECT count(*) FROM dead_letter", [], |r| r.get(0))?;
    let items = tx
        .prepare_cached(
            "SELECT seq, consumer, subject, message_id, stream_seq, deliveries, reason, payload, created_at,
                    replayed_at
             FROM dead_letter ORDER BY seq LIMIT ?1 OFFSET ?2",
        )?
        .query_map([paging.limit(), paging.offset()], dead_letter_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.finish()?;
    Ok((items, total))
}

pub(crate) fn dead_letter_from(r: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    let payload: Vec<u8> = r.get(7)?;
    Ok(DeadLetter {
        seq: r.get(0)?,
        consumer: r.get(1)?,
        subject: r.get(2)?,
        message_id: r.get(3)?,
        stream_seq: r.get(4)?,
        deliveries: r.get(5)?,
        reason: r.get(6)?,
        payload: String::from_utf8_lossy(&payload).into_owned(),
        created_at: time_at(r, 8)?,
        replayed_at: r.get::<_, Option<i64>>(9)?.map(|_| time_at(r, 9)).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plumbing() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../migrations/0001_plumbing.sql")).unwrap();
        conn
    }

    #[test]
    fn the_backlog_counts_unpublished_rows_and_dates_the_oldest() {
        let conn = plumbing();
        assert_eq!(outbox_backlog(&conn).unwrap(), OutboxBacklog { unpublished: 0, oldest: None });
        conn.execute_batch(
            "INSERT INTO outbox (id, subject, payload, created_at, published_at) VALUES
                 ('a', 's', x'7b7d', 10, 11), ('b', 's', x'7b7d', 20, NULL), ('c', 's', x'7b7d', 30, NULL);",
        )
        .unwrap();
        assert_eq!(outbox_backlog(&conn).unwrap(), OutboxBacklog { unpublished: 2, oldest: Some(20) });
    }

    #[test]
    fn dead_letters_are_listed_oldest_first_with_their_payload_as_text() {
        let conn = plumbing();
        conn.execute_batch(
            "INSERT INTO dead_letter (consumer, subject, message_id, stream_seq, deliveries, reason, payload,
                                      created_at, replayed_at) VALUES
                 ('c', 'order.created.1', 'm1', 7, 1, 'undecodable', x'6869ff', 1000, NULL),
                 ('c', 'order.created.2', NULL, 8, 5, 'poison', x'7b7d', 2000, 3000);",
        )
        .unwrap();
        let (items, total) = list_dead_letters(&conn, Paging { page: 1, size: 20 }).unwrap();
        assert_eq!(total, 2);
        assert_eq!(items[0].payload, "hi\u{FFFD}");
        assert_eq!((items[0].message_id.as_deref(), items[0].replayed_at), (Some("m1"), None));
        assert_eq!(items[1].seq, 2);
        assert!(items[1].replayed_at.is_some());
        let (second, _) = list_dead_letters(&conn, Paging { page: 2, size: 1 }).unwrap();
        assert_eq!(second[0].subject, "order.created.2");
    }
}
