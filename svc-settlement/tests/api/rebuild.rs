//! Rebuilding the ledger from the stream: the replay reproduces the live figures, closes included,
//! and can replace a lost database while the service is stopped.

use serde_json::Value;
use svc_settlement::rebuild::{self, Options};
use uuid::Uuid;

/// The service's settings as `shopctl settlement rebuild` runs the rebuild: as the NATS operator
/// (the rebuild reads the stream through consumers of its own, which svc-settlement's user may
/// not create).
fn as_operator(app: &TestApp) -> svc_settlement::Config {
    let mut config = app.config().clone();
    config.common.nats_auth = app.bus.nats.operator();
    config
}

use crate::helpers::{TestApp, at, json, refund, sale, spawn_app};

const SWAP: Options = Options { swap: true, force: false };

async fn reports(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for date in ["2026-11-30", "2026-12-01"] {
        out.push(app.daily(date).await);
    }
    out.push(app.monthly("2026-11").await);
    out
}

#[tokio::test]
async fn a_rebuild_reproduces_the_live_ledger_and_can_replace_a_lost_one() {
    let mut app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let books = sale(a, "books", 10_000, at("2026-11-30T10:00:00+09:00"));
    let toys = sale(b, "toys", 20_000, at("2026-11-30T11:00:00+09:00"));
    let food = sale(a, "food", 999, at("2026-11-30T23:59:59+09:00"));
    let next_day = sale(b, "books", 5_000, at("2026-12-01T00:10:00+09:00"));
    let refunded = refund(&books, at("2026-11-30T12:00:00+09:00"));
    app.publish_all(&[books, toys.clone(), food, next_day, refunded.clone()]).await;
    let close = json(app.close("2026-11-30").await, 200).await;

    // After the close: a late refund and a late sale for the closed day, and a re-published event.
    let late_refund = refund(&toys, at("2026-11-30T23:00:00+09:00"));
    let late_sale = sale(a, "books", 3_000, at("2026-11-30T21:00:00+09:00"));
    app.publish_all(&[late_refund, late_sale]).await;
    let seq = app.publish_as(&refunded, &Uuid::now_v7().to_string()).await;
    app.consumed_through(seq).await;
    let live = reports(&app).await;
    assert_eq!(live[1]["totals"]["refunds"], 20_000, "the late refund is an adjustment on Dec 1");

    let summary = rebuild::run(&as_operator(&app), Options::default()).await.expect("rebuild runs");
    assert!(summary.is_clean(), "{summary}");
    assert!(summary.complete && !summary.swapped);
    assert_eq!((summary.applied, summary.duplicates, summary.closes), (7, 1, 1), "{summary}");
    assert!(summary.rejected.is_empty(), "{summary}");

    let err = rebuild::run(&as_operator(&app), SWAP).await.expect_err("the service holds the file");
    assert!(err.to_string().contains("in use"), "{err:#}");

    app.stop().await;
    let summary = rebuild::run(&as_operator(&app), SWAP).await.expect("swap while stopped");
    assert!(summary.is_clean() && summary.swapped, "{summary}");
    let replaced = summary.replaced.expect("the old file is kept");
    assert!(replaced.exists(), "{}", replaced.display());

    // The database is lost; the stream still has everything.
    std::fs::remove_file(app.config().db_path()).unwrap();
    let summary = rebuild::run(&as_operator(&app), SWAP).await.expect("rebuild a lost database");
    assert!(summary.swapped && summary.replaced.is_none());
    assert!(
        summary.differences.iter().all(|d| matches!(
            d,
            rebuild::Difference::Figures { live: None, .. }
                | rebuild::Difference::Closed { live: false, rebuilt: true, .. }
        )),
        "{summary}"
    );
    assert!(!summary.differences.is_empty());

    app.start().await;
    assert_eq!(reports(&app).await, live);
    // The replayed close is the published one: same record, nothing new to announce.
    assert_eq!(json(app.close("2026-11-30").await, 200).await, close);
    assert_eq!(app.count("SELECT count(*) FROM outbox", []), 0);
}

/// The proof of the watermark: both closes sit in the stream after payment events they did not
/// count (as when those arrive between a close's commit and the relay publishing it), and the
/// rebuild still closes each day where it took effect live, the first one before any entry.
#[tokio::test]
async fn a_close_published_after_events_it_did_not_count_is_replayed_at_its_watermark() {
    let app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let nov29 = json(app.close("2026-11-29").await, 200).await;
    assert_eq!(nov29["ledgerEntries"], 0);
    let nov29_closed = app.closed_event("2026-11-29").await;
    let counted = sale(a, "books", 10_000, at("2026-11-30T10:00:00+09:00"));
    app.publish_all(&[
        counted.clone(),
        sale(b, "toys", 4_000, at("2026-11-29T18:00:00+09:00")), // Nov 29 is closed: booked on Nov 30
        sale(b, "toys", 2_000, at("2026-11-30T11:00:00+09:00")),
    ])
    .await;
    let nov30 = json(app.close("2026-11-30").await, 200).await;
    assert_eq!(nov30["ledgerEntries"], 3);
    let nov30_closed = app.closed_event("2026-11-30").await;

    // Events for the closed day, booked live on Dec 1...
    let late = [
        refund(&counted, at("2026-11-30T12:00:00+09:00")),
        sale(b, "toys", 7_000, at("2026-11-30T13:00:00+09:00")),
        sale(a, "food", 1_000, at("2026-12-01T00:20:00+09:00")),
    ];
    app.publish_all(&late).await;
    // ...and both closes moved behind them in the stream: replayed at their stream positions,
    // every entry above would land on a day that was already closed live.
    let stream = app.js.get_stream(common::bus::STREAM).await.unwrap();
    for closed in [&nov29_closed, &nov30_closed] {
        let original = stream.get_last_raw_message_by_subject(&closed.subject()).await.unwrap();
        assert!(stream.delete_message(original.sequence).await.unwrap());
        app.publish_bare(closed).await;
    }
    assert_eq!(app.daily("2026-11-29").await["totals"]["gross"], 0);
    let live = reports(&app).await;
    assert_eq!(live[0]["totals"]["gross"], 16_000, "the late Nov 29 sale is an adjustment on Nov 30");
    assert_eq!(live[1]["totals"]["gross"], 8_000, "the late Nov 30 sale is an adjustment on Dec 1");

    let summary = rebuild::run(&as_operator(&app), Options::default()).await.expect("rebuild runs");
    assert!(summary.is_clean(), "{summary}");
    assert_eq!((summary.messages, summary.applied, summary.closes), (8, 6, 2), "{summary}");
    let rebuilt = rusqlite::Connection::open(app.config().rebuild_db_path()).unwrap();
    let closes: Vec<(String, i64)> = rebuilt
        .prepare("SELECT date, ledger_entries FROM closed_days ORDER BY date")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(closes, [("2026-11-29".to_owned(), 0), ("2026-11-30".to_owned(), 3)]);
}

#[tokio::test]
async fn a_swap_is_refused_before_anything_is_replayed_while_the_service_holds_the_live_file() {
    let app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    app.publish_all(&[sale(Uuid::now_v7(), "books", 1_000, at("2026-11-30T10:00:00+09:00"))]).await;
    for options in [SWAP, Options { swap: true, force: true }] {
        let err = rebuild::run(&as_operator(&app), options).await.expect_err("the service holds the file");
        assert!(err.to_string().contains("in use"), "{err:#}");
    }
    assert!(!app.config().rebuild_db_path().exists(), "refused before the replay created its database");
}

/// The stream lost a payment the live ledger booked (or the live file holds one the stream never
/// had): the rebuilt ledger would drop it, so it replaces the live one only when forced.
#[tokio::test]
async fn a_swap_that_would_change_or_drop_what_the_live_ledger_holds_is_refused_unless_forced() {
    let mut app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    let seller = Uuid::now_v7();
    app.publish_all(&[sale(seller, "books", 1_000, at("2026-11-30T10:00:00+09:00"))]).await;
    let lost = app.publish(&sale(seller, "books", 2_000, at("2026-11-30T11:00:00+09:00"))).await;
    app.consumed_through(lost).await;
    let stream = app.js.get_stream(common::bus::STREAM).await.unwrap();
    assert!(stream.delete_message(lost).await.unwrap());
    app.stop().await;

    let err = rebuild::run(&as_operator(&app), SWAP).await.expect_err("the rebuilt ledger drops an entry");
    let err = format!("{err:#}");
    assert!(err.contains("not swapping") && err.contains("--force"), "{err}");
    assert!(err.contains("live Some("), "the differences are shown: {err}");
    assert_eq!(app.count("SELECT count(*) FROM ledger", []), 2, "the live file is untouched");
    assert!(app.config().rebuild_db_path().exists(), "the rebuilt file is kept for inspection");

    let summary = rebuild::run(&as_operator(&app), Options { swap: true, force: true }).await.expect("a forced swap");
    assert!(summary.swapped && summary.replaced.as_ref().is_some_and(|p| p.exists()), "{summary}");
    assert_eq!(app.count("SELECT count(*) FROM ledger", []), 1);
}

#[tokio::test]
async fn a_rebuild_settles_each_close_at_the_fee_rate_it_published_not_at_todays() {
    let mut app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    app.publish_all(&[sale(Uuid::now_v7(), "books", 10_000, at("2026-11-30T10:00:00+09:00"))]).await;
    assert_eq!(json(app.close("2026-11-30").await, 200).await["payouts"][0]["fee"], 300);
    // The rebuild reads the close from the stream: it must be published before the stop.
    app.closed_event("2026-11-30").await;
    app.stop().await;

    app.config_mut().fee_rate_bps = "500".parse().unwrap();
    let summary = rebuild::run(&as_operator(&app), Options::default()).await.expect("rebuild runs");
    assert!(summary.is_clean(), "{summary}");
    let rebuilt = rusqlite::Connection::open(app.config().rebuild_db_path()).unwrap();
    let (bps, fee): (i64, i64) = rebuilt
        .query_row("SELECT fee_rate_bps, fee FROM closed_days JOIN payouts USING (date)", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((bps, fee), (300, 300));
}

#[tokio::test]
async fn a_rebuild_keeps_the_ledgers_time_zone_and_refuses_to_run_in_another() {
    let mut app = spawn_app("2026-12-01T00:30:00+09:00", &["--time-zone", "UTC"]).await;
    app.publish_all(&[sale(Uuid::now_v7(), "books", 1_000, at("2026-11-30T10:00:00+09:00"))]).await;
    let mut seoul = as_operator(&app);
    seoul.time_zone = "Asia/Seoul".parse().unwrap();
    let err = rebuild::run(&seoul, Options::default()).await.expect_err("the live ledger is kept in UTC");
    assert!(err.to_string().contains("time zone UTC (from the live database), but TIME_ZONE is Asia/Seoul"), "{err:#}");
    assert!(!app.config().rebuild_db_path().exists(), "refused before the replay created its database");

    // The database is lost: the first close says which zone the ledger was kept in.
    assert_eq!(app.close("2026-11-29").await.status(), 200);
    app.closed_event("2026-11-29").await;
    app.stop().await;
    std::fs::remove_file(app.config().db_path()).unwrap();
    let err = rebuild::run(&seoul, Options::default()).await.expect_err("the ledger was closed in UTC");
    assert!(err.to_string().contains("time zone UTC (from the first settlement.closed)"), "{err:#}");
    let summary = rebuild::run(&as_operator(&app), Options::default()).await.expect("rebuild in the ledger's zone");
    assert_eq!(summary.closes, 1, "{summary}");
}
