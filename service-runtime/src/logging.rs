//! JSON logs on stdout: one object per line, event fields at the top level, the current span
//! attached. `log`-based crates (lettre, the Unleash SDK) come through the same pipeline.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `filter` (`RUST_LOG` syntax; `info` if it does not
/// parse). A second call is a no-op.
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

/// Test logs on demand, as zero2prod does: silent unless `TEST_LOG` is set, then the
/// `RUST_LOG` filter (default `info`) through the test writer, so `cargo test` shows them
/// per test. Call it at the start of any test; only the first call installs anything.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_none() {
        return;
    }
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_test_writer()
        .try_init();
}
