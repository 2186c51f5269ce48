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
//! up in logs); `Authorization: Bearer` works too.

mod dead_letters;
mod live;
pub mod view;

use std::{net::SocketAddr, time::Duration};

use axum::{
    Extension, Router,
    extract::{ConnectInfo, FromRef, FromRequestParts, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use common::{
    Role,
    auth::{AuthUser, Verifier, forbidden},
    db::Db,
    http::{ApiError, Code, Json},
    micro::{self, OpsError},
};
use serde::{Deserialize, Serialize};
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

pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .route("/console/api/login", post(log_in))
        .route("/console/api/logout", post(log_out))
        .route("/console/api/me", get(me))
        .route("/console/api/overview", get(live::overview))
        .route("/console/api/stream", get(live::stream))
        .route("/console/api/sagas", get(live::sagas))
        .route("/console/api/stuck", get(live::stuck))
        .route("/console/api/sagas/{id}", get(live::saga))
        .route("/console/api/dead-letters", get(dead_letters::list))
        .route("/console/api/dead-letters/{service}/{seq}/replay", post(dead_letters::replay))
        .with_state(state)
}

const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // `no-cache`: a redeployed console is picked up at the next load.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    user_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    role: Role,
}

/// How long the console waits for another service's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the password with svc-user (through NATS: the console never calls it over HTTP) and,
/// for an admin, sets the session cookie.
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

async fn log_out() -> Result<Response, ApiError> {
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie("", 0)?)]).into_response())
}

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
