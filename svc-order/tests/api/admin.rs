//! `GET /admin/orders`: every order, oldest first, for admins only.

use common::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Play, TestApp};

#[tokio::test]
async fn admins_list_every_order_oldest_first_with_its_deadline() {
    let app = TestApp::spawn().await;
    let anonymous = app.http.get(app.url("/admin/orders")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&app.customer(), "/admin/orders").await.status(), StatusCode::FORBIDDEN);

    let (kim, lee) = (app.customer(), app.customer());
    let (paid, created) = app.placed(&kim).await;
    app.bus.play(&created, Play::Paid).await;
    app.order_with_status(&kim, &paid, "PAID").await;
    let pending = app.place(&lee).await["id"].clone();

    let admin = app.user(Role::Admin);
    let page: Value = app.get(&admin, "/admin/orders").await.json().await.unwrap();
    assert_eq!(page["total"], 2);
    let items = page["items"].as_array().unwrap();
    assert_eq!((&items[0]["id"], &items[1]["id"]), (&json!(paid), &pending));
    assert_eq!((&items[0]["status"], &items[0]["userId"]), (&json!("PAID"), &json!(kim.id)));
    assert!(items[0]["amount"].as_i64().is_some() && items[0]["paymentId"].is_string(), "{}", items[0]);
    assert_eq!(items[1]["status"], "PENDING");
    let created_at = time::OffsetDateTime::parse(
        items[1]["createdAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let deadline_at = time::OffsetDateTime::parse(
        items[1]["deadlineAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(deadline_at - created_at, time::Duration::seconds(600), "the default deadline");

    let second: Value = app.get(&admin, "/admin/orders?page=2&size=1").await.json().await.unwrap();
    assert_eq!(second["items"][0]["id"], pending);
}
