//! Arrow columns as PostgreSQL values: the type OID each column is announced with, and the
//! rows encoded in the format (text or binary) the client asked for per column.
//!
//! | Arrow | PostgreSQL |
//! |---|---|
//! | Boolean | `bool` |
//! | Int8, Int16, UInt8 | `int2` |
//! | Int32, UInt16 | `int4` |
//! | Int64, UInt32, UInt64 (past `i64::MAX`: an error naming the column) | `int8` |
//! | Float16, Float32 | `float4` |
//! | Float64, decimals | `float8` |
//! | Utf8, LargeUtf8, Utf8View, dictionaries of strings | `text` |
//! | Timestamp with a time zone / without | `timestamptz` / `timestamp` (microseconds) |
//! | Date32, Date64 | `date` |
//! | Binary, LargeBinary, BinaryView | `bytea` |
//! | anything else (lists, structs, intervals, ...) | `text`, as Arrow displays it |

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Schema,
    TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;

use super::user_error;

/// The PostgreSQL type a column of `dt` is sent as.
pub(crate) fn pg_type(dt: &DataType) -> Type {
    use DataType as D;
    match dt {
        D::Boolean => Type::BOOL,
        D::Int8 | D::Int16 | D::UInt8 => Type::INT2,
        D::Int32 | D::UInt16 => Type::INT4,
        D::Int64 | D::UInt32 | D::UInt64 => Type::INT8,
        D::Float16 | D::Float32 => Type::FLOAT4,
        D::Float64
        | D::Decimal32(..)
        | D::Decimal64(..)
        | D::Decimal128(..)
        | D::Decimal256(..) => Type::FLOAT8,
        D::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        D::Timestamp(_, None) => Type::TIMESTAMP,
        D::Date32 | D::Date64 => Type::DATE,
        D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => Type::BYTEA,
        D::Dictionary(_, v) => pg_type(v),
        _ => Type::TEXT,
    }
}

/// The row description for `schema` in the formats `format` asks for.
pub(crate) fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            FieldInfo::new(
                f.name().clone(),
                None,
                None,
                pg_type(f.data_type()),
                format.format_for(i),
            )
        })
        .collect()
}

/// One column, cast to the Arrow type its PostgreSQL type is encoded from.
enum Column {
    Bool(ArrayRef),
    I16(ArrayRef),
    I32(ArrayRef),
    I64(ArrayRef),
    F32(ArrayRef),
    F64(ArrayRef),
    Text(ArrayRef),
    TimestampTz(ArrayRef),
    Timestamp(ArrayRef),
    Date(ArrayRef),
    Bytes(ArrayRef),
    /// Displayed by Arrow: one string per row, `None` for null.
    Shown(Vec<Option<String>>),
}

fn cast_to(a: &ArrayRef, dt: &DataType, name: &str) -> PgWireResult<ArrayRef> {
    cast(a, dt).map_err(|e| {
        user_error(
            "22003",
            format!("column \"{name}\" cannot be sent as {dt}: {e}"),
        )
    })
}

fn column(a: &ArrayRef, name: &str) -> PgWireResult<Column> {
    let dt = a.data_type();
    let us_utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Ok(match pg_type(dt) {
        Type::BOOL => Column::Bool(cast_to(a, &DataType::Boolean, name)?),
        Type::INT2 => Column::I16(cast_to(a, &DataType::Int16, name)?),
        Type::INT4 => Column::I32(cast_to(a, &DataType::Int32, name)?),
        Type::INT8 => Column::I64(cast_to(a, &DataType::Int64, name)?),
        Type::FLOAT4 => Column::F32(cast_to(a, &DataType::Float32, name)?),
        Type::FLOAT8 => Column::F64(cast_to(a, &DataType::Float64, name)?),
        Type::TIMESTAMPTZ => Column::TimestampTz(cast_to(a, &us_utc, name)?),
        Type::TIMESTAMP => Column::Timestamp(cast_to(
            a,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
            name,
        )?),
        Type::DATE => Column::Date(cast_to(a, &DataType::Date32, name)?),
        Type::BYTEA => Column::Bytes(cast_to(a, &DataType::Binary, name)?),
        _ => match dt {
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Dictionary(..)
            | DataType::Null => Column::Text(cast_to(a, &DataType::Utf8, name)?),
            _ => {
                let opts = FormatOptions::default();
                let f = ArrayFormatter::try_new(a.as_ref(), &opts).map_err(|e| {
                    user_error("XX000", format!("column \"{name}\" cannot be shown: {e}"))
                })?;
                Column::Shown(
                    (0..a.len())
                        .map(|i| a.is_valid(i).then(|| f.value(i).to_string()))
                        .collect(),
                )
            }
        },
    })
}

fn micros_to_utc(us: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(us)
}

/// Encodes the rows of `batch` for a row description `fields`.
pub(crate) fn encode_batch(
    batch: &RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
    out: &mut Vec<PgWireResult<DataRow>>,
) -> PgWireResult<()> {
    let schema = batch.schema();
    let cols: Vec<Column> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(a, f)| column(a, f.name()))
        .collect::<PgWireResult<_>>()?;
    let mut encoder = DataRowEncoder::new(fields.clone());
    for row in 0..batch.num_rows() {
        for c in &cols {
            encode_value(&mut encoder, c, row)?;
        }
        out.push(Ok(encoder.take_row()));
    }
    Ok(())
}

fn encode_value(e: &mut DataRowEncoder, c: &Column, i: usize) -> PgWireResult<()> {
    fn get<T, A: Array>(a: &A, i: usize, f: impl Fn(&A, usize) -> T) -> Option<T> {
        a.is_valid(i).then(|| f(a, i))
    }
    match c {
        Column::Bool(a) => e.encode_field(&get(a.as_boolean(), i, |a, i| a.value(i))),
        Column::I16(a) => e.encode_field(&get(a.as_primitive::<Int16Type>(), i, |a, i| a.value(i))),
        Column::I32(a) => e.encode_field(&get(a.as_primitive::<Int32Type>(), i, |a, i| a.value(i))),
        Column::I64(a) => e.encode_field(&get(a.as_primitive::<Int64Type>(), i, |a, i| a.value(i))),
        Column::F32(a) => {
            e.encode_field(&get(a.as_primitive::<Float32Type>(), i, |a, i| a.value(i)))
        }
        Column::F64(a) => {
            e.encode_field(&get(a.as_primitive::<Float64Type>(), i, |a, i| a.value(i)))
        }
        Column::Text(a) => {
            let a = a.as_string::<i32>();
            e.encode_field(&a.is_valid(i).then(|| a.value(i)))
        }
        Column::TimestampTz(a) => e.encode_field(
            &get(a.as_primitive::<TimestampMicrosecondType>(), i, |a, i| {
                a.value(i)
            })
            .and_then(micros_to_utc),
        ),
        Column::Timestamp(a) => e.encode_field(
            &get(a.as_primitive::<TimestampMicrosecondType>(), i, |a, i| {
                a.value(i)
            })
            .and_then(micros_to_utc)
            .map(|t| t.naive_utc()),
        ),
        Column::Date(a) => e.encode_field(
            &get(a.as_primitive::<Date32Type>(), i, |a, i| a.value(i)).and_then(|d| {
                NaiveDate::from_ymd_opt(1970, 1, 1)
                    .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(d.into())))
            }),
        ),
        Column::Bytes(a) => {
            let a = a.as_binary::<i32>();
            e.encode_field(&a.is_valid(i).then(|| a.value(i)))
        }
        Column::Shown(v) => e.encode_field(&v[i].as_deref()),
    }
}
