//! Bulk sends: jobs really land in Redis in Sidekiq's format.

use crate::support::TestApp;
use mail_protocol::MailSenderArgs;
use redis::AsyncCommands;
use sidekiq_wire::Job;
use std::collections::HashSet;

async fn queue_payloads(app: &TestApp, queue: &str) -> Vec<String> {
    let mut c = app.redis().conn().await;
    c.lrange(format!("queue:{queue}"), 0, -1).await.unwrap()
}

#[tokio::test]
async fn one_thousand_jobs_in_sidekiq_format_for_distinct_recipients() {
    let app = TestApp::with_redis().await;
    app.seed(1_500).await;
    let res = app
        .post_form("/emails/bulk_send", &[("count", "1000")])
        .await;
    let page = app.follow(res).await;
    assert!(page.contains("1,000件の送信ジョブを作成しました"), "{page}");

    let payloads = queue_payloads(&app, "default").await;
    assert_eq!(payloads.len(), 1_000);
    let mut recipients = HashSet::new();
    for p in &payloads {
        let job = Job::parse(p).unwrap();
        assert_eq!(job.class(), "MailSenderJob");
        assert_eq!(job.queue(), Some("default"));
        assert_eq!(job.jid().len(), 24);
        assert!(job.enqueued_at().is_some());
        let args = MailSenderArgs::from_job(&job).unwrap();
        assert_eq!(args.mail_job_id, Some(1));
        assert!(!args.simulate_error);
        assert!(args.to.ends_with("@example.test"));
        assert_eq!(
            args.name.as_deref().unwrap().replace("User ", "u") + "@example.test",
            args.to
        );
        recipients.insert(args.to);
    }
    assert_eq!(recipients.len(), 1_000, "recipients are distinct");
    let mut c = app.redis().conn().await;
    let queues: Vec<String> = c.smembers("queues").await.unwrap();
    assert_eq!(queues, vec!["default".to_string()]);

    // Ruby's Sidekiq reads the same queue.
    let ruby = test_services::ruby::json(
        &app.redis().url(),
        r#"q = Sidekiq::Queue.new("default"); j = q.first
           puts({size: q.size, klass: j.klass, to: j.args[0]["to"], latency: q.latency < 60}.to_json)"#,
    )
    .await;
    assert_eq!(ruby["size"], 1000);
    assert_eq!(ruby["klass"], "MailSenderJob");
    assert!(ruby["to"].as_str().unwrap().ends_with("@example.test"));
    assert_eq!(ruby["latency"], true);

    // The send is recorded.
    let jobs = crate::support::json(app.get("/mail_jobs.json").await).await;
    assert_eq!(jobs[0]["id"], 1);
    assert_eq!(jobs[0]["total_count"], 1000);
    assert_eq!(jobs[0]["status"], "pending");
    assert_eq!(jobs[0]["queue"], "default");
}

#[tokio::test]
async fn error_simulation_and_the_high_queue() {
    let app = TestApp::with_redis().await;
    app.seed(1_000).await;
    app.post_form(
        "/emails/bulk_send",
        &[("count", "1000"), ("simulate_error", "true")],
    )
    .await;
    let payloads = queue_payloads(&app, "default").await;
    assert_eq!(payloads.len(), 1_000);
    assert!(payloads.iter().all(|p| {
        MailSenderArgs::from_job(&Job::parse(p).unwrap())
            .unwrap()
            .simulate_error
    }));
    app.post_form("/emails/bulk_send", &[("count", "10"), ("queue", "high")])
        .await;
    let high = queue_payloads(&app, "high").await;
    assert_eq!(high.len(), 10);
    assert_eq!(Job::parse(&high[0]).unwrap().queue(), Some("high"));
    let res = app
        .post_form("/emails/bulk_send", &[("count", "10"), ("queue", "low")])
        .await;
    assert!(
        app.follow(res)
            .await
            .contains("キューは default か high を選んでください")
    );
}

#[tokio::test]
async fn ten_thousand_jobs_are_enqueued_quickly() {
    let app = TestApp::with_redis().await;
    app.post_form("/emails/generate", &[("count", "10000")])
        .await;
    let started = std::time::Instant::now();
    let res = app
        .post_form("/emails/bulk_send", &[("count", "10000")])
        .await;
    eprintln!("bulk send of 10,000 took {:?}", started.elapsed());
    assert!(
        app.follow(res)
            .await
            .contains("10,000件の送信ジョブを作成しました")
    );
    assert_eq!(queue_payloads(&app, "default").await.len(), 10_000);
}

#[tokio::test]
async fn too_few_addresses_enqueue_nothing() {
    let app = TestApp::with_redis().await;
    app.seed(999).await;
    let res = app
        .post_form("/emails/bulk_send", &[("count", "1000")])
        .await;
    let page = app.follow(res).await;
    assert!(
        page.contains("送信対象が不足しています（現在999件、必要1,000件）"),
        "{page}"
    );
    let mut c = app.redis().conn().await;
    let keys: Vec<String> = c.keys("*").await.unwrap();
    assert!(keys.is_empty(), "redis must stay empty: {keys:?}");
    let jobs = crate::support::json(app.get("/mail_jobs.json").await).await;
    assert_eq!(jobs.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn counts_outside_the_limit_are_refused() {
    let app = TestApp::with(
        |c| c.bulk_send_max = 5_000,
        Some(test_services::RedisServer::start()),
    )
    .await;
    app.seed(10).await;
    // The 10,000 button is not offered above the maximum.
    let page = app.page("/").await;
    assert!(page.contains("5,000件送信"));
    assert!(!page.contains("10,000件送信"));
    for count in ["10000", "0", "-5", "abc", ""] {
        let res = app
            .post_form("/emails/bulk_send", &[("count", count)])
            .await;
        assert!(
            app.follow(res)
                .await
                .contains("送信件数は1〜5,000件で指定してください"),
            "{count}"
        );
    }
    assert!(queue_payloads(&app, "default").await.is_empty());
}

#[tokio::test]
async fn redis_down_is_a_clear_message_and_a_failed_send() {
    let app = TestApp::new().await; // Redis unreachable
    app.seed(10).await;
    let res = app.post_form("/emails/bulk_send", &[("count", "5")]).await;
    let page = app.follow(res).await;
    assert!(
        page.contains("ジョブを登録できませんでした: Redis に接続できません"),
        "{page}"
    );
    assert!(page.contains("Redis に接続できません"));
    let jobs = crate::support::json(app.get("/mail_jobs.json").await).await;
    assert_eq!(jobs[0]["status"], "failed");
}

#[tokio::test]
async fn redis_out_of_memory_part_way_says_how_many_and_why() {
    let app = TestApp::with_redis().await;
    app.post_form("/emails/generate", &[("count", "5000")])
        .await;
    // Room for about a third of 5,000 jobs, then Redis answers OOM (the noeviction policy
    // Sidekiq needs).
    let mut c = app.redis().conn().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut c)
        .await
        .unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for (k, v) in [
        ("maxmemory-policy", "noeviction".to_string()),
        ("maxmemory", (used + 600_000).to_string()),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let res = app
        .post_form("/emails/bulk_send", &[("count", "5000")])
        .await;
    let page = app.follow(res).await;
    let queued = queue_payloads(&app, "default").await.len();
    assert!(queued > 0 && queued < 5000, "{queued} queued");
    let told = format!(
        "5,000件中 {}件だけ送信ジョブを登録しました",
        thousands(queued)
    );
    assert!(page.contains(&told), "{told} in {page}");
    assert!(
        page.contains("Redis のメモリが上限（maxmemory）に達しています"),
        "{page}"
    );
    // The record counts what is really queued, so the send can complete.
    let jobs = crate::support::json(app.get("/mail_jobs.json").await).await;
    assert_eq!(jobs[0]["total_count"], queued);
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
