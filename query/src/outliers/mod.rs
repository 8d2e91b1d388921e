//! "What do these events have in common?": a selection (slow or failing events) against a
//! baseline (the rest of the window), field by field and for combinations of fields, weighted
//! by `sample_rate` (issue 7).
//!
//! Built so far: [`stats`], the weighted statistics of one candidate explanation (support,
//! risk ratio, a confidence bound on effective sample sizes, eligibility). The candidate
//! search (per-field value counts by DataFusion, numeric binning, combinations, folding of
//! functionally dependent fields) and the front doors come next.

pub mod stats;
