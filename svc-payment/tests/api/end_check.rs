//! The harness's end-of-test check, proved on svc-payment: a test that leaves a dead letter it
//! never looked at fails, even though every assertion in it held.

use common::{PaymentMethod, Won};
use uuid::Uuid;

use crate::helpers::{envelope, reserved, spawn_app};

#[tokio::test]
#[should_panic(expected = "svc-payment dead-lettered what the test did not expect")]
async fn a_dead_letter_the_test_did_not_look_at_fails_it() {
    let app = spawn_app(&[]).await;
    let mut bad = reserved(Uuid::now_v7(), 15_000, 3, PaymentMethod::Card);
    bad.amount = Won(1);
    let seq = app.publish(&envelope(&bad)).await;
    app.consumed_through(seq).await;
    assert_eq!(app.payments_of(bad.order_id), 0);
}

#[tokio::test]
async fn a_dead_letter_the_test_looked_at_passes() {
    let app = spawn_app(&[]).await;
    let mut bad = reserved(Uuid::now_v7(), 15_000, 3, PaymentMethod::Card);
    bad.amount = Won(1);
    let seq = app.publish(&envelope(&bad)).await;
    app.consumed_through(seq).await;
    assert_eq!(app.dead_letters().len(), 1);
}
