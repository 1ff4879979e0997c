//! Connect values.

use std::sync::Arc;

use super::{Schema, SchemaType};

/// A Connect value. Logical types keep their underlying representation (a Date is an
/// `Int32`, a Decimal is `Bytes`); [`Decimal`] and the schema helpers convert.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// Entries in insertion order; keys need not be strings.
    Map(Vec<(Value, Value)>),
    Struct(Struct),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer value widened to `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int8(v) => Some(v.into()),
            Value::Int16(v) => Some(v.into()),
            Value::Int32(v) => Some(v.into()),
            Value::Int64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// The value's type when it carries one of its own (`None` for null).
    pub fn schema_type(&self) -> Option<SchemaType> {
        Some(match self {
            Value::Null => return None,
            Value::Boolean(_) => SchemaType::Boolean,
            Value::Int8(_) => SchemaType::Int8,
            Value::Int16(_) => SchemaType::Int16,
            Value::Int32(_) => SchemaType::Int32,
            Value::Int64(_) => SchemaType::Int64,
            Value::Float32(_) => SchemaType::Float32,
            Value::Float64(_) => SchemaType::Float64,
            Value::String(_) => SchemaType::String,
            Value::Bytes(_) => SchemaType::Bytes,
            Value::Array(_) => SchemaType::Array,
            Value::Map(_) => SchemaType::Map,
            Value::Struct(_) => SchemaType::Struct,
        })
    }

    /// Looks a key up in a map with string keys.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int32(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Boolean(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float64(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// A struct value: one value per field of its schema, in field order.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    schema: Arc<Schema>,
    values: Vec<Value>,
}

/// Why a struct could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StructError {
    NotAStruct,
    WrongArity { expected: usize, got: usize },
    UnknownField(String),
}

impl std::fmt::Display for StructError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StructError::NotAStruct => f.write_str("schema is not a struct schema"),
            StructError::WrongArity { expected, got } => {
                write!(
                    f,
                    "struct has {expected} fields but {got} values were given"
                )
            }
            StructError::UnknownField(name) => write!(f, "{name} is not a valid field name"),
        }
    }
}

impl std::error::Error for StructError {}

impl Struct {
    /// A struct with every field null.
    ///
    /// # Errors
    /// When `schema` is not a struct schema.
    pub fn new(schema: Arc<Schema>) -> Result<Struct, StructError> {
        if schema.schema_type != SchemaType::Struct {
            return Err(StructError::NotAStruct);
        }
        let values = vec![Value::Null; schema.fields.len()];
        Ok(Struct { schema, values })
    }

    /// A struct from its values, in field order.
    ///
    /// # Errors
    /// When `schema` is not a struct schema or the number of values differs from its fields.
    pub fn from_values(schema: Arc<Schema>, values: Vec<Value>) -> Result<Struct, StructError> {
        if schema.schema_type != SchemaType::Struct {
            return Err(StructError::NotAStruct);
        }
        if values.len() != schema.fields.len() {
            return Err(StructError::WrongArity {
                expected: schema.fields.len(),
                got: values.len(),
            });
        }
        Ok(Struct { schema, values })
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The value of the field called `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let (index, _) = self.schema.field_named(name)?;
        self.values.get(index)
    }

    /// Sets the field called `name` (builder style).
    ///
    /// # Errors
    /// When the schema has no such field.
    pub fn put(mut self, name: &str, value: impl Into<Value>) -> Result<Struct, StructError> {
        let (index, _) = self
            .schema
            .field_named(name)
            .ok_or_else(|| StructError::UnknownField(name.to_owned()))?;
        self.values[index] = value.into();
        Ok(self)
    }

    /// `(field name, value)` pairs in field order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.schema
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .zip(self.values.iter())
    }
}

/// A Decimal (`org.apache.kafka.connect.data.Decimal`): an unscaled integer and a scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    pub unscaled: i128,
    pub scale: i32,
}

impl Decimal {
    /// Decodes Connect's big-endian two's complement bytes; `None` when longer than 16 bytes.
    pub fn from_bytes(bytes: &[u8], scale: i32) -> Option<Decimal> {
        if bytes.len() > 16 {
            return None;
        }
        let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
        let mut buf = if negative { [0xff; 16] } else { [0; 16] };
        buf[16 - bytes.len()..].copy_from_slice(bytes);
        Some(Decimal {
            unscaled: i128::from_be_bytes(buf),
            scale,
        })
    }

    /// The shortest big-endian two's complement encoding, as Java's `BigInteger` writes it.
    pub fn to_bytes(self) -> Vec<u8> {
        let bytes = self.unscaled.to_be_bytes();
        let mut start = 0;
        while start < 15 {
            let (b, next) = (bytes[start], bytes[start + 1]);
            let redundant = (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
            if !redundant {
                break;
            }
            start += 1;
        }
        bytes[start..].to_vec()
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scale <= 0 {
            let zeros = "0".repeat(self.scale.unsigned_abs() as usize);
            return write!(f, "{}{zeros}", self.unscaled);
        }
        let digits = self.unscaled.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let sign = if self.unscaled < 0 { "-" } else { "" };
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{int}.{frac}")
        } else {
            write!(f, "{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_bytes_round_trip_like_java_big_integer() {
        // BigInteger.valueOf(500).toByteArray() == [0x01, 0xF4]
        let d = Decimal {
            unscaled: 500,
            scale: 2,
        };
        assert_eq!(d.to_bytes(), vec![0x01, 0xf4]);
        assert_eq!(Decimal::from_bytes(&[0x01, 0xf4], 2), Some(d));
        // -1 is [0xFF], 128 is [0x00, 0x80]
        assert_eq!(
            Decimal {
                unscaled: -1,
                scale: 0
            }
            .to_bytes(),
            vec![0xff]
        );
        assert_eq!(
            Decimal {
                unscaled: 128,
                scale: 0
            }
            .to_bytes(),
            vec![0x00, 0x80]
        );
        assert_eq!(
            Decimal::from_bytes(&[0xff, 0x38], 0).map(|d| d.unscaled),
            Some(-200)
        );
        assert_eq!(d.to_string(), "5.00");
        assert_eq!(
            Decimal {
                unscaled: -5,
                scale: 3
            }
            .to_string(),
            "-0.005"
        );
    }

    #[test]
    fn struct_get_and_put_by_name() {
        let schema = Arc::new(
            Schema::structure()
                .field("id", Schema::new(SchemaType::Int64))
                .field("name", Schema::new(SchemaType::String).optional()),
        );
        let s = Struct::new(schema).and_then(|s| s.put("id", 7i64));
        let s = s.expect("valid struct");
        assert_eq!(s.get("id"), Some(&Value::Int64(7)));
        assert_eq!(s.get("name"), Some(&Value::Null));
        assert_eq!(
            s.clone().put("nope", 1i64),
            Err(StructError::UnknownField("nope".into()))
        );
    }
}
