//! `org.apache.kafka.connect.json.JsonConverter`, byte-compatible with Kafka's: the
//! `{"schema":…,"payload":…}` envelope with `schemas.enable=true`, bare JSON otherwise.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value as Json};
use wasmconnect_sdk::data::codec::{
    decode_value, encode_str_into, encode_value_into, put_struct_header, str_of,
    struct_field_values,
};
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
    /// The last schema written and its JSON text ([`JsonConverter::schema_text`]).
    last_written: std::sync::Mutex<Option<(Arc<Schema>, Arc<str>)>>,
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
            last_written: std::sync::Mutex::new(None),
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
        let mut out = Vec::with_capacity(128);
        if self.schemas_enable {
            out.extend_from_slice(br#"{"schema":"#);
            match &data.schema {
                Some(schema) => out.extend_from_slice(self.schema_text(schema).as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(br#","payload":"#);
        }
        let written = match (&data.schema, data.encoded()) {
            // A value still in the batch frame's encoding (a source's records) is written
            // from it, without decoding it into a tree first.
            (Some(schema), Some(bytes)) => serde_json::to_writer(
                &mut out,
                &EncodedPayload {
                    schema,
                    bytes,
                    decimal_format: self.decimal_format,
                },
            ),
            _ => serde_json::to_writer(
                &mut out,
                &Payload {
                    schema: data.schema.as_deref(),
                    value: data.value(),
                    decimal_format: self.decimal_format,
                },
            ),
        };
        written.map_err(|e| ConvertError::Data(e.to_string()))?;
        if self.schemas_enable {
            out.push(b'}');
        }
        Ok(Some(out))
    }

    /// A schema's JSON text, kept for the last schema written: a source's records mostly
    /// share one.
    fn schema_text(&self, schema: &Arc<Schema>) -> Arc<str> {
        let mut last = self
            .last_written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((s, text)) = &*last
            && (Arc::ptr_eq(s, schema) || **s == **schema)
        {
            return text.clone();
        }
        let text: Arc<str> = schema_to_json(schema).to_string().into();
        *last = Some((schema.clone(), text.clone()));
        text
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
        if let Some(data) = self.read_known_envelope(bytes) {
            return Ok(data);
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
        if schema.get() == "null" {
            let payload: Json = parse(payload.get().as_bytes())?;
            return Ok(Data::schemaless(infer(&payload)));
        }
        let schema = self.schema_from_cache(schema.get())?;
        if let Some(data) = read_payload(&schema, payload.get()) {
            return Ok(data);
        }
        // The payload does not fit its schema, or uses what the typed reader leaves to the
        // general path: that path gives the value, or Kafka's error for it.
        let value = from_json(&schema, &parse::<Json>(payload.get().as_bytes())?)?;
        Ok(Data::new(schema, value))
    }

    /// An envelope laid out as Kafka writes it, `{"schema":` then the last envelope's
    /// schema text byte for byte, then `,"payload":` and the payload: only the payload
    /// is parsed. `None` for anything else (other spacing or member order, another
    /// schema, a payload that does not fit): the general path reads it.
    fn read_known_envelope(&self, bytes: &[u8]) -> Option<Data> {
        let (text, schema) = self.last.as_ref()?;
        let rest = bytes.strip_prefix(br#"{"schema":"#)?;
        let rest = rest.strip_prefix(text.as_bytes())?;
        let rest = rest.strip_prefix(br#","payload":"#)?;
        // The payload runs to the envelope's closing brace; if a member followed it, the
        // payload would not parse as one value.
        let end = rest.trim_ascii_end().strip_suffix(b"}")?;
        let payload = std::str::from_utf8(end).ok()?;
        read_payload(schema, payload)
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

/// A payload that fits its schema, read by [`read_encoded`] (members in the schema's order,
/// as Kafka writes them) or else by [`read_typed`]; `None` when it does not fit.
fn read_payload(schema: &Arc<Schema>, payload: &str) -> Option<Data> {
    if let Some(bytes) = read_encoded(schema, payload) {
        // Written by the encoder from values the typed reader accepts: valid by construction.
        return Some(Data::from_encoded_unchecked(Some(schema.clone()), bytes));
    }
    read_typed(schema, payload).map(|value| Data::new(schema.clone(), value))
}

/// Reads a payload straight into the batch frame's encoding of its value, with no `Value`
/// made: a sink hands the bytes on to its plugin as they are. Each member is read as
/// [`read_typed`] reads it; `None` for a struct whose members are not in its schema's
/// order (a member out of place, or given twice) and for a payload that does not fit, which
/// [`read_typed`] then reads or refuses. Where it reads a payload, the bytes decode to the
/// value [`read_typed`] gives (`encoded_reading_matches_the_typed_reading`).
fn read_encoded(schema: &Arc<Schema>, payload: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(payload.len());
    let mut de = serde_json::Deserializer::from_str(payload);
    let encode = Encode {
        schema,
        out: &mut out,
    };
    serde::de::DeserializeSeed::deserialize(encode, &mut de).ok()?;
    de.end().ok()?;
    Some(out)
}

/// One JSON value read against its schema into its encoding (see [`read_encoded`]).
struct Encode<'s, 'o> {
    schema: &'s Arc<Schema>,
    out: &'o mut Vec<u8>,
}

impl Encode<'_, '_> {
    /// Encodes what the typed reader read.
    fn put<E>(self, value: Result<Value, E>) -> Result<(), E> {
        encode_value_into(&value?, self.out);
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Encode<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.schema.schema_type {
            // What the typed reader reads through a `Value` of its own, so does this.
            SchemaType::Bytes | SchemaType::Array | SchemaType::Map => {
                let value = serde::de::DeserializeSeed::deserialize(Typed(self.schema), d);
                self.put(value)
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Encode<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a {} value", self.schema.schema_type.json_name())
    }

    // Scalars: the typed reader's value, which holds no allocation, encoded.
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        let value = serde::de::Visitor::visit_unit::<E>(Typed(self.schema));
        self.put(value)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        let value = serde::de::Visitor::visit_bool::<E>(Typed(self.schema), v);
        self.put(value)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        let value = serde::de::Visitor::visit_i64::<E>(Typed(self.schema), v);
        self.put(value)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        let value = serde::de::Visitor::visit_u64::<E>(Typed(self.schema), v);
        self.put(value)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        let value = serde::de::Visitor::visit_f64::<E>(Typed(self.schema), v);
        self.put(value)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        if self.schema.schema_type != SchemaType::String {
            return Err(unfit());
        }
        encode_str_into(v, self.out);
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let schema = self.schema;
        if schema.schema_type != SchemaType::Struct {
            return Err(unfit());
        }
        let fields = &schema.fields;
        put_struct_header(self.out, fields.len());
        let mut next = 0;
        while let Some(found) = map.next_key_seed(FieldIndex { fields, next })? {
            match found {
                Some(i) if i == next => {
                    map.next_value_seed(Encode {
                        schema: &fields[i].schema,
                        out: self.out,
                    })?;
                    next += 1;
                }
                // A member out of the schema's order, or given twice: the typed reader's.
                Some(_) => return Err(unfit()),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        for field in &fields[next..] {
            let value = null_for(&field.schema).map_err(|_| unfit())?;
            encode_value_into(&value, self.out);
        }
        Ok(())
    }
}

/// Reads a payload straight into Connect values by its schema, with no `serde_json::Value`
/// in between: no map of the object's members, no copy of its keys, one copy of each
/// string. `None` when the payload is not JSON or does not fit the schema; the general
/// path ([`from_json`]) then says why. Both give the same value for any payload that fits
/// (`typed_reading_matches_the_general_path`).
fn read_typed(schema: &Arc<Schema>, payload: &str) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_str(payload);
    let value = serde::de::DeserializeSeed::deserialize(Typed(schema), &mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// The value of a JSON null for `schema`: its default, or null where it is optional.
fn null_for(schema: &Schema) -> Result<Value, ConvertError> {
    if let Some(d) = &schema.default {
        return Ok(d.clone());
    }
    if schema.optional {
        return Ok(Value::Null);
    }
    Err(ConvertError::Data(format!(
        "Invalid null value for required {} field",
        schema.schema_type.json_name().to_uppercase()
    )))
}

/// One JSON value read against its schema (see [`read_typed`]). Its errors carry no
/// message: the general path rebuilds the message when a read fails.
struct Typed<'s>(&'s Arc<Schema>);

/// Why a typed read stopped; the general path finds out again, with Kafka's words.
fn unfit<E: serde::de::Error>() -> E {
    E::custom("the payload does not fit its schema")
}

impl<'de> serde::de::DeserializeSeed<'de> for Typed<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0.schema_type {
            // Decimals, base64, arrays and maps are rare in a row: they take the general
            // path's code on their own subtree.
            SchemaType::Bytes | SchemaType::Array | SchemaType::Map => {
                let json = <Json as serde::Deserialize>::deserialize(d)?;
                from_json(self.0, &json).map_err(|_| unfit())
            }
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Typed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a {} value", self.0.schema_type.json_name())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        null_for(self.0).map_err(|_| unfit())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        match self.0.schema_type {
            SchemaType::Boolean => Ok(Value::Boolean(v)),
            _ => Err(unfit()),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        let value = match self.0.schema_type {
            SchemaType::Int8 => i8::try_from(v).ok().map(Value::Int8),
            SchemaType::Int16 => i16::try_from(v).ok().map(Value::Int16),
            SchemaType::Int32 => i32::try_from(v).ok().map(Value::Int32),
            SchemaType::Int64 => Some(Value::Int64(v)),
            SchemaType::Float32 => Some(Value::Float32(v as f64 as f32)),
            SchemaType::Float64 => Some(Value::Float64(v as f64)),
            _ => None,
        };
        value.ok_or_else(unfit)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        match (self.0.schema_type, i64::try_from(v)) {
            (SchemaType::Float32, _) => Ok(Value::Float32(v as f64 as f32)),
            (SchemaType::Float64, _) => Ok(Value::Float64(v as f64)),
            (_, Ok(v)) => self.visit_i64(v),
            (_, Err(_)) => Err(unfit()),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        match self.0.schema_type {
            SchemaType::Float32 => Ok(Value::Float32(v as f32)),
            SchemaType::Float64 => Ok(Value::Float64(v)),
            _ => Err(unfit()),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.visit_string(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        match self.0.schema_type {
            SchemaType::String => Ok(Value::String(v)),
            _ => Err(unfit()),
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let schema = self.0;
        if schema.schema_type != SchemaType::Struct {
            return Err(unfit());
        }
        let fields = &schema.fields;
        let mut values: Vec<Option<Value>> = vec![None; fields.len()];
        let mut next = 0;
        while let Some(found) = map.next_key_seed(FieldIndex { fields, next })? {
            match found {
                Some(i) => {
                    // A member given twice counts once, the last, as in a JSON object.
                    values[i] = Some(map.next_value_seed(Typed(&fields[i].schema))?);
                    next = i + 1;
                }
                // Members the schema does not name are ignored, as Kafka does.
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let values = values
            .into_iter()
            .zip(fields)
            .map(|(v, f)| match v {
                Some(v) => Ok(v),
                None => null_for(&f.schema).map_err(|_| unfit()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Struct::from_values(schema.clone(), values)
            .map(Value::Struct)
            .map_err(|_| unfit())
    }
}

/// A struct member's name, as the index of its field; members mostly come in the
/// schema's order, so the field after the last one found is tried first.
struct FieldIndex<'s> {
    fields: &'s [wasmconnect_sdk::data::Field],
    next: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for FieldIndex<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldIndex<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Option<usize>, E> {
        if self.fields.get(self.next).is_some_and(|f| f.name == name) {
            return Ok(Some(self.next));
        }
        Ok(self.fields.iter().position(|f| f.name == name))
    }
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
        return null_for(schema);
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

/// A value written as JSON against its schema, straight into the output: the same text
/// as serialising [`to_json`]'s tree (`payloads_write_the_text_of_their_json_tree`), without
/// building the tree.
struct Payload<'a> {
    schema: Option<&'a Schema>,
    value: &'a Value,
    decimal_format: DecimalFormat,
}

impl serde::Serialize for Payload<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap, SerializeSeq};
        let schema = self.schema;
        let nested = |schema, value| Payload {
            schema,
            value,
            decimal_format: self.decimal_format,
        };
        match self.value {
            Value::Null => match schema.and_then(|s| s.default.as_ref()) {
                Some(default) => nested(schema, default).serialize(s),
                None => s.serialize_unit(),
            },
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Int8(v) => s.serialize_i8(*v),
            Value::Int16(v) => s.serialize_i16(*v),
            Value::Int32(v) => s.serialize_i32(*v),
            Value::Int64(v) => s.serialize_i64(*v),
            // Non-finite numbers are written as null, as a JSON tree holds them.
            Value::Float32(v) => s.serialize_f64(f64::from(*v)),
            Value::Float64(v) => s.serialize_f64(*v),
            Value::String(text) => s.serialize_str(text),
            Value::Bytes(b)
                if schema.and_then(Schema::decimal_scale).is_none()
                    || self.decimal_format == DecimalFormat::Base64 =>
            {
                s.serialize_str(&BASE64.encode(b))
            }
            // Numeric decimals and maps go through the tree: rare, and a map's keys are
            // de-duplicated there as a JSON object's are.
            Value::Bytes(_) | Value::Map(_) => to_json(schema, self.value, self.decimal_format)
                .map_err(S::Error::custom)?
                .serialize(s),
            Value::Array(items) => {
                let item_schema = schema.and_then(|s| s.keys.as_deref());
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&nested(item_schema, item))?;
                }
                seq.end()
            }
            Value::Struct(st) => {
                let fields = &st.schema().fields;
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (field, v) in fields.iter().zip(st.values()) {
                    map.serialize_entry(&field.name, &nested(Some(&field.schema), v))?;
                }
                map.end()
            }
        }
    }
}

/// An encoded value (the batch frame's format, checked against its schema when its frame
/// was read) written as JSON: the same text as [`Payload`] writes for its decoded value. A
/// struct's fields and strings are read in place; other values are decoded one at a time.
struct EncodedPayload<'a> {
    schema: &'a Arc<Schema>,
    bytes: &'a [u8],
    decimal_format: DecimalFormat,
}

impl serde::Serialize for EncodedPayload<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        // A struct of the schema (a null one is not: it is written below).
        if self.schema.schema_type == SchemaType::Struct
            && let Ok(fields) = struct_field_values(self.bytes, self.schema)
        {
            let mut map = s.serialize_map(Some(self.schema.fields.len()))?;
            for field in fields {
                let (field, bytes) = field.map_err(S::Error::custom)?;
                let value = EncodedPayload {
                    schema: &field.schema,
                    bytes,
                    decimal_format: self.decimal_format,
                };
                map.serialize_entry(&field.name, &value)?;
            }
            return map.end();
        }
        if let Some(text) = str_of(self.bytes) {
            return s.serialize_str(text);
        }
        let value = decode_value(self.bytes, Some(self.schema)).map_err(S::Error::custom)?;
        Payload {
            schema: Some(self.schema),
            value: &value,
            decimal_format: self.decimal_format,
        }
        .serialize(s)
    }
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
    use wasmconnect_sdk::data::codec;

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

    /// A struct with a field of every type, optional and defaulted ones, and a nested
    /// struct, in Kafka's JSON schema form.
    const EVERY_TYPE: &str = r#"{"type":"struct","optional":false,"fields":[
        {"field":"i8","type":"int8","optional":false},
        {"field":"i16","type":"int16","optional":false},
        {"field":"i32","type":"int32","optional":false},
        {"field":"i64","type":"int64","optional":false},
        {"field":"f32","type":"float","optional":false},
        {"field":"f64","type":"double","optional":false},
        {"field":"b","type":"boolean","optional":false},
        {"field":"s","type":"string","optional":false},
        {"field":"opt","type":"string","optional":true},
        {"field":"dflt","type":"int32","optional":false,"default":42},
        {"field":"raw","type":"bytes","optional":true},
        {"field":"dec","type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"}},
        {"field":"day","type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Date","version":1},
        {"field":"list","type":"array","optional":true,"items":{"type":"int32","optional":false}},
        {"field":"map","type":"map","optional":true,"keys":{"type":"string","optional":false},"values":{"type":"int64","optional":true}},
        {"field":"inner","type":"struct","optional":true,"fields":[
            {"field":"x","type":"int64","optional":false},
            {"field":"y","type":"string","optional":true}]}
    ]}"#;

    #[test]
    fn typed_reading_matches_the_general_path() {
        let schema = Arc::new(
            schema_from_json(&serde_json::from_str(EVERY_TYPE).expect("json")).expect("schema"),
        );
        let base = r#""i8":-128,"i16":32767,"i32":-2147483648,"i64":9223372036854775807,"f32":1.5,"f64":-2.25e10,"b":true,"s":"a\"b\u00e9""#;
        let payloads = [
            // Fits: every field, members in any order, extra members, nulls, defaults.
            format!(
                r#"{{{base},"opt":null,"dflt":7,"raw":"AQI=","dec":"AfQ=","day":19000,"list":[1,2],"map":{{"k":1,"n":null}},"inner":{{"x":3,"y":"z"}}}}"#
            ),
            format!(
                r#"{{"inner":{{"y":null,"x":-1}},{base},"unknown":{{"deep":[1,{{"a":null}}]}},"dec":5.0}}"#
            ),
            format!(r#"{{{base},"dflt":null,"f32":3,"f64":18446744073709551615}}"#),
            format!(r#"{{{base},"s":"first","s":"last"}}"#),
            format!(r#" {{ {base} , "list" : [ ] }} "#),
            // Does not fit: each a different way.
            format!(r#"{{{base},"i8":128}}"#),
            format!(r#"{{{base},"i16":-32769}}"#),
            format!(r#"{{{base},"i32":1.0}}"#),
            format!(r#"{{{base},"i64":9223372036854775808}}"#),
            format!(r#"{{{base},"b":1}}"#),
            format!(r#"{{{base},"s":7}}"#),
            format!(r#"{{{base},"s":null}}"#),
            format!(r#"{{{base},"f64":"1"}}"#),
            format!(r#"{{{base},"raw":"not base64!"}}"#),
            format!(r#"{{{base},"list":[1,"2"]}}"#),
            format!(r#"{{{base},"inner":{{"y":"no x"}}}}"#),
            format!(r#"{{{base},"inner":[1]}}"#),
            r#"{"i8":1}"#.to_owned(),
            "[1,2]".to_owned(),
            "null".to_owned(),
            "7".to_owned(),
        ];
        let mut fits = 0;
        for payload in &payloads {
            let general = from_json(&schema, &serde_json::from_str(payload).expect("json"));
            fits += usize::from(general.is_ok());
            assert_eq!(read_typed(&schema, payload), general.ok(), "{payload}");
        }
        assert_eq!(fits, 5, "the first five payloads fit");
        // Not JSON, or JSON with something after it: the general path's parse error.
        assert_eq!(read_typed(&schema, &format!("{{{base}")), None);
        assert_eq!(read_typed(&schema, &format!("{{{base}}} 1")), None);
    }

    #[test]
    fn encoded_reading_matches_the_typed_reading() {
        let schema = Arc::new(
            schema_from_json(&serde_json::from_str(EVERY_TYPE).expect("json")).expect("schema"),
        );
        let in_order = r#"{"i8":-128,"i16":32767,"i32":-2147483648,"i64":9223372036854775807,"f32":1.5,"f64":-2.25e10,"b":true,"s":"a\"b\u00e9","opt":null,"dflt":null,"raw":"AQI=","dec":"AfQ=","day":19000,"list":[1,2],"map":{"k":1,"n":null},"inner":{"x":3,"y":"z"}}"#;
        let sparse = r#"{"i8":0,"i16":0,"i32":0,"i64":0,"f32":3,"f64":18446744073709551615,"b":false,"s":"","extra":[{"a":1}]}"#;
        let payloads = [
            in_order,
            sparse,
            // Out of order, a member twice, and ones that do not fit: the typed reader's.
            r#"{"i16":0,"i8":0,"i32":0,"i64":0,"f32":0,"f64":0,"b":false,"s":""}"#,
            r#"{"i8":0,"i16":0,"i32":0,"i64":0,"f32":0,"f64":0,"b":false,"s":"a","s":"b"}"#,
            r#"{"i8":128,"i16":0,"i32":0,"i64":0,"f32":0,"f64":0,"b":false,"s":""}"#,
            r#"{"i8":0,"i16":0,"i32":0,"i64":0,"f32":0,"f64":0,"b":false,"s":null}"#,
            r#"{"i8":0,"i16":0,"i32":0,"i64":0,"f32":0,"f64":0,"b":false,"s":"","inner":{"y":"no x"}}"#,
            "[1,2]",
            "7",
        ];
        let mut encoded = 0;
        for payload in payloads {
            let typed = read_typed(&schema, payload);
            match read_encoded(&schema, payload) {
                Some(bytes) => {
                    encoded += 1;
                    let value = codec::decode_value(&bytes, Some(&schema)).expect("valid bytes");
                    assert_eq!(Some(value), typed, "{payload}");
                }
                None => assert!(
                    payload.contains(r#""i16":0,"i8""#)
                        || payload.contains(r#""s":"a","s""#)
                        || typed.is_none(),
                    "only out-of-order members and unfit payloads are left to the typed reader: {payload}"
                ),
            }
        }
        assert_eq!(encoded, 2, "the payloads in the schema's order are encoded");
        // Through the converter: Kafka's envelope comes out encoded, equal to the value.
        let mut c = converter(true);
        let envelope = format!(r#"{{"schema":{EVERY_TYPE},"payload":{in_order}}}"#);
        let data = c.to_connect(Some(envelope.as_bytes())).expect("fits");
        assert!(data.encoded().is_some());
        assert_eq!(Some(data.value().clone()), read_typed(&schema, in_order));
    }

    #[test]
    fn payloads_write_the_text_of_their_json_tree() {
        let schema = Arc::new(
            schema_from_json(&serde_json::from_str(EVERY_TYPE).expect("json")).expect("schema"),
        );
        let full = r#"{"i8":-128,"i16":32767,"i32":-2147483648,"i64":9223372036854775807,"f32":1.5,"f64":-2.25e10,"b":true,"s":"a\"b\u00e9\n","opt":null,"dflt":7,"raw":"AQI=","dec":"AfQ=","day":19000,"list":[1,2],"map":{"k":1,"n":null},"inner":{"x":3,"y":"z"}}"#;
        let sparse = r#"{"i8":0,"i16":0,"i32":0,"i64":0,"f32":0.1,"f64":1e300,"b":false,"s":""}"#;
        let mut values: Vec<(Option<&Schema>, Value)> = [full, sparse]
            .iter()
            .map(|text| {
                let json = serde_json::from_str(text).expect("json");
                (Some(&*schema), from_json(&schema, &json).expect("fits"))
            })
            .collect();
        // Defaults written for nulls, non-finite numbers as null, numeric decimals, maps
        // with other keys than strings, and values without a schema.
        let mut with_default = Schema::new(SchemaType::Int32);
        with_default.default = Some(Value::Int32(9));
        let decimal = Schema::decimal(2);
        let non_string_keys = Value::Map(vec![(Value::Int32(1), Value::from("a"))]);
        let extra = [
            (Some(&with_default), Value::Null),
            (None, Value::Float64(f64::NAN)),
            (None, Value::Float32(f32::INFINITY)),
            (Some(&decimal), Value::Bytes(vec![0x01, 0xf4])),
            (None, non_string_keys),
            (None, Value::Array(vec![Value::Int64(1), Value::Null])),
        ];
        values.extend(extra.iter().map(|(s, v)| (*s, v.clone())));
        for format in [DecimalFormat::Base64, DecimalFormat::Numeric] {
            for (schema, value) in &values {
                let tree = to_json(*schema, value, format).expect("tree");
                let payload = Payload {
                    schema: *schema,
                    value,
                    decimal_format: format,
                };
                assert_eq!(
                    serde_json::to_string(&payload).expect("payload"),
                    tree.to_string(),
                    "{value:?}"
                );
            }
        }
    }

    #[test]
    fn encoded_values_write_the_text_of_their_decoded_value() {
        let schema = Arc::new(
            schema_from_json(&serde_json::from_str(EVERY_TYPE).expect("json")).expect("schema"),
        );
        let full = r#"{"i8":-128,"i16":32767,"i32":-2147483648,"i64":9223372036854775807,"f32":1.5,"f64":-2.25e10,"b":true,"s":"a\"b\u00e9\n","opt":null,"dflt":null,"raw":"AQI=","dec":"AfQ=","day":19000,"list":[1,2],"map":{"k":1,"n":null},"inner":{"x":3,"y":"z"}}"#;
        let sparse = r#"{"i8":0,"i16":0,"i32":0,"i64":0,"f32":0.1,"f64":1e300,"b":false,"s":""}"#;
        let mut with_default = Schema::new(SchemaType::Int32);
        with_default.default = Some(Value::Int32(9));
        let mut values: Vec<(Arc<Schema>, Value)> = [full, sparse]
            .iter()
            .map(|text| {
                let json = serde_json::from_str(text).expect("json");
                (schema.clone(), from_json(&schema, &json).expect("fits"))
            })
            .collect();
        values.push((Arc::new(with_default), Value::Null));
        values.push((Arc::new(Schema::decimal(2)), Value::Bytes(vec![0x01, 0xf4])));
        values.push((
            Arc::new(Schema::new(SchemaType::String)),
            Value::from("plain"),
        ));
        for schemas in [false, true] {
            for format in ["base64", "numeric"] {
                let converter = JsonConverter::new(&BTreeMap::from([
                    ("schemas.enable".to_owned(), schemas.to_string()),
                    ("decimal.format".to_owned(), format.to_owned()),
                ]))
                .expect("converter");
                for (schema, value) in &values {
                    let decoded = Data::new(schema.clone(), value.clone());
                    let encoded =
                        Data::from_encoded(Some(schema.clone()), codec::encode_value(value))
                            .expect("fits");
                    assert_eq!(
                        converter.from_connect(&encoded).expect("written"),
                        converter.from_connect(&decoded).expect("written"),
                        "{value:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_envelopes_schema_text_follows_the_schema() {
        let c = converter(true);
        let int = Arc::new(Schema::new(SchemaType::Int32));
        let text = Arc::new(Schema::new(SchemaType::String).optional());
        for _ in 0..2 {
            for (schema, value, expected) in [
                (
                    &int,
                    Value::Int32(1),
                    r#"{"schema":{"type":"int32","optional":false},"payload":1}"#,
                ),
                (
                    &text,
                    Value::from("x"),
                    r#"{"schema":{"type":"string","optional":true},"payload":"x"}"#,
                ),
            ] {
                let out = c
                    .from_connect(&Data::new(schema.clone(), value))
                    .expect("encode")
                    .expect("some");
                assert_eq!(String::from_utf8(out).expect("utf8"), expected);
            }
        }
        let out = c
            .from_connect(&Data::schemaless(Value::Int64(3)))
            .expect("encode")
            .expect("some");
        assert_eq!(out, br#"{"schema":null,"payload":3}"#);
    }

    #[test]
    fn an_envelope_with_the_last_schema_text_reads_only_its_payload() {
        let mut c = converter(true);
        let schema = r#"{"type":"struct","optional":false,"fields":[{"field":"n","type":"int32","optional":false}]}"#;
        let envelope = |rest: &str| format!(r#"{{"schema":{schema},"payload":{rest}"#);
        let n = |data: &Data| data.value().as_struct().and_then(|s| s.get("n")).cloned();
        // The first envelope caches the schema; the next ones take the byte comparison.
        for i in 0..3 {
            let data = c
                .to_connect(Some(envelope(&format!(r#"{{"n":{i}}}}}"#)).as_bytes()))
                .expect("envelope");
            assert_eq!(n(&data), Some(Value::Int32(i)));
        }
        assert!(
            c.read_known_envelope(envelope(r#"{"n":7}}"#).as_bytes())
                .is_some()
        );
        let spaced = c
            .to_connect(Some(envelope(" { \"n\" : 8 } } \n").as_bytes()))
            .expect("spacing around the payload");
        assert_eq!(n(&spaced), Some(Value::Int32(8)));
        // What follows the payload is still checked, by the general path.
        let extra = c.to_connect(Some(envelope(r#"{"n":1},"extra":2}"#).as_bytes()));
        assert!(
            extra
                .expect_err("a third member")
                .to_string()
                .contains("requires \"schema\" and \"payload\"")
        );
        for broken in [r#"{"n":1}}x"#, r#"{"n":1}"#, r#"{"n":1"#] {
            let err = c
                .to_connect(Some(envelope(broken).as_bytes()))
                .expect_err("not JSON");
            assert!(
                err.to_string().contains("serialization error"),
                "{broken}: {err}"
            );
        }
        let err = c
            .to_connect(Some(envelope(r#"{"n":"x"}}"#).as_bytes()))
            .expect_err("a string for an int32");
        assert_eq!(err.to_string(), "Invalid type string for schema type INT32");
    }

    #[test]
    fn a_payload_the_typed_reader_leaves_gets_the_general_paths_value_or_error() {
        let mut c = converter(true);
        let schema = r#"{"type":"struct","optional":false,"fields":[{"field":"n","type":"int32","optional":false}]}"#;
        // The typed reader stops at the first "n"; a JSON object keeps the last.
        let twice = format!(r#"{{"schema":{schema},"payload":{{"n":"x","n":5}}}}"#);
        let data = c.to_connect(Some(twice.as_bytes())).expect("the last n");
        assert_eq!(
            data.value().as_struct().and_then(|s| s.get("n")),
            Some(&Value::Int32(5))
        );
        let wrong = format!(r#"{{"schema":{schema},"payload":{{"n":"x"}}}}"#);
        let err = c
            .to_connect(Some(wrong.as_bytes()))
            .expect_err("a string for an int32");
        assert_eq!(err.to_string(), "Invalid type string for schema type INT32");
        let missing = format!(r#"{{"schema":{schema},"payload":{{}}}}"#);
        let err = c.to_connect(Some(missing.as_bytes())).expect_err("no n");
        assert_eq!(
            err.to_string(),
            "Invalid null value for required INT32 field"
        );
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
