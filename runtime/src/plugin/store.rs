//! What a plugin's store holds: WASI (locked down), its limits, captured output, and the
//! host side of the capabilities it imports.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::bindings::log;

/// Per-task resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory a task's plugin may grow to.
    pub memory_bytes: usize,
    /// Longest a single call into the plugin may run.
    pub call_timeout: Duration,
}

impl Limits {
    pub const DEFAULT_MEMORY_BYTES: usize = 256 * 1024 * 1024;
    pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory_bytes: Limits::DEFAULT_MEMORY_BYTES,
            call_timeout: Limits::DEFAULT_CALL_TIMEOUT,
        }
    }
}

/// How much of a plugin's stdout and stderr is kept for its failure trace.
const OUTPUT_TAIL_BYTES: usize = 8 * 1024;

/// Keeps the last 8 KiB a plugin wrote to stdout or stderr (a Rust panic
/// message lands there before the trap), and never refuses a write.
#[derive(Debug, Clone, Default)]
pub struct CapturedOutput {
    tail: Arc<Mutex<VecDeque<u8>>>,
}

impl CapturedOutput {
    /// What was captured, lossily decoded.
    pub fn text(&self) -> String {
        let tail = self
            .tail
            .lock()
            .map(|t| t.iter().copied().collect::<Vec<u8>>());
        String::from_utf8_lossy(&tail.unwrap_or_default())
            .trim()
            .to_owned()
    }

    fn append(&self, bytes: &[u8]) {
        if let Ok(mut tail) = self.tail.lock() {
            tail.extend(bytes);
            let excess = tail.len().saturating_sub(OUTPUT_TAIL_BYTES);
            tail.drain(..excess);
        }
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The data of one plugin store.
pub struct TaskState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// The `sql` capability, when the plugin imports it and this store runs a task.
    pub(crate) sql: Option<super::sql::SqlGrant>,
    /// The `redis` capability, likewise.
    pub(crate) redis: Option<super::redis::RedisGrant>,
    /// A sink's reports on records of its previous batch.
    pub(crate) errant: super::errant::ErrantRecords,
    pub(crate) limits: StoreLimits,
    pub(crate) output: CapturedOutput,
    /// When the current call started, for its deadline.
    pub(crate) call_started: Instant,
    pub(crate) call_timeout: Duration,
}

impl std::fmt::Debug for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskState")
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

impl TaskState {
    /// A store for a task: no environment, no network, and only the `grants` folders of
    /// the filesystem, each visible at its own path.
    ///
    /// # Errors
    /// When a granted folder cannot be opened.
    pub fn new(limits: Limits, grants: &[PathBuf]) -> Result<TaskState, super::PluginError> {
        let output = CapturedOutput::default();
        let mut wasi = WasiCtx::builder();
        wasi.stdout(output.clone()).stderr(output.clone());
        for dir in grants {
            let guest = dir.to_string_lossy().into_owned();
            wasi.preopened_dir(dir, &guest, FsPerms::ReadWrite)
                .map_err(|e| super::PluginError::Grant {
                    path: dir.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(TaskState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            sql: None,
            redis: None,
            errant: super::errant::ErrantRecords::default(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            output,
            call_started: Instant::now(),
            call_timeout: limits.call_timeout,
        })
    }
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for TaskState {
    fn enabled(&mut self, level: log::Level) -> bool {
        match level {
            log::Level::Trace => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
            log::Level::Debug => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
            log::Level::Info => tracing::enabled!(target: "plugin", tracing::Level::INFO),
            log::Level::Warn => tracing::enabled!(target: "plugin", tracing::Level::WARN),
            log::Level::Error => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
        }
    }

    fn log(&mut self, level: log::Level, message: String) {
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", "{message}"),
        }
    }
}
