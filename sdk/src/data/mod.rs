//! The data model shared by plugins and the worker: Connect schemas and values, and the
//! records that carry them.

pub mod batch;
pub mod codec;
pub mod json;
mod schema;
mod value;

use std::sync::Arc;

pub use schema::{Field, Schema, SchemaType, logical};
pub use value::{Decimal, Struct, StructError, Value};

/// A value with its optional schema (Kafka Connect's `SchemaAndValue`).
///
/// Data read from a batch frame stays encoded until something looks at its value: a
/// transform that never touches a record's key passes the key's bytes on as they came, and
/// nothing is decoded for it. [`Data::value`] decodes on first use; [`Data::value_mut`] and
/// [`Data::set_value`] replace the encoded form.
#[derive(Clone)]
pub struct Data {
    pub schema: Option<Arc<Schema>>,
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Value(Value),
    Encoded(Encoded),
}

/// A value's bytes inside a shared batch frame, validated when the frame was read.
#[derive(Clone)]
struct Encoded {
    frame: Arc<Vec<u8>>,
    start: u32,
    end: u32,
    /// Which value of its frame this is (key, value and header values, counted in order),
    /// or [`NO_ORIGIN`]: a transform hands an unchanged value back by this ordinal.
    origin: u32,
    /// Boxed so that an encoded `Data` stays small; the box is made only when read.
    decoded: std::sync::OnceLock<Box<Value>>,
}

/// The origin of encoded bytes that are not a value of a received frame.
const NO_ORIGIN: u32 = u32::MAX;

impl Encoded {
    fn bytes(&self) -> &[u8] {
        &self.frame[self.start as usize..self.end as usize]
    }
}

impl Data {
    /// Null without a schema: a null key, or a tombstone value.
    pub const NULL: Data = Data {
        schema: None,
        repr: Repr::Value(Value::Null),
    };

    pub fn new(schema: Arc<Schema>, value: impl Into<Value>) -> Data {
        Data {
            schema: Some(schema),
            repr: Repr::Value(value.into()),
        }
    }

    /// A value without a schema.
    pub fn schemaless(value: impl Into<Value>) -> Data {
        Data {
            schema: None,
            repr: Repr::Value(value.into()),
        }
    }

    /// A value with an optional schema.
    pub fn from_parts(schema: Option<Arc<Schema>>, value: Value) -> Data {
        Data {
            schema,
            repr: Repr::Value(value),
        }
    }

    /// Data whose value is `frame[start..end]`, already validated against `schema`; the
    /// `origin`-th value of its frame.
    pub(crate) fn from_frame(
        schema: Option<Arc<Schema>>,
        frame: &Arc<Vec<u8>>,
        (start, end): (u32, u32),
        origin: u32,
    ) -> Data {
        Data {
            schema,
            repr: Repr::Encoded(Encoded {
                frame: frame.clone(),
                start,
                end,
                origin,
                decoded: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The value, decoded on first use.
    pub fn value(&self) -> &Value {
        match &self.repr {
            Repr::Value(v) => v,
            Repr::Encoded(e) => e.decoded.get_or_init(|| {
                Box::new(
                    codec::decode_value(e.bytes(), self.schema.as_ref())
                        .expect("a value is validated against its schema when its frame is read"),
                )
            }),
        }
    }

    /// The value, for changing it in place.
    pub fn value_mut(&mut self) -> &mut Value {
        if let Repr::Encoded(_) = &self.repr {
            let value = self.value().clone();
            self.repr = Repr::Value(value);
        }
        match &mut self.repr {
            Repr::Value(v) => v,
            Repr::Encoded(_) => unreachable!("replaced above"),
        }
    }

    /// Replaces the value.
    pub fn set_value(&mut self, value: impl Into<Value>) {
        self.repr = Repr::Value(value.into());
    }

    /// The value, owned.
    pub fn into_value(self) -> Value {
        match self.repr {
            Repr::Value(v) => v,
            Repr::Encoded(mut e) => match e.decoded.take() {
                Some(v) => *v,
                None => codec::decode_value(e.bytes(), self.schema.as_ref())
                    .expect("a value is validated against its schema when its frame is read"),
            },
        }
    }

    /// Data given in its encoded form (the batch frame's value format, see
    /// [`codec`]): it is checked against `schema` now and decoded only if read. A plugin
    /// that edits encoded values (adds a struct field with [`codec::struct_body`], drops
    /// one with [`codec::struct_fields`]) builds its result with this.
    ///
    /// # Errors
    /// When `bytes` is not one value of `schema`, or is 4 GiB or more.
    pub fn from_encoded(
        schema: Option<Arc<Schema>>,
        bytes: Vec<u8>,
    ) -> Result<Data, codec::DecodeError> {
        if u32::try_from(bytes.len()).is_err() {
            return Err(codec::DecodeError("a value of 4 GiB or more".into()));
        }
        codec::check_value(&bytes, schema.as_ref())?;
        Ok(Data::from_encoded_unchecked(schema, bytes))
    }

    /// [`Data::from_encoded`] without the check, for bytes valid by construction (pieces of
    /// values read from a frame, and values the encoder wrote). Invalid bytes make reading
    /// the value panic (in a plugin: its task fails); the worker checks every value it
    /// receives, so they cannot get further.
    ///
    /// # Panics
    /// When `bytes` is 4 GiB or more (inside a plugin it cannot be).
    pub fn from_encoded_unchecked(schema: Option<Arc<Schema>>, bytes: Vec<u8>) -> Data {
        // Frames and values are smaller than a guest's memory, which is at most 4 GiB.
        let end = u32::try_from(bytes.len()).expect("a value smaller than 4 GiB");
        Data {
            schema,
            repr: Repr::Encoded(Encoded {
                frame: Arc::new(bytes),
                start: 0,
                end,
                origin: NO_ORIGIN,
                decoded: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The encoded bytes, while the value is unchanged since its frame was read (or since
    /// [`Data::from_encoded`]).
    pub fn encoded(&self) -> Option<&[u8]> {
        match &self.repr {
            Repr::Encoded(e) => Some(e.bytes()),
            Repr::Value(_) => None,
        }
    }

    /// The ordinal of this value in `frame`, while it is that frame's value unchanged.
    pub(crate) fn origin_in(&self, frame: &Arc<Vec<u8>>) -> Option<u32> {
        match &self.repr {
            Repr::Encoded(e) if e.origin != NO_ORIGIN && Arc::ptr_eq(&e.frame, frame) => {
                Some(e.origin)
            }
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        match &self.repr {
            Repr::Value(v) => v.is_null(),
            Repr::Encoded(e) => e.bytes().first() == Some(&codec::NULL_TAG),
        }
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        self.schema == other.schema && self.value() == other.value()
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Data")
            .field("schema", &self.schema)
            .field("value", self.value())
            .finish()
    }
}

impl Default for Data {
    fn default() -> Data {
        Data::NULL
    }
}

/// A record header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub value: Data,
}

/// A record as sinks and transforms see it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    /// Shared: the records of a batch read from a frame share one allocation per topic.
    pub topic: Arc<str>,
    /// The Kafka partition; always set on the sink side.
    pub partition: Option<i32>,
    /// The Kafka offset; set on the sink side only.
    pub offset: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    pub key: Data,
    pub value: Data,
    pub headers: Vec<Header>,
}

impl Record {
    /// A record for `topic` with the given value, no key and no headers.
    pub fn new(topic: impl Into<Arc<str>>, value: Data) -> Record {
        Record {
            topic: topic.into(),
            value,
            ..Record::default()
        }
    }

    /// Sets the key (builder style).
    pub fn with_key(mut self, key: Data) -> Record {
        self.key = key;
        self
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, key: impl Into<String>, value: Data) -> Record {
        self.headers.push(Header {
            key: key.into(),
            value,
        });
        self
    }

    /// A tombstone has a null value.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_null()
    }
}

/// A primitive in a source partition or offset map.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

impl From<i64> for Scalar {
    fn from(v: i64) -> Scalar {
        Scalar::Integer(v)
    }
}

impl From<&str> for Scalar {
    fn from(v: &str) -> Scalar {
        Scalar::Text(v.to_owned())
    }
}

impl From<String> for Scalar {
    fn from(v: String) -> Scalar {
        Scalar::Text(v)
    }
}

impl From<bool> for Scalar {
    fn from(v: bool) -> Scalar {
        Scalar::Boolean(v)
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Scalar {
        Scalar::Float(v)
    }
}

/// A source partition or offset: string keys, primitive values, in key order.
pub type OffsetMap = Vec<(String, Scalar)>;

/// Builds an [`OffsetMap`] from pairs.
pub fn offset_map<K: Into<String>, V: Into<Scalar>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> OffsetMap {
    let mut map: OffsetMap = pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    map.sort_by(|a, b| a.0.cmp(&b.0));
    map
}

/// Looks a key up in an [`OffsetMap`].
pub fn offset_get<'a>(map: &'a OffsetMap, key: &str) -> Option<&'a Scalar> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// A source partition and how far the source has read in it.
///
/// The partition is shared: a source's records mostly come from few partitions, so each
/// record holds its partition's map by reference (`Arc::clone`), and the batch frame and
/// the worker work out a repeated partition once.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePosition {
    pub partition: Arc<OffsetMap>,
    pub offset: OffsetMap,
}

/// A record produced by a source, with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub position: SourcePosition,
    pub record: Record,
}

/// What a transform did with one record.
#[derive(Debug, Clone, PartialEq)]
// `Keep` is the common case: boxing it would cost an allocation per record.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Pass this (possibly changed) record on.
    Keep(Record),
    /// Filter the record out.
    Drop,
    /// The record cannot be transformed; the error policy decides what follows.
    Failed(String),
}

/// A record a sink could not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// Index into the batch passed to `put`.
    pub index: u32,
    pub message: String,
}

/// An error a plugin reports to the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// Bad configuration: never retried.
    Config(String),
    /// Transient: the worker retries with backoff.
    Retriable(String),
    /// The task fails with this message in its trace.
    Fatal(String),
}

impl PluginError {
    pub fn config(message: impl Into<String>) -> PluginError {
        PluginError::Config(message.into())
    }

    pub fn retriable(message: impl Into<String>) -> PluginError {
        PluginError::Retriable(message.into())
    }

    pub fn fatal(message: impl Into<String>) -> PluginError {
        PluginError::Fatal(message.into())
    }

    pub fn message(&self) -> &str {
        match self {
            PluginError::Config(m) | PluginError::Retriable(m) | PluginError::Fatal(m) => m,
        }
    }

    pub fn is_retriable(&self) -> bool {
        matches!(self, PluginError::Retriable(_))
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginError::Config(m) => write!(f, "invalid configuration: {m}"),
            PluginError::Retriable(m) => write!(f, "retriable error: {m}"),
            PluginError::Fatal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for PluginError {}
