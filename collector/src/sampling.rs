//! The sampling stage: per dataset, between validation and the WAL, so a dropped event never
//! costs a write and every kept event records the weight that makes queries estimate the whole
//! (`sample_rate` = upstream weight × this stage's rate, with `meta.sample_key` and
//! `meta.sample_rule` saying why it was kept).
//!
//! Which datasets are sampled: those with a `[datasets.<name>.sampling]` section, and every
//! other client dataset when there is a `[datasets."*".sampling]` section. The collector's own
//! dataset (`_loupe`) never is. An unsampled dataset stores every valid event with the weight
//! it arrived with.
//!
//! What the samplers learned (per-key rates) is saved to `<dataset>/_sampling/state.json`
//! ([`loupe_store::DatasetDir::sampling_state_path`]) now and then and at shutdown, restored
//! when the dataset's sampler is made, and carried over when the configuration is reloaded.
//! A lost or unreadable snapshot only costs the warm-up (new keys are kept at rate 1 until an
//! interval has passed), so it is logged and never stops ingest.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use loupe_event::ValidEvent;
use loupe_sampling::{ConfigProblem, DatasetSampler, RestoreReport, SamplingConfig};
use loupe_store::{DatasetName, Store, fsutil};

/// The dataset-name key of the section that applies to every dataset without its own.
pub const ALL_DATASETS: &str = "*";

/// One dataset's settings (`[datasets.<name>]` in `loupe.toml`).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    pub sampling: Option<SamplingConfig>,
}

/// Every dataset's settings, by dataset name (or [`ALL_DATASETS`]).
pub type DatasetConfigs = BTreeMap<String, DatasetConfig>;

/// Every problem in the dataset sections, each with its path from the file's root
/// (`datasets.api.sampling.rules[1].when`), so the binary can point at the line.
pub fn dataset_problems(datasets: &DatasetConfigs) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    for (name, d) in datasets {
        if name != ALL_DATASETS
            && let Err(e) = DatasetName::new(name)
        {
            out.push(ConfigProblem {
                path: format!("datasets.{name}"),
                message: format!("{e} (or \"{ALL_DATASETS}\" for every dataset)"),
            });
        }
        if let Some(s) = &d.sampling {
            out.extend(s.validate().into_iter().map(|p| ConfigProblem {
                path: format!("datasets.{name}.{}", p.path),
                message: p.message,
            }));
        }
    }
    out
}

/// A dataset's sampler and what it has done.
struct Active {
    sampler: DatasetSampler,
    /// Decisions were made since the last save.
    dirty: bool,
    seen: u64,
    kept: u64,
    /// Sum of the weights of the kept events (what they stand for).
    kept_weight: f64,
}

impl Active {
    /// A new sampler with zeroed counters, ready to share between requests.
    fn shared(sampler: DatasetSampler, dirty: bool) -> Arc<Mutex<Active>> {
        Arc::new(Mutex::new(Active {
            sampler,
            dirty,
            seen: 0,
            kept: 0,
            kept_weight: 0.0,
        }))
    }
}

/// What happened to one request's events in the sampling stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sampled {
    pub(crate) dropped: usize,
}

/// What a reload changed, per dataset that had a sampler running.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReloadReport {
    /// Datasets whose sampler was rebuilt, with what of the old state carried over.
    pub rebuilt: Vec<(String, RestoreReport)>,
    /// Datasets no longer sampled.
    pub stopped: Vec<String>,
}

pub(crate) struct SamplingStage {
    store: Store,
    configs: RwLock<BTreeMap<String, SamplingConfig>>,
    /// Samplers of the datasets seen since start-up (or the last reload); `None` for a dataset
    /// that is not sampled, so the lookup is made once.
    active: RwLock<HashMap<DatasetName, Option<Arc<Mutex<Active>>>>>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

fn sampling_sections(datasets: &DatasetConfigs) -> BTreeMap<String, SamplingConfig> {
    datasets
        .iter()
        .filter_map(|(name, d)| d.sampling.clone().map(|s| (name.clone(), s)))
        .collect()
}

impl SamplingStage {
    /// The stage for validated settings ([`dataset_problems`] found nothing).
    pub(crate) fn new(store: Store, datasets: &DatasetConfigs) -> Self {
        SamplingStage {
            store,
            configs: RwLock::new(sampling_sections(datasets)),
            active: RwLock::new(HashMap::new()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }

    fn config_for(&self, name: &DatasetName) -> Option<SamplingConfig> {
        if name.as_str().starts_with('_') {
            return None;
        }
        let configs = self.configs.read().expect("sampling configs lock");
        configs
            .get(name.as_str())
            .or_else(|| configs.get(ALL_DATASETS))
            .cloned()
    }

    /// The dataset's sampler, made (and its saved state restored) on first use.
    fn sampler(&self, name: &DatasetName) -> Option<Arc<Mutex<Active>>> {
        if let Some(a) = self.active.read().expect("samplers lock").get(name) {
            return a.clone();
        }
        let made = self.config_for(name).map(|config| {
            let mut sampler = config
                .build()
                .expect("sampling configs are validated before they are installed");
            self.restore_saved(name, &mut sampler);
            Active::shared(sampler, false)
        });
        // Another request may have made it meanwhile: the first one in wins, so every request
        // of the dataset shares one sampler.
        self.active
            .write()
            .expect("samplers lock")
            .entry(name.clone())
            .or_insert(made)
            .clone()
    }

    fn restore_saved(&self, name: &DatasetName, sampler: &mut DatasetSampler) {
        let path = self.store.dataset(name).sampling_state_path();
        let json = match std::fs::read_to_string(&path) {
            Ok(j) => j,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(dataset = %name, path = %path.display(), error = %e,
                    "cannot read the saved sampler state; the samplers start fresh");
                return;
            }
        };
        match sampler.restore_json(&json) {
            Ok(report) => {
                tracing::info!(dataset = %name, restored = ?report.restored,
                    skipped = ?report.skipped, recomputed = ?report.recomputed,
                    "restored the saved sampler state");
            }
            Err(e) => {
                tracing::warn!(dataset = %name, path = %path.display(), error = %e,
                    "the saved sampler state does not fit; the samplers start fresh");
            }
        }
    }

    /// Samples `events` in place: dropped events are removed, kept ones annotated. Returns how
    /// many were dropped.
    pub(crate) fn apply(
        &self,
        name: &DatasetName,
        events: &mut Vec<ValidEvent>,
        now_us: i64,
    ) -> Sampled {
        let Some(active) = self.sampler(name) else {
            return Sampled::default();
        };
        let before = events.len();
        let mut a = active.lock().expect("sampler lock");
        let mut kept_weight = 0.0;
        events.retain_mut(|e| {
            let d = a.sampler.decide_valid(e, now_us);
            if d.keep {
                d.annotate_valid(e);
                kept_weight += e.sample_rate();
            }
            d.keep
        });
        a.seen += before as u64;
        a.kept += events.len() as u64;
        a.kept_weight += kept_weight;
        a.dirty |= before > 0;
        Sampled {
            dropped: before - events.len(),
        }
    }

    /// Ends the intervals of idle samplers (a dataset that went quiet still gets its rates
    /// recomputed, so its next burst is not sampled at stale rates).
    pub(crate) fn advance(&self, now_us: i64) {
        for a in self.all_active() {
            a.lock().expect("sampler lock").sampler.advance(now_us);
        }
    }

    fn all_active(&self) -> Vec<Arc<Mutex<Active>>> {
        self.active
            .read()
            .expect("samplers lock")
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    /// Writes the state of every sampler that decided something since its last save. Blocking
    /// (file writes and fsyncs): call it from a blocking thread.
    pub(crate) fn save_blocking(&self) -> Result<usize, loupe_store::Error> {
        let active: Vec<(DatasetName, Arc<Mutex<Active>>)> = self
            .active
            .read()
            .expect("samplers lock")
            .iter()
            .filter_map(|(n, a)| a.clone().map(|a| (n.clone(), a)))
            .collect();
        let mut saved = 0;
        for (name, a) in active {
            let json = {
                let mut a = a.lock().expect("sampler lock");
                if !a.dirty {
                    continue;
                }
                a.dirty = false;
                a.sampler.state_json()
            };
            let path = self.store.dataset(&name).sampling_state_path();
            let write = path
                .parent()
                .map_or(Ok(()), fsutil::create_dir_durable)
                .and_then(|()| fsutil::write_atomic(&path, json.as_bytes()));
            if let Err(e) = write {
                // Marked dirty again so the next round tries again.
                a.lock().expect("sampler lock").dirty = true;
                return Err(e);
            }
            saved += 1;
        }
        Ok(saved)
    }

    /// Installs new dataset settings. Nothing changes unless all of them are valid. Running
    /// samplers are rebuilt under the new settings with what they learned carried over (see
    /// `loupe_sampling::state` for what carries over when options change).
    pub(crate) fn reload(
        &self,
        datasets: &DatasetConfigs,
    ) -> Result<ReloadReport, Vec<ConfigProblem>> {
        let problems = dataset_problems(datasets);
        if !problems.is_empty() {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
            return Err(problems);
        }
        self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        *self.configs.write().expect("sampling configs lock") = sampling_sections(datasets);
        let mut report = ReloadReport::default();
        let mut active = self.active.write().expect("samplers lock");
        let names: Vec<DatasetName> = active.keys().cloned().collect();
        for name in names {
            let old = active.get(&name).cloned().flatten();
            match (self.config_for(&name), old) {
                (None, None) => {}
                (None, Some(_)) => {
                    active.insert(name.clone(), None);
                    report.stopped.push(name.to_string());
                }
                (Some(config), old) => {
                    let mut sampler = config.build().expect("validated above");
                    let restored = match &old {
                        Some(old) => {
                            let state = old.lock().expect("sampler lock").sampler.state();
                            sampler.restore(state).unwrap_or_default()
                        }
                        None => {
                            self.restore_saved(&name, &mut sampler);
                            RestoreReport::default()
                        }
                    };
                    match old {
                        // Same mutex, so requests holding it finish on the old sampler and
                        // the next one uses the new; the counters go on.
                        Some(old) => {
                            let mut a = old.lock().expect("sampler lock");
                            a.sampler = sampler;
                            a.dirty = true;
                        }
                        None => {
                            active.insert(name.clone(), Some(Active::shared(sampler, true)));
                        }
                    }
                    report.rebuilt.push((name.to_string(), restored));
                }
            }
        }
        Ok(report)
    }

    /// The effective configuration of `name`'s sampler in words, if it is sampled.
    pub(crate) fn explain(&self, name: &DatasetName) -> Option<String> {
        self.sampler(name)
            .map(|a| a.lock().expect("sampler lock").sampler.explain())
    }

    /// `loupe_sampling_*` metrics, in the Prometheus text format.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        let mut rows: Vec<(String, u64, u64, f64)> = self
            .active
            .read()
            .expect("samplers lock")
            .iter()
            .filter_map(|(n, a)| {
                let a = a.as_ref()?.lock().expect("sampler lock");
                Some((n.to_string(), a.seen, a.kept, a.kept_weight))
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(
            out,
            "# HELP loupe_sampling_reloads_total Reloads of the dataset settings (SIGHUP), by result.\n\
             # TYPE loupe_sampling_reloads_total counter\n\
             loupe_sampling_reloads_total{{result=\"ok\"}} {}\n\
             loupe_sampling_reloads_total{{result=\"error\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP loupe_sampling_events_total Valid events that reached a dataset's sampler, by decision.\n\
             # TYPE loupe_sampling_events_total counter"
        );
        for (name, seen, kept, _) in &rows {
            let _ = writeln!(
                out,
                "loupe_sampling_events_total{{dataset=\"{name}\",decision=\"kept\"}} {kept}\n\
                 loupe_sampling_events_total{{dataset=\"{name}\",decision=\"dropped\"}} {}",
                seen - kept
            );
        }
        let _ = writeln!(
            out,
            "# HELP loupe_sampling_kept_weight_total Sum of sample_rate over the kept events: the events they stand for.\n\
             # TYPE loupe_sampling_kept_weight_total counter"
        );
        for (name, _, _, weight) in &rows {
            let _ = writeln!(
                out,
                "loupe_sampling_kept_weight_total{{dataset=\"{name}\"}} {weight}"
            );
        }
    }
}
