//! Outliers over real files: the two DataFusion passes feeding the counts and the ranking.

use loupe_event::Event;
use loupe_store::Store;

use super::{HOUR, T0, ev, write};
use crate::outliers::analyze::Question;
use crate::outliers::counts::Value;
use crate::{Error, QueryEngine};

fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

/// 60,000 requests over an hour, stored as a collector samples them (slow ones at 1, the rest
/// 1 in 20 at weight 20): 8 kernels, of which 6.6 makes requests 4x slower; a unique request
/// id; a float field unrelated to latency.
fn engine() -> (tempfile::TempDir, QueryEngine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut s = 5;
    let mut events = Vec::new();
    for i in 0..60_000i64 {
        let k = (lcg(&mut s) * 8.0) as usize;
        let mut ms = 40.0 * (lcg(&mut s) * 3.0).exp();
        if k == 6 {
            ms *= 4.0;
        }
        let mem = 1000.0 + lcg(&mut s) * 7000.0;
        let slow = ms > 500.0;
        if !(slow || lcg(&mut s) < 0.05) {
            continue;
        }
        events.push(ev(
            T0 + i * (HOUR / 60_000),
            Event::new()
                .with("os.kernel", format!("6.{k}"))
                .with("request.id", format!("req-{i}"))
                .with("build.memory_mb", mem)
                .with("duration_ms", ms)
                .with("sample_rate", if slow { 1 } else { 20 }),
        ));
    }
    write(&store, "api", events, "f1");
    (dir, QueryEngine::new(store))
}

#[tokio::test]
async fn the_planted_kernel_explains_the_slow_requests() {
    let (_dir, engine) = engine();
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let top = &report.explanations[0];
    assert_eq!(
        (top.field.as_str(), &top.value),
        ("os.kernel", &Value::Str("6.6".into())),
        "{:#?}",
        report.explanations
    );
    assert!(top.assessment.lower > 2.0, "{top:?}");
    // duration_ms defines the selection; the request id identifies events.
    assert_eq!(report.defining, ["duration_ms"]);
    assert!(!report.fields.contains(&"duration_ms".to_owned()));
    assert_eq!(report.identifiers, ["request.id"]);
    // the unrelated float was compared (by deciles) and explains nothing
    assert!(report.fields.contains(&"build.memory_mb".to_owned()));
    assert!(
        report
            .explanations
            .iter()
            .all(|e| e.field != "build.memory_mb" || e.assessment.lower < 1.5)
    );
    // The totals are weighted: the baseline stands for about 20x its stored rows.
    assert!(report.baseline.weight > 15.0 * report.baseline.rows as f64);

    // A window: the first half hour holds about half the selection.
    let half = engine
        .outliers(&Question {
            until_us: Some(T0 + HOUR / 2),
            ..Question::new("api", "duration_ms > 500")
        })
        .await
        .unwrap();
    let share = half.selection.rows as f64 / report.selection.rows as f64;
    assert!((0.45..0.55).contains(&share), "{share}");
}

#[tokio::test]
async fn a_bad_predicate_is_an_error_that_names_it() {
    let (_dir, engine) = engine();
    match engine.outliers(&Question::new("api", "nope > 3")).await {
        Err(Error::Query(msg)) => {
            assert!(msg.contains("selection") && msg.contains("nope"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_planted_conjunction_is_found_and_beats_its_terms() {
    // Kernel 6.6 on image img-3 (1 request in 80) is 6x slower; either alone is not.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut s = 9;
    let mut events = Vec::new();
    // [selected, not] x [matches the conjunction, not], over every generated request
    let mut truth = [[0.0f64; 2]; 2];
    for i in 0..80_000i64 {
        let k = (lcg(&mut s) * 8.0) as usize;
        let img = (lcg(&mut s) * 10.0) as usize;
        let mut ms = 40.0 * (lcg(&mut s) * 3.0).exp();
        if k == 6 && img == 3 {
            ms *= 6.0;
        }
        let slow = ms > 500.0;
        truth[usize::from(!slow)][usize::from(!(k == 6 && img == 3))] += 1.0;
        if !(slow || lcg(&mut s) < 0.05) {
            continue;
        }
        events.push(ev(
            T0 + i * (HOUR / 80_000),
            Event::new()
                .with("os.kernel", format!("6.{k}"))
                .with("container.image", format!("img-{img}"))
                .with("duration_ms", ms)
                .with("sample_rate", if slow { 1 } else { 20 }),
        ));
    }
    write(&store, "api", events, "f1");
    let engine = QueryEngine::new(store);
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let top = report.combinations.first().expect("a conjunction");
    let mut terms = top.terms.clone();
    terms.sort();
    assert_eq!(
        terms,
        [
            ("container.image".to_owned(), Value::Str("img-3".into())),
            ("os.kernel".to_owned(), Value::Str("6.6".into())),
        ],
        "{:#?}",
        report.combinations
    );
    // Stronger evidence than either value alone.
    for (field, value) in &top.terms {
        let single = report
            .explanations
            .iter()
            .find(|e| &e.field == field && &e.value == value)
            .expect("each term is a single candidate");
        assert!(top.assessment.lower > single.assessment.lower);
    }
    // The interval holds the risk ratio of the whole, unsampled stream.
    let [[a, c], [b, d]] = truth;
    let true_rr = (a / (a + b)) / (c / (c + d));
    assert!(
        top.assessment.lower <= true_rr && true_rr <= top.assessment.upper,
        "true {true_rr} outside {top:?}"
    );
}

#[tokio::test]
async fn a_value_implied_by_the_cause_is_folded_into_it() {
    // Host h-7 is slow; every host lives in one zone (zone = host mod 18), so h-7's zone is
    // over-represented too, only because of h-7.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut s = 13;
    let mut events = Vec::new();
    for i in 0..80_000i64 {
        let host = (lcg(&mut s) * 200.0) as usize;
        let mut ms = 40.0 * (lcg(&mut s) * 3.0).exp();
        if host == 7 {
            ms *= 5.0;
        }
        let slow = ms > 500.0;
        if !(slow || lcg(&mut s) < 0.05) {
            continue;
        }
        events.push(ev(
            T0 + i * (HOUR / 80_000),
            Event::new()
                .with("host.name", format!("h-{host}"))
                .with("availability_zone", format!("z-{}", host % 18))
                .with("duration_ms", ms)
                .with("sample_rate", if slow { 1 } else { 20 }),
        ));
    }
    write(&store, "api", events, "f1");
    let engine = QueryEngine::new(store);
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let top = &report.explanations[0];
    assert_eq!(
        (top.field.as_str(), &top.value),
        ("host.name", &Value::Str("h-7".into())),
        "{:#?}",
        report.explanations
    );
    let zone = ("availability_zone".to_owned(), Value::Str("z-7".into()));
    assert!(top.implies.contains(&zone), "{top:?}");
    assert!(
        !report
            .explanations
            .iter()
            .any(|e| (e.field.clone(), e.value.clone()) == zone),
        "the zone is not listed again"
    );
    assert!(
        !report.combinations.iter().any(|c| c.terms.contains(&zone)),
        "nor conjoined with the host it follows from: {:#?}",
        report.combinations
    );
}
