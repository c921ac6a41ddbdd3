//! The state every handler shares, built once at start.

use crate::config::Config;
use crate::flags::Flags;
use crate::http::auth::Credentials;
use crate::http::metrics::HttpMetrics;
use crate::http::proxy::{AdminOrigin, SidekiqProxy};
use crate::http::session::SessionKey;
use crate::services::throughput::Throughput;
use crate::storage::db::Db;
use crate::storage::sidekiq::SidekiqRedis;
use anyhow::Context;
use axum::extract::FromRef;
use minijinja::Environment;
use std::sync::Arc;

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// SQLite.
    pub db: Db,
    /// The Sidekiq Redis.
    pub redis: Arc<SidekiqRedis>,
    /// Templates.
    pub templates: Arc<Environment<'static>>,
    /// HTTP request metrics.
    pub metrics: HttpMetrics,
    /// Jobs-per-second samples.
    pub throughput: Arc<Throughput>,
    /// `/sidekiq` proxy, when `SIDEKIQ_WEB_URL` is set.
    pub proxy: Option<SidekiqProxy>,
    /// Where the admin origin is (the proxy's own listener).
    pub admin: AdminOrigin,
    /// Signs session cookies (from the database's secret).
    pub session_key: SessionKey,
    /// Feature flags (Unleash, or the defaults).
    pub flags: Flags,
}

impl AppState {
    /// Opens and migrates the database, compiles the templates and, with `UNLEASH_API_URL`,
    /// starts the Unleash client (on the current tokio runtime). Redis and Unleash are
    /// reached in the background, so the web starts while either is down (and says so).
    ///
    /// # Errors
    /// The database cannot be opened or migrated, a template does not compile, or the
    /// Unleash client cannot be built (no tokio runtime).
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let db = Db::open(&config.database_path)
            .with_context(|| format!("open database {}", config.database_path.display()))?;
        let templates = crate::http::templates::environment(config.display_zone)
            .context("compile templates")?;
        let session_key = SessionKey::new(&db.instance().secret);
        let flags = Flags::start(config.unleash.as_ref()).context("start the unleash client")?;
        Ok(AppState {
            flags,
            session_key,
            redis: Arc::new(SidekiqRedis::new(config.redis_url.clone())),
            proxy: config
                .sidekiq_web_url
                .as_deref()
                .map(|url| SidekiqProxy::new(url, config.basic_auth.is_some())),
            admin: match &config.sidekiq_admin_url {
                Some(url) => AdminOrigin::Url(url.as_str().into()),
                None => AdminOrigin::Port(config.sidekiq_admin_port),
            },
            config: Arc::new(config),
            db,
            templates: Arc::new(templates),
            metrics: HttpMetrics::default(),
            throughput: Arc::new(Throughput::default()),
        })
    }
}

impl FromRef<AppState> for SessionKey {
    fn from_ref(s: &AppState) -> Self {
        s.session_key.clone()
    }
}

impl FromRef<AppState> for HttpMetrics {
    fn from_ref(s: &AppState) -> Self {
        s.metrics.clone()
    }
}

impl FromRef<AppState> for Option<SidekiqProxy> {
    fn from_ref(s: &AppState) -> Self {
        s.proxy.clone()
    }
}

impl FromRef<AppState> for Arc<Environment<'static>> {
    fn from_ref(s: &AppState) -> Self {
        s.templates.clone()
    }
}

impl FromRef<AppState> for Credentials {
    fn from_ref(s: &AppState) -> Self {
        s.config.basic_auth.clone().map(Arc::new)
    }
}
