//! Behaviour of the samplers together: goals met, rare keys kept, bursts caught, traces whole,
//! state restored. Streams are generated with a fixed seed, so every run sees the same data.

use loupe_event::{Event, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::avg::AvgRate;
use crate::ema::EmaRate;
use crate::key::{KeySpec, OVERFLOW_KEY};
use crate::rules::{Action, Rule, Rules};
use crate::sampler::{Sampler, SamplerKind};
use crate::throughput::Throughput;
use crate::{DatasetSampler, SamplingConfig, SamplingState};

const T0: i64 = 1_700_000_000_000_000;
const SEC: i64 = 1_000_000;

/// Zipf-distributed key indices: key `k` (0-based) has weight `1 / (k + 1)^s`.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

fn route_events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|k| Event::new().with("route", format!("/r{k}")))
        .collect()
}

fn avg(goal_rate: f64, interval_ms: u64, max_keys: usize) -> SamplerKind {
    SamplerKind::AvgRate(AvgRate {
        goal_rate,
        interval_ms,
        max_keys,
    })
}

fn ema(goal_rate: f64, interval_ms: u64, burst_multiple: f64) -> SamplerKind {
    SamplerKind::EmaRate(EmaRate {
        goal_rate,
        interval_ms,
        weight: 0.5,
        burst_multiple,
        burst_detection_delay_intervals: 3,
        max_keys: 100_000,
    })
}

fn keyed(kind: SamplerKind) -> DatasetSampler {
    DatasetSampler::from_sampler(Sampler::new(kind, KeySpec::new(["route"])))
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    seen: u64,
    kept: u64,
    /// Σ rate over kept events: the weighted count estimate of `seen`.
    weight: f64,
    /// Σ 1 / rate over seen events: the kept count to expect.
    expected: f64,
    /// Σ (rate - 1) over seen events: the variance of `weight`.
    variance: f64,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.seen += o.seen;
        self.kept += o.kept;
        self.weight += o.weight;
        self.expected += o.expected;
        self.variance += o.variance;
    }

    /// The weighted count is within 4 standard deviations of the true count.
    fn assert_unbiased(&self) {
        let sd = self.variance.sqrt();
        let err = self.weight - self.seen as f64;
        assert!(
            err.abs() < 4.0 * sd.max(1.0),
            "weighted {} vs seen {}, sd {sd:.0}",
            self.weight,
            self.seen
        );
    }
}

/// Feeds `events` evenly spread over `[start, start + len)`.
fn feed(s: &mut DatasetSampler, events: &[&Event], start: i64, len: i64) -> Tally {
    let mut t = Tally::default();
    let n = events.len().max(1) as i64;
    for (i, e) in events.iter().enumerate() {
        let d = s.decide(e, start + i as i64 * len / n);
        t.seen += 1;
        if d.rate.is_finite() {
            t.expected += 1.0 / d.rate;
            t.variance += d.rate - 1.0;
        }
        if d.keep {
            t.kept += 1;
            t.weight += d.rate;
        }
    }
    t
}

fn zipf_interval<'a>(pool: &'a [Event], zipf: &Zipf, rng: &mut StdRng, n: usize) -> Vec<&'a Event> {
    (0..n).map(|_| &pool[zipf.sample(rng)]).collect()
}

#[test]
fn rare_keys_are_kept_at_rate_one() {
    let mut s = keyed(avg(20.0, 1000, 100));
    let hot = Event::new().with("route", "/hot");
    let rare = Event::new().with("route", "/rare");
    let mut interval: Vec<&Event> = vec![&hot; 10_000];
    interval.insert(5_000, &rare);
    for i in 0..4 {
        feed(&mut s, &interval, T0 + i * SEC, SEC);
    }
    let d = s.decide(&rare, T0 + 4 * SEC);
    assert!(d.keep);
    assert_eq!(d.rate, 1.0);
    assert_eq!(d.key, Some("/rare"));
    let hot_rate = s.default_sampler().rate_of("/hot").unwrap();
    // Nearly the whole budget (10001 / 20 - 1) goes to the hot key.
    assert!(
        (hot_rate - 10_000.0 / (10_001.0 / 20.0 - 1.0)).abs() < 1e-6,
        "{hot_rate}"
    );
}

#[test]
fn avg_rates_spend_exactly_the_budget() {
    // Counts from 20,000 down to 1: after the interval, Σ count/rate is the budget exactly
    // and no rate is below 1.
    let mut s = keyed(avg(10.0, 1000, 1000));
    let pool = route_events(200);
    let mut events = Vec::new();
    for (k, e) in pool.iter().enumerate() {
        for _ in 0..(20_000 / (k + 1) / (k + 1)).max(1) {
            events.push(e);
        }
    }
    let total = events.len() as f64;
    feed(&mut s, &events, T0, SEC);
    s.advance(T0 + SEC);
    let sampler = s.default_sampler();
    let mut kept = 0.0;
    for k in sampler.key_rates() {
        assert!(k.rate >= 1.0, "{k:?}");
        kept += k.basis / k.rate;
    }
    assert!(
        (kept - total / 10.0).abs() < 1e-6 * total,
        "kept {kept}, budget {}",
        total / 10.0
    );
    // Keys seen once are kept whole; the head key is sampled hardest.
    assert_eq!(sampler.rate_of("/r199"), Some(1.0));
    let head = sampler.rate_of("/r0").unwrap();
    assert!(sampler.key_rates().all(|k| k.rate <= head));
}

/// Overall reduction over intervals 2.., for a 10,000-key Zipf stream.
fn zipf_reduction(kind: SamplerKind, goal: f64) {
    let mut rng = StdRng::seed_from_u64(5);
    let pool = route_events(10_000);
    let zipf = Zipf::new(pool.len(), 1.0);
    let mut s = keyed(kind);
    let per_interval = 400_000;
    let mut total = Tally::default();
    for i in 0..7 {
        let events = zipf_interval(&pool, &zipf, &mut rng, per_interval);
        let t = feed(&mut s, &events, T0 + i * SEC, SEC);
        // Interval 0 is warm-up; the correction settles over the next ones.
        if i >= 3 {
            total.add(t);
        }
    }
    for (what, kept) in [("expected", total.expected), ("kept", total.kept as f64)] {
        let achieved = total.seen as f64 / kept;
        assert!(
            (achieved / goal - 1.0).abs() < 0.03,
            "{what}: 1 in {achieved:.2}, goal 1 in {goal}"
        );
    }
    // The weights account for what was dropped.
    total.assert_unbiased();
}

#[test]
fn avg_rate_reaches_goal_with_10k_zipf_keys() {
    zipf_reduction(avg(20.0, 1000, 20_000), 20.0);
}

#[test]
fn ema_rate_reaches_goal_with_10k_zipf_keys() {
    zipf_reduction(ema(20.0, 1000, 1e9), 20.0);
}

#[test]
fn fractional_rates_are_kept_as_fractions() {
    let mut s = DatasetSampler::from_sampler(Sampler::fixed(2.5));
    let e = Event::new();
    let t = feed(&mut s, &vec![&e; 100_000], T0, SEC);
    assert_eq!(s.decide(&e, T0).rate, 2.5);
    let expected = 100_000.0 / 2.5;
    assert!(
        (t.kept as f64 - expected).abs() < 5.0 * (expected * 0.6).sqrt(),
        "{t:?}"
    );

    // Three keys of 30 / 7 / 3 events at goal 2: budget 20 is shared 12.03 / 4.97 / 3
    // and the rates are fractional.
    let mut s = keyed(avg(2.0, 1000, 10));
    let (a, b, c) = (
        Event::new().with("route", "a"),
        Event::new().with("route", "b"),
        Event::new().with("route", "c"),
    );
    let mut events = vec![&a; 30];
    events.extend(vec![&b; 7]);
    events.extend(vec![&c; 3]);
    feed(&mut s, &events, T0, SEC);
    s.advance(T0 + SEC);
    let ra = s.default_sampler().rate_of("a").unwrap();
    let rb = s.default_sampler().rate_of("b").unwrap();
    assert_eq!(s.default_sampler().rate_of("c"), Some(1.0));
    assert!(ra.fract() != 0.0 && rb.fract() != 0.0, "{ra} {rb}");
    assert!((30.0 / ra + 7.0 / rb + 3.0 - 20.0).abs() < 1e-9);
}

#[test]
fn ema_follows_a_traffic_change() {
    let mut s = keyed(ema(10.0, 1000, 1e9));
    let (a, b) = (
        Event::new().with("route", "a"),
        Event::new().with("route", "b"),
    );
    let interval = |na: usize, nb: usize| {
        let mut v = vec![&a; na];
        v.extend(vec![&b; nb]);
        v
    };
    for i in 0..6 {
        feed(&mut s, &interval(5_000, 20), T0 + i * SEC, SEC);
    }
    s.advance(T0 + 6 * SEC);
    let rate = |s: &DatasetSampler, k| s.default_sampler().rate_of(k).unwrap();
    assert!(rate(&s, "a") > 5.0 && rate(&s, "b") < 2.0);
    let mut b_rates = Vec::new();
    for i in 6..14 {
        feed(&mut s, &interval(20, 5_000), T0 + i * SEC, SEC);
        s.advance(T0 + (i + 1) * SEC);
        b_rates.push(rate(&s, "b"));
    }
    // One interval after the change b is already sampled hard, and the roles end reversed.
    assert!(b_rates[0] > 5.0, "{b_rates:?}");
    assert!(rate(&s, "b") > 5.0 && rate(&s, "a") < 2.0, "{b_rates:?}");
}

#[test]
fn ema_burst_recomputes_before_the_interval_ends() {
    let steady_pool = route_events(10);
    let flood = Event::new().with("route", "/flood");
    let run = |burst_multiple: f64| {
        let mut s = keyed(ema(10.0, 10_000, burst_multiple));
        let steady: Vec<&Event> = (0..1000).map(|i| &steady_pool[i % 10]).collect();
        for i in 0..5 {
            feed(&mut s, &steady, T0 + i * 10 * SEC, 10 * SEC);
        }
        s.advance(T0 + 50 * SEC);
        let before = s.default_sampler().intervals_completed();
        // 20,000 events of a new key within the first second of an interval.
        let burst = feed(&mut s, &vec![&flood; 20_000], T0 + 50 * SEC, SEC);
        let after = s.default_sampler().intervals_completed();
        let flood_rate = s.decide(&flood, T0 + 51 * SEC).rate;
        (before, after, burst, flood_rate)
    };
    let (before, after, burst, flood_rate) = run(2.0);
    assert!(after > before, "a burst ends the interval early");
    assert!(flood_rate > 5.0, "the flood is sampled at {flood_rate}");
    assert!(burst.kept < 10_000, "kept {} of the flood", burst.kept);
    // Without burst detection the flood stays new, at rate 1, until the interval ends.
    let (before, after, burst, flood_rate) = run(1e12);
    assert_eq!(after, before);
    assert_eq!((flood_rate, burst.kept), (1.0, 20_000));
}

#[test]
fn throughput_sampler_reaches_goal_events_per_second() {
    let mut rng = StdRng::seed_from_u64(7);
    let pool = route_events(200);
    let zipf = Zipf::new(pool.len(), 1.2);
    let mut s = keyed(SamplerKind::Throughput(Throughput {
        goal_events_per_second: 100.0,
        interval_ms: 10_000,
        max_keys: 1000,
    }));
    let mut kept = 0;
    for i in 0..6 {
        // 1,000 events/s, ten times the goal.
        let events = zipf_interval(&pool, &zipf, &mut rng, 10_000);
        let t = feed(&mut s, &events, T0 + i * 10 * SEC, 10 * SEC);
        if i > 0 {
            kept += t.kept;
        }
    }
    let per_second = kept as f64 / 50.0;
    assert!(
        (per_second / 100.0 - 1.0).abs() < 0.05,
        "{per_second} events/s"
    );
    // Keys below the fair share are kept whole; the head key is sampled hard.
    let sampler = s.default_sampler();
    let rates: Vec<f64> = sampler.key_rates().map(|k| k.rate).collect();
    assert!(rates.contains(&1.0), "{rates:?}");
    assert!(sampler.rate_of("/r0").unwrap() > 10.0, "{rates:?}");
}

#[test]
fn traffic_beyond_max_keys_is_counted_and_the_goal_holds() {
    let mut rng = StdRng::seed_from_u64(9);
    let pool = route_events(5_000);
    let zipf = Zipf::new(pool.len(), 0.8);
    let mut s = keyed(avg(10.0, 1000, 100));
    let mut total = Tally::default();
    for i in 0..4 {
        let events = zipf_interval(&pool, &zipf, &mut rng, 200_000);
        let t = feed(&mut s, &events, T0 + i * SEC, SEC);
        if i > 0 {
            total.seen += t.seen;
            total.kept += t.kept;
        }
        if i == 3 {
            let sampler = s.default_sampler();
            let overflow = sampler.key_rates().find(|k| k.key == OVERFLOW_KEY).unwrap();
            let counted: u64 = sampler.key_rates().map(|k| k.count).sum();
            assert_eq!(counted, 200_000, "every event is counted");
            assert!(overflow.count > 100_000, "{overflow:?}");
            assert!(overflow.rate > 1.0, "{overflow:?}");
            assert_eq!(sampler.key_rates().count(), 101);
        }
    }
    let achieved = total.seen as f64 / total.kept as f64;
    assert!((achieved / 10.0 - 1.0).abs() < 0.05, "1 in {achieved:.2}");
    // An unseen key in a full table gets the overflow key's rate.
    let d = s.decide(&Event::new().with("route", "/never-seen"), T0 + 4 * SEC);
    assert_eq!(d.key, Some(OVERFLOW_KEY));
}

fn span(trace: &str, route: &str) -> Event {
    Event::new()
        .with("trace.trace_id", trace)
        .with("route", route)
}

#[test]
fn spans_of_a_trace_share_the_decision() {
    let mut s = DatasetSampler::from_sampler(Sampler::fixed(7.0));
    let mut kept_traces = 0;
    for t in 0..2_000 {
        let trace = format!("{t:032x}");
        let decisions: Vec<bool> = (0..5)
            .map(|i| s.decide(&span(&trace, &format!("/s{i}")), T0).keep)
            .collect();
        assert!(decisions.iter().all(|&d| d == decisions[0]), "{trace}");
        kept_traces += usize::from(decisions[0]);
    }
    assert!(
        (kept_traces as f64 - 2000.0 / 7.0).abs() < 60.0,
        "{kept_traces}"
    );
}

#[test]
fn two_samplers_fed_the_same_traffic_decide_alike() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut a = keyed(ema(10.0, 1000, 2.0));
    let mut b = keyed(ema(10.0, 1000, 2.0));
    let mut at_equal_rates = std::collections::HashMap::new();
    for i in 0..50_000i64 {
        let route = format!("/r{}", rng.random_range(0..20));
        // A fifth of the events have no trace id: the counter decides, alike in both.
        let e = if i % 5 == 0 {
            Event::new().with("route", route)
        } else {
            span(&format!("t{}", rng.random_range(0..5_000)), &route)
        };
        let now = T0 + i * 200;
        let da = a.decide(&e, now);
        let (keep, rate) = (da.keep, da.rate);
        let db = b.decide(&e, now);
        assert_eq!((keep, rate), (db.keep, db.rate), "event {i}");
        // Spans of one trace at the same rate get the same decision.
        if let Some(Value::Str(t)) = e.get("trace.trace_id") {
            let prev = at_equal_rates.insert((t.clone(), rate.to_bits()), keep);
            assert!(prev.is_none_or(|p| p == keep), "trace {t} at rate {rate}");
        }
    }
}

#[test]
fn rules_decide_first_match_wins() {
    let rules = Rules(vec![
        Rule::parse("health", &["http.route = '/health'"], Action::Drop).unwrap(),
        Rule::parse("errors", &["error"], Action::Keep).unwrap(),
        Rule::parse("slow", &["duration_ms > 1000"], Action::Rate(4.0)).unwrap(),
        Rule::parse(
            "5xx",
            &["http.status_code >= 500"],
            Action::Sampler("errors".into()),
        )
        .unwrap(),
    ]);
    let named = vec![(
        "errors".to_owned(),
        Sampler::new(avg(5.0, 1000, 10), KeySpec::new(["http.status_code"])),
    )];
    let mut s = DatasetSampler::with_rules(Sampler::fixed(100.0), named, rules).unwrap();
    let d = s.decide(
        &Event::new()
            .with("http.route", "/health")
            .with("error", true),
        T0,
    );
    assert_eq!((d.keep, d.rule), (false, Some("health")));
    let d = s.decide(
        &Event::new().with("error", true).with("duration_ms", 5000.0),
        T0,
    );
    assert_eq!(
        (d.keep, d.rate, d.rule, d.reason()),
        (true, 1.0, Some("errors"), "errors")
    );
    let d = s.decide(&Event::new().with("duration_ms", 5000.0), T0);
    assert_eq!((d.rate, d.rule, d.key), (4.0, Some("slow"), None));
    let d = s.decide(&Event::new().with("http.status_code", 503), T0);
    assert_eq!(
        (d.rule, d.sampler, d.key),
        (Some("5xx"), Some("errors"), Some("503"))
    );
    let d = s.decide(&Event::new().with("http.status_code", 200), T0);
    assert_eq!(
        (d.rate, d.rule, d.sampler, d.reason()),
        (100.0, None, Some("default"), "default")
    );

    // A rule handing over to an unknown sampler is refused.
    let rules = Rules(vec![
        Rule::parse("x", &["a"], Action::Sampler("nope".into())).unwrap(),
    ]);
    let err = DatasetSampler::with_rules(Sampler::fixed(1.0), vec![], rules).unwrap_err();
    assert_eq!(err.problems[0].path, "sampling.rules[0].sampler");
}

#[test]
fn recorded_weight_multiplies_the_upstream_weight() {
    let mut s = DatasetSampler::from_sampler(Sampler::fixed(5.0));
    let mut event = Event::new()
        .with("trace.trace_id", "t")
        .with("sample_rate", 4);
    // Find a kept trace id.
    let mut i = 0;
    while !s.decide(&event, T0).keep {
        i += 1;
        event.insert("trace.trace_id", format!("t{i}"));
    }
    let d = s.decide(&event, T0);
    d.annotate(&mut event);
    assert_eq!(event.get("sample_rate"), Some(&Value::Float(20.0)));
    assert_eq!(event.get("meta.sample_rule"), Some(&Value::from("default")));
    assert_eq!(event.get("meta.sample_key"), None);
    // The validated path (the collector's) records the same weight.
    let mut valid = Event::new()
        .with(
            "trace.trace_id",
            event.get("trace.trace_id").cloned().unwrap(),
        )
        .with("sample_rate", 4)
        .validate(&loupe_event::Limits::default(), T0)
        .unwrap();
    let d = s.decide_valid(&valid, T0);
    assert!(d.keep);
    d.annotate_valid(&mut valid);
    assert_eq!(valid.sample_rate(), 20.0);
    assert_eq!(
        valid.fields().get("meta.sample_rule"),
        Some(&Value::from("default"))
    );
    assert_eq!(crate::recorded_weight(2.5, 1.5), 3.75);
    assert_eq!(crate::recorded_weight(0.0, f64::NAN), 1.0);
    assert_eq!(crate::recorded_weight(3.0, f64::INFINITY), 3.0);
}

fn trained() -> (SamplingConfig, DatasetSampler) {
    let config: SamplingConfig = toml::from_str(
        r#"
        key_fields = ["route"]
        sampler = "ema"
        goal_rate = 8
        interval_ms = 1000
        max_keys = 50
        "#,
    )
    .unwrap();
    let mut s = config.build().unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let pool = route_events(80);
    let zipf = Zipf::new(pool.len(), 1.1);
    for i in 0..5 {
        let events = zipf_interval(&pool, &zipf, &mut rng, 20_000);
        feed(&mut s, &events, T0 + i * SEC, SEC);
    }
    (config, s)
}

fn rates(s: &DatasetSampler) -> Vec<(String, f64, f64, u64)> {
    s.default_sampler()
        .key_rates()
        .map(|k| (k.key.to_owned(), k.rate, k.basis, k.count))
        .collect()
}

#[test]
fn state_round_trips_through_json_with_the_same_rates() {
    let (config, s) = trained();
    let json = s.state_json();
    let mut restored = config.build().unwrap();
    let report = restored.restore_json(&json).unwrap();
    assert_eq!(report.restored, vec!["default".to_owned()]);
    assert!(
        report.skipped.is_empty() && report.recomputed.is_empty(),
        "{report:?}"
    );
    // Equal keys, counts and bases; rates equal to the last bit but one (serde_json's
    // default float parser may round the last bit).
    let (before, after) = (rates(&s), rates(&restored));
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.0, b.2, b.3), (&a.0, a.2, a.3));
        assert!((b.1 - a.1).abs() <= 4.0 * f64::EPSILON * b.1, "{b:?} {a:?}");
    }
    assert!(before.iter().any(|r| r.1 > 1.0));
    let (sb, sa) = (s.default_sampler(), restored.default_sampler());
    assert_eq!(sb.intervals_completed(), sa.intervals_completed());
    assert!((sb.budget_correction() - sa.budget_correction()).abs() <= 4.0 * f64::EPSILON);
}

#[test]
fn restore_fits_a_changed_config_and_never_panics() {
    let (_, s) = trained();
    let json = s.state_json();
    let with = |toml_text: &str| -> DatasetSampler {
        toml::from_str::<SamplingConfig>(toml_text)
            .unwrap()
            .build()
            .unwrap()
    };

    // A new goal keeps the learned averages and recomputes rates under it.
    let mut higher =
        with("key_fields = ['route']\ngoal_rate = 16\ninterval_ms = 1000\nmax_keys = 50");
    let report = higher.restore_json(&json).unwrap();
    assert_eq!(report.recomputed, vec!["default".to_owned()]);
    let old = rates(&s);
    let new = rates(&higher);
    assert_eq!(old.len(), new.len());
    assert!(
        old.iter()
            .zip(&new)
            .all(|(o, n)| o.0 == n.0 && o.2 == n.2 && n.1 >= o.1)
    );
    assert!(old.iter().zip(&new).any(|(o, n)| n.1 > o.1));

    // Fewer slots: the busiest keys stay, the rest fold into the overflow key.
    let mut small = with("key_fields = ['route']\ngoal_rate = 8\ninterval_ms = 1000\nmax_keys = 5");
    let report = small.restore_json(&json).unwrap();
    assert!(report.folded_keys > 0, "{report:?}");
    let keys: Vec<String> = rates(&small).into_iter().map(|r| r.0).collect();
    assert_eq!(keys.len(), 6);
    assert!(keys.contains(&"/r0".to_owned()) && keys.contains(&OVERFLOW_KEY.to_owned()));

    // Other key fields, or a fixed sampler: skipped with a reason, nothing changed.
    for text in ["key_fields = ['other']", "sampler = 'fixed'\nrate = 3"] {
        let mut other = with(text);
        let report = other.restore_json(&json).unwrap();
        assert!(
            report.restored.is_empty() && report.skipped.len() == 1,
            "{report:?}"
        );
    }

    // Bad snapshots are refused whole or in part, never with a panic.
    let mut target = with("key_fields = ['route']");
    assert!(target.restore_json("{").is_err());
    assert!(target.restore_json("null").is_err());
    let mut state: SamplingState = serde_json::from_str(&json).unwrap();
    state.version = 99;
    assert!(target.restore(state.clone()).is_err());
    state.version = crate::state::STATE_VERSION;
    state.samplers[0].keys[0].basis = -1.0;
    state.samplers[0].keys[1].rate = 0.5;
    state.samplers[0].keys[3].hash = state.samplers[0].keys[2].hash;
    state.samplers[0].params = serde_json::json!({"kind": "from_the_future"});
    let report = target.restore(state).unwrap();
    assert_eq!(report.dropped_keys, 3, "{report:?}");
    // Every truncation of a valid snapshot is handled.
    for cut in (0..json.len()).step_by(7) {
        if let Some(prefix) = json.get(..cut) {
            let _ = target.restore_json(prefix);
        }
    }
}

#[test]
fn config_parses_defaults_and_builds() {
    let config: SamplingConfig = toml::from_str(
        r#"
        key_fields = ["http.route", "http.status_code"]
        sampler = "ema"
        goal_rate = 20
        interval_ms = 30000
        max_keys = 1000

        [[rules]]
        name = "errors"
        when = ["error = true"]
        action = "keep"

        [[rules]]
        when = "http.route = '/health'"
        action = "drop"

        [[rules]]
        when = ["duration_ms > 1000", "http.route != '/batch'"]
        action = "rate"
        rate = 5

        [[rules]]
        name = "5xx"
        when = "http.status_code >= 500"
        action = "sampler"
        sampler = "server_errors"

        [samplers.server_errors]
        sampler = "throughput"
        goal_events_per_second = 2.5
        "#,
    )
    .unwrap();
    assert_eq!(config.validate(), vec![]);
    let s = config.build().unwrap();
    let names: Vec<&str> = s.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "errors",
            "http.route = \"/health\"",
            "duration_ms > 1000 and http.route != \"/batch\"",
            "5xx"
        ]
    );
    let named = s.sampler("server_errors").unwrap();
    assert_eq!(
        named.key_spec().fields(),
        ["http.route", "http.status_code"]
    );
    let text = s.explain();
    assert!(
        text.contains("ema, goal_rate 20 over interval_ms 30000, ema_weight 0.5"),
        "{text}"
    );
    assert!(
        text.contains("throughput, goal_events_per_second 2.5"),
        "{text}"
    );
    assert!(
        text.contains("4. \"5xx\": when http.status_code >= 500 -> sampler \"server_errors\""),
        "{text}"
    );

    // A fixed sampler takes `rate` or `goal_rate`, not both.
    let fixed = |text: &str| toml::from_str::<SamplingConfig>(text).unwrap().build();
    let s = fixed("sampler = 'fixed'\ngoal_rate = 20").unwrap();
    assert_eq!(
        s.default_sampler().kind(),
        &SamplerKind::Fixed { rate: 20.0 }
    );
    let problems = fixed("sampler = 'fixed'\ngoal_rate = 20\nrate = 3")
        .unwrap_err()
        .problems;
    assert_eq!(problems[0].path, "sampling.goal_rate");

    // Defaults: an empty section is an EMA sampler at goal 10, one key for all.
    let s = SamplingConfig::default().build().unwrap();
    match s.default_sampler().kind() {
        SamplerKind::EmaRate(p) => {
            assert_eq!(
                (p.goal_rate, p.interval_ms, p.max_keys),
                (10.0, 30_000, 500)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_reports_every_problem_with_its_path() {
    let config: SamplingConfig = toml::from_str(
        r#"
        key_fields = ["a", "a"]
        sampler = "avg"
        goal_rate = 0.5
        ema_weight = 0.3
        interval_ms = 0

        [[rules]]
        when = "error"
        action = "keep"
        rate = 3

        [[rules]]
        when = ["a = 1", "b ="]
        action = "rate"

        [[rules]]
        when = ">= 500"
        action = "sampler"
        sampler = "nope"

        [[rules]]
        name = "default"
        when = "x exists"
        action = "drop"

        [[rules]]
        when = "x  EXISTS"
        action = "keep"

        [[rules]]
        name = "error = true"
        when = "y exists"
        action = "keep"

        [samplers.fixed_one]
        sampler = "fixed"
        "#,
    )
    .unwrap();
    let problems: Vec<String> = config.validate().iter().map(ToString::to_string).collect();
    let expected = [
        "sampling.key_fields[1]: \"a\" is listed twice",
        "sampling.ema_weight: does not apply to sampler = \"avg\" (it takes goal_rate, interval_ms, max_keys)",
        "sampling.goal_rate: must be a number >= 1, got 0.5",
        "sampling.interval_ms: must be between 1 and 86400000 (one day), got 0",
        "sampling.samplers.fixed_one.rate: is required for sampler = \"fixed\"",
        "sampling.rules[0].rate: applies only to action = \"rate\"",
        "sampling.rules[1].when[1]: \"b =\": expected a value after `=` at column 4",
        "sampling.rules[1].rate: is required for action = \"rate\"",
        "sampling.rules[2].when: \">= 500\": expected a field name, found `>=` at column 1",
        "sampling.rules[2].sampler: no sampler named \"nope\" under sampling.samplers (known: [\"fixed_one\"])",
        "sampling.rules[3].name: \"default\" means \"no rule matched\" in meta.sample_rule",
        "sampling.rules[4].when: rules[3] has the same conditions, so this rule can never match",
        "sampling.rules[5].name: \"error = true\" is already the name of rules[0]; meta.sample_rule could not tell them apart",
    ];
    assert_eq!(problems, expected);
    let err = config.build().unwrap_err().to_string();
    assert!(
        err.starts_with("13 problems in the sampling config\n  sampling.key_fields[1]"),
        "{err}"
    );

    // Unknown options and values are refused by serde, naming them.
    let err = toml::from_str::<SamplingConfig>("goal_rat = 3")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `goal_rat`"), "{err}");
    let err = toml::from_str::<SamplingConfig>("sampler = 'dynamic'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant `dynamic`"), "{err}");
    let err = toml::from_str::<SamplingConfig>("[[rules]]\nwhen = 5\naction = 'keep'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("a condition string or a list"), "{err}");
}

#[test]
fn nonsense_parameters_built_by_hand_do_not_panic() {
    let kinds = [
        SamplerKind::Fixed { rate: f64::NAN },
        avg(f64::NEG_INFINITY, 0, 0),
        SamplerKind::EmaRate(EmaRate {
            goal_rate: 0.0,
            interval_ms: u64::MAX,
            weight: f64::NAN,
            burst_multiple: -1.0,
            burst_detection_delay_intervals: 0,
            max_keys: usize::MAX,
        }),
        SamplerKind::Throughput(Throughput {
            goal_events_per_second: 0.0,
            interval_ms: 0,
            max_keys: 0,
        }),
    ];
    let e = Event::new().with("route", "x");
    for kind in kinds {
        let mut s = keyed(kind);
        for now in [i64::MIN, 0, T0, T0 + 1, i64::MAX, T0] {
            for _ in 0..3 {
                let d = s.decide(&e, now);
                assert!(d.rate >= 1.0 && d.rate.is_finite(), "{d:?}");
            }
        }
        let _ = s.state_json();
    }
}
