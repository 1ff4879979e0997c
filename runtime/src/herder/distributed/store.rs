//! The contents of the config and status topics, in Kafka Connect's record formats
//! (keys as UTF-8 strings, values as schemaless JSON), and what a worker makes of them.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::protocol::Work;
use crate::herder::TargetState;
use crate::task::{State, Status, TopicUse};

pub type Config = BTreeMap<String, String>;

pub fn connector_key(name: &str) -> String {
    format!("connector-{name}")
}

pub fn task_key(name: &str, task: u32) -> String {
    format!("task-{name}-{task}")
}

pub fn commit_key(name: &str) -> String {
    format!("commit-{name}")
}

pub fn target_key(name: &str) -> String {
    format!("target-state-{name}")
}

pub fn restart_key(name: &str) -> String {
    format!("restart-connector-{name}")
}

pub fn connector_status_key(name: &str) -> String {
    format!("status-connector-{name}")
}

pub fn task_status_key(name: &str, task: u32) -> String {
    format!("status-task-{name}-{task}")
}

/// `status-topic-<topic>:connector-<name>` (KIP-558). Topic names cannot hold `:`.
pub fn topic_status_key(topic: &str, connector: &str) -> String {
    format!("status-topic-{topic}:connector-{connector}")
}

/// `(topic, connector)` from a [`topic_status_key`].
pub fn parse_topic_status_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix("status-topic-")?.split_once(":connector-")
}

/// `{"topic":{"name","connector","task","discoverTimestamp"}}`.
pub fn topic_status_value(topic: &str, connector: &str, used: &TopicUse) -> Vec<u8> {
    json!({"topic": {
        "name": topic,
        "connector": connector,
        "task": used.task,
        "discoverTimestamp": used.discovered_ms,
    }})
    .to_string()
    .into_bytes()
}

/// The task and time of a [`topic_status_value`]; `None` when it cannot be read.
pub fn parse_topic_status_value(value: &[u8]) -> Option<TopicUse> {
    let j: Json = serde_json::from_slice(value).ok()?;
    let topic = j.get("topic")?;
    Some(TopicUse {
        task: u32::try_from(topic.get("task")?.as_u64()?).ok()?,
        discovered_ms: topic
            .get("discoverTimestamp")
            .and_then(Json::as_i64)
            .unwrap_or(0),
        recorded: true,
    })
}

/// `{"properties":{...}}`, the value of `connector-*` and `task-*` records.
pub fn properties_value(config: &Config) -> Vec<u8> {
    json!({ "properties": config }).to_string().into_bytes()
}

pub fn commit_value(tasks: usize) -> Vec<u8> {
    json!({ "tasks": tasks }).to_string().into_bytes()
}

/// `state` says PAUSED for STOPPED, for readers older than 3.5; `state.v2` is the truth.
pub fn target_value(target: TargetState) -> Vec<u8> {
    let (v1, v2) = match target {
        TargetState::Started => ("STARTED", "STARTED"),
        TargetState::Paused => ("PAUSED", "PAUSED"),
        TargetState::Stopped => ("PAUSED", "STOPPED"),
    };
    json!({ "state": v1, "state.v2": v2 })
        .to_string()
        .into_bytes()
}

pub fn restart_value(include_tasks: bool, only_failed: bool) -> Vec<u8> {
    json!({ "include-tasks": include_tasks, "only-failed": only_failed })
        .to_string()
        .into_bytes()
}

/// A restart asked for through the config topic (KIP-745).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartRequest {
    /// Where it was read, so each worker acts on it once.
    pub offset: i64,
    pub include_tasks: bool,
    pub only_failed: bool,
}

/// The cluster's configuration as read from the config topic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterConfig {
    /// The next offset to read: the "config offset" of the group protocol (−1 before any).
    pub offset: i64,
    /// Raw connector configs (placeholders unresolved).
    pub connectors: BTreeMap<String, Config>,
    pub targets: BTreeMap<String, TargetState>,
    /// Committed task configs.
    pub tasks: BTreeMap<String, Vec<Config>>,
    /// The latest restart request of each connector.
    pub restarts: BTreeMap<String, RestartRequest>,
    /// Task configs read but not yet committed.
    pending: BTreeMap<String, BTreeMap<u32, Config>>,
}

fn properties(value: &Json) -> Option<Config> {
    let props = value.get("properties")?.as_object()?;
    Some(
        props
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

fn split_task_key(rest: &str) -> Option<(&str, u32)> {
    let (name, id) = rest.rsplit_once('-')?;
    Some((name, id.parse().ok()?))
}

impl ClusterConfig {
    pub fn new() -> ClusterConfig {
        ClusterConfig {
            offset: -1,
            ..ClusterConfig::default()
        }
    }

    /// The target state of a configured connector (STARTED when none was written).
    pub fn target(&self, name: &str) -> TargetState {
        self.targets
            .get(name)
            .copied()
            .unwrap_or(TargetState::Started)
    }

    /// Applies one config-topic record. Unknown keys (session keys, fencing, loggers) are
    /// skipped; a record that cannot be parsed is logged and skipped, as Connect does.
    pub fn apply(&mut self, offset: i64, key: &str, value: Option<&[u8]>) {
        self.offset = offset + 1;
        let json = match value.map(serde_json::from_slice::<Json>) {
            None => None,
            Some(Ok(j)) => Some(j),
            Some(Err(e)) => {
                tracing::error!(key, offset, error = %e, "Skipping a config record that is not JSON.");
                return;
            }
        };
        if let Some(name) = key.strip_prefix("connector-") {
            match json.as_ref().and_then(properties) {
                Some(config) => {
                    self.connectors.insert(name.to_owned(), config);
                }
                None => {
                    self.connectors.remove(name);
                    self.tasks.remove(name);
                    self.targets.remove(name);
                    self.pending.remove(name);
                    self.restarts.remove(name);
                }
            }
        } else if let Some(rest) = key.strip_prefix("task-") {
            let Some((name, id)) = split_task_key(rest) else {
                tracing::error!(key, "Skipping a task config record with a malformed key.");
                return;
            };
            if let Some(config) = json.as_ref().and_then(properties) {
                self.pending
                    .entry(name.to_owned())
                    .or_default()
                    .insert(id, config);
            }
        } else if let Some(name) = key.strip_prefix("commit-") {
            let Some(n) = json.as_ref().and_then(|j| j.get("tasks")?.as_u64()) else {
                tracing::error!(key, "Skipping a commit record without a task count.");
                return;
            };
            let mut pending = self.pending.remove(name).unwrap_or_default();
            let previous = self.tasks.get(name).cloned().unwrap_or_default();
            let mut tasks = Vec::with_capacity(n as usize);
            for id in 0..n as u32 {
                // A task config written in an earlier round and not rewritten still counts.
                match pending
                    .remove(&id)
                    .or_else(|| previous.get(id as usize).cloned())
                {
                    Some(c) => tasks.push(c),
                    None => {
                        tracing::error!(
                            key,
                            task = id,
                            "A commit names a task config that was never written; ignoring it."
                        );
                        return;
                    }
                }
            }
            self.tasks.insert(name.to_owned(), tasks);
        } else if let Some(name) = key.strip_prefix("target-state-") {
            let state = json.as_ref().and_then(|j| {
                j.get("state.v2")
                    .or_else(|| j.get("state"))
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            });
            match state.as_deref() {
                None => {
                    self.targets.remove(name);
                }
                Some("STARTED") => {
                    self.targets.insert(name.to_owned(), TargetState::Started);
                }
                Some("PAUSED") => {
                    self.targets.insert(name.to_owned(), TargetState::Paused);
                }
                Some("STOPPED") => {
                    self.targets.insert(name.to_owned(), TargetState::Stopped);
                }
                Some(other) => {
                    tracing::error!(key, state = other, "Skipping an unknown target state.");
                }
            }
        } else if let Some(name) = key.strip_prefix("restart-connector-") {
            let flag = |k: &str| {
                json.as_ref()
                    .and_then(|j| j.get(k)?.as_bool())
                    .unwrap_or(false)
            };
            if json.is_some() {
                self.restarts.insert(
                    name.to_owned(),
                    RestartRequest {
                        offset,
                        include_tasks: flag("include-tasks"),
                        only_failed: flag("only-failed"),
                    },
                );
            }
        }
    }
}

/// One status record: `{"state","trace","worker_id","generation"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    pub state: State,
    pub trace: Option<String>,
    pub worker_id: String,
    pub generation: i32,
}

impl StatusRecord {
    pub fn value(&self) -> Vec<u8> {
        json!({
            "state": self.state,
            "trace": self.trace,
            "worker_id": self.worker_id,
            "generation": self.generation,
        })
        .to_string()
        .into_bytes()
    }

    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            trace: self.trace.clone(),
            restarts: None,
            worker_id: Some(self.worker_id.clone()),
        }
    }

    fn parse(value: &[u8]) -> Option<StatusRecord> {
        let j: Json = serde_json::from_slice(value).ok()?;
        let state = serde_json::from_value::<State>(j.get("state")?.clone()).ok()?;
        Some(StatusRecord {
            state,
            trace: j.get("trace").and_then(Json::as_str).map(str::to_owned),
            worker_id: j.get("worker_id")?.as_str()?.to_owned(),
            generation: j.get("generation").and_then(Json::as_i64).unwrap_or(0) as i32,
        })
    }
}

/// Every connector's and task's latest status as read from the status topic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterStatus {
    pub connectors: BTreeMap<String, StatusRecord>,
    pub tasks: BTreeMap<(String, u32), StatusRecord>,
    /// When each status key's latest record was written (its timestamp, milliseconds since
    /// the epoch), where the record has one.
    pub written_ms: BTreeMap<String, i64>,
}

impl ClusterStatus {
    /// The latest status of a connector or task, and its key in the status topic.
    pub fn of(&self, work: &Work) -> (Option<&StatusRecord>, String) {
        match work {
            Work::Connector(name) => (self.connectors.get(name), connector_status_key(name)),
            Work::Task(name, id) => (
                self.tasks.get(&(name.clone(), *id)),
                task_status_key(name, *id),
            ),
        }
    }

    /// Applies one connector or task status record. Topic records
    /// (`status-topic-*`) are the herder's: see [`parse_topic_status_key`].
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>, written_ms: Option<i64>) {
        let record = value.and_then(StatusRecord::parse);
        if value.is_some() && record.is_none() {
            tracing::error!(key, "Skipping a status record that cannot be parsed.");
            return;
        }
        match (record.is_some(), written_ms) {
            (true, Some(ms)) => self.written_ms.insert(key.to_owned(), ms),
            _ => self.written_ms.remove(key),
        };
        if let Some(name) = key.strip_prefix("status-connector-") {
            match record {
                Some(r) => self.connectors.insert(name.to_owned(), r),
                None => self.connectors.remove(name),
            };
        } else if let Some((name, id)) = key.strip_prefix("status-task-").and_then(split_task_key) {
            let k = (name.to_owned(), id);
            match record {
                Some(r) => self.tasks.insert(k, r),
                None => self.tasks.remove(&k),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn task_configs_apply_only_on_commit() {
        let mut c = ClusterConfig::new();
        assert_eq!(c.offset, -1);
        let conn = cfg(&[("connector.class", "FileStreamSink"), ("tasks.max", "2")]);
        c.apply(0, &connector_key("my-sink"), Some(&properties_value(&conn)));
        c.apply(
            1,
            &task_key("my-sink", 0),
            Some(&properties_value(&cfg(&[("t", "0")]))),
        );
        c.apply(
            2,
            &task_key("my-sink", 1),
            Some(&properties_value(&cfg(&[("t", "1")]))),
        );
        assert!(!c.tasks.contains_key("my-sink"), "not committed yet");
        c.apply(3, &commit_key("my-sink"), Some(&commit_value(2)));
        assert_eq!(c.tasks["my-sink"].len(), 2);
        assert_eq!(c.tasks["my-sink"][1]["t"], "1");
        assert_eq!(c.offset, 4);
        assert_eq!(c.connectors["my-sink"], conn);
        // Stopping commits zero tasks.
        c.apply(4, &commit_key("my-sink"), Some(&commit_value(0)));
        assert!(c.tasks["my-sink"].is_empty());
    }

    #[test]
    fn target_states_prefer_v2_and_tombstones_delete() {
        let mut c = ClusterConfig::new();
        c.apply(
            0,
            &target_key("a"),
            Some(&target_value(TargetState::Stopped)),
        );
        c.apply(1, &connector_key("a"), Some(&properties_value(&cfg(&[]))));
        assert_eq!(c.target("a"), TargetState::Stopped);
        let old_reader: Json =
            serde_json::from_slice(&target_value(TargetState::Stopped)).expect("json");
        assert_eq!(old_reader["state"], "PAUSED");
        c.apply(2, &target_key("a"), Some(br#"{"state":"PAUSED"}"#));
        assert_eq!(c.target("a"), TargetState::Paused);
        c.apply(3, &connector_key("a"), None);
        c.apply(4, &target_key("a"), None);
        assert!(c.connectors.is_empty());
        assert_eq!(c.target("a"), TargetState::Started);
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        let mut c = ClusterConfig::new();
        c.apply(0, &commit_key("x"), Some(b"{nope"));
        c.apply(
            1,
            "session-key",
            Some(br#"{"key":"abc","algorithm":"HmacSHA256","creation-timestamp":1}"#),
        );
        c.apply(2, &commit_key("x"), Some(&commit_value(1)));
        assert!(
            c.tasks.is_empty(),
            "a commit of a task never written is ignored"
        );
        assert_eq!(c.offset, 3);
        c.apply(3, &restart_key("x"), Some(&restart_value(true, false)));
        assert_eq!(
            c.restarts["x"],
            RestartRequest {
                offset: 3,
                include_tasks: true,
                only_failed: false
            }
        );
    }

    #[test]
    fn statuses_parse_connects_records_and_dashed_names() {
        let mut s = ClusterStatus::default();
        let record = StatusRecord {
            state: State::Running,
            trace: None,
            worker_id: "10.0.0.1:8083".into(),
            generation: 17,
        };
        let value = record.value();
        assert_eq!(
            String::from_utf8(value.clone()).expect("utf8"),
            r#"{"state":"RUNNING","trace":null,"worker_id":"10.0.0.1:8083","generation":17}"#
        );
        s.apply(&task_status_key("my-jdbc-sink", 3), Some(&value), None);
        s.apply(&connector_status_key("my-jdbc-sink"), Some(&value), None);
        assert_eq!(s.tasks[&("my-jdbc-sink".to_owned(), 3)], record);
        assert_eq!(s.connectors["my-jdbc-sink"].generation, 17);
        s.apply(&task_status_key("my-jdbc-sink", 3), None, None);
        assert!(s.tasks.is_empty());
        s.apply(&connector_status_key("x"), Some(b"[]"), None);
        assert!(!s.connectors.contains_key("x"));
    }

    #[test]
    fn topic_records_are_connects() {
        let key = topic_status_key("orders.v1", "my-sink:2");
        assert_eq!(key, "status-topic-orders.v1:connector-my-sink:2");
        assert_eq!(
            parse_topic_status_key(&key),
            Some(("orders.v1", "my-sink:2"))
        );
        assert_eq!(parse_topic_status_key("status-task-my-sink-0"), None);
        let used = TopicUse {
            task: 0,
            discovered_ms: 1_700_000_000_000,
            recorded: true,
        };
        let value = topic_status_value("orders", "my-sink", &used);
        assert_eq!(
            String::from_utf8(value.clone()).expect("utf8"),
            r#"{"topic":{"name":"orders","connector":"my-sink","task":0,"discoverTimestamp":1700000000000}}"#
        );
        assert_eq!(parse_topic_status_value(&value), Some(used));
        assert_eq!(parse_topic_status_value(br#"{"state":"RUNNING"}"#), None);
    }
}
