//! The cost of one sampling decision, per event, in the collector's hot path
//! (`DatasetSampler::decide` on a validated standard wide event).
//!
//! Cases, in one group so they compare as ratios:
//! - `hash_only`: the baseline, `consistent::keep_hash` of the trace id's tail hash, the id
//!   bytes taken from a compact array (what every decision costs at least);
//! - `lookup_hash`: the same after looking the trace id up in the event (a `BTreeMap` of ~60
//!   fields): the floor of any decision on this event representation;
//! - `fixed`: a fixed 1-in-20 sampler (no key);
//! - `ema_keyed`: EMA keyed by `http.route` x `http.status_code`, every key of the workload
//!   warm in the table;
//! - `ema_overflow`: the same with `max_keys = 20`, so the events of every other key take the
//!   overflow path (the share is printed);
//! - `ema_rules`: `ema_keyed` behind three rules (`error = true` keep, `/health` drop,
//!   `duration_ms > 1000` at rate 5), the configuration a real dataset has.
//!
//! Each case runs on three sets of events, generated and validated before the timed loop:
//! - `hot_10`: ten events over and over, so every field is in L1/L2: the cost of the work
//!   itself, with no cache misses;
//! - `batch_1000`: one request's worth, decided over and over. This is the collector's path
//!   (it validates a request's events, then samples them), so the events (~7.5 MB) are in
//!   the last-level cache;
//! - `stream_100000`: a hundred thousand events (~7.5 KB of heap each) in turn, so every event
//!   comes from memory: the worst case, where the field lookups' cache misses dominate.
//!
//! Each iteration decides for the next event with a clock that moves 100 us per event, so
//! one-second intervals end and rates are recomputed inside the measurement (every 10,000
//! events). The samplers are warmed on the whole stream first. Throughput is one element per
//! iteration, so criterion's `time` is ns per decision.
//!
//! Run with `cargo bench -p loupe-bench --bench sampling_decision`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use loupe_bench::{Generator, WorkloadConfig};
use loupe_event::{Limits, ValidEvent, Value};
use loupe_sampling::key::OVERFLOW_KEY;
use loupe_sampling::{DatasetSampler, SamplingConfig, consistent, identity};

const STREAM_EVENTS: usize = 100_000;
const BATCH_EVENTS: usize = 1_000;
const HOT_EVENTS: usize = 10;
const STEP_US: i64 = 100;

fn events() -> Vec<ValidEvent> {
    let config = WorkloadConfig::default();
    let now = config.start_us;
    let mut g = Generator::new(config);
    let limits = Limits::default();
    (0..STREAM_EVENTS)
        .map(|_| g.next_event().validate(&limits, now).expect("valid"))
        .collect()
}

fn sampler(toml_text: &str) -> DatasetSampler {
    let config: SamplingConfig = toml::from_str(toml_text).expect("config");
    DatasetSampler::new(&config).expect("valid config")
}

const KEYED: &str = r#"
key_fields = ["http.route", "http.status_code"]
sampler = "ema"
goal_rate = 20
interval_ms = 1000
"#;

const RULES: &str = r#"
[[rules]]
when = "error = true"
action = "keep"
[[rules]]
when = "http.route = '/health'"
action = "drop"
[[rules]]
when = "duration_ms > 1000"
action = "rate"
rate = 5
"#;

fn trace_id(e: &ValidEvent) -> &[u8] {
    match e.fields().get("trace.trace_id") {
        Some(Value::Str(s)) => s.as_bytes(),
        _ => &[],
    }
}

fn decide(c: &mut Criterion) {
    let events = events();
    let start = WorkloadConfig::default().start_us;
    let sets = [
        (format!("hot_{HOT_EVENTS}"), &events[..HOT_EVENTS]),
        (format!("batch_{BATCH_EVENTS}"), &events[..BATCH_EVENTS]),
        (format!("stream_{STREAM_EVENTS}"), &events[..]),
    ];
    let mut group = c.benchmark_group("sampling_decision");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    for (set, evs) in &sets {
        let ids: Vec<Vec<u8>> = evs.iter().map(|e| trace_id(e).to_vec()).collect();
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("hash_only", set), |b| {
            b.iter(|| {
                i = (i + 1) % ids.len();
                black_box(consistent::keep_hash(identity::tail_hash(&ids[i]), 20.0))
            })
        });
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("lookup_hash", set), |b| {
            b.iter(|| {
                i = (i + 1) % evs.len();
                let id = trace_id(&evs[i]);
                black_box(consistent::keep_hash(identity::tail_hash(id), 20.0))
            })
        });
    }

    let cases = [
        ("fixed", "sampler = \"fixed\"\nrate = 20\n".to_owned()),
        ("ema_keyed", KEYED.to_owned()),
        ("ema_overflow", format!("{KEYED}max_keys = 20\n")),
        ("ema_rules", format!("{KEYED}{RULES}")),
    ];
    for (name, config) in cases {
        let mut s = sampler(&config);
        // Warm: every key seen, ten intervals ended.
        let mut now = start;
        let mut overflowed = 0usize;
        for e in &events {
            now += STEP_US;
            let d = s.decide_valid(e, now);
            overflowed += usize::from(d.key == Some(OVERFLOW_KEY));
        }
        eprintln!(
            "{name}: {} keys in the table, {:.1}% of the stream on the overflow key",
            s.default_sampler()
                .key_rates()
                .filter(|k| k.key != OVERFLOW_KEY)
                .count(),
            100.0 * overflowed as f64 / events.len() as f64
        );
        for (set, evs) in &sets {
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new(name, set), |b| {
                b.iter(|| {
                    i = (i + 1) % evs.len();
                    now += STEP_US;
                    black_box(s.decide_valid(&evs[i], now).keep)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
