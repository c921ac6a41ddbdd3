//! The real Sidekiq::Web 6.4.1 renders our data and its buttons drive our worker.

use super::*;
use serde_json::json;
use sidekiq_wire::{Client, Job, Timestamp};
use test_services::{Fault, SidekiqWeb, wait_until};

/// The `<score>-<jid>` key of the first job linked from a Retries or Dead list page.
fn job_key(html: &str, section: &str) -> String {
    let re = regex_lite::Regex::new(&format!(r"/sidekiq/{section}/([0-9.e+\-]+-[0-9a-f]{{24}})"))
        .unwrap();
    re.captures(html)
        .unwrap_or_else(|| panic!("no /{section}/<key> link in page"))
        .get(1)
        .unwrap()
        .as_str()
        .to_owned()
}

/// Opens the first job of a Retries/Dead list and presses one of its buttons.
async fn press_on_first_job(web: &SidekiqWeb, section: &str, button: (&str, &str)) -> u16 {
    let (_, list) = web.get(&format!("/{section}")).await;
    let page = format!("/{section}/{}", job_key(&list, section));
    web.submit(&page, &page, &[button]).await
}

#[tokio::test]
async fn every_page_renders_our_data() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let client = Client::connect(&redis.url()).await.unwrap();
    let mut s = settings(&redis, &smtp);
    s.smtp_timeout = Duration::from_secs(60); // keep the stalled job running while we look
    let worker = start(s).await;
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
    let web = SidekiqWeb::start(&redis.url()).await;
    // Stats reach Redis with the next heartbeat; wait for the running job and both failures.
    let stats: Value = wait_until(
        Duration::from_secs(10),
        "busy = 1 and flushed stats on /stats",
        || async {
            let (status, body) = web.get("/stats").await;
            assert_eq!(status, 200);
            let v: Value = serde_json::from_str(&body).unwrap();
            let s = &v["sidekiq"];
            let flushed = s["processed"].as_u64() >= Some(2) && s["failed"].as_u64() >= Some(2);
            (s["busy"] == 1 && flushed).then_some(v)
        },
    )
    .await;
    let s = &stats["sidekiq"];
    assert_eq!(
        (
            s["processes"].as_u64(),
            s["retries"].as_u64(),
            s["dead"].as_u64(),
            s["scheduled"].as_u64()
        ),
        (Some(1), Some(1), Some(1), Some(1))
    );

    let (status, _) = web.get("/").await;
    assert_eq!(status, 200, "Dashboard");
    let (status, busy) = web.get("/busy").await;
    assert_eq!(status, 200, "Busy");
    assert!(busy.contains(worker.identity()), "our process is listed");
    assert!(
        busy.contains("<td>10</td>"),
        "its concurrency (threads) is shown"
    );
    assert!(busy.contains("<td>1</td>"), "and its busy count");
    assert!(
        busy.contains("busy@example.test"),
        "the running job is listed"
    );
    assert!(busy.contains("MailSenderJob"));
    let (status, queues) = web.get("/queues").await;
    assert_eq!(status, 200, "Queues");
    assert!(queues.contains("default"));
    let (status, retries) = web.get("/retries").await;
    assert_eq!(status, 200, "Retries");
    assert!(retries.contains("SmtpTransientError"));
    let key = job_key(&retries, "retries");
    assert!(key.ends_with(&retry_jid));
    let (status, page) = web.get(&format!("/retries/{key}")).await;
    assert_eq!(status, 200, "retry job page");
    assert!(page.contains(&retry_jid) && page.contains("retry@example.test"));
    assert!(page.contains("SmtpTransientError"));
    let (status, scheduled) = web.get("/scheduled").await;
    assert_eq!(status, 200, "Scheduled");
    assert!(scheduled.contains(&later_jid) || scheduled.contains("later@example.test"));
    let (status, morgue) = web.get("/morgue").await;
    assert_eq!(status, 200, "Dead");
    let key = job_key(&morgue, "morgue");
    assert!(key.ends_with(&dead_jid));
    let (status, page) = web.get(&format!("/morgue/{key}")).await;
    assert_eq!(status, 200, "dead job page");
    assert!(page.contains("ArgumentError"));
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

#[tokio::test]
async fn retry_now_kill_and_delete_from_the_web_ui() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let client = Client::connect(&redis.url()).await.unwrap();
    let worker = start(settings(&redis, &smtp)).await;
    let web = SidekiqWeb::start(&redis.url()).await;
    for _ in 0..3 {
        smtp.push_fault(Fault::Reply(451, "4.2.0 later".into()));
    }
    for to in ["a@example.test", "b@example.test", "c@example.test"] {
        client.push(mail(to, 2)).await.unwrap();
    }
    wait_until(Duration::from_secs(10), "3 retries", || async {
        (redis.zcard("retry").await == 3).then_some(())
    })
    .await;
    assert_eq!(
        web.post_without_token("/retries", &[("delete", "Delete")])
            .await,
        403,
        "CSRF is enforced"
    );

    // Retry Now ⇒ back in the queue (retry_count - 1) ⇒ our worker delivers it.
    assert_eq!(
        press_on_first_job(&web, "retries", ("retry", "Retry")).await,
        302
    );
    smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(redis.zcard("retry").await, 2);

    // Kill ⇒ dead set.
    assert_eq!(
        press_on_first_job(&web, "retries", ("kill", "Kill")).await,
        302
    );
    assert_eq!(redis.zcard("dead").await, 1);

    // Delete ⇒ gone.
    assert_eq!(
        press_on_first_job(&web, "retries", ("delete", "Delete")).await,
        302
    );
    assert_eq!(redis.zcard("retry").await, 0);

    // The killed and the deleted job never reach the worker again: the progress
    // reconciliation counts them as failed instead of leaving them "retrying" forever.
    wait_until(
        Duration::from_secs(15),
        "killed and deleted jobs counted as failed",
        || async {
            let p = progress(&redis, 2).await;
            (p.sent == 1 && p.failed == 2 && p.retrying == 0).then_some(())
        },
    )
    .await;

    // Retry Now from Dead ⇒ the worker runs it again and it is delivered (failed ⇒ sent).
    assert_eq!(
        press_on_first_job(&web, "morgue", ("retry", "Retry")).await,
        302
    );
    smtp.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(redis.zcard("dead").await, 0);
    assert_eq!(smtp.count(), 2);
    wait_until(
        Duration::from_secs(5),
        "revived job counted as sent",
        || async {
            let p = progress(&redis, 2).await;
            (p.sent == 2 && p.failed == 1 && p.retrying == 0).then_some(())
        },
    )
    .await;
    worker.stop();
    worker.wait().await.unwrap();
}

#[tokio::test]
async fn quiet_and_stop_from_the_busy_page_drive_the_real_binary() {
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
    let web = SidekiqWeb::start(&redis.url()).await;
    let status = web
        .submit(
            "/busy",
            "/busy",
            &[("identity", identity.as_str()), ("quiet", "1")],
        )
        .await;
    assert_eq!(status, 302);
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
        "Busy page shows the quiet label"
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
    assert_eq!(status, 302);
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
