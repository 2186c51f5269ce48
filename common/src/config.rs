//! Configuration every service shares: flags with environment fallbacks, read once in `main` and
//! passed down. Each service adds its own `HTTP_ADDR` (the default port differs) and settings.

use std::{path::PathBuf, time::Duration};

use crate::http::Limits;

#[derive(Debug, Clone, clap::Args)]
pub struct CommonConfig {
    /// NATS server(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Directory holding the service's SQLite file.
    #[arg(long, env = "DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,
    /// Seconds a delivered event may go unacknowledged (a consumer that died mid-way) before the
    /// broker delivers it again.
    #[arg(long, env = "ACK_WAIT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub ack_wait_secs: u64,
    /// Seconds a connection may take to send a request's headers, and may stay idle between two
    /// requests, before it is closed.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECS", default_value_t = Limits::HEADER_READ_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub http_header_timeout_secs: u64,
    /// Seconds a request may take to be answered before it gets a 503 `REQUEST_TIMEOUT`. Keep it
    /// above svc-order's longest `Prefer: wait` (30 s).
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_SECS", default_value_t = Limits::REQUEST_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub http_request_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog until one closes.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = Limits::MAX_CONNECTIONS as u16,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub http_max_connections: u16,
    /// Seconds of the most recent outbox rows (counted back from the newest publish) re-sent on
    /// every connection to NATS, the first included, against acknowledged messages a broker OS
    /// crash lost before its next sync. Must exceed the broker's `sync_interval`; 0 turns it off.
    #[arg(long, env = "OUTBOX_RESEND_SECS", default_value_t = crate::outbox::RESEND_WINDOW.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=600))]
    pub outbox_resend_secs: u64,
    /// Unpublished outbox rows beyond which `/health/ready` fails: the relay is not keeping up
    /// (or cannot publish), so new work would only wait.
    #[arg(long, env = "READY_MAX_OUTBOX_BACKLOG", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(0..))]
    pub ready_max_outbox_backlog: u32,
    /// Copies JetStream keeps of the event stream and the key bucket (their consumers inherit
    /// it): 1 on a single server, 3 on a 3-node cluster (`./shop up --cluster`), which then
    /// survives the loss of any one node. Every service must be given the same number: each
    /// one declares the stream at start-up, and a different count would rescale it.
    #[arg(long, env = "NATS_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,
    #[command(flatten)]
    pub nats_auth: crate::bus::NatsAuth,
}

impl CommonConfig {
    /// `<data_dir>/<service>.db`
    pub fn db_path(&self, service: &str) -> PathBuf {
        self.data_dir.join(format!("{service}.db"))
    }

    pub fn replicas(&self) -> usize {
        usize::from(self.nats_replicas)
    }

    pub fn outbox_resend(&self) -> Duration {
        Duration::from_secs(self.outbox_resend_secs)
    }

    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_secs)
    }

    /// The limits the HTTP server enforces ([`crate::http::serve`]).
    pub fn http_limits(&self) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(self.http_header_timeout_secs),
            request_timeout: Duration::from_secs(self.http_request_timeout_secs),
            max_connections: usize::from(self.http_max_connections),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        common: CommonConfig,
    }

    fn parse(args: &[&str]) -> Result<CommonConfig, clap::Error> {
        Flags::try_parse_from(std::iter::once("svc").chain(args.iter().copied())).map(|f| f.common)
    }

    #[test]
    fn the_http_limits_default_to_the_common_defaults_and_are_read_from_flags() {
        assert_eq!(parse(&[]).unwrap().http_limits(), Limits::default());
        let set =
            parse(&["--http-header-timeout-secs=3", "--http-request-timeout-secs=60", "--http-max-connections=8"]);
        let expected = Limits {
            header_read_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(60),
            max_connections: 8,
        };
        assert_eq!(set.unwrap().http_limits(), expected);
    }

    #[test]
    fn out_of_range_http_limits_are_refused() {
        for bad in [
            "--http-header-timeout-secs=0",
            "--http-header-timeout-secs=301",
            "--http-request-timeout-secs=0",
            "--http-request-timeout-secs=601",
            "--http-max-connections=0",
            "--http-max-connections=65536",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad} was accepted");
        }
    }
}
