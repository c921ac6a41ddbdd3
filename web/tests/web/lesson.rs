//! The lesson guide (issue #14, item 4) against a private redis-server: steps tick off from
//! the sends' counters, and the clicks in the admin (Retry Now, Kill, revive) are made with
//! the real Ruby Sidekiq 6.4.1 API (what the admin's buttons call) while the guide's watcher
//! runs; history links open the real Sidekiq 8.1 admin filtered to one send.

use crate::support::{TestApp, text};
use axum::body::Body;
use axum::extract::FromRef;
use axum::http::{Request, StatusCode};
use mail_web::services::lesson::LessonSources;
use redis::AsyncCommands;
use std::time::Duration;
use test_services::{RedisServer, SidekiqVersion, SidekiqWeb, wait_until};
use tokio_util::sync::CancellationToken;

/// The steps ticked on `/lesson/steps`, in page order.
async fn done_steps(app: &TestApp) -> Vec<String> {
    let html = text(app.get("/lesson/steps").await).await;
    html.split("<li class=")
        .skip(1)
        .filter_map(|li| {
            let head = &li[..li.find('>')?];
            let step = head.split("data-step=\"").nth(1)?.split('"').next()?;
            head.contains("data-done=\"true\"")
                .then(|| step.to_string())
        })
        .collect()
}

async fn wait_for_step(app: &TestApp, step: &str) {
    wait_until(Duration::from_secs(30), step, || async {
        done_steps(app)
            .await
            .iter()
            .any(|s| s == step)
            .then_some(())
    })
    .await;
}

/// A failed `MailSenderJob` of send `mail_job_id` as the worker writes it to the retry set.
fn failed_job(app: &TestApp, jid: &str, mail_job_id: i64) -> String {
    let now = sidekiq_wire::Timestamp::now().as_secs();
    serde_json::json!({
        "class": "MailSenderJob",
        "args": [{
            "to": format!("{jid}@example.test"),
            "mail_job_id": mail_job_id,
            "instance": app.state.db.instance().id,
            "simulate_error": true,
        }],
        "queue": "default",
        "retry": 3,
        "jid": jid,
        "created_at": now - 5.0,
        "enqueued_at": now - 5.0,
        "failed_at": now - 1.0,
        "error_class": "StandardError",
        "error_message": "Simulated error for testing",
        "retry_count": 0,
    })
    .to_string()
}

async fn zadd_retry(app: &TestApp, member: &str, in_secs: f64) {
    let at = sidekiq_wire::Timestamp::now().as_secs() + in_secs;
    let mut c = app.redis().conn().await;
    let _: () = c.zadd("retry", member, at).await.unwrap();
}

/// What the worker writes when it delivers `jid`.
async fn delivered(app: &TestApp, jid: &str) {
    let mut c = app.redis().conn().await;
    let _: () = c
        .set(mail_protocol::keys::delivery(jid), "sent")
        .await
        .unwrap();
}

async fn ruby(app: &TestApp, script: &str) {
    test_services::ruby::run(&app.redis().url(), script).await;
}

#[tokio::test]
async fn the_lesson_ticks_off_as_the_scenario_runs() {
    let app = TestApp::with_redis().await;
    // Empty state: the hint and its action, nothing done.
    let page = app.page("/lesson").await;
    assert!(page.contains("need-addresses"), "{page}");
    assert!(page.contains("data-lesson=\"generate\""));
    assert!(done_steps(&app).await.is_empty());
    let res = app
        .post_form(
            "/emails/generate",
            &[("count", "1000"), ("return_to", "/lesson")],
        )
        .await;
    assert_eq!(res.headers()["location"], "/lesson", "back to the guide");
    let page = app.follow(res).await;
    assert!(page.contains("1,000件のテスト用アドレスを作成しました"));
    assert!(!page.contains("need-addresses"));

    // 1. Send 1,000 (from the guide, back to the guide).
    let res = app
        .post_form(
            "/emails/bulk_send",
            &[
                ("count", "1000"),
                ("queue", "default"),
                ("return_to", "/lesson"),
            ],
        )
        .await;
    assert_eq!(res.headers()["location"], "/lesson");
    assert_eq!(done_steps(&app).await, ["send"]);
    let steps = text(app.get("/lesson/steps").await).await;
    assert!(steps.contains("default: 1,000件待ち"), "{steps}");
    // 2. The queue drained: every mail delivered.
    app.set_progress(1, &[("sent", 1000), ("failed", 0), ("retrying", 0)])
        .await;
    assert_eq!(done_steps(&app).await, ["send", "queues"]);
    // 3. Errors on.
    app.post_form(
        "/emails/bulk_send",
        &[
            ("count", "1000"),
            ("simulate_error", "true"),
            ("return_to", "/lesson"),
        ],
    )
    .await;
    assert_eq!(done_steps(&app).await, ["send", "queues", "errors"]);
    // 4. Failed jobs wait in Retries; the guide links them, filtered to this send.
    app.set_progress(2, &[("sent", 600), ("failed", 0), ("retrying", 300)])
        .await;
    assert_eq!(
        done_steps(&app).await,
        ["send", "queues", "errors", "retries"]
    );
    let steps = text(app.get("/lesson/steps").await).await;
    assert!(
        steps.contains("/retries?substr=%22mail_job_id%22%3A2%2C"),
        "{steps}"
    );
    assert!(steps.contains("/morgue?substr=%22mail_job_id%22%3A2%2C"));

    // The watcher follows the retry and dead sets from here on.
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(LessonSources::from_ref(&app.state).watch(stop.clone()));
    zadd_retry(&app, &failed_job(&app, "a0000000000000000000000a", 2), 60.0).await;
    zadd_retry(&app, &failed_job(&app, "c0000000000000000000000c", 2), 60.0).await;
    zadd_retry(&app, &failed_job(&app, "d0000000000000000000000d", 2), 2.0).await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // the watcher's baseline

    // Not Retry Now: a retry whose time had come, taken and delivered as the poller does.
    let mut c = app.redis().conn().await;
    let member: Vec<String> = c.zrangebyscore("retry", "-inf", "+inf").await.unwrap();
    let due = member.iter().find(|m| m.contains("d000")).unwrap().clone();
    let _: () = c.zrem("retry", &due).await.unwrap();
    delivered(&app, "d0000000000000000000000d").await;
    // Not Retry Now either: Kill (the job goes to the dead set without running). That is
    // step 6 already, though: a job of the send with errors is dead.
    ruby(
        &app,
        "Sidekiq::RetrySet.new.find_job('c0000000000000000000000c').kill",
    )
    .await;
    wait_for_step(&app, "dead").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let steps = done_steps(&app).await;
    assert!(!steps.contains(&"retry_now".to_string()), "{steps:?}");

    // 5. Retry Now (what the admin's button calls), then the worker delivers it.
    ruby(
        &app,
        "Sidekiq::RetrySet.new.find_job('a0000000000000000000000a').retry",
    )
    .await;
    let mut c = app.redis().conn().await;
    let queued: Vec<String> = c.lrange("queue:default", 0, 0).await.unwrap();
    assert!(
        queued[0].contains("a0000000000000000000000a"),
        "back in its queue"
    );
    delivered(&app, "a0000000000000000000000a").await;
    wait_for_step(&app, "retry_now").await;
    assert!(!done_steps(&app).await.contains(&"revive".to_string()));

    // 7. Revive the dead one from the Dead page; it runs and is delivered.
    ruby(
        &app,
        "Sidekiq::DeadSet.new.find_job('c0000000000000000000000c').retry",
    )
    .await;
    delivered(&app, "c0000000000000000000000c").await;
    wait_for_step(&app, "revive").await;
    assert_eq!(done_steps(&app).await.len(), 7);

    // The ticks outlive their evidence: retries and dead sets emptied, counters final.
    let _: () = c.del(&["retry", "dead"]).await.unwrap();
    app.set_progress(2, &[("sent", 1000), ("failed", 0), ("retrying", 0)])
        .await;
    assert_eq!(done_steps(&app).await.len(), 7);
    stop.cancel();
    watcher.await.unwrap();
}

#[tokio::test]
async fn starting_over_forgets_the_steps_and_earlier_sends() {
    let app = TestApp::with_redis().await;
    app.seed(1000).await;
    app.post_form("/emails/bulk_send", &[("count", "1000")])
        .await;
    app.set_progress(1, &[("sent", 1000), ("failed", 0), ("retrying", 0)])
        .await;
    assert_eq!(done_steps(&app).await, ["send", "queues"]);
    // A form without the token is refused.
    let res = app.post_raw_form("/lesson/start_over", &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app.post_form("/lesson/start_over", &[]).await;
    assert_eq!(res.headers()["location"], "/lesson");
    let page = app.follow(res).await;
    assert!(page.contains("最初からやり直します"), "{page}");
    assert!(done_steps(&app).await.is_empty());
    tokio::time::sleep(Duration::from_millis(10)).await;
    app.post_form("/emails/bulk_send", &[("count", "1000")])
        .await;
    assert_eq!(done_steps(&app).await, ["send"]);
}

#[tokio::test]
async fn without_redis_the_guide_still_renders() {
    let app = TestApp::new().await;
    let page = app.page("/lesson").await;
    assert!(page.contains("Redis に接続できません"), "{page}");
    assert!(page.contains("data-step=\"revive\""));
    let res = app.post_form("/lesson/start_over", &[]).await;
    let page = app.follow(res).await;
    assert!(page.contains("やり直せませんでした"), "{page}");
}

#[tokio::test]
async fn history_links_open_the_admin_filtered_to_one_send() {
    let redis = RedisServer::start();
    let web = SidekiqWeb::start_version(SidekiqVersion::V8, &redis.url()).await;
    let upstream = web.url("");
    let app = TestApp::with(|c| c.sidekiq_web_url = Some(upstream), Some(redis)).await;
    app.seed(10).await;
    for _ in 0..10 {
        app.post_form(
            "/emails/bulk_send",
            &[("count", "1"), ("simulate_error", "true")],
        )
        .await;
    }
    // Sends 1 and 10 each have a job waiting in Retries; send 1 also a dead one.
    zadd_retry(&app, &failed_job(&app, "1000000000000000000000a1", 1), 60.0).await;
    zadd_retry(
        &app,
        &failed_job(&app, "1000000000000000000000aa", 10),
        60.0,
    )
    .await;
    let mut c = app.redis().conn().await;
    let now = sidekiq_wire::Timestamp::now().as_secs();
    let _: () = c
        .zadd("dead", failed_job(&app, "1000000000000000000000d1", 1), now)
        .await
        .unwrap();
    app.set_progress(1, &[("sent", 0), ("failed", 1), ("retrying", 1)])
        .await;
    let fragment = text(
        app.get_with("/progress", &[("host", "localhost:3000")])
            .await,
    )
    .await;
    let link = |class: &str| -> String {
        let at = fragment.find(&format!("class=\"{class}\"")).unwrap();
        let start = fragment[..at].rfind("href=\"").unwrap() + 6;
        let href = &fragment[start..at];
        href[..href.find('"').unwrap()].replace("&#x2f;", "/")
    };
    let retries = link("retries-link");
    assert_eq!(
        retries,
        "http://localhost:3001/sidekiq/retries?substr=%22mail_job_id%22%3A1%2C"
    );
    let dead = link("dead-link");
    assert!(dead.starts_with("http://localhost:3001/sidekiq/morgue?substr="));
    // Followed on the admin's origin, Sidekiq 8.1 shows send 1's jobs only.
    for (href, shown, hidden) in [
        (
            &retries,
            "1000000000000000000000a1",
            "1000000000000000000000aa",
        ),
        (
            &dead,
            "1000000000000000000000d1",
            "1000000000000000000000a1",
        ),
    ] {
        let path = href.trim_start_matches("http://localhost:3001");
        let res = app
            .send_admin(
                Request::get(path)
                    .header("host", "localhost:3001")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let body = text(res).await;
        assert!(body.contains(shown), "{path}: {shown} missing");
        assert!(!body.contains(hidden), "{path}: {hidden} shown");
    }
    // The guide links the admin's own origin (its sends are 1-mail ones here, too small for
    // the lesson: unfiltered), and the header the admin's Metrics page.
    let page = app.get_with("/lesson", &[("host", "localhost:3000")]).await;
    let page = text(page).await.replace("&#x2f;", "/");
    assert!(
        page.contains("http://localhost:3001/sidekiq/retries\""),
        "{page}"
    );
    assert!(page.contains("http://localhost:3001/sidekiq/metrics"));
}
