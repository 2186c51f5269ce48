//! svc-user's configuration: flags with environment fallbacks, read once in `main`.

use std::{fmt, net::SocketAddr, time::Duration};

use common::config::CommonConfig;

use crate::throttle;

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

    /// How long an access token stays valid, in seconds: a minute to a day. The bound also keeps
    /// a token's `exp` (now plus this) far from overflowing.
    #[arg(long, env = "TOKEN_TTL_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub token_ttl_secs: u64,

    #[command(flatten)]
    pub login: LoginThrottleConfig,
}

/// Login throttling (see [`crate::throttle`]): how many failed logins lock an email or a client,
/// and for how long.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct LoginThrottleConfig {
    /// Failed logins for one email that lock it.
    #[arg(long, env = "LOGIN_MAX_FAILURES", default_value_t = Self::DEFAULT.login_max_failures,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub login_max_failures: u32,

    /// Failed logins from one client (IP address), whatever the emails, that lock it.
    #[arg(long, env = "LOGIN_CLIENT_MAX_FAILURES", default_value_t = Self::DEFAULT.login_client_max_failures,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub login_client_max_failures: u32,

    /// Seconds a failure is remembered after the last one for the same email or client; also
    /// how long a client stays locked.
    #[arg(long, env = "LOGIN_WINDOW_SECS", default_value_t = Self::DEFAULT.login_window_secs,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub login_window_secs: u64,

    /// Seconds an email's first lock lasts; each further lock in a row doubles it.
    #[arg(long, env = "LOGIN_LOCKOUT_SECS", default_value_t = Self::DEFAULT.login_lockout_secs,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub login_lockout_secs: u64,

    /// Seconds an email's lock lasts at most; at least `LOGIN_LOCKOUT_SECS`.
    #[arg(long, env = "LOGIN_MAX_LOCKOUT_SECS", default_value_t = Self::DEFAULT.login_max_lockout_secs,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub login_max_lockout_secs: u64,

    /// Emails, and clients, remembered at most (each table); past it the one due to be
    /// forgotten first is dropped. An entry takes up to about 0.5 KiB.
    #[arg(long, env = "LOGIN_THROTTLE_CAPACITY", default_value_t = Self::DEFAULT.login_throttle_capacity,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub login_throttle_capacity: u32,
}

impl LoginThrottleConfig {
    /// 5 failures per email lock it for 1 minute, doubling to 15; 20 per client lock it for the
    /// 15-minute window.
    pub const DEFAULT: LoginThrottleConfig = LoginThrottleConfig {
        login_max_failures: 5,
        login_client_max_failures: 20,
        login_window_secs: 15 * 60,
        login_lockout_secs: 60,
        login_max_lockout_secs: 15 * 60,
        login_throttle_capacity: 100_000,
    };

    /// The throttle's settings, or why the flags do not agree with each other.
    pub fn settings(&self) -> anyhow::Result<throttle::Settings> {
        anyhow::ensure!(
            self.login_max_lockout_secs >= self.login_lockout_secs,
            "LOGIN_MAX_LOCKOUT_SECS ({}) must be at least LOGIN_LOCKOUT_SECS ({})",
            self.login_max_lockout_secs,
            self.login_lockout_secs
        );
        let window = Duration::from_secs(self.login_window_secs);
        Ok(throttle::Settings {
            account: throttle::Policy {
                max_failures: self.login_max_failures,
                window,
                lockout: Duration::from_secs(self.login_lockout_secs),
                max_lockout: Duration::from_secs(self.login_max_lockout_secs),
            },
            client: throttle::Policy {
                max_failures: self.login_client_max_failures,
                window,
                lockout: window,
                max_lockout: window,
            },
            capacity: usize::try_from(self.login_throttle_capacity).unwrap_or(usize::MAX),
        })
    }
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
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
            .field("login", &self.login)
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
    fn a_token_lifetime_outside_a_minute_to_a_day_is_refused() {
        for refused in ["0", "59", "86401", "9223372036854775808", "18446744073709551615", "-1"] {
            assert!(Config::try_parse_from(["svc-user", "--token-ttl-secs", refused]).is_err(), "{refused}");
        }
        for accepted in ["60", "86400"] {
            let config = Config::try_parse_from(["svc-user", "--token-ttl-secs", accepted]).unwrap();
            assert_eq!(config.token_ttl().as_secs().to_string(), accepted);
        }
    }

    #[test]
    fn the_login_throttle_defaults_to_five_failures_per_email_and_twenty_per_client_in_fifteen_minutes() {
        let config = Config::try_parse_from(["svc-user"]).unwrap();
        assert_eq!(config.login, LoginThrottleConfig::default());
        let settings = config.login.settings().unwrap();
        assert_eq!((settings.account.max_failures, settings.client.max_failures), (5, 20));
        assert_eq!(settings.account.window, Duration::from_secs(900));
        assert_eq!(
            (settings.account.lockout, settings.account.max_lockout),
            (Duration::from_secs(60), Duration::from_secs(900))
        );
    }

    #[test]
    fn login_throttle_settings_out_of_range_are_refused() {
        for (flag, value) in [
            ("--login-max-failures", "0"),
            ("--login-client-max-failures", "0"),
            ("--login-window-secs", "0"),
            ("--login-window-secs", "86401"),
            ("--login-lockout-secs", "0"),
            ("--login-max-lockout-secs", "86401"),
            ("--login-throttle-capacity", "0"),
        ] {
            assert!(Config::try_parse_from(["svc-user", flag, value]).is_err(), "{flag} {value}");
        }
    }

    #[test]
    fn a_longest_lock_shorter_than_the_first_is_refused() {
        let config =
            Config::try_parse_from(["svc-user", "--login-lockout-secs", "120", "--login-max-lockout-secs", "60"])
                .unwrap();
        let err = config.login.settings().unwrap_err().to_string();
        assert!(err.contains("LOGIN_MAX_LOCKOUT_SECS"), "{err}");
    }

    #[test]
    fn the_admin_password_never_shows_in_debug_output() {
        let config =
            Config::try_parse_from(["svc-user", "--admin-email", "root@example.com", "--admin-password", "s3cret-1"])
                .unwrap();
        assert!(!format!("{config:?}").contains("s3cret-1"));
    }
}
