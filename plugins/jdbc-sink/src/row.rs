//! From a record to the columns of a row: which fields form the key (`pk.mode`,
//! `pk.fields`), which are written (`fields.whitelist`), their types and their values.
//! Records with a schema are read through it; schemaless values (JSON objects) are typed
//! from their values.

use std::borrow::Cow;
use std::sync::Arc;

use wasmconnect_sdk::data::json;
use wasmconnect_sdk::data::logical;
use wasmconnect_sdk::data::{Data, Decimal, Record, Schema, SchemaType, Value, codec};
use wasmconnect_sdk::sql::SqlParam;

use crate::config::{PkMode, Settings};
use crate::dialect::{ColType, ColumnSpec};

/// A cell's column, its name borrowed from the record's schema or value, or from the
/// settings: a batch's rows name their columns without a copy each, and rows read
/// through one schema share the very same names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellSpec<'a> {
    pub name: &'a str,
    pub col_type: ColType,
    pub optional: bool,
    pub key: bool,
}

impl CellSpec<'_> {
    /// The column to create or add for this cell.
    pub fn column(&self) -> ColumnSpec {
        ColumnSpec {
            name: self.name.to_owned(),
            col_type: self.col_type,
            optional: self.optional,
            key: self.key,
            default: None,
        }
    }
}

/// One column of a row. Its text or bytes are borrowed from the record where it has them,
/// and go on to the statement's parameters without a copy of their own.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell<'a> {
    pub spec: CellSpec<'a>,
    pub value: SqlParam<'a>,
}

/// What a record turns into.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<'a> {
    /// Insert, upsert or update: key cells first, then the rest.
    Write {
        cells: Vec<Cell<'a>>,
        key_count: usize,
    },
    /// A tombstone with `delete.enabled`: the key cells.
    Delete { keys: Vec<Cell<'a>> },
}

/// Whether two column names are the same: the same text in memory (rows of one schema),
/// or equal text.
fn same_name(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl<'a> Change<'a> {
    /// The cells a statement binds: the row, or the key of a delete.
    pub fn cells(&self) -> &[Cell<'a>] {
        match self {
            Change::Write { cells, .. } => cells,
            Change::Delete { keys } => keys,
        }
    }

    /// Column names, to tell when consecutive records can share one statement.
    pub fn shape(&self) -> Vec<&'a str> {
        self.cells().iter().map(|c| c.spec.name).collect()
    }

    /// Whether two changes are of one kind and bind the same columns in the same order
    /// (what [`Change::shape`] compares, without building it).
    pub fn same_shape(&self, other: &Change<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && self.cells().len() == other.cells().len()
            && self
                .cells()
                .iter()
                .zip(other.cells())
                .all(|(a, b)| same_name(a.spec.name, b.spec.name))
    }
}

/// A row's key values, compared and hashed by value (a double by its bits, so `-0.0` and
/// `0.0` stay apart, as they would in the database's key), to find the last write of
/// each key in a batch.
#[derive(Debug, Clone, Copy)]
pub struct KeyValues<'a>(pub &'a [Cell<'a>]);

impl PartialEq for KeyValues<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0)
                .all(|(a, b)| same_value(&a.value, &b.value))
    }
}

impl Eq for KeyValues<'_> {}

impl std::hash::Hash for KeyValues<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for cell in self.0 {
            let v = &cell.value;
            std::mem::discriminant(v).hash(state);
            match v {
                SqlParam::Null => {}
                SqlParam::Boolean(b) => b.hash(state),
                SqlParam::Int(i) | SqlParam::Time(i) | SqlParam::Timestamp(i) => i.hash(state),
                SqlParam::Uint(u) => u.hash(state),
                SqlParam::Double(d) => d.to_bits().hash(state),
                SqlParam::Text(s) | SqlParam::Decimal(s) => s.hash(state),
                SqlParam::Bytes(b) => b.hash(state),
                SqlParam::Date(d) => d.hash(state),
            }
        }
    }
}

/// Hashes [`KeyValues`] for the de-duplication of one batch: keys come from the
/// batch's own records, so a fast multiplicative hash does (no SipHash per row).
pub type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

#[derive(Debug, Default)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn same_value(a: &SqlParam<'_>, b: &SqlParam<'_>) -> bool {
    match (a, b) {
        (SqlParam::Double(x), SqlParam::Double(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// The type a Connect schema maps to; `None` for a type no column can hold.
fn col_type(schema: &Schema) -> ColType {
    match schema.name.as_deref() {
        Some(logical::DECIMAL) => return ColType::Decimal(schema.decimal_scale().unwrap_or(0)),
        Some(logical::DATE) => return ColType::Date,
        Some(logical::TIME) => return ColType::Time,
        Some(logical::TIMESTAMP) => return ColType::Timestamp,
        _ => {}
    }
    match schema.schema_type {
        SchemaType::Int8 => ColType::Int8,
        SchemaType::Int16 => ColType::Int16,
        SchemaType::Int32 => ColType::Int32,
        SchemaType::Int64 => ColType::Int64,
        SchemaType::Float32 => ColType::Float32,
        SchemaType::Float64 => ColType::Float64,
        SchemaType::Boolean => ColType::Boolean,
        SchemaType::String => ColType::String,
        SchemaType::Bytes => ColType::Bytes,
        SchemaType::Struct | SchemaType::Array | SchemaType::Map => ColType::Json,
    }
}

/// The type of a schemaless value; `None` for null (unknown until a value arrives).
fn inferred_type(value: &Value) -> Option<ColType> {
    Some(match value {
        Value::Null => return None,
        Value::Boolean(_) => ColType::Boolean,
        Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => ColType::Int64,
        Value::Float32(_) | Value::Float64(_) => ColType::Float64,
        Value::String(_) => ColType::String,
        Value::Bytes(_) => ColType::Bytes,
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => ColType::Json,
    })
}

const DAY_MICROS: i64 = 86_400_000_000;

/// A Connect value as a bound parameter, temporal values shifted into `db.timezone`; text
/// and bytes borrowed from the value.
fn sql_value(value: &Value, col: ColType, tz_offset_secs: i64) -> Result<SqlParam<'_>, String> {
    let shift = tz_offset_secs * 1_000_000;
    Ok(match (value, col) {
        (Value::Null, _) => SqlParam::Null,
        (Value::Bytes(b), ColType::Decimal(scale)) => SqlParam::Decimal(Cow::Owned(
            Decimal::from_bytes(b, scale)
                .ok_or("a Decimal wider than 128 bits")?
                .to_string(),
        )),
        (Value::Int32(days), ColType::Date) => SqlParam::Date(*days),
        (Value::Int32(ms), ColType::Time) => {
            SqlParam::Time((i64::from(*ms) * 1000 + shift).rem_euclid(DAY_MICROS))
        }
        (Value::Int64(ms), ColType::Timestamp) => SqlParam::Timestamp(
            ms.checked_mul(1000)
                .and_then(|m| m.checked_add(shift))
                .ok_or("a Timestamp out of range")?,
        ),
        (Value::Boolean(b), _) => SqlParam::Boolean(*b),
        (Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_), _) => {
            SqlParam::Int(value.as_i64().unwrap_or_default())
        }
        (Value::Float32(f), _) => SqlParam::Double(f64::from(*f)),
        (Value::Float64(f), _) => SqlParam::Double(*f),
        (Value::String(s), _) => SqlParam::Text(Cow::Borrowed(s)),
        (Value::Bytes(b), _) => SqlParam::Bytes(Cow::Borrowed(b)),
        (Value::Array(_) | Value::Map(_) | Value::Struct(_), _) => {
            SqlParam::Text(Cow::Owned(json::to_string(value)))
        }
    })
}

/// A field's value: decoded, or still encoded in the batch frame.
#[derive(Debug, Clone, Copy)]
enum FieldValue<'a> {
    Decoded(&'a Value),
    Encoded(&'a [u8]),
}

/// A field's name, value and schema (when the record has one).
type NamedField<'a> = (&'a str, FieldValue<'a>, Option<&'a Arc<Schema>>);

/// The named fields of a struct or a string-keyed map, with their schemas when known.
fn fields_of<'a>(value: &'a Value, schema: Option<&'a Arc<Schema>>) -> Option<Vec<NamedField<'a>>> {
    match value {
        Value::Struct(s) => Some(
            s.schema()
                .fields
                .iter()
                .zip(s.values())
                .map(|(f, v)| (f.name.as_str(), FieldValue::Decoded(v), Some(&f.schema)))
                .collect(),
        ),
        Value::Map(entries) if schema.is_none_or(|s| s.schema_type == SchemaType::Map) => entries
            .iter()
            .map(|(k, v)| k.as_str().map(|k| (k, FieldValue::Decoded(v), None)))
            .collect(),
        _ => None,
    }
}

/// The fields of a struct still encoded in the batch frame, read where they are: the
/// record's value is never decoded, and its text is not copied on the way to the
/// statement. `None` when the data is not an encoded struct.
fn encoded_fields_of(data: &Data) -> Option<Result<Vec<NamedField<'_>>, String>> {
    let schema = data.schema.as_ref()?;
    let fields = codec::struct_field_values(data.encoded()?, schema).ok()?;
    Some(
        fields
            .map(|field| {
                let (f, bytes) = field.map_err(|e| e.to_string())?;
                Ok((f.name.as_str(), FieldValue::Encoded(bytes), Some(&f.schema)))
            })
            .collect(),
    )
}

/// Builds one cell; `key` cells are never nullable.
fn cell<'a>(
    name: &'a str,
    value: FieldValue<'a>,
    schema: Option<&'a Arc<Schema>>,
    key: bool,
    settings: &Settings,
) -> Result<Cell<'a>, String> {
    let (spec, value) = match value {
        FieldValue::Decoded(value) => cell_of(name, value, schema, key, settings)?,
        // Text as it is in the frame: a string is written as text whatever its column.
        FieldValue::Encoded(bytes) if let Some(text) = codec::str_of(bytes) => {
            let (col_type, optional) =
                schema.map_or((ColType::String, true), |s| (col_type(s), s.optional));
            let spec = CellSpec {
                name,
                col_type,
                optional: optional && !key,
                key,
            };
            (spec, SqlParam::Text(Cow::Borrowed(text)))
        }
        FieldValue::Encoded(bytes) => {
            let decoded =
                codec::decode_value(bytes, schema).map_err(|e| format!("field {name:?}: {e}"))?;
            let (spec, value) = cell_of(name, &decoded, schema, key, settings)?;
            (spec, value.into_owned())
        }
    };
    Ok(Cell { spec, value })
}

/// A cell's column and its value, borrowing from `value` (or from the schema's default).
fn cell_of<'n, 'v>(
    name: &'n str,
    value: &'v Value,
    schema: Option<&'v Arc<Schema>>,
    key: bool,
    settings: &Settings,
) -> Result<(CellSpec<'n>, SqlParam<'v>), String> {
    let mut value = value;
    if value.is_null()
        && settings.replace_null_with_default
        && let Some(default) = schema.and_then(|s| s.default.as_ref())
    {
        value = default;
    }
    let (col_type, optional) = match schema {
        Some(s) => (col_type(s), s.optional),
        None => (inferred_type(value).unwrap_or(ColType::String), true),
    };
    if key && value.is_null() {
        return Err(format!("the key field {name:?} is null"));
    }
    let spec = CellSpec {
        name,
        col_type,
        optional: optional && !key,
        key,
    };
    let value = sql_value(value, col_type, settings.tz_offset_secs)
        .map_err(|e| format!("field {name:?}: {e}"))?;
    Ok((spec, value))
}

fn kafka_keys<'a>(record: &'a Record, settings: &'a Settings) -> Vec<Cell<'a>> {
    let names: Vec<&str> = if settings.pk_fields.len() == 3 {
        settings.pk_fields.iter().map(String::as_str).collect()
    } else {
        vec!["__connect_topic", "__connect_partition", "__connect_offset"]
    };
    let values = [
        (
            SqlParam::Text(Cow::Borrowed(&record.topic)),
            ColType::String,
        ),
        (
            SqlParam::Int(i64::from(record.partition.unwrap_or(-1))),
            ColType::Int32,
        ),
        (SqlParam::Int(record.offset.unwrap_or(-1)), ColType::Int64),
    ];
    names
        .into_iter()
        .zip(values)
        .map(|(name, (value, col_type))| Cell {
            spec: CellSpec {
                name,
                col_type,
                optional: false,
                key: true,
            },
            value,
        })
        .collect()
}

/// Key cells from the fields of the record's `part` (key or value): those named by
/// `pk.fields`, or all of them when it is empty.
fn key_cells<'a>(
    fields: &[NamedField<'a>],
    part: &str,
    settings: &Settings,
) -> Result<Vec<Cell<'a>>, String> {
    // Room for the value's other fields too: the caller appends them.
    let mut cells = Vec::with_capacity(fields.len());
    if settings.pk_fields.is_empty() {
        for (n, v, s) in fields {
            cells.push(cell(n, *v, *s, true, settings)?);
        }
        return Ok(cells);
    }
    for name in &settings.pk_fields {
        let (n, v, s) = fields
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| format!("the record {part} has no field {name:?} (pk.fields)"))?;
        cells.push(cell(n, *v, *s, true, settings)?);
    }
    Ok(cells)
}

/// Key cells from the record key: a primitive (one `pk.fields` name), or a struct or map
/// (all its fields, or those in `pk.fields`).
fn record_key_cells<'a>(
    record: &'a Record,
    settings: &'a Settings,
) -> Result<Vec<Cell<'a>>, String> {
    let key = record.key.value();
    if key.is_null() {
        return Err("pk.mode record_key needs a non-null record key".into());
    }
    match fields_of(key, record.key.schema.as_ref()) {
        Some(fields) => key_cells(&fields, "key", settings),
        None => match settings.pk_fields.as_slice() {
            [name] => Ok(vec![cell(
                name,
                FieldValue::Decoded(key),
                record.key.schema.as_ref(),
                true,
                settings,
            )?]),
            _ => Err(
                "pk.mode record_key with a primitive key needs exactly one name in pk.fields"
                    .into(),
            ),
        },
    }
}

/// Turns a record into a change.
///
/// # Errors
/// Why this record cannot be written; the message names the field.
pub fn change_of<'a>(record: &'a Record, settings: &'a Settings) -> Result<Change<'a>, String> {
    if record.is_tombstone() {
        if !settings.delete_enabled {
            return Err(format!(
                "the record at {}-{} offset {} is a tombstone (null value) and delete.enabled=false",
                record.topic,
                record.partition.unwrap_or(-1),
                record.offset.unwrap_or(-1)
            ));
        }
        return Ok(Change::Delete {
            keys: record_key_cells(record, settings)?,
        });
    }
    let fields = match encoded_fields_of(&record.value) {
        Some(fields) => fields?,
        None => {
            let value = record.value.value();
            fields_of(value, record.value.schema.as_ref()).ok_or_else(|| {
                format!(
                    "needs a struct value or a JSON object, found {}",
                    value.schema_type().map_or("null", |t| t.json_name())
                )
            })?
        }
    };
    let mut cells = match settings.pk_mode {
        PkMode::None => Vec::new(),
        PkMode::Kafka => kafka_keys(record, settings),
        PkMode::RecordKey => record_key_cells(record, settings)?,
        PkMode::RecordValue => key_cells(&fields, "value", settings)?,
    };
    let key_count = cells.len();
    cells.reserve(fields.len().saturating_sub(key_count));
    for (name, v, s) in fields {
        if cells[..key_count]
            .iter()
            .any(|c| same_name(c.spec.name, name))
        {
            continue;
        }
        if !settings.fields_whitelist.is_empty()
            && !settings.fields_whitelist.iter().any(|w| w == name)
        {
            continue;
        }
        cells.push(cell(name, v, s, false, settings)?);
    }
    if cells.is_empty() {
        return Err("the record has no fields to write".into());
    }
    Ok(Change::Write { cells, key_count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{JdbcSinkConfig, Settings};
    use wasmconnect_sdk::config::{Config, ConfigStruct};
    use wasmconnect_sdk::data::{Data, Struct};

    #[test]
    fn key_values_compare_by_value_and_type() {
        use std::collections::HashSet;
        let cell = |value: SqlParam<'static>| Cell {
            spec: CellSpec {
                name: "id",
                col_type: ColType::Int64,
                optional: false,
                key: true,
            },
            value,
        };
        let rows = [
            vec![cell(SqlParam::Int(1)), cell(SqlParam::Text("a".into()))],
            vec![cell(SqlParam::Int(1)), cell(SqlParam::Text("a".into()))],
            vec![cell(SqlParam::Int(1)), cell(SqlParam::Text("b".into()))],
            vec![cell(SqlParam::Uint(1)), cell(SqlParam::Text("a".into()))],
            vec![cell(SqlParam::Double(0.0))],
            vec![cell(SqlParam::Double(-0.0))],
            vec![cell(SqlParam::Double(0.0))],
            vec![cell(SqlParam::Null)],
        ];
        let mut seen = HashSet::with_hasher(KeyHash::default());
        let fresh: Vec<bool> = rows.iter().map(|r| seen.insert(KeyValues(r))).collect();
        assert_eq!(fresh, [true, false, true, true, true, true, false, true]);
    }

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut c = Config::new().with("connection.url", "jdbc:sqlite::memory:");
        for (k, v) in pairs {
            c = c.with(*k, *v);
        }
        Settings::from_config(&JdbcSinkConfig::from_config(&c).expect("config")).expect("settings")
    }

    fn user(id: i64, name: Option<&str>) -> Record {
        let schema = Arc::new(
            Schema::structure()
                .named("test_user")
                .field("id", Schema::new(SchemaType::Int64))
                .field("name", Schema::new(SchemaType::String).optional())
                .field("born", Schema::date().optional()),
        );
        let value = Struct::new(schema.clone())
            .and_then(|s| s.put("id", id))
            .and_then(|s| s.put("name", name))
            .and_then(|s| s.put("born", Value::Int32(19_000)))
            .expect("struct");
        let mut r = Record::new("users", Data::new(schema, Value::Struct(value)));
        r.partition = Some(0);
        r.offset = Some(7);
        r
    }

    #[test]
    fn record_value_keys_come_first_and_whitelist_keeps_them() {
        let s = settings(&[
            ("pk.mode", "record_value"),
            ("pk.fields", "id"),
            ("fields.whitelist", "name"),
        ]);
        let record = user(5, Some("a"));
        let Change::Write { cells, key_count } = change_of(&record, &s).expect("change") else {
            panic!("a write");
        };
        assert_eq!(key_count, 1);
        let names: Vec<_> = cells.iter().map(|c| c.spec.name).collect();
        assert_eq!(names, ["id", "name"]);
        assert_eq!(cells[0].value, SqlParam::Int(5));
        assert!(!cells[0].spec.optional);
    }

    /// A record as a plugin receives it: its value still encoded in the batch frame.
    fn encoded(record: &Record) -> Record {
        let mut r = record.clone();
        let bytes = codec::encode_value(record.value.value());
        r.value = Data::from_encoded(record.value.schema.clone(), bytes).expect("encoded");
        r
    }

    #[test]
    fn encoded_values_make_the_same_changes_without_being_decoded() {
        for pairs in [
            &[("pk.mode", "record_value"), ("pk.fields", "id")][..],
            &[("pk.mode", "kafka")],
            &[("pk.mode", "record_value"), ("fields.whitelist", "name")],
            &[("pk.mode", "none")],
        ] {
            let s = settings(pairs);
            for record in [user(5, Some("grüße")), user(6, None)] {
                let from_frame = encoded(&record);
                assert!(from_frame.value.encoded().is_some());
                assert_eq!(
                    change_of(&from_frame, &s),
                    change_of(&record, &s),
                    "{pairs:?}"
                );
            }
        }
        // The text is borrowed from the frame's bytes, not copied.
        let s = settings(&[("pk.mode", "record_value"), ("pk.fields", "id")]);
        let from_frame = encoded(&user(5, Some("grüße")));
        let Ok(Change::Write { cells, .. }) = change_of(&from_frame, &s) else {
            panic!("a write");
        };
        assert!(matches!(&cells[1].value, SqlParam::Text(Cow::Borrowed(t)) if *t == "grüße"));
        // A null key field is refused in the same words either way.
        let s = settings(&[("pk.mode", "record_value"), ("pk.fields", "name")]);
        let record = user(7, None);
        assert_eq!(change_of(&encoded(&record), &s), change_of(&record, &s));
        assert!(change_of(&record, &s).is_err());
    }

    #[test]
    fn kafka_mode_adds_coordinates_and_logical_types_convert() {
        let s = settings(&[("pk.mode", "kafka")]);
        let record = user(1, None);
        let Change::Write { cells, key_count } = change_of(&record, &s).expect("change") else {
            panic!("a write");
        };
        assert_eq!(key_count, 3);
        assert_eq!(cells[0].value, SqlParam::Text("users".into()));
        assert_eq!(cells[2].value, SqlParam::Int(7));
        assert_eq!(cells[4].value, SqlParam::Null);
        assert_eq!(cells[5].value, SqlParam::Date(19_000));
        assert_eq!(cells[5].spec.col_type, ColType::Date);
    }

    #[test]
    fn schemaless_maps_are_typed_from_their_values() {
        let s = settings(&[]);
        let value = Value::Map(vec![
            (Value::from("id"), Value::Int64(3)),
            (Value::from("tags"), Value::Array(vec![Value::from("x")])),
            (Value::from("ok"), Value::Boolean(true)),
        ]);
        let r = Record::new("t", Data::schemaless(value));
        let Change::Write { cells, .. } = change_of(&r, &s).expect("change") else {
            panic!("a write");
        };
        assert_eq!(cells[0].spec.col_type, ColType::Int64);
        assert_eq!(cells[1].value, SqlParam::Text("[\"x\"]".into()));
        assert_eq!(cells[2].spec.col_type, ColType::Boolean);
    }

    #[test]
    fn tombstones_delete_only_when_enabled() {
        let mut r = Record::new("t", Data::NULL).with_key(Data::schemaless(Value::Int64(9)));
        r.offset = Some(1);
        let err = change_of(&r, &settings(&[])).expect_err("tombstone");
        assert!(err.contains("delete.enabled=false"), "{err}");
        let s = settings(&[
            ("pk.mode", "record_key"),
            ("pk.fields", "id"),
            ("delete.enabled", "true"),
        ]);
        assert_eq!(change_of(&r, &s).expect("delete").shape(), vec!["id"]);
    }

    #[test]
    fn bad_records_name_the_field() {
        let s = settings(&[("pk.mode", "record_value"), ("pk.fields", "missing")]);
        let err = change_of(&user(1, None), &s).expect_err("missing");
        assert!(err.contains("\"missing\""), "{err}");
        let r = Record::new("t", Data::schemaless(Value::from("plain text")));
        assert!(
            change_of(&r, &settings(&[]))
                .expect_err("string")
                .contains("string")
        );
    }
}
