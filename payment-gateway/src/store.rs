//! The ledger's SQL: small synchronous functions on a `&Connection` or the caller's `&Transaction`,
//! and the rows they read and write (which are also the wire bodies: the ledger is what a PG shows).

use common::{
    PaymentMethod, Won,
    db::{parsed_at, uuid_at},
    event::PaymentDecline,
};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use uuid::Uuid;

/// What became of a charge key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargeStatus {
    Succeeded,
    Declined,
    /// A refund reached the key first: nothing is ever charged under it.
    Voided,
}

impl ChargeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Succeeded => "SUCCEEDED",
            ChargeStatus::Declined => "DECLINED",
            ChargeStatus::Voided => "VOIDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ChargeStatus::Succeeded, ChargeStatus::Declined, ChargeStatus::Voided].into_iter().find(|c| c.as_str() == s)
    }
}

/// What a refund did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatus {
    Refunded,
    NothingToRefund,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Refunded => "REFUNDED",
            RefundStatus::NothingToRefund => "NOTHING_TO_REFUND",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [RefundStatus::Refunded, RefundStatus::NothingToRefund].into_iter().find(|r| r.as_str() == s)
    }
}

/// What a charge call asks for; its key's stored charge must match it for a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    pub reference: Uuid,
    pub amount: Won,
    pub method: PaymentMethod,
}

/// A charge (SUCCEEDED or DECLINED) under its key. A VOIDED key is not a `Charge`: see
/// [`KeyState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    pub id: Uuid,
    pub key: String,
    pub reference: Uuid,
    pub amount: Won,
    pub method: PaymentMethod,
    pub status: ChargeStatus,
    pub decline_code: Option<PaymentDecline>,
    /// Won given back by a refund: 0 or the whole amount.
    pub refunded: Won,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl Charge {
    pub fn request(&self) -> ChargeRequest {
        ChargeRequest { reference: self.reference, amount: self.amount, method: self.method }
    }
}

/// What a charge key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    Charged(Charge),
    /// Voided by a refund at this time (unix ms) before any charge came.
    Voided {
        at: i64,
    },
}

/// A refund under its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub id: Uuid,
    pub key: String,
    pub charge_key: String,
    pub charge_id: Option<Uuid>,
    pub amount: Won,
    pub status: RefundStatus,
    /// Unix milliseconds.
    pub created_at: i64,
}

const CHARGE_COLUMNS: &str = "c.seq, c.id, c.key, c.reference, c.amount, c.method, c.status, c.decline_code, \
     coalesce((SELECT r.amount FROM refunds r WHERE r.charge_key = c.key AND r.status = 'REFUNDED'), 0), \
     c.created_at";

/// Records `charge` unless its key exists already: `false` then, and nothing is written. The
/// key's UNIQUE constraint decides, so concurrent calls with one key charge once.
pub fn insert_charge(tx: &Transaction<'_>, charge: &Charge) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT INTO charges (key, id, reference, amount, method, status, decline_code, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (key) DO NOTHING",
        )?
        .execute(params![
            charge.key,
            charge.id.to_string(),
            charge.reference.to_string(),
            charge.amount.0,
            charge.method.as_str(),
            charge.status.as_str(),
            charge.decline_code.map(PaymentDecline::as_str),
            charge.created_at,
        ])?;
    Ok(n == 1)
}

/// Voids `key` unless it exists already (`false` then): no charge will ever be made under it.
pub fn insert_void(tx: &Transaction<'_>, key: &str, at: i64) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT INTO charges (key, status, created_at) VALUES (?1, 'VOIDED', ?2) ON CONFLICT (key) DO NOTHING",
        )?
        .execute(params![key, at])?;
    Ok(n == 1)
}

/// What the charge key `key` holds, if anything.
pub fn find_key(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyState>> {
    conn.prepare_cached(&format!("SELECT {CHARGE_COLUMNS} FROM charges c WHERE c.key = ?1"))?
        .query_row([key], key_state)
        .optional()
}

/// Up to `limit` charges after ledger position `after`, in insertion order, with their positions.
/// VOIDED keys are not charges and are skipped.
pub fn list_charges(conn: &Connection, after: i64, limit: u32) -> rusqlite::Result<Vec<(i64, Charge)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHARGE_COLUMNS} FROM charges c WHERE c.seq > ?1 AND c.status <> 'VOIDED' ORDER BY c.seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after, limit], |row| Ok((row.get(0)?, charge(row)?)))?;
    rows.collect()
}

/// Records `refund` unless its key exists already (`false` then). A second REFUNDED row for one
/// charge violates `refunds_one_per_charge`: an error, never a double refund.
pub fn insert_refund(tx: &Transaction<'_>, refund: &Refund) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT INTO refunds (id, key, charge_key, charge_id, amount, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (key) DO NOTHING",
        )?
        .execute(params![
            refund.id.to_string(),
            refund.key,
            refund.charge_key,
            refund.charge_id.map(|id| id.to_string()),
            refund.amount.0,
            refund.status.as_str(),
            refund.created_at,
        ])?;
    Ok(n == 1)
}

/// The refund under the refund key `key`, if any.
pub fn find_refund(conn: &Connection, key: &str) -> rusqlite::Result<Option<Refund>> {
    conn.prepare_cached(
        "SELECT id, key, charge_key, charge_id, amount, status, created_at FROM refunds WHERE key = ?1",
    )?
    .query_row([key], |row| {
        Ok(Refund {
            id: uuid_at(row, 0)?,
            key: row.get(1)?,
            charge_key: row.get(2)?,
            charge_id: match row.get_ref(3)?.as_str_or_null()? {
                None => None,
                Some(_) => Some(uuid_at(row, 3)?),
            },
            amount: Won(row.get(4)?),
            status: parsed_at(row, 5, RefundStatus::parse)?,
            created_at: row.get(6)?,
        })
    })
    .optional()
}

fn key_state(row: &Row<'_>) -> rusqlite::Result<KeyState> {
    if parsed_at(row, 6, ChargeStatus::parse)? == ChargeStatus::Voided {
        return Ok(KeyState::Voided { at: row.get(9)? });
    }
    charge(row).map(KeyState::Charged)
}

/// A non-VOIDED row of [`CHARGE_COLUMNS`] (the CHECK constraints guarantee its columns are set).
fn charge(row: &Row<'_>) -> rusqlite::Result<Charge> {
    Ok(Charge {
        id: uuid_at(row, 1)?,
        key: row.get(2)?,
        reference: uuid_at(row, 3)?,
        amount: Won(row.get(4)?),
        method: parsed_at(row, 5, PaymentMethod::parse)?,
        status: parsed_at(row, 6, ChargeStatus::parse)?,
        decline_code: match row.get_ref(7)?.as_str_or_null()? {
            None => None,
            Some(_) => Some(parsed_at(row, 7, PaymentDecline::parse)?),
        },
        refunded: Won(row.get(8)?),
        created_at: row.get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(crate::app::MIGRATIONS[0]).unwrap();
        tx.commit().unwrap();
        conn
    }

    fn succeeded(key: &str) -> Charge {
        Charge {
            id: Uuid::now_v7(),
            key: key.into(),
            reference: Uuid::now_v7(),
            amount: Won(5_000),
            method: PaymentMethod::Card,
            status: ChargeStatus::Succeeded,
            decline_code: None,
            refunded: Won(0),
            created_at: 1,
        }
    }

    fn refund(key: &str, charge: &Charge) -> Refund {
        Refund {
            id: Uuid::now_v7(),
            key: key.into(),
            charge_key: charge.key.clone(),
            charge_id: Some(charge.id),
            amount: charge.amount,
            status: RefundStatus::Refunded,
            created_at: 2,
        }
    }

    #[test]
    fn a_key_holds_one_charge_and_reads_back_as_written() {
        let mut conn = ledger();
        let tx = conn.transaction().unwrap();
        let first = succeeded("k-1");
        assert!(insert_charge(&tx, &first).unwrap());
        assert!(!insert_charge(&tx, &succeeded("k-1")).unwrap(), "the key is taken");
        assert!(!insert_void(&tx, "k-1", 3).unwrap(), "a charged key cannot be voided");
        assert_eq!(find_key(&tx, "k-1").unwrap(), Some(KeyState::Charged(first)));
    }

    #[test]
    fn a_charge_is_refunded_at_most_once_whatever_the_refund_key() {
        let mut conn = ledger();
        let tx = conn.transaction().unwrap();
        let charge = succeeded("k-1");
        insert_charge(&tx, &charge).unwrap();
        assert!(insert_refund(&tx, &refund("r-1", &charge)).unwrap());
        assert!(insert_refund(&tx, &refund("r-2", &charge)).is_err(), "the schema refuses a second refund");
        let Some(KeyState::Charged(read)) = find_key(&tx, "k-1").unwrap() else { panic!("no charge") };
        assert_eq!(read.refunded, Won(5_000));
    }

    #[test]
    fn voided_keys_are_not_listed() {
        let mut conn = ledger();
        let tx = conn.transaction().unwrap();
        insert_void(&tx, "v-1", 1).unwrap();
        insert_charge(&tx, &succeeded("k-1")).unwrap();
        assert_eq!(find_key(&tx, "v-1").unwrap(), Some(KeyState::Voided { at: 1 }));
        let listed: Vec<String> = list_charges(&tx, 0, 10).unwrap().into_iter().map(|(_, c)| c.key).collect();
        assert_eq!(listed, ["k-1"]);
    }
}
