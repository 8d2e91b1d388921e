//! Sampler state that survives a restart or a config reload: a serde snapshot of what the
//! samplers learned, and a restore that fits it to the current config.
//!
//! The snapshot ([`SamplingState`], JSON via serde) holds per sampler its name, parameters,
//! key fields, interval start and count, and per key: readable name, 64-bit key hash, the
//! running interval's count, the basis (last interval's count, or the EMA) and the current
//! rate. The collector saves it (on shutdown, and now and then) and restores it at start-up and
//! after a reload.
//!
//! Restore ([`DatasetSampler::restore`]) matches samplers by name and never panics:
//! - a sampler whose key fields changed is skipped (its keys would mean something else);
//! - a fixed sampler has nothing to restore; a sampler missing from the config is skipped;
//! - changed parameters (goal, interval, kind among avg/ema/throughput) keep the per-key bases
//!   and recompute the rates under the new parameters, so a new goal applies at once;
//! - a smaller `max_keys` keeps the keys with the largest bases and folds the rest into the
//!   overflow key, so their traffic still counts;
//! - keys with non-finite or negative numbers, or a repeated hash, are dropped;
//! - the interval clock restarts at the next event (time passed while the process was down
//!   is not an interval without traffic).
//!
//! The budget correction ([`Sampler::budget_correction`]) is restored too. Numbers go through
//! JSON as decimal text: serde_json's default parser may round the last bit of a float, so a
//! restored rate can differ from the saved one by one unit in the last place.
//!
//! Everything skipped is listed in the [`RestoreReport`]. A snapshot that is not JSON of this
//! shape, or has another [`STATE_VERSION`], is refused whole with a [`StateError`].

use serde::{Deserialize, Serialize};

use crate::decide::DatasetSampler;
use crate::error::StateError;
use crate::sampler::{Sampler, SamplerKind};
use crate::table::{KeyTable, Slot};

/// Version of the snapshot format (and of the key hash it stores).
pub const STATE_VERSION: u32 = 1;

/// A dataset's sampler state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingState {
    pub version: u32,
    pub samplers: Vec<SamplerState>,
}

/// One sampler's learned state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerState {
    pub name: String,
    /// The [`SamplerKind`] the rates were computed under, as JSON: kept loose so that a
    /// snapshot from a build with other kinds still restores its keys.
    pub params: serde_json::Value,
    pub key_fields: Vec<String>,
    pub interval_start_us: Option<i64>,
    pub intervals_completed: u64,
    /// The budget correction ([`Sampler::budget_correction`]).
    #[serde(default = "one")]
    pub budget_correction: f64,
    /// The rates came from an allocation (the sampler was past its warm-up).
    #[serde(default)]
    pub allocated: bool,
    pub keys: Vec<KeyState>,
    pub overflow: KeyState,
}

fn one() -> f64 {
    1.0
}

/// One key's learned state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyState {
    pub key: String,
    pub hash: u64,
    /// Events in the running interval.
    pub count: u64,
    /// Last interval's count, or the smoothed count (EMA).
    pub basis: f64,
    pub rate: f64,
    /// No interval has ended since the key arrived.
    #[serde(default)]
    pub fresh: bool,
}

/// What a restore used and what it skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoreReport {
    /// Samplers whose state was restored.
    pub restored: Vec<String>,
    /// Samplers left as they were, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Samplers restored with rates recomputed under changed parameters.
    pub recomputed: Vec<String>,
    /// Keys dropped as invalid or repeated.
    pub dropped_keys: usize,
    /// Keys folded into the overflow key for want of slots.
    pub folded_keys: usize,
}

impl KeyState {
    fn of(s: &Slot) -> Self {
        KeyState {
            key: s.name.clone(),
            hash: s.hash,
            count: s.count,
            basis: s.basis,
            rate: s.rate,
            fresh: s.fresh,
        }
    }

    fn is_valid(&self) -> bool {
        self.basis.is_finite() && self.basis >= 0.0 && self.rate.is_finite() && self.rate >= 1.0
    }

    fn into_slot(self) -> Slot {
        Slot {
            hash: self.hash,
            name: self.key,
            count: self.count,
            basis: self.basis,
            rate: self.rate,
            fresh: self.fresh,
        }
    }
}

impl Sampler {
    fn snapshot(&self, name: &str) -> SamplerState {
        SamplerState {
            name: name.to_owned(),
            params: serde_json::to_value(&self.kind).unwrap_or(serde_json::Value::Null),
            key_fields: self.keys.fields().to_vec(),
            interval_start_us: self.interval_start_us,
            intervals_completed: self.intervals_completed,
            budget_correction: self.correction,
            allocated: self.allocated,
            keys: self.table.slots().iter().map(KeyState::of).collect(),
            overflow: KeyState::of(self.table.overflow()),
        }
    }

    /// Restores `state` into this sampler; the reason when it is skipped.
    fn restore_from(
        &mut self,
        state: SamplerState,
        report: &mut RestoreReport,
    ) -> Result<(), String> {
        if matches!(self.kind, SamplerKind::Fixed { .. }) {
            return Err("a fixed sampler has no state".into());
        }
        if state.key_fields != self.keys.fields() {
            return Err(format!(
                "key fields changed from {:?} to {:?}: the learned keys do not apply",
                state.key_fields,
                self.keys.fields()
            ));
        }
        let same_params =
            serde_json::from_value::<SamplerKind>(state.params).is_ok_and(|k| k == self.kind);
        let mut table = KeyTable::new(self.table.max_keys());
        let mut recompute = !same_params;

        let mut keys: Vec<KeyState> = Vec::with_capacity(state.keys.len());
        for k in state.keys {
            if k.is_valid() {
                keys.push(k);
            } else {
                report.dropped_keys += 1;
                recompute = true;
            }
        }
        if keys.len() > table.max_keys() {
            // The busiest keys keep their slots; the rest fold into the overflow key.
            keys.sort_by(|a, b| b.basis.total_cmp(&a.basis));
            recompute = true;
        }
        let overflow = state.overflow;
        if overflow.is_valid() {
            table.set_overflow(overflow.count, overflow.basis, overflow.rate);
        } else {
            recompute = true;
        }
        for k in keys {
            let full = table.slots().len() >= table.max_keys();
            if table.insert_restored(k.into_slot()) {
                report.folded_keys += usize::from(full);
            } else {
                report.dropped_keys += 1;
            }
        }

        self.table = table;
        self.intervals_completed = state.intervals_completed;
        self.correction = if state.budget_correction.is_finite() {
            state.budget_correction.clamp(0.5, 2.0)
        } else {
            1.0
        };
        self.expected_kept = 0.0;
        self.allocated = state.allocated;
        // The clock restarts at the next event.
        self.interval_start_us = None;
        if recompute {
            self.recompute_rates();
            self.allocated |= self.table.all().any(|s| s.basis > 0.0);
        } else {
            self.smoothed_total = self.table.all().map(|s| s.basis).sum();
        }
        if recompute {
            report.recomputed.push(state.name.clone());
        }
        Ok(())
    }
}

impl DatasetSampler {
    /// A snapshot of what every sampler learned.
    pub fn state(&self) -> SamplingState {
        SamplingState {
            version: STATE_VERSION,
            samplers: self
                .samplers()
                .filter(|(_, s)| !matches!(s.kind(), SamplerKind::Fixed { .. }))
                .map(|(name, s)| s.snapshot(name))
                .collect(),
        }
    }

    /// [`DatasetSampler::state`] as JSON.
    pub fn state_json(&self) -> String {
        serde_json::to_string(&self.state()).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Restores a snapshot into the samplers of the current config (see the module doc).
    pub fn restore(&mut self, state: SamplingState) -> Result<RestoreReport, StateError> {
        if state.version != STATE_VERSION {
            return Err(StateError::Version {
                expected: STATE_VERSION,
                found: state.version,
            });
        }
        let mut report = RestoreReport::default();
        for s in state.samplers {
            let name = s.name.clone();
            if report.restored.contains(&name) {
                report
                    .skipped
                    .push((name, "appears twice in the snapshot".into()));
                continue;
            }
            match self.sampler_mut(&name) {
                None => report
                    .skipped
                    .push((name, "no sampler of that name in the config".into())),
                Some(sampler) => match sampler.restore_from(s, &mut report) {
                    Ok(()) => report.restored.push(name),
                    Err(reason) => report.skipped.push((name, reason)),
                },
            }
        }
        Ok(report)
    }

    /// [`DatasetSampler::restore`] from JSON.
    pub fn restore_json(&mut self, json: &str) -> Result<RestoreReport, StateError> {
        let state: SamplingState =
            serde_json::from_str(json).map_err(|e| StateError::Json(e.to_string()))?;
        self.restore(state)
    }
}
