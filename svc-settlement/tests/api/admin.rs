//! `GET /admin/ledger`: every entry, for admins only.

use common::{Role, harness::eventually};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{WAIT, admin, at, completed, refund, sale, spawn_app};

#[tokio::test]
async fn admins_read_every_ledger_entry_in_booking_order() {
    let app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    assert_eq!(app.get("/admin/ledger", None).await.status(), 401);
    assert_eq!(app.get("/admin/ledger", Some((Uuid::now_v7(), Role::Seller))).await.status(), 403);

    let seller = Uuid::now_v7();
    let sold = sale(seller, "books", 30_000, at("2026-11-30T20:00:00+09:00"));
    app.publish(&sold).await;
    let refunded = refund(&sold, at("2026-11-30T21:00:00+09:00"));
    app.publish(&refunded).await;
    let ledger: Value = eventually(WAIT, || async {
        let page: Value = app.get("/admin/ledger?size=1&page=2", admin()).await.json().await.ok()?;
        (page["total"] == 2).then_some(page)
    })
    .await
    .expect("both entries booked");

    let s = completed(&sold);
    assert_eq!(
        ledger["items"],
        json!([{
            "id": refunded.id, "kind": "REFUND", "paymentId": s.payment_id, "orderId": s.order_id,
            "sellerId": seller, "category": "books", "amount": 30_000, "occurredAt": "2026-11-30T12:00:00Z",
            "eventDate": "2026-11-30", "businessDate": "2026-11-30",
        }])
    );
    let first: Value = app.get("/admin/ledger", admin()).await.json().await.unwrap();
    assert_eq!((&first["items"][0]["kind"], &first["items"][0]["id"]), (&json!("SALE"), &json!(sold.id)));
}
