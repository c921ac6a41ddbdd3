//! Failures: SMTP faults, retry timing, the dead set, bad payloads, exact progress — driven
//! step by step through [`mail_worker::Stepper`], so each test says exactly which attempt it
//! looks at and moves the clock instead of waiting.

use super::*;
use mail_worker::Decision;
use serde_json::json;
use sidekiq_wire::{Client, Job, Timestamp};
use test_services::Fault;

#[tokio::test]
async fn smtp_4xx_goes_to_the_retry_set_as_ruby_reads_it_then_succeeds_after_the_backoff() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    smtp.push_fault(Fault::Reply(451, "4.7.1 try again later".into()));
    let client = Client::connect(&redis.url()).await.unwrap();
    let jid = client
        .push(
            mail("r@example.test", 3)
                .with("backtrace", json!(true))
                .unwrap(),
        )
        .await
        .unwrap();
    let worker = stepper(&settings(&redis, &smtp)).await;
    let before = Timestamp::now().as_secs();
    let first = step(&worker).await;
    assert_eq!(first.jid, jid);
    assert!(
        matches!(first.decision, Decision::Retry { .. }),
        "{first:?}"
    );
    assert_eq!(redis.zcard("retry").await, 1);
    let (entry, score) = zmembers(&redis, "retry").await.remove(0);
    assert_eq!(entry["jid"], json!(jid));
    assert_eq!(entry["retry_count"], 0);
    assert_eq!(entry["error_class"], "SmtpTransientError");
    assert!(
        entry["error_message"].as_str().unwrap().contains("451"),
        "{entry}"
    );
    let failed_at = entry["failed_at"].as_f64().unwrap();
    assert!(entry["failed_at"].is_f64() && failed_at >= before - 1.0);
    let delay = score - failed_at;
    assert!(
        (15.0..25.0).contains(&delay),
        "first retry after 15 + rand(10) s, got {delay}"
    );
    assert_eq!(progress(&redis, 3).await.retrying, 1);
    // Ruby's RetrySet reads every field the Retries page shows.
    let ruby = test_services::ruby::json(
        &redis.url(),
        r##"j = Sidekiq::RetrySet.new.first
           puts JSON.generate({"jid" => j.jid, "klass" => j.klass, "queue" => j.queue, "count" => j["retry_count"],
             "error" => "#{j["error_class"]}: #{j["error_message"]}", "failed_at" => j["failed_at"].class.name,
             "backtrace" => j.error_backtrace, "at" => j.at.to_f})"##,
    )
    .await;
    assert_eq!(ruby["jid"], json!(jid));
    assert_eq!(ruby["klass"], "MailSenderJob");
    assert_eq!(ruby["queue"], "default");
    assert_eq!(ruby["count"], 0);
    assert_eq!(ruby["failed_at"], "Float");
    assert!(
        ruby["error"]
            .as_str()
            .unwrap()
            .starts_with("SmtpTransientError: ")
    );
    assert!(
        !ruby["backtrace"].as_array().unwrap().is_empty(),
        "error_backtrace decodes in Ruby"
    );
    assert!((ruby["at"].as_f64().unwrap() - score).abs() < 0.001);
    assert_eq!(smtp.count(), 0);
    // Not due yet: the poller leaves it where it is.
    assert_eq!(worker.enqueue_due().await.unwrap(), 0);
    assert_eq!(worker.process_one().await.unwrap(), Step::QueueEmpty);
    // Move the clock past the backoff: the poller enqueues it and it is delivered.
    worker.clock().advance(30.0);
    assert_eq!(worker.enqueue_due().await.unwrap(), 1);
    assert_eq!(step(&worker).await.decision, Decision::Delivered);
    assert_eq!(smtp.count(), 1);
    let p = progress(&redis, 3).await;
    assert!(p.sent == 1 && p.retrying == 0 && p.failed == 0, "{p:?}");
    assert_eq!(redis.zcard("retry").await, 0);
}

#[tokio::test]
async fn retry_3_ends_in_the_dead_set_after_four_attempts_read_by_ruby_dead_set() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    for _ in 0..4 {
        smtp.push_fault(Fault::Reply(421, "4.3.2 service not available".into()));
    }
    let client = Client::connect(&redis.url()).await.unwrap();
    let jid = client.push(mail("d@example.test", 4)).await.unwrap();
    let worker = stepper(&settings(&redis, &smtp)).await;
    for attempt in 0..3 {
        assert!(matches!(
            step(&worker).await.decision,
            Decision::Retry { .. }
        ));
        let (entry, score) = zmembers(&redis, "retry").await.remove(0);
        assert_eq!(entry["retry_count"], attempt);
        let last = entry
            .get("retried_at")
            .or(entry.get("failed_at"))
            .unwrap()
            .as_f64()
            .unwrap();
        let low = (attempt as f64).powi(4) + 15.0;
        let spread = 10.0 * (attempt as f64 + 1.0);
        assert!(
            (low - 0.01..low + spread).contains(&(score - last)),
            "attempt {attempt}: delay {}",
            score - last
        );
        if attempt > 0 {
            assert!(
                entry["retried_at"].is_f64(),
                "retried_at set from the second failure on"
            );
        }
        worker.clock().advance(low + spread + 1.0);
        assert_eq!(worker.enqueue_due().await.unwrap(), 1);
    }
    assert!(matches!(
        step(&worker).await.decision,
        Decision::Dead { .. }
    ));
    assert_eq!(redis.zcard("dead").await, 1);
    assert_eq!(redis.zcard("retry").await, 0);
    let p = progress(&redis, 4).await;
    assert_eq!((p.sent, p.failed, p.retrying), (0, 1, 0));
    let ruby = test_services::ruby::json(
        &redis.url(),
        r#"j = Sidekiq::DeadSet.new.first
           puts JSON.generate({"jid" => j.jid, "count" => j["retry_count"], "class" => j["error_class"]})"#,
    )
    .await;
    assert_eq!(
        ruby,
        json!({"jid": jid, "count": 3, "class": "SmtpTransientError"})
    );
    assert_eq!(smtp.transactions(), 4, "1 attempt + 3 retries");
}

#[tokio::test]
async fn smtp_5xx_is_permanent_and_goes_straight_to_the_dead_set() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    smtp.push_fault(Fault::Reply(550, "5.1.1 no such user".into()));
    let client = Client::connect(&redis.url()).await.unwrap();
    client.push(mail("nobody@example.test", 5)).await.unwrap();
    let worker = stepper(&settings(&redis, &smtp)).await;
    assert!(matches!(
        step(&worker).await.decision,
        Decision::Dead { .. }
    ));
    assert_eq!(redis.zcard("dead").await, 1);
    let (entry, _) = zmembers(&redis, "dead").await.remove(0);
    assert_eq!(entry["error_class"], "SmtpPermanentError");
    assert!(entry["error_message"].as_str().unwrap().contains("550"));
    assert_eq!(redis.zcard("retry").await, 0);
    assert_eq!(progress(&redis, 5).await.failed, 1);
}

#[tokio::test]
async fn stalled_and_dropped_smtp_connections_are_retried() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    smtp.push_fault(Fault::Stall);
    smtp.push_fault(Fault::Drop);
    let client = Client::connect(&redis.url()).await.unwrap();
    let worker = stepper(&settings(&redis, &smtp)).await;
    client.push(mail("a@example.test", 6)).await.unwrap();
    client.push(mail("b@example.test", 6)).await.unwrap();
    let steps = worker.drain().await.unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(redis.zcard("retry").await, 2);
    let classes: Vec<String> = zmembers(&redis, "retry")
        .await
        .iter()
        .map(|(e, _)| e["error_class"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        classes.contains(&"SmtpTimeoutError".to_string()),
        "a stalled server times out after SMTP_TIMEOUT: {classes:?}"
    );
    assert!(
        classes.contains(&"SmtpTransientError".to_string()),
        "a dropped connection is transient: {classes:?}"
    );
    client.push(mail("c@example.test", 6)).await.unwrap();
    assert_eq!(step(&worker).await.decision, Decision::Delivered);
    worker.clock().advance(60.0);
    assert_eq!(worker.enqueue_due().await.unwrap(), 2);
    assert_eq!(worker.drain().await.unwrap().len(), 2);
    assert_eq!(smtp.count(), 3);
    let p = progress(&redis, 6).await;
    assert!(p.sent == 3 && p.retrying == 0, "exact progress: {p:?}");
}

#[tokio::test]
async fn malformed_json_unknown_class_and_bad_args_go_to_the_dead_set_never_dropped() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let mut c = redis.conn().await;
    let raw = "{not json";
    let _: () = redis::pipe()
        .sadd("queues", "default")
        .lpush("queue:default", raw)
        .lpush(
            "queue:default",
            Job::new("Billing::Invoice", vec![json!(1)]).to_json_string(),
        )
        .lpush(
            "queue:default",
            Job::new("MailSenderJob", vec![json!("just a string")]).to_json_string(),
        )
        .lpush(
            "queue:default",
            Job::new("MailSenderJob", vec![json!({"name": "no address"})]).to_json_string(),
        )
        .query_async(&mut c)
        .await
        .unwrap();
    let worker = stepper(&settings(&redis, &smtp)).await;
    let steps = worker.drain().await.unwrap();
    assert_eq!(steps.len(), 4);
    assert!(
        steps
            .iter()
            .all(|s| matches!(s.decision, Decision::Dead { .. }) && s.recorded),
        "{steps:?}"
    );
    assert_eq!(redis.zcard("dead").await, 4);
    let dead = zmembers(&redis, "dead").await;
    assert!(
        dead.iter().any(|(e, _)| e == &Value::String(raw.into())),
        "malformed JSON kept raw"
    );
    let classes: Vec<&str> = dead
        .iter()
        .filter_map(|(e, _)| e["error_class"].as_str())
        .collect();
    assert!(classes.contains(&"NameError"), "{classes:?}");
    assert_eq!(
        classes.iter().filter(|c| **c == "ArgumentError").count(),
        2,
        "{classes:?}"
    );
    assert_eq!(redis.llen("queue:default").await, 0);
    assert_eq!(inprogress_total(&redis).await, 0);
    // The Dead page renders all of them (the raw one as invalid JSON).
    let web = test_services::SidekiqWeb::start(&redis.url()).await;
    let (status, body) = web.get("/morgue").await;
    assert_eq!(status, 200);
    assert!(body.contains("Billing::Invoice"));
    worker.flush_stats().await.unwrap();
    // Ruby does not count malformed JSON in stats; the other three count as processed+failed.
    let processed: Option<u64> = redis::cmd("GET")
        .arg("stat:processed")
        .query_async(&mut c)
        .await
        .unwrap();
    let failed: Option<u64> = redis::cmd("GET")
        .arg("stat:failed")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!((processed, failed), (Some(3), Some(3)));
}

#[tokio::test]
async fn simulated_errors_end_with_exact_counts() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let n = 200;
    ruby_push_mail(&redis, n, 9, "default", true).await;
    let worker = stepper(&settings(&redis, &smtp)).await;
    // Each round runs everything enqueued, then moves the clock past every backoff
    // (≤ 3⁴+15+40 s), until all jobs have an outcome.
    let mut rounds = 0;
    let p = loop {
        worker.drain().await.unwrap();
        let p = progress(&redis, 9).await;
        if p.sent + p.failed == n as i64 && p.retrying == 0 {
            break p;
        }
        rounds += 1;
        assert!(rounds <= 4, "retry: 3 means at most 4 rounds: {p:?}");
        worker.clock().advance(140.0);
        worker.enqueue_due().await.unwrap();
    };
    assert_eq!(
        p.sent as usize,
        smtp.count(),
        "sent counts messages the SMTP server accepted"
    );
    assert_eq!(p.failed as u64, redis.zcard("dead").await);
    assert!(p.sent > 150, "0.3⁴ ≈ 1% of jobs die, got {p:?}");
    assert_eq!(inprogress_total(&redis).await, 0);
}
