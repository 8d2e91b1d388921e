//! [`Event`]: one wide event, a flat map from dotted field name to [`Value`].

use std::collections::BTreeMap;
use std::collections::btree_map;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::value::Value;

/// A wide event as it arrived: flat, not yet checked against limits or reserved-field types.
/// [`Event::validate`](crate::Event::validate) turns it into a [`ValidEvent`](crate::ValidEvent),
/// the only kind the collector will write.
///
/// Fields are kept sorted by name, so encodings and tests are deterministic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    fields: BTreeMap<String, Value>,
}

impl Event {
    pub fn new() -> Self {
        Event::default()
    }

    /// Sets `name` to `value`, returning the value it replaces.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.fields.insert(name.into(), value.into())
    }

    /// Builder form of [`Event::insert`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.fields.remove(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn iter(&self) -> btree_map::Iter<'_, String, Value> {
        self.fields.iter()
    }

    /// The event as a JSON object (the inverse of decoding, for an already flat event).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    pub(crate) fn entry(&mut self, name: String) -> btree_map::Entry<'_, String, Value> {
        self.fields.entry(name)
    }
}

impl IntoIterator for Event {
    type Item = (String, Value);
    type IntoIter = btree_map::IntoIter<String, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.into_iter()
    }
}

impl<'a> IntoIterator for &'a Event {
    type Item = (&'a String, &'a Value);
    type IntoIter = btree_map::Iter<'a, String, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Event {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Event {
            fields: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}
