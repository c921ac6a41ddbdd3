//! Another Rust service enqueuing with the `sidekiq` crate (spk/rust-sidekiq 0.14): its jobs
//! (integer-second timestamps, alphanumeric jids, `retry` as a number) are executed by
//! mail-worker and, once the worker has rewritten them into the retry or dead set, shown
//! correctly by the real Sidekiq::Web 6.4, 7.3 and 8.1.

use super::*;
use crate::webui::{job_key, press_on_first_job};
use serde_json::json;
use test_services::{Fault, SidekiqVersion, SidekiqWeb, on_every_sidekiq, wait_until};

on_every_sidekiq!(sidekiq_crate_jobs_show_correctly_once_rewritten);

/// The crate's client on a connection of our own (its constructor only reads `$REDIS_URL`).
async fn crate_client(redis: &RedisServer) -> sidekiq::Client {
    let manager = redis::Client::open(redis.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    sidekiq::Client::new(manager, sidekiq::ClientOpts::default())
}

/// A `MailSenderJob` as the crate builds it (retry 3, like our own jobs).
fn crate_mail(args: Value, queue: &str) -> sidekiq::Job {
    sidekiq::Job::new(
        "MailSenderJob".into(),
        vec![args],
        sidekiq::JobOpts {
            retry: 3,
            queue: queue.into(),
            ..Default::default()
        },
    )
}

fn to(addr: &str, mail_job_id: i64) -> Value {
    json!({"to": addr, "name": "Crate", "mail_job_id": mail_job_id})
}

#[tokio::test]
async fn sidekiq_crate_push_push_bulk_and_perform_in_are_executed() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let producer = crate_client(&redis).await;
    producer
        .push_async(crate_mail(to("single@example.test", 5), "default"))
        .await
        .unwrap();
    let bulk: Vec<sidekiq::Job> = (0..50)
        .map(|i| crate_mail(to(&format!("bulk{i}@example.test"), 5), "default"))
        .collect();
    producer.push_bulk_async(&bulk).await.unwrap();
    producer
        .perform_in_async(
            // The crate takes a `time::Duration`; converting avoids a dependency on `time`.
            Duration::from_secs(1).try_into().unwrap(),
            crate_mail(to("later@example.test", 5), "default"),
        )
        .await
        .unwrap();

    // What the crate wrote: integer-second timestamps (Sidekiq 8 would read them as ms).
    let mut c = redis.conn().await;
    let stored: String = redis::cmd("LINDEX")
        .arg("queue:default")
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert!(
        stored["created_at"].is_u64() && stored["enqueued_at"].is_u64(),
        "{stored}"
    );
    let now = sidekiq_wire::Timestamp::now().as_secs();
    assert!((stored["created_at"].as_f64().unwrap() - now).abs() < 30.0);
    assert_eq!(redis.llen("queue:default").await, 51);
    assert_eq!(redis.zcard("schedule").await, 1);

    let worker = start(settings(&redis, &smtp)).await;
    let mails = smtp.wait_for(52, Duration::from_secs(20)).await;
    let mut got: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    got.sort();
    let mut want: Vec<String> = (0..50).map(|i| format!("bulk{i}@example.test")).collect();
    want.extend(["later@example.test".into(), "single@example.test".into()]);
    want.sort();
    assert_eq!(got, want, "each job delivered exactly once");
    wait_until(Duration::from_secs(5), "52 counted as sent", || async {
        let p = progress(&redis, 5).await;
        (p.sent == 52 && p.failed == 0 && p.retrying == 0).then_some(())
    })
    .await;
    worker.stop();
    worker.wait().await.unwrap();
    assert_eq!(inprogress_total(&redis).await, 0);
}

/// The crate's documented caveat: `push_bulk` writes every job into the first job's queue.
#[tokio::test]
async fn sidekiq_crate_push_bulk_uses_the_first_jobs_queue() {
    let redis = RedisServer::start();
    let producer = crate_client(&redis).await;
    let jobs = vec![
        crate_mail(to("a@example.test", 6), "default"),
        crate_mail(to("b@example.test", 6), "high"),
    ];
    producer.push_bulk_async(&jobs).await.unwrap();
    assert_eq!(redis.llen("queue:default").await, 2);
    assert_eq!(redis.llen("queue:high").await, 0);
}

/// Every `<time datetime="YYYY-…">` on a page: Sidekiq renders each timestamp that way.
fn rendered_years(html: &str) -> Vec<i32> {
    let re = regex_lite::Regex::new(r#"datetime="(\d{4})-"#).unwrap();
    re.captures_iter(html)
        .map(|c| c[1].parse().unwrap())
        .collect()
}

fn this_year() -> i32 {
    use chrono::Datelike;
    chrono::Utc::now().year()
}

async fn sidekiq_crate_jobs_show_correctly_once_rewritten(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let producer = crate_client(&redis).await;
    let worker = start(settings(&redis, &smtp)).await;
    let web = SidekiqWeb::start_version(v, &redis.url()).await;

    // A transient SMTP failure ⇒ the worker writes the job into `retry`.
    smtp.push_fault(Fault::Reply(451, "4.2.0 later".into()));
    let retrying = crate_mail(to("crate-retry@example.test", 7), "default");
    let retry_jid = retrying.jid.clone();
    producer.push_async(retrying).await.unwrap();
    wait_until(Duration::from_secs(10), "retry entry", || async {
        (redis.zcard("retry").await == 1).then_some(())
    })
    .await;
    // Arguments without `to` ⇒ the worker writes the job into `dead`.
    let bad = crate_mail(json!({"name": "no address"}), "default");
    let dead_jid = bad.jid.clone();
    producer.push_async(bad).await.unwrap();
    wait_until(Duration::from_secs(10), "dead entry", || async {
        (redis.zcard("dead").await == 1).then_some(())
    })
    .await;

    let year = this_year();
    let (status, list) = web.get("/retries").await;
    assert_eq!(status, 200, "{v}: Retries");
    let key = job_key(&list, "retries");
    assert!(key.ends_with(&retry_jid), "{v}: {key}");
    let (status, page) = web.get(&format!("/retries/{key}")).await;
    assert_eq!(status, 200, "{v}: retry job page");
    assert!(page.contains("crate-retry@example.test") && page.contains("SmtpTransientError"));
    let years = rendered_years(&page);
    assert!(
        !years.is_empty() && years.iter().all(|y| (y - year).abs() <= 1),
        "{v}: every time on the retry job page is about now, got years {years:?}"
    );

    let (status, list) = web.get("/morgue").await;
    assert_eq!(status, 200, "{v}: Dead");
    let key = job_key(&list, "morgue");
    assert!(key.ends_with(&dead_jid), "{v}: {key}");
    let (status, page) = web.get(&format!("/morgue/{key}")).await;
    assert_eq!(status, 200, "{v}: dead job page");
    assert!(page.contains("ArgumentError"));
    let years = rendered_years(&page);
    assert!(
        !years.is_empty() && years.iter().all(|y| (y - year).abs() <= 1),
        "{v}: every time on the dead job page is about now, got years {years:?}"
    );

    // Retry Now re-pushes the crate's job through Ruby's client; the worker delivers it.
    assert_eq!(
        press_on_first_job(&web, "retries", ("retry", "Retry Now")).await,
        302,
        "{v}: Retry Now"
    );
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails[0].to, vec!["crate-retry@example.test".to_owned()]);
    wait_until(Duration::from_secs(5), "counted as sent", || async {
        let p = progress(&redis, 7).await;
        (p.sent == 1 && p.retrying == 0).then_some(())
    })
    .await;
    worker.stop();
    worker.wait().await.unwrap();
}
