//! Bad input, systematically: arbitrary bodies and query strings, sent with a token of a role the
//! route allows, never get a 5xx from svc-product, and a 4xx never changes what it stores.
//!
//! One running service per test; proptest's runner is synchronous, so each case runs to the end
//! on the test's runtime (`block_in_place` + `block_on`) before the next one is generated.

use common::Role;
use common::harness::fuzz::{self, body, client, query, send, with_query};
use proptest::{prelude::*, sample::select, test_runner::TestCaseError};
use reqwest::Url;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestApp;

/// Cases per test: enough to reach every rule of a route, few enough for a few seconds.
const CASES: u32 = 96;

/// Runs [`CASES`] cases of `strategy` through `case` (see [`fuzz::run`]).
fn fuzz<S: Strategy>(strategy: S, case: impl AsyncFn(S::Value) -> Result<(), TestCaseError>) {
    fuzz::run(CASES, strategy, case)
}

/// What svc-product stores: products, their stock accounts, its outbox.
fn state(app: &TestApp) -> Vec<i64> {
    [
        "SELECT count(*) FROM products",
        "SELECT coalesce(sum(stock), 0) FROM products",
        "SELECT coalesce(sum(stocked), 0) FROM products",
        "SELECT count(*) FROM reservations",
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

#[tokio::test(flavor = "multi_thread")]
async fn listing_a_product_with_any_body_never_fails_and_a_refusal_stores_nothing() {
    let app = TestApp::spawn().await;
    let http = client();
    let (_, seller) = app.user(Role::Seller);
    let url = Url::parse(&app.url("/products")).unwrap();

    let valid = ("[A-Za-z][A-Za-z ]{0,20}", 1..=100_000_000_i64, 0..=1_000_000_i64, "[a-z0-9-]{1,20}").prop_map(
        |(name, price, stock, category)| json!({"name": name, "price": price, "stock": stock, "category": category}),
    );
    fuzz(body(valid), async |body| {
        checked(&app, async || send(http.post(url.clone()).bearer_auth(&seller), Some(&body)).await, true).await
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn restocking_with_any_body_never_fails_and_a_refusal_stores_nothing() {
    let app = TestApp::spawn().await;
    let http = client();
    let (_, seller) = app.user(Role::Seller);
    let product =
        app.create_product(&seller, "Drip Bags", "coffee", 12_000, 5).await["id"].as_str().unwrap().to_owned();
    // Mostly the seller's product; sometimes one that does not exist, or a path that names none.
    let target = prop_oneof![
        6 => Just(product),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        1 => any::<String>(),
    ];

    fuzz((target, body((1..=1_000_000_i64).prop_map(|q| json!({"quantity": q})))), async |(target, body)| {
        let mut url = Url::parse(&app.url("/products")).unwrap();
        url.path_segments_mut().unwrap().push(&target).push("restock");
        checked(&app, async || send(http.post(url).bearer_auth(&seller), Some(&body)).await, true).await
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn any_query_string_on_a_list_never_fails_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let http = client();
    let (_, admin) = app.user(Role::Admin);
    app.product_with_stock(1_000, 3).await;
    let lists = ["/products", "/admin/products", "/admin/reservations", "/admin/dead-letters"];

    let keys: &[&str] = &["category", "sellerId", "page", "size"];
    fuzz((select(lists.to_vec()), query(keys)), async |(path, query)| {
        let url = with_query(Url::parse(&app.url(path)).unwrap(), &query);
        checked(&app, async || send(http.get(url).bearer_auth(&admin), None).await, false).await
    });
}
