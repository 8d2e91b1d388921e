//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and
//! `tracestate` headers that carry a trace from one service to the next.

use crate::ids::{SpanId, TraceId};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` we pass on. The spec asks to propagate at least 512 characters and
/// allows truncating past that; 8 KiB keeps any sane vendor list whole.
const MAX_TRACESTATE: usize = 8192;

/// A trace context received from (or sent to) another service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The caller's span: the parent of the span that receives this context.
    pub parent_id: SpanId,
    /// The `sampled` trace flag.
    pub sampled: bool,
    /// The `tracestate` header, passed on unchanged.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// Parses a `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), and keeps `tracestate`
    /// if it is present and of sane length. `None` when the header is invalid: the spec says to
    /// start a new trace then, not to fail the request.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let tp = traceparent.trim();
        let parts: Vec<&str> = tp.splitn(5, '-').collect();
        let [version, trace, parent, flags, rest @ ..] = parts.as_slice() else {
            return None;
        };
        if version.len() != 2 || !is_lower_hex(version) || *version == "ff" {
            return None;
        }
        // Version 00 has exactly four parts; later versions may append more after a `-`, and
        // the spec asks us to parse the first four of those.
        if *version == "00" && !rest.is_empty() {
            return None;
        }
        if flags.len() != 2 || !is_lower_hex(flags) {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceContext {
            trace_id: TraceId::from_hex(trace)?,
            parent_id: SpanId::from_hex(parent)?,
            sampled: flags & 1 == 1,
            tracestate: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE)
                .map(str::to_owned),
        })
    }

    /// The `traceparent` header value, version 00.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.parent_id,
            u8::from(self.sampled)
        )
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the specification.
    const SPEC: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example_and_writes_it_back() {
        let c = TraceContext::parse(SPEC, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(c.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(c.sampled);
        assert_eq!(c.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        assert_eq!(c.traceparent(), SPEC);
    }

    #[test]
    fn unsampled_flag() {
        let c = TraceContext::parse(&SPEC.replace("-01", "-00"), None).unwrap();
        assert!(!c.sampled);
        assert!(c.traceparent().ends_with("-00"));
    }

    #[test]
    fn future_versions_parse_their_first_four_fields() {
        let c = TraceContext::parse(&format!("cc{}-what-ever", &SPEC[2..]), None).unwrap();
        assert_eq!(c.parent_id.to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn invalid_headers_are_refused() {
        for bad in [
            "",
            "garbage",
            &SPEC.replace("00-", "ff-"),
            &SPEC.to_uppercase(),
            &format!("{SPEC}-extra"),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad:?}");
        }
    }

    #[test]
    fn oversized_tracestate_is_dropped_not_the_trace() {
        let c = TraceContext::parse(SPEC, Some(&"a".repeat(MAX_TRACESTATE + 1))).unwrap();
        assert_eq!(c.tracestate, None);
    }
}
