//! OTLP/HTTP with `Content-Type: application/x-protobuf`: `otlp::decode_traces` and
//! `otlp::decode_logs` on the same body. The checks are in `loupe_fuzz::otlp`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_collector::otlp::OtlpFormat;

fuzz_target!(|body: &[u8]| loupe_fuzz::otlp::check(body, OtlpFormat::Protobuf));
