//! The binary form in which values and schemas cross the WebAssembly boundary.
//!
//! Values are self-describing (a tag byte, then the payload; lengths and integers as LEB128
//! varints, signed ones zigzag encoded), except that a struct's field names come from its
//! schema: a struct is decoded against the schema it was sent with. Schemas travel once per
//! batch in the batch's schema table.
//!
//! Whole batches travel in the frame of [`super::batch`].

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Field, Schema, SchemaType, Struct, Value};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot decode Connect data: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

const NULL: u8 = 0;
/// The tag of a null value.
pub(crate) const NULL_TAG: u8 = NULL;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT8: u8 = 3;
const INT16: u8 = 4;
const INT32: u8 = 5;
const INT64: u8 = 6;
const FLOAT32: u8 = 7;
const FLOAT64: u8 = 8;
const STRING: u8 = 9;
const BYTES: u8 = 10;
const ARRAY: u8 = 11;
const MAP: u8 = 12;
const STRUCT: u8 = 13;

/// Deepest nesting accepted when decoding, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub(crate) fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

#[inline]
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends the encoding of `value` to `out`.
pub fn encode_value_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Boolean(false) => out.push(FALSE),
        Value::Boolean(true) => out.push(TRUE),
        Value::Int8(v) => {
            out.push(INT8);
            out.push(*v as u8);
        }
        Value::Int16(v) => {
            out.push(INT16);
            put_signed(out, (*v).into());
        }
        Value::Int32(v) => {
            out.push(INT32);
            put_signed(out, (*v).into());
        }
        Value::Int64(v) => {
            out.push(INT64);
            put_signed(out, *v);
        }
        Value::Float32(v) => {
            out.push(FLOAT32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Float64(v) => {
            out.push(FLOAT64);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::String(s) => encode_str_into(s, out),
        Value::Bytes(b) => {
            out.push(BYTES);
            put_bytes(out, b);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                encode_value_into(item, out);
            }
        }
        Value::Map(entries) => {
            out.push(MAP);
            put_varint(out, entries.len() as u64);
            for (k, v) in entries {
                encode_value_into(k, out);
                encode_value_into(v, out);
            }
        }
        Value::Struct(s) => {
            out.push(STRUCT);
            put_varint(out, s.values().len() as u64);
            for v in s.values() {
                encode_value_into(v, out);
            }
        }
    }
}

/// Appends the encoding of a string value, without making a [`Value`] of it.
pub fn encode_str_into(text: &str, out: &mut Vec<u8>) {
    out.push(STRING);
    put_bytes(out, text.as_bytes());
}

/// The encoding of `value`.
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    encode_value_into(value, &mut out);
    out
}

#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Whether [`Reader::skip`] checks that text is UTF-8: not for bytes already checked.
    check_text: bool,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            check_text: true,
        }
    }

    pub(crate) fn expect_end(&self) -> Result<(), DecodeError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }

    fn err(&self, what: &str) -> DecodeError {
        DecodeError(format!("{what} at byte {}", self.pos))
    }

    #[inline]
    pub(crate) fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| self.err("unexpected end"))?;
        self.pos += 1;
        Ok(b)
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.err("length past the end"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        // Most varints in a frame (tags, lengths, small counts) are one byte: that case is
        // small enough to inline everywhere.
        if let Some(&b) = self.bytes.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }

    #[inline]
    pub(crate) fn signed(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    #[inline]
    pub(crate) fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        // Every element takes at least one byte, so a count beyond the remaining bytes is bad.
        let n = usize::try_from(n).map_err(|_| self.err("length overflow"))?;
        if n > self.bytes.len() - self.pos {
            return Err(self.err("count past the end"));
        }
        Ok(n)
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        let n = self.len()?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| self.err("invalid UTF-8"))
    }

    pub(crate) fn value(
        &mut self,
        schema: Option<&Arc<Schema>>,
        depth: usize,
    ) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let tag = self.byte()?;
        Ok(match tag {
            NULL => Value::Null,
            FALSE => Value::Boolean(false),
            TRUE => Value::Boolean(true),
            INT8 => Value::Int8(self.byte()? as i8),
            INT16 => Value::Int16(
                i16::try_from(self.signed()?).map_err(|_| self.err("int16 out of range"))?,
            ),
            INT32 => Value::Int32(
                i32::try_from(self.signed()?).map_err(|_| self.err("int32 out of range"))?,
            ),
            INT64 => Value::Int64(self.signed()?),
            FLOAT32 => {
                let raw = self.take(4)?;
                Value::Float32(f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
            }
            FLOAT64 => {
                let raw = self.take(8)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(raw);
                Value::Float64(f64::from_le_bytes(b))
            }
            STRING => Value::String(self.string()?),
            BYTES => {
                let n = self.len()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            ARRAY => {
                let n = self.len()?;
                let items = schema.and_then(|s| s.items());
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(self.value(items, depth + 1)?);
                }
                Value::Array(out)
            }
            MAP => {
                let n = self.len()?;
                let (ks, vs) = match schema {
                    Some(s) if s.schema_type == SchemaType::Map => {
                        (s.keys.as_ref(), s.values.as_ref())
                    }
                    _ => (None, None),
                };
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.value(ks, depth + 1)?;
                    let v = self.value(vs, depth + 1)?;
                    out.push((k, v));
                }
                Value::Map(out)
            }
            STRUCT => {
                let schema = schema
                    .filter(|s| s.schema_type == SchemaType::Struct)
                    .ok_or_else(|| self.err("struct without a struct schema"))?;
                let n = self.len()?;
                if n != schema.fields.len() {
                    return Err(self.err("struct arity differs from its schema"));
                }
                let mut values = Vec::with_capacity(n);
                for field in &schema.fields {
                    values.push(self.value(Some(&field.schema), depth + 1)?);
                }
                Value::Struct(
                    Struct::from_values(schema.clone(), values)
                        .map_err(|e| DecodeError(e.to_string()))?,
                )
            }
            other => return Err(self.err(&format!("unknown value tag {other}"))),
        })
    }
}

impl<'a> Reader<'a> {
    /// A little-endian u32.
    #[inline]
    pub(crate) fn u32_le(&mut self) -> Result<u32, DecodeError> {
        let raw = self.take(4)?;
        Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }

    /// Steps over a value, checking everything [`Reader::value`] checks, without building it.
    pub(crate) fn skip(
        &mut self,
        schema: Option<&Arc<Schema>>,
        depth: usize,
    ) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.byte()? {
            NULL | FALSE | TRUE => {}
            INT8 => {
                self.byte()?;
            }
            INT16 => {
                i16::try_from(self.signed()?).map_err(|_| self.err("int16 out of range"))?;
            }
            INT32 => {
                i32::try_from(self.signed()?).map_err(|_| self.err("int32 out of range"))?;
            }
            INT64 => {
                self.signed()?;
            }
            FLOAT32 => {
                self.take(4)?;
            }
            FLOAT64 => {
                self.take(8)?;
            }
            STRING => {
                let n = self.len()?;
                let raw = self.take(n)?;
                if self.check_text {
                    std::str::from_utf8(raw).map_err(|_| self.err("invalid UTF-8"))?;
                }
            }
            BYTES => {
                let n = self.len()?;
                self.take(n)?;
            }
            ARRAY => {
                let n = self.len()?;
                let items = schema.and_then(|s| s.items());
                for _ in 0..n {
                    self.skip(items, depth + 1)?;
                }
            }
            MAP => {
                let n = self.len()?;
                let (ks, vs) = match schema {
                    Some(s) if s.schema_type == SchemaType::Map => {
                        (s.keys.as_ref(), s.values.as_ref())
                    }
                    _ => (None, None),
                };
                for _ in 0..n {
                    self.skip(ks, depth + 1)?;
                    self.skip(vs, depth + 1)?;
                }
            }
            STRUCT => {
                let schema = schema
                    .filter(|s| s.schema_type == SchemaType::Struct)
                    .ok_or_else(|| self.err("struct without a struct schema"))?;
                let n = self.len()?;
                if n != schema.fields.len() {
                    return Err(self.err("struct arity differs from its schema"));
                }
                for field in &schema.fields {
                    self.skip(Some(&field.schema), depth + 1)?;
                }
            }
            other => return Err(self.err(&format!("unknown value tag {other}"))),
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
}

/// The number of fields of an encoded struct value, and the encoded fields after its header
/// (each a value of this format, in the order of the struct's schema). Lets a plugin add
/// fields to a struct it read from a frame without decoding it.
///
/// # Errors
/// When the bytes are not an encoded struct.
pub fn struct_body(bytes: &[u8]) -> Result<(usize, &[u8]), DecodeError> {
    let mut r = Reader::new(bytes);
    if r.byte()? != STRUCT {
        return Err(r.err("not a struct"));
    }
    let n = r.len()?;
    Ok((n, &bytes[r.pos..]))
}

/// Each field of an encoded struct value, encoded, checked against `schema`'s fields.
///
/// # Errors
/// When the bytes are not a struct of `schema`.
pub fn struct_fields<'a>(
    bytes: &'a [u8],
    schema: &Arc<Schema>,
) -> Result<Vec<&'a [u8]>, DecodeError> {
    let mut fields = StructFieldValues::new(bytes, schema, true)?;
    let out = fields
        .by_ref()
        .map(|f| f.map(|(_, value)| value))
        .collect::<Result<_, _>>()?;
    fields.reader.expect_end()?;
    Ok(out)
}

/// The fields of an encoded struct of `schema`, each with its encoded value, in order, read
/// as needed. Unlike [`struct_fields`] it does not check text: it is for bytes already checked,
/// as a [`Data`](super::Data)'s encoded form always is (the worker checks what a plugin sends;
/// a plugin trusts what the worker sends). A plugin that copies some fields of a struct into
/// a new one uses it to skip the others without allocating.
///
/// # Errors
/// When the bytes are not a struct of `schema`'s arity; the iterator, when they end early.
pub fn struct_field_values<'a, 's>(
    bytes: &'a [u8],
    schema: &'s Schema,
) -> Result<StructFieldValues<'a, 's>, DecodeError> {
    StructFieldValues::new(bytes, schema, false)
}

/// See [`struct_field_values`].
#[derive(Debug)]
pub struct StructFieldValues<'a, 's> {
    reader: Reader<'a>,
    fields: std::slice::Iter<'s, Field>,
}

impl<'a, 's> StructFieldValues<'a, 's> {
    fn new(
        bytes: &'a [u8],
        schema: &'s Schema,
        check_text: bool,
    ) -> Result<StructFieldValues<'a, 's>, DecodeError> {
        let (n, body) = struct_body(bytes)?;
        if n != schema.fields.len() || schema.schema_type != SchemaType::Struct {
            return Err(DecodeError("struct arity differs from its schema".into()));
        }
        let mut reader = Reader::new(body);
        reader.check_text = check_text;
        Ok(StructFieldValues {
            reader,
            fields: schema.fields.iter(),
        })
    }
}

impl<'a, 's> Iterator for StructFieldValues<'a, 's> {
    type Item = Result<(&'s Field, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let field = self.fields.next()?;
        let start = self.reader.pos;
        Some(
            self.reader
                .skip(Some(&field.schema), 1)
                .map(|()| (field, &self.reader.bytes[start..self.reader.pos])),
        )
    }
}

/// The text of an encoded string value, borrowed from its bytes; `None` for any other
/// value. A plugin reading a struct's fields through [`struct_field_values`] passes text
/// on without decoding it into a `String`.
pub fn str_of(bytes: &[u8]) -> Option<&str> {
    let mut r = Reader::new(bytes);
    if r.byte().ok()? != STRING {
        return None;
    }
    let n = r.len().ok()?;
    let raw = r.take(n).ok()?;
    r.expect_end().ok()?;
    std::str::from_utf8(raw).ok()
}

/// Starts an encoded struct of `fields` fields; their encoded values follow, in the order
/// of its schema.
pub fn put_struct_header(out: &mut Vec<u8>, fields: usize) {
    out.push(STRUCT);
    put_varint(out, fields as u64);
}

/// Checks that `bytes` is one value of this format (of `schema`, when given).
///
/// # Errors
/// What [`decode_value`] would report.
pub fn check_value(bytes: &[u8], schema: Option<&Arc<Schema>>) -> Result<(), DecodeError> {
    let mut r = Reader::new(bytes);
    r.skip(schema, 0)?;
    r.expect_end()
}

/// Decodes a value; structs take their field names from `schema`.
///
/// # Errors
/// When the bytes are truncated or malformed, or a struct has no struct schema.
pub fn decode_value(bytes: &[u8], schema: Option<&Arc<Schema>>) -> Result<Value, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = r.value(schema, 0)?;
    if r.pos != bytes.len() {
        return Err(r.err("trailing bytes"));
    }
    Ok(v)
}

const HAS_NAME: u8 = 1;
const HAS_VERSION: u8 = 2;
const HAS_DOC: u8 = 4;
const HAS_DEFAULT: u8 = 8;
const OPTIONAL: u8 = 16;

/// Appends the encoding of `schema` to `out`.
pub fn encode_schema_into(schema: &Schema, out: &mut Vec<u8>) {
    out.push(schema.schema_type.code());
    let mut flags = 0;
    if schema.name.is_some() {
        flags |= HAS_NAME;
    }
    if schema.version.is_some() {
        flags |= HAS_VERSION;
    }
    if schema.doc.is_some() {
        flags |= HAS_DOC;
    }
    if schema.default.is_some() {
        flags |= HAS_DEFAULT;
    }
    if schema.optional {
        flags |= OPTIONAL;
    }
    out.push(flags);
    if let Some(name) = &schema.name {
        put_bytes(out, name.as_bytes());
    }
    if let Some(version) = schema.version {
        put_signed(out, version.into());
    }
    if let Some(doc) = &schema.doc {
        put_bytes(out, doc.as_bytes());
    }
    put_varint(out, schema.parameters.len() as u64);
    for (k, v) in &schema.parameters {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v.as_bytes());
    }
    match schema.schema_type {
        SchemaType::Struct => {
            put_varint(out, schema.fields.len() as u64);
            for f in &schema.fields {
                put_bytes(out, f.name.as_bytes());
                encode_schema_into(&f.schema, out);
            }
        }
        SchemaType::Array => encode_child(schema.keys.as_deref(), out),
        SchemaType::Map => {
            encode_child(schema.keys.as_deref(), out);
            encode_child(schema.values.as_deref(), out);
        }
        _ => {}
    }
    // The default goes last: decoding it may need the children (a struct default).
    if let Some(default) = &schema.default {
        encode_value_into(default, out);
    }
}

fn encode_child(child: Option<&Schema>, out: &mut Vec<u8>) {
    match child {
        Some(s) => {
            out.push(1);
            encode_schema_into(s, out);
        }
        None => out.push(0),
    }
}

/// The encoding of `schema`.
pub fn encode_schema(schema: &Schema) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_schema_into(schema, &mut out);
    out
}

impl Reader<'_> {
    fn schema(&mut self, depth: usize) -> Result<Schema, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("schema nesting too deep"));
        }
        let code = self.byte()?;
        let schema_type =
            SchemaType::from_code(code).ok_or_else(|| self.err("unknown schema type"))?;
        let flags = self.byte()?;
        let mut schema = Schema::new(schema_type);
        schema.optional = flags & OPTIONAL != 0;
        if flags & HAS_NAME != 0 {
            schema.name = Some(self.string()?);
        }
        if flags & HAS_VERSION != 0 {
            schema.version =
                Some(i32::try_from(self.signed()?).map_err(|_| self.err("version out of range"))?);
        }
        if flags & HAS_DOC != 0 {
            schema.doc = Some(self.string()?);
        }
        let params = self.len()?;
        let mut parameters = BTreeMap::new();
        for _ in 0..params {
            let k = self.string()?;
            let v = self.string()?;
            parameters.insert(k, v);
        }
        schema.parameters = parameters;
        match schema_type {
            SchemaType::Struct => {
                let n = self.len()?;
                for _ in 0..n {
                    let name = self.string()?;
                    let field = self.schema(depth + 1)?;
                    schema.fields.push(Field {
                        name,
                        schema: Arc::new(field),
                    });
                }
            }
            SchemaType::Array => schema.keys = self.child(depth)?,
            SchemaType::Map => {
                schema.keys = self.child(depth)?;
                schema.values = self.child(depth)?;
            }
            _ => {}
        }
        if flags & HAS_DEFAULT != 0 {
            let as_arc = Arc::new(schema.clone());
            schema.default = Some(self.value(Some(&as_arc), depth + 1)?);
        }
        Ok(schema)
    }

    fn child(&mut self, depth: usize) -> Result<Option<Arc<Schema>>, DecodeError> {
        match self.byte()? {
            0 => Ok(None),
            _ => Ok(Some(Arc::new(self.schema(depth + 1)?))),
        }
    }
}

/// Decodes a schema.
///
/// # Errors
/// When the bytes are truncated or malformed.
pub fn decode_schema(bytes: &[u8]) -> Result<Schema, DecodeError> {
    let mut r = Reader::new(bytes);
    let s = r.schema(0)?;
    if r.pos != bytes.len() {
        return Err(r.err("trailing bytes"));
    }
    Ok(s)
}

/// Builds a batch's schema table on the sending side: each distinct schema is encoded once.
///
/// Records of one batch usually share one `Arc<Schema>`, so the lookup compares pointers
/// first and falls back to equality.
#[derive(Debug, Default)]
pub struct SchemaTable {
    schemas: Vec<Arc<Schema>>,
    encoded: Vec<Vec<u8>>,
}

impl SchemaTable {
    pub fn new() -> SchemaTable {
        SchemaTable::default()
    }

    /// The table index of `schema`, adding it if it is new.
    pub fn index(&mut self, schema: &Arc<Schema>) -> u32 {
        let found = self
            .schemas
            .iter()
            .position(|s| Arc::ptr_eq(s, schema))
            .or_else(|| self.schemas.iter().position(|s| **s == **schema));
        let index = found.unwrap_or_else(|| {
            self.schemas.push(schema.clone());
            self.encoded.push(encode_schema(schema));
            self.schemas.len() - 1
        });
        index as u32
    }

    /// The encoded schemas, in index order.
    pub fn into_encoded(self) -> Vec<Vec<u8>> {
        self.encoded
    }

    /// The schemas, in index order.
    pub fn schemas(&self) -> &[Arc<Schema>] {
        &self.schemas
    }

    /// The encoded schemas, in index order.
    pub fn encoded(&self) -> &[Vec<u8>] {
        &self.encoded
    }
}

/// Decodes a batch's schema table on the receiving side, reusing schemas already decoded
/// from identical bytes (a stream sends the same table batch after batch).
#[derive(Debug, Default)]
pub struct SchemaCache {
    known: Vec<(Vec<u8>, Arc<Schema>)>,
}

/// How many distinct schemas a [`SchemaCache`] keeps.
const SCHEMA_CACHE_SIZE: usize = 64;

impl SchemaCache {
    pub fn new() -> SchemaCache {
        SchemaCache::default()
    }

    /// Decodes each schema of a batch's table.
    ///
    /// # Errors
    /// When a schema cannot be decoded.
    pub fn decode_slices(&mut self, table: &[&[u8]]) -> Result<Vec<Arc<Schema>>, DecodeError> {
        table.iter().map(|bytes| self.decode(bytes)).collect()
    }

    fn decode(&mut self, bytes: &[u8]) -> Result<Arc<Schema>, DecodeError> {
        if let Some((_, schema)) = self.known.iter().find(|(b, _)| b == bytes) {
            return Ok(schema.clone());
        }
        let schema = Arc::new(decode_schema(bytes)?);
        if self.known.len() == SCHEMA_CACHE_SIZE {
            self.known.remove(0);
        }
        self.known.push((bytes.to_vec(), schema.clone()));
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_schema() -> Arc<Schema> {
        Arc::new(
            Schema::structure()
                .named("com.example.User")
                .field("id", Schema::new(SchemaType::Int64))
                .field("name", Schema::new(SchemaType::String).optional())
                .field("price", Schema::decimal(2))
                .field("tags", Schema::array(Schema::new(SchemaType::String)))
                .field(
                    "attrs",
                    Schema::map(
                        Schema::new(SchemaType::String),
                        Schema::new(SchemaType::Int32),
                    ),
                )
                .field(
                    "inner",
                    Schema::structure()
                        .field("ok", Schema::new(SchemaType::Boolean))
                        .optional(),
                ),
        )
    }

    fn sample_value(schema: &Arc<Schema>) -> Value {
        let inner_schema = schema.fields[5].schema.clone();
        let inner = Struct::from_values(inner_schema, vec![Value::Boolean(true)]).expect("inner");
        Value::Struct(
            Struct::from_values(
                schema.clone(),
                vec![
                    Value::Int64(-42),
                    Value::String("héllo".into()),
                    Value::Bytes(vec![1, 0xf4]),
                    Value::Array(vec!["a".into(), "b".into()]),
                    Value::Map(vec![("k".into(), Value::Int32(i32::MIN))]),
                    Value::Struct(inner),
                ],
            )
            .expect("struct"),
        )
    }

    #[test]
    fn values_and_schemas_round_trip() {
        let schema = sample_schema();
        let value = sample_value(&schema);
        let decoded_schema = Arc::new(decode_schema(&encode_schema(&schema)).expect("schema"));
        assert_eq!(decoded_schema, schema);
        let decoded = decode_value(&encode_value(&value), Some(&decoded_schema)).expect("value");
        assert_eq!(decoded, value);
        for v in [
            Value::Null,
            Value::Float32(1.5),
            Value::Float64(-0.25),
            Value::Int8(-128),
            Value::Int16(i16::MAX),
            Value::Int64(i64::MIN),
        ] {
            assert_eq!(decode_value(&encode_value(&v), None), Ok(v));
        }
    }

    #[test]
    fn schema_defaults_round_trip() {
        let mut schema = Schema::new(SchemaType::Int32).optional();
        schema.default = Some(Value::Int32(7));
        assert_eq!(decode_schema(&encode_schema(&schema)), Ok(schema));
    }

    #[test]
    fn text_is_read_in_place_and_nothing_else_is_text() {
        assert_eq!(
            str_of(&encode_value(&Value::String("grüße".into()))),
            Some("grüße")
        );
        assert_eq!(
            str_of(&encode_value(&Value::String(String::new()))),
            Some("")
        );
        for other in [Value::Null, Value::Int64(9), Value::Bytes(b"abc".to_vec())] {
            assert_eq!(str_of(&encode_value(&other)), None, "{other:?}");
        }
        let mut trailing = encode_value(&Value::String("a".into()));
        trailing.push(0);
        assert_eq!(str_of(&trailing), None, "one value, nothing after it");
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let schema = sample_schema();
        let bytes = encode_value(&sample_value(&schema));
        for cut in 0..bytes.len() {
            assert!(
                decode_value(&bytes[..cut], Some(&schema)).is_err(),
                "cut {cut}"
            );
        }
        assert!(decode_value(&bytes, None).is_err(), "struct needs a schema");
        assert!(decode_value(&[ARRAY, 0xff, 0xff, 0xff, 0xff, 0x0f], None).is_err());
        assert!(decode_value(&[99], None).is_err());
        let deep: Vec<u8> = std::iter::repeat_n([ARRAY, 1], 100).flatten().collect();
        assert!(decode_value(&deep, None).is_err());
    }

    #[test]
    fn schema_table_sends_a_shared_schema_once() {
        let schema = sample_schema();
        let copy = Arc::new((*schema).clone());
        let mut table = SchemaTable::new();
        assert_eq!(table.index(&schema), 0);
        assert_eq!(table.index(&schema), 0);
        assert_eq!(table.index(&copy), 0);
        assert_eq!(table.index(&Arc::new(Schema::new(SchemaType::String))), 1);
        let encoded = table.into_encoded();
        let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let mut cache = SchemaCache::new();
        let first = cache.decode_slices(&slices).expect("table");
        let second = cache.decode_slices(&slices).expect("table");
        assert!(Arc::ptr_eq(&first[0], &second[0]));
        assert_eq!(first[0], schema);
    }

    #[test]
    fn encoded_structs_split_and_rebuild_without_decoding() {
        let schema = sample_schema();
        let bytes = encode_value(&sample_value(&schema));
        let fields = struct_fields(&bytes, &schema).expect("split");
        assert_eq!(fields.len(), 6);
        assert_eq!(decode_value(fields[0], None), Ok(Value::Int64(-42)));
        let (n, body) = struct_body(&bytes).expect("body");
        assert_eq!((n, body.len() + 2), (6, bytes.len()));
        // The same struct, rebuilt from its fields' bytes.
        let mut rebuilt = Vec::new();
        put_struct_header(&mut rebuilt, fields.len());
        fields.iter().for_each(|f| rebuilt.extend_from_slice(f));
        assert_eq!(rebuilt, bytes);
        let data = super::super::Data::from_encoded(Some(schema.clone()), rebuilt).expect("valid");
        assert_eq!(data.value(), &sample_value(&schema));
        // A field short, or not a struct: refused, not a panic.
        let mut short = Vec::new();
        put_struct_header(&mut short, 5);
        fields[..5].iter().for_each(|f| short.extend_from_slice(f));
        assert!(super::super::Data::from_encoded(Some(schema.clone()), short).is_err());
        assert!(struct_fields(&encode_value(&Value::Int32(1)), &schema).is_err());

        // The iterator gives the same slices, each with its field.
        let each: Vec<(&str, &[u8])> = struct_field_values(&bytes, &schema)
            .expect("a struct of the schema")
            .map(|f| f.map(|(field, value)| (field.name.as_str(), value)))
            .collect::<Result<_, _>>()
            .expect("fields");
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(each.iter().map(|(n, _)| *n).collect::<Vec<_>>(), names);
        assert_eq!(each.iter().map(|(_, v)| *v).collect::<Vec<_>>(), fields);
        assert!(struct_field_values(&encode_value(&Value::Int32(1)), &schema).is_err());
        let cut = &bytes[..bytes.len() - 1];
        assert!(
            struct_field_values(cut, &schema)
                .expect("the header is whole")
                .any(|f| f.is_err()),
            "bytes that end early are an error, not a panic"
        );
    }
}
