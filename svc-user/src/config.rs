//! svc-user's configuration: flags with environment fallbacks, read once in `main`.

use std::{fmt, net::SocketAddr, time::Duration};

use common::config::CommonConfig;

/// Everything svc-user is told at start-up.
#[derive(Clone, clap::Parser)]
#[command(name = "svc-user", version, about = "msa-shop accounts: sign-up, login and the token signing key")]
pub struct Config {
    /// Address the HTTP API listens on (port 0 picks a free one).
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,

    #[command(flatten)]
    pub common: CommonConfig,

    /// Email of the administrator account created at start-up if no account has it yet.
    #[arg(long, env = "ADMIN_EMAIL", requires = "admin_password")]
    pub admin_email: Option<String>,

    /// Password for that account; prefer the environment variable over the flag, which other
    /// users of the machine can read in the process list.
    #[arg(long, env = "ADMIN_PASSWORD", requires = "admin_email", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// How long an access token stays valid, in seconds.
    #[arg(long, env = "TOKEN_TTL_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl_secs: u64,
}

impl Config {
    /// The bootstrap administrator's email and password, if both are configured.
    pub fn admin(&self) -> Option<(&str, &str)> {
        self.admin_email.as_deref().zip(self.admin_password.as_deref())
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }
}

// By hand, so that printing the configuration never prints the admin password.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("common", &self.common)
            .field("admin_email", &self.admin_email)
            .field("admin_password", &self.admin_password.as_ref().map(|_| "<redacted>"))
            .field("token_ttl_secs", &self.token_ttl_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_defaults_need_no_arguments() {
        let config = Config::try_parse_from(["svc-user"]).unwrap();
        assert_eq!(config.http_addr.port(), 8081);
        assert_eq!(config.token_ttl(), Duration::from_secs(3600));
    }

    #[test]
    fn the_admin_email_and_password_come_together_or_not_at_all() {
        assert!(Config::try_parse_from(["svc-user", "--admin-email", "root@example.com"]).is_err());
        assert!(Config::try_parse_from(["svc-user", "--admin-password", "s3cret-enough"]).is_err());
        let both = ["svc-user", "--admin-email", "root@example.com", "--admin-password", "s3cret-enough"];
        assert_eq!(Config::try_parse_from(both).unwrap().admin(), Some(("root@example.com", "s3cret-enough")));
    }

    #[test]
    fn a_token_lifetime_of_zero_is_refused() {
        assert!(Config::try_parse_from(["svc-user", "--token-ttl-secs", "0"]).is_err());
    }

    #[test]
    fn the_admin_password_never_shows_in_debug_output() {
        let config =
            Config::try_parse_from(["svc-user", "--admin-email", "root@example.com", "--admin-password", "s3cret-1"])
                .unwrap();
        assert!(!format!("{config:?}").contains("s3cret-1"));
    }
}
