//! Bad input, systematically: arbitrary bodies and query strings, sent with a token of a role the
//! route allows, never get a 5xx from svc-settlement, and a 4xx never changes what it stores.
//!
//! One running service per test; proptest's runner is synchronous, so each case runs to the end
//! on the test's runtime (`block_in_place` + `block_on`) before the next one is generated.

use common::Role;
use common::harness::fuzz::{self, Query, body, client, query, send, with_query};
use proptest::{prelude::*, sample::select, test_runner::TestCaseError};
use reqwest::Url;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, at, sale, spawn_app};

/// Cases per test: enough to reach every rule of a route, few enough for a few seconds.
const CASES: u32 = 96;

/// Runs [`CASES`] cases of `strategy` through `case` (see [`fuzz::run`]).
fn fuzz<S: Strategy>(strategy: S, case: impl AsyncFn(S::Value) -> Result<(), TestCaseError>) {
    fuzz::run(CASES, strategy, case)
}

/// What svc-settlement stores: the ledger, closed days and their payouts, its outbox.
fn state(app: &TestApp) -> Vec<i64> {
    [
        "SELECT count(*) FROM ledger",
        "SELECT count(*) FROM closed_days",
        "SELECT count(*) FROM payouts",
        "SELECT count(*) FROM outbox",
    ]
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

/// The service's clock: 1 December 2026, noon UTC. Days before it have ended, later ones not.
const NOW: &str = "2026-12-01T12:00:00Z";

/// svc-settlement with one sale booked on 30 November 2026, by `seller`.
async fn with_a_sale(seller: Uuid) -> TestApp {
    let app = spawn_app(NOW, &[]).await;
    let seq = app.publish(&sale(seller, "books", 30_000, at("2026-11-30T03:00:00Z"))).await;
    app.consumed_through(seq).await;
    app
}

#[tokio::test(flavor = "multi_thread")]
async fn any_query_string_on_a_report_never_fails_and_changes_nothing() {
    let seller = Uuid::now_v7();
    let app = with_a_sale(seller).await;
    let http = client();
    let reports = ["/settlements/daily", "/settlements/monthly", "/admin/ledger", "/admin/dead-letters"];
    let caller = select(vec![(Uuid::now_v7(), Role::Admin), (seller, Role::Seller)]);
    let keys = &["date", "month", "sellerId", "category", "page", "size"];

    fuzz((select(reports.to_vec()), caller, query(keys)), async |(path, (id, role), query)| {
        let url = with_query(Url::parse(&app.url(path)).unwrap(), &query);
        checked(&app, async || send(http.get(url).bearer_auth(app.token_for(id, role)), None).await, false).await
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_with_any_query_string_never_fails_and_a_refusal_stores_nothing() {
    let app = with_a_sale(Uuid::now_v7()).await;
    let http = client();
    let admin = app.token_for(Uuid::now_v7(), Role::Admin);
    let url = Url::parse(&app.url("/settlements/close")).unwrap();
    // Mostly days around the clock's (ended or not, closed or not), and anything else; with any
    // body, which the route does not read.
    let year = prop_oneof![4 => 2025_u32..=2027, 1 => 1969_u32..=1971, 1 => 9998_u32..=9999];
    let day = (year, 1_u32..=13, 0_u32..=32).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"));
    let query = prop_oneof![
        2 => day.prop_map(|d| Query::Pairs(vec![("date".into(), d)])),
        1 => query(&["date"]),
    ];
    let any_body = proptest::option::of(body(Just(json!({}))));

    fuzz((query, any_body), async |(query, body)| {
        let url = with_query(url.clone(), &query);
        checked(&app, async || send(http.post(url).bearer_auth(&admin), body.as_ref()).await, true).await
    });
}
