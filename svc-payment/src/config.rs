//! svc-payment's configuration: flags with environment fallbacks, read once in `main`.

use std::{net::SocketAddr, time::Duration};

use crate::gateway::{BreakerSettings, Gateway};

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "svc-payment", about = "msa-shop payments: charges reserved orders through the payment gateway")]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8084")]
    pub http_addr: SocketAddr,
    #[command(flatten)]
    pub common: common::config::CommonConfig,
    /// Base URL of the payment gateway (`payment-gateway`).
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8090")]
    pub gateway_url: String,
    /// Timeout of one call to the gateway, in milliseconds.
    #[arg(long, env = "GATEWAY_TIMEOUT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub gateway_timeout_ms: u64,
    /// Further attempts of a failed gateway call before the event is retried later.
    #[arg(long, env = "GATEWAY_RETRIES", default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=10))]
    pub gateway_retries: u64,
    /// Consecutive failed gateway calls that open the circuit breaker.
    #[arg(long, env = "BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub breaker_failures: u32,
    /// How long the open breaker waits before its first probe, in milliseconds (doubles to 30 s;
    /// at least 1 s, the breaker's own floor).
    #[arg(long, env = "BREAKER_OPEN_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1000..=30_000))]
    pub breaker_open_ms: u64,
    /// This instance's shard, `K/N` (e.g. `0/2`): it charges and refunds only the orders NATS
    /// partitions to shard K of N, in a database of its own. Unset: every order (one instance,
    /// or several sharing one database). Every shard of a deployment must say the same N.
    #[arg(long, env = "PAYMENT_SHARD")]
    pub shard: Option<common::bus::Shards>,
}

impl Config {
    pub fn breaker(&self) -> BreakerSettings {
        BreakerSettings {
            timeout: Duration::from_millis(self.gateway_timeout_ms),
            retries: self.gateway_retries as usize,
            failures: self.breaker_failures,
            open_for: Duration::from_millis(self.breaker_open_ms),
        }
    }

    /// The gateway client these settings describe.
    pub fn gateway(&self) -> anyhow::Result<Gateway> {
        Gateway::new(&self.gateway_url, self.breaker())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_defaults_are_the_local_gateway_with_a_2_s_timeout_on_8084() {
        let config = Config::parse_from(["svc-payment"]);
        assert_eq!(config.http_addr.port(), 8084);
        assert_eq!(config.gateway_url, "http://127.0.0.1:8090");
        assert_eq!(config.breaker(), BreakerSettings::default());
    }

    #[test]
    fn a_shard_is_read_and_a_bad_one_refused() {
        let config = Config::parse_from(["svc-payment", "--shard", "1/2"]);
        assert_eq!(config.shard, Some(common::bus::Shards { shard: 1, of: 2 }));
        assert_eq!(Config::parse_from(["svc-payment"]).shard, None);
        assert!(Config::try_parse_from(["svc-payment", "--shard", "2/2"]).is_err());
    }

    #[test]
    fn gateway_flags_are_read() {
        let config = Config::parse_from([
            "svc-payment",
            "--gateway-url",
            "http://pg:1",
            "--gateway-timeout-ms",
            "300",
            "--gateway-retries",
            "0",
            "--breaker-failures",
            "2",
            "--breaker-open-ms",
            "1500",
        ]);
        let expected = BreakerSettings {
            timeout: Duration::from_millis(300),
            retries: 0,
            failures: 2,
            open_for: Duration::from_millis(1500),
        };
        assert_eq!((config.gateway_url.as_str(), config.breaker()), ("http://pg:1", expected));
    }

    #[test]
    fn out_of_range_gateway_flags_are_refused() {
        let bad = [
            ["--gateway-timeout-ms", "0"],
            ["--gateway-retries", "11"],
            ["--breaker-failures", "0"],
            ["--breaker-open-ms", "999"],
        ];
        for args in bad {
            assert!(Config::try_parse_from(std::iter::once("svc-payment").chain(args)).is_err(), "{args:?}");
        }
    }
}
