//! The Offsets API (KIP-875): read, alter and reset a connector's offsets, the same way in
//! both modes. A source connector's offsets are its entries in the worker's offset store
//! (the file or the offset topic); a sink connector's are the committed offsets of its
//! consumer group ([`connector::sink_group`]).
//!
//! Alter and reset need the connector STOPPED with no task configs; the herders check that
//! before calling [`modify`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value as Json, json};
use wasmconnect_sdk::PluginKind;
use wasmconnect_sdk::data::SourcePosition;

use super::HerderError;
use super::distributed::group::{GroupMember, GroupSettings};
use super::offsets::{map_from_json, map_to_json};
use crate::config::connector;
use crate::config::worker::prefixed;
use crate::kafka::client_config;
use crate::task::WorkerShared;

/// Kafka's answers (`Worker.java`).
pub const ALTERED: &str = "The offsets for this connector have been altered successfully";
pub const RESET: &str = "The offsets for this connector have been reset successfully";

/// How long one call to the broker may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// One `{"partition": ..., "offset": ...}` of a request body; `offset: None` removes it.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetEntry {
    pub partition: Json,
    pub offset: Option<Json>,
}

/// What a PATCH or DELETE asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum OffsetChange {
    Alter(Vec<OffsetEntry>),
    Reset,
}

/// The 400 Kafka gives when the connector is not stopped (`DistributedHerder.java`).
pub fn not_stopped(name: &str) -> HerderError {
    HerderError::BadRequest(format!(
        "Connectors must be in the STOPPED state before their offsets can be modified. This can \
         be done for the specified connector by issuing a 'PUT' request to the \
         '/connectors/{name}/stop' endpoint"
    ))
}

/// The connector's offsets as `ConnectorOffsets` entries.
///
/// # Errors
/// When the offset topic or the broker cannot be read.
pub async fn read(
    worker: &WorkerShared,
    name: &str,
    kind: PluginKind,
    config: &BTreeMap<String, String>,
) -> Result<Vec<Json>, HerderError> {
    if kind == PluginKind::Sink {
        let committed = SinkGroup::new(worker, name, config).committed().await?;
        return Ok(committed
            .into_iter()
            .map(|(topic, partition, offset)| {
                json!({
                    "partition": {"kafka_topic": topic, "kafka_partition": partition},
                    "offset": {"kafka_offset": offset},
                })
            })
            .collect());
    }
    worker
        .offsets
        .sync(BROKER_TIMEOUT)
        .await
        .map_err(|e| HerderError::Internal(e.to_string()))?;
    Ok(worker
        .offsets
        .positions(name)
        .iter()
        .map(|p| json!({"partition": map_to_json(&p.partition), "offset": map_to_json(&p.offset)}))
        .collect())
}

/// Alters or resets a stopped connector's offsets; returns Kafka's success message.
///
/// # Errors
/// 400 for a malformed entry (the message names it); 500 when the store or broker fails.
pub async fn modify(
    worker: &WorkerShared,
    name: &str,
    kind: PluginKind,
    config: &BTreeMap<String, String>,
    change: OffsetChange,
) -> Result<&'static str, HerderError> {
    let message = match change {
        OffsetChange::Alter(_) => ALTERED,
        OffsetChange::Reset => RESET,
    };
    if kind == PluginKind::Sink {
        let group = SinkGroup::new(worker, name, config);
        match change {
            OffsetChange::Reset => group.reset().await?,
            OffsetChange::Alter(entries) => {
                let parsed = entries
                    .iter()
                    .map(parse_sink_entry)
                    .collect::<Result<Vec<_>, _>>()?;
                group.alter(&parsed).await?;
            }
        }
        return Ok(message);
    }
    let store = &worker.offsets;
    // Another worker may have written this connector's offsets; see them before a reset.
    store
        .sync(BROKER_TIMEOUT)
        .await
        .map_err(|e| HerderError::Internal(e.to_string()))?;
    match change {
        OffsetChange::Reset => {
            let partitions: Vec<_> = store
                .positions(name)
                .into_iter()
                .map(|p| Arc::unwrap_or_clone(p.partition))
                .collect();
            store.remove(name, &partitions);
        }
        OffsetChange::Alter(entries) => {
            let mut puts = Vec::new();
            let mut removals = Vec::new();
            for e in &entries {
                let partition = map_from_json(&e.partition).ok_or_else(|| {
                    HerderError::BadRequest(format!(
                        "Source partitions must be JSON objects of primitive values: {}",
                        e.partition
                    ))
                })?;
                match &e.offset {
                    None => removals.push(partition),
                    Some(o) => {
                        let offset = map_from_json(o).ok_or_else(|| {
                            HerderError::BadRequest(format!(
                                "Source offsets must be null or JSON objects of primitive values: {o}"
                            ))
                        })?;
                        puts.push(SourcePosition {
                            partition: Arc::new(partition),
                            offset,
                        });
                    }
                }
            }
            store.put(name, &puts);
            store.remove(name, &removals);
        }
    }
    store
        .flush()
        .await
        .map_err(|e| HerderError::Internal(e.to_string()))?;
    Ok(message)
}

/// A sink offset: topic, partition and the next offset to consume (`None` removes it).
type SinkOffset = (String, i32, Option<i64>);

fn bad(message: impl Into<String>) -> HerderError {
    HerderError::BadRequest(message.into())
}

/// A long given as a JSON number or, as Kafka allows, a string.
fn long(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads Kafka's fixed sink shape (`SinkUtils.parseSinkConnectorOffsets`).
fn parse_sink_entry(e: &OffsetEntry) -> Result<SinkOffset, HerderError> {
    let partition = e.partition.as_object().ok_or_else(|| {
        bad("The partition for a sink connector offset must be a JSON object with the keys 'kafka_topic' and 'kafka_partition'")
    })?;
    let (Some(topic), Some(number)) = (
        partition.get("kafka_topic"),
        partition.get("kafka_partition"),
    ) else {
        return Err(bad(format!(
            "The partition for a sink connector offset must contain the keys 'kafka_topic' and 'kafka_partition': {}",
            e.partition
        )));
    };
    let topic = topic.as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
        bad(format!(
            "Kafka topic names must be valid strings and may not be null: {topic}"
        ))
    })?;
    let number = long(number)
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| bad(format!("Kafka partitions must be valid integers: {number}")))?;
    let offset = match &e.offset {
        None => None,
        Some(o) => {
            let value = o.as_object().and_then(|m| m.get("kafka_offset")).ok_or_else(|| {
                bad(format!(
                    "The offset for a sink connector should either be null or contain the key 'kafka_offset': {o}"
                ))
            })?;
            Some(long(value).filter(|n| *n >= 0).ok_or_else(|| {
                bad(format!(
                    "Kafka offsets must be valid non-negative integers: {value}"
                ))
            })?)
        }
    };
    Ok((topic.to_owned(), number, offset))
}

fn broker(e: impl std::fmt::Display) -> HerderError {
    HerderError::Internal(e.to_string())
}

/// A sink connector's consumer group, reached with the settings its tasks use.
struct SinkGroup {
    bootstrap: String,
    name: String,
    group: String,
    subscription: Vec<String>,
    /// Worker `consumer.*`, then the connector's `consumer.override.*`.
    consumer_settings: [BTreeMap<String, String>; 2],
    /// Worker `admin.*`.
    admin_settings: BTreeMap<String, String>,
}

impl SinkGroup {
    fn new(worker: &WorkerShared, name: &str, config: &BTreeMap<String, String>) -> SinkGroup {
        SinkGroup {
            bootstrap: worker.bootstrap.clone(),
            name: name.to_owned(),
            group: connector::sink_group(name, config),
            subscription: connector::sink_subscription(config),
            consumer_settings: [
                worker.config.prefixed("consumer."),
                prefixed(config, "consumer.override."),
            ],
            admin_settings: worker.config.prefixed("admin."),
        }
    }

    /// A consumer in the group that never subscribes (it only reads and commits offsets).
    fn consumer(&self) -> Result<BaseConsumer, HerderError> {
        let client_id = format!("connector-offsets-{}", self.name);
        client_config(
            &self.bootstrap,
            &[
                ("group.id", &self.group),
                ("client.id", &client_id),
                ("enable.auto.commit", "false"),
            ],
            &[&self.consumer_settings[0], &self.consumer_settings[1]],
        )
        .create()
        .map_err(broker)
    }

    /// Committed offsets of every partition of the subscribed topics.
    async fn committed(self) -> Result<Vec<(String, i32, i64)>, HerderError> {
        tokio::task::spawn_blocking(move || {
            let consumer = self.consumer()?;
            let metadata = consumer
                .fetch_metadata(None, BROKER_TIMEOUT)
                .map_err(broker)?;
            let regex = match self.subscription.as_slice() {
                [r] if r.starts_with('^') => {
                    Some(regex::Regex::new(r).map_err(|e| bad(format!("topics.regex: {e}")))?)
                }
                _ => None,
            };
            let wanted = |topic: &str| match &regex {
                Some(r) => r.is_match(topic),
                None => self.subscription.iter().any(|t| t == topic),
            };
            let mut tpl = TopicPartitionList::new();
            for t in metadata.topics().iter().filter(|t| wanted(t.name())) {
                for p in t.partitions() {
                    tpl.add_partition(t.name(), p.id());
                }
            }
            if tpl.count() == 0 {
                return Ok(Vec::new());
            }
            let committed = consumer
                .committed_offsets(tpl, BROKER_TIMEOUT)
                .map_err(broker)?;
            let mut out: Vec<_> = committed
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((e.topic().to_owned(), e.partition(), o)),
                    _ => None,
                })
                .collect();
            out.sort();
            Ok(out)
        })
        .await
        .map_err(broker)?
    }

    /// Commits the given offsets and removes the `None` ones.
    async fn alter(self, offsets: &[SinkOffset]) -> Result<(), HerderError> {
        let removals: Vec<(String, i32)> = offsets
            .iter()
            .filter(|(_, _, o)| o.is_none())
            .map(|(t, p, _)| (t.clone(), *p))
            .collect();
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            if let Some(o) = offset {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*o))
                    .map_err(broker)?;
            }
        }
        if !removals.is_empty() {
            let mut member = GroupMember::new(
                &self.bootstrap,
                "consumer",
                GroupSettings {
                    group_id: self.group.clone(),
                    client_id: format!("connector-offsets-{}", self.name),
                    session_timeout: BROKER_TIMEOUT,
                    rebalance_timeout: BROKER_TIMEOUT,
                    heartbeat_interval: Duration::from_secs(1),
                    request_timeout: BROKER_TIMEOUT,
                },
            );
            member.delete_offsets(&removals).await.map_err(|e| {
                HerderError::Internal(format!(
                    "Cannot remove the committed offsets of group {}: {e}",
                    self.group
                ))
            })?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || {
            self.consumer()?
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e| {
                    HerderError::Internal(format!(
                        "Cannot commit offsets for group {}: {e}",
                        self.group
                    ))
                })
        })
        .await
        .map_err(broker)?
    }

    /// Deletes the consumer group, as Kafka's reset does; a group that never existed is fine.
    async fn reset(self) -> Result<(), HerderError> {
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            client_config(&self.bootstrap, &[], &[&self.admin_settings])
                .create()
                .map_err(broker)?;
        let options = rdkafka::admin::AdminOptions::new().request_timeout(Some(BROKER_TIMEOUT));
        let results = admin
            .delete_groups(&[&self.group], &options)
            .await
            .map_err(broker)?;
        for r in results {
            match r {
                Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::GroupIdNotFound)) => {}
                Err((group, code)) => {
                    return Err(HerderError::Internal(format!(
                        "Cannot delete consumer group {group}: {code}"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(partition: Json, offset: Option<Json>) -> OffsetEntry {
        OffsetEntry { partition, offset }
    }

    #[test]
    fn sink_entries_take_numbers_or_strings_and_name_what_is_wrong() {
        let ok = entry(
            json!({"kafka_topic": "t", "kafka_partition": "2"}),
            Some(json!({"kafka_offset": 7})),
        );
        assert_eq!(parse_sink_entry(&ok), Ok(("t".into(), 2, Some(7))));
        let removal = entry(json!({"kafka_topic": "t", "kafka_partition": 0}), None);
        assert_eq!(parse_sink_entry(&removal), Ok(("t".into(), 0, None)));
        let missing = entry(json!({"kafka_topic": "t"}), None);
        let Err(HerderError::BadRequest(m)) = parse_sink_entry(&missing) else {
            panic!("a partition without kafka_partition must be refused");
        };
        assert!(m.contains("'kafka_partition'"), "{m}");
        let bad_offset = entry(
            json!({"kafka_topic": "t", "kafka_partition": 0}),
            Some(json!({"offset": 1})),
        );
        let Err(HerderError::BadRequest(m)) = parse_sink_entry(&bad_offset) else {
            panic!("an offset without kafka_offset must be refused");
        };
        assert!(m.contains("'kafka_offset'"), "{m}");
        let negative = entry(
            json!({"kafka_topic": "t", "kafka_partition": -1}),
            Some(json!({"kafka_offset": 1})),
        );
        assert!(matches!(
            parse_sink_entry(&negative),
            Err(HerderError::BadRequest(_))
        ));
    }
}
