//! svc-order's configuration: flags with environment fallbacks, read once in `main`.

use std::net::SocketAddr;

use common::config::CommonConfig;

/// Everything svc-order is told at start-up.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "svc-order", version, about = "msa-shop orders: takes orders and follows their saga")]
pub struct Config {
    /// Address the HTTP API listens on (port 0 picks a free one).
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8083")]
    pub http_addr: SocketAddr,

    #[command(flatten)]
    pub common: CommonConfig,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_defaults_need_no_arguments() {
        let config = Config::try_parse_from(["svc-order"]).unwrap();
        assert_eq!(config.http_addr.port(), 8083);
    }
}
