use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{capture_logs, spawn_app};

#[tokio::test]
async fn no_password_hash_or_token_reaches_the_logs() {
    let logs = capture_logs();
    let app = spawn_app().await;
    let (email, password, wrong) =
        ("secret-keeper@example.com", "Unl1kely-to-appear-elsewhere", "Wr0ng-and-also-unlikely");

    let res = app.sign_up(&json!({"email": email, "password": password, "name": "Keeper"})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(app.log_in(email, wrong).await.status(), StatusCode::UNAUTHORIZED);
    let token = app.token(email, password).await;
    assert_eq!(app.me(Some(&token)).await.status(), StatusCode::OK);
    app.settled().await;

    let hash: String =
        app.connection().query_row("SELECT password_hash FROM users WHERE email = ?1", [email], |r| r.get(0)).unwrap();
    let signature = token.rsplit('.').next().unwrap();
    let text = logs.text();
    // The capture works: our own and the plumbing's lines are there, at every level.
    assert!(text.contains("user registered") && text.contains("TRACE"), "nothing was captured");
    for (what, secret) in [
        ("password", password),
        ("wrong password", wrong),
        ("hash", &hash),
        ("token", &token),
        ("signature", signature),
    ] {
        assert!(!text.contains(secret), "the {what} was logged");
    }
    assert!(!text.contains("$argon2"), "a password hash was logged");
}
