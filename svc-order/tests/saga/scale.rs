//! Beyond one process and one broker: the saga on a 3-node NATS cluster that loses a node (the
//! stream's leader) while orders flow, and with a second instance of every service beside the
//! first. Either way every saga ends paid, each step applied once, and a request waiting on its
//! order (`Prefer: wait`) is woken whichever instance applied the outcome.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use common::{
    EventType, Role,
    bus::Shards,
    harness::{NatsServer, TestApp, TestBus, eventually},
};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Shop, WAIT, json};

/// Orders placed in the node-loss test; the node is killed after `KILL_AFTER` and restarted
/// after `RESTART_AFTER` of them.
const ORDERS: usize = 60;
const KILL_AFTER: usize = 10;
const RESTART_AFTER: usize = 35;

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_that_loses_the_stream_leader_under_load_ends_every_saga_once() {
    let bus = TestBus::on(NatsServer::cluster().await, true).await;
    let shop = Shop::start_on(bus, &[], &[], &[]).await;
    let nats = &shop.bus.nats;
    assert_eq!(stream_replicas(&shop).await, 3, "the stream is replicated on every node");
    let product = shop.product(Uuid::now_v7(), 1_000, 1_000, "books").await;

    // Four clients, each placing its next order once the last one's saga ended (`Prefer: wait`,
    // a closed loop), until ORDERS are in: sagas are in flight all through the node's loss.
    let placed = AtomicUsize::new(0);
    let load = (0..4).map(|_| async {
        let mut ids = Vec::new();
        while placed.fetch_add(1, Ordering::SeqCst) < ORDERS {
            let res = shop.place_order(Uuid::now_v7(), product, 1, Some(30)).await;
            // 201 once it ended within the wait; 202 if a failover outlasted it (checked below).
            let status = res.status().as_u16();
            let body = json(res, if status == 201 { 201 } else { 202 }).await;
            ids.push(body["id"].as_str().expect("id").to_owned());
        }
        ids
    });
    let load = futures_util::future::join_all(load);
    let kill_and_rejoin = async {
        reached(&placed, KILL_AFTER).await;
        let leader = stream_leader(&shop).await;
        let node = nats.node_named(&leader).expect("the leader is one of the nodes");
        nats.stop_node(node);
        // The other two elect a new leader and go on; the services fail over to them.
        let new_leader = eventually(WAIT, || async {
            stream_info(&shop).await.and_then(|i| i.cluster?.leader).filter(|l| *l != leader)
        });
        let new_leader = new_leader.await.expect("a new leader within the wait");
        reached(&placed, RESTART_AFTER).await;
        nats.restart_node(node).await;
        (leader, new_leader)
    };
    let (ids, (killed, new_leader)) = tokio::join!(load, kill_and_rejoin);
    let ids: Vec<String> = ids.into_iter().flatten().collect();
    assert_eq!(ids.len(), ORDERS);
    assert_ne!(killed, new_leader);

    for id in &ids {
        settled_as(&shop, id, "PAID").await;
    }
    shop.settled().await;
    assert_each_paid_once(&shop, &ids).await;
    assert_eq!(shop.stock(product).await, 1_000 - ORDERS as i64);

    // The restarted node caught up: every replica current again.
    let caught_up = eventually(WAIT, || async {
        let cluster = stream_info(&shop).await?.cluster?;
        let current = cluster.replicas.len() == 2 && cluster.replicas.iter().all(|r| r.current && !r.offline);
        current.then_some(())
    });
    assert!(caught_up.await.is_some(), "{killed} did not rejoin and catch up within the wait");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_of_every_service_applies_nothing_twice_and_wakes_the_other_s_waiters() {
    let shop = Shop::start(&[]).await;
    let gateway = shop.gateway.url();
    let order = TestApp::<svc_order::Config>::builder().beside(&shop.order).start().await;
    let _product = TestApp::<svc_product::Config>::builder().beside(&shop.product).start().await;
    let _payment = TestApp::<svc_payment::Config>::builder()
        .beside(&shop.payment)
        .args(&["--gateway-url", &gateway])
        .start()
        .await;
    let _settlement = TestApp::<svc_settlement::Config>::builder().beside(&shop.settlement).start().await;
    let product = shop.product(Uuid::now_v7(), 2_000, 100, "books").await;

    // Half the orders through each svc-order instance, each request waiting for its outcome.
    // Both instances share the saga's durable consumer: an outcome is applied by either, so a
    // request waiting on one instance is often woken by the other's announcement.
    let entries = [&shop.order.addr, &order.addr];
    let placed = (0..20).map(|i| {
        let (shop, addr) = (&shop, entries[i % 2]);
        async move {
            let customer = Uuid::now_v7();
            let started = Instant::now();
            let res = shop
                .http
                .post(format!("http://{addr}/orders"))
                .bearer_auth(shop.token(customer, Role::Customer))
                .header("Prefer", "wait=30")
                .json(&json!({"productId": product, "quantity": 1, "paymentMethod": "CARD"}))
                .send()
                .await
                .expect("request");
            let body = json(res, 201).await;
            (body, started.elapsed())
        }
    });
    let answers = futures_util::future::join_all(placed).await;
    let mut ids = Vec::new();
    for (body, elapsed) in answers {
        assert_eq!(body["status"], "PAID", "{body}");
        // Woken, not answered at the 30 s deadline (which re-reads too, and would say PAID as well).
        assert!(elapsed < Duration::from_secs(15), "answered after {elapsed:?}: not woken by the outcome");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    shop.settled().await;
    assert_each_paid_once(&shop, &ids).await;
    assert_eq!(shop.stock(product).await, 100 - 20);
    let ledger = shop.settlement.count("SELECT count(DISTINCT order_id) FROM ledger", []);
    assert_eq!(ledger, 20, "svc-settlement booked each paid order");
    assert_eq!(shop.settlement.count("SELECT count(*) FROM ledger", []), 20, "and once");
}

/// Every order is paid, charged once, and its saga holds each step once: the same event types
/// as every other order's, `payment.completed` and `order.paid` exactly once.
async fn assert_each_paid_once(shop: &Shop, ids: &[String]) {
    let mut shapes = BTreeMap::new();
    for id in ids {
        let saga = shop.bus.events.saga(id).await;
        let mut types: Vec<String> = saga.iter().map(|e| e.event.event_type().to_string()).collect();
        types.sort();
        for once in ["order.created", "stock.reserved", "payment.completed", "order.paid"] {
            assert_eq!(types.iter().filter(|t| *t == once).count(), 1, "{once} in {id}'s saga: {types:?}");
        }
        shop.assert_money(id, "PAID").await;
        *shapes.entry(types).or_insert(0) += 1;
    }
    assert_eq!(shapes.len(), 1, "every saga has the same steps: {shapes:?}");
}

/// Waits until `order` has ended `status`, as svc-order's database holds it.
async fn settled_as(shop: &Shop, order: &str, status: &str) {
    let ended = eventually(WAIT, || async {
        let now: String =
            shop.order.connection().query_row("SELECT status FROM orders WHERE id = ?1", [order], |r| r.get(0)).ok()?;
        (now == status).then_some(())
    });
    assert!(ended.await.is_some(), "order {order} did not end {status}");
}

async fn reached(placed: &AtomicUsize, n: usize) {
    let got = eventually(WAIT, || async { (placed.load(Ordering::SeqCst) >= n).then_some(()) });
    assert!(got.await.is_some(), "fewer than {n} orders placed within the wait");
}

async fn stream_info(shop: &Shop) -> Option<async_nats::jetstream::stream::Info> {
    shop.js.get_stream(common::bus::STREAM).await.ok()?.info().await.ok().cloned()
}

async fn stream_leader(shop: &Shop) -> String {
    let leader = eventually(WAIT, || async { stream_info(shop).await?.cluster?.leader });
    leader.await.expect("the stream has a leader")
}

async fn stream_replicas(shop: &Shop) -> usize {
    stream_info(shop).await.expect("stream info").config.num_replicas
}

#[tokio::test(flavor = "multi_thread")]
async fn svc_payment_in_two_shards_each_owning_its_orders_charges_every_order_once() {
    let shop = Shop::start_full(&[], &["--shard", "0/2"], &[]).await;
    let gateway = shop.gateway.url();
    let other = TestApp::<svc_payment::Config>::builder()
        .on(&shop.bus)
        .args(&["--gateway-url", &gateway, "--shard", "1/2"])
        .start()
        .await;
    assert_eq!(other.consumers(), ["svc-payment-1"]);
    let product = shop.product(Uuid::now_v7(), 3_000, 100, "books").await;

    let placed = (0..20).map(|_| shop.place_order(Uuid::now_v7(), product, 1, Some(30)));
    let mut ids = Vec::new();
    for res in futures_util::future::join_all(placed).await {
        let body = json(res, 201).await;
        assert_eq!(body["status"], "PAID", "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    shop.bus.settled(&[shop.order.db_path(), shop.product.db_path(), shop.payment.db_path(), other.db_path()]).await;
    assert_each_paid_once(&shop, &ids).await;

    // Each shard's database holds exactly the orders NATS partitioned to it, and both hold some.
    let shards = [&shop.payment, &other];
    for (k, payment) in shards.iter().enumerate() {
        let held: Vec<String> = ids.iter().filter(|id| Shards::of_key(id, 2) == k as u32).cloned().collect();
        assert!(!held.is_empty(), "20 orders all in one shard");
        assert_eq!(payment.count("SELECT count(*) FROM payments", []), held.len() as i64, "shard {k}");
        for id in &held {
            assert_eq!(
                payment.count("SELECT count(*) FROM payments WHERE order_id = ?1", [id]),
                1,
                "{id} in shard {k}"
            );
        }
    }

    // Asked at the wrong shard, an order's payment is a clear 421 naming the right one.
    let admin = shop.token(Uuid::now_v7(), Role::Admin);
    let id = &ids[0];
    let owner = Shards::of_key(id, 2) as usize;
    let ask = |k: usize| shop.http.get(shards[k].url(&format!("/payments?orderId={id}"))).bearer_auth(&admin).send();
    json(ask(owner).await.expect("request"), 200).await;
    let wrong = ask(1 - owner).await.expect("request");
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    let problem = json(wrong, 421).await;
    assert_eq!(problem["code"], "WRONG_SHARD");
    assert!(problem["detail"].as_str().unwrap().contains(&format!("shard {owner}/2")), "{problem}");

    // A third shard's instance (`K/3`) would move orders between databases: refused.
    let types = [EventType::StockReserved, EventType::OrderFailed, EventType::OrderExpired];
    let resharded = Shards { shard: 0, of: 3 }.ensure_stream(&shop.js, "svc-payment", &types, 1).await;
    let refusal = resharded.expect_err("a stream of 2 shards taken for 3").to_string();
    assert!(refusal.contains("resharding"), "{refusal}");
}
