//! The `loupe` command: parses arguments and wires the crates together. Nothing else lives here.

mod allocator;
mod auth;
mod cli;
mod config;
mod config_lines;
mod demo;
mod import;
mod outliers_cmd;
mod sampling_cmd;
mod serve;
mod slo_cmd;
mod sql;
mod summarize_cmd;

use anyhow::bail;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, SamplingCommand, SloCommand};
use config::Config;

fn main() -> anyhow::Result<()> {
    allocator::configure();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        allocator::for_one_shot();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("LOUPE_LOG")
                .unwrap_or_else(|_| EnvFilter::new("warn,loupe=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // `loupe sampling check FILE` checks that file.
    let path = match &cli.command {
        Command::Sampling(SamplingCommand::Check { file: Some(f) }) => Some(f.as_path()),
        _ => cli.config.as_deref(),
    };
    let config = Config::load(path)?;
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
            if let Some(pg) = args.pg {
                config.pg = Some(pg);
            }
            let keys = auth::Keys::new(&config.keys, args.api_key.as_deref(), |v| {
                std::env::var(v).ok()
            })?;
            for addr in std::iter::once(config.http).chain(config.pg) {
                if keys.is_empty() && !addr.ip().is_loopback() && !args.insecure {
                    bail!(
                        "refusing to listen on {addr} without an API key: anyone who can reach it could \
                         read every dataset. Set --api-key (or [[keys]] in the config file), or pass \
                         --insecure on a trusted network"
                    );
                }
            }
            let stop = serve::shutdown_signal()?;
            let mut hup = serve::reload_signal()?;
            let source = config.source.clone();
            let slo_path = args.slo.clone().or(config.slo.definitions.clone());
            let slos = match slo_path {
                Some(p) => Some((slo_cmd::load(Some(&p), &config)?.1, config.slo.clone())),
                None => None,
            };
            let server = serve::Server::start(
                &config.data_dir,
                config.http,
                config.pg,
                config.collector,
                config.query,
                keys,
                slos,
            )
            .await?;
            // Tests and scripts read this line to learn the ports (with 127.0.0.1:0).
            let pg = server
                .pg_addr
                .map(|a| format!(", postgresql://{a}"))
                .unwrap_or_default();
            println!(
                "loupe listening on http://{}{pg} (data: {})",
                server.addr,
                config.data_dir.display()
            );
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = hup.recv() => {
                        if let Err(e) = server.reload(source.as_deref()) {
                            tracing::error!("reload refused, the running settings stay: {e:#}");
                        }
                    }
                }
            }
            eprintln!("shutting down: flushing buffered events");
            server.stop().await
        }
        Command::Sql(args) => {
            let dir = args.data_dir.unwrap_or(config.data_dir);
            sql::run(&dir, &args.query, args.format, args.max_rows).await
        }
        Command::Outliers(args) => {
            let dir = args.data_dir.clone().unwrap_or(config.data_dir);
            outliers_cmd::run(&dir, &args).await
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Ingest(args) => import::run(args, config).await,
        Command::Summarize(args) => {
            let dir = args.data_dir.unwrap_or(config.data_dir);
            summarize_cmd::run(&dir, config.collector).await
        }
        Command::Sampling(SamplingCommand::Check { .. }) => sampling_cmd::check(&config),
        Command::Sampling(SamplingCommand::Simulate(args)) => {
            sampling_cmd::simulate(&config, &args)
        }
        Command::Slo(SloCommand::Check { path, data_dir }) => {
            let dir = data_dir.unwrap_or_else(|| config.data_dir.clone());
            slo_cmd::check(path.as_deref(), &dir, &config).await
        }
        Command::Slo(SloCommand::Status(args)) => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.clone());
            slo_cmd::status(&args, &dir, &config).await
        }
    }
}
