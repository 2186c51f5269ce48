//! SQLite: one file per service, a small deadpool pool for reads, one writer, embedded migrations.
//!
//! Every write goes through [`Db::write`]: a closure that fills a transaction with its state change
//! and the outbox rows it causes. After the commit the outbox relay is woken, so there is no way to
//! write an event and forget to publish it.
//!
//! The writes of a service go to one writer thread, which owns the only connection that writes
//! (SQLite has one writer per database anyway). It commits in groups: the writes that queued up
//! while the previous commit was syncing run in one `BEGIN IMMEDIATE` transaction, each inside a
//! savepoint of its own, so one that fails is rolled back alone and the others commit, together,
//! with one fsync. An idle service commits each write at once; a busy one syncs once per group
//! instead of once per request, which is what bounds a database on `synchronous = FULL`.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    path::Path,
    sync::{Arc, mpsc},
    time::Duration,
};

use deadpool_sqlite::{Config, Hook, HookError, Pool, Runtime};
use rusqlite::{Connection, Transaction, TransactionBehavior, types::Type};
use rusqlite_migration::{M, Migrations};
use tokio::sync::Notify;

/// The pragmas every pooled connection gets. `synchronous` is per connection (not stored in the
/// file) and FULL is what keeps the last commits through a power loss in WAL mode.
/// `temp_store = MEMORY` keeps the statement journals of the savepoints (one per write of a
/// group, one per message of a consumer's batch) in memory: on the default, a file, every page a
/// savepoint touches was written to a temporary file first (18 % of svc-order's CPU under load).
const PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA temp_store = MEMORY;
PRAGMA foreign_keys = ON;";
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_SIZE: usize = 4;
/// The most writes committed together.
const GROUP: usize = 64;
/// Prepared statements kept per connection (`prepare_cached`): every statement of the hot path.
const STATEMENT_CACHE: usize = 64;

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
    /// The group of writes this one was committed with could not be committed: nothing of it
    /// was written.
    #[error("commit failed: {0}")]
    Commit(String),
}

/// One write as the writer runs it: fills the transaction (`None`: there is none, it cannot run)
/// and says whether it succeeded, with what to do once the group's commit is known.
type Job = Box<dyn FnOnce(Option<&Transaction<'_>>) -> (bool, Completion) + Send>;
/// Hands a write's result to its caller once the commit went through (`Ok`) or failed.
type Completion = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// A service's database handle: cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    writer: mpsc::Sender<Job>,
    committed: Arc<Notify>,
    lookups: Arc<Lookups>,
}

/// The connections of [`Db::lookup`]: opened when none is idle, kept for the next lookup. A
/// lookup never awaits, so no more are ever in use than threads run lookups at once.
struct Lookups {
    path: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<Connection>>,
}

/// Idle lookup connections kept; more than the threads of a service's runtime is never needed.
const LOOKUPS_KEPT: usize = 8;

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
                    conn.interact(|c| configure(c))
                        .await
                        .map_err(|e| HookError::message(e.to_string()))?
                        .map_err(|e| HookError::message(e.to_string()))
                })
            }))
            .build()?;
        let conn = pool.get().await.map_err(|e| DbError::Pool(e.to_string()))?;
        conn.interact(move |c| {
            let steps: Vec<M<'static>> =
                std::iter::once(PLUMBING).chain(migrations.iter().copied()).map(M::up).collect();
            Migrations::new(steps).to_latest(c).map_err(|e| anyhow::anyhow!("migrating database: {e}"))
        })
        .await
        .map_err(|e| DbError::Interact(e.to_string()))??;
        conn.interact(upgrade_plumbing).await.map_err(|e| DbError::Interact(e.to_string()))??;
        drop(conn);

        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        let committed = Arc::new(Notify::new());
        let (writer, jobs) = mpsc::channel();
        let wake = committed.clone();
        std::thread::Builder::new()
            .name(format!("sqlite-writer-{}", path.file_stem().and_then(|s| s.to_str()).unwrap_or("db")))
            .spawn(move || write_groups(&mut conn, &jobs, &wake))?;
        let lookups = Arc::new(Lookups { path: path.to_owned(), idle: std::sync::Mutex::new(Vec::new()) });
        Ok(Db { pool, writer, committed, lookups })
    }

    /// Runs `f` on a connection of its own right on the calling thread: no hop to the blocking
    /// pool and back, which is what [`Db::read`] costs on top of the read (two thread switches,
    /// more than a read of a few rows by index takes). For the short reads on the saga's path
    /// only (an order by its id, the outbox's next rows): in WAL mode a reader never waits for
    /// the writer, so such a read holds the thread for tens of microseconds. Anything that scans,
    /// pages or may wait goes through `read`.
    pub fn lookup<T, E, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
        E: Into<DbError>,
    {
        let lookups = &*self.lookups;
        let idle = lookups.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = Connection::open(&lookups.path)?;
                configure(&conn)?;
                conn
            }
        };
        let result = f(&conn).map_err(Into::into);
        let mut idle = lookups.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < LOOKUPS_KEPT {
            idle.push(conn);
        }
        result
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

    /// Runs `f` inside a `BEGIN IMMEDIATE` transaction (possibly shared with other writes, each
    /// in its own savepoint; see the module doc) and commits if it returns `Ok`; if it returns
    /// `Err`, nothing it wrote stays. Immediate, because a write transaction that reads first
    /// would otherwise fail with SQLITE_BUSY under contention whatever the busy timeout.
    ///
    /// `f` runs on the writer thread: keep it to SQL (no waiting on the network). If the caller
    /// stops waiting, `f` still runs and may commit.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<rusqlite::Error> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel::<Result<T, E>>();
        // The caller's trace and span go with the closure to the writer thread: the outbox rows
        // it appends carry the trace on, and what it logs is logged in the caller's span.
        let (trace, span) = (crate::trace::current(), tracing::Span::current());
        let job: Job = Box::new(move |tx| {
            let _entered = span.enter();
            let result = tx.map(|tx| crate::trace::on_thread(trace, || f(tx)));
            let ok = matches!(result, Some(Ok(_)));
            let complete: Completion = Box::new(move |commit| {
                let result = match (result, commit) {
                    (Some(Err(e)), _) => Err(e),
                    (Some(Ok(value)), Ok(())) => Ok(value),
                    (_, Err(reason)) => Err(E::from(DbError::Commit(reason.to_owned()))),
                    (None, Ok(())) => Err(E::from(DbError::Commit("the write never ran".into()))),
                };
                let _ = answer.send(result);
            });
            (ok, complete)
        });
        self.writer.send(job).map_err(|_| E::from(DbError::Interact("the database writer has stopped".into())))?;
        answered.await.map_err(|_| E::from(DbError::Interact("the write panicked".into())))?
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

/// Columns added to the plumbing tables after their first migration. The plumbing migration is
/// the first of every service's numbered list, so a second one cannot be slotted in after it
/// without renumbering the services' own; each change here is idempotent instead, run at every
/// open.
fn upgrade_plumbing(c: &mut Connection) -> rusqlite::Result<()> {
    let has_traceparent =
        c.prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'traceparent'")?.exists([])?;
    if !has_traceparent {
        // The W3C trace context the row's event is published with (crate::trace).
        c.execute_batch("ALTER TABLE outbox ADD COLUMN traceparent TEXT")?;
    }
    Ok(())
}

/// The settings every connection gets, the writer's and the pool's.
fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    c.execute_batch(PRAGMAS)
}

/// The writer thread: until every [`Db`] handle is gone, takes the writes waiting (at least one,
/// at most [`GROUP`]) and commits them together.
fn write_groups(conn: &mut Connection, jobs: &mpsc::Receiver<Job>, committed: &Notify) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < GROUP
            && let Ok(job) = jobs.try_recv()
        {
            group.push(job);
        }
        commit_group(conn, group);
        // The group may have appended outbox rows: wake the relay. A permit is stored when the
        // relay is busy, so no wake-up is lost.
        committed.notify_one();
    }
}

/// One transaction for `group`, a savepoint per write (none for a write alone, which needs none):
/// a write that fails (or panics) is rolled back alone. Each write's caller learns its result once the commit's outcome is known.
fn commit_group(conn: &mut Connection, group: Vec<Job>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let reason = format!("cannot begin a transaction: {e}");
            tracing::warn!(reason, writes = group.len(), "database writes failed");
            for job in group {
                let (_, complete) = job(None);
                complete(Err(&reason));
            }
            return;
        }
    };
    let mut done: Vec<Completion> = Vec::with_capacity(group.len());
    let mut broken = None;
    if let [_] = group[..] {
        // A write alone needs no savepoint: if it fails, the whole transaction is rolled back.
        let job = group.into_iter().next().expect("one write");
        match catch_unwind(AssertUnwindSafe(|| job(Some(&tx)))) {
            Ok((true, complete)) => done.push(complete),
            Ok((false, complete)) => {
                drop(tx); // rolls back; the write's own error is its answer
                complete(Ok(()));
                return;
            }
            // Its caller learns it from the dropped answer; dropping `tx` rolls back.
            Err(_) => return,
        }
    } else {
        for job in group {
            if broken.is_some() {
                // The transaction is unusable: what is left is not run, and fails with the rest.
                done.push(job(None).1);
                continue;
            }
            if let Err(e) = run_cached(&tx, "SAVEPOINT write") {
                broken = Some(format!("cannot open a savepoint: {e}"));
                done.push(job(None).1);
                continue;
            }
            let ran = catch_unwind(AssertUnwindSafe(|| job(Some(&tx))));
            let ok = matches!(ran, Ok((true, _)));
            let end = if ok { run_cached(&tx, "RELEASE write") } else { rollback_to(&tx, "write") };
            if let Err(e) = end {
                broken = Some(format!("cannot close a savepoint: {e}"));
            }
            // A write that panicked has no completion: its caller learns it from the dropped answer.
            if let Ok((_, complete)) = ran {
                done.push(complete);
            }
        }
    }
    let commit = match broken {
        Some(reason) => Err(reason),
        None => tx.commit().map_err(|e| e.to_string()),
    };
    if let Err(reason) = &commit {
        tracing::warn!(reason, writes = done.len(), "a group of database writes did not commit");
    }
    for complete in done {
        complete(commit.as_ref().map(|_| ()).map_err(String::as_str));
    }
}

/// Runs a statement without parameters or rows (a savepoint's `SAVEPOINT`, `RELEASE`) through the
/// connection's statement cache: these run several times per transaction, and parsing them anew
/// each time showed in profiles.
pub fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Undoes everything since savepoint `name` and closes it.
pub fn rollback_to(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    run_cached(conn, &format!("ROLLBACK TO {name}"))?;
    run_cached(conn, &format!("RELEASE {name}"))
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
        let writer: (i64, i64, i64) = db
            .write(|tx| {
                let pragmas = "SELECT * FROM pragma_synchronous, pragma_foreign_keys, pragma_temp_store";
                tx.query_row(pragmas, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(DbError::from)
            })
            .await
            .unwrap();
        assert_eq!(
            writer,
            (2, 1, 2),
            "the writer's connection is FULL, checks foreign keys, journals savepoints in memory"
        );
    }

    #[tokio::test]
    async fn a_lookup_sees_every_committed_write_and_reuses_its_connection() {
        let (_dir, db) = temp_db().await;
        let count = || db.lookup(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)));
        assert_eq!(count().unwrap(), 0);
        db.write(|tx| tx.execute("INSERT INTO t (x) VALUES (1)", []).map_err(DbError::from)).await.unwrap();
        assert_eq!(count().unwrap(), 1, "a write committed before the lookup is seen");
        assert_eq!(db.lookups.idle.lock().unwrap().len(), 1, "one connection, kept and reused");
        let fk: i64 = db.lookup(|c| c.query_row("SELECT * FROM pragma_foreign_keys", [], |r| r.get(0))).unwrap();
        assert_eq!(fk, 1, "a lookup connection gets the pragmas");
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
    async fn a_write_alone_that_panics_leaves_nothing_and_the_writer_goes_on() {
        let (_dir, db) = temp_db().await;
        let res: Result<(), DbError> = db
            .write(|tx| {
                tx.execute("INSERT INTO t (x) VALUES (1)", [])?;
                panic!("a write that panics");
            })
            .await;
        assert!(res.is_err_and(|e| e.to_string().contains("panicked")));
        db.write(|tx| tx.execute("INSERT INTO t (x) VALUES (2)", []).map_err(DbError::from)).await.unwrap();
        let rows: Vec<i64> = db
            .read(|c| c.prepare("SELECT x FROM t")?.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>())
            .await
            .unwrap();
        assert_eq!(rows, [2], "the panicked write left nothing");
    }

    #[tokio::test]
    async fn writes_committed_together_keep_their_own_outcomes() {
        use futures_util::FutureExt;
        let (_dir, db) = temp_db().await;
        // The first write holds the writer until every other one has queued up behind it, so
        // they all run in the next group.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let mut first = Box::pin(db.write(move |tx| {
            hold.recv().unwrap();
            tx.execute("INSERT INTO t (x) VALUES (0)", []).map_err(DbError::from)
        }));
        assert!((&mut first).now_or_never().is_none());
        let mut writes: Vec<_> = (1..=10)
            .map(|i| {
                Box::pin(db.write(move |tx| -> Result<i64, DbError> {
                    tx.execute("INSERT INTO t (x) VALUES (?1)", [i])?;
                    match i {
                        3 => Err(DbError::Interact("refused by the test".into())), // its row must go
                        7 => panic!("a write that panics"),
                        _ => Ok(i),
                    }
                }))
            })
            .collect();
        for w in &mut writes {
            assert!(w.now_or_never().is_none(), "queued behind the first write");
        }
        release.send(()).unwrap();
        first.await.unwrap();
        let mut outcomes = Vec::new();
        for w in writes {
            outcomes.push(w.await.map_err(|e| e.to_string()));
        }
        assert!(outcomes[2].as_ref().is_err_and(|e| e.contains("refused by the test")), "{outcomes:?}");
        assert!(outcomes[6].as_ref().is_err_and(|e| e.contains("panicked")), "{outcomes:?}");
        let ok: Vec<i64> = outcomes.iter().filter_map(|o| o.as_ref().ok().copied()).collect();
        assert_eq!(ok, [1, 2, 4, 5, 6, 8, 9, 10]);
        let rows: Vec<i64> =
            db.read(|c| c.prepare("SELECT x FROM t ORDER BY x")?.query_map([], |r| r.get(0))?.collect()).await.unwrap();
        assert_eq!(rows, [0, 1, 2, 4, 5, 6, 8, 9, 10], "the failed and the panicked write left nothing");
    }

    #[tokio::test]
    async fn reopening_a_migrated_database_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("again.db");
        for _ in 0..2 {
            Db::open(&path, &["CREATE TABLE t (x INTEGER);"]).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_database_from_before_the_trace_column_gets_it_on_open_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        drop(Db::open(&path, &[]).await.unwrap());
        // As the plumbing migration alone left it, with a row written then.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE outbox DROP COLUMN traceparent;
             INSERT INTO outbox (id, subject, payload, created_at) VALUES ('old', 's', x'7b7d', 1);",
        )
        .unwrap();
        drop(conn);
        let db = Db::open(&path, &[]).await.unwrap();
        db.write(|tx| crate::outbox::append_raw(tx, "new", "s", b"{}")).await.unwrap();
        let rows = db.lookup(|c| crate::outbox::pending(c, 10)).unwrap();
        let traces: Vec<(&str, bool)> = rows.iter().map(|r| (r.id.as_str(), r.traceparent.is_some())).collect();
        assert_eq!(traces, [("old", false), ("new", true)]);
        assert!(crate::trace::TraceContext::parse(rows[1].traceparent.as_deref().unwrap()).is_some());
    }
}
