//! The engine over real files written by the store's writer.

use loupe_event::{Event, Limits, ValidEvent};
use loupe_store::{Catalog, DatasetName, Partition, Store, events_to_batch, fsutil, write_parquet};
use serde_json::Value as Json;

use crate::{Error, QueryEngine, rows_json};

mod limits;
mod outliers;
mod weighted;

/// A seeded uniform in `[0, 1)` (Knuth's MMIX linear congruential generator, top 53 bits):
/// the tests' one source of reproducible randomness.
pub(crate) fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

pub(crate) const HOUR: i64 = 3_600_000_000;
pub(crate) const T0: i64 = 1_795_392_000_000_000; // 2026-11-23T00:00:00Z

/// Writes `events` as one file per hour partition, as a flush does.
pub(crate) fn write(store: &Store, dataset: &str, events: Vec<ValidEvent>, file: &str) {
    let dir = store.dataset(&DatasetName::new(dataset).unwrap());
    let mut catalog = Catalog::load(&dir.catalog_dir()).unwrap();
    let mut parts: std::collections::BTreeMap<Partition, Vec<ValidEvent>> = Default::default();
    for e in events {
        parts
            .entry(Partition::of(e.timestamp_us()))
            .or_default()
            .push(e);
    }
    for (p, evs) in parts {
        let batch = events_to_batch(&evs, &mut catalog, 0).unwrap();
        let pdir = dir.partition_dir(&p);
        fsutil::create_dir_durable(&pdir).unwrap();
        write_parquet(&pdir.join(format!("{file}.parquet")), &batch).unwrap();
    }
    catalog.save_if_changed(&dir.catalog_dir()).unwrap();
}

pub(crate) fn ev(ts: i64, e: Event) -> ValidEvent {
    e.validate(&Limits::default(), ts).unwrap()
}

pub(crate) async fn rows(engine: &QueryEngine, sql: &str) -> Vec<Json> {
    let out = engine
        .sql(sql, 1000)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    serde_json::from_slice(&rows_json(&out.batches).unwrap()).unwrap()
}

#[tokio::test]
async fn merged_schema_across_files_with_widening_and_new_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(
        &store,
        "api",
        vec![ev(T0, Event::new().with("x", 1).with("route", "/a"))],
        "f1",
    );
    write(
        &store,
        "api",
        vec![ev(T0 + 1, Event::new().with("x", 2.5).with("y", true))],
        "f2",
    );
    let engine = QueryEngine::new(store);
    let r = rows(&engine, r#"SELECT x, y, route FROM api ORDER BY timestamp"#).await;
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["x"], 1.0, "int file read as float after widening");
    assert_eq!(r[0]["y"], Json::Null, "file without the column reads null");
    assert_eq!(r[0]["route"], "/a");
    assert_eq!(r[1]["x"], 2.5);
    assert_eq!(r[1]["y"], true);
    assert_eq!(r[1]["route"], Json::Null);
}

#[tokio::test]
async fn conflicting_values_are_queryable_in_the_raw_column() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(
        &store,
        "api",
        vec![
            ev(T0, Event::new().with("code", 200)),
            ev(T0 + 1, Event::new().with("code", "teapot")),
        ],
        "f1",
    );
    let engine = QueryEngine::new(store);
    let r = rows(
        &engine,
        r#"SELECT COALESCE(CAST(code AS VARCHAR), "code.__raw") AS v FROM api ORDER BY timestamp"#,
    )
    .await;
    assert_eq!(r[0]["v"], "200");
    assert_eq!(r[1]["v"], "\"teapot\"");
}

#[tokio::test]
async fn sql_is_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(&store, "api", vec![ev(T0, Event::new().with("a", 1))], "f1");
    let engine = QueryEngine::new(store);
    for sql in [
        "CREATE TABLE t (a INT)",
        "CREATE VIEW v AS SELECT 1",
        "DROP TABLE api",
        "INSERT INTO api (a) VALUES (1)",
        "COPY api TO '/tmp/loupe-copy-test.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        match engine.sql(sql, 10).await {
            Err(Error::ReadOnly(msg)) => assert!(msg.contains("read-only"), "{sql}: {msg}"),
            other => panic!("{sql}: expected a read-only refusal, got {other:?}"),
        }
    }
    assert!(!std::path::Path::new("/tmp/loupe-copy-test.csv").exists());
    // and the table is intact
    assert_eq!(
        rows(&engine, "SELECT count(*) AS n FROM api").await[0]["n"],
        1
    );
}

#[tokio::test]
async fn bad_queries_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let engine = QueryEngine::new(Store::new(dir.path()));
    match engine.sql("SELECT * FROM nope", 10).await {
        Err(Error::Query(msg)) => assert!(msg.contains("nope"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        engine.sql("SELEC 1", 10).await,
        Err(Error::Query(_))
    ));
}

#[tokio::test]
async fn timestamp_filters_prune_hour_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(
        &store,
        "api",
        (0..6)
            .map(|h| ev(T0 + h * HOUR + 5, Event::new().with("h", h)))
            .collect(),
        "f1",
    );
    // Plant an unreadable file in hour 0: any query that opens that partition fails.
    let ds = store.dataset(&DatasetName::new("api").unwrap());
    let poisoned = ds.partition_dir(&Partition::of(T0)).join("poison.parquet");
    std::fs::write(&poisoned, b"not parquet").unwrap();
    let engine = QueryEngine::new(store);
    assert!(
        engine.sql("SELECT count(*) FROM api", 10).await.is_err(),
        "the poison is read without a filter"
    );
    let r = rows(
        &engine,
        "SELECT h FROM api WHERE timestamp >= '2026-11-23T02:00:00Z' AND timestamp < '2026-11-23T04:00:00Z' ORDER BY h",
    )
    .await;
    assert_eq!(
        r.iter()
            .map(|r| r["h"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    let r = rows(
        &engine,
        "SELECT count(*) AS n FROM api WHERE timestamp BETWEEN '2026-11-23T01:00:00Z' AND '2026-11-23T09:00:00Z'",
    )
    .await;
    assert_eq!(r[0]["n"], 5);
    // explicit partition columns work too
    let r = rows(
        &engine,
        "SELECT count(*) AS n FROM api WHERE date = '2026-11-23' AND hour >= '03'",
    )
    .await;
    assert_eq!(r[0]["n"], 3);
    // an hour up to its end (exclusive) does not open the next hour's partition
    let next = ds
        .partition_dir(&Partition::of(T0 + 4 * HOUR))
        .join("poison.parquet");
    std::fs::write(&next, b"not parquet").unwrap();
    let r = rows(
        &engine,
        "SELECT h FROM api WHERE timestamp >= '2026-11-23T03:00:00Z' AND timestamp < '2026-11-23T04:00:00Z'",
    )
    .await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["h"], 3);
}

#[tokio::test]
async fn information_schema_lists_datasets_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(
        &store,
        "api",
        vec![ev(T0, Event::new().with("http.route", "/a"))],
        "f1",
    );
    write(&store, "web", vec![ev(T0, Event::new().with("n", 1))], "f1");
    let engine = QueryEngine::new(store);
    let r = rows(
        &engine,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    )
    .await;
    assert_eq!(
        r.iter()
            .map(|r| r["table_name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["api", "web"]
    );
    let r = rows(&engine, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'api' ORDER BY 1").await;
    let cols: Vec<_> = r
        .iter()
        .map(|r| r["column_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        ["date", "hour", "http.route", "sample_rate", "timestamp"]
    );
}

#[tokio::test]
async fn results_are_truncated_at_the_row_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(
        &store,
        "api",
        (0..50)
            .map(|i| ev(T0 + i, Event::new().with("i", i)))
            .collect(),
        "f1",
    );
    let engine = QueryEngine::new(store);
    let out = engine.sql("SELECT i FROM api", 20).await.unwrap();
    assert_eq!(out.row_count(), 20);
    assert!(out.truncated);
    let out = engine.sql("SELECT i FROM api", 50).await.unwrap();
    assert!(!out.truncated);
}

#[tokio::test]
async fn files_written_after_a_query_are_seen_by_the_next_one() {
    // Regression: DataFusion's default listing cache never expires, so a table queried once
    // never saw files flushed after that.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    write(&store, "api", vec![ev(T0, Event::new().with("a", 1))], "f1");
    let engine = QueryEngine::new(store.clone());
    assert_eq!(
        rows(&engine, "SELECT count(*) AS n FROM api").await[0]["n"],
        1
    );
    assert_eq!(
        rows(&engine, "SELECT sum(a) AS s FROM api").await[0]["s"],
        1
    );
    write(
        &store,
        "api",
        vec![ev(T0 + 1, Event::new().with("a", 2))],
        "f2",
    );
    assert_eq!(
        rows(&engine, "SELECT count(*) AS n FROM api").await[0]["n"],
        2
    );
    assert_eq!(
        rows(&engine, "SELECT sum(a) AS s FROM api").await[0]["s"],
        3
    );
}

/// `read_dictionaries('api')` is `api` with its strings as dictionaries: the same rows, over
/// files of different columns, and a column whose many values the writer could not keep in a
/// dictionary (read plain, then encoded). Each file is told to read its strings as
/// dictionaries itself, not cast to them after reading views.
#[tokio::test]
async fn read_dictionaries_is_the_table_with_its_strings_as_dictionaries() {
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    use datafusion::physical_plan::ExecutionPlan;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    // 30,000 distinct strings of 60 bytes: more than the writer's 1 MiB dictionary page.
    let many = |i: i64| format!("{i:0>60}");
    write(
        &store,
        "api",
        (0..30_000)
            .map(|i| {
                let mut e = Event::new()
                    .with("route", ["/a", "/b", "/c"][i as usize % 3])
                    .with("big", many(i))
                    .with("n", i);
                if i % 7 == 0 {
                    e = e.with("region", "eu");
                }
                ev(T0 + i, e)
            })
            .collect(),
        "f1",
    );
    write(
        &store,
        "api",
        (0..100)
            .map(|i| ev(T0 + HOUR + i, Event::new().with("route", "/d").with("n", i)))
            .collect(),
        "f2",
    );
    let engine = QueryEngine::new(store);
    let columns = "timestamp, route, big, region, n";
    let views = rows(
        &engine,
        &format!("SELECT {columns} FROM api ORDER BY timestamp LIMIT 1000 OFFSET 29500"),
    )
    .await;
    let dicts = rows(
        &engine,
        &format!(
            "SELECT {columns} FROM read_dictionaries('api') ORDER BY timestamp LIMIT 1000 OFFSET 29500"
        ),
    )
    .await;
    assert_eq!(views.len(), 600);
    assert_eq!(dicts, views);
    assert_eq!(views[0]["big"], many(29_500));
    assert_eq!(views[599]["route"], "/d");
    let counted = "SELECT route, count(*) AS n, count(DISTINCT big) AS big, count(region) AS eu";
    assert_eq!(
        rows(
            &engine,
            &format!("{counted} FROM read_dictionaries('api') GROUP BY route ORDER BY route")
        )
        .await,
        rows(
            &engine,
            &format!("{counted} FROM api GROUP BY route ORDER BY route")
        )
        .await
    );
    let types = rows(
        &engine,
        "SELECT arrow_typeof(route) AS r, arrow_typeof(big) AS b FROM read_dictionaries('api') LIMIT 1",
    )
    .await;
    assert_eq!(types[0]["r"], "Dictionary(Int32, Utf8)");
    assert_eq!(types[0]["b"], "Dictionary(Int32, Utf8)");

    // Each file is read with a schema of its own columns, strings as dictionaries.
    let plan = engine
        .context()
        .sql("SELECT route, big FROM read_dictionaries('api')")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    fn scan(plan: &Arc<dyn ExecutionPlan>) -> Option<FileScanConfig> {
        if let Some(config) = plan
            .downcast_ref::<DataSourceExec>()
            .and_then(|e| e.data_source().downcast_ref::<FileScanConfig>())
        {
            return Some(config.clone());
        }
        plan.children().into_iter().find_map(scan)
    }
    let config = scan(&plan).expect("a file scan");
    let files: Vec<_> = config.file_groups.iter().flat_map(|g| g.iter()).collect();
    assert_eq!(files.len(), 2);
    for file in files {
        let own = file.arrow_schema.as_ref().expect("told its schema");
        let route = own.field_with_name("route").unwrap();
        assert!(
            matches!(
                route.data_type(),
                datafusion::arrow::datatypes::DataType::Dictionary(..)
            ),
            "{route:?}"
        );
        let in_f1 = file.object_meta.location.as_ref().ends_with("f1.parquet");
        assert_eq!(own.field_with_name("big").is_ok(), in_f1);
    }
}
