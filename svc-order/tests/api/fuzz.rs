//! Bad input, systematically: arbitrary bodies and query strings, sent with a token of a role the
//! route allows, never get a 5xx from svc-order, and a 4xx never changes what it stores.
//!
//! One running service per test; proptest's runner is synchronous, so each case runs to the end
//! on the test's runtime (`block_in_place` + `block_on`) before the next one is generated.

use common::Role;
use common::harness::fuzz::{self, body, client, query, send, with_query};
use proptest::{prelude::*, sample::select, test_runner::TestCaseError};
use reqwest::{Url, header::HeaderValue};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestApp;

/// Cases per test: enough to reach every rule of a route, few enough for a few seconds.
const CASES: u32 = 96;

/// Runs [`CASES`] cases of `strategy` through `case` (see [`fuzz::run`]).
fn fuzz<S: Strategy>(strategy: S, case: impl AsyncFn(S::Value) -> Result<(), TestCaseError>) {
    fuzz::run(CASES, strategy, case)
}

/// What svc-order stores in answer to requests: orders and their outbox. (`saga_events` is left
/// out: svc-order records its own `order.created` there as it consumes it, after the request.)
fn state(app: &TestApp) -> Vec<i64> {
    ["SELECT count(*) FROM orders", "SELECT coalesce(sum(quantity), 0) FROM orders", "SELECT count(*) FROM outbox"]
        .iter()
        .map(|sql| app.count(sql, []))
        .collect()
}

/// The property of every case (see [`fuzz::checked`]) over what this service stores.
async fn checked(
    app: &TestApp,
    request: impl AsyncFnOnce() -> (u16, String),
    may_change: bool,
) -> Result<(), TestCaseError> {
    fuzz::checked(|| state(app), request, may_change).await
}

// ----- routes -----

#[tokio::test(flavor = "multi_thread")]
async fn placing_an_order_with_any_body_never_fails_and_a_refusal_stores_nothing() {
    let app = TestApp::spawn().await;
    let http = client();
    let customer = app.customer();
    let url = Url::parse(&app.url("/orders")).unwrap();
    let valid = (any::<u128>(), 1..=100_u32, select(&["CARD", "BANK_TRANSFER"][..])).prop_map(|(product, quantity, method)| {
        json!({"productId": Uuid::from_u128(product), "quantity": quantity, "paymentMethod": method})
    });
    // No key, one of a few (so that keys are reused, with the same body or another), or any bytes
    // a header value can carry, of any length.
    let header_byte = prop_oneof![0x20_u8..=0x7e, 0x80_u8..=0xff];
    let key = proptest::option::weighted(
        0.35,
        prop_oneof![
            select(&["k1", "k2", "k3"][..]).prop_map(|k| k.as_bytes().to_vec()),
            prop::collection::vec(header_byte, 0..120),
        ],
    );

    fuzz((body(valid), key), async |(body, key)| {
        let mut req = http.post(url.clone()).bearer_auth(&customer.token);
        if let Some(key) = &key {
            req = req.header("Idempotency-Key", HeaderValue::from_bytes(key).expect("a header value"));
        }
        checked(&app, async || send(req, Some(&body)).await, true).await
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn any_query_string_on_a_list_never_fails_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let http = client();
    let admin = app.user(Role::Admin);
    app.place(&admin).await;
    let lists = ["/orders/me", "/admin/orders", "/admin/dead-letters"];

    fuzz((select(lists.to_vec()), query(&["page", "size"])), async |(path, query)| {
        let url = with_query(Url::parse(&app.url(path)).unwrap(), &query);
        checked(&app, async || send(http.get(url).bearer_auth(&admin.token), None).await, false).await
    });
}
