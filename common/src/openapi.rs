//! Every service's OpenAPI 3.1 document, made from the same annotations as its router (utoipa,
//! `utoipa-axum`'s [`OpenApiRouter`]: a route cannot be served without being documented), served
//! at `GET /openapi.json` with Swagger UI at `/docs` (its assets are compiled in: nothing is
//! downloaded, at build time or at run time).
//!
//! A service's handlers document their successes and the problems that are theirs (401, 403, 404,
//! 409, their own 422s ...). What every route may answer is added here, once, by [`finish`]: 500
//! `INTERNAL` and 503 `BUSY`/`REQUEST_TIMEOUT` everywhere; 400 on a route with a body or query
//! parameters; 413, 415 and 422 `INVALID_BODY` on a route with a body. `docs/API-SPEC.md` lists the
//! same routes and statuses (checked by `common/tests/openapi.rs`).

use axum::Router;
use utoipa::{
    OpenApi, PartialSchema, ToSchema,
    openapi::{
        self, ContentBuilder, Ref, RefOr, ResponseBuilder,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
pub use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

/// The security scheme's name in every document: `security(("bearer" = []))` on a path.
pub const BEARER: &str = "bearer";
/// The media type of every problem.
pub const PROBLEM: &str = "application/problem+json";

/// An error, as every route answers one (RFC 9457 `application/problem+json`). Branch on `code`.
#[derive(Debug, ToSchema)]
#[schema(example = json!({"type": "https://msa-shop.dev/problems/weak-password", "title": "Unprocessable Entity",
    "status": 422, "detail": "password must contain at least one letter and one digit", "code": "WEAK_PASSWORD",
    "field": "password"}))]
#[allow(dead_code)] // a schema only: the wire shape is written by `ApiError`
pub struct Problem {
    #[schema(rename = "type")]
    r#type: String,
    title: String,
    status: u16,
    detail: String,
    /// Stable: what clients branch on (docs/API-SPEC.md lists them all).
    code: String,
    /// The request field at fault (a body field, a query parameter, a header), when there is one.
    field: Option<String>,
}

/// The statuses [`finish`] adds to an operation that does not document them itself, with when.
const EVERY_ROUTE: &[(&str, &str)] = &[
    ("500", "`INTERNAL`: a bug or an outage on our side"),
    ("503", "`BUSY` (retry after `Retry-After`) or `REQUEST_TIMEOUT` (no answer within the request timeout)"),
];
const WITH_INPUT: &[(&str, &str)] =
    &[("400", "`MALFORMED_JSON`, `INVALID_QUERY` or `BAD_REQUEST`: the request cannot be read")];
const WITH_BODY: &[(&str, &str)] = &[
    ("413", "`PAYLOAD_TOO_LARGE`: a body over 64 KiB"),
    ("415", "`UNSUPPORTED_MEDIA_TYPE`: a body without `Content-Type: application/json`"),
    ("422", "`INVALID_BODY`: JSON of the wrong shape (`field` names it)"),
];

/// The statuses [`finish`] adds to every operation that could answer them, whatever it documents:
/// what `docs/API-SPEC.md` states once for all routes instead of per route.
pub const GENERIC_STATUSES: &[&str] = &["400", "413", "415", "422", "500", "503"];

/// A problem response with this description.
pub fn problem(description: &str) -> openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
        .build()
}

/// The document of `service` made of its own paths (`api`) and what every service serves
/// ([`crate::http`]'s health and metrics routes, [`crate::admin`]'s routes), finished.
pub fn document(service: &str, version: &str, api: openapi::OpenApi) -> openapi::OpenApi {
    let mut doc = Common::openapi();
    doc.merge(api);
    doc.info.title = service.to_owned();
    doc.info.version = version.to_owned();
    doc.info.description = Some(format!(
        "{service}, one of msa-shop's services. Errors are application/problem+json with a stable `code`; \
         see docs/API-SPEC.md."
    ));
    finish(doc)
}

/// Adds the bearer scheme, the `Problem` schema and the responses every route may give.
pub fn finish(mut doc: openapi::OpenApi) -> openapi::OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert("Problem".into(), Problem::schema());
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            let has_body = op.request_body.is_some();
            let has_input = has_body || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let mut add = |list: &[(&str, &str)]| {
                for (status, when) in list {
                    op.responses.responses.entry((*status).into()).or_insert_with(|| RefOr::T(problem(when)));
                }
            };
            add(EVERY_ROUTE);
            if has_input {
                add(WITH_INPUT);
            }
            if has_body {
                add(WITH_BODY);
            }
        }
    }
    doc
}

/// Every operation of a path item.
pub fn operations(item: &mut openapi::PathItem) -> impl Iterator<Item = &mut openapi::path::Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head, &mut item.options]
        .into_iter()
        .filter_map(Option::as_mut)
}

/// `GET /openapi.json` (the document) and Swagger UI at `/docs`.
pub fn routes(doc: openapi::OpenApi) -> Router {
    SwaggerUi::new("/docs").url("/openapi.json", doc).into()
}

/// The paths every service serves.
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::http::live,
        crate::http::ready,
        crate::metrics::scrape,
        crate::admin::outbox,
        crate::admin::dead_letters,
        crate::admin::consumers,
        crate::admin::failpoints,
        crate::admin::set_failpoint,
    ),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "operations", description = "Metrics, admin views and fault injection"),
    )
)]
struct Common;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_gets_the_generic_answers_and_routes_with_input_get_theirs() {
        let doc = document("svc-test", "0.0.0", openapi::OpenApi::default());
        let statuses = |path: &str| -> Vec<String> {
            let item = doc.paths.paths.get(path).unwrap_or_else(|| panic!("{path} is documented"));
            let op = item.get.as_ref().or(item.put.as_ref()).expect("an operation");
            op.responses.responses.keys().cloned().collect()
        };
        // No input: no 400.
        assert_eq!(statuses("/health/live"), ["200", "500", "503"]);
        // A body: 400, 413, 415 and 422 on top.
        let put = statuses("/admin/failpoints/{name}");
        for status in ["200", "400", "401", "403", "413", "415", "422", "500", "503"] {
            assert!(put.iter().any(|s| s == status), "{status} missing from {put:?}");
        }
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        assert!(json["components"]["schemas"]["Problem"].is_object());
        assert_eq!(json["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    }
}
