//! HTTP plumbing shared by every service: one error type with one wire shape
//! (`application/problem+json`, RFC 9457, with a stable `code`), extractors that turn bad input
//! into such problems, the common layers (request id, tracing, body limit) and health routes.

use axum::{
    Router,
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection, rejection::PathRejection},
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Serialize, de::DeserializeOwned};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::db::{Db, DbError};

/// Largest request body any endpoint accepts.
pub const BODY_LIMIT: usize = 64 * 1024;
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An error as the client sees it. `code` is stable and documented in docs/API-SPEC.md.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// The request field at fault, for validation errors.
    pub field: Option<String>,
    /// Extension members (RFC 9457 section 3.2), e.g. the `orderId` of a failed order.
    extensions: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            field: None,
            extensions: Default::default(),
            headers: Vec::new(),
        }
    }

    /// 422 for a well-formed request whose `field` breaks a rule.
    pub fn invalid(code: &'static str, field: &str, detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail);
        e.field = Some(field.to_owned());
        e
    }

    /// 400 `INVALID_QUERY` for a query parameter `field` that breaks a rule.
    pub fn invalid_query(field: &str, detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY", detail);
        e.field = Some(field.to_owned());
        e
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, detail)
    }

    /// A 500 that tells the client nothing about the internals; the cause is logged here, once.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "something went wrong on our side")
    }

    /// Adds an extension member to the problem body.
    pub fn with_member(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            type_: format!("https://msa-shop.dev/problems/{}", self.code.to_lowercase().replace('_', "-")),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            field: self.field.as_deref(),
            extensions: &self.extensions,
        };
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))],
            serde_json::to_vec(&body).expect("problem serialises"),
        )
            .into_response();
        for (name, value) in self.headers {
            res.headers_mut().insert(name, value);
        }
        res
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Sqlite(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        // Waiting out the busy timeout means the single writer is overloaded: a retryable 503,
        // not a bug.
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
            tracing::warn!(error = %e, "database busy");
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "BUSY", "the service is busy; retry shortly")
                .with_header(header::RETRY_AFTER, "1");
        }
        ApiError::internal(e)
    }
}

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
            let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY", detail.clone());
            err.field = field_in(&detail);
            err
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "expected Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request bodies are limited to {BODY_LIMIT} bytes"),
        ),
        other => ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", other.body_text()),
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
                Err(ApiError::not_found("NOT_FOUND", format!("no such resource: {}", e.body_text())))
            }
            Err(other) => Err(ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", other.body_text())),
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
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_QUERY", e.body_text()))
    }
}

/// What readiness depends on.
#[derive(Clone, Debug)]
pub struct Readiness {
    pub db: Db,
    pub nats: async_nats::Client,
}

/// Wraps a service's routes with health checks, problem fallbacks, request ids, tracing and the
/// body limit. Header values (tokens) and bodies (passwords) are never logged.
pub fn finish_router(routes: Router, readiness: Readiness) -> Router {
    let health = Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .with_state(readiness);
    routes
        .merge(health)
        .fallback(|| async { ApiError::not_found("NOT_FOUND", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "method not allowed on this route")
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let request_id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("http", http.method = %req.method(), http.path = %req.uri().path(), request.id = %request_id)
                })
                // One line per request at the default level; a 500's cause is logged once, where
                // `ApiError::internal` is built, so the layer's own failure line is off.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn ready(axum::extract::State(r): axum::extract::State<Readiness>) -> Result<&'static str, ApiError> {
    if r.nats.connection_state() != async_nats::connection::State::Connected {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY", "not connected to NATS"));
    }
    r.db.ping()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY", "database unavailable"))?;
    Ok("ready")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_is_a_retryable_503() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        let err = ApiError::from(DbError::Sqlite(busy));
        assert_eq!((err.status, err.code), (StatusCode::SERVICE_UNAVAILABLE, "BUSY"));
        let other = ApiError::from(rusqlite::Error::QueryReturnedNoRows);
        assert_eq!((other.status, other.code), (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"));
    }

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
            (err.status, err.code, err.field)
        };
        let invalid = |field: &str| (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY", Some(field.to_owned()));
        assert_eq!(problem(r#"{"quantity": -1, "method": "x"}"#).await, invalid("quantity"));
        assert_eq!(problem(r#"{"quantity": "x", "method": "x"}"#).await, invalid("quantity"));
        assert_eq!(problem(r#"{"quantity": 1}"#).await, invalid("method"));
        assert_eq!(problem(r#"{"quantity": 1"#).await.1, "MALFORMED_JSON");
    }

    #[tokio::test]
    async fn a_problem_has_the_problem_json_shape() {
        let res = ApiError::invalid("WEAK_PASSWORD", "password", "too short").with_member("hint", 8).into_response();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], "WEAK_PASSWORD");
        assert_eq!(json["field"], "password");
        assert_eq!(json["status"], 422);
        assert_eq!(json["hint"], 8);
        assert_eq!(json["type"], "https://msa-shop.dev/problems/weak-password");
    }
}
