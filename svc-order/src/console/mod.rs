//! The saga console: a page an operator keeps open (`GET /console`), and the JSON and
//! server-sent events behind it (`/console/api/*`, admins only). It shows every saga live, the
//! stuck ones with the service they wait on, one saga's timeline, and every service's dead
//! letters with a replay. The page is three static files (`svc-order/console/`), no libraries.
//!
//! svc-order hosts it because it holds every saga's events already. Whatever belongs to another
//! service (its figures, its dead letters, a replay, the admin's login) comes through the NATS
//! services API ([`common::micro`]), never over HTTP.
//!
//! | route                                               | answer                                  |
//! |-----------------------------------------------------|-----------------------------------------|
//! | `GET /console`, `/console/console.js`, `.css`       | the page (public)                       |
//! | `POST /console/api/login` `{email, password}`       | a session cookie, for admins only       |
//! | `POST /console/api/logout`                          | 204, the cookie cleared                 |
//! | `GET /console/api/me`                               | who the session is                      |
//! | `GET /console/api/overview`                         | [`view::Overview`]                      |
//! | `GET /console/api/stream?state&user&product&stuckSecs` | SSE: `overview`, `feed`, `stuck` every second |
//! | `GET /console/api/sagas?state&user&product&limit`   | the feed                                |
//! | `GET /console/api/stuck?olderThanSecs`              | the stuck sagas                         |
//! | `GET /console/api/sagas/{id}`                       | the saga's timeline                     |
//! | `GET /console/api/dead-letters`                     | every service's dead letters            |
//! | `POST /console/api/dead-letters/{service}/{seq}/replay` `{payload?}` | 202: published again by the subject's owner |
//!
//! The session is the admin's token in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! `/console` (an `EventSource` cannot send an `Authorization` header; a token in a URL would end
//! up in logs); `Authorization: Bearer` works too. Every route is in svc-order's OpenAPI document
//! ([`routes`]), the cookie as the `console_session` security scheme.

mod dead_letters;
mod live;
pub mod view;

use std::{net::SocketAddr, time::Duration};

use axum::{
    Extension,
    extract::{ConnectInfo, FromRef, FromRequestParts, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use common::{
    Role,
    auth::{AuthUser, Verifier, forbidden},
    db::Db,
    http::{ApiError, Code, Json},
    micro::{self, OpsError},
    openapi::{OpenApiRouter, Problem},
};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{
    ComponentsBuilder, OpenApi, OpenApiBuilder, RefOr,
    security::{ApiKey, ApiKeyValue, SecurityScheme},
};
use uuid::Uuid;

pub use live::Live;

/// The session cookie's name.
pub const COOKIE: &str = "shop_console";

/// What the console's handlers use.
#[derive(Clone, Debug, FromRef)]
pub struct ConsoleState {
    pub db: Db,
    pub verifier: Verifier,
    pub nats: async_nats::Client,
    pub live: Live,
    /// Cancelled at shutdown: open streams end then, instead of holding the shutdown up.
    pub stop: tokio_util::sync::CancellationToken,
}

/// The console's routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<ConsoleState> {
    let mut routes = OpenApiRouter::with_openapi(session_scheme())
        .routes(common::openapi::routes!(page))
        .routes(common::openapi::routes!(page_with_slash))
        .routes(common::openapi::routes!(script))
        .routes(common::openapi::routes!(style))
        .routes(common::openapi::routes!(log_in))
        .routes(common::openapi::routes!(log_out))
        .routes(common::openapi::routes!(me))
        .routes(common::openapi::routes!(live::overview))
        .routes(common::openapi::routes!(live::stream))
        .routes(common::openapi::routes!(live::sagas))
        .routes(common::openapi::routes!(live::stuck))
        .routes(common::openapi::routes!(live::saga))
        .routes(common::openapi::routes!(dead_letters::list))
        .routes(common::openapi::routes!(dead_letters::replay));
    let replay = routes.get_openapi_mut().paths.paths.get_mut(dead_letters::REPLAY_PATH);
    if let Some(RefOr::T(body)) = replay.and_then(|item| item.post.as_mut()).and_then(|op| op.request_body.as_mut()) {
        body.required = Some(utoipa::openapi::Required::False);
    }
    routes
}

pub fn router(state: ConsoleState) -> OpenApiRouter {
    routes().with_state(state)
}

/// The name of the session cookie's security scheme, next to common's `bearer`.
pub const SESSION_SCHEME: &str = "console_session";

/// A document holding only the `console_session` security scheme that the `/console/api/*`
/// paths name (`security(("bearer" = []), ("console_session" = []))`: either one will do).
fn session_scheme() -> OpenApi {
    let cookie = ApiKeyValue::with_description(
        COOKIE,
        "The console's session: an admin's access token, set by `POST /console/api/login`",
    );
    let components =
        ComponentsBuilder::new().security_scheme(SESSION_SCHEME, SecurityScheme::ApiKey(ApiKey::Cookie(cookie)));
    OpenApiBuilder::new().components(Some(components.build())).build()
}

/// The 401 of every route that needs a session.
const UNAUTHENTICATED: &str = "`UNAUTHENTICATED`: neither the session cookie nor a bearer token; `INVALID_TOKEN`: \
                               the one sent does not verify (an expired session, say)";
/// The 403 of every route that needs a session.
const NOT_ADMIN: &str = "`FORBIDDEN`: the session is not an admin's";
/// The 502 of the routes that ask another service on NATS.
const UNREACHABLE: &str = "`SERVICE_UNREACHABLE`: the service asked did not answer on NATS within 5 s, or failed \
                           (a refusal with one of this API's codes keeps its code and status)";

const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // `no-cache`: a redeployed console is picked up at the next load.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// The console's page (public: the data behind it needs an admin's session).
#[utoipa::path(get, path = "/console", tag = "svc-order",
    responses((status = 200, description = "The page", content_type = "text/html", body = String,
        headers(("Cache-Control" = String, description = "`no-cache`")))))]
async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// The console's page, as `GET /console`.
#[utoipa::path(get, path = "/console/", tag = "svc-order",
    responses((status = 200, description = "The page", content_type = "text/html", body = String,
        headers(("Cache-Control" = String, description = "`no-cache`")))))]
async fn page_with_slash() -> Response {
    page().await
}

/// The console's script (public, no libraries).
#[utoipa::path(get, path = "/console/console.js", tag = "svc-order",
    responses((status = 200, description = "The script", content_type = "text/javascript", body = String,
        headers(("Cache-Control" = String, description = "`no-cache`")))))]
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The console's style sheet (public).
#[utoipa::path(get, path = "/console/console.css", tag = "svc-order",
    responses((status = 200, description = "The style sheet", content_type = "text/css", body = String,
        headers(("Cache-Control" = String, description = "`no-cache`")))))]
async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// An admin, from the session cookie or a Bearer token; 401 without either, 403 for another role.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub AuthUser);

impl<S> FromRequestParts<S> for Admin
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = if parts.headers.contains_key(header::AUTHORIZATION) {
            AuthUser::from_request_parts(parts, state).await?
        } else {
            let token = session_token(&parts.headers)
                .ok_or_else(|| ApiError::new(Code::Unauthenticated, "log in on the console first"))?;
            Verifier::from_ref(state).user(token)?
        };
        user.require(&[Role::Admin])?;
        Ok(Admin(user))
    }
}

/// The session cookie's value, if the request carries one.
fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

fn cookie(value: &str, max_age_secs: u64) -> Result<HeaderValue, ApiError> {
    HeaderValue::try_from(format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={max_age_secs}"))
        .map_err(ApiError::internal)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConsoleLogInRequest, example = json!({"email": "admin@msa-shop.local", "password": "admin-dev-password-1"}))]
struct LogInRequest {
    email: String,
    password: String,
}

/// What svc-user's `login` is asked: the credentials and the browser's address, so that its
/// throttle limits each browser as `POST /auth/login` does.
#[derive(Serialize)]
struct AskLogin<'a> {
    email: &'a str,
    password: &'a str,
    client: Option<std::net::IpAddr>,
}

/// svc-user's answer to `ops.svc-user.login`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Login {
    access_token: String,
    expires_in: u64,
    user_id: Uuid,
    email: String,
    role: Role,
}

/// Who the session is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConsoleSession)]
struct Session {
    user_id: Uuid,
    /// At login only.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    role: Role,
}

/// How long the console waits for another service's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Log in to the console: for an admin, the session cookie.
///
/// svc-user checks the password (`ops.svc-user.login`, over NATS: the console never calls it over
/// HTTP) with the throttle of `POST /auth/login`, per account and per browser. For an admin it
/// sets the session cookie, `shop_console=<token>; HttpOnly; SameSite=Strict; Path=/console;
/// Max-Age=<token lifetime>`, which the other `/console/api/*` routes take instead of a bearer token.
#[utoipa::path(post, path = "/console/api/login", tag = "svc-order",
    request_body = LogInRequest,
    responses(
        (status = 200, description = "Logged in: who the session is", body = Session,
         headers(("Set-Cookie" = String, description = "`shop_console=<token>; HttpOnly; SameSite=Strict; \
                   Path=/console; Max-Age=<token lifetime in seconds>`"),
                 ("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "`INVALID_CREDENTIALS`: the email or password is wrong", body = Problem,
         content_type = "application/problem+json"),
        (status = 403, description = "`FORBIDDEN`: the account is not an admin's (no cookie is set)", body = Problem,
         content_type = "application/problem+json"),
        (status = 429, description = "`TOO_MANY_ATTEMPTS`: too many failed logins for that account or from that \
         browser (the detail says when to try again; no `Retry-After`)", body = Problem,
         content_type = "application/problem+json"),
        (status = 502, description = UNREACHABLE, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`BUSY`: svc-user's password hashing stayed busy (no `Retry-After` here); \
         `REQUEST_TIMEOUT`: no answer within the request timeout", body = Problem, content_type = "application/problem+json"),
    ))]
async fn log_in(
    State(nats): State<async_nats::Client>,
    // Set by `common::http::serve` on every request.
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    Json(body): Json<LogInRequest>,
) -> Result<Response, ApiError> {
    let client = connection.map(|Extension(ConnectInfo(addr))| addr.ip());
    let ask = AskLogin { email: &body.email, password: &body.password, client };
    let login: Login = micro::request(&nats, "svc-user", "login", &ask, ASK_TIMEOUT).await.map_err(problem)?;
    if login.role != Role::Admin {
        return Err(forbidden());
    }
    let session = Session { user_id: login.user_id, email: Some(login.email), role: login.role };
    let set = cookie(&login.access_token, login.expires_in)?;
    Ok(([(header::SET_COOKIE, set), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(session))
        .into_response())
}

/// Log out: the session cookie cleared.
///
/// Needs no session. The token itself is not revoked: it stays valid until it expires.
#[utoipa::path(post, path = "/console/api/logout", tag = "svc-order",
    responses((status = 204, description = "The cookie cleared",
        headers(("Set-Cookie" = String, description = "`shop_console=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0`")))))]
async fn log_out() -> Result<Response, ApiError> {
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie("", 0)?)]).into_response())
}

/// Who the session is (`{userId, role}`).
///
/// For an `ADMIN` session: the console's session cookie (`shop_console`, set by
/// `POST /console/api/login`) or `Authorization: Bearer`.
#[utoipa::path(get, path = "/console/api/me", tag = "svc-order",
    security(("bearer" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "The session's user (no `email`)", body = Session),
        (status = 401, description = UNAUTHENTICATED, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(Admin(user): Admin) -> Json<Session> {
    Json(Session { user_id: user.id, email: None, role: user.role })
}

/// Another service's refusal as this API's problem: its code when it is one of ours, else 502.
fn problem(e: OpsError) -> ApiError {
    match Code::parse(&e.code) {
        Some(code) if code != Code::Internal => ApiError::new(code, e.detail),
        _ => ApiError::new(Code::ServiceUnreachable, e.detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_is_found_among_other_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("theme=dark; shop_console=abc.def.ghi; x=1"));
        assert_eq!(session_token(&headers), Some("abc.def.ghi"));
        headers.insert(header::COOKIE, HeaderValue::from_static("shop_console=; other=2"));
        assert_eq!(session_token(&headers), None);
        headers.insert(header::COOKIE, HeaderValue::from_static("not_shop_console=x"));
        assert_eq!(session_token(&headers), None);
    }

    #[test]
    fn the_cookie_is_out_of_reach_of_scripts_and_other_sites() {
        let set = cookie("t", 900).unwrap();
        let set = set.to_str().unwrap();
        for part in ["shop_console=t", "HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=900"] {
            assert!(set.contains(part), "{set}");
        }
    }

    #[test]
    fn a_refusal_keeps_its_code_and_an_unknown_one_is_a_bad_gateway() {
        let wrong = problem(OpsError::new(401, "INVALID_CREDENTIALS", "the email or password is wrong"));
        assert_eq!(wrong.code(), Code::InvalidCredentials);
        let silent = problem(OpsError::new(504, "NO_ANSWER", "svc-user did not answer"));
        assert_eq!(silent.code(), Code::ServiceUnreachable);
    }
}
