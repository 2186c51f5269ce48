//! Bad input, systematically: arbitrary bodies and query strings, sent with a token of a role the
//! route allows, never get a 5xx from svc-payment, and a 4xx never changes what it stores.
//!
//! One running service per test; proptest's runner is synchronous, so each case runs to the end
//! on the test's runtime (`block_in_place` + `block_on`) before the next one is generated.

use common::harness::fuzz::{self, Query, body, client, query, send, with_query};
use common::{Event, PaymentMethod, Role};
use proptest::{prelude::*, sample::select, test_runner::TestCaseError};
use reqwest::Url;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, envelope, reserved, spawn_app};

/// Cases per test: enough to reach every rule of a route, few enough for a few seconds.
const CASES: u32 = 96;

/// Runs [`CASES`] cases of `strategy` through `case` (see [`fuzz::run`]).
fn fuzz<S: Strategy>(strategy: S, case: impl AsyncFn(S::Value) -> Result<(), TestCaseError>) {
    fuzz::run(CASES, strategy, case)
}

/// What svc-payment stores: payments, which are refunded, closed orders, its outbox.
fn state(app: &TestApp) -> Vec<i64> {
    [
        "SELECT count(*) FROM payments",
        "SELECT count(*) FROM payments WHERE status = 'CANCELLED'",
        "SELECT count(*) FROM closed_orders",
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

/// A completed payment of `user`'s, as svc-payment charges it for a `stock.reserved`; returns
/// the payment's id and its order's.
async fn completed_payment(app: &TestApp, user: Uuid) -> (String, String) {
    let reserved = reserved(user, 15_000, 2, PaymentMethod::Card);
    app.publish(&envelope(&reserved)).await;
    let Event::PaymentCompleted(paid) = app.payment_event(reserved.order_id).await.event else {
        panic!("the payment did not complete")
    };
    (paid.payment_id.to_string(), paid.order_id.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_with_any_path_and_body_never_fails_and_a_refusal_stores_nothing() {
    let app = spawn_app(&[]).await;
    let http = client();
    let (payer, admin) = (Uuid::now_v7(), Uuid::now_v7());
    let (payment, _) = completed_payment(&app, payer).await;
    // The payment (once refunded, a conflict), one that does not exist, or a path that names none;
    // asked by its payer or by an admin; with any body, which the route does not read.
    let target = prop_oneof![
        4 => Just(payment),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
        1 => any::<String>(),
    ];
    let caller = select(vec![(payer, Role::Customer), (admin, Role::Admin)]);
    let any_body = proptest::option::of(body(Just(json!({}))));

    fuzz((target, caller, any_body), async |(target, (id, role), body)| {
        let mut url = Url::parse(&app.url("/payments")).unwrap();
        url.path_segments_mut().unwrap().push(&target).push("cancel");
        let req = http.post(url).bearer_auth(app.token_for(id, role));
        checked(&app, async || send(req, body.as_ref()).await, true).await
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn any_query_string_on_a_list_never_fails_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let http = client();
    let payer = Uuid::now_v7();
    let (_, order) = completed_payment(&app, payer).await;
    let admin = app.token_for(Uuid::now_v7(), Role::Admin);
    let lists = ["/payments", "/admin/payments", "/admin/dead-letters"];
    // Sometimes the order that has a payment, with or without more parameters.
    let query = prop_oneof![
        3 => query(&["orderId", "page", "size"]),
        1 => query(&["page", "size"]).prop_map(move |q| match q {
            Query::Pairs(mut pairs) => {
                pairs.insert(0, ("orderId".into(), order.clone()));
                Query::Pairs(pairs)
            }
            raw => raw,
        }),
    ];

    fuzz((select(lists.to_vec()), query), async |(path, query)| {
        let url = with_query(Url::parse(&app.url(path)).unwrap(), &query);
        checked(&app, async || send(http.get(url).bearer_auth(&admin), None).await, false).await
    });
}
