//! The PostgreSQL door of a real `loupe serve`, driven by `psql` (PostgreSQL 15's client, on the
//! machine) and by `tokio-postgres`.

use std::process::Command;

use crate::support::{ServerProcess, client, poll_sql, temp_data_dir};

const FAST_FLUSH: &str = "[collector]\nflush_interval_ms = 50\n";

/// `psql` against the server's PostgreSQL door: unaligned, tuples only, stop on error.
fn psql(server: &ServerProcess, password: Option<&str>, sql: &str) -> std::process::Output {
    let (host, port) = server
        .pg
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .expect("started with --pg");
    let mut cmd = Command::new("psql");
    cmd.args(["-h", host, "-p", port, "-U", "analyst", "-d", "loupe"])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "10");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    } else {
        cmd.arg("-w"); // never prompt
    }
    cmd.output().expect("psql is installed (postgresql-client)")
}

async fn ingest(server: &ServerProcess, key: Option<&str>) {
    let body = (0..20)
        .map(|i| {
            format!(
                r#"{{"http.route": "/r{}", "duration_ms": {}, "sample_rate": 5}}"#,
                i % 2,
                i * 10
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut req = client().post(server.url("/v1/events/api")).body(body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    poll_sql(server, "SELECT count(*) AS n FROM api", |r| {
        r.first().is_some_and(|x| x["n"] == 20)
    })
    .await;
}

#[tokio::test]
async fn psql_queries_weighted_answers_and_sees_clear_errors() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start_with(&data, Some(FAST_FLUSH), &["--pg", "127.0.0.1:0"]);
    ingest(&server, None).await;

    let out = psql(
        &server,
        None,
        r#"SELECT "http.route", wcount(sample_rate), count(*) FROM api GROUP BY 1 ORDER BY 1"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // float8 in text form as pgwire writes it (PostgreSQL itself would print 50)
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/r0|50.0|10\n/r1|50.0|10\n"
    );

    // The catalog a client browses: datasets and their fields with types.
    let out = psql(
        &server,
        None,
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_name = 'api' AND column_name = 'duration_ms'",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "duration_ms|Float64\n"
    );

    let out = psql(&server, None, "SELECT nope FROM api");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ERROR") && err.contains("nope"), "{err}");

    let out = psql(&server, None, "DELETE FROM api");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
}

#[tokio::test]
async fn with_an_api_key_the_password_is_a_query_key() {
    let (_tmp, data) = temp_data_dir();
    let key = "pg-door-test-key-0123456789";
    let server = ServerProcess::start_with(
        &data,
        Some(FAST_FLUSH),
        &["--pg", "127.0.0.1:0", "--api-key", key],
    );
    ingest(&server, Some(key)).await;
    let out = psql(&server, Some("not-the-key"), "SELECT 1");
    assert!(!out.status.success());
    let out = psql(&server, None, "SELECT 1");
    assert!(!out.status.success(), "no password, no answer");
    let out = psql(&server, Some(key), "SELECT count(*) FROM api");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "20\n");
}

/// psycopg 3 as an application uses it: a transaction opened by the driver, server-side
/// parameters, typed values back, and an error that does not end the session.
const PSYCOPG_SCRIPT: &str = r#"
import sys, psycopg
host, port = sys.argv[1], int(sys.argv[2])
with psycopg.connect(host=host, port=port, user="analyst", dbname="loupe", connect_timeout=10) as conn:
    with conn.cursor() as cur:
        cur.execute('SELECT "http.route", wcount(sample_rate) AS n FROM api WHERE duration_ms >= %s GROUP BY 1 ORDER BY 1', (50,))
        for route, n in cur.fetchall():
            print(f"{route}|{n}")
        cur.execute("SELECT timestamp, duration_ms FROM api ORDER BY duration_ms DESC LIMIT 1")
        ts, d = cur.fetchone()
        print(type(ts).__name__, ts.tzinfo is not None, d)
    conn.rollback()
    try:
        conn.execute("SELECT nope FROM api")
    except psycopg.Error as e:
        print("error", e.sqlstate)
    conn.rollback()
    print("count", conn.execute("SELECT count(*) FROM api").fetchone()[0])
"#;

#[tokio::test]
async fn psycopg_queries_with_parameters_inside_its_transactions() {
    let path = crate::support::pip_target("psycopg[binary]==3.2.10");
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start_with(&data, Some(FAST_FLUSH), &["--pg", "127.0.0.1:0"]);
    ingest(&server, None).await;
    let (host, port) = server.pg.as_deref().unwrap().rsplit_once(':').unwrap();
    let out = Command::new("python3")
        .args(["-c", PSYCOPG_SCRIPT, host, port])
        .env("PYTHONPATH", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // durations 0, 10, ..., 190 at weight 5; >= 50 leaves 15 events, 7 on /r0 and 8 on /r1
    assert_eq!(
        stdout,
        "/r0|35.0\n/r1|40.0\ndatetime True 190.0\nerror 42703\ncount 20\n"
    );
}
