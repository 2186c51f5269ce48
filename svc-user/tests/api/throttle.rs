//! Login throttling over HTTP, on the real service: per email and per client.

use std::collections::BTreeMap;

use common::harness::eventually;
use reqwest::{Response, StatusCode, header};
use serde_json::Value;

use crate::helpers::{PASSWORD, WAIT, spawn_app_with_args};

/// A login answer as a client can compare it: status, headers (but the per-response `date` and
/// `x-request-id`) and body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    headers: BTreeMap<String, String>,
    body: Value,
}

async fn answer(res: Response) -> Answer {
    let status = res.status();
    let headers = res
        .headers()
        .iter()
        // Per request by design, whoever asks: the time, the request id, the trace.
        .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id" | "traceparent"))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    Answer { status, headers, body: res.json().await.unwrap() }
}

#[tokio::test]
async fn after_five_wrong_passwords_even_the_right_one_is_refused_and_an_unknown_email_is_refused_alike() {
    let app = spawn_app_with_args(&["--login-lockout-secs", "600", "--login-max-lockout-secs", "600"]).await;
    app.register("kim@example.com").await;

    let mut runs = Vec::new();
    for email in ["kim@example.com", "nobody@example.com"] {
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(answer(app.log_in(email, "wrong-password-1").await).await);
        }
        answers.push(answer(app.log_in(email, PASSWORD).await).await);
        runs.push(answers);
    }

    let [known, unknown] = <[Vec<Answer>; 2]>::try_from(runs).unwrap();
    assert_eq!(known, unknown, "a registered and an unknown email are told apart");
    let statuses: Vec<u16> = known.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    let refused = &known[5];
    assert_eq!(refused.headers["retry-after"], "600");
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    assert!(!refused.headers.contains_key("www-authenticate"), "not a credentials problem");
    let problem = &refused.body;
    insta::assert_json_snapshot!(problem);
}

#[tokio::test]
async fn once_the_lock_ends_the_right_password_logs_in_and_the_count_starts_again() {
    let app = spawn_app_with_args(&["--login-lockout-secs", "1", "--login-max-lockout-secs", "1"]).await;
    app.register("kim@example.com").await;
    for _ in 0..5 {
        assert_eq!(app.log_in("kim@example.com", "wrong-password-1").await.status(), StatusCode::UNAUTHORIZED);
    }

    // Refused (429, counted as nothing) until the 1-second lock ends.
    let logged_in = eventually(WAIT, || async {
        let res = app.log_in("kim@example.com", PASSWORD).await;
        match res.status() {
            StatusCode::OK => Some(()),
            status => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                assert_eq!(res.headers()[header::RETRY_AFTER], "1");
                None
            }
        }
    });
    logged_in.await.expect("the right password logs in once the lock has ended");

    // Without the reset, the first failure after a lock would lock again.
    for i in 0..5 {
        let status = app.log_in("kim@example.com", "wrong-password-1").await.status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "failure {i} after the successful login");
    }
    assert_eq!(app.log_in("kim@example.com", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn one_client_trying_many_emails_is_refused_after_the_client_limit() {
    let routes = spawn_app_with_args(&["--login-client-max-failures", "3", "--login-window-secs", "120"]).await;

    for i in 0..3 {
        let res = routes.log_in(&format!("guess-{i}@example.com"), PASSWORD).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // A fresh email, so the per-email limit (5) is nowhere near: the client's is what refuses.
    let refused = answer(routes.log_in("guess-3@example.com", PASSWORD).await).await;

    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["code"], "TOO_MANY_ATTEMPTS");
    assert_eq!(refused.headers["retry-after"], "120", "a client is locked for the window");
}
