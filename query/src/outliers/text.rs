//! The report as a terminal reads it: the ranked explanations (single values and conjunctions
//! in one list, as the table function returns them), then the per-field view of the fields
//! that differ most. `loupe outliers` and `loupe demo` print this; the HTTP API and
//! `--format json` give [`Report::to_json`].

use std::fmt::Write;

use super::analyze::Report;
use super::stats::Cell;

/// How much of the report to print.
#[derive(Debug, Clone, Copy)]
pub struct TextLimits {
    /// Explanations listed.
    pub top: usize,
    /// Fields drawn in the per-field view.
    pub fields: usize,
    /// Values drawn per field.
    pub values: usize,
}

impl Default for TextLimits {
    fn default() -> Self {
        TextLimits {
            top: 10,
            fields: 3,
            values: 6,
        }
    }
}

fn share(part: &Cell, whole: &Cell) -> f64 {
    if whole.weight > 0.0 {
        100.0 * part.weight / whole.weight
    } else {
        0.0
    }
}

/// The report under a heading naming `selection`.
pub fn report_text(report: &Report, selection: &str, limits: TextLimits) -> String {
    let mut out = String::new();
    let (sel, base) = (&report.selection, &report.baseline);
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "selection: {selection}: {} events stand for {:.0}; baseline: {} events stand for {:.0}",
        sel.rows, sel.weight, base.rows, base.weight
    );
    let ranked = report.ranked(limits.top);
    if ranked.is_empty() {
        let _ = writeln!(
            out,
            "\nno value or combination explains the selection with enough evidence"
        );
    } else {
        let _ = writeln!(
            out,
            "\n  # {:<52} {:>7} {:>7} {:>21} {:>7}",
            "explanation", "in sel.", "in base", "risk ratio [95%]", "events"
        );
        for (i, f) in ranked.iter().enumerate() {
            let a = &f.assessment;
            let _ = writeln!(
                out,
                " {:>2} {:<52} {:>6.1}% {:>6.1}% {:>21} {:>7}",
                i + 1,
                report.finding_text(&f.terms),
                100.0 * a.support,
                100.0 * a.baseline_share,
                format!("{:.2} [{:.2}, {:.2}]", a.risk_ratio, a.lower, a.upper),
                f.selection.rows
            );
            if let (Some(measure), Some(shift)) = (&report.measure, a.shift) {
                let _ = writeln!(
                    out,
                    "      ({measure} x{:.2} on these events, geometric mean; p = {:.1e})",
                    shift.ratio, shift.p_value
                );
            }
            if !f.implies.is_empty() {
                let _ = writeln!(out, "      (implies {})", report.finding_text(&f.implies));
            }
            for same in &f.same_events {
                let _ = writeln!(
                    out,
                    "      (the same events as {})",
                    report.finding_text(same)
                );
            }
            for nearly in &f.nearly_same {
                let _ = writeln!(
                    out,
                    "      (nearly the same events as {})",
                    report.finding_text(nearly)
                );
            }
        }
    }
    for view in report.by_field.iter().take(limits.fields) {
        let _ = writeln!(
            out,
            "\n    {:<40} {:>7} {:>7}",
            format!(
                "{} (sides differ by {:.0}%)",
                view.field,
                100.0 * view.difference
            ),
            "in sel.",
            "in base"
        );
        // A numeric field's bins are a histogram, in order: cutting it would hide whichever
        // end the selection sits at. Its bins are few (deciles), so all are drawn.
        let binned = view
            .values
            .iter()
            .any(|(v, _, _)| matches!(v, super::counts::Value::Bin(_)));
        let n = if binned {
            view.values.len()
        } else {
            limits.values
        };
        let shown = view.values.iter().take(n);
        let mut rest = view.rest;
        for (_, s, b) in view.values.iter().skip(n) {
            rest[0] = rest[0].plus(s);
            rest[1] = rest[1].plus(b);
        }
        for (value, s, b) in shown {
            let _ = writeln!(
                out,
                "    {:<40} {:>6.1}% {:>6.1}%",
                report.value_text(&view.field, value),
                share(s, sel),
                share(b, base)
            );
        }
        if rest[0].rows + rest[1].rows > 0 {
            let _ = writeln!(
                out,
                "    {:<40} {:>6.1}% {:>6.1}%",
                "(the rest)",
                share(&rest[0], sel),
                share(&rest[1], base)
            );
        }
    }
    let mut left_out: Vec<String> = Vec::new();
    if !report.identifiers.is_empty() {
        left_out.push(format!("identifiers {}", report.identifiers.join(", ")));
    }
    if !report.defining.is_empty() {
        left_out.push(format!(
            "defining the selection {}",
            report.defining.join(", ")
        ));
    }
    if !report.restating.is_empty() {
        left_out.push(format!(
            "restating the selection {}",
            report.restating.join(", ")
        ));
    }
    if !report.always_selected.is_empty() {
        let values: Vec<String> = report
            .always_selected
            .iter()
            .map(|(f, v, share)| format!("{} ({:.0}%)", report.term_text(f, v), 100.0 * share))
            .collect();
        left_out.push(format!("always selected {}", values.join(", ")));
    }
    for (field, measure, r) in &report.following {
        left_out.push(format!("{field} (follows {measure}, r = {r:.2})"));
    }
    let (candidates, combined) = report.conjunction_candidates;
    if combined < candidates && combined > 0 {
        left_out.push(format!(
            "conjunctions of the weakest {} of {candidates} candidate values (too many \
             distinct sets of them to hold)",
            candidates - combined
        ));
    }
    if !left_out.is_empty() {
        let _ = writeln!(out, "\nleft out: {}", left_out.join("; "));
    }
    // Where the baseline's counts came from, so a slow answer over files without summaries
    // can be told from one with them (`loupe summarize` writes the missing ones).
    match report.files_summarized {
        0 => {}
        1 => out.push_str("\n1 file counted from its summary\n"),
        n => {
            let _ = writeln!(out, "\n{n} files counted from their summaries");
        }
    }
    out
}
