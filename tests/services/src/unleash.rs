//! A real Unleash server per test: npm `unleash-server` 7.5.1 (installed once by
//! `ops/unleash/install` into a cache directory) on a private PostgreSQL cluster made with
//! Debian's `initdb` in a temp directory, both on free loopback ports, killed on drop. Flags
//! are created by the real `ops/unleash/flags` script and changed through the admin API, as
//! a person would in the admin UI.
//!
//! Starting one takes 10–20 s (Node loads ~190 MB of JavaScript), so a test that needs one
//! covers several steps with it; to take Unleash away and bring it back cheaply, put a
//! [`crate::TcpProxy`] in front of it.

use crate::process::{TempDir, free_port, repo_root};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The npm package version `ops/unleash/install` installs.
pub const VERSION: &str = "7.5.1";
/// Admin API token created at the first start (as in compose.yml and ops/k8s).
pub const ADMIN_TOKEN: &str = "*:*.unleash-insecure-admin-api-token";
/// Backend (SDK) token for the `development` environment.
pub const BACKEND_TOKEN: &str = "default:development.unleash-insecure-api-token";
/// Environment the backend token reads.
pub const ENVIRONMENT: &str = "development";

/// A running Unleash on its own PostgreSQL.
pub struct UnleashServer {
    port: u16,
    node: Option<Child>,
    postgres: Option<Child>,
    http: reqwest::Client,
    log: PathBuf,
    /// The cluster's files and logs; removed on drop, after both processes are gone.
    _dir: TempDir,
}

impl UnleashServer {
    /// Starts PostgreSQL and Unleash and waits until Unleash answers `/health` (its
    /// migrations done, the dev tokens created).
    pub async fn start() -> Self {
        let server_dir = server_dir();
        let entry = server_dir.join("node_modules/unleash-server/dist/server.js");
        assert!(
            entry.is_file() && server_dir.join(".installed").is_file(),
            "unleash-server {VERSION} is not installed in {}: run `ops/unleash/install` \
             (once, a minute or two; .ci/run does it), or set UNLEASH_SERVER_DIR",
            server_dir.display()
        );
        let dir = TempDir::new("unleash");
        let (postgres, pg_port) = start_postgres(dir.path());
        let port = free_port();
        let log = dir.path().join("unleash.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let node = Command::new("node")
            .arg(&entry)
            .current_dir(&server_dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env(
                "DATABASE_URL",
                format!("postgres://unleash:unleash@127.0.0.1:{pg_port}/unleash"),
            )
            .env("DATABASE_SSL", "false")
            .env("HTTP_PORT", port.to_string())
            .env("HTTP_HOST", "127.0.0.1")
            .env("CHECK_VERSION", "false")
            .env("SEND_TELEMETRY", "false")
            .env("LOG_LEVEL", "warn")
            .env("INIT_ADMIN_API_TOKENS", ADMIN_TOKEN)
            .env("INIT_BACKEND_API_TOKENS", BACKEND_TOKEN)
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn node (is nodejs installed?)");
        let mut server = UnleashServer {
            port,
            node: Some(node),
            postgres: Some(postgres),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            log,
            _dir: dir,
        };
        server.wait_healthy(Duration::from_secs(180)).await;
        server
    }

    async fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/health", self.url());
        loop {
            if let Some(node) = self.node.as_mut()
                && let Ok(Some(status)) = node.try_wait()
            {
                panic!(
                    "unleash-server exited ({status}) before it was healthy:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "unleash-server not healthy after {timeout:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `http://127.0.0.1:<port>` (the admin UI).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>/api`, what the SDK is given.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url())
    }

    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the Unleash process (PostgreSQL keeps running): Unleash is down.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.node.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `ops/unleash/flags` against this server (the seed's flags, idempotently) and
    /// returns its output; panics if it fails.
    pub async fn create_seed_flags(&self) -> String {
        let out = tokio::process::Command::new(repo_root().join("ops/unleash/flags"))
            .env("UNLEASH_URL", self.url())
            .env("UNLEASH_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .await
            .expect("run ops/unleash/flags");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "ops/unleash/flags failed:\n{text}");
        text
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/api/admin{path}", self.url());
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("Authorization", ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn feature_path(name: &str) -> String {
        format!("/projects/default/features/{name}/environments/{ENVIRONMENT}")
    }

    /// Turns `flag` on or off in the development environment (the admin UI's toggle).
    pub async fn set_enabled(&self, flag: &str, on: bool) {
        let path = format!(
            "{}/{}",
            Self::feature_path(flag),
            if on { "on" } else { "off" }
        );
        self.admin(reqwest::Method::POST, &path, None).await;
    }

    /// Replaces the variants of `flag`'s (first) strategy: `(name, weight)` pairs whose
    /// weights add up to 1000 (Unleash's per-mille), sticky on the user id.
    pub async fn set_strategy_variants(&self, flag: &str, variants: &[(&str, u32)]) {
        let path = format!("{}/strategies", Self::feature_path(flag));
        let strategies = self.admin(reqwest::Method::GET, &path, None).await;
        let strategy = strategies
            .as_array()
            .and_then(|a| a.first())
            .unwrap_or_else(|| panic!("{flag} has no strategy: {strategies}"))
            .clone();
        let id = strategy["id"].as_str().unwrap().to_owned();
        let variants: Vec<Value> = variants
            .iter()
            .map(|(name, weight)| {
                json!({"name": name, "weight": weight, "weightType": "variable", "stickiness": "default"})
            })
            .collect();
        let body = json!({
            "name": strategy["name"],
            "parameters": strategy["parameters"],
            "constraints": strategy["constraints"],
            "variants": variants,
        });
        self.admin(reqwest::Method::PUT, &format!("{path}/{id}"), Some(body))
            .await;
    }

    /// What an SDK with the backend token is served (`/api/client/features`).
    pub async fn client_features(&self) -> Value {
        self.http
            .get(format!("{}/client/features", self.api_url()))
            .header("Authorization", BACKEND_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The applications Unleash has seen register (`/api/admin/metrics/applications`).
    pub async fn applications(&self) -> Value {
        self.admin(reqwest::Method::GET, "/metrics/applications", None)
            .await
    }
}

impl Drop for UnleashServer {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut pg) = self.postgres.take() {
            // SIGKILL would leave its shared memory and socket behind; SIGQUIT is Postgres's
            // own immediate shutdown.
            let _ = Command::new("kill")
                .args(["-QUIT", &pg.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = pg.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = pg.kill();
            let _ = pg.wait();
        }
    }
}

/// Where `ops/unleash/install` puts the server (the same rule as the script).
pub fn server_dir() -> PathBuf {
    crate::process::cache_dir("UNLEASH_SERVER_DIR", &format!("unleash-{VERSION}"))
}

/// The newest PostgreSQL (>= 14, what Unleash 7 supports) under `/usr/lib/postgresql`.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (v >= 14 && bin.join("initdb").is_file()).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no PostgreSQL >= 14 under /usr/lib/postgresql: apt-get install postgresql")
}

/// PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
fn as_postgres(program: &Path) -> Command {
    // `id -u`: this crate has no libc for geteuid.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if root {
        // setpriv execs the program itself (no parent left behind), so killing the child
        // kills PostgreSQL.
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A fresh cluster (trust auth, no fsync: test data) on a free port, with the `unleash`
/// database and user.
fn start_postgres(dir: &Path) -> (Child, u16) {
    let bin = postgres_bin();
    let data = dir.join("pg");
    std::fs::create_dir_all(&data).unwrap();
    // Not root: chown fails, and the directory is ours already.
    let _ = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status();
    let status = as_postgres(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run initdb");
    assert!(status.success(), "initdb failed in {}", data.display());
    for _ in 0..20 {
        let port = free_port();
        let mut child = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("postgres.log")).unwrap(),
            ))
            .spawn()
            .expect("spawn postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ready = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port was taken meanwhile
            }
            if psql(&bin, port, "SELECT 1") {
                ready = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        assert!(psql(&bin, port, "CREATE USER unleash PASSWORD 'unleash'"));
        // Separate call: CREATE DATABASE cannot run inside psql's implicit transaction block
        // of a multi-statement string.
        assert!(psql(&bin, port, "CREATE DATABASE unleash OWNER unleash"));
        return (child, port);
    }
    panic!("could not start postgres in {}", dir.display());
}

fn psql(bin: &Path, port: u16, sql: &str) -> bool {
    Command::new(bin.join("psql"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
