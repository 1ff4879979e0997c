//! Database columns as Connect fields: the type mapping of Confluent's
//! `GenericDatabaseDialect`, and row values turned into Connect values.

use std::sync::Arc;

use wasmconnect_sdk::data::codec::{encode_str_into, encode_value_into, put_struct_header};
use wasmconnect_sdk::data::{Decimal, Schema, SchemaType, Value};
use wasmconnect_sdk::sql::SqlParam;

/// The Connect type a column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Boolean,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// A Connect Decimal with this scale.
    Decimal(i32),
    String,
    Bytes,
    Date,
    Time,
    Timestamp,
}

impl FieldType {
    /// Maps a database type name (`BIGINT`, `int unsigned`, `varchar`, `datetime`...).
    /// `scale` is the DECIMAL scale where the metadata knows it.
    pub fn of(type_name: &str, scale: Option<i32>) -> FieldType {
        let t = type_name.to_ascii_uppercase();
        let unsigned = t.contains("UNSIGNED");
        let base = t
            .split(['(', ' '])
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        match (base.as_str(), unsigned) {
            ("BOOL" | "BOOLEAN", _) => FieldType::Boolean,
            ("BIT", _) | ("TINYINT" | "INT1", false) => FieldType::Int8,
            ("TINYINT" | "INT1", true) | ("SMALLINT" | "INT2" | "YEAR", false) => FieldType::Int16,
            ("SMALLINT" | "INT2" | "MEDIUMINT", true)
            | ("MEDIUMINT" | "INT" | "INTEGER" | "INT4" | "SERIAL", false) => FieldType::Int32,
            // BIGINT UNSIGNED stays INT64 as in Confluent; values above 2^63 fail clearly.
            ("INT" | "INTEGER" | "INT4", true) | ("BIGINT" | "INT8" | "BIGSERIAL", _) => {
                FieldType::Int64
            }
            ("REAL" | "FLOAT4" | "FLOAT", _) => FieldType::Float32,
            ("DOUBLE" | "FLOAT8", _) => FieldType::Float64,
            ("DECIMAL" | "NUMERIC" | "DEC" | "FIXED", _) => FieldType::Decimal(scale.unwrap_or(0)),
            ("DATE", _) => FieldType::Date,
            ("TIME" | "TIMETZ", _) => FieldType::Time,
            ("DATETIME" | "TIMESTAMP" | "TIMESTAMPTZ", _) => FieldType::Timestamp,
            (
                "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BYTEA",
                _,
            ) => FieldType::Bytes,
            _ if t.starts_with("DOUBLE") => FieldType::Float64,
            _ => FieldType::String,
        }
    }

    pub fn schema(self, optional: bool) -> Schema {
        let schema = match self {
            FieldType::Boolean => Schema::new(SchemaType::Boolean),
            FieldType::Int8 => Schema::new(SchemaType::Int8),
            FieldType::Int16 => Schema::new(SchemaType::Int16),
            FieldType::Int32 => Schema::new(SchemaType::Int32),
            FieldType::Int64 => Schema::new(SchemaType::Int64),
            FieldType::Float32 => Schema::new(SchemaType::Float32),
            FieldType::Float64 => Schema::new(SchemaType::Float64),
            FieldType::Decimal(scale) => Schema::decimal(scale),
            FieldType::String => Schema::new(SchemaType::String),
            FieldType::Bytes => Schema::new(SchemaType::Bytes),
            FieldType::Date => Schema::date(),
            FieldType::Time => Schema::time(),
            FieldType::Timestamp => Schema::timestamp(),
        };
        if optional { schema.optional() } else { schema }
    }
}

/// One column of a table or query result.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    pub field: FieldType,
    pub nullable: bool,
    pub primary_key: bool,
    pub auto_increment: bool,
}

/// `12.340` with scale 3 as a Decimal; `None` when it is not a decimal number.
pub fn parse_decimal(text: &str, scale: i32) -> Option<Decimal> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale_len = usize::try_from(scale.max(0)).ok()?;
    let mut unscaled: i128 = 0;
    for b in int.bytes() {
        unscaled = unscaled
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    let mut frac_digits = frac.bytes();
    for _ in 0..scale_len {
        let digit = frac_digits.next().map_or(0, |b| b - b'0');
        unscaled = unscaled.checked_mul(10)?.checked_add(i128::from(digit))?;
    }
    // Digits beyond the scale would be lost: only zeros may be dropped.
    if frac_digits.any(|b| b != b'0') {
        return None;
    }
    Some(Decimal {
        unscaled: if negative { -unscaled } else { unscaled },
        scale,
    })
}

/// The scale of a decimal's text (`12.340` has 3).
pub fn scale_of(text: &str) -> i32 {
    text.split_once('.')
        .map_or(0, |(_, f)| i32::try_from(f.len()).unwrap_or(0))
}

const DAY_MICROS: i64 = 86_400_000_000;

/// A row value as the field's Connect value; DATETIMEs read in `db.timezone`
/// (`tz_offset_secs` east of UTC) become UTC epoch milliseconds.
///
/// # Errors
/// A value that does not fit the field's type.
pub fn connect_value(
    v: &SqlParam<'_>,
    field: FieldType,
    tz_offset_secs: i64,
) -> Result<Value, String> {
    let int = |v: &SqlParam<'_>| -> Result<i64, String> {
        match v {
            SqlParam::Int(i) => Ok(*i),
            SqlParam::Uint(u) => i64::try_from(*u).map_err(|_| format!("{u} is beyond INT64")),
            SqlParam::Boolean(b) => Ok(i64::from(*b)),
            SqlParam::Text(s) | SqlParam::Decimal(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not an integer")),
            SqlParam::Double(f) => Ok(*f as i64),
            other => Err(format!("{other:?} is not an integer")),
        }
    };
    let narrow = |i: i64, what: &str| format!("{i} does not fit {what}");
    Ok(match (v, field) {
        (SqlParam::Null, _) => Value::Null,
        (SqlParam::Boolean(b), FieldType::Boolean) => Value::Boolean(*b),
        (v, FieldType::Boolean) => Value::Boolean(int(v)? != 0),
        (v, FieldType::Int8) => {
            let i = int(v)?;
            Value::Int8(i8::try_from(i).map_err(|_| narrow(i, "INT8"))?)
        }
        (v, FieldType::Int16) => {
            let i = int(v)?;
            Value::Int16(i16::try_from(i).map_err(|_| narrow(i, "INT16"))?)
        }
        (v, FieldType::Int32) => {
            let i = int(v)?;
            Value::Int32(i32::try_from(i).map_err(|_| narrow(i, "INT32"))?)
        }
        (v, FieldType::Int64) => Value::Int64(int(v)?),
        (SqlParam::Double(f), FieldType::Float32) => Value::Float32(*f as f32),
        (SqlParam::Double(f), FieldType::Float64) => Value::Float64(*f),
        (v, FieldType::Float32 | FieldType::Float64) => {
            let f = match v {
                SqlParam::Text(s) | SqlParam::Decimal(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{s:?} is not a number"))?,
                other => int(other)? as f64,
            };
            if field == FieldType::Float32 {
                Value::Float32(f as f32)
            } else {
                Value::Float64(f)
            }
        }
        (SqlParam::Decimal(s) | SqlParam::Text(s), FieldType::Decimal(scale)) => Value::Bytes(
            parse_decimal(s, scale)
                .ok_or_else(|| format!("{s:?} is not a decimal that fits 128 bits"))?
                .to_bytes(),
        ),
        (v, FieldType::Decimal(scale)) => Value::Bytes(
            Decimal {
                unscaled: i128::from(int(v)?) * 10_i128.pow(scale.max(0).unsigned_abs()),
                scale,
            }
            .to_bytes(),
        ),
        (SqlParam::Date(days), FieldType::Date) => Value::Int32(*days),
        (SqlParam::Time(micros), FieldType::Time) => {
            Value::Int32(i32::try_from(micros.rem_euclid(DAY_MICROS) / 1000).unwrap_or(0))
        }
        (SqlParam::Timestamp(micros), FieldType::Timestamp | FieldType::Date) => {
            let utc = micros - tz_offset_secs * 1_000_000;
            if field == FieldType::Date {
                Value::Int32(i32::try_from(utc.div_euclid(DAY_MICROS)).unwrap_or(0))
            } else {
                Value::Int64(utc.div_euclid(1000))
            }
        }
        (SqlParam::Bytes(b), FieldType::Bytes) => Value::Bytes(b.to_vec()),
        (SqlParam::Bytes(b), FieldType::String) => {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        (SqlParam::Text(s), FieldType::Bytes) => Value::Bytes(s.as_bytes().to_vec()),
        (v, FieldType::String) => Value::String(match v {
            SqlParam::Text(s) | SqlParam::Decimal(s) => s.to_string(),
            SqlParam::Int(i) => i.to_string(),
            SqlParam::Uint(u) => u.to_string(),
            SqlParam::Double(f) => f.to_string(),
            SqlParam::Boolean(b) => b.to_string(),
            other => format!("{other:?}"),
        }),
        (other, field) => return Err(format!("{other:?} cannot be read as {field:?}")),
    })
}

/// The struct schema of a row: one field per column, named like the table.
pub fn row_schema(name: Option<&str>, columns: &[ColumnInfo]) -> Arc<Schema> {
    let mut schema = Schema::structure();
    if let Some(name) = name {
        schema = schema.named(name);
    }
    for c in columns {
        schema = schema.field(c.name.clone(), c.field.schema(c.nullable));
    }
    Arc::new(schema)
}

/// A row as a Connect struct of `columns`, encoded (the batch frame's value format): text
/// goes from the row into the encoding with no `Value` made of it.
///
/// # Errors
/// A value that does not fit its column's type, naming the column, or a row that is not one
/// value per column.
pub fn encode_row(
    columns: &[ColumnInfo],
    row: &[SqlParam<'_>],
    tz_offset_secs: i64,
) -> Result<Vec<u8>, String> {
    if row.len() != columns.len() {
        return Err(format!(
            "{} values for {} columns",
            row.len(),
            columns.len()
        ));
    }
    let mut out = Vec::with_capacity(64);
    put_struct_header(&mut out, columns.len());
    for (c, v) in columns.iter().zip(row) {
        match (v, c.field) {
            (SqlParam::Text(text), FieldType::String) => encode_str_into(text, &mut out),
            (v, field) => encode_value_into(
                &connect_value(v, field, tz_offset_secs)
                    .map_err(|e| format!("column {}: {e}", c.name))?,
                &mut out,
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_types_as_confluent_does() {
        assert_eq!(FieldType::of("bigint", None), FieldType::Int64);
        assert_eq!(FieldType::of("BIGINT UNSIGNED", None), FieldType::Int64);
        assert_eq!(FieldType::of("int unsigned", None), FieldType::Int64);
        assert_eq!(FieldType::of("INT", None), FieldType::Int32);
        assert_eq!(FieldType::of("tinyint", None), FieldType::Int8);
        assert_eq!(FieldType::of("tinyint unsigned", None), FieldType::Int16);
        assert_eq!(FieldType::of("smallint unsigned", None), FieldType::Int32);
        assert_eq!(FieldType::of("varchar", None), FieldType::String);
        assert_eq!(FieldType::of("decimal", Some(2)), FieldType::Decimal(2));
        assert_eq!(FieldType::of("datetime", None), FieldType::Timestamp);
        assert_eq!(FieldType::of("DOUBLE PRECISION", None), FieldType::Float64);
        assert_eq!(FieldType::of("longblob", None), FieldType::Bytes);
    }

    #[test]
    fn decimals_parse_to_the_column_scale() {
        let d = parse_decimal("-12.3", 2).expect("decimal");
        assert_eq!((d.unscaled, d.scale), (-1230, 2));
        assert!(parse_decimal("1e5", 0).is_none());
        assert!(parse_decimal("1.25", 1).is_none(), "no silent rounding");
        assert!(parse_decimal("1.20", 1).is_some());
        assert_eq!(scale_of("1.250"), 3);
    }

    #[test]
    fn rows_encode_to_the_struct_of_their_values() {
        use std::borrow::Cow;
        use wasmconnect_sdk::data::Struct;
        use wasmconnect_sdk::data::codec::decode_value;
        let column = |name: &str, field| ColumnInfo {
            name: name.into(),
            field,
            nullable: true,
            primary_key: false,
            auto_increment: false,
        };
        let columns = [
            column("id", FieldType::Int64),
            column("name", FieldType::String),
            column("score", FieldType::Float64),
            column("price", FieldType::Decimal(2)),
            column("code", FieldType::String),
            column("gone", FieldType::String),
        ];
        let row = [
            SqlParam::Int(7),
            SqlParam::Text(Cow::Borrowed("a \"name\" é")),
            SqlParam::Double(0.5),
            SqlParam::Decimal(Cow::Borrowed("-12.3")),
            SqlParam::Int(42),
            SqlParam::Null,
        ];
        let schema = row_schema(Some("t"), &columns);
        let encoded = encode_row(&columns, &row, 0).expect("encoded");
        let values = columns
            .iter()
            .zip(&row)
            .map(|(c, v)| connect_value(v, c.field, 0).expect("fits"))
            .collect();
        assert_eq!(
            decode_value(&encoded, Some(&schema)).expect("a struct of the schema"),
            Value::Struct(Struct::from_values(schema.clone(), values).expect("struct"))
        );
        assert!(
            encode_row(&columns, &row[..2], 0).is_err(),
            "one value per column"
        );
        let narrow = [column("small", FieldType::Int8)];
        let err = encode_row(&narrow, &[SqlParam::Int(300)], 0).expect_err("too wide");
        assert!(err.contains("column small"), "{err}");
    }

    #[test]
    fn values_convert_and_overflows_are_errors() {
        assert_eq!(
            connect_value(&SqlParam::Int(7), FieldType::Int64, 0),
            Ok(Value::Int64(7))
        );
        assert!(connect_value(&SqlParam::Int(300), FieldType::Int8, 0).is_err());
        assert!(connect_value(&SqlParam::Uint(u64::MAX), FieldType::Int64, 0).is_err());
        // 2020-01-01T02:00:00 read in +02:00 is 2020-01-01T00:00:00Z.
        assert_eq!(
            connect_value(
                &SqlParam::Timestamp(1_577_844_000_000_000),
                FieldType::Timestamp,
                7200
            ),
            Ok(Value::Int64(1_577_836_800_000))
        );
    }
}
