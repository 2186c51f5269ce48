//! Bad input, systematically: arbitrary bodies and query strings, sent with a token of a role the
//! route allows, never get a 5xx from svc-user, and a 4xx never changes what it stores.
//!
//! One running service per test; proptest's runner is synchronous, so each case runs to the end
//! on the test's runtime (`block_in_place` + `block_on`) before the next one is generated.

use common::harness::fuzz::{self, body, client, query, send, with_query};
use proptest::{prelude::*, sample::select, test_runner::TestCaseError};
use reqwest::Url;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with_admin};

/// Cases per test: enough to reach every rule of a route, few enough for a few seconds.
const CASES: u32 = 64;

/// Runs [`CASES`] cases of `strategy` through `case` (see [`fuzz::run`]).
fn fuzz<S: Strategy>(strategy: S, case: impl AsyncFn(S::Value) -> Result<(), TestCaseError>) {
    fuzz::run(CASES, strategy, case)
}

/// What svc-user stores: accounts and their outbox.
fn state(app: &TestApp) -> Vec<i64> {
    ["SELECT count(*) FROM users", "SELECT count(*) FROM outbox"].iter().map(|sql| app.count(sql, [])).collect()
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

/// The bootstrap admin: who may read svc-user's admin lists.
const ADMIN: (&str, &str) = ("root@example.com", "admin-pass-1");

fn valid_sign_up() -> impl Strategy<Value = Value> + Clone {
    let role = proptest::option::of(select(&["CUSTOMER", "SELLER", "ADMIN"][..]));
    // A few addresses only, so that some sign-ups find theirs taken.
    ("[a-c]{1,2}@example\\.com", "[a-z]{6,10}[0-9]{2}", "[A-Za-z][A-Za-z ]{0,20}", role).prop_map(
        |(email, password, name, role)| {
            let mut body = json!({"email": email, "password": password, "name": name});
            if let Some(role) = role {
                body["role"] = role.into();
            }
            body
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_up_with_any_body_never_fails_and_a_refusal_stores_nothing() {
    let app = spawn_app().await;
    let http = client();
    let url = Url::parse(&app.url("/users")).unwrap();

    fuzz(body(valid_sign_up()), async |body| {
        checked(&app, async || send(http.post(url.clone()), Some(&body)).await, true).await
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn logging_in_with_any_body_never_fails_and_changes_nothing() {
    let app = spawn_app().await;
    let http = client();
    app.register("kim@example.com").await;
    let url = Url::parse(&app.url("/auth/login")).unwrap();
    let valid = (
        select(&["kim@example.com", "KIM@example.com ", "lee@example.com"][..]),
        select(&[PASSWORD, "wrong-pass-1"][..]),
    )
        .prop_map(|(email, password)| json!({"email": email, "password": password}));

    fuzz(body(valid), async |body| {
        checked(&app, async || send(http.post(url.clone()), Some(&body)).await, false).await
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn any_query_string_on_a_list_never_fails_and_changes_nothing() {
    let app = spawn_app_with_admin(Some(ADMIN)).await;
    let http = client();
    let admin = app.token(ADMIN.0, ADMIN.1).await;
    let url = Url::parse(&app.url("/admin/dead-letters")).unwrap();

    fuzz(query(&["page", "size"]), async |query| {
        let url = with_query(url.clone(), &query);
        checked(&app, async || send(http.get(url).bearer_auth(&admin), None).await, false).await
    });
}
