//! The SLOs a process watches: their definitions, the alert policy, and status on demand
//! (buckets brought up to date first, so a status is never older than the data).

use std::sync::Arc;

use loupe_store::Store;

use super::buckets::{self, Cached, DatasetView, Refreshed};
use super::budget::Policy;
use super::definition::{Slo, Window};
use super::status::{self, SloStatus, StatusOptions};
use super::window::MINUTE_US;
use crate::{Error, QueryEngine, Result};

const DAY_US: i64 = 86_400 * 1_000_000;

/// SLO definitions over one store.
#[derive(Clone)]
pub struct SloService {
    engine: QueryEngine,
    store: Store,
    policy: Policy,
    slos: Arc<Vec<Slo>>,
    /// Each SLO's buckets as last refreshed; the lock makes one refresh at a time (they
    /// share one file).
    cache: Arc<Vec<tokio::sync::Mutex<Option<Cached>>>>,
}

impl SloService {
    pub fn new(engine: QueryEngine, store: Store, slos: Vec<Slo>, policy: Policy) -> Self {
        let cache = slos.iter().map(|_| tokio::sync::Mutex::new(None)).collect();
        SloService {
            engine,
            store,
            policy,
            slos: Arc::new(slos),
            cache: Arc::new(cache),
        }
    }

    pub fn slos(&self) -> &[Slo] {
        &self.slos
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How far back an SLO's buckets reach: its longest period and the policy's longest
    /// window, and a day more (so a calendar month of 31 days and the hour in progress fit).
    pub fn keep_us(&self, slo: &Slo) -> i64 {
        let period = match &slo.window {
            Window::Rolling(d) => d.micros(),
            Window::Calendar { length, .. } => match length.months() {
                Some(m) => i64::from(m) * 31 * DAY_US,
                None => length.micros(),
            },
        };
        let policy = self
            .policy
            .rules
            .iter()
            .map(|r| r.long_us.max(r.short_us))
            .max()
            .unwrap_or(0);
        period.max(policy) + DAY_US
    }

    /// Brings one SLO's buckets up to date and computes its status as of `now_us`, with the
    /// burn rate over `extra_windows` (µs) too.
    pub async fn status_of(
        &self,
        index: usize,
        now_us: i64,
        extra_windows: &[i64],
    ) -> Result<(SloStatus, Refreshed)> {
        let slo = &self.slos[index];
        let view = DatasetView::read(&self.engine, &self.store, &slo.dataset).await?;
        self.status_in(index, &view, now_us, extra_windows).await
    }

    async fn status_in(
        &self,
        index: usize,
        view: &DatasetView,
        now_us: i64,
        extra_windows: &[i64],
    ) -> Result<(SloStatus, Refreshed)> {
        let slo = &self.slos[index];
        let keep = self.keep_us(slo);
        if let Some(w) = extra_windows.iter().find(|w| **w > keep || **w < MINUTE_US) {
            return Err(Error::Query(format!(
                "a window of {} minutes: SLO {:?} keeps from 1 minute to {} days",
                w / MINUTE_US,
                slo.name,
                keep / DAY_US
            )));
        }
        let mut cached = self.cache[index].lock().await;
        let refreshed =
            buckets::refresh_in(&self.engine, view, slo, &mut cached, now_us, keep).await?;
        let b = &cached.as_ref().expect("a refresh leaves buckets").buckets;
        let opts = StatusOptions {
            now_us,
            policy: self.policy.clone(),
            extra_windows: extra_windows.to_vec(),
        };
        Ok((
            status::compute(slo, &b.minutes, &b.retired, &opts),
            refreshed,
        ))
    }

    /// Plans each SLO's counting query against its dataset without running it: a predicate
    /// over a field the dataset lacks, or that is not SQL, is reported here.
    pub async fn check(&self) -> Vec<(String, Result<()>)> {
        let mut out = Vec::new();
        for slo in self.slos.iter() {
            let planned = async {
                loupe_store::DatasetName::new(&slo.dataset)?;
                let weight = buckets::weight_expr(&self.engine, &slo.dataset).await?;
                self.engine
                    .describe(&buckets::count_sql(slo, &weight, 0, MINUTE_US))
                    .await
                    .map(|_| ())
                    .map_err(|e| buckets::predicate_error(slo, e))
            };
            out.push((slo.name.clone(), planned.await));
        }
        out
    }

    /// The index of the SLO named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.slos.iter().position(|s| s.name == name)
    }

    /// Every SLO's status; one SLO that fails (a predicate over a field the dataset lacks)
    /// does not hide the others. Each dataset is listed once for all its SLOs.
    pub async fn status_all(
        &self,
        now_us: i64,
        extra_windows: &[i64],
    ) -> Vec<(String, Result<(SloStatus, Refreshed)>)> {
        let mut views: std::collections::HashMap<&str, DatasetView> = Default::default();
        let mut out = Vec::with_capacity(self.slos.len());
        for (i, slo) in self.slos.iter().enumerate() {
            let dataset = slo.dataset.as_str();
            if !views.contains_key(dataset) {
                match DatasetView::read(&self.engine, &self.store, dataset).await {
                    Ok(v) => {
                        views.insert(dataset, v);
                    }
                    Err(e) => {
                        out.push((slo.name.clone(), Err(e)));
                        continue;
                    }
                }
            }
            let status = self
                .status_in(i, &views[dataset], now_us, extra_windows)
                .await;
            out.push((slo.name.clone(), status));
        }
        out
    }
}
