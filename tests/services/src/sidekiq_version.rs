//! The three real Ruby Sidekiq versions the tests run against, each on its own runtime.
//!
//! 6.4 is Debian bookworm's `ruby-sidekiq` 6.4.1, installed natively. 7.3 (Debian trixie,
//! Ruby 3.3, rack 3.1) and 8.1 (Debian sid, rack 3.2) live in root filesystems built and
//! cached by `ops/sidekiq-roots`; their Ruby and puma run under a plain `chroot`, which
//! keeps the network namespace, so they reach the test's loopback `redis-server` directly.

use crate::process::repo_root;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// A real Sidekiq release line and where its Ruby runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SidekiqVersion {
    /// 6.4.1, Debian bookworm, native.
    V6,
    /// 7.3.x, Debian trixie root.
    V7,
    /// 8.1.x, Debian sid root.
    V8,
}

impl SidekiqVersion {
    /// Every version, oldest first.
    pub const ALL: [SidekiqVersion; 3] = [Self::V6, Self::V7, Self::V8];

    /// 6, 7 or 8.
    pub fn major(self) -> u8 {
        match self {
            Self::V6 => 6,
            Self::V7 => 7,
            Self::V8 => 8,
        }
    }

    /// The release line the installed gem must belong to (`"8.1."`).
    pub fn line(self) -> &'static str {
        match self {
            Self::V6 => "6.4.",
            Self::V7 => "7.3.",
            Self::V8 => "8.1.",
        }
    }

    /// 8.1 dropped CSRF tokens for the browser's `Sec-Fetch-Site` header.
    pub fn uses_fetch_metadata(self) -> bool {
        self == Self::V8
    }

    /// 6.4 has no Metrics page.
    pub fn has_metrics(self) -> bool {
        self != Self::V6
    }

    /// The Debian root this version runs in (`None` for the native 6.4). Panics, saying how to
    /// build it, if it has not been built.
    pub fn root(self) -> Option<PathBuf> {
        let suite = match self {
            Self::V6 => return None,
            Self::V7 => "trixie",
            Self::V8 => "sid",
        };
        let root = roots_dir().join(suite);
        assert!(
            root.join(".sidekiq-version").is_file(),
            "the Sidekiq {}.x root is not built (looked in {}): run `ops/sidekiq-roots {}` \
             (about a minute; `.ci/run` does it), or set SIDEKIQ_ROOTS_DIR to where it lives",
            self.major(),
            root.display(),
            self.major()
        );
        Some(root)
    }

    /// A command running `program` (an absolute path inside the root, or a native program)
    /// on this version's runtime.
    pub fn command(self, program: &str) -> Command {
        match self.root() {
            None => Command::new(program),
            Some(root) => {
                let mut c = Command::new("chroot");
                // chroot enters `/`; puma trusts $PWD, which names a host directory.
                c.arg(root).arg(program).env("PWD", "/");
                c
            }
        }
    }

    /// Like [`SidekiqVersion::command`], with the host's `/proc` visible inside the root: a
    /// Sidekiq *server* needs it (7.x/8.x heartbeats read `/proc/<pid>/status` and fail
    /// without it, so the process never shows as running). The bind mount lives in a private
    /// mount namespace (`unshare --mount`) that ends with the process: the cached root and
    /// the host's mounts are left as they were. The pid stays the program's (each step
    /// `exec`s the next).
    pub fn server_command(self, program: &str) -> Command {
        match self.root() {
            None => Command::new(program),
            Some(root) => {
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "sh", "-c"])
                    .arg(r#"mount --bind /proc "$0/proc" && exec chroot "$0" "$@""#)
                    .arg(root)
                    .arg(program)
                    .env("PWD", "/");
                c
            }
        }
    }

    /// Copies `files` (relative to the repository root) into a fresh directory this version's
    /// runtime can read, and returns (its path as that runtime sees it, a guard removing it).
    pub fn stage(self, label: &str, files: &[&str]) -> (String, StagedDir) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "mwk-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (host_dir, inner) = match self.root() {
            None => {
                let d = std::env::temp_dir().join(&name);
                let inner = d.display().to_string();
                (d, inner)
            }
            Some(root) => (root.join("tmp").join(&name), format!("/tmp/{name}")),
        };
        let src_root = repo_root();
        for f in files {
            let dst = host_dir.join(f);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(src_root.join(f), &dst)
                .unwrap_or_else(|e| panic!("copy {f} into {}: {e}", host_dir.display()));
        }
        (inner, StagedDir(host_dir))
    }
}

impl std::fmt::Display for SidekiqVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sidekiq {}", self.line().trim_end_matches('.'))
    }
}

/// A staged directory, removed on drop.
pub struct StagedDir(PathBuf);

impl StagedDir {
    pub fn host_path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where `ops/sidekiq-roots` caches the roots (same rule as the script).
pub fn roots_dir() -> PathBuf {
    crate::process::cache_dir("SIDEKIQ_ROOTS_DIR", "sidekiq-roots")
}
