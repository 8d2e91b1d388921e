//! `[slo]` in `loupe.toml`: where the definitions are, how often statuses are refreshed and
//! pushed, and the alert policy.
//!
//! ```toml
//! [slo]
//! definitions = "slos/"          # an OpenSLO YAML file, or a directory of them
//! refresh_interval_secs = 30     # recompute statuses (for /metrics) and push them this often
//! remote_write_url = "http://127.0.0.1:9090/api/v1/write"   # optional
//! min_bad_events = 5             # an alert needs this many bad events (weighted) in its long window
//!
//! # Replaces the default policy (the SRE Workbook's: 1h/5m 14.4 page, 6h/30m 6 page,
//! # 3d/6h 1 ticket) when present.
//! [[slo.policy]]
//! severity = "page"
//! long = "1h"
//! short = "5m"
//! burn = 14.4
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use super::budget::{BurnRule, Policy};
use super::duration::Shorthand;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SloConfig {
    pub definitions: Option<PathBuf>,
    pub refresh_interval_secs: u64,
    pub remote_write_url: Option<String>,
    pub min_bad_events: f64,
    pub policy: Vec<RuleConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub severity: String,
    pub long: String,
    pub short: String,
    pub burn: f64,
}

impl Default for SloConfig {
    fn default() -> Self {
        SloConfig {
            definitions: None,
            refresh_interval_secs: 30,
            remote_write_url: None,
            min_bad_events: Policy::default().min_bad_events,
            policy: Vec::new(),
        }
    }
}

impl SloConfig {
    /// The alert policy these settings describe, or every problem with them, each naming its
    /// option.
    pub fn policy(&self) -> Result<Policy, Vec<String>> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for (i, r) in self.policy.iter().enumerate() {
            let at = format!("slo.policy[{i}]");
            let mut window = |name: &str, text: &str| match Shorthand::parse(text, false) {
                Ok(d) if !d.is_calendar() => Some(d.micros()),
                Ok(_) => {
                    problems.push(format!(
                        "{at}.{name}: {text:?} has no fixed length; use m, h, d or w"
                    ));
                    None
                }
                Err(e) => {
                    problems.push(format!("{at}.{name}: {e}"));
                    None
                }
            };
            let (long, short) = (window("long", &r.long), window("short", &r.short));
            if !(r.burn.is_finite() && r.burn > 0.0) {
                problems.push(format!("{at}.burn: {} must be a positive number", r.burn));
            }
            if r.severity.trim().is_empty() {
                problems.push(format!("{at}.severity: must not be empty"));
            }
            if let (Some(long_us), Some(short_us)) = (long, short) {
                if short_us > long_us {
                    problems.push(format!(
                        "{at}: the short window ({}) is longer than the long one ({})",
                        r.short, r.long
                    ));
                }
                rules.push(BurnRule {
                    severity: r.severity.clone(),
                    long_us,
                    short_us,
                    burn: r.burn,
                });
            }
        }
        if !(self.min_bad_events.is_finite() && self.min_bad_events >= 0.0) {
            problems.push(format!(
                "slo.min_bad_events: {} must be zero or more",
                self.min_bad_events
            ));
        }
        if self.refresh_interval_secs == 0 {
            problems.push("slo.refresh_interval_secs: must be at least 1".to_owned());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut policy = Policy::default();
        if !rules.is_empty() {
            policy.rules = rules;
        }
        policy.min_bad_events = self.min_bad_events;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_workbook_policy_and_rules_replace_it() {
        let c = SloConfig::default();
        assert_eq!(c.policy().unwrap(), Policy::default());
        let mut c = SloConfig {
            min_bad_events: 2.0,
            ..SloConfig::default()
        };
        c.policy.push(RuleConfig {
            severity: "page".into(),
            long: "2h".into(),
            short: "10m".into(),
            burn: 10.0,
        });
        let p = c.policy().unwrap();
        assert_eq!(p.rules.len(), 1);
        assert_eq!(
            (p.rules[0].long_us, p.rules[0].short_us),
            (7_200_000_000, 600_000_000)
        );
        assert_eq!(p.min_bad_events, 2.0);
    }

    #[test]
    fn every_problem_names_its_option() {
        let c = SloConfig {
            refresh_interval_secs: 0,
            policy: vec![RuleConfig {
                severity: "".into(),
                long: "1M".into(),
                short: "5x".into(),
                burn: -1.0,
            }],
            ..SloConfig::default()
        };
        let problems = c.policy().unwrap_err().join("\n");
        for needle in [
            "slo.policy[0].long",
            "slo.policy[0].short",
            "slo.policy[0].burn",
            "slo.policy[0].severity",
            "slo.refresh_interval_secs",
        ] {
            assert!(problems.contains(needle), "{needle}: {problems}");
        }
    }
}
