//! `shopctl outbox republish`: hand a service's already-published events back to its relay.
//!
//! Published outbox rows are kept for `common::outbox::RETENTION` so that events can be sent again
//! after the stream lost them (a restored or rebuilt JetStream, a consumer that was gone longer than
//! the stream keeps messages). Re-sending is always safe: every consumer applies an event id once.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Marks `service`'s published events created at or after `since` (RFC 3339; all kept ones when
/// `None`) as unpublished. The service's relay picks them up on its next poll tick (1 s) if it
/// runs, or at its next start.
pub fn republish(service: &str, db: &Path, since: Option<&str>) -> Result<ExitCode> {
    let since_ms = match since {
        Some(text) => {
            let at =
                OffsetDateTime::parse(text, &Rfc3339).with_context(|| format!("--since {text:?} is not RFC 3339"))?;
            i64::try_from(at.unix_timestamp_nanos() / 1_000_000).context("--since is out of range")?
        }
        None => 0,
    };
    let count = reset(db, since_ms)?;
    println!("{count} event(s) of {service} queued to be published again (from {})", db.display());
    Ok(ExitCode::SUCCESS)
}

fn reset(db: &Path, since_ms: i64) -> Result<usize> {
    if !db.exists() {
        bail!("{} does not exist: wrong service name or data directory?", db.display());
    }
    // Never create a database here, and wait for the service's own writers instead of failing.
    let mut conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let count = common::outbox::republish_since(&tx, since_ms)?;
    tx.commit()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn outbox_with(rows: &[(i64, Option<i64>)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("svc-test.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(include_str!("../../common/migrations/0001_plumbing.sql")).unwrap();
        for (i, (created, published)) in rows.iter().enumerate() {
            conn.execute(
                "INSERT INTO outbox (id, subject, payload, created_at, published_at) VALUES (?1, 's', x'', ?2, ?3)",
                rusqlite::params![i.to_string(), created, published],
            )
            .unwrap();
        }
        (dir, db)
    }

    fn unpublished(db: &Path) -> i64 {
        Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM outbox WHERE published_at IS NULL", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn published_rows_since_the_cutoff_are_queued_again() {
        let (_dir, db) = outbox_with(&[(100, Some(150)), (200, Some(250)), (300, None)]);
        assert_eq!(reset(&db, 200).unwrap(), 1, "only the published row created at or after 200");
        assert_eq!(unpublished(&db), 2);
        assert_eq!(reset(&db, 0).unwrap(), 1, "the rest");
        assert_eq!(unpublished(&db), 3);
    }

    #[test]
    fn a_missing_database_is_an_error_not_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nope.db");
        assert!(reset(&db, 0).is_err());
        assert!(!db.exists());
    }
}
