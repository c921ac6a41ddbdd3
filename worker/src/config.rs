//! Settings, read once from environment variables at start.
//!
//! Nothing else in the worker reads the environment: tests build [`Settings`] in code (or
//! from explicit [`Vars`]).

use service_runtime::config::{ConfigError, Secret, Vars};
use service_runtime::flags::FlagSettings;
use sidekiq_wire::process::QueueMode;
use std::time::Duration;

/// How the worker talks to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (mail catchers, local relays).
    None,
    /// STARTTLS upgrade (port 587).
    StartTls,
    /// Implicit TLS (port 465).
    Tls,
}

/// Everything configurable. See the README's configuration table for the variables.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `SMTP_HOST`.
    pub smtp_host: String,
    /// `SMTP_PORT`.
    pub smtp_port: u16,
    /// `SMTP_USERNAME` / `SMTP_PASSWORD`.
    pub smtp_credentials: Option<(String, Secret)>,
    /// `SMTP_TLS`: `none`, `starttls` or `tls`.
    pub smtp_tls: SmtpTls,
    /// `SMTP_TIMEOUT` seconds: connecting, and one whole SMTP transaction.
    pub smtp_timeout: Duration,
    /// `MAIL_FROM`.
    pub mail_from: String,
    /// `MAIL_CPU_MS`: CPU milliseconds of extra rendering work per mail (0 = none), so the
    /// HPA lesson has CPU to scale on (a real mailer renders heavier templates than ours).
    pub mail_cpu_cost: Duration,
    /// `WORKER_CONCURRENCY`: jobs run at once.
    pub concurrency: usize,
    /// `WORKER_QUEUES`: queues with weights, e.g. `high,2 default,1`.
    pub queues: Vec<(String, u32)>,
    /// `WORKER_QUEUE_MODE`: `weighted` (default) or `strict`.
    pub queue_mode: QueueMode,
    /// `JOB_TIMEOUT` seconds: a job running longer fails (and is retried).
    pub job_timeout: Duration,
    /// `MAX_PAYLOAD_BYTES`: a fetched job bigger than this goes to the dead set unread (any
    /// client can push a huge payload; reading it would cost its size in memory, several
    /// times over).
    pub max_payload_bytes: usize,
    /// `SHUTDOWN_TIMEOUT` seconds: how long a stop waits for running jobs.
    pub shutdown_timeout: Duration,
    /// `METRICS_PORT`: `/metrics`, `/health/live`, `/health/ready`; 0 picks a free port.
    pub metrics_port: u16,
    /// `BIND_ADDR`: the address the metrics port listens on (all interfaces by default, as a
    /// container needs; `127.0.0.1` keeps it to this machine).
    pub bind_addr: std::net::IpAddr,
    /// `SCHEDULED_POLL_INTERVAL` seconds: Sidekiq's `poll_interval_average`; when unset, 5 s
    /// times the number of live processes, as Sidekiq.
    pub poll_interval: Option<Duration>,
    /// `HEARTBEAT_INTERVAL` seconds (5, as Sidekiq 6.4; must stay well under 60).
    pub heartbeat_interval: Duration,
    /// `RECOVERY_INTERVAL` seconds: how often orphaned in-progress lists are looked for.
    pub recovery_interval: Duration,
    /// `RECOVERY_GRACE` seconds: how long the jobs of a process that stopped beating wait
    /// (in `schedule`) before they run again, so a process that was only paused can still
    /// finish them and no mail goes out twice.
    pub recovery_grace: Duration,
    /// `WORKER_TAG`: shown next to the process on the Busy page.
    pub tag: String,
    /// `HOSTNAME` (the pod name in Kubernetes), used in the process identity.
    pub hostname: String,
    /// `RUST_LOG`: the log filter.
    pub log_filter: String,
    /// `UNLEASH_API_URL` (+ `UNLEASH_CLIENT_SECRET`, `UNLEASH_REFRESH_INTERVAL`; instance id
    /// `HOSTNAME`): where the `mail_delivery_paused` flag comes from; unset: never paused.
    pub flags: Option<FlagSettings>,
}

impl Settings {
    /// Defaults for local development: Redis and a mail catcher on localhost.
    pub fn local() -> Self {
        Settings {
            redis_url: "redis://127.0.0.1:6379/0".into(),
            smtp_host: "localhost".into(),
            smtp_port: 1025,
            smtp_credentials: None,
            smtp_tls: SmtpTls::None,
            smtp_timeout: Duration::from_secs(10),
            mail_from: "test@example.com".into(),
            mail_cpu_cost: Duration::ZERO,
            concurrency: 25,
            queues: vec![("high".into(), 2), ("default".into(), 1)],
            queue_mode: QueueMode::Weighted,
            job_timeout: Duration::from_secs(60),
            max_payload_bytes: 1024 * 1024,
            shutdown_timeout: Duration::from_secs(25),
            metrics_port: 9394,
            bind_addr: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            poll_interval: None,
            heartbeat_interval: Duration::from_secs(5),
            recovery_interval: Duration::from_secs(15),
            recovery_grace: Duration::from_secs(60),
            tag: String::new(),
            hostname: "localhost".into(),
            log_filter: "info,lettre=warn".into(),
            flags: None,
        }
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// The first variable that does not parse.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&Vars::from_env())
    }

    /// Reads settings from `vars` (what [`Settings::from_env`] does with the real
    /// environment).
    ///
    /// # Errors
    /// The first variable that does not parse.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let mut s = Settings::local();
        if let Some(v) = vars.get("REDIS_URL") {
            s.redis_url = v;
        }
        if let Some(v) = vars.get("SMTP_HOST") {
            s.smtp_host = v;
        }
        if let Some(v) = vars.parse("SMTP_PORT")? {
            s.smtp_port = v;
        }
        if let Some(user) = vars.get("SMTP_USERNAME") {
            let password = vars
                .secret("SMTP_PASSWORD")
                .unwrap_or_else(|| Secret::new(""));
            s.smtp_credentials = Some((user, password));
        }
        if let Some(v) = vars.get("SMTP_TLS") {
            s.smtp_tls = match v.to_ascii_lowercase().as_str() {
                "none" | "false" | "off" => SmtpTls::None,
                "starttls" => SmtpTls::StartTls,
                "tls" | "true" | "on" => SmtpTls::Tls,
                _ => {
                    return Err(ConfigError::invalid(
                        "SMTP_TLS",
                        &v,
                        "use none, starttls or tls",
                    ));
                }
            };
        }
        if let Some(v) = vars.seconds("SMTP_TIMEOUT")? {
            s.smtp_timeout = v;
        }
        if let Some(v) = vars.get("MAIL_FROM") {
            s.mail_from = v;
        }
        if let Some(ms) = vars.parse::<u64>("MAIL_CPU_MS")? {
            if ms > 10_000 {
                return Err(ConfigError::invalid(
                    "MAIL_CPU_MS",
                    &ms.to_string(),
                    "must be 0..=10000 milliseconds",
                ));
            }
            s.mail_cpu_cost = Duration::from_millis(ms);
        }
        if let Some(v) = vars.parse::<usize>("WORKER_CONCURRENCY")? {
            if v == 0 || v > 10_000 {
                return Err(ConfigError::invalid(
                    "WORKER_CONCURRENCY",
                    &v.to_string(),
                    "must be 1..=10000",
                ));
            }
            s.concurrency = v;
        }
        if let Some(v) = vars.get("WORKER_QUEUES") {
            s.queues = parse_queues(&v)
                .map_err(|reason| ConfigError::invalid("WORKER_QUEUES", &v, reason))?;
        }
        if let Some(v) = vars.get("WORKER_QUEUE_MODE") {
            s.queue_mode = match v.to_ascii_lowercase().as_str() {
                "weighted" => QueueMode::Weighted,
                "strict" => QueueMode::Strict,
                _ => {
                    return Err(ConfigError::invalid(
                        "WORKER_QUEUE_MODE",
                        &v,
                        "use weighted or strict",
                    ));
                }
            };
        }
        if let Some(v) = vars.seconds("JOB_TIMEOUT")? {
            s.job_timeout = v;
        }
        if let Some(v) = vars.parse::<usize>("MAX_PAYLOAD_BYTES")? {
            if !(1024..=512 * 1024 * 1024).contains(&v) {
                return Err(ConfigError::invalid(
                    "MAX_PAYLOAD_BYTES",
                    &v.to_string(),
                    "must be 1 KiB..=512 MiB",
                ));
            }
            s.max_payload_bytes = v;
        }
        if let Some(v) = vars.seconds("SHUTDOWN_TIMEOUT")? {
            s.shutdown_timeout = v;
        }
        if let Some(v) = vars.parse("METRICS_PORT")? {
            s.metrics_port = v;
        }
        if let Some(v) = vars.parse("BIND_ADDR")? {
            s.bind_addr = v;
        }
        if let Some(v) = vars.seconds("SCHEDULED_POLL_INTERVAL")? {
            s.poll_interval = Some(v);
        }
        if let Some(v) = vars.seconds("HEARTBEAT_INTERVAL")? {
            if v >= Duration::from_secs(30) {
                return Err(ConfigError::invalid(
                    "HEARTBEAT_INTERVAL",
                    &vars.get("HEARTBEAT_INTERVAL").unwrap_or_default(),
                    "must be under 30 s (the heartbeat expires after 60 s)",
                ));
            }
            s.heartbeat_interval = v;
        }
        if let Some(v) = vars.seconds("RECOVERY_INTERVAL")? {
            s.recovery_interval = v;
        }
        if let Some(v) = vars.seconds("RECOVERY_GRACE")? {
            s.recovery_grace = v;
        }
        if let Some(v) = vars.get("WORKER_TAG") {
            s.tag = v;
        }
        if let Some(v) = vars.get("RUST_LOG") {
            s.log_filter = v;
        }
        s.hostname = vars
            .get("HOSTNAME")
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        s.flags = FlagSettings::from_vars(
            vars,
            mail_protocol::flags::APP_NAME,
            &s.hostname,
            Duration::from_secs(mail_protocol::flags::DEFAULT_REFRESH_SECS),
        )?;
        Ok(s)
    }
}

/// Parses Sidekiq's queue notation: `high,2 default,1` (spaces or `;` between queues,
/// weight after a comma, default weight 1).
///
/// # Errors
/// An invalid queue name, a weight that is not 1..=100, a duplicate, or nothing at all.
pub fn parse_queues(spec: &str) -> Result<Vec<(String, u32)>, String> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for item in spec
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|s| !s.is_empty())
    {
        let (name, weight) = match item.split_once(',') {
            Some((n, w)) => (
                n,
                w.parse::<u32>()
                    .map_err(|_| format!("weight of {n:?} is not a number"))?,
            ),
            None => (item, 1),
        };
        if !sidekiq_wire::client::valid_queue_name(name) {
            return Err(format!(
                "queue name {name:?} may only use letters, digits, _ : . -"
            ));
        }
        if !(1..=100).contains(&weight) {
            return Err(format!("weight of {name:?} must be 1..=100"));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("queue {name:?} listed twice"));
        }
        out.push((name.to_owned(), weight));
    }
    if out.is_empty() {
        return Err("no queues".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidekiq_queue_notation() {
        assert_eq!(
            parse_queues("high,2 default,1").unwrap(),
            vec![("high".to_string(), 2), ("default".to_string(), 1)]
        );
        assert_eq!(
            parse_queues("  mail ;low,3").unwrap(),
            vec![("mail".to_string(), 1), ("low".to_string(), 3)]
        );
        assert!(parse_queues("").is_err());
        assert!(parse_queues("a,x").is_err());
        assert!(parse_queues("a,0").is_err());
        assert!(parse_queues("a a").is_err());
        assert!(parse_queues("bad/name").is_err());
    }

    #[test]
    fn env_overrides_defaults_and_rejects_garbage() {
        let vars = |pairs: &[(&str, &str)]| Vars::from_pairs(pairs.iter().copied());
        let s = Settings::from_vars(&vars(&[
            ("SMTP_PORT", "2525"),
            ("WORKER_CONCURRENCY", "7"),
            ("SHUTDOWN_TIMEOUT", "3.5"),
            ("MAIL_CPU_MS", "40"),
        ]))
        .unwrap();
        assert_eq!(s.mail_cpu_cost, Duration::from_millis(40));
        assert_eq!((s.smtp_port, s.concurrency), (2525, 7));
        assert_eq!(s.shutdown_timeout, Duration::from_millis(3500));
        assert_eq!(s.queues.len(), 2);
        assert!(Settings::from_vars(&vars(&[("SMTP_PORT", "smtp")])).is_err());
        assert!(Settings::from_vars(&vars(&[("WORKER_CONCURRENCY", "0")])).is_err());
        assert!(Settings::from_vars(&vars(&[("SMTP_TLS", "maybe")])).is_err());
        assert!(Settings::from_vars(&vars(&[("HEARTBEAT_INTERVAL", "45")])).is_err());
        assert!(Settings::from_vars(&vars(&[("MAIL_CPU_MS", "-1")])).is_err());
        assert!(Settings::from_vars(&vars(&[("BIND_ADDR", "localhost")])).is_err());
        let local = Settings::from_vars(&vars(&[("BIND_ADDR", "127.0.0.1")])).unwrap();
        assert!(local.bind_addr.is_loopback());
        assert!(Settings::from_vars(&vars(&[("MAIL_CPU_MS", "20000")])).is_err());
        assert!(s.flags.is_none());
        let flagged = Settings::from_vars(&vars(&[
            ("UNLEASH_API_URL", "http://unleash:4242/api"),
            ("HOSTNAME", "mail-sidekiq-abc"),
        ]))
        .unwrap();
        let flags = flagged.flags.unwrap();
        assert_eq!(flags.instance_id, "mail-sidekiq-abc");
        assert_eq!(flags.refresh, Duration::from_secs(15));
    }
}
