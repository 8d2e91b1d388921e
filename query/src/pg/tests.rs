//! The PostgreSQL door against a real client (`tokio-postgres`): both query protocols, types,
//! parameters, errors with their SQLSTATE, cancellation and passwords.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_event::Event;
use loupe_store::Store;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{PasswordCheck, spawn};
use crate::tests::{T0, ev, write};
use crate::{QueryConfig, QueryEngine};

fn store_with_events(dir: &std::path::Path) -> Store {
    let store = Store::new(dir);
    let events = (0..10)
        .map(|i| {
            let e = Event::new()
                .with("i", i)
                .with("http.route", if i % 2 == 0 { "/a" } else { "/b" })
                .with("duration_ms", 10.0 * i as f64 + 0.5)
                .with("error", i == 7)
                .with("sample_rate", 4);
            ev(T0 + i * 1_000_000, e)
        })
        .collect();
    write(&store, "api", events, "a");
    store
}

async fn connect(
    config: QueryConfig,
    check: Option<PasswordCheck>,
    password: Option<&str>,
) -> (tempfile::TempDir, Result<Client, tokio_postgres::Error>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = QueryEngine::with_config(store_with_events(dir.path()), config).unwrap();
    let (addr, _task) = spawn("127.0.0.1:0".parse().unwrap(), engine, check)
        .await
        .unwrap();
    let mut conn = format!(
        "host=127.0.0.1 port={} user=analyst dbname=loupe",
        addr.port()
    );
    if let Some(p) = password {
        conn.push_str(&format!(" password={p}"));
    }
    let client = match tokio_postgres::connect(&conn, NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            Ok(client)
        }
        Err(e) => Err(e),
    };
    (dir, client)
}

/// The single int8 a query answers (a count).
async fn one_int(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> i64 {
    client.query_one(sql, params).await.unwrap().get(0)
}

async fn open() -> (tempfile::TempDir, Client) {
    let (dir, client) = connect(QueryConfig::default(), None, None).await;
    (dir, client.unwrap())
}

#[tokio::test]
async fn simple_queries_answer_text_rows_one_statement_after_another() {
    let (_dir, client) = open().await;
    let msgs = client
        .simple_query(
            r#"SELECT i, "http.route" FROM api WHERE i < 3 ORDER BY i; SELECT 'a;b' AS s"#,
        )
        .await
        .unwrap();
    let rows: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].get(0), Some("0"));
    assert_eq!(rows[1].get("http.route"), Some("/b"));
    assert_eq!(
        rows[3].get("s"),
        Some("a;b"),
        "a semicolon in a string is not a boundary"
    );
    // Grafana's health check (pgx's Ping) and other comment-only or blank texts are empty
    // queries, not errors.
    for empty in ["-- ping", ";", "  ", "/* nothing */"] {
        let msgs = client.simple_query(empty).await.unwrap();
        assert!(
            !msgs.iter().any(|m| matches!(m, SimpleQueryMessage::Row(_))),
            "{empty:?}"
        );
    }
    // Transactions and SET, which drivers send on their own, are accepted and change nothing.
    client
        .batch_execute("BEGIN; SET extra_float_digits = 3; COMMIT")
        .await
        .unwrap();
}

#[tokio::test]
async fn extended_queries_take_parameters_and_answer_typed_values() {
    let (_dir, client) = open().await;
    let rows = client
        .query(
            r#"SELECT i, "http.route" AS route, duration_ms, error, timestamp,
                      wcount(sample_rate) OVER () AS n
               FROM api WHERE i >= $1 AND "http.route" = $2 ORDER BY i"#,
            &[&6i64, &"/a"],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r.get::<_, i64>("i"), 6);
    assert_eq!(r.get::<_, &str>("route"), "/a");
    assert_eq!(r.get::<_, f64>("duration_ms"), 60.5);
    assert!(!r.get::<_, bool>("error"));
    let ts: DateTime<Utc> = r.get("timestamp");
    assert_eq!(ts.timestamp_micros(), T0 + 6_000_000);
    assert_eq!(r.get::<_, f64>("n"), 8.0, "two events of weight 4");
    // The column types are the PostgreSQL ones a client maps.
    let stmt = client
        .prepare(
            r#"SELECT i, duration_ms, "http.route", timestamp, error, date FROM api WHERE i = $1"#,
        )
        .await
        .unwrap();
    let types: Vec<_> = stmt.columns().iter().map(|c| c.type_().name()).collect();
    assert_eq!(
        types,
        ["int8", "float8", "text", "timestamptz", "bool", "text"]
    );
    assert_eq!(
        stmt.params()[0].name(),
        "int8",
        "inferred from the column compared with"
    );
    // a timestamp parameter
    let since: DateTime<Utc> = DateTime::from_timestamp_micros(T0 + 8_000_000).unwrap();
    let n = one_int(
        &client,
        "SELECT count(*) FROM api WHERE timestamp >= $1",
        &[&since],
    )
    .await;
    assert_eq!(n, 2);
}

#[tokio::test]
async fn the_session_functions_clients_call_on_their_own_answer() {
    let (_dir, client) = open().await;
    // Grafana's version probe when a data source is saved.
    let v = one_int(
        &client,
        "SELECT CAST(current_setting('server_version_num') AS BIGINT) / 100",
        &[],
    )
    .await;
    assert_eq!(v, 1600);
    let row = client
        .query_one(
            "SELECT current_database(), current_schema(), quote_ident(table_name) \
             FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "loupe");
    assert_eq!(row.get::<_, &str>(1), "public");
    assert_eq!(row.get::<_, &str>(2), "api");
    let e = client
        .simple_query("SELECT current_setting('work_mem')")
        .await
        .unwrap_err();
    let msg = e.as_db_error().unwrap().message();
    assert!(
        msg.contains("unrecognized configuration parameter"),
        "{msg}"
    );
}

#[tokio::test]
async fn errors_carry_a_sqlstate_and_name_the_problem() {
    let (_dir, client) = open().await;
    let e = client
        .simple_query("SELECT nope FROM api")
        .await
        .unwrap_err();
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code(), &SqlState::UNDEFINED_COLUMN);
    assert!(db.message().contains("nope"), "{}", db.message());
    for (sql, code) in [
        ("SELEC 1", SqlState::SYNTAX_ERROR),
        ("SELECT * FROM nope", SqlState::UNDEFINED_TABLE),
        ("SELECT nofunc(1)", SqlState::UNDEFINED_FUNCTION),
        (
            "SELECT 'a' + 1",
            SqlState::SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
        ),
    ] {
        let e = client.simple_query(sql).await.unwrap_err();
        let db = e.as_db_error().expect("a server error");
        assert_eq!(db.code(), &code, "{sql}: {}", db.message());
    }
    let e = client.simple_query("DROP TABLE api").await.unwrap_err();
    assert_eq!(
        e.as_db_error().unwrap().code(),
        &SqlState::READ_ONLY_SQL_TRANSACTION
    );
    // the connection survives its errors
    assert_eq!(one_int(&client, "SELECT count(*) FROM api", &[]).await, 10);
}

#[tokio::test]
async fn a_cancel_request_stops_the_running_query() {
    let (_dir, client) = open().await;
    let token = client.cancel_token();
    let running = tokio::spawn(async move {
        let start = std::time::Instant::now();
        let r = client
            .simple_query("SELECT sum(value % 7) FROM generate_series(1, 100000000000)")
            .await;
        (r, start.elapsed())
    });
    // Cancel until the query has been stopped: a cancel that arrives before the query starts
    // finds nothing to stop (as in PostgreSQL), so it is sent again.
    let mut sent = 0;
    while !running.is_finished() && sent < 200 {
        token.cancel_query(NoTls).await.unwrap();
        sent += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (r, took) = running.await.unwrap();
    let e = r.unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code(), &SqlState::QUERY_CANCELED);
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
}

#[tokio::test]
async fn with_keys_the_password_must_be_one() {
    let check: PasswordCheck = Arc::new(|p| p == "a-query-key-of-16+");
    let (_d, refused) = connect(QueryConfig::default(), Some(check.clone()), Some("wrong")).await;
    assert!(refused.is_err());
    let (_d, refused) = connect(QueryConfig::default(), Some(check.clone()), None).await;
    assert!(refused.is_err());
    let (_d, client) = connect(
        QueryConfig::default(),
        Some(check),
        Some("a-query-key-of-16+"),
    )
    .await;
    let n = one_int(&client.unwrap(), "SELECT count(*) FROM api", &[]).await;
    assert_eq!(n, 10);
}

#[tokio::test]
async fn the_guard_rails_apply_to_postgres_queries_too() {
    let config = QueryConfig {
        memory_limit_bytes: 4 << 20,
        ..QueryConfig::default()
    };
    let (_dir, client) = connect(config, None, None).await;
    let e = client
        .unwrap()
        .simple_query(
            "SELECT count(*) FROM generate_series(1, 2000000) a \
             JOIN generate_series(1, 2000000) b ON a.value = b.value",
        )
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::OUT_OF_MEMORY);
    assert!(db.message().contains("query.memory_limit_bytes"));
}
