//! A Kafka topic read as a log, like Connect's `KafkaBasedLog`: a consumer with no group,
//! assigned every partition from the beginning, hands each record to a callback on its own
//! thread; "read to end" waits until it has passed the end offsets taken at the call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::kafka::{KafkaError, TopicCreator, TopicSpec, client_config};

/// One record read from the log.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// The record's timestamp (milliseconds since the epoch), when it has one.
    pub timestamp: Option<i64>,
}

/// The log could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Topic(String),
    #[error("reading {topic} to its end took longer than {}ms", timeout.as_millis())]
    Timeout { topic: String, timeout: Duration },
    #[error("cannot write to {topic}: {message}")]
    Write { topic: String, message: String },
}

/// Where a log's topic comes from and how it is made.
#[derive(Debug, Clone)]
pub struct LogSpec {
    /// The worker setting that names the topic, for error messages (`config.storage.topic`).
    pub setting: &'static str,
    pub topic: String,
    pub create: TopicSpec,
    /// The config topic must have exactly one partition.
    pub single_partition: bool,
    /// The client id (`<group.id>-configs`, say).
    pub client_id: String,
}

/// A topic read from the beginning and written with keys.
pub struct TopicLog {
    topic: String,
    producer: FutureProducer,
    consumer: Arc<BaseConsumer>,
    partitions: i32,
    /// The next offset to read, by partition, after the callback has seen the record.
    progress: watch::Receiver<BTreeMap<i32, i64>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for TopicLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicLog")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

impl TopicLog {
    /// Creates the topic when it is missing, checks it, and starts reading it from the
    /// beginning, calling `apply` for every record in order.
    ///
    /// # Errors
    /// When the topic cannot be created or has the wrong shape, or the clients cannot start.
    pub async fn open(
        bootstrap: &str,
        client_layers: &[&BTreeMap<String, String>],
        creator: &TopicCreator,
        spec: &LogSpec,
        apply: impl FnMut(LogRecord) + Send + 'static,
    ) -> Result<TopicLog, LogError> {
        creator.ensure(&spec.topic, &spec.create).await?;
        let consumer: BaseConsumer = client_config(
            bootstrap,
            &[
                ("client.id", &spec.client_id),
                // librdkafka wants a group even for assigned partitions; nothing joins it
                // or commits to it.
                ("group.id", &spec.client_id),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("fetch.wait.max.ms", "50"),
            ],
            &[],
        )
        .create()
        .map_err(KafkaError::from)?;
        let consumer = Arc::new(consumer);
        let partitions = {
            let (c, topic) = (consumer.clone(), spec.topic.clone());
            tokio::task::spawn_blocking(move || partition_count(&c, &topic))
                .await
                .map_err(|e| LogError::Topic(e.to_string()))??
        };
        if spec.single_partition && partitions != 1 {
            return Err(LogError::Topic(format!(
                "Topic '{}' supplied via the '{}' property is required to have a single partition in order to guarantee consistency of connector configurations, but found {partitions} partitions.",
                spec.topic, spec.setting
            )));
        }
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&spec.topic, p, Offset::Beginning)
                .map_err(KafkaError::from)?;
        }
        consumer.assign(&tpl).map_err(KafkaError::from)?;
        let producer: FutureProducer = client_config(
            bootstrap,
            &[
                ("client.id", &spec.client_id),
                ("acks", "all"),
                // Java's default partitioner, so keys land where Java workers put them.
                ("partitioner", "murmur2_random"),
                ("linger.ms", "0"),
            ],
            client_layers,
        )
        .create()
        .map_err(KafkaError::from)?;
        let (tx, progress) = watch::channel((0..partitions).map(|p| (p, 0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        spawn_reader(
            consumer.clone(),
            spec.topic.clone(),
            tx,
            stop.clone(),
            apply,
        );
        Ok(TopicLog {
            topic: spec.topic.clone(),
            producer,
            consumer,
            partitions,
            progress,
            stop,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits until every record written before the call has been applied.
    ///
    /// # Errors
    /// When the end offsets cannot be read or the reader does not get there in `timeout`.
    pub async fn read_to_end(&self, timeout: Duration) -> Result<(), LogError> {
        let ends = {
            let (c, topic, n) = (self.consumer.clone(), self.topic.clone(), self.partitions);
            tokio::task::spawn_blocking(move || -> Result<Vec<(i32, i64)>, KafkaError> {
                (0..n)
                    .map(|p| {
                        c.fetch_watermarks(&topic, p, METADATA_TIMEOUT)
                            .map(|(_, high)| (p, high))
                            .map_err(KafkaError::from)
                    })
                    .collect()
            })
            .await
            .map_err(|e| LogError::Topic(e.to_string()))??
        };
        let mut progress = self.progress.clone();
        let reached = progress.wait_for(|seen| {
            ends.iter()
                .all(|(p, end)| seen.get(p).copied().unwrap_or(0) >= *end)
        });
        match tokio::time::timeout(timeout, reached).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(LogError::Topic(format!(
                "the reader of {} stopped",
                self.topic
            ))),
            Err(_) => Err(LogError::Timeout {
                topic: self.topic.clone(),
                timeout,
            }),
        }
    }

    /// Writes one record and waits for the broker's acknowledgement.
    ///
    /// # Errors
    /// When the broker does not take it.
    pub async fn send(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), LogError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(drop)
            .map_err(|(e, _)| LogError::Write {
                topic: self.topic.clone(),
                message: e.to_string(),
            })
    }
}

impl Drop for TopicLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn partition_count(consumer: &BaseConsumer, topic: &str) -> Result<i32, LogError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(KafkaError::from)?;
    let t = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| LogError::Topic(format!("topic {topic} does not exist")))?;
    if let Some(e) = t.error() {
        return Err(LogError::Topic(format!(
            "cannot read the metadata of topic {topic}: {e:?}"
        )));
    }
    Ok(t.partitions().len() as i32)
}

/// Polls on a thread of its own (librdkafka's poll blocks) until the log is dropped.
fn spawn_reader(
    consumer: Arc<BaseConsumer>,
    topic: String,
    progress: watch::Sender<BTreeMap<i32, i64>>,
    stop: Arc<AtomicBool>,
    mut apply: impl FnMut(LogRecord) + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name(format!("log-{topic}"))
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(m)) => {
                        let (partition, offset) = (m.partition(), m.offset());
                        apply(LogRecord {
                            partition,
                            offset,
                            key: m.key().map(<[u8]>::to_vec),
                            value: m.payload().map(<[u8]>::to_vec),
                            timestamp: m.timestamp().to_millis(),
                        });
                        progress.send_modify(|p| {
                            p.insert(partition, offset + 1);
                        });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(topic = %topic, error = %e, "Error reading an internal topic; retrying.");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "Cannot start the internal topic reader thread.");
    }
}
