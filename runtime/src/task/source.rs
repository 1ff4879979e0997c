//! The source task loop.

mod poller;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use wasmconnect_sdk::data::{Data, OffsetMap, Record, SourcePosition, SourceRecord};

use super::chain::{Chain, Transformed};
use super::errors::{DATA_EXCEPTION, ErrorHandler, Failure, Original, Stage};
use super::{Backoff, State, Status, Target, TaskContext, TaskFailure, set_status};
use crate::config::connector::{self, TopicCreation};
use crate::config::worker::prefixed;
use crate::convert::{ConvertError, Converter, Converters, JsonConverter};
use crate::herder::offsets::offset_key;
use crate::kafka::client_config;
use crate::plugin::CallError;
use poller::{NextBatch, Poller, TaskName};

/// How long a source with nothing to give is left alone before the next poll.
const IDLE_POLL_DELAY: Duration = Duration::from_millis(50);

/// Records sent but not yet acknowledged, at most: the task polls again while Kafka
/// acknowledges earlier batches, and waits when this many are outstanding.
const MAX_IN_FLIGHT: usize = 20_000;

/// How long a stopping task waits for its records in flight to be acknowledged.
const FINAL_DRAIN: Duration = Duration::from_secs(10);

/// How long a starting source task waits to see offsets other workers wrote (distributed).
const OFFSET_SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a source task until cancelled or failed; the outcome is left in its status.
pub async fn run_source(mut ctx: TaskContext) {
    let outcome = source_loop(&mut ctx).await;
    super::finish(&ctx, outcome);
}

struct SourceTask {
    plugin: Poller,
    producer: FutureProducer,
    converters: Converters,
    chain: Chain,
    errors: ErrorHandler,
    /// Writes a source record for the dead letter queue (it has no bytes of its own yet).
    dlq_converter: JsonConverter,
    creation: TopicCreation,
    known_topics: HashSet<String>,
    /// Records sent, oldest first, with their positions; a position counts only once its
    /// record and every record before it are acknowledged. Records filtered out or
    /// skipped by the error policy have no delivery to wait for.
    in_flight: VecDeque<(Option<DeliveryFuture>, SourcePosition)>,
    /// Positions acknowledged but not yet flushed to the offset store.
    unflushed: BTreeMap<String, SourcePosition>,
    /// The source partition of the last position recorded, and its offset-store key.
    last_key: Option<(Arc<OffsetMap>, String)>,
    last_flush: Instant,
}

fn call_failure(what: &str, err: CallError) -> TaskFailure {
    TaskFailure::new(what, err)
}

/// Why one record could not be sent.
enum SendError {
    /// The record failed a converter: the error policy decides.
    Record(Failure),
    /// The task cannot go on.
    Task(TaskFailure),
}

impl From<TaskFailure> for SendError {
    fn from(f: TaskFailure) -> SendError {
        SendError::Task(f)
    }
}

impl SourceTask {
    /// Creates the topic the first time this task writes to it; notes it as active every
    /// time (a reset of the active topics forgets it, and the next record records it again).
    async fn ensure_topic(&mut self, ctx: &TaskContext, topic: &str) -> Result<(), TaskFailure> {
        if !self.known_topics.contains(topic) {
            if ctx.worker.config.topic_creation_enable {
                ctx.worker
                    .topics
                    .ensure(topic, self.creation.spec_for(topic))
                    .await
                    .map_err(|e| TaskFailure::new("Topic creation failed", e))?;
            }
            self.known_topics.insert(topic.to_owned());
        }
        ctx.note_topic(topic);
        Ok(())
    }

    /// A source record as the error policy shows it: its bytes written by the JsonConverter
    /// with schemas, when the DLQ or the error log needs them. The source position is
    /// added only if the record fails.
    fn original(&self, record: &Record) -> Original {
        let mut o = Original::at_source(record.topic.clone(), record.timestamp);
        o.partition = record.partition.unwrap_or(-1);
        if self.errors.keeps_bytes() {
            let write = |d: &Data| self.dlq_converter.from_connect(d).ok().flatten();
            o.key = write(&record.key);
            o.value = write(&record.value);
            o.headers = record
                .headers
                .iter()
                .map(|h| (h.key.clone(), write(&h.value)))
                .collect();
        }
        o
    }

    /// Transforms, converts and sends a batch. Acknowledgements are collected later
    /// ([`Self::settle`]); positions are recorded only for acknowledged records, in order.
    async fn produce(
        &mut self,
        ctx: &TaskContext,
        records: Vec<SourceRecord>,
    ) -> Result<(), TaskFailure> {
        let (records, positions): (Vec<Record>, Vec<SourcePosition>) = records
            .into_iter()
            .map(|sr| (sr.record, sr.position))
            .unzip();
        // The error policy shows records as the source gave them (before the transforms).
        let originals: Vec<Original> = if self.chain.is_empty() {
            Vec::new()
        } else {
            records.iter().map(|r| self.original(r)).collect()
        };
        let results = if self.chain.is_empty() {
            records.into_iter().map(Transformed::Keep).collect()
        } else {
            self.chain.apply(records).await?
        };
        for (i, (result, position)) in results.into_iter().zip(positions).enumerate() {
            let (mut original, failure) = match result {
                Transformed::Keep(record) => match self.send(ctx, &record).await {
                    Ok(future) => {
                        self.in_flight.push_back((Some(future), position));
                        continue;
                    }
                    Err(SendError::Task(f)) => return Err(f),
                    Err(SendError::Record(failure)) => (self.original(&record), failure),
                },
                Transformed::Drop => {
                    self.in_flight.push_back((None, position));
                    continue;
                }
                Transformed::Failed { class, message } => {
                    let original = originals.get(i).cloned().unwrap_or_default();
                    let failure = Failure {
                        stage: Stage::Transformation,
                        class,
                        exception: DATA_EXCEPTION,
                        message,
                    };
                    (original, failure)
                }
            };
            original.set_source_position(&position);
            self.errors.handle(ctx, &original, &failure).await?;
            self.in_flight.push_back((None, position));
        }
        self.settle(ctx, MAX_IN_FLIGHT).await
    }

    /// Converts one record and hands it to the producer.
    async fn send(&mut self, ctx: &TaskContext, r: &Record) -> Result<DeliveryFuture, SendError> {
        self.ensure_topic(ctx, &r.topic).await?;
        let failure = |stage, converter: &Converter, e: ConvertError| {
            SendError::Record(Failure {
                stage,
                class: converter.class_name().to_owned(),
                exception: DATA_EXCEPTION,
                message: e.to_string(),
            })
        };
        let c = &self.converters;
        let key = c
            .key
            .from_connect(&r.key)
            .map_err(|e| failure(Stage::KeyConverter, &c.key, e))?;
        let value = c
            .value
            .from_connect(&r.value)
            .map_err(|e| failure(Stage::ValueConverter, &c.value, e))?;
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&r.topic);
        // librdkafka allocates a header list: only for records that have headers.
        if !r.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for h in &r.headers {
                let bytes = c
                    .header
                    .from_connect(&h.value)
                    .map_err(|e| failure(Stage::HeaderConverter, &c.header, e))?;
                headers = headers.insert(KafkaHeader {
                    key: &h.key,
                    value: bytes.as_deref(),
                });
            }
            record = record.headers(headers);
        }
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        if let Some(v) = value.as_deref() {
            record = record.payload(v);
        }
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        let mut pending = record;
        loop {
            match self.producer.send_result(pending) {
                Ok(f) => return Ok(f),
                Err((e, rec))
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ) =>
                {
                    pending = rec;
                    self.producer
                        .poll(Timeout::After(Duration::from_millis(10)));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    return Err(SendError::Task(TaskFailure::new("Cannot send a record", e)));
                }
            }
        }
    }

    /// Records the positions of acknowledged records, oldest first, stopping at the first
    /// one still in flight; then waits until at most `keep` records are in flight (0: all
    /// acknowledged).
    async fn settle(&mut self, ctx: &TaskContext, keep: usize) -> Result<(), TaskFailure> {
        use futures::FutureExt;
        loop {
            let must_wait = self.in_flight.len() > keep;
            let Some((future, _)) = self.in_flight.front_mut() else {
                break;
            };
            // `Some(None)`: nothing was sent, the position counts at once.
            let outcome = match future {
                None => Some(None),
                Some(f) if must_wait => Some(Some(f.await)),
                Some(f) => f.now_or_never().map(Some),
            };
            let Some(outcome) = outcome else {
                break;
            };
            let Some((_, position)) = self.in_flight.pop_front() else {
                break;
            };
            match outcome {
                None | Some(Ok(Ok(_))) => {}
                Some(Ok(Err((e, message)))) => {
                    // KIP-779: with errors.tolerance=all a record Kafka refused is skipped.
                    let mut original = Original::at_source(
                        message.topic().into(),
                        message.timestamp().to_millis(),
                    );
                    original.key = message.key().map(<[u8]>::to_vec);
                    original.value = message.payload().map(<[u8]>::to_vec);
                    original.set_source_position(&position);
                    let failure = Failure {
                        stage: Stage::KafkaProduce,
                        class: "org.apache.kafka.clients.producer.KafkaProducer".into(),
                        exception: "org.apache.kafka.common.KafkaException",
                        message: format!("Kafka did not acknowledge the record: {e}"),
                    };
                    self.errors.handle(ctx, &original, &failure).await?;
                }
                Some(Err(_)) => {
                    return Err(TaskFailure(
                        "The producer was closed before a record was acknowledged".into(),
                    ));
                }
            }
            self.record_position(ctx, position);
        }
        Ok(())
    }

    /// Keeps an acknowledged position for the next flush, the latest per partition. The
    /// records of a batch mostly share a partition (one map, which the batch frame's
    /// decoder shares between them): its key is worked out once.
    fn record_position(&mut self, ctx: &TaskContext, position: SourcePosition) {
        match &self.last_key {
            Some((partition, key))
                if Arc::ptr_eq(partition, &position.partition)
                    || *partition == position.partition =>
            {
                if let Some(kept) = self.unflushed.get_mut(key) {
                    *kept = position;
                } else {
                    self.unflushed.insert(key.clone(), position);
                }
            }
            _ => {
                let key = offset_key(&ctx.connector, &position.partition);
                self.last_key = Some((position.partition.clone(), key.clone()));
                self.unflushed.insert(key, position);
            }
        }
    }

    /// Writes acknowledged positions to the offset store and tells the plugin.
    async fn flush_offsets(&mut self, ctx: &TaskContext) -> Result<(), TaskFailure> {
        self.last_flush = Instant::now();
        self.settle(ctx, MAX_IN_FLIGHT).await?;
        if self.unflushed.is_empty() {
            return Ok(());
        }
        let positions: Vec<SourcePosition> =
            std::mem::take(&mut self.unflushed).into_values().collect();
        ctx.worker.offsets.put(&ctx.connector, &positions);
        ctx.worker
            .offsets
            .flush()
            .await
            .map_err(|e| TaskFailure::new("Cannot store source offsets", e))?;
        self.plugin.commit(positions).await;
        Ok(())
    }
}

async fn source_loop(ctx: &mut TaskContext) -> Result<(), TaskFailure> {
    let client_id = format!("connector-producer-{}", ctx.task_name());
    // Kafka Connect's source producer (`Worker.baseProducerConfigs`): every replica
    // acknowledges, one request in flight so that a retry cannot reorder records, and no
    // idempotence, which only exactly-once support needs. (On Tansu, idempotence also
    // held the first acknowledgement for 0.4-0.9 s and halved the source's throughput.)
    let producer: FutureProducer = client_config(
        &ctx.worker.bootstrap,
        &[
            ("client.id", &client_id),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "1"),
            ("enable.idempotence", "false"),
            ("linger.ms", "5"),
        ],
        &[
            &ctx.worker.config.prefixed("producer."),
            &prefixed(&ctx.connector_config, "producer.override."),
        ],
    )
    .create()
    .map_err(|e| TaskFailure::new("Cannot create the producer", e))?;
    let converters = Converters::from_configs(&ctx.worker.config.raw, &ctx.connector_config)
        .map_err(|(key, e)| TaskFailure(format!("{key}: {e}")))?;
    let creation = TopicCreation::from_config(&ctx.connector_config)
        .map_err(|i| TaskFailure(i.to_string()))?;
    let limits = connector::limits(&ctx.connector_config, ctx.worker.config.limits);
    let task_config = ctx.plugin.task_config(&ctx.config);
    let mut plugin = ctx
        .plugin
        .source(limits, &task_config)
        .await
        .map_err(|e| TaskFailure::new("Cannot start the source plugin", e))?;
    ctx.worker
        .offsets
        .sync(OFFSET_SYNC_TIMEOUT)
        .await
        .map_err(|e| TaskFailure::new("Cannot read the latest source offsets", e))?;
    let resume = ctx.worker.offsets.positions(&ctx.connector);
    plugin
        .open(&task_config, &resume)
        .await
        .map_err(|e| call_failure("Source plugin failed to open", e))?;
    let chain = Chain::for_task(ctx, limits).await?;
    let errors = ErrorHandler::for_task(ctx)?;
    let dlq_converter = JsonConverter::new(&BTreeMap::new())
        .map_err(|e| TaskFailure::new("Cannot build the dead letter queue converter", e))?;
    let plugin = Poller::start(
        plugin,
        TaskName {
            connector: ctx.connector.clone(),
            task_id: ctx.task_id,
        },
    );
    let mut task = SourceTask {
        plugin,
        producer,
        converters,
        chain,
        errors,
        dlq_converter,
        creation,
        known_topics: HashSet::new(),
        in_flight: VecDeque::new(),
        unflushed: BTreeMap::new(),
        last_key: None,
        last_flush: Instant::now(),
    };
    let max_records =
        u32::try_from(connector::batch_max_records(&ctx.connector_config)).unwrap_or(u32::MAX);
    let flush_interval = ctx.worker.config.offset_flush_interval;
    set_status(&ctx.status, Status::new(State::Running));
    tracing::info!(connector = %ctx.connector, task = ctx.task_id, resumed = resume.len(), "Source task started.");

    let mut backoff = Backoff::new();
    // The batch asked for while the last one was being sent. It is taken (and sent) before
    // the loop looks at cancellation or pausing: its records have left the source.
    let mut next: Option<NextBatch> = None;
    let result = loop {
        if next.is_none() {
            if ctx.cancel.is_cancelled() {
                break Ok(());
            }
            if *ctx.target.borrow() == Target::Pause {
                if let Err(e) = task.settle(ctx, 0).await {
                    break Err(e);
                }
                if let Err(e) = task.flush_offsets(ctx).await {
                    break Err(e);
                }
                set_status(&ctx.status, Status::new(State::Paused));
                if !ctx.wait_while_paused().await {
                    break Ok(());
                }
                set_status(&ctx.status, Status::new(State::Running));
                continue;
            }
        }
        let batch = match next.take() {
            Some(batch) => batch,
            None => task.plugin.poll(max_records).await,
        };
        let records = match batch.take().await {
            Ok(r) => {
                backoff.reset();
                r
            }
            Err(e) if e.is_retriable() => {
                tracing::warn!(connector = %ctx.connector, task = ctx.task_id, error = %e, "Source poll failed; retrying.");
                if !backoff.wait(&ctx.cancel).await {
                    break Ok(());
                }
                continue;
            }
            Err(e) => break Err(call_failure("Source plugin failed to poll", e)),
        };
        let idle = records.is_empty();
        // A source that had records likely has more: the plugin reads them while these
        // are converted and sent.
        if !idle && !ctx.cancel.is_cancelled() && *ctx.target.borrow() == Target::Run {
            next = Some(task.plugin.poll(max_records).await);
        }
        if !idle && let Err(e) = task.produce(ctx, records).await {
            break Err(e);
        }
        if task.last_flush.elapsed() >= flush_interval
            && let Err(e) = task.flush_offsets(ctx).await
        {
            break Err(e);
        }
        if idle {
            tokio::select! {
                () = ctx.cancel.cancelled() => {}
                _ = ctx.target.changed() => {}
                () = tokio::time::sleep(IDLE_POLL_DELAY) => {}
            }
        }
    };
    // Acknowledged records' offsets are stored even when the task fails: wait a little for
    // the records still in flight, then store what was acknowledged.
    let drained = match tokio::time::timeout(FINAL_DRAIN, task.settle(ctx, 0)).await {
        Ok(drained) => drained,
        Err(_) => {
            tracing::warn!(connector = %ctx.connector, task = ctx.task_id, in_flight = task.in_flight.len(), "Records still unacknowledged at shutdown; their offsets are not stored.");
            Ok(())
        }
    };
    let flushed = task.flush_offsets(ctx).await;
    task.plugin.close().await;
    task.chain.close().await;
    result.and(drained).and(flushed)
}
