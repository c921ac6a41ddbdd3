//! JSON logs on stdout: one object per line, event fields at the top level, the request span
//! (method, route) attached.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `filter` (`RUST_LOG` syntax; `info` if unparseable).
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_env_filter(filter)
        .try_init();
}
