//! Sampling rules: an ordered list, first match wins. A rule is a conjunction of conditions
//! ([`crate::predicate`]) and an action: keep every matching event, drop them all, sample at a
//! fixed rate, or hand them to a named sampler. Events no rule matches go to the dataset's
//! default sampler. (The shape of Refinery's rules-based sampler,
//! <https://github.com/honeycombio/refinery/blob/main/refinery_rules.md>, and of the
//! OpenTelemetry Collector's tail-sampling processor policies.)

use loupe_event::Event;

use crate::error::PredicateError;
use crate::predicate::{Condition, parse_conditions};

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Keep every matching event (rate 1).
    Keep,
    /// Drop every matching event.
    Drop,
    /// Keep 1 in `rate` (fractional allowed), decided consistently on the trace id.
    Rate(f64),
    /// Hand the event to the named sampler of the dataset.
    Sampler(String),
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Recorded as `meta.sample_rule` on the events it keeps.
    pub name: String,
    /// All must hold (AND). An empty list matches every event.
    pub conditions: Vec<Condition>,
    pub action: Action,
}

impl Rule {
    /// A rule from condition strings, each of which may itself join conditions with `and`.
    pub fn parse(
        name: impl Into<String>,
        when: &[&str],
        action: Action,
    ) -> Result<Rule, PredicateError> {
        let mut conditions = Vec::new();
        for w in when {
            conditions.extend(parse_conditions(w)?);
        }
        Ok(Rule {
            name: name.into(),
            conditions,
            action,
        })
    }

    /// Whether every condition holds for `event`. Does not allocate.
    pub fn matches(&self, event: &Event) -> bool {
        self.conditions.iter().all(|c| c.matches(event))
    }

    /// The conditions as text, joined by `and`.
    pub fn when_text(&self) -> String {
        let parts: Vec<String> = self.conditions.iter().map(ToString::to_string).collect();
        parts.join(" and ")
    }
}

/// Rules in order; the first that matches decides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules(pub Vec<Rule>);

impl Rules {
    /// The first rule that matches `event`, with its index.
    pub fn first_match(&self, event: &Event) -> Option<(usize, &Rule)> {
        self.0.iter().enumerate().find(|(_, r)| r.matches(event))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Rule> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins() {
        let rules = Rules(vec![
            Rule::parse("health", &["http.route = '/health'"], Action::Drop).unwrap(),
            Rule::parse("errors", &["error"], Action::Keep).unwrap(),
            Rule::parse(
                "server errors",
                &["http.status_code >= 500"],
                Action::Rate(2.0),
            )
            .unwrap(),
            Rule::parse(
                "slow",
                &["duration_ms > 1000", "http.route != '/batch'"],
                Action::Sampler("slow".into()),
            )
            .unwrap(),
        ]);
        let name = |e: &Event| rules.first_match(e).map(|(_, r)| r.name.as_str());
        // A failing health check is dropped: the health rule comes first.
        let e = Event::new()
            .with("http.route", "/health")
            .with("error", true);
        assert_eq!(name(&e), Some("health"));
        // An error with status 500 is kept by "errors", not rated by "server errors".
        let e = Event::new()
            .with("error", true)
            .with("http.status_code", 503);
        assert_eq!(name(&e), Some("errors"));
        let e = Event::new()
            .with("error", false)
            .with("http.status_code", 503);
        assert_eq!(name(&e), Some("server errors"));
        // AND: both conditions of "slow" must hold.
        let e = Event::new()
            .with("duration_ms", 1500.0)
            .with("http.route", "/batch");
        assert_eq!(name(&e), None);
        let e = Event::new()
            .with("duration_ms", 1500.0)
            .with("http.route", "/cart");
        assert_eq!(name(&e), Some("slow"));
        assert_eq!(
            rules.0[3].when_text(),
            "duration_ms > 1000 and http.route != \"/batch\""
        );
    }
}
