//! The saga console's login: `ops.svc-user.login` on the NATS services API, asked as svc-order
//! (the console's host, the one user NATS lets ask) with the browser's address. The same checks
//! and throttle as `POST /auth/login`.

use std::time::Duration;

use common::{
    micro::{self, OpsError},
    permissions,
};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, spawn_app_with_args};

const ASK: Duration = Duration::from_secs(10);

async fn ask(console: &async_nats::Client, email: &str, password: &str, client: &str) -> Result<Value, OpsError> {
    let body = json!({"email": email, "password": password, "client": client});
    micro::request(console, "svc-user", "login", &body, ASK).await
}

#[tokio::test]
async fn the_console_logs_in_with_the_password_and_is_throttled_per_browser() {
    let app = spawn_app_with_args(&["--login-client-max-failures", "3", "--login-window-secs", "120"]).await;
    let kim = app.register("kim@example.com").await;
    let console = app.bus.nats.client_as(&app.bus.nats.auth(permissions::CONSOLE)).await;

    let login = ask(&console, "kim@example.com", PASSWORD, "192.0.2.1").await.expect("the right password logs in");
    assert_eq!((&login["userId"], login["role"].as_str()), (&kim["id"], Some("CUSTOMER")));
    let me = app.me(Some(login["accessToken"].as_str().unwrap())).await;
    assert_eq!(me.status(), 200, "the token it answers is a real one");

    let wrong = ask(&console, "kim@example.com", "wrong-password-1", "192.0.2.1").await.unwrap_err();
    assert_eq!((wrong.status, wrong.code.as_str()), (401, "INVALID_CREDENTIALS"));

    // One browser guessing many emails is stopped like one client of POST /auth/login; another
    // browser is not.
    for i in 0..2 {
        let e = ask(&console, &format!("guess-{i}@example.com"), PASSWORD, "198.51.100.7").await.unwrap_err();
        assert_eq!(e.status, 401, "guess {i}");
    }
    let refused = ask(&console, "guess-2@example.com", PASSWORD, "198.51.100.7").await.unwrap_err();
    assert_eq!((refused.status, refused.code.as_str()), (401, "INVALID_CREDENTIALS"), "the third failure counts");
    let locked = ask(&console, "guess-3@example.com", PASSWORD, "198.51.100.7").await.unwrap_err();
    assert_eq!((locked.status, locked.code.as_str()), (429, "TOO_MANY_ATTEMPTS"));
    ask(&console, "kim@example.com", PASSWORD, "192.0.2.1").await.expect("another browser still logs in");

    // Nobody but the console's host may ask.
    let other = app.bus.nats.client_as(&app.bus.nats.auth("svc-product")).await;
    let body = json!({"email": "kim@example.com", "password": PASSWORD});
    let asked = micro::request::<Value>(&other, "svc-user", "login", &body, Duration::from_secs(2)).await;
    assert!(asked.is_err(), "svc-product logged in through the ops API: {asked:?}");
}
