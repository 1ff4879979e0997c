//! Connect schemas: the type of a value, with Kafka Connect's logical types.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Value;

/// Kafka Connect's `Schema.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// The name used by the JsonConverter envelope (`"int32"`, `"float"`, `"struct"`, ...).
    pub fn json_name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    /// Parses a JsonConverter type name; `None` for an unknown name.
    pub fn from_json_name(name: &str) -> Option<SchemaType> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" => SchemaType::Float32,
            "double" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }

    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(code: u8) -> Option<SchemaType> {
        const ALL: [SchemaType; 12] = [
            SchemaType::Int8,
            SchemaType::Int16,
            SchemaType::Int32,
            SchemaType::Int64,
            SchemaType::Float32,
            SchemaType::Float64,
            SchemaType::Boolean,
            SchemaType::String,
            SchemaType::Bytes,
            SchemaType::Array,
            SchemaType::Map,
            SchemaType::Struct,
        ];
        ALL.get(usize::from(code)).copied()
    }
}

/// A struct field: its name and schema. The field's index is its position in
/// [`Schema::fields`].
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub schema: Arc<Schema>,
}

/// A Connect schema (`org.apache.kafka.connect.data.Schema`).
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub schema_type: SchemaType,
    pub optional: bool,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    pub parameters: BTreeMap<String, String>,
    pub default: Option<Value>,
    /// Struct fields, in order.
    pub fields: Vec<Field>,
    /// Array items, or map keys.
    pub keys: Option<Arc<Schema>>,
    /// Map values.
    pub values: Option<Arc<Schema>>,
}

/// Logical type names, as Kafka Connect writes them.
pub mod logical {
    pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
    pub const DATE: &str = "org.apache.kafka.connect.data.Date";
    pub const TIME: &str = "org.apache.kafka.connect.data.Time";
    pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
    /// The parameter that carries a Decimal's scale.
    pub const DECIMAL_SCALE: &str = "scale";
}

impl Schema {
    /// A required schema of a primitive type.
    pub fn new(schema_type: SchemaType) -> Schema {
        Schema {
            schema_type,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            default: None,
            fields: Vec::new(),
            keys: None,
            values: None,
        }
    }

    /// An array of `items`.
    pub fn array(items: Schema) -> Schema {
        Schema {
            keys: Some(Arc::new(items)),
            ..Schema::new(SchemaType::Array)
        }
    }

    /// A map from `keys` to `values`.
    pub fn map(keys: Schema, values: Schema) -> Schema {
        Schema {
            keys: Some(Arc::new(keys)),
            values: Some(Arc::new(values)),
            ..Schema::new(SchemaType::Map)
        }
    }

    /// An empty struct schema; add fields with [`Schema::field`].
    pub fn structure() -> Schema {
        Schema::new(SchemaType::Struct)
    }

    /// Adds a struct field (builder style).
    pub fn field(mut self, name: impl Into<String>, schema: Schema) -> Schema {
        self.fields.push(Field {
            name: name.into(),
            schema: Arc::new(schema),
        });
        self
    }

    /// Marks the schema optional (builder style).
    pub fn optional(mut self) -> Schema {
        self.optional = true;
        self
    }

    /// Sets the schema's name (builder style).
    pub fn named(mut self, name: impl Into<String>) -> Schema {
        self.name = Some(name.into());
        self
    }

    /// Sets the schema's version (builder style).
    pub fn with_version(mut self, version: i32) -> Schema {
        self.version = Some(version);
        self
    }

    /// Adds a parameter (builder style).
    pub fn parameter(mut self, key: impl Into<String>, value: impl Into<String>) -> Schema {
        self.parameters.insert(key.into(), value.into());
        self
    }

    /// `org.apache.kafka.connect.data.Decimal` with the given scale: bytes holding the
    /// unscaled value as big-endian two's complement.
    pub fn decimal(scale: i32) -> Schema {
        Schema::new(SchemaType::Bytes)
            .named(logical::DECIMAL)
            .with_version(1)
            .parameter(logical::DECIMAL_SCALE, scale.to_string())
    }

    /// `org.apache.kafka.connect.data.Date`: days since the Unix epoch, as int32.
    pub fn date() -> Schema {
        Schema::new(SchemaType::Int32)
            .named(logical::DATE)
            .with_version(1)
    }

    /// `org.apache.kafka.connect.data.Time`: milliseconds since midnight, as int32.
    pub fn time() -> Schema {
        Schema::new(SchemaType::Int32)
            .named(logical::TIME)
            .with_version(1)
    }

    /// `org.apache.kafka.connect.data.Timestamp`: milliseconds since the Unix epoch, as int64.
    pub fn timestamp() -> Schema {
        Schema::new(SchemaType::Int64)
            .named(logical::TIMESTAMP)
            .with_version(1)
    }

    /// The field called `name`, with its index.
    pub fn field_named(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// Array items (for an array schema).
    pub fn items(&self) -> Option<&Arc<Schema>> {
        if self.schema_type == SchemaType::Array {
            self.keys.as_ref()
        } else {
            None
        }
    }

    /// The scale of a Decimal schema; `None` if this is not a Decimal.
    pub fn decimal_scale(&self) -> Option<i32> {
        if self.name.as_deref() != Some(logical::DECIMAL) {
            return None;
        }
        self.parameters
            .get(logical::DECIMAL_SCALE)
            .and_then(|s| s.parse().ok())
    }
}
