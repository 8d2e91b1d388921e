//! loupe SDK: a `tracing-subscriber` layer that folds a request's spans into one wide event.
//!
//! Not built yet (issue 3). Events sent to the collector today come from any HTTP client
//! (`POST /v1/events/{dataset}`), or from `loupe demo`'s simulated services.
