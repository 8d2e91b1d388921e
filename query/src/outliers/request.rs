//! The outliers question as the front doors take it: `POST /api/v1/outliers` (JSON) and
//! `loupe outliers` (flags) both fill an [`OutliersRequest`].
//!
//! ```json
//! {"dataset": "api", "where": "duration_ms > 800", "since": "1h"}
//! {"dataset": "api", "above": "p99 duration_ms", "since": "2026-11-23T01:00:00Z", "until": "2026-11-23T02:00:00Z"}
//! {"dataset": "api", "where": "error", "baseline": "NOT error AND \"http.route\" = '/cart'", "top": 10}
//! ```
//!
//! `since` and `until` are RFC 3339 times or ages (`90s`, `15m`, `1h`, `7d`: that long before
//! now). `above: "pNN field"` selects the events over the window's weighted `NN`th percentile
//! of `field` (`p99`; `p999` is 99.9%, `p5` 5%). Exactly one of `where` and `above` is given.

use serde::Deserialize;

use super::analyze::Question;
use crate::{Error, QueryEngine, Result};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutliersRequest {
    pub dataset: String,
    #[serde(rename = "where")]
    pub selection: Option<String>,
    pub above: Option<String>,
    pub baseline: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub top: Option<usize>,
}

/// A time bound: RFC 3339, or an age before `now_us`.
pub fn parse_time(s: &str, now_us: i64) -> Result<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros());
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let secs: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match n.parse::<i64>() {
        Ok(n) if secs > 0 => Ok(now_us - n.saturating_mul(secs).saturating_mul(1_000_000)),
        _ => Err(Error::Query(format!(
            "time {s:?}: expected RFC 3339 (2026-11-23T01:00:00Z) or an age (90s, 15m, 1h, 7d)"
        ))),
    }
}

/// `pNN field` as (quantile, field): `p99` is 0.99, `p999` 0.999, `p50` 0.5.
pub fn parse_above(s: &str) -> Result<(f64, String)> {
    let bad = || {
        Error::Query(format!(
            "above {s:?}: expected a percentile and a field, like \"p99 duration_ms\""
        ))
    };
    let (p, field) = s.trim().split_once(char::is_whitespace).ok_or_else(bad)?;
    let digits = p
        .strip_prefix('p')
        .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(bad)?;
    // The first two digits are the percent, the rest its decimals: p5 is 5%, p99 99%, p999
    // 99.9%, p001 0.1% (Honeycomb's P999 and P001).
    // As a decimal fraction directly ("0.999"), so p999 is exactly 0.999, not 99.9 / 100.
    let fraction = if digits.len() == 1 {
        format!("0.0{digits}")
    } else {
        format!("0.{digits}")
    };
    let q: f64 = fraction.parse().map_err(|_| bad())?;
    let field = field.trim().trim_matches('"').to_owned();
    if field.is_empty() || q <= 0.0 || q >= 1.0 {
        return Err(bad());
    }
    Ok((q, field))
}

impl QueryEngine {
    /// Turns a request into a question: times resolved against `now_us`, and `above` into a
    /// predicate on the window's weighted percentile.
    pub async fn outliers_question(&self, r: &OutliersRequest, now_us: i64) -> Result<Question> {
        let since_us = r
            .since
            .as_deref()
            .map(|s| parse_time(s, now_us))
            .transpose()?;
        let until_us = r
            .until
            .as_deref()
            .map(|s| parse_time(s, now_us))
            .transpose()?;
        let selection = match (&r.selection, &r.above) {
            (Some(w), None) => w.clone(),
            (None, Some(a)) => {
                let (q, field) = parse_above(a)?;
                let col = super::analyze::ident(&field);
                let filter = super::analyze::window_filter(since_us, until_us);
                let table = super::analyze::ident(&r.dataset);
                let out = self
                    .sql(&format!("SELECT wquantile(CAST({col} AS DOUBLE), sample_rate, {q}) AS t FROM {table}{filter}"), 1)
                    .await?;
                let t = out
                    .batches
                    .first()
                    .and_then(|b| {
                        use datafusion::arrow::array::{Array, AsArray};
                        let a = b
                            .column(0)
                            .as_primitive_opt::<datafusion::arrow::datatypes::Float64Type>()?;
                        (a.len() == 1 && a.is_valid(0)).then(|| a.value(0))
                    })
                    .ok_or_else(|| {
                        Error::Query(format!("above {a:?}: no values of {field} in the window"))
                    })?;
                format!("{col} > {t}")
            }
            _ => {
                return Err(Error::Query(
                    "give either where (a predicate) or above (like \"p99 duration_ms\"), not both or neither".to_owned(),
                ));
            }
        };
        Ok(Question {
            baseline: r.baseline.clone(),
            since_us,
            until_us,
            top: r.top.unwrap_or(20).clamp(1, 1000),
            ..Question::new(&r.dataset, &selection)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_percentiles_parse_or_name_the_problem() {
        let now = 10_000_000_000;
        assert_eq!(parse_time("90s", now).unwrap(), now - 90_000_000);
        assert_eq!(parse_time("1h", now).unwrap(), now - 3_600_000_000);
        assert_eq!(
            parse_time("2026-11-23T01:00:00Z", now).unwrap(),
            1_795_395_600_000_000
        );
        assert!(
            parse_time("1 fortnight", now)
                .unwrap_err()
                .to_string()
                .contains("RFC 3339")
        );
        assert_eq!(
            parse_above("p99 duration_ms").unwrap(),
            (0.99, "duration_ms".to_owned())
        );
        assert_eq!(parse_above("p999 db.duration_ms").unwrap().0, 0.999);
        assert_eq!(parse_above("p5 x").unwrap().0, 0.05);
        assert_eq!(parse_above("p50 x").unwrap().0, 0.5);
        assert_eq!(parse_above("p001 x").unwrap().0, 0.001);
        assert!(parse_above("99 duration_ms").is_err());
        assert!(parse_above("p99").is_err());
    }
}
