//! Keeps the trace (`saga_events`) from growing without bound. Once an hour, in short batches:
//! - events of a saga whose order never came to be go after [`STRANGER_RETENTION`]: the trace
//!   consumer stores nothing for an order svc-order never heard of except its `order.created`,
//!   which the saga consumer turns into the order, so this only catches an `order.created` the
//!   saga consumer refused; an hour leaves the saga consumer ample time;
//! - every event goes after [`TRACE_RETENTION`], as old as the stream's processed ids and older
//!   than any saga can still be running.

use std::time::Duration;

use common::db::{Db, DbError, now_ms};
use rusqlite::{Transaction, params};
use tokio_util::sync::CancellationToken;

/// How long the trace keeps an order's events.
pub const TRACE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long the trace keeps events of an order svc-order has no row for.
pub const STRANGER_RETENTION: Duration = Duration::from_secs(3600);
const EVERY: Duration = Duration::from_secs(3600);
const BATCH: usize = 1000;

/// Runs [`purge`] at start and then every hour until stopped.
pub async fn run(db: Db, stop: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match purge(&db, now_ms()).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "purged trace events past retention"),
            Err(error) => tracing::warn!(%error, "could not purge the trace; trying again in an hour"),
        }
    }
}

/// Deletes the trace events past retention at `now_ms`, [`BATCH`] rows per transaction. Returns
/// how many went.
pub async fn purge(db: &Db, now_ms: i64) -> Result<usize, DbError> {
    let old = now_ms - TRACE_RETENTION.as_millis() as i64;
    let stranger = now_ms - STRANGER_RETENTION.as_millis() as i64;
    let mut total = 0;
    loop {
        let n = db.write(move |tx| purge_batch(tx, old, stranger)).await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

fn purge_batch(tx: &Transaction<'_>, old_ms: i64, stranger_ms: i64) -> Result<usize, DbError> {
    Ok(tx.execute(
        "DELETE FROM saga_events WHERE event_id IN (
             SELECT event_id FROM saga_events
             WHERE occurred_at < ?1
                OR (occurred_at < ?2 AND NOT EXISTS (SELECT 1 FROM orders WHERE orders.id = saga_events.order_id))
             LIMIT ?3)",
        params![old_ms, stranger_ms, BATCH as i64],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn old_events_and_strangers_past_an_hour_go_and_the_rest_stay() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("svc-order.db"), crate::app::MIGRATIONS).await.unwrap();
        let now = 1_795_000_000_000_i64;
        let (hour, month) = (STRANGER_RETENTION.as_millis() as i64, TRACE_RETENTION.as_millis() as i64);
        db.write(move |tx| {
            tx.execute(
                "INSERT INTO orders (id, user_id, product_id, quantity, payment_method, status, created_at, updated_at,
                                     deadline_at)
                 VALUES ('known', 'u', 'p', 1, 'CARD', 'PAID', 0, 0, 0)",
                [],
            )?;
            for (event, order, at) in [
                ("known-recent", "known", now - hour * 2),
                ("known-old", "known", now - month - 1),
                ("stranger-recent", "nobody", now - hour + 1),
                ("stranger-late", "nobody", now - hour - 1),
            ] {
                tx.execute(
                    "INSERT INTO saga_events (event_id, order_id, subject, type, producer, occurred_at, payload)
                     VALUES (?1, ?2, 's', 't', 'p', ?3, '{}')",
                    params![event, order, at],
                )?;
            }
            Ok::<_, DbError>(())
        })
        .await
        .unwrap();

        assert_eq!(purge(&db, now).await.unwrap(), 2);
        let left = db
            .read(|c| {
                let mut stmt = c.prepare("SELECT event_id FROM saga_events ORDER BY event_id")?;
                stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()
            })
            .await
            .unwrap();
        assert_eq!(left, ["known-recent", "stranger-recent"]);
    }
}
