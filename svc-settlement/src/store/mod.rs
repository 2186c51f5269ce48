//! Small synchronous SQL functions. Reads take a `&Connection`, so they work on a pooled
//! connection and inside a transaction alike.
//!
//! - [`ledger`]: booking and finding entries, and the per-day sums reports are built from.
//! - [`days`]: closed days and their payouts.

pub mod days;
pub mod ledger;

use common::db::uuid_at;
use jiff::civil::Date;
use rusqlite::{Connection, Row, Transaction, types::Type};

/// Runs `f` in one read transaction, so every query in it sees the same committed state: in WAL
/// mode the snapshot is taken at the first read and held until the end. A report must not sum the
/// ledger before a close commits and read the close record after it.
pub fn in_snapshot<T, E>(conn: &Connection, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E>
where
    E: From<rusqlite::Error>,
{
    // Deferred: reads only, no write lock. Unchecked only because the pool hands out `&Connection`.
    let tx = conn.unchecked_transaction()?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// Reads a `YYYY-MM-DD` column; the service only ever writes valid days there.
fn date_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<Date> {
    let text = row.get_ref(idx)?.as_str()?;
    crate::domain::calendar::parse_day(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// Reads a count; the column's CHECK keeps it non-negative.
fn count_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let n: i64 = row.get(idx)?;
    u64::try_from(n).map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Integer, Box::new(e)))
}

/// A count as SQLite's signed integer (rusqlite binds no `u64` without `fallible_uint`).
fn count_param(n: u64) -> rusqlite::Result<i64> {
    i64::try_from(n).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn timestamp_at(row: &Row<'_>, idx: usize) -> rusqlite::Result<jiff::Timestamp> {
    let text = row.get_ref(idx)?.as_str()?;
    text.parse().map_err(|e: jiff::Error| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

#[cfg(test)]
mod tests {
    use common::db::{Db, DbError};
    use rusqlite::Connection;

    /// A close committed between two reads of one report is seen by neither or, had the report
    /// started after it, by both; never by the second read only.
    #[tokio::test]
    async fn reads_in_one_snapshot_do_not_see_a_close_committed_between_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        // Opening through the pool sets WAL, which is what lets a reader keep its snapshot.
        let _db = Db::open(&path, crate::app::MIGRATIONS).await.unwrap();
        let count = |c: &Connection| c.query_row("SELECT count(*) FROM closed_days", [], |r| r.get::<_, i64>(0));
        let reader = Connection::open(&path).unwrap();
        let (before, after) = super::in_snapshot(&reader, |tx| {
            let before = count(tx)?;
            Connection::open(&path)?.execute(
                "INSERT INTO closed_days VALUES ('2026-11-30', 'Asia/Seoul', 300, '2026-12-01T00:00:00Z', 'c1', 0)",
                [],
            )?;
            Ok::<_, rusqlite::Error>((before, count(tx)?))
        })
        .unwrap();
        assert_eq!((before, after), (0, 0));
        assert_eq!(count(&reader).unwrap(), 1, "the next report sees the close");
    }

    /// What the schema itself refuses, whatever the code above it does.
    #[tokio::test]
    async fn the_schema_keeps_the_ledger_append_only_and_closed_days_final() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), crate::app::MIGRATIONS).await.unwrap();
        let run = |sql: &'static str| {
            let db = db.clone();
            async move { db.write(move |tx| tx.execute_batch(sql).map_err(DbError::from)).await }
        };
        run("INSERT INTO ledger VALUES ('e1', 'SALE', 'p1', 'o1', 's1', 'books', 100, '2026-11-30T01:00:00Z',
                                       '2026-11-30', '2026-11-30', 0);
             INSERT INTO closed_days VALUES ('2026-11-30', 'Asia/Seoul', 300, '2026-12-01T00:00:00Z', 'c1', 1);")
        .await
        .unwrap();
        let refused = [
            "INSERT INTO ledger VALUES ('e2', 'REFUND', 'p1', 'o1', 's1', 'books', 100, '2026-11-30T02:00:00Z',
                                        '2026-11-30', '2026-11-30', 0)",
            "INSERT INTO ledger VALUES ('e3', 'SALE', 'p1', 'o1', 's1', 'books', 100, '2026-11-30T02:00:00Z',
                                        '2026-11-30', '2026-12-01', 0)",
            "INSERT INTO ledger VALUES ('e4', 'SALE', 'p4', 'o4', 's1', 'books', 100, '2026-12-01T02:00:00Z',
                                        '2026-12-02', '2026-12-01', 0)",
            "UPDATE ledger SET amount = 1",
            "DELETE FROM ledger",
            "UPDATE closed_days SET fee_rate_bps = 0",
            "DELETE FROM closed_days",
        ];
        for sql in refused {
            assert!(run(sql).await.is_err(), "{sql}");
        }
    }
}
