//! The `loupe` command: parses arguments and wires the crates together. Nothing else lives here.

mod auth;
mod cli;
mod config;
mod demo;
mod import;
mod serve;
mod sql;

use anyhow::bail;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use config::Config;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("LOUPE_LOG")
                .unwrap_or_else(|_| EnvFilter::new("warn,loupe=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command, config))
}

async fn run(command: Command, mut config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            if let Some(d) = args.data_dir {
                config.data_dir = d;
            }
            if let Some(h) = args.http {
                config.http = h;
            }
            let keys = auth::Keys::new(&config.keys, args.api_key.as_deref(), |v| {
                std::env::var(v).ok()
            })?;
            if keys.is_empty() && !config.http.ip().is_loopback() && !args.insecure {
                bail!(
                    "refusing to listen on {} without an API key: anyone who can reach it could write and \
                     read every dataset. Set --api-key (or [[keys]] in the config file), or pass --insecure \
                     on a trusted network",
                    config.http
                );
            }
            let stop = serve::shutdown_signal()?;
            let server =
                serve::Server::start(&config.data_dir, config.http, config.collector, keys).await?;
            // Tests and scripts read this line to learn the port (with --http 127.0.0.1:0).
            println!(
                "loupe listening on http://{} (data: {})",
                server.addr,
                config.data_dir.display()
            );
            stop.await;
            eprintln!("shutting down: flushing buffered events");
            server.stop().await
        }
        Command::Sql(args) => {
            let dir = args.data_dir.unwrap_or(config.data_dir);
            sql::run(&dir, &args.query, args.format, args.max_rows).await
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Ingest(args) => import::run(args, config).await,
    }
}
