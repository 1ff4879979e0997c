//! `Cast$Key` / `$Value`: casts the whole key or value, or some of its fields, to another
//! primitive type, with Java's conversion rules.

use std::sync::Arc;

use base64::Engine as _;
use wasmconnect_sdk::config::ConfigIssue;
use wasmconnect_sdk::data::Decimal;
use wasmconnect_sdk::data::{Field, logical};
use wasmconnect_sdk::prelude::*;

use crate::util::{
    SchemaMemo, outcome, put, require_map, require_struct, struct_data, struct_like, take,
};
use crate::{Part, Smt};

const PURPOSE: &str = "cast types";

/// What the spec casts: the whole value, or named fields.
#[derive(Debug)]
enum Spec {
    Whole(SchemaType),
    Fields(Vec<(String, SchemaType)>),
}

#[derive(Debug)]
pub struct Cast {
    part: Part,
    spec: Spec,
    memo: SchemaMemo,
}

fn cast_type(name: &str) -> Option<SchemaType> {
    Some(match name.trim() {
        "int8" => SchemaType::Int8,
        "int16" => SchemaType::Int16,
        "int32" => SchemaType::Int32,
        "int64" => SchemaType::Int64,
        "float32" => SchemaType::Float32,
        "float64" => SchemaType::Float64,
        "boolean" => SchemaType::Boolean,
        "string" => SchemaType::String,
        _ => return None,
    })
}

fn type_name(t: SchemaType) -> String {
    format!("{t:?}").to_ascii_uppercase()
}

impl Cast {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let issue = |msg: String| vec![ConfigIssue::new("spec", msg)];
        let raw = config.get("spec").map(str::trim).unwrap_or_default();
        let entries: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(issue("Must specify at least one field to cast.".into()));
        }
        let spec = if entries.len() == 1 && !entries[0].contains(':') {
            Spec::Whole(cast_type(entries[0]).ok_or_else(|| {
                issue(format!("Invalid value {raw} for configuration spec: Invalid type found in casting spec: {}", entries[0]))
            })?)
        } else {
            let mut fields = Vec::new();
            for entry in entries {
                let Some((field, ty)) = entry.split_once(':') else {
                    return Err(issue(format!(
                        "Invalid value {raw} for configuration spec: Expected a pair of field:type, found: {entry}"
                    )));
                };
                let ty = cast_type(ty).ok_or_else(|| {
                    issue(format!("Invalid value {raw} for configuration spec: Invalid type found in casting spec: {ty}"))
                })?;
                fields.push((field.trim().to_owned(), ty));
            }
            Spec::Fields(fields)
        };
        Ok(Box::new(Cast {
            part,
            spec,
            memo: SchemaMemo::default(),
        }))
    }

    fn target(&self, field: &str) -> Option<SchemaType> {
        match &self.spec {
            Spec::Whole(_) => None,
            Spec::Fields(fields) => fields.iter().find(|(f, _)| f == field).map(|(_, t)| *t),
        }
    }

    fn cast(&mut self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        if data.is_null() {
            put(&mut record, self.part, data);
            return Ok(record);
        }
        let cast = match (data.schema.clone(), &self.spec) {
            (None, Spec::Whole(target)) => {
                Data::schemaless(cast_value(&data.into_value(), None, *target)?)
            }
            (None, Spec::Fields(_)) => {
                let mut entries = require_map(data.into_value(), PURPOSE)?;
                for (k, v) in &mut entries {
                    if let Some(target) = k.as_str().and_then(|k| self.target(k)) {
                        *v = cast_value(v, None, target)?;
                    }
                }
                Data::schemaless(Value::Map(entries))
            }
            (Some(schema), Spec::Whole(target)) => {
                let target = *target;
                let updated = self.memo.get(&schema, |s| cast_schema(s, target))?;
                let value = cast_value(data.value(), Some(&schema), target)?;
                Data::new(updated, value)
            }
            (Some(schema), Spec::Fields(fields)) => {
                let updated = self.memo.get(&schema, |s| {
                    let mut out = struct_like(s);
                    for f in &s.fields {
                        let schema = match fields.iter().find(|(n, _)| *n == f.name) {
                            Some((_, t)) => Arc::new(cast_schema(&f.schema, *t)?),
                            None => f.schema.clone(),
                        };
                        out.fields.push(Field {
                            name: f.name.clone(),
                            schema,
                        });
                    }
                    Ok(out)
                })?;
                let value = require_struct(data.into_value(), PURPOSE)?;
                let mut values = value.into_values();
                for (field, v) in schema.fields.iter().zip(values.iter_mut()) {
                    if let Some(target) = self.target(&field.name) {
                        *v = cast_value(v, Some(&field.schema), target)?;
                    }
                }
                struct_data(updated, values)?
            }
        };
        put(&mut record, self.part, cast);
        Ok(record)
    }
}

impl Smt for Cast {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.cast(record))
    }
}

/// The schema of a cast field: the target type, as optional as before, default cast too.
fn cast_schema(schema: &Schema, target: SchemaType) -> Result<Schema, String> {
    let from = schema.schema_type;
    if matches!(
        from,
        SchemaType::Array | SchemaType::Map | SchemaType::Struct
    ) {
        return Err(format!(
            "Cast transformation does not support casting from {}; supported types are [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]",
            type_name(from)
        ));
    }
    let mut out = Schema::new(target);
    out.optional = schema.optional;
    if let Some(default) = &schema.default {
        out.default = Some(cast_value(default, Some(schema), target)?);
    }
    Ok(out)
}

/// Milliseconds of a Date, Time or Timestamp value, as Java's `Date.getTime()`.
fn logical_millis(value: &Value, schema: Option<&Schema>) -> Option<i64> {
    let name = schema?.name.as_deref()?;
    match (name, value) {
        (logical::DATE, Value::Int32(days)) => Some(i64::from(*days) * 86_400_000),
        (logical::TIME, Value::Int32(ms)) => Some(i64::from(*ms)),
        (logical::TIMESTAMP, Value::Int64(ms)) => Some(*ms),
        _ => None,
    }
}

/// A number as Java would see it: an integer, a floating point number or a decimal.
enum Number {
    Int(i64),
    Float(f64),
}

fn number(value: &Value, schema: Option<&Schema>) -> Option<Number> {
    if let Some(ms) = logical_millis(value, schema) {
        return Some(Number::Int(ms));
    }
    if let (Some(scale), Value::Bytes(bytes)) = (schema.and_then(Schema::decimal_scale), value) {
        let d = Decimal::from_bytes(bytes, scale)?;
        return d.to_string().parse().ok().map(Number::Float);
    }
    Some(match value {
        Value::Int8(v) => Number::Int(i64::from(*v)),
        Value::Int16(v) => Number::Int(i64::from(*v)),
        Value::Int32(v) => Number::Int(i64::from(*v)),
        Value::Int64(v) => Number::Int(*v),
        Value::Float32(v) => Number::Float(f64::from(*v)),
        Value::Float64(v) => Number::Float(*v),
        Value::Boolean(b) => Number::Int(i64::from(*b)),
        _ => return None,
    })
}

/// Java's `Double.toString`.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let abs = v.abs();
    if abs == 0.0 || (1e-3..1e7).contains(&abs) {
        return format!("{v:?}");
    }
    let sci = format!("{v:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_owned()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

/// Casts one value with Java's rules: narrowing integer casts wrap, floating point to
/// integer truncates and saturates, strings parse, anything becomes its string form.
pub fn cast_value(
    value: &Value,
    schema: Option<&Schema>,
    target: SchemaType,
) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let unsupported = || {
        let from = value.schema_type().map_or_else(|| "null".into(), type_name);
        format!(
            "Cast transformation does not support casting from {from}; supported types are [INT8, INT16, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN, STRING, BYTES]"
        )
    };
    if matches!(value, Value::Array(_) | Value::Map(_) | Value::Struct(_)) {
        return Err(unsupported());
    }
    let parse_failed = |s: &str| format!("For input string: \"{s}\"");
    if target == SchemaType::String {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Bytes(b) if schema.and_then(Schema::decimal_scale).is_none() => {
                base64::engine::general_purpose::STANDARD.encode(b)
            }
            Value::Bytes(b) => {
                let scale = schema.and_then(Schema::decimal_scale).unwrap_or(0);
                Decimal::from_bytes(b, scale)
                    .map(|d| d.to_string())
                    .ok_or_else(unsupported)?
            }
            Value::Boolean(b) => b.to_string(),
            Value::Float32(v) => java_double(f64::from(*v)),
            Value::Float64(v) => java_double(*v),
            other => match logical_millis(other, schema) {
                Some(ms) => crate::time::iso_format(ms, schema.and_then(|s| s.name.as_deref())),
                None => other
                    .as_i64()
                    .map(|i| i.to_string())
                    .ok_or_else(unsupported)?,
            },
        };
        return Ok(Value::String(text));
    }
    if let Value::String(s) = value {
        let t = s.trim();
        return Ok(match target {
            SchemaType::Int8 => Value::Int8(t.parse().map_err(|_| parse_failed(s))?),
            SchemaType::Int16 => Value::Int16(t.parse().map_err(|_| parse_failed(s))?),
            SchemaType::Int32 => Value::Int32(t.parse().map_err(|_| parse_failed(s))?),
            SchemaType::Int64 => Value::Int64(t.parse().map_err(|_| parse_failed(s))?),
            SchemaType::Float32 => Value::Float32(t.parse().map_err(|_| parse_failed(s))?),
            SchemaType::Float64 => Value::Float64(t.parse().map_err(|_| parse_failed(s))?),
            SchemaType::Boolean => Value::Boolean(t.eq_ignore_ascii_case("true")),
            _ => return Err(unsupported()),
        });
    }
    let n = number(value, schema).ok_or_else(unsupported)?;
    // Java: (byte) of a long wraps; (long) of a double truncates toward zero and saturates,
    // and a double narrows to byte, short or int through int.
    #[allow(clippy::cast_possible_truncation)]
    let as_int = |n: &Number| -> i64 {
        match *n {
            Number::Int(i) => i,
            Number::Float(f) => f as i64,
        }
    };
    #[allow(clippy::cast_possible_truncation)]
    let as_int32 = |n: &Number| -> i32 {
        match *n {
            Number::Int(i) => i as i32,
            Number::Float(f) => f as i32,
        }
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    Ok(match target {
        SchemaType::Int8 => Value::Int8(as_int32(&n) as i8),
        SchemaType::Int16 => Value::Int16(as_int32(&n) as i16),
        SchemaType::Int32 => Value::Int32(as_int32(&n)),
        SchemaType::Int64 => Value::Int64(as_int(&n)),
        SchemaType::Float32 => Value::Float32(match n {
            Number::Int(i) => i as f32,
            Number::Float(f) => f as f32,
        }),
        SchemaType::Float64 => Value::Float64(match n {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }),
        SchemaType::Boolean => Value::Boolean(match n {
            Number::Int(i) => i != 0,
            // Java: `((Number) value).longValue() != 0`.
            Number::Float(f) => f as i64 != 0,
        }),
        _ => return Err(unsupported()),
    })
}
