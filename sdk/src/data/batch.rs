//! The batch frame: how a whole batch of records crosses the WebAssembly boundary as one
//! `list<u8>`, both ways. The boundary benchmark chose it over a typed WIT record per
//! record: lowering a `list<record>` costs a guest allocation for every string and byte list
//! of every record, the frame costs one per batch (figures in the README).
//!
//! ```text
//! batch    := varint(n) item* schemas u32-le(offset of schemas)   (item: record, source
//!             record or outcome; the table goes last so items are written once, in place)
//! schemas  := varint(n) bytes(schema)*         (schemas in the `codec` schema form)
//! record   := bytes(topic) opt32(partition) opt64(offset) opt64(timestamp)
//!             data(key) data(value) varint(n) (bytes(header key) data(header value))*
//! data     := varint(schema index + 1, 0 for none) u32-le(len) value   (value: the `codec` form)
//! source   := offsets(partition) offsets(offset) record
//! offsets  := varint(n) (bytes(key) scalar)*
//! scalar   := 0 | 1 | 2 | 3 signed | 4 f64-le | 5 bytes     (null, false, true, int, float, text)
//! outcome  := 0 record | 1 | 2 bytes(message)              (keep, drop, failed)
//! opt32/64 := 0 | 1 signed
//! bytes    := varint(len) byte*
//! ```

use std::sync::Arc;

use super::codec::{
    DecodeError, Reader, SchemaCache, SchemaTable, encode_value_into, put_bytes, put_signed,
    put_varint,
};
use super::{
    Data, Header, OffsetMap, Outcome, Record, Scalar, Schema, SourcePosition, SourceRecord,
};

struct Writer {
    table: SchemaTable,
    body: Vec<u8>,
}

impl Writer {
    fn new(count: usize, bytes_per_item: usize) -> Writer {
        let mut body = Vec::with_capacity(count * bytes_per_item + 16);
        put_varint(&mut body, count as u64);
        Writer {
            table: SchemaTable::new(),
            body,
        }
    }

    fn data(&mut self, d: &Data) {
        let index = d
            .schema
            .as_ref()
            .map_or(0, |s| u64::from(self.table.index(s)) + 1);
        put_varint(&mut self.body, index);
        // A fixed-width length, patched after the value is written, lets a reader that
        // trusts the writer step over a value without walking it.
        let at = self.body.len();
        self.body.extend_from_slice(&[0; 4]);
        match d.encoded() {
            // Unchanged since it was read: its bytes go on as they came.
            Some(raw) => self.body.extend_from_slice(raw),
            None => encode_value_into(d.value(), &mut self.body),
        }
        let len = u32::try_from(self.body.len() - at - 4).unwrap_or(u32::MAX);
        self.body[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    fn opt(&mut self, v: Option<i64>) {
        match v {
            None => self.body.push(0),
            Some(v) => {
                self.body.push(1);
                put_signed(&mut self.body, v);
            }
        }
    }

    fn record(&mut self, r: &Record) {
        put_bytes(&mut self.body, r.topic.as_bytes());
        self.opt(r.partition.map(i64::from));
        self.opt(r.offset);
        self.opt(r.timestamp);
        self.data(&r.key);
        self.data(&r.value);
        put_varint(&mut self.body, r.headers.len() as u64);
        for h in &r.headers {
            put_bytes(&mut self.body, h.key.as_bytes());
            self.data(&h.value);
        }
    }

    fn offsets(&mut self, map: &OffsetMap) {
        put_varint(&mut self.body, map.len() as u64);
        for (k, v) in map {
            put_bytes(&mut self.body, k.as_bytes());
            match v {
                Scalar::Null => self.body.push(0),
                Scalar::Boolean(false) => self.body.push(1),
                Scalar::Boolean(true) => self.body.push(2),
                Scalar::Integer(i) => {
                    self.body.push(3);
                    put_signed(&mut self.body, *i);
                }
                Scalar::Float(f) => {
                    self.body.push(4);
                    self.body.extend_from_slice(&f.to_le_bytes());
                }
                Scalar::Text(t) => {
                    self.body.push(5);
                    put_bytes(&mut self.body, t.as_bytes());
                }
            }
        }
    }

    /// The frame: the count and the items written so far, then the schema table, then the
    /// table's offset. The table goes last so the items are written once, in place.
    fn finish(self) -> Vec<u8> {
        let mut out = self.body;
        let table_at = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let schemas = self.table.into_encoded();
        put_varint(&mut out, schemas.len() as u64);
        for s in &schemas {
            put_bytes(&mut out, s);
        }
        out.extend_from_slice(&table_at.to_le_bytes());
        out
    }
}

/// Encodes records (a sink's or a transform's input).
pub fn encode_records(records: &[Record]) -> Vec<u8> {
    let mut w = Writer::new(records.len(), 128);
    for r in records {
        w.record(r);
    }
    w.finish()
}

/// Encodes a source's records with their positions.
pub fn encode_source_records(records: &[SourceRecord]) -> Vec<u8> {
    let mut w = Writer::new(records.len(), 160);
    for r in records {
        w.offsets(&r.position.partition);
        w.offsets(&r.position.offset);
        w.record(&r.record);
    }
    w.finish()
}

/// Encodes a transform's outcomes.
pub fn encode_outcomes(outcomes: &[Outcome]) -> Vec<u8> {
    let mut w = Writer::new(outcomes.len(), 128);
    for o in outcomes {
        match o {
            Outcome::Keep(r) => {
                w.body.push(0);
                w.record(r);
            }
            Outcome::Drop => w.body.push(1),
            Outcome::Failed(m) => {
                w.body.push(2);
                put_bytes(&mut w.body, m.as_bytes());
            }
        }
    }
    w.finish()
}

struct FrameReader<'a> {
    r: Reader<'a>,
    /// The last topic read: consecutive records of a batch usually share it.
    topic: Option<Arc<str>>,
    frame: &'a Arc<Vec<u8>>,
    schemas: Vec<Arc<Schema>>,
    trust: Trust,
}

/// Whether values are checked when a frame is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// From a plugin: every value is validated against its schema before it is used.
    Validate,
    /// From the worker, read inside a plugin: values are only delimited. A malformed value
    /// is a worker bug, and reading it traps the plugin.
    Worker,
}

impl<'a> FrameReader<'a> {
    fn open(
        frame: &'a Arc<Vec<u8>>,
        cache: &mut SchemaCache,
        trust: Trust,
    ) -> Result<(FrameReader<'a>, usize), DecodeError> {
        let bytes = frame.as_slice();
        let footer = bytes
            .len()
            .checked_sub(4)
            .ok_or_else(|| DecodeError("frame shorter than its footer".into()))?;
        let table_at = u32::from_le_bytes([
            bytes[footer],
            bytes[footer + 1],
            bytes[footer + 2],
            bytes[footer + 3],
        ]) as usize;
        if table_at > footer {
            return Err(DecodeError("schema table offset past the end".into()));
        }
        let mut t = Reader::new(&bytes[table_at..footer]);
        let n = t.len()?;
        let mut table = Vec::with_capacity(n);
        for _ in 0..n {
            let len = t.len()?;
            table.push(t.take(len)?);
        }
        t.expect_end()?;
        let schemas = cache.decode_slices(&table)?;
        let mut r = Reader::new(&bytes[..table_at]);
        let count = r.len()?;
        Ok((
            FrameReader {
                r,
                topic: None,
                frame,
                schemas,
                trust,
            },
            count,
        ))
    }

    fn data(&mut self) -> Result<Data, DecodeError> {
        let index = self.r.varint()?;
        let schema = match index {
            0 => None,
            i => Some(
                self.schemas
                    .get((i - 1) as usize)
                    .cloned()
                    .ok_or_else(|| DecodeError(format!("schema index {} out of range", i - 1)))?,
            ),
        };
        let raw = self.r.take_u32_len()?;
        if self.trust == Trust::Validate {
            let mut value = Reader::new(raw);
            value.skip(schema.as_ref(), 0)?;
            value.expect_end()?;
        }
        let end = self.r.position();
        Ok(Data::from_frame(schema, self.frame, end - raw.len(), end))
    }

    fn opt(&mut self) -> Result<Option<i64>, DecodeError> {
        match self.r.byte()? {
            0 => Ok(None),
            _ => Ok(Some(self.r.signed()?)),
        }
    }

    fn topic(&mut self) -> Result<Arc<str>, DecodeError> {
        let len = self.r.len()?;
        let raw = self.r.take(len)?;
        if let Some(last) = &self.topic
            && last.as_bytes() == raw
        {
            return Ok(last.clone());
        }
        let text =
            std::str::from_utf8(raw).map_err(|_| DecodeError("topic is not UTF-8".into()))?;
        let topic: Arc<str> = Arc::from(text);
        self.topic = Some(topic.clone());
        Ok(topic)
    }

    fn record(&mut self) -> Result<Record, DecodeError> {
        let topic = self.topic()?;
        let partition = match self.opt()? {
            None => None,
            Some(p) => {
                Some(i32::try_from(p).map_err(|_| DecodeError("partition out of range".into()))?)
            }
        };
        let offset = self.opt()?;
        let timestamp = self.opt()?;
        let key = self.data()?;
        let value = self.data()?;
        let n = self.r.len()?;
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.r.string()?;
            headers.push(Header {
                key,
                value: self.data()?,
            });
        }
        Ok(Record {
            topic,
            partition,
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }

    fn offsets(&mut self) -> Result<OffsetMap, DecodeError> {
        let n = self.r.len()?;
        let mut map = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.r.string()?;
            let v = match self.r.byte()? {
                0 => Scalar::Null,
                1 => Scalar::Boolean(false),
                2 => Scalar::Boolean(true),
                3 => Scalar::Integer(self.r.signed()?),
                4 => {
                    let raw = self.r.take(8)?;
                    let mut b = [0u8; 8];
                    b.copy_from_slice(raw);
                    Scalar::Float(f64::from_le_bytes(b))
                }
                5 => Scalar::Text(self.r.string()?),
                t => return Err(DecodeError(format!("unknown scalar tag {t}"))),
            };
            map.push((key, v));
        }
        Ok(map)
    }

    fn end(&self) -> Result<(), DecodeError> {
        self.r.expect_end()
    }
}

/// Decodes records.
///
/// # Errors
/// When the frame is truncated or malformed.
pub fn decode_records(frame: Vec<u8>, cache: &mut SchemaCache) -> Result<Vec<Record>, DecodeError> {
    decode_records_with(frame, cache, Trust::Validate)
}

/// Decodes records, trusting or validating the values as `trust` says.
///
/// # Errors
/// When the frame is truncated or malformed (with [`Trust::Worker`], only its framing is
/// checked).
pub fn decode_records_with(
    frame: Vec<u8>,
    cache: &mut SchemaCache,
    trust: Trust,
) -> Result<Vec<Record>, DecodeError> {
    let frame = Arc::new(frame);
    let (mut f, n) = FrameReader::open(&frame, cache, trust)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(f.record()?);
    }
    f.end()?;
    Ok(out)
}

/// Decodes a source's records.
///
/// # Errors
/// When the frame is truncated or malformed.
pub fn decode_source_records(
    frame: Vec<u8>,
    cache: &mut SchemaCache,
) -> Result<Vec<SourceRecord>, DecodeError> {
    let frame = Arc::new(frame);
    let (mut f, n) = FrameReader::open(&frame, cache, Trust::Validate)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let partition = f.offsets()?;
        let offset = f.offsets()?;
        let record = f.record()?;
        out.push(SourceRecord {
            position: SourcePosition { partition, offset },
            record,
        });
    }
    f.end()?;
    Ok(out)
}

/// Decodes a transform's outcomes.
///
/// # Errors
/// When the frame is truncated or malformed.
pub fn decode_outcomes(
    frame: Vec<u8>,
    cache: &mut SchemaCache,
) -> Result<Vec<Outcome>, DecodeError> {
    let frame = Arc::new(frame);
    let (mut f, n) = FrameReader::open(&frame, cache, Trust::Validate)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match f.r.byte()? {
            0 => Outcome::Keep(f.record()?),
            1 => Outcome::Drop,
            2 => Outcome::Failed(f.r.string()?),
            t => return Err(DecodeError(format!("unknown outcome tag {t}"))),
        });
    }
    f.end()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{SchemaType, Struct, Value, offset_map};

    fn sample() -> Vec<Record> {
        let schema = Arc::new(
            Schema::structure()
                .field("id", Schema::new(SchemaType::Int64))
                .field("name", Schema::new(SchemaType::String).optional()),
        );
        (0..3)
            .map(|i| {
                let s = Struct::from_values(schema.clone(), vec![Value::Int64(i), Value::Null])
                    .expect("struct");
                Record {
                    topic: "t".into(),
                    partition: Some(1),
                    offset: Some(i),
                    timestamp: None,
                    key: Data::schemaless(format!("k{i}")),
                    value: Data::new(schema.clone(), Value::Struct(s)),
                    headers: vec![Header {
                        key: "h".into(),
                        value: Data::new(Arc::new(Schema::new(SchemaType::String)), "v"),
                    }],
                }
            })
            .chain(std::iter::once(Record::new("tombstones", Data::NULL)))
            .collect()
    }

    #[test]
    fn records_outcomes_and_source_records_round_trip() {
        let mut cache = SchemaCache::new();
        let records = sample();
        assert_eq!(
            decode_records(encode_records(&records), &mut cache),
            Ok(records.clone())
        );
        let outcomes = vec![
            Outcome::Keep(records[0].clone()),
            Outcome::Drop,
            Outcome::Failed("bad".into()),
        ];
        assert_eq!(
            decode_outcomes(encode_outcomes(&outcomes), &mut cache),
            Ok(outcomes)
        );
        let source = vec![SourceRecord {
            position: SourcePosition {
                partition: offset_map([("table", "db.t")]),
                offset: vec![
                    ("a".into(), Scalar::Integer(-4)),
                    ("b".into(), Scalar::Float(0.5)),
                    ("c".into(), Scalar::Null),
                    ("d".into(), Scalar::Boolean(true)),
                ],
            },
            record: records[1].clone(),
        }];
        assert_eq!(
            decode_source_records(encode_source_records(&source), &mut cache),
            Ok(source)
        );
    }

    #[test]
    fn untouched_values_pass_through_as_bytes() {
        let mut cache = SchemaCache::new();
        let frame = encode_records(&sample());
        let mut records = decode_records(frame.clone(), &mut cache).expect("decode");
        assert!(
            records.iter().all(|r| r.value.encoded().is_some()),
            "nothing decoded yet"
        );
        assert_eq!(
            encode_records(&records),
            frame,
            "re-encoding copies the bytes"
        );
        // Reading a value decodes it once; changing it re-encodes.
        assert!(records[0].value.value().as_struct().is_some());
        *records[0].key.value_mut() = Value::from("changed");
        let again = decode_records(encode_records(&records), &mut cache).expect("decode");
        assert_eq!(again[0].key.value(), &Value::from("changed"));
        assert_eq!(again[1], records[1]);
    }

    #[test]
    fn malformed_values_are_rejected_when_the_frame_is_read() {
        let bad_utf8 = Record::new("t", Data::schemaless(Value::String("ok".into())));
        let mut frame = encode_records(&[bad_utf8]);
        let at = frame
            .windows(2)
            .position(|w| w == b"ok")
            .expect("the string is in the frame");
        frame[at] = 0xff;
        assert!(decode_records(frame, &mut SchemaCache::new()).is_err());
    }

    #[test]
    fn a_shared_schema_is_sent_once() {
        let records = sample();
        let one = encode_records(&records[..1]);
        let three = encode_records(&records[..3]);
        assert!(
            three.len() < one.len() * 3,
            "the schema table is not repeated per record"
        );
    }

    #[test]
    fn truncated_frames_are_errors() {
        let bytes = encode_records(&sample());
        let mut cache = SchemaCache::new();
        for cut in 0..bytes.len() {
            assert!(
                decode_records(bytes[..cut].to_vec(), &mut cache).is_err(),
                "cut at {cut}"
            );
        }
    }
}
