//! The HTTP API: routes and thin handlers (extract, parse, one transaction, respond).
//!
//! - `POST /users` {email, password, name, role?}: 201 with the user and its `Location`;
//!   422 `INVALID_EMAIL`, `WEAK_PASSWORD`, `INVALID_NAME` or `INVALID_ROLE` naming the field;
//!   409 `EMAIL_TAKEN`.
//! - `POST /auth/login` {email, password}: 200 `{accessToken, tokenType, expiresIn}`;
//!   401 `INVALID_CREDENTIALS`, the same whichever of the two was wrong; 429 `TOO_MANY_ATTEMPTS`
//!   with `Retry-After` after repeated failures for the email or from the client, the same
//!   whether or not the email has an account (see [`crate::throttle`]).
//! - Both hash a password, a bounded number at a time (see [`crate::hashing`]): 503 `BUSY` with
//!   `Retry-After: 1` when no turn comes soon enough.
//! - `GET /users/me` (Bearer): 200 with the user; 401 `UNAUTHENTICATED` or `INVALID_TOKEN`;
//!   404 `USER_NOT_FOUND` if the account is gone.
//! - `GET /users/{id}` (Bearer): the same for that user, readable by the user itself or an admin;
//!   anyone else gets 404 `USER_NOT_FOUND`, so ids cannot be probed; so does an id that is not a
//!   UUID at all.
//!
//! Every body is JSON; the common extractor answers 400 `MALFORMED_JSON`, 415 and 422
//! `INVALID_BODY` for bodies that are not the expected JSON at all.

use std::net::SocketAddr;

use anyhow::Context;
use axum::{
    Extension,
    extract::{ConnectInfo, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use common::{
    Envelope, Event, Role,
    auth::AuthUser,
    db::{Db, DbError},
    event::UserRegistered,
    http::{ApiError, Code, Json, Path, path_id},
    micro::OpsError,
    openapi::{OpenApiRouter, Problem},
    outbox,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    SERVICE,
    app::{AppState, DecoyError, DecoyHash},
    domain::{Email, InvalidInput, NewUser, PasswordHash, User},
    hashing::{Hashing, HashingError},
    keys::Tokens,
    store,
    throttle::LoginThrottle,
};

/// svc-user's routes, each with its OpenAPI description; `common` adds health checks, request
/// ids, tracing and limits around them.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(common::openapi::routes!(sign_up))
        .routes(common::openapi::routes!(log_in))
        .routes(common::openapi::routes!(me))
        .routes(common::openapi::routes!(user_by_id))
}

pub fn router(state: AppState) -> OpenApiRouter {
    routes().with_state(state)
}

// Request bodies derive no `Debug`: they hold passwords.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"email": "kim@example.com", "password": "correct-horse-42", "name": "Kim", "role": "SELLER"}))]
struct SignUpRequest {
    email: String,
    #[schema(format = Password)]
    password: String,
    name: String,
    /// `CUSTOMER` (default) or `SELLER`; admins come only from the bootstrap.
    role: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LogInRequest {
    email: String,
    #[schema(format = Password)]
    password: String,
}

/// A user on the wire; the password hash has no field to go in.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserView {
    id: Uuid,
    email: String,
    name: String,
    role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView { id: user.id, email: user.email, name: user.name, role: user.role, created_at: user.created_at }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    access_token: String,
    #[schema(value_type = String, example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the token expires.
    expires_in: u64,
}

/// Sign up: a new `CUSTOMER` or `SELLER` account; emits `user.registered`.
#[utoipa::path(post, path = "/users", tag = "svc-user", request_body = SignUpRequest,
    responses(
        (status = 201, description = "The account", body = UserView,
         headers(("Location" = String, description = "`/users/{id}`"))),
        (status = 409, description = "`EMAIL_TAKEN`: an account has this email (case-insensitively)",
         body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`INVALID_EMAIL`, `WEAK_PASSWORD`, `INVALID_NAME`, `INVALID_ROLE` (`field` names it) \
         or `INVALID_BODY`", body = Problem, content_type = "application/problem+json"),
    ))]
async fn sign_up(
    State(db): State<Db>,
    State(hashing): State<Hashing>,
    Json(body): Json<SignUpRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let new = NewUser::parse(&body.email, body.password, &body.name, body.role.as_deref()).map_err(invalid)?;
    let user = register(&db, &hashing, new).await?;
    tracing::info!(user.id = %user.id, user.role = user.role.as_str(), "user registered");
    let location = HeaderValue::try_from(format!("/users/{}", user.id)).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(UserView::from(user))))
}

/// Log in: an access token (an EdDSA JWT) for the account.
#[utoipa::path(post, path = "/auth/login", tag = "svc-user", request_body = LogInRequest,
    responses(
        (status = 200, description = "The access token; `Cache-Control: no-store`", body = TokenResponse,
         headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, description = "`INVALID_CREDENTIALS`: wrong password or unknown email, alike",
         body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`TOO_MANY_ATTEMPTS` for this email or from this client",
         body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds until a login may be tried again"))),
    ))]
async fn log_in(
    State(db): State<Db>,
    State(tokens): State<Tokens>,
    State(decoy): State<DecoyHash>,
    State(hashing): State<Hashing>,
    State(throttle): State<LoginThrottle>,
    // Set by `common::http::serve` on every request; absent only when the routes are served
    // some other way (then only the per-account limit applies).
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    Json(body): Json<LogInRequest>,
) -> Response {
    let client = connection.map(|Extension(ConnectInfo(addr))| addr.ip());
    // Before any hashing: a locked email or client costs no Argon2 run.
    let attempt = match throttle.begin(&body.email, client) {
        Ok(attempt) => attempt,
        Err(throttled) => return throttled.into_response(),
    };
    let user = check_credentials(&db, decoy, &hashing, body).await;
    match &user {
        Ok(_) => attempt.succeeded(),
        Err(e) if e.code() == Code::InvalidCredentials => attempt.failed(),
        // Busy or broken: the caller learnt nothing about the password, so it does not count.
        Err(_) => drop(attempt),
    }
    let user = match user {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    let token =
        TokenResponse { access_token: tokens.issue(&user), token_type: "Bearer", expires_in: tokens.ttl().as_secs() };
    // RFC 6749 section 5.1: responses carrying tokens must not be cached.
    ([(header::CACHE_CONTROL, "no-store")], Json(token)).into_response()
}

/// What the console's login is asked with: the credentials, and the address of the browser that
/// sent them to svc-order (only svc-order may ask, so it is trusted like a proxy's header).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleLogInRequest {
    email: String,
    password: String,
    client: Option<std::net::IpAddr>,
}

/// The saga console's login (`ops.svc-user.login` on the NATS services API, asked by svc-order,
/// which hosts the console): the checks and the throttle of `POST /auth/login`, per account and
/// per browser, answered with the token and whom it is for.
pub async fn console_log_in(state: AppState, body: ConsoleLogInRequest) -> Result<ConsoleLogin, OpsError> {
    let ConsoleLogInRequest { email, password, client } = body;
    let body = LogInRequest { email, password };
    let attempt = state.throttle.begin(&body.email, client).map_err(|throttled| {
        OpsError::new(
            429,
            Code::TooManyAttempts.as_str(),
            format!("too many failed logins; try again in {} s", throttled.retry_after_secs()),
        )
    })?;
    let user = check_credentials(&state.db, state.decoy.clone(), &state.hashing, body).await;
    match &user {
        Ok(_) => attempt.succeeded(),
        Err(e) if e.code() == Code::InvalidCredentials => attempt.failed(),
        Err(_) => drop(attempt),
    }
    let user = user?;
    Ok(ConsoleLogin {
        access_token: state.tokens.issue(&user),
        expires_in: state.tokens.ttl().as_secs(),
        user_id: user.id,
        email: user.email,
        role: user.role,
    })
}

/// The console login's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleLogin {
    access_token: String,
    expires_in: u64,
    user_id: Uuid,
    email: String,
    role: Role,
}

/// The account `body` names, if its password is the one given; else 401 `INVALID_CREDENTIALS`.
async fn check_credentials(db: &Db, decoy: DecoyHash, hashing: &Hashing, body: LogInRequest) -> Result<User, ApiError> {
    let LogInRequest { email, password } = body;
    // An address that cannot be an email belongs to no account: the same path as an unknown one.
    let found = match Email::parse(&email) {
        Ok(email) => db.read(move |c| store::find_by_email(c, &email)).await?,
        Err(_) => None,
    };
    // Unknown emails are checked against the decoy, so that a failed login takes as long whether
    // or not the account exists and its timing does not reveal which emails are registered.
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => match decoy.get(hashing).await {
            Ok(hash) => (None, hash),
            Err(DecoyError::Hashing(busy)) => return Err(busy.into()),
            Err(e @ DecoyError::Hash(_)) => return Err(ApiError::internal(e)),
        },
    };
    let matches = hashing.run(move || hash.verify(&password)).await?.map_err(ApiError::internal)?;
    user.filter(|_| matches).ok_or_else(|| {
        ApiError::new(Code::InvalidCredentials, "the email or password is wrong")
            .with_header(header::WWW_AUTHENTICATE, "Bearer")
    })
}

/// The caller's account.
#[utoipa::path(get, path = "/users/me", tag = "svc-user", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserView),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "`USER_NOT_FOUND`: the account no longer exists", body = Problem,
         content_type = "application/problem+json"),
    ))]
async fn me(State(db): State<Db>, caller: AuthUser) -> Result<Json<UserView>, ApiError> {
    let user = db.read(move |c| store::find_by_id(c, caller.id)).await?;
    let user = user.ok_or_else(|| ApiError::new(Code::UserNotFound, "the account no longer exists"))?;
    Ok(Json(UserView::from(user)))
}

/// An account, for itself or an admin.
#[utoipa::path(get, path = "/users/{id}", tag = "svc-user", security(("bearer" = [])),
    params(("id" = String, Path, description = "The account's id (a UUID)")),
    responses(
        (status = 200, description = "The account", body = UserView),
        (status = 401, description = "`UNAUTHENTICATED` or `INVALID_TOKEN`", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "`USER_NOT_FOUND`: gone, not the caller's (unless an admin asks), or not a UUID",
         body = Problem, content_type = "application/problem+json"),
    ))]
async fn user_by_id(
    State(db): State<Db>,
    caller: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let id = path_id(&id, user_not_found)?;
    if caller.id != id && !caller.is_admin() {
        return Err(user_not_found());
    }
    let user = db.read(move |c| store::find_by_id(c, id)).await?;
    Ok(Json(UserView::from(user.ok_or_else(user_not_found)?)))
}

fn user_not_found() -> ApiError {
    ApiError::new(Code::UserNotFound, "no such user")
}

fn invalid(e: InvalidInput) -> ApiError {
    let code = match e {
        InvalidInput::Email(_) => Code::InvalidEmail,
        InvalidInput::Password(_) => Code::WeakPassword,
        InvalidInput::Name(_) => Code::InvalidName,
        InvalidInput::Role(_) => Code::InvalidRole,
    };
    ApiError::invalid(code, e.field(), e.to_string())
}

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Hashing(#[from] HashingError),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<DbError> for RegisterError {
    fn from(e: DbError) -> Self {
        RegisterError::Failed(e.into())
    }
}

impl From<rusqlite::Error> for RegisterError {
    fn from(e: rusqlite::Error) -> Self {
        RegisterError::Failed(e.into())
    }
}

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::EmailTaken => ApiError::new(Code::EmailTaken, e.to_string()),
            RegisterError::Hashing(e) => e.into(),
            RegisterError::Failed(e) => ApiError::internal(format!("{e:#}")),
        }
    }
}

/// Creates an account and announces it: the user row and its `user.registered` outbox row commit
/// in one transaction. Shared by sign-up and the admin bootstrap.
pub async fn register(db: &Db, hashing: &Hashing, new: NewUser) -> Result<User, RegisterError> {
    let NewUser { email, password, name, role } = new;
    let hash = hashing.run(move || PasswordHash::new(&password)).await?.context("hashing the password")?;
    let user = User {
        id: Uuid::now_v7(),
        email: email.into_string(),
        name: name.into_string(),
        role,
        created_at: common::db::now(),
    };
    db.write(move |tx| {
        if !store::insert_user(tx, &user, &hash)? {
            return Err(RegisterError::EmailTaken);
        }
        let registered =
            UserRegistered { user_id: user.id, email: user.email.clone(), name: user.name.clone(), role: user.role };
        outbox::append(tx, &Envelope::new(SERVICE, Event::UserRegistered(registered)))?;
        Ok(user)
    })
    .await
}
