//! The distributed herder. Three loops share one state:
//! - membership: joins the group, (as leader) assigns work, heartbeats, rejoins;
//! - reconcile: makes what runs here match the assignment and the config topic, and writes
//!   the status of what runs here to the status topic;
//! - the config and status topic readers, which keep the cluster view current.
//!
//! REST calls read that view; writes go to the config topic through the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wasmconnect_sdk::PluginKind;

use super::assign::{AssignorState, assign, reassign_claimed};
use super::group::{GroupMember, GroupSettings};
use super::log::{LogError, LogSpec, TopicLog};
use super::protocol::{Assignment, CONFIG_MISMATCH, PROTOCOL_TYPE, Protocol, Work, WorkerMetadata};
use super::store::{self, ClusterConfig, ClusterStatus, Config, StatusRecord};
use crate::config::distributed::{DistributedConfig, InternalTopic};
use crate::herder::connector_offsets::{self, OffsetChange};
use crate::herder::standalone::{
    TaskHandle, TaskSpec, plugin_for, reinsert_placeholders, spawn_task, stop_task, validated,
};
use crate::herder::validate::{self, ConfigInfos};
use crate::herder::{ConnectorInfo, ConnectorStatus, HerderError, TargetState, TaskInfo};
use crate::kafka::{TopicCreator, TopicSpec};
use crate::plugin::PluginRegistry;
use crate::task::{self, ActiveTopics, State, Status, Target, TopicUse, WorkerShared};

/// How often the reconcile loop looks at statuses when nothing woke it.
const RECONCILE_TICK: Duration = Duration::from_millis(200);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What this worker knows of the group right now.
#[derive(Debug, Clone, Default)]
struct GroupView {
    generation: i32,
    leader_url: Option<String>,
    is_leader: bool,
    /// Everything assigned to this worker.
    assigned: BTreeSet<Work>,
}

struct LocalConnector {
    /// The raw config task configs were last generated from.
    applied: Option<Config>,
    status: Status,
}

struct LocalTask {
    handle: TaskHandle,
    /// The raw committed task config it runs.
    config: Config,
    target: TargetState,
}

/// What runs on this worker.
#[derive(Default)]
struct Local {
    connectors: BTreeMap<String, LocalConnector>,
    tasks: BTreeMap<(String, u32), LocalTask>,
    /// Restart requests acted on, by connector (config-topic offset).
    restarts_seen: BTreeMap<String, i64>,
    restarts_primed: bool,
}

struct Inner {
    worker: Arc<WorkerShared>,
    registry: Arc<PluginRegistry>,
    cancel: CancellationToken,
    settings: DistributedConfig,
    /// `http://host:port/`, what other workers forward to.
    url: String,
    /// `host:port`, as statuses name this worker.
    worker_id: String,
    config_log: TopicLog,
    /// The config topic as read. Readers take the `Arc` (a snapshot, no copy); the log's
    /// reader copies it on write only while a snapshot is out.
    config: Arc<Mutex<Arc<ClusterConfig>>>,
    status_log: TopicLog,
    statuses: Arc<Mutex<ClusterStatus>>,
    /// Each connector's active topics (KIP-558): what the status topic holds, and what
    /// tasks here used that it does not hold yet.
    topics: Arc<Mutex<BTreeMap<String, ActiveTopics>>>,
    view: Mutex<GroupView>,
    local: tokio::sync::Mutex<Local>,
    /// Reconcile now.
    wake: Arc<Notify>,
    /// Work here also runs elsewhere under a newer generation: rebalance.
    conflict: Notify,
    http: reqwest::Client,
}

/// The herder of a worker in a group.
pub struct DistributedHerder {
    inner: Arc<Inner>,
    membership: Mutex<Option<tokio::task::JoinHandle<()>>>,
    stopped: CancellationToken,
}

impl std::fmt::Debug for DistributedHerder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedHerder")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

/// How an internal topic is created and read.
pub fn log_spec(setting: &'static str, t: &InternalTopic, client_id: String) -> LogSpec {
    LogSpec {
        setting,
        topic: t.topic.clone(),
        create: TopicSpec {
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            configs: t.settings.clone(),
        },
        single_partition: setting == "config.storage.topic",
        client_id,
    }
}

fn not_found(name: &str) -> HerderError {
    HerderError::NotFound(format!("Connector {name} not found"))
}

fn internal(e: impl std::fmt::Display) -> HerderError {
    HerderError::Internal(e.to_string())
}

/// Every unit of work the config names: each connector, and each committed task unless the
/// connector is stopped.
fn configured_work(c: &ClusterConfig) -> BTreeSet<Work> {
    let mut work = BTreeSet::new();
    for name in c.connectors.keys() {
        work.insert(Work::Connector(name.clone()));
        if c.target(name) == TargetState::Stopped {
            continue;
        }
        for id in 0..c.tasks.get(name).map_or(0, Vec::len) {
            work.insert(Work::Task(name.clone(), id as u32));
        }
    }
    work
}

impl DistributedHerder {
    /// Opens the config and status topics, reads them, and starts the loops. Joining the
    /// group happens in the background.
    ///
    /// # Errors
    /// When an internal topic cannot be created, has the wrong shape, or cannot be read.
    pub async fn start(
        worker: Arc<WorkerShared>,
        registry: Arc<PluginRegistry>,
        settings: DistributedConfig,
        creator: &TopicCreator,
        cancel: CancellationToken,
    ) -> Result<DistributedHerder, LogError> {
        let base = format!("{}-", settings.group_id);
        let producer_settings = worker.config.prefixed("producer.");
        let layers = [&producer_settings];
        let wake = Arc::new(Notify::new());
        let config = Arc::new(Mutex::new(Arc::new(ClusterConfig::new())));
        let config_log = {
            let (config, wake) = (config.clone(), wake.clone());
            let spec = log_spec(
                "config.storage.topic",
                &settings.config_topic,
                format!("{base}configs"),
            );
            TopicLog::open(&worker.bootstrap, &layers, creator, &spec, move |r| {
                let key = r.key.as_deref().map(String::from_utf8_lossy);
                if let Some(key) = key {
                    Arc::make_mut(&mut lock(&config)).apply(r.offset, &key, r.value.as_deref());
                    wake.notify_one();
                }
            })
            .await?
        };
        let statuses = Arc::new(Mutex::new(ClusterStatus::default()));
        let topics: Arc<Mutex<BTreeMap<String, ActiveTopics>>> = Arc::default();
        let status_log = {
            let (statuses, topics) = (statuses.clone(), topics.clone());
            let spec = log_spec(
                "status.storage.topic",
                &settings.status_topic,
                format!("{base}statuses"),
            );
            TopicLog::open(&worker.bootstrap, &layers, creator, &spec, move |r| {
                let Some(key) = r.key.as_deref().map(String::from_utf8_lossy) else {
                    return;
                };
                match store::parse_topic_status_key(&key) {
                    Some((topic, connector)) => {
                        apply_topic_record(&topics, topic, connector, r.value.as_deref());
                    }
                    None => lock(&statuses).apply(&key, r.value.as_deref(), r.timestamp),
                }
            })
            .await?
        };
        config_log.read_to_end(Duration::from_secs(30)).await?;
        status_log.read_to_end(Duration::from_secs(30)).await?;
        let worker_id = worker.config.advertised.clone();
        let inner = Arc::new(Inner {
            url: worker_url(&worker_id),
            worker_id,
            worker,
            registry,
            cancel: cancel.child_token(),
            settings,
            config_log,
            config,
            status_log,
            statuses,
            topics,
            view: Mutex::new(GroupView::default()),
            local: tokio::sync::Mutex::new(Local::default()),
            wake,
            conflict: Notify::new(),
            http: reqwest::Client::new(),
        });
        let stopped = CancellationToken::new();
        let span = tracing::info_span!("worker", id = %inner.worker_id);
        tokio::spawn(reconcile_loop(inner.clone()).instrument(span.clone()));
        let membership =
            tokio::spawn(membership_loop(inner.clone(), stopped.clone()).instrument(span));
        Ok(DistributedHerder {
            inner,
            membership: Mutex::new(Some(membership)),
            stopped,
        })
    }

    pub fn worker(&self) -> &WorkerShared {
        &self.inner.worker
    }

    pub fn registry(&self) -> &PluginRegistry {
        &self.inner.registry
    }

    /// Reads the cluster config under its lock (no copy of the whole config).
    fn read_config<T>(&self, f: impl FnOnce(&ClusterConfig) -> T) -> T {
        f(&lock(&self.inner.config))
    }

    fn exists(&self, name: &str) -> bool {
        self.read_config(|c| c.connectors.contains_key(name))
    }

    fn view(&self) -> GroupView {
        lock(&self.inner.view).clone()
    }

    /// `Ok` when this worker leads; otherwise where to forward.
    fn require_leader(&self) -> Result<(), HerderError> {
        let view = self.view();
        if view.is_leader {
            Ok(())
        } else {
            Err(HerderError::NotLeader(view.leader_url))
        }
    }

    /// Writes config records in order, then waits until this worker has read them.
    async fn write_config(&self, records: &[(String, Option<Vec<u8>>)]) -> Result<(), HerderError> {
        for (key, value) in records {
            self.inner
                .config_log
                .send(key.as_bytes(), value.as_deref())
                .await
                .map_err(internal)?;
        }
        self.inner
            .config_log
            .read_to_end(
                self.inner
                    .settings
                    .worker_sync_timeout
                    .max(Duration::from_secs(10)),
            )
            .await
            .map_err(internal)
    }

    /// # Errors
    /// When `connector.class` is missing or names no connector plugin.
    pub async fn validate(&self, config: &Config) -> Result<ConfigInfos, HerderError> {
        let plugin = plugin_for(&self.inner.registry, config)?;
        Ok(validate::validate(&plugin, &self.inner.registry, config).await)
    }

    pub async fn connector_names(&self) -> Vec<String> {
        self.read_config(|c| c.connectors.keys().cloned().collect())
    }

    fn info_from(&self, name: &str, c: &ClusterConfig) -> Result<ConnectorInfo, HerderError> {
        let config = c.connectors.get(name).ok_or_else(|| not_found(name))?;
        Ok(ConnectorInfo {
            name: name.to_owned(),
            config: config.clone(),
            tasks: (0..c.tasks.get(name).map_or(0, Vec::len) as u32).collect(),
            kind: self.kind_of(config),
        })
    }

    fn kind_of(&self, config: &Config) -> PluginKind {
        plugin_for(&self.inner.registry, config).map_or(PluginKind::Source, |p| p.kind)
    }

    /// # Errors
    /// 409 when it exists, 400 when its config is invalid; forwarded when not the leader.
    pub async fn create(
        &self,
        name: &str,
        mut config: Config,
        initial: TargetState,
    ) -> Result<ConnectorInfo, HerderError> {
        self.require_leader()?;
        config.insert("name".into(), name.into());
        validated(&self.inner.registry, &config).await?;
        if self.exists(name) {
            return Err(HerderError::AlreadyExists(format!(
                "Connector {name} already exists"
            )));
        }
        let mut records = Vec::new();
        if initial != TargetState::Started {
            records.push((store::target_key(name), Some(store::target_value(initial))));
        }
        records.push((
            store::connector_key(name),
            Some(store::properties_value(&config)),
        ));
        self.write_config(&records).await?;
        tracing::info!(connector = %name, "Created connector.");
        self.info(name).await
    }

    /// # Errors
    /// 400 when the config is invalid; forwarded when not the leader.
    pub async fn put_config(
        &self,
        name: &str,
        mut config: Config,
    ) -> Result<(bool, ConnectorInfo), HerderError> {
        self.require_leader()?;
        config.insert("name".into(), name.into());
        validated(&self.inner.registry, &config).await?;
        let created = !self.exists(name);
        self.write_config(&[(
            store::connector_key(name),
            Some(store::properties_value(&config)),
        )])
        .await?;
        tracing::info!(connector = %name, created, "Wrote connector config.");
        Ok((created, self.info(name).await?))
    }

    /// # Errors
    /// 404 when the connector does not exist, 400 when the result is invalid.
    pub async fn patch_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo, HerderError> {
        self.require_leader()?;
        let mut config = self.config(name).await?;
        for (k, v) in patch {
            match v {
                Some(v) => config.insert(k, v),
                None => config.remove(&k),
            };
        }
        self.put_config(name, config).await.map(|(_, i)| i)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn config(&self, name: &str) -> Result<Config, HerderError> {
        self.read_config(|c| c.connectors.get(name).cloned())
            .ok_or_else(|| not_found(name))
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn info(&self, name: &str) -> Result<ConnectorInfo, HerderError> {
        self.read_config(|c| self.info_from(name, c))
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn tasks(&self, name: &str) -> Result<Vec<TaskInfo>, HerderError> {
        self.read_config(|c| {
            if !c.connectors.contains_key(name) {
                return Err(not_found(name));
            }
            Ok(c.tasks
                .get(name)
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, config)| TaskInfo {
                    connector: name.to_owned(),
                    task: i as u32,
                    config: config.clone(),
                })
                .collect())
        })
    }

    /// The status as the status topic has it: the same on every worker.
    ///
    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn status(&self, name: &str) -> Result<ConnectorStatus, HerderError> {
        let (config, task_count) = self
            .read_config(|c| {
                let config = c.connectors.get(name)?.clone();
                Some((config, c.tasks.get(name).map_or(0, Vec::len) as u32))
            })
            .ok_or_else(|| {
                HerderError::NotFound(format!("No status found for connector {name}"))
            })?;
        let or_unassigned = |r: Option<&StatusRecord>| {
            r.map_or_else(|| Status::new(State::Unassigned), StatusRecord::status)
        };
        let (connector, tasks) = {
            let statuses = lock(&self.inner.statuses);
            let connector = or_unassigned(statuses.connectors.get(name));
            let tasks = (0..task_count)
                .map(|id| {
                    (
                        id,
                        or_unassigned(statuses.tasks.get(&(name.to_owned(), id))),
                    )
                })
                .collect();
            (connector, tasks)
        };
        Ok(ConnectorStatus {
            name: name.to_owned(),
            connector,
            tasks,
            kind: self.kind_of(&config),
        })
    }

    /// # Errors
    /// 404 when the connector or task does not exist.
    pub async fn task_status(&self, name: &str, task: u32) -> Result<Status, HerderError> {
        let status = self.status(name).await?;
        status
            .tasks
            .into_iter()
            .find(|(id, _)| *id == task)
            .map(|(_, s)| s)
            .ok_or_else(|| HerderError::NotFound(format!("No status found for task {name}-{task}")))
    }

    async fn set_target(&self, name: &str, target: TargetState) -> Result<(), HerderError> {
        if !self.exists(name) {
            return Err(HerderError::NotFound(format!("Unknown connector {name}")));
        }
        let mut records = vec![(store::target_key(name), Some(store::target_value(target)))];
        if target == TargetState::Stopped {
            // Stopping also drops the task configs (Connect writes a zero-task commit).
            records.push((store::commit_key(name), Some(store::commit_value(0))));
        }
        self.write_config(&records).await?;
        tracing::info!(connector = %name, target = ?target, "Changed target state.");
        Ok(())
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn pause(&self, name: &str) -> Result<(), HerderError> {
        self.set_target(name, TargetState::Paused).await
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn resume(&self, name: &str) -> Result<(), HerderError> {
        self.set_target(name, TargetState::Started).await
    }

    /// # Errors
    /// 404 when the connector does not exist; forwarded when not the leader.
    pub async fn stop(&self, name: &str) -> Result<(), HerderError> {
        self.require_leader()?;
        self.set_target(name, TargetState::Stopped).await
    }

    /// # Errors
    /// 404 when the connector does not exist; forwarded when not the leader.
    pub async fn delete(&self, name: &str) -> Result<(), HerderError> {
        self.require_leader()?;
        if !self.exists(name) {
            return Err(not_found(name));
        }
        self.write_config(&[
            (store::connector_key(name), None),
            (store::target_key(name), None),
        ])
        .await?;
        let topics: Vec<String> = lock(&active_topics(&self.inner, name))
            .keys()
            .cloned()
            .collect();
        if let Err(e) = forget_topics(&self.inner, name, &topics).await {
            tracing::warn!(connector = %name, error = %e, "Cannot remove a deleted connector's topics.");
        }
        lock(&self.inner.topics).remove(name);
        let mut keys = vec![store::connector_status_key(name)];
        keys.extend(
            lock(&self.inner.statuses)
                .tasks
                .keys()
                .filter(|(c, _)| c == name)
                .map(|(c, id)| store::task_status_key(c, *id)),
        );
        for key in keys {
            if let Err(e) = self.inner.status_log.send(key.as_bytes(), None).await {
                tracing::warn!(key, error = %e, "Cannot remove a deleted connector's status.");
            }
        }
        tracing::info!(connector = %name, "Deleted connector.");
        Ok(())
    }

    /// Writes a restart request to the config topic; the workers that run the connector and
    /// its tasks act on it.
    ///
    /// # Errors
    /// 404 when the connector does not exist; forwarded when not the leader.
    pub async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStatus>, HerderError> {
        self.require_leader()?;
        let mut planned = self.status(name).await.map_err(|_| not_found(name))?;
        if !only_failed || planned.connector.state == State::Failed {
            planned.connector.state = State::Restarting;
        }
        if include_tasks {
            for (_, s) in &mut planned.tasks {
                if !only_failed || s.state == State::Failed {
                    s.state = State::Restarting;
                }
            }
        }
        self.write_config(&[(
            store::restart_key(name),
            Some(store::restart_value(include_tasks, only_failed)),
        )])
        .await?;
        tracing::info!(connector = %name, include_tasks, only_failed, "Requested a restart.");
        Ok((include_tasks || only_failed).then_some(planned))
    }

    /// Restarts a task that runs here; forwarded to the worker that runs it otherwise.
    ///
    /// # Errors
    /// 404 when the connector or task does not exist.
    pub async fn restart_task(&self, name: &str, task: u32) -> Result<(), HerderError> {
        if self.read_config(|c| c.tasks.get(name).is_none_or(|t| task as usize >= t.len())) {
            return Err(HerderError::NotFound(format!("Unknown task {name}-{task}")));
        }
        let mut local = self.inner.local.lock().await;
        if let Some(t) = local.tasks.remove(&(name.to_owned(), task)) {
            stop_task(t.handle, self.inner.worker.config.task_shutdown_timeout).await;
            drop(local);
            self.inner.wake.notify_one();
            return Ok(());
        }
        let owner = lock(&self.inner.statuses)
            .tasks
            .get(&(name.to_owned(), task))
            .map(|s| s.worker_id.clone());
        match owner {
            Some(w) if w != self.inner.worker_id => Err(HerderError::NotOwner {
                what: format!("task {name}-{task}"),
                url: worker_url(&w),
            }),
            _ => Err(HerderError::NotLeader(None)),
        }
    }

    /// Topics the connector's tasks on this worker have used.
    ///
    /// # Errors
    /// 404 when the connector does not exist, 403 when topic tracking is disabled.
    pub async fn topics(&self, name: &str) -> Result<Vec<String>, HerderError> {
        if !self.inner.worker.config.topic_tracking_enable {
            return Err(HerderError::Forbidden("Topic tracking is disabled.".into()));
        }
        if !self.exists(name) {
            return Err(not_found(name));
        }
        let topics = active_topics(&self.inner, name);
        Ok(lock(&topics).keys().cloned().collect())
    }

    /// Removes the connector's active topics from the status topic (every worker reads the
    /// removal; a topic used again is recorded again), as Connect does from any worker.
    ///
    /// # Errors
    /// 404 when the connector does not exist, 403 when tracking or its reset is disabled,
    /// 500 when the status topic cannot be written.
    pub async fn reset_topics(&self, name: &str) -> Result<(), HerderError> {
        if !self.inner.worker.config.topic_tracking_allow_reset {
            return Err(HerderError::Forbidden(
                "Topic tracking reset is disabled.".into(),
            ));
        }
        let topics = self.topics(name).await?;
        forget_topics(&self.inner, name, &topics)
            .await
            .map_err(internal)
    }

    /// The connector's offsets, read on this worker.
    ///
    /// # Errors
    /// 404 when the connector does not exist; 500 when the broker cannot be read.
    pub async fn offsets(&self, name: &str) -> Result<Vec<serde_json::Value>, HerderError> {
        let config = self.config(name).await?;
        let kind = self.kind_of(&config);
        connector_offsets::read(&self.inner.worker, name, kind, &config).await
    }

    /// Alters or resets a stopped connector's offsets; forwarded to the leader.
    ///
    /// # Errors
    /// 404 when the connector does not exist, 400 when it is not stopped or an entry is bad.
    pub async fn modify_offsets(
        &self,
        name: &str,
        change: OffsetChange,
    ) -> Result<&'static str, HerderError> {
        self.require_leader()?;
        let (config, stopped) = self
            .read_config(|c| {
                let config = c.connectors.get(name)?.clone();
                let stopped = c.target(name) == TargetState::Stopped
                    && c.tasks.get(name).is_none_or(Vec::is_empty);
                Some((config, stopped))
            })
            .ok_or_else(|| not_found(name))?;
        if !stopped {
            return Err(connector_offsets::not_stopped(name));
        }
        let kind = self.kind_of(&config);
        connector_offsets::modify(&self.inner.worker, name, kind, &config, change).await
    }

    /// Task configs from the worker that runs the connector; the leader writes them.
    ///
    /// # Errors
    /// 404 when the connector does not exist; forwarded when not the leader.
    pub async fn put_task_configs(
        &self,
        name: &str,
        configs: Vec<Config>,
    ) -> Result<(), HerderError> {
        self.require_leader()?;
        if !self.exists(name) {
            return Err(not_found(name));
        }
        write_task_configs(&self.inner, name, &configs).await
    }

    /// Stops every task here, then leaves the group so the others take over at once.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let membership = lock(&self.membership).take();
        if let Some(m) = membership {
            let _ = m.await;
        }
        self.stopped.cancelled().await;
    }
}

/// Writes `task-*` records and then the `commit-*` record that makes them current.
async fn write_task_configs(
    inner: &Inner,
    name: &str,
    configs: &[Config],
) -> Result<(), HerderError> {
    for (id, config) in configs.iter().enumerate() {
        inner
            .config_log
            .send(
                store::task_key(name, id as u32).as_bytes(),
                Some(&store::properties_value(config)),
            )
            .await
            .map_err(internal)?;
    }
    inner
        .config_log
        .send(
            store::commit_key(name).as_bytes(),
            Some(&store::commit_value(configs.len())),
        )
        .await
        .map_err(internal)?;
    tracing::info!(connector = %name, tasks = configs.len(), "Wrote task configs.");
    Ok(())
}

/// Joins, assigns (as leader), applies the assignment, heartbeats; again on every rebalance.
async fn membership_loop(inner: Arc<Inner>, stopped: CancellationToken) {
    let s = &inner.settings;
    let mut member = GroupMember::new(
        &inner.worker.bootstrap,
        PROTOCOL_TYPE,
        GroupSettings {
            group_id: s.group_id.clone(),
            client_id: format!("{}-{}", s.group_id, inner.worker_id),
            session_timeout: s.session_timeout,
            rebalance_timeout: s.rebalance_timeout,
            heartbeat_interval: s.heartbeat_interval,
            request_timeout: s.session_timeout.max(Duration::from_secs(5)),
        },
    );
    let mut assignor = AssignorState::with_grace(s.session_timeout);
    let mut current: BTreeSet<Work> = BTreeSet::new();
    let mut leader_configured: Option<BTreeSet<Work>> = None;
    // Set when this member left a stable generation to rebalance: the coordinator said one
    // is under way, the configured work changed, a scheduled rebalance is due, or it gave
    // work up for the leader to hand out.
    let mut wants_rebalance = false;
    // The generation of the last round this member completed.
    let mut last_round: Option<i32> = None;
    'rebalance: while !inner.cancel.is_cancelled() {
        fence_if_dropped(&inner, &member, &mut current).await;
        let protocols = offered_protocols(&inner, &current);
        if s.protocol == Protocol::Eager && !current.is_empty() {
            // Eager members give up everything before each rebalance.
            let all = std::mem::take(&mut current);
            heartbeating(&mut member, s.heartbeat_interval, revoke(&inner, &all)).await;
        }
        tracing::debug!("Joining the worker group.");
        let joined = tokio::select! {
            () = inner.cancel.cancelled() => break,
            j = async {
                member.keep_alive().await;
                member.join(&protocols).await
            } => j,
        };
        let joined = match joined {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot join the worker group; retrying.");
                lock(&inner.view).leader_url = None;
                tokio::time::sleep(s.heartbeat_interval).await;
                continue;
            }
        };
        if std::mem::take(&mut wants_rebalance) && joined.generation == lock(&inner.view).generation
        {
            // A rebalance was wanted but the generation stayed, so no other member hears of
            // it and the coordinator keeps the old assignments. Tansu does this when a
            // session expires (it tells only the member that noticed, and keeps the
            // generation) and when a member rejoins with unchanged metadata. Leaving and
            // rejoining as a new member starts a generation every member sees. Kafka moves
            // the generation on every rebalance, so this does not run there.
            tracing::info!(
                generation = joined.generation,
                "A rebalance was wanted but the generation stayed; rejoining as a new member."
            );
            if let Err(e) = member.leave().await {
                tracing::warn!(error = %e, "Cannot leave the worker group before rejoining.");
            }
            continue;
        }
        // The join may have waited (Tansu pauses followers); if the session lapsed
        // meanwhile, the work reported in this join may have moved: give it up, rejoin.
        if fence_if_dropped(&inner, &member, &mut current).await {
            continue;
        }
        let protocol = Protocol::from_name(&joined.protocol).unwrap_or(Protocol::Eager);
        // A leader that rejoined into the round it completed last (the generation stayed:
        // Tansu keeps a round's assignments and drops new ones) has nothing to assign;
        // SyncGroup hands back what it was given. Kafka starts a new round when a leader
        // rejoins.
        let same_round = last_round == Some(joined.generation);
        // What this member handed out as leader, checked a session timeout after the round.
        let mut handed = Vec::new();
        let assignments = if joined.is_leader() && !same_round {
            let led = lead(&inner, &joined, protocol, &mut assignor).await;
            leader_configured = Some(led.configured);
            handed = led.handed;
            led.assignments
        } else {
            if !joined.is_leader() {
                leader_configured = None;
            }
            Vec::new()
        };
        tracing::debug!(
            generation = joined.generation,
            leader = joined.is_leader(),
            "Syncing."
        );
        let bytes = tokio::select! {
            () = inner.cancel.cancelled() => break,
            b = member.sync(&joined, assignments) => b,
        };
        let assignment = match bytes.map(|b| Assignment::decode(&b)) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "The leader sent an assignment that cannot be read; rejoining.");
                continue;
            }
            Err(e) => {
                if !e.needs_rejoin() {
                    tracing::warn!(error = %e, "SyncGroup failed; rejoining.");
                    tokio::time::sleep(s.heartbeat_interval).await;
                }
                continue;
            }
        };
        if assignment.error == CONFIG_MISMATCH {
            tracing::warn!("The leader could not read the config topic far enough; rejoining.");
            let _ = inner.config_log.read_to_end(s.worker_sync_timeout).await;
            continue;
        }
        if !assignment.revoked.is_empty() {
            heartbeating(
                &mut member,
                s.heartbeat_interval,
                revoke(&inner, &assignment.revoked),
            )
            .await;
        }
        for w in &assignment.revoked {
            current.remove(w);
        }
        current.extend(assignment.assigned.iter().cloned());
        if lock(&inner.config).offset < assignment.config_offset
            && let Err(e) = inner.config_log.read_to_end(s.worker_sync_timeout).await
        {
            tracing::warn!(error = %e, "Cannot catch up with the config topic before starting work.");
        }
        last_round = Some(joined.generation);
        *lock(&inner.view) = GroupView {
            generation: joined.generation,
            leader_url: Some(assignment.leader_url.clone()),
            is_leader: joined.is_leader(),
            assigned: current.clone(),
        };
        tracing::info!(
            generation = joined.generation,
            leader = %assignment.leader_url,
            assigned = current.len(),
            revoked = assignment.revoked.len(),
            "Joined the worker group."
        );
        inner.wake.notify_one();
        // A member that gave work up rejoins at once, so the leader can hand it out. That
        // takes a new round: work revoked that this member never ran (the leader counted it
        // as this member's from the status topic) leaves its metadata unchanged, and Tansu
        // then answers the rejoin with the same generation and the same assignment.
        if !assignment.revoked.is_empty() {
            wants_rebalance = true;
            continue;
        }
        let rejoin_at = (assignment.delay_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(assignment.delay_ms as u64));
        let mut confirm_at = (!handed.is_empty()).then(|| Instant::now() + s.session_timeout);
        // Heartbeat at once: the session counts from the last answered heartbeat, and a
        // generation that moved on while this member joined is noticed a beat sooner.
        let mut next_beat = Instant::now();
        loop {
            let deadline = [rejoin_at, confirm_at]
                .into_iter()
                .flatten()
                .fold(next_beat, Instant::min);
            tokio::select! {
                () = inner.cancel.cancelled() => break 'rebalance,
                () = tokio::time::sleep_until(deadline.into()) => {}
                () = inner.conflict.notified() => {
                    tracing::debug!("Rejoining: work here runs elsewhere too.");
                    wants_rebalance = true;
                    continue 'rebalance;
                }
            }
            if rejoin_at.is_some_and(|r| Instant::now() >= r) {
                tracing::debug!("Rejoining: the scheduled rebalance is due.");
                wants_rebalance = true;
                continue 'rebalance;
            }
            if confirm_at.is_some_and(|c| Instant::now() >= c) {
                confirm_at = None;
                let unstarted = not_started(&inner, &handed);
                if !unstarted.is_empty() {
                    tracing::info!(
                        work = ?unstarted,
                        "Work handed out a session timeout ago has not started where it went; rebalancing."
                    );
                    wants_rebalance = true;
                    continue 'rebalance;
                }
            }
            if let Some(configured) = &leader_configured
                && configured_work(&lock(&inner.config)) != *configured
            {
                tracing::debug!("Rejoining: the configured work changed.");
                wants_rebalance = true;
                continue 'rebalance;
            }
            if Instant::now() >= next_beat {
                next_beat = Instant::now() + s.heartbeat_interval;
                match member.heartbeat().await {
                    Ok(()) => {}
                    Err(e) if e.needs_rejoin() => {
                        tracing::debug!(error = %e, "Rejoining: the coordinator asked.");
                        wants_rebalance = true;
                        continue 'rebalance;
                    }
                    Err(e) => tracing::warn!(error = %e, "Heartbeat failed."),
                }
            }
        }
    }
    // Shutting down: stop everything here first (each task flushes), then leave.
    heartbeating(&mut member, s.heartbeat_interval, revoke(&inner, &current)).await;
    member.keep_alive().await;
    let left = match member.leave().await {
        Err(e) if e.code() == Some(super::group::code::UNKNOWN_MEMBER_ID) => {
            // The coordinator dropped this member before it left, and may have told no one
            // (Tansu 0.6 keeps the generation when it expires a member inside another
            // member's call): a brief join as a new member moves the generation.
            tracing::info!("The coordinator had dropped this worker; announcing the departure.");
            member
                .join_and_leave(&offered_protocols(&inner, &BTreeSet::new()))
                .await
        }
        other => other,
    };
    match left {
        Ok(()) => tracing::info!("Left the worker group."),
        Err(e) => tracing::warn!(error = %e, "Cannot leave the worker group; it will time out."),
    }
    lock(&inner.view).leader_url = None;
    stopped.cancel();
}

/// When the coordinator has not counted this member alive for a session timeout, it has
/// probably dropped it and handed its work to others (Tansu 0.6 does so without telling
/// it): stops everything here, as Connect's workers revoke all on losing their member id,
/// so nothing runs twice. Returns whether it did.
async fn fence_if_dropped(
    inner: &Inner,
    member: &GroupMember,
    current: &mut BTreeSet<Work>,
) -> bool {
    let lapsed = member
        .since_contact()
        .filter(|since| *since > inner.settings.session_timeout);
    let Some(since) = lapsed else {
        return false;
    };
    if current.is_empty() {
        return false;
    }
    tracing::warn!(
        since_ms = since.as_millis() as u64,
        work = current.len(),
        "No heartbeat answered for longer than the session timeout; stopping this worker's work before rejoining."
    );
    let all = std::mem::take(current);
    revoke(inner, &all).await;
    true
}

/// The sub-protocols this worker offers, each with its metadata: URL, config offset and
/// what it runs now.
fn offered_protocols(inner: &Inner, current: &BTreeSet<Work>) -> Vec<(&'static str, Vec<u8>)> {
    let offset = lock(&inner.config).offset;
    let allocation = (!current.is_empty()).then(|| Assignment {
        assigned: current.clone(),
        ..Assignment::default()
    });
    inner
        .settings
        .protocol
        .offered()
        .into_iter()
        .map(|p| {
            let meta = WorkerMetadata {
                url: inner.url.clone(),
                config_offset: offset,
                allocation: allocation.clone(),
            };
            (p.name(), meta.encode(p.version()))
        })
        .collect()
}

/// Runs `work` (stopping tasks, which can take seconds) while heartbeating, so the session
/// does not expire meanwhile. A coordinator that expires a member which then leaves may
/// tell no one (Tansu 0.6), and its work would be stranded.
async fn heartbeating<T>(
    member: &mut GroupMember,
    interval: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep(interval) => member.keep_alive().await,
        }
    }
}

/// What a leader decided in a round.
struct Led {
    /// Each member's encoded assignment.
    assignments: Vec<(String, Vec<u8>)>,
    /// The configured work the assignments cover.
    configured: BTreeSet<Work>,
    /// The work handed out, each with the URL of the worker it went to.
    handed: Vec<(String, Work)>,
}

/// The leader's part of a rebalance: read the config topic as far as any member has, then
/// assign.
async fn lead(
    inner: &Inner,
    joined: &super::group::Joined,
    protocol: Protocol,
    assignor: &mut AssignorState,
) -> Led {
    let mut members = BTreeMap::new();
    // Member id by advertised URL, for statuses (which name workers by URL).
    let mut by_url = BTreeMap::new();
    let mut url_of = BTreeMap::new();
    let mut max_offset = -1;
    for (id, bytes) in &joined.members {
        let meta = WorkerMetadata::decode(bytes).unwrap_or_else(|e| {
            tracing::warn!(member = %id, error = %e, "A member sent metadata that cannot be read.");
            WorkerMetadata::default()
        });
        max_offset = max_offset.max(meta.config_offset);
        by_url.insert(meta.url.clone(), id.clone());
        url_of.insert(id.clone(), meta.url);
        let running = if protocol.is_cooperative() {
            meta.allocation.map(|a| a.assigned).unwrap_or_default()
        } else {
            BTreeSet::new()
        };
        members.insert(id.clone(), running);
    }
    let mut error = 0;
    if lock(&inner.config).offset < max_offset
        && inner
            .config_log
            .read_to_end(inner.settings.worker_sync_timeout)
            .await
            .is_err()
    {
        error = CONFIG_MISMATCH;
    }
    let snapshot = lock(&inner.config).clone();
    let configured = configured_work(&snapshot);
    let claimed = claim_recently_started(inner, &by_url, &mut members, &configured);
    let mut result = assign(
        assignor,
        &members,
        &configured,
        inner.settings.scheduled_rebalance_max_delay,
        Instant::now(),
    );
    reassign_claimed(&mut result, &claimed);
    // Work held for a member that has not reported it yet: the leader rejoins when the
    // hold ends, to hand it out if the member never got it.
    let recheck_ms = assignor
        .recheck_in(Instant::now())
        .map(|d| i32::try_from(d.as_millis().max(1)).unwrap_or(i32::MAX));
    for (member, a) in &result {
        tracing::debug!(
            generation = joined.generation,
            member = %member,
            reported = ?members.get(member),
            assigned = ?a.assigned,
            revoked = ?a.revoked,
            "Assigned."
        );
    }
    let handed = result
        .iter()
        .filter_map(|(member, a)| Some((url_of.get(member)?, &a.assigned)))
        .flat_map(|(url, work)| work.iter().map(|w| (url.clone(), w.clone())))
        .collect();
    let assignments = result
        .into_iter()
        .map(|(member, a)| {
            let delay_ms = match recheck_ms {
                Some(r) if member == joined.member_id && (a.delay_ms == 0 || r < a.delay_ms) => r,
                _ => a.delay_ms,
            };
            let assignment = Assignment {
                error,
                leader: joined.member_id.clone(),
                leader_url: inner.url.clone(),
                config_offset: snapshot.offset,
                assigned: a.assigned,
                revoked: a.revoked,
                delay_ms,
            };
            (member, assignment.encode(protocol.version()))
        })
        .collect();
    Led {
        assignments,
        configured,
        handed,
    }
}

/// The URL a worker advertises in its metadata, from the id its statuses name it by.
fn worker_url(worker_id: &str) -> String {
    format!("http://{worker_id}/")
}

/// Of the work this leader handed out, what the status topic does not show started by the
/// worker it went to (in any state but UNASSIGNED), and is still configured. A member can
/// miss its assignment while every member heartbeats: after a full restart Tansu 0.6 let
/// two members lead one generation, and one of them synced its own assignment (nothing)
/// instead of the other's. Without a new round that work would run nowhere.
fn not_started(inner: &Inner, handed: &[(String, Work)]) -> Vec<Work> {
    let unconfirmed: Vec<&Work> = {
        let statuses = lock(&inner.statuses);
        handed
            .iter()
            .filter(|(url, w)| {
                !statuses.of(w).0.is_some_and(|r| {
                    r.state != State::Unassigned && worker_url(&r.worker_id) == *url
                })
            })
            .map(|(_, w)| w)
            .collect()
    };
    let configured = configured_work(&lock(&inner.config));
    unconfirmed
        .into_iter()
        .filter(|w| configured.contains(*w))
        .cloned()
        .collect()
}

/// Adds to each member's reported work what the status topic says it started within the
/// last session timeout and no member reports. A member reports its work only when it
/// joins, and a broker may run a round before every member has rejoined (Tansu 0.6), so
/// work handed out in the previous round can be missing from a report; a leader that
/// handed it out remembers that (`AssignorState`), a newly elected one learns it here.
/// Older statuses are not trusted: the worker they name may have died and come back.
/// (Worker and broker clocks are assumed to agree to well within the session timeout.)
/// Returns the work it added, by member.
fn claim_recently_started(
    inner: &Inner,
    by_url: &BTreeMap<String, String>,
    members: &mut BTreeMap<String, BTreeSet<Work>>,
    configured: &BTreeSet<Work>,
) -> BTreeMap<String, BTreeSet<Work>> {
    let mut claimed: BTreeMap<String, BTreeSet<Work>> = BTreeMap::new();
    let reported: BTreeSet<Work> = members.values().flatten().cloned().collect();
    let statuses = lock(&inner.statuses);
    for w in configured.difference(&reported) {
        let (record, key) = statuses.of(w);
        let Some(record) = record.filter(|r| r.state != State::Unassigned) else {
            continue;
        };
        // By the record's own timestamp: a worker that has just started reads every
        // status at once, however old.
        let window = i64::try_from(inner.settings.session_timeout.as_millis()).unwrap_or(i64::MAX);
        let recent = statuses
            .written_ms
            .get(&key)
            .is_some_and(|ms| task::epoch_millis().saturating_sub(*ms) < window);
        let member = by_url.get(&worker_url(&record.worker_id));
        if let (true, Some(member)) = (recent, member)
            && let Some(set) = members.get_mut(member)
        {
            tracing::debug!(work = ?w, member = %member, "Counting recently started work as its member's.");
            set.insert(w.clone());
            claimed.entry(member.clone()).or_default().insert(w.clone());
        }
    }
    claimed
}

/// Stops revoked work here.
async fn revoke(inner: &Inner, work: &BTreeSet<Work>) {
    let mut local = inner.local.lock().await;
    let mut stops = Vec::new();
    for w in work {
        match w {
            Work::Connector(name) => {
                local.connectors.remove(name);
            }
            Work::Task(name, id) => {
                if let Some(t) = local.tasks.remove(&(name.clone(), *id)) {
                    stops.push(stop_task(
                        t.handle,
                        inner.worker.config.task_shutdown_timeout,
                    ));
                }
            }
        }
    }
    futures::future::join_all(stops).await;
    lock(&inner.view).assigned.retain(|w| !work.contains(w));
    report_unassigned(inner, work).await;
}

/// Writes UNASSIGNED for work this worker gave up, as Connect does, so no status shows it
/// running here while it moves. Skipped where another worker has written the status since
/// (it runs the work now) or the connector is gone (its statuses were removed); a write
/// that loses a race with the new owner is corrected by the owner's next status check.
async fn report_unassigned(inner: &Inner, work: &BTreeSet<Work>) {
    let generation = lock(&inner.view).generation;
    for w in work {
        let name = match w {
            Work::Connector(name) | Work::Task(name, _) => name,
        };
        if !lock(&inner.config).connectors.contains_key(name) {
            continue;
        }
        let key = {
            let statuses = lock(&inner.statuses);
            let (current, key) = statuses.of(w);
            let ours = current
                .is_some_and(|s| s.worker_id == inner.worker_id && s.state != State::Unassigned);
            if !ours {
                continue;
            }
            key
        };
        let record = StatusRecord {
            state: State::Unassigned,
            trace: None,
            worker_id: inner.worker_id.clone(),
            generation,
        };
        match inner
            .status_log
            .send(key.as_bytes(), Some(&record.value()))
            .await
        {
            Ok(()) => {
                lock(&inner.statuses).apply(&key, Some(&record.value()), Some(task::epoch_millis()))
            }
            Err(e) => tracing::warn!(key, error = %e, "Cannot write a status."),
        }
    }
}

async fn reconcile_loop(inner: Arc<Inner>) {
    while !inner.cancel.is_cancelled() {
        reconcile(&inner).await;
        tokio::select! {
            () = inner.cancel.cancelled() => break,
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(RECONCILE_TICK) => {}
        }
    }
}

/// Makes what runs here match the assignment and the config, and reports statuses.
async fn reconcile(inner: &Inner) {
    let snapshot = lock(&inner.config).clone();
    let view = lock(&inner.view).clone();
    let mut local = inner.local.lock().await;
    if !local.restarts_primed {
        // Requests already in the topic at start were for earlier incarnations.
        local.restarts_seen = snapshot
            .restarts
            .iter()
            .map(|(n, r)| (n.clone(), r.offset))
            .collect();
        local.restarts_primed = true;
    }
    handle_restarts(inner, &snapshot, &mut local).await;
    reconcile_connectors(inner, &snapshot, &view, &mut local).await;
    reconcile_tasks(inner, &snapshot, &view, &mut local).await;
    publish_statuses(inner, &view, &local).await;
    drop(local);
    publish_topics(inner).await;
}

async fn handle_restarts(inner: &Inner, snapshot: &ClusterConfig, local: &mut Local) {
    for (name, request) in &snapshot.restarts {
        if local
            .restarts_seen
            .get(name)
            .is_some_and(|o| *o >= request.offset)
        {
            continue;
        }
        local.restarts_seen.insert(name.clone(), request.offset);
        if let Some(c) = local.connectors.get_mut(name)
            && (!request.only_failed || c.status.state == State::Failed)
        {
            c.applied = None;
        }
        if !request.include_tasks {
            continue;
        }
        let ids: Vec<(String, u32)> = local
            .tasks
            .iter()
            .filter(|((c, _), t)| {
                c == name
                    && (!request.only_failed
                        || task::get_status(&t.handle.status).state == State::Failed)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in ids {
            if let Some(t) = local.tasks.remove(&k) {
                stop_task(t.handle, inner.worker.config.task_shutdown_timeout).await;
            }
        }
    }
}

async fn reconcile_connectors(
    inner: &Inner,
    snapshot: &ClusterConfig,
    view: &GroupView,
    local: &mut Local,
) {
    local
        .connectors
        .retain(|name, _| view.assigned.contains(&Work::Connector(name.clone())));
    for w in &view.assigned {
        let Work::Connector(name) = w else { continue };
        let Some(raw) = snapshot.connectors.get(name) else {
            local.connectors.remove(name);
            continue;
        };
        let lc = local
            .connectors
            .entry(name.clone())
            .or_insert(LocalConnector {
                applied: None,
                status: Status::new(State::Unassigned),
            });
        let target = snapshot.target(name);
        if target == TargetState::Stopped {
            lc.status = Status::new(State::Stopped);
            lc.applied = None;
            continue;
        }
        let changed = lc.applied.as_ref() != Some(raw);
        // A failure sticks until the config changes (or a restart clears `applied`).
        if changed || lc.status.state != State::Failed {
            lc.status = Status::new(if target == TargetState::Paused {
                State::Paused
            } else {
                State::Running
            });
        }
        if !changed {
            continue;
        }
        let configs = match generate_task_configs(inner, name, raw).await {
            Ok(c) => c,
            Err(trace) => {
                lc.status = Status::failed(trace);
                lc.applied = Some(raw.clone());
                continue;
            }
        };
        if snapshot.tasks.get(name) == Some(&configs) {
            lc.applied = Some(raw.clone());
            continue;
        }
        let published = if view.is_leader {
            write_task_configs(inner, name, &configs).await
        } else {
            send_task_configs(inner, view, name, &configs).await
        };
        match published {
            Ok(()) => lc.applied = Some(raw.clone()),
            Err(e) => {
                tracing::warn!(connector = %name, error = %e, "Cannot publish task configs; retrying.");
            }
        }
    }
}

/// Resolves the connector config and asks the plugin for task configs (placeholders put back).
async fn generate_task_configs(
    inner: &Inner,
    name: &str,
    raw: &Config,
) -> Result<Vec<Config>, String> {
    let plugin = plugin_for(&inner.registry, raw).map_err(|e| e.to_string())?;
    let resolved = inner
        .worker
        .config
        .providers
        .resolve(raw)
        .map_err(|(key, err)| format!("Cannot resolve the value of {key}: {err}"))?;
    let max = crate::config::connector::tasks_max(raw);
    let configs = plugin
        .task_configs(&resolved, max)
        .await
        .map_err(|e| format!("Connector {name} failed to generate task configs: {e}"))?;
    if configs.len() as u32 > max {
        return Err(format!(
            "The connector {name} has generated {} tasks, which is greater than {max}, the maximum number of tasks it is configured to create.",
            configs.len()
        ));
    }
    Ok(configs
        .iter()
        .map(|t| reinsert_placeholders(t, raw, &resolved))
        .collect())
}

/// A follower sends task configs to the leader's internal endpoint.
async fn send_task_configs(
    inner: &Inner,
    view: &GroupView,
    name: &str,
    configs: &[Config],
) -> Result<(), HerderError> {
    let leader = view
        .leader_url
        .as_deref()
        .ok_or(HerderError::NotLeader(None))?;
    let mut url = url::Url::parse(leader).map_err(internal)?;
    url.path_segments_mut()
        .map_err(|()| internal(format!("{leader} cannot carry a path")))?
        .pop_if_empty()
        .extend(["connectors", name, "tasks"]);
    url.set_query(Some("forward=true"));
    let response = inner
        .http
        .post(url)
        .json(configs)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(internal)?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(HerderError::Internal(format!(
            "the leader answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        )))
    }
}

async fn reconcile_tasks(
    inner: &Inner,
    snapshot: &ClusterConfig,
    view: &GroupView,
    local: &mut Local,
) {
    let timeout = inner.worker.config.task_shutdown_timeout;
    // Stop what is no longer ours, or whose config changed or connector stopped.
    let stale: Vec<(String, u32)> = local
        .tasks
        .iter()
        .filter(|((name, id), t)| {
            let wanted = snapshot.tasks.get(name).and_then(|v| v.get(*id as usize));
            !view.assigned.contains(&Work::Task(name.clone(), *id))
                || wanted != Some(&t.config)
                || snapshot.target(name) == TargetState::Stopped
                || !snapshot.connectors.contains_key(name)
        })
        .map(|(k, _)| k.clone())
        .collect();
    let stops: Vec<_> = stale
        .iter()
        .filter_map(|k| local.tasks.remove(k))
        .map(|t| stop_task(t.handle, timeout))
        .collect();
    futures::future::join_all(stops).await;
    for w in &view.assigned {
        let Work::Task(name, id) = w else { continue };
        let (Some(raw), Some(config)) = (
            snapshot.connectors.get(name),
            snapshot.tasks.get(name).and_then(|v| v.get(*id as usize)),
        ) else {
            continue;
        };
        let target = snapshot.target(name);
        if target == TargetState::Stopped {
            continue;
        }
        let key = (name.clone(), *id);
        if let Some(t) = local.tasks.get_mut(&key) {
            if t.target != target {
                t.target = target;
                let _ = t.handle.target.send(if target == TargetState::Paused {
                    Target::Pause
                } else {
                    Target::Run
                });
            }
            continue;
        }
        let plugin = match plugin_for(&inner.registry, raw) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(connector = %name, task = id, error = %e, "Cannot start a task.");
                continue;
            }
        };
        let resolve = |c: &Config| {
            inner
                .worker
                .config
                .providers
                .resolve(c)
                .unwrap_or_else(|_| c.clone())
        };
        let topics = active_topics(inner, name);
        let handle = spawn_task(
            &inner.worker,
            &inner.cancel,
            TaskSpec {
                connector: name,
                plugin: &plugin,
                topics: &topics,
                paused: target == TargetState::Paused,
                id: *id,
                config: resolve(config),
                connector_config: resolve(raw),
            },
        );
        local.tasks.insert(
            key,
            LocalTask {
                handle,
                config: config.clone(),
                target,
            },
        );
    }
}

/// The connector's active topics, an empty set when none is known.
fn active_topics(inner: &Inner, connector: &str) -> ActiveTopics {
    lock(&inner.topics)
        .entry(connector.to_owned())
        .or_default()
        .clone()
}

/// Applies a `status-topic-*` record: a topic recorded (by any worker), or removed.
fn apply_topic_record(
    topics: &Mutex<BTreeMap<String, ActiveTopics>>,
    topic: &str,
    connector: &str,
    value: Option<&[u8]>,
) {
    let set = lock(topics)
        .entry(connector.to_owned())
        .or_default()
        .clone();
    let mut set = lock(&set);
    match value {
        None => {
            set.remove(topic);
        }
        Some(bytes) => match store::parse_topic_status_value(bytes) {
            Some(used) => {
                set.entry(topic.to_owned())
                    .and_modify(|u| u.recorded = true)
                    .or_insert(used);
            }
            None => tracing::error!(
                topic,
                connector,
                "Skipping a topic status record that cannot be parsed."
            ),
        },
    }
}

/// Writes tombstones for the connector's `topics` and forgets them here.
async fn forget_topics(inner: &Inner, connector: &str, topics: &[String]) -> Result<(), LogError> {
    for topic in topics {
        let key = store::topic_status_key(topic, connector);
        inner.status_log.send(key.as_bytes(), None).await?;
        apply_topic_record(&inner.topics, topic, connector, None);
    }
    Ok(())
}

/// Records in the status topic the topics tasks here used that it does not hold yet.
async fn publish_topics(inner: &Inner) {
    if !inner.worker.config.topic_tracking_enable {
        return;
    }
    let sets: Vec<(String, ActiveTopics)> = lock(&inner.topics)
        .iter()
        .map(|(c, t)| (c.clone(), t.clone()))
        .collect();
    for (connector, set) in sets {
        // A task of a connector just deleted may still be stopping.
        if !lock(&inner.config).connectors.contains_key(&connector) {
            continue;
        }
        let new: Vec<(String, TopicUse)> = lock(&set)
            .iter()
            .filter(|(_, u)| !u.recorded)
            .map(|(t, u)| (t.clone(), *u))
            .collect();
        for (topic, used) in new {
            let key = store::topic_status_key(&topic, &connector);
            let value = store::topic_status_value(&topic, &connector, &used);
            match inner.status_log.send(key.as_bytes(), Some(&value)).await {
                Ok(()) => apply_topic_record(&inner.topics, &topic, &connector, Some(&value)),
                Err(e) => {
                    tracing::warn!(key, error = %e, "Cannot record an active topic; retrying.")
                }
            }
        }
    }
}

/// Writes the status of everything here that the status topic does not show yet.
async fn publish_statuses(inner: &Inner, view: &GroupView, local: &Local) {
    // (connector, task or None for the connector itself, status)
    let mut records: Vec<(&str, Option<u32>, StatusRecord)> = Vec::new();
    let record = |s: &Status| StatusRecord {
        state: s.state,
        trace: s.trace.clone(),
        worker_id: inner.worker_id.clone(),
        generation: view.generation,
    };
    for (name, c) in &local.connectors {
        records.push((name, None, record(&c.status)));
    }
    for ((name, id), t) in &local.tasks {
        records.push((name, Some(*id), record(&task::get_status(&t.handle.status))));
    }
    for (name, task, r) in records {
        // Compare with the status topic as read, not with what this worker last wrote:
        // another worker may have written the key since (a task that moved away and back).
        let (same, newer_elsewhere) = {
            let view = lock(&inner.statuses);
            let current = match task {
                None => view.connectors.get(name),
                Some(id) => view.tasks.get(&(name.to_owned(), id)),
            };
            (
                current.is_some_and(|w| {
                    w.state == r.state && w.trace == r.trace && w.worker_id == r.worker_id
                }),
                current.is_some_and(|w| w.worker_id != r.worker_id && w.generation > r.generation),
            )
        };
        if same {
            continue;
        }
        if newer_elsewhere {
            // Another worker runs this under a newer generation, so this worker's
            // assignment is out of date. As Connect's `putSafe`, do not overwrite its
            // status; ask for a rebalance, in which the leader sees both and revokes one.
            tracing::info!(
                connector = name,
                task,
                "Another worker runs this under a newer generation; asking for a rebalance."
            );
            inner.conflict.notify_one();
            continue;
        }
        let key = match task {
            None => store::connector_status_key(name),
            Some(id) => store::task_status_key(name, id),
        };
        match inner
            .status_log
            .send(key.as_bytes(), Some(&r.value()))
            .await
        {
            Ok(()) => {
                tracing::debug!(key, state = ?r.state, "Wrote a status.");
                lock(&inner.statuses).apply(&key, Some(&r.value()), Some(task::epoch_millis()));
            }
            Err(e) => tracing::warn!(key, error = %e, "Cannot write a status; retrying."),
        }
    }
}
