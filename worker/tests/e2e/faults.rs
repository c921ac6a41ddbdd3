//! The infrastructure misbehaving: payloads that are not text, fetch replies that never
//! arrive, a silent network partition. Every job a worker moved ends delivered, dead or back
//! in its queue while the worker lives, and the worker resumes by itself.

use super::*;
use base64::Engine;
use std::collections::BTreeSet;
use test_services::{Network, TcpProxy, wait_until};

/// A payload any client can `LPUSH`: not UTF-8, not JSON.
const RAW: &[u8] = b"\xff\xfe{\"class\":\"MailSenderJob\"\x00\x81}";

async fn push_mails(redis: &RedisServer, range: std::ops::Range<usize>, id: i64) {
    let client = sidekiq_wire::Client::connect(&redis.url()).await.unwrap();
    for i in range {
        client
            .push(mail(&format!("user{i}@example.test"), id))
            .await
            .unwrap();
    }
}

fn recipients(smtp: &SmtpServer) -> Vec<String> {
    smtp.messages().into_iter().flat_map(|m| m.to).collect()
}

async fn dead_entries_for_bytes(redis: &RedisServer) -> Vec<Value> {
    zmembers(redis, "dead")
        .await
        .into_iter()
        .map(|(e, _)| e)
        .filter(|e| e["class"] == mail_worker::unreadable::UNDECODABLE_CLASS)
        .collect()
}

#[tokio::test]
async fn payloads_that_are_not_text_go_to_the_dead_set_byte_for_byte_and_their_batch_runs() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    push_mails(&redis, 0..10, 31).await;
    let mut c = redis.conn().await;
    let _: () = redis::cmd("LPUSH")
        .arg("queue:default")
        .arg(RAW)
        .query_async(&mut c)
        .await
        .unwrap();
    push_mails(&redis, 10..20, 31).await;
    // The poller's batch too: one due member that is not text between two good ones.
    let due = sidekiq_wire::Timestamp::now().to_score() - 1.0;
    let scheduled = mail("scheduled@example.test", None).to_json_string();
    let _: () = redis::pipe()
        .zadd("schedule", &scheduled, due)
        .zadd("schedule", RAW, due)
        .query_async(&mut c)
        .await
        .unwrap();
    let worker = start(settings(&redis, &smtp)).await;
    smtp.wait_for(21, Duration::from_secs(20)).await;
    let dead = wait_until(Duration::from_secs(10), "two dead entries", || async {
        let d = dead_entries_for_bytes(&redis).await;
        (d.len() == 2).then_some(d)
    })
    .await;
    for entry in &dead {
        assert_eq!(entry["error_class"], "UndecodablePayloadError", "{entry}");
        assert!(entry["failed_at"].is_f64() && entry["retry_count"] == 0);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(entry["raw_payload_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw, RAW, "kept byte for byte");
    }
    assert_eq!(progress(&redis, 31).await.sent, 20);
    assert_eq!(inprogress_total(&redis).await, 0);
    worker.stop();
    worker.wait().await.unwrap();
    assert_eq!(smtp.count(), 21, "nothing twice");
}

#[tokio::test]
async fn a_fetch_whose_reply_is_lost_gives_its_jobs_back_while_the_worker_lives() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port()).await;
    let smtp = SmtpServer::start().await;
    let mut s = settings(&redis, &smtp);
    s.redis_url = proxy.redis_url();
    // One queue, so the worker's blocking fetch is waiting on the queue the jobs arrive in.
    s.queues = vec![("default".into(), 1)];
    let worker = start(s).await;
    wait_until(Duration::from_secs(10), "worker beating", || async {
        (redis.smembers("processes").await.len() == 1).then_some(())
    })
    .await;
    // The fetch script runs, then the connection dies before its reply arrives.
    proxy.set(Network::LoseReplies);
    push_mails(&redis, 0..30, 32).await;
    wait_until(Duration::from_secs(10), "jobs moved by a fetch", || async {
        (inprogress_total(&redis).await > 0).then_some(())
    })
    .await;
    proxy.reset_all();
    proxy.set(Network::Healthy);
    wait_until(Duration::from_secs(30), "all 30 delivered", || async {
        let p = progress(&redis, 32).await;
        (p.sent == 30).then_some(())
    })
    .await;
    let got = recipients(&smtp);
    let distinct: BTreeSet<&String> = got.iter().collect();
    assert_eq!((got.len(), distinct.len()), (30, 30), "each once");
    assert_eq!(inprogress_total(&redis).await, 0, "nothing stranded");
    worker.stop();
    worker.wait().await.unwrap();
}

#[tokio::test]
async fn after_a_silent_partition_the_worker_resumes_within_seconds() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port()).await;
    let smtp = SmtpServer::start().await;
    let mut s = settings(&redis, &smtp);
    s.redis_url = proxy.redis_url();
    let worker = start(s).await;
    let live = format!("http://{}/health/live", worker.metrics_addr());
    push_mails(&redis, 0..10, 33).await;
    smtp.wait_for(10, Duration::from_secs(10)).await;
    // Packets dropped both ways, no FIN or RST, for 8 s; jobs keep arriving meanwhile.
    proxy.set(Network::BlackHole);
    push_mails(&redis, 10..30, 33).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        smtp.count(),
        10,
        "nothing reached the worker during the partition"
    );
    let during = reqwest::get(&live).await.unwrap().status();
    assert_eq!(
        during, 200,
        "its loops still turn: a Redis outage is no reason to restart it"
    );
    // The network heals for new connections; the black-holed ones stay dead.
    proxy.set(Network::Healthy);
    let healed = std::time::Instant::now();
    wait_until(
        Duration::from_secs(30),
        "the 20 queued meanwhile delivered",
        || async { (progress(&redis, 33).await.sent == 30).then_some(()) },
    )
    .await;
    let mut c = redis.conn().await;
    let beat_before: f64 = redis::cmd("HGET")
        .arg(worker.identity())
        .arg("beat")
        .query_async(&mut c)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "the heartbeat moves again",
        || async {
            let beat: f64 = redis::cmd("HGET")
                .arg(worker.identity())
                .arg("beat")
                .query_async(&mut redis.conn().await)
                .await
                .unwrap_or(0.0);
            (beat > beat_before).then_some(())
        },
    )
    .await;
    assert!(healed.elapsed() < Duration::from_secs(30));
    assert_eq!(smtp.count(), 30);
    assert_eq!(inprogress_total(&redis).await, 0);
    worker.stop();
    worker.wait().await.unwrap();
}
