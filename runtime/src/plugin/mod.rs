//! Plugins: the engine, loading and caching components, the registry that resolves
//! `connector.class`, and running plugins in isolated stores.

pub mod bindings;
mod engine;
mod errant;
mod instance;
pub mod redis;
pub mod sql;
mod store;
mod wire;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmconnect_sdk::PluginKind;
use wasmconnect_sdk::config::{ConfigIssue, ConfigType, Importance, Width};
use wasmconnect_sdk::data::codec::SchemaCache;

use bindings::sink::SinkPluginPre;
use bindings::source::SourcePluginPre;
use bindings::transform::TransformPluginPre;
use bindings::types;

pub use engine::{EPOCH_TICK, PluginEngine};
pub use instance::{CallError, SinkInstance, SourceInstance, TransformInstance};
pub use store::{CapturedOutput, Limits, TaskState};

/// Why a plugin could not be loaded or instantiated.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable wasmconnect plugin: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("wasm engine error: {0}")]
    Engine(String),
    #[error("cannot grant {path} to the plugin: {message}")]
    Grant { path: PathBuf, message: String },
    #[error("cannot instantiate plugin {plugin}: {message}")]
    Instantiate { plugin: String, message: String },
    #[error("plugin {plugin} is a {actual:?} plugin, not a {expected:?}")]
    WrongKind {
        plugin: String,
        expected: PluginKind,
        actual: PluginKind,
    },
}

impl PluginError {
    fn engine(err: wasmtime::Error) -> PluginError {
        PluginError::Engine(format!("{err:#}"))
    }

    fn invalid(path: &Path, err: impl std::fmt::Display) -> PluginError {
        PluginError::Invalid {
            path: path.to_owned(),
            message: err.to_string(),
        }
    }
}

/// One config key of a plugin: the SDK's type, served as Kafka Connect's `ConfigKeyInfo`.
pub use wasmconnect_sdk::config::ConfigKey as ConfigKeyDef;

fn key_from_wit(k: types::ConfigKey) -> ConfigKeyDef {
    ConfigKeyDef {
        name: k.name,
        config_type: match k.type_ {
            types::ConfigType::Boolean => ConfigType::Boolean,
            types::ConfigType::String => ConfigType::String,
            types::ConfigType::Int => ConfigType::Int,
            types::ConfigType::Long => ConfigType::Long,
            types::ConfigType::Double => ConfigType::Double,
            types::ConfigType::List => ConfigType::List,
            types::ConfigType::Class => ConfigType::Class,
            types::ConfigType::Password => ConfigType::Password,
        },
        default_value: k.default_value,
        required: k.required,
        importance: match k.importance {
            types::Importance::High => Importance::High,
            types::Importance::Medium => Importance::Medium,
            types::Importance::Low => Importance::Low,
        },
        documentation: k.documentation,
        group: k.group,
        order: k.order,
        width: match k.width {
            types::Width::None => Width::None,
            types::Width::Short => Width::Short,
            types::Width::Medium => Width::Medium,
            types::Width::Long => Width::Long,
        },
        display_name: k.display_name,
        recommended_values: k.recommended_values,
    }
}

#[derive(Clone)]
enum RolePre {
    Source(SourcePluginPre<TaskState>),
    Sink(SinkPluginPre<TaskState>),
    Transform(TransformPluginPre<TaskState>),
}

/// A loaded plugin: what it says about itself, and how to instantiate it.
pub struct Plugin {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    pub summary: String,
    pub aliases: Vec<String>,
    /// Config keys whose values are files the plugin may use.
    pub file_grants: Vec<String>,
    /// Host capabilities the component imports (`sql`, `redis`).
    pub capabilities: Vec<Capability>,
    pub config_def: Vec<ConfigKeyDef>,
    pub path: PathBuf,
    engine: Arc<PluginEngine>,
    pre: RolePre,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A host capability a plugin imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    Sql,
    Redis,
}

impl Capability {
    fn from_import(name: &str) -> Option<Capability> {
        match name {
            bindings::SQL_IMPORT => Some(Capability::Sql),
            bindings::REDIS_IMPORT => Some(Capability::Redis),
            _ => None,
        }
    }
}

/// A capability's resource handle the plugin passed is not in its table (a bug in the
/// guest's bindings): the call traps.
pub(crate) fn table_error(err: wasmtime::component::ResourceTableError) -> wasmtime::Error {
    wasmtime::Error::msg(format!("capability resource: {err}"))
}

/// Decodes `%XX` escapes (URL user names, passwords, paths); other bytes pass through.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Whether `host` may be reached under the worker's `plugin.allowed.hosts` (empty: any).
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    allowed.is_empty()
        || allowed.iter().any(|a| {
            a == "*"
                || a.eq_ignore_ascii_case(host)
                || a.strip_prefix("*.").is_some_and(|suffix| {
                    host.len() > suffix.len()
                        && host
                            .to_ascii_lowercase()
                            .ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
                })
        })
}

fn imports_of(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

fn exports_of(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Limits for the short-lived stores that answer metadata, validate and task-configs calls.
fn dry_limits() -> Limits {
    Limits {
        memory_bytes: 64 * 1024 * 1024,
        call_timeout: std::time::Duration::from_secs(10),
    }
}

macro_rules! dry_call {
    ($pre:expr, $engine:expr, $export:ident, $func:ident $(, $arg:expr)*) => {async {
        let state = TaskState::new(dry_limits(), &[]).map_err(|e| CallError::Trap(e.to_string()))?;
        let mut store = instance::new_store($engine.engine(), state);
        store.data_mut().call_started = std::time::Instant::now();
        store.set_epoch_deadline(1);
        let bindings = $pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| instance::describe_trap(&store, &e))?;
        let out = bindings.$export().$func(&mut store $(, $arg)*).await;
        out.map_err(|e| instance::describe_trap(&store, &e))
    }.await};
}

impl Plugin {
    /// Compiles (or loads from cache) one component and asks it who it is.
    ///
    /// # Errors
    /// When the file is not a component of a known world, or its metadata call fails.
    pub async fn load(engine: Arc<PluginEngine>, path: &Path) -> Result<Plugin, PluginError> {
        let component = {
            let engine = engine.clone();
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || engine.load(&path))
                .await
                .map_err(|e| PluginError::Engine(e.to_string()))??
        };
        let exports = exports_of(engine.engine(), &component);
        let has = |name: &str| exports.iter().any(|e| e == name);
        let capabilities: Vec<Capability> = imports_of(engine.engine(), &component)
            .iter()
            .filter_map(|name| Capability::from_import(name))
            .collect();
        let pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| PluginError::invalid(path, format!("{e:#}")))?;
        let invalid = |e: wasmtime::Error| PluginError::invalid(path, format!("{e:#}"));
        let source = if has(bindings::SOURCE_TASK_EXPORT) {
            Some(SourcePluginPre::new(pre.clone()).map_err(invalid)?)
        } else {
            None
        };
        let sink = if has(bindings::SINK_TASK_EXPORT) {
            Some(SinkPluginPre::new(pre.clone()).map_err(invalid)?)
        } else {
            None
        };
        let transform = if has(bindings::TRANSFORM_EXPORT) {
            Some(TransformPluginPre::new(pre).map_err(invalid)?)
        } else {
            None
        };
        let any = match (&source, &sink, &transform) {
            (Some(p), _, _) => RolePre::Source(p.clone()),
            (_, Some(p), _) => RolePre::Sink(p.clone()),
            (_, _, Some(p)) => RolePre::Transform(p.clone()),
            _ => {
                return Err(PluginError::invalid(
                    path,
                    "it exports none of wasmconnect:plugin/{source-task,sink-task,transform}@0.1.0",
                ));
            }
        };
        let call_err = |e: CallError| PluginError::invalid(path, e);
        let (meta, keys) = match &any {
            RolePre::Source(p) => (
                dry_call!(p, engine, wasmconnect_plugin_plugin, call_metadata).map_err(call_err)?,
                dry_call!(p, engine, wasmconnect_plugin_plugin, call_config_definition)
                    .map_err(call_err)?,
            ),
            RolePre::Sink(p) => (
                dry_call!(p, engine, wasmconnect_plugin_plugin, call_metadata).map_err(call_err)?,
                dry_call!(p, engine, wasmconnect_plugin_plugin, call_config_definition)
                    .map_err(call_err)?,
            ),
            RolePre::Transform(p) => (
                dry_call!(p, engine, wasmconnect_plugin_plugin, call_metadata).map_err(call_err)?,
                dry_call!(p, engine, wasmconnect_plugin_plugin, call_config_definition)
                    .map_err(call_err)?,
            ),
        };
        let kind = match meta.kind {
            types::PluginKind::Source => PluginKind::Source,
            types::PluginKind::Sink => PluginKind::Sink,
            types::PluginKind::Transform => PluginKind::Transform,
        };
        let missing = || {
            PluginError::invalid(
                path,
                format!("its metadata says {kind:?} but it does not export that role"),
            )
        };
        let pre = match kind {
            PluginKind::Source => RolePre::Source(source.ok_or_else(missing)?),
            PluginKind::Sink => RolePre::Sink(sink.ok_or_else(missing)?),
            PluginKind::Transform => RolePre::Transform(transform.ok_or_else(missing)?),
        };
        Ok(Plugin {
            name: meta.name,
            version: meta.version,
            kind,
            summary: meta.summary,
            aliases: meta.aliases,
            file_grants: meta.file_grants,
            capabilities,
            config_def: keys.into_iter().map(key_from_wit).collect(),
            path: path.to_owned(),
            engine,
            pre,
        })
    }

    /// Whether `class` names this plugin: its name or an alias, with or without a
    /// `Connector` suffix, or the last segment of a dotted class name.
    pub fn answers_to(&self, class: &str) -> bool {
        let class = class.trim();
        let simple = class.rsplit('.').next().unwrap_or(class);
        let strip = |s: &str| s.strip_suffix("Connector").unwrap_or(s).to_owned();
        std::iter::once(&self.name)
            .chain(self.aliases.iter())
            .any(|n| n == class || strip(n) == strip(class) || strip(n) == strip(simple))
    }

    /// The plugin's own validation of a config.
    ///
    /// # Errors
    /// When the plugin traps.
    pub async fn validate(
        &self,
        config: &BTreeMap<String, String>,
    ) -> Result<Vec<ConfigIssue>, CallError> {
        let flat = wire::config_to_wit(config);
        let issues = match &self.pre {
            RolePre::Source(p) => dry_call!(
                p,
                self.engine,
                wasmconnect_plugin_plugin,
                call_validate,
                &flat
            )?,
            RolePre::Sink(p) => dry_call!(
                p,
                self.engine,
                wasmconnect_plugin_plugin,
                call_validate,
                &flat
            )?,
            RolePre::Transform(p) => dry_call!(
                p,
                self.engine,
                wasmconnect_plugin_plugin,
                call_validate,
                &flat
            )?,
        };
        Ok(issues
            .into_iter()
            .map(|i| ConfigIssue::new(i.key, i.message))
            .collect())
    }

    /// Splits a connector config into task configs.
    ///
    /// # Errors
    /// The plugin's error, or a trap; a transform has no tasks.
    pub async fn task_configs(
        &self,
        config: &BTreeMap<String, String>,
        max_tasks: u32,
    ) -> Result<Vec<BTreeMap<String, String>>, CallError> {
        let flat = wire::config_to_wit(config);
        let result = match &self.pre {
            RolePre::Source(p) => dry_call!(
                p,
                self.engine,
                wasmconnect_plugin_source_connector,
                call_task_configs,
                &flat,
                max_tasks
            )?,
            RolePre::Sink(p) => dry_call!(
                p,
                self.engine,
                wasmconnect_plugin_sink_connector,
                call_task_configs,
                &flat,
                max_tasks
            )?,
            RolePre::Transform(_) => {
                return Err(CallError::Plugin(
                    wasmconnect_sdk::data::PluginError::config("a transform is not a connector"),
                ));
            }
        };
        let configs = result.map_err(|e| CallError::Plugin(instance::error_from_wit(e)))?;
        Ok(configs
            .into_iter()
            .map(|c| c.into_iter().collect())
            .collect())
    }

    fn task_state(
        &self,
        limits: Limits,
        config: &BTreeMap<String, String>,
    ) -> Result<TaskState, PluginError> {
        let grants: Vec<PathBuf> = self
            .file_grants
            .iter()
            .filter_map(|key| config.get(key))
            .filter_map(|file| Path::new(file).parent().map(Path::to_owned))
            .collect();
        let mut state = TaskState::new(limits, &grants)?;
        if self.capabilities.contains(&Capability::Sql) {
            state.sql = Some(sql::SqlGrant::new(config, self.engine.allowed_hosts()));
        }
        if self.capabilities.contains(&Capability::Redis) {
            state.redis = Some(redis::RedisGrant::new(config, self.engine.allowed_hosts()));
        }
        Ok(state)
    }

    /// The config a task's plugin sees: granted file paths made absolute, so that they
    /// name the preopened folders.
    pub fn task_config(&self, config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut config = config.clone();
        for key in &self.file_grants {
            if let Some(file) = config.get_mut(key) {
                let path = Path::new(file.as_str());
                if path.is_relative()
                    && let Ok(cwd) = std::env::current_dir()
                {
                    *file = cwd.join(path).to_string_lossy().into_owned();
                }
            }
        }
        config
    }

    fn instantiate_error(
        &self,
        store: &wasmtime::Store<TaskState>,
        e: &wasmtime::Error,
    ) -> PluginError {
        PluginError::Instantiate {
            plugin: self.name.clone(),
            message: instance::describe_trap(store, e).to_string(),
        }
    }

    fn wrong_kind(&self, expected: PluginKind) -> PluginError {
        PluginError::WrongKind {
            plugin: self.name.clone(),
            expected,
            actual: self.kind,
        }
    }

    /// A fresh instance for a source task; `config` is the task's config (as given to
    /// [`Plugin::task_config`]).
    ///
    /// # Errors
    /// When the plugin is not a source or cannot be instantiated.
    pub async fn source(
        &self,
        limits: Limits,
        config: &BTreeMap<String, String>,
    ) -> Result<SourceInstance, PluginError> {
        let RolePre::Source(pre) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::Source));
        };
        let mut store = instance::new_store(self.engine.engine(), self.task_state(limits, config)?);
        store.set_epoch_deadline(1);
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(self.instantiate_error(&store, &e)),
        };
        Ok(SourceInstance {
            store,
            bindings,
            schemas: SchemaCache::new(),
        })
    }

    /// A fresh instance for a sink task.
    ///
    /// # Errors
    /// When the plugin is not a sink or cannot be instantiated.
    pub async fn sink(
        &self,
        limits: Limits,
        config: &BTreeMap<String, String>,
    ) -> Result<SinkInstance, PluginError> {
        let RolePre::Sink(pre) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::Sink));
        };
        let mut store = instance::new_store(self.engine.engine(), self.task_state(limits, config)?);
        store.set_epoch_deadline(1);
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(self.instantiate_error(&store, &e)),
        };
        Ok(SinkInstance {
            store,
            bindings,
            reported: Vec::new(),
        })
    }

    /// A fresh transform instance.
    ///
    /// # Errors
    /// When the plugin is not a transform or cannot be instantiated.
    pub async fn transform(&self, limits: Limits) -> Result<TransformInstance, PluginError> {
        let RolePre::Transform(pre) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::Transform));
        };
        let mut store = instance::new_store(self.engine.engine(), TaskState::new(limits, &[])?);
        store.set_epoch_deadline(1);
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => return Err(self.instantiate_error(&store, &e)),
        };
        Ok(TransformInstance {
            store,
            bindings,
            schemas: SchemaCache::new(),
        })
    }
}

/// Every plugin found under `plugin.path`.
#[derive(Debug, Default)]
pub struct PluginRegistry {
    plugins: Vec<Arc<Plugin>>,
}

fn wasm_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::warn!(path = %dir.display(), "Plugin path is not a readable folder; skipping it.");
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            wasm_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "wasm") {
            out.push(path);
        }
    }
}

impl PluginRegistry {
    /// Loads every `.wasm` under the given paths (files or folders, searched recursively).
    /// A file that is not a usable plugin is logged and skipped: one bad plugin does not
    /// stop the worker.
    pub async fn scan(engine: Arc<PluginEngine>, paths: &[PathBuf]) -> PluginRegistry {
        let mut files = Vec::new();
        for path in paths {
            if path.is_file() {
                files.push(path.clone());
            } else {
                wasm_files(path, &mut files);
            }
        }
        let mut plugins: Vec<Arc<Plugin>> = Vec::new();
        for file in files {
            match Plugin::load(engine.clone(), &file).await {
                Ok(plugin) => {
                    if plugins.iter().any(|p| p.name == plugin.name) {
                        tracing::warn!(plugin = %plugin.name, path = %file.display(), "Duplicate plugin name; keeping the first one found.");
                        continue;
                    }
                    tracing::info!(plugin = %plugin.name, kind = ?plugin.kind, version = %plugin.version, path = %file.display(), "Loaded plugin.");
                    plugins.push(Arc::new(plugin));
                }
                Err(err) => {
                    tracing::error!(path = %file.display(), error = %err, "Skipping plugin that cannot be loaded.");
                }
            }
        }
        PluginRegistry { plugins }
    }

    /// The plugin `class` resolves to.
    pub fn find(&self, class: &str) -> Option<Arc<Plugin>> {
        self.plugins
            .iter()
            .find(|p| p.name == class)
            .or_else(|| self.plugins.iter().find(|p| p.answers_to(class)))
            .cloned()
    }

    pub fn all(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }
}
