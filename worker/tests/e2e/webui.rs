//! The real Sidekiq::Web 6.4, 7.3 and 8.1 (each on its own Ruby) render our data and their
//! buttons drive our worker. Every test runs once per version (`<test>::sidekiq_8_1`, …).

use super::*;
use serde_json::json;
use sidekiq_wire::{Client, Job, Timestamp};
use test_services::{Fault, SidekiqVersion, SidekiqWeb, on_every_sidekiq, wait_until};

on_every_sidekiq!(
    every_page_renders_our_data,
    retries_and_dead_buttons_drive_the_worker,
    scheduled_add_to_queue_and_queue_delete,
    quiet_and_stop_from_the_busy_page_drive_the_real_binary,
);

/// The `<score>-<jid>` keys of the jobs linked from a Retries, Scheduled or Dead list page.
pub fn job_keys(html: &str, section: &str) -> Vec<String> {
    let re = regex_lite::Regex::new(&format!(
        r"/sidekiq/{section}/([0-9.e+\-]+-[0-9A-Za-z]{{24}})"
    ))
    .unwrap();
    let mut keys: Vec<String> = re.captures_iter(html).map(|c| c[1].to_owned()).collect();
    keys.dedup();
    keys
}

/// The key of the first job of a list page.
pub fn job_key(html: &str, section: &str) -> String {
    job_keys(html, section)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no /{section}/<key> link in page:\n{html}"))
}

/// Opens the first job of a Retries/Scheduled/Dead list and presses one of its buttons.
pub async fn press_on_first_job(web: &SidekiqWeb, section: &str, button: (&str, &str)) -> u16 {
    let (_, list) = web.get(&format!("/{section}")).await;
    let page = format!("/{section}/{}", job_key(&list, section));
    web.submit(&page, &page, &[button]).await
}

/// Ticks the first job of a list page and presses a bulk button under the list (Kill lives
/// only there).
async fn press_on_list(web: &SidekiqWeb, section: &str, button: (&str, &str)) -> u16 {
    let (_, list) = web.get(&format!("/{section}")).await;
    let key = job_key(&list, section);
    let page = format!("/{section}");
    web.submit(&page, &page, &[("key[]", key.as_str()), button])
        .await
}

/// The Success and Failure cells of `class`'s row on the Metrics page (7.x and 8.x).
pub fn metrics_row(html: &str, class: &str) -> Option<(u64, u64)> {
    let re = regex_lite::Regex::new(&format!(
        r#"(?s)>{class}</a></code>\s*</div>\s*</td>\s*<td class="num">(?:<span[^>]*>)?([0-9,]+)(?:</span>)?</td>\s*<td class="num">(?:<span[^>]*>)?([0-9,]+)(?:</span>)?</td>"#
    ))
    .unwrap();
    let c = re.captures(html)?;
    let n = |i: usize| c[i].replace(',', "").parse().unwrap();
    Some((n(1), n(2)))
}

async fn every_page_renders_our_data(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let client = Client::connect(&redis.url()).await.unwrap();
    let mut s = settings(&redis, &smtp);
    // Keep the stalled job running while we look, however slow the pages are under load.
    s.smtp_timeout = Duration::from_secs(120);
    s.job_timeout = Duration::from_secs(120);
    let worker = start(s).await;
    for i in 0..2 {
        client
            .push(mail(&format!("ok{i}@example.test"), 1))
            .await
            .unwrap();
    }
    smtp.wait_for(2, Duration::from_secs(10)).await;
    smtp.push_fault(Fault::Reply(451, "4.2.0 later".into()));
    let retry_jid = client
        .push(
            mail("retry@example.test", 1)
                .with("backtrace", json!(5))
                .unwrap(),
        )
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "retry entry", || async {
        (redis.zcard("retry").await == 1).then_some(())
    })
    .await;
    let dead_jid = client
        .push(Job::new("MailSenderJob", vec![json!({"name": "no to"})]))
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "dead entry", || async {
        (redis.zcard("dead").await == 1).then_some(())
    })
    .await;
    let later_jid = client
        .schedule(
            mail("later@example.test", 1),
            Timestamp::now().plus_secs(3600.0),
        )
        .await
        .unwrap();
    smtp.push_fault(Fault::Stall);
    let busy_jid = client.push(mail("busy@example.test", 1)).await.unwrap();
    let web = SidekiqWeb::start_version(v, &redis.url()).await;
    // Stats reach Redis with the next heartbeat; wait for the running job and all four runs.
    let stats: Value = wait_until(
        Duration::from_secs(20),
        "busy = 1 and flushed stats on /stats",
        || async {
            let (status, body) = web.get("/stats").await;
            assert_eq!(status, 200, "{v}: /stats");
            let v: Value = serde_json::from_str(&body).unwrap();
            let s = &v["sidekiq"];
            let flushed = s["processed"].as_u64() >= Some(4) && s["failed"].as_u64() >= Some(2);
            (s["busy"] == 1 && flushed).then_some(v)
        },
    )
    .await;
    let s = &stats["sidekiq"];
    assert_eq!(
        (
            s["processed"].as_u64(),
            s["failed"].as_u64(),
            s["processes"].as_u64(),
            s["retries"].as_u64(),
            s["dead"].as_u64(),
            s["scheduled"].as_u64()
        ),
        (Some(4), Some(2), Some(1), Some(1), Some(1), Some(1)),
        "{v}: /stats"
    );

    let (status, dash) = web.get("/").await;
    assert_eq!(status, 200, "{v}: Dashboard");
    assert!(dash.contains("redis_version"), "{v}: Redis panel");
    let (status, busy) = web.get("/busy").await;
    assert_eq!(status, 200, "{v}: Busy");
    assert!(
        busy.contains(worker.identity()),
        "{v}: our process is listed"
    );
    // 7.x/8.x wrap numbers for the script's number formatting: `<span data-nwp="0">10</span>`.
    let cell = |n: u32| {
        regex_lite::Regex::new(&format!(
            r#"<td( class="num")?>(<span data-nwp="0">)?{n}(</span>)?</td>"#
        ))
        .unwrap()
    };
    assert!(
        cell(10).is_match(&busy),
        "{v}: its concurrency (threads) is shown"
    );
    assert!(cell(1).is_match(&busy), "{v}: and its busy count");
    assert!(
        busy.contains("busy@example.test") && busy.contains("MailSenderJob"),
        "{v}: the running job is listed"
    );
    assert!(
        busy.contains("high") && busy.contains("default"),
        "{v}: queues"
    );
    let (status, queues) = web.get("/queues").await;
    assert_eq!(status, 200, "{v}: Queues");
    assert!(queues.contains("default"));
    let (status, retries) = web.get("/retries").await;
    assert_eq!(status, 200, "{v}: Retries");
    assert!(retries.contains("SmtpTransientError"));
    let key = job_key(&retries, "retries");
    assert!(key.ends_with(&retry_jid));
    let (status, page) = web.get(&format!("/retries/{key}")).await;
    assert_eq!(status, 200, "{v}: retry job page");
    assert!(page.contains(&retry_jid) && page.contains("retry@example.test"));
    assert!(page.contains("SmtpTransientError"));
    let (status, scheduled) = web.get("/scheduled").await;
    assert_eq!(status, 200, "{v}: Scheduled");
    let key = job_key(&scheduled, "scheduled");
    assert!(key.ends_with(&later_jid));
    let (status, page) = web.get(&format!("/scheduled/{key}")).await;
    assert_eq!(status, 200, "{v}: scheduled job page");
    assert!(page.contains("later@example.test"));
    let (status, morgue) = web.get("/morgue").await;
    assert_eq!(status, 200, "{v}: Dead");
    let key = job_key(&morgue, "morgue");
    assert!(key.ends_with(&dead_jid));
    let (status, page) = web.get(&format!("/morgue/{key}")).await;
    assert_eq!(status, 200, "{v}: dead job page");
    assert!(page.contains("ArgumentError"));

    // Metrics (7.x/8.x): two deliveries, the 451 and the bad payload; the stalled job has
    // not finished. Our heartbeat writes both key layouts; each version reads its own.
    if v.has_metrics() {
        // Written by the same heartbeat as the stats; polled in case it lands between pages.
        let counts = wait_until(
            Duration::from_secs(10),
            "MailSenderJob 2 / 2 on the Metrics page",
            || async {
                let (status, metrics) = web.get("/metrics").await;
                assert_eq!(status, 200, "{v}: Metrics");
                metrics_row(&metrics, "MailSenderJob").filter(|c| *c == (2, 2))
            },
        )
        .await;
        assert_eq!(counts, (2, 2), "{v}: success / failure");
        let (status, page) = web.get("/metrics/MailSenderJob").await;
        assert_eq!(status, 200, "{v}: job metrics page");
        assert!(page.contains("MailSenderJob"));
    } else {
        let (status, _) = web.get("/metrics").await;
        assert_eq!(status, 404, "{v} has no Metrics page");
    }
    let _ = busy_jid;
    worker.stop();
    worker.wait().await.unwrap();
    assert_eq!(
        redis.llen("queue:default").await,
        1,
        "the job still running at the deadline was pushed back"
    );
    assert_eq!(inprogress_total(&redis).await, 0);
}

async fn retries_and_dead_buttons_drive_the_worker(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let client = Client::connect(&redis.url()).await.unwrap();
    let worker = start(settings(&redis, &smtp)).await;
    let web = SidekiqWeb::start_version(v, &redis.url()).await;
    for _ in 0..4 {
        smtp.push_fault(Fault::Reply(451, "4.2.0 later".into()));
    }
    for to in ["a", "b", "c", "d"] {
        client
            .push(mail(&format!("{to}@example.test"), 2))
            .await
            .unwrap();
    }
    wait_until(Duration::from_secs(10), "4 retries", || async {
        (redis.zcard("retry").await == 4).then_some(())
    })
    .await;
    assert_eq!(
        web.forged_post("/retries/all/delete", &[("delete", "Delete")])
            .await,
        403,
        "{v}: a cross-site POST is refused"
    );
    assert_eq!(redis.zcard("retry").await, 4);

    // Retry Now ⇒ back in the queue (retry_count - 1) ⇒ our worker delivers it.
    assert_eq!(
        press_on_first_job(&web, "retries", ("retry", "Retry Now")).await,
        302,
        "{v}: Retry Now"
    );
    smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(redis.zcard("retry").await, 3);

    // Kill (ticked on the list) ⇒ dead set.
    assert_eq!(
        press_on_list(&web, "retries", ("kill", "Kill")).await,
        302,
        "{v}: Kill"
    );
    assert_eq!(redis.zcard("dead").await, 1);
    assert_eq!(redis.zcard("retry").await, 2);

    // Delete ⇒ gone.
    assert_eq!(
        press_on_first_job(&web, "retries", ("delete", "Delete")).await,
        302,
        "{v}: Delete"
    );
    assert_eq!(redis.zcard("retry").await, 1);

    // Retry All ⇒ the last one is delivered.
    assert_eq!(
        web.submit("/retries", "/retries/all/retry", &[("retry", "Retry All")])
            .await,
        302,
        "{v}: Retry All"
    );
    smtp.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(redis.zcard("retry").await, 0);

    // The killed and the deleted job never reach the worker again: the progress
    // reconciliation counts them as failed instead of leaving them "retrying" forever.
    wait_until(
        Duration::from_secs(15),
        "killed and deleted jobs counted as failed",
        || async {
            let p = progress(&redis, 2).await;
            (p.sent == 2 && p.failed == 2 && p.retrying == 0).then_some(())
        },
    )
    .await;

    // Retry Now from Dead ⇒ the worker runs it again and it is delivered (failed ⇒ sent).
    assert_eq!(
        press_on_first_job(&web, "morgue", ("retry", "Retry Now")).await,
        302,
        "{v}: Retry Now from Dead"
    );
    smtp.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(redis.zcard("dead").await, 0);
    wait_until(
        Duration::from_secs(5),
        "revived job counted as sent",
        || async {
            let p = progress(&redis, 2).await;
            (p.sent == 3 && p.failed == 1 && p.retrying == 0).then_some(())
        },
    )
    .await;

    // Delete from Dead ⇒ gone for good.
    client
        .push(Job::new("MailSenderJob", vec![json!({"name": "no to"})]))
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "dead entry", || async {
        (redis.zcard("dead").await == 1).then_some(())
    })
    .await;
    assert_eq!(
        press_on_first_job(&web, "morgue", ("delete", "Delete")).await,
        302,
        "{v}: Delete from Dead"
    );
    assert_eq!(redis.zcard("dead").await, 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.count(), 3, "nothing else was sent");
    assert_eq!(redis.llen("queue:default").await, 0);
    worker.stop();
    worker.wait().await.unwrap();
}

async fn scheduled_add_to_queue_and_queue_delete(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let client = Client::connect(&redis.url()).await.unwrap();
    let worker = start(settings(&redis, &smtp)).await;
    let web = SidekiqWeb::start_version(v, &redis.url()).await;
    let jid = client
        .schedule(
            mail("scheduled@example.test", 4),
            Timestamp::now().plus_secs(3600.0),
        )
        .await
        .unwrap();
    // Add to queue ⇒ pushed by the Web UI (8.x writes int-ms enqueued_at) ⇒ delivered now.
    assert_eq!(
        press_on_first_job(&web, "scheduled", ("add_to_queue", "Add to queue")).await,
        302,
        "{v}: Add to queue"
    );
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails[0].to, vec!["scheduled@example.test".to_owned()]);
    assert_eq!(redis.zcard("schedule").await, 0);
    wait_until(Duration::from_secs(5), "counted as sent", || async {
        (progress(&redis, 4).await.sent == 1).then_some(())
    })
    .await;
    let _ = jid;

    // Delete a queue nobody works on: the jobs and the name are gone, the worker carries on.
    for i in 0..3 {
        client
            .push(mail(&format!("low{i}@example.test"), None).with_queue("low"))
            .await
            .unwrap();
    }
    let (_, queues) = web.get("/queues").await;
    assert!(queues.contains("/sidekiq/queues/low"), "{v}: queue listed");
    let (status, page) = web.get("/queues/low").await;
    assert_eq!(status, 200, "{v}: queue page");
    assert!(page.contains("low0@example.test"));
    assert_eq!(
        web.submit("/queues", "/queues/low", &[("delete", "Delete")])
            .await,
        302,
        "{v}: delete queue"
    );
    assert_eq!(redis.llen("queue:low").await, 0);
    let mut c = redis.conn().await;
    let names: Vec<String> = redis::cmd("SMEMBERS")
        .arg("queues")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!names.contains(&"low".to_owned()), "{v}: {names:?}");
    let (_, queues) = web.get("/queues").await;
    assert!(!queues.contains("/sidekiq/queues/low"), "{v}: queue gone");
    client.push(mail("after@example.test", 4)).await.unwrap();
    smtp.wait_for(2, Duration::from_secs(10)).await;
    worker.stop();
    worker.wait().await.unwrap();
}

async fn quiet_and_stop_from_the_busy_page_drive_the_real_binary(v: SidekiqVersion) {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let mut child = spawn_binary(&binary_env(&redis, smtp.port()));
    let mut c = redis.conn().await;
    let identity: String = wait_until(Duration::from_secs(15), "process registered", || {
        let mut c = c.clone();
        async move {
            let m: Vec<String> = redis::cmd("SMEMBERS")
                .arg("processes")
                .query_async(&mut c)
                .await
                .unwrap();
            m.into_iter().next()
        }
    })
    .await;
    let web = SidekiqWeb::start_version(v, &redis.url()).await;
    let status = web
        .submit(
            "/busy",
            "/busy",
            &[("identity", identity.as_str()), ("quiet", "1")],
        )
        .await;
    assert_eq!(status, 302, "{v}: Quiet");
    wait_until(Duration::from_secs(5), "quiet=true", || {
        let (mut c, id) = (c.clone(), identity.clone());
        async move {
            let q: Option<String> = redis::cmd("HGET")
                .arg(&id)
                .arg("quiet")
                .query_async(&mut c)
                .await
                .unwrap();
            (q.as_deref() == Some("true")).then_some(())
        }
    })
    .await;
    let (_, busy) = web.get("/busy").await;
    assert!(
        busy.contains(r#"<span class="label label-danger">quiet</span>"#),
        "{v}: Busy page shows the quiet label"
    );
    let client = Client::connect(&redis.url()).await.unwrap();
    client.push(mail("waiting@example.test", 3)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        redis.llen("queue:default").await,
        1,
        "a quiet worker fetches nothing"
    );
    assert_eq!(smtp.count(), 0);

    let status = web
        .submit(
            "/busy",
            "/busy",
            &[("identity", identity.as_str()), ("stop", "1")],
        )
        .await;
    assert_eq!(status, 302, "{v}: Stop");
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("worker exits")
        .unwrap();
    assert!(exit.success(), "Stop exits 0, got {exit:?}");
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("processes")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(members.is_empty(), "it left `processes`");
    assert_eq!(
        redis.llen("queue:default").await,
        1,
        "the waiting job is still there"
    );
}
