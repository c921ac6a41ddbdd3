//! Live progress: counters written the way the worker writes them (the Redis hash), merged
//! into `/mail_jobs.json` and the `/progress` fragment; final counts kept in SQLite.

use crate::support::{TestApp, json, text};
use redis::AsyncCommands;

async fn first_job(app: &TestApp) -> serde_json::Value {
    json(app.get("/mail_jobs.json").await).await[0].clone()
}

#[tokio::test]
async fn progress_moves_from_pending_to_completed_and_outlives_redis() {
    let app = TestApp::with_redis().await;
    app.seed(100).await;
    app.post_form("/emails/bulk_send", &[("count", "100")])
        .await;
    let j = first_job(&app).await;
    for key in [
        "id",
        "total_count",
        "sent_count",
        "failed_count",
        "retrying_count",
        "status",
        "queue",
        "created_at",
    ] {
        assert!(j.get(key).is_some(), "{key} missing in {j}");
    }
    assert_eq!(j["status"], "pending");
    assert_eq!(j["sent_count"], 0);

    app.set_progress(1, &[("sent", 40), ("failed", 0), ("retrying", 3)])
        .await;
    let j = first_job(&app).await;
    assert_eq!(j["status"], "processing");
    assert_eq!(j["sent_count"], 40);
    assert_eq!(j["retrying_count"], 3);
    assert_eq!(j["progress_percentage"], 40.0);

    app.set_progress(1, &[("sent", 100), ("failed", 0), ("retrying", 0)])
        .await;
    let j = first_job(&app).await;
    assert_eq!(j["status"], "completed");
    assert_eq!(j["progress_percentage"], 100.0);

    // The page shows it too, without a reload: the fragment the page polls.
    let fragment = text(app.get("/progress").await).await;
    assert!(fragment.contains("data-status=\"completed\""), "{fragment}");
    assert!(fragment.contains("width: 100.0%"));
    assert!(fragment.contains("完了"));

    // Redis forgets (TTL): the stored copy stands.
    let mut c = app.redis().conn().await;
    let _: () = c.del(app.progress_key(1)).await.unwrap();
    let j = first_job(&app).await;
    assert_eq!(j["status"], "completed");
    assert_eq!(j["sent_count"], 100);
}

#[tokio::test]
async fn failures_make_a_failed_send() {
    let app = TestApp::with_redis().await;
    app.seed(10).await;
    app.post_form(
        "/emails/bulk_send",
        &[("count", "10"), ("simulate_error", "true")],
    )
    .await;
    app.set_progress(1, &[("sent", 7), ("failed", 3), ("retrying", 0)])
        .await;
    let j = first_job(&app).await;
    assert_eq!(j["status"], "failed");
    assert_eq!(j["failed_count"], 3);
    // 7 of 10 delivered: "completed with failures" (the stored status stays `failed`).
    assert!(
        text(app.get("/progress").await)
            .await
            .contains("完了（一部失敗）")
    );
}

#[tokio::test]
async fn workers_and_queues_panel_reads_the_heartbeats() {
    let app = TestApp::with_redis().await;
    app.seed(20).await;
    app.post_form("/emails/bulk_send", &[("count", "20")]).await;
    // A heartbeat as the worker (and Ruby Sidekiq) writes it.
    let info = sidekiq_wire::process::ProcessInfo::new(
        "pod-a:7:0123456789ab",
        "pod-a",
        7,
        "0.1.0",
        sidekiq_wire::Timestamp::now().as_secs(),
    )
    .with_queues(
        10,
        &[("default".to_string(), 1)],
        sidekiq_wire::process::QueueMode::Weighted,
    );
    let mut c = app.redis().conn().await;
    let _: () = c.sadd("processes", "pod-a:7:0123456789ab").await.unwrap();
    let _: () = c
        .hset_multiple(
            "pod-a:7:0123456789ab",
            &[
                ("info", serde_json::to_string(&info).unwrap()),
                ("busy", "4".into()),
                ("beat", sidekiq_wire::Timestamp::now().as_secs().to_string()),
                ("rss", "51200".into()),
                ("cpu", "73.5".into()),
                ("quiet", "false".into()),
            ],
        )
        .await
        .unwrap();
    let fragment = text(app.get("/progress").await).await;
    assert!(fragment.contains("pod-a:7"), "{fragment}");
    assert!(fragment.contains("4/10"));
    assert!(fragment.contains("73.5%"));
    assert!(fragment.contains("50.0 MB"));
    assert!(fragment.contains("<td>default</td><td class=\"num\">20</td>"));
    assert!(fragment.contains("<svg class=\"sparkline\""));
    // English on request.
    let en = text(
        app.get_with("/progress", &[("accept-language", "en")])
            .await,
    )
    .await;
    assert!(en.contains("Workers") && en.contains("Send history"));
}

#[tokio::test]
async fn the_page_polls_with_a_nonced_inline_script() {
    let app = TestApp::new().await;
    let res = app.get("/").await;
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let page = text(res).await;
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap();
    assert!(page.contains(&format!("<script nonce=\"{nonce}\">")));
    assert!(page.contains("|| \"/progress\"") && page.contains("fetch(url"));
    assert!(!page.contains("<script src="), "no external scripts");
}

#[tokio::test]
async fn jobs_deleted_in_the_admin_end_the_send_as_cancelled_and_stay_counted() {
    let app = TestApp::with_redis().await;
    app.seed(10).await;
    app.post_form("/emails/bulk_send", &[("count", "10")]).await;
    // The worker found 6 of the 10 jobs deleted from the admin (a queue deleted) after 4
    // had been delivered: it counts them cancelled in the send's hash.
    app.set_progress(
        1,
        &[
            ("sent", 4),
            ("failed", 0),
            ("retrying", 0),
            ("cancelled", 6),
        ],
    )
    .await;
    let j = first_job(&app).await;
    assert_eq!(j["status"], "completed", "{j}");
    assert_eq!(
        (j["sent_count"].clone(), j["cancelled_count"].clone()),
        (4.into(), 6.into())
    );
    assert_eq!(j["progress_percentage"], 100.0);
    let fragment = text(app.get("/progress").await).await;
    assert!(fragment.contains("取り消し 6 件"), "{fragment}");

    // Everything cancelled before the worker ran any: the send reads "cancelled".
    app.set_progress(1, &[("sent", 0), ("cancelled", 10)]).await;
    let fragment = text(app.get("/progress").await).await;
    assert!(fragment.contains("status_cancelled"), "{fragment}");
    assert!(fragment.contains("取り消し 10 件"));

    // Redis forgets: the stored copy keeps the cancelled count.
    let mut c = app.redis().conn().await;
    let _: () = c.del(app.progress_key(1)).await.unwrap();
    let j = first_job(&app).await;
    assert_eq!(
        (j["status"].clone(), j["cancelled_count"].clone()),
        ("completed".into(), 10.into())
    );
}
