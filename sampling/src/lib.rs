//! loupe samplers and rules: pure functions from an event, its key and the time to a keep
//! decision and the weight a kept event carries.
//!
//! Today this crate holds the piece every sampler shares: [`consistent`], the keep decision
//! that is a deterministic function of a trace id and a rate, so every span of a trace is kept
//! or dropped together on any process (the SDK's head sampling uses it already). The dynamic
//! samplers and rules are issue 5; they plug into the collector between validation and the WAL
//! (`loupe-collector`'s `ingest` module), so dropped events never cost a write and every kept
//! event records `sample_rate` = upstream rate x this rate.

pub mod consistent;
