//! Closing business days: by hand, by the scheduler on the injected clock, idempotently, and
//! never changing a closed day afterwards.

use common::{
    Event, Role,
    harness::{eventually, transcript},
};
use uuid::Uuid;

use svc_settlement::schedule::Scheduler;

use crate::helpers::{WAIT, admin, at, json, refund, sale, spawn_app};

const AFTER_NOV_30: &str = "2026-12-01T00:30:00+09:00";

#[tokio::test]
async fn closing_a_day_records_payouts_and_announces_them_once_however_often_it_is_closed() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let seller = Uuid::now_v7();
    app.publish_all(&[
        sale(seller, "books", 30_000, at("2026-11-30T10:00:00+09:00")),
        sale(seller, "toys", 999, at("2026-11-30T11:00:00+09:00")),
    ])
    .await;

    let first = json(app.close("2026-11-30").await, 200).await;
    assert_eq!(first["closedAt"], "2026-11-30T15:30:00Z", "closed at the service clock's time");
    insta::assert_json_snapshot!("close_record", first, {
        ".eventId" => "[event]", ".payouts[].sellerId" => "[seller]",
    });
    let event = app.closed_event("2026-11-30").await;
    assert_eq!(event.id.to_string(), first["eventId"]);
    insta::assert_json_snapshot!(
        "closed_event",
        transcript(std::slice::from_ref(&event), &[("seller", seller.to_string())])
    );
    let Event::SettlementClosed(closed) = &event.event else { panic!("{event:?}") };
    assert_eq!(serde_json::to_value(&closed.payouts).unwrap(), first["payouts"]);

    let again = json(app.close("2026-11-30").await, 200).await;
    assert_eq!(again, first);
    assert_eq!(app.count("SELECT count(*) FROM outbox WHERE subject = ?1", ["settlement.closed.2026-11-30"]), 1);
    assert_eq!(app.count("SELECT count(*) FROM closed_days WHERE date = ?1", ["2026-11-30"]), 1);
    assert_eq!(app.daily("2026-11-30").await["closed"], true);
    assert_eq!(app.closed_events("2026-11-30").await.len(), 1);
}

#[tokio::test]
async fn a_close_carries_how_many_ledger_entries_of_every_day_were_booked_when_it_committed() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let seller = Uuid::now_v7();
    let nov30 = sale(seller, "books", 10_000, at("2026-11-30T10:00:00+09:00"));
    app.publish_all(&[
        sale(seller, "books", 1_000, at("2026-11-29T10:00:00+09:00")),
        nov30.clone(),
        sale(seller, "books", 3_000, at("2026-12-01T00:10:00+09:00")),
    ])
    .await;
    let close = json(app.close("2026-11-30").await, 200).await;
    assert_eq!(close["ledgerEntries"], 3, "entries of other days, open or not, count too");
    let event = app.closed_event("2026-11-30").await;
    let Event::SettlementClosed(closed) = &event.event else { panic!("{event:?}") };
    assert_eq!(closed.ledger_entries, 3);
    assert_eq!(app.count("SELECT count(*) FROM closed_days WHERE date = ?1 AND ledger_entries = 3", ["2026-11-30"]), 1);

    // An adjustment of the closed day counts for later closes; a repeat books nothing, so it does not.
    let seq = app.publish_as(&nov30, &Uuid::now_v7().to_string()).await;
    app.consumed_through(seq).await;
    app.publish_all(&[refund(&nov30, at("2026-11-30T20:00:00+09:00"))]).await;
    assert_eq!(json(app.close("2026-11-29").await, 200).await["ledgerEntries"], 4);
    let event = app.closed_event("2026-11-29").await;
    assert!(matches!(&event.event, Event::SettlementClosed(c) if c.ledger_entries == 4), "{event:?}");
    // Closing again answers the record as it was taken.
    assert_eq!(json(app.close("2026-11-30").await, 200).await, close);
}

#[tokio::test]
async fn a_day_that_has_not_ended_in_the_time_zone_cannot_be_closed() {
    let app = spawn_app("2026-11-30T23:59:59+09:00", &[]).await;
    let problem = json(app.close("2026-11-30").await, 409).await;
    assert_eq!(problem["endsAt"], "2026-11-30T15:00:00Z");
    insta::assert_json_snapshot!("day_not_ended", problem);
    let future = json(app.close("2027-01-01").await, 409).await;
    assert_eq!(future["code"], "DAY_NOT_ENDED");

    // One second later it has ended: no grace period for an admin.
    app.clock.set(at("2026-12-01T00:00:00+09:00"));
    let closed = json(app.close("2026-11-30").await, 200).await;
    assert_eq!(closed["payouts"], serde_json::json!([]), "a day without entries closes with no payouts");
}

#[tokio::test]
async fn only_admins_close_days() {
    let app = spawn_app(AFTER_NOV_30, &[]).await;
    let path = "/settlements/close?date=2026-11-30";
    assert_eq!(json(app.post(path, None).await, 401).await["code"], "UNAUTHENTICATED");
    for role in [Role::Customer, Role::Seller] {
        assert_eq!(json(app.post(path, Some((Uuid::now_v7(), role))).await, 403).await["code"], "FORBIDDEN");
    }
    for (bad, code) in
        [("?date=2026-11-31", "INVALID_DATE"), ("?date=yesterday", "INVALID_DATE"), ("", "INVALID_QUERY")]
    {
        let problem = json(app.post(&format!("/settlements/close{bad}"), admin()).await, 400).await;
        assert_eq!(problem["code"], code, "{bad}");
    }
    assert_eq!(app.count("SELECT count(*) FROM closed_days", []), 0);
}

#[tokio::test]
async fn the_scheduler_closes_days_with_entries_once_the_grace_period_after_their_end_has_passed() {
    // Nothing is due yet: Nov 29 ends at midnight, and only an hour after that is it due.
    let app = spawn_app("2026-11-29T20:00:00+09:00", &["--close-tick-secs", "1", "--close-grace-secs", "3600"]).await;
    let seller = Uuid::now_v7();
    app.publish_all(&[
        sale(seller, "books", 10_000, at("2026-11-29T15:00:00+09:00")),
        sale(seller, "books", 20_000, at("2026-11-30T10:00:00+09:00")),
    ])
    .await;

    // Nov 29 ended 24.5 h ago, Nov 30 59 min 59 s ago: the next round closes the first only.
    app.clock.set(at("2026-12-01T00:59:59+09:00"));
    let nov29 = app.closed_event("2026-11-29").await;
    assert!(matches!(&nov29.event, Event::SettlementClosed(c) if c.payouts[0].gross.0 == 10_000));
    // That round saw Nov 30 at the same instant, so it left it open.
    assert_eq!(app.daily("2026-11-30").await["closed"], false);

    app.clock.set(at("2026-12-01T01:00:00+09:00"));
    let nov30 = app.closed_event("2026-11-30").await;
    let Event::SettlementClosed(closed) = &nov30.event else { panic!("{nov30:?}") };
    assert_eq!((closed.date.as_str(), closed.time_zone.as_str()), ("2026-11-30", "Asia/Seoul"));
    assert_eq!((closed.payouts[0].seller_id, closed.payouts[0].payout.0), (seller, 19_400));
    assert_eq!(nov30.occurred_at.unix_timestamp(), at("2026-12-01T01:00:00+09:00").as_second());
    let report = eventually(WAIT, || async {
        let r = app.daily("2026-11-30").await;
        (r["closed"] == true).then_some(r)
    })
    .await
    .expect("the day reads as closed");
    assert_eq!(report["totals"]["payout"], 19_400);
    // Days without entries are left alone.
    assert_eq!(app.daily("2026-11-28").await["closed"], false);
}

/// Steady traffic cannot starve the automatic close. The first round that finds a day due
/// records the stream's last sequence as its target; the day closes once the consumer has
/// acknowledged through it, while messages published after it are still being retried.
#[tokio::test]
async fn the_scheduler_closes_once_the_consumer_has_dealt_with_what_the_stream_held_when_the_day_fell_due() {
    // The app's own scheduler closes nothing; this test drives the rounds itself.
    let app = spawn_app("2026-11-30T20:00:00+09:00", &[]).await;
    let db = common::db::Db::open(&app.config().db_path(), svc_settlement::app::MIGRATIONS).await.unwrap();
    let scheduler = tokio::sync::Mutex::new(Scheduler::new(
        db,
        app.js.clone(),
        app.config().rules(),
        app.clock.clone(),
        jiff::SignedDuration::from_secs(3600),
        std::time::Duration::from_secs(60),
    ));
    let round = || async { scheduler.lock().await.close_due_days().await.expect("a scheduler round") };
    let seller = Uuid::now_v7();
    app.publish_all(&[sale(seller, "books", 10_000, at("2026-11-30T10:00:00+09:00"))]).await;
    // A refund whose sale is not in yet: the consumer retries it, so it is not acknowledged.
    let late_sale = sale(seller, "toys", 4_000, at("2026-11-30T19:00:00+09:00"));
    app.publish(&refund(&late_sale, at("2026-11-30T19:30:00+09:00"))).await;

    app.clock.set(at("2026-12-01T01:00:00+09:00"));
    assert_eq!(round().await, 0, "the refund is in the stream before the target and not booked yet");

    // Traffic after the target: a refund whose sale never comes (retried for 15 s, then
    // dead-lettered) keeps the consumer busy; the sale lets the first refund through.
    let never_sold = sale(seller, "toys", 1_000, at("2026-11-30T20:00:00+09:00"));
    let never_booked = refund(&never_sold, at("2026-11-30T21:00:00+09:00"));
    app.publish(&never_booked).await;
    app.publish(&late_sale).await;
    eventually(WAIT, || async { (round().await == 1).then_some(()) }).await.expect("the day closes");

    let stream = app.js.get_stream(common::bus::STREAM).await.unwrap();
    let info = stream.consumer_info("svc-settlement").await.unwrap();
    assert!(info.num_ack_pending > 0, "closed while the later refund is still being retried");
    assert_eq!(app.count("SELECT count(*) FROM dead_letter", []), 0);
    let event = app.closed_event("2026-11-30").await;
    let Event::SettlementClosed(closed) = &event.event else { panic!("{event:?}") };
    assert_eq!((closed.payouts[0].gross.0, closed.payouts[0].refunds.0), (14_000, 4_000), "{closed:?}");
    // And the refund that kept the consumer busy ends as dead letters do.
    app.dead_letter(&never_booked.id.to_string()).await;
}

#[tokio::test]
async fn a_closed_day_keeps_the_fee_rate_it_was_closed_with_when_the_rate_changes() {
    let mut app = spawn_app(AFTER_NOV_30, &[]).await;
    let seller = Uuid::now_v7();
    app.publish_all(&[
        sale(seller, "books", 10_000, at("2026-11-30T10:00:00+09:00")),
        sale(seller, "books", 10_000, at("2026-12-01T00:10:00+09:00")),
    ])
    .await;
    assert_eq!(app.close("2026-11-30").await.status(), 200);

    app.stop().await;
    app.config_mut().fee_rate_bps = "500".parse().unwrap();
    app.start().await;
    assert_eq!(app.daily("2026-11-30").await["totals"]["fee"], 300);
    assert_eq!(app.daily("2026-12-01").await["totals"]["fee"], 500);
    assert_eq!(app.monthly("2026-11").await["totals"]["fee"], 300);
}

#[tokio::test]
async fn the_service_refuses_to_start_in_another_time_zone_than_its_ledger_was_kept_in() {
    let mut app = spawn_app(AFTER_NOV_30, &[]).await;
    app.stop().await;
    let mut moved = app.config().clone();
    moved.time_zone = "Europe/Paris".parse().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let err = moved.build_with_clock(stop.clone(), app.clock.clone()).await.unwrap_err();
    stop.cancel();
    assert!(err.to_string().contains("keeps business days in time zone Asia/Seoul"), "{err}");
}
