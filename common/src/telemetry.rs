//! Logging: `RUST_LOG` filters (default `info`), `LOG_FORMAT=json` for machine-readable lines.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json");
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(fmt::layer().json().flatten_event(true)).init();
    } else {
        // Colours only for a person at a terminal, not in files or log collectors.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        registry.with(fmt::layer().compact().with_ansi(ansi)).init();
    }
}
