//! The settings a rebuild keeps the ledger by: the ledger's own time zone, never just whatever
//! the shell running it has.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::domain::{Calendar, Rules};

/// The time zone the live ledger pinned at its first start (`ledger_settings`), if the file exists.
pub fn live_time_zone(live: &Path) -> anyhow::Result<Option<String>> {
    if !live.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(live, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {}", live.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let zone = conn
        .query_row("SELECT value FROM ledger_settings WHERE name = 'time_zone'", [], |r| r.get(0))
        .optional()
        .with_context(|| format!("reading the time zone of {}", live.display()))?;
    Ok(zone)
}

/// The rules the rebuild runs with: `configured` (`TIME_ZONE` and `FEE_RATE_BPS` as the service
/// reads them), once its time zone is checked against the ledger's: the live database's pinned
/// zone or, without one (the database is lost), the zone of the first published close. Refuses a
/// disagreement, as the service refuses to start: every business date would mean another day.
pub fn ledger_rules(configured: Rules, live: Option<&str>, first_close: Option<&str>) -> anyhow::Result<Rules> {
    let (zone, source) = match (live, first_close) {
        (Some(zone), _) => (zone, "the live database"),
        (None, Some(zone)) => (zone, "the first settlement.closed"),
        (None, None) => return Ok(configured),
    };
    let ledger = Calendar::new(zone).with_context(|| format!("the time zone of {source}"))?;
    if ledger != configured.calendar {
        bail!(
            "this ledger keeps business days in time zone {} (from {source}), but TIME_ZONE is {}; \
             run the rebuild with TIME_ZONE={}",
            ledger.name(),
            configured.calendar.name(),
            ledger.name()
        );
    }
    Ok(configured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FeeRate;

    fn configured(zone: &str) -> Rules {
        Rules { calendar: zone.parse().unwrap(), fee_rate: FeeRate::DEFAULT }
    }

    #[test]
    fn the_live_databases_time_zone_comes_first_then_the_first_close() {
        assert_eq!(ledger_rules(configured("UTC"), Some("UTC"), Some("Asia/Seoul")).unwrap(), configured("UTC"));
        let err = ledger_rules(configured("Asia/Seoul"), Some("UTC"), Some("Asia/Seoul")).unwrap_err().to_string();
        assert!(err.contains("time zone UTC (from the live database), but TIME_ZONE is Asia/Seoul"), "{err}");
        let err = ledger_rules(configured("Asia/Seoul"), None, Some("UTC")).unwrap_err().to_string();
        assert!(err.contains("time zone UTC (from the first settlement.closed)"), "{err}");
    }

    #[test]
    fn a_ledger_with_no_database_and_no_close_takes_the_configured_time_zone() {
        assert_eq!(ledger_rules(configured("Europe/Paris"), None, None).unwrap(), configured("Europe/Paris"));
    }
}
