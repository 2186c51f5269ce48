//! svc-order's SQL: small synchronous functions over the caller's connection or transaction. The
//! callers open the transaction, so an order's change and the outbox row announcing it commit
//! together.

use common::{
    Envelope, PaymentMethod, Won,
    db::{parsed_at, time_at, to_ms, uuid_at},
    event::OrderFailure,
    paging::Paging,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, types::Type};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{IdempotencyKey, Order, OrderStatus, Quantity, TraceEvent};

const ORDER_COLUMNS: &str = "id, user_id, product_id, quantity, payment_method, status, failure_reason, \
    failure_detail, unit_price, amount, payment_id, created_at, updated_at, deadline_at";

/// Inserts `order` unless an order with its id, or with its user's `key`, exists; says whether it
/// did. The UNIQUE constraint decides inside the caller's transaction, so of two concurrent
/// requests with one key exactly one creates an order.
pub fn insert_order(tx: &Transaction<'_>, order: &Order, key: Option<&IdempotencyKey>) -> rusqlite::Result<bool> {
    let inserted = tx
        .prepare_cached(&format!(
            "INSERT INTO orders ({ORDER_COLUMNS}, idempotency_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT DO NOTHING"
        ))?
        .execute(params![
            order.id.to_string(),
            order.user_id.to_string(),
            order.product_id.to_string(),
            order.quantity.get(),
            order.payment_method.as_str(),
            order.status.as_str(),
            order.failure_reason.map(OrderFailure::as_str),
            order.failure_detail,
            order.unit_price.map(|w| w.0),
            order.amount.map(|w| w.0),
            order.payment_id.map(|id| id.to_string()),
            to_ms(order.created_at),
            to_ms(order.updated_at),
            to_ms(order.deadline_at),
            key.map(IdempotencyKey::as_str),
        ])?;
    Ok(inserted == 1)
}

/// Writes what a saga event changed: status, failure, price, payment and `updated_at`.
pub fn update_order(tx: &Transaction<'_>, order: &Order) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE orders SET status = ?2, failure_reason = ?3, failure_detail = ?4, unit_price = ?5, amount = ?6,
             payment_id = ?7, updated_at = ?8
         WHERE id = ?1",
    )?
    .execute(params![
        order.id.to_string(),
        order.status.as_str(),
        order.failure_reason.map(OrderFailure::as_str),
        order.failure_detail,
        order.unit_price.map(|w| w.0),
        order.amount.map(|w| w.0),
        order.payment_id.map(|id| id.to_string()),
        to_ms(order.updated_at),
    ])?;
    Ok(())
}

pub fn find_order(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<Order>> {
    conn.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"))?
        .query_row([id.to_string()], order_from)
        .optional()
}

/// The order `user` placed with `key`, if any.
pub fn find_by_idempotency_key(conn: &Connection, user: Uuid, key: &IdempotencyKey) -> rusqlite::Result<Option<Order>> {
    conn.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ?1 AND idempotency_key = ?2"))?
        .query_row(params![user.to_string(), key.as_str()], order_from)
        .optional()
}

/// One page of `user`'s orders, newest first, and how many orders the user has in all.
pub fn list_orders_by_user(conn: &Connection, user: Uuid, paging: Paging) -> rusqlite::Result<(Vec<Order>, i64)> {
    let items = conn
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3"
        ))?
        .query_map(params![user.to_string(), paging.limit(), paging.offset()], order_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = conn.query_row("SELECT count(*) FROM orders WHERE user_id = ?1", [user.to_string()], |r| r.get(0))?;
    Ok((items, total))
}

/// One page of every order, oldest first, and how many orders there are: the admin's audit view.
pub fn list_orders(conn: &Connection, paging: Paging) -> rusqlite::Result<(Vec<Order>, i64)> {
    let tx = conn.unchecked_transaction()?;
    let items = tx
        .prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders ORDER BY created_at, id LIMIT ?1 OFFSET ?2"))?
        .query_map(params![paging.limit(), paging.offset()], order_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = tx.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))?;
    tx.finish()?;
    Ok((items, total))
}

/// Records an event of some saga; says whether it was new.
pub fn insert_saga_event(tx: &Transaction<'_>, event: &Envelope) -> rusqlite::Result<bool> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO saga_events (event_id, order_id, subject, type, producer, causation_id, occurred_at, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            event.id.to_string(),
            event.correlation_id,
            event.subject(),
            event.event.event_type(),
            event.producer,
            event.causation_id.map(|id| id.to_string()),
            to_ms(event.occurred_at),
            String::from_utf8_lossy(&event.to_json()),
        ])?;
    Ok(inserted == 1)
}

/// Whether the trace has a place for events of the saga `correlation_id`: svc-order stores its
/// order, or the trace holds its `order.created` (a hand-published one whose order the saga
/// consumer has not created yet: the trace consumer reads the stream in order, so it has that
/// event before any that follows from it).
pub fn saga_is_known(conn: &Connection, correlation_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE id = ?1)
             OR EXISTS (SELECT 1 FROM saga_events WHERE order_id = ?1 AND type = 'order.created')",
    )?
    .query_row([correlation_id], |r| r.get(0))
}

/// Every recorded event of the saga of `order_id`, in no particular order.
pub fn saga_events(conn: &Connection, order_id: Uuid) -> rusqlite::Result<Vec<TraceEvent>> {
    conn.prepare_cached(
        "SELECT event_id, type, subject, producer, occurred_at, causation_id, payload FROM saga_events WHERE order_id = ?1",
    )?
    .query_map([order_id.to_string()], trace_event_from)?
    .collect()
}

fn order_from(row: &Row<'_>) -> rusqlite::Result<Order> {
    let quantity: u32 = row.get(3)?;
    Ok(Order {
        id: uuid_at(row, 0)?,
        user_id: uuid_at(row, 1)?,
        product_id: uuid_at(row, 2)?,
        quantity: Quantity::new(quantity).ok_or_else(|| conversion(3, Type::Integer, "quantity of zero".to_owned()))?,
        payment_method: parsed_at(row, 4, PaymentMethod::parse)?,
        status: parsed_at(row, 5, OrderStatus::parse)?,
        failure_reason: row.get::<_, Option<String>>(6)?.map(|_| parsed_at(row, 6, OrderFailure::parse)).transpose()?,
        failure_detail: row.get(7)?,
        unit_price: row.get::<_, Option<i64>>(8)?.map(Won),
        amount: row.get::<_, Option<i64>>(9)?.map(Won),
        payment_id: row.get::<_, Option<String>>(10)?.map(|_| uuid_at(row, 10)).transpose()?,
        created_at: time_at(row, 11)?,
        updated_at: time_at(row, 12)?,
        deadline_at: time_at(row, 13)?,
    })
}

/// Up to `limit` orders whose saga still runs and whose deadline passed by `now_ms`, the most
/// overdue first.
pub fn due_orders(conn: &Connection, now_ms: i64, limit: usize) -> rusqlite::Result<Vec<Uuid>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM orders WHERE status IN ('PENDING', 'STOCK_RESERVED') AND deadline_at <= ?1
         ORDER BY deadline_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now_ms, limit as i64], |r| uuid_at(r, 0))?;
    rows.collect()
}

/// What the saga console's feed may be narrowed to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SagaFilter {
    pub status: Option<OrderStatus>,
    pub user_id: Option<Uuid>,
    pub product_id: Option<Uuid>,
}

/// Up to `limit` orders matching `filter`, the most recently updated first (the console's feed).
pub fn recent_orders(conn: &Connection, filter: SagaFilter, limit: usize) -> rusqlite::Result<Vec<Order>> {
    conn.prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR product_id = ?3)
         ORDER BY updated_at DESC, id DESC LIMIT ?4"
    ))?
    .query_map(
        params![
            filter.status.map(OrderStatus::as_str),
            filter.user_id.map(|u| u.to_string()),
            filter.product_id.map(|p| p.to_string()),
            limit as i64
        ],
        order_from,
    )?
    .collect()
}

/// Up to `limit` orders whose saga still runs and that were placed at or before
/// `created_before_ms`, the stalest first (the console's stuck list; the `orders_due` index holds
/// exactly the running sagas).
pub fn stuck_orders(conn: &Connection, created_before_ms: i64, limit: usize) -> rusqlite::Result<Vec<Order>> {
    conn.prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders
         WHERE status IN ('PENDING', 'STOCK_RESERVED') AND created_at <= ?1
         ORDER BY deadline_at, id LIMIT ?2"
    ))?
    .query_map(params![created_before_ms, limit as i64], order_from)?
    .collect()
}

/// How many orders there are in each status.
pub fn count_by_status(conn: &Connection) -> rusqlite::Result<Vec<(OrderStatus, i64)>> {
    conn.prepare_cached("SELECT status, count(*) FROM orders GROUP BY status")?
        .query_map([], |r| Ok((parsed_at(r, 0, OrderStatus::parse)?, r.get(1)?)))?
        .collect()
}

/// How many orders were placed at or after `since_ms` (found through the update index: an order
/// placed since then was updated since then).
pub fn placed_since(conn: &Connection, since_ms: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM orders WHERE updated_at >= ?1 AND created_at >= ?1")?
        .query_row([since_ms], |r| r.get(0))
}

/// The newest event recorded for the saga of `order_id`: its type, producer and time.
pub fn last_saga_event(
    conn: &Connection,
    order_id: Uuid,
) -> rusqlite::Result<Option<(String, String, OffsetDateTime)>> {
    conn.prepare_cached(
        "SELECT type, producer, occurred_at FROM saga_events WHERE order_id = ?1
         ORDER BY occurred_at DESC, event_id DESC LIMIT 1",
    )?
    .query_row([order_id.to_string()], |r| Ok((r.get(0)?, r.get(1)?, time_at(r, 2)?)))
    .optional()
}

/// Every recorded event of the saga of `order_id` with its whole envelope (the console's
/// timeline shows each event's JSON).
pub fn saga_events_with_envelopes(
    conn: &Connection,
    order_id: Uuid,
) -> rusqlite::Result<Vec<(TraceEvent, serde_json::Value)>> {
    conn.prepare_cached(
        "SELECT event_id, type, subject, producer, occurred_at, causation_id, payload FROM saga_events WHERE order_id = ?1",
    )?
    .query_map([order_id.to_string()], |row| {
        let event = trace_event_from(row)?;
        let payload: String = row.get(6)?;
        let envelope = serde_json::from_str(&payload).map_err(|e| conversion(6, Type::Text, e.to_string()))?;
        Ok((event, envelope))
    })?
    .collect()
}

fn trace_event_from(row: &Row<'_>) -> rusqlite::Result<TraceEvent> {
    let payload: String = row.get(6)?;
    let mut envelope: serde_json::Value =
        serde_json::from_str(&payload).map_err(|e| conversion(6, Type::Text, e.to_string()))?;
    Ok(TraceEvent {
        id: uuid_at(row, 0)?,
        event_type: row.get(1)?,
        subject: row.get(2)?,
        producer: row.get(3)?,
        occurred_at: time_at(row, 4)?,
        causation_id: row.get::<_, Option<String>>(5)?.map(|_| uuid_at(row, 5)).transpose()?,
        data: envelope["data"].take(),
    })
}

fn conversion(idx: usize, ty: Type, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, message.into())
}

#[cfg(test)]
mod tests {
    use common::{Event, event::OrderFailed};

    use super::*;
    use crate::domain::{Change, NewOrder, Transition};

    fn migrated() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for migration in crate::app::MIGRATIONS {
            conn.execute_batch(migration).unwrap();
        }
        conn
    }

    fn order(user: Uuid, created_ms: i64) -> Order {
        let new = NewOrder {
            product_id: Uuid::now_v7(),
            quantity: Quantity::new(3).unwrap(),
            payment_method: PaymentMethod::BankTransfer,
        };
        let at = common::db::from_ms(created_ms);
        Order::place(Uuid::now_v7(), user, new, at, std::time::Duration::from_secs(600))
    }

    #[test]
    fn an_order_reads_back_as_written_through_every_change() {
        let mut conn = migrated();
        let placed = order(Uuid::now_v7(), 1_795_000_000_123);
        let tx = conn.transaction().unwrap();
        assert!(insert_order(&tx, &placed, None).unwrap());
        let Transition::Applied(failed) = placed.apply(
            Change::Failed { reason: OrderFailure::PaymentDeclined, detail: Some("DECLINED".into()) },
            placed.created_at,
        ) else {
            panic!("pending orders can fail")
        };
        update_order(&tx, &failed).unwrap();
        tx.commit().unwrap();
        assert_eq!(find_order(&conn, placed.id).unwrap(), Some(failed));
    }

    #[test]
    fn a_users_key_is_taken_once_while_other_users_and_unkeyed_orders_are_free() {
        let mut conn = migrated();
        let (kim, lee) = (Uuid::now_v7(), Uuid::now_v7());
        let key = IdempotencyKey::parse(b"k-1").unwrap();
        let tx = conn.transaction().unwrap();
        let first = order(kim, 1);
        assert!(insert_order(&tx, &first, Some(&key)).unwrap());
        assert!(!insert_order(&tx, &order(kim, 2), Some(&key)).unwrap());
        assert!(insert_order(&tx, &order(lee, 3), Some(&key)).unwrap());
        assert!(insert_order(&tx, &order(kim, 4), None).unwrap());
        assert!(insert_order(&tx, &order(kim, 5), None).unwrap());
        assert_eq!(find_by_idempotency_key(&tx, kim, &key).unwrap(), Some(first));
    }

    #[test]
    fn a_users_orders_are_listed_newest_first_with_the_total() {
        let mut conn = migrated();
        let kim = Uuid::now_v7();
        let tx = conn.transaction().unwrap();
        let orders: Vec<Order> = (1..=5).map(|ms| order(kim, ms)).collect();
        for o in &orders {
            insert_order(&tx, o, None).unwrap();
        }
        insert_order(&tx, &order(Uuid::now_v7(), 9), None).unwrap();
        let (page, total) = list_orders_by_user(&tx, kim, Paging { page: 2, size: 2 }).unwrap();
        assert_eq!(total, 5);
        assert_eq!(page.iter().map(|o| o.id).collect::<Vec<_>>(), [orders[2].id, orders[1].id]);
    }

    #[test]
    fn a_saga_event_is_recorded_once_under_its_correlation_id() {
        let mut conn = migrated();
        let order_id = Uuid::now_v7();
        let event = Envelope::new(
            "svc-order",
            Event::OrderFailed(OrderFailed { order_id, reason: OrderFailure::OutOfStock, detail: None }),
        );
        let tx = conn.transaction().unwrap();
        assert!(insert_saga_event(&tx, &event).unwrap());
        assert!(!insert_saga_event(&tx, &event).unwrap());
        let recorded = saga_events(&tx, order_id).unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!((recorded[0].id, recorded[0].event_type.as_str()), (event.id, "order.failed"));
        assert_eq!(recorded[0].data["reason"], "OUT_OF_STOCK");
    }
}
