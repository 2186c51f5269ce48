use common::runtime::Service;
use common::{Event, Role, config::CommonConfig};
use reqwest::StatusCode;
use serde_json::Value;
use svc_user::Config;
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, WAIT, spawn_app, spawn_app_with_admin};

const ADMIN: (&str, &str) = ("root@example.com", "admin-pass-1");

#[tokio::test]
async fn the_bootstrap_admin_can_log_in_as_an_admin() {
    let app = spawn_app_with_admin(Some(ADMIN)).await;

    let token = app.token(ADMIN.0, ADMIN.1).await;
    let me: Value = app.me(Some(&token)).await.json().await.unwrap();

    assert_eq!((me["email"].as_str(), me["role"].as_str()), (Some(ADMIN.0), Some("ADMIN")));
    let event = app.events.wait_for(WAIT, |e| e.event.event_type() == "user.registered").await.unwrap();
    let Event::UserRegistered(data) = &event.event else { panic!("not user.registered: {event:?}") };
    assert_eq!((data.email.as_str(), data.role), (ADMIN.0, Role::Admin));
}

#[tokio::test]
async fn a_restart_neither_duplicates_nor_resets_the_bootstrap_admin() {
    let app = spawn_app_with_admin(Some(ADMIN)).await;
    app.settled().await;

    let app = app.restart(Some((ADMIN.0, "changed-pass-2"))).await;

    assert_eq!(app.count("SELECT count(*) FROM users", []), 1);
    assert_eq!(app.count("SELECT count(*) FROM outbox", []), 1, "one user.registered, from the first start");
    assert_eq!(app.log_in(ADMIN.0, ADMIN.1).await.status(), StatusCode::OK);
    assert_eq!(app.log_in(ADMIN.0, "changed-pass-2").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_admin_password_that_breaks_the_policy_stops_the_start_before_anything_runs() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        // Nothing listens there: the configuration is refused before any connection is tried.
        common: CommonConfig {
            nats_url: "nats://127.0.0.1:1".into(),
            data_dir: data_dir.path().to_path_buf(),
            ack_wait_secs: 30,
            http_header_timeout_secs: 10,
            http_request_timeout_secs: 35,
            http_max_connections: 1024,
            outbox_resend_secs: 5,
            ready_max_outbox_backlog: 10_000,
            nats_replicas: 1,
            nats_auth: Default::default(),
        },
        admin_email: Some(ADMIN.0.into()),
        admin_password: Some("password".into()),
        token_ttl_secs: 3600,
        login: Default::default(),
    };

    let err = config.build(CancellationToken::new()).await.expect_err("the start is refused");

    let message = err.to_string();
    assert!(message.starts_with("ADMIN_PASSWORD: "), "{message}");
    assert!(!message.contains("password\""), "the password is not echoed: {message}");
    assert!(!data_dir.path().join("svc-user.db").exists());
}

#[tokio::test]
async fn an_admin_email_that_belongs_to_a_customer_stops_the_start_naming_the_email_and_the_role() {
    let app = spawn_app().await;
    app.register(ADMIN.0).await;
    app.settled().await;
    let mut config = app.config().clone();
    let (_bus, data_dir) = app.shut_down().await;
    (config.admin_email, config.admin_password) = (Some(ADMIN.0.into()), Some(ADMIN.1.into()));

    let stop = CancellationToken::new();
    let err = config.build(stop.clone()).await.expect_err("the start is refused");
    stop.cancel();

    let message = format!("{err:#}");
    assert!(message.contains(ADMIN.0) && message.contains("CUSTOMER"), "{message}");
    let role: String = TestApp::db_at(&data_dir)
        .query_row("SELECT role FROM users WHERE email = ?1", [ADMIN.0], |row| row.get(0))
        .unwrap();
    assert_eq!(role, "CUSTOMER", "the account is left as it was");
}
