//! The admin lists (`GET /admin/products`, `GET /admin/reservations`) and, through svc-product,
//! the admin routes every service serves (`/admin/outbox`, `/admin/dead-letters`,
//! `/admin/failpoints`).

use common::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, WAIT, order_created};

impl TestApp {
    async fn admin_get(&self, token: Option<&str>, path: &str) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }
}

/// 401 without a token and 403 for a seller, on every admin route.
async fn admins_only(app: &TestApp, paths: &[&str]) {
    let (_, seller) = app.user(Role::Seller);
    for path in paths {
        assert_eq!(app.admin_get(None, path).await.status(), StatusCode::UNAUTHORIZED, "{path}");
        let res = app.admin_get(Some(&seller), path).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "FORBIDDEN");
    }
}

#[tokio::test]
async fn admins_see_every_products_stock_accounts_and_every_reservation() {
    let app = TestApp::spawn().await;
    admins_only(&app, &["/admin/products", "/admin/reservations"]).await;
    let (_, admin) = app.user(Role::Admin);
    let product = app.product_with_stock(1_000, 5).await;
    let res = app.post(&format!("/products/{product}/restock"), Some(&admin), json!({"quantity": 3})).await;
    assert_eq!(res.status(), 200);
    app.publish(&order_created(product, 2)).await;
    app.publish(&order_created(product, 100)).await;
    let reservations = common::harness::eventually(WAIT, || async {
        let page: Value = app.admin_get(Some(&admin), "/admin/reservations").await.json().await.ok()?;
        (page["total"] == 2).then_some(page)
    })
    .await
    .expect("both orders answered");

    let statuses: Vec<&Value> = reservations["items"].as_array().unwrap().iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [&json!("RESERVED"), &json!("REJECTED")]);
    let first = &reservations["items"][0];
    assert_eq!(
        (&first["productId"], &first["quantity"], &first["amount"]),
        (&json!(product), &json!(2), &json!(2_000))
    );
    assert_eq!(reservations["items"][1]["reason"], "OUT_OF_STOCK");

    let products: Value = app.admin_get(Some(&admin), "/admin/products").await.json().await.unwrap();
    assert_eq!(products["total"], 1);
    let p = &products["items"][0];
    assert_eq!((&p["id"], &p["category"], &p["price"]), (&json!(product), &json!("coffee"), &json!(1_000)));
    assert_eq!((&p["stock"], &p["stocked"], &p["reserved"]), (&json!(6), &json!(8), &json!(2)), "{p}");
    app.settled().await;
}

#[tokio::test]
async fn every_service_shows_admins_its_outbox_and_dead_letters() {
    let app = TestApp::spawn().await;
    admins_only(&app, &["/admin/outbox", "/admin/dead-letters", "/admin/failpoints"]).await;
    let (_, admin) = app.user(Role::Admin);
    let product = app.product_with_stock(1_000, 5).await;
    let poison = order_created(product, 0);
    app.publish(&poison).await;
    app.publish(&order_created(product, 1)).await;
    app.settled().await;
    assert_eq!(app.dead_letters().len(), 1);

    let outbox: Value = app.admin_get(Some(&admin), "/admin/outbox").await.json().await.unwrap();
    assert_eq!(outbox, json!({"unpublished": 0, "oldest": null}));
    let dead: Value = app.admin_get(Some(&admin), "/admin/dead-letters").await.json().await.unwrap();
    assert_eq!((&dead["total"], &dead["page"]), (&json!(1), &json!(1)));
    let letter = &dead["items"][0];
    assert_eq!((&letter["seq"], &letter["consumer"]), (&json!(1), &json!("svc-product")));
    assert_eq!(letter["subject"], format!("order.created.{}", poison.correlation_id));
    assert_eq!(letter["messageId"], poison.id.to_string());
    assert!(letter["payload"].as_str().unwrap().contains(&poison.id.to_string()), "{letter}");
    assert!(letter["reason"].as_str().unwrap().contains("quantity"), "{letter}");
    assert_eq!(letter["replayedAt"], Value::Null);
    assert!(letter["streamSeq"].as_i64().unwrap() >= 1 && letter["deliveries"].as_i64().unwrap() >= 1);
}

#[tokio::test]
async fn admins_set_and_clear_failpoints() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user(Role::Admin);
    let put = |name: &'static str, body: Value| {
        let req = app.http.put(app.url(&format!("/admin/failpoints/{name}"))).bearer_auth(&admin).json(&body);
        async move { req.send().await.unwrap() }
    };
    // A point svc-product never reaches, so that no other test of this binary is disturbed.
    let res = put("gateway.answer_lost", json!({"actions": "3*return"})).await;
    assert_eq!(res.status(), 200);
    let set: Value = res.json().await.unwrap();
    assert_eq!(set, json!({"name": "svc-product.gateway.answer_lost", "actions": "3*return", "hits": 0}));
    let listed: Value = app.admin_get(Some(&admin), "/admin/failpoints").await.json().await.unwrap();
    assert!(listed.as_array().unwrap().contains(&set), "{listed}");

    for (name, body) in
        [("gateway.answer_lost", json!({"actions": "sometimes"})), ("no.such.point", json!({"actions": "return"}))]
    {
        let res = put(name, body).await;
        assert_eq!(res.status(), 400, "{name}");
        assert_eq!(res.json::<Value>().await.unwrap()["code"], "BAD_REQUEST");
    }
    assert_eq!(put("svc-product.gateway.answer_lost", json!({"actions": "off"})).await.status(), 200);
    let listed: Value = app.admin_get(Some(&admin), "/admin/failpoints").await.json().await.unwrap();
    assert!(!listed.to_string().contains("svc-product.gateway.answer_lost"), "{listed}");
    let (_, seller) = app.user(Role::Seller);
    let res = app
        .http
        .put(app.url("/admin/failpoints/gateway.answer_lost"))
        .bearer_auth(&seller)
        .json(&json!({"actions": "return"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
