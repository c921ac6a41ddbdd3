//! `TestApp`: the router over a fresh temp database, with a browser-like cookie jar
//! (CSRF token, flash) and one method per kind of request.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::Response;
use mail_web::{AppState, Config, router};
use std::collections::BTreeMap;
use std::sync::Mutex;
use test_services::{RedisServer, TempDir};
use tower::ServiceExt;

/// A Redis URL nothing listens on: port 1 is privileged and unused, so connects are refused
/// at once (never a shared or default port).
pub const DEAD_REDIS: &str = "redis://127.0.0.1:1/0";

pub struct TestApp {
    pub state: AppState,
    router: Router,
    /// The Sidekiq admin's own origin.
    admin: Router,
    cookies: Mutex<BTreeMap<String, String>>,
    pub token: String,
    pub redis: Option<RedisServer>,
    pub dir: TempDir,
}

pub fn config(dir: &TempDir, redis_url: &str) -> Config {
    Config::new(dir.path().join("db/test.sqlite3"), redis_url)
}

impl TestApp {
    /// No Redis (pages still work; Redis parts degrade).
    pub async fn new() -> Self {
        Self::with(|_| {}, None).await
    }

    /// With a private redis-server.
    pub async fn with_redis() -> Self {
        Self::with(|_| {}, Some(RedisServer::start())).await
    }

    /// With a customised config.
    pub async fn with(tweak: impl FnOnce(&mut Config), redis: Option<RedisServer>) -> Self {
        let dir = TempDir::new("web");
        let url = redis
            .as_ref()
            .map_or(DEAD_REDIS.to_string(), RedisServer::url);
        let mut cfg = config(&dir, &url);
        tweak(&mut cfg);
        Self::start(cfg, redis, dir).await
    }

    /// The same app started again on the same files and Redis (a process restart).
    pub async fn restarted(self) -> Self {
        let cfg = (*self.state.config).clone();
        Self::start(cfg, self.redis, self.dir).await
    }

    async fn start(cfg: Config, redis: Option<RedisServer>, dir: TempDir) -> Self {
        let auth = cfg.basic_auth.clone().map(|(u, p)| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.expose()))
            )
        });
        let state = AppState::new(cfg).unwrap();
        let mut app = TestApp {
            router: router(state.clone()),
            admin: mail_web::admin_router(state.clone()),
            state,
            cookies: Mutex::new(BTreeMap::new()),
            token: String::new(),
            redis,
            dir,
        };
        // Like a browser: load the page once to receive the session cookie, and take the
        // forms' token from the page.
        let res = match &auth {
            Some(a) => app.get_with("/", &[("authorization", a)]).await,
            None => app.get("/").await,
        };
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            app.cookie("_mail_web_session").is_some(),
            "session cookie set by GET /"
        );
        app.token = csrf_meta(&text(res).await).expect("csrf-token meta tag");
        app
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store_cookies(&self, headers: &HeaderMap) {
        let mut jar = self.cookies.lock().unwrap();
        for v in headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                jar.remove(k);
            } else {
                jar.insert(k.to_string(), val.to_string());
            }
        }
    }

    /// Sends a request with the jar's cookies; keeps the cookies it sets.
    pub async fn send(&self, mut req: Request<Body>) -> Response {
        let jar = self.cookie_header();
        if !jar.is_empty() && !req.headers().contains_key(header::COOKIE) {
            req.headers_mut()
                .insert(header::COOKIE, jar.parse().unwrap());
        }
        let res = self.router.clone().oneshot(req).await.unwrap();
        self.store_cookies(res.headers());
        res
    }

    /// GET with the jar's cookies, `cookie` (`name=value`) replacing the jar's cookie of that
    /// name, without storing what the response sets: for tasks sharing one app.
    pub async fn get_isolated(&self, uri: &str, cookie: &str) -> Response {
        let name = cookie.split('=').next().unwrap_or("");
        let mut jar: Vec<String> = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.as_str() != name)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        jar.push(cookie.to_string());
        let req = Request::get(uri)
            .header(header::COOKIE, jar.join("; "))
            .body(Body::empty())
            .unwrap();
        self.router.clone().oneshot(req).await.unwrap()
    }

    /// Like [`Self::send`], to the admin origin (browsers share cookies across ports).
    pub async fn send_admin(&self, mut req: Request<Body>) -> Response {
        let jar = self.cookie_header();
        if !jar.is_empty() && !req.headers().contains_key(header::COOKIE) {
            req.headers_mut()
                .insert(header::COOKIE, jar.parse().unwrap());
        }
        let res = self.admin.clone().oneshot(req).await.unwrap();
        self.store_cookies(res.headers());
        res
    }

    pub async fn get(&self, uri: &str) -> Response {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> Response {
        let mut b = Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// GET and read the body as text.
    pub async fn page(&self, uri: &str) -> String {
        let res = self.get(uri).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {uri}");
        text(res).await
    }

    /// POSTs urlencoded `fields` plus the CSRF token.
    pub async fn post_form(&self, uri: &str, fields: &[(&str, &str)]) -> Response {
        let mut all = vec![("authenticity_token", self.token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw_form(uri, &all).await
    }

    /// POSTs exactly `fields` (no token added).
    pub async fn post_raw_form(&self, uri: &str, fields: &[(&str, &str)]) -> Response {
        let body = serde_urlencoded(fields);
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// POSTs a CSV upload as the page's form does (token first, then `csv_file`).
    pub async fn upload_csv(&self, bytes: &[u8]) -> Response {
        self.upload(Some(&self.token.clone()), bytes).await
    }

    pub async fn upload(&self, token: Option<&str>, bytes: &[u8]) -> Response {
        let boundary = "----mailwebtestboundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        if let Some(t) = token {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"authenticity_token\"\r\n\r\n{t}\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csv_file\"; filename=\"addresses.csv\"\r\nContent-Type: text/csv\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.send(
            Request::post("/emails/import_csv")
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Follows a 303 like a browser and returns the page (showing the flash).
    pub async fn follow(&self, res: Response) -> String {
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "expected a redirect");
        let to = res.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        self.page(&to).await
    }

    /// Number of rows in `emails`.
    pub async fn email_count(&self) -> i64 {
        self.state
            .db
            .call(|c| Ok(c.query_row("SELECT COUNT(*) FROM emails", [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    /// Adds `n` addresses `u<i>@example.test` straight into the table.
    pub async fn seed(&self, n: usize) {
        self.state
            .db
            .call(move |c| {
                let rows: Vec<_> = (1..=n)
                    .map(|i| {
                        mail_web::domain::address::NewAddress::parse(
                            &format!("User {i}"),
                            &format!("u{i}@example.test"),
                        )
                        .unwrap()
                    })
                    .collect();
                mail_web::storage::addresses::add_many(c, &rows)
            })
            .await
            .unwrap();
    }

    pub fn redis(&self) -> &RedisServer {
        self.redis.as_ref().expect("test started without redis")
    }

    /// Where the worker counts send `mail_job_id` of this app's database.
    pub fn progress_key(&self, mail_job_id: i64) -> String {
        let instance = &self.state.db.instance().id;
        mail_protocol::keys::progress(&mail_protocol::SendId::new(instance, mail_job_id))
    }

    /// Writes counters of send `mail_job_id` the way the worker does (fields of its hash).
    pub async fn set_progress(&self, mail_job_id: i64, fields: &[(&str, i64)]) {
        let mut c = self.redis().conn().await;
        let _: () =
            redis::AsyncCommands::hset_multiple(&mut c, self.progress_key(mail_job_id), fields)
                .await
                .unwrap();
    }
}

/// The token in `<meta name="csrf-token" content="…">`.
pub fn csrf_meta(html: &str) -> Option<String> {
    let rest = html.split("<meta name=\"csrf-token\" content=\"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

pub async fn text(res: Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub async fn json(res: Response) -> serde_json::Value {
    serde_json::from_str(&text(res).await).unwrap()
}

fn serde_urlencoded(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The real `mail-web` binary on a free loopback port with its own database and `envs`
/// (Redis unreachable unless given), its stdout drained. Returns once `/health/live`
/// answers.
pub struct WebProcess {
    /// Killed on drop.
    _child: tokio::process::Child,
    pub port: u16,
    /// Holds the database; removed on drop.
    _dir: TempDir,
}

impl WebProcess {
    pub async fn start(envs: &[(&str, String)]) -> Self {
        let dir = TempDir::new("web-bin");
        let port = test_services::free_port();
        let mut cmd = tokio::process::Command::new(test_services::bin_path("mail-web"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            .env("BIND_ADDR", "127.0.0.1")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("web.sqlite3").display()),
            )
            .env("REDIS_URL", DEAD_REDIS)
            .env("RUST_LOG", "warn")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .expect("spawn mail-web (cargo build --bins first)");
        let web = WebProcess {
            _child: child,
            port,
            _dir: dir,
        };
        test_services::wait_until(
            std::time::Duration::from_secs(30),
            "mail-web listening",
            || async { web.raw("/health/live").await.ok() },
        )
        .await;
        web
    }

    pub fn pid(&self) -> u32 {
        self._child.id().expect("mail-web still running")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One `GET path` on a fresh connection; the whole response as text.
    pub async fn raw(&self, path: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr()).await?;
        s.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.addr()
            )
            .as_bytes(),
        )
        .await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).into_owned();
        if text.starts_with("HTTP/1.1 ") {
            Ok(text)
        } else {
            Err(std::io::Error::other(format!("not a response: {text:?}")))
        }
    }
}

/// Posts a form with a real HTTP client (to a running `mail-web` binary) and returns the
/// page it answers with (redirects followed).
pub async fn post_page(http: &reqwest::Client, url: String, form: &[(&str, &str)]) -> String {
    http.post(url)
        .form(form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
