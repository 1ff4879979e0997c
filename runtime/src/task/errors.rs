//! The error policy at work: a failure is classified by the stage it happened in; what is
//! retriable is retried first; then `errors.tolerance=none` fails the task, and `all` logs
//! the record (`errors.log.*`), sends it to the dead letter queue with Kafka's
//! `__connect.errors.*` headers, and lets processing go on.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header as KafkaHeader, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use wasmconnect_sdk::data::SourcePosition;

use super::{TaskContext, TaskFailure};
use crate::config::errors::ErrorConfig;
use crate::config::worker::prefixed;
use crate::herder::offsets::map_to_json;
use crate::kafka::{TopicSpec, client_config};

/// Kafka Connect's `Stage`: where a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
    TaskPut,
    KafkaProduce,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// The exception class Kafka Connect would report for bad data.
pub const DATA_EXCEPTION: &str = "org.apache.kafka.connect.errors.DataException";
/// ... for a record a connector could not write.
pub const CONNECT_EXCEPTION: &str = "org.apache.kafka.connect.errors.ConnectException";
/// ... for a transient failure that outlasted `errors.retry.timeout`.
pub const RETRIABLE_EXCEPTION: &str = "org.apache.kafka.connect.errors.RetriableException";

/// Why one record failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub stage: Stage,
    /// The class that was executing: the converter, the transform or the connector.
    pub class: String,
    pub exception: &'static str,
    pub message: String,
}

/// A record as it came into the task: the consumed bytes (sink), or the source's record
/// written by the JsonConverter with schemas (source; it had no bytes yet).
#[derive(Debug, Clone, Default)]
pub struct Original {
    /// Shared with the record's own topic: no allocation per record.
    pub topic: Arc<str>,
    /// -1 for a source record.
    pub partition: i32,
    /// -1 for a source record.
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// A source record's partition and offset maps, as JSON.
    pub source_position: Option<(String, String)>,
}

impl Original {
    /// Where the record came from; with its bytes only when `bytes` (the DLQ or the log
    /// needs them).
    pub fn from_message(m: &BorrowedMessage<'_>, topic: Arc<str>, bytes: bool) -> Original {
        let mut o = Original {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            ..Original::default()
        };
        if bytes {
            o.key = m.key().map(<[u8]>::to_vec);
            o.value = m.payload().map(<[u8]>::to_vec);
            if let Some(hs) = m.headers() {
                o.headers = hs
                    .iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect();
            }
        }
        o
    }

    /// A source record: no Kafka partition or offset yet.
    pub fn at_source(topic: Arc<str>, timestamp: Option<i64>) -> Original {
        Original {
            topic,
            partition: -1,
            offset: -1,
            timestamp,
            ..Original::default()
        }
    }

    /// Adds a source record's partition and offset maps (written only for a failed record).
    pub fn set_source_position(&mut self, position: &SourcePosition) {
        self.source_position = Some((
            map_to_json(&position.partition).to_string(),
            map_to_json(&position.offset).to_string(),
        ));
    }

    fn at(&self) -> String {
        match &self.source_position {
            Some((partition, offset)) => format!(
                "for topic {} from source partition {partition} offset {offset}",
                self.topic
            ),
            None => format!(
                "at topic {} partition {} offset {}",
                self.topic, self.partition, self.offset
            ),
        }
    }
}

/// Applies a connector's error policy in one task.
pub struct ErrorHandler {
    config: ErrorConfig,
    dlq: Option<FutureProducer>,
}

impl std::fmt::Debug for ErrorHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorHandler")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ErrorHandler {
    pub fn new(config: ErrorConfig) -> ErrorHandler {
        ErrorHandler { config, dlq: None }
    }

    /// The handler of a task's connector config (`errors.*`).
    ///
    /// # Errors
    /// When the policy's config is invalid.
    pub fn for_task(ctx: &TaskContext) -> Result<ErrorHandler, TaskFailure> {
        crate::config::errors::parse(&ctx.connector_config)
            .map(ErrorHandler::new)
            .map_err(|issues| TaskFailure(super::join_issues(&issues)))
    }

    pub fn config(&self) -> &ErrorConfig {
        &self.config
    }

    /// Whether records must keep their original bytes (for the DLQ or the error log).
    pub fn keeps_bytes(&self) -> bool {
        self.config.dlq.is_some() || (self.config.log && self.config.log_messages)
    }

    /// One failed record: fails the task under `errors.tolerance=none`; otherwise logs it,
    /// writes it to the DLQ (waiting for the acknowledgement, so that its offset is never
    /// committed before it is safe) and lets the task go on.
    ///
    /// # Errors
    /// The task's failure: tolerance exceeded, or the DLQ could not be written.
    pub async fn handle(
        &mut self,
        ctx: &TaskContext,
        original: &Original,
        failure: &Failure,
    ) -> Result<(), TaskFailure> {
        if self.config.log {
            self.log(ctx, original, failure);
        }
        if !self.config.tolerate_all {
            return Err(TaskFailure(format!(
                "Tolerance exceeded in error handler: {} failed for the record {} in {}: {}: {}",
                failure.stage.name(),
                original.at(),
                failure.class,
                failure.exception,
                failure.message
            )));
        }
        if self.config.dlq.is_some() {
            self.send_to_dlq(ctx, original, failure).await?;
        }
        Ok(())
    }

    fn log(&self, ctx: &TaskContext, original: &Original, failure: &Failure) {
        let show = |b: &Option<Vec<u8>>| {
            b.as_deref().map_or_else(
                || "null".to_owned(),
                |b| String::from_utf8_lossy(b).into_owned(),
            )
        };
        if self.config.log_messages {
            tracing::error!(
                connector = %ctx.connector, task = ctx.task_id, stage = failure.stage.name(),
                class = %failure.class, topic = %original.topic, partition = original.partition,
                offset = original.offset, timestamp = ?original.timestamp,
                key = %show(&original.key), value = %show(&original.value),
                error = %failure.message,
                "Error encountered in task {}-{}.", ctx.connector, ctx.task_id
            );
        } else {
            tracing::error!(
                connector = %ctx.connector, task = ctx.task_id, stage = failure.stage.name(),
                class = %failure.class, topic = %original.topic, partition = original.partition,
                offset = original.offset, error = %failure.message,
                "Error encountered in task {}-{}.", ctx.connector, ctx.task_id
            );
        }
    }

    async fn producer(&mut self, ctx: &TaskContext) -> Result<&FutureProducer, TaskFailure> {
        if self.dlq.is_none() {
            let Some(dlq) = &self.config.dlq else {
                return Err(TaskFailure("No dead letter queue is configured".into()));
            };
            let spec = TopicSpec {
                partitions: 1,
                replication_factor: dlq.replication_factor,
                configs: Default::default(),
            };
            ctx.worker
                .topics
                .ensure(&dlq.topic, &spec)
                .await
                .map_err(|e| TaskFailure::new("Cannot create the dead letter queue topic", e))?;
            let client_id = format!("connector-dlq-producer-{}", ctx.task_name());
            let producer: FutureProducer = client_config(
                &ctx.worker.bootstrap,
                &[
                    ("client.id", &client_id),
                    ("acks", "all"),
                    ("linger.ms", "5"),
                ],
                &[
                    &ctx.worker.config.prefixed("producer."),
                    &prefixed(&ctx.connector_config, "producer.override."),
                ],
            )
            .create()
            .map_err(|e| TaskFailure::new("Cannot create the dead letter queue producer", e))?;
            self.dlq = Some(producer);
        }
        self.dlq
            .as_ref()
            .ok_or_else(|| TaskFailure("The dead letter queue producer is missing".into()))
    }

    async fn send_to_dlq(
        &mut self,
        ctx: &TaskContext,
        original: &Original,
        failure: &Failure,
    ) -> Result<(), TaskFailure> {
        let Some(dlq) = self.config.dlq.clone() else {
            return Ok(());
        };
        let mut headers = OwnedHeaders::new();
        for (k, v) in &original.headers {
            headers = headers.insert(KafkaHeader {
                key: k,
                value: v.as_deref(),
            });
        }
        if dlq.context_headers {
            for (k, v) in context_headers(ctx, original, failure) {
                headers = headers.insert(KafkaHeader {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&dlq.topic).headers(headers);
        if let Some(k) = original.key.as_deref() {
            record = record.key(k);
        }
        if let Some(v) = original.value.as_deref() {
            record = record.payload(v);
        }
        if let Some(ts) = original.timestamp {
            record = record.timestamp(ts);
        }
        let producer = self.producer(ctx).await?;
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| TaskFailure::new("Cannot write to the dead letter queue", e))?;
        Ok(())
    }
}

/// Kafka's `DeadLetterQueueReporter` headers, with the same names and string values; a
/// source record adds its source partition and offset.
fn context_headers(
    ctx: &TaskContext,
    original: &Original,
    failure: &Failure,
) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("__connect.errors.topic", original.topic.to_string()),
        ("__connect.errors.partition", original.partition.to_string()),
        ("__connect.errors.offset", original.offset.to_string()),
        ("__connect.errors.connector.name", ctx.connector.clone()),
        ("__connect.errors.task.id", ctx.task_id.to_string()),
        ("__connect.errors.stage", failure.stage.name().to_owned()),
        ("__connect.errors.class.name", failure.class.clone()),
        (
            "__connect.errors.exception.class.name",
            failure.exception.to_owned(),
        ),
        (
            "__connect.errors.exception.message",
            failure.message.clone(),
        ),
        (
            "__connect.errors.exception.stacktrace",
            format!("{}: {}", failure.exception, failure.message),
        ),
    ];
    if let Some((partition, offset)) = &original.source_position {
        out.push(("__connect.errors.source.partition", partition.clone()));
        out.push(("__connect.errors.source.offset", offset.clone()));
    }
    out
}

/// Kafka's retry schedule for a retriable failure: 300 ms doubling up to
/// `errors.retry.delay.max.ms` with jitter, until `errors.retry.timeout` has passed.
#[derive(Debug)]
pub struct Retry {
    started: Instant,
    attempt: u32,
    timeout: Option<Duration>,
    delay_max: Duration,
}

/// What a retry wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryStep {
    Again,
    /// `errors.retry.timeout` has passed: the error policy takes over.
    Expired,
    Cancelled,
}

const RETRY_DELAY_MIN: Duration = Duration::from_millis(300);

impl Retry {
    pub fn new(config: &ErrorConfig) -> Retry {
        Retry {
            started: Instant::now(),
            attempt: 0,
            timeout: config.retry_timeout,
            delay_max: config.retry_delay_max,
        }
    }

    /// Waits before the next attempt, or says the time is up.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> RetryStep {
        let elapsed = self.started.elapsed();
        if let Some(timeout) = self.timeout
            && elapsed >= timeout
        {
            return RetryStep::Expired;
        }
        let mut delay = RETRY_DELAY_MIN
            .saturating_mul(2_u32.saturating_pow(self.attempt.min(20)))
            .min(self.delay_max);
        if delay == self.delay_max {
            delay += jitter(delay / 10);
        }
        if let Some(timeout) = self.timeout {
            delay = delay.min(timeout.saturating_sub(elapsed));
        }
        self.attempt += 1;
        tokio::select! {
            () = cancel.cancelled() => RetryStep::Cancelled,
            () = tokio::time::sleep(delay) => RetryStep::Again,
        }
    }
}

/// Up to `max` of jitter, from the clock's low bits (no need for a random generator).
fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(nanos % max_ms)
}
