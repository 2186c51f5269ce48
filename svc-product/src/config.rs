//! svc-product's configuration: flags with environment fallbacks, read once in `main`.

use std::net::SocketAddr;

use clap::{ArgAction, builder::BoolishValueParser};
use common::config::CommonConfig;

/// Everything svc-product can be told at start-up.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "svc-product", about = "msa-shop catalogue, stock and stock reservations")]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8082")]
    pub http_addr: SocketAddr,

    #[command(flatten)]
    pub common: CommonConfig,

    /// List the fixed demo catalogue on start if there are no products yet (see `seed`).
    /// `SEED_DEMO` accepts true/false, 1/0, yes/no, on/off.
    #[arg(long, env = "SEED_DEMO", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub seed_demo: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_defaults_listen_on_8082_without_demo_data() {
        let config = Config::try_parse_from(["svc-product"]).unwrap();
        assert_eq!(config.http_addr.port(), 8082);
        assert!(!config.seed_demo);
    }

    #[test]
    fn the_seed_demo_flag_turns_seeding_on() {
        assert!(Config::try_parse_from(["svc-product", "--seed-demo"]).unwrap().seed_demo);
    }
}
