//! `org.apache.kafka.connect.json.JsonConverter`, byte-compatible with Kafka's: the
//! `{"schema":…,"payload":…}` envelope with `schemas.enable=true`, bare JSON otherwise.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value as Json};
use wasmconnect_sdk::data::{Data, Decimal, Schema, SchemaType, Struct, Value};

use super::ConvertError;

/// How Decimals are written (`decimal.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalFormat {
    Base64,
    Numeric,
}

/// Parsed schemas kept per converter, keyed by their JSON text (`schemas.cache.size`).
const DEFAULT_SCHEMA_CACHE: usize = 1000;

#[derive(Debug)]
pub struct JsonConverter {
    schemas_enable: bool,
    decimal_format: DecimalFormat,
    /// Parsed schemas by the exact text of their JSON (a schema written with other
    /// spacing is parsed once more: a cache miss, nothing else).
    cache: HashMap<Box<str>, Arc<Schema>>,
    /// The schema of the last envelope: the records of a topic mostly share one, so it is
    /// compared before the cache is hashed.
    last: Option<(Box<str>, Arc<Schema>)>,
    cache_size: usize,
}

const ENVELOPE_ERROR: &str = "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.";

impl JsonConverter {
    /// # Errors
    /// When a setting has a bad value; the error names it.
    pub fn new(settings: &BTreeMap<String, String>) -> Result<JsonConverter, ConvertError> {
        let schemas_enable = match settings
            .get("schemas.enable")
            .map(|s| s.trim().to_ascii_lowercase())
        {
            None => true,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                return Err(ConvertError::Config(format!(
                    "schemas.enable: expected true or false, got {v}"
                )));
            }
        };
        let decimal_format = match settings
            .get("decimal.format")
            .map(|s| s.trim().to_ascii_uppercase())
        {
            None => DecimalFormat::Base64,
            Some(v) if v == "BASE64" => DecimalFormat::Base64,
            Some(v) if v == "NUMERIC" => DecimalFormat::Numeric,
            Some(v) => {
                return Err(ConvertError::Config(format!(
                    "decimal.format: expected BASE64 or NUMERIC, got {v}"
                )));
            }
        };
        let cache_size = match settings.get("schemas.cache.size") {
            None => DEFAULT_SCHEMA_CACHE,
            Some(v) => v.trim().parse().map_err(|_| {
                ConvertError::Config(format!("schemas.cache.size: not a number: {v}"))
            })?,
        };
        Ok(JsonConverter {
            schemas_enable,
            decimal_format,
            cache: HashMap::new(),
            last: None,
            cache_size,
        })
    }

    /// Connect data to JSON bytes; `None` for a null value without a schema (a tombstone).
    ///
    /// # Errors
    /// When the value does not fit its schema.
    pub fn from_connect(&self, data: &Data) -> Result<Option<Vec<u8>>, ConvertError> {
        if data.schema.is_none() && data.value().is_null() {
            return Ok(None);
        }
        let payload = to_json(data.schema.as_deref(), data.value(), self.decimal_format)?;
        let json = if self.schemas_enable {
            let mut envelope = Map::new();
            envelope.insert(
                "schema".into(),
                data.schema.as_deref().map_or(Json::Null, schema_to_json),
            );
            envelope.insert("payload".into(), payload);
            Json::Object(envelope)
        } else {
            payload
        };
        serde_json::to_vec(&json)
            .map(Some)
            .map_err(|e| ConvertError::Data(e.to_string()))
    }

    /// JSON bytes to Connect data.
    ///
    /// # Errors
    /// When the bytes are not JSON, the envelope is malformed, or the payload does not fit
    /// its schema.
    pub fn to_connect(&mut self, bytes: Option<&[u8]>) -> Result<Data, ConvertError> {
        let Some(bytes) = bytes else {
            return Ok(Data::NULL);
        };
        if !self.schemas_enable {
            return Ok(Data::schemaless(infer(&parse::<Json>(bytes)?)));
        }
        // The schema stays text until the cache has no schema of that text.
        let envelope = match serde_json::from_slice::<Envelope<'_>>(bytes) {
            Ok(envelope) => envelope,
            Err(e) if e.is_data() => {
                // Not an envelope; if not JSON either, say that first, as Kafka does.
                parse::<serde::de::IgnoredAny>(bytes)?;
                return Err(ConvertError::Data(ENVELOPE_ERROR.into()));
            }
            Err(e) => return Err(serialization_error(&e)),
        };
        let (Some(schema), Some(payload)) = (envelope.schema, envelope.payload) else {
            return Err(ConvertError::Data(ENVELOPE_ERROR.into()));
        };
        let payload: Json = parse(payload.get().as_bytes())?;
        if schema.get() == "null" {
            return Ok(Data::schemaless(infer(&payload)));
        }
        let schema = self.schema_from_cache(schema.get())?;
        let value = from_json(&schema, &payload)?;
        Ok(Data::new(schema, value))
    }

    fn schema_from_cache(&mut self, text: &str) -> Result<Arc<Schema>, ConvertError> {
        if let Some((last, schema)) = &self.last
            && **last == *text
        {
            return Ok(schema.clone());
        }
        let schema = match self.cache.get(text) {
            Some(s) => s.clone(),
            None => {
                let schema = Arc::new(schema_from_json(&parse::<Json>(text.as_bytes())?)?);
                if self.cache.len() >= self.cache_size.max(1) {
                    self.cache.clear();
                }
                self.cache.insert(text.into(), schema.clone());
                schema
            }
        };
        self.last = Some((text.into(), schema.clone()));
        Ok(schema)
    }
}

/// The members of a `{"schema":…,"payload":…}` envelope, borrowed as JSON text. Any
/// other member makes it not an envelope; a member given twice counts once, the last.
#[derive(Default)]
struct Envelope<'a> {
    schema: Option<&'a RawValue>,
    payload: Option<&'a RawValue>,
}

impl<'de> serde::Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Envelope<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object with \"schema\" and \"payload\"")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Envelope<'de>, A::Error> {
                let mut envelope = Envelope::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    match &*key {
                        "schema" => envelope.schema = Some(value),
                        "payload" => envelope.payload = Some(value),
                        other => {
                            return Err(serde::de::Error::unknown_field(
                                other,
                                &["schema", "payload"],
                            ));
                        }
                    }
                }
                Ok(envelope)
            }
        }
        d.deserialize_map(Members)
    }
}

fn serialization_error(e: &serde_json::Error) -> ConvertError {
    ConvertError::Data(format!(
        "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
    ))
}

fn parse<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ConvertError> {
    serde_json::from_slice(bytes).map_err(|e| serialization_error(&e))
}

/// A schema in Kafka's JSON form, with its keys in Kafka's order.
pub fn schema_to_json(schema: &Schema) -> Json {
    let mut o = Map::new();
    o.insert(
        "type".into(),
        Json::String(schema.schema_type.json_name().into()),
    );
    match schema.schema_type {
        SchemaType::Array => {
            if let Some(items) = &schema.keys {
                o.insert("items".into(), schema_to_json(items));
            }
        }
        SchemaType::Map => {
            if let Some(k) = &schema.keys {
                o.insert("keys".into(), schema_to_json(k));
            }
            if let Some(v) = &schema.values {
                o.insert("values".into(), schema_to_json(v));
            }
        }
        SchemaType::Struct => {
            let fields = schema
                .fields
                .iter()
                .map(|f| {
                    let mut fj = schema_to_json(&f.schema);
                    if let Json::Object(m) = &mut fj {
                        m.insert("field".into(), Json::String(f.name.clone()));
                    }
                    fj
                })
                .collect();
            o.insert("fields".into(), Json::Array(fields));
        }
        _ => {}
    }
    o.insert("optional".into(), Json::Bool(schema.optional));
    if let Some(n) = &schema.name {
        o.insert("name".into(), Json::String(n.clone()));
    }
    if let Some(v) = schema.version {
        o.insert("version".into(), Json::Number(v.into()));
    }
    if let Some(d) = &schema.doc {
        o.insert("doc".into(), Json::String(d.clone()));
    }
    if !schema.parameters.is_empty() {
        let params = schema
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        o.insert("parameters".into(), Json::Object(params));
    }
    if let Some(default) = &schema.default
        && let Ok(d) = to_json(Some(schema), default, DecimalFormat::Base64)
    {
        o.insert("default".into(), d);
    }
    Json::Object(o)
}

/// Parses Kafka's JSON schema form.
///
/// # Errors
/// When a type is unknown or a required part is missing.
pub fn schema_from_json(json: &Json) -> Result<Schema, ConvertError> {
    let bad = |m: &str| ConvertError::Data(format!("Invalid schema: {m}"));
    let o = json
        .as_object()
        .ok_or_else(|| bad("a schema must be a JSON object"))?;
    let type_name = o
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("schema must contain 'type' field"))?;
    let schema_type = SchemaType::from_json_name(type_name)
        .ok_or_else(|| bad(&format!("unknown schema type: {type_name}")))?;
    let mut schema = Schema::new(schema_type);
    schema.optional = o.get("optional").and_then(Json::as_bool).unwrap_or(false);
    schema.name = o.get("name").and_then(Json::as_str).map(str::to_owned);
    schema.version = o
        .get("version")
        .and_then(Json::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    schema.doc = o.get("doc").and_then(Json::as_str).map(str::to_owned);
    if let Some(Json::Object(params)) = o.get("parameters") {
        for (k, v) in params {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            schema.parameters.insert(k.clone(), v);
        }
    }
    match schema_type {
        SchemaType::Array => {
            let items = o
                .get("items")
                .ok_or_else(|| bad("array schema did not specify the items type"))?;
            schema.keys = Some(Arc::new(schema_from_json(items)?));
        }
        SchemaType::Map => {
            let k = o
                .get("keys")
                .ok_or_else(|| bad("map schema did not specify the key type"))?;
            let v = o
                .get("values")
                .ok_or_else(|| bad("map schema did not specify the value type"))?;
            schema.keys = Some(Arc::new(schema_from_json(k)?));
            schema.values = Some(Arc::new(schema_from_json(v)?));
        }
        SchemaType::Struct => {
            let fields = o
                .get("fields")
                .and_then(Json::as_array)
                .ok_or_else(|| bad("struct schema's \"fields\" argument is not an array"))?;
            for f in fields {
                let name = f
                    .get("field")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad("struct schema's field name not specified properly"))?
                    .to_owned();
                schema = schema.field(name, schema_from_json(f)?);
            }
        }
        _ => {}
    }
    if let Some(default) = o.get("default") {
        let as_arc = Arc::new(schema.clone());
        schema.default = Some(from_json(&as_arc, default)?);
    }
    Ok(schema)
}

fn mismatch(schema: &Schema, json: &Json) -> ConvertError {
    let kind = match json {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    ConvertError::Data(format!(
        "Invalid type {kind} for schema type {}",
        schema.schema_type.json_name().to_uppercase()
    ))
}

/// A JSON payload read against its schema.
///
/// # Errors
/// When the payload does not fit the schema.
pub fn from_json(schema: &Arc<Schema>, json: &Json) -> Result<Value, ConvertError> {
    if json.is_null() {
        if let Some(d) = &schema.default {
            return Ok(d.clone());
        }
        if schema.optional {
            return Ok(Value::Null);
        }
        return Err(ConvertError::Data(format!(
            "Invalid null value for required {} field",
            schema.schema_type.json_name().to_uppercase()
        )));
    }
    let int = |json: &Json| json.as_i64().ok_or_else(|| mismatch(schema, json));
    Ok(match schema.schema_type {
        SchemaType::Boolean => {
            Value::Boolean(json.as_bool().ok_or_else(|| mismatch(schema, json))?)
        }
        SchemaType::Int8 => {
            Value::Int8(i8::try_from(int(json)?).map_err(|_| mismatch(schema, json))?)
        }
        SchemaType::Int16 => {
            Value::Int16(i16::try_from(int(json)?).map_err(|_| mismatch(schema, json))?)
        }
        SchemaType::Int32 => {
            Value::Int32(i32::try_from(int(json)?).map_err(|_| mismatch(schema, json))?)
        }
        SchemaType::Int64 => Value::Int64(int(json)?),
        SchemaType::Float32 => {
            Value::Float32(json.as_f64().ok_or_else(|| mismatch(schema, json))? as f32)
        }
        SchemaType::Float64 => Value::Float64(json.as_f64().ok_or_else(|| mismatch(schema, json))?),
        SchemaType::String => Value::String(
            json.as_str()
                .ok_or_else(|| mismatch(schema, json))?
                .to_owned(),
        ),
        SchemaType::Bytes => {
            if let (Some(scale), Json::Number(n)) = (schema.decimal_scale(), json) {
                Value::Bytes(numeric_to_decimal(n, scale)?.to_bytes())
            } else {
                let text = json.as_str().ok_or_else(|| mismatch(schema, json))?;
                Value::Bytes(
                    BASE64
                        .decode(text)
                        .map_err(|e| ConvertError::Data(format!("Invalid bytes field: {e}")))?,
                )
            }
        }
        SchemaType::Array => {
            let items = schema.keys.as_ref().ok_or_else(|| mismatch(schema, json))?;
            let arr = json.as_array().ok_or_else(|| mismatch(schema, json))?;
            Value::Array(
                arr.iter()
                    .map(|j| from_json(items, j))
                    .collect::<Result<_, _>>()?,
            )
        }
        SchemaType::Map => {
            let ks = schema.keys.as_ref().ok_or_else(|| mismatch(schema, json))?;
            let vs = schema
                .values
                .as_ref()
                .ok_or_else(|| mismatch(schema, json))?;
            match json {
                Json::Object(o) if ks.schema_type == SchemaType::String => Value::Map(
                    o.iter()
                        .map(|(k, v)| Ok((Value::String(k.clone()), from_json(vs, v)?)))
                        .collect::<Result<_, ConvertError>>()?,
                ),
                Json::Array(pairs) => Value::Map(
                    pairs
                        .iter()
                        .map(|p| match p.as_array().map(Vec::as_slice) {
                            Some([k, v]) => Ok((from_json(ks, k)?, from_json(vs, v)?)),
                            _ => Err(ConvertError::Data(
                                "Found invalid map entry instead of array tuple".into(),
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err(mismatch(schema, json)),
            }
        }
        SchemaType::Struct => {
            let o = json.as_object().ok_or_else(|| mismatch(schema, json))?;
            let values = schema
                .fields
                .iter()
                .map(|f| from_json(&f.schema, o.get(&f.name).unwrap_or(&Json::Null)))
                .collect::<Result<Vec<_>, _>>()?;
            Value::Struct(
                Struct::from_values(schema.clone(), values)
                    .map_err(|e| ConvertError::Data(e.to_string()))?,
            )
        }
    })
}

fn numeric_to_decimal(n: &Number, scale: i32) -> Result<Decimal, ConvertError> {
    let text = n.to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let scale_u = usize::try_from(scale).unwrap_or(0);
    let mut digits = format!("{int}{frac}");
    if frac.len() < scale_u {
        digits.push_str(&"0".repeat(scale_u - frac.len()));
    } else {
        digits.truncate(int.len() + scale_u);
    }
    let unscaled = digits
        .parse::<i128>()
        .map_err(|_| ConvertError::Data(format!("Invalid decimal {text}")))?;
    Ok(Decimal { unscaled, scale })
}

/// A value in JSON, written against its schema when there is one.
///
/// # Errors
/// When a struct or map does not fit the schema.
pub fn to_json(
    schema: Option<&Schema>,
    value: &Value,
    decimal_format: DecimalFormat,
) -> Result<Json, ConvertError> {
    Ok(match value {
        Value::Null => {
            if let Some(s) = schema
                && let Some(d) = &s.default
            {
                return to_json(Some(s), d, decimal_format);
            }
            Json::Null
        }
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int8(v) => Json::Number((*v).into()),
        Value::Int16(v) => Json::Number((*v).into()),
        Value::Int32(v) => Json::Number((*v).into()),
        Value::Int64(v) => Json::Number((*v).into()),
        Value::Float32(v) => Number::from_f64(f64::from(*v)).map_or(Json::Null, Json::Number),
        Value::Float64(v) => Number::from_f64(*v).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => match (schema.and_then(Schema::decimal_scale), decimal_format) {
            (Some(scale), DecimalFormat::Numeric) => {
                let d = Decimal::from_bytes(b, scale)
                    .ok_or_else(|| ConvertError::Data("Decimal too large".into()))?;
                serde_json::from_str::<Json>(&d.to_string())
                    .map_err(|e| ConvertError::Data(e.to_string()))?
            }
            _ => Json::String(BASE64.encode(b)),
        },
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.keys.as_deref());
            Json::Array(
                items
                    .iter()
                    .map(|v| to_json(item_schema, v, decimal_format))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            let ks = schema.and_then(|s| s.keys.as_deref());
            let vs = schema.and_then(|s| s.values.as_deref());
            let string_keys = match ks {
                Some(k) => k.schema_type == SchemaType::String,
                None => entries.iter().all(|(k, _)| matches!(k, Value::String(_))),
            };
            if string_keys {
                let mut o = Map::new();
                for (k, v) in entries {
                    let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                    o.insert(key, to_json(vs, v, decimal_format)?);
                }
                Json::Object(o)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok(Json::Array(vec![
                                to_json(ks, k, decimal_format)?,
                                to_json(vs, v, decimal_format)?,
                            ]))
                        })
                        .collect::<Result<_, ConvertError>>()?,
                )
            }
        }
        Value::Struct(s) => {
            let mut o = Map::new();
            for (field, v) in s.schema().fields.iter().zip(s.values()) {
                o.insert(
                    field.name.clone(),
                    to_json(Some(&field.schema), v, decimal_format)?,
                );
            }
            Json::Object(o)
        }
    })
}

/// Schemaless input: objects become maps, integers INT64, other numbers FLOAT64.
pub fn infer(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int64)
            .unwrap_or_else(|| Value::Float64(n.as_f64().unwrap_or(f64::NAN))),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(infer).collect()),
        Json::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::String(k.clone()), infer(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn converter(schemas: bool) -> JsonConverter {
        let mut s = BTreeMap::new();
        s.insert("schemas.enable".to_owned(), schemas.to_string());
        JsonConverter::new(&s).expect("converter")
    }

    /// The envelope from the reference (Kafka's JsonConverter output), byte for byte.
    const KAFKA_ENVELOPE: &str = r#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"},{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"field":"price"},{"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"ts"}],"optional":false,"name":"com.example.Product"},"payload":{"id":1,"name":"widget","price":"AfQ=","ts":1700000000000}}"#;

    #[test]
    fn round_trips_kafkas_envelope_byte_for_byte() {
        let mut c = converter(true);
        let data = c
            .to_connect(Some(KAFKA_ENVELOPE.as_bytes()))
            .expect("decode");
        let s = data.value().as_struct().expect("struct");
        assert_eq!(s.get("id"), Some(&Value::Int32(1)));
        assert_eq!(s.get("price"), Some(&Value::Bytes(vec![0x01, 0xf4])));
        assert_eq!(
            data.schema
                .as_ref()
                .and_then(|s| s.fields[2].schema.decimal_scale()),
            Some(2)
        );
        let bytes = c.from_connect(&data).expect("encode").expect("not null");
        assert_eq!(String::from_utf8(bytes).expect("utf8"), KAFKA_ENVELOPE);
    }

    #[test]
    fn schemaless_infers_types_and_writes_bare_json() {
        let mut c = converter(false);
        let data = c
            .to_connect(Some(br#"{"a":1,"b":1.5,"c":[true,null],"d":"x"}"#))
            .expect("decode");
        assert!(data.schema.is_none());
        assert_eq!(data.value().map_get("a"), Some(&Value::Int64(1)));
        assert_eq!(data.value().map_get("b"), Some(&Value::Float64(1.5)));
        let out = c.from_connect(&data).expect("encode").expect("some");
        assert_eq!(out, br#"{"a":1,"b":1.5,"c":[true,null],"d":"x"}"#);
    }

    #[test]
    fn envelope_errors_use_kafkas_message() {
        let mut c = converter(true);
        let err = c.to_connect(Some(br#"{"a":1}"#)).expect_err("no envelope");
        assert!(
            err.to_string()
                .contains("requires \"schema\" and \"payload\"")
        );
        for not_envelope in [
            &br#"[1,2]"#[..],
            br#"{"schema":null}"#,
            br#"{"payload":1}"#,
            br#"{"schema":null,"payload":1,"extra":true}"#,
        ] {
            let err = c.to_connect(Some(not_envelope)).expect_err("no envelope");
            assert!(
                err.to_string()
                    .contains("requires \"schema\" and \"payload\"")
            );
        }
        for not_json in [&b"{not json"[..], b"[1,2", br#"{"schema":null,"payload":1"#] {
            let err = c.to_connect(Some(not_json)).expect_err("bad json");
            assert!(err.to_string().contains("serialization error"), "{err}");
        }
        let err = c
            .to_connect(Some(
                br#"{"schema":{"type":"int32","optional":false},"payload":"x"}"#,
            ))
            .expect_err("type mismatch");
        assert!(err.to_string().contains("INT32"));
    }

    #[test]
    fn schemas_are_cached_by_their_text_and_never_confused() {
        let mut c = converter(true);
        let int = br#"{"schema":{"type":"int32","optional":false},"payload":7}"#;
        let text = br#"{"schema":{"type":"string","optional":false},"payload":"7"}"#;
        let spaced = br#"{ "schema" : { "type" : "int32", "optional" : false }, "payload" : 8 }"#;
        for _ in 0..2 {
            assert_eq!(
                c.to_connect(Some(int)).expect("int").value(),
                &Value::Int32(7)
            );
            assert_eq!(
                c.to_connect(Some(text)).expect("text").value(),
                &Value::from("7")
            );
            assert_eq!(
                c.to_connect(Some(spaced)).expect("spaced").value(),
                &Value::Int32(8)
            );
        }
        assert_eq!(c.cache.len(), 3);
        // A full cache starts over rather than growing.
        let mut small = JsonConverter::new(&BTreeMap::from([(
            "schemas.cache.size".to_owned(),
            "1".to_owned(),
        )]))
        .expect("converter");
        for bytes in [&int[..], text, int] {
            small.to_connect(Some(bytes)).expect("convert");
        }
        assert_eq!(small.cache.len(), 1);
    }

    #[test]
    fn tombstones_and_null_schema_envelopes() {
        let mut c = converter(true);
        assert_eq!(c.to_connect(None).expect("null"), Data::NULL);
        assert_eq!(c.from_connect(&Data::NULL).expect("null"), None);
        let d = c
            .to_connect(Some(br#"{"schema":null,"payload":{"k":"v"}}"#))
            .expect("schemaless");
        assert_eq!(d.value().map_get("k"), Some(&Value::from("v")));
    }

    #[test]
    fn numeric_decimals() {
        let mut s = BTreeMap::new();
        s.insert("decimal.format".to_owned(), "NUMERIC".to_owned());
        let c = JsonConverter::new(&s).expect("converter");
        let schema = Arc::new(Schema::decimal(2));
        let out = c
            .from_connect(&Data::new(schema.clone(), Value::Bytes(vec![0x01, 0xf4])))
            .expect("encode")
            .expect("some");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#"{"schema":{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}},"payload":5.0}"#
        );
        assert_eq!(
            from_json(&schema, &serde_json::json!(5.0)),
            Ok(Value::Bytes(vec![0x01, 0xf4]))
        );
    }
}
