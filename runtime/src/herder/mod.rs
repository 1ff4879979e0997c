//! Connector lifecycle: the herder owns connector configs, target states and running tasks.
//! REST handlers and the CLI talk to it; tasks do not know it exists.

pub mod offsets;
mod standalone;
mod validate;

use std::collections::BTreeMap;

use wasmconnect_sdk::PluginKind;

pub use standalone::Herder;
pub use validate::{ConfigInfos, ConfigValueInfo, FieldInfo};

use crate::task::Status;

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
