//! What the transforms share: the side of a record they work on, Kafka's `require*`
//! messages, config helpers and a cache of derived schemas.

use std::sync::Arc;

use wasmconnect_sdk::config::ConfigIssue;
use wasmconnect_sdk::data::Field;
use wasmconnect_sdk::prelude::*;

use crate::Part;

/// The key or the value of a record, taken out (a null is left in its place).
pub fn take(record: &mut Record, part: Part) -> Data {
    std::mem::take(slot(record, part))
}

/// Puts data back as the record's key or value.
pub fn put(record: &mut Record, part: Part, data: Data) {
    *slot(record, part) = data;
}

pub fn slot(record: &mut Record, part: Part) -> &mut Data {
    match part {
        Part::Key => &mut record.key,
        Part::Value => &mut record.value,
    }
}

/// The Java class Kafka would name for a value in its error messages.
pub fn java_class(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "java.lang.Boolean",
        Value::Int8(_) => "java.lang.Byte",
        Value::Int16(_) => "java.lang.Short",
        Value::Int32(_) => "java.lang.Integer",
        Value::Int64(_) => "java.lang.Long",
        Value::Float32(_) => "java.lang.Float",
        Value::Float64(_) => "java.lang.Double",
        Value::String(_) => "java.lang.String",
        Value::Bytes(_) => "[B",
        Value::Array(_) => "java.util.ArrayList",
        Value::Map(_) => "java.util.HashMap",
        Value::Struct(_) => "org.apache.kafka.connect.data.Struct",
    }
}

/// Kafka's `Requirements.requireStruct`.
pub fn require_struct(value: Value, purpose: &str) -> Result<Struct, String> {
    match value {
        Value::Struct(s) => Ok(s),
        other => Err(format!(
            "Only Struct objects supported for [{purpose}], found: {}",
            java_class(&other)
        )),
    }
}

/// Kafka's `Requirements.requireMap`: a schemaless value must be a map.
pub fn require_map(value: Value, purpose: &str) -> Result<Vec<(Value, Value)>, String> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(format!(
            "Only Map objects supported in absence of schema for [{purpose}], found: {}",
            java_class(&other)
        )),
    }
}

/// Kafka's `Requirements.requireSchema`.
pub fn require_schema(schema: Option<Arc<Schema>>, purpose: &str) -> Result<Arc<Schema>, String> {
    schema.ok_or_else(|| format!("Schema required for [{purpose}]"))
}

/// The value under a string key of a schemaless map.
pub fn map_get<'a>(entries: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// Sets a string key of a schemaless map, replacing an existing entry as a Java map does.
pub fn map_put(entries: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
        Some((_, v)) => *v = value,
        None => entries.push((Value::String(key.to_owned()), value)),
    }
}

/// Kafka's `SchemaUtil.copySchemaBasics` onto a new struct schema: name, version, doc and
/// parameters (not optionality).
pub fn struct_like(schema: &Schema) -> Schema {
    let mut out = Schema::structure();
    out.name.clone_from(&schema.name);
    out.version = schema.version;
    out.doc.clone_from(&schema.doc);
    out.parameters.clone_from(&schema.parameters);
    out
}

/// A struct whose values a transform just built for `schema`: a null in a required field
/// fails the record with Kafka's message instead of reaching the worker.
fn checked_struct(schema: Arc<Schema>, values: Vec<Value>) -> Result<Struct, String> {
    for (field, value) in schema.fields.iter().zip(&values) {
        check_field(field, value)?;
    }
    Struct::from_values(schema, values).map_err(|e| e.to_string())
}

/// Kafka's check that a required field is not null.
pub fn check_field(field: &Field, value: &Value) -> Result<(), String> {
    if value.is_null() && !field.schema.optional && field.schema.default.is_none() {
        return Err(format!(
            "Invalid value: null used for required field: \"{}\", schema type: {}",
            field.name,
            field.schema.schema_type.json_name().to_ascii_uppercase()
        ));
    }
    Ok(())
}

/// A struct value with its schema, checked as [`checked_struct`] does.
pub fn struct_data(schema: Arc<Schema>, values: Vec<Value>) -> Result<Data, String> {
    let value = checked_struct(schema.clone(), values)?;
    Ok(Data::new(schema, Value::Struct(value)))
}

/// Keeps the record, or fails it with a message.
pub fn outcome(result: Result<Record, String>) -> Outcome {
    match result {
        Ok(record) => Outcome::Keep(record),
        Err(message) => Outcome::Failed(message),
    }
}

/// Derived schemas by input schema, as Kafka's transforms cache them: records of one batch
/// share one `Arc`, so the lookup is a pointer comparison.
#[derive(Debug, Default)]
pub struct SchemaMemo {
    entries: Vec<(Arc<Schema>, Arc<Schema>)>,
}

/// Enough for the schemas of a few topics; the oldest is forgotten first.
const MEMO_SIZE: usize = 16;

impl SchemaMemo {
    /// The schema derived from `input`, computing it on a miss.
    ///
    /// # Errors
    /// What `derive` returns.
    pub fn get(
        &mut self,
        input: &Arc<Schema>,
        derive: impl FnOnce(&Schema) -> Result<Schema, String>,
    ) -> Result<Arc<Schema>, String> {
        if let Some((_, out)) = self
            .entries
            .iter()
            .find(|(i, _)| Arc::ptr_eq(i, input) || **i == **input)
        {
            return Ok(out.clone());
        }
        let out = Arc::new(derive(input)?);
        if self.entries.len() == MEMO_SIZE {
            self.entries.remove(0);
        }
        self.entries.push((input.clone(), out.clone()));
        Ok(out)
    }
}

/// A required list key that may not be empty.
pub fn required_list(config: &Config, key: &str, issues: &mut Vec<ConfigIssue>) -> Vec<String> {
    match config.parse::<Vec<String>>(key) {
        Ok(Some(list)) if !list.is_empty() => list,
        Ok(_) => {
            issues.push(ConfigIssue::new(
                key,
                format!("Missing required configuration \"{key}\": it must be a non-empty list"),
            ));
            Vec::new()
        }
        Err(issue) => {
            issues.push(issue);
            Vec::new()
        }
    }
}

/// An optional list key.
pub fn list(config: &Config, key: &str, issues: &mut Vec<ConfigIssue>) -> Vec<String> {
    config
        .parse::<Vec<String>>(key)
        .unwrap_or_else(|issue| {
            issues.push(issue);
            None
        })
        .unwrap_or_default()
}

/// A required string key that may not be empty.
pub fn required_string(config: &Config, key: &str, issues: &mut Vec<ConfigIssue>) -> String {
    match config.get(key).map(str::trim) {
        Some(v) if !v.is_empty() => v.to_owned(),
        _ => {
            issues.push(ConfigIssue::new(
                key,
                format!("Missing required configuration \"{key}\" which has no default value."),
            ));
            String::new()
        }
    }
}

/// An optional string key; empty counts as absent.
pub fn optional_string(config: &Config, key: &str) -> Option<String> {
    config
        .get(key)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `Ok(t)` when nothing was reported.
pub fn done<T>(t: T, issues: Vec<ConfigIssue>) -> Result<T, Vec<ConfigIssue>> {
    if issues.is_empty() {
        Ok(t)
    } else {
        Err(issues)
    }
}
