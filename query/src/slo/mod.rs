//! Service level objectives over wide events: an SLI is a predicate (which events were good)
//! over a predicate (which events count), both SQL over a dataset, weighted by `sample_rate`.
//!
//! - [`definition`]: OpenSLO v1 YAML into [`definition::Slo`], every problem named by path.
//! - [`duration`]: OpenSLO's duration shorthand (`5m`, `28d`, `1M`).
//! - [`budget`]: error ratios and their intervals, burn rates, budgets, the alert policy.

pub mod budget;
pub mod definition;
pub mod duration;

#[cfg(test)]
mod tests;
