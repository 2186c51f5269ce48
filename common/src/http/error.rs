//! The API's one error type, its one wire shape (`application/problem+json`, RFC 9457, with a
//! stable `code`) and every code it can carry, each with its one HTTP status.

use axum::{
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::db::DbError;

/// Declares [`Code`] from one table: variant, wire name, HTTP status.
macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $wire:literal => $status:ident, )*) => {
        /// Every problem code of the API (documented in docs/API-SPEC.md). The table is the one
        /// mapping from code to status: a code always answers with the same status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &[Code] = &[$(Code::$variant),*];

            /// The stable wire name, e.g. `OUT_OF_STOCK`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $wire, )* }
            }

            /// The HTTP status a problem with this code has.
            pub fn status(self) -> StatusCode {
                match self { $( Code::$variant => StatusCode::$status, )* }
            }
        }
    };
}

codes! {
    // Any service: the request itself.
    /// The body is not JSON.
    MalformedJson = "MALFORMED_JSON" => BAD_REQUEST,
    /// The JSON does not fit the expected shape (an unknown or missing field, a wrong type).
    InvalidBody = "INVALID_BODY" => UNPROCESSABLE_ENTITY,
    /// A query parameter is missing or malformed.
    InvalidQuery = "INVALID_QUERY" => BAD_REQUEST,
    /// Any other malformed request.
    BadRequest = "BAD_REQUEST" => BAD_REQUEST,
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE" => UNSUPPORTED_MEDIA_TYPE,
    PayloadTooLarge = "PAYLOAD_TOO_LARGE" => PAYLOAD_TOO_LARGE,
    /// No such route, or a path that cannot name a resource.
    NotFound = "NOT_FOUND" => NOT_FOUND,
    MethodNotAllowed = "METHOD_NOT_ALLOWED" => METHOD_NOT_ALLOWED,
    // Any service: who is asking.
    /// No bearer token.
    Unauthenticated = "UNAUTHENTICATED" => UNAUTHORIZED,
    /// A bearer token that does not verify.
    InvalidToken = "INVALID_TOKEN" => UNAUTHORIZED,
    /// The caller's role may not do this.
    Forbidden = "FORBIDDEN" => FORBIDDEN,
    // Any service: the service itself.
    /// The database writer is overloaded: retry shortly.
    Busy = "BUSY" => SERVICE_UNAVAILABLE,
    NotReady = "NOT_READY" => SERVICE_UNAVAILABLE,
    /// The handler did not answer within the request timeout (`http::Limits`); what it had
    /// started may or may not have taken effect. A 503, not a 408: the server was slow, not the
    /// client (and clients may resend a 408 on their own, even a POST).
    RequestTimeout = "REQUEST_TIMEOUT" => SERVICE_UNAVAILABLE,
    Internal = "INTERNAL" => INTERNAL_SERVER_ERROR,

    // svc-user
    InvalidEmail = "INVALID_EMAIL" => UNPROCESSABLE_ENTITY,
    WeakPassword = "WEAK_PASSWORD" => UNPROCESSABLE_ENTITY,
    InvalidName = "INVALID_NAME" => UNPROCESSABLE_ENTITY,
    InvalidRole = "INVALID_ROLE" => UNPROCESSABLE_ENTITY,
    EmailTaken = "EMAIL_TAKEN" => CONFLICT,
    InvalidCredentials = "INVALID_CREDENTIALS" => UNAUTHORIZED,
    /// Too many failed logins for this email or from this client: retry after `Retry-After`.
    TooManyAttempts = "TOO_MANY_ATTEMPTS" => TOO_MANY_REQUESTS,
    UserNotFound = "USER_NOT_FOUND" => NOT_FOUND,

    // svc-product
    InvalidPrice = "INVALID_PRICE" => UNPROCESSABLE_ENTITY,
    InvalidStock = "INVALID_STOCK" => UNPROCESSABLE_ENTITY,
    InvalidCategory = "INVALID_CATEGORY" => UNPROCESSABLE_ENTITY,
    ProductNotFound = "PRODUCT_NOT_FOUND" => NOT_FOUND,

    // svc-order
    InvalidProductId = "INVALID_PRODUCT_ID" => UNPROCESSABLE_ENTITY,
    InvalidQuantity = "INVALID_QUANTITY" => UNPROCESSABLE_ENTITY,
    InvalidPaymentMethod = "INVALID_PAYMENT_METHOD" => UNPROCESSABLE_ENTITY,
    /// A header, not the body: a 400.
    InvalidIdempotencyKey = "INVALID_IDEMPOTENCY_KEY" => BAD_REQUEST,
    IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED" => UNPROCESSABLE_ENTITY,
    OrderNotFound = "ORDER_NOT_FOUND" => NOT_FOUND,
    OutOfStock = "OUT_OF_STOCK" => CONFLICT,
    OrderExpired = "ORDER_EXPIRED" => CONFLICT,
    /// The saga console: no dead letter with this number at that service.
    DeadLetterNotFound = "DEAD_LETTER_NOT_FOUND" => NOT_FOUND,
    /// The saga console: a replayed payload that is not JSON.
    InvalidPayload = "INVALID_PAYLOAD" => UNPROCESSABLE_ENTITY,
    /// The saga console: a service did not answer on the NATS services API in time.
    ServiceUnreachable = "SERVICE_UNREACHABLE" => BAD_GATEWAY,
    PaymentDeclined = "PAYMENT_DECLINED" => PAYMENT_REQUIRED,

    // svc-payment
    PaymentNotFound = "PAYMENT_NOT_FOUND" => NOT_FOUND,
    AlreadyCancelled = "ALREADY_CANCELLED" => CONFLICT,
    PaymentNotCancellable = "PAYMENT_NOT_CANCELLABLE" => CONFLICT,
    /// A sharded svc-payment asked about an order another shard holds (the detail names it).
    WrongShard = "WRONG_SHARD" => MISDIRECTED_REQUEST,

    // svc-settlement
    InvalidDate = "INVALID_DATE" => BAD_REQUEST,
    InvalidMonth = "INVALID_MONTH" => BAD_REQUEST,
    DayNotEnded = "DAY_NOT_ENDED" => CONFLICT,

    // payment-gateway
    /// The `Idempotency-Key` header is missing or not 1 to 255 visible ASCII characters.
    IdempotencyKeyRequired = "IDEMPOTENCY_KEY_REQUIRED" => BAD_REQUEST,
    /// The charge under this key was refunded already (under another refund key).
    AlreadyRefunded = "ALREADY_REFUNDED" => CONFLICT,
    /// The gateway refused the call (down, or a simulated failure); nothing was recorded.
    GatewayUnavailable = "GATEWAY_UNAVAILABLE" => SERVICE_UNAVAILABLE,
    /// The gateway did not answer in time; the call may or may not have taken effect.
    GatewayTimeout = "GATEWAY_TIMEOUT" => GATEWAY_TIMEOUT,
}

impl Code {
    /// The code with the wire name `wire`, e.g. from another service's answer.
    pub fn parse(wire: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == wire)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the client sees it: a [`Code`] (which fixes the status), what went wrong, and
/// optionally the field at fault, extension members and headers.
#[derive(Debug)]
pub struct ApiError {
    code: Code,
    detail: String,
    field: Option<String>,
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
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        ApiError { code, detail: detail.into(), field: None, extensions: Default::default(), headers: Vec::new() }
    }

    /// A problem about the request field `field` (a body field, a query parameter or a header).
    pub fn invalid(code: Code, field: &str, detail: impl Into<String>) -> Self {
        ApiError::new(code, detail).with_field(field)
    }

    /// A 500 that tells the client nothing about the internals; the cause is logged here, once.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        ApiError::new(Code::Internal, "something went wrong on our side")
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
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

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = Problem {
            type_: format!("https://msa-shop.dev/problems/{}", self.code.as_str().to_lowercase().replace('_', "-")),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: &self.detail,
            code: self.code.as_str(),
            field: self.field.as_deref(),
            extensions: &self.extensions,
        };
        let mut res = (
            status,
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
            return ApiError::new(Code::Busy, "the service is busy; retry shortly")
                .with_header(header::RETRY_AFTER, "1");
        }
        ApiError::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_has_its_own_wire_name_in_screaming_snake_case() {
        let names: HashSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len(), "two codes share a wire name");
        for name in names {
            assert!(name.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{name}");
        }
    }

    #[test]
    fn every_code_is_a_client_or_server_error() {
        for code in Code::ALL {
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
        }
    }

    #[test]
    fn a_busy_database_is_a_retryable_503() {
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(5), None);
        let err = ApiError::from(DbError::Sqlite(busy));
        assert_eq!((err.status(), err.code()), (StatusCode::SERVICE_UNAVAILABLE, Code::Busy));
        let other = ApiError::from(rusqlite::Error::QueryReturnedNoRows);
        assert_eq!((other.status(), other.code()), (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal));
    }

    #[tokio::test]
    async fn a_problem_has_the_problem_json_shape() {
        let res = ApiError::invalid(Code::WeakPassword, "password", "too short").with_member("hint", 8).into_response();
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
