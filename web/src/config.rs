//! The web's configuration: environment variables, parsed once at start.
//!
//! This is the only module that reads the environment, through `service_runtime`'s [`Vars`]
//! like the worker. Tests build a [`Config`] with [`Config::new`] and struct updates, or from
//! [`Vars::from_pairs`], because the process environment is shared by tests running in
//! parallel.

use crate::i18n::zone::{self, DisplayZone};
pub use service_runtime::config::ConfigError;
use service_runtime::config::{Secret, Vars};
use service_runtime::flags::FlagSettings;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the web app is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PORT`: where to listen.
    pub port: u16,
    /// `BIND_ADDR`: the interface to listen on (all, `0.0.0.0`, by default: containers;
    /// `ops/run` binds `127.0.0.1`).
    pub bind_addr: IpAddr,
    /// `MAX_CONNECTIONS`: connections served at once; more are answered 503.
    pub max_connections: usize,
    /// `DATABASE_URL` (`sqlite://path`): the SQLite file; its directory is created.
    pub database_path: PathBuf,
    /// `REDIS_URL`: the Sidekiq Redis.
    pub redis_url: String,
    /// `SIDEKIQ_WEB_URL`: where `/sidekiq` is proxied to (no trailing slash); unset shows
    /// how to start it instead.
    pub sidekiq_web_url: Option<String>,
    /// `SIDEKIQ_ADMIN_PORT`: the port of the admin's own origin, where the proxy to
    /// `SIDEKIQ_WEB_URL` listens (`0` picks one); `/sidekiq` on `PORT` redirects there.
    pub sidekiq_admin_port: u16,
    /// `SIDEKIQ_ADMIN_URL`: the admin origin's public base URL when a proxy in front maps it
    /// (e.g. `https://sidekiq.mail.example`); unset: the request's host with
    /// `SIDEKIQ_ADMIN_PORT`.
    pub sidekiq_admin_url: Option<String>,
    /// `UNLEASH_URL`: the Unleash admin UI, linked from the header (a browser link).
    pub unleash_url: String,
    /// `UNLEASH_API_URL` (+ `UNLEASH_CLIENT_SECRET`, `UNLEASH_REFRESH_INTERVAL`, and the
    /// host name as instance id): where the flags come from; unset: the defaults.
    pub unleash: Option<FlagSettings>,
    /// `MAIL_CATCHER_URL`: linked from the header.
    pub mail_catcher_url: String,
    /// `WEB_USERNAME` + `WEB_PASSWORD`: HTTP basic auth on everything but health and metrics.
    pub basic_auth: Option<(String, Secret)>,
    /// `BULK_SEND_MAX`: the largest bulk send (and test-address batch) accepted.
    pub bulk_send_max: usize,
    /// `MAX_UPLOAD_BYTES`: the largest CSV accepted.
    pub max_upload_bytes: usize,
    /// `DEPLOYMENT_VERSION`: reported by `/health` (the seed's name for it).
    pub version: String,
    /// `RUST_LOG`: the log filter.
    pub log_filter: String,
    /// `DISPLAY_TIME_ZONE`, else `TZ` (an IANA name): the zone times are shown in; unset,
    /// Asia/Tokyo in the Japanese UI and UTC in the English one.
    pub display_zone: DisplayZone,
}

/// Default `DATABASE_URL` path, relative to the working directory (as Rails' `db/`).
pub const DEFAULT_DATABASE_PATH: &str = "db/development.sqlite3";
/// Default largest bulk send: the seed's biggest button.
pub const DEFAULT_BULK_SEND_MAX: usize = 10_000;
/// Default connection limit: far above what a browser or a probe needs, far below the
/// usual 1,024 file descriptors of a container.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Largest `BULK_SEND_MAX` accepted: ten times the seed's biggest button, and what the
/// memory test of a single send covers (a send streams its jobs a chunk at a time, but each
/// send still sorts its recipients by a random key in SQLite).
pub const BULK_SEND_MAX_LIMIT: usize = 100_000;
/// Default upload limit: 10 MiB holds ~250,000 address rows.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

impl Config {
    /// Defaults for everything but where the data lives.
    pub fn new(database_path: impl Into<PathBuf>, redis_url: impl Into<String>) -> Self {
        Config {
            port: 3000,
            bind_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            database_path: database_path.into(),
            redis_url: redis_url.into(),
            sidekiq_web_url: None,
            sidekiq_admin_port: 3001,
            sidekiq_admin_url: None,
            unleash_url: "http://localhost:4242".into(),
            unleash: None,
            mail_catcher_url: "http://localhost:1080".into(),
            basic_auth: None,
            bulk_send_max: DEFAULT_BULK_SEND_MAX,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            version: env!("CARGO_PKG_VERSION").into(),
            log_filter: "info".into(),
            display_zone: DisplayZone::default(),
        }
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] for a malformed value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&Vars::from_env())
    }

    /// Reads `vars` (the environment in production, explicit pairs in tests).
    ///
    /// # Errors
    /// [`ConfigError`] for a malformed value.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let database_path = match vars.get("DATABASE_URL") {
            Some(url) => parse_database_url(&url)?,
            None => PathBuf::from(DEFAULT_DATABASE_PATH),
        };
        let mut c = Config::new(
            database_path,
            vars.get("REDIS_URL")
                .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into()),
        );
        if let Some(v) = vars.get("PORT") {
            c.port = parse_num("PORT", &v)?;
        }
        if let Some(v) = vars.get("BIND_ADDR") {
            c.bind_addr = v.trim().parse().map_err(|_| {
                ConfigError::invalid(
                    "BIND_ADDR",
                    &v,
                    "expected an IP address such as 0.0.0.0, 127.0.0.1 or ::",
                )
            })?;
        }
        if let Some(v) = vars.get("MAX_CONNECTIONS") {
            c.max_connections = parse_num("MAX_CONNECTIONS", &v)?;
            if c.max_connections == 0 {
                return Err(ConfigError::invalid(
                    "MAX_CONNECTIONS",
                    &v,
                    "must be at least 1",
                ));
            }
        }
        if let Some(v) = vars.get("SIDEKIQ_WEB_URL") {
            c.sidekiq_web_url = Some(parse_http_url("SIDEKIQ_WEB_URL", &v)?);
        }
        if let Some(v) = vars.get("SIDEKIQ_ADMIN_PORT") {
            c.sidekiq_admin_port = parse_num("SIDEKIQ_ADMIN_PORT", &v)?;
        }
        if let Some(v) = vars.get("SIDEKIQ_ADMIN_URL") {
            c.sidekiq_admin_url = Some(parse_origin("SIDEKIQ_ADMIN_URL", &v)?);
        }
        if let Some(v) = vars.get("UNLEASH_URL") {
            c.unleash_url = v;
        }
        // The instance id Unleash lists: the pod name in Kubernetes, else the host name.
        let instance_id = vars
            .get("HOSTNAME")
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "mail-web".into());
        c.unleash = FlagSettings::from_vars(
            vars,
            mail_protocol::flags::APP_NAME,
            &instance_id,
            Duration::from_secs(mail_protocol::flags::DEFAULT_REFRESH_SECS),
        )?;
        if let Some(v) = vars.get("MAIL_CATCHER_URL") {
            c.mail_catcher_url = v;
        }
        c.basic_auth = match (vars.get("WEB_USERNAME"), vars.secret("WEB_PASSWORD")) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Inconsistent(
                    "set both WEB_USERNAME and WEB_PASSWORD, or neither".into(),
                ));
            }
        };
        if let Some(v) = vars.get("BULK_SEND_MAX") {
            c.bulk_send_max = parse_num("BULK_SEND_MAX", &v)?;
            if !(1..=BULK_SEND_MAX_LIMIT).contains(&c.bulk_send_max) {
                return Err(ConfigError::invalid(
                    "BULK_SEND_MAX",
                    &v,
                    "must be between 1 and 100000",
                ));
            }
        }
        if let Some(v) = vars.get("MAX_UPLOAD_BYTES") {
            c.max_upload_bytes = parse_num("MAX_UPLOAD_BYTES", &v)?;
        }
        if let Some(v) = vars.get("DEPLOYMENT_VERSION") {
            c.version = v;
        }
        if let Some(v) = vars.get("RUST_LOG") {
            c.log_filter = v;
        }
        if let Some(v) = vars.get("DISPLAY_TIME_ZONE") {
            let tz = zone::parse(&v).ok_or_else(|| {
                ConfigError::invalid(
                    "DISPLAY_TIME_ZONE",
                    &v,
                    "expected an IANA time zone such as Asia/Tokyo, UTC or Europe/Berlin",
                )
            })?;
            c.display_zone = DisplayZone::fixed(tz);
        } else if let Some(tz) = vars.get("TZ").as_deref().and_then(zone::parse) {
            // TZ belongs to the whole system and may be a POSIX rule (`JST-9`) we do not
            // read: then the per-language defaults stand instead of refusing to start.
            c.display_zone = DisplayZone::fixed(tz);
        }
        Ok(c)
    }
}

fn parse_num<T: std::str::FromStr>(var: &'static str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| ConfigError::invalid(var, value, "expected a non-negative integer"))
}

/// `sqlite://db/x.sqlite3` (relative), `sqlite:///abs/x.sqlite3` (absolute), `sqlite:path`,
/// or a bare path.
fn parse_database_url(url: &str) -> Result<PathBuf, ConfigError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains(":memory:") {
        return Err(ConfigError::invalid(
            "DATABASE_URL",
            url,
            "expected sqlite://path/to/file.sqlite3",
        ));
    }
    Ok(PathBuf::from(path))
}

/// The proxy speaks plain HTTP/1.1 to a sidecar or a cluster Service, so only `http://`.
fn parse_http_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let ok = trimmed
        .strip_prefix("http://")
        .is_some_and(|rest| !rest.is_empty() && trimmed.parse::<axum::http::Uri>().is_ok());
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(ConfigError::invalid(
            var,
            value,
            "expected http://host:port",
        ))
    }
}

/// `http(s)://host[:port]`, nothing after it: a base the admin's paths are appended to.
fn parse_origin(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    let ok = ["http://", "https://"].iter().any(|scheme| {
        trimmed
            .strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(['/', '?', '#', '@']))
    }) && trimmed.parse::<axum::http::Uri>().is_ok();
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(ConfigError::invalid(
            var,
            value,
            "expected http(s)://host[:port] without a path",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn defaults() {
        let c = Config::from_vars(&lookup(&[])).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.bind_addr.to_string(), "0.0.0.0");
        assert_eq!(c.max_connections, 512);
        assert_eq!(c.database_path, PathBuf::from("db/development.sqlite3"));
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379/0");
        assert_eq!(c.sidekiq_web_url, None);
        assert_eq!(c.sidekiq_admin_port, 3001);
        assert_eq!(c.sidekiq_admin_url, None);
        assert_eq!(c.mail_catcher_url, "http://localhost:1080");
        assert_eq!(c.unleash_url, "http://localhost:4242");
        assert_eq!(c.bulk_send_max, 10_000);
        assert!(c.basic_auth.is_none());
        assert!(c.unleash.is_none());
        assert_eq!(c.display_zone, DisplayZone::default());
    }

    #[test]
    fn unleash_settings() {
        let c = Config::from_vars(&lookup(&[
            ("UNLEASH_API_URL", "http://unleash:4242/api"),
            ("UNLEASH_CLIENT_SECRET", "default:development.x"),
            ("HOSTNAME", "mail-web-7d9"),
        ]))
        .unwrap();
        let u = c.unleash.unwrap();
        assert_eq!(u.api_url, "http://unleash:4242/api");
        assert_eq!(u.app_name, "mail-worker-k8s");
        assert_eq!(u.instance_id, "mail-web-7d9");
        assert_eq!(u.refresh, Duration::from_secs(15));
        assert!(Config::from_vars(&lookup(&[("UNLEASH_API_URL", "unleash")])).is_err());
    }

    #[test]
    fn display_zone_from_display_time_zone_or_tz() {
        let tokyo = chrono_tz::Tz::Asia__Tokyo;
        let berlin = chrono_tz::Tz::Europe__Berlin;
        let c = Config::from_vars(&lookup(&[("TZ", "Europe/Berlin")])).unwrap();
        assert_eq!(c.display_zone.configured(), Some(berlin));
        let c = Config::from_vars(&lookup(&[
            ("TZ", "Europe/Berlin"),
            ("DISPLAY_TIME_ZONE", "Asia/Tokyo"),
        ]))
        .unwrap();
        assert_eq!(c.display_zone.configured(), Some(tokyo));
        // A TZ we cannot read leaves the defaults; a bad DISPLAY_TIME_ZONE stops the boot.
        let c = Config::from_vars(&lookup(&[("TZ", "JST-9")])).unwrap();
        assert_eq!(c.display_zone.configured(), None);
        assert!(Config::from_vars(&lookup(&[("DISPLAY_TIME_ZONE", "Tokyo")])).is_err());
    }

    #[test]
    fn values_are_parsed() {
        let c = Config::from_vars(&lookup(&[
            ("PORT", "8080"),
            ("BIND_ADDR", "127.0.0.1"),
            ("MAX_CONNECTIONS", "64"),
            ("DATABASE_URL", "sqlite:///var/lib/web/prod.sqlite3"),
            ("SIDEKIQ_WEB_URL", "http://127.0.0.1:9292/"),
            ("SIDEKIQ_ADMIN_PORT", "4001"),
            ("SIDEKIQ_ADMIN_URL", "https://sidekiq.mail.example/"),
            ("WEB_USERNAME", "u"),
            ("WEB_PASSWORD", "p"),
            ("BULK_SEND_MAX", "50_000"),
        ]))
        .unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1");
        assert_eq!(c.max_connections, 64);
        assert_eq!(c.database_path, PathBuf::from("/var/lib/web/prod.sqlite3"));
        assert_eq!(c.sidekiq_web_url.as_deref(), Some("http://127.0.0.1:9292"));
        assert_eq!(c.sidekiq_admin_port, 4001);
        assert_eq!(
            c.sidekiq_admin_url.as_deref(),
            Some("https://sidekiq.mail.example")
        );
        assert_eq!(c.basic_auth, Some(("u".into(), Secret::new("p"))));
        assert_eq!(c.bulk_send_max, 50_000);
    }

    #[test]
    fn bad_values_stop_the_boot() {
        for pairs in [
            vec![("PORT", "http")],
            vec![("BIND_ADDR", "localhost")],
            vec![("MAX_CONNECTIONS", "0")],
            vec![("SIDEKIQ_WEB_URL", "https://x")],
            vec![("SIDEKIQ_WEB_URL", "127.0.0.1:9292")],
            vec![("SIDEKIQ_ADMIN_URL", "https://x.example/sidekiq")],
            vec![("SIDEKIQ_ADMIN_URL", "sidekiq.example")],
            vec![("WEB_USERNAME", "only")],
            vec![("BULK_SEND_MAX", "0")],
            vec![("BULK_SEND_MAX", "100001")],
            vec![("DATABASE_URL", "sqlite::memory:")],
        ] {
            assert!(Config::from_vars(&lookup(&pairs)).is_err(), "{pairs:?}");
        }
    }
}
