//! Ruby scripts run with Debian's `ruby-sidekiq` 6.4.1 against a private Redis.

use std::process::Stdio;

/// Loaded before every script: Sidekiq's client API pointed at `REDIS_URL`, quiet logs.
const PRELUDE: &str = r#"
require "sidekiq"
require "sidekiq/api"
require "json"
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL"), size: 2 } }
Sidekiq.logger.level = Logger::WARN
"#;

/// Runs `script` and returns its standard output; panics with stderr if Ruby fails.
pub async fn run(redis_url: &str, script: &str) -> String {
    let out = tokio::process::Command::new("ruby")
        .arg("-e")
        .arg(format!("{PRELUDE}\n{script}"))
        .env("REDIS_URL", redis_url)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("ruby not installed (apt-get install ruby-sidekiq)");
    assert!(
        out.status.success(),
        "ruby failed ({}):\n{}\n--- script ---\n{script}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `script`, which must print one JSON document last, and parses it.
pub async fn json(redis_url: &str, script: &str) -> serde_json::Value {
    let out = run(redis_url, script).await;
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("ruby printed non-JSON {last:?}: {e}"))
}

/// The Sidekiq version Ruby loads (Debian bookworm: 6.4.1).
pub async fn sidekiq_version(redis_url: &str) -> String {
    run(redis_url, "print Sidekiq::VERSION").await
}
