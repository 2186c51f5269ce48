//! The append-only `ledger` table.

use common::{Won, paging::Paging};
use jiff::civil::Date;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, types::Type};
use uuid::Uuid;

use super::{count_at, date_at, timestamp_at, uuid_at};
use crate::domain::{Entry, Kind, Posting, Sums, report::DayGroup};

const COLUMNS: &str =
    "id, kind, payment_id, order_id, seller_id, category, amount, occurred_at, event_date, business_date, created_at";

/// Appends `entry` unless its payment already has an entry of that kind (or its id is taken).
/// Returns whether it was inserted.
pub fn insert_entry(tx: &Transaction<'_>, entry: &Entry) -> rusqlite::Result<bool> {
    let p = &entry.posting;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO ledger (id, kind, payment_id, order_id, seller_id, category, amount, occurred_at, event_date,
                             business_date, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            p.id.to_string(),
            p.kind.as_str(),
            p.payment_id.to_string(),
            p.order_id.to_string(),
            p.seller_id.to_string(),
            p.category,
            p.amount.0,
            p.occurred_at.to_string(),
            entry.event_date.to_string(),
            entry.business_date.to_string(),
            entry.created_at_ms,
        ])?;
    Ok(inserted == 1)
}

/// The entry of `kind` booked for `payment`, if any.
pub fn find_entry(conn: &Connection, payment: Uuid, kind: Kind) -> rusqlite::Result<Option<Entry>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM ledger WHERE payment_id = ?1 AND kind = ?2"))?
        .query_row(params![payment.to_string(), kind.as_str()], entry_from_row)
        .optional()
}

/// One page of every entry, in booking order, and how many entries there are.
pub fn list_entries(conn: &Connection, paging: Paging) -> rusqlite::Result<(Vec<Entry>, i64)> {
    super::in_snapshot(conn, |tx| {
        let total = tx.query_row("SELECT count(*) FROM ledger", [], |r| r.get(0))?;
        let items = tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM ledger ORDER BY rowid LIMIT ?1 OFFSET ?2"))?
            .query_map(params![paging.limit(), paging.offset()], entry_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((items, total))
    })
}

/// Which groups a sums query covers; `None` means no restriction.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub seller_id: Option<Uuid>,
    pub category: Option<String>,
}

impl Filter {
    /// Every group of the business days `from..=to`.
    pub fn days(from: Date, to: Date) -> Self {
        Filter { from: Some(from), to: Some(to), ..Filter::default() }
    }
}

/// The ledger summed per business day, seller and category, ordered by those. SQLite's `sum()`
/// raises an error rather than wrapping when integers overflow.
pub fn day_groups(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<DayGroup>> {
    let mut stmt = conn.prepare_cached(
        "SELECT business_date, seller_id, category,
                coalesce(sum(CASE kind WHEN 'SALE' THEN amount END), 0),
                coalesce(sum(CASE kind WHEN 'REFUND' THEN amount END), 0),
                count(CASE kind WHEN 'SALE' THEN 1 END)
         FROM ledger
         WHERE (?1 IS NULL OR business_date >= ?1) AND (?2 IS NULL OR business_date <= ?2)
           AND (?3 IS NULL OR seller_id = ?3) AND (?4 IS NULL OR category = ?4)
         GROUP BY business_date, seller_id, category
         ORDER BY business_date, seller_id, category",
    )?;
    let args = params![
        filter.from.map(|d| d.to_string()),
        filter.to.map(|d| d.to_string()),
        filter.seller_id.map(|s| s.to_string()),
        filter.category,
    ];
    stmt.query_map(args, |row| {
        Ok(DayGroup {
            date: date_at(row, 0)?,
            seller_id: uuid_at(row, 1)?,
            category: row.get(2)?,
            sums: Sums { gross: Won(row.get(3)?), refunds: Won(row.get(4)?), orders: row.get(5)? },
        })
    })?
    .collect()
}

/// Business days that have entries but are not closed, oldest first: what the scheduler checks.
pub fn open_days_with_entries(conn: &Connection) -> rusqlite::Result<Vec<Date>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT business_date FROM ledger
         WHERE business_date NOT IN (SELECT date FROM closed_days) ORDER BY business_date",
    )?;
    stmt.query_map([], |row| date_at(row, 0))?.collect()
}

fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<Entry> {
    let kind = kind_at(row, 1)?;
    Ok(Entry {
        posting: Posting {
            id: uuid_at(row, 0)?,
            kind,
            payment_id: uuid_at(row, 2)?,
            order_id: uuid_at(row, 3)?,
            seller_id: uuid_at(row, 4)?,
            category: row.get(5)?,
            amount: Won(row.get(6)?),
            occurred_at: timestamp_at(row, 7)?,
        },
        event_date: date_at(row, 8)?,
        business_date: date_at(row, 9)?,
        created_at_ms: row.get(10)?,
    })
}

/// How many entries the ledger holds, all days: a close's position in it (the ledger only grows).
pub fn count_entries(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT count(*) FROM ledger")?.query_row([], |row| count_at(row, 0))
}

/// Reads a `kind` column; the CHECK constraint makes a failure a corrupted file.
fn kind_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Kind> {
    let text = row.get_ref(idx)?.as_str()?;
    Kind::parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, format!("unknown kind {text:?}").into())
    })
}
