//! Header and filtering transforms: `Filter`, `HeaderFrom$Key` / `$Value`, `InsertHeader`
//! and `DropHeaders`.

use std::sync::Arc;

use wasmconnect_sdk::config::ConfigIssue;
use wasmconnect_sdk::prelude::*;

use crate::util::{
    SchemaMemo, done, outcome, put, require_map, require_struct, required_list, required_string,
    struct_data, struct_like, take,
};
use crate::{Part, Smt};

/// `Filter`: drops every record it sees; give it a predicate to choose which.
#[derive(Debug)]
pub struct Filter;

impl Filter {
    pub fn build(_config: &Config, _part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        Ok(Box::new(Filter))
    }
}

impl Smt for Filter {
    fn apply(&mut self, _record: Record) -> Outcome {
        Outcome::Drop
    }
}

/// `InsertHeader`: adds a header with a literal value, typed as Kafka's `Values.parseString`
/// would type it (boolean, the smallest integer type that holds it, double, else string).
#[derive(Debug)]
pub struct InsertHeader {
    header: String,
    value: Data,
}

/// A literal typed the way Kafka's `Values.parseString` types simple literals.
pub fn literal(text: &str) -> Data {
    let t = text.trim();
    let typed = |ty: SchemaType, v: Value| Data::new(Arc::new(Schema::new(ty)), v);
    if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        return typed(
            SchemaType::Boolean,
            Value::Boolean(t.eq_ignore_ascii_case("true")),
        );
    }
    if let Ok(n) = t.parse::<i64>() {
        return if let Ok(v) = i8::try_from(n) {
            typed(SchemaType::Int8, Value::Int8(v))
        } else if let Ok(v) = i16::try_from(n) {
            typed(SchemaType::Int16, Value::Int16(v))
        } else if let Ok(v) = i32::try_from(n) {
            typed(SchemaType::Int32, Value::Int32(v))
        } else {
            typed(SchemaType::Int64, Value::Int64(n))
        };
    }
    if t.contains(['.', 'e', 'E'])
        && let Ok(f) = t.parse::<f64>()
        && f.is_finite()
    {
        return typed(SchemaType::Float64, Value::Float64(f));
    }
    typed(SchemaType::String, Value::String(text.to_owned()))
}

impl InsertHeader {
    pub fn build(config: &Config, _part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let header = required_string(config, "header", &mut issues);
        let value = match config.get("value.literal") {
            Some(v) => literal(v),
            None => {
                issues.push(ConfigIssue::new(
                    "value.literal",
                    "Missing required configuration \"value.literal\" which has no default value.",
                ));
                Data::NULL
            }
        };
        done(
            Box::new(InsertHeader { header, value }) as Box<dyn Smt>,
            issues,
        )
    }
}

impl Smt for InsertHeader {
    fn apply(&mut self, record: Record) -> Outcome {
        Outcome::Keep(record.with_header(self.header.clone(), self.value.clone()))
    }
}

/// `DropHeaders`: removes every header with one of the given names.
#[derive(Debug)]
pub struct DropHeaders {
    headers: Vec<String>,
}

impl DropHeaders {
    pub fn build(config: &Config, _part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let headers = required_list(config, "headers", &mut issues);
        done(Box::new(DropHeaders { headers }) as Box<dyn Smt>, issues)
    }
}

impl Smt for DropHeaders {
    fn apply(&mut self, mut record: Record) -> Outcome {
        record.headers.retain(|h| !self.headers.contains(&h.key));
        Outcome::Keep(record)
    }
}

/// `HeaderFrom$Key` / `$Value`: copies or moves fields into headers.
#[derive(Debug)]
pub struct HeaderFrom {
    part: Part,
    /// (field, header) pairs.
    pairs: Vec<(String, String)>,
    moving: bool,
    memo: SchemaMemo,
}

const HEADER_PURPOSE: &str = "header extraction";

impl HeaderFrom {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let fields = required_list(config, "fields", &mut issues);
        let headers = required_list(config, "headers", &mut issues);
        if issues.is_empty() && fields.len() != headers.len() {
            issues.push(ConfigIssue::new(
                "headers",
                "'fields' config must have the same number of elements as 'headers' config.",
            ));
        }
        let moving = match config.get("operation").map(str::trim) {
            Some("move") => true,
            Some("copy") => false,
            other => {
                issues.push(ConfigIssue::new(
                    "operation",
                    format!(
                        "Invalid value {} for configuration operation: String must be one of: move, copy",
                        other.unwrap_or("null")
                    ),
                ));
                false
            }
        };
        done(
            Box::new(HeaderFrom {
                part,
                pairs: fields.into_iter().zip(headers).collect(),
                moving,
                memo: SchemaMemo::default(),
            }) as Box<dyn Smt>,
            issues,
        )
    }

    fn header_for(&self, field: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, h)| h.as_str())
    }

    fn extract(&mut self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        if data.is_null() {
            put(&mut record, self.part, data);
            return Ok(record);
        }
        let remaining = match data.schema.clone() {
            None => {
                let entries = require_map(data.into_value(), HEADER_PURPOSE)?;
                for (field, header) in &self.pairs {
                    let value = crate::util::map_get(&entries, field)
                        .cloned()
                        .unwrap_or(Value::Null);
                    record = record.with_header(header.clone(), Data::schemaless(value));
                }
                let entries = if self.moving {
                    entries
                        .into_iter()
                        .filter(|(k, _)| k.as_str().is_none_or(|k| self.header_for(k).is_none()))
                        .collect()
                } else {
                    entries
                };
                Data::schemaless(Value::Map(entries))
            }
            Some(schema) => {
                let value = require_struct(data.into_value(), HEADER_PURPOSE)?;
                for (field, header) in &self.pairs {
                    let (i, f) = schema
                        .field_named(field)
                        .ok_or_else(|| format!("Field does not exist: {field}"))?;
                    let v = value.values().get(i).cloned().unwrap_or(Value::Null);
                    record = record.with_header(header.clone(), Data::new(f.schema.clone(), v));
                }
                if self.moving {
                    let pairs = &self.pairs;
                    let updated = self.memo.get(&schema, |s| {
                        let mut out = struct_like(s);
                        out.fields = s
                            .fields
                            .iter()
                            .filter(|f| !pairs.iter().any(|(p, _)| *p == f.name))
                            .cloned()
                            .collect();
                        Ok(out)
                    })?;
                    let values = value
                        .iter()
                        .filter(|(name, _)| self.header_for(name).is_none())
                        .map(|(_, v)| v.clone())
                        .collect();
                    struct_data(updated, values)?
                } else {
                    Data::new(schema, Value::Struct(value))
                }
            }
        };
        put(&mut record, self.part, remaining);
        Ok(record)
    }
}

impl Smt for HeaderFrom {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.extract(record))
    }
}
