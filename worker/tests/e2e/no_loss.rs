//! Nothing is lost: SIGTERM and SIGKILL mid-run, and a Redis restart mid-run.
//! Every recipient ends with exactly one message (SIGKILL: at most the jobs that were inside
//! an SMTP transaction at the kill can be sent twice; measured and bounded below), progress
//! counters are exact, and no in-progress list is left behind.

use super::*;
use std::collections::HashMap;
use test_services::wait_until;

const JOBS: usize = 2000;

fn per_recipient(smtp: &SmtpServer) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for mail in smtp.messages() {
        for to in mail.to {
            *m.entry(to).or_default() += 1;
        }
    }
    m
}

#[allow(unsafe_code, reason = "sending a signal to our own child process")]
fn signal(child: &tokio::process::Child, sig: i32) {
    let pid = child.id().expect("child running") as i32;
    // SAFETY: kill(2) on a pid we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// A test server that takes 10 ms per message, so a burst is still running when we strike.
async fn slow_smtp() -> SmtpServer {
    let smtp = SmtpServer::start().await;
    smtp.set_latency(Duration::from_millis(10));
    smtp
}

async fn wait_for_some(smtp: &SmtpServer) {
    smtp.wait_for(JOBS / 4, Duration::from_secs(60)).await;
    assert!(
        smtp.count() < JOBS,
        "the burst finished before the signal; make it slower"
    );
}

async fn assert_all_delivered_once(
    redis: &RedisServer,
    smtp: &SmtpServer,
    id: i64,
    max_duplicates: usize,
) -> usize {
    let p = wait_until(Duration::from_secs(120), "every job delivered", || async {
        let p = progress(redis, id).await;
        (p.sent == JOBS as i64).then_some(p)
    })
    .await;
    assert_eq!((p.failed, p.retrying), (0, 0));
    let counts = per_recipient(smtp);
    assert_eq!(counts.len(), JOBS, "every recipient got mail");
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= max_duplicates,
        "{duplicates} duplicate messages (allowed {max_duplicates})"
    );
    assert_eq!(redis.llen("queue:default").await, 0);
    assert_eq!(inprogress_total(redis).await, 0, "no in-progress list left");
    duplicates
}

#[tokio::test]
async fn sigterm_mid_burst_then_restart_loses_nothing_and_sends_nothing_twice() {
    let redis = RedisServer::start();
    let smtp = slow_smtp().await;
    ruby_push_mail(&redis, JOBS, 11, "default", false).await;
    let mut env = binary_env(&redis, smtp.port());
    env.push(("WORKER_CONCURRENCY", "5".into()));
    let mut first = spawn_binary(&env);
    wait_for_some(&smtp).await;
    signal(&first, libc::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(30), first.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    assert_eq!(
        inprogress_total(&redis).await,
        0,
        "a graceful stop leaves nothing in progress"
    );
    let left = redis.llen("queue:default").await as usize;
    assert_eq!(left + smtp.count(), JOBS, "delivered + still queued = all");
    let mut second = spawn_binary(&env);
    assert_all_delivered_once(&redis, &smtp, 11, 0).await;
    signal(&second, libc::SIGTERM);
    assert!(second.wait().await.unwrap().success());
}

#[tokio::test]
async fn sigkill_mid_burst_then_restart_recovers_every_job() {
    let redis = RedisServer::start();
    let smtp = slow_smtp().await;
    ruby_push_mail(&redis, JOBS, 12, "default", false).await;
    let env = binary_env(&redis, smtp.port());
    let mut first = spawn_binary(&env);
    wait_for_some(&smtp).await;
    signal(&first, libc::SIGKILL);
    let _ = first.wait().await;
    let stranded = inprogress_total(&redis).await;
    assert!(stranded > 0, "the kill left jobs in the in-progress list");
    // A new process recovers them once the dead one's heartbeat expires (≤ 60 s).
    let mut second = spawn_binary(&env);
    let duplicates = assert_all_delivered_once(&redis, &smtp, 12, 10).await;
    eprintln!("SIGKILL: {stranded} jobs stranded and recovered, {duplicates} duplicate messages");
    signal(&second, libc::SIGTERM);
    assert!(second.wait().await.unwrap().success());
}

#[tokio::test]
async fn redis_restart_mid_burst_loses_nothing() {
    let mut redis = RedisServer::start_persistent();
    let smtp = slow_smtp().await;
    ruby_push_mail(&redis, JOBS, 13, "default", false).await;
    let mut s = settings(&redis, &smtp);
    s.concurrency = 5;
    let worker = start(s).await;
    wait_for_some(&smtp).await;
    redis.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart();
    assert_all_delivered_once(&redis, &smtp, 13, 0).await;
    worker.stop();
    worker.wait().await.unwrap();
}

#[tokio::test]
async fn a_worker_started_before_redis_waits_for_it_instead_of_crashing() {
    let mut redis = RedisServer::start();
    redis.stop();
    let smtp = SmtpServer::start().await;
    let mut child = spawn_binary(&binary_env(&redis, smtp.port()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "no crash while Redis is down"
    );
    redis.restart();
    let client = sidekiq_wire::Client::connect(&redis.url()).await.unwrap();
    let job = mail("late@example.test", None);
    client.push(job).await.unwrap();
    smtp.wait_for(1, Duration::from_secs(20)).await;
    signal(&child, libc::SIGTERM);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn sigterm_while_waiting_for_redis_exits_promptly() {
    let mut redis = RedisServer::start();
    redis.stop();
    let mut child = spawn_binary(&binary_env(&redis, 1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&child, libc::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s")
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_job_that_keeps_crashing_processes_goes_to_the_dead_set_as_a_poison_pill() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let mut c = redis.conn().await;
    let job = mail("p@example.test", 11).to_json_string();
    let list = mail_protocol::keys::inprogress("ghost:1:abc", "default");
    let entry = mail_protocol::keys::registry_entry_for_queue("ghost:1:abc", "default");
    let worker = stepper(&settings(&redis, &smtp)).await;
    for crash in 1..=4 {
        // A process that died holding the job (no heartbeat hash for "ghost:1:abc").
        let _: () = redis::pipe()
            .lpush(&list, &job)
            .hset(mail_protocol::keys::REGISTRY, &list, &entry)
            .query_async(&mut c)
            .await
            .unwrap();
        worker.recover(Duration::ZERO).await.unwrap();
        let queued: Option<String> = redis::cmd("RPOP")
            .arg("queue:default")
            .query_async(&mut c)
            .await
            .unwrap();
        if crash <= 3 {
            assert_eq!(
                queued.as_deref(),
                Some(job.as_str()),
                "recovery {crash} requeues it"
            );
        } else {
            assert_eq!(queued, None);
            assert_eq!(
                redis.zcard("dead").await,
                1,
                "the fourth recovery declares it a poison pill"
            );
        }
    }
    assert_eq!(redis.llen(&list).await, 0);
    assert_eq!(redis.llen(mail_protocol::keys::POISONED).await, 0);
    // The dead entry says why, as any dead job does, and the send counts it as failed.
    let (dead, _) = zmembers(&redis, "dead").await.remove(0);
    assert_eq!(dead["error_class"], "PoisonPillError");
    assert!(dead["failed_at"].is_f64(), "{dead}");
    assert!(
        dead["error_message"]
            .as_str()
            .unwrap()
            .contains("crashed processes")
    );
    let p = progress(&redis, 11).await;
    assert_eq!((p.sent, p.failed, p.retrying), (0, 1, 0));
}

#[tokio::test]
async fn the_jobs_of_a_process_that_is_gone_run_again_after_the_grace() {
    let redis = RedisServer::start();
    let smtp = SmtpServer::start().await;
    let mut c = redis.conn().await;
    let job = mail("late@example.test", 12).to_json_string();
    let list = mail_protocol::keys::inprogress("paused:1:abc", "default");
    let entry = mail_protocol::keys::registry_entry_for_queue("paused:1:abc", "default");
    let _: () = redis::pipe()
        .lpush(&list, &job)
        .hset(mail_protocol::keys::REGISTRY, &list, &entry)
        .query_async(&mut c)
        .await
        .unwrap();
    let worker = stepper(&settings(&redis, &smtp)).await;
    let r = worker.recover(Duration::from_secs(60)).await.unwrap();
    assert_eq!((r.requeued, r.deferred), (0, 1));
    assert_eq!(redis.llen("queue:default").await, 0, "not run at once");
    assert_eq!(worker.enqueue_due().await.unwrap(), 0);
    worker.clock().advance(61.0);
    assert_eq!(worker.enqueue_due().await.unwrap(), 1);
    assert_eq!(
        step(&worker).await.decision,
        mail_worker::Decision::Delivered
    );
}

#[tokio::test]
async fn a_stop_during_a_redis_outage_ends_in_time_and_keeps_the_running_job() {
    let mut redis = RedisServer::start_persistent();
    let smtp = SmtpServer::start().await;
    smtp.push_fault(test_services::Fault::Stall);
    let mut s = settings(&redis, &smtp);
    s.smtp_timeout = Duration::from_secs(60);
    s.shutdown_timeout = Duration::from_secs(2);
    let worker = start(s).await;
    let client = sidekiq_wire::Client::connect(&redis.url()).await.unwrap();
    let job = mail("stuck@example.test", None);
    client.push(job).await.unwrap();
    wait_until(Duration::from_secs(10), "job in flight", || async {
        (inprogress_total(&redis).await == 1).then_some(())
    })
    .await;
    redis.stop();
    let t0 = std::time::Instant::now();
    worker.stop();
    tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("stop finishes without Redis")
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "2 s shutdown timeout + at most 2 × 5 s of final writes, took {:?}",
        t0.elapsed()
    );
    redis.restart();
    assert_eq!(
        inprogress_total(&redis).await,
        1,
        "the unfinished job waits in Redis for recovery"
    );
}

/// How long the faults below last: longer than a heartbeat lives (60 s), so every heartbeat
/// that could not be written has expired when the fault ends.
const LONGER_THAN_A_HEARTBEAT: Duration = Duration::from_secs(70);

/// Two worker processes sharing a 2,000-job burst counted under `id`, well under way.
async fn two_workers_mid_burst(
    redis: &RedisServer,
    id: i64,
    extra_env: &[(&'static str, &str)],
) -> (SmtpServer, tokio::process::Child, tokio::process::Child) {
    let smtp = slow_smtp().await;
    ruby_push_mail(redis, JOBS, id, "default", false).await;
    let mut env = binary_env(redis, smtp.port());
    env.extend(extra_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let (a, b) = (spawn_binary(&env), spawn_binary(&env));
    wait_for_some(&smtp).await;
    (smtp, a, b)
}

#[tokio::test]
async fn a_hung_redis_makes_no_duplicates_with_two_workers() {
    let redis = RedisServer::start();
    let (smtp, _a, _b) = two_workers_mid_burst(&redis, 41, &[]).await;
    redis.pause();
    tokio::time::sleep(LONGER_THAN_A_HEARTBEAT).await;
    redis.resume();
    assert_eq!(assert_all_delivered_once(&redis, &smtp, 41, 0).await, 0);
}

#[tokio::test]
async fn a_redis_restarted_after_a_long_outage_makes_no_duplicates_with_two_workers() {
    let mut redis = RedisServer::start_persistent();
    let (smtp, _a, _b) = two_workers_mid_burst(&redis, 42, &[]).await;
    redis.stop();
    tokio::time::sleep(LONGER_THAN_A_HEARTBEAT).await;
    redis.restart();
    assert_eq!(assert_all_delivered_once(&redis, &smtp, 42, 0).await, 0);
}

#[tokio::test]
async fn a_worker_frozen_longer_than_its_heartbeat_makes_no_duplicates() {
    let redis = RedisServer::start();
    // The other worker takes the frozen one's jobs after its heartbeat expires, but runs them
    // only after this grace: by then the frozen one has woken, finished them and said so.
    let (smtp, frozen, _other) =
        two_workers_mid_burst(&redis, 43, &[("RECOVERY_GRACE", "30")]).await;
    signal(&frozen, libc::SIGSTOP);
    tokio::time::sleep(LONGER_THAN_A_HEARTBEAT).await;
    signal(&frozen, libc::SIGCONT);
    assert_eq!(assert_all_delivered_once(&redis, &smtp, 43, 0).await, 0);
}
