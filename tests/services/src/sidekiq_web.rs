//! The real Sidekiq::Web (Debian's 6.4.1) under puma, and a browser-like client for it.

use crate::process::{free_port, repo_root};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// `ops/sidekiq-web/config.ru` served by puma on a free port; killed on drop.
pub struct SidekiqWeb {
    child: Child,
    port: u16,
    http: reqwest::Client,
}

impl SidekiqWeb {
    /// Starts puma and waits until `/health` answers.
    pub async fn start(redis_url: &str) -> Self {
        let port = free_port();
        let config = repo_root().join("ops/sidekiq-web/config.ru");
        let child = Command::new("puma")
            .arg("-b")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .args(["-t", "1:4", "--silent"])
            .arg(&config)
            .env("REDIS_URL", redis_url)
            .env("SESSION_SECRET", "x".repeat(64))
            .env_remove("SIDEKIQ_USERNAME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("puma not installed (apt-get install puma ruby-sidekiq)");
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let web = SidekiqWeb { child, port, http };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = web.http.get(web.url("/health")).send().await
                && r.status().is_success()
            {
                return web;
            }
            assert!(
                Instant::now() < deadline,
                "Sidekiq::Web did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

    /// GETs `page` (so the session holds a CSRF token), then POSTs `fields` plus that
    /// `authenticity_token` to `action`, as the browser form would. Returns the status.
    pub async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> u16 {
        let (status, body) = self.get(page).await;
        assert_eq!(status, 200, "GET {page} before submitting");
        let token = csrf_token(&body).expect("no authenticity_token on the page");
        let mut form: Vec<(&str, &str)> = vec![("authenticity_token", token.as_str())];
        form.extend_from_slice(fields);
        self.http
            .post(self.url(&format!("/sidekiq{action}")))
            .form(&form)
            .send()
            .await
            .expect("POST Sidekiq::Web")
            .status()
            .as_u16()
    }

    /// POSTs without a token: Sidekiq must refuse (403).
    pub async fn post_without_token(&self, action: &str, fields: &[(&str, &str)]) -> u16 {
        self.http
            .post(self.url(&format!("/sidekiq{action}")))
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

/// The `authenticity_token` hidden field of a Sidekiq::Web page.
pub fn csrf_token(html: &str) -> Option<String> {
    let re =
        regex_lite::Regex::new(r#"name=["']authenticity_token["'] value=["']([^"']+)["']"#).ok()?;
    re.captures(html).map(|c| c[1].to_string())
}
