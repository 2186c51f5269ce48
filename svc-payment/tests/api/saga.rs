//! The reaction to `stock.reserved`, driven by hand-published events.

use common::{
    Envelope, Event, PaymentMethod, Role, Won,
    event::{PaymentDecline, StockReserved},
    harness::{fixtures, transcript},
};
use uuid::Uuid;

use crate::helpers::{envelope, json, reserved, spawn_app, spawn_app_with};

/// Placeholder names for a saga's ids in snapshots.
fn names(r: &StockReserved, payment: Uuid) -> Vec<(&'static str, String)> {
    vec![
        ("payment", payment.to_string()),
        ("order", r.order_id.to_string()),
        ("user", r.user_id.to_string()),
        ("product", r.product_id.to_string()),
        ("seller", r.seller_id.to_string()),
    ]
}

#[tokio::test]
async fn a_reserved_order_is_charged_and_payment_completed_forwards_what_settlement_needs() {
    let app = spawn_app(&[]).await;
    let r = reserved(Uuid::now_v7(), 15_000, 3, PaymentMethod::BankTransfer);
    let cause = envelope(&r);
    app.publish(&cause).await;

    let effect = app.payment_event(r.order_id).await;
    let Event::PaymentCompleted(paid) = &effect.event else { panic!("expected payment.completed: {effect:?}") };
    assert_eq!(
        (paid.order_id, paid.user_id, paid.amount, paid.method),
        (r.order_id, r.user_id, Won(45_000), r.payment_method)
    );
    assert_eq!((paid.seller_id, paid.product_id, paid.quantity), (r.seller_id, r.product_id, 3));
    assert_eq!(paid.category, r.category);
    assert_eq!((effect.causation_id, effect.correlation_id.as_str()), (Some(cause.id), cause.correlation_id.as_str()));
    insta::assert_json_snapshot!(
        "completed_saga",
        transcript(&app.events.saga(&cause.correlation_id).await, &names(&r, paid.payment_id))
    );

    let payment =
        json(app.get(&format!("/payments/{}", paid.payment_id), Some((r.user_id, Role::Customer))).await, 200).await;
    assert_eq!(payment["id"], paid.payment_id.to_string());
    insta::assert_json_snapshot!("completed_payment", payment, {
        ".id" => "[payment]", ".orderId" => "[order]", ".userId" => "[user]",
        ".createdAt" => "[time]", ".updatedAt" => "[time]",
    });
}

#[tokio::test]
async fn an_amount_exactly_at_the_default_limit_completes_and_one_won_above_fails_with_limit_exceeded() {
    let app = spawn_app(&[]).await;
    let at_limit = reserved(Uuid::now_v7(), 250_000, 4, PaymentMethod::Card);
    let above = reserved(Uuid::now_v7(), 1_000_001, 1, PaymentMethod::Card);
    app.publish(&envelope(&at_limit)).await;
    app.publish(&envelope(&above)).await;

    let ok = app.payment_event(at_limit.order_id).await;
    assert!(matches!(&ok.event, Event::PaymentCompleted(e) if e.amount == Won(1_000_000)), "{ok:?}");

    let failed = app.payment_event(above.order_id).await;
    let Event::PaymentFailed(f) = &failed.event else { panic!("expected payment.failed: {failed:?}") };
    assert_eq!(
        (f.reason, f.amount, f.user_id, f.order_id),
        (PaymentDecline::LimitExceeded, Won(1_000_001), above.user_id, above.order_id)
    );
    insta::assert_json_snapshot!(
        "limit_exceeded_saga",
        transcript(&app.events.saga(&failed.correlation_id).await, &names(&above, f.payment_id))
    );

    let payment = json(
        app.get(&format!("/payments?orderId={}", above.order_id), Some((above.user_id, Role::Customer))).await,
        200,
    )
    .await;
    insta::assert_json_snapshot!("limit_exceeded_payment", payment, {
        ".id" => "[payment]", ".orderId" => "[order]", ".userId" => "[user]",
        ".createdAt" => "[time]", ".updatedAt" => "[time]",
    });
}

#[tokio::test]
async fn a_configured_limit_replaces_the_default() {
    let app = spawn_app(&["--payment-limit", "10000"]).await;
    let r = reserved(Uuid::now_v7(), 5_001, 2, PaymentMethod::Card);
    app.publish(&envelope(&r)).await;
    let failed = app.payment_event(r.order_id).await;
    assert!(
        matches!(&failed.event, Event::PaymentFailed(f) if f.reason == PaymentDecline::LimitExceeded),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_full_decline_rate_fails_every_payment_as_declined() {
    let app = spawn_app(&["--decline-rate-bps", "10000", "--decline-seed", "42"]).await;
    let r = reserved(Uuid::now_v7(), 9_900, 1, PaymentMethod::Card);
    app.publish(&envelope(&r)).await;

    let failed = app.payment_event(r.order_id).await;
    let Event::PaymentFailed(f) = &failed.event else { panic!("expected payment.failed: {failed:?}") };
    assert_eq!((f.reason, f.amount), (PaymentDecline::Declined, Won(9_900)));
    let payment =
        json(app.get(&format!("/payments/{}", f.payment_id), Some((Uuid::now_v7(), Role::Admin))).await, 200).await;
    assert_eq!((payment["status"].as_str(), payment["declineReason"].as_str()), (Some("FAILED"), Some("DECLINED")));
}

#[tokio::test]
async fn an_order_is_charged_once_whatever_is_redelivered_or_republished() {
    let app = spawn_app(&[]).await;
    let r = reserved(Uuid::now_v7(), 20_000, 2, PaymentMethod::Card);
    let first = envelope(&r);
    app.publish(&first).await;
    let effect = app.payment_event(r.order_id).await;

    // The same envelope under a new Nats-Msg-Id (JetStream stores it again: only the consumer's
    // processed table stops it), then a different envelope for the same order (a fresh event id:
    // only the payment's UNIQUE(order_id) and the saga's check stop it).
    app.publish_as(&first, &Uuid::now_v7().to_string()).await;
    let last = app.publish(&envelope(&r)).await;
    app.consumed_through(last).await;

    assert_eq!(app.payments_of(r.order_id), 1);
    assert_eq!(app.payment_events_in_outbox(r.order_id), 1);
    // Both distinct envelopes reached the saga; the re-published one was skipped before it.
    assert_eq!(app.count("SELECT count(*) FROM processed WHERE consumer = ?1", ["svc-payment"]), 2);
    let key = r.order_id.to_string();
    let published: Vec<Envelope> = app.events.all().await.into_iter().map(|(_, e)| e).collect();
    let payment_events: Vec<_> =
        published.iter().filter(|e| e.event.event_type().starts_with("payment.") && e.event.key() == key).collect();
    assert_eq!(payment_events.len(), 1, "{payment_events:?}");
    assert_eq!(payment_events[0].id, effect.id);
}

#[tokio::test]
async fn a_stock_reserved_whose_amount_does_not_add_up_is_dead_lettered_and_not_charged() {
    let app = spawn_app(&[]).await;
    let mut r = reserved(Uuid::now_v7(), 15_000, 3, PaymentMethod::Card);
    r.amount = Won(1);
    let bad = envelope(&r);
    let seq = app.publish(&bad).await;

    let dead = app.dead_letter(&bad.id.to_string()).await;
    app.consumed_through(seq).await;
    assert_eq!(app.payments_of(r.order_id), 0);
    assert_eq!(app.payment_events_in_outbox(r.order_id), 0);
    assert!(dead.reason.contains("is not unitPrice 15000 x quantity 3"), "{dead:?}");
}

/// The charge went through, then the order ended unpaid (failed, and a late expiry too): the
/// money goes back once.
#[tokio::test]
async fn a_charge_is_refunded_once_when_its_order_fails_or_expires() {
    let app = spawn_app(&[]).await;
    let r = reserved(Uuid::now_v7(), 15_000, 2, PaymentMethod::Card);
    app.publish(&envelope(&r)).await;
    assert_eq!(app.payment_event(r.order_id).await.event.event_type(), "payment.completed");

    app.publish(&fixtures::order_failed(r.order_id)).await;
    let seq = app.publish(&fixtures::order_expired(r.order_id)).await;
    app.consumed_through(seq).await;
    app.settled().await;

    let events = app.events.saga(&r.order_id.to_string()).await;
    let of_type = |t: &str| events.iter().filter(|e| e.event.event_type() == t).cloned().collect::<Vec<_>>();
    let (refunds, failed) = (of_type("payment.cancelled"), of_type("order.failed"));
    assert_eq!(refunds.len(), 1, "{events:#?}");
    assert_eq!(refunds[0].causation_id, Some(failed[0].id), "refunded because the order failed");
    assert_eq!(app.count("SELECT count(*) FROM payments WHERE status = 'CANCELLED'", []), 1);
    let charges = app.gateway.charges_of(&r.order_id.to_string()).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!((charges[0]["amount"].as_i64(), charges[0]["refunded"].as_i64()), (Some(30_000), Some(30_000)));
}

/// The order ended before its reservation reached svc-payment: it is never charged.
#[tokio::test]
async fn a_reservation_for_an_order_that_already_ended_is_never_charged() {
    let app = spawn_app(&[]).await;
    let r = reserved(Uuid::now_v7(), 15_000, 2, PaymentMethod::Card);
    app.publish(&fixtures::order_expired(r.order_id)).await;
    let seq = app.publish(&envelope(&r)).await;
    app.consumed_through(seq).await;
    app.settled().await;

    assert_eq!(app.payments_of(r.order_id), 0);
    assert_eq!(app.payment_events_in_outbox(r.order_id), 0);
    assert!(app.gateway.charges_of(&r.order_id.to_string()).await.is_empty(), "the gateway charged nothing");
}

/// A charge the gateway made but whose answer never reached svc-payment (it crashed, or the
/// answer was lost) is taken back when the order ends, and its key voided: the reservation that
/// comes later finds the order closed, and the gateway would refuse the charge anyway.
#[tokio::test]
async fn a_charge_made_at_the_gateway_but_never_recorded_is_refunded_when_its_order_ends() {
    let app = spawn_app(&[]).await;
    let r = reserved(Uuid::now_v7(), 15_000, 2, PaymentMethod::Card);
    // What svc-payment's call would have done before it crashed, made by hand.
    let res = app
        .gateway_post(
            "/v1/charges",
            &svc_payment::gateway::charge_key(r.order_id),
            serde_json::json!({
                "reference": r.order_id, "amount": 30_000, "method": "CARD"
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let seq = app.publish(&fixtures::order_failed(r.order_id)).await;
    app.consumed_through(seq).await;
    let seq = app.publish(&envelope(&r)).await;
    app.consumed_through(seq).await;
    app.settled().await;

    let charges = app.gateway.charges_of(&r.order_id.to_string()).await;
    assert_eq!(charges.len(), 1, "{charges:?}");
    assert_eq!(charges[0]["refunded"], 30_000, "the orphaned charge was refunded");
    assert_eq!(app.payments_of(r.order_id), 0);
}

/// While the gateway cannot be reached the charge is postponed, not declined: once it answers,
/// the order is charged (once).
#[tokio::test]
async fn a_reservation_waits_out_a_gateway_outage_and_is_charged_after_it() {
    let app = spawn_app_with(&[], &["--breaker-failures", "2", "--gateway-retries", "0"]).await;
    app.gateway.faults(serde_json::json!({"down": true})).await;
    let r = reserved(Uuid::now_v7(), 15_000, 1, PaymentMethod::Card);
    app.publish(&envelope(&r)).await;
    let refused = common::harness::eventually(crate::helpers::WAIT, || async {
        let n = app.gateway.fault_state().await["fired"]["refusedWhileDown"].as_u64().unwrap();
        (n >= 2).then_some(n)
    });
    refused.await.expect("svc-payment tried the gateway while it was down");
    assert_eq!(app.payments_of(r.order_id), 0, "nothing decided while the gateway is down");

    app.gateway.faults(serde_json::json!({"down": false})).await;
    let effect = app.payment_event(r.order_id).await;
    assert_eq!(effect.event.event_type(), "payment.completed");
    assert_eq!(app.gateway.charges_of(&r.order_id.to_string()).await.len(), 1);
}
