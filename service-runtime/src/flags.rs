//! Feature flags from Unleash, read the same way by every binary: `unleash-api-client`
//! registers, fetches the flags every refresh interval (15 s, the seed's) and evaluates them
//! in memory, so reading a flag never waits for the network.
//!
//! What the SDK does not say is whether its flags are current: it answers `false` for every
//! flag until its first successful fetch (whatever default is passed), and keeps the last
//! state forever when the server goes away. [`Unleash`] watches every fetch through its own
//! transport ([`Watched`]) and reports a [`FlagSource`]: flags are [`FlagSource::Live`] only
//! while the latest fetch succeeded and is recent. Everywhere else a caller gets `None` and
//! uses its flag's safe value, so "Unleash down" behaves exactly like "no Unleash": the
//! application's defaults, and a banner saying so.

use crate::config::{ConfigError, Secret, Vars};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use unleash_api_client::Context;
use unleash_api_client::client::{Client, ClientBuilder, FeatureKey, Variant};
use unleash_api_client::http::reqwest::ReqwestTransport;
use unleash_api_client::http::{Method, Request, Response, Transport};

/// Longest one request to Unleash may take (fetch, register or metrics). Only the background
/// poller waits for it; pages and workers read the flags from memory.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach Unleash.
#[derive(Debug, Clone)]
pub struct FlagSettings {
    /// `UNLEASH_API_URL`: the client API, `/api` included (`http://unleash:4242/api`).
    pub api_url: String,
    /// `UNLEASH_CLIENT_SECRET`: a backend token (`default:development.…`).
    pub client_secret: Option<Secret>,
    /// The app name Unleash lists this process under.
    pub app_name: String,
    /// The instance id (the host or pod name).
    pub instance_id: String,
    /// `UNLEASH_REFRESH_INTERVAL`: time between fetches.
    pub refresh: Duration,
}

impl FlagSettings {
    /// Reads `UNLEASH_API_URL`, `UNLEASH_CLIENT_SECRET` and `UNLEASH_REFRESH_INTERVAL`
    /// (seconds, default `default_refresh`); `None` when `UNLEASH_API_URL` is unset.
    ///
    /// # Errors
    /// A URL that is not `http(s)://…`, or a refresh interval outside 0.1 s to an hour.
    pub fn from_vars(
        vars: &Vars,
        app_name: &str,
        instance_id: &str,
        default_refresh: Duration,
    ) -> Result<Option<FlagSettings>, ConfigError> {
        let Some(url) = vars.get("UNLEASH_API_URL") else {
            return Ok(None);
        };
        let trimmed = url.trim_end_matches('/');
        let ok = ["http://", "https://"]
            .iter()
            .any(|s| trimmed.strip_prefix(s).is_some_and(|rest| !rest.is_empty()));
        if !ok {
            return Err(ConfigError::invalid(
                "UNLEASH_API_URL",
                &url,
                "expected the client API URL, e.g. http://localhost:4242/api",
            ));
        }
        let refresh = vars
            .seconds("UNLEASH_REFRESH_INTERVAL")?
            .unwrap_or(default_refresh);
        if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&refresh) {
            return Err(ConfigError::invalid(
                "UNLEASH_REFRESH_INTERVAL",
                &format!("{}", refresh.as_secs_f64()),
                "must be 0.1..=3600 seconds",
            ));
        }
        Ok(Some(FlagSettings {
            api_url: trimmed.to_owned(),
            client_secret: vars.secret("UNLEASH_CLIENT_SECRET"),
            app_name: app_name.to_owned(),
            instance_id: instance_id.to_owned(),
            refresh,
        }))
    }
}

/// Where the flag values a process uses come from right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagSource {
    /// `UNLEASH_API_URL` is unset: the application's defaults.
    NotConfigured,
    /// Unleash never answered, or its latest fetch failed: the application's defaults.
    Unreachable,
    /// The latest fetch succeeded: Unleash's values.
    Live,
}

/// Unleash could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    /// The HTTP client could not be built (TLS setup).
    #[error("unleash http client: {0}")]
    Http(#[from] reqwest::Error),
    /// The SDK refused the settings.
    #[error("unleash client: {0}")]
    Client(String),
    /// Started outside a tokio runtime.
    #[error("the unleash poller needs a tokio runtime")]
    NoRuntime,
}

/// A flag by its name in Unleash (the SDK wants a typed key; names live in `mail-protocol`).
#[derive(Debug, Clone, Copy)]
pub struct FlagName(pub &'static str);

impl FeatureKey for FlagName {
    fn name(self) -> &'static str {
        self.0
    }
}

/// A connection to Unleash with its background poller; clones share it, and the poller stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Unleash {
    inner: Arc<Inner>,
}

struct Inner {
    client: Arc<Client<FlagName>>,
    fetches: Arc<FetchLog>,
    app_name: String,
    /// A fetch older than this is no longer "the latest": the poller is stuck or gone.
    stale_after: Duration,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for Unleash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unleash")
            .field("app_name", &self.inner.app_name)
            .field("source", &self.source())
            .finish_non_exhaustive()
    }
}

impl Unleash {
    /// Builds the client and starts, on the current tokio runtime, registering (retried each
    /// refresh until it works) and polling. Returns at once: flags are
    /// [`FlagSource::Unreachable`] until the first fetch lands.
    ///
    /// # Errors
    /// [`FlagsError`].
    pub fn start(settings: &FlagSettings) -> Result<Unleash, FlagsError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| FlagsError::NoRuntime)?;
        let fetches = Arc::new(FetchLog::default());
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .build()?;
        let transport = Watched {
            inner: ReqwestTransport::new(http),
            fetches: fetches.clone(),
        };
        let refresh_ms = u64::try_from(settings.refresh.as_millis()).unwrap_or(u64::MAX);
        let client = ClientBuilder::default()
            .interval(refresh_ms)
            .into_client_with_transport::<FlagName>(
                &settings.api_url,
                &settings.app_name,
                &settings.instance_id,
                settings
                    .client_secret
                    .as_ref()
                    .map(|s| s.expose().to_owned()),
                Arc::new(transport),
            )
            .map_err(|e| FlagsError::Client(e.to_string()))?;
        let client = Arc::new(client);
        let register = {
            let client = client.clone();
            let refresh = settings.refresh;
            runtime.spawn(async move {
                let mut warned = false;
                loop {
                    match client.register().await {
                        Ok(()) => {
                            tracing::info!("registered with unleash");
                            return;
                        }
                        Err(e) if !warned => {
                            warned = true;
                            tracing::warn!(error = %e, "unleash: cannot register yet; flags use their defaults until it answers");
                        }
                        Err(_) => {}
                    }
                    tokio::time::sleep(refresh).await;
                }
            })
        };
        let poll = {
            let client = client.clone();
            runtime.spawn(async move { client.poll_for_updates().await })
        };
        tracing::info!(api_url = %settings.api_url, app_name = %settings.app_name, instance_id = %settings.instance_id,
            refresh_ms, "unleash client started");
        Ok(Unleash {
            inner: Arc::new(Inner {
                client,
                fetches,
                app_name: settings.app_name.clone(),
                stale_after: settings.refresh * 2 + REQUEST_TIMEOUT,
                tasks: vec![register, poll],
            }),
        })
    }

    /// [`FlagSource::Live`] while the latest fetch succeeded (and the SDK holds its flags),
    /// else [`FlagSource::Unreachable`].
    pub fn source(&self) -> FlagSource {
        let live = self.inner.fetches.latest_ok(self.inner.stale_after)
            && self.inner.client.cached_state().is_some();
        if live {
            FlagSource::Live
        } else {
            FlagSource::Unreachable
        }
    }

    fn context(&self, user_id: Option<&str>) -> Context {
        Context {
            user_id: user_id.map(str::to_owned),
            app_name: self.inner.app_name.clone(),
            ..Context::default()
        }
    }

    /// Whether `flag` is on for `user_id`; `None` unless [`FlagSource::Live`]. A flag
    /// Unleash does not know reads as `unknown`.
    pub fn enabled(
        &self,
        flag: &'static str,
        user_id: Option<&str>,
        unknown: bool,
    ) -> Option<bool> {
        if self.source() != FlagSource::Live {
            return None;
        }
        let ctx = self.context(user_id);
        Some(
            self.inner
                .client
                .is_enabled(FlagName(flag), Some(&ctx), unknown),
        )
    }

    /// The variant of `flag` for `user_id`; `None` unless [`FlagSource::Live`], and
    /// `Some(None)` when the flag is off, unknown or has no variants for this user.
    pub fn variant(&self, flag: &'static str, user_id: Option<&str>) -> Option<Option<String>> {
        if self.source() != FlagSource::Live {
            return None;
        }
        let ctx = self.context(user_id);
        let v: Variant = self.inner.client.get_variant(FlagName(flag), &ctx);
        Some(v.enabled.then_some(v.name))
    }
}

/// The outcome of the latest flag fetch.
#[derive(Default)]
struct FetchLog {
    latest: Mutex<Option<(Instant, bool)>>,
}

impl FetchLog {
    fn record(&self, ok: bool) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), ok));
    }

    fn latest_ok(&self, stale_after: Duration) -> bool {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|(at, ok)| ok && at.elapsed() <= stale_after)
    }
}

/// The SDK's reqwest transport, with a timeout, noting how every flag fetch ends.
struct Watched {
    inner: ReqwestTransport,
    fetches: Arc<FetchLog>,
}

#[async_trait::async_trait]
impl Transport for Watched {
    async fn execute(&self, request: Request) -> Result<Response, anyhow::Error> {
        let is_fetch = request.method == Method::Get && request.url.ends_with("/client/features");
        let result = self.inner.execute(request).await;
        if is_fetch {
            // A 401 (wrong token) or 5xx comes back as a response, not an error: only 2xx
            // brings flags.
            let ok = matches!(&result, Ok(r) if (200..300).contains(&r.status));
            if !ok {
                match &result {
                    Ok(r) => tracing::debug!(status = r.status, "unleash fetch refused"),
                    Err(e) => tracing::debug!(error = %e, "unleash fetch failed"),
                }
            }
            self.fetches.record(ok);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_the_environment() {
        let none = FlagSettings::from_vars(
            &Vars::from_pairs([("UNLEASH_CLIENT_SECRET", "x")]),
            "app",
            "host",
            Duration::from_secs(15),
        )
        .unwrap();
        assert!(none.is_none(), "no URL, no Unleash");
        let s = FlagSettings::from_vars(
            &Vars::from_pairs([
                ("UNLEASH_API_URL", "http://unleash:4242/api/"),
                ("UNLEASH_CLIENT_SECRET", "default:development.t"),
                ("UNLEASH_REFRESH_INTERVAL", "0.5"),
            ]),
            "app",
            "host",
            Duration::from_secs(15),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.api_url, "http://unleash:4242/api");
        assert_eq!(s.refresh, Duration::from_millis(500));
        assert_eq!(
            s.client_secret.as_ref().map(Secret::expose),
            Some("default:development.t")
        );
        assert!(!format!("{s:?}").contains("development.t"), "{s:?}");
        for bad in [
            vec![("UNLEASH_API_URL", "unleash:4242")],
            vec![
                ("UNLEASH_API_URL", "http://u/api"),
                ("UNLEASH_REFRESH_INTERVAL", "0"),
            ],
        ] {
            assert!(
                FlagSettings::from_vars(&Vars::from_pairs(bad.clone()), "a", "h", Duration::ZERO)
                    .is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_a_recent_successful_fetch_is_live() {
        let log = FetchLog::default();
        assert!(!log.latest_ok(Duration::from_secs(1)), "never fetched");
        log.record(true);
        assert!(log.latest_ok(Duration::from_secs(1)));
        assert!(!log.latest_ok(Duration::ZERO), "stale");
        log.record(false);
        assert!(!log.latest_ok(Duration::from_secs(1)), "latest failed");
    }

    #[tokio::test]
    async fn unreachable_until_a_fetch_succeeds_and_then_defaults_are_none() {
        // A port nothing listens on (1 is privileged and unused): connects are refused.
        let settings = FlagSettings {
            api_url: "http://127.0.0.1:1/api".into(),
            client_secret: None,
            app_name: "test".into(),
            instance_id: "test".into(),
            refresh: Duration::from_millis(100),
        };
        let unleash = Unleash::start(&settings).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(unleash.source(), FlagSource::Unreachable);
        assert_eq!(unleash.enabled("any", None, true), None);
        assert_eq!(unleash.variant("any", Some("u")), None);
    }
}
