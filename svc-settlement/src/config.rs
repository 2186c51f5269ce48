//! svc-settlement's configuration: flags with environment fallbacks, read once in `main`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::domain::{Calendar, FeeRate, Rules};

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "svc-settlement", about = "msa-shop settlement: sales ledger, daily close, seller payouts")]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8085")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub common: common::config::CommonConfig,
    /// IANA time zone whose local dates are the business days (bundled tz database).
    #[arg(long, env = "TIME_ZONE", default_value = "Asia/Seoul")]
    pub time_zone: Calendar,
    /// Platform fee in basis points (0..=10000; 300 = 3 %), charged per business day, seller and
    /// category on a positive net, rounded down to the won.
    #[arg(long, env = "FEE_RATE_BPS", default_value = "300")]
    pub fee_rate_bps: FeeRate,
    /// How long after a business day ends the scheduler closes it, in seconds.
    #[arg(long, env = "CLOSE_GRACE_SECS", default_value_t = 3600)]
    pub close_grace_secs: u32,
    /// How often the scheduler looks for days to close, in seconds.
    #[arg(long, env = "CLOSE_TICK_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub close_tick_secs: u64,
}

impl Config {
    /// The booking and fee rules these settings describe.
    pub fn rules(&self) -> Rules {
        Rules { calendar: self.time_zone.clone(), fee_rate: self.fee_rate_bps }
    }

    pub fn close_grace(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(i64::from(self.close_grace_secs))
    }

    pub fn close_tick(&self) -> Duration {
        Duration::from_secs(self.close_tick_secs)
    }

    /// The live database file.
    pub fn db_path(&self) -> PathBuf {
        self.common.db_path(crate::SERVICE)
    }

    /// Where [`crate::rebuild`] builds a fresh ledger: `<data_dir>/svc-settlement.rebuild.db`.
    pub fn rebuild_db_path(&self) -> PathBuf {
        self.common.data_dir.join(format!("{}.rebuild.db", crate::SERVICE))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_defaults_are_seoul_three_percent_an_hour_of_grace_and_a_minute_tick_on_8085() {
        let config = Config::parse_from(["svc-settlement"]);
        assert_eq!(config.http_addr.port(), 8085);
        assert_eq!(
            config.rules(),
            Rules { calendar: Calendar::new("Asia/Seoul").unwrap(), fee_rate: FeeRate::DEFAULT }
        );
        assert_eq!((config.close_grace_secs, config.close_tick()), (3600, Duration::from_secs(60)));
    }

    #[test]
    fn settlement_flags_are_read() {
        let config = Config::parse_from([
            "svc-settlement",
            "--time-zone",
            "UTC",
            "--fee-rate-bps",
            "250",
            "--close-grace-secs",
            "0",
            "--close-tick-secs",
            "1",
        ]);
        assert_eq!((config.rules().calendar.name(), config.rules().fee_rate.bps()), ("UTC", 250));
        assert_eq!((config.close_grace(), config.close_tick()), (jiff::SignedDuration::ZERO, Duration::from_secs(1)));
    }

    #[test]
    fn nonsense_settings_are_refused_at_start_up() {
        for args in [
            ["--time-zone", "Asia/Atlantis"],
            ["--fee-rate-bps", "10001"],
            ["--close-grace-secs", "-1"],
            ["--close-tick-secs", "0"],
        ] {
            assert!(Config::try_parse_from(std::iter::once("svc-settlement").chain(args)).is_err(), "{args:?}");
        }
    }
}
