//! svc-settlement's OpenAPI document: served with Swagger UI, and the same routes and statuses
//! as docs/API-SPEC.md.

use common::harness::spec::{check_api_spec, check_served_document};

use crate::helpers::spawn_app;

#[test]
fn the_api_spec_lists_the_routes_and_statuses_of_the_openapi_document() {
    check_api_spec(svc_settlement::SERVICE, &svc_settlement::openapi(), true);
}

#[tokio::test]
async fn the_document_and_swagger_ui_are_served() {
    let app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    check_served_document(&app.url(""), &svc_settlement::openapi()).await;
}
