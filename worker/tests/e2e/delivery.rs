//! Happy path: Ruby-enqueued jobs are delivered; heartbeat, stats, metrics and health.

use super::*;
use mail_parser::MimeHeaders;
use sidekiq_wire::keys;
use std::collections::BTreeSet;
use test_services::wait_until;

#[tokio::test]
async fn ruby_enqueued_mail_jobs_are_delivered_with_text_and_html_parts() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let jids = ruby_push_mail(&redis, 50, 7, "default", false).await;
    assert_eq!(jids.len(), 50);
    let worker = start(settings(&redis, &smtp)).await;
    let mails = smtp.wait_for(50, Duration::from_secs(30)).await;
    let recipients: BTreeSet<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    let expected: BTreeSet<String> = (1..=50).map(|i| format!("user{i}@example.test")).collect();
    assert_eq!(recipients, expected);
    for m in &mails {
        assert_eq!(m.from, "test@example.com");
        let parsed = m.parsed();
        assert_eq!(parsed.subject(), Some("テスト送信メール"));
        let i: usize = m.to[0]
            .trim_start_matches("user")
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let text = parsed.body_text(0).unwrap();
        let html = parsed.body_html(0).unwrap();
        assert!(
            text.contains(&format!("こんにちは、User {i}さん")),
            "{text}"
        );
        assert!(
            html.contains(&format!("こんにちは、User {i}さん")),
            "{html}"
        );
        assert!(html.contains("送信時刻: "));
        let types: Vec<String> = parsed
            .parts
            .iter()
            .filter_map(|p| {
                p.content_type()
                    .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            })
            .collect();
        assert!(
            types.contains(&"multipart/alternative".to_string()),
            "{types:?}"
        );
    }
    wait_until(Duration::from_secs(10), "progress sent=50", || async {
        (progress(&redis, 7).await.sent == 50).then_some(())
    })
    .await;
    assert_eq!(smtp.count(), 50, "no extra mails");
    let p = progress(&redis, 7).await;
    assert_eq!((p.failed, p.retrying), (0, 0));
    assert_eq!(redis.llen("queue:default").await, 0);
    assert_eq!(inprogress_total(&redis).await, 0);
    wait_until(Duration::from_secs(5), "stat:processed flushed", || async {
        let mut c = redis.conn().await;
        let n: Option<u64> = redis::cmd("GET")
            .arg("stat:processed")
            .query_async(&mut c)
            .await
            .unwrap();
        (n == Some(50)).then_some(())
    })
    .await;
    worker.stop();
    worker.wait().await.unwrap();
}

#[tokio::test]
async fn heartbeat_has_what_the_6_4_7_and_8_busy_pages_need() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let worker = start(settings(&redis, &smtp)).await;
    let id = worker.identity().to_owned();
    let mut c = redis.conn().await;
    let fields: std::collections::HashMap<String, String> =
        wait_until(Duration::from_secs(5), "heartbeat", || {
            let mut c = c.clone();
            let id = id.clone();
            async move {
                let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                    .arg(&id)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                (!h.is_empty()).then_some(h)
            }
        })
        .await;
    let info: Value = serde_json::from_str(&fields["info"]).unwrap();
    assert_eq!(info["identity"], id);
    assert_eq!(info["concurrency"], 10);
    assert_eq!(info["queues"], serde_json::json!(["high", "default"]));
    assert_eq!(
        info["weights"],
        serde_json::json!([{"high": 2, "default": 1}])
    );
    assert_eq!(info["capsules"]["default"]["weights"]["high"], 2);
    assert_eq!(info["embedded"], false);
    assert!(info["started_at"].is_f64());
    assert!(
        fields["beat"].contains('.'),
        "beat is float seconds: {}",
        fields["beat"]
    );
    assert_eq!(fields["quiet"], "false");
    assert_eq!(fields["busy"], "0");
    assert_eq!(fields["concurrency"], "10");
    assert!(fields["rss"].parse::<u64>().unwrap() > 0);
    fields["rtt_us"].parse::<u64>().unwrap();
    fields["cpu"].parse::<f64>().unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&id)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((1..=60).contains(&ttl));
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("processes")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(members, vec![id.clone()]);
    // Ruby's API sees the process as Sidekiq would.
    let ruby = test_services::ruby::json(
        &redis.url(),
        r#"p = Sidekiq::ProcessSet.new.first
           puts JSON.generate({"identity" => p.identity, "concurrency" => p["concurrency"], "queues" => p["queues"], "quiet" => p.stopping?})"#,
    )
    .await;
    assert_eq!(ruby["identity"], id);
    assert_eq!(ruby["concurrency"], 10);
    assert_eq!(ruby["quiet"], false);
    worker.stop();
    worker.wait().await.unwrap();
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("processes")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(members.is_empty(), "a stopped worker leaves `processes`");
}

#[tokio::test]
async fn stats_and_metrics_page_keys_for_sidekiq_7_and_8() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    ruby_push_mail(&redis, 5, 1, "default", false).await;
    let worker = start(settings(&redis, &smtp)).await;
    smtp.wait_for(5, Duration::from_secs(20)).await;
    worker.stop();
    worker.wait().await.unwrap();
    let mut c = redis.conn().await;
    let now = chrono::Utc::now();
    let daily: Option<u64> = redis::cmd("GET")
        .arg(keys::stat_processed_daily(now))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(daily, Some(5));
    let ttl: i64 = redis::cmd("TTL")
        .arg(keys::stat_processed_daily(now))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 157_000_000, "daily stats live five years");
    // The minute may have rolled over between the jobs and now: look at both.
    let mut found = (0u64, 0u64, 0u64);
    for at in [now, now - chrono::Duration::minutes(1)] {
        for (key, slot) in [
            (keys::metrics_minute_v7(at), 0),
            (keys::metrics_minute_v8(at), 1),
            (keys::metrics_ten_minutes_v8(at), 2),
        ] {
            let p: Option<u64> = redis::cmd("HGET")
                .arg(&key)
                .arg("MailSenderJob|p")
                .query_async(&mut c)
                .await
                .unwrap();
            let n = p.unwrap_or(0);
            match slot {
                0 => found.0 += n,
                1 => found.1 += n,
                _ => found.2 += n,
            }
        }
    }
    assert_eq!(found.0, 5, "7.x j|%Y%m%d|%-H:%-M");
    assert_eq!(found.1, 5, "8.x j|%y%m%d|%-H:%M");
    assert!(found.2 >= 5, "8.x ten-minute hash");
    let hist_v7: Vec<String> = redis::cmd("KEYS")
        .arg("MailSenderJob-*")
        .query_async(&mut c)
        .await
        .unwrap();
    let hist_v8: Vec<String> = redis::cmd("KEYS")
        .arg("h|MailSenderJob-*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!hist_v7.is_empty() && !hist_v8.is_empty());
    let mut total = 0u64;
    for key in &hist_v8 {
        let counts: Vec<u64> = (0..26)
            .fold(
                redis::cmd("BITFIELD_RO").arg(key).to_owned(),
                |mut cmd, i| {
                    cmd.arg("GET").arg("u16").arg(format!("#{i}"));
                    cmd
                },
            )
            .query_async(&mut c)
            .await
            .unwrap();
        total += counts.iter().sum::<u64>();
    }
    assert_eq!(total, 5, "one histogram entry per successful execution");
}

#[tokio::test]
async fn metrics_and_health_endpoints() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    ruby_push_mail(&redis, 3, 2, "default", false).await;
    let worker = start(settings(&redis, &smtp)).await;
    smtp.wait_for(3, Duration::from_secs(20)).await;
    let base = format!("http://{}", worker.metrics_addr());
    let http = reqwest::Client::new();
    let body = wait_until(Duration::from_secs(5), "metrics", || async {
        let b = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        b.contains("sidekiq_jobs_executed_total{queue=\"default\",worker=\"MailSenderJob\"} 3")
            .then_some(b)
    })
    .await;
    assert!(
        body.contains("mailer_emails_sent_total{result=\"sent\"} 3"),
        "{body}"
    );
    assert!(
        body.contains("sidekiq_queue_enqueued_jobs{name=\"default\"} 0"),
        "{body}"
    );
    assert!(body.contains("sidekiq_queue_latency_seconds{name=\"default\"}"));
    assert!(body.contains("sidekiq_concurrency 10"));
    assert!(body.contains("process_resident_memory_bytes"));
    assert_eq!(
        http.get(format!("{base}/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    worker.quiet();
    let r = http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "quiet workers are not ready");
    assert_eq!(
        http.get(format!("{base}/health/live"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    worker.stop();
    worker.wait().await.unwrap();
}

#[tokio::test]
async fn a_stalled_or_dropped_smtp_connection_costs_no_worker_slot() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    smtp.push_fault(test_services::Fault::Stall);
    smtp.push_fault(test_services::Fault::Drop);
    let client = sidekiq_wire::Client::connect(&redis.url()).await.unwrap();
    let mut s = settings(&redis, &smtp);
    s.concurrency = 1; // one slot: if a failure leaked it, nothing after would run
    let worker = start(s).await;
    client.push(mail("a@example.test", 6)).await.unwrap();
    client.push(mail("b@example.test", 6)).await.unwrap();
    wait_until(Duration::from_secs(15), "two retries", || async {
        (redis.zcard("retry").await == 2).then_some(())
    })
    .await;
    client.push(mail("c@example.test", 6)).await.unwrap();
    smtp.wait_for(1, Duration::from_secs(10)).await;
    worker.clock().advance(60.0);
    smtp.wait_for(3, Duration::from_secs(15)).await;
    wait_until(Duration::from_secs(5), "exact progress", || async {
        let p = progress(&redis, 6).await;
        (p.sent == 3 && p.retrying == 0).then_some(())
    })
    .await;
    worker.stop();
    worker.wait().await.unwrap();
}
