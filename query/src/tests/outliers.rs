//! Outliers over real files: the two DataFusion passes feeding the counts and the ranking.

use super::lcg;
use loupe_event::Event;
use loupe_store::Store;

use super::{HOUR, T0, ev, write};
use crate::outliers::analyze::Question;
use crate::outliers::counts::Value;
use crate::{Error, QueryEngine};

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
async fn a_selection_or_baseline_that_is_not_a_predicate_is_refused() {
    let (_dir, engine) = engine();
    // A number is no predicate (it would read as "not zero" if it were let through).
    match engine.outliers(&Question::new("api", "duration_ms")).await {
        Err(Error::Query(msg)) => {
            assert!(msg.contains("`duration_ms` is not a predicate"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    let baseline = Question {
        baseline: Some("duration_ms + 1".into()),
        ..Question::new("api", "duration_ms > 500")
    };
    match engine.outliers(&baseline).await {
        Err(Error::Query(msg)) => assert!(msg.contains("the baseline"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // An explicit baseline still goes through (the `CASE` form of the passes).
    let explicit = Question {
        baseline: Some("duration_ms <= 100".into()),
        ..Question::new("api", "duration_ms > 500")
    };
    let report = engine.outliers(&explicit).await.unwrap();
    assert!(report.selection.rows > 0 && report.baseline.rows > 0);
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
async fn a_common_value_added_to_the_cause_is_not_a_better_explanation() {
    // Kernel 6.6 on image img-3 is 6x slower. `db.count = 1` is on 80% of requests and
    // unrelated; `build.sha` is a function of the image (the image's build) and so swaps
    // for it term for term.
    let (_dir, engine, _) = sampled(80_000, 11, |s, _| {
        let k = (lcg(s) * 8.0) as usize;
        let img = (lcg(s) * 10.0) as usize;
        let cause = k == 6 && img == 3;
        let ms = latency(s) * if cause { 6.0 } else { 1.0 };
        let e = Event::new()
            .with("os.kernel", format!("6.{k}"))
            .with("container.image", format!("img-{img}"))
            .with("build.sha", format!("sha-{:x}", img * 7919))
            .with("db.count", if lcg(s) < 0.8 { 1 } else { 2 });
        (e, ms, cause)
    });
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let cause = [
        ("os.kernel".to_owned(), "6.6".to_owned()),
        ("container.image".to_owned(), "img-3".to_owned()),
    ];
    let ranked = report.ranked(10);
    assert_eq!(report.rank_of(&cause, 10), Some(1), "{ranked:#?}");
    // Refinements by the common value add nothing and are not reported.
    assert!(
        report
            .combinations
            .iter()
            .all(|c| c.terms.iter().all(|(f, _)| f != "db.count")),
        "{:#?}",
        report.combinations
    );
    // The image's twin (its build) is one explanation with it, not a second entry.
    let twins = report
        .combinations
        .iter()
        .filter(|c| c.terms.iter().any(|(f, _)| f == "os.kernel") && c.terms.len() == 2)
        .count();
    assert_eq!(twins, 1, "{:#?}", report.combinations);
    let top = &ranked[0];
    assert!(
        top.terms
            .iter()
            .chain(&top.implies)
            .any(|(f, _)| f == "build.sha"),
        "{top:#?}"
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

#[tokio::test]
async fn the_table_function_answers_in_sql_and_names_bad_arguments() {
    let (_dir, engine) = engine();
    let rows = super::rows(
        &engine,
        "SELECT rank, explanation, terms, selection_events, measure_ratio FROM outliers('api', 'duration_ms > 500') \
         WHERE terms = 1 ORDER BY rank LIMIT 3",
    )
    .await;
    assert_eq!(rows[0]["explanation"], "os.kernel = '6.6'", "{rows:?}");
    assert_eq!(rows[0]["rank"], 1);
    assert!(rows[0]["selection_events"].as_i64().unwrap() >= 10);
    // The kernel makes requests 4x slower: the threshold's measure says so.
    let ratio = rows[0]["measure_ratio"].as_f64().unwrap();
    assert!((2.0..6.0).contains(&ratio), "{rows:?}");
    // Not a threshold on a measure: no ratio.
    let rows = super::rows(
        &engine,
        "SELECT measure_ratio FROM outliers('api', 'duration_ms > 500 AND true') LIMIT 1",
    )
    .await;
    assert!(rows[0]["measure_ratio"].is_null(), "{rows:?}");

    // The same ranking as the report's, in the same order.
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let texts: Vec<String> = super::rows(
        &engine,
        "SELECT explanation FROM outliers('api', 'duration_ms > 500')",
    )
    .await
    .iter()
    .map(|r| r["explanation"].as_str().unwrap().to_owned())
    .collect();
    let want: Vec<String> = report
        .ranked(20)
        .iter()
        .map(|f| report.finding_text(&f.terms))
        .collect();
    assert_eq!(texts, want);

    // `pNN field` selects above the percentile; top bounds the rows.
    let rows = super::rows(
        &engine,
        "SELECT explanation FROM outliers('api', 'p90 duration_ms', NULL, NULL, NULL, 2)",
    )
    .await;
    assert!(!rows.is_empty() && rows.len() <= 2, "{rows:?}");
    assert_eq!(rows[0]["explanation"], "os.kernel = '6.6'");

    for (sql, names) in [
        ("SELECT * FROM outliers('api')", "takes 2 to 6 arguments"),
        ("SELECT * FROM outliers('api', 'nope > 3')", "nope"),
        (
            "SELECT * FROM outliers('api', 3)",
            "selection must be a string",
        ),
        (
            "SELECT * FROM outliers('api', 'error', NULL, NULL, NULL, -1)",
            "top",
        ),
        (
            "SELECT * FROM outliers('api', 'error', NULL, 'yesterday')",
            "yesterday",
        ),
    ] {
        let err = engine.sql(sql, 10).await.unwrap_err().to_string();
        assert!(err.contains(names), "{sql}: {err}");
    }
}

#[tokio::test]
async fn integers_with_many_values_are_binned_and_few_are_compared_exactly() {
    // Requests with more than 400 items are 5x slower; the status code is 503 for 1 in 10
    // requests, which are 5x slower too.
    let (_dir, engine, _) = sampled(60_000, 21, |s, _| {
        let items = (lcg(s) * 500.0) as i64;
        let status = if lcg(s) < 0.1 { 503 } else { 200 };
        let slow = items > 400 || status == 503;
        let ms = latency(s) * if slow { 5.0 } else { 1.0 };
        let e = Event::new()
            .with("payload.items", items)
            .with("http.status_code", status);
        (e, ms, slow)
    });
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    // 500 values is no identifier: payload.items is binned by deciles of whole numbers.
    assert!(report.identifiers.is_empty(), "{:?}", report.identifiers);
    let (_, bins) = report
        .bins
        .iter()
        .find(|(f, _)| f == "payload.items")
        .expect("payload.items has bins");
    assert!(bins.edges.iter().all(|e| e.fract() == 0.0), "{bins:?}");
    assert!(!report.bins.iter().any(|(f, _)| f == "http.status_code"));
    let texts: Vec<String> = report
        .ranked(5)
        .iter()
        .map(|f| report.finding_text(&f.terms))
        .collect();
    assert!(
        texts.iter().any(|t| t.starts_with("payload.items >= 4")),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"http.status_code = 503".to_owned()),
        "{texts:?}"
    );

    // The per-field view draws payload.items as its bins in order and the status codes.
    let view = report
        .by_field
        .iter()
        .find(|v| v.field == "payload.items")
        .unwrap();
    let order: Vec<&Value> = view.values.iter().map(|(v, _, _)| v).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    assert!(order.len() >= 8, "{order:?}");
    let json = report.to_json();
    let status = json["by_field"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["field"] == "http.status_code")
        .unwrap();
    let first = &status["values"][0];
    // 200 is the most common value on both sides; its shares are the weighted ones.
    assert_eq!(first["value"], 200);
    let sel = first["selection_share"].as_f64().unwrap();
    let base = first["baseline_share"].as_f64().unwrap();
    assert!(sel < base && base > 0.85, "{status}");
}

#[tokio::test]
async fn conjunctions_left_untried_to_bound_memory_are_reported() {
    use crate::outliers::text::{TextLimits, report_text};
    let (_dir, engine) = engine();
    let all = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let (candidates, combined) = all.conjunction_candidates;
    assert!(
        candidates >= 4 && combined == candidates,
        "{candidates} {combined}"
    );
    let text = |r| report_text(r, "duration_ms > 500", TextLimits::default());
    assert!(
        !text(&all).contains("conjunctions of the weakest"),
        "{}",
        text(&all)
    );
    // Room for one set of candidates only: the weakest halves are dropped until it fits.
    let mut q = Question::new("api", "duration_ms > 500");
    q.limits.max_sets = 1;
    let bounded = engine.outliers(&q).await.unwrap();
    let (candidates, combined) = bounded.conjunction_candidates;
    assert!(combined < candidates, "{candidates} {combined}");
    let told = format!(
        "conjunctions of the weakest {} of {candidates}",
        candidates - combined
    );
    assert!(text(&bounded).contains(&told), "{}", text(&bounded));
    let json = bounded.to_json();
    assert_eq!(json["conjunction_candidates"]["combined"], combined);
}

#[tokio::test]
async fn the_text_report_draws_every_bin_and_rank_of_finds_a_known_cause() {
    use crate::outliers::text::{TextLimits, report_text};
    let (_dir, engine) = engine();
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let kernel = |v: &str| vec![("os.kernel".to_owned(), v.to_owned())];
    assert_eq!(report.rank_of(&kernel("6.6"), 10), Some(1));
    assert_eq!(report.rank_of(&kernel("6.1"), 10), None);

    let limits = TextLimits {
        fields: usize::MAX,
        values: 3,
        ..TextLimits::default()
    };
    let text = report_text(&report, "duration_ms > 500", limits);
    let section: Vec<&str> = text
        .split("\n\n")
        .find(|s| s.trim_start().starts_with("build.memory_mb"))
        .unwrap_or_else(|| panic!("{text}"))
        .lines()
        .skip(1)
        .collect();
    // Every decile drawn, in order from `< lowest edge` to `>= highest edge`, none cut.
    let bins = report
        .bins
        .iter()
        .find(|(f, _)| f == "build.memory_mb")
        .unwrap();
    assert_eq!(section.len(), bins.1.edges.len() + 1, "{text}");
    assert!(section[0].trim_start().starts_with('<'), "{text}");
    assert!(
        section.last().unwrap().trim_start().starts_with(">="),
        "{text}"
    );
    // A categorical field is still cut at `values`, the others summed.
    let kernels = text
        .split("\n\n")
        .find(|s| s.trim_start().starts_with("os.kernel"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(kernels.lines().count(), 1 + 3 + 1, "{text}");
    assert!(kernels.contains("(the rest)"), "{text}");
}

#[tokio::test]
async fn a_field_that_follows_the_measure_is_left_out_and_named() {
    // CPU time is a share of the duration: it "explains" any duration threshold. The slow
    // kernel is the planted cause; the database time is capped by the duration but mostly
    // its own; the memory is unrelated.
    let (_dir, engine, _) = sampled(40_000, 13, |s, _| {
        let k = (lcg(s) * 8.0) as usize;
        let ms = latency(s) * if k == 6 { 4.0 } else { 1.0 };
        let db = (5.0 * (lcg(s) * 2.0).exp()).min(0.8 * ms);
        let e = Event::new()
            .with("os.kernel", format!("6.{k}"))
            .with("cpu.time_ms", ms * (0.1 + 0.5 * lcg(s)))
            .with("db.time_ms", db)
            .with("build.memory_mb", 1000.0 + lcg(s) * 7000.0);
        (e, ms, k == 6)
    });
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let following: Vec<&str> = report
        .following
        .iter()
        .map(|(f, _, _)| f.as_str())
        .collect();
    assert_eq!(following, ["cpu.time_ms"], "{:?}", report.following);
    let (_, measure, r) = &report.following[0];
    assert_eq!(measure, "duration_ms");
    assert!(
        *r >= crate::outliers::analyze::FOLLOWS_MEASURE && *r <= 1.0,
        "{r}"
    );
    assert!(!report.fields.contains(&"cpu.time_ms".to_owned()));
    assert!(report.fields.contains(&"db.time_ms".to_owned()));
    let kernel = [("os.kernel".to_owned(), "6.6".to_owned())];
    assert_eq!(
        report.rank_of(&kernel, 10),
        Some(1),
        "{:#?}",
        report.ranked(5)
    );
    // A selection not defined on a number has no measure to follow.
    let by_kernel = engine
        .outliers(&Question::new("api", "\"os.kernel\" = '6.1'"))
        .await
        .unwrap();
    assert!(by_kernel.following.is_empty(), "{:?}", by_kernel.following);
}

#[tokio::test]
async fn fields_that_restate_an_error_selection_are_named_not_ranked() {
    // Kernel 6.6 fails 10% of requests, the others 1%. A failure has a 5xx status and an
    // error type; a success neither. Status and type separate the sides by definition.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut s = 17u64;
    let n = 60_000i64;
    let events = (0..n)
        .map(|i| {
            let k = (lcg(&mut s) * 8.0) as usize;
            let error = lcg(&mut s) < if k == 6 { 0.10 } else { 0.01 };
            let mut e = Event::new()
                .with("os.kernel", format!("6.{k}"))
                .with("host.name", format!("h-{}", (lcg(&mut s) * 30.0) as usize))
                .with("error", error);
            e = if error {
                let pick = (lcg(&mut s) * 3.0) as usize;
                e.with("http.status_code", [500, 502, 503][pick])
                    .with("error.type", ["timeout", "reset", "internal"][pick])
            } else {
                e.with("http.status_code", 200)
            };
            ev(T0 + i * (HOUR / n), e)
        })
        .collect();
    write(&store, "api", events, "f1");
    let engine = QueryEngine::new(store);
    let report = engine
        .outliers(&Question::new("api", "error"))
        .await
        .unwrap();
    let mut restating = report.restating.clone();
    restating.sort();
    assert_eq!(restating, ["error.type", "http.status_code"]);
    assert_eq!(report.defining, ["error"]);
    let kernel = [("os.kernel".to_owned(), "6.6".to_owned())];
    assert_eq!(
        report.rank_of(&kernel, 10),
        Some(1),
        "{:#?}",
        report.ranked(5)
    );
    assert!(
        report
            .ranked(100)
            .iter()
            .all(|f| f.terms.iter().all(|(f, _)| !restating.contains(f))),
        "{:#?}",
        report.ranked(100)
    );
    // Still drawn field by field.
    assert!(
        report
            .by_field
            .iter()
            .any(|v| v.field == "http.status_code")
    );
}

#[tokio::test]
async fn values_always_selected_are_named_when_their_field_does_not_restate_it() {
    // As above, but half the failures are client timeouts on a 200: the status field no
    // longer separates the sides, yet 500 is still always an error.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut s = 19u64;
    let n = 60_000i64;
    let events = (0..n)
        .map(|i| {
            let k = (lcg(&mut s) * 8.0) as usize;
            let error = lcg(&mut s) < if k == 6 { 0.10 } else { 0.01 };
            let timeout = error && lcg(&mut s) < 0.5;
            let status = if error && !timeout { 500 } else { 200 };
            let e = Event::new()
                .with("os.kernel", format!("6.{k}"))
                .with("error", error)
                .with("http.status_code", status);
            ev(T0 + i * (HOUR / n), e)
        })
        .collect();
    write(&store, "api", events, "f1");
    let report = QueryEngine::new(store)
        .outliers(&Question::new("api", "error"))
        .await
        .unwrap();
    assert!(report.restating.is_empty(), "{:?}", report.restating);
    let [(field, value, share)] = report.always_selected.as_slice() else {
        panic!("{:?}", report.always_selected)
    };
    assert_eq!(
        (field.as_str(), value),
        ("http.status_code", &Value::Int(500))
    );
    assert!((0.4..0.6).contains(share), "{share}");
    let kernel = [("os.kernel".to_owned(), "6.6".to_owned())];
    assert_eq!(
        report.rank_of(&kernel, 10),
        Some(1),
        "{:#?}",
        report.ranked(5)
    );
}

#[tokio::test]
async fn a_conjunction_of_two_strong_values_is_found_above_each_of_them() {
    // Kernel 6.8 runs 35% of requests, 7 in 10 of them on runtime go1.22, which is on 35% of
    // requests too (7 in 10 on 6.8). Only requests with both (1 in 4) are 3x slower: each
    // value alone covers nearly all the selection and a quarter of the baseline, and has a
    // large ratio of its own, not far under the pair's. Besides, 1 in 500 requests is slow
    // whatever its fields, and `db.count = 1` is on 80% of requests and unrelated.
    let (px, py_x) = (0.35, 0.7);
    let py_not_x = px * (1.0 - py_x) / (1.0 - px);
    let (_dir, engine, _) = sampled(20_000, 23, |s, _| {
        let x = lcg(s) < px;
        let y = lcg(s) < if x { py_x } else { py_not_x };
        let ms = if x && y {
            latency(s) * 3.0
        } else if lcg(s) < 0.002 {
            800.0
        } else {
            40.0 * (lcg(s) * 2.0).exp()
        };
        let kernel = if x {
            "6.8".to_owned()
        } else {
            format!("6.{}", (lcg(s) * 6.0) as usize)
        };
        let runtime = if y {
            "go1.22".to_owned()
        } else {
            format!("go1.21.{}", (lcg(s) * 6.0) as usize)
        };
        let e = Event::new()
            .with("os.kernel", kernel)
            .with("runtime.version", runtime)
            .with("db.count", if lcg(s) < 0.8 { 1 } else { 2 });
        (e, ms, x && y)
    });
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let summary: Vec<String> = report
        .ranked(10)
        .iter()
        .map(|f| {
            let a = &f.assessment;
            format!(
                "{}: {:.1} [{:.1}, {:.1}], {:.3} of the selection, {:.3} of the baseline",
                report.finding_text(&f.terms),
                a.risk_ratio,
                a.lower,
                a.upper,
                a.support,
                a.baseline_share
            )
        })
        .collect();
    let kernel = ("os.kernel".to_owned(), "6.8".to_owned());
    let runtime = ("runtime.version".to_owned(), "go1.22".to_owned());
    let cause = [kernel.clone(), runtime.clone()];
    // The pair is reported, and first: above either of its values.
    assert_eq!(report.rank_of(&cause, 10), Some(1), "{summary:#?}");
    let pair = &report.combinations[0];
    for (field, value) in &cause {
        let single = report
            .explanations
            .iter()
            .find(|e| &e.field == field && e.value == Value::Str(value.clone()))
            .unwrap_or_else(|| panic!("{field} = {value} alone: {summary:#?}"));
        // Each value alone is a strong explanation of nearly all the selection.
        let a = &single.assessment;
        assert!(a.support > 0.9 && a.baseline_share > 0.2, "{summary:#?}");
        assert!(a.lower > 50.0, "{summary:#?}");
        assert!(pair.assessment.lower > a.lower, "{summary:#?}");
    }
    // The case this is about: the pair's bound does not beat the stronger value's own ratio,
    // so "the bound beats each part's ratio" would not report it.
    let strongest = report
        .explanations
        .iter()
        .map(|e| e.assessment.risk_ratio)
        .fold(0.0, f64::max);
    assert!(pair.assessment.lower < strongest, "{summary:#?}");
    // The unrelated common value refines neither the pair nor either of its values.
    assert!(
        report
            .combinations
            .iter()
            .all(|c| c.terms.iter().all(|(f, _)| f != "db.count")),
        "{:#?}",
        report.combinations
    );
}

#[tokio::test]
async fn a_conjunction_is_found_when_one_of_its_terms_explains_nothing_alone() {
    // Flag `cart.v2` is on half the requests; on kernel 6.6 (1 in 8) it makes them 4x slower.
    // Off the flag, requests are a little slower for a reason of their own (a cold cache),
    // just enough that the flag alone is not over-represented in the selection: it is no
    // explanation alone, and a search that combined only explanations would miss the cause.
    let (_dir, engine, _) = sampled(80_000, 31, |s, _| {
        let k = (lcg(s) * 8.0) as usize;
        let flag = lcg(s) < 0.5;
        let cause = k == 6 && flag;
        let ms = latency(s)
            * if cause {
                4.0
            } else if flag {
                1.0
            } else {
                1.2
            };
        let e = Event::new()
            .with("os.kernel", format!("6.{k}"))
            .with("cart.v2", flag);
        (e, ms, cause)
    });
    let report = engine
        .outliers(&Question::new("api", "duration_ms > 500"))
        .await
        .unwrap();
    let flag = Value::Bool(true);
    assert!(
        !report
            .explanations
            .iter()
            .any(|e| e.field == "cart.v2" && e.value == flag),
        "the flag alone explains nothing: {:#?}",
        report.explanations
    );
    let cause = [
        ("os.kernel".to_owned(), "6.6".to_owned()),
        ("cart.v2".to_owned(), "true".to_owned()),
    ];
    assert_eq!(
        report.rank_of(&cause, 5),
        Some(1),
        "{:#?}",
        report.ranked(5)
    );
}

#[tokio::test]
async fn a_slight_slowdown_under_sampling_is_found_through_the_measure_behind_the_threshold() {
    // 200,000 requests, 1 in 20 stored (weight 20) whatever their latency. One of 80 builds
    // (~125 stored requests) makes requests 1.5x slower; six other fields of 40 values each
    // are noise (~250 stored requests a value, so most are tested). The selection is the
    // requests over the base p95 (197 ms): the slow build's stored requests pass it ~15
    // times where ~6 are expected, too little to stand out among ~250 values tested; all of
    // them are 1.5x slower, which is plain.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut s = 17u64;
    let mut events = Vec::new();
    let n = 200_000;
    for i in 0..n {
        let build = (lcg(&mut s) * 80.0) as usize;
        let mut e = Event::new().with("build.id", format!("b{build}"));
        for f in 0..6 {
            e = e.with(
                format!("noise.{f}"),
                format!("v{}", (lcg(&mut s) * 40.0) as usize),
            );
        }
        let z = (-2.0 * lcg(&mut s).max(1e-12).ln()).sqrt()
            * (std::f64::consts::TAU * lcg(&mut s)).cos();
        let ms = 45.0 * (0.9 * z).exp() * if build == 7 { 1.5 } else { 1.0 };
        if lcg(&mut s) >= 0.05 {
            continue;
        }
        let e = e.with("duration_ms", ms).with("sample_rate", 20);
        events.push(ev(T0 + i * (HOUR / n), e));
    }
    write(&store, "api", events, "f1");
    let engine = QueryEngine::new(store);
    let cause = [("build.id".to_owned(), "b7".to_owned())];

    let report = engine
        .outliers(&Question::new("api", "duration_ms > 197"))
        .await
        .unwrap();
    assert_eq!(report.measure.as_deref(), Some("duration_ms"));
    assert_eq!(
        report.rank_of(&cause, 5),
        Some(1),
        "{:#?}",
        report.ranked(5)
    );
    let top = &report.ranked(1)[0];
    let shift = top.assessment.shift.expect("measured");
    assert!((1.3..1.7).contains(&shift.ratio), "{shift:?}");
    assert!(report.to_json()["explanations"][0]["measure_shift"]["ratio"].is_number());

    // The same events selected by a predicate that is not a threshold on one measure: only
    // the table speaks, and it is not enough.
    let table_only = engine
        .outliers(&Question::new("api", "NOT (duration_ms <= 197)"))
        .await
        .unwrap();
    assert_eq!(table_only.measure, None);
    assert_eq!(table_only.selection, report.selection);
    assert_eq!(
        table_only.rank_of(&cause, 5),
        None,
        "{:#?}",
        table_only.ranked(5)
    );
}

/// Writes beside every Parquet file of `dataset` its summary, as the writers do; returns how
/// many.
fn summarize_files(store: &Store, dataset: &str) -> usize {
    use datafusion::arrow::compute::concat_batches;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = store.dataset(&loupe_store::DatasetName::new(dataset).unwrap());
    let files = dir.parquet_files().unwrap();
    for path in &files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
        let batch = concat_batches(&batches[0].schema(), &batches).unwrap();
        let summary = crate::outliers::summary::summarize(&batch).unwrap();
        std::fs::write(
            loupe_store::layout::summary_path(path),
            summary.to_bytes().unwrap(),
        )
        .unwrap();
    }
    files.len()
}

#[tokio::test]
async fn answers_from_summaries_are_answers_from_every_row() {
    // Two hours in two writes: four files. A conjunction planted (kernel 6.6 on img-3), a
    // number, integers of few and of many values, an identifier, and requests without a
    // duration (on neither side).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut s = 17;
    let n = 40_000;
    let mut events = Vec::new();
    for i in 0..n {
        let k = (lcg(&mut s) * 8.0) as usize;
        let img = (lcg(&mut s) * 10.0) as usize;
        let ms = latency(&mut s) * if k == 6 && img == 3 { 6.0 } else { 1.0 };
        let slow = ms > 500.0;
        if !(slow || lcg(&mut s) < 0.2) {
            continue;
        }
        let mut e = Event::new()
            .with("os.kernel", format!("6.{k}"))
            .with("container.image", format!("img-{img}"))
            .with("request.id", format!("req-{i}"))
            .with("build.memory_mb", 1000.0 + lcg(&mut s) * 7000.0)
            .with("http.status", [200, 200, 404, 500][i as usize % 4])
            .with("response.bytes", (lcg(&mut s) * 1e6) as i64 + ms as i64)
            .with("sample_rate", if slow { 1 } else { 5 });
        if i % 97 != 0 {
            e = e.with("duration_ms", ms);
        }
        events.push((i, ev(T0 + i * (2 * HOUR / n), e)));
    }
    // Each write, of every other request, makes a file in each hour.
    let (odd, even): (Vec<_>, Vec<_>) = events.into_iter().partition(|(i, _)| i % 2 == 1);
    write(
        &store,
        "api",
        odd.into_iter().map(|(_, e)| e).collect(),
        "f1",
    );
    write(
        &store,
        "api",
        even.into_iter().map(|(_, e)| e).collect(),
        "f2",
    );
    let engine = QueryEngine::new(store.clone());
    let whole = Question::new("api", "duration_ms > 500");
    // The window holds the first hour's files whole and cuts into the second hour's.
    let window = Question {
        until_us: Some(T0 + HOUR + HOUR / 2),
        ..whole.clone()
    };
    // A baseline of its own: the fast requests, the rest (and those without a duration) on
    // neither side.
    let fast = Question {
        baseline: Some("duration_ms < 100".into()),
        ..whole.clone()
    };
    let direct = engine.outliers(&whole).await.unwrap();
    let direct_window = engine.outliers(&window).await.unwrap();
    let direct_fast = engine.outliers(&fast).await.unwrap();
    assert_eq!(direct.files_summarized, 0);

    assert_eq!(summarize_files(&store, "api"), 4);
    let summarized = engine.outliers(&whole).await.unwrap();
    let summarized_window = engine.outliers(&window).await.unwrap();
    let summarized_fast = engine.outliers(&fast).await.unwrap();
    assert_eq!(summarized.files_summarized, 4);
    assert_eq!(summarized_window.files_summarized, 2);
    assert_eq!(summarized_fast.files_summarized, 4);
    assert!(direct.selection.rows > 100 && !direct.combinations.is_empty());
    assert!(direct_fast.baseline.rows < direct.baseline.rows / 2);
    for (a, b) in [
        (&summarized, &direct),
        (&summarized_window, &direct_window),
        (&summarized_fast, &direct_fast),
    ] {
        let (mut a, mut b) = (a.to_json(), b.to_json());
        a["files_summarized"] = serde_json::Value::Null;
        b["files_summarized"] = serde_json::Value::Null;
        assert_eq!(a, b);
    }

    // A summary that cannot be read is passed over: its file is counted row by row.
    let first = store
        .dataset(&loupe_store::DatasetName::new("api").unwrap())
        .parquet_files()
        .unwrap()[0]
        .clone();
    // The table function shares the engine's summaries: a fresh engine asked in SQL first
    // has read them when it is asked directly.
    let shared = QueryEngine::new(store.clone());
    let rows = super::rows(
        &shared,
        "SELECT count(*) AS n FROM outliers('api', 'duration_ms > 500')",
    )
    .await;
    assert!(rows[0]["n"].as_i64().unwrap() > 0, "{rows:?}");
    assert_eq!(shared.summaries.reads(), 4);
    assert_eq!(shared.outliers(&whole).await.unwrap().files_summarized, 4);
    assert_eq!(shared.summaries.reads(), 4);
    // The engine keeps the summaries it read: asked again, it reads none.
    let reads = engine.summaries.reads();
    let again = engine.outliers(&whole).await.unwrap();
    assert_eq!(again.files_summarized, 4);
    assert_eq!(again.explanations, direct.explanations);
    assert_eq!(engine.summaries.reads(), reads);
    std::fs::write(loupe_store::layout::summary_path(&first), b"{not json").unwrap();
    let one_less = engine.outliers(&whole).await.unwrap();
    assert_eq!(one_less.files_summarized, 3);
    assert_eq!(one_less.explanations, direct.explanations);

    // The scans of some files: one file and the others are all the rows; a file named that
    // is not there (merged away since it was named) is "not found", which asks again.
    let path = first
        .strip_prefix(dir.path().join("api"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let count = |which: &str, list: &str| {
        format!("SELECT count(*) AS n FROM read_dictionaries('api', '{which}', '{list}')")
    };
    let n = |r: Vec<serde_json::Value>| r[0]["n"].as_u64().unwrap();
    let one = n(super::rows(&engine, &count("only", &path)).await);
    let others = n(super::rows(&engine, &count("except", &path)).await);
    let all = n(super::rows(&engine, "SELECT count(*) AS n FROM api").await);
    assert!(one > 0 && others > 0);
    assert_eq!(one + others, all);
    for which in ["only", "except"] {
        let gone = format!("{path},date=2026-11-23/hour=00/gone.parquet");
        let err = engine.sql(&count(which, &gone), 10).await.unwrap_err();
        assert!(
            err.to_string().contains("no longer listed"),
            "{which}: {err}"
        );
    }
}

#[tokio::test]
async fn a_file_without_a_number_added_since_is_counted_event_by_event() {
    // The second file has a number the first has not: the first's summary has no
    // co-moments for it, so only the second file is counted from its summary.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut s = 23;
    for (file, with_queue) in [("f1", false), ("f2", true)] {
        let events = (0..6_000)
            .map(|i| {
                let k = (lcg(&mut s) * 4.0) as usize;
                let ms = latency(&mut s) * if k == 3 { 4.0 } else { 1.0 };
                let mut e = Event::new()
                    .with("os.kernel", format!("6.{k}"))
                    .with("duration_ms", ms);
                if with_queue {
                    e = e.with("queue.ms", ms * lcg(&mut s));
                }
                ev(T0 + i * (HOUR / 6_000), e)
            })
            .collect();
        write(&store, "api", events, file);
    }
    assert_eq!(summarize_files(&store, "api"), 2);
    let engine = QueryEngine::new(store);
    let q = Question::new("api", "duration_ms > 500");
    let summarized = engine.outliers(&q).await.unwrap();
    let direct = engine
        .outliers(&Question {
            summaries: false,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(summarized.files_summarized, 1);
    assert_eq!(direct.files_summarized, 0);
    let (mut a, mut b) = (summarized.to_json(), direct.to_json());
    a["files_summarized"] = serde_json::Value::Null;
    b["files_summarized"] = serde_json::Value::Null;
    assert_eq!(a, b);
}
