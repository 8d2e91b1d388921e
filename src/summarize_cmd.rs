//! `loupe summarize`: writes the summaries that outliers questions count from (see
//! `loupe_query::outliers::summary`) for the files of a data directory that have none: files
//! written before summaries, and flushed files compaction left alone. Compaction summarizes
//! every file it merges, so a directory written by this loupe needs this only for those few.

use std::path::Path;
use std::time::Instant;

use loupe_collector::CollectorConfig;

/// Summarizes every file of `dir` without a summary, with the server stopped (it holds the
/// directory); reports what it did. Files that could not be read are named, and make the
/// command fail after the others are done.
pub(crate) async fn run(dir: &Path, config: CollectorConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let collector = crate::serve::open_collector(
        dir,
        config,
        "stop it, run `loupe summarize`, and start it again",
    )
    .await?;
    // Events the write-ahead log held from a server stopped mid-flush go to files first, so
    // they are summarized too.
    let outcome = match collector.flush_all().await {
        Ok(_) => collector
            .summarize_existing()
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(anyhow::Error::from(e).context("flushing the events the log held")),
    };
    collector.shutdown().await;
    let stats = outcome?;
    println!(
        "{} summarized in {:.1} s; {} had one already{}",
        files(stats.summarized),
        started.elapsed().as_secs_f64(),
        files(stats.had_one),
        match stats.without {
            0 => String::new(),
            n => format!("; {} without rows to summarize", files(n)),
        }
    );
    if !stats.failed.is_empty() {
        for (file, why) in &stats.failed {
            eprintln!("  {}: {why}", file.display());
        }
        anyhow::bail!(
            "{} could not be summarized (named above); their events are still counted one \
             by one",
            files(stats.failed.len())
        );
    }
    Ok(())
}

fn files(n: usize) -> String {
    match n {
        1 => "1 file".to_owned(),
        n => format!("{n} files"),
    }
}
