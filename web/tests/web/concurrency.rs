//! Concurrent writers on one SQLite file: bulk sends, test-address generation and the
//! progress write-back of every open page, all at once (issue #12, item 1).

use crate::support::{TestApp, text};
use axum::http::StatusCode;
use redis::AsyncCommands;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const ROUNDS: usize = 3;
const SENDS: usize = 20;
const GENERATES: usize = 20;
const POLLERS: usize = 10;

/// What one request ended as, for the tally.
#[derive(Debug)]
enum Outcome {
    Ok,
    Failed(String),
}

async fn flash_of(app: &TestApp, res: axum::response::Response, expect: &str) -> Outcome {
    if res.status() != StatusCode::SEE_OTHER {
        let status = res.status();
        return Outcome::Failed(format!("{status}: {}", text(res).await));
    }
    // The flash travels in the cookie of this very response; read it from there rather
    // than from the shared jar (other tasks overwrite it).
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("_mail_web_flash="))
        .map(|v| v.split(';').next().unwrap_or("").to_string());
    let Some(cookie) = cookie else {
        return Outcome::Failed("no flash".into());
    };
    let page = text(app.get_isolated("/", &cookie).await).await;
    if page.contains(expect) {
        Outcome::Ok
    } else {
        let alert = page
            .split("id=\"alert\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or("(no alert)");
        Outcome::Failed(format!("expected {expect:?}, got {alert}"))
    }
}

/// Every request of 20 bulk sends + 20 generates + 10 pollers (each writing merged progress
/// back as the counters move) succeeds, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_bulk_sends_generates_and_pollers_never_fail() {
    let app = Arc::new(TestApp::with_redis().await);
    app.seed(5_000).await;
    let mut failures: Vec<String> = Vec::new();
    let mut requests = 0usize;
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        // The worker's counters move while everything else runs, so the pollers' merges
        // change state and get written back.
        let mover = {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let mut c = app.redis().conn().await;
                let mut sent = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    sent += 1;
                    for id in 1..=(SENDS * ROUNDS) as i64 {
                        let key = app.progress_key(id);
                        let _: () = c
                            .hset_multiple(&key, &[("sent", sent % 60), ("failed", 0)])
                            .await
                            .unwrap();
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
        };
        let pollers: Vec<_> = (0..POLLERS)
            .map(|_| {
                let (app, stop) = (app.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let res = app.get("/progress").await;
                        out.push(if res.status() == StatusCode::OK {
                            Outcome::Ok
                        } else {
                            let status = res.status();
                            Outcome::Failed(format!("/progress {status}: {}", text(res).await))
                        });
                    }
                    out
                })
            })
            .collect();
        let writers: Vec<_> = (0..SENDS + GENERATES)
            .map(|i| {
                let app = app.clone();
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        let res = app.post_form("/emails/bulk_send", &[("count", "60")]).await;
                        flash_of(&app, res, "60件の送信ジョブを作成しました").await
                    } else {
                        let res = app.post_form("/emails/generate", &[("count", "200")]).await;
                        flash_of(&app, res, "200件のテスト用アドレスを作成しました").await
                    }
                })
            })
            .collect();
        for w in writers {
            requests += 1;
            if let Outcome::Failed(why) = w.await.unwrap() {
                failures.push(format!("round {round}: {why}"));
            }
        }
        stop.store(true, Ordering::Relaxed);
        mover.await.unwrap();
        for p in pollers {
            for outcome in p.await.unwrap() {
                requests += 1;
                if let Outcome::Failed(why) = outcome {
                    failures.push(format!("round {round}: {why}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let jobs = crate::support::json(app.get("/mail_jobs.json?limit=100").await).await;
    assert_eq!(jobs.as_array().unwrap().len(), SENDS * ROUNDS);
    assert_eq!(
        app.email_count().await,
        5_000 + (GENERATES * ROUNDS * 200) as i64
    );
}
