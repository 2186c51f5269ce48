//! Booking payment events: business days, refunds, duplicates, out-of-order delivery, closed days.

use common::{Envelope, Event, Won, harness::eventually};
use uuid::Uuid;

use crate::helpers::{WAIT, at, completed, refund, sale, spawn_app};

/// November 30th has ended in Seoul but is not yet due for the automatic close (1 h grace).
const AFTER_NOV_30: &str = "2026-12-01T00:30:00+09:00";

/// The admin's figures for `seller` on `date` (the totals of a seller-filtered daily report).
async fn totals(app: &crate::helpers::TestApp, date: &str, seller: Uuid) -> serde_json::Value {
    let path = format!("/settlements/daily?date={date}&sellerId={seller}");
    crate::helpers::json(app.get(&path, crate::helpers::admin()).await, 200).await["totals"].clone()
}

#[tokio::test]
async fn a_sale_one_second_before_local_midnight_and_one_at_midnight_land_on_different_business_days() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let seller = Uuid::now_v7();
    let late = sale(seller, "books", 10_000, at("2026-11-30T23:59:59+09:00"));
    let midnight = sale(seller, "books", 20_000, at("2026-12-01T00:00:00+09:00"));
    // Written in UTC: 14:59:59Z is still November 30th in Seoul.
    let utc = sale(seller, "books", 40_000, at("2026-11-30T14:59:59Z"));
    app.publish_all(&[late, midnight, utc]).await;

    let nov30 = totals(&app, "2026-11-30", seller).await;
    let dec1 = totals(&app, "2026-12-01", seller).await;
    assert_eq!((nov30["gross"].as_i64(), nov30["orders"].as_i64()), (Some(50_000), Some(2)));
    assert_eq!((dec1["gross"].as_i64(), dec1["orders"].as_i64()), (Some(20_000), Some(1)));
}

#[tokio::test]
async fn the_business_day_follows_the_configured_time_zone() {
    let app = spawn_app(AFTER_NOV_30, &["--time-zone", "UTC"]).await;
    let seller = Uuid::now_v7();
    // Midnight in Seoul is still the 30th in UTC.
    app.publish_all(&[sale(seller, "books", 10_000, at("2026-12-01T00:00:00+09:00"))]).await;
    assert_eq!(totals(&app, "2026-11-30", seller).await["gross"], 10_000);
    let report = app.daily("2026-11-30").await;
    assert_eq!(report["timeZone"], "UTC");
}

#[tokio::test]
async fn a_refund_reduces_the_net_on_its_own_day_but_not_the_order_count() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let seller = Uuid::now_v7();
    let sold = sale(seller, "books", 30_000, at("2026-11-30T20:00:00+09:00"));
    let same_day = refund(&sold, at("2026-11-30T21:00:00+09:00"));
    let sold_late = sale(seller, "books", 12_000, at("2026-11-30T23:00:00+09:00"));
    let next_day = refund(&sold_late, at("2026-12-01T09:00:00+09:00"));
    app.publish_all(&[sold, same_day, sold_late, next_day]).await;

    let nov30 = totals(&app, "2026-11-30", seller).await;
    assert_eq!(
        nov30,
        serde_json::json!({
            "gross": 42_000, "refunds": 30_000, "net": 12_000, "orders": 2, "fee": 360, "payout": 11_640
        })
    );
    let dec1 = totals(&app, "2026-12-01", seller).await;
    assert_eq!(
        dec1,
        serde_json::json!({
            "gross": 0, "refunds": 12_000, "net": -12_000, "orders": 0, "fee": 0, "payout": -12_000
        })
    );
}

#[tokio::test]
async fn a_refund_that_arrives_before_its_sale_is_retried_until_the_sale_is_booked() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let seller = Uuid::now_v7();
    let sold = sale(seller, "toys", 8_000, at("2026-11-30T10:00:00+09:00"));
    let refunded = refund(&sold, at("2026-11-30T11:00:00+09:00"));
    app.publish(&refunded).await;
    // The refund is now waiting for a redelivery; the sale comes in behind it.
    app.publish(&sold).await;

    let booked = eventually(WAIT, || async {
        let t = totals(&app, "2026-11-30", seller).await;
        (t["refunds"] == 8_000).then_some(t)
    })
    .await
    .expect("the refund is booked once its sale is");
    assert_eq!((booked["gross"].as_i64(), booked["net"].as_i64()), (Some(8_000), Some(0)));
    assert_eq!(app.count("SELECT count(*) FROM dead_letter", []), 0);
}

#[tokio::test]
async fn a_payment_republished_under_a_new_event_id_is_booked_once_and_a_contradicting_one_is_dead_lettered() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let seller = Uuid::now_v7();
    let sold = sale(seller, "books", 15_000, at("2026-11-30T10:00:00+09:00"));
    let refunded = refund(&sold, at("2026-11-30T11:00:00+09:00"));
    // The same facts under new event ids: the processed table cannot see these as duplicates.
    let sold_again = Envelope::new("svc-payment", sold.event.clone());
    let refunded_again = Envelope::caused_by("svc-payment", &sold, refunded.event.clone());
    // The same payment claiming another amount.
    let mut changed = completed(&sold).clone();
    changed.amount = Won(99_000);
    let contradiction = Envelope::new("svc-payment", Event::PaymentCompleted(changed));
    app.publish_all(&[sold.clone(), refunded, sold_again, refunded_again, contradiction.clone()]).await;

    let t = totals(&app, "2026-11-30", seller).await;
    assert_eq!(
        (t["gross"].as_i64(), t["refunds"].as_i64(), t["orders"].as_i64()),
        (Some(15_000), Some(15_000), Some(1))
    );
    let payment = completed(&sold).payment_id.to_string();
    assert_eq!(app.count("SELECT count(*) FROM ledger WHERE payment_id = ?1", [&payment]), 2);
    let dead = app.dead_letter(&contradiction.id.to_string()).await;
    assert!(dead.reason.contains("does not match"), "{dead:?}");
}

#[tokio::test]
async fn an_event_for_closed_days_is_booked_on_the_day_after_the_latest_closed_day_as_an_adjustment() {
    let app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    let seller = Uuid::now_v7();
    let nov29 = sale(seller, "books", 1_000, at("2026-11-29T12:00:00+09:00"));
    let nov30 = sale(seller, "books", 2_000, at("2026-11-30T12:00:00+09:00"));
    app.publish_all(&[nov29.clone(), nov30]).await;
    for date in ["2026-11-29", "2026-11-30"] {
        assert_eq!(app.close(date).await.status(), 200);
    }

    let late = sale(seller, "books", 4_000, at("2026-11-29T13:00:00+09:00"));
    let late_refund = refund(&nov29, at("2026-11-29T14:00:00+09:00"));
    app.publish_all(&[late.clone(), late_refund]).await;

    assert_eq!(totals(&app, "2026-11-29", seller).await["gross"], 1_000);
    assert_eq!(totals(&app, "2026-11-30", seller).await["gross"], 2_000);
    let dec1 = totals(&app, "2026-12-01", seller).await;
    assert_eq!((dec1["gross"].as_i64(), dec1["refunds"].as_i64()), (Some(4_000), Some(1_000)));
    assert_eq!(booked_on(&app, &late), ("2026-11-29".into(), "2026-12-01".into()));
}

/// The (event date, business date) of a ledger entry.
fn booked_on(app: &crate::helpers::TestApp, entry: &Envelope) -> (String, String) {
    rusqlite::Connection::open(app.config().db_path())
        .unwrap()
        .query_row("SELECT event_date, business_date FROM ledger WHERE id = ?1", [entry.id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
}

#[tokio::test]
async fn a_late_event_for_an_open_day_before_the_latest_closed_day_is_booked_after_it_not_in_the_gap() {
    let app = spawn_app("2026-12-02T00:30:00+09:00", &[]).await;
    let seller = Uuid::now_v7();
    app.publish_all(&[
        sale(seller, "books", 1_000, at("2026-11-28T12:00:00+09:00")),
        sale(seller, "books", 2_000, at("2026-12-01T12:00:00+09:00")),
    ])
    .await;
    // Nov 29 and 30 had no entries and were never closed.
    for date in ["2026-11-28", "2026-12-01"] {
        assert_eq!(app.close(date).await.status(), 200);
    }
    let november = app.monthly("2026-11").await;
    assert_eq!(november["closed"], true);

    let late = sale(seller, "books", 4_000, at("2026-11-29T12:00:00+09:00"));
    app.publish_all(std::slice::from_ref(&late)).await;

    assert_eq!(booked_on(&app, &late), ("2026-11-29".into(), "2026-12-02".into()));
    assert_eq!(app.monthly("2026-11").await, november, "a month reported closed does not change");
    assert_eq!(totals(&app, "2026-11-29", seller).await["gross"], 0);
    assert_eq!(totals(&app, "2026-12-02", seller).await["gross"], 4_000);
}

#[tokio::test]
async fn an_event_dated_after_every_closed_day_is_booked_on_its_own_date_even_an_old_one() {
    let app = spawn_app("2026-12-02T00:30:00+09:00", &[]).await;
    let seller = Uuid::now_v7();
    app.publish_all(&[sale(seller, "books", 1_000, at("2026-11-28T12:00:00+09:00"))]).await;
    assert_eq!(app.close("2026-11-28").await.status(), 200);
    let late = sale(seller, "books", 4_000, at("2026-11-30T12:00:00+09:00"));
    app.publish_all(std::slice::from_ref(&late)).await;
    assert_eq!(booked_on(&app, &late), ("2026-11-30".into(), "2026-11-30".into()));
}

#[tokio::test]
async fn a_refund_is_never_booked_before_its_sales_business_day() {
    let app = spawn_app("2026-12-02T00:30:00+09:00", &[]).await;
    let seller = Uuid::now_v7();
    // Skewed clocks: the refund is stamped ten minutes before the sale, across midnight.
    let sold = sale(seller, "books", 5_000, at("2026-12-01T00:05:00+09:00"));
    let refunded = refund(&sold, at("2026-11-30T23:55:00+09:00"));
    app.publish_all(&[sold, refunded.clone()]).await;
    assert_eq!(booked_on(&app, &refunded), ("2026-11-30".into(), "2026-12-01".into()));
    let dec1 = totals(&app, "2026-12-01", seller).await;
    assert_eq!((dec1["gross"].as_i64(), dec1["refunds"].as_i64()), (Some(5_000), Some(5_000)));
}

#[tokio::test]
async fn a_refund_whose_sale_never_comes_ends_in_the_dead_letter_table_after_its_retries() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let never_booked = sale(Uuid::now_v7(), "toys", 8_000, at("2026-11-30T10:00:00+09:00"));
    let orphan = refund(&never_booked, at("2026-11-30T11:00:00+09:00"));
    app.publish(&orphan).await;
    // Five deliveries 1, 2, 4 and 8 s apart: within the harness's WAIT.
    let dead = app.dead_letter(&orphan.id.to_string()).await;
    assert_eq!(dead.deliveries, 5, "{dead:?}");
    assert!(dead.reason.contains("before its sale"), "{dead:?}");
    assert_eq!(app.count("SELECT count(*) FROM ledger", []), 0);
}
