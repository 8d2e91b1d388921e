//! The sampling section of a dataset in `loupe.toml`: serde types, defaults, validation that
//! reports every problem with the option that caused it, and the step to a [`DatasetSampler`].
//!
//! ```toml
//! [datasets.api.sampling]
//! key_fields = ["http.route", "http.status_code"]
//! sampler = "ema"              # fixed | avg | ema | throughput          (default "ema")
//! goal_rate = 20               # avg, ema: seen per kept, averaged       (default 10)
//! interval_ms = 30000          # avg, ema, throughput                    (default 30000)
//! max_keys = 1000              # avg, ema, throughput                    (default 500)
//! # ema_weight = 0.5           # ema: weight of the newest interval      (default 0.5)
//! # burst_multiple = 2.0       # ema                                     (default 2)
//! # burst_detection_delay_intervals = 3  # ema                           (default 3)
//! # rate = 10                  # fixed: keep 1 in rate (or `goal_rate`)  (required)
//! # goal_events_per_second = 100  # throughput                           (required)
//!
//! [[datasets.api.sampling.rules]]
//! name = "errors"              # recorded as meta.sample_rule   (default: the `when` text)
//! when = ["error = true"]      # a condition string, or a list of them (all must hold)
//! action = "keep"              # keep | drop | rate | sampler
//!
//! [[datasets.api.sampling.rules]]
//! when = "http.route = '/health'"
//! action = "drop"
//!
//! [[datasets.api.sampling.rules]]
//! when = "duration_ms > 1000"
//! action = "rate"
//! rate = 5                     # for action = "rate"
//!
//! [[datasets.api.sampling.rules]]
//! when = "http.status_code >= 500"
//! action = "sampler"
//! sampler = "server_errors"    # for action = "sampler": a name under `samplers`
//!
//! [datasets.api.sampling.samplers.server_errors]
//! sampler = "throughput"       # the same options as the default sampler above;
//! goal_events_per_second = 5   # key_fields defaults to the dataset's
//! ```
//!
//! Paths in problems start at `sampling` (`sampling.rules[2].when: ">= 500": expected a field
//! name, found `>=` at column 1`); the collector prefixes the dataset (`datasets.api.`).
//! Options that do not apply to the chosen sampler are reported rather than ignored.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use crate::avg::AvgRate;
use crate::decide::{DEFAULT_SAMPLER, DatasetSampler};
use crate::ema::EmaRate;
use crate::error::{ConfigError, ConfigProblem};
use crate::key::KeySpec;
use crate::predicate::parse_conditions;
use crate::rules::{Action, Rule, Rules};
use crate::sampler::{Sampler, SamplerKind};
use crate::throughput::Throughput;

/// Seen events per kept event when `goal_rate` is not given (Refinery's and dynsampler-go's
/// default).
pub const DEFAULT_GOAL_RATE: f64 = 10.0;
/// Interval length when `interval_ms` is not given (dynsampler-go's `ClearFrequencyDuration`).
pub const DEFAULT_INTERVAL_MS: u64 = 30_000;
/// Keys with a slot of their own when `max_keys` is not given (Refinery's default).
pub const DEFAULT_MAX_KEYS: usize = 500;
/// The EMA weight (alpha) when `ema_weight` is not given (dynsampler-go's default).
pub const DEFAULT_EMA_WEIGHT: f64 = 0.5;
/// When `burst_multiple` is not given (dynsampler-go's default).
pub const DEFAULT_BURST_MULTIPLE: f64 = 2.0;
/// When `burst_detection_delay_intervals` is not given (dynsampler-go's default).
pub const DEFAULT_BURST_DETECTION_DELAY_INTERVALS: u32 = 3;
/// The largest `max_keys` accepted: a million keys is already ~100 MB of sampler state.
pub const MAX_MAX_KEYS: usize = 1_000_000;
/// The longest interval accepted: one day.
pub const MAX_INTERVAL_MS: u64 = 86_400_000;

/// Which sampler (`sampler = "..."`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerChoice {
    Fixed,
    Avg,
    #[default]
    Ema,
    Throughput,
}

impl SamplerChoice {
    fn as_str(self) -> &'static str {
        match self {
            SamplerChoice::Fixed => "fixed",
            SamplerChoice::Avg => "avg",
            SamplerChoice::Ema => "ema",
            SamplerChoice::Throughput => "throughput",
        }
    }
}

/// A dataset's `sampling` section: the default sampler's options, rules and named samplers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    #[serde(default)]
    pub key_fields: Vec<String>,
    #[serde(default)]
    pub sampler: SamplerChoice,
    pub rate: Option<f64>,
    pub goal_rate: Option<f64>,
    pub goal_events_per_second: Option<f64>,
    pub interval_ms: Option<u64>,
    pub max_keys: Option<usize>,
    pub ema_weight: Option<f64>,
    pub burst_multiple: Option<f64>,
    pub burst_detection_delay_intervals: Option<u32>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub samplers: BTreeMap<String, SamplerConfig>,
}

/// A named sampler (`[datasets.api.sampling.samplers.<name>]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    /// Defaults to the dataset's `key_fields`.
    pub key_fields: Option<Vec<String>>,
    #[serde(default)]
    pub sampler: SamplerChoice,
    pub rate: Option<f64>,
    pub goal_rate: Option<f64>,
    pub goal_events_per_second: Option<f64>,
    pub interval_ms: Option<u64>,
    pub max_keys: Option<usize>,
    pub ema_weight: Option<f64>,
    pub burst_multiple: Option<f64>,
    pub burst_detection_delay_intervals: Option<u32>,
}

/// What a rule does (`action = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionChoice {
    Keep,
    Drop,
    Rate,
    Sampler,
}

/// One `[[datasets.<name>.sampling.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Defaults to the conditions' text.
    pub name: Option<String>,
    pub when: When,
    pub action: ActionChoice,
    /// For `action = "rate"`.
    pub rate: Option<f64>,
    /// For `action = "sampler"`.
    pub sampler: Option<String>,
}

/// A rule's conditions: one string or a list of strings, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct When(pub Vec<String>);

impl<'de> Deserialize<'de> for When {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct WhenVisitor;
        impl<'de> Visitor<'de> for WhenVisitor {
            type Value = When;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a condition string or a list of condition strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<When, E> {
                Ok(When(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<When, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(When(out))
            }
        }
        d.deserialize_any(WhenVisitor)
    }
}

/// Collects problems under a path prefix.
struct Problems<'a> {
    out: &'a mut Vec<ConfigProblem>,
    prefix: String,
}

impl Problems<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        let path = if field.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}.{field}", self.prefix)
        };
        self.out.push(ConfigProblem {
            path,
            message: message.into(),
        });
    }
}

impl SamplingConfig {
    /// The default sampler's options, in the shape of a named sampler's.
    fn default_sampler(&self) -> SamplerConfig {
        SamplerConfig {
            key_fields: Some(self.key_fields.clone()),
            sampler: self.sampler,
            rate: self.rate,
            goal_rate: self.goal_rate,
            goal_events_per_second: self.goal_events_per_second,
            interval_ms: self.interval_ms,
            max_keys: self.max_keys,
            ema_weight: self.ema_weight,
            burst_multiple: self.burst_multiple,
            burst_detection_delay_intervals: self.burst_detection_delay_intervals,
        }
    }

    /// Every problem in this section, each with its path (empty when valid).
    pub fn validate(&self) -> Vec<ConfigProblem> {
        match self.build() {
            Ok(_) => Vec::new(),
            Err(e) => e.problems,
        }
    }

    /// The dataset sampler this section describes, or every problem in it.
    pub fn build(&self) -> Result<DatasetSampler, ConfigError> {
        let mut problems = Vec::new();
        let default = self.default_sampler().build(
            &self.key_fields,
            &mut Problems {
                out: &mut problems,
                prefix: "sampling".into(),
            },
        );

        let mut named = Vec::new();
        for (name, cfg) in &self.samplers {
            let mut p = Problems {
                out: &mut problems,
                prefix: format!("sampling.samplers.{name}"),
            };
            if name.is_empty() || name == DEFAULT_SAMPLER {
                p.push(
                    "",
                    format!("the sampler name {name:?} is reserved for the default sampler"),
                );
            }
            if let Some(s) = cfg.build(&self.key_fields, &mut p) {
                named.push((name.clone(), s));
            }
        }

        let mut rules = Vec::new();
        // Names, and the conditions of rules whose conditions all parsed, by rule index.
        let mut seen_names: Vec<(usize, String)> = Vec::new();
        let mut seen_when: Vec<(usize, String)> = Vec::new();
        for (i, rc) in self.rules.iter().enumerate() {
            let mut p = Problems {
                out: &mut problems,
                prefix: format!("sampling.rules[{i}]"),
            };
            let before = p.out.len();
            let (rule, conditions_ok) = rc.build(&self.samplers, &mut p);
            let when = rule.when_text();
            let shadowed_by = seen_when.iter().find(|(_, w)| conditions_ok && *w == when);
            let named_like = seen_names.iter().find(|(_, n)| *n == rule.name);
            if let Some((j, _)) = shadowed_by {
                p.push(
                    "when",
                    format!("rules[{j}] has the same conditions, so this rule can never match"),
                );
            } else if let Some((j, _)) = named_like {
                p.push(
                    "name",
                    format!(
                        "{:?} is already the name of rules[{j}]; meta.sample_rule could not tell them apart",
                        rule.name
                    ),
                );
            } else if rule.name == DEFAULT_SAMPLER {
                p.push(
                    "name",
                    format!("{DEFAULT_SAMPLER:?} means \"no rule matched\" in meta.sample_rule"),
                );
            }
            seen_names.push((i, rule.name.clone()));
            if conditions_ok {
                seen_when.push((i, when));
            }
            if p.out.len() == before {
                rules.push(rule);
            }
        }

        match default {
            Some(default) if problems.is_empty() => {
                DatasetSampler::with_rules(default, named, Rules(rules))
            }
            _ => Err(ConfigError { problems }),
        }
    }
}

impl SamplerConfig {
    fn build(&self, dataset_keys: &[String], p: &mut Problems<'_>) -> Option<Sampler> {
        let before = p.out.len();
        let choice = self.sampler;
        let name = choice.as_str();
        let key_fields = self.key_fields.as_deref().unwrap_or(dataset_keys);
        // Inherited key fields were checked where they were written.
        for (i, f) in self.key_fields.iter().flatten().enumerate() {
            if f.trim().is_empty() {
                p.push(&format!("key_fields[{i}]"), "empty field name");
            } else if key_fields[..i].contains(f) {
                p.push(
                    &format!("key_fields[{i}]"),
                    format!("{f:?} is listed twice"),
                );
            }
        }

        // Options that do not belong to the chosen sampler are mistakes, not no-ops.
        let applies: &[&str] = match choice {
            // `goal_rate` is accepted for a fixed sampler too: its goal is its rate.
            SamplerChoice::Fixed => &["rate", "goal_rate"],
            SamplerChoice::Avg => &["goal_rate", "interval_ms", "max_keys"],
            SamplerChoice::Ema => &[
                "goal_rate",
                "interval_ms",
                "max_keys",
                "ema_weight",
                "burst_multiple",
                "burst_detection_delay_intervals",
            ],
            SamplerChoice::Throughput => &["goal_events_per_second", "interval_ms", "max_keys"],
        };
        let given = [
            ("rate", self.rate.is_some()),
            ("goal_rate", self.goal_rate.is_some()),
            (
                "goal_events_per_second",
                self.goal_events_per_second.is_some(),
            ),
            ("interval_ms", self.interval_ms.is_some()),
            ("max_keys", self.max_keys.is_some()),
            ("ema_weight", self.ema_weight.is_some()),
            ("burst_multiple", self.burst_multiple.is_some()),
            (
                "burst_detection_delay_intervals",
                self.burst_detection_delay_intervals.is_some(),
            ),
        ];
        for (option, is_given) in given {
            if is_given && !applies.contains(&option) {
                p.push(
                    option,
                    format!(
                        "does not apply to sampler = {name:?} (it takes {})",
                        applies.join(", ")
                    ),
                );
            }
        }

        let kind = match choice {
            SamplerChoice::Fixed => {
                if self.rate.is_some() && self.goal_rate.is_some() {
                    p.push(
                        "goal_rate",
                        "give `rate` or `goal_rate` for a fixed sampler, not both",
                    );
                }
                let (option, value) = match self.goal_rate {
                    Some(g) if self.rate.is_none() => ("goal_rate", Some(g)),
                    _ => ("rate", self.rate),
                };
                SamplerKind::Fixed {
                    rate: at_least_1(p, name, option, value, None),
                }
            }
            SamplerChoice::Avg => SamplerKind::AvgRate(AvgRate {
                goal_rate: at_least_1(
                    p,
                    name,
                    "goal_rate",
                    self.goal_rate,
                    Some(DEFAULT_GOAL_RATE),
                ),
                interval_ms: self.interval(p),
                max_keys: self.max_keys(p),
            }),
            SamplerChoice::Ema => SamplerKind::EmaRate(EmaRate {
                goal_rate: at_least_1(
                    p,
                    name,
                    "goal_rate",
                    self.goal_rate,
                    Some(DEFAULT_GOAL_RATE),
                ),
                interval_ms: self.interval(p),
                weight: match self.ema_weight.unwrap_or(DEFAULT_EMA_WEIGHT) {
                    w if w > 0.0 && w <= 1.0 => w,
                    w => {
                        p.push("ema_weight", format!("must be in (0, 1], got {w}"));
                        DEFAULT_EMA_WEIGHT
                    }
                },
                burst_multiple: match self.burst_multiple.unwrap_or(DEFAULT_BURST_MULTIPLE) {
                    m if m.is_finite() && m >= 1.0 => m,
                    m => {
                        p.push("burst_multiple", format!("must be a number >= 1, got {m}"));
                        DEFAULT_BURST_MULTIPLE
                    }
                },
                burst_detection_delay_intervals: self
                    .burst_detection_delay_intervals
                    .unwrap_or(DEFAULT_BURST_DETECTION_DELAY_INTERVALS),
                max_keys: self.max_keys(p),
            }),
            SamplerChoice::Throughput => SamplerKind::Throughput(Throughput {
                goal_events_per_second: match self.goal_events_per_second {
                    Some(g) if g.is_finite() && g > 0.0 => g,
                    Some(g) => {
                        p.push(
                            "goal_events_per_second",
                            format!("must be a number > 0, got {g}"),
                        );
                        1.0
                    }
                    None => {
                        p.push(
                            "goal_events_per_second",
                            "is required for sampler = \"throughput\"",
                        );
                        1.0
                    }
                },
                interval_ms: self.interval(p),
                max_keys: self.max_keys(p),
            }),
        };
        (p.out.len() == before)
            .then(|| Sampler::new(kind, KeySpec::new(key_fields.iter().cloned())))
    }

    fn interval(&self, p: &mut Problems<'_>) -> u64 {
        match self.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS) {
            ms @ 1..=MAX_INTERVAL_MS => ms,
            ms => {
                p.push(
                    "interval_ms",
                    format!("must be between 1 and {MAX_INTERVAL_MS} (one day), got {ms}"),
                );
                DEFAULT_INTERVAL_MS
            }
        }
    }

    fn max_keys(&self, p: &mut Problems<'_>) -> usize {
        match self.max_keys.unwrap_or(DEFAULT_MAX_KEYS) {
            n @ 1..=MAX_MAX_KEYS => n,
            n => {
                p.push(
                    "max_keys",
                    format!("must be between 1 and {MAX_MAX_KEYS}, got {n}"),
                );
                DEFAULT_MAX_KEYS
            }
        }
    }
}

/// A rate option: a number >= 1, or its default, or a problem.
fn at_least_1(
    p: &mut Problems<'_>,
    sampler: &str,
    option: &str,
    value: Option<f64>,
    default: Option<f64>,
) -> f64 {
    match value.or(default) {
        Some(x) if x.is_finite() && x >= 1.0 => x,
        Some(x) => {
            p.push(option, format!("must be a number >= 1, got {x}"));
            1.0
        }
        None => {
            p.push(option, format!("is required for sampler = {sampler:?}"));
            1.0
        }
    }
}

impl RuleConfig {
    /// The rule, and whether all its conditions parsed. Problems go to `p`; the rule is only
    /// usable when none were added.
    fn build(
        &self,
        samplers: &BTreeMap<String, SamplerConfig>,
        p: &mut Problems<'_>,
    ) -> (Rule, bool) {
        let mut conditions_ok = !self.when.0.is_empty();
        let mut conditions = Vec::new();
        if self.when.0.is_empty() {
            p.push(
                "when",
                "needs at least one condition (a rule for every event is the default sampler's job)",
            );
        }
        let list = self.when.0.len() > 1;
        for (j, w) in self.when.0.iter().enumerate() {
            match parse_conditions(w) {
                Ok(c) => conditions.extend(c),
                Err(e) => {
                    conditions_ok = false;
                    let field = if list {
                        format!("when[{j}]")
                    } else {
                        "when".to_owned()
                    };
                    p.push(&field, e.to_string());
                }
            }
        }
        let action = match self.action {
            ActionChoice::Keep => Action::Keep,
            ActionChoice::Drop => Action::Drop,
            ActionChoice::Rate => match self.rate {
                Some(r) if r.is_finite() && r >= 1.0 => Action::Rate(r),
                Some(r) => {
                    p.push("rate", format!("must be a number >= 1, got {r}"));
                    Action::Keep
                }
                None => {
                    p.push("rate", "is required for action = \"rate\"");
                    Action::Keep
                }
            },
            ActionChoice::Sampler => {
                match &self.sampler {
                    Some(name) if samplers.contains_key(name) => Action::Sampler(name.clone()),
                    Some(name) => {
                        let known: Vec<&str> = samplers.keys().map(String::as_str).collect();
                        p.push(
                        "sampler",
                        format!("no sampler named {name:?} under sampling.samplers (known: {known:?})"),
                    );
                        Action::Keep
                    }
                    None => {
                        p.push("sampler", "is required for action = \"sampler\"");
                        Action::Keep
                    }
                }
            }
        };
        if self.rate.is_some() && self.action != ActionChoice::Rate {
            p.push("rate", "applies only to action = \"rate\"");
        }
        if self.sampler.is_some() && self.action != ActionChoice::Sampler {
            p.push("sampler", "applies only to action = \"sampler\"");
        }
        let name = match &self.name {
            Some(n) if n.trim().is_empty() => {
                p.push("name", "must not be empty");
                n.clone()
            }
            Some(n) => n.clone(),
            None => {
                let texts: Vec<String> = conditions.iter().map(ToString::to_string).collect();
                texts.join(" and ")
            }
        };
        let rule = Rule {
            name,
            conditions,
            action,
        };
        (rule, conditions_ok)
    }
}
