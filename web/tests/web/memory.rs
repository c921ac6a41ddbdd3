//! Memory of one bulk send at the largest `BULK_SEND_MAX`, measured on the real binary
//! (issue #12, item 7): the peak resident set while it runs, above what the process held
//! before, stays within 64 MB because recipients and jobs are streamed a chunk at a time.

use crate::support::WebProcess;
use std::time::Duration;
use test_services::RedisServer;

/// `kB` value of a `/proc/<pid>/status` line.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bulk_send_of_100_000_stays_within_64_mb() {
    let redis = RedisServer::start();
    let web = WebProcess::start(&[
        ("REDIS_URL", redis.url()),
        ("BULK_SEND_MAX", "100000".into()),
    ])
    .await;
    let base = format!("http://{}", web.addr());
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = test_services::sidekiq_web::csrf_token(&page).unwrap();
    let page = crate::support::post_page(
        &http,
        format!("{base}/emails/generate"),
        &[("authenticity_token", token.as_str()), ("count", "100000")],
    )
    .await;
    assert!(page.contains("100,000件のテスト用アドレスを作成しました"));

    let pid = web.pid();
    // Reset the peak (VmHWM) to the current resident set (Linux ≥ 4.0).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_kb(pid, "VmRSS:");
    let started = std::time::Instant::now();
    let page = crate::support::post_page(
        &http,
        format!("{base}/emails/bulk_send"),
        &[("authenticity_token", token.as_str()), ("count", "100000")],
    )
    .await;
    let took = started.elapsed();
    assert!(
        page.contains("100,000件の送信ジョブを作成しました"),
        "{page}"
    );
    let peak = status_kb(pid, "VmHWM:");
    let grew_mb = peak.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "bulk send of 100,000: RSS {:.1} MB before, peak {:.1} MB (+{grew_mb:.1} MB), {took:?}",
        before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    assert!(grew_mb <= 64.0, "one send took {grew_mb:.1} MB more");
    assert_eq!(redis.llen("queue:default").await, 100_000);
}
