//! Transforms that reshape a key or value: InsertField, ReplaceField, MaskField, ValueToKey,
//! ExtractField, HoistField, Flatten and SetSchemaMetadata.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmconnect_sdk::config::ConfigIssue;
use wasmconnect_sdk::data::{Field, logical};
use wasmconnect_sdk::prelude::*;

use wasmconnect_sdk::data::codec;

use crate::util::{
    SchemaMemo, check_field, done, list, map_get, map_put, optional_string, outcome, put,
    require_map, require_schema, require_struct, required_list, required_string, struct_data,
    struct_like, take,
};
use crate::{Part, Smt};

// ---------------------------------------------------------------------------------------
// InsertField

/// A field to insert: `name`, `name?` (optional, the default) or `name!` (required).
#[derive(Debug, Clone)]
struct InsertSpec {
    name: String,
    optional: bool,
}

impl InsertSpec {
    fn parse(config: &Config, key: &str) -> Option<InsertSpec> {
        let raw = optional_string(config, key)?;
        Some(if let Some(name) = raw.strip_suffix('!') {
            InsertSpec {
                name: name.to_owned(),
                optional: false,
            }
        } else {
            InsertSpec {
                name: raw.strip_suffix('?').unwrap_or(&raw).to_owned(),
                optional: true,
            }
        })
    }

    fn schema(&self, schema: Schema) -> Schema {
        if self.optional {
            schema.optional()
        } else {
            schema
        }
    }
}

const INSERT_PURPOSE: &str = "field insertion";

/// What InsertField adds.
#[derive(Debug)]
struct Inserts {
    topic: Option<InsertSpec>,
    partition: Option<InsertSpec>,
    offset: Option<InsertSpec>,
    timestamp: Option<InsertSpec>,
    static_field: Option<InsertSpec>,
    static_value: Option<String>,
}

/// A value InsertField adds: text borrowed from the record or the config, or a value that
/// costs no allocation (a number or null).
#[derive(Debug)]
enum Added<'a> {
    Text(&'a str),
    Other(Value),
}

impl Added<'_> {
    fn into_value(self) -> Value {
        match self {
            Added::Text(t) => Value::String(t.to_owned()),
            Added::Other(v) => v,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Added::Text(t) => codec::encode_str_into(t, out),
            Added::Other(v) => codec::encode_value_into(v, out),
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Added::Other(Value::Null))
    }
}

impl Inserts {
    /// The fields to add with their values, in Kafka's order.
    fn additions<'a>(
        &'a self,
        record: &'a Record,
    ) -> Result<impl Iterator<Item = (&'a InsertSpec, Added<'a>)>, String> {
        let offset = match (&self.offset, record.offset) {
            (None, _) => None,
            (Some(spec), Some(offset)) => Some((spec, Added::Other(Value::Int64(offset)))),
            (Some(_), None) => {
                return Err(format!(
                    "Only SinkRecord supported for [{INSERT_PURPOSE}], found: org.apache.kafka.connect.source.SourceRecord"
                ));
            }
        };
        let or_null = |v: Option<Value>| Added::Other(v.unwrap_or(Value::Null));
        let all = [
            self.topic
                .as_ref()
                .map(|spec| (spec, Added::Text(&record.topic))),
            self.partition
                .as_ref()
                .map(|spec| (spec, or_null(record.partition.map(Value::Int32)))),
            offset,
            // A Timestamp (millis) with a schema; without one Kafka puts the long too.
            self.timestamp
                .as_ref()
                .map(|spec| (spec, or_null(record.timestamp.map(Value::Int64)))),
            match (&self.static_field, &self.static_value) {
                (Some(spec), Some(value)) => Some((spec, Added::Text(value))),
                _ => None,
            },
        ];
        Ok(all.into_iter().flatten())
    }

    fn updated_schema(&self, schema: &Schema) -> Schema {
        let mut out = struct_like(schema);
        out.fields.clone_from(&schema.fields);
        let mut add = |spec: &Option<InsertSpec>, s: Schema| {
            if let Some(spec) = spec {
                out.fields.push(Field {
                    name: spec.name.clone(),
                    schema: Arc::new(spec.schema(s)),
                });
            }
        };
        add(&self.topic, Schema::new(SchemaType::String));
        add(&self.partition, Schema::new(SchemaType::Int32));
        add(&self.offset, Schema::new(SchemaType::Int64));
        add(&self.timestamp, Schema::timestamp());
        if self.static_value.is_some() {
            add(&self.static_field, Schema::new(SchemaType::String));
        }
        out
    }
}

/// `InsertField$Key` / `$Value`: adds the record's topic, partition, offset, timestamp or a
/// static string as fields.
#[derive(Debug)]
pub struct InsertField {
    part: Part,
    inserts: Inserts,
    memo: SchemaMemo,
}

impl InsertField {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        Ok(Box::new(InsertField {
            part,
            inserts: Inserts {
                topic: InsertSpec::parse(config, "topic.field"),
                partition: InsertSpec::parse(config, "partition.field"),
                offset: InsertSpec::parse(config, "offset.field"),
                timestamp: InsertSpec::parse(config, "timestamp.field"),
                static_field: InsertSpec::parse(config, "static.field"),
                static_value: config.get("static.value").map(str::to_owned),
            },
            memo: SchemaMemo::default(),
        }))
    }

    fn insert(&mut self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        if data.is_null() {
            put(&mut record, self.part, data);
            return Ok(record);
        }
        let inserted = match data.schema.clone() {
            None => {
                let additions = self.inserts.additions(&record)?;
                let mut entries = require_map(data.into_value(), INSERT_PURPOSE)?;
                for (spec, value) in additions {
                    map_put(&mut entries, &spec.name, value.into_value());
                }
                Data::schemaless(Value::Map(entries))
            }
            Some(schema) => {
                let inserts = &self.inserts;
                let updated = self.memo.get(&schema, |s| Ok(inserts.updated_schema(s)))?;
                let additions = inserts.additions(&record)?;
                match data.encoded().map(codec::struct_body) {
                    // Read from a frame and untouched: append to its bytes, decode nothing.
                    Some(Ok((n, body))) => {
                        let mut out = Vec::with_capacity(body.len() + 64);
                        codec::put_struct_header(&mut out, updated.fields.len());
                        out.extend_from_slice(body);
                        let added = updated.fields.get(n..).unwrap_or_default();
                        for (field, (_, value)) in added.iter().zip(additions) {
                            if value.is_null() {
                                check_field(field, &Value::Null)?;
                            }
                            value.encode_into(&mut out);
                        }
                        Data::from_encoded_unchecked(Some(updated), out)
                    }
                    _ => {
                        let value = require_struct(data.into_value(), INSERT_PURPOSE)?;
                        let mut values = value.into_values();
                        values.extend(additions.map(|(_, v)| v.into_value()));
                        struct_data(updated, values)?
                    }
                }
            }
        };
        put(&mut record, self.part, inserted);
        Ok(record)
    }
}

impl Smt for InsertField {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.insert(record))
    }
}

// ---------------------------------------------------------------------------------------
// ReplaceField

const REPLACE_PURPOSE: &str = "field replacement";

/// Which fields ReplaceField keeps, and their new names.
#[derive(Debug)]
struct Selection {
    exclude: Vec<String>,
    include: Vec<String>,
    renames: BTreeMap<String, String>,
}

impl Selection {
    /// `exclude` wins over `include`; an empty `include` keeps everything else.
    fn keeps(&self, field: &str) -> bool {
        !self.exclude.iter().any(|f| f == field)
            && (self.include.is_empty() || self.include.iter().any(|f| f == field))
    }

    fn renamed<'a>(&'a self, field: &'a str) -> &'a str {
        self.renames.get(field).map_or(field, String::as_str)
    }
}

/// `ReplaceField$Key` / `$Value`: keeps, drops and renames fields.
#[derive(Debug)]
pub struct ReplaceField {
    part: Part,
    selection: Selection,
    memo: SchemaMemo,
}

impl ReplaceField {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let exclude = list(config, "exclude", &mut issues);
        let include = list(config, "include", &mut issues);
        let mut renames = BTreeMap::new();
        for mapping in list(config, "renames", &mut issues) {
            match mapping.split_once(':') {
                Some((from, to)) if !from.is_empty() && !to.is_empty() && !to.contains(':') => {
                    renames.insert(from.to_owned(), to.to_owned());
                }
                _ => issues.push(ConfigIssue::new(
                    "renames",
                    format!("Invalid rename mapping: {mapping}"),
                )),
            }
        }
        done(
            Box::new(ReplaceField {
                part,
                selection: Selection {
                    exclude,
                    include,
                    renames,
                },
                memo: SchemaMemo::default(),
            }) as Box<dyn Smt>,
            issues,
        )
    }

    fn replace(&mut self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        if data.is_null() {
            put(&mut record, self.part, data);
            return Ok(record);
        }
        let selection = &self.selection;
        let replaced = match data.schema.clone() {
            None => {
                let entries = require_map(data.into_value(), REPLACE_PURPOSE)?;
                let kept = entries
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let name = k.as_str()?;
                        selection
                            .keeps(name)
                            .then(|| (Value::String(selection.renamed(name).to_owned()), v))
                    })
                    .collect();
                Data::schemaless(Value::Map(kept))
            }
            Some(schema) => {
                let updated = self.memo.get(&schema, |s| {
                    let mut out = struct_like(s);
                    for f in s.fields.iter().filter(|f| selection.keeps(&f.name)) {
                        out.fields.push(Field {
                            name: selection.renamed(&f.name).to_owned(),
                            schema: f.schema.clone(),
                        });
                    }
                    Ok(out)
                })?;
                match data
                    .encoded()
                    .map(|b| (b.len(), codec::struct_field_values(b, &schema)))
                {
                    // Read from a frame and untouched: copy the kept fields' bytes.
                    Some((len, Ok(fields))) => {
                        let mut out = Vec::with_capacity(len);
                        codec::put_struct_header(&mut out, updated.fields.len());
                        for field in fields {
                            let (field, value) = field.map_err(|e| e.to_string())?;
                            if selection.keeps(&field.name) {
                                out.extend_from_slice(value);
                            }
                        }
                        Data::from_encoded_unchecked(Some(updated), out)
                    }
                    _ => {
                        let value = require_struct(data.into_value(), REPLACE_PURPOSE)?;
                        let values = schema
                            .fields
                            .iter()
                            .zip(value.into_values())
                            .filter(|(f, _)| selection.keeps(&f.name))
                            .map(|(_, v)| v)
                            .collect();
                        struct_data(updated, values)?
                    }
                }
            }
        };
        put(&mut record, self.part, replaced);
        Ok(record)
    }
}

impl Smt for ReplaceField {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.replace(record))
    }
}

// ---------------------------------------------------------------------------------------
// MaskField

/// `MaskField$Key` / `$Value`: replaces fields with their type's empty value, or with
/// `replacement`.
#[derive(Debug)]
pub struct MaskField {
    part: Part,
    fields: Vec<String>,
    replacement: Option<String>,
}

const MASK_PURPOSE: &str = "mask fields";

impl MaskField {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let fields = required_list(config, "fields", &mut issues);
        let replacement = match config.get("replacement") {
            Some("") => {
                issues.push(ConfigIssue::new(
                    "replacement",
                    "Invalid value  for configuration replacement: String must be non-empty",
                ));
                None
            }
            other => other.map(str::to_owned),
        };
        done(
            Box::new(MaskField {
                part,
                fields,
                replacement,
            }) as Box<dyn Smt>,
            issues,
        )
    }

    fn masked(&self, value: &Value, schema: Option<&Schema>) -> Result<Value, String> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let logical = schema.and_then(|s| s.name.as_deref());
        let Some(replacement) = &self.replacement else {
            return Ok(match value {
                Value::Boolean(_) => Value::Boolean(false),
                Value::Int8(_) => Value::Int8(0),
                Value::Int16(_) => Value::Int16(0),
                Value::Int32(_) => Value::Int32(0),
                Value::Int64(_) => Value::Int64(0),
                Value::Float32(_) => Value::Float32(0.0),
                Value::Float64(_) => Value::Float64(0.0),
                Value::String(_) => Value::String(String::new()),
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Map(_) => Value::Map(Vec::new()),
                Value::Bytes(_) if logical == Some(logical::DECIMAL) => Value::Bytes(vec![0]),
                other => {
                    return Err(format!(
                        "Cannot mask value of type: class {}",
                        crate::util::java_class(other)
                    ));
                }
            });
        };
        let unparsable =
            || format!("Unable to convert {replacement} (class java.lang.String) to number");
        if logical.is_some() {
            return Err(format!(
                "Cannot mask value of type {} with custom replacement.",
                logical.unwrap_or_default()
            ));
        }
        Ok(match value {
            Value::Int8(_) => Value::Int8(replacement.parse().map_err(|_| unparsable())?),
            Value::Int16(_) => Value::Int16(replacement.parse().map_err(|_| unparsable())?),
            Value::Int32(_) => Value::Int32(replacement.parse().map_err(|_| unparsable())?),
            Value::Int64(_) => Value::Int64(replacement.parse().map_err(|_| unparsable())?),
            Value::Float32(_) => Value::Float32(replacement.parse().map_err(|_| unparsable())?),
            Value::Float64(_) => Value::Float64(replacement.parse().map_err(|_| unparsable())?),
            Value::String(_) => Value::String(replacement.clone()),
            other => {
                return Err(format!(
                    "Cannot mask value of type class {} with custom replacement.",
                    crate::util::java_class(other)
                ));
            }
        })
    }

    fn mask(&self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        if data.is_null() {
            put(&mut record, self.part, data);
            return Ok(record);
        }
        let masked = match data.schema.clone() {
            None => {
                let mut entries = require_map(data.into_value(), MASK_PURPOSE)?;
                for (k, v) in &mut entries {
                    if k.as_str()
                        .is_some_and(|k| self.fields.iter().any(|f| f == k))
                    {
                        *v = self.masked(v, None)?;
                    }
                }
                Data::schemaless(Value::Map(entries))
            }
            Some(schema) => {
                let value = require_struct(data.into_value(), MASK_PURPOSE)?;
                let mut values = value.into_values();
                for (field, v) in schema.fields.iter().zip(values.iter_mut()) {
                    if self.fields.contains(&field.name) {
                        *v = self.masked(v, Some(&field.schema))?;
                    }
                }
                struct_data(schema, values)?
            }
        };
        put(&mut record, self.part, masked);
        Ok(record)
    }
}

impl Smt for MaskField {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.mask(record))
    }
}

// ---------------------------------------------------------------------------------------
// ValueToKey

const VALUE_TO_KEY_PURPOSE: &str = "copying fields from value to key";

/// `ValueToKey`: the key becomes a struct (or map) of some of the value's fields.
#[derive(Debug)]
pub struct ValueToKey {
    fields: Vec<String>,
    memo: SchemaMemo,
}

impl ValueToKey {
    pub fn build(config: &Config, _part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let fields = required_list(config, "fields", &mut issues);
        done(
            Box::new(ValueToKey {
                fields,
                memo: SchemaMemo::default(),
            }) as Box<dyn Smt>,
            issues,
        )
    }

    fn copy(&mut self, mut record: Record) -> Result<Record, String> {
        let key = match record.value.schema.clone() {
            None => {
                let Value::Map(entries) = record.value.value() else {
                    return Err(
                        require_map(record.value.value().clone(), VALUE_TO_KEY_PURPOSE)
                            .err()
                            .unwrap_or_default(),
                    );
                };
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            Value::String(f.clone()),
                            map_get(entries, f).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                Data::schemaless(Value::Map(key))
            }
            Some(schema) => {
                let Value::Struct(value) = record.value.value() else {
                    return Err(
                        require_struct(record.value.value().clone(), VALUE_TO_KEY_PURPOSE)
                            .err()
                            .unwrap_or_default(),
                    );
                };
                let fields = &self.fields;
                let key_schema = self.memo.get(&schema, |s| {
                    let mut out = Schema::structure();
                    for f in fields {
                        let (_, field) = s
                            .field_named(f)
                            .ok_or_else(|| format!("Field does not exist: {f}"))?;
                        out = out.field(f.clone(), (*field.schema).clone());
                    }
                    Ok(out)
                })?;
                let values = self
                    .fields
                    .iter()
                    .map(|f| value.get(f).cloned().unwrap_or(Value::Null))
                    .collect();
                struct_data(key_schema, values)?
            }
        };
        record.key = key;
        Ok(record)
    }
}

impl Smt for ValueToKey {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.copy(record))
    }
}

// ---------------------------------------------------------------------------------------
// ExtractField

const EXTRACT_PURPOSE: &str = "field extraction";

/// `ExtractField$Key` / `$Value`: replaces the key or value with one of its fields.
#[derive(Debug)]
pub struct ExtractField {
    part: Part,
    /// The field, or with `field.syntax.version=V2` the path of nested fields.
    path: Vec<String>,
    original: String,
}

/// Splits a V2 field path on dots; a segment in backticks may hold dots.
fn field_path(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in raw.chars() {
        match c {
            '`' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out
}

impl ExtractField {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let field = required_string(config, "field", &mut issues);
        let path = match config.get("field.syntax.version").map(str::trim) {
            None | Some("V1" | "v1") => vec![field.clone()],
            Some("V2" | "v2") => field_path(&field),
            Some(other) => {
                issues.push(ConfigIssue::new(
                    "field.syntax.version",
                    format!("Invalid value {other} for configuration field.syntax.version: String must be one of: V1, V2"),
                ));
                Vec::new()
            }
        };
        done(
            Box::new(ExtractField {
                part,
                path,
                original: field,
            }) as Box<dyn Smt>,
            issues,
        )
    }

    fn extract(&self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        let extracted = match data.schema.clone() {
            None => {
                if data.is_null() {
                    Data::NULL
                } else {
                    let mut current = Value::Map(require_map(data.into_value(), EXTRACT_PURPOSE)?);
                    for segment in &self.path {
                        current = match current {
                            Value::Map(entries) => entries
                                .into_iter()
                                .find(|(k, _)| k.as_str() == Some(segment))
                                .map_or(Value::Null, |(_, v)| v),
                            _ => Value::Null,
                        };
                    }
                    Data::schemaless(current)
                }
            }
            Some(schema) => {
                let mut field_schema = schema.clone();
                for segment in &self.path {
                    let next = field_schema
                        .field_named(segment)
                        .map(|(_, f)| f.schema.clone())
                        .ok_or_else(|| format!("Unknown field: {}", self.original))?;
                    field_schema = next;
                }
                let mut current = data.into_value();
                if !current.is_null() {
                    current = Value::Struct(require_struct(current, EXTRACT_PURPOSE)?);
                }
                for segment in &self.path {
                    current = match current {
                        Value::Struct(s) => s.get(segment).cloned().unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                }
                Data::new(field_schema, current)
            }
        };
        put(&mut record, self.part, extracted);
        Ok(record)
    }
}

impl Smt for ExtractField {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.extract(record))
    }
}

// ---------------------------------------------------------------------------------------
// HoistField

/// `HoistField$Key` / `$Value`: wraps the key or value in a struct (or map) of one field.
#[derive(Debug)]
pub struct HoistField {
    part: Part,
    field: String,
    memo: SchemaMemo,
}

impl HoistField {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let field = required_string(config, "field", &mut issues);
        done(
            Box::new(HoistField {
                part,
                field,
                memo: SchemaMemo::default(),
            }) as Box<dyn Smt>,
            issues,
        )
    }

    fn hoist(&mut self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        let hoisted = match data.schema.clone() {
            None => Data::schemaless(Value::Map(vec![(
                Value::String(self.field.clone()),
                data.into_value(),
            )])),
            Some(schema) => {
                let field = &self.field;
                let updated = self.memo.get(&schema, |s| {
                    Ok(Schema::structure().field(field.clone(), s.clone()))
                })?;
                struct_data(updated, vec![data.into_value()])?
            }
        };
        put(&mut record, self.part, hoisted);
        Ok(record)
    }
}

impl Smt for HoistField {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.hoist(record))
    }
}

// ---------------------------------------------------------------------------------------
// Flatten

const FLATTEN_PURPOSE: &str = "flattening";

/// `Flatten$Key` / `$Value`: nested structs (or maps) become top-level fields named by
/// their path joined with `delimiter`.
#[derive(Debug)]
pub struct Flatten {
    part: Part,
    delimiter: String,
    memo: SchemaMemo,
}

impl Flatten {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        Ok(Box::new(Flatten {
            part,
            delimiter: config.get("delimiter").unwrap_or(".").to_owned(),
            memo: SchemaMemo::default(),
        }))
    }

    fn name(&self, prefix: &str, field: &str) -> String {
        if prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{prefix}{}{field}", self.delimiter)
        }
    }

    fn flatten_map(
        &self,
        prefix: &str,
        entries: Vec<(Value, Value)>,
        out: &mut Vec<(Value, Value)>,
    ) -> Result<(), String> {
        for (k, v) in entries {
            let Value::String(k) = k else {
                return Err(format!(
                    "Only String keys are supported for [{FLATTEN_PURPOSE}], found: {}",
                    crate::util::java_class(&k)
                ));
            };
            let name = self.name(prefix, &k);
            match v {
                Value::Map(inner) => self.flatten_map(&name, inner, out)?,
                other => out.push((Value::String(name), other)),
            }
        }
        Ok(())
    }

    fn flatten_schema(&self, prefix: &str, schema: &Schema, optional: bool, out: &mut Schema) {
        for field in &schema.fields {
            let name = self.name(prefix, &field.name);
            let optional = optional || field.schema.optional;
            if field.schema.schema_type == SchemaType::Struct {
                self.flatten_schema(&name, &field.schema, optional, out);
            } else {
                let mut s = (*field.schema).clone();
                s.optional = optional;
                out.fields.push(Field {
                    name,
                    schema: Arc::new(s),
                });
            }
        }
    }

    fn flatten_values(schema: &Schema, value: Option<&Struct>, out: &mut Vec<Value>) {
        for (i, field) in schema.fields.iter().enumerate() {
            let v = value.and_then(|s| s.values().get(i));
            if field.schema.schema_type == SchemaType::Struct {
                Self::flatten_values(&field.schema, v.and_then(Value::as_struct), out);
            } else {
                out.push(v.cloned().unwrap_or(Value::Null));
            }
        }
    }

    fn flatten(&mut self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        let flattened = match data.schema.clone() {
            None => {
                if data.is_null() {
                    data
                } else {
                    let entries = require_map(data.into_value(), FLATTEN_PURPOSE)?;
                    let mut out = Vec::with_capacity(entries.len());
                    self.flatten_map("", entries, &mut out)?;
                    Data::schemaless(Value::Map(out))
                }
            }
            Some(schema) => {
                let mut memo = std::mem::take(&mut self.memo);
                let updated = memo.get(&schema, |s| {
                    let mut out = struct_like(s);
                    out.optional = s.optional;
                    self.flatten_schema("", s, s.optional, &mut out);
                    Ok(out)
                });
                self.memo = memo;
                let updated = updated?;
                let value = data.into_value();
                if value.is_null() {
                    Data::new(updated, Value::Null)
                } else {
                    let value = require_struct(value, FLATTEN_PURPOSE)?;
                    let mut values = Vec::with_capacity(updated.fields.len());
                    Self::flatten_values(&schema, Some(&value), &mut values);
                    struct_data(updated, values)?
                }
            }
        };
        put(&mut record, self.part, flattened);
        Ok(record)
    }
}

impl Smt for Flatten {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.flatten(record))
    }
}

// ---------------------------------------------------------------------------------------
// SetSchemaMetadata

/// `SetSchemaMetadata$Key` / `$Value`: sets the schema's name and version.
#[derive(Debug)]
pub struct SetSchemaMetadata {
    part: Part,
    name: Option<String>,
    version: Option<i32>,
    memo: SchemaMemo,
}

impl SetSchemaMetadata {
    pub fn build(config: &Config, part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let version = config
            .parse::<i32>("schema.version")
            .unwrap_or_else(|issue| {
                issues.push(issue);
                None
            });
        done(
            Box::new(SetSchemaMetadata {
                part,
                name: optional_string(config, "schema.name"),
                version,
                memo: SchemaMemo::default(),
            }) as Box<dyn Smt>,
            issues,
        )
    }

    fn set(&mut self, mut record: Record) -> Result<Record, String> {
        let data = take(&mut record, self.part);
        let schema = require_schema(data.schema.clone(), "updating schema metadata")?;
        let (name, version) = (&self.name, self.version);
        let updated = self.memo.get(&schema, |s| {
            let mut out = s.clone();
            if name.is_some() {
                out.name.clone_from(name);
            }
            if version.is_some() {
                out.version = version;
            }
            Ok(out)
        })?;
        let value = match data.into_value() {
            Value::Struct(s) => Value::Struct(
                Struct::from_values(updated.clone(), s.into_values()).map_err(|e| e.to_string())?,
            ),
            other => other,
        };
        put(&mut record, self.part, Data::new(updated, value));
        Ok(record)
    }
}

impl Smt for SetSchemaMetadata {
    fn apply(&mut self, record: Record) -> Outcome {
        outcome(self.set(record))
    }
}
