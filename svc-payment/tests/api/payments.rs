//! `GET /payments/{id}` and `GET /payments?orderId=`: who sees what.

use common::{Event, PaymentMethod, Role};
use uuid::Uuid;

use crate::helpers::{TestApp, envelope, json, reserved, spawn_app};

/// A completed payment of `payer`'s; returns (payment id, order id).
async fn charged(app: &TestApp, payer: Uuid) -> (Uuid, Uuid) {
    let r = reserved(payer, 12_000, 1, PaymentMethod::Card);
    app.publish(&envelope(&r)).await;
    let Event::PaymentCompleted(paid) = app.payment_event(r.order_id).await.event else { panic!("not completed") };
    (paid.payment_id, r.order_id)
}

#[tokio::test]
async fn the_payer_and_admins_see_a_payment_and_everyone_else_gets_404() {
    let app = spawn_app(&[]).await;
    let payer = Uuid::now_v7();
    let (payment, order) = charged(&app, payer).await;
    let by_id = format!("/payments/{payment}");
    let by_order = format!("/payments?orderId={order}");

    for path in [&by_id, &by_order] {
        let seen = json(app.get(path, Some((payer, Role::Customer))).await, 200).await;
        assert_eq!(
            (seen["id"].as_str(), seen["orderId"].as_str()),
            (Some(&*payment.to_string()), Some(&*order.to_string()))
        );
        assert_eq!((seen["amount"].as_i64(), seen["status"].as_str()), (Some(12_000), Some("COMPLETED")));
        assert!(seen.get("declineReason").is_none(), "{seen}");
        let admin = json(app.get(path, Some((Uuid::now_v7(), Role::Admin))).await, 200).await;
        assert_eq!(admin, seen);

        for stranger in [(Uuid::now_v7(), Role::Customer), (Uuid::now_v7(), Role::Seller)] {
            let hidden = json(app.get(path, Some(stranger)).await, 404).await;
            assert_eq!(hidden["code"], "PAYMENT_NOT_FOUND", "{path} as {stranger:?}");
        }
        let anonymous = json(app.get(path, None).await, 401).await;
        assert_eq!(anonymous["code"], "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn a_missing_payment_looks_like_a_hidden_one() {
    let app = spawn_app(&[]).await;
    let admin = Some((Uuid::now_v7(), Role::Admin));
    let missing = json(app.get(&format!("/payments/{}", Uuid::now_v7()), admin).await, 404).await;
    insta::assert_json_snapshot!("payment_not_found", missing);
    let not_an_id = json(app.get("/payments/not-a-uuid", admin).await, 404).await;
    assert_eq!(not_an_id, missing);
    let no_order = json(app.get(&format!("/payments?orderId={}", Uuid::now_v7()), admin).await, 404).await;
    assert_eq!(no_order, missing);
}

#[tokio::test]
async fn looking_up_by_order_needs_an_order_id() {
    let app = spawn_app(&[]).await;
    let admin = Some((Uuid::now_v7(), Role::Admin));
    for path in ["/payments", "/payments?orderId=", "/payments?orderId=42", "/payments?order_id=0193"] {
        let problem = json(app.get(path, admin).await, 400).await;
        assert_eq!(problem["code"], "INVALID_QUERY", "{path}");
    }
    // Authentication comes first: nothing about the query is revealed to an anonymous caller.
    assert_eq!(json(app.get("/payments", None).await, 401).await["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn admins_list_every_payment_oldest_first_and_no_one_else_may() {
    let app = spawn_app(&[]).await;
    let (first, _) = charged(&app, Uuid::now_v7()).await;
    let (second, _) = charged(&app, Uuid::now_v7()).await;

    assert_eq!(app.get("/admin/payments", None).await.status(), 401);
    let refused = json(app.get("/admin/payments", Some((Uuid::now_v7(), Role::Customer))).await, 403).await;
    assert_eq!(refused["code"], "FORBIDDEN");
    let page = json(app.get("/admin/payments?size=1&page=2", Some((Uuid::now_v7(), Role::Admin))).await, 200).await;
    assert_eq!((page["total"].as_i64(), page["page"].as_i64()), (Some(2), Some(2)));
    assert_eq!(page["items"][0]["id"], second.to_string());
    let all = json(app.get("/admin/payments", Some((Uuid::now_v7(), Role::Admin))).await, 200).await;
    let ids: Vec<&str> = all["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first.to_string(), second.to_string()]);
    let gateway = json(app.get("/admin/gateway", Some((Uuid::now_v7(), Role::Admin))).await, 200).await;
    assert_eq!(gateway["breaker"], "CLOSED");
}
