//! Are the recorded weights unbiased? For every event the sampler sees, the weight it records
//! when it keeps the event must have expectation 1: `P(keep) · sample_rate = 1`. Then the
//! weighted count of the kept events, `Σ sample_rate`, estimates the number of events seen,
//! per key and in total, with no bias, however the rates move.
//!
//! Why it holds: the rate an event gets is a function of the arrival sequence only (keys,
//! times, the counts and smoothed counts they make), never of trace ids or earlier keep
//! decisions, and the keep decision thresholds a uniform hash of the trace id at that same
//! rate, so `P(keep | rate) = 1 / rate`. Events of one trace share the hash, which correlates
//! their decisions (more variance) but leaves each one's expectation alone.
//!
//! The experiment drives the collector's path ([`DatasetSampler::decide_valid`], then
//! [`Decision::annotate_valid`](crate::Decision::annotate_valid) on kept events) with a
//! synthetic clock and a stream built to stress it: skewed keys, bursts of thousands of events
//! within 100 ms then quiet gaps (so intervals roll over, burst detection fires, and some
//! intervals are empty), events decided in batches that share one `now_us` as the collector
//! does per request, and traces of 1-12 events spread across keys. Over many seeds the mean
//! relative error of the weighted total (and of each key's weighted count) must be ~0 within
//! a few standard errors, while a single run may be off by 10% or more: that is sampling
//! noise, not bias. Two deliberately wrong ways of recording the weight (a rate read at another
//! moment than the decision, a weight rounded down) go through the same check, to show that it
//! catches biases of a few percent.
//!
//! Measured here: 400 seeds, mean error +0.4% ± 0.6%, one run's sd 12.7% (-36% to +37%).
//! The same holds for `loupe demo`'s own stream (6,000 events, seed 1, replayed through this
//! config in 1,000-event batches over 2.2 s): over 400 relabellings of its trace ids the mean
//! is -0.3% ± 0.4% with an sd of 8.4% (5.9% with one trace per event), while seed 1's own ids
//! give -17%. The demo's `--seed` fixes its trace ids, so every run of one seed replays almost
//! the same keep decisions: one draw from that spread, not many.

use loupe_event::{Event, Limits, ValidEvent, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{DatasetSampler, SamplingConfig};

const T0: i64 = 1_700_000_000_000_000;
const MS: i64 = 1_000;
const SERVICES: usize = 12;
/// The collector decides a request's events with one `now_us`.
const BATCH: usize = 250;
/// Runs, each with its own traffic and trace ids.
const SEEDS: u64 = 400;

/// The `loupe demo` configuration: keyed by service and status, EMA toward 1 in 10 over
/// 500 ms intervals, errors kept by rule.
const CONFIG: &str = r#"
key_fields = ["service.name", "http.status_code"]
sampler = "ema"
goal_rate = 10
interval_ms = 500

[[rules]]
name = "errors"
when = "error = true"
action = "keep"
"#;

/// Status codes and their shares; 500 is an error (kept by the rule).
const STATUSES: [(i64, f64); 5] = [
    (200, 0.85),
    (201, 0.06),
    (404, 0.05),
    (429, 0.02),
    (500, 0.02),
];
const KEYS: usize = SERVICES * STATUSES.len();

fn key_name(k: usize) -> String {
    format!(
        "svc{}|{}",
        k / STATUSES.len(),
        STATUSES[k % STATUSES.len()].0
    )
}

/// One arriving event: when, its key (`service * STATUSES.len() + status`) and the event.
struct Arrival {
    now_us: i64,
    key: usize,
    event: ValidEvent,
}

/// Index `i` with probability `cdf[i] - cdf[i - 1]`.
fn draw(cdf: &[f64], rng: &mut StdRng) -> usize {
    let u: f64 = rng.random();
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

fn cdf(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    let mut out: Vec<f64> = weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect();
    for c in &mut out {
        *c /= acc;
    }
    out
}

/// A seeded stream of bursts: 5 bursts of 600-2000 events, each arriving within 100 ms in
/// batches of [`BATCH`], their starts 300-1600 ms apart (so a burst may share an interval with
/// the previous one, or follow empty intervals, and burst detection fires). Services are
/// Zipf(1.2) (svc0 ~30% of the traffic, svc11 ~2%). Events come in traces of 1-12 consecutive
/// events whose keys are drawn independently (a request crossing services).
fn stream(seed: u64) -> Vec<Arrival> {
    let services = cdf((1..=SERVICES).map(|k| (k as f64).powf(-1.2)));
    let statuses = cdf(STATUSES.iter().map(|s| s.1));
    // One validated event per key; an arrival is its key's event with a trace id.
    let limits = Limits::default();
    let templates: Vec<ValidEvent> = (0..KEYS)
        .map(|k| {
            let code = STATUSES[k % STATUSES.len()].0;
            Event::new()
                .with("service.name", format!("svc{}", k / STATUSES.len()))
                .with("http.status_code", code)
                .with("error", code >= 500)
                .with("trace.trace_id", "0")
                .validate(&limits, T0)
                .expect("a valid event")
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut start = T0;
    for _ in 0..5 {
        let n = rng.random_range(600..=2000usize);
        let mut trace = String::new();
        let mut left_in_trace = 0;
        for i in 0..n {
            if left_in_trace == 0 {
                left_in_trace = rng.random_range(1..=12);
                trace = format!("{:032x}", rng.random::<u128>());
            }
            left_in_trace -= 1;
            let key = draw(&services, &mut rng) * STATUSES.len() + draw(&statuses, &mut rng);
            let now_us = start + ((i - i % BATCH) as i64) * 100 * MS / n as i64;
            let mut fields = templates[key].fields().clone();
            fields.insert("trace.trace_id", trace.as_str());
            let event = ValidEvent::from_stored_parts(now_us, fields);
            out.push(Arrival { now_us, key, event });
        }
        start += rng.random_range(300..=1600) * MS;
    }
    out
}

/// How a kept event's weight is counted.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Weigh {
    /// The collector's path: the `sample_rate` the decision annotated the event with.
    Recorded,
    /// Wrong on purpose: the key's rate as it was before the event's batch, so a batch that
    /// ends an interval is decided at the new rates and weighted at the old ones.
    RateBeforeBatch,
    /// Wrong on purpose: the recorded weight rounded down to a whole number.
    Floor,
}
const WEIGHS: [Weigh; 3] = [Weigh::Recorded, Weigh::RateBeforeBatch, Weigh::Floor];

/// One run through the collector's path: per key, events seen and, per [`WEIGHS`], the
/// weighted count of the kept ones. The decisions are the same whatever the weighing.
fn run(arrivals: &[Arrival]) -> Vec<(f64, [f64; 3])> {
    let config: SamplingConfig = toml::from_str(CONFIG).expect("the config parses");
    let mut sampler = DatasetSampler::new(&config).expect("the config builds");
    let mut per_key = vec![(0.0, [0.0; 3]); KEYS];
    for batch in arrivals.chunk_by(|a, b| a.now_us == b.now_us) {
        let before: Vec<f64> = batch
            .iter()
            .map(|a| sampler.default_sampler().peek_rate(a.event.fields()))
            .collect();
        for (a, before) in batch.iter().zip(before) {
            per_key[a.key].0 += 1.0;
            let d = sampler.decide_valid(&a.event, a.now_us);
            if !d.keep {
                continue;
            }
            let by_rule = d.sampler.is_none();
            let mut event = a.event.clone();
            d.annotate_valid(&mut event);
            let recorded = event.sample_rate();
            for (w, weigh) in per_key[a.key].1.iter_mut().zip(WEIGHS) {
                *w += match weigh {
                    Weigh::Recorded => recorded,
                    Weigh::RateBeforeBatch if by_rule => recorded,
                    Weigh::RateBeforeBatch => before,
                    Weigh::Floor => recorded.floor(),
                };
            }
        }
    }
    per_key
}

/// Mean and standard error of `xs`.
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[test]
fn weighted_counts_are_unbiased_over_seeds_with_bursts_and_shared_traces() {
    // Per seed, per weighing: the relative error of the weighted total. Per key (recorded
    // weights): per seed, events seen and weighted count minus seen.
    let mut total: [Vec<f64>; 3] = Default::default();
    let mut keys: Vec<Vec<(f64, f64)>> = vec![Vec::new(); KEYS];
    for seed in 0..SEEDS {
        let arrivals = stream(1000 + seed);
        let per_key = run(&arrivals);
        let seen: f64 = per_key.iter().map(|k| k.0).sum();
        for (i, t) in total.iter_mut().enumerate() {
            let weighted: f64 = per_key.iter().map(|k| k.1[i]).sum();
            t.push((weighted - seen) / seen);
        }
        for (k, (s, w)) in per_key.iter().enumerate() {
            keys[k].push((*s, w[0] - s));
        }
    }

    let (mean, se) = mean_se(&total[0]);
    let mut sorted = total[0].clone();
    sorted.sort_by(f64::total_cmp);
    let sd = se * (SEEDS as f64).sqrt();
    eprintln!(
        "weighted total over {SEEDS} seeds: mean relative error {:+.2}% (standard error {:.2}%); \
         one run: sd {:.1}%, from {:+.1}% to {:+.1}%",
        100.0 * mean,
        100.0 * se,
        100.0 * sd,
        100.0 * sorted[0],
        100.0 * sorted[sorted.len() - 1]
    );
    // Unbiased: the mean within 4 standard errors of 0 (the standard error is ~0.6%, so a
    // bias of 2.5% or more fails this) ...
    assert!(
        mean.abs() < 4.0 * se,
        "the weighted total is biased: {:+.2}% ± {:.2}%",
        100.0 * mean,
        100.0 * se
    );
    // ... while single runs do miss: a few hundred kept events carry weights up to ~100, and
    // the events of a trace are kept or dropped together. Noisy by design, yet bounded.
    assert!(
        sd > 0.03,
        "one run's sd {sd}: the stream no longer stresses the sampler"
    );
    assert!(sd < 0.2, "one run's sd {sd}: the weights got far noisier");

    // Per key, for every key seen in every run: the hottest (sampled hard), the rare ones
    // (kept whole, no error at all) and the error keys (kept by the rule).
    let mut checked = 0;
    for (k, runs) in keys.iter().enumerate() {
        if runs.iter().any(|r| r.0 == 0.0) {
            continue;
        }
        checked += 1;
        let errs: Vec<f64> = runs.iter().map(|r| r.1).collect();
        let (mean, se) = mean_se(&errs);
        let per_run = runs.iter().map(|r| r.0).sum::<f64>() / runs.len() as f64;
        let z = if mean == 0.0 { 0.0 } else { mean / se };
        if k % STATUSES.len() == 0 && k / STATUSES.len() < 3 {
            eprintln!(
                "  key {}: {per_run:.0} events per run, bias {:+.2}% ({z:+.1} standard errors)",
                key_name(k),
                100.0 * mean / per_run
            );
        }
        assert!(
            z.abs() < 4.5,
            "key {} is biased: {:+.2}% ({z:+.1} standard errors)",
            key_name(k),
            100.0 * mean / per_run
        );
    }
    assert!(checked >= 20, "only {checked} keys seen in every run");

    // The check has teeth: the wrong weighings, biased by about -3.5% here, fail it (at about
    // 5 standard errors; should a change of the samplers bring them near 4, raise SEEDS).
    for (i, weigh) in WEIGHS.iter().enumerate().skip(1) {
        let (mean, se) = mean_se(&total[i]);
        eprintln!(
            "{weigh:?}: mean relative error {:+.2}% (standard error {:.2}%)",
            100.0 * mean,
            100.0 * se
        );
        assert!(
            mean.abs() > 4.0 * se,
            "{weigh:?} should look biased: {:+.2}% ± {:.2}%",
            100.0 * mean,
            100.0 * se
        );
    }
}

#[test]
fn rates_do_not_depend_on_trace_ids() {
    // The structural reason for the above: relabel every trace and the sequence of rates (and
    // keys) is the same, so an event's rate cannot depend on its own hash or on whether
    // earlier events of its trace were kept. Only the keep decisions change.
    let arrivals = stream(7);
    let relabelled: Vec<Arrival> = arrivals
        .iter()
        .map(|a| {
            let mut fields = a.event.fields().clone();
            if let Some(Value::Str(t)) = fields.get("trace.trace_id") {
                let other = format!("{t}-relabelled");
                fields.insert("trace.trace_id", other);
            }
            Arrival {
                now_us: a.now_us,
                key: a.key,
                event: ValidEvent::from_stored_parts(a.event.timestamp_us(), fields),
            }
        })
        .collect();
    let config: SamplingConfig = toml::from_str(CONFIG).expect("the config parses");
    let decide_all = |arrivals: &[Arrival]| {
        let mut s = DatasetSampler::new(&config).expect("the config builds");
        arrivals
            .iter()
            .map(|a| {
                let d = s.decide_valid(&a.event, a.now_us);
                (d.rate, d.key.map(str::to_owned), d.keep)
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (decide_all(&arrivals), decide_all(&relabelled));
    let rates = |v: &[(f64, Option<String>, bool)]| {
        v.iter().map(|d| (d.0, d.1.clone())).collect::<Vec<_>>()
    };
    assert_eq!(rates(&a), rates(&b));
    assert!(
        a.iter().zip(&b).any(|(x, y)| x.2 != y.2),
        "relabelling changes which events are kept"
    );
    assert!(
        a.iter().any(|d| d.0 > 10.0),
        "the stream reaches high rates"
    );
}
