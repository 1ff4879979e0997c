//! The standalone herder: configs and statuses in memory (connectors given on the command
//! line are created at start), source offsets in `offset.storage.file.filename`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wasmconnect_sdk::PluginKind;

use super::connector_offsets::{self, OffsetChange};
use super::validate::{self, ConfigInfos};
use super::{ConnectorInfo, ConnectorStatus, HerderError, TargetState, TaskInfo};
use crate::config::connector::{self, CONNECTOR_CLASS, NAME};
use crate::plugin::{Plugin, PluginRegistry};
use crate::task::{
    self, ActiveTopics, SharedStatus, State, Status, Target, TaskContext, WorkerShared,
};

/// A running task, as its herder holds it.
pub(super) struct TaskHandle {
    pub(super) status: SharedStatus,
    pub(super) target: watch::Sender<Target>,
    cancel: CancellationToken,
    join: JoinHandle<()>,
}

struct Connector {
    /// As given: placeholders unresolved.
    config: BTreeMap<String, String>,
    target: TargetState,
    plugin: Arc<Plugin>,
    status: Status,
    /// As shown by the REST API: placeholders re-inserted.
    task_configs: Vec<BTreeMap<String, String>>,
    tasks: BTreeMap<u32, TaskHandle>,
    topics: ActiveTopics,
}

/// The standalone herder.
pub struct StandaloneHerder {
    worker: Arc<WorkerShared>,
    registry: Arc<PluginRegistry>,
    connectors: tokio::sync::Mutex<BTreeMap<String, Connector>>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for StandaloneHerder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneHerder").finish_non_exhaustive()
    }
}

fn not_found(name: &str) -> HerderError {
    HerderError::NotFound(format!("Connector {name} not found"))
}

/// Shows a resolved task config with the connector's placeholders put back.
pub(super) fn reinsert_placeholders(
    task: &BTreeMap<String, String>,
    raw: &BTreeMap<String, String>,
    resolved: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    task.iter()
        .map(|(k, v)| match (raw.get(k), resolved.get(k)) {
            (Some(r), Some(res)) if res == v && r != res => (k.clone(), r.clone()),
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

impl StandaloneHerder {
    pub fn new(
        worker: Arc<WorkerShared>,
        registry: Arc<PluginRegistry>,
        cancel: CancellationToken,
    ) -> StandaloneHerder {
        StandaloneHerder {
            worker,
            registry,
            connectors: tokio::sync::Mutex::new(BTreeMap::new()),
            cancel,
        }
    }

    pub fn worker(&self) -> &WorkerShared {
        &self.worker
    }

    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }

    fn plugin_for(&self, config: &BTreeMap<String, String>) -> Result<Arc<Plugin>, HerderError> {
        plugin_for(&self.registry, config)
    }

    /// Validates a connector config; used by the validate endpoint and before every write.
    ///
    /// # Errors
    /// When `connector.class` is missing or names no connector plugin.
    pub async fn validate(
        &self,
        config: &BTreeMap<String, String>,
    ) -> Result<ConfigInfos, HerderError> {
        let plugin = self.plugin_for(config)?;
        Ok(validate::validate(&plugin, &self.registry, config).await)
    }

    async fn validated(
        &self,
        config: &BTreeMap<String, String>,
    ) -> Result<Arc<Plugin>, HerderError> {
        validated(&self.registry, config).await
    }

    pub async fn connector_names(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    /// Creates a connector.
    ///
    /// # Errors
    /// 409 when it exists, 400 when its config is invalid.
    pub async fn create(
        &self,
        name: &str,
        mut config: BTreeMap<String, String>,
        initial: TargetState,
    ) -> Result<ConnectorInfo, HerderError> {
        config.insert(NAME.into(), name.into());
        let plugin = self.validated(&config).await?;
        let mut connectors = self.connectors.lock().await;
        if connectors.contains_key(name) {
            return Err(HerderError::AlreadyExists(format!(
                "Connector {name} already exists"
            )));
        }
        let mut c = Connector {
            config,
            target: initial,
            plugin,
            status: Status::new(State::Unassigned),
            task_configs: Vec::new(),
            tasks: BTreeMap::new(),
            topics: ActiveTopics::default(),
        };
        self.start_connector(name, &mut c).await;
        let info = info_of(name, &c);
        connectors.insert(name.to_owned(), c);
        tracing::info!(connector = %name, "Created connector.");
        Ok(info)
    }

    /// Creates or replaces a connector's config; true when it was created.
    ///
    /// # Errors
    /// 400 when the config is invalid.
    pub async fn put_config(
        &self,
        name: &str,
        mut config: BTreeMap<String, String>,
    ) -> Result<(bool, ConnectorInfo), HerderError> {
        config.insert(NAME.into(), name.into());
        let plugin = self.validated(&config).await?;
        let mut connectors = self.connectors.lock().await;
        let Some(c) = connectors.get_mut(name) else {
            drop(connectors);
            return self
                .create(name, config, TargetState::Started)
                .await
                .map(|i| (true, i));
        };
        self.stop_tasks(c).await;
        c.config = config;
        c.plugin = plugin;
        self.start_connector(name, c).await;
        tracing::info!(connector = %name, "Updated connector config.");
        Ok((false, info_of(name, c)))
    }

    /// Applies a partial config: `None` removes a key.
    ///
    /// # Errors
    /// 404 when the connector does not exist, 400 when the result is invalid.
    pub async fn patch_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo, HerderError> {
        let mut config = self.config(name).await?;
        for (k, v) in patch {
            match v {
                Some(v) => config.insert(k, v),
                None => config.remove(&k),
            };
        }
        self.put_config(name, config).await.map(|(_, info)| info)
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn config(&self, name: &str) -> Result<BTreeMap<String, String>, HerderError> {
        let connectors = self.connectors.lock().await;
        connectors
            .get(name)
            .map(|c| c.config.clone())
            .ok_or_else(|| not_found(name))
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn info(&self, name: &str) -> Result<ConnectorInfo, HerderError> {
        let connectors = self.connectors.lock().await;
        connectors
            .get(name)
            .map(|c| info_of(name, c))
            .ok_or_else(|| not_found(name))
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn status(&self, name: &str) -> Result<ConnectorStatus, HerderError> {
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).ok_or_else(|| {
            HerderError::NotFound(format!("No status found for connector {name}"))
        })?;
        Ok(status_of(name, c))
    }

    /// # Errors
    /// 404 when the connector or task does not exist.
    pub async fn task_status(&self, name: &str, task: u32) -> Result<Status, HerderError> {
        let connectors = self.connectors.lock().await;
        connectors
            .get(name)
            .and_then(|c| c.tasks.get(&task))
            .map(|t| task::get_status(&t.status))
            .ok_or_else(|| HerderError::NotFound(format!("No status found for task {name}-{task}")))
    }

    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn tasks(&self, name: &str) -> Result<Vec<TaskInfo>, HerderError> {
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).ok_or_else(|| not_found(name))?;
        Ok(c.task_configs
            .iter()
            .enumerate()
            .map(|(i, config)| TaskInfo {
                connector: name.to_owned(),
                task: i as u32,
                config: config.clone(),
            })
            .collect())
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
    /// 404 when the connector does not exist.
    pub async fn stop(&self, name: &str) -> Result<(), HerderError> {
        self.set_target(name, TargetState::Stopped).await
    }

    async fn set_target(&self, name: &str, target: TargetState) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let c = connectors
            .get_mut(name)
            .ok_or_else(|| HerderError::NotFound(format!("Unknown connector {name}")))?;
        let previous = c.target;
        c.target = target;
        match (previous, target) {
            (a, b) if a == b => {}
            (TargetState::Stopped, _) => self.start_connector(name, c).await,
            (_, TargetState::Stopped) => {
                self.stop_tasks(c).await;
                c.task_configs.clear();
                c.status = Status::new(State::Stopped);
            }
            (_, TargetState::Paused) => {
                c.status = Status::new(State::Paused);
                for t in c.tasks.values() {
                    let _ = t.target.send(Target::Pause);
                }
            }
            (_, TargetState::Started) => {
                if c.status.state == State::Paused {
                    c.status = Status::new(State::Running);
                }
                for t in c.tasks.values() {
                    let _ = t.target.send(Target::Run);
                }
            }
        }
        tracing::info!(connector = %name, target = ?target, "Changed target state.");
        Ok(())
    }

    /// Deletes a connector, stopping its tasks.
    ///
    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn delete(&self, name: &str) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let mut c = connectors.remove(name).ok_or_else(|| not_found(name))?;
        self.stop_tasks(&mut c).await;
        tracing::info!(connector = %name, "Deleted connector.");
        Ok(())
    }

    /// Restarts a connector and, with `include_tasks`, its tasks; `only_failed` limits both to
    /// failed instances. Returns the planned states unless both flags are false.
    ///
    /// # Errors
    /// 404 when the connector does not exist.
    pub async fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<ConnectorStatus>, HerderError> {
        let mut connectors = self.connectors.lock().await;
        let c = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        let restart_connector = !only_failed || c.status.state == State::Failed;
        let failed_tasks: Vec<u32> = c
            .tasks
            .iter()
            .filter(|(_, t)| task::get_status(&t.status).state == State::Failed)
            .map(|(id, _)| *id)
            .collect();
        let restart_tasks: Vec<u32> = if !include_tasks {
            Vec::new()
        } else if only_failed {
            failed_tasks
        } else {
            c.tasks.keys().copied().collect()
        };
        let mut planned = status_of(name, c);
        if restart_connector {
            planned.connector = Status::new(State::Restarting);
        }
        for (id, s) in &mut planned.tasks {
            if restart_tasks.contains(id) {
                *s = Status::new(State::Restarting);
            }
        }
        let mut restart_these = restart_tasks;
        if restart_connector && c.target != TargetState::Stopped {
            // Restarting the connector recomputes its task configs. Tasks keep running
            // unless they were asked for, or the configs changed and every task must.
            let before = c.task_configs.clone();
            let running = c.tasks.len();
            if let Some((configs, resolved)) = self.plan_tasks(name, c).await
                && (c.task_configs != before || running != configs.len())
            {
                self.stop_tasks(c).await;
                self.spawn_tasks(name, c, configs, &resolved);
                restart_these.clear();
            }
        }
        for id in &restart_these {
            self.restart_one_task(name, c, *id).await;
        }
        tracing::info!(connector = %name, include_tasks, only_failed, "Restarted connector.");
        Ok((include_tasks || only_failed).then_some(planned))
    }

    /// # Errors
    /// 404 when the connector or task does not exist.
    pub async fn restart_task(&self, name: &str, task: u32) -> Result<(), HerderError> {
        let mut connectors = self.connectors.lock().await;
        let c = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        if !c.tasks.contains_key(&task) {
            return Err(HerderError::NotFound(format!("Unknown task {name}-{task}")));
        }
        self.restart_one_task(name, c, task).await;
        Ok(())
    }

    /// Topics the connector has used since it was created or reset.
    ///
    /// # Errors
    /// 404 when the connector does not exist, 403 when topic tracking is disabled.
    pub async fn topics(&self, name: &str) -> Result<Vec<String>, HerderError> {
        if !self.worker.config.topic_tracking_enable {
            return Err(HerderError::Forbidden("Topic tracking is disabled.".into()));
        }
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).ok_or_else(|| not_found(name))?;
        let topics = c
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(topics.keys().cloned().collect())
    }

    /// The connector's offsets (`GET /connectors/{name}/offsets`).
    ///
    /// # Errors
    /// 404 when the connector does not exist; 500 when the broker cannot be read.
    pub async fn offsets(&self, name: &str) -> Result<Vec<serde_json::Value>, HerderError> {
        let (kind, config) = {
            let connectors = self.connectors.lock().await;
            let c = connectors.get(name).ok_or_else(|| not_found(name))?;
            (c.plugin.kind, c.config.clone())
        };
        connector_offsets::read(&self.worker, name, kind, &config).await
    }

    /// Alters or resets a stopped connector's offsets (`PATCH`/`DELETE .../offsets`).
    ///
    /// # Errors
    /// 404 when the connector does not exist, 400 when it is not stopped or an entry is bad.
    pub async fn modify_offsets(
        &self,
        name: &str,
        change: OffsetChange,
    ) -> Result<&'static str, HerderError> {
        // Held throughout, so the connector cannot be resumed while its offsets change.
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).ok_or_else(|| not_found(name))?;
        if c.target != TargetState::Stopped || !c.task_configs.is_empty() {
            return Err(connector_offsets::not_stopped(name));
        }
        connector_offsets::modify(&self.worker, name, c.plugin.kind, &c.config, change).await
    }

    /// # Errors
    /// 404 when the connector does not exist, 403 when tracking or its reset is disabled.
    pub async fn reset_topics(&self, name: &str) -> Result<(), HerderError> {
        if !self.worker.config.topic_tracking_enable {
            return Err(HerderError::Forbidden("Topic tracking is disabled.".into()));
        }
        if !self.worker.config.topic_tracking_allow_reset {
            return Err(HerderError::Forbidden(
                "Topic tracking reset is disabled.".into(),
            ));
        }
        let connectors = self.connectors.lock().await;
        let c = connectors.get(name).ok_or_else(|| not_found(name))?;
        c.topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        Ok(())
    }

    /// Computes task configs and starts the tasks, unless the connector is stopped.
    async fn start_connector(&self, name: &str, c: &mut Connector) {
        if let Some((configs, resolved)) = self.plan_tasks(name, c).await {
            self.spawn_tasks(name, c, configs, &resolved);
        }
    }

    /// Resolves the connector's config and asks the plugin for task configs. On success the
    /// connector is RUNNING (or PAUSED) and its shown task configs are updated; returns the
    /// resolved task configs and connector config. Otherwise the connector is STOPPED or
    /// FAILED with the reason.
    async fn plan_tasks(
        &self,
        name: &str,
        c: &mut Connector,
    ) -> Option<(Vec<BTreeMap<String, String>>, BTreeMap<String, String>)> {
        if c.target == TargetState::Stopped {
            c.status = Status::new(State::Stopped);
            c.task_configs.clear();
            return None;
        }
        let resolved = match self.worker.config.providers.resolve(&c.config) {
            Ok(r) => r,
            Err((key, err)) => {
                c.status = Status::failed(format!("Cannot resolve the value of {key}: {err}"));
                return None;
            }
        };
        let max = connector::tasks_max(&c.config);
        let configs = match c.plugin.task_configs(&resolved, max).await {
            Ok(configs) if configs.len() as u32 > max => {
                c.status = Status::failed(format!(
                    "The connector {name} has generated {} tasks, which is greater than {max}, the maximum number of tasks it is configured to create.",
                    configs.len()
                ));
                return None;
            }
            Ok(configs) => configs,
            Err(err) => {
                c.status = Status::failed(format!(
                    "Connector {name} failed to generate task configs: {err}"
                ));
                return None;
            }
        };
        c.task_configs = configs
            .iter()
            .map(|t| reinsert_placeholders(t, &c.config, &resolved))
            .collect();
        c.status = Status::new(if c.target == TargetState::Paused {
            State::Paused
        } else {
            State::Running
        });
        Some((configs, resolved))
    }

    fn spawn_tasks(
        &self,
        name: &str,
        c: &mut Connector,
        configs: Vec<BTreeMap<String, String>>,
        resolved: &BTreeMap<String, String>,
    ) {
        for (id, config) in configs.into_iter().enumerate() {
            let handle = self.spawn_task(name, c, id as u32, config, resolved.clone());
            c.tasks.insert(id as u32, handle);
        }
    }

    fn spawn_task(
        &self,
        name: &str,
        c: &Connector,
        id: u32,
        config: BTreeMap<String, String>,
        connector_config: BTreeMap<String, String>,
    ) -> TaskHandle {
        spawn_task(
            &self.worker,
            &self.cancel,
            TaskSpec {
                connector: name,
                plugin: &c.plugin,
                topics: &c.topics,
                paused: c.target == TargetState::Paused,
                id,
                config,
                connector_config,
            },
        )
    }

    async fn restart_one_task(&self, name: &str, c: &mut Connector, id: u32) {
        let Some(old) = c.tasks.remove(&id) else {
            return;
        };
        self.stop_task(old).await;
        let resolved = match self.worker.config.providers.resolve(&c.config) {
            Ok(r) => r,
            Err((key, err)) => {
                c.status = Status::failed(format!("Cannot resolve the value of {key}: {err}"));
                return;
            }
        };
        let config = c
            .task_configs
            .get(id as usize)
            .map(|t| {
                self.worker
                    .config
                    .providers
                    .resolve(t)
                    .unwrap_or_else(|_| t.clone())
            })
            .unwrap_or_default();
        let handle = self.spawn_task(name, c, id, config, resolved);
        c.tasks.insert(id, handle);
    }

    async fn stop_task(&self, handle: TaskHandle) {
        stop_task(handle, self.worker.config.task_shutdown_timeout).await;
    }

    async fn stop_tasks(&self, c: &mut Connector) {
        let tasks = std::mem::take(&mut c.tasks);
        let stops = tasks.into_values().map(|t| self.stop_task(t));
        futures::future::join_all(stops).await;
    }

    /// Stops every task (each flushes and commits), then leaves nothing running.
    pub async fn shutdown(&self) {
        let mut connectors = self.connectors.lock().await;
        for c in connectors.values_mut() {
            self.stop_tasks(c).await;
        }
    }
}

/// The connector plugin `connector.class` names.
pub(super) fn plugin_for(
    registry: &PluginRegistry,
    config: &BTreeMap<String, String>,
) -> Result<Arc<Plugin>, HerderError> {
    let class = config.get(CONNECTOR_CLASS).ok_or_else(|| {
        HerderError::BadRequest("Connector config is missing connector.class".into())
    })?;
    let plugin = registry.find(class).ok_or_else(|| {
        HerderError::BadRequest(format!(
            "Failed to find any class that implements Connector and which name matches {class}, available connectors are: {}",
            registry
                .all()
                .iter()
                .filter(|p| p.kind != PluginKind::Transform)
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if plugin.kind == PluginKind::Transform {
        return Err(HerderError::BadRequest(format!(
            "{class} is a transformation, not a connector"
        )));
    }
    Ok(plugin)
}

/// The connector plugin, once the config has passed validation (400 naming every error).
pub(super) async fn validated(
    registry: &PluginRegistry,
    config: &BTreeMap<String, String>,
) -> Result<Arc<Plugin>, HerderError> {
    let plugin = plugin_for(registry, config)?;
    let infos = validate::validate(&plugin, registry, config).await;
    if infos.error_count > 0 {
        return Err(HerderError::BadRequest(infos.error_message()));
    }
    Ok(plugin)
}

/// What a task is started with.
pub(super) struct TaskSpec<'a> {
    pub(super) connector: &'a str,
    pub(super) plugin: &'a Arc<Plugin>,
    pub(super) topics: &'a ActiveTopics,
    pub(super) paused: bool,
    pub(super) id: u32,
    /// Resolved.
    pub(super) config: BTreeMap<String, String>,
    /// Resolved.
    pub(super) connector_config: BTreeMap<String, String>,
}

/// Starts a task under supervision (automatic restarts when its connector opted in).
pub(super) fn spawn_task(
    worker: &Arc<WorkerShared>,
    parent: &CancellationToken,
    spec: TaskSpec<'_>,
) -> TaskHandle {
    let status = Arc::new(Mutex::new(Status::new(State::Unassigned)));
    let initial = if spec.paused {
        Target::Pause
    } else {
        Target::Run
    };
    let (target_tx, target_rx) = watch::channel(initial);
    let cancel = parent.child_token();
    let ctx = TaskContext {
        connector: spec.connector.to_owned(),
        task_id: spec.id,
        config: spec.config,
        connector_config: spec.connector_config,
        plugin: spec.plugin.clone(),
        worker: worker.clone(),
        status: status.clone(),
        target: target_rx,
        cancel: cancel.clone(),
        topics: spec.topics.clone(),
    };
    let span = tracing::info_span!("task", connector = %spec.connector, task = spec.id);
    let restart = crate::config::errors::parse(&ctx.connector_config)
        .ok()
        .and_then(|e| e.restart);
    let join = tokio::spawn(task::supervise(ctx, restart).instrument(span));
    TaskHandle {
        status,
        target: target_tx,
        cancel,
        join,
    }
}

/// Cancels a task and waits for it to flush and commit, aborting it after `timeout`.
pub(super) async fn stop_task(handle: TaskHandle, timeout: std::time::Duration) {
    let started = std::time::Instant::now();
    handle.cancel.cancel();
    let mut join = handle.join;
    if tokio::time::timeout(timeout, &mut join).await.is_err() {
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "Task did not stop in time; aborting it."
        );
        join.abort();
        let _ = join.await;
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Task stopped."
    );
}

fn info_of(name: &str, c: &Connector) -> ConnectorInfo {
    ConnectorInfo {
        name: name.to_owned(),
        config: c.config.clone(),
        tasks: (0..c.task_configs.len() as u32).collect(),
        kind: c.plugin.kind,
    }
}

fn status_of(name: &str, c: &Connector) -> ConnectorStatus {
    ConnectorStatus {
        name: name.to_owned(),
        connector: c.status.clone(),
        tasks: c
            .tasks
            .iter()
            .map(|(id, t)| (*id, task::get_status(&t.status)))
            .collect(),
        kind: c.plugin.kind,
    }
}
