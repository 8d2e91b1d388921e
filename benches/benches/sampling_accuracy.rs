//! How true are the numbers after sampling? A stream with a known truth goes through each
//! sampler; the weighted estimates from the kept events are compared with the truth.
//!
//! ```text
//! cargo bench -p loupe-bench --bench sampling_accuracy
//! EVENTS=2000000 SEED=7 cargo bench -p loupe-bench --bench sampling_accuracy
//! DETAIL=1 cargo bench -p loupe-bench --bench sampling_accuracy   # and a row per key
//! ```
//!
//! The stream (seeded, deterministic): `EVENTS` events (default 1,000,000) over 20 minutes.
//! - **Keys** are `http.route` x `http.status_code`, the sampling key of every keyed sampler.
//!   Routes are Zipf-distributed (400 routes, exponent 1.1: the head route has ~20% of the
//!   traffic, the tail routes a few hundred events); statuses are 200 (~97%), 404 and 429.
//! - **Rare error keys**: three routes (ranks 4, 12 and 58) also fail with 500 (`error = true`)
//!   in 0.4% of their events: about 170, 50 and 10 times in a million events.
//! - **Latency** `duration_ms` is lognormal per route (median 20–200 ms, sigma 0.6); errors are
//!   slower (x3).
//! - **A burst** in minutes 8–10: one mid-ranked route (rank 41) gets ~15x its traffic.
//! - Each event has its own `trace.trace_id` (so the keep decision is the consistent hash of it).
//!
//! The error keys' true counts and the burst's multiple are printed with the stream, measured
//! from the truth, so the text above cannot drift from what ran.
//!
//! Each sampler aims at a 20x overall reduction and keeps every error by rule (`error = true`
//! keeps all, as a real configuration would). For each it reports the volume reduction, and per
//! key with at least `MIN_KEY_EVENTS` true events (2,000) the relative error of the weighted
//! COUNT, SUM(duration_ms), AVG(duration_ms) and weighted p99(duration_ms) (the smallest value
//! whose cumulative weight reaches 99% of the key's weight); the worst key and the 95th percentile
//! of keys are shown. Targets (issue 5): COUNT within 5% for every such key, error keys kept at
//! rate 1, p99 within 10%. The unweighted COUNT (kept events x goal rate) is shown beside the
//! weighted one, as the naive estimate an analyst would get without recorded weights.
//!
//! Whether the weights are *right* is told apart from how much noise sampling leaves: per key
//! the mean signed COUNT error (bias, ~0 when the weights are right) and the share of keys whose
//! error is within two standard deviations of the Horvitz-Thompson variance estimate
//! `sum over kept of w (w - 1)` (~95% when the weights are right and decisions independent;
//! Horvitz & Thompson 1952, J. Am. Stat. Assoc. 47(260)). The reduction is shown over the whole
//! stream and after the first two minutes, since a sampler keeps new keys whole until it has
//! seen an interval (a collector restores its state, so it warms up once, not at each start).
//!
//! The noise has a floor no allocation removes: a key of `n` events sampled at rate `r` by
//! independent (trace-hash) decisions keeps a binomial count, so its weighted COUNT has a
//! relative standard deviation of `sqrt((r - 1) / n)`. For 5% at two standard deviations a key
//! of 2,000 events needs `r <= 2.25` (keeping ~900 of them); for this stream's 64 such keys
//! that alone is more than the whole 20x budget (50,000 of 1,000,000). `ns/decision` here is
//! a wall-clock average over the loop; the criterion bench `sampling_decision` is the cost
//! figure.
//!
//! With `DETAIL=1` each sampler is followed by a row per key with at least 2,000 events: its
//! true count, kept events, mean weight, signed COUNT error, the Horvitz-Thompson standard
//! deviation relative to the count, `z`, and the p99 error. That shows which keys miss and
//! whether a miss is noise (`|z|` small: too few kept events) or a wrong weight (`|z|` large).
//! It shows, for instance, that the avg and EMA samplers' log-share allocation keeps a number
//! of events per key that hardly grows with the key's volume (the head key of 19% of the
//! traffic gets rates of several hundred once warm), so their COUNT error is about the same for
//! every key, where the fixed sampler's falls as `1 / sqrt(n)`.

use std::collections::HashMap;
use std::time::Instant;

use loupe_event::Event;
use loupe_sampling::DatasetSampler;
use loupe_sampling::config::SamplingConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Zipf};

const MINUTE_US: i64 = 60_000_000;
const STREAM_MINUTES: i64 = 20;
const ROUTES: usize = 400;
const MIN_KEY_EVENTS: u64 = 2_000;
/// A second, larger class of keys, to show how the error falls with a key's volume.
const BIG_KEY_EVENTS: u64 = 20_000;
const GOAL_RATE: f64 = 20.0;
/// The route that bursts, and when (minutes from the start).
const BURST_ROUTE: usize = 40;
const BURST_MINUTES: std::ops::Range<i64> = 8..10;

/// One generated event: what the sampler sees, plus the truth kept aside.
struct Generated {
    event: Event,
    at_us: i64,
    key: String,
    duration_ms: f64,
    error: bool,
}

fn stream(events: usize, seed: u64) -> Vec<Generated> {
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(ROUTES as f64, 1.1).expect("zipf");
    let medians: Vec<f64> = (0..ROUTES)
        .map(|_| 20.0 + 180.0 * rng.random::<f64>())
        .collect();
    let error_routes = [3usize, 11, 57];
    let start_us = 1_763_856_000_000_000i64;
    let span_us = STREAM_MINUTES * MINUTE_US;
    let mut out = Vec::with_capacity(events + events / 10);
    let mut i = 0usize;
    while out.len() < events {
        let at_us = start_us + (i as i64 * span_us) / events as i64;
        i += 1;
        let minute = (at_us - start_us) / MINUTE_US;
        let mut routes = vec![zipf.sample(&mut rng) as usize - 1];
        if BURST_MINUTES.contains(&minute) && rng.random::<f64>() < 0.05 {
            // The burst: extra events of one route, on top of the normal traffic.
            routes.push(BURST_ROUTE);
        }
        for route in routes {
            let error = error_routes.contains(&route) && rng.random::<f64>() < 0.004;
            let status = if error {
                500
            } else {
                match rng.random::<f64>() {
                    x if x < 0.97 => 200,
                    x if x < 0.99 => 404,
                    _ => 429,
                }
            };
            let median = medians[route] * if error { 3.0 } else { 1.0 };
            let d = LogNormal::new(median.ln(), 0.6)
                .expect("lognormal")
                .sample(&mut rng);
            let duration_ms = (d * 1000.0).round() / 1000.0;
            let route_name = format!("/api/r{route:03}");
            let key = format!("{route_name}|{status}");
            let trace: u128 = rng.random();
            let event = Event::new()
                .with("http.route", route_name)
                .with("http.status_code", i64::from(status))
                .with("error", error)
                .with("duration_ms", duration_ms)
                .with("service.name", "api")
                .with("trace.trace_id", format!("{trace:032x}"));
            out.push(Generated {
                event,
                at_us,
                key,
                duration_ms,
                error,
            });
        }
    }
    out
}

/// Per key: the truth, or the weighted estimate from kept events.
#[derive(Default, Clone)]
struct Agg {
    count: f64,
    sum: f64,
    kept: u64,
    /// (duration, weight) of every event counted.
    values: Vec<(f64, f64)>,
    min_weight: f64,
}

impl Agg {
    fn add(&mut self, d: f64, w: f64) {
        if self.kept == 0 || w < self.min_weight {
            self.min_weight = w;
        }
        self.count += w;
        self.sum += d * w;
        self.kept += 1;
        self.values.push((d, w));
    }

    /// The weighted p99: the smallest value whose cumulative weight reaches 99% of the total.
    fn p99(&mut self) -> f64 {
        self.values.sort_by(|a, b| a.0.total_cmp(&b.0));
        let goal = 0.99 * self.count;
        let mut acc = 0.0;
        for &(d, w) in &self.values {
            acc += w;
            if acc >= goal {
                return d;
            }
        }
        self.values.last().map_or(f64::NAN, |v| v.0)
    }
}

fn rel(est: f64, truth: f64) -> f64 {
    ((est - truth) / truth).abs()
}

/// The worst and the 95th-percentile value.
fn worst_p95(mut xs: Vec<f64>) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    xs.sort_by(f64::total_cmp);
    let p95 = xs[((xs.len() as f64 * 0.95).ceil() as usize).clamp(1, xs.len()) - 1];
    (*xs.last().unwrap(), p95)
}

struct Row {
    name: String,
    reduction: f64,
    count: (f64, f64),
    count_big: (f64, f64),
    big_keys: usize,
    bias: f64,
    z_share: f64,
    steady_reduction: f64,
    naive_count: (f64, f64),
    sum: (f64, f64),
    avg: (f64, f64),
    p99: (f64, f64),
    keys_over_5pct: usize,
    keys_measured: usize,
    error_min_weight: f64,
    errors_kept: String,
    ns_per_decision: f64,
    /// Per key with at least `MIN_KEY_EVENTS` events, largest first.
    detail: Vec<KeyDetail>,
}

/// One key's estimate against its truth (see `DETAIL` in the module doc).
struct KeyDetail {
    key: String,
    events: u64,
    kept: u64,
    count_error: f64,
    ht_sd: f64,
    z: f64,
    p99_error: f64,
}

fn run(name: &str, config_toml: &str, events: &[Generated], truth: &HashMap<String, Agg>) -> Row {
    let config: SamplingConfig = toml::from_str(config_toml).expect("sampling config");
    let mut sampler = DatasetSampler::new(&config).expect("valid sampling config");
    let mut est: HashMap<&str, Agg> = HashMap::new();
    let mut kept = 0u64;
    let (mut errors_seen, mut errors_kept) = (0u64, 0u64);
    let mut error_min_weight = f64::INFINITY;
    let started = Instant::now();
    let mut decisions = Vec::with_capacity(events.len());
    for g in events {
        let d = sampler.decide(&g.event, g.at_us);
        // What the collector records on a kept event that arrived unsampled.
        decisions.push(d.keep.then(|| d.weight(1.0)));
    }
    let elapsed = started.elapsed();
    // After the first two minutes (four 30 s intervals): what a running collector, whose
    // sampler state survives restarts, spends; the warm-up keeps new keys whole.
    let warm_until = events.first().map_or(0, |g| g.at_us) + 2 * MINUTE_US;
    let mut steady = (0u64, 0u64);
    for (g, d) in events.iter().zip(&decisions) {
        if g.at_us >= warm_until {
            steady.0 += 1;
            steady.1 += u64::from(d.is_some());
        }
        if g.error {
            errors_seen += 1;
        }
        if let Some(w) = *d {
            kept += 1;
            est.entry(g.key.as_str()).or_default().add(g.duration_ms, w);
            if g.error {
                errors_kept += 1;
                error_min_weight = error_min_weight.min(w);
            }
        }
    }
    let mut count = Vec::new();
    let mut count_big = Vec::new();
    let mut signed = Vec::new();
    let mut z_within_2 = 0usize;
    let mut naive = Vec::new();
    let mut sum = Vec::new();
    let mut avg = Vec::new();
    let mut p99 = Vec::new();
    let mut detail = Vec::new();
    for (key, t) in truth {
        if t.kept < MIN_KEY_EVENTS {
            continue;
        }
        let mut t = t.clone();
        let mut e = est.get(key.as_str()).cloned().unwrap_or_default();
        count.push(rel(e.count, t.count));
        if t.kept >= BIG_KEY_EVENTS {
            count_big.push(rel(e.count, t.count));
        }
        signed.push((e.count - t.count) / t.count);
        // The Horvitz-Thompson variance estimate of a weighted count: sum of w (w - 1) over the
        // kept events (each kept with probability 1/w). |z| < 2 for ~95% of keys when the
        // weights are right and the decisions independent.
        let var: f64 = e.values.iter().map(|&(_, w)| w * (w - 1.0)).sum();
        let z = if var > 0.0 {
            (e.count - t.count) / var.sqrt()
        } else if e.count == t.count {
            0.0
        } else {
            f64::INFINITY
        };
        z_within_2 += usize::from(z.abs() < 2.0);
        naive.push(rel(e.kept as f64 * GOAL_RATE, t.count));
        sum.push(rel(e.sum, t.sum));
        avg.push(rel(e.sum / e.count, t.sum / t.count));
        let (e99, t99) = (e.p99(), t.p99());
        p99.push(rel(e99, t99));
        detail.push(KeyDetail {
            key: key.clone(),
            events: t.kept,
            kept: e.kept,
            count_error: (e.count - t.count) / t.count,
            ht_sd: var.sqrt() / t.count,
            z,
            p99_error: (e99 - t99) / t99,
        });
    }
    detail.sort_by(|a, b| b.events.cmp(&a.events).then(a.key.cmp(&b.key)));
    let keys_over_5pct = count.iter().filter(|&&x| x > 0.05).count();
    let bias = signed.iter().sum::<f64>() / signed.len().max(1) as f64;
    let z_share = z_within_2 as f64 / count.len().max(1) as f64;
    let big_keys = count_big.len();
    Row {
        name: name.to_owned(),
        reduction: events.len() as f64 / kept.max(1) as f64,
        keys_measured: count.len(),
        keys_over_5pct,
        count: worst_p95(count),
        count_big: worst_p95(count_big),
        big_keys,
        bias,
        z_share,
        steady_reduction: steady.0 as f64 / steady.1.max(1) as f64,
        naive_count: worst_p95(naive),
        sum: worst_p95(sum),
        avg: worst_p95(avg),
        p99: worst_p95(p99),
        error_min_weight,
        errors_kept: format!("{errors_kept}/{errors_seen}"),
        ns_per_decision: elapsed.as_nanos() as f64 / events.len() as f64,
        detail,
    }
}

fn print_detail(r: &Row) {
    println!();
    println!("{}, per key:", r.name);
    println!();
    println!("| key | events | kept | mean weight | COUNT error | HT sd | z | p99 error |");
    println!("|---|---|---|---|---|---|---|---|");
    for k in &r.detail {
        println!(
            "| {} | {} | {} | {:.1} | {:+.1}% | {:.1}% | {:+.2} | {:+.1}% |",
            k.key.replace('|', "\\|"),
            k.events,
            k.kept,
            k.events as f64 / k.kept.max(1) as f64,
            k.count_error * 100.0,
            k.ht_sd * 100.0,
            k.z,
            k.p99_error * 100.0
        );
    }
}

fn pct(x: (f64, f64)) -> String {
    format!("{:.1}% / {:.1}%", x.0 * 100.0, x.1 * 100.0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42);
    let detail = std::env::var_os("DETAIL").is_some_and(|v| !v.is_empty() && v != "0");
    let started = Instant::now();
    let stream = stream(events, seed);
    let mut truth: HashMap<String, Agg> = HashMap::new();
    for g in &stream {
        truth
            .entry(g.key.clone())
            .or_default()
            .add(g.duration_ms, 1.0);
    }
    let big = truth.values().filter(|a| a.kept >= MIN_KEY_EVENTS).count();
    println!(
        "stream: {} events, {} keys ({} with >= {MIN_KEY_EVENTS} events), seed {seed}, generated in {:.1} s",
        stream.len(),
        truth.len(),
        big,
        started.elapsed().as_secs_f64()
    );
    let mut error_keys: Vec<(&str, u64)> = truth
        .iter()
        .filter(|(k, _)| k.ends_with("|500"))
        .map(|(k, a)| (k.as_str(), a.kept))
        .collect();
    error_keys.sort();
    let burst = burst_multiple(&stream);
    println!("error keys (true events): {error_keys:?}; burst: {burst:.1}x its usual rate");

    let keys = r#"key_fields = ["http.route", "http.status_code"]"#;
    let errors = "[[rules]]\nname = \"errors\"\nwhen = \"error = true\"\naction = \"keep\"\n";
    let configs = [
        (
            "fixed 1/20",
            format!("sampler = \"fixed\"\ngoal_rate = {GOAL_RATE}\n{errors}"),
        ),
        (
            "avg (goal 20, 30 s)",
            format!(
                "{keys}\nsampler = \"avg\"\ngoal_rate = {GOAL_RATE}\ninterval_ms = 30000\n{errors}"
            ),
        ),
        (
            "ema (goal 20, 30 s)",
            format!(
                "{keys}\nsampler = \"ema\"\ngoal_rate = {GOAL_RATE}\ninterval_ms = 30000\n{errors}"
            ),
        ),
        (
            "throughput (goal: 1/20 of the mean rate)",
            format!(
                "{keys}\nsampler = \"throughput\"\ngoal_events_per_second = {}\ninterval_ms = 30000\n{errors}",
                stream.len() as f64 / (STREAM_MINUTES as f64 * 60.0) / GOAL_RATE
            ),
        ),
    ];
    println!();
    println!(
        "| sampler | reduction (all / after warm-up) | COUNT error, worst / p95 of keys >= 2k | keys over 5% | COUNT error, keys >= 20k | bias (mean signed COUNT error) | keys with abs(z) < 2 | naive COUNT (kept x 20) | SUM | AVG | p99 | errors kept (min weight) | ns/decision (unoptimised if not --release) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for (name, config) in &configs {
        let r = run(name, config, &stream, &truth);
        println!(
            "| {} | {:.1}x / {:.1}x | {} | {} of {} | {} ({} keys) | {:+.2}% | {:.0}% | {} | {} | {} | {} | {} ({}) | {:.0} |",
            r.name,
            r.reduction,
            r.steady_reduction,
            pct(r.count),
            r.keys_over_5pct,
            r.keys_measured,
            pct(r.count_big),
            r.big_keys,
            r.bias * 100.0,
            r.z_share * 100.0,
            pct(r.naive_count),
            pct(r.sum),
            pct(r.avg),
            pct(r.p99),
            r.errors_kept,
            r.error_min_weight,
            r.ns_per_decision
        );
        rows.push(r);
    }
    if detail {
        rows.iter().for_each(print_detail);
    }
}

/// The burst route's events per minute during the burst over its rate in the other minutes.
fn burst_multiple(stream: &[Generated]) -> f64 {
    let start = stream.first().map_or(0, |g| g.at_us);
    let route = format!("/api/r{BURST_ROUTE:03}|");
    let (mut during, mut outside) = (0u64, 0u64);
    for g in stream.iter().filter(|g| g.key.starts_with(&route)) {
        if BURST_MINUTES.contains(&((g.at_us - start) / MINUTE_US)) {
            during += 1;
        } else {
            outside += 1;
        }
    }
    let burst_minutes = (BURST_MINUTES.end - BURST_MINUTES.start) as f64;
    let other_minutes = STREAM_MINUTES as f64 - burst_minutes;
    (during as f64 / burst_minutes) / (outside.max(1) as f64 / other_minutes)
}
