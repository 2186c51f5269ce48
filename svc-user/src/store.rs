//! svc-user's SQL: small synchronous functions over the caller's connection or transaction. The
//! callers open the transaction, so a user row and its outbox row commit together.

use common::{
    Role,
    db::{parsed_at, time_at, to_ms, uuid_at},
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use uuid::Uuid;

use crate::domain::{Email, PasswordHash, User};

const USER_COLUMNS: &str = "id, email, name, role, created_at";

/// Inserts `user` unless its email is taken, and says whether it did. The unique index decides
/// inside the caller's transaction, so of two concurrent sign-ups with one email exactly one wins;
/// there is no check-then-insert window.
pub fn insert_user(tx: &Transaction<'_>, user: &User, hash: &PasswordHash) -> rusqlite::Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO users (id, email, name, role, password_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (email) DO NOTHING",
        params![user.id.to_string(), user.email, user.name, user.role.as_str(), hash.as_phc(), to_ms(user.created_at)],
    )?;
    Ok(inserted == 1)
}

/// The account with `email` and its password hash: what a login checks.
pub fn find_by_email(conn: &Connection, email: &Email) -> rusqlite::Result<Option<(User, PasswordHash)>> {
    conn.prepare_cached(&format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = ?1"))?
        .query_row([email.as_str()], |row| Ok((user_from(row)?, PasswordHash::from_phc(row.get(5)?))))
        .optional()
}

/// The account with `id`, without its password hash.
pub fn find_by_id(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id.to_string()], user_from)
        .optional()
}

/// A persisted signing key as `(kid, PKCS#8 DER)`.
pub type StoredKey = (String, Vec<u8>);

// "Newest" is insertion order: `rowid` breaks ties between keys created in the same millisecond.
const NEWEST_FIRST: &str = "ORDER BY created_at DESC, rowid DESC";

/// Every key not retired yet, oldest first: the keys whose public halves belong in the bucket.
pub fn find_signing_keys_in_use(conn: &Connection) -> rusqlite::Result<Vec<StoredKey>> {
    let mut keys = conn
        .prepare_cached(&format!("SELECT kid, pkcs8_der FROM signing_keys WHERE retired_at IS NULL {NEWEST_FIRST}"))?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<Vec<StoredKey>>>()?;
    keys.reverse();
    Ok(keys)
}

/// The newest key not retired: the one to sign with.
pub fn find_active_signing_key(conn: &Connection) -> rusqlite::Result<Option<StoredKey>> {
    conn.query_row(
        &format!("SELECT kid, pkcs8_der FROM signing_keys WHERE retired_at IS NULL {NEWEST_FIRST} LIMIT 1"),
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
}

/// The newest key not retired that is newer than `kid`: a replacement someone (another instance
/// on the same file) already made for it.
pub fn find_signing_key_after(conn: &Connection, kid: &str) -> rusqlite::Result<Option<StoredKey>> {
    conn.query_row(
        &format!(
            "SELECT kid, pkcs8_der FROM signing_keys
             WHERE retired_at IS NULL
               AND (created_at, rowid) > (SELECT created_at, rowid FROM signing_keys WHERE kid = ?1)
             {NEWEST_FIRST} LIMIT 1"
        ),
        [kid],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
}

/// Persists a signing key (its private half, so the file deserves the care of a key store).
pub fn insert_signing_key(
    tx: &Transaction<'_>,
    kid: &str,
    pkcs8_der: &[u8],
    created_at_ms: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO signing_keys (kid, pkcs8_der, created_at) VALUES (?1, ?2, ?3)",
        params![kid, pkcs8_der, created_at_ms],
    )?;
    Ok(())
}

/// Marks `kid` retired, and says whether it did: false for a key that is not ours or was retired
/// already.
pub fn retire_signing_key(tx: &Transaction<'_>, kid: &str, retired_at_ms: i64) -> rusqlite::Result<bool> {
    let retired = tx.execute(
        "UPDATE signing_keys SET retired_at = ?2 WHERE kid = ?1 AND retired_at IS NULL",
        params![kid, retired_at_ms],
    )?;
    Ok(retired == 1)
}

fn user_from(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: uuid_at(row, 0)?,
        email: row.get(1)?,
        name: row.get(2)?,
        role: parsed_at(row, 3, Role::parse)?,
        created_at: time_at(row, 4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../migrations/0001_users.sql")).unwrap();
        conn
    }

    fn user(email: &str) -> User {
        User {
            id: Uuid::now_v7(),
            email: email.into(),
            name: "Kim".into(),
            role: Role::Seller,
            created_at: common::db::from_ms(1_795_000_000_123),
        }
    }

    fn hash() -> PasswordHash {
        // Any PHC string will do for storage; hashing a real one would only slow the tests.
        PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into())
    }

    #[test]
    fn a_user_reads_back_as_written() {
        let mut conn = migrated();
        let kim = user("kim@example.com");
        let tx = conn.transaction().unwrap();
        assert!(insert_user(&tx, &kim, &hash()).unwrap());
        tx.commit().unwrap();
        assert_eq!(find_by_id(&conn, kim.id).unwrap(), Some(kim.clone()));
        let (found, stored) = find_by_email(&conn, &Email::parse("kim@example.com").unwrap()).unwrap().unwrap();
        assert_eq!((found, stored), (kim, hash()));
    }

    #[test]
    fn a_second_user_with_a_taken_email_is_not_inserted() {
        let mut conn = migrated();
        let tx = conn.transaction().unwrap();
        assert!(insert_user(&tx, &user("kim@example.com"), &hash()).unwrap());
        assert!(!insert_user(&tx, &user("kim@example.com"), &hash()).unwrap());
        let n: i64 = tx.query_row("SELECT count(*) FROM users", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn the_newest_key_not_retired_is_the_active_one() {
        let mut conn = migrated();
        assert_eq!(find_active_signing_key(&conn).unwrap(), None);
        let tx = conn.transaction().unwrap();
        insert_signing_key(&tx, "old", b"old-der", 1).unwrap();
        insert_signing_key(&tx, "new", b"new-der", 2).unwrap();
        tx.commit().unwrap();
        assert_eq!(find_active_signing_key(&conn).unwrap(), Some(("new".into(), b"new-der".to_vec())));

        let tx = conn.transaction().unwrap();
        assert!(retire_signing_key(&tx, "new", 3).unwrap());
        tx.commit().unwrap();
        assert_eq!(find_active_signing_key(&conn).unwrap(), Some(("old".into(), b"old-der".to_vec())));
    }

    #[test]
    fn a_key_is_retired_once_and_unknown_keys_not_at_all() {
        let mut conn = migrated();
        let tx = conn.transaction().unwrap();
        insert_signing_key(&tx, "k", b"der", 1).unwrap();
        assert!(retire_signing_key(&tx, "k", 2).unwrap());
        assert!(!retire_signing_key(&tx, "k", 3).unwrap(), "already retired");
        assert!(!retire_signing_key(&tx, "stranger", 3).unwrap(), "not ours");
        let retired_at: i64 = tx.query_row("SELECT retired_at FROM signing_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(retired_at, 2, "the first retirement is the one recorded");
    }

    #[test]
    fn keys_in_use_are_listed_oldest_first_without_the_retired_ones() {
        let mut conn = migrated();
        let tx = conn.transaction().unwrap();
        for (kid, at) in [("a", 1), ("b", 2), ("c", 2), ("d", 4)] {
            insert_signing_key(&tx, kid, kid.as_bytes(), at).unwrap();
        }
        retire_signing_key(&tx, "b", 5).unwrap();
        tx.commit().unwrap();
        let kids: Vec<String> = find_signing_keys_in_use(&conn).unwrap().into_iter().map(|(kid, _)| kid).collect();
        assert_eq!(kids, ["a", "c", "d"]);
    }

    #[test]
    fn only_a_key_in_use_inserted_later_counts_as_a_replacement() {
        let mut conn = migrated();
        let tx = conn.transaction().unwrap();
        // "older" is inserted last but created first: age is `created_at`, then insertion order.
        for (kid, at) in [("retired", 2), ("replacement", 3), ("older", 1)] {
            insert_signing_key(&tx, kid, kid.as_bytes(), at).unwrap();
        }
        retire_signing_key(&tx, "retired", 4).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            find_signing_key_after(&conn, "retired").unwrap().map(|(kid, _)| kid).as_deref(),
            Some("replacement")
        );
        assert_eq!(find_signing_key_after(&conn, "replacement").unwrap(), None);
        assert_eq!(find_signing_key_after(&conn, "unknown").unwrap(), None);
    }
}
