//! The `mail_delivery_paused` flag against a real Unleash 7.5.1 (npm, private PostgreSQL,
//! flags by `ops/unleash/flags`, toggled through the admin API): on, the worker stops
//! fetching (running jobs finish, new ones stay queued, the Busy page shows it quiet,
//! `/health/ready` says paused); off, everything is delivered exactly once; Unleash gone,
//! the worker is not paused.

use super::*;
use test_services::unleash::BACKEND_TOKEN;
use test_services::{UnleashServer, wait_until};

/// A flag change reaches the worker within a refresh (500 ms here) plus its one-second
/// evaluation; the bound is generous for a loaded machine.
const PROPAGATION: Duration = Duration::from_secs(30);

async fn push(redis: &RedisServer, from: usize, n: usize, mail_job_id: i64) {
    let client = sidekiq_wire::Client::connect(&redis.url()).await.unwrap();
    let jobs = (from..from + n)
        .map(|i| mail(&format!("p{i}@example.test"), mail_job_id))
        .collect();
    client.push_bulk(jobs).await.unwrap();
}

async fn ready(worker: &Handle) -> (u16, serde_json::Value) {
    let res = reqwest::get(format!("http://{}/health/ready", worker.metrics_addr()))
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn busy_page_quiet(redis: &RedisServer, identity: &str) -> Option<String> {
    let mut c = redis.conn().await;
    redis::cmd("HGET")
        .arg(identity)
        .arg("quiet")
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flag_pauses_and_resumes_delivery_and_unleash_down_means_not_paused() {
    let unleash = UnleashServer::start().await;
    unleash.create_seed_flags().await;
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let mut s = settings(&redis, &smtp);
    s.flags = Some(service_runtime::flags::FlagSettings {
        api_url: unleash.api_url(),
        client_secret: Some(service_runtime::config::Secret::new(BACKEND_TOKEN)),
        app_name: mail_protocol::flags::APP_NAME.into(),
        instance_id: "e2e-pause".into(),
        refresh: Duration::from_millis(500),
    });
    let worker = start(s).await;

    // Not paused (the flag is created off): delivery as usual.
    push(&redis, 0, 20, 1).await;
    smtp.wait_for(20, PROPAGATION).await;
    assert_eq!(ready(&worker).await.0, 200);

    // Paused while jobs run: the running ones finish, nothing new is fetched.
    smtp.set_latency(Duration::from_millis(1500));
    push(&redis, 20, 10, 1).await;
    wait_until(PROPAGATION, "jobs running", || async {
        (redis.llen("queue:default").await == 0).then_some(())
    })
    .await;
    unleash.set_enabled("mail_delivery_paused", true).await;
    let (status, body) = wait_until(PROPAGATION, "/health/ready says paused", || async {
        let r = ready(&worker).await;
        (r.1["status"] == "paused").then_some(r)
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["paused"], true);
    wait_until(PROPAGATION, "the Busy page shows it quiet", || async {
        (busy_page_quiet(&redis, worker.identity()).await.as_deref() == Some("true")).then_some(())
    })
    .await;
    smtp.wait_for(30, PROPAGATION).await;
    smtp.set_latency(Duration::ZERO);
    push(&redis, 30, 50, 1).await;
    // Several heartbeats and fetch-loop turns: nothing is taken while paused.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(redis.llen("queue:default").await, 50, "jobs stay queued");
    assert_eq!(smtp.count(), 30);
    let live = reqwest::get(format!("http://{}/health/live", worker.metrics_addr()))
        .await
        .unwrap();
    assert_eq!(
        live.status(),
        200,
        "a paused fetch loop is not a stalled one"
    );

    // Resumed: everything delivered, exactly once.
    unleash.set_enabled("mail_delivery_paused", false).await;
    smtp.wait_for(80, PROPAGATION).await;
    wait_until(PROPAGATION, "progress sent=80", || async {
        (progress(&redis, 1).await.sent == 80).then_some(())
    })
    .await;
    wait_until(PROPAGATION, "the Busy page shows it running", || async {
        (busy_page_quiet(&redis, worker.identity()).await.as_deref() == Some("false")).then_some(())
    })
    .await;
    assert_eq!(ready(&worker).await.0, 200);

    // Paused again, then Unleash dies: a flag nobody can read is not a pause.
    unleash.set_enabled("mail_delivery_paused", true).await;
    wait_until(PROPAGATION, "paused again", || async {
        (ready(&worker).await.1["status"] == "paused").then_some(())
    })
    .await;
    push(&redis, 80, 20, 1).await;
    let mut unleash = unleash;
    unleash.kill();
    smtp.wait_for(100, PROPAGATION).await;
    assert_eq!(ready(&worker).await.1["status"], "ready");
    assert_eq!(smtp.count(), 100, "no mail twice");
    let recipients: std::collections::BTreeSet<String> =
        smtp.messages().iter().flat_map(|m| m.to.clone()).collect();
    assert_eq!(recipients.len(), 100);
    assert_eq!(inprogress_total(&redis).await, 0);
    worker.stop();
    worker.wait().await.unwrap();
}
