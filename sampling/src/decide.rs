//! [`DatasetSampler`]: a dataset's rules and samplers, and the [`Decision`] they make for one
//! event. This is what the collector calls between validation and the WAL.

use std::fmt::Write as _;

use loupe_event::{Event, ValidEvent, Value, fields};

use crate::config::SamplingConfig;
use crate::consistent;
use crate::error::{ConfigError, ConfigProblem};
use crate::identity::decision_hash;
use crate::rules::{Action, Rules};
use crate::sampler::{Sampler, SamplerKind};

/// The name of the sampler that takes events no rule matched; also what
/// [`Decision::reason`] (and so `meta.sample_rule`) says when no rule matched.
pub const DEFAULT_SAMPLER: &str = "default";
/// Field a kept event's key is recorded in.
pub const SAMPLE_KEY_FIELD: &str = "meta.sample_key";
/// Field naming the rule that decided (or [`DEFAULT_SAMPLER`]).
pub const SAMPLE_RULE_FIELD: &str = "meta.sample_rule";

/// What happens to one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision<'a> {
    /// Keep (write it) or drop it.
    pub keep: bool,
    /// The rate this stage sampled at: 1 for a `keep` rule, the rule's rate, or the sampler's
    /// rate for the event's key. `f64::INFINITY` for a `drop` rule (no finite weight).
    pub rate: f64,
    /// The event's sampling key, when a keyed sampler decided.
    pub key: Option<&'a str>,
    /// The rule that matched, if any.
    pub rule: Option<&'a str>,
    /// The sampler that set the rate, if one did.
    pub sampler: Option<&'a str>,
}

impl Decision<'_> {
    /// The weight to record on a kept event that arrived with weight `upstream`:
    /// [`recorded_weight`]`(upstream, self.rate)`.
    pub fn weight(&self, upstream: f64) -> f64 {
        recorded_weight(upstream, self.rate)
    }

    /// Why the event was kept, for `meta.sample_rule`: the rule's name, or
    /// [`DEFAULT_SAMPLER`] when no rule matched.
    pub fn reason(&self) -> &str {
        self.rule.unwrap_or(DEFAULT_SAMPLER)
    }

    /// Writes the decision into a kept event: `sample_rate` = upstream weight (the event's own
    /// `sample_rate`, 1 when absent) × this rate, plus [`SAMPLE_KEY_FIELD`] (when there is a
    /// key) and [`SAMPLE_RULE_FIELD`]. Call it once per event: a second call multiplies again.
    pub fn annotate(&self, event: &mut Event) {
        let upstream = event
            .get(fields::SAMPLE_RATE)
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        event.insert(fields::SAMPLE_RATE, self.weight(upstream));
        if let Some(key) = self.key {
            event.insert(SAMPLE_KEY_FIELD, key);
        }
        event.insert(SAMPLE_RULE_FIELD, self.reason());
    }

    /// [`Decision::annotate`] for a validated event (the collector's path): the same fields,
    /// with the weight kept a number >= 1.
    pub fn annotate_valid(&self, event: &mut ValidEvent) {
        event.set_sample_rate(self.weight(event.sample_rate()));
        if let Some(key) = self.key {
            event.set_meta(SAMPLE_KEY_FIELD, key);
        }
        event.set_meta(SAMPLE_RULE_FIELD, self.reason());
    }
}

/// The weight a kept event records: the weight it arrived with (an SDK's head sampling, a
/// Honeycomb `samplerate`, an OTLP `th`) times the rate of this stage. Never overwritten, always
/// multiplied: an event kept 1 in 4 upstream and 1 in 5 here stands for 20. Inputs below 1 or
/// not finite count as 1, so the result is always a finite number >= 1 for finite inputs.
///
/// The product is the true weight because the two decisions are independent: see
/// [`crate::identity`] for why this stage thresholds a different hash of the trace id than
/// the SDK's head sampling does.
pub fn recorded_weight(upstream: f64, rate: f64) -> f64 {
    let clean = |x: f64| if x.is_finite() && x >= 1.0 { x } else { 1.0 };
    clean(upstream) * clean(rate)
}

/// A dataset's rules, its named samplers and its default sampler.
#[derive(Debug, Clone)]
pub struct DatasetSampler {
    rules: Rules,
    /// Per rule, the index in `samplers` its `Sampler` action hands over to.
    targets: Vec<usize>,
    /// `samplers[0]` is the default sampler.
    samplers: Vec<(String, Sampler)>,
    /// For events with no id (see [`crate::identity`]).
    counter: u64,
}

impl DatasetSampler {
    /// The dataset sampler a config section describes, or every problem in it (the same as
    /// [`SamplingConfig::build`]).
    pub fn new(config: &SamplingConfig) -> Result<Self, ConfigError> {
        config.build()
    }

    /// Every event goes to `default`; no rules.
    pub fn from_sampler(default: Sampler) -> Self {
        DatasetSampler {
            rules: Rules::default(),
            targets: Vec::new(),
            samplers: vec![(DEFAULT_SAMPLER.to_owned(), default)],
            counter: 0,
        }
    }

    /// Rules, named samplers they may hand over to, and the default sampler. Fails, listing
    /// every problem, when a rule names an unknown sampler or a name is used twice. Rule rates
    /// below 1 or not finite become 1.
    pub fn with_rules(
        default: Sampler,
        named: Vec<(String, Sampler)>,
        mut rules: Rules,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut samplers = vec![(DEFAULT_SAMPLER.to_owned(), default)];
        for (name, sampler) in named {
            if samplers.iter().any(|(n, _)| *n == name) {
                problems.push(ConfigProblem {
                    path: format!("sampling.samplers.{name}"),
                    message: format!("the sampler name {name:?} is used twice or is reserved"),
                });
            } else {
                samplers.push((name, sampler));
            }
        }
        let mut targets = Vec::with_capacity(rules.len());
        for (i, rule) in rules.0.iter_mut().enumerate() {
            let target = match &mut rule.action {
                Action::Sampler(name) => match samplers.iter().position(|(n, _)| n == name) {
                    Some(t) => t,
                    None => {
                        problems.push(ConfigProblem {
                            path: format!("sampling.rules[{i}].sampler"),
                            message: format!("no sampler named {name:?}"),
                        });
                        0
                    }
                },
                Action::Rate(r) => {
                    if !(r.is_finite() && *r >= 1.0) {
                        *r = 1.0;
                    }
                    0
                }
                Action::Keep | Action::Drop => 0,
            };
            targets.push(target);
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(DatasetSampler {
            rules,
            targets,
            samplers,
            counter: 0,
        })
    }

    /// Decides for one event arriving at `now_us` (microseconds since the epoch; the
    /// collector's clock, not the event's timestamp, which may be old). Pass a validated
    /// event's fields ([`ValidEvent::fields`]), or use [`DatasetSampler::decide_valid`].
    ///
    /// Rules are tried in order; the first match decides (keep, drop, a fixed rate, or a named
    /// sampler's rate), else the default sampler's rate for the event's key. A rate is turned
    /// into keep or drop by [`consistent::keep_hash`] on the event's trace id (see
    /// [`crate::identity`]). Allocation-free for known keys.
    pub fn decide(&mut self, event: &Event, now_us: i64) -> Decision<'_> {
        let matched = self.rules.first_match(event);
        let target = match matched {
            Some((_, rule)) => match rule.action {
                Action::Keep => {
                    return Decision {
                        keep: true,
                        rate: 1.0,
                        key: None,
                        rule: Some(&rule.name),
                        sampler: None,
                    };
                }
                Action::Drop => {
                    return Decision {
                        keep: false,
                        rate: f64::INFINITY,
                        key: None,
                        rule: Some(&rule.name),
                        sampler: None,
                    };
                }
                Action::Rate(rate) => {
                    let (h, _) = decision_hash(event, &mut self.counter);
                    return Decision {
                        keep: consistent::keep_hash(h, rate),
                        rate,
                        key: None,
                        rule: Some(&rule.name),
                        sampler: None,
                    };
                }
                Action::Sampler(_) => matched.map_or(0, |(i, _)| self.targets[i]),
            },
            None => 0,
        };
        let (h, _) = decision_hash(event, &mut self.counter);
        let (name, sampler) = &mut self.samplers[target];
        let sampled = sampler.sample(event, now_us);
        Decision {
            keep: consistent::keep_hash(h, sampled.rate),
            rate: sampled.rate,
            key: sampled.key,
            rule: matched.map(|(_, r)| r.name.as_str()),
            sampler: Some(name),
        }
    }

    /// [`DatasetSampler::decide`] for a validated event.
    pub fn decide_valid(&mut self, event: &ValidEvent, now_us: i64) -> Decision<'_> {
        self.decide(event.fields(), now_us)
    }

    /// Ends the intervals of every sampler that `now_us` is past, without an event (for a
    /// collector that ticks while a dataset is idle).
    pub fn advance(&mut self, now_us: i64) {
        for (_, s) in &mut self.samplers {
            s.advance(now_us);
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The default sampler.
    pub fn default_sampler(&self) -> &Sampler {
        &self.samplers[0].1
    }

    /// A sampler by name ([`DEFAULT_SAMPLER`] for the default).
    pub fn sampler(&self, name: &str) -> Option<&Sampler> {
        self.samplers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    /// Every sampler with its name, the default first.
    pub fn samplers(&self) -> impl Iterator<Item = (&str, &Sampler)> {
        self.samplers.iter().map(|(n, s)| (n.as_str(), s))
    }

    pub(crate) fn sampler_mut(&mut self, name: &str) -> Option<&mut Sampler> {
        self.samplers
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }

    /// The effective configuration in words, every default filled in: what
    /// `loupe sampling check` prints.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        if self.rules.is_empty() {
            out.push_str("rules: none\n");
        } else {
            out.push_str("rules, first match wins:\n");
            for (i, rule) in self.rules.iter().enumerate() {
                let action = match &rule.action {
                    Action::Keep => "keep every event (rate 1)".to_owned(),
                    Action::Drop => "drop every event".to_owned(),
                    Action::Rate(r) => format!("keep 1 in {r} (by trace id)"),
                    Action::Sampler(name) => format!("sampler {name:?}"),
                };
                let when = if rule.conditions.is_empty() {
                    "every event".to_owned()
                } else {
                    rule.when_text()
                };
                let _ = writeln!(out, "  {}. {:?}: when {when} -> {action}", i + 1, rule.name);
            }
        }
        for (i, (name, s)) in self.samplers.iter().enumerate() {
            let role = if i == 0 {
                "default sampler (events no rule matched)".to_owned()
            } else {
                format!("sampler {name:?}")
            };
            let _ = writeln!(out, "{role}: {}", describe(s));
        }
        out
    }
}

fn describe(s: &Sampler) -> String {
    let keys = if s.key_spec().is_empty() {
        "one key for all events".to_owned()
    } else {
        format!("keyed by {}", s.key_spec().fields().join(", "))
    };
    match s.kind() {
        SamplerKind::Fixed { rate } => format!("fixed, keep 1 in {rate}"),
        SamplerKind::AvgRate(p) => format!(
            "avg, goal_rate {} over interval_ms {}, max_keys {}, {keys}",
            p.goal_rate, p.interval_ms, p.max_keys
        ),
        SamplerKind::EmaRate(p) => format!(
            "ema, goal_rate {} over interval_ms {}, ema_weight {}, burst_multiple {}, \
             burst_detection_delay_intervals {}, max_keys {}, {keys}",
            p.goal_rate,
            p.interval_ms,
            p.weight,
            p.burst_multiple,
            p.burst_detection_delay_intervals,
            p.max_keys
        ),
        SamplerKind::Throughput(p) => format!(
            "throughput, goal_events_per_second {} over interval_ms {}, max_keys {}, {keys}",
            p.goal_events_per_second, p.interval_ms, p.max_keys
        ),
    }
}
