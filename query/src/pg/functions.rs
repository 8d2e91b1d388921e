//! The few PostgreSQL session functions that clients call on their own: `current_setting`
//! (Grafana reads `server_version_num` when a data source is saved), `current_database()`,
//! `current_schema()` and `quote_ident`. Registered on the engine, so every front door has
//! them; they describe loupe's fixed session (the answers the PostgreSQL door announces at
//! startup), not a configurable one.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The PostgreSQL version the door presents (see `server_parameters`).
pub(crate) const SERVER_VERSION: &str = "16.0";
pub(crate) const SERVER_VERSION_NUM: &str = "160000";

/// `current_setting(name)` for the settings clients ask about; PostgreSQL's error for others.
fn setting(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "server_version" => SERVER_VERSION,
        "server_version_num" => SERVER_VERSION_NUM,
        "search_path" => "public",
        "timezone" => "UTC",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "standard_conforming_strings" => "on",
        "client_encoding" | "server_encoding" => "UTF8",
        "default_transaction_read_only" | "transaction_read_only" => "on",
        "integer_datetimes" => "on",
        "max_identifier_length" => "63",
        _ => return None,
    })
}

/// `quote_ident(s)`: `s` as an SQL identifier, in double quotes when it needs them.
fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum Which {
    CurrentSetting,
    CurrentDatabase,
    CurrentSchema,
    QuoteIdent,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgFunction {
    which: Which,
    signature: Signature,
}

impl ScalarUDFImpl for PgFunction {
    fn name(&self) -> &str {
        match self.which {
            Which::CurrentSetting => "current_setting",
            Which::CurrentDatabase => "current_database",
            Which::CurrentSchema => "current_schema",
            Which::QuoteIdent => "quote_ident",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let constant = |s: &str| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.to_owned()))));
        let map = |f: &dyn Fn(&str) -> Result<String>| -> Result<ColumnarValue> {
            match &args.args[0] {
                ColumnarValue::Scalar(v) => match v {
                    ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => {
                        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                            s.as_deref().map(f).transpose()?,
                        )))
                    }
                    other => exec_err!("{}: expected text, got {other}", self.name()),
                },
                ColumnarValue::Array(a) => {
                    let a = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
                    let a = a.as_string::<i32>();
                    let out: StringArray = (0..a.len())
                        .map(|i| a.is_valid(i).then(|| f(a.value(i))).transpose())
                        .collect::<Result<_>>()?;
                    Ok(ColumnarValue::Array(Arc::new(out)))
                }
            }
        };
        match self.which {
            Which::CurrentDatabase => constant("loupe"),
            Which::CurrentSchema => constant(crate::SCHEMA),
            Which::QuoteIdent => map(&|s| Ok(quote_ident(s))),
            Which::CurrentSetting => map(&|s| match setting(s) {
                Some(v) => Ok(v.to_owned()),
                None => exec_err!("unrecognized configuration parameter \"{s}\""),
            }),
        }
    }
}

/// Registers the functions with the session.
pub(crate) fn register(ctx: &SessionContext) {
    let text = || Signature::string(1, Volatility::Stable);
    for (which, signature) in [
        (Which::CurrentSetting, text()),
        (Which::QuoteIdent, text()),
        (
            Which::CurrentDatabase,
            Signature::nullary(Volatility::Stable),
        ),
        (Which::CurrentSchema, Signature::nullary(Volatility::Stable)),
    ] {
        ctx.register_udf(ScalarUDF::from(PgFunction { which, signature }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_when_they_need_it() {
        assert_eq!(quote_ident("api"), "api");
        assert_eq!(quote_ident("http.route"), "\"http.route\"");
        assert_eq!(quote_ident("Api"), "\"Api\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("1x"), "\"1x\"");
    }

    #[test]
    fn settings_are_the_door_s_and_unknown_ones_are_errors() {
        assert_eq!(setting("server_version_num"), Some("160000"));
        assert_eq!(setting("TimeZone"), Some("UTC"));
        assert_eq!(setting("work_mem"), None);
    }
}
