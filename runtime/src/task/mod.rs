//! Task loops: a sink task consumes, converts and hands batches to its plugin, committing
//! offsets only after the plugin flushed; a source task polls its plugin, converts,
//! produces and stores source offsets only for acknowledged records.

pub mod chain;
mod errors;
mod sink;
mod source;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::config::errors::RestartPolicy;
use crate::herder::offsets::OffsetStore;
use crate::kafka::TopicCreator;
use crate::plugin::{Plugin, PluginRegistry};

pub use sink::run_sink;
pub use source::run_source;

/// Runs a task; when it fails and its connector opted in to automatic restart
/// (`errors.task.restart.*`), runs it again after a growing delay, counting the restarts
/// in its status. A task that stops cleanly, or is cancelled, is not restarted.
pub async fn supervise(ctx: TaskContext, restart: Option<RestartPolicy>) {
    let source = ctx.plugin.kind == wasmconnect_sdk::PluginKind::Source;
    if restart.is_some() {
        set_restarts(&ctx.status, 0);
    }
    let mut attempt = 0;
    loop {
        if source {
            run_source(ctx.clone()).await;
        } else {
            run_sink(ctx.clone()).await;
        }
        let Some(policy) = restart else {
            return;
        };
        let status = get_status(&ctx.status);
        if ctx.cancel.is_cancelled() || status.state != State::Failed {
            return;
        }
        if policy.max_attempts.is_some_and(|max| attempt >= max) {
            tracing::error!(connector = %ctx.connector, task = ctx.task_id, restarts = attempt, "Task failed again; no automatic restarts left.");
            return;
        }
        attempt += 1;
        let delay = policy.delay(attempt);
        tracing::warn!(connector = %ctx.connector, task = ctx.task_id, attempt, delay_ms = delay.as_millis() as u64, "Task failed; restarting it automatically.");
        set_status(
            &ctx.status,
            Status {
                state: State::Restarting,
                ..status
            },
        );
        tokio::select! {
            () = ctx.cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        set_restarts(&ctx.status, attempt);
    }
}

/// Kafka Connect's task and connector states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Stopped,
    Failed,
    Restarting,
}

/// A task's or connector's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub trace: Option<String>,
    /// Automatic restarts so far, for a task whose connector opted in
    /// (`errors.task.restart.enable`); shown as `restarts`.
    pub restarts: Option<u32>,
    /// The worker that reported it, when not this one (distributed mode).
    pub worker_id: Option<String>,
}

impl Status {
    pub fn new(state: State) -> Status {
        Status {
            state,
            trace: None,
            restarts: None,
            worker_id: None,
        }
    }

    pub fn failed(trace: impl Into<String>) -> Status {
        Status {
            state: State::Failed,
            trace: Some(trace.into()),
            restarts: None,
            worker_id: None,
        }
    }
}

/// A status shared between a running task and the herder.
pub type SharedStatus = Arc<Mutex<Status>>;

/// Sets the state and trace; the restart count is kept (see [`set_restarts`]).
pub fn set_status(status: &SharedStatus, value: Status) {
    let mut current = status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let restarts = value.restarts.or(current.restarts);
    *current = Status { restarts, ..value };
}

pub fn set_restarts(status: &SharedStatus, restarts: u32) {
    status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .restarts = Some(restarts);
}

pub fn get_status(status: &SharedStatus) -> Status {
    status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// What the herder wants a task to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Run,
    Pause,
}

/// What the worker shares with every task.
#[derive(Debug)]
pub struct WorkerShared {
    pub config: WorkerConfig,
    pub bootstrap: String,
    pub offsets: OffsetStore,
    /// Creates the topics sources write to (brokers may not create them on their own).
    pub topics: TopicCreator,
    /// Every plugin: tasks find their transforms here.
    pub plugins: Arc<PluginRegistry>,
}

/// Everything one task runs with.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub connector: String,
    pub task_id: u32,
    /// The task's config, placeholders resolved.
    pub config: BTreeMap<String, String>,
    /// The connector's config, placeholders resolved (converters, client overrides).
    pub connector_config: BTreeMap<String, String>,
    pub plugin: Arc<Plugin>,
    pub worker: Arc<WorkerShared>,
    pub status: SharedStatus,
    pub target: watch::Receiver<Target>,
    pub cancel: CancellationToken,
    /// Topics this connector has used (KIP-558).
    pub topics: ActiveTopics,
}

/// The topics a connector has used (KIP-558), by name. Its tasks add to it; the herder
/// reads it for `GET /connectors/{name}/topics` and, in distributed mode, records what is
/// new in the status topic.
pub type ActiveTopics = Arc<Mutex<BTreeMap<String, TopicUse>>>;

/// Records that task `task_id` used `topic`, unless the connector already has it.
fn note_topic(topics: &ActiveTopics, task_id: u32, topic: &str) {
    let mut topics = topics
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !topics.contains_key(topic) {
        let discovered_ms = epoch_millis();
        topics.insert(
            topic.to_owned(),
            TopicUse {
                task: task_id,
                discovered_ms,
                recorded: false,
            },
        );
    }
}

/// Milliseconds since the epoch, as Kafka timestamps count.
pub fn epoch_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When and by which task a topic was first used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicUse {
    pub task: u32,
    /// Milliseconds since the epoch (`discoverTimestamp`).
    pub discovered_ms: i64,
    /// Whether the status topic holds it (distributed mode; standalone does not write it).
    pub recorded: bool,
}

impl TaskContext {
    fn task_name(&self) -> String {
        format!("{}-{}", self.connector, self.task_id)
    }

    fn note_topic(&self, topic: &str) {
        note_topic(&self.topics, self.task_id, topic);
    }

    /// Waits while the target is `Pause`; returns false when cancelled.
    async fn wait_while_paused(&mut self) -> bool {
        while *self.target.borrow() == Target::Pause {
            tokio::select! {
                () = self.cancel.cancelled() => return false,
                changed = self.target.changed() => if changed.is_err() { return false },
            }
        }
        true
    }
}

/// Leaves a finished task's outcome in its status: UNASSIGNED after a clean stop (as Kafka
/// Connect writes), FAILED with the trace otherwise.
fn finish(ctx: &TaskContext, outcome: Result<(), TaskFailure>) {
    match outcome {
        Ok(()) => set_status(&ctx.status, Status::new(State::Unassigned)),
        Err(failure) => {
            tracing::error!(connector = %ctx.connector, task = ctx.task_id, error = %failure.0, "Task failed; it will not recover until restarted.");
            set_status(&ctx.status, Status::failed(failure.0));
        }
    }
}

/// Config issues as one line: `key: message; ...`.
fn join_issues(issues: &[wasmconnect_sdk::config::ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a task stopped with an error; the text becomes the task's `trace`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TaskFailure(pub String);

impl TaskFailure {
    fn new(context: &str, err: impl std::fmt::Display) -> TaskFailure {
        TaskFailure(format!("{context}: {err}"))
    }
}

/// Backoff for retriable errors: doubling from 100 ms to 10 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: Duration::from_millis(100),
        }
    }

    /// Sleeps; returns false when cancelled first.
    async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let delay = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(10));
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}
