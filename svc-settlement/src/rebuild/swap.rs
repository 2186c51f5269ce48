//! Replacing the live database file with the rebuilt one.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use common::db::now_ms;
use rusqlite::Connection;

/// Checks that the live database may be replaced: no other connection holds it (svc-settlement
/// is stopped) and its outbox has published everything. Run before the replay, so a swap that
/// cannot happen fails at once, and again by [`swap`] right before the files move.
pub fn check_live(live: &Path) -> anyhow::Result<()> {
    if !live.exists() {
        return Ok(());
    }
    let unpublished: i64 =
        Connection::open(live)?
            .query_row("SELECT count(*) FROM outbox WHERE published_at IS NULL", [], |r| r.get(0))?;
    if unpublished > 0 {
        bail!(
            "not swapping: the live outbox still holds {unpublished} unpublished events; start svc-settlement with NATS reachable first"
        );
    }
    // Leaving WAL mode needs the only connection: proof that the service is stopped, and it
    // folds the live WAL into the file we keep.
    if !leave_wal_within(live, Duration::from_secs(2)).unwrap_or(false) {
        bail!("not swapping: {} is in use; stop svc-settlement first", live.display());
    }
    Ok(())
}

/// Moves the live file aside and the rebuilt file into its place, after [`check_live`].
pub fn swap(live: &Path, rebuilt: &Path) -> anyhow::Result<Option<PathBuf>> {
    // A pool closes its connections in the background: give them a moment to go.
    if !leave_wal_within(rebuilt, Duration::from_secs(10))? {
        bail!("the rebuild database is still open");
    }
    check_live(live)?;
    let replaced = if live.exists() {
        let backup = live.with_extension(format!("db.replaced-{}", now_ms()));
        std::fs::rename(live, &backup)?;
        Some(backup)
    } else {
        None
    };
    for sidecar in [wal_path(live, "-wal"), wal_path(live, "-shm")] {
        if sidecar.exists() {
            std::fs::remove_file(sidecar)?;
        }
    }
    std::fs::rename(rebuilt, live)?;
    Ok(replaced)
}

/// [`leave_wal`], retried until `patience` runs out.
pub fn leave_wal_within(path: &Path, patience: Duration) -> anyhow::Result<bool> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if leave_wal(path)? {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Switches `path` from WAL to rollback journaling: a self-contained single file. Returns false
/// while another connection has it open.
fn leave_wal(path: &Path) -> anyhow::Result<bool> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_millis(200))?;
    let mode: String = match conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0)) {
        Ok(mode) => mode,
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    Ok(mode.eq_ignore_ascii_case("delete"))
}

/// Deletes a database file and its WAL sidecars, if present.
pub fn remove_database(path: &Path) -> anyhow::Result<()> {
    for p in [path.to_path_buf(), wal_path(path, "-wal"), wal_path(path, "-shm")] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", p.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn wal_path(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_files_sit_next_to_the_database() {
        assert_eq!(wal_path(Path::new("/d/svc-settlement.db"), "-wal"), PathBuf::from("/d/svc-settlement.db-wal"));
    }
}
