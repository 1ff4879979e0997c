//! A native test harness: drive a plugin the way the worker does, with `cargo test`.
//!
//! The harness parses configs exactly as the worker's call into the component does, and
//! collects what the plugin logged ([`take_logs`]).

use crate::config::Config;
use crate::data::{Outcome, PluginError, Record, RecordFailure, SourcePosition, SourceRecord};
use crate::{Sink, Source, Transform};

use crate::config::parse_struct as parse;

/// Runs a [`Source`] task.
#[derive(Debug)]
pub struct SourceHarness<T: Source> {
    task: T,
}

impl<T: Source> SourceHarness<T> {
    /// Validates and parses `config`, then opens a task resuming from `resume`.
    ///
    /// # Errors
    /// The plugin's config issues or its `open` error.
    pub fn open(config: Config, resume: Vec<SourcePosition>) -> Result<Self, PluginError> {
        let task = T::open(parse::<T::Config>(&config)?, resume)?;
        Ok(SourceHarness { task })
    }

    /// # Errors
    /// The plugin's `poll` error.
    pub fn poll(&mut self, max_records: usize) -> Result<Vec<SourceRecord>, PluginError> {
        self.task.poll(max_records)
    }

    /// # Errors
    /// The plugin's `commit` error.
    pub fn commit(&mut self, positions: &[SourcePosition]) -> Result<(), PluginError> {
        self.task.commit(positions)
    }

    pub fn task(&mut self) -> &mut T {
        &mut self.task
    }
}

impl<T: Source> Drop for SourceHarness<T> {
    fn drop(&mut self) {
        self.task.close();
    }
}

/// Runs a [`Sink`] task.
#[derive(Debug)]
pub struct SinkHarness<T: Sink> {
    task: T,
}

impl<T: Sink> SinkHarness<T> {
    /// # Errors
    /// The plugin's config issues or its `open` error.
    pub fn open(config: Config) -> Result<Self, PluginError> {
        Ok(SinkHarness {
            task: T::open(parse::<T::Config>(&config)?)?,
        })
    }

    /// # Errors
    /// The plugin's `put` error.
    pub fn put(&mut self, records: Vec<Record>) -> Result<Vec<RecordFailure>, PluginError> {
        self.task.put(records)
    }

    /// # Errors
    /// The plugin's `flush` error.
    pub fn flush(&mut self) -> Result<(), PluginError> {
        self.task.flush()
    }

    pub fn task(&mut self) -> &mut T {
        &mut self.task
    }
}

impl<T: Sink> Drop for SinkHarness<T> {
    fn drop(&mut self) {
        self.task.close();
    }
}

/// Runs a [`Transform`].
#[derive(Debug)]
pub struct TransformHarness<T: Transform> {
    transform: T,
}

impl<T: Transform> TransformHarness<T> {
    /// # Errors
    /// The plugin's config issues or its `configure` error.
    pub fn configure(config: Config) -> Result<Self, PluginError> {
        Ok(TransformHarness {
            transform: T::configure(parse::<T::Config>(&config)?)?,
        })
    }

    /// Applies the transform to a batch, checking it returned one outcome per record.
    ///
    /// # Panics
    /// When the plugin breaks that rule: a test should fail then.
    pub fn apply(&mut self, records: Vec<Record>) -> Vec<Outcome> {
        let n = records.len();
        let out = self.transform.apply_batch(records);
        assert_eq!(
            out.len(),
            n,
            "a transform must return one outcome per record"
        );
        out
    }
}

impl<T: Transform> Drop for TransformHarness<T> {
    fn drop(&mut self) {
        self.transform.close();
    }
}

/// Takes what the plugin logged on this thread so far.
#[cfg(not(target_arch = "wasm32"))]
pub fn take_logs() -> Vec<(crate::log::Level, String)> {
    crate::log::take_captured()
}
