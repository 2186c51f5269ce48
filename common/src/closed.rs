//! Orders whose saga ended unpaid (`order.failed`, `order.expired`), as a saga participant
//! remembers them in its own `closed_orders` table (created by its migrations): svc-product
//! reserves nothing and svc-payment charges nothing for an order it knows is closed, whichever
//! event arrives first.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use uuid::Uuid;

use crate::db::now_ms;

/// Remembers that `order_id`'s saga ended unpaid, and why (the first reason wins).
pub fn close(tx: &Transaction<'_>, order_id: Uuid, reason: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO closed_orders (order_id, reason, closed_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?
    .execute(params![order_id.to_string(), reason, now_ms()])?;
    Ok(())
}

/// Why `order_id` is closed, if it is.
pub fn reason(conn: &Connection, order_id: Uuid) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT reason FROM closed_orders WHERE order_id = ?1")?
        .query_row([order_id.to_string()], |r| r.get(0))
        .optional()
}
