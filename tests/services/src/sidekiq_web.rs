//! The real Sidekiq::Web of any [`SidekiqVersion`] under puma, serving
//! `ops/sidekiq-web/config.ru` (with our `javascripts/`), and a browser-like client for it.

use crate::SidekiqVersion;
use crate::process::free_port;
use crate::sidekiq_version::StagedDir;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Child;

/// What config.ru needs next to it, relative to the repository root.
fn staged_files() -> Vec<String> {
    let mut files = vec!["ops/sidekiq-web/config.ru".to_owned()];
    let js = crate::process::repo_root().join("ops/sidekiq-web/javascripts");
    if let Ok(entries) = std::fs::read_dir(&js) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".js") {
                files.push(format!("ops/sidekiq-web/javascripts/{name}"));
            }
        }
    }
    files
}

/// `ops/sidekiq-web/config.ru` served by puma on a free port; killed on drop.
pub struct SidekiqWeb {
    child: Child,
    port: u16,
    version: SidekiqVersion,
    http: reqwest::Client,
    staged: StagedDir,
}

impl SidekiqWeb {
    /// Debian's native Sidekiq::Web 6.4.1.
    pub async fn start(redis_url: &str) -> Self {
        Self::start_version(SidekiqVersion::V6, redis_url).await
    }

    /// `version`'s Sidekiq::Web on its own runtime; waits until `/health` answers.
    pub async fn start_version(version: SidekiqVersion, redis_url: &str) -> Self {
        let port = free_port();
        let files = staged_files();
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        let (dir, staged) = version.stage("sidekiq-web", &files);
        let log = std::fs::File::create(staged.host_path().join("puma.log")).unwrap();
        let puma = if version.root().is_some() {
            "/usr/bin/puma"
        } else {
            "puma"
        };
        let child = version
            .command(puma)
            .arg("-b")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .args(["-t", "1:4", "-e", "production"])
            .arg(format!("{dir}/ops/sidekiq-web/config.ru"))
            .env("REDIS_URL", redis_url)
            .env("SESSION_SECRET", "x".repeat(64))
            .env_remove("SIDEKIQ_USERNAME")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {version}'s puma ({e}): apt-get install puma ruby-sidekiq")
            });
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut web = SidekiqWeb {
            child,
            port,
            version,
            http,
            staged,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = web.http.get(web.url("/health")).send().await
                && r.status().is_success()
            {
                return web;
            }
            let exited = web.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "{version}'s Sidekiq::Web did not start on port {port} ({}):\n{}",
                    exited.map_or("timed out".into(), |s| s.to_string()),
                    web.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Which Sidekiq this is.
    pub fn version(&self) -> SidekiqVersion {
        self.version
    }

    /// What puma printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.staged.host_path().join("puma.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// GETs a page under `/sidekiq` and returns (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(self.url(&format!("/sidekiq{path}")))
            .send()
            .await
            .expect("GET Sidekiq::Web");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// GETs `page` (200 expected), then POSTs `fields` to `action` as that page's form would
    /// from a browser: 6.4 and 7.x add the session's `authenticity_token`, 8.1 relies on the
    /// browser's `Sec-Fetch-Site: same-origin`. Returns the status.
    pub async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> u16 {
        let (status, body) = self.get(page).await;
        assert_eq!(
            status, 200,
            "{}: GET {page} before submitting",
            self.version
        );
        let token;
        let mut form: Vec<(&str, &str)> = Vec::new();
        let mut post = self.http.post(self.url(&format!("/sidekiq{action}")));
        if self.version.uses_fetch_metadata() {
            post = post
                .header("sec-fetch-site", "same-origin")
                .header("origin", self.url(""));
        } else {
            token = csrf_token(&body)
                .unwrap_or_else(|| panic!("{}: no authenticity_token on {page}", self.version));
            form.push(("authenticity_token", token.as_str()));
        }
        form.extend_from_slice(fields);
        post.form(&form)
            .send()
            .await
            .expect("POST Sidekiq::Web")
            .status()
            .as_u16()
    }

    /// POSTs as a cross-site forgery would (no token; a browser marks it `cross-site`):
    /// Sidekiq must refuse (403).
    pub async fn forged_post(&self, action: &str, fields: &[(&str, &str)]) -> u16 {
        self.http
            .post(self.url(&format!("/sidekiq{action}")))
            .header("sec-fetch-site", "cross-site")
            .form(fields)
            .send()
            .await
            .expect("POST Sidekiq::Web")
            .status()
            .as_u16()
    }

    /// The puma process (e.g. to check it is still alive).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// The `authenticity_token` hidden field of a Sidekiq::Web 6.x/7.x page.
pub fn csrf_token(html: &str) -> Option<String> {
    let re =
        regex_lite::Regex::new(r#"name=["']authenticity_token["'] value=["']([^"']+)["']"#).ok()?;
    re.captures(html).map(|c| c[1].to_string())
}
