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

/// `n` requests over an hour from `request` (its fields, its latency in ms, whether it has the
/// planted cause), stored as a collector samples them: slow ones (over 500 ms, the selection
/// of every test here) at weight 1, the rest 1 in 20 at weight 20. Also returns the counts of
/// the whole, unsampled stream: `[selected, not] x [has the cause, not]`.
fn sampled(
    n: i64,
    seed: u64,
    mut request: impl FnMut(&mut u64, i64) -> (Event, f64, bool),
) -> (tempfile::TempDir, QueryEngine, [[f64; 2]; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut s = seed;
    let mut events = Vec::new();
    let mut truth = [[0.0f64; 2]; 2];
    for i in 0..n {
        let (event, ms, cause) = request(&mut s, i);
        let slow = ms > 500.0;
        truth[usize::from(!slow)][usize::from(!cause)] += 1.0;
        if !(slow || lcg(&mut s) < 0.05) {
            continue;
        }
        let event = event
            .with("duration_ms", ms)
            .with("sample_rate", if slow { 1 } else { 20 });
        events.push(ev(T0 + i * (HOUR / n), event));
    }
    write(&store, "api", events, "f1");
    (dir, QueryEngine::new(store), truth)
}

/// A lognormal-ish latency: 40 ms to 800 ms.
fn latency(s: &mut u64) -> f64 {
    40.0 * (lcg(s) * 3.0).exp()
}

/// 60,000 requests: 8 kernels, of which 6.6 makes requests 4x slower; a unique request id; a
/// float field unrelated to latency.
fn engine() -> (tempfile::TempDir, QueryEngine) {
    let (dir, engine, _) = sampled(60_000, 5, |s, i| {
        let k = (lcg(s) * 8.0) as usize;
        let ms = latency(s) * if k == 6 { 4.0 } else { 1.0 };
        let e = Event::new()
            .with("os.kernel", format!("6.{k}"))
            .with("request.id", format!("req-{i}"))
            .with("build.memory_mb", 1000.0 + lcg(s) * 7000.0);
        (e, ms, k == 6)
    });
    (dir, engine)
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
    let (_dir, engine, truth) = sampled(80_000, 9, |s, _| {
        let k = (lcg(s) * 8.0) as usize;
        let img = (lcg(s) * 10.0) as usize;
        let cause = k == 6 && img == 3;
        let ms = latency(s) * if cause { 6.0 } else { 1.0 };
        let e = Event::new()
            .with("os.kernel", format!("6.{k}"))
            .with("container.image", format!("img-{img}"));
        (e, ms, cause)
    });
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
    let (_dir, engine, _) = sampled(80_000, 13, |s, _| {
        let host = (lcg(s) * 200.0) as usize;
        let ms = latency(s) * if host == 7 { 5.0 } else { 1.0 };
        let e = Event::new()
            .with("host.name", format!("h-{host}"))
            .with("availability_zone", format!("z-{}", host % 18));
        (e, ms, host == 7)
    });
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
