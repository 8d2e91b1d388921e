//! The dataset's merged schema, its history, and the type-conflict policy.
//!
//! # Type-conflict policy
//! A field takes its type from the first non-null value the dataset sees for it (reserved fields
//! have fixed types: see [`reserved_type`]). After that:
//!
//! | field type | value arrives as | stored as |
//! |---|---|---|
//! | int | float | the field widens to float, for good; older files' ints read as floats |
//! | float | int | the float of that int |
//! | string | bool, int, float | its JSON text (`true`, `42`, `1.5`) in the same column |
//! | bool, int, float | any other type | null in the typed column, and the value's JSON text in the sibling column `<field>.__raw` |
//!
//! So no value is ever dropped because its type changed. To see every value of a field whose
//! type conflicted, query both columns:
//! `SELECT COALESCE(CAST("http.status_code" AS VARCHAR), "http.status_code.__raw") FROM api`.
//! Null values never fix a field's type: a field seen only as null has no column yet, and reads
//! as null (which is what a missing field reads as anyway).
//!
//! # File
//! `_catalog/schema.json`, replaced atomically (write, fsync, rename) whenever it changes, and
//! always before any Parquet file that uses the change is published. It holds, per field, the
//! current type, when it was first seen, and every type it has had since when.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use loupe_event::{Value, ValueKind, fields};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::fsutil;

pub const CATALOG_FILE: &str = "schema.json";
const FORMAT_VERSION: u32 = 1;

/// Most columns one dataset may have. Values of fields past it are kept in the overflow column
/// ([`loupe_event::fields::OVERFLOW`]), as a JSON object per event.
pub const MAX_FIELDS_PER_DATASET: usize = 10_000;

/// A stored field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Bool,
    Int,
    Float,
    String,
    Timestamp,
}

impl FieldType {
    pub fn arrow_type(self) -> DataType {
        match self {
            FieldType::Bool => DataType::Boolean,
            FieldType::Int => DataType::Int64,
            FieldType::Float => DataType::Float64,
            FieldType::String => DataType::Utf8,
            FieldType::Timestamp => timestamp_type(),
        }
    }

    fn of_kind(kind: ValueKind) -> Option<FieldType> {
        match kind {
            ValueKind::Null => None,
            ValueKind::Bool => Some(FieldType::Bool),
            ValueKind::Int => Some(FieldType::Int),
            ValueKind::Float => Some(FieldType::Float),
            ValueKind::Str => Some(FieldType::String),
        }
    }
}

/// `Timestamp(Microsecond, "UTC")`, the storage type of `timestamp`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The fixed type of a reserved field.
pub fn reserved_type(name: &str) -> Option<FieldType> {
    use fields::ReservedKind as R;
    if name == fields::TIMESTAMP {
        return Some(FieldType::Timestamp);
    }
    fields::reserved_kind(name).map(|k| match k {
        R::Number => FieldType::Float,
        R::Int => FieldType::Int,
        R::Bool => FieldType::Bool,
        R::Str => FieldType::String,
    })
}

/// How one value of a field is stored, given the field's current type.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// In the field's own column, converted to its type.
    Typed(Value),
    /// Null in the field's column; this JSON text in `<field>.__raw`.
    Raw(String),
}

/// Whether `value` goes into a column of type `ty` as it is (same type, or null): the common
/// case, answered without building a [`Placement`] (which clones strings).
pub fn fits(ty: FieldType, value: &Value) -> bool {
    use FieldType as T;
    matches!(
        (ty, value),
        (_, Value::Null)
            | (T::Bool, Value::Bool(_))
            | (T::Int, Value::Int(_))
            | (T::Float, Value::Float(_))
            | (T::String, Value::Str(_))
    )
}

/// Applies the policy table in the module doc to one value.
pub fn place(ty: FieldType, value: &Value) -> Placement {
    use FieldType as T;
    match (ty, value) {
        (_, Value::Null) => Placement::Typed(Value::Null),
        (T::Bool, Value::Bool(_))
        | (T::Int, Value::Int(_))
        | (T::Float, Value::Float(_))
        | (T::String, Value::Str(_)) => Placement::Typed(value.clone()),
        (T::Float, Value::Int(i)) => Placement::Typed(Value::Float(*i as f64)),
        (T::String, other) => Placement::Typed(Value::Str(other.to_json_text())),
        (_, other) => Placement::Raw(other.to_json_text()),
    }
}

/// The name of the column that keeps `field`'s values of a conflicting type.
pub fn raw_column(field: &str) -> String {
    format!("{field}{}", fields::RAW_SUFFIX)
}

/// One field's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldInfo {
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// When the dataset first stored this field (microseconds since the epoch, from the event's
    /// receive time in the collector).
    pub first_seen_us: i64,
    /// Every type the field has had, oldest first, with when it started. The last is `ty`.
    pub history: Vec<TypeSince>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeSince {
    #[serde(rename = "type")]
    pub ty: FieldType,
    pub since_us: i64,
}

#[derive(Serialize, Deserialize)]
struct CatalogFile {
    version: u32,
    fields: BTreeMap<String, FieldInfo>,
}

/// The merged schema of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    fields: BTreeMap<String, FieldInfo>,
    dirty: bool,
    field_limit: usize,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            fields: BTreeMap::new(),
            dirty: false,
            field_limit: MAX_FIELDS_PER_DATASET,
        }
    }
}

/// What [`Catalog::observe`] did with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Known,
    Added,
    Widened,
    /// The dataset is at [`MAX_FIELDS_PER_DATASET`]; the field has no column.
    OverLimit,
}

impl Catalog {
    /// Reads `<catalog_dir>/schema.json`; an absent file is an empty catalog.
    pub fn load(catalog_dir: &Path) -> Result<Catalog> {
        let path = catalog_dir.join(CATALOG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Catalog::default()),
            Err(e) => return Err(e).ctx("read", &path),
        };
        let file: CatalogFile =
            serde_json::from_slice(&bytes).map_err(|e| Error::CorruptCatalog {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if file.version != FORMAT_VERSION {
            return Err(Error::CorruptCatalog {
                path,
                reason: format!("format version {} is not {FORMAT_VERSION}", file.version),
            });
        }
        Ok(Catalog {
            fields: file.fields,
            ..Catalog::default()
        })
    }

    /// The same catalog with another field limit (default [`MAX_FIELDS_PER_DATASET`]).
    pub fn with_field_limit(mut self, limit: usize) -> Self {
        self.field_limit = limit;
        self
    }

    /// Writes the catalog if it changed since it was loaded or last saved (atomically).
    pub fn save_if_changed(&mut self, catalog_dir: &Path) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        fsutil::create_dir_durable(catalog_dir)?;
        let file = CatalogFile {
            version: FORMAT_VERSION,
            fields: self.fields.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("catalog serializes");
        fsutil::write_atomic(&catalog_dir.join(CATALOG_FILE), &bytes)?;
        self.dirty = false;
        Ok(())
    }

    pub fn path(catalog_dir: &Path) -> PathBuf {
        catalog_dir.join(CATALOG_FILE)
    }

    pub fn get(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.get(name)
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &FieldInfo)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Records that `name` was seen with `value` at `now_us`: adds the field, widens it, or
    /// adds its `.__raw` sibling, as the policy says.
    pub fn observe(&mut self, name: &str, value: &Value, now_us: i64) -> Observed {
        let Some(kind_ty) = FieldType::of_kind(value.kind()) else {
            return Observed::Known;
        };
        if let Some(info) = self.fields.get_mut(name) {
            if fits(info.ty, value) {
                return Observed::Known;
            }
            return match place(info.ty, value) {
                Placement::Typed(_) => Observed::Known,
                Placement::Raw(_) if info.ty == FieldType::Int && kind_ty == FieldType::Float => {
                    info.ty = FieldType::Float;
                    info.history.push(TypeSince {
                        ty: FieldType::Float,
                        since_us: now_us,
                    });
                    self.dirty = true;
                    Observed::Widened
                }
                Placement::Raw(_) => {
                    let raw = raw_column(name);
                    if self.fields.contains_key(&raw) {
                        Observed::Known
                    } else {
                        self.add(raw, FieldType::String, now_us)
                    }
                }
            };
        }
        let ty = reserved_type(name).unwrap_or(kind_ty);
        let added = self.add(name.to_owned(), ty, now_us);
        // A reserved field's first value may itself conflict with the fixed type.
        if added == Observed::Added && matches!(place(ty, value), Placement::Raw(_)) {
            self.observe(name, value, now_us);
        }
        added
    }

    /// Adds `name` with type `ty` if the catalog does not have it yet, whatever the field limit
    /// (for loupe's own columns, such as `timestamp` and the overflow column).
    pub fn ensure(&mut self, name: &str, ty: FieldType, now_us: i64) {
        if !self.fields.contains_key(name) {
            self.insert(name.to_owned(), ty, now_us);
        }
    }

    fn add(&mut self, name: String, ty: FieldType, now_us: i64) -> Observed {
        if self.fields.len() >= self.field_limit {
            return Observed::OverLimit;
        }
        self.insert(name, ty, now_us);
        Observed::Added
    }

    fn insert(&mut self, name: String, ty: FieldType, now_us: i64) {
        self.fields.insert(
            name,
            FieldInfo {
                ty,
                first_seen_us: now_us,
                history: vec![TypeSince {
                    ty,
                    since_us: now_us,
                }],
            },
        );
        self.dirty = true;
    }

    /// The table schema: `timestamp` first, then every field by name. Partition columns are
    /// not included; readers add them.
    pub fn arrow_schema(&self) -> SchemaRef {
        let mut cols = vec![Field::new(fields::TIMESTAMP, timestamp_type(), false)];
        cols.extend(
            self.fields
                .iter()
                .filter(|(name, _)| name.as_str() != fields::TIMESTAMP)
                .map(|(name, info)| Field::new(name, info.ty.arrow_type(), true)),
        );
        Arc::new(Schema::new(cols))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_non_null_value_fixes_the_type() {
        let mut c = Catalog::default();
        assert_eq!(c.observe("a", &Value::Null, 1), Observed::Known);
        assert!(c.get("a").is_none());
        assert_eq!(c.observe("a", &Value::Int(1), 2), Observed::Added);
        assert_eq!(c.get("a").unwrap().ty, FieldType::Int);
        assert_eq!(c.get("a").unwrap().first_seen_us, 2);
    }

    #[test]
    fn int_widens_to_float_and_history_remembers() {
        let mut c = Catalog::default();
        c.observe("x", &Value::Int(1), 10);
        assert_eq!(c.observe("x", &Value::Float(1.5), 20), Observed::Widened);
        let info = c.get("x").unwrap();
        assert_eq!(info.ty, FieldType::Float);
        assert_eq!(
            info.history,
            vec![
                TypeSince {
                    ty: FieldType::Int,
                    since_us: 10
                },
                TypeSince {
                    ty: FieldType::Float,
                    since_us: 20
                }
            ]
        );
        // an int afterwards stays in the float column
        assert_eq!(c.observe("x", &Value::Int(2), 30), Observed::Known);
        assert_eq!(
            place(FieldType::Float, &Value::Int(2)),
            Placement::Typed(Value::Float(2.0))
        );
    }

    #[test]
    fn incompatible_values_go_to_the_raw_sibling() {
        let mut c = Catalog::default();
        c.observe("code", &Value::Int(200), 1);
        assert_eq!(c.observe("code", &Value::from("OK"), 2), Observed::Added);
        assert_eq!(c.get("code.__raw").unwrap().ty, FieldType::String);
        assert_eq!(c.get("code").unwrap().ty, FieldType::Int);
        assert_eq!(
            place(FieldType::Int, &Value::from("OK")),
            Placement::Raw("\"OK\"".into())
        );
        assert_eq!(
            place(FieldType::Bool, &Value::Int(1)),
            Placement::Raw("1".into())
        );
        assert_eq!(
            place(FieldType::Float, &Value::Bool(true)),
            Placement::Raw("true".into())
        );
    }

    #[test]
    fn strings_absorb_scalars_as_json_text() {
        assert_eq!(
            place(FieldType::String, &Value::Int(42)),
            Placement::Typed(Value::from("42"))
        );
        assert_eq!(
            place(FieldType::String, &Value::Bool(false)),
            Placement::Typed(Value::from("false"))
        );
        let mut c = Catalog::default();
        c.observe("user.id", &Value::from("u1"), 1);
        assert_eq!(c.observe("user.id", &Value::Int(7), 2), Observed::Known);
        assert!(c.get("user.id.__raw").is_none());
    }

    #[test]
    fn reserved_fields_have_fixed_types() {
        let mut c = Catalog::default();
        c.observe("duration_ms", &Value::Int(5), 1);
        assert_eq!(c.get("duration_ms").unwrap().ty, FieldType::Float);
        c.observe("http.status_code", &Value::Int(5), 1);
        assert_eq!(c.get("http.status_code").unwrap().ty, FieldType::Int);
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::default();
        c.observe("a", &Value::Int(1), 1);
        c.observe("a", &Value::Float(1.0), 2);
        c.observe("b", &Value::from("x"), 3);
        c.save_if_changed(dir.path()).unwrap();
        let loaded = Catalog::load(dir.path()).unwrap();
        assert_eq!(loaded.fields, c.fields);
        assert!(!loaded.dirty);
        assert!(
            Catalog::load(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn corrupt_catalog_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CATALOG_FILE), b"{not json").unwrap();
        let err = Catalog::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("schema.json"), "{err}");
    }

    #[test]
    fn schema_puts_timestamp_first() {
        let mut c = Catalog::default();
        c.observe("z", &Value::Bool(true), 1);
        c.observe("a", &Value::Float(1.0), 1);
        let s = c.arrow_schema();
        let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["timestamp", "a", "z"]);
        assert_eq!(s.field(0).data_type(), &timestamp_type());
    }
}
