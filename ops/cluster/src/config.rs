//! Settings of `ops/run`, `ops/autoscale-drill` and `mail-catcher`: command-line flags and
//! environment variables, read once at start (the README's configuration table lists the
//! variables). Children inherit the environment, so the worker's and the web's own
//! variables (`WORKER_CONCURRENCY`, `MAIL_CPU_MS`, `WEB_USERNAME`, …) pass straight through.

use mail_protocol::autoscaler::Metric;
use service_runtime::config::Vars;
use std::path::PathBuf;
use std::time::Duration;

/// A flag or variable is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn bad(what: impl Into<String>) -> ConfigError {
    ConfigError(what.into())
}

/// Where things are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The repository (the working directory `ops/run` changes to).
    pub repo: PathBuf,
    /// `OPS_RUN_DIR` (default `<repo>/.run`): data, logs, mail.
    pub run_dir: PathBuf,
    /// The directory holding `mail-web`, `mail-worker`, `mail-catcher` (this binary's own).
    pub bin_dir: PathBuf,
}

/// The first port tried for each service (a taken one moves up to the next free one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortPlan {
    /// The web (`PORT`, default 3000).
    pub web: u16,
    /// Redis (6379).
    pub redis: u16,
    /// SMTP of the mail catcher (1025).
    pub smtp: u16,
    /// The mail catcher's UI (1080).
    pub mail_ui: u16,
    /// The Sidekiq admin's puma (9292).
    pub sidekiq_web: u16,
    /// The web's own origin for the Sidekiq admin (`SIDEKIQ_ADMIN_PORT`, 3001).
    pub sidekiq_admin: u16,
    /// The first worker's metrics port (9394; the next workers take the next free ones).
    pub metrics: u16,
    /// Unleash (4242).
    pub unleash: u16,
    /// Unleash's PostgreSQL (54329).
    pub unleash_db: u16,
}

impl PortPlan {
    /// Every port from `b`: web b, Redis b+1, SMTP b+2, mail UI b+3, the admin's puma b+4,
    /// the admin's origin b+5, Unleash b+6, its PostgreSQL b+7, metrics from b+10.
    pub fn from_base(b: u16) -> Self {
        PortPlan {
            web: b,
            redis: b + 1,
            smtp: b + 2,
            mail_ui: b + 3,
            sidekiq_web: b + 4,
            sidekiq_admin: b + 5,
            unleash: b + 6,
            unleash_db: b + 7,
            metrics: b + 10,
        }
    }

    /// The usual ports, or with `OPS_RUN_PORT_BASE=b` [`PortPlan::from_base`] (a private
    /// range, for tests).
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        if let Some(base) = vars.get("OPS_RUN_PORT_BASE") {
            let b: u16 = base
                .parse()
                .ok()
                .filter(|b| (1024..65000).contains(b))
                .ok_or_else(|| {
                    bad(format!(
                        "OPS_RUN_PORT_BASE={base:?}: a port from 1024 to 64999"
                    ))
                })?;
            return Ok(PortPlan::from_base(b));
        }
        let web = match vars.get("PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| bad(format!("PORT={p:?}: not a port")))?,
            None => 3000,
        };
        Ok(PortPlan {
            web,
            redis: 6379,
            smtp: 1025,
            mail_ui: 1080,
            sidekiq_web: 9292,
            sidekiq_admin: 3001,
            metrics: 9394,
            unleash: 4242,
            unleash_db: 54329,
        })
    }
}

/// Autoscaling of the workers by the HPA algorithm.
#[derive(Debug, Clone)]
pub struct AutoscaleSettings {
    /// CPU (the HPA in `ops/k8s/base`) or queue length (the KEDA variant).
    pub metric: Metric,
    /// Every window and period divided by this (1 = as in a cluster).
    pub time_compression: f64,
    /// `ops/k8s/base/hpa.yaml`.
    pub hpa: PathBuf,
    /// `ops/k8s/base/worker.yaml`.
    pub deployment: PathBuf,
    /// `ops/k8s/overlays/dev-keda/scaledobject.yaml`.
    pub scaled_object: PathBuf,
}

/// What the workers are started with, beyond the inherited environment.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `SHUTDOWN_TIMEOUT` (default 25 s): the stop waits this plus 15 s before SIGKILL, as
    /// the pod's 40 s grace period.
    pub shutdown_timeout: Duration,
    /// Variables set for the workers unless the environment has them.
    pub defaults: Vec<(&'static str, String)>,
}

/// `ops/run`.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Paths.
    pub paths: Paths,
    /// First ports tried.
    pub ports: PortPlan,
    /// `--workers N` (1): worker processes at start.
    pub workers: u32,
    /// `--autoscale`: let the HPA algorithm pick the count.
    pub autoscale: Option<AutoscaleSettings>,
    /// Worker start settings.
    pub worker: WorkerSettings,
    /// `OPS_SIDEKIQ_WEB_COMMAND`: the bash line that starts the Sidekiq admin in the
    /// foreground, with `REDIS_URL`, `SESSION_SECRET`, `SIDEKIQ_WEB_BIND` and
    /// `SIDEKIQ_WEB_PORT` set (`ops/run` defines it).
    pub sidekiq_web_command: String,
    /// `OPS_UNLEASH_COMMAND`: the bash line that starts Unleash and its PostgreSQL in the
    /// foreground, with `UNLEASH_DIR`, `UNLEASH_PORT`, `UNLEASH_PG_PORT` and `UNLEASH_BIND`
    /// set (`ops/run` defines it unless `OPS_RUN_UNLEASH=0`); unset: no Unleash, the flags
    /// take their defaults.
    pub unleash_command: Option<String>,
}

/// `ops/autoscale-drill`.
#[derive(Debug, Clone)]
pub struct DrillSettings {
    /// Paths (`run_dir` is `<OPS_RUN_DIR>/drill`, emptied at start).
    pub paths: Paths,
    /// `--mails N` (20,000).
    pub mails: u32,
    /// Metric and compression (`--metric cpu|queue`, `--time-compression F`, default 4).
    pub autoscale: AutoscaleSettings,
    /// `--cpu-ms N` (`MAIL_CPU_MS` of the workers, default 4).
    pub cpu_ms: u32,
    /// `--latency-ms N` (the catcher's per-message latency, default 50).
    pub latency_ms: u32,
    /// `--concurrency N` (`WORKER_CONCURRENCY`, default 10).
    pub concurrency: u32,
    /// `--timeout-min N` (20): give up and report after this long.
    pub timeout: Duration,
    /// The first port of its private range (`OPS_RUN_PORT_BASE`, default 47000).
    pub port_base: u16,
    /// Worker start settings.
    pub worker: WorkerSettings,
}

/// `mail-catcher`.
#[derive(Debug, Clone)]
pub struct CatcherSettings {
    /// `--smtp ADDR` (127.0.0.1:1025).
    pub smtp: String,
    /// `--http ADDR` (127.0.0.1:1080).
    pub http: String,
    /// `--dir DIR` (`.run/mail`).
    pub dir: PathBuf,
    /// `MAIL_CATCHER_LATENCY_MS` (0): how long each message waits before its `250`.
    pub latency: Duration,
}

fn parse_num<T: std::str::FromStr>(what: &str, value: Option<&str>) -> Result<T, ConfigError> {
    value
        .ok_or_else(|| bad(format!("{what} needs a value")))?
        .parse()
        .map_err(|_| bad(format!("{what}: {value:?} is not a valid number")))
}

fn paths(vars: &Vars, sub: Option<&str>) -> Result<Paths, ConfigError> {
    let repo = std::env::current_dir().map_err(|e| bad(format!("current directory: {e}")))?;
    let mut run_dir = vars
        .get("OPS_RUN_DIR")
        .map_or_else(|| repo.join(".run"), |d| repo.join(d));
    if let Some(sub) = sub {
        run_dir = run_dir.join(sub);
    }
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .ok_or_else(|| bad("cannot tell where this binary lives"))?;
    Ok(Paths {
        repo,
        run_dir,
        bin_dir,
    })
}

fn autoscale_defaults(repo: &std::path::Path, time_compression: f64) -> AutoscaleSettings {
    AutoscaleSettings {
        metric: Metric::Cpu,
        time_compression,
        hpa: repo.join("ops/k8s/base/hpa.yaml"),
        deployment: repo.join("ops/k8s/base/worker.yaml"),
        scaled_object: repo.join("ops/k8s/overlays/dev-keda/scaledobject.yaml"),
    }
}

fn metric(value: Option<&str>) -> Result<Metric, ConfigError> {
    match value {
        Some("cpu") => Ok(Metric::Cpu),
        Some("queue") => Ok(Metric::Queue),
        other => Err(bad(format!("--metric {other:?}: cpu or queue"))),
    }
}

fn compression(value: Option<&str>) -> Result<f64, ConfigError> {
    let f: f64 = parse_num("--time-compression", value)?;
    if !(1.0..=60.0).contains(&f) {
        return Err(bad("--time-compression: from 1 (real time) to 60"));
    }
    Ok(f)
}

fn worker_settings(vars: &Vars, concurrency: Option<u32>) -> Result<WorkerSettings, ConfigError> {
    let shutdown_timeout = match vars.get("SHUTDOWN_TIMEOUT") {
        Some(v) => Duration::from_secs(
            v.parse()
                .map_err(|_| bad(format!("SHUTDOWN_TIMEOUT={v:?}: seconds")))?,
        ),
        None => Duration::from_secs(25),
    };
    let mut defaults: Vec<(&'static str, String)> = [
        ("MAIL_FROM", "noreply@example.test"),
        ("WORKER_QUEUES", "high,2 default,1"),
        ("RUST_LOG", "info"),
        ("WORKER_CONCURRENCY", "10"),
    ]
    .into_iter()
    .filter(|(k, _)| vars.get(k).is_none())
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    defaults.push(("SHUTDOWN_TIMEOUT", shutdown_timeout.as_secs().to_string()));
    if let Some(c) = concurrency {
        // The drill's own setting wins over the environment.
        defaults.retain(|(k, _)| *k != "WORKER_CONCURRENCY");
        defaults.push(("WORKER_CONCURRENCY", c.to_string()));
    }
    Ok(WorkerSettings {
        shutdown_timeout,
        defaults,
    })
}

impl RunSettings {
    /// From `ops/run`'s arguments and the environment.
    ///
    /// # Errors
    /// Unknown flags, or values that do not parse.
    pub fn from_args(args: &[String], vars: &Vars) -> Result<Self, ConfigError> {
        let paths = paths(vars, None)?;
        let mut workers = 1;
        let mut autoscale = None::<AutoscaleSettings>;
        let mut metric_flag = None;
        let mut compression_flag = None;
        let mut it = args.iter().map(String::as_str);
        while let Some(arg) = it.next() {
            match arg {
                "--workers" => {
                    workers = parse_num("--workers", it.next())?;
                    if !(1..=20).contains(&workers) {
                        return Err(bad("--workers: from 1 to 20"));
                    }
                }
                "--autoscale" => autoscale = Some(autoscale_defaults(&paths.repo, 1.0)),
                "--metric" => metric_flag = Some(metric(it.next())?),
                "--time-compression" => compression_flag = Some(compression(it.next())?),
                other => {
                    return Err(bad(format!(
                        "unknown argument {other:?} (see ops/run --help)"
                    )));
                }
            }
        }
        if let Some(a) = autoscale.as_mut() {
            a.metric = metric_flag.unwrap_or(Metric::Cpu);
            a.time_compression = compression_flag.unwrap_or(1.0);
        } else if metric_flag.is_some() || compression_flag.is_some() {
            return Err(bad("--metric and --time-compression need --autoscale"));
        }
        Ok(RunSettings {
            ports: PortPlan::from_vars(vars)?,
            workers,
            autoscale,
            worker: worker_settings(vars, None)?,
            sidekiq_web_command: vars
                .get("OPS_SIDEKIQ_WEB_COMMAND")
                .ok_or_else(|| bad("OPS_SIDEKIQ_WEB_COMMAND is not set (start through ops/run)"))?
                .to_owned(),
            unleash_command: vars.get("OPS_UNLEASH_COMMAND"),
            paths,
        })
    }
}

impl DrillSettings {
    /// From `ops/autoscale-drill`'s arguments and the environment.
    ///
    /// # Errors
    /// Unknown flags, or values that do not parse.
    pub fn from_args(args: &[String], vars: &Vars) -> Result<Self, ConfigError> {
        let paths = paths(vars, Some("drill"))?;
        let mut autoscale = autoscale_defaults(&paths.repo, 4.0);
        let (mut mails, mut cpu_ms, mut latency_ms, mut concurrency, mut timeout_min) =
            (20_000u32, 4u32, 50u32, 10u32, 20u64);
        let mut it = args.iter().map(String::as_str);
        while let Some(arg) = it.next() {
            match arg {
                "--mails" => mails = parse_num("--mails", it.next())?,
                "--metric" => autoscale.metric = metric(it.next())?,
                "--time-compression" => autoscale.time_compression = compression(it.next())?,
                "--cpu-ms" => cpu_ms = parse_num("--cpu-ms", it.next())?,
                "--latency-ms" => latency_ms = parse_num("--latency-ms", it.next())?,
                "--concurrency" => concurrency = parse_num("--concurrency", it.next())?,
                "--timeout-min" => timeout_min = parse_num("--timeout-min", it.next())?,
                other => {
                    return Err(bad(format!(
                        "unknown argument {other:?} (see ops/autoscale-drill --help)"
                    )));
                }
            }
        }
        if mails == 0 || concurrency == 0 {
            return Err(bad("--mails and --concurrency must be at least 1"));
        }
        let port_base = match vars.get("OPS_RUN_PORT_BASE") {
            Some(v) => v
                .parse()
                .map_err(|_| bad(format!("OPS_RUN_PORT_BASE={v:?}: not a port")))?,
            None => 47000,
        };
        Ok(DrillSettings {
            paths,
            mails,
            autoscale,
            cpu_ms,
            latency_ms,
            concurrency,
            timeout: Duration::from_secs(timeout_min * 60),
            port_base,
            worker: worker_settings(vars, Some(concurrency))?,
        })
    }
}

impl CatcherSettings {
    /// From `mail-catcher`'s arguments and the environment.
    ///
    /// # Errors
    /// Unknown flags, or values that do not parse.
    pub fn from_args(args: &[String], vars: &Vars) -> Result<Self, ConfigError> {
        let mut s = CatcherSettings {
            smtp: "127.0.0.1:1025".into(),
            http: "127.0.0.1:1080".into(),
            dir: PathBuf::from(".run/mail"),
            latency: Duration::ZERO,
        };
        if let Some(ms) = vars.get("MAIL_CATCHER_LATENCY_MS") {
            let ms: u64 = ms.parse().ok().filter(|ms| *ms <= 60_000).ok_or_else(|| {
                bad(format!(
                    "MAIL_CATCHER_LATENCY_MS={ms:?}: milliseconds, at most 60000"
                ))
            })?;
            s.latency = Duration::from_millis(ms);
        }
        let mut it = args.iter().map(String::as_str);
        while let Some(arg) = it.next() {
            let value = || {
                it.clone()
                    .next()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("{arg} needs a value")))
            };
            match arg {
                "--smtp" => s.smtp = value()?,
                "--http" => s.http = value()?,
                "--dir" => s.dir = PathBuf::from(value()?),
                other => {
                    return Err(bad(format!(
                        "unknown argument {other:?}: --smtp ADDR --http ADDR --dir DIR"
                    )));
                }
            }
            it.next();
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().copied())
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn run_flags() {
        let env = vars(&[
            ("OPS_SIDEKIQ_WEB_COMMAND", "exec puma"),
            ("WORKER_CONCURRENCY", "3"),
        ]);
        let s = RunSettings::from_args(&args(&["--workers", "3"]), &env).unwrap();
        assert_eq!(s.workers, 3);
        assert!(s.autoscale.is_none());
        assert_eq!(s.ports.web, 3000);
        assert_eq!((s.ports.unleash, s.ports.unleash_db), (4242, 54329));
        assert_eq!(
            s.unleash_command, None,
            "no Unleash unless ops/run says how"
        );
        let with_unleash = vars(&[
            ("OPS_SIDEKIQ_WEB_COMMAND", "exec puma"),
            ("OPS_UNLEASH_COMMAND", "exec ops/unleash/serve"),
            ("OPS_RUN_PORT_BASE", "46000"),
        ]);
        let u = RunSettings::from_args(&args(&[]), &with_unleash).unwrap();
        assert_eq!(u.unleash_command.as_deref(), Some("exec ops/unleash/serve"));
        assert_eq!((u.ports.unleash, u.ports.unleash_db), (46006, 46007));
        let e = crate::cluster::Endpoints::pick(&u.ports);
        let services = crate::cluster::services(&u, &e, "secret");
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["redis", "mail", "sidekiq-web", "unleash", "worker", "web"]
        );
        for s in services
            .iter()
            .filter(|s| s.name == "web" || s.name == "worker")
        {
            let api = s.env.iter().find(|(k, _)| k == "UNLEASH_API_URL");
            assert_eq!(
                api.map(|(_, v)| v.to_string_lossy().into_owned()),
                Some(format!("http://127.0.0.1:{}/api", e.unleash)),
                "{}",
                s.name
            );
        }
        // The environment's WORKER_CONCURRENCY is inherited, not overridden.
        assert!(
            !s.worker
                .defaults
                .iter()
                .any(|(k, _)| *k == "WORKER_CONCURRENCY")
        );
        let s = RunSettings::from_args(
            &args(&[
                "--autoscale",
                "--metric",
                "queue",
                "--time-compression",
                "5",
            ]),
            &env,
        )
        .unwrap();
        let a = s.autoscale.unwrap();
        assert_eq!((a.metric, a.time_compression), (Metric::Queue, 5.0));
        assert!(RunSettings::from_args(&args(&["--workers", "0"]), &env).is_err());
        assert!(RunSettings::from_args(&args(&["--metric", "cpu"]), &env).is_err());
        assert!(RunSettings::from_args(&args(&["--bogus"]), &env).is_err());
        assert!(
            RunSettings::from_args(&[], &vars(&[])).is_err(),
            "needs the admin command"
        );
    }

    #[test]
    fn port_base_moves_every_port() {
        let env = vars(&[
            ("OPS_SIDEKIQ_WEB_COMMAND", "x"),
            ("OPS_RUN_PORT_BASE", "41000"),
        ]);
        let p = RunSettings::from_args(&[], &env).unwrap().ports;
        assert_eq!(
            (
                p.web,
                p.redis,
                p.smtp,
                p.mail_ui,
                p.sidekiq_web,
                p.sidekiq_admin,
                p.metrics
            ),
            (41000, 41001, 41002, 41003, 41004, 41005, 41010)
        );
        let env = vars(&[
            ("OPS_SIDEKIQ_WEB_COMMAND", "x"),
            ("OPS_RUN_PORT_BASE", "80"),
        ]);
        assert!(RunSettings::from_args(&[], &env).is_err());
    }

    #[test]
    fn drill_defaults_and_overrides() {
        let s = DrillSettings::from_args(&[], &vars(&[("WORKER_CONCURRENCY", "99")])).unwrap();
        assert_eq!(
            (s.mails, s.cpu_ms, s.latency_ms, s.concurrency),
            (20_000, 4, 50, 10)
        );
        assert_eq!(s.autoscale.time_compression, 4.0);
        assert!(s.paths.run_dir.ends_with(".run/drill"));
        assert!(
            s.worker
                .defaults
                .contains(&("WORKER_CONCURRENCY", "10".to_owned()))
        );
        let s = DrillSettings::from_args(
            &args(&["--mails", "500", "--metric", "queue", "--latency-ms", "5"]),
            &vars(&[]),
        )
        .unwrap();
        assert_eq!(
            (s.mails, s.autoscale.metric, s.latency_ms),
            (500, Metric::Queue, 5)
        );
        assert!(
            DrillSettings::from_args(&args(&["--time-compression", "0.5"]), &vars(&[])).is_err()
        );
    }

    #[test]
    fn catcher_flags_and_latency() {
        let s = CatcherSettings::from_args(
            &args(&["--smtp", "127.0.0.1:2525", "--dir", "/tmp/m"]),
            &vars(&[("MAIL_CATCHER_LATENCY_MS", "40")]),
        )
        .unwrap();
        assert_eq!(
            (s.smtp.as_str(), s.http.as_str()),
            ("127.0.0.1:2525", "127.0.0.1:1080")
        );
        assert_eq!(s.dir, PathBuf::from("/tmp/m"));
        assert_eq!(s.latency, Duration::from_millis(40));
        assert!(
            CatcherSettings::from_args(&[], &vars(&[("MAIL_CATCHER_LATENCY_MS", "soon")])).is_err()
        );
        assert!(CatcherSettings::from_args(&args(&["--smtp"]), &vars(&[])).is_err());
    }
}
