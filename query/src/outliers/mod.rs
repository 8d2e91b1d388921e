//! "What do these events have in common?": a selection (slow or failing events) against a
//! baseline (the rest of the window), field by field and for combinations of fields, weighted
//! by `sample_rate` (issue 7).
//!
//! Built so far, pure and tested:
//! - [`stats`]: the weighted statistics of one candidate explanation (support, risk ratio, a
//!   confidence bound on effective sample sizes, eligibility);
//! - [`counts`]: one pass over `(selected, weight, fields...)` batches counting every field's
//!   values on both sides at once, numeric fields by bins, identifiers recognised and dropped;
//! - [`rank`]: single-field explanations, best first by the lower confidence bound;
//! - [`analyze`]: `QueryEngine::outliers`, the two DataFusion passes over a window (decile bins
//!   of float fields, then one streamed scan into [`counts`]), fields the predicates use left
//!   out.
//!
//! Next: combinations of two and three fields among the strongest singles, folding
//! functionally dependent fields, the BubbleUp-style per-field view, and the front doors
//! (`loupe outliers`, `POST /api/v1/outliers`, the `outliers(...)` table function).

pub mod analyze;
pub mod combos;
pub mod counts;
pub mod rank;
pub mod request;
pub mod stats;
