//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "loupe",
    version,
    about = "Wide-event observability: collect, store as Parquet, query with SQL"
)]
pub(crate) struct Cli {
    /// Config file. Defaults to ./loupe.toml when that exists. Flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the collector and the query engine in one process.
    Serve(ServeArgs),
    /// Run one SQL query against a data directory, without a server.
    Sql(SqlArgs),
    /// What do the selected events (slow, failing) have in common that the rest do not?
    /// Reads a data directory, without a server.
    Outliers(OutliersArgs),
    /// Start a server on a fresh directory, drive a simulated service through it, and show
    /// what loupe makes of it.
    Demo(DemoArgs),
    /// Import NDJSON files (plain, gzip or zstd) into a dataset, into a data directory or
    /// through a running server.
    #[command(after_help = INGEST_HELP)]
    Ingest(IngestArgs),
    /// Write the summaries outliers questions count from for the files of a data directory
    /// that have none (written by an older loupe, or flushed and never merged). With the
    /// server stopped: it holds the directory.
    Summarize(SummarizeArgs),
    /// Check a config's sampling sections, or replay events through one.
    #[command(subcommand)]
    Sampling(SamplingCommand),
    /// Service level objectives (OpenSLO v1 YAML over datasets): check definitions, show
    /// their SLI, error budget, burn rates and alerts.
    #[command(subcommand)]
    Slo(SloCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SloCommand {
    /// Read SLO definitions and report every problem with its path; with a data directory,
    /// also plan each predicate against its dataset.
    Check {
        /// An OpenSLO YAML file or a directory of them [default: slo.definitions in the config]
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
        /// Where datasets live [default: ./loupe-data]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Each SLO's SLI and budget over its period, burn rates over the policy's windows, and
    /// which alerts fire with the numbers that made them fire. Reads a data directory (and
    /// brings the SLOs' per-minute buckets in it up to date).
    Status(SloStatusArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct SloStatusArgs {
    /// An OpenSLO YAML file or a directory of them [default: slo.definitions in the config]
    #[arg(long, value_name = "PATH")]
    pub(crate) slo: Option<PathBuf>,
    /// Only the SLO of this name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Also show the burn rate over these windows: 2h, 1d (repeat or separate with commas).
    #[arg(long, value_delimiter = ',')]
    pub(crate) window: Vec<String>,
    /// The status as of this moment (RFC 3339) [default: now]
    #[arg(long, value_name = "TIME")]
    pub(crate) at: Option<String>,
    /// Where datasets live [default: ./loupe-data]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// table, or json (the HTTP API's answer)
    #[arg(long, value_enum, default_value_t = OutliersFormat::Table)]
    pub(crate) format: OutliersFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SamplingCommand {
    /// Validate a config file and explain each dataset's effective sampling (rules in order,
    /// samplers with every default filled in). Problems are listed with their line.
    Check {
        /// The config file [default: --config, or ./loupe.toml]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Replay NDJSON events through a dataset's sampling and print, per rule and key, the
    /// events seen and kept, the effective rate, and the weighted total next to the truth.
    Simulate(SimulateArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SimulateFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    /// NDJSON files (plain, gzip or zstd); `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// The dataset whose sampling section applies (or the "*" section).
    #[arg(long, value_name = "NAME")]
    pub(crate) dataset: String,
    /// Replay at this pace (events per second of simulated time) instead of at each event's
    /// own timestamp. Use it for files without timestamps.
    #[arg(long, value_name = "N", value_parser = positive_f64)]
    pub(crate) events_per_second: Option<f64>,
    /// Keys to show in the table.
    #[arg(long, default_value_t = 30)]
    pub(crate) top: usize,
    #[arg(long, value_enum, default_value_t = SimulateFormat::Table)]
    pub(crate) format: SimulateFormat,
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number, found {s:?}")),
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Where datasets live [default: ./loupe-data]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// HTTP listen address for ingest, SQL and (later) OTLP [default: 127.0.0.1:4318]
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// A key for everything (ingest and query), besides any [[keys]] in the config file.
    /// Clients send it as `Authorization: Bearer <key>` or `X-Honeycomb-Team: <key>`.
    #[arg(
        long,
        env = "LOUPE_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub(crate) api_key: Option<String>,
    /// Listen on a non-loopback address without any API key (only on a trusted network).
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Also serve SQL over the PostgreSQL wire protocol (psql, psycopg, Grafana), on ADDR
    /// [default with the flag alone: 127.0.0.1:5433]. With API keys, the password is a query key.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:5433")]
    pub(crate) pg: Option<SocketAddr>,
    /// SLO definitions to watch (an OpenSLO YAML file or a directory): served at
    /// /api/v1/slo and in /metrics [default: slo.definitions in the config]
    #[arg(long, value_name = "PATH")]
    pub(crate) slo: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub(crate) struct OutliersArgs {
    /// The dataset to look at
    #[arg(long)]
    pub(crate) dataset: String,
    /// The selection, an SQL predicate: 'duration_ms > 800', 'error'
    #[arg(long = "where", value_name = "PREDICATE", conflicts_with = "above")]
    pub(crate) selection: Option<String>,
    /// Select the events over a weighted percentile of the window: 'p99 duration_ms'
    #[arg(long, value_name = "PNN FIELD", required_unless_present = "selection")]
    pub(crate) above: Option<String>,
    /// What to compare with [default: the rest of the window]
    #[arg(long, value_name = "PREDICATE")]
    pub(crate) baseline: Option<String>,
    /// Start of the window: RFC 3339 or an age (15m, 1h, 7d)
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// End of the window: RFC 3339 or an age
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Most explanations to print
    #[arg(long, default_value_t = 10)]
    pub(crate) top: usize,
    /// Where datasets live [default: ./loupe-data]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// table, or json (the HTTP API's answer)
    #[arg(long, value_enum, default_value_t = OutliersFormat::Table)]
    pub(crate) format: OutliersFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OutliersFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SummarizeArgs {
    /// Where datasets live [default: ./loupe-data]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SqlArgs {
    /// The query. Tables are datasets; quote dotted field names: "http.route".
    pub(crate) query: String,
    /// Where datasets live [default: ./loupe-data]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) format: OutputFormat,
    /// Most rows to print.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_rows: usize,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Events to send.
    #[arg(long, default_value_t = 200_000)]
    pub(crate) events: usize,
    /// Seed of the simulated traffic and its incident.
    #[arg(long, default_value_t = 7)]
    pub(crate) seed: u64,
    /// Keep the demo's data directory (and print where it is) instead of deleting it.
    #[arg(long)]
    pub(crate) keep: bool,
}

/// What `loupe ingest --help` says after the options.
const INGEST_HELP: &str = "\
Each line of a file is one event (a JSON object; blank lines are skipped). A bad line never
stops the import: it is rejected with its reason and the lines around it are stored. At the end
a summary on stdout counts lines, accepted and rejected events (by reason, with file:line
examples), and the rate. Events are stored as they are read: an import that stops half way
leaves the events accepted so far stored, and importing a file again stores its events twice.

Without --url the events are written straight into the data directory (which must not be in use
by a running `loupe serve`; import through it with --url then), and are in Parquet when the
command returns. With --url they are sent to the server's /v1/events/DATASET in zstd-compressed
chunks; a busy server (429 or 503) is retried after its Retry-After, for two minutes at most
per chunk.

Exit status:
  0  every file was read to its end and every event was accepted (or --allow-rejects)
  1  an error: a file could not be opened or read to its end (for example a truncated gzip or
     zstd stream; the other files are still imported), the server could not be reached or
     refused the key, the data directory is in use. The error names the file.
  2  invalid arguments
  3  every file was read, but some events were rejected (see the summary)
An error and rejections together exit 1.";

#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// NDJSON files: plain, gzip or zstd, told apart by their first bytes (not their names).
    /// `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// The dataset (table) the events go to.
    #[arg(long, value_name = "NAME")]
    pub(crate) dataset: String,
    /// Write into this data directory [default: ./loupe-data, or data_dir in the config file]
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Send to a running `loupe serve` instead, for example http://127.0.0.1:4318
    #[arg(long, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// The key for --url, sent as `Authorization: Bearer <key>`.
    #[arg(
        long,
        env = "LOUPE_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub(crate) api_key: Option<String>,
    /// Exit 0 even when events were rejected (they are still counted in the summary).
    #[arg(long)]
    pub(crate) allow_rejects: bool,
}
