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
//!           | varint(schema index + 1, 0 for none) u32-le(0xffff_ffff) varint(ordinal)
//!                                              (outcomes only: the ordinal-th value of the
//!                                               batch sent, keys, values and header values
//!                                               counted in order, unchanged)
//! source   := offsets(partition) offsets(offset) record
//! offsets  := varint(n) (bytes(key) scalar)*
//! scalar   := 0 | 1 | 2 | 3 signed | 4 f64-le | 5 bytes     (null, false, true, int, float, text)
//! outcome  := 0 record | 1 | 2 bytes(message)              (keep, drop, failed)
//! opt32/64 := 0 | 1 signed
//! bytes    := varint(len) byte*
//! ```
//!
//! A transform hands back by reference the values it did not change: the worker then
//! neither receives their bytes again nor validates them (it wrote them), which is most of
//! what a call costs for the values a transform passes through ([`Sent`], [`Received`]).

use std::sync::Arc;

use super::codec::{
    DecodeError, Reader, SchemaCache, SchemaTable, encode_value_into, put_bytes, put_signed,
    put_varint,
};
use super::{
    Data, Header, OffsetMap, Outcome, Record, Scalar, Schema, SourcePosition, SourceRecord,
};

/// The length that marks a reference to a value of the batch sent.
const REFERENCE: u32 = u32::MAX;

/// Where a value of a sent frame is.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
    /// Its schema's index in the frame's table, plus one; 0 for none.
    schema: u32,
}

/// A position in a frame: frames are smaller than 4 GiB (a guest's whole memory), and a
/// larger one fails before anything reads these.
fn at(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}

struct Writer<'a> {
    table: SchemaTable,
    body: Vec<u8>,
    /// Writing a transform's input: where each value goes.
    spans: Option<Vec<Span>>,
    /// Writing a transform's outcomes inside the plugin: the frame it received, whose
    /// unchanged values go back as references.
    received: Option<&'a Arc<Vec<u8>>>,
}

impl<'a> Writer<'a> {
    /// A writer of `count` items, with room for `bytes` of them.
    fn new(count: usize, bytes: usize) -> Writer<'a> {
        let mut body = Vec::with_capacity(bytes + 16);
        put_varint(&mut body, count as u64);
        Writer {
            table: SchemaTable::new(),
            body,
            spans: None,
            received: None,
        }
    }

    fn data(&mut self, d: &Data) {
        let index = d
            .schema
            .as_ref()
            .map_or(0, |s| u64::from(self.table.index(s)) + 1);
        put_varint(&mut self.body, index);
        if let Some(ordinal) = self.received.and_then(|frame| d.origin_in(frame)) {
            self.body.extend_from_slice(&REFERENCE.to_le_bytes());
            put_varint(&mut self.body, u64::from(ordinal));
            return;
        }
        // A fixed-width length, patched after the value is written, lets a reader that
        // trusts the writer step over a value without walking it.
        let at_len = self.body.len();
        self.body.extend_from_slice(&[0; 4]);
        match d.encoded() {
            // Unchanged since it was read: its bytes go on as they came.
            Some(raw) => self.body.extend_from_slice(raw),
            None => encode_value_into(d.value(), &mut self.body),
        }
        // A value of 4 GiB or more cannot cross the boundary (a guest's memory is at most
        // that): its saturated length would read as a reference, and the call fails before.
        let len = u32::try_from(self.body.len() - at_len - 4).unwrap_or(u32::MAX);
        self.body[at_len..at_len + 4].copy_from_slice(&len.to_le_bytes());
        if let Some(spans) = &mut self.spans {
            spans.push(Span {
                start: at(at_len + 4),
                end: at(self.body.len()),
                schema: u32::try_from(index).unwrap_or(u32::MAX),
            });
        }
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

    fn outcomes(&mut self, outcomes: &[Outcome]) {
        for o in outcomes {
            match o {
                Outcome::Keep(r) => {
                    self.body.push(0);
                    self.record(r);
                }
                Outcome::Drop => self.body.push(1),
                Outcome::Failed(m) => {
                    self.body.push(2);
                    put_bytes(&mut self.body, m.as_bytes());
                }
            }
        }
    }

    /// The frame: the count and the items written so far, then the schema table, then the
    /// table's offset. The table goes last so the items are written once, in place.
    fn finish(self) -> (Vec<u8>, SchemaTable) {
        let mut out = self.body;
        let table_at = at(out.len());
        put_varint(&mut out, self.table.encoded().len() as u64);
        for s in self.table.encoded() {
            put_bytes(&mut out, s);
        }
        out.extend_from_slice(&table_at.to_le_bytes());
        (out, self.table)
    }
}

/// Encodes records (a sink's or a transform's input).
pub fn encode_records(records: &[Record]) -> Vec<u8> {
    let mut w = Writer::new(records.len(), records.len() * 128);
    for r in records {
        w.record(r);
    }
    w.finish().0
}

/// Encodes a source's records with their positions.
///
/// A partition shared with the record before (the same `Arc`) is copied as the bytes
/// written for it there, not encoded again.
pub fn encode_source_records(records: &[SourceRecord]) -> Vec<u8> {
    let mut w = Writer::new(records.len(), records.len() * 160);
    let mut last: Option<(&Arc<OffsetMap>, std::ops::Range<usize>)> = None;
    for r in records {
        let partition = &r.position.partition;
        match &last {
            Some((map, bytes)) if Arc::ptr_eq(map, partition) => {
                w.body.extend_from_within(bytes.clone());
            }
            _ => {
                let start = w.body.len();
                w.offsets(partition);
                last = Some((partition, start..w.body.len()));
            }
        }
        w.offsets(&r.position.offset);
        w.record(&r.record);
    }
    w.finish().0
}

/// Encodes a transform's outcomes, every value as bytes.
pub fn encode_outcomes(outcomes: &[Outcome]) -> Vec<u8> {
    let mut w = Writer::new(outcomes.len(), outcomes.len() * 128);
    w.outcomes(outcomes);
    w.finish().0
}

/// A transform's input as the worker sent it, kept until the outcomes are back: they may
/// refer to its values instead of carrying them.
#[derive(Debug)]
pub struct Sent {
    frame: Arc<Vec<u8>>,
    spans: Vec<Span>,
    table: SchemaTable,
}

impl Sent {
    /// Encodes a transform's input.
    pub fn encode(records: &[Record]) -> Sent {
        let mut w = Writer::new(records.len(), records.len() * 128);
        w.spans = Some(Vec::with_capacity(records.len() * 2));
        for r in records {
            w.record(r);
        }
        let spans = w.spans.take().unwrap_or_default();
        let (frame, table) = w.finish();
        Sent {
            frame: Arc::new(frame),
            spans,
            table,
        }
    }

    /// The frame, for the call (the generated bindings take a `&Vec<u8>`).
    pub fn bytes(&self) -> &Vec<u8> {
        &self.frame
    }

    /// Decodes the transform's outcomes. A value sent back by reference shares this frame's
    /// bytes and is not validated again, unless the plugin gave it another schema.
    ///
    /// # Errors
    /// When the frame is truncated or malformed, or refers to a value that was not sent.
    pub fn decode_outcomes(
        &self,
        reply: Vec<u8>,
        cache: &mut SchemaCache,
    ) -> Result<Vec<Outcome>, DecodeError> {
        let reply = Arc::new(reply);
        let (mut f, n) = FrameReader::open(&reply, cache, Trust::Validate)?;
        // For each schema of the reply, the same schema's index in the table sent.
        let same = f
            .table
            .iter()
            .map(|bytes| self.table.encoded().iter().position(|e| e == bytes))
            .collect();
        f.sent = Some((self, same));
        read_outcomes(&mut f, n)
    }

    /// Resolves a reference: the `ordinal`-th value sent, now with `schema` (the reply
    /// table's index `index`, plus one).
    fn resolve(
        &self,
        ordinal: u64,
        index: u64,
        schema: Option<&Arc<Schema>>,
        same: &[Option<usize>],
    ) -> Result<Data, DecodeError> {
        let span = usize::try_from(ordinal)
            .ok()
            .and_then(|o| self.spans.get(o))
            .ok_or_else(|| {
                DecodeError(format!(
                    "reference to value {ordinal}, of {} sent",
                    self.spans.len()
                ))
            })?;
        let unchanged = match (index, span.schema) {
            (0, 0) => true,
            (o, s) if o > 0 && s > 0 => {
                same.get((o - 1) as usize).copied().flatten() == Some((s - 1) as usize)
            }
            _ => false,
        };
        let schema = if unchanged {
            span.schema
                .checked_sub(1)
                .and_then(|s| self.table.schemas().get(s as usize).cloned())
        } else {
            // The plugin put the bytes under another schema: they must be one of it.
            let bytes = self
                .frame
                .get(span.start as usize..span.end as usize)
                .ok_or_else(|| DecodeError("reference to a value past the frame".into()))?;
            let mut value = Reader::new(bytes);
            value.skip(schema, 0)?;
            value.expect_end()?;
            schema.cloned()
        };
        Ok(Data::from_frame(
            schema,
            &self.frame,
            (span.start, span.end),
            at(ordinal as usize),
        ))
    }
}

/// A transform's input as a plugin received it. Outcomes written with
/// [`Received::encode_outcomes`] send the values the plugin did not change back by
/// reference.
#[derive(Debug)]
pub struct Received {
    frame: Arc<Vec<u8>>,
}

impl Received {
    /// Reads a batch the worker sent; values are only delimited ([`Trust::Worker`]).
    ///
    /// # Errors
    /// When the frame's framing is malformed.
    pub fn decode(
        frame: Vec<u8>,
        cache: &mut SchemaCache,
    ) -> Result<(Vec<Record>, Received), DecodeError> {
        let frame = Arc::new(frame);
        let records = read_records(&frame, cache, Trust::Worker)?;
        Ok((records, Received { frame }))
    }

    /// Encodes outcomes for the batch received.
    pub fn encode_outcomes(&self, outcomes: &[Outcome]) -> Vec<u8> {
        // Changed values come back in full: the batch received is the best guess of the size.
        let mut w = Writer::new(outcomes.len(), self.frame.len());
        w.received = Some(&self.frame);
        w.outcomes(outcomes);
        w.finish().0
    }
}

struct FrameReader<'a> {
    r: Reader<'a>,
    /// The last topic read: consecutive records of a batch usually share it.
    topic: Option<Arc<str>>,
    frame: &'a Arc<Vec<u8>>,
    table: Vec<&'a [u8]>,
    schemas: Vec<Arc<Schema>>,
    trust: Trust,
    /// How many values were read: the next one's ordinal.
    ordinal: u32,
    /// Reading a transform's outcomes: the batch sent, and for each schema of this frame
    /// the index of the same schema in the table sent.
    sent: Option<(&'a Sent, Vec<Option<usize>>)>,
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
        if u32::try_from(bytes.len()).is_err() {
            return Err(DecodeError("frame of 4 GiB or more".into()));
        }
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
                table,
                schemas,
                trust,
                ordinal: 0,
                sent: None,
            },
            count,
        ))
    }

    /// The schema of table index `index` (plus one; 0 for none).
    fn schema(&self, index: u64) -> Result<Option<&Arc<Schema>>, DecodeError> {
        match index {
            0 => Ok(None),
            i => self
                .schemas
                .get((i - 1) as usize)
                .map(Some)
                .ok_or_else(|| DecodeError(format!("schema index {} out of range", i - 1))),
        }
    }

    fn data(&mut self) -> Result<Data, DecodeError> {
        let index = self.r.varint()?;
        let len = self.r.u32_le()?;
        if len == REFERENCE {
            let ordinal = self.r.varint()?;
            let (sent, same) = self.sent.as_ref().ok_or_else(|| {
                DecodeError("a value refers to a batch, outside a transform's outcomes".into())
            })?;
            return sent.resolve(ordinal, index, self.schema(index)?, same);
        }
        let schema = self.schema(index)?.cloned();
        let raw = self.r.take(len as usize)?;
        if self.trust == Trust::Validate {
            let mut value = Reader::new(raw);
            value.skip(schema.as_ref(), 0)?;
            value.expect_end()?;
        }
        let end = self.r.position();
        let origin = self.ordinal;
        self.ordinal = self.ordinal.saturating_add(1);
        Ok(Data::from_frame(
            schema,
            self.frame,
            (at(end - raw.len()), at(end)),
            origin,
        ))
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
    read_records(&Arc::new(frame), cache, trust)
}

fn read_records(
    frame: &Arc<Vec<u8>>,
    cache: &mut SchemaCache,
    trust: Trust,
) -> Result<Vec<Record>, DecodeError> {
    let (mut f, n) = FrameReader::open(frame, cache, trust)?;
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
    // The last partition read and its bytes: the records of a batch mostly share one, and
    // the same bytes read as the same map (the encoding is self-delimiting), so a repeated
    // partition is compared, not decoded, and shared.
    let mut last: Option<(&[u8], Arc<OffsetMap>)> = None;
    for _ in 0..n {
        let partition = match &last {
            Some((bytes, map)) if f.r.rest().starts_with(bytes) => {
                f.r.take(bytes.len())?;
                map.clone()
            }
            _ => {
                let rest = f.r.rest();
                let map = Arc::new(f.offsets()?);
                let read = rest.len() - f.r.rest().len();
                last = Some((&rest[..read], map.clone()));
                map
            }
        };
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

/// Decodes a transform's outcomes written with every value as bytes ([`encode_outcomes`];
/// [`Sent::decode_outcomes`] reads references too).
///
/// # Errors
/// When the frame is truncated or malformed, or refers to values of a batch.
pub fn decode_outcomes(
    frame: Vec<u8>,
    cache: &mut SchemaCache,
) -> Result<Vec<Outcome>, DecodeError> {
    let frame = Arc::new(frame);
    let (mut f, n) = FrameReader::open(&frame, cache, Trust::Validate)?;
    read_outcomes(&mut f, n)
}

fn read_outcomes(f: &mut FrameReader<'_>, n: usize) -> Result<Vec<Outcome>, DecodeError> {
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
                partition: Arc::new(offset_map([("table", "db.t")])),
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
    fn a_repeated_partition_is_written_once_and_read_once() {
        let position = |partition: &Arc<OffsetMap>, n: i64| SourcePosition {
            partition: partition.clone(),
            offset: offset_map([("incrementing", n)]),
        };
        let a = Arc::new(offset_map([("protocol", "1"), ("table", "db.a")]));
        let b = Arc::new(offset_map([("protocol", "1"), ("table", "db.b")]));
        // Equal to `a`, a map of its own: written in full, read as `a`'s equal.
        let a_again = Arc::new(offset_map([("protocol", "1"), ("table", "db.a")]));
        // A map that differs from `a` only at the end of its last text.
        let longer = Arc::new(offset_map([("protocol", "1"), ("table", "db.a.x")]));
        let empty = Arc::new(OffsetMap::new());
        let partitions = [&a, &a, &b, &b, &a, &a_again, &longer, &empty, &empty, &a];
        let source: Vec<SourceRecord> = partitions
            .iter()
            .zip(0..)
            .map(|(p, n)| SourceRecord {
                position: position(p, n),
                record: Record::new("t", Data::schemaless(format!("v{n}"))),
            })
            .collect();
        let decoded =
            decode_source_records(encode_source_records(&source), &mut SchemaCache::new())
                .expect("decode");
        assert_eq!(decoded, source);
        // Consecutive equal partitions are one map on the reading side.
        for (i, pair) in decoded.windows(2).enumerate() {
            let (x, y) = (&pair[0].position.partition, &pair[1].position.partition);
            assert_eq!(Arc::ptr_eq(x, y), x == y, "records {i} and {}", i + 1);
        }
    }

    /// The worker's side and the plugin's side of a transform call, natively.
    fn call(sent: &Sent, plugin: impl FnOnce(Vec<Record>) -> Vec<Outcome>) -> Vec<u8> {
        let (records, received) =
            Received::decode(sent.bytes().to_vec(), &mut SchemaCache::new()).expect("decode");
        received.encode_outcomes(&plugin(records))
    }

    #[test]
    fn unchanged_values_go_back_by_reference() {
        let records = sample();
        let sent = Sent::encode(&records);
        let identity = |rs: Vec<Record>| rs.into_iter().map(Outcome::Keep).collect();
        let reply = call(&sent, identity);
        let mut cache = SchemaCache::new();
        let outcomes = sent
            .decode_outcomes(reply.clone(), &mut cache)
            .expect("outcomes");
        let expected: Vec<Outcome> = records.iter().cloned().map(Outcome::Keep).collect();
        assert_eq!(outcomes, expected);
        // No value came back: each is the sent frame's bytes.
        let sent_range = sent.bytes().as_ptr_range();
        for o in &outcomes {
            let Outcome::Keep(r) = o else { panic!("kept") };
            let values = [&r.key, &r.value]
                .into_iter()
                .chain(r.headers.iter().map(|h| &h.value));
            for d in values {
                let raw = d.encoded().expect("still encoded");
                assert!(sent_range.contains(&raw.as_ptr()), "the sent frame's bytes");
            }
        }

        // A changed value comes back as bytes; the others stay references.
        let reply = call(&sent, |mut rs| {
            *rs[0].key.value_mut() = Value::from("changed");
            rs.into_iter().map(Outcome::Keep).collect()
        });
        let outcomes = sent.decode_outcomes(reply, &mut cache).expect("outcomes");
        let Outcome::Keep(first) = &outcomes[0] else {
            panic!("kept")
        };
        assert_eq!(first.key.value(), &Value::from("changed"));
        assert_eq!(outcomes[1..], expected[1..]);
    }

    #[test]
    fn a_reference_under_another_schema_is_checked_against_it() {
        let records = sample();
        let sent = Sent::encode(&records);
        let renamed = Arc::new(
            Schema::structure()
                .named("com.example.Renamed")
                .field("id", Schema::new(SchemaType::Int64))
                .field("name", Schema::new(SchemaType::String).optional()),
        );
        let reply = call(&sent, |mut rs| {
            rs[0].value.schema = Some(renamed.clone());
            rs.into_iter().map(Outcome::Keep).collect()
        });
        let outcomes = sent
            .decode_outcomes(reply, &mut SchemaCache::new())
            .expect("the bytes are a value of the renamed schema");
        let Outcome::Keep(first) = &outcomes[0] else {
            panic!("kept")
        };
        assert_eq!(first.value.schema.as_deref(), Some(&*renamed));
        assert_eq!(
            first
                .value
                .value()
                .as_struct()
                .expect("struct")
                .schema()
                .name,
            renamed.name
        );

        for wrong in [None, Some(Arc::new(Schema::new(SchemaType::Int64)))] {
            let reply = call(&sent, |mut rs| {
                rs[0].value.schema = wrong.clone();
                rs.into_iter().map(Outcome::Keep).collect()
            });
            let err = sent
                .decode_outcomes(reply, &mut SchemaCache::new())
                .expect_err("a struct's bytes under a schema that is not its own");
            assert!(err.0.contains("struct"), "{err}");
        }
    }

    #[test]
    fn references_resolve_only_against_the_batch_they_came_from() {
        let records = sample();
        let sent = Sent::encode(&records);
        let reply = call(&sent, |rs| rs.into_iter().map(Outcome::Keep).collect());
        let mut cache = SchemaCache::new();
        let err = decode_outcomes(reply.clone(), &mut cache).expect_err("no batch sent");
        assert!(err.0.contains("refers"), "{err}");
        let smaller = Sent::encode(&records[..1]);
        let err = smaller
            .decode_outcomes(reply, &mut cache)
            .expect_err("ordinals past the batch");
        assert!(err.0.contains("reference to value"), "{err}");

        // A record a plugin kept from an earlier batch goes back as bytes.
        let (earlier, _) =
            Received::decode(sent.bytes().to_vec(), &mut SchemaCache::new()).expect("decode");
        let next = Sent::encode(&records[3..]);
        let reply = call(&next, |rs| {
            earlier
                .into_iter()
                .take(3)
                .chain(rs)
                .map(Outcome::Keep)
                .collect()
        });
        let outcomes = next
            .decode_outcomes(reply, &mut cache)
            .expect("earlier values as bytes");
        let expected: Vec<Outcome> = records.iter().cloned().map(Outcome::Keep).collect();
        assert_eq!(outcomes, expected);
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
