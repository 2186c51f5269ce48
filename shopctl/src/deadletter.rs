//! `shopctl dead-letter list|replay`: see what a service refused, and send it again once the cause
//! is fixed (a bug redeployed, a missing product restocked, an outage over).
//!
//! A replay publishes the stored payload on its subject under a fresh `Nats-Msg-Id` (the original
//! id may still be inside JetStream's dedupe window). Every consumer of that subject receives it;
//! those that applied the event before skip it by its envelope id, so a replay is always safe.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use async_nats::jetstream::{self, message::PublishMessage};
use rusqlite::{Connection, OpenFlags, params};

/// One refused message.
#[derive(Debug)]
struct DeadLetter {
    seq: i64,
    consumer: String,
    subject: String,
    message_id: Option<String>,
    deliveries: i64,
    reason: String,
    payload: Vec<u8>,
    replayed_at: Option<i64>,
}

pub fn list(service: &str, db: &Path) -> Result<ExitCode> {
    let conn = open(db)?;
    let letters = load(&conn, None)?;
    if letters.is_empty() {
        println!("{service} has no dead letters");
    }
    for d in &letters {
        let replayed = if d.replayed_at.is_some() { " (replayed)" } else { "" };
        println!(
            "#{} [{}] {} msg-id={} after {} deliveries{replayed}\n    {}",
            d.seq,
            d.consumer,
            d.subject,
            d.message_id.as_deref().unwrap_or("-"),
            d.deliveries,
            d.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-publishes the dead letters `seqs` (all not yet replayed when empty) and marks them replayed.
pub fn replay(service: &str, db: &Path, nats_url: &str, seqs: &[i64]) -> Result<ExitCode> {
    let conn = open(db)?;
    let letters = load(&conn, Some(seqs))?;
    if letters.is_empty() {
        bail!("nothing to replay for {service}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let operator = crate::credentials::Credentials::operator();
        let js = jetstream::new(common::bus::connect(nats_url, "shopctl", &operator).await?);
        for d in &letters {
            let msg_id = format!("replay-{service}-{}-{}", d.seq, common::db::now_ms());
            let msg = PublishMessage::build().payload(d.payload.clone().into()).message_id(&msg_id);
            let ack = js.send_publish(d.subject.clone(), msg).await?.await.with_context(|| {
                format!("publishing dead letter #{} on {} (is NATS up at {nats_url}?)", d.seq, d.subject)
            })?;
            conn.execute(
                "UPDATE dead_letter SET replayed_at = ?1 WHERE seq = ?2",
                params![common::db::now_ms(), d.seq],
            )?;
            println!("#{} replayed on {} as stream message {}", d.seq, d.subject, ack.sequence);
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn open(db: &Path) -> Result<Connection> {
    if !db.exists() {
        bail!("{} does not exist: wrong service name or data directory?", db.display());
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// The dead letters `seqs`, or all not yet replayed when `seqs` is empty, or all when `None`.
fn load(conn: &Connection, seqs: Option<&[i64]>) -> Result<Vec<DeadLetter>> {
    let mut stmt = conn.prepare(
        "SELECT seq, consumer, subject, message_id, deliveries, reason, payload, replayed_at
         FROM dead_letter ORDER BY seq",
    )?;
    let all = stmt
        .query_map([], |r| {
            Ok(DeadLetter {
                seq: r.get(0)?,
                consumer: r.get(1)?,
                subject: r.get(2)?,
                message_id: r.get(3)?,
                deliveries: r.get(4)?,
                reason: r.get(5)?,
                payload: r.get(6)?,
                replayed_at: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(match seqs {
        None => all,
        Some([]) => all.into_iter().filter(|d| d.replayed_at.is_none()).collect(),
        Some(seqs) => {
            if let Some(missing) = seqs.iter().find(|s| !all.iter().any(|d| d.seq == **s)) {
                bail!("no dead letter #{missing}");
            }
            all.into_iter().filter(|d| seqs.contains(&d.seq)).collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../../common/migrations/0001_plumbing.sql")).unwrap();
        for (seq, replayed) in [(1, None), (2, Some(5_i64)), (3, None)] {
            conn.execute(
                "INSERT INTO dead_letter (seq, consumer, subject, stream_seq, deliveries, reason, payload, created_at, replayed_at)
                 VALUES (?1, 'svc-x', 'order.created.x', ?1, 1, 'malformed', x'7b7d', 0, ?2)",
                params![seq, replayed],
            )
            .unwrap();
        }
        conn
    }

    fn seqs(letters: Vec<DeadLetter>) -> Vec<i64> {
        letters.iter().map(|d| d.seq).collect()
    }

    #[test]
    fn replay_without_numbers_takes_every_letter_not_replayed_yet() {
        assert_eq!(seqs(load(&letters(), Some(&[])).unwrap()), [1, 3]);
    }

    #[test]
    fn named_letters_are_taken_even_if_replayed_before() {
        assert_eq!(seqs(load(&letters(), Some(&[2, 3])).unwrap()), [2, 3]);
    }

    #[test]
    fn an_unknown_number_is_an_error() {
        assert!(load(&letters(), Some(&[9])).is_err());
    }

    #[test]
    fn list_shows_everything() {
        assert_eq!(seqs(load(&letters(), None).unwrap()), [1, 2, 3]);
    }
}
