//! Tests of the generated stream against `WORKLOAD.md`, read back the way the collector reads
//! it: through `loupe_event::decode_body` and `Event::validate`.

use std::collections::{HashMap, HashSet};

use loupe_event::time::parse_timestamp;
use loupe_event::{BodyFormat, Event, Limits, Value, decode_body};

use crate::draw::MAX_JITTER_US;
use crate::{DEFAULT_START_US, Effect, Generator, Incident, Truth, WorkloadConfig, WorkloadError};

fn config(seed: u64) -> WorkloadConfig {
    WorkloadConfig {
        seed,
        ..WorkloadConfig::default()
    }
}

fn ndjson(config: WorkloadConfig, n: usize) -> (Vec<u8>, Truth) {
    let mut g = Generator::new(config);
    let mut out = Vec::new();
    g.write_ndjson(n, &mut out);
    (out, g.truth().clone())
}

/// Decodes and validates every line, failing on any rejection. Bodies above the collector's
/// size limit are decoded 10,000 lines at a time.
fn decode(body: &[u8]) -> Vec<Event> {
    let limits = Limits::default();
    let mut events = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let cut = rest
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(9_999)
            .map_or(rest.len(), |(i, _)| i + 1);
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        let decoded = decode_body(chunk, BodyFormat::Auto, &limits).expect("body decodes");
        for r in decoded {
            let line = events.len() + 1;
            events.push(r.unwrap_or_else(|e| panic!("line {line}: {e}")));
        }
    }
    for (i, e) in events.iter().enumerate() {
        if let Err(err) = e.clone().validate(&limits, 0) {
            panic!("event {i} invalid: {err}\n{}", e.to_json());
        }
    }
    events
}

fn text<'a>(e: &'a Event, field: &str) -> &'a str {
    e.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{field} missing or not a string: {}", e.to_json()))
}

fn number(e: &Event, field: &str) -> f64 {
    e.get(field)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{field} missing or not a number"))
}

fn timestamp(e: &Event) -> i64 {
    parse_timestamp(e.get("timestamp").expect("timestamp")).expect("RFC 3339")
}

/// Whether `e` matches a cause, comparing values as strings.
fn matches(e: &Event, cause: &[(String, String)]) -> bool {
    cause
        .iter()
        .all(|(f, v)| e.get(f).is_some_and(|x| x.to_string() == *v))
}

fn share(events: &[Event], pred: impl Fn(&Event) -> bool) -> f64 {
    events.iter().filter(|e| pred(e)).count() as f64 / events.len() as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    assert!(!xs.is_empty());
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, _) = ndjson(config(7), 2_000);
    let (b, _) = ndjson(config(7), 2_000);
    let (c, _) = ndjson(config(8), 2_000);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // writing in pieces gives the same bytes as writing at once
    let mut g = Generator::new(config(7));
    let mut pieces = Vec::new();
    for n in [1, 999, 1_000] {
        g.write_ndjson(n, &mut pieces);
    }
    assert_eq!(a, pieces);
}

#[test]
fn categorical_fields_read_as_the_cause_matcher_reads_them() {
    // Causes are matched on draws (`World::value_of`) but compared as strings on events: the
    // two must agree for every categorical field, present or absent.
    use crate::dims::Dim;
    use crate::draw::Drawer;
    use crate::render::{Clock, EventSink, Rate, render};
    let w = crate::world::world();
    let mut drawer = Drawer::new(43);
    let mut clock = Clock::new();
    let mut seen = HashSet::new();
    for i in 0..3_000 {
        let d = drawer.draw(w, DEFAULT_START_US + i * 1_000);
        let mut sink = EventSink::default();
        render(w, &d, &mut clock, Rate::Int(1), &mut sink);
        for dim in Dim::ALL {
            let expected = w
                .value_of(dim, &d)
                .map(|v| w.values(dim)[usize::from(v)].to_string());
            let found = sink.event.get(dim.field()).map(Value::to_string);
            assert_eq!(found, expected, "{dim:?}");
            if found.is_some() {
                seen.insert(dim);
            }
        }
    }
    assert_eq!(seen.len(), Dim::ALL.len(), "every categorical field occurs");
}

#[test]
fn ndjson_decodes_to_the_iterators_events() {
    let (body, _) = ndjson(config(3), 3_000);
    assert!(body.ends_with(b"}\n"));
    assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), 3_000);
    let decoded = decode(&body);
    let direct: Vec<Event> = Generator::new(config(3)).take(3_000).collect();
    assert_eq!(decoded.len(), direct.len());
    for (i, (a, b)) in decoded.iter().zip(&direct).enumerate() {
        assert_eq!(a, b, "event {i}");
    }
}

#[test]
fn events_are_wide_and_the_documented_size() {
    let (body, _) = ndjson(config(11), 5_000);
    let events = decode(&body);
    let avg_fields = events.iter().map(Event::len).sum::<usize>() as f64 / events.len() as f64;
    assert!((55.0..=70.0).contains(&avg_fields), "{avg_fields} fields");
    let avg_bytes = body.len() as f64 / events.len() as f64;
    assert!(
        (1_200.0..=2_000.0).contains(&avg_bytes),
        "{avg_bytes} bytes"
    );
    let min = events.iter().map(Event::len).min().unwrap_or(0);
    let max = events.iter().map(Event::len).max().unwrap_or(0);
    assert!(min >= 50 && max <= 72, "{min}..{max} fields");
    // many distinct fields overall: the sparse ones make the schema wide
    let names: HashSet<&String> = events
        .iter()
        .flat_map(|e| e.iter().map(|(k, _)| k))
        .collect();
    assert!(names.len() >= 75, "{} distinct fields", names.len());
}

#[test]
fn every_field_of_the_table_is_there_with_its_type() {
    let events: Vec<Event> = Generator::new(config(5)).take(2_000).collect();
    let http = events
        .iter()
        .find(|e| text(e, "name") == "http.request")
        .expect("an http event");
    for field in [
        "service.name",
        "service.version",
        "trace.trace_id",
        "trace.span_id",
        "http.method",
        "http.route",
        "http.user_agent",
        "client.ip",
        "user.id",
        "user.plan",
        "customer.id",
        "region",
        "availability_zone",
        "host.name",
        "k8s.pod.name",
        "k8s.namespace",
        "container.image",
        "os.kernel",
        "runtime.version",
        "build.id",
        "db.system",
    ] {
        assert!(!text(http, field).is_empty(), "{field}");
    }
    for field in [
        "http.status_code",
        "http.request_content_length",
        "http.response_content_length",
        "db.count",
        "retry.count",
        "payload.items",
        "sample_rate",
    ] {
        assert!(matches!(http.get(field), Some(Value::Int(_))), "{field}");
    }
    for field in [
        "duration_ms",
        "db.duration_ms",
        "cache.duration_ms",
        "queue.wait_ms",
    ] {
        assert!(matches!(http.get(field), Some(Value::Float(_))), "{field}");
    }
    for field in ["cache.hit", "error"] {
        assert!(matches!(http.get(field), Some(Value::Bool(_))), "{field}");
    }
    let flags: Vec<_> = http
        .iter()
        .filter(|(k, _)| k.starts_with("feature."))
        .collect();
    assert_eq!(flags.len(), 8);
    assert!(flags.iter().all(|(_, v)| matches!(v, Value::Bool(_))));
    assert_eq!(text(http, "trace.trace_id").len(), 32);
    assert_eq!(text(http, "trace.span_id").len(), 16);
    assert!(
        text(http, "trace.trace_id")
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
    );
    for e in &events {
        assert_eq!(
            e.contains("error.type"),
            e.get("error") == Some(&Value::Bool(true))
        );
        assert_eq!(e.contains("error.message"), e.contains("error.type"));
        match e.get("trace.parent_id") {
            Some(Value::Null) => {}
            Some(Value::Str(p)) => assert_eq!(p.len(), 16),
            other => panic!("parent {other:?}"),
        }
    }
    let ids: HashSet<&str> = events.iter().map(|e| text(e, "trace.span_id")).collect();
    assert_eq!(ids.len(), events.len(), "span ids are unique");
}

#[test]
fn functional_dependencies_hold() {
    let (body, _) = ndjson(config(13), 20_000);
    let events = decode(&body);
    let mut host_zone: HashMap<&str, &str> = HashMap::new();
    let mut zone_region: HashMap<&str, &str> = HashMap::new();
    let mut host_kernel: HashMap<&str, &str> = HashMap::new();
    let mut pod_service: HashMap<&str, &str> = HashMap::new();
    let mut user_plan: HashMap<&str, &str> = HashMap::new();
    for e in &events {
        let host = text(e, "host.name");
        let zone = text(e, "availability_zone");
        let check = |map: &mut HashMap<_, _>, k, v| {
            let old = *map.entry(k).or_insert(v);
            assert_eq!(old, v, "{k} maps to both {old} and {v}");
        };
        check(&mut host_zone, host, zone);
        check(&mut zone_region, zone, text(e, "region"));
        check(&mut host_kernel, host, text(e, "os.kernel"));
        check(
            &mut pod_service,
            text(e, "k8s.pod.name"),
            text(e, "service.name"),
        );
        check(&mut user_plan, text(e, "user.id"), text(e, "user.plan"));
        assert!(zone.starts_with(text(e, "region")));
    }
    assert!(host_zone.len() > 150, "{} hosts seen", host_zone.len());
    assert_eq!(zone_region.len(), 18);
    let regions: HashSet<&str> = zone_region.values().copied().collect();
    assert_eq!(regions.len(), 6);
}

#[test]
fn distributions_are_roughly_right() {
    let (body, _) = ndjson(config(17), 20_000);
    let events = decode(&body);
    let http: Vec<&Event> = events
        .iter()
        .filter(|e| text(e, "name") == "http.request")
        .collect();
    let http_share = http.len() as f64 / events.len() as f64;
    assert!((0.88..0.92).contains(&http_share), "http {http_share}");
    let get = http
        .iter()
        .filter(|e| text(e, "http.method") == "GET")
        .count() as f64;
    let get_share = get / http.len() as f64;
    assert!((0.65..0.75).contains(&get_share), "GET {get_share}");

    let errors = share(&events, |e| e.get("error") == Some(&Value::Bool(true)));
    assert!((0.002..0.010).contains(&errors), "errors {errors}");
    for e in &http {
        let status = number(e, "http.status_code");
        let failed = e.get("error") == Some(&Value::Bool(true));
        assert_eq!(failed, status >= 500.0, "status {status}");
    }
    let status_200 = http
        .iter()
        .filter(|e| number(e, "http.status_code") == 200.0)
        .count() as f64
        / http.len() as f64;
    assert!((0.8..0.9).contains(&status_200), "200s {status_200}");

    let roots = share(&events, |e| e.get("trace.parent_id") == Some(&Value::Null));
    assert!((0.57..0.63).contains(&roots), "roots {roots}");
    let hits = share(&events, |e| e.get("cache.hit") == Some(&Value::Bool(true)));
    assert!((0.77..0.83).contains(&hits), "cache hits {hits}");
    let payments = share(&events, |e| e.contains("payment.amount_cents"));
    assert!((0.08..0.12).contains(&payments), "payments {payments}");
    let none = share(&events, |e| text(e, "db.system") == "none");
    assert!((0.17..0.23).contains(&none), "db none {none}");
    assert_eq!(
        share(&events, |e| e.contains("db.statement_fingerprint")),
        1.0 - none
    );

    let d = median(events.iter().map(|e| number(e, "duration_ms")).collect());
    assert!((40.0..50.0).contains(&d), "median duration {d}");
    // sigma ~0.9: the 90th percentile is about e^(0.9 * 1.28) = 3.2 times the median
    let mut durations: Vec<f64> = events.iter().map(|e| number(e, "duration_ms")).collect();
    durations.sort_by(f64::total_cmp);
    let p90 = durations[durations.len() * 9 / 10];
    assert!((2.7..3.7).contains(&(p90 / d)), "p90/median {}", p90 / d);

    // Zipf and Pareto heads: the top service, route, customer and user stand out.
    let top = |field: &str| {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for e in &events {
            if let Some(Value::Str(v)) = e.get(field) {
                *counts.entry(v).or_default() += 1;
            }
        }
        let mut counts: Vec<usize> = counts.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        (counts.len(), counts[0] as f64 / events.len() as f64)
    };
    let (services, head) = top("service.name");
    assert_eq!(services, 12);
    assert!((0.27..0.37).contains(&head), "top service {head}");
    let (routes, head) = top("http.route");
    assert!(routes >= 75, "{routes} routes");
    assert!((0.15..0.25).contains(&head), "top route {head}");
    let (users, head) = top("user.id");
    assert!(users > 5_000, "{users} users");
    assert!((0.002..0.008).contains(&head), "top user {head}");
    let (customers, head) = top("customer.id");
    assert!(customers > 1_500, "{customers} customers");
    assert!((0.08..0.14).contains(&head), "top customer {head}");
    let (agents, _) = top("http.user_agent");
    assert!(agents > 150, "{agents} user agents");
    let (ips, _) = top("client.ip");
    assert!(ips > 2_000, "{ips} addresses");

    // The flags are on for 5% to 50% of events.
    for (flag, _) in crate::dims::FEATURES {
        let on = share(&events, |e| e.get(flag) == Some(&Value::Bool(true)));
        assert!((0.02..0.56).contains(&on), "{flag} {on}");
    }
    // Sparse fields: each on fewer than 5% of events, and there are several.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        for (k, _) in e.iter() {
            *counts.entry(k.as_str()).or_default() += 1;
        }
    }
    let sparse: Vec<&str> = counts
        .iter()
        .filter(|&(k, &n)| (n as f64) < 0.05 * events.len() as f64 && !k.starts_with("error."))
        .map(|(k, _)| *k)
        .collect();
    assert!(sparse.len() >= 5, "sparse fields: {sparse:?}");
}

#[test]
fn timestamps_follow_the_slots_with_jitter() {
    let config = WorkloadConfig {
        events_per_second: 500.0,
        ..config(19)
    };
    let events: Vec<Event> = Generator::new(config.clone()).take(10_000).collect();
    let mut out_of_order = 0;
    let mut last = i64::MIN;
    let mut jitter_sum = 0;
    for (i, e) in events.iter().enumerate() {
        let slot = config.start_us + i as i64 * 2_000;
        let ts = timestamp(e);
        assert!((slot - MAX_JITTER_US..=slot).contains(&ts), "event {i}");
        jitter_sum += slot - ts;
        if ts < last {
            out_of_order += 1;
        }
        last = last.max(ts);
        let text = text(e, "timestamp");
        assert!(text.ends_with('Z') && text.len() == 27, "{text}");
    }
    assert!(out_of_order > 100, "jitter reorders events");
    let mean_jitter_us = jitter_sum as f64 / events.len() as f64;
    assert!(
        (250_000.0..350_000.0).contains(&mean_jitter_us),
        "{mean_jitter_us}"
    );
}

fn incident_run(effect: Effect, terms: usize, seed: u64) -> (Vec<Event>, Truth) {
    let start = DEFAULT_START_US;
    let incident = Incident::planted(seed, start + 4_000_000, start + 16_000_000, effect, terms);
    let (body, truth) = ndjson(
        WorkloadConfig {
            incident: Some(incident),
            ..config(seed)
        },
        20_000,
    );
    (decode(&body), truth)
}

/// Recounts the truth from the events, comparing cause values as strings.
fn recount(events: &[Event], incident: &Incident) -> (u64, u64) {
    let window = incident.start_us..incident.end_us;
    let in_window: Vec<&Event> = events
        .iter()
        .filter(|e| window.contains(&timestamp(e)))
        .collect();
    let matched = in_window
        .iter()
        .filter(|e| matches(e, &incident.cause))
        .count();
    (in_window.len() as u64, matched as u64)
}

#[test]
fn latency_incident_truth_is_exact_and_visible() {
    for terms in 1..=3 {
        let (events, truth) = incident_run(Effect::Latency { multiplier: 6.0 }, terms, 23);
        let incident = truth.incident.clone().expect("incident");
        assert_eq!(truth.total, 20_000);
        let (in_window, matched) = recount(&events, &incident);
        assert_eq!(truth.in_window, in_window, "{incident}");
        assert_eq!(truth.matched, matched, "{incident}");
        assert_eq!(truth.affected, matched);
        assert!(matched >= 20, "{matched} matched: {incident}");

        let window = incident.start_us..incident.end_us;
        let (hit, rest): (Vec<&Event>, Vec<&Event>) = events
            .iter()
            .filter(|e| window.contains(&timestamp(e)))
            .partition(|e| matches(e, &incident.cause));
        let slow = median(hit.iter().map(|e| number(e, "duration_ms")).collect());
        let normal = median(rest.iter().map(|e| number(e, "duration_ms")).collect());
        assert!(slow > 3.0 * normal, "{slow} vs {normal}: {incident}");
        // Outside the window the cause's events are as fast as the rest.
        let before: Vec<f64> = events
            .iter()
            .filter(|e| timestamp(e) < incident.start_us && matches(e, &incident.cause))
            .map(|e| number(e, "duration_ms"))
            .collect();
        if before.len() >= 20 {
            let m = median(before);
            assert!(m < 2.0 * normal, "{m} vs {normal} before the window");
        }
    }
}

#[test]
fn error_incident_truth_is_exact_and_visible() {
    let (events, truth) = incident_run(Effect::ErrorRate { probability: 0.5 }, 2, 29);
    let incident = truth.incident.clone().expect("incident");
    let (in_window, matched) = recount(&events, &incident);
    assert_eq!((truth.in_window, truth.matched), (in_window, matched));
    let window = incident.start_us..incident.end_us;
    let failed = |e: &Event| e.get("error") == Some(&Value::Bool(true));
    let hit: Vec<&Event> = events
        .iter()
        .filter(|e| window.contains(&timestamp(e)) && matches(e, &incident.cause))
        .collect();
    let hit_failed = hit.iter().filter(|e| failed(e)).count() as u64;
    // every event the incident failed is a failure; a few may have failed on their own
    assert!(truth.affected <= hit_failed && hit_failed <= truth.affected + matched / 20 + 3);
    let rate = hit_failed as f64 / matched as f64;
    assert!(
        (0.35..0.65).contains(&rate),
        "{rate} of {matched}: {incident}"
    );
    for e in &hit {
        if failed(e) && text(e, "name") == "http.request" {
            let status = number(e, "http.status_code");
            assert!([500.0, 502.0, 503.0].contains(&status), "{status}");
        }
    }
}

#[test]
fn an_incident_changes_nothing_outside_its_reach() {
    let start = DEFAULT_START_US;
    let incident = Incident::planted(
        31,
        start + 2_000_000,
        start + 6_000_000,
        Effect::Latency { multiplier: 3.0 },
        1,
    );
    let with: Vec<Event> = Generator::new(WorkloadConfig {
        incident: Some(incident.clone()),
        ..config(31)
    })
    .take(8_000)
    .collect();
    let without: Vec<Event> = Generator::new(config(31)).take(8_000).collect();
    let window = incident.start_us..incident.end_us;
    let mut changed = 0;
    for (a, b) in with.iter().zip(&without) {
        let reached = window.contains(&timestamp(b)) && matches(b, &incident.cause);
        if reached {
            changed += 1;
            let (slow, base) = (number(a, "duration_ms"), number(b, "duration_ms"));
            assert!((slow - 3.0 * base).abs() <= 0.0021, "{slow} vs {base}");
            let (mut a, mut b) = (a.clone(), b.clone());
            a.remove("duration_ms");
            b.remove("duration_ms");
            assert_eq!(a, b);
        } else {
            assert_eq!(a, b);
        }
    }
    assert!(changed > 0);
}

#[test]
fn pre_sampling_keeps_one_in_rate_and_weighs_them() {
    let limits = Limits::default();
    for (rate, expect) in [(10.0, Value::Int(10)), (2.5, Value::Float(2.5))] {
        let config = WorkloadConfig {
            pre_sample_rate: Some(rate),
            ..config(37)
        };
        // Slots are 1 ms apart: in 40 s of slots, 40,000 / rate events are kept. Count those
        // stamped in the middle 30 s, away from the jitter at either end.
        let n = (40_000.0 / rate) as usize;
        let events: Vec<Event> = Generator::new(config.clone()).take(n).collect();
        assert!(events.iter().all(|e| e.get("sample_rate") == Some(&expect)));
        let valid = events[0].clone().validate(&limits, 0).unwrap();
        assert_eq!(valid.sample_rate(), rate);
        let middle = config.start_us + 5_000_000..config.start_us + 35_000_000;
        let kept = events
            .iter()
            .filter(|e| middle.contains(&timestamp(e)))
            .count();
        let ratio = 30_000.0 / kept as f64;
        assert!(
            (rate * 0.85..rate * 1.15).contains(&ratio),
            "{rate}: {ratio}"
        );
    }
}

#[test]
fn invalid_configurations_are_refused() {
    let bad = |c: WorkloadConfig| Generator::try_new(c).err();
    assert!(matches!(
        bad(WorkloadConfig {
            events_per_second: 0.0,
            ..config(1)
        }),
        Some(WorkloadError::OutOfRange { .. })
    ));
    assert!(
        bad(WorkloadConfig {
            pre_sample_rate: Some(0.5),
            ..config(1)
        })
        .is_some()
    );
    assert!(
        bad(WorkloadConfig {
            start_us: -1,
            ..config(1)
        })
        .is_some()
    );
    let empty = Incident {
        cause: vec![("os.kernel".into(), "6.8.0-1019-aws".into())],
        effect: Effect::Latency { multiplier: 2.0 },
        start_us: 5,
        end_us: 5,
    };
    assert!(
        bad(WorkloadConfig {
            incident: Some(empty),
            ..config(1)
        })
        .is_some()
    );
    let incident = Incident {
        cause: vec![("http.route".into(), "/nowhere".into())],
        effect: Effect::Latency { multiplier: 2.0 },
        start_us: 0,
        end_us: 1,
    };
    assert!(matches!(
        bad(WorkloadConfig {
            incident: Some(incident),
            ..config(1)
        }),
        Some(WorkloadError::UnknownCauseValue { .. })
    ));
}

#[test]
fn hand_written_causes_match_by_string() {
    // A bool field and a string field, named by hand.
    let start = DEFAULT_START_US;
    let incident = Incident {
        cause: vec![
            ("feature.dark_mode".into(), "true".into()),
            ("http.method".into(), "POST".into()),
        ],
        effect: Effect::Latency { multiplier: 2.0 },
        start_us: start,
        end_us: start + 3_000_000,
    };
    let (body, truth) = ndjson(
        WorkloadConfig {
            incident: Some(incident.clone()),
            ..config(41)
        },
        5_000,
    );
    let events = decode(&body);
    let (in_window, matched) = recount(&events, &incident);
    assert_eq!((truth.in_window, truth.matched), (in_window, matched));
    let share = truth.matched_share();
    // about 45% of users have dark mode, 20% of 90% of events are POSTs
    assert!((0.04..0.12).contains(&share), "{share}");
}
