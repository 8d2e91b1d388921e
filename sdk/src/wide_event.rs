//! [`WideEvent`]: what the layer hands an exporter when a unit of work ends.

use std::borrow::Cow;

use loupe_event::{Event, Value};

/// A field name: static for names known at compile time (span and event fields), owned for
/// names the SDK builds (namespaced child-span fields, per-span aggregates).
pub type FieldName = Cow<'static, str>;

/// One finished wide event. Fields are kept in the order they were recorded and resolved when
/// the event is serialised (off the request path): a recorded field overrides the SDK's
/// filled-in value of the same name, and of two recorded values the later wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WideEvent {
    /// Filled in by the SDK: timestamp, duration, name, service, trace fields, span aggregates.
    pub(crate) auto: Vec<(FieldName, Value)>,
    /// Recorded by the application, in order.
    pub(crate) fields: Vec<(FieldName, Value)>,
}

impl WideEvent {
    /// An event from explicit fields (for exporters' tests and for code that builds events by
    /// hand); later fields win over earlier ones of the same name.
    pub fn from_fields(fields: impl IntoIterator<Item = (FieldName, Value)>) -> Self {
        WideEvent {
            auto: Vec::new(),
            fields: fields.into_iter().collect(),
        }
    }

    /// The value the field resolves to.
    pub fn get(&self, name: &str) -> Option<&Value> {
        last(&self.fields, name).or_else(|| last(&self.auto, name))
    }

    /// Each name once, with the value that wins, sorted by name. A sorted list rather than a
    /// map: one allocation per event instead of one per node, on the exporter's thread.
    fn resolved(&self) -> Vec<(&str, &Value)> {
        let mut all: Vec<(&str, &Value)> = self
            .auto
            .iter()
            .chain(&self.fields)
            .map(|(n, v)| (n.as_ref(), v))
            .collect();
        // Stable: of equal names the later recorded stays later, and is the one kept.
        all.sort_by(|a, b| a.0.cmp(b.0));
        let mut out: Vec<(&str, &Value)> = Vec::with_capacity(all.len());
        for (n, v) in all {
            match out.last_mut() {
                Some(last) if last.0 == n => last.1 = v,
                _ => out.push((n, v)),
            }
        }
        out
    }

    /// The event in loupe-event's form.
    pub fn to_event(&self) -> Event {
        self.resolved()
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.clone()))
            .collect()
    }

    /// Appends the event as one JSON object (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        struct AsMap<'a>(Vec<(&'a str, &'a Value)>);
        impl serde::Serialize for AsMap<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(n, v)| (n, v)))
            }
        }
        // A map of strings to scalars cannot fail to serialise (non-finite floats become null).
        serde_json::to_writer(&mut *out, &AsMap(self.resolved())).unwrap_or(());
    }

    /// The number of distinct fields.
    pub fn len(&self) -> usize {
        self.resolved().len()
    }

    pub fn is_empty(&self) -> bool {
        self.auto.is_empty() && self.fields.is_empty()
    }
}

fn last<'a>(fields: &'a [(FieldName, Value)], name: &str) -> Option<&'a Value> {
    fields.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_fields_win_and_later_wins() {
        let e = WideEvent {
            auto: vec![
                ("name".into(), Value::from("auto")),
                ("a".into(), Value::Int(1)),
            ],
            fields: vec![
                ("name".into(), Value::from("mine")),
                ("b".into(), Value::Int(1)),
                ("b".into(), Value::Int(2)),
            ],
        };
        assert_eq!(e.get("name"), Some(&Value::from("mine")));
        assert_eq!(e.get("b"), Some(&Value::Int(2)));
        assert_eq!(e.get("a"), Some(&Value::Int(1)));
        assert_eq!(e.len(), 3);
        let mut out = Vec::new();
        e.write_json(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":1,"b":2,"name":"mine"}"#
        );
        assert_eq!(e.to_event().get("b"), Some(&Value::Int(2)));
    }
}
