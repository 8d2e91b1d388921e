//! Decoding and generating the standard wide event.
//!
//! `decode_ndjson` reads one fixed batch of 10,000 standard events (about 16 MB of NDJSON) two
//! ways in the same run, each keeping what it parsed: loupe's ingest path (`for_each_event`,
//! each event flattened and validated as it is parsed), and as the in-process baseline,
//! `serde_json::from_slice::<serde_json::Value>` of each line (no flattening, no checks). A third
//! variant parses and drops each value at once: the cost of parsing alone, without holding 10,000
//! events in memory.
//! `generate` measures writing 10,000 events as NDJSON.
//!
//! Run with `cargo bench -p loupe-bench --bench event_codec`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use loupe_bench::{Generator, WorkloadConfig};
use loupe_event::{BodyFormat, Limits, for_each_event};

const EVENTS: usize = 10_000;

fn batch() -> Vec<u8> {
    let mut body = Vec::new();
    Generator::new(WorkloadConfig::default()).write_ndjson(EVENTS, &mut body);
    body
}

fn decode_ndjson(c: &mut Criterion) {
    let body = batch();
    let limits = Limits::default();
    let now_us = WorkloadConfig::default().start_us;
    let mut group = c.benchmark_group("decode_ndjson");
    // One iteration takes 0.1 to 0.3 s: flat sampling keeps the run near the measurement time.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(EVENTS as u64));

    group.bench_with_input(
        BenchmarkId::new("loupe_decode_validate", EVENTS),
        &body,
        |b, body| {
            // What ingest does: each event validated as soon as it is parsed, kept if valid.
            b.iter(|| {
                let mut valid = Vec::with_capacity(EVENTS);
                for_each_event(body, BodyFormat::Ndjson, &limits, |r| {
                    if let Ok(v) = r.and_then(|e| e.validate(&limits, now_us)) {
                        valid.push(v);
                    }
                })
                .expect("body");
                assert_eq!(valid.len(), EVENTS);
                black_box(valid)
            });
        },
    );

    group.bench_with_input(
        BenchmarkId::new("serde_json_value", EVENTS),
        &body,
        |b, body| {
            // Parsed and kept, as loupe's path keeps its valid events.
            b.iter(|| {
                let mut values = Vec::with_capacity(EVENTS);
                for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let value: serde_json::Value = serde_json::from_slice(line).expect("json");
                    if value.is_object() {
                        values.push(value);
                    }
                }
                assert_eq!(values.len(), EVENTS);
                black_box(values)
            });
        },
    );

    group.bench_with_input(
        BenchmarkId::new("serde_json_value_dropped", EVENTS),
        &body,
        |b, body| {
            // Parsed and dropped at once: the parse alone, without holding events in memory.
            b.iter(|| {
                let mut objects = 0usize;
                for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let value: serde_json::Value = serde_json::from_slice(line).expect("json");
                    objects += usize::from(value.is_object());
                    black_box(value);
                }
                assert_eq!(objects, EVENTS);
                objects
            });
        },
    );
    group.finish();
}

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(EVENTS as u64));
    let mut generator = Generator::new(WorkloadConfig::default());
    let mut out = Vec::with_capacity(EVENTS * 1_800);
    group.bench_function(BenchmarkId::new("write_ndjson", EVENTS), |b| {
        b.iter(|| {
            out.clear();
            generator.write_ndjson(EVENTS, &mut out);
            black_box(out.len())
        });
    });
    group.finish();
}

criterion_group!(benches, decode_ndjson, generate);
criterion_main!(benches);
