//! HTTP plumbing shared by every service: one error type with one wire shape
//! (`application/problem+json`, RFC 9457, with a stable `code`), extractors that turn bad input
//! into such problems, the common layers (request id, tracing, body limit), health routes, and
//! the server that serves them within timeouts and a connection cap ([`serve`]).

mod error;
mod serve;

use axum::{
    Router,
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection, rejection::PathRejection},
    http::{HeaderName, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Serialize, de::DeserializeOwned};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};

pub use self::{
    error::{ApiError, Code},
    serve::{Limits, serve},
};

/// A path's `{id}` as a UUID. Anything else names no such resource, so it answers as a missing
/// one does, with `not_found`'s 404: a caller cannot tell a malformed id from an unknown one.
/// Taken from the path as text (`Path<String>`) so that a handler judges its body first.
pub fn path_id(raw: &str, not_found: fn() -> ApiError) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| not_found())
}
use crate::db::Db;

/// Largest request body any endpoint accepts.
pub const BODY_LIMIT: usize = 64 * 1024;
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `axum::Json`, but its rejections are problems: 400 malformed JSON, 415 wrong content type,
/// 413 too large, 422 when the JSON does not fit the expected shape (the field is named).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_problem(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde's message names the field, e.g. "missing field `email` at line 1 column 2".
            let detail = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.body_text());
            let field = field_in(&detail);
            let err = ApiError::new(Code::InvalidBody, detail);
            match field {
                Some(field) => err.with_field(field),
                None => err,
            }
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::new(Code::MalformedJson, e.body_text()),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::new(Code::UnsupportedMediaType, "expected Content-Type: application/json")
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(Code::PayloadTooLarge, format!("request bodies are limited to {BODY_LIMIT} bytes"))
        }
        other => ApiError::new(Code::BadRequest, other.body_text()),
    }
}

/// The request field a deserialisation message is about. axum prefixes serde's message with the
/// path of the value at fault (`quantity: invalid type ...`); at the top level (`.`) only a missing
/// or unknown field names one, in backquotes (`missing field `email``).
fn field_in(message: &str) -> Option<String> {
    let (path, rest) = match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path, rest),
        _ => (".", message),
    };
    if path != "." {
        return Some(path.to_owned());
    }
    if !(rest.starts_with("missing field") || rest.starts_with("unknown field")) {
        return None;
    }
    let start = rest.find('`')? + 1;
    let len = rest[start..].find('`')?;
    Some(rest[start..start + len].to_owned())
}

/// `axum::extract::Path` with a 400 problem (or 404 for a path that cannot be an id).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::new(Code::NotFound, format!("no such resource: {}", e.body_text())))
            }
            Err(other) => Err(ApiError::new(Code::BadRequest, other.body_text())),
        }
    }
}

/// `axum::extract::Query` with a 400 `INVALID_QUERY` problem.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))
    }
}

/// What readiness depends on: NATS connected, a token-verification key known (else every
/// signed-in request would be refused), every durable consumer attached, the database
/// answering, and the outbox's backlog at most `max_backlog` rows (beyond it the relay is not
/// keeping up, or cannot publish: events this instance takes on would wait).
#[derive(Clone, Debug)]
pub struct Readiness {
    pub db: Db,
    pub nats: async_nats::Client,
    pub verifier: crate::auth::Verifier,
    pub consumers: Vec<crate::consumer::Attached>,
    pub max_backlog: i64,
}

/// One check of `/health/ready`, as it answers: `{"name": "nats", "ok": false, "detail": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Readiness {
    /// Every check, failing or not, in a fixed order: `nats`, `keys`, `consumer:<name>` each,
    /// `database`, `outbox`.
    pub async fn checks(&self) -> Vec<Check> {
        let check = |name: &str, ok: bool, detail: String| Check { name: name.to_owned(), ok, detail };
        let mut checks = Vec::new();
        let state = self.nats.connection_state();
        let connected = state == async_nats::connection::State::Connected;
        checks.push(check("nats", connected, if connected { "connected".into() } else { format!("{state}") }));
        // Right after a start, until the key watch has read svc-user's key from the bucket.
        let keys = self.verifier.key_count();
        let detail = if keys > 0 { format!("{keys} known") } else { "none known yet: tokens are refused".into() };
        checks.push(check("keys", keys > 0, detail));
        for c in &self.consumers {
            let ok = c.is_attached();
            let detail = if ok { "attached" } else { "not attached to the stream" };
            checks.push(check(&format!("consumer:{}", c.consumer()), ok, detail.into()));
        }
        match self.db.ping().await {
            Ok(()) => checks.push(check("database", true, "answers".into())),
            Err(e) => checks.push(check("database", false, format!("unavailable: {e}"))),
        }
        let max = self.max_backlog;
        match self.db.read(crate::admin::outbox_backlog).await {
            Ok(b) if b.unpublished <= max => {
                checks.push(check("outbox", true, format!("{} unpublished (at most {max})", b.unpublished)))
            }
            Ok(b) => checks.push(check("outbox", false, format!("{} unpublished, over {max}", b.unpublished))),
            Err(e) => checks.push(check("outbox", false, format!("unreadable: {e}"))),
        }
        checks
    }
}

/// Wraps a service's routes with health checks, problem fallbacks, request ids, trace context,
/// metrics, tracing and the body limit. Header values (tokens) and bodies (passwords) are never
/// logged.
pub fn finish_router(service: &'static str, routes: Router, readiness: Readiness) -> Router {
    let ready = Router::new().route("/health/ready", get(ready)).with_state(readiness);
    finish(service, routes, ready)
}

/// [`finish_router`] with a readiness check of the caller's own (`ready` serves
/// `/health/ready`): for a process without a bus, such as the payment gateway.
pub fn finish(service: &'static str, routes: Router, ready: Router) -> Router {
    let health = Router::new().route("/health/live", get(live)).merge(ready);
    routes
        .merge(health)
        .fallback(|| async { ApiError::new(Code::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        // Inside the routing (a `Router::layer` wraps each route), so it sees the route template.
        .layer(axum::middleware::from_fn(move |req, next| crate::metrics::track(service, req, next)))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let request_id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    let trace_id = req.extensions().get::<crate::trace::TraceContext>().map(|c| c.trace_id());
                    tracing::info_span!("http", http.method = %req.method(), http.path = %req.uri().path(),
                        request.id = %request_id, trace_id = trace_id.as_deref().unwrap_or("-"))
                })
                // One line per request at the default level; a 500's cause is logged once, where
                // `ApiError::internal` is built, so the layer's own failure line is off.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .on_failure(()),
        )
        // Outside the trace layer, whose span takes the request's trace id from it.
        .layer(axum::middleware::from_fn(crate::trace::http))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process runs", body = String, content_type = "text/plain")))]
pub(crate) async fn live() -> &'static str {
    "ok"
}

/// 200 with every check when the service can do its work; 503 `NOT_READY` naming the checks that
/// fail (`checks` lists them all).
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready: every check passes", body = Vec<Check>),
        (status = 503, description = "`NOT_READY`: `detail` names the failing checks, `checks` lists every check",
         body = crate::openapi::Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn ready(
    axum::extract::State(r): axum::extract::State<Readiness>,
) -> Result<Json<Vec<Check>>, ApiError> {
    let checks = r.checks().await;
    let failing: Vec<String> = checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    if failing.is_empty() {
        return Ok(Json(checks));
    }
    let checks = serde_json::to_value(&checks).unwrap_or_default();
    Err(ApiError::new(Code::NotReady, format!("not ready: {}", failing.join("; "))).with_member("checks", checks))
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    #[test]
    fn the_field_is_read_from_serde_messages() {
        assert_eq!(field_in(".: missing field `email` at line 1 column 2").as_deref(), Some("email"));
        assert_eq!(field_in("missing field `email` at line 1 column 2").as_deref(), Some("email"));
        assert_eq!(field_in(".: unknown field `sellerId`, expected one of `name`").as_deref(), Some("sellerId"));
        assert_eq!(
            field_in("paymentMethod: unknown variant `PAYPAL`, expected `CARD`").as_deref(),
            Some("paymentMethod")
        );
        assert_eq!(field_in("quantity: invalid type: string \"x\", expected u32").as_deref(), Some("quantity"));
        assert_eq!(field_in("items[0].sku: invalid length 3").as_deref(), Some("items[0].sku"));
        assert_eq!(field_in(".: invalid type: integer `1`, expected a map").as_deref(), None);
    }

    #[tokio::test]
    async fn the_json_extractor_names_the_field_at_fault() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            quantity: u32,
            method: String,
        }
        let problem = |body: &'static str| async move {
            let req = Request::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(body))
                .unwrap();
            let err = Json::<Body>::from_request(req, &()).await.err().expect("rejected");
            (err.status(), err.code(), err.field().map(str::to_owned))
        };
        let invalid = |field: &str| (StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidBody, Some(field.to_owned()));
        assert_eq!(problem(r#"{"quantity": -1, "method": "x"}"#).await, invalid("quantity"));
        assert_eq!(problem(r#"{"quantity": "x", "method": "x"}"#).await, invalid("quantity"));
        assert_eq!(problem(r#"{"quantity": 1}"#).await, invalid("method"));
        assert_eq!(problem(r#"{"quantity": 1"#).await.1, Code::MalformedJson);
    }
}
