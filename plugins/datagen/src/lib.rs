//! `datagen`: a source of deterministic synthetic records with a Connect schema, for demos,
//! tests and benchmarks. Record `n` depends only on the seed and `n`, so a restarted task
//! that resumes from its stored offset continues the same sequence.

mod config;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmconnect_sdk::prelude::*;

pub use config::DatagenConfig;

/// The source partition of the (single) datagen task, as Confluent's datagen names it.
const PARTITION_KEY: &str = "task.id";
/// The offset key: how many records were generated.
const OFFSET_KEY: &str = "current.iteration";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quickstart {
    Users,
    Pageviews,
}

#[derive(Debug)]
pub struct Datagen {
    topic: Arc<str>,
    quickstart: Quickstart,
    schema: Arc<Schema>,
    seed: u64,
    interval: Duration,
    /// Index of the next record to generate.
    next: i64,
    /// `None` for no end.
    limit: Option<i64>,
    started: Instant,
    /// `next` when the task started, for pacing.
    first: i64,
    /// The one source partition, `{"partition": 0}`, shared by every record.
    partition: Arc<OffsetMap>,
}

fn users_schema() -> Schema {
    Schema::structure()
        .named("datagen.users")
        .field("id", Schema::new(SchemaType::Int64))
        .field("userid", Schema::new(SchemaType::String))
        .field("regionid", Schema::new(SchemaType::String))
        .field("gender", Schema::new(SchemaType::String))
        .field("registertime", Schema::timestamp())
}

fn pageviews_schema() -> Schema {
    Schema::structure()
        .named("datagen.pageviews")
        .field("id", Schema::new(SchemaType::Int64))
        .field("viewtime", Schema::timestamp())
        .field("userid", Schema::new(SchemaType::String))
        .field("pageid", Schema::new(SchemaType::String))
}

/// splitmix64: a fast, well-mixed function of (seed, n).
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 2020-01-01T00:00:00Z: generated timestamps start here.
const EPOCH_MS: i64 = 1_577_836_800_000;

impl Datagen {
    fn generate(&self, n: i64) -> Record {
        let r = mix(self.seed, n as u64);
        let value = match self.quickstart {
            Quickstart::Users => vec![
                Value::Int64(n),
                Value::String(format!("User_{}", r % 10)),
                Value::String(format!("Region_{}", (r >> 8) % 10)),
                Value::String(["MALE", "FEMALE", "OTHER"][((r >> 16) % 3) as usize].into()),
                Value::Int64(EPOCH_MS + ((r >> 24) % 1_000_000_000) as i64),
            ],
            Quickstart::Pageviews => vec![
                Value::Int64(n),
                Value::Int64(EPOCH_MS + n * 1000),
                Value::String(format!("User_{}", r % 10)),
                Value::String(format!("Page_{}", (r >> 8) % 100)),
            ],
        };
        let key = match &value[2] {
            Value::String(_) if self.quickstart == Quickstart::Pageviews => value[2].clone(),
            _ => value[1].clone(),
        };
        let value = Struct::from_values(self.schema.clone(), value)
            .map(Value::Struct)
            .unwrap_or(Value::Null);
        Record {
            topic: self.topic.clone(),
            key: Data::schemaless(key),
            value: Data::new(self.schema.clone(), value),
            ..Record::default()
        }
    }

    /// How many records are due now, given the interval.
    fn due(&self, max_records: usize) -> usize {
        let mut due = max_records as i64;
        if !self.interval.is_zero() {
            let elapsed = self.started.elapsed().as_millis() as i64;
            let produced = self.next - self.first;
            let allowed = elapsed / self.interval.as_millis().max(1) as i64 + 1;
            due = due.min(allowed - produced);
        }
        if let Some(limit) = self.limit {
            due = due.min(limit - self.next);
        }
        due.max(0) as usize
    }
}

impl Source for Datagen {
    type Config = DatagenConfig;

    fn metadata() -> Metadata {
        Metadata::new(
            "DatagenConnector",
            env!("CARGO_PKG_VERSION"),
            "Generates deterministic synthetic records with a schema.",
        )
        .aliases(&[
            "datagen",
            "io.confluent.kafka.connect.datagen.DatagenConnector",
        ])
    }

    fn open(config: DatagenConfig, resume: Vec<SourcePosition>) -> Result<Self, PluginError> {
        let quickstart = match config.quickstart.to_ascii_lowercase().as_str() {
            "users" => Quickstart::Users,
            "pageviews" => Quickstart::Pageviews,
            other => return Err(PluginError::config(format!("unknown quickstart {other}"))),
        };
        let schema = Arc::new(match quickstart {
            Quickstart::Users => users_schema(),
            Quickstart::Pageviews => pageviews_schema(),
        });
        let next = resume
            .iter()
            .filter(|p| offset_get(&p.partition, PARTITION_KEY) == Some(&Scalar::Integer(0)))
            .find_map(|p| match offset_get(&p.offset, OFFSET_KEY) {
                Some(Scalar::Integer(done)) => Some(*done),
                _ => None,
            })
            .unwrap_or(0);
        if next > 0 {
            wasmconnect_sdk::info!("Resuming datagen at iteration {next}.");
        }
        Ok(Datagen {
            topic: Arc::from(config.topic),
            quickstart,
            schema,
            seed: config.seed,
            interval: Duration::from_millis(config.max_interval_ms),
            next,
            limit: (config.iterations >= 0).then_some(config.iterations),
            started: Instant::now(),
            first: next,
            partition: Arc::new(offset_map([(PARTITION_KEY, 0i64)])),
        })
    }

    fn poll(&mut self, max_records: usize) -> Result<Vec<SourceRecord>, PluginError> {
        let due = self.due(max_records);
        let mut out = Vec::with_capacity(due);
        for _ in 0..due {
            let record = self.generate(self.next);
            self.next += 1;
            out.push(SourceRecord {
                position: SourcePosition {
                    partition: self.partition.clone(),
                    offset: offset_map([(OFFSET_KEY, self.next)]),
                },
                record,
            });
        }
        Ok(out)
    }
}

wasmconnect_sdk::export_source!(Datagen);

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new()
            .with("kafka.topic", "users")
            .with("max.interval", "0")
            .with("iterations", "10")
    }

    #[test]
    fn generates_the_configured_count_then_stops() {
        let mut h = testing::SourceHarness::<Datagen>::open(config(), vec![]).expect("open");
        let first = h.poll(4).expect("poll");
        assert_eq!(first.len(), 4);
        assert_eq!(h.poll(100).expect("poll").len(), 6);
        assert!(h.poll(100).expect("poll").is_empty());
        let id = first[3]
            .record
            .value
            .value()
            .as_struct()
            .and_then(|s| s.get("id"))
            .cloned();
        assert_eq!(id, Some(Value::Int64(3)));
        assert_eq!(first[3].position.offset, offset_map([(OFFSET_KEY, 4i64)]));
    }

    #[test]
    fn resumes_the_same_sequence() {
        let mut whole = testing::SourceHarness::<Datagen>::open(config(), vec![]).expect("open");
        let all = whole.poll(10).expect("poll");
        let resume = vec![all[5].position.clone()];
        let mut resumed = testing::SourceHarness::<Datagen>::open(config(), resume).expect("open");
        let rest = resumed.poll(10).expect("poll");
        assert_eq!(rest.len(), 4);
        assert_eq!(rest[0].record, all[6].record);
    }

    #[test]
    fn bad_config_names_the_key() {
        let bad = Config::new()
            .with("kafka.topic", "t")
            .with("iterations", "many");
        let issues = Datagen::validate(&bad);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "iterations");
        assert!(
            !Datagen::validate(&Config::new()).is_empty(),
            "kafka.topic is required"
        );
    }
}
