//! Where an option is written in a TOML file: problems found after parsing (a rule that does
//! not parse, a goal of 0) name an option path like `datasets.api.sampling.rules[1].when`,
//! and the user wants the line.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The 1-based line of the option at `path` (dotted, with `[i]` for array items), or of the
/// nearest enclosing option that is written in `text` (a missing option points at its table).
/// `None` when not even the first segment is in the file.
pub(crate) fn line_of(text: &str, path: &str) -> Option<usize> {
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut at: Option<usize> = None;
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for segment in path.split('.') {
        if let Some(v) = value {
            match v.get_ref() {
                DeValue::Table(t) => table = t,
                _ => break,
            }
        }
        let (key, index) = split_index(segment);
        let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
            break;
        };
        at = Some(k.span().start);
        value = Some(v);
        if let Some(i) = index {
            let DeValue::Array(items) = v.get_ref() else {
                break;
            };
            let Some(item) = items.get(i) else { break };
            at = Some(item.span().start);
            value = Some(item);
        }
    }
    at.map(|offset| text[..offset.min(text.len())].matches('\n').count() + 1)
}

/// `rules[2]` -> (`rules`, Some(2)); `when` -> (`when`, None).
fn split_index(segment: &str) -> (&str, Option<usize>) {
    if let Some(open) = segment.find('[')
        && let Some(inner) = segment[open + 1..].strip_suffix(']')
        && let Ok(i) = inner.parse()
    {
        return (&segment[..open], Some(i));
    }
    (segment, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"data_dir = "/x"

[datasets.api.sampling]
sampler = "ema"
goal_rate = 0

[[datasets.api.sampling.rules]]
when = "error = true"
action = "keep"

[[datasets.api.sampling.rules]]
when = ">= 500"
action = "keep"
"#;

    #[test]
    fn finds_options_and_array_items() {
        assert_eq!(line_of(TEXT, "data_dir"), Some(1));
        assert_eq!(line_of(TEXT, "datasets.api.sampling.goal_rate"), Some(5));
        assert_eq!(
            line_of(TEXT, "datasets.api.sampling.rules[1].when"),
            Some(12)
        );
        assert_eq!(
            line_of(TEXT, "datasets.api.sampling.rules[0].action"),
            Some(9)
        );
    }

    #[test]
    fn a_missing_option_points_at_what_encloses_it() {
        let line = line_of(TEXT, "datasets.api.sampling.rate").unwrap();
        assert!(line <= 5, "{line}");
        assert_eq!(line_of(TEXT, "nowhere.at.all"), None);
        assert_eq!(line_of("not = [valid", "not"), None);
    }
}
