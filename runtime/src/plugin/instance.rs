//! Running plugin instances: one store per task, every call bounded by the task's deadline,
//! traps turned into errors that fail only that task.

use std::collections::BTreeMap;
use std::time::Instant;

use wasmconnect_sdk::data::codec::SchemaCache;
use wasmconnect_sdk::data::{
    self, Outcome, Record, RecordFailure, SourcePosition, SourceRecord, batch,
};
use wasmtime::{Store, UpdateDeadline};

use super::bindings::{sink::SinkPlugin, source::SourcePlugin, transform::TransformPlugin, types};
use super::store::TaskState;
use super::wire::{self, WireError};

/// Why a call into a plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin reported an error.
    #[error("{0}")]
    Plugin(data::PluginError),
    /// The plugin trapped (a panic, an out-of-bounds access, its memory cap, its deadline).
    /// The instance is unusable afterwards.
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl CallError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, CallError::Plugin(e) if e.is_retriable())
    }
}

pub(crate) fn error_from_wit(e: types::PluginError) -> data::PluginError {
    match e {
        types::PluginError::Config(m) => data::PluginError::Config(m),
        types::PluginError::Retriable(m) => data::PluginError::Retriable(m),
        types::PluginError::Fatal(m) => data::PluginError::Fatal(m),
    }
}

/// Makes a store for a task: its deadline is checked at every epoch tick, where the call
/// also yields to the async runtime so a busy plugin cannot hold a worker thread.
pub(crate) fn new_store(engine: &wasmtime::Engine, state: TaskState) -> Store<TaskState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.epoch_deadline_callback(|ctx| {
        let state = ctx.data();
        if state.call_started.elapsed() > state.call_timeout {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

fn begin_call(store: &mut Store<TaskState>) {
    store.data_mut().call_started = Instant::now();
    store.set_epoch_deadline(1);
}

/// Describes a trap with what the plugin printed before it (a panic message).
pub(crate) fn describe_trap(store: &Store<TaskState>, err: &wasmtime::Error) -> CallError {
    let mut message = match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!(
            "the call ran past its deadline of {} ms and was interrupted",
            store.data().call_timeout.as_millis()
        ),
        Some(trap) => format!("{trap}"),
        None => format!("{err}"),
    };
    let detail = format!("{err:?}");
    if !detail.is_empty() && !message.contains(&detail) {
        message.push('\n');
        message.push_str(&detail);
    }
    let output = store.data().output.text();
    if !output.is_empty() {
        message.push_str("\nplugin output:\n");
        message.push_str(&output);
    }
    CallError::Trap(message)
}

/// Runs one exported call with the deadline armed, mapping a trap and a plugin error.
macro_rules! call {
    ($self:ident, $export:ident, $func:ident $(, $arg:expr)*) => {{
        begin_call(&mut $self.store);
        let result = $self.bindings.$export().$func(&mut $self.store $(, $arg)*).await;
        match result {
            Ok(value) => Ok(value),
            Err(err) => Err(describe_trap(&$self.store, &err)),
        }
    }};
}

fn flat(config: &BTreeMap<String, String>) -> types::Config {
    wire::config_to_wit(config)
}

/// A source task's plugin instance.
pub struct SourceInstance {
    pub(crate) store: Store<TaskState>,
    pub(crate) bindings: SourcePlugin,
    pub(crate) schemas: SchemaCache,
}

impl std::fmt::Debug for SourceInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceInstance").finish_non_exhaustive()
    }
}

impl SourceInstance {
    /// # Errors
    /// The plugin's error, or a trap.
    pub async fn open(
        &mut self,
        config: &BTreeMap<String, String>,
        resume: &[SourcePosition],
    ) -> Result<(), CallError> {
        let resume: Vec<_> = resume.iter().map(wire::position_to_wit).collect();
        call!(
            self,
            wasmconnect_plugin_source_task,
            call_open,
            &flat(config),
            &resume
        )?
        .map_err(|e| CallError::Plugin(error_from_wit(e)))
    }

    /// # Errors
    /// The plugin's error, a trap, or a malformed batch.
    pub async fn poll(&mut self, max_records: u32) -> Result<Vec<SourceRecord>, CallError> {
        let bytes = call!(self, wasmconnect_plugin_source_task, call_poll, max_records)?
            .map_err(|e| CallError::Plugin(error_from_wit(e)))?;
        Ok(batch::decode_source_records(bytes, &mut self.schemas).map_err(WireError::from)?)
    }

    /// # Errors
    /// The plugin's error, or a trap.
    pub async fn commit(&mut self, positions: &[SourcePosition]) -> Result<(), CallError> {
        let positions: Vec<_> = positions.iter().map(wire::position_to_wit).collect();
        call!(
            self,
            wasmconnect_plugin_source_task,
            call_commit,
            &positions
        )?
        .map_err(|e| CallError::Plugin(error_from_wit(e)))
    }

    /// # Errors
    /// A trap.
    pub async fn close(&mut self) -> Result<(), CallError> {
        call!(self, wasmconnect_plugin_source_task, call_close)
    }
}

/// A sink task's plugin instance.
pub struct SinkInstance {
    pub(crate) store: Store<TaskState>,
    pub(crate) bindings: SinkPlugin,
    /// Records of the previous accepted batch that the plugin reported as not written
    /// (`errant-records`), until [`SinkInstance::take_reported`].
    pub(crate) reported: Vec<RecordFailure>,
}

impl std::fmt::Debug for SinkInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkInstance").finish_non_exhaustive()
    }
}

impl SinkInstance {
    /// # Errors
    /// The plugin's error, or a trap.
    pub async fn open(&mut self, config: &BTreeMap<String, String>) -> Result<(), CallError> {
        call!(self, wasmconnect_plugin_sink_task, call_open, &flat(config))?
            .map_err(|e| CallError::Plugin(error_from_wit(e)))
    }

    /// Writes a batch; returns the records the plugin could not write.
    ///
    /// # Errors
    /// The plugin's error, or a trap.
    pub async fn put(&mut self, records: &[Record]) -> Result<Vec<RecordFailure>, CallError> {
        let frame = batch::encode_records(records);
        let result = call!(self, wasmconnect_plugin_sink_task, call_put, &frame)
            .and_then(|r| r.map_err(|e| CallError::Plugin(error_from_wit(e))));
        self.collect_reported();
        let failures = result?;
        // Accepted: the plugin's reports from now on name records of this batch.
        self.store.data_mut().errant.previous_batch(records.len());
        Ok(failures
            .into_iter()
            .map(|f| RecordFailure {
                index: f.index,
                message: f.message,
            })
            .collect())
    }

    /// # Errors
    /// The plugin's error, or a trap.
    pub async fn flush(&mut self) -> Result<(), CallError> {
        let result = call!(self, wasmconnect_plugin_sink_task, call_flush)
            .and_then(|r| r.map_err(|e| CallError::Plugin(error_from_wit(e))));
        self.collect_reported();
        result?;
        // Everything accepted is durable: no earlier batch is left to report on.
        self.store.data_mut().errant.previous_batch(0);
        Ok(())
    }

    /// Records of the batch accepted before the last `put` (or, after a `flush`, the last
    /// one accepted) that the plugin reported as not written during the calls since the
    /// last take, by their index in that batch. They are reported even when the call
    /// itself failed.
    pub fn take_reported(&mut self) -> Vec<RecordFailure> {
        std::mem::take(&mut self.reported)
    }

    fn collect_reported(&mut self) {
        let reported = self.store.data_mut().errant.take();
        self.reported.extend(reported);
    }

    /// # Errors
    /// A trap.
    pub async fn close(&mut self) -> Result<(), CallError> {
        call!(self, wasmconnect_plugin_sink_task, call_close)
    }
}

/// A transform's plugin instance.
pub struct TransformInstance {
    pub(crate) store: Store<TaskState>,
    pub(crate) bindings: TransformPlugin,
    pub(crate) schemas: SchemaCache,
}

impl std::fmt::Debug for TransformInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformInstance").finish_non_exhaustive()
    }
}

impl TransformInstance {
    /// # Errors
    /// The plugin's error, or a trap.
    pub async fn configure(&mut self, config: &BTreeMap<String, String>) -> Result<(), CallError> {
        call!(
            self,
            wasmconnect_plugin_transform,
            call_configure,
            &flat(config)
        )?
        .map_err(|e| CallError::Plugin(error_from_wit(e)))
    }

    /// Applies the transform to a batch: one outcome per record, in order.
    ///
    /// # Errors
    /// The plugin's error, a trap, or a result that breaks the one-outcome-per-record rule.
    pub async fn apply(&mut self, records: &[Record]) -> Result<Vec<Outcome>, CallError> {
        let sent = batch::Sent::encode(records);
        let bytes = call!(self, wasmconnect_plugin_transform, call_apply, sent.bytes())?
            .map_err(|e| CallError::Plugin(error_from_wit(e)))?;
        let outcomes = sent
            .decode_outcomes(bytes, &mut self.schemas)
            .map_err(WireError::from)?;
        if outcomes.len() != records.len() {
            return Err(CallError::Wire(WireError(format!(
                "transform returned {} outcomes for {} records",
                outcomes.len(),
                records.len()
            ))));
        }
        Ok(outcomes)
    }

    /// # Errors
    /// A trap.
    pub async fn close(&mut self) -> Result<(), CallError> {
        call!(self, wasmconnect_plugin_transform, call_close)
    }
}
