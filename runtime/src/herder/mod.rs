//! Connector lifecycle: the herder owns connector configs, target states and running tasks.
//! REST handlers and the CLI talk to it; tasks do not know it exists.

pub mod connector_offsets;
pub mod distributed;
pub mod offsets;
mod standalone;
mod validate;

use std::collections::BTreeMap;

use wasmconnect_sdk::PluginKind;

pub use distributed::DistributedHerder;
pub use standalone::StandaloneHerder;
pub use validate::{ConfigInfos, ConfigValueInfo, FieldInfo};

use crate::plugin::PluginRegistry;
use crate::task::{Status, WorkerShared};

/// The state a user asked a connector to be in (stored, not observed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Started,
    Paused,
    Stopped,
}

impl TargetState {
    /// Parses `initial_state` (`RUNNING`, `PAUSED`, `STOPPED`, any case).
    pub fn from_initial_state(s: &str) -> Option<TargetState> {
        match s.trim().to_ascii_uppercase().as_str() {
            "RUNNING" => Some(TargetState::Started),
            "PAUSED" => Some(TargetState::Paused),
            "STOPPED" => Some(TargetState::Stopped),
            _ => None,
        }
    }
}

/// Why a herder request failed; the REST layer maps each to its status code once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HerderError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
    /// Only the leader may do this; the REST layer forwards to its URL (409 when unknown).
    #[error("Cannot complete request because this worker is not the leader")]
    NotLeader(Option<String>),
    /// Another worker runs this; the REST layer forwards to its URL.
    #[error("Cannot complete request because this worker does not run {what}")]
    NotOwner { what: String, url: String },
}

/// A connector's config and tasks (`ConnectorInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorInfo {
    pub name: String,
    pub config: BTreeMap<String, String>,
    pub tasks: Vec<u32>,
    pub kind: PluginKind,
}

/// A connector's observed state and its tasks' (`ConnectorStateInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorStatus {
    pub name: String,
    pub connector: Status,
    /// By task id.
    pub tasks: Vec<(u32, Status)>,
    pub kind: PluginKind,
}

/// One task's config (`TaskInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    pub connector: String,
    pub task: u32,
    pub config: BTreeMap<String, String>,
}

/// The herder of a standalone or a distributed worker; REST and the CLI use this one type.
#[derive(Debug)]
pub enum Herder {
    Standalone(StandaloneHerder),
    Distributed(DistributedHerder),
}

/// Calls the same method on whichever herder this is.
macro_rules! dispatch {
    ($self:ident, $h:ident => $call:expr) => {
        match $self {
            Herder::Standalone($h) => $call,
            Herder::Distributed($h) => $call,
        }
    };
}

type Config = BTreeMap<String, String>;

impl Herder {
    pub fn worker(&self) -> &WorkerShared {
        dispatch!(self, h => h.worker())
    }

    pub fn registry(&self) -> &PluginRegistry {
        dispatch!(self, h => h.registry())
    }

    /// # Errors
    /// When `connector.class` is missing or names no connector plugin.
    pub async fn validate(&self, config: &Config) -> Result<ConfigInfos, HerderError> {
        dispatch!(self, h => h.validate(config).await)
    }

    pub async fn connector_names(&self) -> Vec<String> {
        dispatch!(self, h => h.connector_names().await)
    }

    /// # Errors
    /// 409 when it exists, 400 when its config is invalid.
    pub async fn create(
        &self,
        name: &str,
        config: Config,
        initial: TargetState,
    ) -> Result<ConnectorInfo, HerderError> {
        dispatch!(self, h => h.create(name, config, initial).await)
    }

    /// # Errors
    /// 400 when the config is invalid.
    pub async fn put_config(
        &self,
        name: &str,
        config: Config,
    ) -> Result<(bool, ConnectorInfo), HerderError> {
        dispatch!(self, h => h.put_config(name, config).await)
    }

    /// # Errors
    /// 404 when the connector does not exist, 400 when the result is invalid.
    pub async fn patch_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo, HerderError> {
        dispatch!(self, h => h.patch_config(name, patch).await)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn config(&self, name: &str) -> Result<Config, HerderError> {
        dispatch!(self, h => h.config(name).await)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn info(&self, name: &str) -> Result<ConnectorInfo, HerderError> {
        dispatch!(self, h => h.info(name).await)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn status(&self, name: &str) -> Result<ConnectorStatus, HerderError> {
        dispatch!(self, h => h.status(name).await)
    }

    /// # Errors
    /// 404 when the connector or task does not exist.
    pub async fn task_status(&self, name: &str, task: u32) -> Result<Status, HerderError> {
        dispatch!(self, h => h.task_status(name, task).await)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn tasks(&self, name: &str) -> Result<Vec<TaskInfo>, HerderError> {
        dispatch!(self, h => h.tasks(name).await)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn pause(&self, name: &str) -> Result<(), HerderError> {
        dispatch!(self, h => h.pause(name).await)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn resume(&self, name: &str) -> Result<(), HerderError> {
        dispatch!(self, h => h.resume(name).await)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn stop(&self, name: &str) -> Result<(), HerderError> {
        dispatch!(self, h => h.stop(name).await)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn delete(&self, name: &str) -> Result<(), HerderError> {
        dispatch!(self, h => h.delete(name).await)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStatus>, HerderError> {
        dispatch!(self, h => h.restart(name, include_tasks, only_failed).await)
    }

    /// # Errors
    /// 404 when the connector or task does not exist.
    pub async fn restart_task(&self, name: &str, task: u32) -> Result<(), HerderError> {
        dispatch!(self, h => h.restart_task(name, task).await)
    }

    /// # Errors
    /// 404 when the connector does not exist, 403 when topic tracking is disabled.
    pub async fn topics(&self, name: &str) -> Result<Vec<String>, HerderError> {
        dispatch!(self, h => h.topics(name).await)
    }

    /// # Errors
    /// 404 when the connector does not exist, 403 when tracking or its reset is disabled.
    pub async fn reset_topics(&self, name: &str) -> Result<(), HerderError> {
        dispatch!(self, h => h.reset_topics(name).await)
    }

    /// The connector's offsets, as `ConnectorOffsets` entries.
    ///
    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn offsets(&self, name: &str) -> Result<Vec<serde_json::Value>, HerderError> {
        dispatch!(self, h => h.offsets(name).await)
    }

    /// Alters or resets a stopped connector's offsets; returns Kafka's success message.
    ///
    /// # Errors
    /// 404 when the connector does not exist, 400 when it is not stopped or an entry is bad.
    pub async fn modify_offsets(
        &self,
        name: &str,
        change: connector_offsets::OffsetChange,
    ) -> Result<&'static str, HerderError> {
        dispatch!(self, h => h.modify_offsets(name, change).await)
    }

    /// Task configs a connector generated, sent to the leader (`POST /connectors/{name}/tasks`).
    ///
    /// # Errors
    /// 404 when the connector does not exist; standalone workers have no such endpoint.
    pub async fn put_task_configs(
        &self,
        name: &str,
        configs: Vec<Config>,
    ) -> Result<(), HerderError> {
        match self {
            Herder::Standalone(_) => Err(HerderError::NotFound("HTTP 404 Not Found".into())),
            Herder::Distributed(h) => h.put_task_configs(name, configs).await,
        }
    }

    /// Stops every task (each flushes and commits); a distributed worker then leaves its group.
    pub async fn shutdown(&self) {
        dispatch!(self, h => h.shutdown().await)
    }
}
