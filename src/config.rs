//! `loupe.toml`: the same settings as the flags, plus the collector's limits.
//!
//! ```toml
//! data_dir = "./loupe-data"
//! http = "127.0.0.1:4318"
//!
//! [collector]
//! flush_interval_ms = 2000
//!
//! [collector.limits]
//! max_body_bytes = 33554432
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use loupe_collector::CollectorConfig;
use serde::Deserialize;

pub(crate) const DEFAULT_CONFIG_FILE: &str = "loupe.toml";
pub(crate) const DEFAULT_DATA_DIR: &str = "./loupe-data";
/// The OTLP/HTTP port: OTLP arrives on the same listener as everything else.
pub(crate) const DEFAULT_HTTP: &str = "127.0.0.1:4318";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default = "default_data_dir")]
    pub(crate) data_dir: PathBuf,
    #[serde(default = "default_http")]
    pub(crate) http: SocketAddr,
    #[serde(default)]
    pub(crate) collector: CollectorConfig,
    /// API keys (see `auth`); none means open, and loopback only unless `--insecure`.
    #[serde(default)]
    pub(crate) keys: Vec<crate::auth::KeyConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}

fn default_http() -> SocketAddr {
    DEFAULT_HTTP.parse().expect("valid default address")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            http: default_http(),
            collector: CollectorConfig::default(),
            keys: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `path`, or `./loupe.toml` when no path is given and it exists, or the defaults.
    /// Every problem is reported at once, each with the option that caused it.
    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => PathBuf::from(DEFAULT_CONFIG_FILE),
            None => return Ok(Config::default()),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let config = Config::parse(&text).with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    pub(crate) fn parse(text: &str) -> anyhow::Result<Config> {
        // toml's errors carry the line and column and the offending key.
        let config: Config = toml::from_str(text)?;
        let problems = config.collector.problems();
        if !problems.is_empty() {
            bail!("invalid settings:\n  {}", problems.join("\n  "));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.http.to_string(), DEFAULT_HTTP);
        assert_eq!(c.collector, CollectorConfig::default());
    }

    #[test]
    fn settings_are_read() {
        let c = Config::parse(
            "data_dir = \"/x\"\nhttp = \"0.0.0.0:9\"\n[collector]\nflush_interval_ms = 5\n[collector.limits]\nmax_fields_per_event = 7\n",
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/x"));
        assert_eq!(c.http.port(), 9);
        assert_eq!(c.collector.flush_interval_ms, 5);
        assert_eq!(c.collector.limits.max_fields_per_event, 7);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_option() {
        let e = format!("{:#}", Config::parse("flush_interval = 5").unwrap_err());
        assert!(e.contains("flush_interval"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[collector]\nflush_interval_ms = 0\nmax_buffered_bytes = 0")
                .unwrap_err()
        );
        assert!(
            e.contains("flush_interval_ms") && e.contains("max_buffered_bytes"),
            "{e}"
        );
        let e = format!("{:#}", Config::parse("http = \"nowhere\"").unwrap_err());
        assert!(e.contains("http"), "{e}");
    }
}
