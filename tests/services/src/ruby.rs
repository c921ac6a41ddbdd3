//! Ruby scripts run with a real Sidekiq against a private Redis: Debian's 6.4.1 natively
//! ([`run`], [`json`]) or any [`SidekiqVersion`] on its own runtime ([`run_on`], [`json_on`]).

use crate::SidekiqVersion;
use std::process::Stdio;

/// Loaded before every script: Sidekiq's client API pointed at `REDIS_URL`, quiet logs.
/// The same lines work on 6.4, 7.3 and 8.1 (`Sidekiq::Job` exists since 6.3).
const PRELUDE: &str = r#"
require "sidekiq"
require "sidekiq/api"
require "json"
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL"), size: 2 } }
Sidekiq.logger.level = Logger::WARN
"#;

/// Runs `script` with Debian's native Sidekiq 6.4.1 and returns its standard output.
pub async fn run(redis_url: &str, script: &str) -> String {
    run_on(SidekiqVersion::V6, redis_url, script).await
}

/// Runs `script` with `version`'s Ruby and Sidekiq and returns its standard output; panics
/// with stderr if Ruby fails.
pub async fn run_on(version: SidekiqVersion, redis_url: &str, script: &str) -> String {
    let program = if version.root().is_some() {
        "/usr/bin/ruby"
    } else {
        "ruby"
    };
    let out = version
        .command(program)
        .arg("-e")
        .arg(format!("{PRELUDE}\n{script}"))
        .env("REDIS_URL", redis_url)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {version}'s ruby ({e}): apt-get install ruby-sidekiq")
        });
    assert!(
        out.status.success(),
        "{version}: ruby failed ({}):\n{}\n--- script ---\n{script}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `script` (6.4.1), which must print one JSON document last, and parses it.
pub async fn json(redis_url: &str, script: &str) -> serde_json::Value {
    json_on(SidekiqVersion::V6, redis_url, script).await
}

/// Runs `script` on `version`; it must print one JSON document last, which is parsed.
pub async fn json_on(version: SidekiqVersion, redis_url: &str, script: &str) -> serde_json::Value {
    let out = run_on(version, redis_url, script).await;
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{version}: ruby printed non-JSON {last:?}: {e}"))
}

/// The Sidekiq version Ruby loads (Debian bookworm: 6.4.1).
pub async fn sidekiq_version(redis_url: &str) -> String {
    version_on(SidekiqVersion::V6, redis_url).await
}

/// The exact `Sidekiq::VERSION` of `version`'s runtime.
pub async fn version_on(version: SidekiqVersion, redis_url: &str) -> String {
    run_on(version, redis_url, "print Sidekiq::VERSION").await
}
