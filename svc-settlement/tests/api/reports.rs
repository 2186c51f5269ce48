//! Daily and monthly reports: shape, sums, filters and who may read what.

use common::Role;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{admin, at, json, refund, sale, spawn_app};

const AFTER_NOV_30: &str = "2026-12-01T00:30:00+09:00";

#[tokio::test]
async fn a_daily_report_has_a_row_per_seller_and_category_and_totals_that_add_up() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let seller = Uuid::now_v7();
    let books = sale(seller, "books", 999, at("2026-11-30T10:00:00+09:00"));
    let toys = sale(seller, "toys", 25_000, at("2026-11-30T11:00:00+09:00"));
    let toys_refunded = sale(seller, "toys", 5_000, at("2026-11-30T12:00:00+09:00"));
    let refunded = refund(&toys_refunded, at("2026-11-30T13:00:00+09:00"));
    app.publish_all(&[books, toys, toys_refunded, refunded]).await;

    let report = app.daily("2026-11-30").await;
    assert_eq!(report["rows"][0]["fee"], 29, "999 won at 3 % is 29 won, rounded down");
    insta::assert_json_snapshot!("daily_report", report, { ".rows[].sellerId" => "[seller]" });

    let toys_only = json(
        app.get(&format!("/settlements/daily?date=2026-11-30&sellerId={seller}&category=toys"), admin()).await,
        200,
    )
    .await;
    assert_eq!(toys_only["rows"].as_array().unwrap().len(), 1);
    assert_eq!(toys_only["totals"], toys_only["rows"][0].as_object().map(|r| {
        json!({"gross": r["gross"], "refunds": r["refunds"], "net": r["net"], "orders": r["orders"], "fee": r["fee"], "payout": r["payout"]})
    }).unwrap());
}

#[tokio::test]
async fn a_day_without_entries_reports_zeros_and_is_open() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let report = app.daily("2026-11-01").await;
    assert_eq!(report["closed"], false);
    assert_eq!(report["rows"], json!([]));
    assert_eq!(report["totals"], json!({"gross": 0, "refunds": 0, "net": 0, "orders": 0, "fee": 0, "payout": 0}));
}

#[tokio::test]
async fn a_month_is_the_sum_of_its_business_days_with_fees_rounded_per_day() {
    // These days ended long ago; `spawn_app` keeps the scheduler from closing them mid-test.
    let app = spawn_app("2026-12-15T00:00:00+09:00", &[]).await;
    let seller = Uuid::now_v7();
    let days = ["2026-11-01T09:00:00+09:00", "2026-11-15T09:00:00+09:00", "2026-11-30T23:59:59+09:00"];
    let mut events: Vec<_> = days.iter().map(|d| sale(seller, "books", 999, at(d))).collect();
    events.push(sale(seller, "books", 999, at("2026-12-01T00:00:00+09:00")));
    app.publish_all(&events).await;

    let nov = app.monthly("2026-11").await;
    assert_eq!(nov["month"], "2026-11");
    // Three days of 29 won, not 3 % of 2997 (89).
    assert_eq!(
        nov["totals"],
        json!({"gross": 2_997, "refunds": 0, "net": 2_997, "orders": 3, "fee": 87, "payout": 2_910})
    );
    let mut summed = json!({"gross": 0, "refunds": 0, "net": 0, "orders": 0, "fee": 0, "payout": 0});
    for date in ["2026-11-01", "2026-11-15", "2026-11-30"] {
        let day = app.daily(date).await;
        for (key, value) in summed.as_object_mut().unwrap() {
            *value = json!(value.as_i64().unwrap() + day["totals"][key.as_str()].as_i64().unwrap());
        }
    }
    assert_eq!(nov["totals"], summed);
    assert_eq!(app.monthly("2026-12").await["totals"]["gross"], 999);
}

#[tokio::test]
async fn a_month_is_closed_once_it_has_ended_and_its_days_with_entries_are_closed() {
    let app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    app.publish_all(&[sale(Uuid::now_v7(), "books", 1_000, at("2026-11-30T09:00:00+09:00"))]).await;
    assert_eq!(app.monthly("2026-11").await["closed"], false);
    assert_eq!(app.close("2026-11-30").await.status(), 200);
    assert_eq!(app.monthly("2026-11").await["closed"], true);
    assert_eq!(app.monthly("2026-12").await["closed"], false);
}

#[tokio::test]
async fn a_month_whose_last_days_are_not_closed_is_not_final_while_events_can_still_land_in_it() {
    let app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    let seller = Uuid::now_v7();
    app.publish_all(&[sale(seller, "books", 1_000, at("2026-11-10T09:00:00+09:00"))]).await;
    assert_eq!(app.close("2026-11-10").await.status(), 200);
    // Every day of November with entries is closed, but a late Nov 20 event is still booked on
    // Nov 20, after every closed day.
    assert_eq!(app.monthly("2026-11").await["closed"], false);
    app.publish_all(&[sale(seller, "books", 2_000, at("2026-11-20T09:00:00+09:00"))]).await;
    assert_eq!(app.monthly("2026-11").await["totals"]["gross"], 3_000);

    assert_eq!(app.close("2026-11-20").await.status(), 200);
    assert_eq!(app.monthly("2026-11").await["closed"], false, "Nov 21 to 30 can still take events");
    assert_eq!(app.close("2026-11-30").await.status(), 200, "an empty day closes too");
    let november = app.monthly("2026-11").await;
    assert_eq!(november["closed"], true);
    app.publish_all(&[sale(seller, "books", 4_000, at("2026-11-25T09:00:00+09:00"))]).await;
    assert_eq!(app.monthly("2026-11").await, november, "booked on Dec 1");
    assert_eq!(app.monthly("2026-12").await["totals"]["gross"], 4_000);
}

#[tokio::test]
async fn sellers_see_only_their_own_rows_admins_see_all_and_customers_nothing() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let (mine, theirs) = (Uuid::now_v7(), Uuid::now_v7());
    app.publish_all(&[
        sale(mine, "books", 1_000, at("2026-11-30T09:00:00+09:00")),
        sale(theirs, "books", 2_000, at("2026-11-30T09:00:00+09:00")),
    ])
    .await;
    let seller = Some((mine, Role::Seller));
    for path in ["/settlements/daily?date=2026-11-30", "/settlements/monthly?month=2026-11"] {
        let own = json(app.get(path, seller).await, 200).await;
        assert_eq!(own["rows"].as_array().unwrap().len(), 1, "{path}");
        assert_eq!(own["rows"][0]["sellerId"], mine.to_string());
        assert_eq!(own["totals"]["gross"], 1_000);
        let named = json(app.get(&format!("{path}&sellerId={mine}"), seller).await, 200).await;
        assert_eq!(named, own);

        let other = json(app.get(&format!("{path}&sellerId={theirs}"), seller).await, 403).await;
        assert_eq!(other["code"], "FORBIDDEN");
        let customer = json(app.get(path, Some((Uuid::now_v7(), Role::Customer))).await, 403).await;
        assert_eq!(customer["code"], "FORBIDDEN");
        let anonymous = app.get(path, None).await;
        assert_eq!(anonymous.status(), 401);
        assert_eq!(json(anonymous, 401).await["code"], "UNAUTHENTICATED");

        let all = json(app.get(path, admin()).await, 200).await;
        assert_eq!((all["rows"].as_array().unwrap().len(), &all["totals"]["gross"]), (2, &json!(3_000)));
        let filtered = json(app.get(&format!("{path}&sellerId={theirs}"), admin()).await, 200).await;
        assert_eq!(filtered["totals"]["gross"], 2_000);
    }
}

#[tokio::test]
async fn malformed_dates_months_and_seller_ids_are_bad_requests_naming_the_parameter() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let cases = [
        ("/settlements/daily?date=2026-11-31", "INVALID_DATE", "date"),
        ("/settlements/daily?date=30-11-2026", "INVALID_DATE", "date"),
        ("/settlements/daily", "INVALID_QUERY", "date"),
        ("/settlements/daily?date=2026-11-30&sellerId=bob", "INVALID_QUERY", "sellerId"),
        ("/settlements/monthly?month=2026-13", "INVALID_MONTH", "month"),
        ("/settlements/monthly?month=2026-11-01", "INVALID_MONTH", "month"),
        ("/settlements/monthly", "INVALID_QUERY", "month"),
    ];
    for (path, code, field) in cases {
        let problem = json(app.get(path, admin()).await, 400).await;
        assert_eq!((problem["code"].as_str(), problem["field"].as_str()), (Some(code), Some(field)), "{path}");
    }
    // The role is checked first: a customer learns nothing about its parameters.
    let customer =
        json(app.get("/settlements/daily?date=nonsense", Some((Uuid::now_v7(), Role::Customer))).await, 403).await;
    assert_eq!(customer["code"], "FORBIDDEN");
    insta::assert_json_snapshot!(
        "invalid_date",
        json(app.get("/settlements/daily?date=2026-02-30", admin()).await, 400).await
    );
}
