//! Closed days (`closed_days`) and what each seller was paid for them (`payouts`).

use std::collections::HashMap;

use common::{Won, db::DbError, event::SellerPayout};
use jiff::civil::Date;
use rusqlite::{Connection, OptionalExtension, Transaction, params, types::Type};

use super::{count_at, count_param, date_at, timestamp_at, uuid_at};
use crate::domain::{CloseRecord, FeeRate};

/// Records a close and its payouts. Fails if the day is already closed: callers check first, in
/// the same immediate transaction.
pub fn insert_close(tx: &Transaction<'_>, close: &CloseRecord) -> rusqlite::Result<()> {
    let date = close.date.to_string();
    tx.prepare_cached(
        "INSERT INTO closed_days (date, time_zone, fee_rate_bps, closed_at, event_id, ledger_entries)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        date,
        close.time_zone,
        close.fee_rate.bps(),
        close.closed_at.to_string(),
        close.event_id.to_string(),
        count_param(close.ledger_entries)?
    ])?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO payouts (date, seller_id, gross, refunds, net, fee, payout, orders)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for p in &close.payouts {
        stmt.execute(params![
            date,
            p.seller_id.to_string(),
            p.gross.0,
            p.refunds.0,
            p.net.0,
            p.fee.0,
            p.payout.0,
            p.orders
        ])?;
    }
    Ok(())
}

/// The close of `date`, if it is closed.
pub fn find_close(conn: &Connection, date: Date) -> rusqlite::Result<Option<CloseRecord>> {
    let key = date.to_string();
    let head = conn
        .prepare_cached(
            "SELECT time_zone, fee_rate_bps, closed_at, event_id, ledger_entries FROM closed_days WHERE date = ?1",
        )?
        .query_row([&key], |row| {
            let bps: u16 = row.get(1)?;
            let fee_rate = FeeRate::new(bps)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, Type::Integer, Box::new(e)))?;
            Ok((row.get::<_, String>(0)?, fee_rate, timestamp_at(row, 2)?, uuid_at(row, 3)?, count_at(row, 4)?))
        })
        .optional()?;
    let Some((time_zone, fee_rate, closed_at, event_id, ledger_entries)) = head else { return Ok(None) };
    let payouts = conn
        .prepare_cached(
            "SELECT seller_id, gross, refunds, net, fee, payout, orders FROM payouts WHERE date = ?1 ORDER BY seller_id",
        )?
        .query_map([&key], |row| {
            Ok(SellerPayout {
                seller_id: uuid_at(row, 0)?,
                gross: Won(row.get(1)?),
                refunds: Won(row.get(2)?),
                net: Won(row.get(3)?),
                fee: Won(row.get(4)?),
                payout: Won(row.get(5)?),
                orders: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(CloseRecord { date, time_zone, fee_rate, closed_at, event_id, ledger_entries, payouts }))
}

/// The latest closed day, if any: the booking rule books nothing on or before it.
pub fn latest_closed_day(conn: &Connection) -> rusqlite::Result<Option<Date>> {
    // `max()` over no rows is one NULL row.
    let latest = conn
        .prepare_cached("SELECT max(date) FROM closed_days")?
        .query_row([], |row| row.get_ref(0)?.as_str_or_null()?.map(|_| date_at(row, 0)).transpose())?;
    Ok(latest)
}

/// The fee rate each closed day in `from..=to` was settled at.
pub fn close_rates(conn: &Connection, from: Date, to: Date) -> rusqlite::Result<HashMap<Date, FeeRate>> {
    let mut stmt = conn.prepare_cached("SELECT date, fee_rate_bps FROM closed_days WHERE date BETWEEN ?1 AND ?2")?;
    stmt.query_map([from.to_string(), to.to_string()], |row| {
        let bps: u16 = row.get(1)?;
        let rate =
            FeeRate::new(bps).map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, Type::Integer, Box::new(e)))?;
        Ok((date_at(row, 0)?, rate))
    })?
    .collect()
}

/// Every closed day with its fee rate (the rebuild's comparison).
pub fn all_close_rates(conn: &Connection) -> rusqlite::Result<HashMap<Date, FeeRate>> {
    // Every stored day lies within the supported years, so this range is all of them.
    close_rates(conn, jiff::civil::date(1970, 1, 1), jiff::civil::date(9999, 12, 31))
}

/// Pins the ledger's time zone to `name` unless one is pinned already; returns the pinned one.
pub fn pin_time_zone(tx: &Transaction<'_>, name: &str) -> Result<String, DbError> {
    tx.prepare_cached("INSERT INTO ledger_settings (name, value) VALUES ('time_zone', ?1) ON CONFLICT DO NOTHING")?
        .execute([name])?;
    Ok(tx.query_row("SELECT value FROM ledger_settings WHERE name = 'time_zone'", [], |r| r.get(0))?)
}
