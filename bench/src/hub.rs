//! The hub under load: `fedhub serve` as a separate process, configured by environment
//! variables, killed when this value is dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const BUILD_HINT: &str = "cargo build --release -p fedhub -p fedhub-bench";

/// The `fedhub` binary: `explicit`, or the one next to this executable.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let me = std::env::current_exe().context("locating fedhub-load itself")?;
            me.parent()
                .map(|dir| dir.join("fedhub"))
                .unwrap_or_else(|| PathBuf::from("fedhub"))
        }
    };
    if !path.is_file() {
        bail!(
            "no fedhub binary at {}: build it with `{BUILD_HINT}` (or pass --fedhub PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// A loopback port free right now (the hub binds it a moment later).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

pub struct HubSettings<'a> {
    pub binary: &'a Path,
    pub port: u16,
    pub database_url: &'a str,
    pub at_rest_key_file: &'a Path,
    pub log_level: &'a str,
    pub pool_size: Option<u32>,
    /// More settings, as `FEDHUB_…` variable names and values (`--hub-setting`).
    pub extra: &'a [(String, String)],
    /// `keys.saml_algorithm` (RS256 or ES256) for keys the hub makes itself.
    pub saml_algorithm: &'a str,
    /// The hub's stderr goes here.
    pub log_file: &'a Path,
    /// Working directory (so that no `./fedhub.toml` is picked up by accident).
    pub dir: &'a Path,
}

pub struct Hub {
    child: Child,
    pub pid: u32,
    pub base_url: String,
    log_file: PathBuf,
}

impl Hub {
    pub fn start(s: &HubSettings<'_>) -> Result<Hub> {
        let log = std::fs::File::create(s.log_file)
            .with_context(|| format!("creating {}", s.log_file.display()))?;
        let base_url = format!("http://127.0.0.1:{}", s.port);
        let mut cmd = Command::new(s.binary);
        cmd.arg("serve").current_dir(s.dir);
        // Only the settings below: none inherited from the caller's environment.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("FEDHUB_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("FEDHUB_SERVER_LISTEN", format!("127.0.0.1:{}", s.port))
            .env("FEDHUB_SERVER_PUBLIC_URL", &base_url)
            .env("FEDHUB_DATABASE_URL", s.database_url)
            .env("FEDHUB_KEYS_AT_REST_KEY_FILE", s.at_rest_key_file)
            .env("FEDHUB_COOKIES_SECURE", "false")
            .env("FEDHUB_LOGGING_LEVEL", s.log_level)
            .env("FEDHUB_KEYS_SAML_ALGORITHM", s.saml_algorithm);
        if let Some(size) = s.pool_size {
            cmd.env("FEDHUB_DATABASE_POOL_SIZE", size.to_string());
        }
        cmd.envs(s.extra.iter().map(|(k, v)| (k, v)));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} serve", s.binary.display()))?;
        Ok(Hub {
            pid: child.id(),
            child,
            base_url,
            log_file: s.log_file.to_path_buf(),
        })
    }

    /// Waits until `/readyz` answers 200, the hub exits, or `limit` passes.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let url = format!("{}/readyz", self.base_url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the hub exited before it was ready ({status}); its log:\n{}",
                    self.log_tail(20)
                );
            }
            if let Ok(r) = http.get(&url).send().await {
                if r.status() == reqwest::StatusCode::OK {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the hub was not ready within {limit:?}; its log:\n{}",
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Is the hub still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `n` lines of the hub's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Log lines at WARN or ERROR level, and how many there are in all.
    pub fn log_problems(&self, keep: usize) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let mut count = 0;
        let mut kept = Vec::new();
        for line in text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        {
            count += 1;
            if kept.len() < keep {
                kept.push(line.to_string());
            }
        }
        (count, kept)
    }

    pub fn log_file(&self) -> &Path {
        &self.log_file
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
