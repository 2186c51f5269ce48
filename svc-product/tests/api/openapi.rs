//! svc-product's OpenAPI document: served with Swagger UI, and the same routes and statuses as
//! docs/API-SPEC.md.

use common::harness::spec::{check_api_spec, check_served_document};

use crate::helpers::TestApp;

#[test]
fn the_api_spec_lists_the_routes_and_statuses_of_the_openapi_document() {
    check_api_spec(svc_product::SERVICE, &svc_product::openapi(), true);
}

#[tokio::test]
async fn the_document_and_swagger_ui_are_served() {
    let app = TestApp::spawn().await;
    check_served_document(&app.url(""), &svc_product::openapi()).await;
}
