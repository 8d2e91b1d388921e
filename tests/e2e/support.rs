//! Running `loupe` as a child process and talking to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub(crate) const LOUPE: &str = env!("CARGO_BIN_EXE_loupe");

/// How long a test waits for something that should happen in milliseconds before it calls it
/// a hang. Generous, so a loaded CI machine cannot fail a test by being slow; the timings
/// themselves are printed, not asserted.
pub(crate) const POLL_DEADLINE: Duration = Duration::from_secs(60);

/// A `loupe serve` child process on an ephemeral port.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) base: String,
    /// `host:port` of the PostgreSQL door, when it was started with `--pg`.
    pub(crate) pg: Option<String>,
    /// The `--api-key` it was started with, which [`poll_sql`] presents.
    pub(crate) api_key: Option<String>,
}

impl ServerProcess {
    /// Starts `loupe serve` on `data_dir` and returns once it listens. The config file, if
    /// given, is written next to the data directory first.
    pub(crate) fn start(data_dir: &Path, config_toml: Option<&str>) -> ServerProcess {
        Self::start_with(data_dir, config_toml, &[])
    }

    /// [`ServerProcess::start`] with more `serve` arguments (an `--http` among them replaces the
    /// default loopback one).
    pub(crate) fn start_with(
        data_dir: &Path,
        config_toml: Option<&str>,
        args: &[&str],
    ) -> ServerProcess {
        Self::start_command(Command::new(LOUPE), data_dir, config_toml, args)
    }

    /// [`ServerProcess::start_with`] with the command that runs `loupe` given: a wrapper such
    /// as `prlimit ... -- loupe` whose arguments end in the loupe binary.
    pub(crate) fn start_command(
        mut cmd: Command,
        data_dir: &Path,
        config_toml: Option<&str>,
        args: &[&str],
    ) -> ServerProcess {
        if let Some(toml) = config_toml {
            let path = data_dir.with_extension("toml");
            std::fs::write(&path, toml).unwrap();
            cmd.arg("--config").arg(path);
        }
        let mut child = cmd
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(if args.contains(&"--http") {
                &[][..]
            } else {
                &["--http", "127.0.0.1:0"][..]
            })
            .args(args)
            .env("LOUPE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn loupe serve");
        // The server prints its address once it listens; EOF means it died first.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "loupe listening on http://A[, postgresql://B] (data: ...)"
        let after = |scheme: &str| {
            line.split(scheme)
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .map(|s| s.trim_end_matches(',').to_owned())
        };
        let addr =
            after("http://").unwrap_or_else(|| panic!("loupe serve did not start: {line:?}"));
        let pg = after("postgresql://");
        let api_key = args
            .iter()
            .position(|a| *a == "--api-key")
            .and_then(|i| args.get(i + 1))
            .map(|k| (*k).to_owned());
        ServerProcess {
            child,
            base: format!("http://{addr}"),
            pg,
            api_key,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no flush, no goodbye.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the graceful exit (which flushes).
    pub(crate) fn terminate(mut self) -> ExitStatus {
        let rc = send_signal(self.child.id(), libc::SIGTERM);
        assert_eq!(rc, 0, "sending SIGTERM");
        self.child.wait().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unsafe_code)]
fn send_signal(pid: u32, sig: i32) -> i32 {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
    unsafe { libc::kill(pid as i32, sig) }
}

/// Runs `loupe sql --format json` against a data directory and parses the rows.
pub(crate) fn sql_json(data_dir: &Path, query: &str) -> Vec<serde_json::Value> {
    let out = Command::new(LOUPE)
        .args([
            "sql",
            "--format",
            "json",
            "--max-rows",
            "10000000",
            "--data-dir",
        ])
        .arg(data_dir)
        .arg(query)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loupe sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn temp_data_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    (tmp, data)
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Polls `query` over HTTP until `done` accepts the rows; panics after [`POLL_DEADLINE`].
pub(crate) async fn poll_sql(
    server: &ServerProcess,
    query: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let client = client();
    let mut last = Vec::new();
    let deadline = Instant::now() + POLL_DEADLINE;
    while Instant::now() < deadline {
        let mut req = client
            .post(server.url("/api/v1/sql"))
            .body(query.to_owned());
        if let Some(key) = &server.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.unwrap();
        let body: serde_json::Value = resp.json().await.unwrap();
        if let Some(rows) = body["rows"].as_array() {
            if done(rows) {
                return rows.clone();
            }
            last = rows.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached in {POLL_DEADLINE:?} for {query}; last rows {last:?}");
}

/// How many Parquet files the dataset has published, as the store lists them.
pub(crate) fn published_files(data_dir: &Path, dataset: &str) -> usize {
    let name = loupe_store::DatasetName::new(dataset).unwrap();
    loupe_store::Store::new(data_dir)
        .dataset(&name)
        .parquet_files()
        .unwrap()
        .len()
}

/// Installs a PyPI package (`name==version`, extras allowed) once per target directory with
/// `pip install --target`, not per test run, and returns the directory for `PYTHONPATH`.
pub(crate) fn pip_target(spec: &str) -> PathBuf {
    let slug: String = spec
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pydeps-{slug}"));
    let done = dir.join(".installed");
    if !done.exists() {
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&dir)
            .arg(spec)
            .output()
            .expect("python3 with pip");
        assert!(
            out.status.success(),
            "pip install {spec} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&done, spec).unwrap();
    }
    dir
}
