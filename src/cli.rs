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
    /// Start a server on a fresh directory, drive a simulated service through it, and show
    /// what loupe makes of it.
    Demo(DemoArgs),
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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OutputFormat {
    Table,
    Json,
    Csv,
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
