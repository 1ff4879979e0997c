//! The sink task loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use wasmconnect_sdk::data::{Header, Record};

use super::{Backoff, State, Status, Target, TaskContext, TaskFailure, set_status};
use crate::config::connector;
use crate::config::worker::prefixed;
use crate::convert::Converters;
use crate::kafka::client_config;
use crate::plugin::{CallError, SinkInstance};

/// How long a batch waits to fill before it goes to the plugin anyway.
const BATCH_LINGER: Duration = Duration::from_millis(100);

/// Runs a sink task until cancelled or failed; the outcome is left in its status.
pub async fn run_sink(mut ctx: TaskContext) {
    let outcome = sink_loop(&mut ctx).await;
    super::finish(&ctx, outcome);
}

struct SinkTask {
    consumer: Arc<StreamConsumer>,
    plugin: SinkInstance,
    converters: Converters,
    /// Next offset to consume per partition, for records the plugin accepted.
    pending: BTreeMap<(String, i32), i64>,
    last_commit: Instant,
}

fn convert(converters: &mut Converters, m: &BorrowedMessage<'_>) -> Result<Record, TaskFailure> {
    let at = || {
        format!(
            "topic {} partition {} offset {}",
            m.topic(),
            m.partition(),
            m.offset()
        )
    };
    let key = converters.key.to_connect(m.key()).map_err(|e| {
        TaskFailure(format!(
            "Error converting the key of the record at {}: {e}",
            at()
        ))
    })?;
    let value = converters.value.to_connect(m.payload()).map_err(|e| {
        TaskFailure(format!(
            "Error converting the value of the record at {}: {e}",
            at()
        ))
    })?;
    let mut headers = Vec::new();
    if let Some(hs) = m.headers() {
        for h in hs.iter() {
            let value = converters.header.to_connect(h.value).map_err(|e| {
                TaskFailure(format!(
                    "Error converting header {} of the record at {}: {e}",
                    h.key,
                    at()
                ))
            })?;
            headers.push(Header {
                key: h.key.to_owned(),
                value,
            });
        }
    }
    Ok(Record {
        topic: Arc::from(m.topic()),
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
            match self.plugin.flush().await {
                Ok(()) => break,
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

    /// Hands one batch to the plugin, retrying retriable errors; returns false if cancelled.
    async fn deliver(&mut self, ctx: &TaskContext, batch: &[Record]) -> Result<bool, TaskFailure> {
        let mut backoff = Backoff::new();
        loop {
            match self.plugin.put(batch).await {
                Ok(failures) => {
                    if let Some(f) = failures.first() {
                        let r = batch.get(f.index as usize);
                        return Err(TaskFailure(format!(
                            "Sink plugin rejected the record at topic {} partition {} offset {}: {} (errors.tolerance=none)",
                            r.map_or("?", |r| &*r.topic),
                            r.and_then(|r| r.partition).unwrap_or(-1),
                            r.and_then(|r| r.offset).unwrap_or(-1),
                            f.message
                        )));
                    }
                    for r in batch {
                        if let (Some(p), Some(o)) = (r.partition, r.offset) {
                            self.pending.insert((r.topic.to_string(), p), o + 1);
                        }
                    }
                    return Ok(true);
                }
                Err(e) if e.is_retriable() => {
                    tracing::warn!(connector = %ctx.connector, task = ctx.task_id, error = %e, "Sink write failed; redelivering the batch.");
                    if !backoff.wait(&ctx.cancel).await {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(call_failure("Sink plugin failed to write a batch", e)),
            }
        }
    }
}

async fn sink_loop(ctx: &mut TaskContext) -> Result<(), TaskFailure> {
    let group = format!("connect-{}", ctx.connector);
    let client_id = format!("connector-consumer-{}", ctx.task_name());
    let consumer: StreamConsumer = client_config(
        &ctx.worker.bootstrap,
        &[
            ("group.id", &group),
            ("client.id", &client_id),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            // Notice topics created after the subscription (a source may create them later).
            ("topic.metadata.refresh.interval.ms", "2000"),
        ],
        &[
            &ctx.worker.config.prefixed("consumer."),
            &prefixed(&ctx.connector_config, "consumer.override."),
        ],
    )
    .create()
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
    let mut task = SinkTask {
        consumer: Arc::new(consumer),
        plugin,
        converters,
        pending: BTreeMap::new(),
        last_commit: Instant::now(),
    };
    let max_records =
        connector::sink_batch_max_records(&ctx.connector_config, &ctx.worker.config.raw);
    let flush_interval = ctx.worker.config.offset_flush_interval;
    set_status(&ctx.status, Status::new(State::Running));
    tracing::info!(connector = %ctx.connector, task = ctx.task_id, group = %group, "Sink task started.");

    let mut batch: Vec<Record> = Vec::with_capacity(max_records);
    loop {
        if ctx.cancel.is_cancelled() {
            break;
        }
        if *ctx.target.borrow() == Target::Pause {
            pause(ctx, &mut task).await?;
            continue;
        }
        batch.clear();
        let deadline = tokio::time::Instant::now() + BATCH_LINGER;
        while batch.len() < max_records {
            let received = tokio::select! {
                () = ctx.cancel.cancelled() => break,
                _ = ctx.target.changed() => break,
                r = tokio::time::timeout_at(deadline, task.consumer.recv()) => r,
            };
            match received {
                Err(_elapsed) => break,
                Ok(Ok(message)) => {
                    ctx.note_topic(message.topic());
                    batch.push(convert(&mut task.converters, &message)?);
                }
                Ok(Err(e)) => {
                    tracing::warn!(connector = %ctx.connector, task = ctx.task_id, error = %e, "Consumer error.");
                    break;
                }
            }
        }
        if !batch.is_empty() && !task.deliver(ctx, &batch).await? {
            break;
        }
        if task.last_commit.elapsed() >= flush_interval {
            task.commit(ctx).await?;
        }
    }
    // Clean shutdown: flush and commit what the plugin accepted.
    let committed = task.commit(ctx).await;
    if let Err(e) = task.plugin.close().await {
        tracing::warn!(connector = %ctx.connector, task = ctx.task_id, error = %e, "Sink plugin failed to close.");
    }
    committed
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
