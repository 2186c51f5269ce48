//! payment-gateway's HTTP contract, driven over real HTTP against a real SQLite file.

mod helpers;

use std::collections::HashSet;

use helpers::{answer, charge_body, exclusive, is_replayed, shared, spawn, spawn_in};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

const ANSWER_LOST: &str = "payment-gateway.gateway.answer_lost";

#[tokio::test]
async fn a_charge_under_the_limit_succeeds_with_201_and_is_listed() {
    let _lock = shared().await;
    let gw = spawn(&["--payment-limit=10000"]).await;
    let order = Uuid::now_v7();
    let res = gw.charge(Some("k-1"), &charge_body(order, 10_000)).await;
    assert!(!is_replayed(&res));
    let (status, body) = answer(res).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["status"], "SUCCEEDED");
    assert_eq!(body["declineCode"], Value::Null);
    assert_eq!((body["key"].as_str(), body["reference"].as_str()), (Some("k-1"), Some(order.to_string().as_str())));
    assert_eq!(
        (body["amount"].as_i64(), body["method"].as_str(), body["refunded"].as_i64()),
        (Some(10_000), Some("CARD"), Some(0))
    );
    let id = Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert!(body["createdAt"].as_i64().unwrap() > 1_700_000_000_000, "unix ms");

    let ledger = gw.ledger().await;
    assert_eq!(ledger.len(), 1);
    let mut listed = ledger[0].clone();
    assert!(listed.as_object_mut().unwrap().remove("seq").unwrap().as_i64().unwrap() > 0);
    assert_eq!(listed, body, "the ledger lists the charge as it was answered");
}

#[tokio::test]
async fn a_charge_above_the_limit_is_declined_as_limit_exceeded() {
    let _lock = shared().await;
    let gw = spawn(&["--payment-limit=10000"]).await;
    let (status, body) = answer(gw.charge(Some("k-1"), &charge_body(Uuid::now_v7(), 10_001)).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((body["status"].as_str(), body["declineCode"].as_str()), (Some("DECLINED"), Some("LIMIT_EXCEEDED")));
    assert_eq!(gw.ledger().await[0]["status"], "DECLINED", "a declined charge is in the ledger too");
}

#[tokio::test]
async fn a_full_decline_rate_declines_as_declined() {
    let _lock = shared().await;
    let gw = spawn(&["--decline-rate-bps=10000"]).await;
    let (status, body) = answer(gw.charge(Some("k-1"), &charge_body(Uuid::now_v7(), 1)).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((body["status"].as_str(), body["declineCode"].as_str()), (Some("DECLINED"), Some("DECLINED")));
}

#[tokio::test]
async fn the_same_key_twice_charges_once_and_replays_the_stored_charge() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    let body = charge_body(Uuid::now_v7(), 5_000);
    let (_, first) = answer(gw.charge(Some("k-1"), &body).await).await;
    let again = gw.charge(Some("k-1"), &body).await;
    assert!(is_replayed(&again));
    let (status, second) = answer(again).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second, first);
    assert_eq!(gw.ledger().await.len(), 1);
}

#[tokio::test]
async fn the_same_key_with_a_different_amount_is_refused_as_reused() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    let order = Uuid::now_v7();
    assert_eq!(gw.charge(Some("k-1"), &charge_body(order, 5_000)).await.status(), StatusCode::CREATED);
    let res = gw.charge(Some("k-1"), &charge_body(order, 5_001)).await;
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let (status, problem) = answer(res).await;
    // IDEMPOTENCY_KEY_REUSED is 422 in the workspace's one code table (svc-order uses it too).
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("IDEMPOTENCY_KEY_REUSED")));
    let ledger = gw.ledger().await;
    assert_eq!((ledger.len(), ledger[0]["amount"].as_i64()), (1, Some(5_000)));
}

#[tokio::test]
async fn ten_concurrent_calls_with_one_key_make_exactly_one_charge() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    let body = charge_body(Uuid::now_v7(), 5_000);
    let calls = (0..10).map(|_| gw.charge(Some("k-1"), &body));
    let answers = futures_util::future::join_all(calls).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 9, "{statuses:?}");
    let mut ids = HashSet::new();
    for res in answers {
        ids.insert(answer(res).await.1["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every answer names the one charge");
    assert_eq!(gw.ledger().await.len(), 1);
}

#[tokio::test]
async fn a_lost_answer_is_a_504_for_a_charge_that_took_effect_and_the_retry_gets_it() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    gw.set_faults(json!({ "loseAnswerBps": 10_000, "hangMs": 50 })).await;
    let body = charge_body(Uuid::now_v7(), 5_000);
    let (status, problem) = answer(gw.charge(Some("k-1"), &body).await).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::GATEWAY_TIMEOUT, Some("GATEWAY_TIMEOUT")));
    let ledger = gw.ledger().await;
    assert_eq!(ledger.len(), 1, "the charge was committed although its answer was lost");

    let faults = gw.set_faults(json!({ "loseAnswerBps": 0 })).await;
    assert_eq!(faults["fired"]["answersLost"], 1);
    let retry = gw.charge(Some("k-1"), &body).await;
    assert!(is_replayed(&retry));
    let (status, charge) = answer(retry).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(charge["id"], ledger[0]["id"]);
    assert_eq!(gw.ledger().await.len(), 1, "no second charge");
}

#[tokio::test]
async fn the_answer_lost_failpoint_loses_one_answer_after_the_commit() {
    let _lock = exclusive().await;
    let gw = spawn(&["--hang-ms=50"]).await;
    common::faults::configure(ANSWER_LOST, "1*return").unwrap();
    let body = charge_body(Uuid::now_v7(), 5_000);
    let lost = gw.charge(Some("k-1"), &body).await.status();
    let retry = gw.charge(Some("k-1"), &body).await;
    common::faults::clear(ANSWER_LOST);
    assert_eq!(lost, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(common::faults::hits(ANSWER_LOST), 1);
    assert_eq!((retry.status(), is_replayed(&retry)), (StatusCode::OK, true));
    assert_eq!(gw.ledger().await.len(), 1);
    let faults: Value = gw.get("/v1/faults").await.json().await.unwrap();
    assert_eq!(faults["fired"]["answersLost"], 1);
}

#[tokio::test]
async fn a_down_gateway_refuses_with_503_and_records_nothing() {
    let _lock = shared().await;
    let gw = spawn(&["--down"]).await;
    let (status, problem) = answer(gw.charge(Some("k-1"), &charge_body(Uuid::now_v7(), 5_000)).await).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("GATEWAY_UNAVAILABLE")));
    assert_eq!(gw.refund("r-1", "k-1").await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(gw.ledger().await.is_empty());
    let faults: Value = gw.get("/v1/faults").await.json().await.unwrap();
    assert_eq!((faults["down"].as_bool(), faults["fired"]["refusedWhileDown"].as_u64()), (Some(true), Some(2)));

    gw.set_faults(json!({ "down": false })).await;
    assert_eq!(gw.refund("r-1", "k-1").await.status(), StatusCode::CREATED, "the refund was not recorded while down");
}

#[tokio::test]
async fn a_gateway_failing_every_call_answers_503_and_records_nothing() {
    let _lock = shared().await;
    let gw = spawn(&["--fail-bps=10000"]).await;
    let (status, problem) = answer(gw.charge(Some("k-1"), &charge_body(Uuid::now_v7(), 5_000)).await).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("GATEWAY_UNAVAILABLE")));
    assert!(gw.ledger().await.is_empty());
    let faults: Value = gw.get("/v1/faults").await.json().await.unwrap();
    assert_eq!(faults["fired"]["failed"], 1);
}

#[tokio::test]
async fn a_timeout_hangs_then_answers_504_and_records_nothing() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    gw.set_faults(json!({ "timeoutBps": 10_000, "hangMs": 50 })).await;
    let started = std::time::Instant::now();
    let status = gw.charge(Some("k-1"), &charge_body(Uuid::now_v7(), 5_000)).await.status();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() >= std::time::Duration::from_millis(50), "the answer was held for hangMs");
    assert!(gw.ledger().await.is_empty());
}

#[tokio::test]
async fn the_faults_are_read_and_changed_and_out_of_range_settings_refused() {
    let _lock = shared().await;
    let gw = spawn(&["--latency-ms=0", "--hang-ms=70"]).await;
    let faults: Value = gw.get("/v1/faults").await.json().await.unwrap();
    let fired = json!({ "failed": 0, "timedOut": 0, "answersLost": 0, "refusedWhileDown": 0 });
    let expected = json!({ "latencyMs": 0, "failBps": 0, "timeoutBps": 0, "loseAnswerBps": 0, "down": false,
                            "hangMs": 70, "fired": fired });
    assert_eq!(faults, expected);
    let changed = gw.set_faults(json!({ "failBps": 250 })).await;
    assert_eq!((changed["failBps"].as_u64(), changed["hangMs"].as_u64()), (Some(250), Some(70)));
    for bad in [json!({ "failBps": 10_001 }), json!({ "hangMs": 120_001 }), json!({ "latencyMs": 60_001 })] {
        let res = gw.http.put(gw.url("/v1/faults")).json(&bad).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let after: Value = gw.get("/v1/faults").await.json().await.unwrap();
    assert_eq!(after["failBps"], 250, "a refused update changes nothing");
}

#[tokio::test]
async fn a_succeeded_charge_is_refunded_once() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    let (_, charge) = answer(gw.charge(Some("k-1"), &charge_body(Uuid::now_v7(), 5_000)).await).await;
    let (status, refund) = answer(gw.refund("r-1", "k-1").await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((refund["status"].as_str(), refund["amount"].as_i64()), (Some("REFUNDED"), Some(5_000)));
    assert_eq!(
        (&refund["chargeId"], refund["chargeKey"].as_str(), refund["key"].as_str()),
        (&charge["id"], Some("k-1"), Some("r-1"))
    );

    let replay = gw.refund("r-1", "k-1").await;
    assert!(is_replayed(&replay));
    assert_eq!(answer(replay).await, (StatusCode::OK, refund.clone()));

    let (status, problem) = answer(gw.refund("r-2", "k-1").await).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("ALREADY_REFUNDED")));
    let (status, problem) = answer(gw.refund("r-1", "k-other").await).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("IDEMPOTENCY_KEY_REUSED")));

    assert_eq!(gw.ledger().await[0]["refunded"], 5_000);
    let (_, replayed_charge) = answer(
        gw.charge(Some("k-1"), &charge_body(Uuid::parse_str(charge["reference"].as_str().unwrap()).unwrap(), 5_000))
            .await,
    )
    .await;
    assert_eq!(replayed_charge["refunded"], 5_000, "a replay shows the current refunded amount");
}

#[tokio::test]
async fn a_declined_charge_has_nothing_to_refund() {
    let _lock = shared().await;
    let gw = spawn(&["--payment-limit=10"]).await;
    let (_, charge) = answer(gw.charge(Some("k-1"), &charge_body(Uuid::now_v7(), 11)).await).await;
    let (status, refund) = answer(gw.refund("r-1", "k-1").await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((refund["status"].as_str(), refund["amount"].as_i64()), (Some("NOTHING_TO_REFUND"), Some(0)));
    assert_eq!(refund["chargeId"], charge["id"]);
}

#[tokio::test]
async fn a_refund_before_any_charge_voids_the_key_so_a_late_charge_takes_nothing() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    let (status, refund) = answer(gw.refund("r-1", "k-1").await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((refund["status"].as_str(), refund["amount"].as_i64()), (Some("NOTHING_TO_REFUND"), Some(0)));
    assert_eq!(refund["chargeId"], Value::Null);

    let order = Uuid::now_v7();
    let (status, late) = answer(gw.charge(Some("k-1"), &charge_body(order, 5_000)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((late["status"].as_str(), &late["id"]), (Some("VOIDED"), &Value::Null));
    assert_eq!((late["reference"].as_str(), late["amount"].as_i64()), (Some(order.to_string().as_str()), Some(5_000)));
    assert_eq!((&late["declineCode"], late["refunded"].as_i64()), (&Value::Null, Some(0)));
    assert!(gw.ledger().await.is_empty(), "a voided key is not a charge");
}

#[tokio::test]
async fn a_charge_without_an_idempotency_key_is_a_400_problem() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    for key in [None, Some(""), Some("has space"), Some(&*"x".repeat(256))] {
        let res = gw.charge(key, &charge_body(Uuid::now_v7(), 5_000)).await;
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let (status, problem) = answer(res).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("IDEMPOTENCY_KEY_REQUIRED")),
            "{key:?}"
        );
    }
    let res = gw.http.post(gw.url("/v1/refunds")).json(&json!({ "chargeKey": "k" })).send().await.unwrap();
    assert_eq!(answer(res).await.1["code"], "IDEMPOTENCY_KEY_REQUIRED");
    assert!(gw.ledger().await.is_empty());
}

#[tokio::test]
async fn a_bad_charge_body_is_refused_with_the_field_named() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    let order = Uuid::now_v7();
    for (body, field) in [
        (json!({ "reference": order, "amount": 0, "method": "CARD" }), "amount"),
        (json!({ "reference": order, "amount": 1.5, "method": "CARD" }), "amount"),
        (json!({ "reference": "not-a-uuid", "amount": 1, "method": "CARD" }), "reference"),
        (json!({ "reference": order, "amount": 1, "method": "PAYPAL" }), "method"),
        (json!({ "reference": order, "amount": 1 }), "method"),
    ] {
        let (status, problem) = answer(gw.charge(Some("k-1"), &body).await).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_BODY")),
            "{body}"
        );
        assert_eq!(problem["field"], field, "{body}");
    }
    assert!(gw.ledger().await.is_empty());
}

#[tokio::test]
async fn the_ledger_pages_in_insertion_order_and_refuses_bad_queries() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    for n in 0..3 {
        gw.charge(Some(&format!("k-{n}")), &charge_body(Uuid::now_v7(), 100 + n)).await;
    }
    let (_, first) = answer(gw.get("/v1/charges?limit=2").await).await;
    let keys = |page: &Value| {
        page["items"].as_array().unwrap().iter().map(|i| i["key"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(keys(&first), ["k-0", "k-1"]);
    let next = first["next"].as_i64().expect("a full page has a next");
    let (_, second) = answer(gw.get(&format!("/v1/charges?after={next}&limit=2")).await).await;
    assert_eq!((keys(&second), &second["next"]), (vec!["k-2".to_owned()], &Value::Null));
    for bad in ["limit=0", "limit=1001", "after=-1", "after=x", "limit=x"] {
        let (status, problem) = answer(gw.get(&format!("/v1/charges?{bad}")).await).await;
        assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_QUERY")), "{bad}");
    }
}

#[tokio::test]
async fn the_ledger_survives_a_restart_and_the_key_still_replays() {
    let _lock = shared().await;
    let dir = tempfile::tempdir().unwrap();
    let body = charge_body(Uuid::now_v7(), 5_000);
    let first = spawn_in(dir.path(), &[]).await;
    let (_, charge) = answer(first.charge(Some("k-1"), &body).await).await;
    first.stop().await;

    let second = spawn_in(dir.path(), &[]).await;
    let replay = second.charge(Some("k-1"), &body).await;
    assert!(is_replayed(&replay));
    assert_eq!(answer(replay).await, (StatusCode::OK, charge));
    assert_eq!(second.ledger().await.len(), 1);
    second.stop().await;
}

#[tokio::test]
async fn health_is_live_and_ready() {
    let _lock = shared().await;
    let gw = spawn(&[]).await;
    assert_eq!(gw.get("/health/live").await.status(), StatusCode::OK);
    assert_eq!(gw.get("/health/ready").await.status(), StatusCode::OK);
    assert_eq!(answer(gw.get("/v1/nothing").await).await.1["code"], "NOT_FOUND");
}
