//! 200 customers race for 50 units: exactly 50 orders are paid, the rest fail OUT_OF_STOCK, and
//! the stock never goes below zero.

use uuid::Uuid;

use crate::helpers::{Shop, json};

#[tokio::test]
async fn two_hundred_concurrent_orders_for_fifty_units_sell_exactly_fifty() {
    let shop = Shop::start(&[]).await;
    let product = shop.product(Uuid::now_v7(), 10_000, 50, "books").await;

    let orders = (0..200).map(|_| shop.place_order(Uuid::now_v7(), product, 1, None));
    let responses = futures_util::future::join_all(orders).await;
    for res in responses {
        json(res, 202).await;
    }
    shop.settled().await;

    let count = |status: &str| shop.order.count("SELECT count(*) FROM orders WHERE status = ?1", [status]);
    assert_eq!(count("PAID"), 50);
    assert_eq!(count("FAILED"), 150);
    assert_eq!(
        shop.order.count("SELECT count(*) FROM orders WHERE status = 'FAILED' AND failure_reason = 'OUT_OF_STOCK'", []),
        150
    );
    assert_eq!(shop.stock(product).await, 0);
    // The CHECK (stock >= 0) constraint makes a negative stock impossible to commit; the books
    // must balance too: 50 reservations, none released, 50 payments.
    assert_eq!(shop.product.count("SELECT count(*) FROM reservations WHERE status = 'RESERVED'", []), 50);
    assert_eq!(shop.payment.count("SELECT count(*) FROM payments WHERE status = 'COMPLETED'", []), 50);
}
