//! End to end with the real binaries: `mail-web` and `mail-worker` against a private Redis
//! and the in-process SMTP server. Needs `cargo build --workspace --bins` first (`.ci/run`
//! does); `mail-worker` comes from the worker package.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;
use test_services::{RedisServer, SmtpServer, TempDir, bin_path, free_port, wait_until};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

fn spawn(bin: &str, envs: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(bin_path(bin));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"))
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("still running");
    let ok = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_import_then_bulk_send_delivers_exactly_those_recipients() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let dir = TempDir::new("e2e-web");
    let port = free_port();
    let mut web = spawn(
        "mail-web",
        &[
            ("PORT", port.to_string()),
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("e2e.sqlite3").display()),
            ),
            ("REDIS_URL", redis.url()),
            ("RUST_LOG", "info".into()),
        ],
    );
    // Drain stdout while running: a full pipe would block the web's logging.
    let mut web_stdout = web.stdout.take().unwrap();
    let web_log = tokio::spawn(async move {
        let mut out = String::new();
        let _ = web_stdout.read_to_string(&mut out).await;
        out
    });
    let _worker = spawn(
        "mail-worker",
        &[
            ("REDIS_URL", redis.url()),
            ("SMTP_HOST", "127.0.0.1".into()),
            ("SMTP_PORT", smtp.port().to_string()),
            ("MAIL_FROM", "noreply@example.test".into()),
            ("WORKER_CONCURRENCY", "20".into()),
            ("WORKER_QUEUES", "high,2 default,1".into()),
            ("METRICS_PORT", free_port().to_string()),
            ("SHUTDOWN_TIMEOUT", "5".into()),
            ("RUST_LOG", "warn".into()),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    wait_until(Duration::from_secs(30), "mail-web ready", || async {
        let r = http.get(format!("{base}/health/ready")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    // The page gives the CSRF cookie and token, as in a browser.
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = test_services::sidekiq_web::csrf_token(&page).expect("authenticity_token");

    // Import 1,200 addresses.
    let mut csv = String::from("name,email\n");
    let mut imported = HashSet::new();
    for i in 0..1_200 {
        let email = format!("e2e{i}@example.test");
        csv.push_str(&format!("受信者 {i},{email}\n"));
        imported.insert(email);
    }
    let form = reqwest::multipart::Form::new()
        .text("authenticity_token", token.clone())
        .part(
            "csv_file",
            reqwest::multipart::Part::bytes(csv.into_bytes())
                .file_name("list.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let page = http
        .post(format!("{base}/emails/import_csv"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("1,200件のメールアドレスを登録しました"),
        "{page}"
    );

    // Send 1,000.
    let page = crate::support::post_page(
        &http,
        format!("{base}/emails/bulk_send"),
        &[("authenticity_token", token.as_str()), ("count", "1000")],
    )
    .await;
    assert!(page.contains("1,000件の送信ジョブを作成しました"), "{page}");

    // Progress reaches 100% with exact counts.
    let job = wait_until(Duration::from_secs(180), "bulk send completed", || async {
        let jobs: serde_json::Value = http
            .get(format!("{base}/mail_jobs.json"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let j = jobs.get(0)?.clone();
        (j["status"] == "completed").then_some(j)
    })
    .await;
    assert_eq!(job["total_count"], 1000);
    assert_eq!(job["sent_count"], 1000);
    assert_eq!(job["failed_count"], 0);
    assert_eq!(job["retrying_count"], 0);
    assert_eq!(job["progress_percentage"], 100.0);

    // The SMTP server holds exactly those 1,000 distinct recipients.
    let mails = smtp.wait_for(1_000, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // no stragglers or duplicates
    assert_eq!(smtp.count(), 1_000);
    let recipients: HashSet<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    assert_eq!(recipients.len(), 1_000);
    assert!(recipients.is_subset(&imported));

    // SIGTERM: the web stops cleanly and its logs are JSON lines.
    sigterm(&web);
    let status = tokio::time::timeout(Duration::from_secs(15), web.wait())
        .await
        .expect("mail-web exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let out = web_log.await.unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"] == "bulk send enqueued"));
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "SIGTERM: shutting down")
    );
}
