//! The sink task loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use wasmconnect_sdk::data::{Header, Record, RecordFailure};

use super::chain::{Chain, Transformed};
use super::errors::{
    CONNECT_EXCEPTION, DATA_EXCEPTION, ErrorHandler, Failure, Original, RETRIABLE_EXCEPTION, Retry,
    RetryStep, Stage,
};
use super::{
    ActiveTopics, Backoff, State, Status, Target, TaskContext, TaskFailure, note_topic, set_status,
};
use crate::config::connector;
use crate::config::worker::prefixed;
use crate::convert::{ConvertError, Converter, Converters};
use crate::kafka::{StartAtCommitted, client_config};
use crate::plugin::{CallError, SinkInstance};

/// How long a batch waits to fill before it goes to the plugin anyway.
const BATCH_LINGER: Duration = Duration::from_millis(100);

/// Runs a sink task until cancelled or failed; the outcome is left in its status.
pub async fn run_sink(mut ctx: TaskContext) {
    let outcome = sink_loop(&mut ctx).await;
    super::finish(&ctx, outcome);
}

/// A sink task's consumer: it starts each partition it is given at the committed offset.
type SinkConsumer = StreamConsumer<StartAtCommitted>;

/// What writes a sink task's batches: the plugin, the transforms, the error policy and
/// the offsets to commit.
struct SinkTask {
    consumer: Arc<SinkConsumer>,
    plugin: SinkInstance,
    /// The connector's plugin name, as error reports name the class that failed.
    plugin_class: String,
    chain: Chain,
    errors: ErrorHandler,
    /// Next offset to consume per partition, for records the plugin accepted.
    pending: BTreeMap<(Arc<str>, i32), i64>,
    /// The last batch the plugin accepted, until the next `put` or `flush` returns: a
    /// plugin that writes it asynchronously may still report its records as not written.
    previous: Vec<Original>,
    last_commit: Instant,
}

/// What reads a sink task's records: on a task of its own, it consumes and converts the
/// next batches while the plugin writes the one before ([`sink_loop`]).
struct Intake {
    consumer: Arc<SinkConsumer>,
    converters: Converters,
    /// The topic of the last message, shared by the records that follow from it.
    topic: Option<Arc<str>>,
    /// Its own view of the target state: a pause or stop ends a batch early, and while
    /// the task is paused the intake waits (the task's loop polls the consumer then).
    target: watch::Receiver<Target>,
    /// Cancelled when the task stops.
    cancel: CancellationToken,
    /// Whether the error policy needs the records' bytes (a DLQ, or logged records).
    keeps_bytes: bool,
    max_records: usize,
    connector: String,
    task_id: u32,
    topics: ActiveTopics,
}

/// One consumed batch on its way to the plugin: the records still alive, where each came
/// from, the records that did not convert (for the error policy, before the batch goes
/// on), and how far the batch reaches in each partition (failed and filtered records
/// included: their offsets are committed too).
#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    originals: Vec<Original>,
    unconverted: Vec<(Original, Failure)>,
    positions: BTreeMap<(Arc<str>, i32), i64>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

fn convert(
    converters: &mut Converters,
    m: &BorrowedMessage<'_>,
    topic: Arc<str>,
) -> Result<Record, Failure> {
    let failure = |stage, converter: &Converter, e: ConvertError| Failure {
        stage,
        class: converter.class_name().to_owned(),
        exception: DATA_EXCEPTION,
        message: e.to_string(),
    };
    let key = converters
        .key
        .to_connect(m.key())
        .map_err(|e| failure(Stage::KeyConverter, &converters.key, e))?;
    let value = converters
        .value
        .to_connect(m.payload())
        .map_err(|e| failure(Stage::ValueConverter, &converters.value, e))?;
    let mut headers = Vec::new();
    if let Some(hs) = m.headers() {
        for h in hs.iter() {
            let value = converters.header.to_connect(h.value).map_err(|e| {
                let mut f = failure(Stage::HeaderConverter, &converters.header, e);
                f.message = format!("header {}: {}", h.key, f.message);
                f
            })?;
            headers.push(Header {
                key: h.key.to_owned(),
                value,
            });
        }
    }
    Ok(Record {
        topic,
        partition: Some(m.partition()),
        offset: Some(m.offset()),
        timestamp: m.timestamp().to_millis(),
        key,
        value,
        headers,
    })
}

fn call_failure(what: &str, err: CallError) -> TaskFailure {
    TaskFailure::new(what, err)
}

impl SinkTask {
    /// Flushes the plugin, then commits what it accepted. Retriable flush errors are
    /// retried; offsets are never committed past unflushed data.
    async fn commit(&mut self, ctx: &TaskContext) -> Result<(), TaskFailure> {
        let mut backoff = Backoff::new();
        loop {
            let flushed = self.plugin.flush().await;
            self.reject_previous(ctx).await?;
            match flushed {
                Ok(()) => {
                    self.previous.clear();
                    break;
                }
                Err(e) if e.is_retriable() => {
                    tracing::warn!(connector = %ctx.connector, task = ctx.task_id, error = %e, "Flush failed; retrying.");
                    if !backoff.wait(&ctx.cancel).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(call_failure("Sink plugin failed to flush", e)),
            }
        }
        self.last_commit = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &self.pending {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                tracing::warn!(topic = %topic, partition, error = %e, "Cannot add offset to commit.");
            }
        }
        let consumer = self.consumer.clone();
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
        match committed {
            Ok(Ok(())) => {
                tracing::debug!(connector = %ctx.connector, task = ctx.task_id, partitions = self.pending.len(), "Committed offsets.");
                self.pending.clear();
            }
            Ok(Err(e)) => {
                // A rebalance may have moved the partitions: their records will be
                // redelivered to the new owner (at least once), never skipped.
                tracing::warn!(connector = %ctx.connector, task = ctx.task_id, error = %e, "Failed to commit offsets.");
            }
            Err(e) => return Err(TaskFailure::new("Offset commit panicked", e)),
        }
        Ok(())
    }

    /// Gives the records of the batch that did not convert to the error policy.
    async fn settle_unconverted(
        &mut self,
        ctx: &TaskContext,
        batch: &mut Batch,
    ) -> Result<(), TaskFailure> {
        for (original, failure) in std::mem::take(&mut batch.unconverted) {
            self.errors.handle(ctx, &original, &failure).await?;
        }
        Ok(())
    }

    /// Runs the batch through the transforms; failed records go to the error policy,
    /// filtered ones are done.
    async fn transform(&mut self, ctx: &TaskContext, batch: &mut Batch) -> Result<(), TaskFailure> {
        if self.chain.is_empty() || batch.records.is_empty() {
            return Ok(());
        }
        let results = self.chain.apply(std::mem::take(&mut batch.records)).await?;
        let originals = std::mem::take(&mut batch.originals);
        for (result, original) in results.into_iter().zip(originals) {
            match result {
                Transformed::Keep(record) => {
                    batch.records.push(record);
                    batch.originals.push(original);
                }
                Transformed::Drop => {}
                Transformed::Failed { class, message } => {
                    let failure = Failure {
                        stage: Stage::Transformation,
                        class,
                        exception: DATA_EXCEPTION,
                        message,
                    };
                    self.errors.handle(ctx, &original, &failure).await?;
                }
            }
        }
        Ok(())
    }

    /// Hands one batch to the plugin. A retriable error redelivers it: with
    /// `errors.retry.timeout=0` (the default) until it succeeds, as Kafka Connect does;
    /// otherwise until the timeout, when the error policy takes the batch's records.
    /// Records the plugin rejects go to the error policy, and so do those of the batch
    /// before that it reports during the call; once accepted, the batch is kept as that
    /// batch for the next call. Returns false if cancelled.
    async fn deliver(&mut self, ctx: &TaskContext, batch: Batch) -> Result<bool, TaskFailure> {
        let mut backoff = Backoff::new();
        let mut retry = Retry::new(self.errors.config());
        let forever = self.errors.config().retry_timeout == Some(Duration::ZERO);
        while !batch.records.is_empty() {
            let put = self.plugin.put(&batch.records).await;
            self.reject_previous(ctx).await?;
            match put {
                Ok(failures) => {
                    self.reject(ctx, &batch.originals, failures).await?;
                    self.previous = batch.originals;
                    break;
                }
                Err(e) if e.is_retriable() => {
                    tracing::warn!(connector = %ctx.connector, task = ctx.task_id, error = %e, "Sink write failed; redelivering the batch.");
                    let step = if forever {
                        if backoff.wait(&ctx.cancel).await {
                            RetryStep::Again
                        } else {
                            RetryStep::Cancelled
                        }
                    } else {
                        retry.wait(&ctx.cancel).await
                    };
                    match step {
                        RetryStep::Again => {}
                        RetryStep::Cancelled => return Ok(false),
                        RetryStep::Expired => {
                            let failure = Failure {
                                stage: Stage::TaskPut,
                                class: self.plugin_class.clone(),
                                exception: RETRIABLE_EXCEPTION,
                                message: e.to_string(),
                            };
                            for original in &batch.originals {
                                self.errors.handle(ctx, original, &failure).await?;
                            }
                            break;
                        }
                    }
                }
                Err(e) => return Err(call_failure("Sink plugin failed to write a batch", e)),
            }
        }
        for (tp, next) in batch.positions {
            self.pending.insert(tp, next);
        }
        Ok(true)
    }

    /// Gives the records the plugin rejected, by index into `originals`, to the error policy.
    async fn reject(
        &mut self,
        ctx: &TaskContext,
        originals: &[Original],
        failures: Vec<RecordFailure>,
    ) -> Result<(), TaskFailure> {
        for f in failures {
            let original = originals.get(f.index as usize).cloned().unwrap_or_default();
            let failure = Failure {
                stage: Stage::TaskPut,
                class: self.plugin_class.clone(),
                exception: CONNECT_EXCEPTION,
                message: f.message,
            };
            self.errors.handle(ctx, &original, &failure).await?;
        }
        Ok(())
    }

    /// Gives the records of the previous batch that the plugin reported during its last
    /// call (`errant-records`) to the error policy.
    async fn reject_previous(&mut self, ctx: &TaskContext) -> Result<(), TaskFailure> {
        let reported = self.plugin.take_reported();
        if reported.is_empty() {
            return Ok(());
        }
        let previous = std::mem::take(&mut self.previous);
        let rejected = self.reject(ctx, &previous, reported).await;
        self.previous = previous;
        rejected
    }
}

impl Intake {
    /// Sends batches until the task stops or drops the receiving end.
    async fn run(mut self, batches: mpsc::Sender<Batch>) {
        loop {
            while *self.target.borrow_and_update() == Target::Pause {
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    changed = self.target.changed() => if changed.is_err() { return },
                }
            }
            if self.cancel.is_cancelled() {
                return;
            }
            let mut batch = Batch::default();
            self.fill(&mut batch).await;
            if !batch.is_empty() && batches.send(batch).await.is_err() {
                return;
            }
            // Nobody can change the target any more: the task is going away.
            if self.target.has_changed().is_err() {
                return;
            }
        }
    }

    /// Consumes and converts up to `max_records` messages into `batch`: fewer when none
    /// comes for [`BATCH_LINGER`], or when the task is stopped or its target changes.
    async fn fill(&mut self, batch: &mut Batch) {
        let deadline = tokio::time::Instant::now() + BATCH_LINGER;
        // Messages borrow the consumer while they are taken in. One stream for the batch:
        // each `recv` makes a stream, which registers a waker and drops it again.
        let consumer = self.consumer.clone();
        let mut messages = consumer.stream();
        let mut consumed = 0;
        while consumed < self.max_records {
            // The stop is looked at every 64 messages (it takes a lock), the target at each.
            if (consumed % 64 == 0 && self.cancel.is_cancelled())
                || self.target.has_changed().unwrap_or(true)
            {
                break;
            }
            // A message already fetched is taken at once: arming the linger timer and the
            // stop and pause watches for each one cost more than taking it
            // (docs/measurements.md, "where the JDBC sink's run waits"). Only an empty
            // queue waits, for a message, a stop or a change of target; the budget keeps a
            // long batch from holding the thread.
            let received = match messages.next().now_or_never() {
                Some(received) => {
                    tokio::task::coop::consume_budget().await;
                    received
                }
                None => tokio::select! {
                    () = self.cancel.cancelled() => break,
                    _ = self.target.changed() => break,
                    r = tokio::time::timeout_at(deadline, messages.next()) => match r {
                        Ok(received) => received,
                        Err(_elapsed) => break,
                    },
                },
            };
            match received {
                Some(Ok(message)) => {
                    consumed += 1;
                    self.take(&message, batch);
                }
                Some(Err(e)) => {
                    tracing::warn!(connector = %self.connector, task = self.task_id, error = %e, "Consumer error.");
                    break;
                }
                // A consumer's stream does not end.
                None => break,
            }
        }
        // The batch's topics are active (KIP-558): noted once a batch, not once a message
        // (each note takes the worker's lock), so a topic reset while the task runs is
        // noted again with the next batch.
        let mut last: Option<&Arc<str>> = None;
        for (topic, _) in batch.positions.keys() {
            if last != Some(topic) {
                note_topic(&self.topics, self.task_id, topic);
                last = Some(topic);
            }
        }
    }

    /// Converts one consumed message into the batch, or into its unconverted records.
    fn take(&mut self, m: &BorrowedMessage<'_>, batch: &mut Batch) {
        let topic = match &self.topic {
            Some(t) if **t == *m.topic() => t.clone(),
            _ => self.topic.insert(Arc::from(m.topic())).clone(),
        };
        batch
            .positions
            .insert((topic.clone(), m.partition()), m.offset() + 1);
        let original = Original::from_message(m, topic.clone(), self.keeps_bytes);
        match convert(&mut self.converters, m, topic) {
            Ok(record) => {
                batch.records.push(record);
                batch.originals.push(original);
            }
            Err(failure) => batch.unconverted.push((original, failure)),
        }
    }
}

async fn sink_loop(ctx: &mut TaskContext) -> Result<(), TaskFailure> {
    let group = connector::sink_group(&ctx.connector, &ctx.connector_config);
    let client_id = format!("connector-consumer-{}", ctx.task_name());
    let consumer_config = client_config(
        &ctx.worker.bootstrap,
        &[
            ("group.id", &group),
            ("client.id", &client_id),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            // Notice topics created after the subscription (a source may create them later).
            ("topic.metadata.refresh.interval.ms", "2000"),
            // A dead worker's consumer holds its partitions until its session times out:
            // 10 s instead of librdkafka's 45 s keeps failover in seconds (README).
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            // librdkafka stops fetching a partition whose local queue holds more than
            // `queued.min.messages` (100,000) and looks again only after this backoff
            // (1000 ms by default): a sink that keeps up drains the queue well within it
            // and then stands idle, about 0.6 s in every 150,000 records here
            // (docs/measurements.md).
            // Java's consumer fetches again as soon as its buffer is consumed.
            ("fetch.queue.backoff.ms", "10"),
        ],
        &[
            &ctx.worker.config.prefixed("consumer."),
            &prefixed(&ctx.connector_config, "consumer.override."),
        ],
    );
    let consumer: SinkConsumer = consumer_config
        .create_with_context(StartAtCommitted::for_config(&consumer_config))
        .map_err(|e| TaskFailure::new("Cannot create the consumer", e))?;
    let topics = connector::sink_subscription(&ctx.connector_config);
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(|e| TaskFailure::new("Cannot subscribe", e))?;
    let converters = Converters::from_configs(&ctx.worker.config.raw, &ctx.connector_config)
        .map_err(|(key, e)| TaskFailure(format!("{key}: {e}")))?;
    let limits = connector::limits(&ctx.connector_config, ctx.worker.config.limits);
    let task_config = ctx.plugin.task_config(&ctx.config);
    let mut plugin = ctx
        .plugin
        .sink(limits, &task_config)
        .await
        .map_err(|e| TaskFailure::new("Cannot start the sink plugin", e))?;
    plugin
        .open(&task_config)
        .await
        .map_err(|e| call_failure("Sink plugin failed to open", e))?;
    let chain = Chain::for_task(ctx, limits).await?;
    let errors = ErrorHandler::for_task(ctx)?;
    let consumer = Arc::new(consumer);
    let intake = Intake {
        consumer: consumer.clone(),
        converters,
        topic: None,
        target: ctx.target.clone(),
        cancel: ctx.cancel.child_token(),
        keeps_bytes: errors.keeps_bytes(),
        connector: ctx.connector.clone(),
        task_id: ctx.task_id,
        topics: ctx.topics.clone(),
        max_records: connector::sink_batch_max_records(
            &ctx.connector_config,
            &ctx.worker.config.raw,
        ),
    };
    let mut task = SinkTask {
        consumer,
        plugin,
        plugin_class: ctx.plugin.name.clone(),
        chain,
        errors,
        pending: BTreeMap::new(),
        previous: Vec::new(),
        last_commit: Instant::now(),
    };
    set_status(&ctx.status, Status::new(State::Running));
    tracing::info!(connector = %ctx.connector, task = ctx.task_id, group = %group, "Sink task started.");

    // The plugin writes a batch while the intake consumes and converts the next ones
    // (up to two ahead): the two share the machine's cores. A batch consumed but not
    // written when the task stops is not committed: it is consumed again.
    let stop_intake = intake.cancel.clone();
    let (sender, mut batches) = mpsc::channel(1);
    let intake = tokio::spawn(intake.run(sender));
    let outcome = write_batches(ctx, &mut task, &mut batches).await;
    stop_intake.cancel();
    drop(batches);
    // The consumer leaves its group only when the intake has let it go.
    let intake = intake.await;
    outcome?;
    intake.map_err(|e| TaskFailure::new("The sink intake failed", e))?;
    // Clean shutdown: flush and commit what the plugin accepted.
    let committed = task.commit(ctx).await;
    if let Err(e) = task.plugin.close().await {
        tracing::warn!(connector = %ctx.connector, task = ctx.task_id, error = %e, "Sink plugin failed to close.");
    }
    task.chain.close().await;
    committed
}

/// Writes the intake's batches until the task stops; commits on the flush interval.
async fn write_batches(
    ctx: &mut TaskContext,
    task: &mut SinkTask,
    batches: &mut mpsc::Receiver<Batch>,
) -> Result<(), TaskFailure> {
    let flush_interval = ctx.worker.config.offset_flush_interval;
    loop {
        if ctx.cancel.is_cancelled() {
            break;
        }
        if *ctx.target.borrow() == Target::Pause {
            pause(ctx, task).await?;
            continue;
        }
        let received = tokio::select! {
            () = ctx.cancel.cancelled() => break,
            _ = ctx.target.changed() => None,
            // Without records, the offsets of the last batches are still committed on time.
            () = tokio::time::sleep(BATCH_LINGER) => None,
            batch = batches.recv() => match batch {
                Some(batch) => Some(batch),
                None => break,
            },
        };
        if let Some(mut batch) = received {
            task.settle_unconverted(ctx, &mut batch).await?;
            task.transform(ctx, &mut batch).await?;
            if !task.deliver(ctx, batch).await? {
                break;
            }
        }
        if task.last_commit.elapsed() >= flush_interval {
            task.commit(ctx).await?;
        }
    }
    Ok(())
}

/// Pauses every assigned partition but keeps polling, so the task keeps its group
/// membership; commits first, as Kafka Connect does on pause.
async fn pause(ctx: &mut TaskContext, task: &mut SinkTask) -> Result<(), TaskFailure> {
    task.commit(ctx).await?;
    let assignment = task.consumer.assignment().unwrap_or_default();
    if let Err(e) = task.consumer.pause(&assignment) {
        tracing::warn!(connector = %ctx.connector, error = %e, "Cannot pause partitions.");
    }
    set_status(&ctx.status, Status::new(State::Paused));
    while *ctx.target.borrow() == Target::Pause && !ctx.cancel.is_cancelled() {
        tokio::select! {
            () = ctx.cancel.cancelled() => {}
            _ = ctx.target.changed() => {}
            // Polling serves rebalances and heartbeats; paused partitions return nothing.
            r = tokio::time::timeout(BATCH_LINGER, task.consumer.recv()) => {
                if let Ok(Ok(m)) = r {
                    // A partition assigned during the pause: rewind to this record and
                    // pause it too, so nothing is skipped.
                    let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
                    drop(m);
                    if let Err(e) = task.consumer.seek(&topic, partition, Offset::Offset(offset), Duration::ZERO) {
                        tracing::warn!(connector = %ctx.connector, error = %e, "Cannot rewind a partition assigned while paused.");
                    }
                    let assignment = task.consumer.assignment().unwrap_or_default();
                    let _ = task.consumer.pause(&assignment);
                }
            }
        }
    }
    let assignment = task.consumer.assignment().unwrap_or_default();
    if let Err(e) = task.consumer.resume(&assignment) {
        tracing::warn!(connector = %ctx.connector, error = %e, "Cannot resume partitions.");
    }
    if !ctx.cancel.is_cancelled() {
        set_status(&ctx.status, Status::new(State::Running));
    }
    Ok(())
}
