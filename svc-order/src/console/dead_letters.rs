//! Every service's dead letters, and their replay, through the services' `ops` endpoints.
//!
//! A replay publishes the (possibly fixed) payload again on the dead letter's subject, from the
//! outbox of the service that owns that subject (`republish`), under a fresh message id; then
//! every dead letter of that same message, in every service, is marked replayed (`replayed`).
//! Consumers that applied the event before skip it by its envelope id, so a replay is safe.

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use common::{
    admin::DeadLetter,
    http::{ApiError, Code, Json, Path},
    micro::{self, DeadLetters, Marked, Republished},
    openapi::Problem,
    permissions::SERVICES,
};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ASK_TIMEOUT, Admin, problem};

/// A dead letter and the service that holds it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Letter {
    #[schema(value_type = String, example = "svc-payment")]
    service: &'static str,
    #[serde(flatten)]
    letter: DeadLetter,
}

/// What one service said.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Holder {
    #[schema(value_type = String, example = "svc-payment")]
    service: &'static str,
    /// How many dead letters it holds; `null` when it did not answer (`error` says why).
    total: Option<i64>,
    error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllDeadLetters {
    services: Vec<Holder>,
    /// The newest first.
    dead_letters: Vec<Letter>,
}

/// Every service's dead letters: the newest 100 of each, newest first, and each service's total.
///
/// A service that does not answer is listed with its `error` (and no letters), never a failure of
/// the whole answer. For an `ADMIN` session: the console's session cookie (`shop_console`, set by
/// `POST /console/api/login`) or `Authorization: Bearer`.
#[utoipa::path(get, path = "/console/api/dead-letters", tag = "svc-order",
    security(("bearer" = []), ("console_session" = [])),
    responses(
        (status = 200, description = "Every service's dead letters", body = AllDeadLetters),
        (status = 401, description = super::UNAUTHENTICATED, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = super::NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(State(nats): State<async_nats::Client>, _: Admin) -> Json<AllDeadLetters> {
    let asks = SERVICES.iter().map(|s| {
        let nats = nats.clone();
        async move {
            (
                s.name,
                micro::request::<DeadLetters>(&nats, s.name, "dead-letters", &json!({"limit": 100}), ASK_TIMEOUT).await,
            )
        }
    });
    let mut services = Vec::new();
    let mut dead_letters = Vec::new();
    for (service, answer) in join_all(asks).await {
        match answer {
            Ok(answer) => {
                services.push(Holder { service, total: Some(answer.count.total), error: None });
                dead_letters.extend(answer.items.into_iter().map(|letter| Letter { service, letter }));
            }
            Err(e) => services.push(Holder { service, total: None, error: Some(e.detail) }),
        }
    }
    dead_letters.sort_by_key(|l| std::cmp::Reverse(l.letter.created_at));
    Json(AllDeadLetters { services, dead_letters })
}

/// Where a dead letter is replayed (its body is made optional in [`super::routes`]).
pub const REPLAY_PATH: &str = "/console/api/dead-letters/{service}/{seq}/replay";

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The payload to publish instead of the stored one (a fixed event), as JSON text.
    payload: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    /// The fresh message id it was published under.
    message_id: String,
    subject: String,
    /// The service that owns the subject, from whose outbox it was published.
    #[schema(value_type = String, example = "svc-order")]
    published_by: &'static str,
    /// Every dead letter of the same message, in every service, now marked replayed.
    marked: Vec<MarkedLetter>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MarkedLetter {
    #[schema(value_type = String, example = "svc-payment")]
    service: &'static str,
    seq: i64,
}

/// Publish a dead letter again, on its subject, by the service that owns the subject.
///
/// The payload (the stored one unless the body gives one: a fixed event) goes into the owner's
/// outbox under a fresh message id; then every dead letter of the same message, in every service,
/// is marked replayed. No body (or an empty one) replays the stored payload; the body is read
/// whatever its `Content-Type`. For an `ADMIN` session: the console's session cookie
/// (`shop_console`, set by `POST /console/api/login`) or `Authorization: Bearer`.
#[utoipa::path(post, path = REPLAY_PATH, tag = "svc-order",
    security(("bearer" = []), ("console_session" = [])),
    params(
        ("service" = String, Path, description = "The service that holds the dead letter (`svc-user`, `svc-product`, \
         `svc-order`, `svc-payment`, `svc-settlement`)"),
        ("seq" = i64, Path, description = "The dead letter's `seq` at that service"),
    ),
    // Optional, but not `null` (`Option<_>` would say both): [`super::routes`] unsets `required`.
    request_body(content = ReplayRequest, description = "Optional: none, an empty one or `{}` replays the stored payload"),
    responses(
        (status = 202, description = "Published again, and marked replayed", body = Replayed),
        (status = 400, description = "`BAD_REQUEST`: no service publishes on the dead letter's subject, so nobody may \
         replay it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = super::UNAUTHENTICATED, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = super::NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`DEAD_LETTER_NOT_FOUND`: no such service, or it holds no dead letter with that \
         number", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`INVALID_PAYLOAD`: the payload is not JSON; `INVALID_BODY`: the body is not \
         `{payload?}` (malformed JSON included)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = super::UNREACHABLE, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn replay(
    State(nats): State<async_nats::Client>,
    Admin(admin): Admin,
    Path((service, seq)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // No body (or an empty one) replays the stored payload.
    let body: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(Code::InvalidBody, format!("the body is not a replay: {e}")))?
    };
    let not_found = || ApiError::new(Code::DeadLetterNotFound, format!("{service} holds no dead letter #{seq}"));
    let holder = SERVICES.iter().map(|s| s.name).find(|s| *s == service).ok_or_else(not_found)?;
    let seq: i64 = seq.parse().map_err(|_| not_found())?;
    let found: DeadLetters =
        micro::request(&nats, holder, "dead-letters", &json!({"seq": seq}), ASK_TIMEOUT).await.map_err(problem)?;
    let letter = found.items.into_iter().next().ok_or_else(not_found)?;
    let payload = body.payload.unwrap_or_else(|| letter.payload.clone());
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&payload) {
        return Err(ApiError::invalid(Code::InvalidPayload, "payload", format!("the payload is not JSON: {e}")));
    }
    let owner = micro::owner_of(&letter.subject).ok_or_else(|| {
        ApiError::new(Code::BadRequest, format!("no service publishes on {}: nobody may replay it", letter.subject))
    })?;
    let republished: Republished =
        micro::request(&nats, owner, "republish", &json!({"subject": letter.subject, "payload": payload}), ASK_TIMEOUT)
            .await
            .map_err(problem)?;
    tracing::warn!(
        admin.id = %admin.id,
        dead_letter.service = holder,
        dead_letter.seq = seq,
        subject = letter.subject,
        msg.id = republished.message_id,
        "dead letter replayed from the console"
    );
    // The holder's letter by its number; the same message's letters elsewhere by its id.
    let mut marked = Vec::new();
    if let Ok(m) = micro::request::<Marked>(&nats, holder, "replayed", &json!({"seq": seq}), ASK_TIMEOUT).await {
        marked.extend(m.marked.into_iter().map(|seq| MarkedLetter { service: holder, seq }));
    }
    if let Some(id) = &letter.message_id {
        let asks = SERVICES.iter().map(|s| {
            let nats = nats.clone();
            async move {
                (
                    s.name,
                    micro::request::<Marked>(&nats, s.name, "replayed", &json!({"messageId": id}), ASK_TIMEOUT).await,
                )
            }
        });
        for (service, answer) in join_all(asks).await {
            if let Ok(m) = answer {
                marked.extend(m.marked.into_iter().map(|seq| MarkedLetter { service, seq }));
            }
        }
    }
    let answer = Replayed { message_id: republished.message_id, subject: letter.subject, published_by: owner, marked };
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
