//! The guard rails: a memory limit per query, a timeout, and queries on their own runtime.

use std::time::{Duration, Instant};

use loupe_event::Event;
use loupe_store::Store;

use super::{T0, ev, write};
use crate::{Error, QueryConfig, QueryEngine};

fn engine(config: QueryConfig) -> (tempfile::TempDir, QueryEngine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(
        &store,
        "api",
        (0..100)
            .map(|i| ev(T0 + i, Event::new().with("i", i)))
            .collect(),
        "f1",
    );
    let engine = QueryEngine::with_config(store, config).unwrap();
    (dir, engine)
}

/// A hash join must hold its build side in memory (it cannot spill): 2M rows need far more
/// than the 4 MiB allowed here.
const BIG_JOIN: &str = "SELECT count(*) AS n FROM generate_series(1, 2000000) a \
                        JOIN generate_series(1, 2000000) b ON a.value = b.value";

#[tokio::test]
async fn a_query_over_its_memory_limit_fails_clearly_and_the_next_one_runs() {
    let (_dir, engine) = engine(QueryConfig {
        memory_limit_bytes: 4 << 20,
        ..QueryConfig::default()
    });
    match engine.sql(BIG_JOIN, 10).await {
        Err(e @ Error::ResourcesExhausted(_)) => {
            let msg = e.to_string();
            assert!(msg.contains("query.memory_limit_bytes"), "{msg}");
            assert!(msg.contains("4 MiB"), "{msg}");
            assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    // The limit is per query: what the failed one held was given back.
    let out = engine.sql("SELECT count(*) FROM api", 10).await.unwrap();
    assert_eq!(out.row_count(), 1);
}

#[tokio::test]
async fn the_same_join_runs_within_a_larger_limit() {
    // The refusal above is the limit's doing, not the query's.
    let (_dir, engine) = engine(QueryConfig {
        memory_limit_bytes: 1 << 30,
        ..QueryConfig::default()
    });
    let out = engine.sql(BIG_JOIN, 10).await.unwrap();
    let n = out.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 2_000_000);
}

#[tokio::test]
async fn a_query_past_its_timeout_is_stopped_with_an_error_naming_the_option() {
    let (_dir, engine) = engine(QueryConfig {
        timeout_ms: 300,
        ..QueryConfig::default()
    });
    let start = Instant::now();
    // Billions of rows: minutes of work in a debug build.
    let r = engine
        .sql(
            "SELECT sum(value % 7) FROM generate_series(1, 100000000000)",
            10,
        )
        .await;
    match r {
        Err(e @ Error::Timeout { limit_ms: 300 }) => {
            assert!(e.to_string().contains("query.timeout_ms"), "{e}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The error comes at the limit, not when the query would have ended.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    // and the engine answers the next query
    assert!(engine.sql("SELECT count(*) FROM api", 10).await.is_ok());
}

#[test]
fn bad_settings_are_named() {
    let bad = QueryConfig {
        memory_limit_bytes: 10,
        timeout_ms: 0,
        threads: 1,
    };
    let problems = bad.problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("query.memory_limit_bytes"));
    assert!(problems[1].starts_with("query.timeout_ms"));
    assert!(QueryConfig::default().problems().is_empty());
}
