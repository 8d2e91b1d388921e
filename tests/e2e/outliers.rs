//! `POST /api/v1/outliers` on a real `loupe serve`.

use serde_json::{Value, json};

use crate::support::{ServerProcess, client, poll_sql, temp_data_dir};

/// Files every 50 ms, merged (and summarized) two or more at a time every 100 ms.
const FAST_FLUSH: &str = "[collector]\nflush_interval_ms = 50\n\
                          [collector.compaction]\ninterval_ms = 100\nmin_files = 2\n";

fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

/// `n` requests as NDJSON lines; kernel 6.6 makes them 4x slower.
fn planted(n: usize) -> Vec<String> {
    let mut s = 3;
    (0..n)
        .map(|i| {
            let k = (lcg(&mut s) * 8.0) as usize;
            let ms = 40.0 * (lcg(&mut s) * 3.0).exp() * if k == 6 { 4.0 } else { 1.0 };
            format!(
                r#"{{"os.kernel": "6.{k}", "request.id": "r{i}", "duration_ms": {ms}, "zone": "z{}"}}"#,
                i % 3
            )
        })
        .collect()
}

async fn ask(server: &ServerProcess, body: Value) -> (u16, Value) {
    let resp = client()
        .post(server.url("/api/v1/outliers"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_outliers_api_names_the_planted_kernel() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(FAST_FLUSH));
    let lines = planted(20_000);
    for chunk in lines.chunks(5_000) {
        let resp = client()
            .post(server.url("/v1/events/api"))
            .body(chunk.join("\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    poll_sql(&server, "SELECT count(*) AS n FROM api", |r| {
        r.first().is_some_and(|x| x["n"] == 20_000)
    })
    .await;

    for question in [
        json!({"dataset": "api", "where": "duration_ms > 500", "since": "7d"}),
        json!({"dataset": "api", "above": "p90 duration_ms"}),
    ] {
        let (status, r) = ask(&server, question.clone()).await;
        assert_eq!(status, 200, "{question}: {r}");
        let top = &r["explanations"][0];
        assert_eq!(
            top["terms"][0],
            json!({"field": "os.kernel", "value": "6.6"}),
            "{r:#}"
        );
        assert!(top["risk_ratio_95"][0].as_f64().unwrap() > 1.5, "{top}");
        assert!(top["selection"]["rows"].as_u64().unwrap() >= 10);
        assert_eq!(r["left_out"]["identifiers"], json!(["request.id"]));
        assert_eq!(
            r["left_out"]["defining_the_selection"],
            json!(["duration_ms"])
        );
    }
    // Compaction writes each merged file's summary beside it; a question over a window that
    // holds the file whole counts it from its summary, with the same answer.
    let question = json!({"dataset": "api", "where": "duration_ms > 500", "since": "7d"});
    let (status, first) = ask(&server, question.clone()).await;
    assert_eq!(status, 200, "{first}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let summarized = loop {
        let (status, r) = ask(&server, question.clone()).await;
        assert_eq!(status, 200, "{r}");
        if r["files_summarized"].as_u64().unwrap() >= 1 {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no merged file summarized: {r:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(summarized["selection"], first["selection"]);
    assert_eq!(summarized["baseline"], first["baseline"]);
    assert_eq!(
        summarized["explanations"][0]["terms"],
        first["explanations"][0]["terms"]
    );
    let summaries = walk(&data.join("api"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "summary"))
        .count();
    assert!(summaries >= 1);

    // The same question from the command line, on the data directory.
    let out = std::process::Command::new(crate::support::LOUPE)
        .args([
            "outliers",
            "--dataset",
            "api",
            "--above",
            "p90 duration_ms",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first row under the column headings is the planted cause.
    let first = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("# explanation"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        first.trim_start().starts_with("1 os.kernel = '6.6'"),
        "{text}"
    );
    assert!(text.contains("left out: identifiers request.id"), "{text}");

    let (status, r) = ask(
        &server,
        json!({"dataset": "api", "where": "error", "above": "p99 duration_ms"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(r["error"].as_str().unwrap().contains("not both"), "{r}");
    let (status, r) = ask(&server, json!({"dataset": "api", "where": "nope > 1"})).await;
    assert_eq!(status, 400);
    assert!(r["error"].as_str().unwrap().contains("nope"), "{r}");
}

/// Runs `loupe ARGS` on the data directory `data`, with `stdin` piped in.
fn loupe(args: &[&str], data: &std::path::Path, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(crate::support::LOUPE)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("LOUPE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn loupe_summarize_gives_files_without_one_the_summary_questions_count_from() {
    let (_tmp, data) = temp_data_dir();
    let lines = planted(20_000).join("\n");
    let out = loupe(
        &["ingest", "-", "--dataset", "api"],
        &data,
        lines.as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let question = [
        "outliers",
        "--dataset",
        "api",
        "--where",
        "duration_ms > 500",
    ];
    let ask = || {
        let out = loupe(&[&question[..], &["--format", "json"]].concat(), &data, b"");
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // Imported files are flushed files: no summaries until they are merged.
    let before = ask();
    assert_eq!(before["files_summarized"], 0, "{before:#}");
    let parquet = walk(&data.join("api"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(parquet >= 1);

    let out = loupe(&["summarize"], &data, b"");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let said = match parquet {
        1 => "1 file summarized".to_owned(),
        n => format!("{n} files summarized"),
    };
    assert!(stdout.starts_with(&said), "{stdout}");
    let mut after = ask();
    assert_eq!(after["files_summarized"], parquet, "{after:#}");
    // The same answer, counted from the summaries.
    let mut before = before;
    before["files_summarized"] = Value::Null;
    after["files_summarized"] = Value::Null;
    assert_eq!(after, before);
    assert_eq!(
        after["explanations"][0]["terms"][0],
        json!({"field": "os.kernel", "value": "6.6"})
    );
    // The report for a terminal says so too.
    let out = loupe(&question, &data, b"");
    let counted = match parquet {
        1 => "1 file counted from its summary".to_owned(),
        n => format!("{n} files counted from their summaries"),
    };
    assert!(
        text(&out.stdout).contains(&counted),
        "{}",
        text(&out.stdout)
    );
    // Once is enough.
    let out = loupe(&["summarize"], &data, b"");
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("0 files summarized"), "{stdout}");
    assert!(stdout.contains(&format!("{said} had one already").replace(" summarized", "")));

    // A running server holds the directory: the command says so, and what to do.
    let server = ServerProcess::start(&data, Some("[collector]\nflush_interval_ms = 600000\n"));
    let out = loupe(&["summarize"], &data, b"");
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("loupe serve") && stderr.contains("stop it"),
        "{stderr}"
    );
    // Events acknowledged (in the write-ahead log, not yet in a file) when the server dies:
    // the command puts them in a file and summarizes it with the rest.
    let resp = client()
        .post(server.url("/v1/events/api"))
        .body(planted(1_000).join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.kill();
    let out = loupe(&["summarize"], &data, b"");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("1 file summarized"), "{stdout}");
    let last = ask();
    let events =
        last["selection"]["rows"].as_u64().unwrap() + last["baseline"]["rows"].as_u64().unwrap();
    assert_eq!(events, 21_000, "{last:#}");
    assert_eq!(last["files_summarized"], parquet + 1, "{last:#}");
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
