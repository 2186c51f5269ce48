//! Configuration every service shares: flags with environment fallbacks, read once in `main` and
//! passed down. Each service adds its own `HTTP_ADDR` (the default port differs) and settings.

use std::{path::PathBuf, time::Duration};

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
}

impl CommonConfig {
    /// `<data_dir>/<service>.db`
    pub fn db_path(&self, service: &str) -> PathBuf {
        self.data_dir.join(format!("{service}.db"))
    }

    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_secs)
    }
}
