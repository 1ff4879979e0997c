//! The settings only distributed mode reads (`DistributedConfig`): the group, the three
//! internal topics and the membership timeouts, with Connect's key names.
//!
//! Defaults are Connect's except three, chosen for failover in seconds (README, Distributed
//! mode): `session.timeout.ms` is 6000 (Connect: 10000; 6000 is the broker's default
//! minimum), so a dead worker is noticed in six seconds; `heartbeat.interval.ms` is 1000
//! (Connect: 3000), so members notice a rebalance within a second; and
//! `scheduled.rebalance.max.delay.ms` is 0 (Connect: 300000), so the work of a worker that
//! died moves as soon as its session times out.

use std::collections::BTreeMap;
use std::time::Duration;

use super::worker::{WorkerConfigError, parse_num};
use crate::herder::distributed::protocol::Protocol;

/// One internal topic's name and creation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    pub topic: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// `<prefix>.<topic setting>` entries other than partitions and replication.
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct DistributedConfig {
    pub group_id: String,
    pub config_topic: InternalTopic,
    pub offset_topic: InternalTopic,
    pub status_topic: InternalTopic,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub rebalance_timeout: Duration,
    pub scheduled_rebalance_max_delay: Duration,
    pub protocol: Protocol,
    pub worker_sync_timeout: Duration,
}

fn required(raw: &BTreeMap<String, String>, key: &str) -> Result<String, WorkerConfigError> {
    raw.get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| WorkerConfigError::Missing(key.to_owned()))
}

fn millis(
    raw: &BTreeMap<String, String>,
    key: &str,
    default: u64,
) -> Result<Duration, WorkerConfigError> {
    parse_num(raw, key, default).map(Duration::from_millis)
}

fn topic(
    raw: &BTreeMap<String, String>,
    prefix: &str,
    partitions: Option<i32>,
) -> Result<InternalTopic, WorkerConfigError> {
    let topic = required(raw, &format!("{prefix}.topic"))?;
    let replication_key = format!("{prefix}.replication.factor");
    let replication_factor = parse_num(raw, &replication_key, 3i32)?;
    if replication_factor == 0 || replication_factor < -1 {
        return Err(WorkerConfigError::Invalid {
            key: replication_key,
            value: replication_factor.to_string(),
            reason: "must be -1 (the broker's default) or at least 1".into(),
        });
    }
    let partitions = match partitions {
        None => 1,
        Some(default) => {
            let key = format!("{prefix}.partitions");
            let n = parse_num(raw, &key, default)?;
            if n < 1 && n != -1 {
                return Err(WorkerConfigError::Invalid {
                    key,
                    value: n.to_string(),
                    reason: "must be -1 (the broker's default) or at least 1".into(),
                });
            }
            n
        }
    };
    let mut settings: BTreeMap<String, String> =
        super::worker::prefixed(raw, &format!("{prefix}."))
            .into_iter()
            .filter(|(k, _)| {
                ![
                    "topic",
                    "replication.factor",
                    "partitions",
                    "cleanup.policy",
                ]
                .contains(&k.as_str())
            })
            .collect();
    settings.insert("cleanup.policy".into(), "compact".into());
    Ok(InternalTopic {
        topic,
        partitions,
        replication_factor,
        settings,
    })
}

impl DistributedConfig {
    /// # Errors
    /// A missing required key or a bad value, naming the key.
    pub fn from_map(
        raw: &BTreeMap<String, String>,
    ) -> Result<DistributedConfig, WorkerConfigError> {
        let protocol_value = raw
            .get("connect.protocol")
            .map_or("sessioned", String::as_str);
        let protocol =
            Protocol::from_config(protocol_value).ok_or_else(|| WorkerConfigError::Invalid {
                key: "connect.protocol".into(),
                value: protocol_value.into(),
                reason: "expected eager, compatible or sessioned".into(),
            })?;
        let c = DistributedConfig {
            group_id: required(raw, "group.id")?,
            config_topic: topic(raw, "config.storage", None)?,
            offset_topic: topic(raw, "offset.storage", Some(25))?,
            status_topic: topic(raw, "status.storage", Some(5))?,
            session_timeout: millis(raw, "session.timeout.ms", 6_000)?,
            heartbeat_interval: millis(raw, "heartbeat.interval.ms", 1_000)?,
            rebalance_timeout: millis(raw, "rebalance.timeout.ms", 60_000)?,
            scheduled_rebalance_max_delay: millis(raw, "scheduled.rebalance.max.delay.ms", 0)?,
            protocol,
            worker_sync_timeout: millis(raw, "worker.sync.timeout.ms", 3_000)?,
        };
        if c.heartbeat_interval >= c.session_timeout {
            return Err(WorkerConfigError::Invalid {
                key: "heartbeat.interval.ms".into(),
                value: c.heartbeat_interval.as_millis().to_string(),
                reason: format!(
                    "must be lower than session.timeout.ms ({})",
                    c.session_timeout.as_millis()
                ),
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::map;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("group.id", "connect-cluster"),
            ("config.storage.topic", "connect-configs"),
            ("offset.storage.topic", "connect-offsets"),
            ("status.storage.topic", "connect-status"),
        ]
    }

    #[test]
    fn the_sample_file_parses_with_connects_defaults() {
        let c = DistributedConfig::from_map(&map(&base())).expect("config");
        assert_eq!(c.config_topic.partitions, 1);
        assert_eq!(c.offset_topic.partitions, 25);
        assert_eq!(c.status_topic.partitions, 5);
        assert_eq!(c.status_topic.replication_factor, 3);
        assert_eq!(c.config_topic.settings["cleanup.policy"], "compact");
        assert_eq!(c.session_timeout, Duration::from_secs(6));
        assert_eq!(c.protocol, Protocol::Sessioned);
    }

    #[test]
    fn each_required_key_is_named_when_missing() {
        for (i, (key, _)) in base().iter().enumerate() {
            let mut pairs = base();
            pairs.remove(i);
            let err = DistributedConfig::from_map(&map(&pairs)).expect_err("missing");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("config.storage.replication.factor", "0"),
            ("offset.storage.partitions", "many"),
            ("connect.protocol", "chatty"),
            ("heartbeat.interval.ms", "7000"),
        ] {
            let mut pairs = base();
            pairs.push((key, value));
            let err = DistributedConfig::from_map(&map(&pairs)).expect_err(key);
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
