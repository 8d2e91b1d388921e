//! The per-field view, as Honeycomb's BubbleUp draws it: for every field compared, how its
//! values are shared out in the selection and in the baseline, so a reader (or a UI drawing
//! two histograms side by side) sees where they differ, field by field.
//!
//! A numeric field with bins shows every bin in order (a histogram of the field); any other
//! field its [`TOP_VALUES`] most common values, by their larger share of either side, and the
//! rest as one remainder. Fields come in the order of the strongest explanation among their
//! values (the ranking's lower bound), then by how different the two sides' distributions are
//! (total variation distance), so the field that explains most is drawn first and a field
//! whose apparent difference is only noise in many rare values does not jump ahead of it.

use super::counts::{Counts, Value};
use super::rank::Explanation;
use super::stats::Cell;

/// Values shown per categorical field.
pub const TOP_VALUES: usize = 10;

/// One field's two distributions.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldView {
    pub field: String,
    /// `½ Σ |selection share - baseline share|` over all its values: 0 when the two sides
    /// share the values out alike, 1 when they have no value in common.
    pub difference: f64,
    /// The strongest explanation's lower bound among the field's values, if any explains.
    pub best_lower: Option<f64>,
    /// `(value, selection cell, baseline cell)`, bins in order, other values most common first.
    pub values: Vec<(Value, Cell, Cell)>,
    /// The values not shown, together: `[selection, baseline]`.
    pub rest: [Cell; 2],
}

/// The view of every compared (not identifying) field of `counts`; `ranked` are the
/// single-field explanations, which order the fields.
pub fn by_field(counts: &Counts, ranked: &[Explanation]) -> Vec<FieldView> {
    let (sel_total, base_total) = (counts.selection.weight, counts.baseline.weight);
    let share = |c: &Cell, total: f64| if total > 0.0 { c.weight / total } else { 0.0 };
    let mut views: Vec<FieldView> = counts
        .fields
        .iter()
        .filter(|f| !f.identifier)
        .map(|f| {
            let mut values: Vec<(Value, Cell, Cell)> =
                f.entries().map(|(v, [s, b])| (v, s, b)).collect();
            let difference = 0.5
                * values
                    .iter()
                    .map(|(_, s, b)| (share(s, sel_total) - share(b, base_total)).abs())
                    .sum::<f64>();
            let mut rest = [Cell::default(); 2];
            if f.bins.is_some() {
                values.sort_by(|a, b| a.0.cmp(&b.0));
            } else {
                let larger =
                    |(_, s, b): &(Value, Cell, Cell)| share(s, sel_total).max(share(b, base_total));
                values.sort_by(|x, y| larger(y).total_cmp(&larger(x)).then(x.0.cmp(&y.0)));
                for (_, s, b) in values.drain(TOP_VALUES.min(values.len())..) {
                    rest[0] = super::stats::totals(rest[0], s);
                    rest[1] = super::stats::totals(rest[1], b);
                }
            }
            let best_lower = ranked
                .iter()
                .filter(|e| e.field == f.name)
                .map(|e| e.assessment.lower)
                .reduce(f64::max);
            FieldView {
                field: f.name.clone(),
                difference,
                best_lower,
                values,
                rest,
            }
        })
        .collect();
    views.sort_by(|a, b| {
        let lower = |v: &FieldView| v.best_lower.unwrap_or(0.0);
        lower(b)
            .total_cmp(&lower(a))
            .then(b.difference.total_cmp(&a.difference))
            .then_with(|| a.field.cmp(&b.field))
    });
    views
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Float64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;

    use super::super::counts::{Bins, Limits};
    use super::super::rank::single_fields;
    use super::super::stats::Thresholds;
    use super::*;

    /// 40 selected events of weight 1 and 40 baseline events of weight 10: in the selection
    /// the region is `eu` for 30, in the baseline for 10; memory is high for the selection.
    fn counts() -> Counts {
        let n = 80;
        let sel: Vec<bool> = (0..n).map(|i| i < 40).collect();
        let w: Vec<f64> = sel.iter().map(|&s| if s { 1.0 } else { 10.0 }).collect();
        let region: Vec<String> = (0..n)
            .map(|i| {
                let eu = if i < 40 { i < 30 } else { i < 50 };
                if eu {
                    "eu".into()
                } else {
                    format!("us-{}", i % 13)
                }
            })
            .collect();
        let mem: Vec<f64> = (0..n).map(|i| if i < 40 { 900.0 } else { 100.0 }).collect();
        let schema = Schema::new(vec![
            Field::new("sel", DataType::Boolean, false),
            Field::new("w", DataType::Float64, false),
            Field::new("region", DataType::Utf8, false),
            Field::new("mem", DataType::Float64, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(BooleanArray::from(sel)),
                Arc::new(Float64Array::from(w)),
                Arc::new(StringArray::from(region)),
                Arc::new(Float64Array::from(mem)),
            ],
        )
        .unwrap();
        let names = ["region", "mem"].map(String::from).to_vec();
        let bins = Bins {
            edges: vec![200.0, 500.0],
        };
        let mut c = Counts::new(&names, vec![None, Some(bins)]);
        c.add(&batch, &Limits::default()).unwrap();
        c
    }

    #[test]
    fn each_field_shows_both_sides_shares_and_the_rest() {
        let c = counts();
        let views = by_field(&c, &single_fields(&c, &Thresholds::default()).0);
        let region = views.iter().find(|v| v.field == "region").unwrap();
        // eu first: 30/40 of the selection, 10/40 of the baseline (by weight 100 of 400)
        let (v, s, b) = &region.values[0];
        assert_eq!(v, &Value::Str("eu".into()));
        assert_eq!(
            (s.weight / c.selection.weight, b.weight / c.baseline.weight),
            (0.75, 0.25)
        );
        // 13 us values plus eu: 10 shown, 4 in the rest; shown + rest is everything
        assert_eq!(region.values.len(), TOP_VALUES);
        let shown: f64 = region.values.iter().map(|(_, s, _)| s.rows as f64).sum();
        assert_eq!(shown + region.rest[0].rows as f64, 40.0);
        // The bins of mem come in order, all of them: nothing is left over.
        let mem = views.iter().find(|v| v.field == "mem").unwrap();
        let order: Vec<&Value> = mem.values.iter().map(|(v, _, _)| v).collect();
        assert_eq!(order, [&Value::Bin(0), &Value::Bin(2)]);
        assert_eq!(mem.rest, [Cell::default(); 2]);
        // mem separates the sides entirely; region by half
        assert!((mem.difference - 1.0).abs() < 1e-12, "{}", mem.difference);
        assert!(
            (region.difference - 0.5).abs() < 1e-12,
            "{}",
            region.difference
        );
        // Ordered by the strongest explanation: mem's high bin explains every selected event.
        assert_eq!(views[0].field, "mem");
    }
}
