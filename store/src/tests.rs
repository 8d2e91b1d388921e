//! Round trips through the writer: what is on disk is what the contract says.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
use loupe_event::{Event, Limits, ValidEvent, Value};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;

use crate::*;

fn ev(ts: i64, fields: Event) -> ValidEvent {
    fields.validate(&Limits::default(), ts).unwrap()
}

fn write_and_read(
    events: &[ValidEvent],
    catalog: &mut Catalog,
) -> (
    tempfile::TempDir,
    arrow::record_batch::RecordBatch,
    parquet::file::metadata::ParquetMetaData,
) {
    let dir = tempfile::tempdir().unwrap();
    let batch = events_to_batch(events, catalog, 99).unwrap();
    let path = dir.path().join("f.parquet");
    let size = write_parquet(&path, &batch).unwrap();
    assert_eq!(size, std::fs::metadata(&path).unwrap().len());
    let file = std::fs::File::open(&path).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
        file,
        ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required),
    )
    .unwrap();
    let meta = builder.metadata().as_ref().clone();
    let mut reader = builder.build().unwrap();
    let read = reader.next().unwrap().unwrap();
    (dir, read, meta)
}

#[test]
fn rows_are_sorted_by_timestamp_and_settings_are_applied() {
    let events = vec![
        ev(30, Event::new().with("route", "/c").with("n", 3)),
        ev(10, Event::new().with("route", "/a").with("n", 1)),
        ev(20, Event::new().with("route", "/b")),
    ];
    let mut catalog = Catalog::default();
    let (_dir, batch, meta) = write_and_read(&events, &mut catalog);
    let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.values().to_vec(), vec![10, 20, 30]);
    let route = batch.column_by_name("route").unwrap().as_string::<i32>();
    assert_eq!(
        route.iter().collect::<Vec<_>>(),
        vec![Some("/a"), Some("/b"), Some("/c")]
    );
    let n = batch
        .column_by_name("n")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(n.iter().collect::<Vec<_>>(), vec![Some(1), None, Some(3)]);

    let rg = meta.row_group(0);
    for col in rg.columns() {
        assert!(
            matches!(col.compression(), Compression::ZSTD(_)),
            "{:?}",
            col.column_path()
        );
        assert!(
            col.statistics().is_some(),
            "statistics for {:?}",
            col.column_path()
        );
    }
    assert!(
        meta.column_index().is_some(),
        "page index (column index) written"
    );
    assert!(
        meta.offset_index().is_some(),
        "page index (offset index) written"
    );
    let sorting = rg.sorting_columns().expect("sorting columns declared");
    assert_eq!(sorting[0].column_idx, 0);
    assert!(!sorting[0].descending);
    // the route column is dictionary encoded
    let route_idx = batch.schema().index_of("route").unwrap();
    assert!(
        rg.column(route_idx).encodings().any(|e| matches!(
            e,
            parquet::basic::Encoding::RLE_DICTIONARY | parquet::basic::Encoding::PLAIN_DICTIONARY
        )),
        "dictionary encoding on strings"
    );
}

#[test]
fn conflicting_values_survive_in_the_raw_column() {
    let events = vec![
        ev(1, Event::new().with("code", 200)),
        ev(2, Event::new().with("code", "OK")),
        ev(3, Event::new().with("code", true)),
    ];
    let mut catalog = Catalog::default();
    let (_dir, batch, _) = write_and_read(&events, &mut catalog);
    let code = batch
        .column_by_name("code")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(code.iter().collect::<Vec<_>>(), vec![Some(200), None, None]);
    let raw = batch
        .column_by_name("code.__raw")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(
        raw.iter().collect::<Vec<_>>(),
        vec![None, Some("\"OK\""), Some("true")]
    );
}

#[test]
fn a_field_widened_mid_batch_is_float_for_the_whole_batch() {
    let events = vec![
        ev(1, Event::new().with("x", 1)),
        ev(2, Event::new().with("x", 2.5)),
    ];
    let mut catalog = Catalog::default();
    let (_dir, batch, _) = write_and_read(&events, &mut catalog);
    let x = batch.column_by_name("x").unwrap();
    assert_eq!(x.data_type(), &DataType::Float64);
    assert_eq!(
        x.as_primitive::<Float64Type>().values().to_vec(),
        vec![1.0, 2.5]
    );
    assert_eq!(catalog.get("x").unwrap().history.len(), 2);
}

#[test]
fn only_used_columns_are_written_and_null_only_fields_get_none() {
    let mut catalog = Catalog::default();
    catalog.observe("old", &Value::Int(1), 0);
    let events = vec![ev(
        1,
        Event::new().with("a", 1).with("nothing", Value::Null),
    )];
    let (_dir, batch, _) = write_and_read(&events, &mut catalog);
    let names: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["timestamp", "a", "sample_rate"]);
    let mut fields: Vec<_> = catalog
        .fields()
        .map(|(n, i)| (n.to_owned(), i.ty))
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        fields,
        [
            ("a".to_owned(), FieldType::Int),
            ("old".to_owned(), FieldType::Int),
            ("sample_rate".to_owned(), FieldType::Float),
            ("timestamp".to_owned(), FieldType::Timestamp),
        ],
        "regression: registering timestamp once minted a timestamp.__raw column"
    );
    assert!(catalog.get("nothing").is_none());
    assert!(catalog.get("old").is_some());
    assert_eq!(batch.column_by_name("a").unwrap().null_count(), 0);
}

#[test]
fn fields_past_the_dataset_limit_are_kept_in_the_overflow_column() {
    let mut catalog = Catalog::default().with_field_limit(3);
    // fill it: timestamp, a, sample_rate
    events_to_batch(&[ev(0, Event::new().with("a", 0))], &mut catalog, 0).unwrap();
    assert_eq!(catalog.len(), 3);
    let events = vec![
        ev(1, Event::new().with("a", 1).with("b", "x").with("c", 2.5)),
        ev(2, Event::new().with("a", "not an int")), // its .__raw sibling is over the limit too
        ev(3, Event::new().with("a", 3)),
    ];
    let (_dir, batch, _) = write_and_read(&events, &mut catalog);
    let a = batch
        .column_by_name("a")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(a.iter().collect::<Vec<_>>(), vec![Some(1), None, Some(3)]);
    let over = batch
        .column_by_name("__overflow")
        .unwrap()
        .as_string::<i32>();
    let rows: Vec<Option<serde_json::Value>> = over
        .iter()
        .map(|v| v.map(|s| serde_json::from_str(s).unwrap()))
        .collect();
    assert_eq!(
        rows,
        vec![
            Some(serde_json::json!({"b": "x", "c": 2.5})),
            Some(serde_json::json!({"a": "not an int"})),
            None
        ]
    );
    assert!(catalog.get("b").is_none());
    assert_eq!(catalog.get("__overflow").unwrap().ty, FieldType::String);
}
