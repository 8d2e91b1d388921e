//! `loupe.toml`: the same settings as the flags, plus the collector's limits.
//!
//! ```toml
//! data_dir = "./loupe-data"
//! http = "127.0.0.1:4318"
//!
//! [collector]
//! flush_interval_ms = 1000
//!
//! [collector.limits]
//! max_body_bytes = 33554432
//!
//! # SLOs: see `loupe_query::slo::config`.
//! [slo]
//! definitions = "slos/"
//!
//! # Per dataset; "*" is every dataset without a section of its own. The sampling options
//! # are loupe-sampling's (`loupe_sampling::config`); `loupe sampling check` explains them.
//! [datasets.api.sampling]
//! key_fields = ["http.route", "http.status_code"]
//! sampler = "ema"
//! goal_rate = 20
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use loupe_collector::{CollectorConfig, DatasetConfigs};
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
    /// The PostgreSQL door's address; off when absent (`--pg` turns it on).
    #[serde(default)]
    pub(crate) pg: Option<SocketAddr>,
    #[serde(default)]
    pub(crate) collector: CollectorConfig,
    /// `[query]`: per-query memory limit, timeout, the query runtime's threads.
    #[serde(default)]
    pub(crate) query: loupe_query::QueryConfig,
    /// `[slo]`: definitions, refresh and push, the alert policy.
    #[serde(default)]
    pub(crate) slo: loupe_query::slo::config::SloConfig,
    /// API keys (see `auth`); none means open, and loopback only unless `--insecure`.
    #[serde(default)]
    pub(crate) keys: Vec<crate::auth::KeyConfig>,
    /// `[datasets.<name>]`: moved into `collector.datasets` once checked.
    #[serde(default)]
    datasets: DatasetConfigs,
    /// The file this came from, to read again on a reload.
    #[serde(skip)]
    pub(crate) source: Option<PathBuf>,
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
            pg: None,
            collector: CollectorConfig::default(),
            query: loupe_query::QueryConfig::default(),
            slo: Default::default(),
            keys: Vec::new(),
            datasets: DatasetConfigs::new(),
            source: None,
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
        let mut config = Config::parse(&text).with_context(|| format!("in {}", path.display()))?;
        config.source = Some(path);
        Ok(config)
    }

    /// Parses and checks a config file's text. Every problem is reported at once, with its
    /// option and, where it is written in the file, its line.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Config> {
        // toml's errors carry the line and column and the offending key.
        let mut config: Config = toml::from_str(text)?;
        // Dataset sections are checked here, where the text is, so problems get their line.
        let mut problems: Vec<String> = loupe_collector::dataset_problems(&config.datasets)
            .iter()
            .map(|p| match crate::config_lines::line_of(text, &p.path) {
                Some(line) => format!("line {line}: {p}"),
                None => p.to_string(),
            })
            .collect();
        problems.extend(config.collector.problems());
        problems.extend(config.query.problems());
        if let Err(p) = config.slo.policy() {
            problems.extend(p);
        }
        if !problems.is_empty() {
            bail!("invalid settings:\n  {}", problems.join("\n  "));
        }
        config.collector.datasets = std::mem::take(&mut config.datasets);
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
    fn dataset_problems_name_the_option_and_its_line() {
        let text = "[datasets.api.sampling]\nsampler = \"ema\"\n\n\
                    [[datasets.api.sampling.rules]]\nwhen = \"status >>= 5\"\naction = \"keep\"\n\
                    [datasets.Web.sampling]\nsampler = \"fixed\"\nrate = 2\n";
        let e = format!("{:#}", Config::parse(text).unwrap_err());
        assert!(
            e.contains("line 5: datasets.api.sampling.rules[0].when"),
            "{e}"
        );
        assert!(e.contains("datasets.Web"), "{e}");
        let ok = Config::parse("[datasets.api.sampling]\nsampler = \"fixed\"\nrate = 4\n").unwrap();
        assert!(ok.collector.datasets["api"].sampling.is_some());
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
