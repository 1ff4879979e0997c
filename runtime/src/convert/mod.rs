//! Converters: Kafka bytes to Connect data and back, in the worker (plugins never see the
//! wire format). The class names and settings are Kafka Connect's.

pub mod json;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use wasmconnect_sdk::data::{Data, Schema, SchemaType, Value};

pub use json::JsonConverter;

/// Why a conversion failed, or a converter could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Data(String),
    #[error("unknown converter class {0}")]
    UnknownClass(String),
}

pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
pub const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";
pub const SIMPLE_HEADER_CONVERTER: &str = "org.apache.kafka.connect.storage.SimpleHeaderConverter";

/// The converter classes this worker implements.
pub const CONVERTER_CLASSES: [&str; 4] = [
    JSON_CONVERTER,
    STRING_CONVERTER,
    BYTE_ARRAY_CONVERTER,
    SIMPLE_HEADER_CONVERTER,
];

/// A configured key, value or header converter.
#[derive(Debug)]
pub enum Converter {
    Json(JsonConverter),
    /// `StringConverter`; also `SimpleHeaderConverter`, which writes values as strings.
    String,
    ByteArray,
}

fn optional(t: SchemaType) -> Arc<Schema> {
    Arc::new(Schema::new(t).optional())
}

/// The schemas StringConverter and ByteArrayConverter give every record: one each, shared,
/// rather than one allocated per record.
static OPTIONAL_STRING: LazyLock<Arc<Schema>> = LazyLock::new(|| optional(SchemaType::String));
static OPTIONAL_BYTES: LazyLock<Arc<Schema>> = LazyLock::new(|| optional(SchemaType::Bytes));

impl Converter {
    /// The class, as error reports name it.
    pub fn class_name(&self) -> &'static str {
        match self {
            Converter::Json(_) => JSON_CONVERTER,
            Converter::String => STRING_CONVERTER,
            Converter::ByteArray => BYTE_ARRAY_CONVERTER,
        }
    }

    /// Builds a converter from its class (full name or simple name) and its settings (the
    /// keys after the `key.converter.` style prefix).
    ///
    /// # Errors
    /// An unknown class, or a bad setting.
    pub fn new(
        class: &str,
        settings: &BTreeMap<String, String>,
    ) -> Result<Converter, ConvertError> {
        let simple = class.trim().rsplit('.').next().unwrap_or(class);
        match simple {
            "JsonConverter" => Ok(Converter::Json(JsonConverter::new(settings)?)),
            "StringConverter" | "SimpleHeaderConverter" => Ok(Converter::String),
            "ByteArrayConverter" => Ok(Converter::ByteArray),
            _ => Err(ConvertError::UnknownClass(class.to_owned())),
        }
    }

    /// Kafka bytes to Connect data.
    ///
    /// # Errors
    /// When the bytes do not decode.
    pub fn to_connect(&mut self, bytes: Option<&[u8]>) -> Result<Data, ConvertError> {
        match self {
            Converter::Json(c) => c.to_connect(bytes),
            Converter::String => Ok(match bytes {
                None => Data::NULL,
                Some(b) => Data::new(
                    OPTIONAL_STRING.clone(),
                    String::from_utf8_lossy(b).into_owned(),
                ),
            }),
            Converter::ByteArray => Ok(match bytes {
                None => Data::NULL,
                Some(b) => Data::new(OPTIONAL_BYTES.clone(), Value::Bytes(b.to_vec())),
            }),
        }
    }

    /// Connect data to Kafka bytes; `None` for null.
    ///
    /// # Errors
    /// When the data cannot be written by this converter.
    pub fn from_connect(&self, data: &Data) -> Result<Option<Vec<u8>>, ConvertError> {
        match self {
            Converter::Json(c) => c.from_connect(data),
            Converter::String => Ok(match data.value() {
                Value::Null => None,
                Value::String(s) => Some(s.clone().into_bytes()),
                other => Some(
                    json::to_json(data.schema.as_deref(), other, json::DecimalFormat::Base64)?
                        .to_string()
                        .into_bytes(),
                ),
            }),
            Converter::ByteArray => {
                if let Some(s) = &data.schema
                    && s.schema_type != SchemaType::Bytes
                {
                    return Err(ConvertError::Data(format!(
                        "Invalid schema type for ByteArrayConverter: {}",
                        s.schema_type.json_name().to_uppercase()
                    )));
                }
                match data.value() {
                    Value::Null => Ok(None),
                    Value::Bytes(b) => Ok(Some(b.clone())),
                    _ => Err(ConvertError::Data(
                        "ByteArrayConverter is not compatible with objects of this type".into(),
                    )),
                }
            }
        }
    }
}

/// The key, value and header converters of a connector.
#[derive(Debug)]
pub struct Converters {
    pub key: Converter,
    pub value: Converter,
    pub header: Converter,
}

impl Converters {
    /// Builds the three converters from a connector config layered over the worker config:
    /// `key.converter` and its `key.converter.*` settings, and so on.
    ///
    /// # Errors
    /// The first converter that cannot be built, naming its key.
    pub fn from_configs(
        worker: &BTreeMap<String, String>,
        connector: &BTreeMap<String, String>,
    ) -> Result<Converters, (String, ConvertError)> {
        let build = |role: &str, default: &str| {
            let key = format!("{role}.converter");
            let (class, source) = match connector.get(&key) {
                Some(c) => (c.clone(), connector),
                None => (
                    worker
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| default.to_owned()),
                    worker,
                ),
            };
            let prefix = format!("{key}.");
            let settings: BTreeMap<String, String> = source
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_owned(), v.clone())))
                .collect();
            Converter::new(&class, &settings).map_err(|e| (key, e))
        };
        Ok(Converters {
            key: build("key", JSON_CONVERTER)?,
            value: build("value", JSON_CONVERTER)?,
            header: build("header", SIMPLE_HEADER_CONVERTER)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_overrides_worker_converters_with_prefixed_settings() {
        let worker: BTreeMap<String, String> = [
            ("key.converter", JSON_CONVERTER),
            ("value.converter", JSON_CONVERTER),
            ("value.converter.schemas.enable", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let connector: BTreeMap<String, String> = [
            ("key.converter", STRING_CONVERTER),
            ("value.converter", JSON_CONVERTER),
            ("value.converter.schemas.enable", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut c = Converters::from_configs(&worker, &connector).expect("converters");
        assert!(matches!(c.key, Converter::String));
        let d = c
            .value
            .to_connect(Some(b"{\"a\":1}"))
            .expect("schemaless json");
        assert!(d.schema.is_none());
        let bad: BTreeMap<String, String> =
            [("value.converter".to_owned(), "com.example.Nope".to_owned())].into();
        let err = Converters::from_configs(&worker, &bad).expect_err("unknown");
        assert_eq!(err.0, "value.converter");
    }

    #[test]
    fn byte_array_and_string_converters() {
        let mut b = Converter::new(BYTE_ARRAY_CONVERTER, &BTreeMap::new()).expect("bytes");
        let d = b.to_connect(Some(b"\x00\x01")).expect("bytes");
        assert_eq!(b.from_connect(&d).expect("bytes"), Some(vec![0, 1]));
        let s = Data::new(optional(SchemaType::String), "x");
        assert!(b.from_connect(&s).is_err());
        let mut st = Converter::new("StringConverter", &BTreeMap::new()).expect("string");
        let d = st.to_connect(Some(b"hello")).expect("string");
        assert_eq!(
            st.from_connect(&d).expect("string"),
            Some(b"hello".to_vec())
        );
        assert_eq!(
            st.from_connect(&Data::schemaless(Value::Int64(5)))
                .expect("int"),
            Some(b"5".to_vec())
        );
    }
}
