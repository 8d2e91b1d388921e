//! Decoding and generating the standard wide event.
//!
//! `decode_ndjson` reads one fixed batch of 10,000 standard events (about 16 MB of NDJSON) two
//! ways in the same run: loupe's own path (`decode_body`, then `validate` of each event), and
//! as the in-process baseline, `serde_json::from_slice::<serde_json::Value>` of each line.
//! `generate` measures writing 10,000 events as NDJSON.
//!
//! Run with `cargo bench -p loupe-bench --bench event_codec`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use loupe_bench::{Generator, WorkloadConfig};
use loupe_event::{BodyFormat, Limits, decode_body};

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
            b.iter(|| {
                let events = decode_body(body, BodyFormat::Ndjson, &limits).expect("body");
                let mut valid = 0usize;
                for event in events {
                    let event = event.expect("event decodes");
                    valid += usize::from(event.validate(&limits, now_us).is_ok());
                }
                assert_eq!(valid, EVENTS);
                black_box(valid)
            });
        },
    );

    group.bench_with_input(
        BenchmarkId::new("serde_json_value", EVENTS),
        &body,
        |b, body| {
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
