//! svc-order's configuration: flags with environment fallbacks, read once in `main`.

use std::{net::SocketAddr, time::Duration};

use common::config::CommonConfig;

/// Everything svc-order is told at start-up.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "svc-order", version, about = "msa-shop orders: takes orders and follows their saga")]
pub struct Config {
    /// Address the HTTP API listens on (port 0 picks a free one).
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8083")]
    pub http_addr: SocketAddr,

    /// Seconds an order's saga may take before the order expires (`order.expired`): its stock is
    /// released and any charge refunded. The default, 10 minutes, outlasts a service restart or a
    /// broker outage by far (a healthy saga ends in well under a second) while keeping stock that
    /// a stuck saga holds off the shelf for minutes, not days.
    #[arg(long, env = "ORDER_DEADLINE_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub order_deadline_secs: u64,

    #[command(flatten)]
    pub common: CommonConfig,
}

impl Config {
    pub fn order_deadline(&self) -> Duration {
        Duration::from_secs(self.order_deadline_secs)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_defaults_need_no_arguments() {
        let config = Config::try_parse_from(["svc-order"]).unwrap();
        assert_eq!(config.http_addr.port(), 8083);
        assert_eq!(config.order_deadline(), Duration::from_secs(600));
    }

    #[test]
    fn a_deadline_of_zero_or_past_the_streams_max_age_is_refused() {
        for bad in ["0", "604801"] {
            assert!(Config::try_parse_from(["svc-order", "--order-deadline-secs", bad]).is_err(), "{bad}");
        }
    }
}
