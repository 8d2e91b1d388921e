//! `loupe ingest`: bulk import of NDJSON files (plain, gzip, zstd) into a data directory or
//! through a running server, with per-line rejections and exit statuses.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::support::{LOUPE, ServerProcess, poll_sql, sql_json, temp_data_dir};

const KEY: &str = "import-key-0123456789";

/// Runs `loupe ingest ARGS` in `cwd`, with `stdin` piped in, and no key from the environment.
fn ingest(cwd: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(LOUPE)
        .current_dir(cwd)
        .arg("ingest")
        .args(args)
        .env_remove("LOUPE_API_KEY")
        .envs(env.iter().copied())
        .env("LOUPE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loupe ingest");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `n` events `{"src": src, "i": 1..=n, "http": {"route": ...}}`, one per line.
fn ndjson(src: &str, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 1..=n {
        let e = json!({"src": src, "i": i, "http": {"route": format!("/r{}", i % 3)}});
        serde_json::to_writer(&mut out, &e).unwrap();
        out.push(b'\n');
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `SELECT src, count, sum(i)` per source, from the data directory.
fn counts(data: &Path, table: &str) -> Vec<Value> {
    sql_json(
        data,
        &format!("SELECT src, count(*) AS n, sum(i) AS s FROM {table} GROUP BY src ORDER BY src"),
    )
}

fn row(src: &str, n: u64) -> Value {
    json!({"src": src, "n": n, "s": n * (n + 1) / 2})
}

#[test]
fn plain_gzip_zstd_and_stdin_are_told_apart_by_content_and_stored() {
    let (tmp, data) = temp_data_dir();
    let dir = tmp.path();
    // Names that say nothing (or the wrong thing) about the compression: the bytes decide.
    std::fs::write(dir.join("plain.ndjson"), ndjson("plain", 12_000)).unwrap();
    std::fs::write(dir.join("gzipped.ndjson"), gzip(&ndjson("gzip", 7_000))).unwrap();
    let zs = zstd::encode_all(&ndjson("zstd", 5_001)[..], 3).unwrap();
    std::fs::write(dir.join("compressed.gz"), zs).unwrap();
    let data_arg = data.to_str().unwrap();

    let out = ingest(
        dir,
        &[
            "plain.ndjson",
            "gzipped.ndjson",
            "compressed.gz",
            "-",
            "--dataset",
            "imp",
            "--data-dir",
            data_arg,
        ],
        &ndjson("stdin", 10),
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("accepted  24,011"), "{stdout}");
    assert!(stdout.contains("rejected  0"), "{stdout}");
    assert!(
        stdout.contains("files     4 (4 read to the end)"),
        "{stdout}"
    );

    // In Parquet when the command returns: `loupe sql` reads the files, not a server.
    assert_eq!(
        counts(&data, "imp"),
        vec![
            row("gzip", 7_000),
            row("plain", 12_000),
            row("stdin", 10),
            row("zstd", 5_001),
        ]
    );
    let routes = sql_json(
        &data,
        r#"SELECT "http.route" AS r, count(*) AS n FROM imp WHERE src = 'zstd' GROUP BY 1 ORDER BY 1"#,
    );
    assert_eq!(
        routes,
        vec![
            json!({"r": "/r0", "n": 1_667}),
            json!({"r": "/r1", "n": 1_667}),
            json!({"r": "/r2", "n": 1_667}),
        ]
    );
}

#[test]
fn bad_lines_are_rejected_by_reason_and_line_and_their_neighbours_stored() {
    let (tmp, data) = temp_data_dir();
    let dir = tmp.path();
    let too_many: serde_json::Map<String, Value> =
        (0..2_001).map(|i| (format!("f{i}"), json!(i))).collect();
    let lines = [
        json!({"src": "ok", "i": 1}).to_string(),
        r#"{"src": "ok", "i": "#.to_owned(),
        String::new(),
        Value::Object(too_many).to_string(),
        json!({"src": "ok", "i": 2}).to_string(),
        "[1, 2]".to_owned(),
        "{not json}".to_owned(),
        json!({"src": "ok", "i": 3}).to_string(),
    ];
    std::fs::write(dir.join("bad.ndjson"), lines.join("\n")).unwrap();
    let data_arg = data.to_str().unwrap();

    let out = ingest(
        dir,
        &["bad.ndjson", "--dataset", "bad", "--data-dir", data_arg],
        b"",
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("lines     8 (1 blank)"), "{stdout}");
    assert!(stdout.contains("accepted  3"), "{stdout}");
    assert!(stdout.contains("rejected  4"), "{stdout}");
    let reason = |code: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(code))
            .unwrap_or_else(|| panic!("no {code} in the summary:\n{stdout}"))
            .to_owned()
    };
    let json_line = reason("invalid_json");
    assert!(
        json_line.contains(" 2  at bad.ndjson:2, bad.ndjson:7"),
        "{json_line}"
    );
    // The reason names a column, not the line of a request body the user never saw.
    assert!(json_line.contains("invalid JSON: column"), "{json_line}");
    let fields_line = reason("too_many_fields");
    assert!(fields_line.contains("at bad.ndjson:4"), "{fields_line}");
    assert!(fields_line.contains("2001"), "{fields_line}");
    assert!(reason("not_an_object").contains("at bad.ndjson:6"));
    assert!(stderr.contains("--allow-rejects"), "{stderr}");
    assert_eq!(counts(&data, "bad"), vec![row("ok", 3)]);

    // Allowed: the same report, exit 0.
    let out = ingest(
        dir,
        &[
            "bad.ndjson",
            "--dataset",
            "bad2",
            "--data-dir",
            data_arg,
            "--allow-rejects",
        ],
        b"",
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("rejected  4"), "{stdout}");
    assert_eq!(counts(&data, "bad2"), vec![row("ok", 3)]);
}

#[tokio::test]
async fn url_mode_sends_through_a_running_server_with_its_key() {
    let (tmp, data) = temp_data_dir();
    let dir = tmp.path().to_owned();
    let server = ServerProcess::start_with(
        &data,
        Some("[collector]\nflush_interval_ms = 50\n"),
        &["--api-key", KEY],
    );
    let mut file = ndjson("url", 12_000);
    file.extend_from_slice(b"{\"src\": \"url\", \"i\": oops}\n");
    std::fs::write(dir.join("events.ndjson"), gzip(&file)).unwrap();
    let url = server.base.clone();

    // The key from the environment, as Authorization: Bearer; statuses from the server's answer.
    let out = tokio::task::spawn_blocking({
        let (dir, url) = (dir.clone(), url.clone());
        move || {
            ingest(
                &dir,
                &["events.ndjson", "--dataset", "viaurl", "--url", &url],
                b"",
                &[("LOUPE_API_KEY", KEY)],
            )
        }
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("accepted  12,000"), "{stdout}");
    let rejected = stdout.lines().find(|l| l.contains("invalid_json"));
    assert!(
        rejected.is_some_and(|l| l.contains(" 1  at events.ndjson:12001 (invalid JSON")),
        "{stdout}"
    );
    let rows = poll_sql(
        &server,
        "SELECT src, count(*) AS n, sum(i) AS s FROM viaurl GROUP BY src",
        |r| r.first().is_some_and(|x| x["n"] == 12_000),
    )
    .await;
    assert_eq!(rows, vec![row("url", 12_000)]);

    // Without the key: refused, exit 1, and the error says what to do.
    let out = tokio::task::spawn_blocking({
        let (dir, url) = (dir.clone(), url.clone());
        move || {
            ingest(
                &dir,
                &["events.ndjson", "--dataset", "viaurl", "--url", &url],
                b"",
                &[],
            )
        }
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("--api-key"),
        "{stderr}"
    );

    // The server holds the data directory: writing it directly is refused, pointing at --url.
    let data_arg = data.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        ingest(
            &dir,
            &["events.ndjson", "--dataset", "x", "--data-dir", &data_arg],
            b"",
            &[],
        )
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("in use") && stderr.contains("--url"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_server_at_its_memory_bound_is_retried_after_retry_after() {
    let (tmp, data) = temp_data_dir();
    let dir = tmp.path().to_owned();
    // A buffer bound below one chunk's events and no timed flush: once a chunk is buffered the
    // server answers 429 (Retry-After: 1) until the flush that the refusal asks for has run.
    let server = ServerProcess::start(
        &data,
        Some(
            "[collector]\nflush_interval_ms = 60000\nmax_buffered_bytes = 200000\nadmission_wait_ms = 0\n",
        ),
    );
    std::fs::write(dir.join("many.ndjson"), ndjson("busy", 40_000)).unwrap();
    let url = server.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        ingest(
            &dir,
            &["many.ndjson", "--dataset", "busy", "--url", &url],
            b"",
            &[],
        )
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("accepted  40,000"), "{stdout}");
    assert!(stdout.contains("retried"), "{stdout}");
    // Stored once each: a 429 is answered before the body is taken in.
    let rows = poll_sql(
        &server,
        "SELECT src, count(*) AS n, sum(i) AS s FROM busy GROUP BY src",
        |r| r.first().is_some_and(|x| x["n"] == 40_000),
    )
    .await;
    assert_eq!(rows, vec![row("busy", 40_000)]);
}

#[test]
fn a_truncated_compressed_file_is_an_error_that_names_it_and_the_rest_is_imported() {
    let (tmp, data) = temp_data_dir();
    let dir = tmp.path();
    let data_arg = data.to_str().unwrap();
    std::fs::write(dir.join("good.ndjson"), ndjson("good", 100)).unwrap();
    let gz = gzip(&ndjson("gz", 30_000));
    std::fs::write(dir.join("broken.ndjson.gz"), &gz[..gz.len() / 2]).unwrap();
    let zs = zstd::encode_all(&ndjson("zst", 30_000)[..], 3).unwrap();
    std::fs::write(dir.join("broken.zst"), &zs[..zs.len() / 2]).unwrap();

    // A file that cannot be opened fails the command before anything is imported.
    let out = ingest(
        dir,
        &[
            "good.ndjson",
            "missing.ndjson",
            "--dataset",
            "t",
            "--data-dir",
            data_arg,
        ],
        b"",
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("cannot open missing.ndjson"), "{stderr}");
    assert!(!data.join("t").exists(), "nothing may be imported");

    let out = ingest(
        dir,
        &[
            "broken.ndjson.gz",
            "good.ndjson",
            "broken.zst",
            "--dataset",
            "t",
            "--data-dir",
            data_arg,
        ],
        b"",
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("2 of 3 files could not be read to the end"),
        "{stderr}"
    );
    // Each broken file is named, with where it broke; the lines before the break are stored,
    // the partial line at the break is not, and the good file after it is imported whole.
    let mut expected = vec![row("good", 100)];
    for (file, kind, src) in [
        ("broken.ndjson.gz", "gzip", "gz"),
        ("broken.zst", "zstd", "zst"),
    ] {
        let marker = format!("{file}: the {kind} stream is truncated or corrupt after line ");
        let at = stderr
            .find(&marker)
            .unwrap_or_else(|| panic!("{marker:?} not in {stderr}"));
        let n: u64 = stderr[at + marker.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(n > 0 && n < 30_000, "{stderr}");
        expected.push(row(src, n));
    }
    assert!(stdout.contains("rejected  0"), "{stdout}");
    expected.sort_by_key(|r| r["src"].as_str().unwrap().to_owned());
    assert_eq!(counts(&data, "t"), expected);
}
