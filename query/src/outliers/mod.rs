//! "What do these events have in common?": a selection (slow or failing events) against a
//! baseline (the rest of the window), field by field and for combinations of fields, weighted
//! by `sample_rate` (issue 7).
//!
//! The parts, each pure and tested on its own except the DataFusion passes:
//! - [`request`]: the question as the front doors receive it (`--since 1h`, `p99 duration_ms`);
//! - [`analyze`]: `QueryEngine::outliers`, the DataFusion passes over a window (streamed
//!   scans into [`counts`], then [`combos`]), fields the predicates use left out, and the
//!   [`analyze::Report`];
//! - [`numeric`]: how numeric fields are counted, and their correlation with the measure;
//! - [`fine`]: the fine buckets numbers are counted by until their deciles are known;
//! - [`values`]: one column's values as the counters see them, whatever its Arrow encoding;
//! - [`counts`]: every field's values on both sides at once, identifiers recognised and dropped;
//! - [`shift`]: for a threshold on a measure, whether a candidate's measure is higher than
//!   the rest's (the information the threshold throws away);
//! - [`stats`]: the weighted statistics of one candidate (support, risk ratio, a confidence
//!   bound on effective sample sizes, eligibility);
//! - [`rank`]: single-field explanations, best first, functionally dependent values folded;
//! - [`combos`]: conjunctions of two and three of the strongest values;
//! - [`masks`]: which candidates each row holds, as bits, for [`combos`];
//! - [`sets`]: the rows of each distinct set of candidates, summed in parts for [`combos`];
//! - [`order`]: the order of the answer where findings nest (a cause before its lucky
//!   subsets and the terms it explains);
//! - [`view`]: the BubbleUp-style per-field view;
//! - [`text`]: the report for a terminal;
//! - [`summary`]: a file's counts, written beside it, that a question takes for its rows;
//! - [`summary_cache`]: the summaries read, kept for the next question;
//! - [`table_fn`]: the `outliers(...)` SQL table function.
//!
//! The front doors: `loupe outliers`, `POST /api/v1/outliers` (`crate::http`) and the table
//! function.

pub mod analyze;
pub mod combos;
pub mod counts;
pub mod fine;
pub mod masks;
pub mod numeric;
pub mod order;
pub mod rank;
pub mod request;
pub mod sets;
pub mod shift;
pub mod stats;
pub mod summary;
pub mod summary_cache;
pub mod table_fn;
pub mod text;
pub mod values;
pub mod view;
