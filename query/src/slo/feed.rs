//! What budget tools read: the Prometheus text exposition of SLO statuses ([`render_metrics`],
//! for `/metrics`) and the same series pushed by Prometheus remote write 1.0
//! ([`write_request`], [`encode`], [`push`]). Both are built from one list of series, so a
//! scrape and a push can never disagree.
//!
//! Every series of an objective carries `sloth_id="<service>-<sloth_slo>"`, `sloth_service`,
//! `sloth_slo` (the SLO's name when it has one objective, else `<slo>-<objective>`), `slo` and
//! `objective` (its display name, or `objective-N`), so the dashboards made for Sloth's
//! recording rules read loupe's series as they are. A label whose value is empty is left out.
//!
//! The names below are a stable contract. `<W>` is a window in Prometheus' duration form
//! ([`prom_duration`]: `5m`, `1h`, `3d`, `4w` for 28 days); windows are the alert policy's.
//!
//! | family | type | extra labels | value |
//! |---|---|---|---|
//! | `slo:sli_error:ratio_rate<W>` | gauge | `sloth_window="<W>"` | error ratio over each window, and over the period so far (`<W>` the period's length) |
//! | `slo:objective:ratio` | gauge | | target |
//! | `slo:error_budget:ratio` | gauge | | `1 - target` |
//! | `slo:time_period:days` | gauge | | the period's length in days |
//! | `slo:current_burn_rate:ratio` | gauge | | burn rate over the shortest window |
//! | `slo:period_burn_rate:ratio` | gauge | | burn rate over the period so far |
//! | `slo:period_error_budget_remaining:ratio` | gauge | | `1 - period burn rate` |
//! | `sloth_slo_info` | gauge | `sloth_mode="loupe"`, `sloth_objective` (target in %) | 1 |
//! | `loupe_slo_events_total` | counter | `outcome="good"\|"total"` | weighted events (Σ sample rate) |
//! | `loupe_slo_stored_events_total` | counter | `outcome="good"\|"total"` | stored rows |
//! | `loupe_slo_burn_rate` | gauge | `window` | burn rate over each window |
//! | `loupe_slo_error_ratio` | gauge | `window` | error ratio over each window |
//! | `loupe_slo_error_ratio_lower` | gauge | `window` | lower end of its 95% Wilson interval |
//! | `loupe_slo_error_ratio_upper` | gauge | `window` | upper end of its 95% Wilson interval |
//! | `loupe_slo_effective_events` | gauge | `window` | effective events (or slices with data) behind it |
//! | `loupe_slo_budget_remaining_ratio` | gauge | | `1 - period burn rate`: 1 untouched, 0 spent, < 0 overspent |
//! | `loupe_slo_sli` | gauge | | good share over the period so far |
//! | `loupe_slo_exhaustion_seconds` | gauge | | time until the budget is spent at the last hour's burn |
//! | `loupe_slo_alert` | gauge | `severity`, `long_window`, `short_window`, `burn_threshold` | 1 firing, 0 not |
//!
//! A number that does not exist is a missing sample, never NaN: a window without traffic has
//! no error ratio, burn rate or interval (a NaN would spread into every `sum_over_time` over
//! it), a budget that is not burning has no exhaustion time. The counters only grow while
//! the SLO's definition stays the same (they count the minutes no longer kept too).
//!
//! ```text
//! # HELP slo:objective:ratio The objective's target share of good events (Sloth-compatible).
//! # TYPE slo:objective:ratio gauge
//! slo:objective:ratio{sloth_id="shop-checkout",sloth_service="shop",sloth_slo="checkout",slo="checkout",objective="objective-1"} 0.999
//! ```
//!
//! Remote write (<https://prometheus.io/docs/specs/remote_write_spec>): each series gets
//! `__name__` and its labels sorted by name, one sample at the push's timestamp; the protobuf
//! body is compressed in Snappy's raw block format (the framed format must not be used) and
//! POSTed with the spec's headers. 5xx and 429 (and a failed connection) are
//! [`PushError::Retryable`]; any other 4xx is [`PushError::Rejected`] and must not be sent
//! again.

use std::collections::HashSet;
use std::fmt::Write as _;

use prost::Message as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};

use super::status::{ObjectiveStatus, SloStatus};
use Kind::{Counter, Gauge};

const DAY_US: i64 = 86_400_000_000;

/// The bytes of a rejected push's response body kept in [`PushError::Rejected`].
pub const BODY_EXCERPT_BYTES: usize = 512;

const USER_AGENT_VALUE: &str = concat!("loupe/", env!("CARGO_PKG_VERSION"));

/// Remote write 1.0's request: the series, each with its samples.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// In timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Why a push failed, and whether sending it again may help (the spec: retry 5xx, may retry
/// 429, never retry another 4xx).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The receiver could not take it now (5xx, 429) or was not reached (connection,
    /// timeout): send it again later, with backoff.
    #[error("remote write to {url} failed ({}): {reason}", status.map_or("no response".to_owned(), |s| s.to_string()))]
    Retryable {
        url: String,
        status: Option<u16>,
        reason: String,
    },
    /// The receiver refused the request (4xx other than 429): sending it again will not
    /// help. `body` is the start of the receiver's explanation.
    #[error("remote write to {url} rejected ({status}): {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    /// The request could not be made (a malformed URL, a redirect loop): fix the setting.
    #[error("remote write to {url} cannot be sent: {reason}")]
    Invalid { url: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// A metric family: its name (for `slo:sli_error:ratio_rate` the prefix of one family per
/// window), help and type.
#[derive(Debug, PartialEq)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
}

const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { name, help, kind }
}

const SLI_ERROR: Family = family(
    "slo:sli_error:ratio_rate",
    Gauge,
    "Bad share of events (or slices) over the window in sloth_window; absent without traffic (Sloth-compatible).",
);
const OBJECTIVE: Family = family(
    "slo:objective:ratio",
    Gauge,
    "The objective's target share of good events (Sloth-compatible).",
);
const ERROR_BUDGET: Family = family(
    "slo:error_budget:ratio",
    Gauge,
    "1 - target: the share of events allowed to be bad (Sloth-compatible).",
);
const TIME_PERIOD: Family = family(
    "slo:time_period:days",
    Gauge,
    "The SLO period's length in days (Sloth-compatible).",
);
const CURRENT_BURN: Family = family(
    "slo:current_burn_rate:ratio",
    Gauge,
    "Burn rate over the shortest alert window (Sloth-compatible).",
);
const PERIOD_BURN: Family = family(
    "slo:period_burn_rate:ratio",
    Gauge,
    "Burn rate over the period so far (Sloth-compatible).",
);
const PERIOD_REMAINING: Family = family(
    "slo:period_error_budget_remaining:ratio",
    Gauge,
    "1 - period burn rate: 1 untouched, 0 spent, negative overspent (Sloth-compatible).",
);
const INFO: Family = family(
    "sloth_slo_info",
    Gauge,
    "An SLO objective's metadata; always 1 (Sloth-compatible).",
);
const EVENTS: Family = family(
    "loupe_slo_events_total",
    Counter,
    "Weighted events (sum of sample rates) counted for the objective, by outcome; restarts when the definition changes.",
);
const STORED: Family = family(
    "loupe_slo_stored_events_total",
    Counter,
    "Stored rows counted for the objective, by outcome; restarts when the definition changes.",
);
const BURN: Family = family(
    "loupe_slo_burn_rate",
    Gauge,
    "Burn rate (error ratio / (1 - target)) over the trailing window.",
);
const ERROR_RATIO: Family = family(
    "loupe_slo_error_ratio",
    Gauge,
    "Bad share of events (or slices) over the trailing window.",
);
const UPPER: Family = family(
    "loupe_slo_error_ratio_upper",
    Gauge,
    "Upper end of the 95% Wilson interval of the window's error ratio.",
);
const LOWER: Family = family(
    "loupe_slo_error_ratio_lower",
    Gauge,
    "Lower end of the 95% Wilson interval of the window's error ratio.",
);
const EFFECTIVE: Family = family(
    "loupe_slo_effective_events",
    Gauge,
    "Effective number of events (or slices with data) behind the window's error ratio.",
);
const REMAINING: Family = family(
    "loupe_slo_budget_remaining_ratio",
    Gauge,
    "Share of the period's error budget left: 1 untouched, 0 spent, negative overspent.",
);
const SLI: Family = family(
    "loupe_slo_sli",
    Gauge,
    "Good share of events (or slices) over the period so far.",
);
const EXHAUSTION: Family = family(
    "loupe_slo_exhaustion_seconds",
    Gauge,
    "Seconds until the error budget is spent at the last hour's burn rate; absent when not burning.",
);
const ALERT: Family = family(
    "loupe_slo_alert",
    Gauge,
    "1 when the burn-rate rule fires (both windows over burn_threshold with enough bad events), else 0.",
);

type Labels = Vec<(&'static str, String)>;

/// One series and its current value: what both outputs are made from.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    family: &'static Family,
    /// In exposition order (the objective's labels first); names unique, values not empty.
    labels: Labels,
    value: f64,
}

/// Collects the series of one objective: its labels, then each sample's own.
struct Emit<'a> {
    out: &'a mut Vec<Series>,
    common: Labels,
}

impl Emit<'_> {
    /// Adds a series of `family` unless `value` is missing or NaN.
    fn add(
        &mut self,
        family: &'static Family,
        extra: &[(&'static str, String)],
        value: Option<f64>,
    ) {
        self.add_named(family.name.to_owned(), family, extra, value);
    }

    /// [`Emit::add`] under a name of its own (a family per window).
    fn add_named(
        &mut self,
        name: String,
        family: &'static Family,
        extra: &[(&'static str, String)],
        value: Option<f64>,
    ) {
        let Some(value) = value.filter(|v| !v.is_nan()) else {
            return;
        };
        let labels = self
            .common
            .iter()
            .chain(extra)
            .filter(|(_, v)| !v.is_empty())
            .cloned()
            .collect();
        self.out.push(Series {
            name,
            family,
            labels,
            value,
        });
    }
}

/// Every series of `statuses`, grouped by nothing yet; a series that would repeat one already
/// listed (two objectives with the same display name) is left out.
fn samples(statuses: &[SloStatus]) -> Vec<Series> {
    let mut out = Vec::new();
    for s in statuses {
        for o in &s.objectives {
            let sloth_slo = if s.objectives.len() == 1 {
                s.name.clone()
            } else {
                format!("{}-{}", s.name, o.name)
            };
            let mut emit = Emit {
                out: &mut out,
                common: vec![
                    // Sloth's SLOs have one objective each, its id is `<service>-<slo>`
                    ("sloth_id", format!("{}-{sloth_slo}", s.service)),
                    ("sloth_service", s.service.clone()),
                    ("sloth_slo", sloth_slo),
                    ("slo", s.name.clone()),
                    ("objective", o.name.clone()),
                ],
            };
            objective_samples(&mut emit, s, o);
        }
    }
    let mut seen = HashSet::new();
    out.retain(|series| seen.insert((series.name.clone(), series.labels.clone())));
    out
}

fn objective_samples(emit: &mut Emit<'_>, s: &SloStatus, o: &ObjectiveStatus) {
    let period_us = s.period.len_us();
    let period = prom_duration(period_us);

    // Sloth's set; a window as long as the period is the period
    for w in &o.windows {
        let name = prom_duration(w.span.len_us());
        if name != period {
            let metric = format!("{}{name}", SLI_ERROR.name);
            let labels = [("sloth_window", name)];
            emit.add_named(metric, &SLI_ERROR, &labels, w.error_ratio);
        }
    }
    let metric = format!("{}{period}", SLI_ERROR.name);
    let labels = [("sloth_window", period)];
    emit.add_named(metric, &SLI_ERROR, &labels, o.period.error_ratio);
    emit.add(&OBJECTIVE, &[], Some(o.target));
    emit.add(&ERROR_BUDGET, &[], Some(1.0 - o.target));
    emit.add(&TIME_PERIOD, &[], Some(period_us as f64 / DAY_US as f64));
    let shortest = o.windows.iter().min_by_key(|w| w.span.len_us());
    emit.add(&CURRENT_BURN, &[], shortest.and_then(|w| w.burn));
    emit.add(&PERIOD_BURN, &[], o.period.burn);
    emit.add(&PERIOD_REMAINING, &[], o.budget_remaining);
    let info = [
        ("sloth_mode", "loupe".to_owned()),
        ("sloth_objective", percent(o.target)),
    ];
    emit.add(&INFO, &info, Some(1.0));

    // loupe's own
    let c = &o.cumulative;
    let good = [("outcome", "good".to_owned())];
    let total = [("outcome", "total".to_owned())];
    emit.add(&EVENTS, &good, Some(c.good));
    emit.add(&EVENTS, &total, Some(c.total));
    emit.add(&STORED, &good, Some(c.good_rows as f64));
    emit.add(&STORED, &total, Some(c.total_rows as f64));
    for w in &o.windows {
        let labels = [("window", prom_duration(w.span.len_us()))];
        emit.add(&BURN, &labels, w.burn);
        emit.add(&ERROR_RATIO, &labels, w.error_ratio);
        emit.add(&UPPER, &labels, w.interval.map(|i| i.1));
        emit.add(&LOWER, &labels, w.interval.map(|i| i.0));
        emit.add(&EFFECTIVE, &labels, Some(w.effective_size));
    }
    emit.add(&REMAINING, &[], o.budget_remaining);
    emit.add(&SLI, &[], o.sli);
    emit.add(&EXHAUSTION, &[], o.exhaustion_us.map(|us| us as f64 / 1e6));
    for a in &o.alerts {
        let labels = [
            ("severity", a.rule.severity.clone()),
            ("long_window", prom_duration(a.rule.long_us)),
            ("short_window", prom_duration(a.rule.short_us)),
            ("burn_threshold", a.rule.burn.to_string()),
        ];
        emit.add(&ALERT, &labels, Some(if a.fires { 1.0 } else { 0.0 }));
    }
}

/// A target as Sloth writes its objective: a percentage (`0.999` is `99.9`), without the
/// float noise of the multiplication.
fn percent(target: f64) -> String {
    let p = (target * 100.0 * 1e9).round() / 1e9;
    format!("{p}")
}

/// A duration as Prometheus prints one (`model.Duration.String()`), which is how Sloth names
/// its windows: years and weeks only when exact, then days, hours, minutes, seconds and
/// milliseconds, each when not zero: `5m`, `1h30m`, `30d`, `4w` (28 days), `1y`. Below a
/// millisecond (and negative) is `0s`.
pub fn prom_duration(us: i64) -> String {
    const DAY_MS: i64 = 86_400_000;
    const UNITS: [(&str, i64, bool); 7] = [
        ("y", 365 * DAY_MS, true),
        ("w", 7 * DAY_MS, true),
        ("d", DAY_MS, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ];
    let mut ms = us.max(0) / 1_000;
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, mult, exact) in UNITS {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            let _ = write!(out, "{v}{unit}");
            ms -= v * mult;
        }
    }
    out
}

/// Appends the series of `statuses` to `out` in the Prometheus text exposition format 0.0.4:
/// each family once, with its `# HELP` and `# TYPE`, then its samples across all SLOs.
pub fn render_metrics(statuses: &[SloStatus], out: &mut String) {
    let series = samples(statuses);
    // families in the order they first appear, each with its series
    let mut families: Vec<(&str, Vec<&Series>)> = Vec::new();
    for s in &series {
        match families.iter_mut().find(|(name, _)| *name == s.name) {
            Some((_, members)) => members.push(s),
            None => families.push((&s.name, vec![s])),
        }
    }
    for (name, members) in families {
        let family = members[0].family;
        let kind = match family.kind {
            Gauge => "gauge",
            Counter => "counter",
        };
        let _ = writeln!(out, "# HELP {name} {}", escape_help(family.help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in members {
            out.push_str(name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (label, value)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(label);
                    out.push_str("=\"");
                    escape_label_value(value, out);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            push_value(s.value, out);
            out.push('\n');
        }
    }
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text in the text format: backslash and newline escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A value that parses back to the same float (never NaN: [`Emit::add`] drops it).
fn push_value(v: f64, out: &mut String) {
    if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// The series of `statuses` as a remote-write request: the same series as
/// [`render_metrics`], each with `__name__`, labels sorted by name and one sample at
/// `timestamp_ms` (milliseconds since the epoch; never in the future, or the receiver's head
/// moves past the scrapes).
pub fn write_request(statuses: &[SloStatus], timestamp_ms: i64) -> WriteRequest {
    let timeseries = samples(statuses)
        .into_iter()
        .map(|s| {
            let mut labels: Vec<Label> = std::iter::once(Label {
                name: "__name__".to_owned(),
                value: s.name,
            })
            .chain(s.labels.into_iter().map(|(name, value)| Label {
                name: name.to_owned(),
                value,
            }))
            .collect();
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            TimeSeries {
                labels,
                samples: vec![Sample {
                    value: s.value,
                    timestamp: timestamp_ms,
                }],
            }
        })
        .collect();
    WriteRequest { timeseries }
}

/// The request body: the protobuf, compressed in Snappy's raw block format.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        // the block format's only limit is an input of 4 GiB, thousands of times what a
        // push of every SLO's series comes to
        .expect("a write request is far below Snappy's 4 GiB block limit")
}

/// POSTs an [`encode`]d body to a remote-write receiver (`http://host:9090/api/v1/write`).
/// Any 2xx is success.
pub async fn push(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<(), PushError> {
    let response = client
        .post(url)
        .header(CONTENT_ENCODING, "snappy")
        .header(CONTENT_TYPE, "application/x-protobuf")
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let reason = chain(&e);
            if e.is_builder() || e.is_redirect() {
                PushError::Invalid {
                    url: url.to_owned(),
                    reason,
                }
            } else {
                PushError::Retryable {
                    url: url.to_owned(),
                    status: None,
                    reason,
                }
            }
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = excerpt(response, BODY_EXCERPT_BYTES).await;
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(PushError::Retryable {
            url: url.to_owned(),
            status: Some(status.as_u16()),
            reason: body,
        })
    } else {
        Err(PushError::Rejected {
            url: url.to_owned(),
            status: status.as_u16(),
            body,
        })
    }
}

/// An error with its causes (reqwest's own message leaves out why a connection failed).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let _ = write!(out, ": {c}");
        cause = c.source();
    }
    out
}

/// The first `limit` bytes of a response's body (lossy UTF-8), without reading the rest.
async fn excerpt(mut response: reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(limit);
    String::from_utf8_lossy(&bytes).into_owned()
}
