//! `loupe summarize`: writes the summaries that outliers questions count from (see
//! `loupe_query::outliers::summary`) for the files of a data directory that have none: files
//! written before summaries, and flushed files compaction left alone. Compaction summarizes
//! every file it merges, so a directory written by this loupe needs this only for those few.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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
    let bar = progress_bar();
    let shown = bar.clone();
    let outcome = match collector.flush_all().await {
        Ok(_) => collector
            .summarize_existing(move |p| {
                shown.set_length(p.bytes_total);
                shown.set_position(p.bytes_done);
                shown.set_message(format!("{}/{} files", p.files_done, p.files_total));
            })
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(anyhow::Error::from(e).context("flushing the events the log held")),
    };
    bar.finish_and_clear();
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

/// Bytes of files summarized of those to do, on a terminal (nothing otherwise): each file is
/// read whole, so a directory of old files takes minutes.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let template = "{spinner} {elapsed} {msg} {bytes}/{total_bytes} [{wide_bar}] eta {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn files(n: usize) -> String {
    match n {
        1 => "1 file".to_owned(),
        n => format!("{n} files"),
    }
}
