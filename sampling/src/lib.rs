//! loupe samplers and rules: pure functions from an event, its key and the time to a keep
//! decision and the weight a kept event carries.
//!
//! Not built yet (issue 5). The collector already has the place it plugs in: between validation
//! and the WAL append (`loupe-collector`'s `ingest` module), so dropped events never cost a write
//! and every kept event will record `sample_rate` = upstream rate x this rate. Until then the
//! collector keeps every event with its upstream weight.
