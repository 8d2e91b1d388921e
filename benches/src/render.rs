//! Rendering a [`Draw`] as the standard event: which fields, in which order, and two sinks, one
//! appending a JSON line straight to a byte buffer (the fast path) and one building an [`Event`].
//!
//! Floats are written with exactly three decimals (thousandths), which a JSON reader turns back
//! into the same `f64` the [`EventSink`] stores, so both renderings decode to equal events.

use loupe_event::time::format_timestamp;
use loupe_event::{Event, Value};

use crate::dims::{Dim, FEATURES};
use crate::draw::{Draw, Kind};
use crate::world::{ERRORS, STATUS_FAILED, World};

/// Where rendered fields go. Keys are static names; string values never need JSON escaping
/// (the world checks its pools, and the generated strings are ASCII letters, digits and
/// punctuation other than `"` and `\`).
pub(crate) trait Sink {
    fn str(&mut self, key: &'static str, value: &str);
    /// A string value given in pieces, to be concatenated.
    fn str_parts(&mut self, key: &'static str, parts: &[&str]);
    fn int(&mut self, key: &'static str, value: i64);
    /// A float given in thousandths.
    fn milli(&mut self, key: &'static str, thousandths: i64);
    fn bool(&mut self, key: &'static str, value: bool);
    fn null(&mut self, key: &'static str);
}

/// The `sample_rate` every event carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rate {
    Int(i64),
    Milli(i64),
}

impl Rate {
    /// The rate as written: integral rates as ints, others to the thousandth.
    pub(crate) fn new(rate: f64) -> Rate {
        let m = milli(rate);
        if m % 1_000 == 0 {
            Rate::Int(m / 1_000)
        } else {
            Rate::Milli(m)
        }
    }
}

/// `x` in thousandths, rounded.
pub(crate) fn milli(x: f64) -> i64 {
    (x * 1_000.0).round() as i64
}

/// Renders the event `d` describes into `sink`.
pub(crate) fn render<S: Sink>(w: &World, d: &Draw, clock: &mut Clock, rate: Rate, sink: &mut S) {
    let pod = &w.pods[usize::from(d.pod)];
    let ts = clock.rfc3339(d.ts_us);
    sink.str("timestamp", ascii(&ts));
    sink.milli("duration_ms", milli(d.duration_ms));
    for dim in [Dim::Name, Dim::ServiceName, Dim::ServiceVersion] {
        categorical(sink, w, d, dim);
    }
    let mut trace = Text::<32>::new();
    trace.hex(d.trace_id.0, 16);
    trace.hex(d.trace_id.1, 16);
    sink.str("trace.trace_id", trace.as_str());
    let mut span = Text::<16>::new();
    span.hex(d.span_id, 16);
    sink.str("trace.span_id", span.as_str());
    match d.parent_id {
        Some(p) => {
            let mut parent = Text::<16>::new();
            parent.hex(p, 16);
            sink.str("trace.parent_id", parent.as_str());
        }
        None => sink.null("trace.parent_id"),
    }
    let span_kind = if d.kind == Kind::Job {
        "consumer"
    } else {
        "server"
    };
    sink.str("span.kind", span_kind);
    sink.str("deployment.environment", "production");
    sink.str("cloud.provider", "aws");
    for dim in [
        Dim::Region,
        Dim::Zone,
        Dim::Host,
        Dim::Kernel,
        Dim::Namespace,
        Dim::Pod,
        Dim::Image,
        Dim::Build,
        Dim::Runtime,
    ] {
        categorical(sink, w, d, dim);
    }
    sink.int("process.pid", pod.pid);

    let (status, grpc_status) = if d.error {
        STATUS_FAILED[usize::from(d.failure)]
    } else {
        (d.status_ok, 0)
    };
    match d.kind {
        Kind::Http => {
            categorical(sink, w, d, Dim::HttpMethod);
            categorical(sink, w, d, Dim::HttpRoute);
            sink.int("http.status_code", status);
            sink.str("http.scheme", "https");
            categorical(sink, w, d, Dim::HttpHost);
            sink.int("http.request_content_length", d.request_bytes);
            sink.int("http.response_content_length", d.response_bytes);
            categorical(sink, w, d, Dim::UserAgent);
        }
        Kind::Grpc => {
            sink.str("rpc.system", "grpc");
            categorical(sink, w, d, Dim::RpcService);
            categorical(sink, w, d, Dim::RpcMethod);
            sink.int("rpc.grpc.status_code", grpc_status);
        }
        Kind::Job => {
            categorical(sink, w, d, Dim::JobName);
            categorical(sink, w, d, Dim::JobQueue);
            categorical(sink, w, d, Dim::MessagingSystem);
            sink.int("job.attempt", 1 + d.retries);
        }
    }
    if d.kind != Kind::Job {
        categorical(sink, w, d, Dim::ProtocolVersion);
        categorical(sink, w, d, Dim::TlsVersion);
        sink.str("client.ip", client_ip(d.client_ip).as_str());
    }

    let mut user = Text::<16>::new();
    user.push(b"usr_");
    user.decimal(u64::from(d.user), 7);
    sink.str("user.id", user.as_str());
    for dim in [Dim::UserPlan, Dim::UserCountry, Dim::Locale] {
        categorical(sink, w, d, dim);
    }
    let mut session = Text::<16>::new();
    session.hex(d.session, 16);
    sink.str("session.id", session.as_str());
    categorical(sink, w, d, Dim::AuthMethod);
    categorical(sink, w, d, Dim::CustomerId);
    for i in 0..FEATURES.len() {
        categorical(sink, w, d, Dim::Feature(i as u8));
    }

    categorical(sink, w, d, Dim::DbSystem);
    categorical(sink, w, d, Dim::DbFingerprint);
    sink.milli("db.duration_ms", milli(d.db_ms));
    sink.int("db.count", d.db_count);
    categorical(sink, w, d, Dim::CacheHit);
    sink.milli("cache.duration_ms", milli(d.cache_ms));
    sink.milli("queue.wait_ms", milli(d.queue_wait_ms));
    sink.int("retry.count", d.retries);
    sink.int("payload.items", d.items);
    sink.int("rate_limit.remaining", d.rate_limit_left);
    sink.milli("cpu.time_ms", milli(d.cpu_ms));
    if let Some(cents) = d.payment_cents {
        sink.int("payment.amount_cents", cents);
    }

    sink.bool("error", d.error);
    if d.error {
        let (kind, message, id_name) = ERRORS[usize::from(d.error_type)];
        sink.str("error.type", kind);
        let mut id = Text::<12>::new();
        id.hex(d.error_id, 12);
        sink.str_parts(
            "error.message",
            &[message, " (", id_name, "=", id.as_str(), ")"],
        );
    }

    let s = &d.sparse;
    if let Some(v) = s.experiment {
        sink.str("experiment.id", v);
    }
    if let Some(v) = s.app_build {
        sink.int("client.app_build", v);
    }
    if let Some(v) = s.rows_examined {
        sink.int("db.rows_examined", v);
    }
    if let Some(v) = s.upstream_timeout_ms {
        sink.int("upstream.timeout_ms", v);
    }
    if let Some(v) = s.cache_evictions {
        sink.int("cache.evictions", v);
    }
    if let Some(v) = s.gc_pause_ms {
        sink.milli("gc.pause_ms", milli(v));
    }
    if let Some(v) = s.debug_flags {
        sink.str("debug.flags", v);
    }

    match rate {
        Rate::Int(i) => sink.int("sample_rate", i),
        Rate::Milli(m) => sink.milli("sample_rate", m),
    }
}

/// Writes a categorical field, if the event has it.
#[inline]
fn categorical<S: Sink>(sink: &mut S, w: &World, d: &Draw, dim: Dim) {
    if let Some(i) = w.value_of(dim, d) {
        if dim.is_bool() {
            sink.bool(dim.field(), i == 1);
        } else {
            sink.str(dim.field(), &w.values(dim)[usize::from(i)]);
        }
    }
}

/// The address of client number `i` (below 2^24): distinct numbers give distinct addresses,
/// since the low three octets are a bijection of `i`.
fn client_ip(i: u32) -> Text<15> {
    const FIRST_OCTETS: [u64; 8] = [23, 34, 52, 73, 88, 104, 142, 185];
    let low = u64::from(i.wrapping_mul(0x9E37_79B1) & 0x00FF_FFFF);
    let mut t = Text::<15>::new();
    t.decimal(FIRST_OCTETS[(i % 8) as usize], 1);
    for shift in [16, 8, 0] {
        t.push(b".");
        t.decimal((low >> shift) & 0xFF, 1);
    }
    t
}

/// Text built on the stack, for the generated values (ids, addresses, times).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    pub(crate) fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends ASCII bytes (truncated at capacity, which the callers size to never reach).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// Appends `v` in decimal, zero-padded to at least `width` digits.
    pub(crate) fn decimal(&mut self, mut v: u64, width: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        while digits.len() - i < width && i > 0 {
            i -= 1;
            digits[i] = b'0';
        }
        self.push(&digits[i..]);
    }

    /// Appends the low `digits` hex digits of `v`, lowercase.
    pub(crate) fn hex(&mut self, v: u64, digits: u32) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for k in 0..digits {
            let nibble = (v >> (4 * (digits - 1 - k))) & 0xF;
            out[k as usize] = HEX[nibble as usize];
        }
        self.push(&out[..digits as usize]);
    }

    pub(crate) fn as_str(&self) -> &str {
        ascii(&self.buf[..self.len])
    }
}

/// Bytes known to be ASCII, as a `&str`.
fn ascii(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// Formats timestamps like [`format_timestamp`] (`2026-11-23T04:05:06.789012Z`), calling it only
/// once per day: the date is cached, the time of day written directly.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    day: i64,
    date: [u8; 11],
}

const DAY_US: i64 = 86_400_000_000;

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            day: i64::MIN,
            date: *b"1970-01-01T",
        }
    }

    /// `us` (which must lie in years 1970 to 9999) as RFC 3339 with microseconds and `Z`.
    pub(crate) fn rfc3339(&mut self, us: i64) -> [u8; 27] {
        let day = us.div_euclid(DAY_US);
        if day != self.day {
            let midnight = format_timestamp(day * DAY_US);
            if let Some(date) = midnight.as_bytes().get(..11) {
                self.date.copy_from_slice(date);
            }
            self.day = day;
        }
        let of_day = us.rem_euclid(DAY_US);
        let (secs, micros) = (of_day / 1_000_000, of_day % 1_000_000);
        let mut t = Text::<27>::new();
        t.push(&self.date);
        t.decimal((secs / 3_600) as u64, 2);
        t.push(b":");
        t.decimal((secs / 60 % 60) as u64, 2);
        t.push(b":");
        t.decimal((secs % 60) as u64, 2);
        t.push(b".");
        t.decimal(micros as u64, 6);
        t.push(b"Z");
        t.buf
    }
}

/// Appends one JSON object per event, as a line.
pub(crate) struct JsonSink<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonSink<'a> {
    pub(crate) fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        JsonSink { out, first: true }
    }

    pub(crate) fn end(self) {
        self.out.extend_from_slice(b"}\n");
    }

    #[inline]
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    #[inline]
    fn decimal(&mut self, v: i64) {
        if v < 0 {
            self.out.push(b'-');
        }
        let mut t = Text::<20>::new();
        t.decimal(v.unsigned_abs(), 1);
        self.out.extend_from_slice(&t.buf[..t.len]);
    }
}

impl Sink for JsonSink<'_> {
    #[inline]
    fn str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        debug_assert!(crate::world::json_plain(value), "{value:?}");
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    fn str_parts(&mut self, key: &'static str, parts: &[&str]) {
        self.key(key);
        self.out.push(b'"');
        for p in parts {
            debug_assert!(crate::world::json_plain(p), "{p:?}");
            self.out.extend_from_slice(p.as_bytes());
        }
        self.out.push(b'"');
    }

    #[inline]
    fn int(&mut self, key: &'static str, value: i64) {
        self.key(key);
        self.decimal(value);
    }

    #[inline]
    fn milli(&mut self, key: &'static str, thousandths: i64) {
        self.key(key);
        if thousandths < 0 {
            self.out.push(b'-');
        }
        let abs = thousandths.unsigned_abs();
        self.decimal((abs / 1_000) as i64);
        let mut frac = Text::<3>::new();
        frac.decimal(abs % 1_000, 3);
        self.out.push(b'.');
        self.out.extend_from_slice(&frac.buf);
    }

    #[inline]
    fn bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    #[inline]
    fn null(&mut self, key: &'static str) {
        self.key(key);
        self.out.extend_from_slice(b"null");
    }
}

/// Builds an [`Event`].
#[derive(Debug, Default)]
pub(crate) struct EventSink {
    pub(crate) event: Event,
}

impl Sink for EventSink {
    fn str(&mut self, key: &'static str, value: &str) {
        self.event.insert(key, value);
    }

    fn str_parts(&mut self, key: &'static str, parts: &[&str]) {
        self.event.insert(key, parts.concat());
    }

    fn int(&mut self, key: &'static str, value: i64) {
        self.event.insert(key, value);
    }

    fn milli(&mut self, key: &'static str, thousandths: i64) {
        // The same f64 a JSON reader makes of the three-decimal text.
        self.event.insert(key, thousandths as f64 / 1_000.0);
    }

    fn bool(&mut self, key: &'static str, value: bool) {
        self.event.insert(key, value);
    }

    fn null(&mut self, key: &'static str) {
        self.event.insert(key, Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::WorkloadRng;

    #[test]
    fn clock_agrees_with_format_timestamp() {
        let mut clock = Clock::new();
        let mut rng = WorkloadRng::seeded(9);
        let start = 1_795_392_000_000_000; // 2026-11-23T00:00:00Z
        let mut us = start - 3 * DAY_US;
        for _ in 0..5_000 {
            us += rng.below(200_000_000) as i64 - 20_000_000;
            let ours = clock.rfc3339(us);
            assert_eq!(ascii(&ours), format_timestamp(us), "{us}");
        }
        for us in [0, 1, DAY_US - 1, DAY_US, start, start - 1] {
            assert_eq!(ascii(&clock.rfc3339(us)), format_timestamp(us), "{us}");
        }
    }

    #[test]
    fn numbers_are_written_as_json_reads_them() {
        let mut out = Vec::new();
        let mut sink = JsonSink::begin(&mut out);
        sink.int("a", -42);
        sink.int("b", i64::MIN);
        sink.milli("c", 45_123);
        sink.milli("d", -7);
        sink.milli("e", 3_000);
        sink.null("f");
        sink.bool("g", false);
        sink.end();
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            "{\"a\":-42,\"b\":-9223372036854775808,\"c\":45.123,\"d\":-0.007,\"e\":3.000,\
             \"f\":null,\"g\":false}\n"
        );
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["c"].as_f64(), Some(45_123.0 / 1_000.0));
        assert_eq!(v["d"].as_f64(), Some(-7.0 / 1_000.0));
    }

    #[test]
    fn text_pads_and_client_ips_are_distinct() {
        let mut t = Text::<16>::new();
        t.decimal(42, 7);
        t.hex(0xab, 4);
        assert_eq!(t.as_str(), "000004200ab");
        let ips: std::collections::HashSet<String> = (0..50_000)
            .map(|i| client_ip(i).as_str().to_owned())
            .collect();
        assert_eq!(ips.len(), 50_000);
    }
}
