//! Events as another service publishes them, each built from the event it answers: for tests that
//! stand in for svc-order, svc-product or svc-payment. Each copies what the real reaction copies, so a saga
//! driven by hand reaches the states the real one reaches.

use uuid::Uuid;

use crate::{
    Envelope, Event, PaymentMethod, Won,
    event::{
        OrderCreated, OrderExpired, OrderFailed, OrderFailure, PaymentCancelled, PaymentCompleted, PaymentDecline,
        PaymentFailed, StockRejected, StockRejection, StockReserved,
    },
};

/// The unit price the stand-in svc-product charges.
pub const UNIT_PRICE: Won = Won(15_000);

/// An `order.created` as a person would publish it with the `nats` CLI, for an order nobody has
/// stored: one unit of a new product for `user`, by bank transfer.
pub fn hand_made_order(user: Uuid) -> Envelope {
    let event = OrderCreated {
        order_id: Uuid::now_v7(),
        user_id: user,
        product_id: Uuid::now_v7(),
        quantity: 1,
        payment_method: PaymentMethod::BankTransfer,
    };
    Envelope::new("nats-cli", Event::OrderCreated(event))
}

/// The `order.created` in `env`.
pub fn created_data(env: &Envelope) -> &OrderCreated {
    match &env.event {
        Event::OrderCreated(c) => c,
        other => panic!("expected order.created, got {other:?}"),
    }
}

/// The `stock.reserved` in `env`.
pub fn reserved_data(env: &Envelope) -> &StockReserved {
    match &env.event {
        Event::StockReserved(r) => r,
        other => panic!("expected stock.reserved, got {other:?}"),
    }
}

/// svc-product's answer to `created` when it has stock: [`UNIT_PRICE`] each, a new seller.
pub fn stock_reserved(created: &Envelope) -> Envelope {
    let c = created_data(created);
    let event = Event::StockReserved(StockReserved {
        order_id: c.order_id,
        product_id: c.product_id,
        quantity: c.quantity,
        unit_price: UNIT_PRICE,
        amount: UNIT_PRICE.times(c.quantity).expect("a test amount"),
        seller_id: Uuid::now_v7(),
        category: "books".into(),
        user_id: c.user_id,
        payment_method: c.payment_method,
    });
    Envelope::caused_by("svc-product", created, event)
}

/// svc-product's answer to `created` when it cannot reserve.
pub fn stock_rejected(created: &Envelope, reason: StockRejection) -> Envelope {
    let c = created_data(created);
    let event = StockRejected { order_id: c.order_id, product_id: c.product_id, quantity: c.quantity, reason };
    Envelope::caused_by("svc-product", created, Event::StockRejected(event))
}

/// svc-payment's answer to `reserved` when the charge goes through.
pub fn payment_completed(reserved: &Envelope) -> Envelope {
    let r = reserved_data(reserved);
    let event = Event::PaymentCompleted(PaymentCompleted {
        payment_id: Uuid::now_v7(),
        order_id: r.order_id,
        user_id: r.user_id,
        amount: r.amount,
        method: r.payment_method,
        seller_id: r.seller_id,
        category: r.category.clone(),
        product_id: r.product_id,
        quantity: r.quantity,
    });
    Envelope::caused_by("svc-payment", reserved, event)
}

/// svc-payment's answer to `reserved` when the gateway declines.
pub fn payment_failed(reserved: &Envelope, reason: PaymentDecline) -> Envelope {
    let r = reserved_data(reserved);
    let event = Event::PaymentFailed(PaymentFailed {
        payment_id: Uuid::now_v7(),
        order_id: r.order_id,
        user_id: r.user_id,
        amount: r.amount,
        method: r.payment_method,
        reason,
    });
    Envelope::caused_by("svc-payment", reserved, event)
}

/// svc-payment's refund of `completed`, in full.
pub fn payment_cancelled(completed: &Envelope) -> Envelope {
    let Event::PaymentCompleted(p) = &completed.event else { panic!("expected payment.completed") };
    let event = Event::PaymentCancelled(PaymentCancelled {
        payment_id: p.payment_id,
        order_id: p.order_id,
        user_id: p.user_id,
        amount: p.amount,
        seller_id: p.seller_id,
        category: p.category.clone(),
        product_id: p.product_id,
        quantity: p.quantity,
    });
    Envelope::caused_by("svc-payment", completed, event)
}

/// svc-order's `order.expired` for `order_id`, after the default deadline.
pub fn order_expired(order_id: Uuid) -> Envelope {
    Envelope::new("svc-order", Event::OrderExpired(OrderExpired { order_id, after_secs: 600 }))
}

/// svc-order's `order.failed` for `order_id`, as after a declined payment.
pub fn order_failed(order_id: Uuid) -> Envelope {
    let failed = OrderFailed { order_id, reason: OrderFailure::PaymentDeclined, detail: Some("DECLINED".into()) };
    Envelope::new("svc-order", Event::OrderFailed(failed))
}
