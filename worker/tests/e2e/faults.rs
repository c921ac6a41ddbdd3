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
    // The fetch connection opens lazily; replies lost before its handshake would only stop it
    // from ever sending a fetch. Wait until a fetch is blocked waiting for jobs.
    wait_until(
        Duration::from_secs(10),
        "a blocking fetch waiting",
        || async {
            let mut c = redis.conn().await;
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut c)
                .await
                .unwrap();
            clients.contains("cmd=blmove").then_some(())
        },
    )
    .await;
    // The fetch runs, then the connection dies before its reply arrives.
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

/// `n` jobs pushed straight into `queue:<queue>` in pipelined chunks (a backlog).
async fn backlog(redis: &RedisServer, queue: &str, n: usize) {
    let mut c = redis.conn().await;
    // Formatted rather than built through Job: a million serde round trips would take a
    // minute in a debug build.
    let payload = |i: usize| {
        format!(
            r#"{{"retry":3,"queue":"{queue}","class":"MailSenderJob","args":[{{"to":"backlog{i}@example.test"}}],"jid":"{i:024x}","created_at":1800000000.0,"enqueued_at":1800000000.0}}"#
        )
    };
    let mut i = 0;
    while i < n {
        let chunk: Vec<String> = (i..(i + 10_000).min(n)).map(payload).collect();
        i += chunk.len();
        let _: () = redis::pipe()
            .sadd("queues", queue)
            .ignore()
            .lpush(format!("queue:{queue}"), chunk)
            .ignore()
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

/// Peak resident memory of a child process, from `/proc/<pid>/status`.
fn peak_rss_kb(child: &tokio::process::Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id().unwrap())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_million_queued_jobs_and_some_retrying_cost_the_worker_no_memory() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    // A backlog in a queue this worker does not serve, and retrying jobs: two still in the
    // retry set, two deleted from it as the Web UI's Delete would.
    backlog(&redis, "bulk", 1_000_000).await;
    let client = sidekiq_wire::Client::connect(&redis.url()).await.unwrap();
    for i in 0..4 {
        smtp.push_fault(test_services::Fault::Reply(451, "4.7.1 later".into()));
        client
            .push(mail(&format!("r{i}@example.test"), 51))
            .await
            .unwrap();
    }
    let mut env = binary_env(&redis, smtp.port());
    env.push(("WORKER_QUEUES", "default".into()));
    let child = spawn_binary(&env);
    wait_until(Duration::from_secs(20), "four retrying", || async {
        (progress(&redis, 51).await.retrying == 4).then_some(())
    })
    .await;
    let mut c = redis.conn().await;
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg("retry")
        .arg(0)
        .arg(1)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("ZREM")
        .arg("retry")
        .arg(&members)
        .query_async(&mut c)
        .await
        .unwrap();
    // Several reconciliation passes (RECOVERY_INTERVAL is 1 s here) over the backlog.
    let p = wait_until(
        Duration::from_secs(30),
        "deleted ones counted failed",
        || async {
            let p = progress(&redis, 51).await;
            (p.failed == 2 && p.retrying == 2).then_some(p)
        },
    )
    .await;
    assert_eq!(p.sent, 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let peak = peak_rss_kb(&child);
    assert!(
        peak < 30 * 1024,
        "peak RSS {peak} KiB with 1,000,000 jobs queued: the worker must not read the backlog"
    );
    assert_eq!(
        redis.llen("queue:bulk").await,
        1_000_000,
        "not ours to touch"
    );
}

#[tokio::test]
async fn only_one_process_reconciles_per_interval() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let s = settings(&redis, &smtp);
    let (a, b) = (stepper(&s).await, stepper(&s).await);
    let interval = Duration::from_secs(5);
    let (mut sa, mut sb) = Default::default();
    let (ra, rb) = tokio::join!(
        a.reconcile(interval, &mut sa),
        b.reconcile(interval, &mut sb)
    );
    assert_eq!(
        [ra.unwrap().ran, rb.unwrap().ran]
            .iter()
            .filter(|r| **r)
            .count(),
        1
    );
}

#[tokio::test]
async fn queued_jobs_deleted_from_the_web_ui_end_their_send_as_cancelled() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let s = settings(&redis, &smtp);
    let worker = stepper(&s).await;
    push_mails(&redis, 0..10, 52).await;
    let send = mail_protocol::SendId::for_mail_job(52);
    mail_protocol::progress::register_send(&mut redis.conn().await, &send, 10, "default")
        .await
        .unwrap();
    for _ in 0..4 {
        step(&worker).await;
    }
    // The Sidekiq admin's "Delete" on the queue: UNLINK queue:default, SREM queues default.
    let mut c = redis.conn().await;
    let _: () = redis::pipe()
        .atomic()
        .unlink("queue:default")
        .srem("queues", "default")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut suspects = Default::default();
    let tick = Duration::from_millis(1);
    let first = worker.reconcile(tick, &mut suspects).await.unwrap();
    assert!(
        first.ran && first.cancelled.is_empty(),
        "one look is not enough"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = worker.reconcile(tick, &mut suspects).await.unwrap();
    assert_eq!(second.cancelled, vec![(send.as_str().to_owned(), 6)]);
    let p = progress(&redis, 52).await;
    assert_eq!((p.sent, p.failed, p.cancelled), (4, 0, 6));
    assert_eq!(p.ended(), 10, "sent + failed + cancelled = total");
    // Over: the send is no longer watched.
    tokio::time::sleep(Duration::from_millis(5)).await;
    worker.reconcile(tick, &mut suspects).await.unwrap();
    assert!(redis.smembers(mail_protocol::keys::SENDS).await.is_empty());
}

#[tokio::test]
async fn an_smtp_server_that_never_ends_its_line_cannot_take_the_workers_memory() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await; // only for the settings; this test's server is below
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut sock, _) = listener.accept().await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let _ = sock.write_all(b"220 ").await;
        // Up to 50 MB of one line, for as long as the client keeps reading.
        while counter.load(std::sync::atomic::Ordering::Relaxed) < 50 * 1024 * 1024 {
            if sock.write_all(&chunk).await.is_err() {
                break;
            }
            counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
        }
    });
    let mut s = settings(&redis, &smtp);
    s.smtp_port = port;
    s.smtp_timeout = Duration::from_secs(30);
    let worker = stepper(&s).await;
    sidekiq_wire::Client::connect(&redis.url())
        .await
        .unwrap()
        .push(mail("x@example.test", None))
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let done = step(&worker).await;
    assert!(
        matches!(done.decision, mail_worker::Decision::Retry { .. }),
        "{done:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "it gave up, not timed out"
    );
    let (entry, _) = zmembers(&redis, "retry").await.remove(0);
    assert!(
        entry["error_message"]
            .as_str()
            .unwrap()
            .contains("without waiting"),
        "{entry}"
    );
    let read = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        read < 16 * 1024 * 1024,
        "the worker stopped reading after about 1 MiB, not {read} bytes"
    );
}

#[tokio::test]
async fn made_up_class_names_share_one_metrics_label() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let worker = start(settings(&redis, &smtp)).await;
    let client = sidekiq_wire::Client::connect(&redis.url()).await.unwrap();
    let jobs: Vec<sidekiq_wire::Job> = (0..300)
        .map(|i| sidekiq_wire::Job::new(format!("Made::Up{i}"), vec![]))
        .collect();
    client.push_bulk(jobs).await.unwrap();
    wait_until(Duration::from_secs(20), "300 dead", || async {
        (redis.zcard("dead").await == 300).then_some(())
    })
    .await;
    let body = reqwest::get(format!("http://{}/metrics", worker.metrics_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!body.contains("Made::Up"), "no label per made-up class");
    assert!(
        body.contains("sidekiq_jobs_failed_total{queue=\"default\",worker=\"unknown\"} 300"),
        "{body}"
    );
    worker.stop();
    worker.wait().await.unwrap();
}

#[tokio::test]
async fn a_payload_over_the_limit_goes_to_the_dead_set_unread_and_counts_as_failed() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let mut s = settings(&redis, &smtp);
    s.max_payload_bytes = 64 * 1024;
    let huge = sidekiq_wire::Job::new(
        "MailSenderJob",
        vec![serde_json::json!({"to": "big@example.test", "name": "x".repeat(100_000), "mail_job_id": 53})],
    )
    .with_retry(sidekiq_wire::Retry::Max(3));
    let client = sidekiq_wire::Client::connect(&redis.url()).await.unwrap();
    let huge_jid = client.push(huge).await.unwrap();
    client.push(mail("small@example.test", 53)).await.unwrap();
    let worker = stepper(&s).await;
    let first = worker.process_one().await.unwrap();
    assert!(
        matches!(first, mail_worker::Step::Oversized { bytes, .. } if bytes > 100_000),
        "{first:?}"
    );
    assert_eq!(
        step(&worker).await.decision,
        mail_worker::Decision::Delivered
    );
    let (dead, _) = zmembers(&redis, "dead").await.remove(0);
    assert_eq!(dead["jid"], serde_json::json!(huge_jid));
    assert_eq!(dead["error_class"], "PayloadTooLargeError");
    assert!(dead["failed_at"].is_f64(), "{}", dead["failed_at"]);
    assert_eq!(
        dead["args"][0]["name"].as_str().unwrap().len(),
        100_000,
        "kept whole"
    );
    let p = progress(&redis, 53).await;
    assert_eq!((p.sent, p.failed), (1, 1));
    assert_eq!(inprogress_total(&redis).await, 0);
}

#[tokio::test]
async fn a_payload_over_the_limit_arriving_while_the_worker_waits_is_buried_too() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let mut s = settings(&redis, &smtp);
    s.max_payload_bytes = 64 * 1024;
    s.queues = vec![("default".into(), 1)];
    let worker = start(s).await;
    // The worker is idle, blocked in BLMOVE, when the big one arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let huge = sidekiq_wire::Job::new("NoopJob", vec![serde_json::json!("y".repeat(200_000))]);
    let client = sidekiq_wire::Client::connect(&redis.url()).await.unwrap();
    client.push(huge).await.unwrap();
    wait_until(Duration::from_secs(10), "buried", || async {
        (redis.zcard("dead").await == 1).then_some(())
    })
    .await;
    let (dead, _) = zmembers(&redis, "dead").await.remove(0);
    assert_eq!(dead["error_class"], "PayloadTooLargeError");
    assert_eq!(inprogress_total(&redis).await, 0);
    worker.stop();
    worker.wait().await.unwrap();
}
