//! Service level objectives over wide events: an SLI is a predicate (which events were good)
//! over a predicate (which events count), both SQL over a dataset, weighted by `sample_rate`.
//!
//! - [`definition`]: OpenSLO v1 YAML into [`definition::Slo`], every problem named by path.
//! - [`duration`]: OpenSLO's duration shorthand (`5m`, `28d`, `1M`).
//! - [`budget`]: error ratios and their intervals, burn rates, budgets, the alert policy.
//! - [`window`]: where the period lies (rolling, calendar in a time zone).
//! - [`buckets`]: per-minute weighted tallies materialised as Parquet, kept current.
//! - [`status`]: SLI, budget, burn rates and alerts from the buckets.
//! - [`feed`]: Prometheus exposition and remote write of statuses.
//! - [`report`]: the status as text and JSON; [`api`]: its HTTP routes.
//! - [`service`]: the definitions a process watches, status on demand.

pub mod api;
pub mod buckets;
pub mod budget;
pub mod config;
pub mod definition;
pub mod duration;
pub mod feed;
pub mod report;
pub mod service;
pub mod status;
pub mod window;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_feed;
#[cfg(test)]
mod tests_status;
