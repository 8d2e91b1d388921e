//! The cost of one sampling decision, per event, in the collector's hot path
//! (`DatasetSampler::decide` on a validated standard wide event).
//!
//! Cases, in one run so they compare as ratios:
//! - `hash_only`: the baseline, `consistent::keep_hash` of the trace id's tail hash (what every
//!   decision costs at least);
//! - `fixed`: a fixed 1-in-20 sampler (no key);
//! - `ema_keyed`: EMA keyed by `http.route` x `http.status_code` (~500 keys of the standard
//!   workload, all warm);
//! - `ema_overflow`: the same with `max_keys = 20`, so most events take the overflow path;
//! - `ema_rules`: `ema_keyed` behind three rules (`error = true` keep, `/health` drop,
//!   `duration_ms > 1000` at rate 5), the configuration a real dataset has.
//!
//! Events are generated and validated before the timed loop; each iteration decides for the
//! next event with a clock that moves 100 us per event, so intervals end and rates are
//! recomputed inside the measurement as they would be in a collector.
//!
//! Run with `cargo bench -p loupe-bench --bench sampling_decision`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loupe_bench::{Generator, WorkloadConfig};
use loupe_event::{Limits, ValidEvent, Value};
use loupe_sampling::{DatasetSampler, SamplingConfig, consistent, identity};

const EVENTS: usize = 100_000;
const STEP_US: i64 = 100;

fn events() -> Vec<ValidEvent> {
    let config = WorkloadConfig::default();
    let now = config.start_us;
    let mut g = Generator::new(config);
    let limits = Limits::default();
    (0..EVENTS)
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

fn decide(c: &mut Criterion) {
    let events = events();
    let start = WorkloadConfig::default().start_us;
    let mut group = c.benchmark_group("sampling_decision");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    let ids: Vec<Vec<u8>> = events
        .iter()
        .map(|e| match e.fields().get("trace.trace_id") {
            Some(Value::Str(s)) => s.as_bytes().to_vec(),
            _ => Vec::new(),
        })
        .collect();
    let mut i = 0usize;
    group.bench_function("hash_only", |b| {
        b.iter(|| {
            i = (i + 1) % EVENTS;
            black_box(consistent::keep_hash(identity::tail_hash(&ids[i]), 20.0))
        })
    });

    let cases = [
        ("fixed", "sampler = \"fixed\"\nrate = 20\n".to_owned()),
        ("ema_keyed", KEYED.to_owned()),
        ("ema_overflow", format!("{KEYED}max_keys = 20\n")),
        ("ema_rules", format!("{KEYED}{RULES}")),
    ];
    for (name, config) in cases {
        let mut s = sampler(&config);
        // Warm: every key seen, a few intervals ended.
        let mut now = start;
        for e in &events {
            now += STEP_US;
            black_box(s.decide_valid(e, now).keep);
        }
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % EVENTS;
                now += STEP_US;
                black_box(s.decide_valid(&events[i], now).keep)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
