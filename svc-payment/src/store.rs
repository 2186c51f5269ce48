//! Small synchronous SQL functions over the `payments` table. Reads take a `&Connection`, so they
//! work on a pooled connection and inside a transaction alike.

use common::{
    PaymentMethod,
    db::{parsed_at, uuid_at},
    event::PaymentDecline,
    paging::Paging,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, types::Type};
use uuid::Uuid;

use crate::domain::{Charge, Payment, PaymentStatus};

const COLUMNS: &str = "id, order_id, user_id, amount, method, status, decline_reason, seller_id, category, product_id, \
                       quantity, created_at, updated_at, cancelled_at";

/// Inserts `payment` unless its order already has one. Returns whether it was inserted; the
/// UNIQUE(order_id) index decides, so two charges of one order can never both commit.
pub fn insert_payment(tx: &Transaction<'_>, payment: &Payment) -> rusqlite::Result<bool> {
    let c = &payment.charge;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO payments (id, order_id, user_id, amount, method, status, decline_reason, seller_id, category,
                               product_id, quantity, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (order_id) DO NOTHING",
        )?
        .execute(params![
            payment.id.to_string(),
            c.order_id.to_string(),
            c.user_id.to_string(),
            c.amount.0,
            c.method.as_str(),
            payment.status.as_str(),
            payment.decline_reason.map(PaymentDecline::as_str),
            c.seller_id.to_string(),
            c.category,
            c.product_id.to_string(),
            c.quantity,
            payment.created_at_ms,
            payment.updated_at_ms,
        ])?;
    Ok(inserted == 1)
}

/// Writes a cancellation, but only over a still-completed row: of two concurrent cancels only
/// one can match. Returns whether it did.
pub fn mark_cancelled(tx: &Transaction<'_>, payment: &Payment) -> rusqlite::Result<bool> {
    let updated = tx
        .prepare_cached(
            "UPDATE payments SET status = 'CANCELLED', cancelled_at = ?1, updated_at = ?2
         WHERE id = ?3 AND status = 'COMPLETED'",
        )?
        .execute(params![payment.cancelled_at_ms, payment.updated_at_ms, payment.id.to_string()])?;
    Ok(updated == 1)
}

pub fn find_payment(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<Payment>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM payments WHERE id = ?1"))?
        .query_row([id.to_string()], payment_from_row)
        .optional()
}

pub fn find_payment_by_order(conn: &Connection, order_id: Uuid) -> rusqlite::Result<Option<Payment>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM payments WHERE order_id = ?1"))?
        .query_row([order_id.to_string()], payment_from_row)
        .optional()
}

/// A page of every payment, oldest first, and how many there are.
pub fn list_payments(conn: &Connection, paging: Paging) -> rusqlite::Result<(Vec<Payment>, i64)> {
    let total: i64 = conn.query_row("SELECT count(*) FROM payments", [], |r| r.get(0))?;
    let payments = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM payments ORDER BY created_at, id LIMIT ?1 OFFSET ?2"))?
        .query_map(params![paging.limit(), paging.offset()], payment_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok((payments, total))
}

fn payment_from_row(row: &Row<'_>) -> rusqlite::Result<Payment> {
    let charge = Charge {
        order_id: uuid_at(row, 1)?,
        user_id: uuid_at(row, 2)?,
        amount: common::Won(row.get(3)?),
        method: parsed_at(row, 4, PaymentMethod::parse)?,
        seller_id: uuid_at(row, 7)?,
        category: row.get(8)?,
        product_id: uuid_at(row, 9)?,
        quantity: row.get(10)?,
    };
    let decline_reason: Option<PaymentDecline> = match row.get_ref(6)?.as_str_or_null()? {
        Some(text) => Some(PaymentDecline::parse(text).ok_or_else(|| unknown(6, text))?),
        None => None,
    };
    Ok(Payment {
        id: uuid_at(row, 0)?,
        charge,
        status: parsed_at(row, 5, PaymentStatus::parse)?,
        decline_reason,
        created_at_ms: row.get(11)?,
        updated_at_ms: row.get(12)?,
        cancelled_at_ms: row.get(13)?,
    })
}

fn unknown(idx: usize, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, format!("unknown value {text:?}").into())
}
