//! End-to-end tests: the `loupe` binary and the crates together. One test binary; one module per
//! area; every test has its own temporary directory and server.

mod auth;
mod backpressure;
mod compaction;
mod demo;
mod durability;
mod honeycomb;
mod http_api;
mod import;
mod otlp;
mod outliers;
mod postgres;
mod query_limits;
mod sampling;
mod sdk;
mod slo;
mod support;
mod telemetry;
