//! svc-payment's configuration: flags with environment fallbacks, read once in `main`.

use std::{net::SocketAddr, time::Duration};

use common::Won;

use crate::gateway::{DeclineRate, Gateway};

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "svc-payment", about = "msa-shop simulated payment gateway")]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8084")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub common: common::config::CommonConfig,
    /// Largest amount one payment may have, in won; above it the gateway declines with
    /// LIMIT_EXCEEDED (an amount equal to it passes).
    #[arg(long, env = "PAYMENT_LIMIT", default_value_t = Gateway::DEFAULT_LIMIT.0,
          value_parser = clap::value_parser!(i64).range(0..))]
    pub payment_limit: i64,
    /// Share of orders the gateway declines with DECLINED, in basis points (0..=10000; 250 = 2.5 %).
    /// Which orders is decided by --decline-seed and the order id alone.
    #[arg(long, env = "DECLINE_RATE_BPS", default_value = "0")]
    pub decline_rate_bps: DeclineRate,
    /// Seed of the decline draw: the same seed declines the same orders on every run.
    #[arg(long, env = "DECLINE_SEED", default_value_t = 0)]
    pub decline_seed: u64,
    /// Simulated gateway latency per charge, in milliseconds (at most 1000). For demos: the charge
    /// holds the payment database's writer while it waits, so it must stay well below the 5 s
    /// busy timeout other writers (cancels, the relay) wait for it.
    #[arg(long, env = "GATEWAY_LATENCY_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub latency_ms: u64,
}

impl Config {
    /// The gateway these settings describe.
    pub fn gateway(&self) -> Gateway {
        Gateway::new(Won(self.payment_limit), self.decline_rate_bps, self.decline_seed)
            .with_latency(Duration::from_millis(self.latency_ms))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_defaults_are_a_lenient_instant_gateway_on_8084() {
        let config = Config::parse_from(["svc-payment"]);
        assert_eq!(config.http_addr.port(), 8084);
        assert_eq!(config.gateway(), Gateway::new(Won(1_000_000), DeclineRate::NEVER, 0));
    }

    #[test]
    fn gateway_flags_are_read() {
        let config = Config::parse_from([
            "svc-payment",
            "--payment-limit",
            "5000",
            "--decline-rate-bps",
            "10000",
            "--decline-seed",
            "7",
            "--latency-ms",
            "30",
        ]);
        let expected = Gateway::new(Won(5_000), DeclineRate::ALWAYS, 7).with_latency(Duration::from_millis(30));
        assert_eq!(config.gateway(), expected);
    }

    #[test]
    fn out_of_range_gateway_flags_are_refused() {
        let bad = [
            ["--decline-rate-bps", "10001"],
            ["--payment-limit", "-1"],
            ["--decline-seed", "-1"],
            ["--latency-ms", "1001"],
        ];
        for args in bad {
            assert!(Config::try_parse_from(std::iter::once("svc-payment").chain(args)).is_err(), "{args:?}");
        }
    }
}
