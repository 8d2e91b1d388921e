//! An SLO status for people (`loupe slo status`) and programs (`GET /api/v1/slo`): every
//! number with the counts behind it, so a budget can be checked by hand.

use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use super::budget::{RuleCheck, Tally};
use super::definition::Budgeting;
use super::status::{ObjectiveStatus, SloStatus, WindowStatus};
use super::window::MINUTE_US;

/// `5m`, `1h`, `3d`: the largest of days, hours, minutes that measures `us` exactly. Not
/// [`super::feed::prom_duration`], on purpose: that one names windows as Prometheus and Sloth
/// do (28 days is `4w`, 90 minutes `1h30m`), for the feed's labels to match theirs; the JSON
/// API and the report say `28d`, as OpenSLO documents write windows.
pub fn short_duration(us: i64) -> String {
    let minutes = us / MINUTE_US;
    if minutes > 0 && minutes % 1440 == 0 {
        format!("{}d", minutes / 1440)
    } else if minutes > 0 && minutes % 60 == 0 {
        format!("{}h", minutes / 60)
    } else {
        format!("{minutes}m")
    }
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn method_name(m: Budgeting) -> &'static str {
    match m {
        Budgeting::Occurrences => "Occurrences",
        Budgeting::Timeslices => "Timeslices",
        Budgeting::RatioTimeslices => "RatioTimeslices",
    }
}

/// The status as the HTTP API answers it. Absent numbers (no traffic) are `null`.
pub fn to_json(s: &SloStatus) -> Json {
    json!({
        "name": s.name,
        "display_name": s.display_name,
        "service": s.service,
        "dataset": s.dataset,
        "labels": s.labels,
        "budgeting_method": method_name(s.method),
        "period": {
            "rolling": s.rolling,
            "start": rfc3339(s.period.start_us),
            "end": rfc3339(s.period.end_us),
            "length_seconds": s.period.len_us() / 1_000_000,
        },
        "as_of": rfc3339(s.as_of_us),
        "objectives": s.objectives.iter().map(objective_json).collect::<Vec<_>>(),
    })
}

fn objective_json(o: &ObjectiveStatus) -> Json {
    json!({
        "name": o.name,
        "target": o.target,
        "threshold": o.threshold.map(|(op, v)| json!({"op": op.sql(), "value": v})),
        "time_slice_target": o.time_slice_target,
        "time_slice_window_seconds": o.time_slice_us.map(|u| u / 1_000_000),
        "sli": o.sli,
        "budget_remaining": o.budget_remaining,
        "current_burn": o.current_burn,
        "exhaustion_seconds": o.exhaustion_us.map(|u| u / 1_000_000),
        "period": window_json(&o.period),
        "windows": o.windows.iter().map(window_json).collect::<Vec<_>>(),
        "alerts": o.alerts.iter().map(alert_json).collect::<Vec<_>>(),
        "firing": o.firing(),
        "cumulative": tally_json(&o.cumulative),
    })
}

fn tally_json(t: &Tally) -> Json {
    json!({
        "good": t.good,
        "total": t.total,
        "bad": t.bad(),
        "stored_good": t.good_rows,
        "stored_total": t.total_rows,
        "sum_squared_weights_good": t.good_sq,
        "sum_squared_weights_total": t.total_sq,
    })
}

fn window_json(w: &WindowStatus) -> Json {
    json!({
        "window": short_duration(w.span.len_us()),
        "window_seconds": w.span.len_us() / 1_000_000,
        "start": rfc3339(w.span.start_us),
        "end": rfc3339(w.span.end_us),
        "events": tally_json(&w.tally),
        "error_ratio": w.error_ratio,
        "error_ratio_95": w.interval.map(|(lo, hi)| [lo, hi]),
        "effective_size": w.effective_size,
        "burn_rate": w.burn,
        "budget_consumed": w.consumed,
        "slices": w.slices.map(|c| json!({"good": c.good, "bad": c.bad, "no_data": c.empty})),
    })
}

fn alert_json(a: &RuleCheck) -> Json {
    json!({
        "severity": a.rule.severity,
        "long_window": short_duration(a.rule.long_us),
        "short_window": short_duration(a.rule.short_us),
        "burn_threshold": a.rule.burn,
        "long_burn": a.long_burn,
        "short_burn": a.short_burn,
        "long_bad_events": a.long_bad,
        "fires": a.fires,
    })
}

fn pct(v: Option<f64>) -> String {
    v.map_or("no data".to_owned(), |v| format!("{:.3}%", v * 100.0))
}

fn burn(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.2}x"))
}

fn count(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn human_us(us: i64) -> String {
    let h = us as f64 / 3.6e9;
    if h >= 48.0 {
        format!("{:.1} days", h / 24.0)
    } else if h >= 1.0 {
        format!("{h:.1} hours")
    } else {
        format!("{:.0} minutes", h * 60.0)
    }
}

/// The status as `loupe slo status` prints it.
pub fn text(s: &SloStatus) -> String {
    let mut out = String::new();
    let period = if s.rolling {
        format!("rolling {}", short_duration(s.period.len_us()))
    } else {
        format!(
            "calendar period {} to {}",
            rfc3339(s.period.start_us),
            rfc3339(s.period.end_us)
        )
    };
    let _ = writeln!(
        out,
        "{}  (service {}, dataset {}; {} over {period}; as of {})",
        s.name,
        s.service,
        s.dataset,
        method_name(s.method),
        rfc3339(s.as_of_us)
    );
    for o in &s.objectives {
        let threshold = o
            .threshold
            .map(|(op, v)| format!(" (good: {} {v})", op.sql()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}{threshold}: target {:.3}%",
            o.name,
            o.target * 100.0
        );
        let p = &o.period;
        let evidence = match p.slices {
            Some(c) => format!(
                "{} good and {} bad slices, {} without events",
                c.good, c.bad, c.empty
            ),
            None => format!(
                "{} events ({} stored, effective {:.0}), {} bad",
                count(p.tally.total),
                p.tally.total_rows,
                p.effective_size,
                count(p.tally.bad())
            ),
        };
        let interval = p.interval.map_or(String::new(), |(lo, hi)| {
            format!(
                " (95%: {:.3}% to {:.3}%)",
                (1.0 - hi) * 100.0,
                (1.0 - lo) * 100.0
            )
        });
        let _ = writeln!(out, "    SLI {}{interval} from {evidence}", pct(o.sli));
        let remaining = match o.budget_remaining {
            Some(r) if r < 0.0 => format!("{:.1}% (overspent)", r * 100.0),
            Some(r) => format!("{:.1}%", r * 100.0),
            None => "no data".to_owned(),
        };
        let exhaustion = match (o.current_burn, o.exhaustion_us) {
            (Some(b), Some(e)) => format!(
                "; at the last hour's burn ({b:.2}x) spent in {}",
                human_us(e)
            ),
            (Some(b), None) => format!("; the last hour's burn {b:.2}x"),
            _ => String::new(),
        };
        let _ = writeln!(out, "    budget remaining {remaining}{exhaustion}");
        if let (Some(len), Budgeting::Timeslices | Budgeting::RatioTimeslices) =
            (o.time_slice_us, s.method)
        {
            let rule = match (s.method, o.time_slice_target) {
                (Budgeting::Timeslices, Some(t)) => {
                    format!("bad slices (good share under {:.3}%)", t * 100.0)
                }
                _ => "one minus the mean of the slices' good shares".to_owned(),
            };
            let _ = writeln!(
                out,
                "    error ratios are of {} slices: {rule}; slices without events do not count",
                short_duration(len)
            );
        }
        let _ = writeln!(
            out,
            "    {:>7} {:>10} {:>9} {:>12} {:>23} {:>10} {:>9}",
            "window", "events", "bad", "error ratio", "95% interval", "burn", "consumed"
        );
        for w in &o.windows {
            let interval = w.interval.map_or("-".to_owned(), |(lo, hi)| {
                format!("{:.3}%..{:.3}%", lo * 100.0, hi * 100.0)
            });
            let _ = writeln!(
                out,
                "    {:>7} {:>10} {:>9} {:>12} {:>23} {:>10} {:>9}",
                short_duration(w.span.len_us()),
                count(w.tally.total),
                count(w.tally.bad()),
                pct(w.error_ratio),
                interval,
                burn(w.burn),
                w.consumed
                    .map_or("-".to_owned(), |c| format!("{:.2}%", c * 100.0)),
            );
        }
        for a in &o.alerts {
            let verdict = if a.fires {
                "FIRES".to_owned()
            } else {
                let over = |b: Option<f64>| b.is_some_and(|b| b > a.rule.burn);
                let mut why = Vec::new();
                if !over(a.long_burn) {
                    why.push(format!("{} under", short_duration(a.rule.long_us)));
                }
                if !over(a.short_burn) {
                    why.push(format!("{} under", short_duration(a.rule.short_us)));
                }
                if why.is_empty() {
                    why.push(format!("only {} bad events", count(a.long_bad)));
                }
                format!("quiet ({})", why.join(", "))
            };
            let _ = writeln!(
                out,
                "    {:<6} burn > {} over {} and {}: {} and {}, {} bad events: {verdict}",
                a.rule.severity,
                a.rule.burn,
                short_duration(a.rule.long_us),
                short_duration(a.rule.short_us),
                burn(a.long_burn),
                burn(a.short_burn),
                count(a.long_bad),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_their_largest_exact_unit() {
        for (minutes, text) in [
            (5, "5m"),
            (90, "90m"),
            (60, "1h"),
            (360, "6h"),
            (4320, "3d"),
        ] {
            assert_eq!(short_duration(minutes * MINUTE_US), text);
        }
    }
}
