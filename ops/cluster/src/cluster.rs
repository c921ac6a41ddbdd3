//! The local cluster: its services, one [`ServiceSpec`] each, and `ops/run`.
//!
//! Start order is the order of [`services`]: Redis, the mail catcher, the Sidekiq admin,
//! Unleash (with its PostgreSQL), the workers, the web. Stop order is by tier: the web and
//! the workers first (workers finish their jobs), then the Sidekiq admin and Unleash, then the
//! mail catcher and Redis, so nothing a worker still needs disappears under it. A new service
//! is one more function returning a [`ServiceSpec`] and one more line in [`services`].

use crate::config::{PortPlan, RunSettings, WorkerSettings};
use crate::logs::LogSink;
use crate::ports;
use crate::supervisor::{Control, Port, ServiceSpec, Stopped, Supervisor, human};
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The ports chosen for this run.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Endpoints {
    /// Redis.
    pub redis: u16,
    /// The catcher's SMTP.
    pub smtp: u16,
    /// The catcher's UI.
    pub mail_ui: u16,
    /// The Sidekiq admin's puma.
    pub sidekiq_web: u16,
    /// The web's own origin for the admin (it proxies to puma).
    pub sidekiq_admin: u16,
    /// The web.
    pub web: u16,
    /// Where worker metrics ports start.
    pub metrics_from: u16,
    /// Unleash (admin UI and client API).
    pub unleash: u16,
    /// Unleash's PostgreSQL.
    pub unleash_db: u16,
}

impl Endpoints {
    /// The first free port for each, starting from the plan's.
    pub fn pick(plan: &PortPlan) -> Self {
        let mut taken = Vec::new();
        let mut next = |from: u16| {
            let p = ports::first_free_excluding(from, &taken);
            taken.push(p);
            p
        };
        Endpoints {
            redis: next(plan.redis),
            smtp: next(plan.smtp),
            mail_ui: next(plan.mail_ui),
            sidekiq_web: next(plan.sidekiq_web),
            web: next(plan.web),
            sidekiq_admin: next(plan.sidekiq_admin),
            unleash: next(plan.unleash),
            unleash_db: next(plan.unleash_db),
            metrics_from: plan.metrics,
        }
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.redis)
    }

    /// What the web and the workers need to read the flags from this run's Unleash.
    pub fn unleash_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "UNLEASH_API_URL",
                format!("http://127.0.0.1:{}/api", self.unleash),
            ),
            ("UNLEASH_CLIENT_SECRET", UNLEASH_BACKEND_TOKEN.to_owned()),
            ("UNLEASH_URL", format!("http://localhost:{}", self.unleash)),
        ]
    }
}

/// The dev backend token `ops/unleash/serve` creates (as compose.yml and ops/k8s).
pub const UNLEASH_BACKEND_TOKEN: &str = "default:development.unleash-insecure-api-token";

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), os(*v)))
        .collect()
}

/// Redis with an append-only file under `<run>/redis`, so queued jobs survive a restart.
pub fn redis(run_dir: &Path, port: u16) -> ServiceSpec {
    let port_text = port.to_string();
    ServiceSpec {
        name: "redis".into(),
        command: vec![
            os("redis-server"),
            os("--port"),
            os(&port_text),
            os("--bind"),
            os("127.0.0.1"),
            os("--dir"),
            run_dir.join("redis").into_os_string(),
            os("--appendonly"),
            os("yes"),
            os("--save"),
            os(""),
            os("--daemonize"),
            os("no"),
        ],
        env: Vec::new(),
        port: Some(Port::Fixed(port)),
        replicas: 1,
        scalable: false,
        stop_tier: 2,
        stop_grace: Duration::from_secs(10),
        start_timeout: Duration::from_secs(20),
    }
}

/// The mail catcher, keeping its mail under `<run>/mail`.
pub fn mail_catcher(
    bin_dir: &Path,
    run_dir: &Path,
    e: &Endpoints,
    latency_ms: Option<u32>,
) -> ServiceSpec {
    ServiceSpec {
        name: "mail".into(),
        command: vec![
            bin_dir.join("mail-catcher").into_os_string(),
            os("--smtp"),
            os(format!("127.0.0.1:{}", e.smtp)),
            os("--http"),
            os(format!("127.0.0.1:{}", e.mail_ui)),
            os("--dir"),
            run_dir.join("mail").into_os_string(),
        ],
        env: latency_ms
            .map(|ms| vec![("MAIL_CATCHER_LATENCY_MS".to_owned(), os(ms.to_string()))])
            .unwrap_or_default(),
        port: Some(Port::Fixed(e.smtp)),
        replicas: 1,
        scalable: false,
        stop_tier: 2,
        stop_grace: Duration::from_secs(10),
        start_timeout: Duration::from_secs(20),
    }
}

/// The stock Sidekiq admin, started by `command` (a bash line, see
/// [`RunSettings::sidekiq_web_command`]).
pub fn sidekiq_web(command: &str, redis_url: &str, port: u16, session_secret: &str) -> ServiceSpec {
    ServiceSpec {
        name: "sidekiq-web".into(),
        // `exec` in the line keeps the server itself as the process that gets SIGTERM.
        command: vec![os("bash"), os("-c"), os(command)],
        env: env(&[
            ("REDIS_URL", redis_url),
            ("SESSION_SECRET", session_secret),
            ("SIDEKIQ_WEB_BIND", "127.0.0.1"),
            ("SIDEKIQ_WEB_PORT", &port.to_string()),
        ]),
        port: Some(Port::Fixed(port)),
        replicas: 1,
        scalable: false,
        stop_tier: 1,
        stop_grace: Duration::from_secs(10),
        start_timeout: Duration::from_secs(60),
    }
}

/// Unleash and its PostgreSQL, started by `command` (a bash line, see
/// [`RunSettings::unleash_command`]), everything under `<run>/unleash`. The first start
/// creates the cluster and migrates the database, hence the long start timeout.
pub fn unleash(command: &str, run_dir: &Path, e: &Endpoints) -> ServiceSpec {
    let dir = run_dir.join("unleash");
    ServiceSpec {
        name: "unleash".into(),
        // `exec` in the line keeps the script, which stops both servers, as the process that
        // gets SIGTERM.
        command: vec![os("bash"), os("-c"), os(command)],
        env: env(&[
            ("UNLEASH_DIR", &dir.display().to_string()),
            ("UNLEASH_PORT", &e.unleash.to_string()),
            ("UNLEASH_PG_PORT", &e.unleash_db.to_string()),
            ("UNLEASH_BIND", "127.0.0.1"),
        ]),
        port: Some(Port::Fixed(e.unleash)),
        replicas: 1,
        scalable: false,
        stop_tier: 1,
        stop_grace: Duration::from_secs(15),
        start_timeout: Duration::from_secs(300),
    }
}

/// The workers: a scalable Deployment whose replicas get `HOSTNAME=worker-N` and their own
/// metrics port. The grace period is `SHUTDOWN_TIMEOUT` + 15 s, as the pod's 40 s.
pub fn workers(
    bin_dir: &Path,
    e: &Endpoints,
    settings: &WorkerSettings,
    replicas: u32,
    extra: &[(&str, &str)],
) -> ServiceSpec {
    let mut vars = env(&[
        ("REDIS_URL", &e.redis_url()),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &e.smtp.to_string()),
        // The metrics port is for this machine only.
        ("BIND_ADDR", "127.0.0.1"),
    ]);
    vars.extend(
        settings
            .defaults
            .iter()
            .map(|(k, v)| ((*k).to_owned(), os(v))),
    );
    vars.extend(env(extra));
    ServiceSpec {
        name: "worker".into(),
        command: vec![bin_dir.join("mail-worker").into_os_string()],
        env: vars,
        port: Some(Port::PerReplica {
            env: "METRICS_PORT",
            from: e.metrics_from,
        }),
        replicas,
        scalable: true,
        stop_tier: 0,
        stop_grace: settings.shutdown_timeout + Duration::from_secs(15),
        start_timeout: Duration::from_secs(30),
    }
}

/// The web app, with its SQLite file under `<run>/db`, and `extra` variables.
pub fn web(bin_dir: &Path, run_dir: &Path, e: &Endpoints, extra: &[(&str, &str)]) -> ServiceSpec {
    let database = format!(
        "sqlite://{}",
        run_dir.join("db/development.sqlite3").display()
    );
    let mut vars = env(&[
        ("PORT", &e.web.to_string()),
        ("SIDEKIQ_ADMIN_PORT", &e.sidekiq_admin.to_string()),
        // Both ports are for this machine only.
        ("BIND_ADDR", "127.0.0.1"),
        ("DATABASE_URL", &database),
        ("REDIS_URL", &e.redis_url()),
        (
            "SIDEKIQ_WEB_URL",
            &format!("http://127.0.0.1:{}", e.sidekiq_web),
        ),
        (
            "MAIL_CATCHER_URL",
            &format!("http://localhost:{}", e.mail_ui),
        ),
    ]);
    vars.extend(env(extra));
    ServiceSpec {
        name: "web".into(),
        command: vec![bin_dir.join("mail-web").into_os_string()],
        env: vars,
        port: Some(Port::Fixed(e.web)),
        replicas: 1,
        scalable: false,
        stop_tier: 0,
        stop_grace: Duration::from_secs(15),
        start_timeout: Duration::from_secs(60),
    }
}

/// Every service of `ops/run`, in start order.
pub fn services(s: &RunSettings, e: &Endpoints, session_secret: &str) -> Vec<ServiceSpec> {
    let (bin, run) = (&s.paths.bin_dir, &s.paths.run_dir);
    let mut all = vec![
        redis(run, e.redis),
        mail_catcher(bin, run, e, None),
        sidekiq_web(
            &s.sidekiq_web_command,
            &e.redis_url(),
            e.sidekiq_web,
            session_secret,
        ),
    ];
    let flags = match &s.unleash_command {
        Some(command) => {
            all.push(unleash(command, run, e));
            e.unleash_env()
        }
        None => Vec::new(),
    };
    let flags: Vec<(&str, &str)> = flags.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(workers(bin, e, &s.worker, s.workers, &flags));
    all.push(web(bin, run, e, &flags));
    all
}

/// One secret per checkout, so Sidekiq admin sessions survive restarts.
fn session_secret(run_dir: &Path) -> std::io::Result<String> {
    let path = run_dir.join("session_secret");
    if let Ok(s) = std::fs::read_to_string(&path)
        && s.trim().len() >= 64
    {
        return Ok(s.trim().to_owned());
    }
    let mut random = [0u8; 48];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    }
    let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, &secret)?;
    Ok(secret)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM; later Ctrl-Cs explain the wait, a third exits
/// at once (the children then get SIGTERM from the kernel, see [`crate::supervisor`]).
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tokio::spawn(async move {
        let mut presses = 0;
        while int.recv().await.is_some() {
            presses += 1;
            if presses >= 2 {
                tracing::warn!(
                    "third Ctrl-C: exiting now; the children get SIGTERM from the kernel"
                );
                std::process::exit(130);
            }
            tracing::warn!(
                "still stopping in order: workers finish their jobs first (Ctrl-C twice more to quit at once)"
            );
        }
    });
}

/// The pid of a live supervisor that wrote `cluster.json` in `run_dir`: two clusters on one
/// Redis data directory would corrupt each other's append-only file.
fn running_supervisor(run_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(run_dir.join("cluster.json")).ok()?;
    let pid = serde_json::from_str::<serde_json::Value>(&text).ok()?["pid"].as_u64()? as u32;
    let alive = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmd| cmd.contains("mail-cluster"));
    (alive && pid != std::process::id()).then_some(pid)
}

fn write_state(run_dir: &Path, e: &Endpoints) {
    let state = serde_json::json!({ "pid": std::process::id(), "ports": e });
    if let Err(err) = std::fs::write(run_dir.join("cluster.json"), state.to_string()) {
        tracing::warn!(error = %err, "cannot write cluster.json");
    }
}

/// Writes what the log says about how the stop went.
pub fn report_stop(stopped: &[Stopped]) {
    let killed: Vec<&str> = stopped
        .iter()
        .filter(|s| s.killed)
        .map(|s| s.name.as_str())
        .collect();
    if killed.is_empty() {
        tracing::info!("all stopped");
    } else {
        tracing::warn!(
            "all stopped; killed after their grace period: {}",
            killed.join(", ")
        );
    }
}

/// `ops/run`: starts the cluster, prints where everything is, supervises until Ctrl-C.
///
/// # Errors
/// Directories that cannot be created; a service that does not start is reported and
/// ends the run with exit status 1.
pub async fn run(settings: RunSettings) -> anyhow::Result<i32> {
    let run_dir = settings.paths.run_dir.clone();
    for sub in ["logs", "redis", "db", "mail"] {
        std::fs::create_dir_all(run_dir.join(sub))?;
    }
    if let Some(pid) = running_supervisor(&run_dir) {
        anyhow::bail!(
            "ops/run is already running with {} (pid {pid}); stop it first, or use another OPS_RUN_DIR",
            run_dir.display()
        );
    }
    let logs = LogSink::open(&run_dir.join("logs"))?;
    let json_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.path("ops-run"))?;
    crate::telemetry::init("ops/run", Some(json_log));
    let e = Endpoints::pick(&settings.ports);
    let secret = session_secret(&run_dir)?;
    let mut supervisor = Supervisor::new(services(&settings, &e, &secret), logs);
    if let Err(err) = supervisor.start().await {
        tracing::error!("{err}");
        report_stop(&supervisor.stop().await);
        return Ok(1);
    }
    write_state(&run_dir, &e);
    print_banner(&settings, &e);
    let (control_tx, control_rx) = mpsc::channel::<Control>(16);
    let cancel = CancellationToken::new();
    if let Some(autoscale) = settings.autoscale.clone() {
        let redis_url = e.redis_url();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let run = crate::autoscaler::run(autoscale, redis_url, control_tx, None, false, cancel);
            if let Err(err) = run.await {
                tracing::error!("autoscaler stopped: {err:#}");
            }
        });
    } else {
        drop(control_tx);
    }
    let stopped = supervisor
        .run(control_rx, async {
            stop_signal().await;
            tracing::info!("stopping in order: web and workers, then the Sidekiq admin and Unleash, then the mail catcher and Redis");
            cancel.cancel();
        })
        .await;
    report_stop(&stopped);
    let _ = std::fs::remove_file(run_dir.join("cluster.json"));
    Ok(0)
}

fn print_banner(s: &RunSettings, e: &Endpoints) {
    let rel = |p: &Path| {
        p.strip_prefix(&s.paths.repo)
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let scaling = match &s.autoscale {
        Some(a) => format!(
            "autoscaled by the HPA algorithm on {} (time compressed {}×); state in Redis at {}",
            match a.metric {
                mail_protocol::autoscaler::Metric::Cpu => "CPU",
                mail_protocol::autoscaler::Metric::Queue => "queue length",
            },
            a.time_compression,
            mail_protocol::autoscaler::KEY
        ),
        None => format!(
            "{} (restarted when they exit; ops/run --workers N for more)",
            s.workers
        ),
    };
    println!(
        "
  web            http://localhost:{web}
  Sidekiq        http://localhost:{web}/sidekiq   (its own origin: http://localhost:{admin}/sidekiq; puma: http://127.0.0.1:{sk}/sidekiq)
  mail catcher   http://localhost:{ui}   (SMTP 127.0.0.1:{smtp}; mail kept in {mail})
  metrics        http://localhost:{web}/metrics   (workers: http://127.0.0.1:{m}/metrics and up)
  health         http://localhost:{web}/health{unleash}
  Redis          {redis}
  workers        {scaling}
  logs           {logs}/*.log (the previous runs' in *.log.1 … .3)

  Ctrl-C stops everything in order ({grace} for the workers to finish their jobs).
",
        web = e.web,
        sk = e.sidekiq_web,
        admin = e.sidekiq_admin,
        ui = e.mail_ui,
        smtp = e.smtp,
        mail = rel(&s.paths.run_dir.join("mail")),
        m = e.metrics_from,
        redis = e.redis_url(),
        logs = rel(&s.paths.run_dir.join("logs")),
        grace = human(s.worker.shutdown_timeout),
        unleash = match s.unleash_command {
            Some(_) => format!(
                "\n  unleash        http://localhost:{}   (admin / unleash4all; flags: bulk_send_feature, send_strategy, mail_delivery_paused)",
                e.unleash
            ),
            None => String::new(),
        },
    );
}
