//! `POST /payments/{id}/cancel`: a completed payment is refunded once, by its payer or an admin.

use common::{Event, PaymentMethod, Role, event::PaymentCancelled};
use uuid::Uuid;

use crate::helpers::{TestApp, WAIT, envelope, json, reserved, spawn_app};

/// A payment of `payer`'s for 2 x 12,000 won; the app's limit decides whether it completes.
async fn payment(app: &TestApp, payer: Uuid) -> (Uuid, Uuid) {
    let r = reserved(payer, 12_000, 2, PaymentMethod::Card);
    app.publish(&envelope(&r)).await;
    let event = app.payment_event(r.order_id).await;
    let id = match event.event {
        Event::PaymentCompleted(e) => e.payment_id,
        Event::PaymentFailed(e) => e.payment_id,
        other => panic!("unexpected {other:?}"),
    };
    (id, r.order_id)
}

async fn cancellations(app: &TestApp, order: Uuid) -> Vec<PaymentCancelled> {
    app.events
        .saga(&order.to_string())
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            Event::PaymentCancelled(c) => Some(c),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_payer_cancels_a_completed_payment_and_payment_cancelled_follows() {
    let app = spawn_app(&[]).await;
    let payer = Uuid::now_v7();
    let (id, order) = payment(&app, payer).await;

    let cancelled = json(app.cancel(id, (payer, Role::Customer)).await, 200).await;

    assert_eq!((cancelled["status"].as_str(), cancelled["amount"].as_i64()), (Some("CANCELLED"), Some(24_000)));
    assert!(cancelled["cancelledAt"].is_string(), "{cancelled}");
    let event = app
        .events
        .wait_for(WAIT, |e| matches!(&e.event, Event::PaymentCancelled(c) if c.order_id == order))
        .await
        .expect("payment.cancelled published");
    let Event::PaymentCancelled(c) = event.event else { unreachable!() };
    assert_eq!((c.payment_id, c.amount.0, c.quantity, c.user_id), (id, 24_000, 2, payer));
    assert_eq!(event.correlation_id, order.to_string());
    let seen = json(app.get(&format!("/payments/{id}"), Some((payer, Role::Customer))).await, 200).await;
    assert_eq!(seen, cancelled);
    let charges = app.gateway.charges_of(&order.to_string()).await;
    assert_eq!(charges[0]["refunded"], 24_000, "the gateway gave the money back: {charges:?}");
}

#[tokio::test]
async fn a_cancel_while_the_gateway_is_down_is_a_503_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let payer = Uuid::now_v7();
    let (id, order) = payment(&app, payer).await;
    app.gateway.faults(serde_json::json!({"down": true})).await;

    let refused = json(app.cancel(id, (payer, Role::Customer)).await, 503).await;

    assert_eq!(refused["code"], "GATEWAY_UNAVAILABLE");
    let seen = json(app.get(&format!("/payments/{id}"), Some((payer, Role::Customer))).await, 200).await;
    assert_eq!(seen["status"], "COMPLETED");
    assert_eq!(app.payment_events_in_outbox(order), 1, "only payment.completed");
    app.gateway.faults(serde_json::json!({"down": false})).await;
    json(app.cancel(id, (payer, Role::Customer)).await, 200).await;
    assert_eq!(app.gateway.charges_of(&order.to_string()).await[0]["refunded"], 24_000);
}

#[tokio::test]
async fn cancelling_twice_is_a_409_and_refunds_once() {
    let app = spawn_app(&[]).await;
    let payer = Uuid::now_v7();
    let (id, order) = payment(&app, payer).await;
    json(app.cancel(id, (payer, Role::Customer)).await, 200).await;

    let again = json(app.cancel(id, (Uuid::now_v7(), Role::Admin)).await, 409).await;

    assert_eq!(again["code"], "ALREADY_CANCELLED");
    assert_eq!(app.payment_events_in_outbox(order), 2, "payment.completed and one payment.cancelled");
}

#[tokio::test]
async fn a_failed_payment_cannot_be_cancelled() {
    let app = spawn_app(&["--payment-limit", "1000"]).await;
    let payer = Uuid::now_v7();
    let (id, order) = payment(&app, payer).await;

    let refused = json(app.cancel(id, (payer, Role::Customer)).await, 409).await;

    assert_eq!(refused["code"], "PAYMENT_NOT_CANCELLABLE");
    let seen = json(app.get(&format!("/payments/{id}"), Some((payer, Role::Customer))).await, 200).await;
    assert_eq!(seen["status"], "FAILED");
    assert_eq!(app.payment_events_in_outbox(order), 1);
}

#[tokio::test]
async fn someone_elses_payment_is_a_404_and_stays_completed() {
    let app = spawn_app(&[]).await;
    let payer = Uuid::now_v7();
    let (id, order) = payment(&app, payer).await;

    for stranger in [(Uuid::now_v7(), Role::Customer), (Uuid::now_v7(), Role::Seller)] {
        let hidden = json(app.cancel(id, stranger).await, 404).await;
        assert_eq!(hidden["code"], "PAYMENT_NOT_FOUND");
    }
    let missing = json(app.cancel(Uuid::now_v7(), (payer, Role::Customer)).await, 404).await;
    assert_eq!(missing["code"], "PAYMENT_NOT_FOUND");
    let anonymous = app.http.post(app.url(&format!("/payments/{id}/cancel"))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let seen = json(app.get(&format!("/payments/{id}"), Some((payer, Role::Customer))).await, 200).await;
    assert_eq!(seen["status"], "COMPLETED");
    assert_eq!(app.payment_events_in_outbox(order), 1);
}

#[tokio::test]
async fn concurrent_cancels_refund_once() {
    let app = spawn_app(&[]).await;
    let payer = Uuid::now_v7();
    let (id, order) = payment(&app, payer).await;

    let attempts = (0..16).map(|_| app.cancel(id, (payer, Role::Customer)));
    let statuses: Vec<u16> =
        futures_util::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();

    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 15, "{statuses:?}");
    assert_eq!(app.payment_events_in_outbox(order), 2);
    app.events
        .wait_for(WAIT, |e| matches!(&e.event, Event::PaymentCancelled(c) if c.order_id == order))
        .await
        .expect("published");
    assert_eq!(cancellations(&app, order).await.len(), 1);
}
