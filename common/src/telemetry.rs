//! Logging: `RUST_LOG` filters (default `info`), `LOG_FORMAT=json` for machine-readable lines.
//!
//! A JSON line carries its event's fields at the top level and the fields of the spans it was
//! logged in under `span` (the innermost) and `spans` (all, outermost first): `trace_id` is there
//! on every line about a request (span `http`) or a consumed event (span `event`), the same in
//! every service for one order (see [`crate::trace`]).

use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, prelude::*};

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json");
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(json_layer(std::io::stdout)).init();
    } else {
        // Colours only for a person at a terminal, not in files or log collectors.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        registry.with(fmt::layer().compact().with_ansi(ansi)).init();
    }
}

/// The `LOG_FORMAT=json` formatter, writing to `writer` (the tests capture it).
pub fn json_layer<W>(writer: W) -> impl Layer<tracing_subscriber::layer::Layered<EnvFilter, Registry>>
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(true).with_writer(writer)
}
