//! `RedisSinkConnector`: writes records into Redis with the keys of Redis' own Kafka
//! connector (`com.redis.kafka.connect.RedisSinkConnector`), through the worker's `redis`
//! capability.
//!
//! Each `put` is one round trip whatever the batch size: its records are planned in up to
//! [`PARTS`] parts, each sent as a pipeline without waiting for the one before (Redis runs
//! a part while the next is planned). `put` then reads the replies of the batch before,
//! not of its own, and returns: Redis writes a batch while the worker consumes, converts
//! and hands over the next, and `flush` reads the last replies. With `redis.multiexec`
//! the batch is one pipeline inside MULTI/EXEC. Commands follow record order across the
//! parts and the batches, so a write and then a tombstone of the same key leave the key
//! absent (the Java connector sends every delete first). A command Redis rejects
//! (`WRONGTYPE`, say) fails its record alone, reported with `errant-records` in the next
//! `put` or in `flush`. A batch whose replies are lost (a broken connection) is sent
//! again before anything else, so delivery is at least once: replays are harmless for
//! STRING, HASH, JSON, SET and ZSET, while LIST and STREAM may get an entry twice.

mod config;

use std::borrow::Cow;
use std::sync::Arc;

use wasmconnect_sdk::data::json;
use wasmconnect_sdk::data::{Decimal, logical};
use wasmconnect_sdk::prelude::*;
use wasmconnect_sdk::redis::{self, Cmd, Connection, Pending, Pipeline, Reply};

pub use config::{RedisSinkConfig, RedisType, Settings};

/// The header that overrides `redis.key.ttl` for one record.
pub const TTL_HEADER: &str = "redis.key.ttl";

/// How many pipelines a batch is sent as, at most (one with `redis.multiexec`).
pub const PARTS: usize = 4;

/// The fewest records worth a pipeline of their own.
const MIN_PART: usize = 64;

/// Records (or part of a batch) turned into commands: the pipeline, and for each command
/// the index in the batch of the record it came from (`None` for the closing WAIT).
#[derive(Debug, Default)]
pub struct Plan {
    pub pipeline: Pipeline,
    pub owners: Vec<Option<usize>>,
    pub failures: Vec<RecordFailure>,
}

impl Plan {
    fn push(&mut self, owner: usize, cmd: Cmd) {
        self.pipeline.push(cmd);
        self.owners.push(Some(owner));
    }

    fn fail(&mut self, index: usize, message: String) {
        self.failures.push(RecordFailure {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            message,
        });
    }

    /// Ends the batch's last pipeline with `WAIT` when `redis.wait.replicas` asks for it
    /// and the batch wrote anything (here or in a part `sent_before`).
    fn close(&mut self, settings: &Settings, sent_before: bool) {
        if settings.wait_replicas > 0 && (sent_before || !self.pipeline.is_empty()) {
            self.pipeline.push(
                Cmd::new("WAIT")
                    .arg(settings.wait_replicas.to_string())
                    .arg(settings.wait_timeout_ms.to_string()),
            );
            self.owners.push(None);
        }
    }

    /// Reads the pipeline's replies: a rejected command fails its record (once), and too
    /// few replicas acknowledging the WAIT fails the batch, to be retried.
    fn settle(&mut self, replies: &[Reply], settings: &Settings) -> Result<(), PluginError> {
        let mut failed: Vec<usize> = self.failures.iter().map(|f| f.index as usize).collect();
        let owners = std::mem::take(&mut self.owners);
        for (reply, owner) in replies.iter().zip(&owners) {
            match (reply, owner) {
                (Reply::Error(e), Some(index)) if !failed.contains(index) => {
                    failed.push(*index);
                    self.fail(*index, format!("Redis rejected its command: {e}"));
                }
                (Reply::Int(acked), None) if *acked < settings.wait_replicas => {
                    return Err(PluginError::retriable(format!(
                        "only {acked} of redis.wait.replicas={} replicas acknowledged the batch within {} ms",
                        settings.wait_replicas, settings.wait_timeout_ms
                    )));
                }
                (Reply::Error(e), None) => {
                    return Err(PluginError::retriable(format!("WAIT failed: {e}")));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A value as Redis text: strings and bytes as they are (borrowed), numbers in decimal,
/// structs, maps and arrays as JSON. `None` for null.
fn text_of(value: &Value) -> Option<Cow<'_, [u8]>> {
    Some(Cow::Owned(match value {
        Value::Null => return None,
        Value::String(s) => return Some(Cow::Borrowed(s.as_bytes())),
        Value::Bytes(b) => return Some(Cow::Borrowed(b)),
        Value::Boolean(b) => b.to_string().into_bytes(),
        Value::Int8(i) => i.to_string().into_bytes(),
        Value::Int16(i) => i.to_string().into_bytes(),
        Value::Int32(i) => i.to_string().into_bytes(),
        Value::Int64(i) => i.to_string().into_bytes(),
        Value::Float32(f) => f.to_string().into_bytes(),
        Value::Float64(f) => f.to_string().into_bytes(),
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => json::to_string(value).into_bytes(),
    }))
}

/// A struct field as text: Decimals as their decimal text, the rest as [`text_of`].
fn field_text<'a>(schema: &Schema, value: &'a Value) -> Option<Cow<'a, [u8]>> {
    if let (Some(logical::DECIMAL), Value::Bytes(b)) = (schema.name.as_deref(), value)
        && let Some(d) = Decimal::from_bytes(b, schema.decimal_scale().unwrap_or(0))
    {
        return Some(Cow::Owned(d.to_string().into_bytes()));
    }
    text_of(value)
}

/// Field/value pairs for HSET and XADD.
type Fields<'a> = Vec<(Cow<'a, [u8]>, Cow<'a, [u8]>)>;

/// The field/value pairs of a struct or map value, nulls left out (Redis has no null).
fn fields_of(value: &Value) -> Result<Fields<'_>, String> {
    let pairs: Vec<_> = match value {
        Value::Struct(s) => s
            .schema()
            .fields
            .iter()
            .zip(s.values())
            .filter_map(|(f, v)| {
                let name = Cow::Borrowed(f.name.as_bytes());
                Some((name, field_text(&f.schema, v)?))
            })
            .collect(),
        Value::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| Some((text_of(k)?, text_of(v)?)))
            .collect(),
        other => {
            return Err(format!(
                "needs a struct or map value (use JsonConverter or a schema), got {}",
                other.schema_type().map_or("null", |t| t.json_name())
            ));
        }
    };
    if pairs.is_empty() {
        return Err("the value has no non-null fields to write".into());
    }
    Ok(pairs)
}

fn score_of(value: &Value) -> Result<Vec<u8>, String> {
    let score = match value {
        Value::Float32(f) => f64::from(*f),
        Value::Float64(f) => *f,
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("the ZSET score {s:?} is not a number"))?,
        other => other
            .as_i64()
            .map(|i| i as f64)
            .ok_or_else(|| "a ZSET record's value must be its score (a number)".to_owned())?,
    };
    if score.is_nan() {
        return Err("the ZSET score is NaN".into());
    }
    Ok(score.to_string().into_bytes())
}

/// `redis.key.ttl` from the record's header, if it has one.
fn header_ttl(record: &Record) -> Result<Option<i64>, String> {
    let Some(header) = record.headers.iter().rev().find(|h| h.key == TTL_HEADER) else {
        return Ok(None);
    };
    let value = header.value.value();
    let ttl = match value {
        Value::String(s) => s.trim().parse::<i64>().ok(),
        other => other.as_i64(),
    }
    .ok_or_else(|| format!("header {TTL_HEADER} must be a number of seconds"))?;
    Ok((ttl > 0).then_some(ttl))
}

/// Turns a batch into one pipeline. Records that cannot be written (no key where one is
/// needed, a value of the wrong shape) become failures and send nothing.
pub fn plan(records: &[Record], settings: &Settings) -> Plan {
    let mut plan = plan_part(records, 0, settings);
    plan.close(settings, false);
    plan
}

/// Plans `records`, which start at index `first` of their batch, without the closing WAIT.
fn plan_part(records: &[Record], first: usize, settings: &Settings) -> Plan {
    let mut plan = Plan::default();
    plan.pipeline.atomic(settings.multiexec);
    // The records of a batch mostly share a topic: its keyspace is worked out once.
    // The frame reader shares one `Arc` among a run of records of the same topic, so the
    // address settles most comparisons without reading the name.
    let mut keyspace: Option<(&Arc<str>, String)> = None;
    for (index, record) in (first..).zip(records) {
        let space = match &keyspace {
            Some((topic, space))
                if Arc::ptr_eq(topic, &record.topic) || **topic == record.topic =>
            {
                space
            }
            _ => {
                let space = settings.keyspace.replace("${topic}", &record.topic);
                &keyspace.insert((&record.topic, space)).1
            }
        };
        if let Err(message) = plan_record(&mut plan, index, record, space, settings) {
            plan.fail(
                index,
                format!(
                    "cannot be written as redis.type {}: {message}",
                    settings.redis_type.name()
                ),
            );
        }
    }
    plan
}

/// The batch's records in the parts it is sent as: [`PARTS`] of them, none smaller than
/// [`MIN_PART`] records, one with `redis.multiexec` (MULTI/EXEC wraps the whole batch).
fn parts<'a>(records: &'a [Record], settings: &Settings) -> std::slice::Chunks<'a, Record> {
    let size = if settings.multiexec {
        records.len()
    } else {
        records.len().div_ceil(PARTS).max(MIN_PART)
    };
    records.chunks(size.max(1))
}

fn plan_record(
    plan: &mut Plan,
    index: usize,
    record: &Record,
    keyspace: &str,
    settings: &Settings,
) -> Result<(), String> {
    let record_key = text_of(record.key.value());
    let value = record.value.value();
    let tombstone = value.is_null();
    let ttl = header_ttl(record)?.or(settings.ttl);
    let kind = settings.redis_type;
    if kind.keyed() {
        let member = record_key.ok_or("the record has no key")?;
        let key = if keyspace.is_empty() {
            member
        } else {
            let separator = settings.separator.as_bytes();
            let mut key = Vec::with_capacity(keyspace.len() + separator.len() + member.len());
            key.extend_from_slice(keyspace.as_bytes());
            key.extend_from_slice(separator);
            key.extend_from_slice(&member);
            Cow::Owned(key)
        };
        if tombstone {
            plan.push(index, Cmd::new("DEL").arg(key));
            return Ok(());
        }
        let expire = ttl.map(|ttl| Cmd::new("EXPIRE").arg(&key).arg(ttl.to_string()));
        let write = match kind {
            RedisType::String => Cmd::new("SET")
                .arg(&key)
                .arg(text_of(value).unwrap_or_default()),
            RedisType::Json => Cmd::new("JSON.SET")
                .arg(&key)
                .arg("$")
                .arg(text_of(value).unwrap_or_default()),
            _ => {
                let mut cmd = Cmd::new("HSET").arg(&key);
                for (field, text) in fields_of(value)? {
                    cmd.push_arg(field);
                    cmd.push_arg(text);
                }
                cmd
            }
        };
        plan.push(index, write);
        if let Some(expire) = expire {
            plan.push(index, expire);
        }
        return Ok(());
    }
    let key = keyspace.as_bytes();
    if kind == RedisType::Stream {
        // The record key is not part of a stream entry; a tombstone has nothing to delete.
        if !tombstone {
            let mut cmd = Cmd::new("XADD").arg(key).arg("*");
            for (field, text) in fields_of(value)? {
                cmd.push_arg(field);
                cmd.push_arg(text);
            }
            plan.push(index, cmd);
        }
    } else {
        let member = record_key.ok_or("the record has no key (the collection member)")?;
        let cmd = match (kind, tombstone) {
            (RedisType::List, false) => Cmd::new("RPUSH").arg(key).arg(&member),
            (RedisType::List, true) => Cmd::new("LREM").arg(key).arg("0").arg(&member),
            (RedisType::Set, false) => Cmd::new("SADD").arg(key).arg(&member),
            (RedisType::Set, true) => Cmd::new("SREM").arg(key).arg(&member),
            (_, false) => Cmd::new("ZADD").arg(key).arg(score_of(value)?).arg(&member),
            (_, true) => Cmd::new("ZREM").arg(key).arg(&member),
        };
        plan.push(index, cmd);
    }
    if !tombstone && let Some(ttl) = ttl {
        plan.push(index, Cmd::new("EXPIRE").arg(key).arg(ttl.to_string()));
    }
    Ok(())
}

#[derive(Debug)]
pub struct RedisSink {
    settings: Settings,
    redis: Connection,
    /// The last batch `put` accepted, until its replies are read.
    in_flight: Option<InFlight>,
}

/// A batch accepted by `put` whose replies have not been read.
#[derive(Debug)]
struct InFlight {
    records: Vec<Record>,
    state: Flight,
}

/// A batch's pipelines on their way, each with the plan that says whose its replies are.
type Sent = Vec<(Pending, Plan)>;

#[derive(Debug)]
enum Flight {
    /// Its pipelines are sent.
    Sent(Sent),
    /// Its replies were lost: it is sent again before anything else.
    Again,
}

impl RedisSink {
    /// Plans `records` in parts and sends each part as soon as it is planned. Returns the
    /// parts sent and the records that could not be planned.
    fn send_batch(&self, records: &[Record]) -> Result<(Sent, Vec<RecordFailure>), PluginError> {
        let parts = parts(records, &self.settings);
        let count = parts.len();
        let mut sent = Vec::with_capacity(count);
        let mut failures = Vec::new();
        let mut first = 0;
        for (n, part) in parts.enumerate() {
            let mut plan = plan_part(part, first, &self.settings);
            first += part.len();
            if n + 1 == count {
                plan.close(&self.settings, !sent.is_empty());
            }
            failures.append(&mut plan.failures);
            if !plan.pipeline.is_empty() {
                let pending = self.redis.send(&plan.pipeline)?;
                sent.push((pending, plan));
            }
        }
        Ok((sent, failures))
    }

    /// Waits for the replies of `sent`; returns the records whose commands Redis rejected.
    fn read(&self, sent: Sent) -> Result<Vec<RecordFailure>, PluginError> {
        let mut rejected = Vec::new();
        for (pending, mut plan) in sent {
            plan.settle(&pending.replies()?, &self.settings)?;
            rejected.append(&mut plan.failures);
        }
        Ok(rejected)
    }

    /// Reads the replies of the batch in flight, if any, sending it first if its replies
    /// were lost: the records whose commands Redis rejected are reported
    /// (`errant-records`); a retriable failure keeps the batch, to be sent again.
    fn settle(&mut self) -> Result<(), PluginError> {
        let Some(flight) = self.in_flight.take() else {
            return Ok(());
        };
        let read = match flight.state {
            Flight::Sent(sent) => self.read(sent),
            // What could not be planned was returned by its `put`.
            Flight::Again => self
                .send_batch(&flight.records)
                .and_then(|(sent, _unplanned)| self.read(sent)),
        };
        match read {
            Ok(mut rejected) => {
                rejected.sort_by_key(|f| f.index);
                for failure in rejected {
                    wasmconnect_sdk::errant::report_previous(failure.index, &failure.message)
                        .map_err(PluginError::fatal)?;
                }
                Ok(())
            }
            Err(e) => {
                if e.is_retriable() {
                    self.in_flight = Some(InFlight {
                        records: flight.records,
                        state: Flight::Again,
                    });
                }
                Err(e)
            }
        }
    }
}

impl Sink for RedisSink {
    type Config = RedisSinkConfig;

    fn metadata() -> Metadata {
        Metadata::new(
            "RedisSinkConnector",
            env!("CARGO_PKG_VERSION"),
            "Writes records into Redis strings, hashes, JSON documents, streams, lists, sets or sorted sets (Redis Kafka connector keys).",
        )
        .aliases(&["redis", "com.redis.kafka.connect.RedisSinkConnector"])
    }

    fn validate(config: &Config) -> Vec<ConfigIssue> {
        config::validate(config)
    }

    fn open(config: RedisSinkConfig) -> Result<Self, PluginError> {
        let settings = Settings::from_config(&config)?;
        // Fail fast on an unreachable server or a bad URI.
        let redis = redis::connect()?;
        Ok(RedisSink {
            settings,
            redis,
            in_flight: None,
        })
    }

    /// Sends the batch behind the one in flight, then reads that one's replies and returns:
    /// Redis writes this batch while the worker prepares the next.
    fn put(&mut self, records: Vec<Record>) -> Result<Vec<RecordFailure>, PluginError> {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| matches!(f.state, Flight::Again))
        {
            self.settle()?;
        }
        let (sent, mut failures) = self.send_batch(&records)?;
        self.settle()?;
        self.in_flight = Some(InFlight {
            records,
            state: Flight::Sent(sent),
        });
        failures.sort_by_key(|f| f.index);
        Ok(failures)
    }

    /// Reads the last batch's replies: once this returns, everything accepted is written.
    fn flush(&mut self) -> Result<(), PluginError> {
        self.settle()
    }
}

wasmconnect_sdk::export_sink!(RedisSink);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut config = Config::new();
        for (k, v) in pairs {
            config.set(*k, *v);
        }
        let typed = RedisSinkConfig::from_config(&config).expect("typed config");
        Settings::from_config(&typed).expect("settings")
    }

    fn record(key: Option<&str>, value: Value) -> Record {
        let mut r = Record::new("orders", Data::schemaless(value));
        if let Some(k) = key {
            r.key = Data::schemaless(Value::String(k.into()));
        }
        r.partition = Some(0);
        r.offset = Some(7);
        r
    }

    fn args(plan: &Plan) -> Vec<String> {
        plan.pipeline
            .commands()
            .map(|c| {
                c.map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn a_batch_is_one_pipeline_in_record_order() {
        let s = settings(&[("redis.type", "STRING"), ("redis.key.ttl", "60")]);
        let records: Vec<Record> = (0..500)
            .map(|i| record(Some(&i.to_string()), Value::String(format!("v{i}"))))
            .chain([record(Some("7"), Value::Null)])
            .collect();
        let plan = plan(&records, &s);
        assert!(plan.failures.is_empty());
        // SET + EXPIRE per record, then the tombstone's DEL last: one pipeline in all.
        assert_eq!(plan.pipeline.len(), 1001);
        let a = args(&plan);
        assert_eq!(a[0], "SET orders:0 v0");
        assert_eq!(a[1], "EXPIRE orders:0 60");
        assert_eq!(a[1000], "DEL orders:7");
        assert_eq!(plan.owners[1000], Some(500));
    }

    #[test]
    fn collections_use_the_keyspace_and_members() {
        let s = settings(&[("redis.type", "ZSET"), ("redis.keyspace", "scores")]);
        let plan = plan(
            &[
                record(Some("alice"), Value::Int32(42)),
                record(Some("bob"), Value::String("1.5".into())),
                record(Some("alice"), Value::Null),
                record(Some("eve"), Value::String("lots".into())),
                record(None, Value::Int32(1)),
            ],
            &s,
        );
        assert_eq!(
            args(&plan),
            [
                "ZADD scores 42 alice",
                "ZADD scores 1.5 bob",
                "ZREM scores alice"
            ]
        );
        let failed: Vec<u32> = plan.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, [3, 4]);
        assert!(
            plan.failures[0]
                .message
                .contains("\"lots\" is not a number")
        );
        assert!(
            plan.failures[1]
                .message
                .contains("redis.type ZSET: the record has no key")
        );
    }

    #[test]
    fn hashes_and_streams_flatten_struct_fields_and_skip_nulls() {
        let schema = Arc::new(
            Schema::structure()
                .named("order")
                .field("id", Schema::new(SchemaType::Int64))
                .field("note", Schema::new(SchemaType::String).optional())
                .field("tags", Schema::array(Schema::new(SchemaType::String))),
        );
        let value = Struct::from_values(
            schema.clone(),
            vec![
                Value::Int64(9),
                Value::Null,
                Value::Array(vec![Value::String("a".into())]),
            ],
        )
        .expect("struct");
        let mut r = record(Some("9"), Value::Null);
        r.value = Data::new(schema, Value::Struct(value));
        let hash = plan(
            std::slice::from_ref(&r),
            &settings(&[("redis.type", "HASH")]),
        );
        assert_eq!(args(&hash), [r#"HSET orders:9 id 9 tags ["a"]"#]);
        let stream = plan(&[r], &settings(&[("redis.type", "STREAM")]));
        assert_eq!(args(&stream), [r#"XADD orders * id 9 tags ["a"]"#]);
    }

    #[test]
    fn multiexec_wait_and_header_ttl() {
        let s = settings(&[
            ("redis.type", "SET"),
            ("redis.multiexec", "true"),
            ("redis.wait.replicas", "1"),
        ]);
        let mut r = record(Some("m"), Value::Boolean(true));
        r.headers.push(Header {
            key: TTL_HEADER.into(),
            value: Data::schemaless(Value::String("30".into())),
        });
        let plan = plan(&[r], &s);
        assert!(plan.pipeline.is_atomic());
        assert_eq!(
            args(&plan),
            ["SADD orders m", "EXPIRE orders 30", "WAIT 1 1000"]
        );
        assert_eq!(plan.owners, [Some(0), Some(0), None]);
    }

    #[test]
    fn a_batch_goes_in_a_few_parts_and_multiexec_in_one() {
        let records: Vec<Record> = (0..1000)
            .map(|i| record(Some(&i.to_string()), Value::Int32(i)))
            .collect();
        let sizes = |records: &[Record], s: &Settings| -> Vec<usize> {
            parts(records, s).map(<[Record]>::len).collect()
        };
        let plain = settings(&[("redis.type", "STRING")]);
        assert_eq!(sizes(&records, &plain), [250; PARTS]);
        assert_eq!(sizes(&records[..100], &plain), [64, 36]);
        assert_eq!(sizes(&records[..10], &plain), [10]);
        assert!(sizes(&[], &plain).is_empty());
        let atomic = settings(&[("redis.type", "STRING"), ("redis.multiexec", "true")]);
        assert_eq!(sizes(&records, &atomic), [1000]);
        // A part keeps its records' batch indexes, for failures and replies.
        let part = plan_part(&records[250..500], 250, &plain);
        assert_eq!(part.owners.first(), Some(&Some(250)));
        assert_eq!(part.owners.last(), Some(&Some(499)));
    }

    #[test]
    fn bad_config_names_the_key() {
        let mut config = Config::new();
        config.set("redis.type", "LIST");
        config.set("redis.keyspace", "");
        config.set("redis.key.ttl", "0");
        let keys: Vec<String> = config::validate(&config)
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["redis.keyspace", "redis.key.ttl"]);
        let mut config = Config::new();
        config.set("redis.type", "TIMESERIES");
        let issues = config::validate(&config);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "redis.type");
    }
}
