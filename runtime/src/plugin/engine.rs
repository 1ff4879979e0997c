//! The one wasmtime engine of a worker: its configuration, the epoch ticker that bounds
//! every plugin call, the linker with the host capabilities, and the on-disk cache of
//! compiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::PluginError;
use super::bindings::{errant_records, log, redis, sql};
use super::store::TaskState;

/// How often the epoch advances; a plugin call notices its deadline within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Advances the engine's epoch every [`EPOCH_TICK`] on its own thread until dropped.
#[derive(Debug)]
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The engine, the linker every plugin is instantiated with, and the compile cache.
pub struct PluginEngine {
    engine: Engine,
    linker: Linker<TaskState>,
    cache_dir: Option<PathBuf>,
    /// Hosts plugins may connect to (`plugin.allowed.hosts`); empty allows any.
    allowed_hosts: Vec<String>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Builds the engine. Compiled components are cached in `cache_dir` when given.
    ///
    /// # Errors
    /// When wasmtime rejects the configuration or the host functions cannot be linked.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<PluginEngine, PluginError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // No WIT async in this contract: synchronous component calls are cheaper.
        config.concurrency_support(false);
        // `WASMCONNECT_PERF_MAP=1` names plugin code in `perf` (a /tmp/perf-<pid>.map).
        if std::env::var_os("WASMCONNECT_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(PluginError::engine)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(PluginError::engine)?;
        log::add_to_linker::<TaskState, HasSelf<TaskState>>(&mut linker, |s| s)
            .map_err(PluginError::engine)?;
        sql::add_to_linker::<TaskState, HasSelf<TaskState>>(&mut linker, |s| s)
            .map_err(PluginError::engine)?;
        redis::add_to_linker::<TaskState, HasSelf<TaskState>>(&mut linker, |s| s)
            .map_err(PluginError::engine)?;
        errant_records::add_to_linker::<TaskState, HasSelf<TaskState>>(&mut linker, |s| s)
            .map_err(PluginError::engine)?;
        if let Some(dir) = &cache_dir
            && let Err(err) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(dir = %dir.display(), error = %err, "Cannot create the plugin cache folder; compiling without a cache.");
        }
        Ok(PluginEngine {
            _ticker: EpochTicker::start(engine.clone()),
            engine,
            linker,
            cache_dir,
            allowed_hosts: Vec::new(),
        })
    }

    /// Limits the hosts plugins may open connections to; empty allows any.
    pub fn with_allowed_hosts(mut self, hosts: Vec<String>) -> PluginEngine {
        self.allowed_hosts = hosts;
        self
    }

    pub fn allowed_hosts(&self) -> &[String] {
        &self.allowed_hosts
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<TaskState> {
        &self.linker
    }

    /// Compiles a component, or loads it from the cache when this engine compiled the same
    /// bytes before.
    ///
    /// # Errors
    /// When the file cannot be read or is not a valid component.
    pub fn load(&self, path: &Path) -> Result<Component, PluginError> {
        let bytes = std::fs::read(path).map_err(|e| PluginError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        let Some(cached) = self.cache_path(&bytes) else {
            return Component::new(&self.engine, &bytes).map_err(|e| PluginError::invalid(path, e));
        };
        if cached.exists() {
            match self.deserialize(&cached) {
                Ok(component) => {
                    tracing::debug!(plugin = %path.display(), "Loaded compiled plugin from cache.");
                    return Ok(component);
                }
                Err(err) => {
                    tracing::warn!(cache = %cached.display(), error = %err, "Ignoring unusable cache entry.");
                }
            }
        }
        let component =
            Component::new(&self.engine, &bytes).map_err(|e| PluginError::invalid(path, e))?;
        if let Err(err) = self.store_in_cache(&component, &cached) {
            tracing::warn!(cache = %cached.display(), error = %err, "Cannot cache compiled plugin.");
        }
        Ok(component)
    }

    fn cache_path(&self, bytes: &[u8]) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Some(dir.join(format!("{hex}-{:016x}.cwasm", hasher.finish())))
    }

    #[allow(unsafe_code)]
    fn deserialize(&self, cached: &Path) -> wasmtime::Result<Component> {
        // Read into memory rather than mmap the file: a file truncated under a live mapping
        // would crash the worker with SIGBUS.
        let bytes = std::fs::read(cached)?;
        // SAFETY: the cache folder is the worker's own; its entries are written only by
        // `store_in_cache` from components this engine compiled, named by the sha256 of the
        // source bytes and the engine's compatibility hash, and written by atomic rename.
        // wasmtime still checks the artifact's header and version before using it.
        unsafe { Component::deserialize(&self.engine, bytes) }
    }

    fn store_in_cache(
        &self,
        component: &Component,
        cached: &Path,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let serialized = component.serialize()?;
        let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serialized)?;
        std::fs::rename(&tmp, cached)?;
        Ok(())
    }
}
