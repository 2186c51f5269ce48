//! The ledger reconciles with the payments to the won: 60 orders across 3 sellers, 3 categories
//! and two business days, refunds before and after closing the first day, a late sale, and then
//! every payment event delivered twice more. The expected figures are computed here, from what the
//! test published, without the service's code.

use std::collections::BTreeMap;

use common::{Envelope, Event};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, at, completed, json, refund, sale, spawn_app};

const DAY1: &str = "2026-11-30";
const DAY2: &str = "2026-12-01";
const CATEGORIES: [&str; 3] = ["books", "food", "toys"];

/// Expected figures per (business day, seller, category): gross, refunds, orders.
#[derive(Default)]
struct Expected(BTreeMap<(String, Uuid, String), (i64, i64, i64)>);

impl Expected {
    fn sale(&mut self, day: &str, env: &Envelope) {
        let c = completed(env);
        let e = self.0.entry((day.to_owned(), c.seller_id, c.category.clone())).or_default();
        e.0 += c.amount.0;
        e.2 += 1;
    }

    fn refund(&mut self, day: &str, sale: &Envelope) {
        let c = completed(sale);
        self.0.entry((day.to_owned(), c.seller_id, c.category.clone())).or_default().1 += c.amount.0;
    }

    /// The report rows of `day` (fee: 3 % of a positive net, rounded down; per row).
    fn rows(&self, day: &str) -> Vec<Value> {
        self.0
            .iter()
            .filter(|((d, _, _), _)| d == day)
            .map(|((_, seller, category), &(gross, refunds, orders))| {
                let net = gross - refunds;
                let fee = if net > 0 { net * 300 / 10_000 } else { 0 };
                json!({"sellerId": seller, "category": category, "gross": gross, "refunds": refunds, "net": net,
                       "orders": orders, "fee": fee, "payout": net - fee})
            })
            .collect()
    }

    /// One seller's net on `day`: what it sold minus what was refunded, booked that day.
    fn net(&self, day: &str, seller: Uuid) -> i64 {
        self.0.iter().filter(|((d, s, _), _)| d == day && *s == seller).map(|(_, (g, r, _))| g - r).sum()
    }
}

fn local_date(t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::get("Asia/Seoul").unwrap()).date().to_string()
}

fn occurred(env: &Envelope) -> Timestamp {
    Timestamp::from_nanosecond(env.occurred_at.unix_timestamp_nanos()).unwrap()
}

/// A report's figures, for comparing before and after re-delivery.
async fn snapshot(app: &TestApp) -> Vec<Value> {
    vec![app.daily(DAY1).await, app.daily(DAY2).await, app.monthly("2026-11").await, app.monthly("2026-12").await]
}

#[tokio::test]
async fn every_figure_reconciles_with_the_payments_and_survives_redelivery() {
    let app = spawn_app("2026-12-01T00:30:00+09:00", &[]).await;
    let sellers = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let mut expected = Expected::default();

    // 60 orders, 30 per day; the first of each day sits on the midnight boundary.
    let mut sales = Vec::new();
    for i in 0..60_usize {
        let when = match i {
            0 => at("2026-11-30T23:59:59+09:00"),
            30 => at("2026-12-01T00:00:00+09:00"),
            i if i < 30 => at("2026-11-30T09:00:00+09:00") + SignedDuration::from_mins(i as i64 * 17),
            i => at("2026-12-01T00:00:01+09:00") + SignedDuration::from_secs((i as i64 - 30) * 41),
        };
        let amount = 1_000 + (i as i64 * 7_919) % 50_000;
        sales.push(sale(sellers[i % 3], CATEGORIES[(i / 3) % 3], amount, when));
    }
    // Refunds before the close, each five minutes after its sale: the 23:59:59 one lands on day 2.
    let early_refunds: Vec<Envelope> = sales
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 6 == 0)
        .map(|(_, s)| refund(s, occurred(s) + SignedDuration::from_mins(5)))
        .collect();
    for s in &sales {
        expected.sale(&local_date(occurred(s)), s);
    }
    for r in &early_refunds {
        let Event::PaymentCancelled(c) = &r.event else { unreachable!() };
        let s = sales.iter().find(|s| completed(s).payment_id == c.payment_id).unwrap();
        expected.refund(&local_date(occurred(r)), s);
    }
    let mut all: Vec<Envelope> = sales.clone();
    all.extend(early_refunds.iter().cloned());
    app.publish_all(&all).await;
    assert_eq!(app.daily(DAY1).await["rows"], json!(expected.rows(DAY1)));

    // Close day 1: its payouts are the sellers' sums, and so is the event.
    let close = json(app.close(DAY1).await, 200).await;
    let day1_closed = app.daily(DAY1).await;
    assert_eq!(day1_closed["closed"], true);
    for payout in close["payouts"].as_array().unwrap() {
        let seller: Uuid = payout["sellerId"].as_str().unwrap().parse().unwrap();
        assert_eq!(payout["net"], expected.net(DAY1, seller), "seller {seller}");
        let rows: Vec<Value> =
            expected.rows(DAY1).into_iter().filter(|r| r["sellerId"] == seller.to_string()).collect();
        let sum = |k: &str| rows.iter().map(|r| r[k].as_i64().unwrap()).sum::<i64>();
        assert_eq!((payout["fee"].as_i64(), payout["payout"].as_i64()), (Some(sum("fee")), Some(sum("payout"))));
    }
    let event = app.closed_event(DAY1).await;
    let Event::SettlementClosed(closed) = &event.event else { unreachable!() };
    assert_eq!(serde_json::to_value(&closed.payouts).unwrap(), close["payouts"]);

    // After the close: refunds of day-1 sales dated day 1 (adjustments, booked on day 2), refunds
    // dated day 2, and a late day-1 sale (an adjustment too).
    let late_refunds: Vec<Envelope> = sales
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 6 == 3)
        .map(|(i, s)| {
            let when =
                if i < 30 { at("2026-11-30T23:30:00+09:00") } else { occurred(s) + SignedDuration::from_mins(10) };
            refund(s, when)
        })
        .collect();
    let late_sale = sale(sellers[1], "food", 77_777, at("2026-11-30T22:00:00+09:00"));
    for r in &late_refunds {
        let Event::PaymentCancelled(c) = &r.event else { unreachable!() };
        let s = sales.iter().find(|s| completed(s).payment_id == c.payment_id).unwrap();
        expected.refund(DAY2, s);
    }
    expected.sale(DAY2, &late_sale);
    let mut after: Vec<Envelope> = late_refunds.clone();
    after.push(late_sale.clone());
    app.publish_all(&after).await;

    assert_eq!(app.daily(DAY1).await, day1_closed, "a closed day never changes");
    assert_eq!(app.daily(DAY2).await["rows"], json!(expected.rows(DAY2)));
    for seller in sellers {
        for day in [DAY1, DAY2] {
            let path = format!("/settlements/daily?date={day}&sellerId={seller}");
            let report = json(app.get(&path, Some((seller, common::Role::Seller))).await, 200).await;
            assert_eq!(report["totals"]["net"], expected.net(day, seller), "seller {seller} on {day}");
        }
    }
    // A month is its day here.
    let before = snapshot(&app).await;
    assert_eq!(before[2]["rows"], before[0]["rows"]);
    assert_eq!(before[3]["rows"], before[1]["rows"]);
    assert_eq!(before[2]["totals"], before[0]["totals"]);

    // Every payment event again, under a new Nats-Msg-Id and without one.
    let ledger_rows = app.count("SELECT count(*) FROM ledger", []);
    let mut last = 0;
    for env in all.iter().chain(&after) {
        app.publish_as(env, &Uuid::now_v7().to_string()).await;
        last = app.publish_bare(env).await;
    }
    app.consumed_through(last).await;
    assert_eq!(snapshot(&app).await, before, "re-delivery changed a figure");
    assert_eq!(app.count("SELECT count(*) FROM ledger", []), ledger_rows);
    assert_eq!(ledger_rows, 60 + 10 + 10 + 1);

    // Closing again answers the same record and emits nothing.
    assert_eq!(json(app.close(DAY1).await, 200).await, close);
    assert_eq!(app.count("SELECT count(*) FROM outbox WHERE subject = ?1", [format!("settlement.closed.{DAY1}")]), 1);
    assert_eq!(app.closed_events(DAY1).await.len(), 1);
    assert_eq!(json(app.close(DAY2).await, 409).await["code"], "DAY_NOT_ENDED");
}
