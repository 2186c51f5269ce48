//! Comparing the rebuilt ledger with the live one, row by row.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

use anyhow::Context;
use jiff::civil::Date;
use rusqlite::{Connection, OpenFlags};
use uuid::Uuid;

use super::Difference;
use crate::{
    domain::{Figures, Rules},
    store::{self, ledger::Filter},
};

/// Every (day, seller, category) row and closed day of the two files, compared.
pub fn compare(live: &Path, rebuilt: &Path, rules: &Rules) -> anyhow::Result<Vec<Difference>> {
    let (live_rows, live_closed) = if live.exists() { ledger_figures(live, rules)? } else { Default::default() };
    let (rebuilt_rows, rebuilt_closed) = ledger_figures(rebuilt, rules)?;
    let mut differences = Vec::new();
    let keys: BTreeSet<_> = live_rows.keys().chain(rebuilt_rows.keys()).cloned().collect();
    for key in keys {
        let (l, r) = (live_rows.get(&key).copied(), rebuilt_rows.get(&key).copied());
        if l != r {
            let (date, seller_id, category) = key;
            differences.push(Difference::Figures { date: date.to_string(), seller_id, category, live: l, rebuilt: r });
        }
    }
    for date in live_closed.symmetric_difference(&rebuilt_closed) {
        differences.push(Difference::Closed {
            date: date.to_string(),
            live: live_closed.contains(date),
            rebuilt: rebuilt_closed.contains(date),
        });
    }
    Ok(differences)
}

type Rows = BTreeMap<(Date, Uuid, String), Figures>;

/// A ledger file's settled rows (closed days at their own rate) and its closed days.
fn ledger_figures(path: &Path, rules: &Rules) -> anyhow::Result<(Rows, BTreeSet<Date>)> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let groups = store::ledger::day_groups(&conn, &Filter::default())?;
    let rates = store::days::all_close_rates(&conn)?;
    let rate_of = |d: &Date| rates.get(d).copied().unwrap_or(rules.fee_rate);
    let mut rows = Rows::new();
    for g in groups {
        let figures = Figures::settle(g.sums, rate_of(&g.date))?;
        rows.insert((g.date, g.seller_id, g.category), figures);
    }
    Ok((rows, rates.into_keys().collect()))
}
