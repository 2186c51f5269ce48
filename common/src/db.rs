//! SQLite: one file per service, a small deadpool pool, embedded migrations.
//!
//! Every write goes through [`Db::write`]: one `BEGIN IMMEDIATE` transaction that the caller fills
//! with its state change and the outbox rows it causes. After the commit the outbox relay is woken,
//! so there is no way to write an event and forget to publish it.

use std::{path::Path, sync::Arc, time::Duration};

use deadpool_sqlite::{Config, Hook, HookError, Pool, Runtime};
use rusqlite::{Connection, Transaction, TransactionBehavior, types::Type};
use rusqlite_migration::{M, Migrations};
use tokio::sync::Notify;

/// The pragmas every pooled connection gets. `synchronous` is per connection (not stored in the
/// file) and FULL is what keeps the last commits through a power loss in WAL mode.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;";
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_SIZE: usize = 4;

/// The plumbing tables (outbox, processed, dead_letter); they come before the service's own.
const PLUMBING: &str = include_str!("../migrations/0001_plumbing.sql");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(String),
    #[error("database call did not complete: {0}")]
    Interact(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// A service's database handle: cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    committed: Arc<Notify>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("pool", &self.pool.status()).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path` and migrates it: the plumbing tables
    /// first, then `migrations` (the service's own SQL files, in order).
    pub async fn open(path: &Path, migrations: &'static [&'static str]) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let pool = Config::new(path)
            .builder(Runtime::Tokio1)?
            .max_size(POOL_SIZE)
            .post_create(Hook::async_fn(|conn, _| {
                Box::pin(async move {
                    conn.interact(|c| {
                        c.busy_timeout(BUSY_TIMEOUT)?;
                        c.execute_batch(PRAGMAS)
                    })
                    .await
                    .map_err(|e| HookError::message(e.to_string()))?
                    .map_err(|e| HookError::message(e.to_string()))
                })
            }))
            .build()?;
        let db = Db { pool, committed: Arc::new(Notify::new()) };
        db.with_conn(move |c| {
            let steps: Vec<M<'static>> =
                std::iter::once(PLUMBING).chain(migrations.iter().copied()).map(M::up).collect();
            Migrations::new(steps).to_latest(c).map_err(|e| anyhow::anyhow!("migrating database: {e}"))
        })
        .await??;
        Ok(db)
    }

    /// Runs `f` on a pooled connection (reads, or anything that manages its own transaction).
    /// `f` is usually a store function, whose `rusqlite::Error` becomes a [`DbError`] here, so
    /// `db.read(|c| store::find(c, id)).await?` works in any layer that takes `DbError`.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<DbError> + Send + 'static,
    {
        self.with_conn(move |c| f(c).map_err(Into::into)).await?
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction and commits if it returns `Ok`.
    /// Immediate, because a write transaction that reads first would otherwise fail with
    /// SQLITE_BUSY under contention whatever the busy timeout.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<rusqlite::Error> + Send + 'static,
    {
        let out = self
            .with_conn(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&tx)?;
                tx.commit()?;
                Ok::<T, E>(out)
            })
            .await??;
        // The transaction may have appended outbox rows: wake the relay. A permit is stored when
        // the relay is busy, so no wake-up is lost.
        self.committed.notify_one();
        Ok(out)
    }

    /// Signalled after every committed write; the outbox relay waits on it.
    pub fn committed(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// `SELECT 1` through the pool: the readiness probe.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Connection) -> T + Send + 'static,
        T: Send + 'static,
    {
        let conn = self.pool.get().await.map_err(|e| DbError::Pool(e.to_string()))?;
        conn.interact(f).await.map_err(|e| DbError::Interact(e.to_string()))
    }
}

/// Now, truncated to the millisecond every table stores, so a value reads back exactly as it was
/// written (a response built before the commit equals one read after it).
pub fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_millisecond(now.millisecond()).unwrap_or(now)
}

/// Milliseconds since the Unix epoch, the time format of every plumbing table.
pub fn now_ms() -> i64 {
    to_ms(time::OffsetDateTime::now_utc())
}

/// A time as every table stores it: milliseconds since the Unix epoch.
pub fn to_ms(at: time::OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A stored time in milliseconds as a UTC time. Outside `time`'s range (years beyond ±9999),
/// which our own clock never writes, it is the epoch; [`time_at`] refuses such a column instead.
pub fn from_ms(ms: i64) -> time::OffsetDateTime {
    checked_from_ms(ms).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn checked_from_ms(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Column `idx` of a row, read as an id stored as hyphenated text (readable in the sqlite3 shell).
pub fn uuid_at(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<uuid::Uuid> {
    let text = row.get_ref(idx)?.as_str()?;
    uuid::Uuid::parse_str(text).map_err(|e| conversion(idx, Type::Text, e.into()))
}

/// Column `idx` of a row, read as a time stored in milliseconds.
pub fn time_at(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<time::OffsetDateTime> {
    let ms: i64 = row.get(idx)?;
    checked_from_ms(ms).ok_or_else(|| conversion(idx, Type::Integer, format!("{ms} ms is out of range").into()))
}

/// Column `idx` of a row, read as TEXT through `parse` (an enum's wire name, say); the tables'
/// CHECK constraints make a failure a corrupted file.
pub fn parsed_at<T>(row: &rusqlite::Row<'_>, idx: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text = row.get_ref(idx)?.as_str()?;
    parse(text).ok_or_else(|| conversion(idx, Type::Text, format!("unexpected value {text:?}").into()))
}

fn conversion(idx: usize, ty: Type, e: Box<dyn std::error::Error + Send + Sync>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn temp_db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("test.db"), &["CREATE TABLE t (x INTEGER NOT NULL);"]).await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn every_connection_has_the_pragmas() {
        let (_dir, db) = temp_db().await;
        let (journal, sync, fk, busy): (String, i64, i64, i64) = db
            .read(|c| {
                c.query_row(
                    "SELECT * FROM pragma_journal_mode, pragma_synchronous, pragma_foreign_keys, pragma_busy_timeout",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
            })
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(fk, 1);
        assert_eq!(busy, 5000);
    }

    #[tokio::test]
    async fn a_failed_write_leaves_nothing_behind() {
        let (_dir, db) = temp_db().await;
        let res: Result<(), DbError> = db
            .write(|tx| {
                tx.execute("INSERT INTO t (x) VALUES (1)", [])?;
                tx.execute("INSERT INTO t (x) VALUES (NULL)", [])?; // NOT NULL violation
                Ok(())
            })
            .await;
        assert!(res.is_err());
        let n: i64 = db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))).await.unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn reopening_a_migrated_database_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("again.db");
        for _ in 0..2 {
            Db::open(&path, &["CREATE TABLE t (x INTEGER);"]).await.unwrap();
        }
    }
}
