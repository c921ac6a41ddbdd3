//! `ops/run` driven as a learner would, with the debug binaries in a private port range:
//! Stop on the Busy page restarts that worker with a new identity; Ctrl-C in the middle of
//! a send stops everything in order with no ERROR and nothing retried; a second start
//! finishes the send exactly (no mail lost, none twice, the mail kept across the restart).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "test"
)]

use mail_protocol::{MailSenderArgs, SendId};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_services::{TempDir, bin_path, wait_until};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const MAILS: u32 = 2000;

struct OpsRun {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A port range with the first 12 ports free (web … metrics).
fn port_base() -> u16 {
    for _ in 0..50 {
        let base = test_services::free_port();
        if base < 60000
            && (base..base + 12).all(|p| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free range of 12 ports");
}

impl OpsRun {
    fn start(run_dir: &Path, base: u16) -> Self {
        let bin_dir = bin_path("mail-cluster").parent().unwrap().to_path_buf();
        let mut child = Command::new(repo().join("ops/run"))
            .args(["--workers", "2"])
            .env("OPS_RUN_DIR", run_dir)
            .env("OPS_RUN_PORT_BASE", base.to_string())
            .env("SKIP_BUILD", "1")
            .env("OPS_RUN_BIN_DIR", &bin_dir)
            .env("MAIL_CATCHER_LATENCY_MS", "20")
            .env("WORKER_CONCURRENCY", "5")
            .env("RUST_LOG", "info")
            // The native 6.4 admin: no Debian root to build, and its Busy page uses the
            // authenticity_token form flow this test speaks.
            .env("SIDEKIQ_VERSION", "6")
            // Supervision is the subject here; Unleash (npm install into the run directory and
            // 10-20 s of start) has its own tests with ops/unleash/serve's fixture.
            .env("OPS_RUN_UNLEASH", "0")
            .env_remove("PORT")
            // Its own process group, like a terminal's foreground job: the SIGINT below is
            // what Ctrl-C sends.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let lines = output.clone();
        let stdout = child.stdout.take().unwrap();
        let reader = tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                println!("ops/run| {line}");
                lines.lock().unwrap().push(line);
            }
        });
        OpsRun {
            child,
            output,
            reader: Some(reader),
        }
    }

    fn said(&self, text: &str) -> Option<usize> {
        self.output
            .lock()
            .unwrap()
            .iter()
            .position(|l| l.contains(text))
    }

    async fn ctrl_c_and_wait(&mut self) {
        let pid = self.child.id().unwrap() as i32;
        #[allow(unsafe_code, reason = "kill(2) on the test's own child group")]
        // SAFETY: plain syscall, no memory involved.
        unsafe {
            libc::kill(-pid, libc::SIGINT);
        }
        let status = tokio::time::timeout(Duration::from_secs(120), self.child.wait())
            .await
            .expect("ops/run did not stop within 120 s")
            .unwrap();
        assert!(status.success(), "ops/run exited with {status}");
        // Its last lines may still be in the pipe.
        if let Some(reader) = self.reader.take() {
            tokio::time::timeout(Duration::from_secs(10), reader)
                .await
                .expect("ops/run's output did not end")
                .unwrap();
        }
    }
}

async fn ports(run_dir: &Path) -> serde_json::Value {
    wait_until(
        Duration::from_secs(120),
        "ops/run to write cluster.json",
        || async {
            let text = std::fs::read_to_string(run_dir.join("cluster.json")).ok()?;
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .map(|v| v["ports"].clone())
        },
    )
    .await
}

async fn mail_stats(http: &reqwest::Client, port: u64) -> serde_json::Value {
    http.get(format!("http://127.0.0.1:{port}/api/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn processes(redis: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    redis::cmd("SMEMBERS")
        .arg("processes")
        .query_async(redis)
        .await
        .unwrap()
}

fn errors_in_logs(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("ERROR")) {
            found.push(format!("{}: {line}", path.display()));
        }
    }
    found
}

async fn redis_conn(port: u64) -> redis::aio::MultiplexedConnection {
    // A generous response timeout (redis-rs defaults to 500 ms): the machine is busy.
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(30)));
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_page_stop_restarts_a_worker_and_ctrl_c_stops_in_order_losing_nothing() {
    let dir = TempDir::new("ops-run");
    let run_dir = dir.path().join("run");
    let base = port_base();
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // --- first start: two workers ---------------------------------------------------------
    let mut run = OpsRun::start(&run_dir, base);
    let p = ports(&run_dir).await;
    let (web, admin, redis_port, mail_ui) = (
        p["web"].as_u64().unwrap(),
        p["sidekiq_admin"].as_u64().unwrap(),
        p["redis"].as_u64().unwrap(),
        p["mail_ui"].as_u64().unwrap(),
    );
    let redis = redis_conn(redis_port).await;
    let before = wait_until(
        Duration::from_secs(60),
        "two workers on the Busy page",
        || {
            let mut r = redis.clone();
            async move { Some(processes(&mut r).await).filter(|p| p.len() == 2) }
        },
    )
    .await;
    let victim = before
        .iter()
        .find(|id| id.starts_with("worker-1:"))
        .unwrap()
        .clone();

    // --- Stop on the Busy page (through the web's /sidekiq proxy, CSRF token and all) ----
    // /sidekiq on the web's port sends the learner to the admin's own origin.
    let redirect = http
        .get(format!("http://127.0.0.1:{web}/sidekiq/busy"))
        .send()
        .await
        .unwrap();
    assert!(redirect.status().is_redirection(), "{}", redirect.status());
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains(&format!(":{admin}/sidekiq/busy")),
        "{location}"
    );
    let busy = format!("http://127.0.0.1:{admin}/sidekiq/busy");
    let page = http.get(&busy).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&victim), "the Busy page lists {victim}");
    let token = test_services::sidekiq_web::csrf_token(&page).expect("authenticity_token");
    let status = http
        .post(&busy)
        .form(&[
            ("authenticity_token", token.as_str()),
            ("identity", victim.as_str()),
            ("stop", "1"),
        ])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 302, "Sidekiq::Web accepted the Stop");
    // The worker picks the signal up at its next heartbeat (5 s), removes itself on exit,
    // and the supervisor starts worker-1 again: a new pid, so a new identity.
    let after = wait_until(
        Duration::from_secs(60),
        "worker-1 back with a new identity",
        || {
            let mut r = redis.clone();
            let victim = victim.clone();
            async move {
                let now = processes(&mut r).await;
                (!now.contains(&victim)
                    && now.len() == 2
                    && now.iter().any(|id| id.starts_with("worker-1:")))
                .then_some(now)
            }
        },
    )
    .await;
    // Only the hash expires with the 60 s TTL; leaving the `processes` set is the worker's
    // own clean-up, so this proves it removed itself.
    assert!(
        !after.contains(&victim),
        "the stopped process left the Busy page at once"
    );
    wait_until(Duration::from_secs(10), "ops/run to say so", || async {
        run.said("worker-1 is back with a new identity")
    })
    .await;

    // --- Ctrl-C in the middle of a send --------------------------------------------------
    let client =
        sidekiq_wire::client::Client::connect(&format!("redis://127.0.0.1:{redis_port}/0"))
            .await
            .unwrap();
    let jobs = (1..=MAILS)
        .map(|i| {
            MailSenderArgs {
                to: format!("user{i:05}@example.test"),
                name: Some(format!("User {i}")),
                email_id: Some(i64::from(i)),
                mail_job_id: Some(1),
                instance: None,
                simulate_error: false,
            }
            .into_job("default")
        })
        .collect();
    client.push_bulk(jobs).await.unwrap();
    wait_until(Duration::from_secs(60), "the send under way", || {
        let http = http.clone();
        async move {
            (mail_stats(&http, mail_ui).await["messages"]
                .as_u64()
                .unwrap()
                >= 100)
                .then_some(())
        }
    })
    .await;
    run.ctrl_c_and_wait().await;
    let sent_first = std::fs::read_to_string(run_dir.join("mail/index.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        sent_first < MAILS as usize,
        "the stop came mid-send ({sent_first} of {MAILS} sent)"
    );
    let at = |text: &str| {
        run.said(text)
            .unwrap_or_else(|| panic!("ops/run never said {text:?}"))
    };
    let first_tier = at("stopped worker-1")
        .max(at("stopped worker-2"))
        .max(at("stopped web"));
    assert!(
        first_tier < at("stopped sidekiq-web"),
        "web and workers stop before the Sidekiq admin"
    );
    assert!(
        at("stopped sidekiq-web") < at("stopped mail").min(at("stopped redis")),
        "mail catcher and Redis stop last"
    );
    assert!(
        run.said("SIGKILL").is_none(),
        "everything stopped within its grace period"
    );
    assert_eq!(
        errors_in_logs(&run_dir.join("logs")),
        Vec::<String>::new(),
        "no ERROR in any log"
    );

    // --- a second start finishes the send exactly ----------------------------------------
    let mut run = OpsRun::start(&run_dir, base);
    let p = ports(&run_dir).await;
    let (redis_port, mail_ui) = (p["redis"].as_u64().unwrap(), p["mail_ui"].as_u64().unwrap());
    let mut redis = redis_conn(redis_port).await;
    let stats = wait_until(
        Duration::from_secs(180),
        "every mail delivered after the restart",
        || {
            let http = http.clone();
            async move {
                Some(mail_stats(&http, mail_ui).await)
                    .filter(|s| s["messages"].as_u64() >= Some(u64::from(MAILS)))
            }
        },
    )
    .await;
    assert_eq!(
        stats["recipients"], MAILS,
        "every recipient got mail: {stats}"
    );
    assert_eq!(stats["duplicates"], 0, "nobody got it twice: {stats}");
    // The catcher keeps a message before it answers 250; the worker records the outcome
    // right after that answer, so the counters follow a moment later.
    let progress = wait_until(
        Duration::from_secs(30),
        "the send's progress complete",
        || {
            let mut r = redis.clone();
            async move {
                let p = mail_protocol::progress::read_progress(&mut r, &[SendId::for_mail_job(1)])
                    .await
                    .unwrap()[0];
                (p.sent + p.failed >= i64::from(MAILS)).then_some(p)
            }
        },
    )
    .await;
    assert_eq!(
        (progress.sent, progress.failed, progress.retrying),
        (i64::from(MAILS), 0, 0)
    );
    let (retries, dead, failed): (u64, u64, Option<u64>) = redis::pipe()
        .cmd("ZCARD")
        .arg("retry")
        .cmd("ZCARD")
        .arg("dead")
        .cmd("GET")
        .arg("stat:failed")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        (retries, dead, failed.unwrap_or(0)),
        (0, 0, 0),
        "nothing in Retries or Dead, no failure counted"
    );
    run.ctrl_c_and_wait().await;
    assert_eq!(
        errors_in_logs(&run_dir.join("logs")),
        Vec::<String>::new(),
        "no ERROR in any log"
    );
    assert!(
        run_dir.join("logs/worker-1.log.1").exists(),
        "the first run's logs were rotated, not overwritten"
    );
}
