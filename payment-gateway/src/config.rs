//! The gateway's configuration: flags with environment fallbacks, read once in `main`.

use std::{net::SocketAddr, path::PathBuf};

use common::Won;

use crate::{
    faults::FaultSettings,
    rules::{DeclineRate, Rules},
};

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "payment-gateway", about = "msa-shop simulated payment gateway (PG)")]
pub struct Config {
    /// Address the HTTP API listens on (port 0 picks a free one).
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8090")]
    pub http_addr: SocketAddr,
    /// Directory of the database file `payment-gateway.db`; created if missing.
    #[arg(long, env = "DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,
    /// Largest amount one charge may have, in won; above it the charge is DECLINED with
    /// LIMIT_EXCEEDED (an amount equal to it passes).
    #[arg(long, env = "PAYMENT_LIMIT", default_value_t = Rules::DEFAULT_LIMIT.0,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub payment_limit: i64,
    /// Share of orders declined with DECLINED, in basis points (0..=10000; 250 = 2.5 %). Which
    /// orders is decided by --decline-seed and the order id (the charge's reference) alone.
    #[arg(long, env = "DECLINE_RATE_BPS", default_value = "0")]
    pub decline_rate_bps: DeclineRate,
    /// Seed of the decline draw: the same seed declines the same orders on every run.
    #[arg(long, env = "DECLINE_SEED", default_value_t = 0)]
    pub decline_seed: u64,
    /// Simulated latency of every charge and refund, in milliseconds (at most 60000).
    #[arg(long, env = "GATEWAY_LATENCY_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(..=FaultSettings::MAX_LATENCY_MS))]
    pub latency_ms: u64,
    /// Share of charges and refunds refused with 503 before doing anything, in basis points.
    #[arg(long, env = "GATEWAY_FAIL_BPS", default_value_t = 0, value_parser = bps())]
    pub fail_bps: u16,
    /// Share of charges and refunds that hang for --hang-ms, then answer 504 without doing anything.
    #[arg(long, env = "GATEWAY_TIMEOUT_BPS", default_value_t = 0, value_parser = bps())]
    pub timeout_bps: u16,
    /// Share of charges and refunds that take effect, then hang for --hang-ms and answer 504.
    #[arg(long, env = "GATEWAY_LOSE_ANSWER_BPS", default_value_t = 0, value_parser = bps())]
    pub lose_answer_bps: u16,
    /// Start down: every charge and refund is refused with 503 until PUT /v1/faults says otherwise.
    #[arg(long, env = "GATEWAY_DOWN", default_value_t = false)]
    pub down: bool,
    /// How long a timeout or a lost answer holds the response before the 504, in milliseconds (at
    /// most 120000).
    #[arg(long, env = "GATEWAY_HANG_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(..=FaultSettings::MAX_HANG_MS))]
    pub hang_ms: u64,
}

fn bps() -> clap::builder::RangedI64ValueParser<u16> {
    clap::value_parser!(u16).range(..=i64::from(crate::rules::BPS_SCALE))
}

impl Config {
    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(format!("{}.db", crate::SERVICE))
    }

    /// The verdict rules these settings describe.
    pub fn rules(&self) -> Rules {
        Rules::new(Won(self.payment_limit), self.decline_rate_bps, self.decline_seed)
    }

    /// The faults the gateway starts with.
    pub fn faults(&self) -> FaultSettings {
        FaultSettings {
            latency_ms: self.latency_ms,
            fail_bps: self.fail_bps,
            timeout_bps: self.timeout_bps,
            lose_answer_bps: self.lose_answer_bps,
            down: self.down,
            hang_ms: self.hang_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("payment-gateway").chain(args.iter().copied()))
    }

    #[test]
    fn the_defaults_are_a_lenient_healthy_gateway_on_8090() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.http_addr, "127.0.0.1:8090".parse().unwrap());
        assert_eq!(config.db_path(), PathBuf::from(".data/payment-gateway.db"));
        assert_eq!(config.rules(), Rules::new(Won(1_000_000), DeclineRate::NEVER, 0));
        let healthy = FaultSettings {
            latency_ms: 0,
            fail_bps: 0,
            timeout_bps: 0,
            lose_answer_bps: 0,
            down: false,
            hang_ms: 10_000,
        };
        assert_eq!(config.faults(), healthy);
    }

    #[test]
    fn every_flag_is_read() {
        let config = parse(&[
            "--http-addr=127.0.0.1:0",
            "--data-dir=/tmp/pg",
            "--payment-limit=5000",
            "--decline-rate-bps=10000",
            "--decline-seed=7",
            "--latency-ms=60000",
            "--fail-bps=1",
            "--timeout-bps=2",
            "--lose-answer-bps=10000",
            "--down",
            "--hang-ms=120000",
        ])
        .unwrap();
        assert_eq!(config.db_path(), PathBuf::from("/tmp/pg/payment-gateway.db"));
        assert_eq!(config.rules(), Rules::new(Won(5_000), DeclineRate::ALWAYS, 7));
        let expected = FaultSettings {
            latency_ms: 60_000,
            fail_bps: 1,
            timeout_bps: 2,
            lose_answer_bps: 10_000,
            down: true,
            hang_ms: 120_000,
        };
        assert_eq!(config.faults(), expected);
    }

    #[test]
    fn out_of_range_flags_are_refused() {
        for bad in [
            "--payment-limit=-1",
            "--decline-rate-bps=10001",
            "--decline-seed=-1",
            "--latency-ms=60001",
            "--fail-bps=10001",
            "--timeout-bps=10001",
            "--lose-answer-bps=10001",
            "--hang-ms=120001",
            "--http-addr=nowhere",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad} was accepted");
        }
    }
}
