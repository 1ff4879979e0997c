//! # wasmconnect SDK
//!
//! Write Kafka Connect-compatible source connectors, sink connectors and single message
//! transforms as WebAssembly components for the wasmconnect worker.
//!
//! A plugin is a type implementing [`Source`], [`Sink`] or [`Transform`], a config struct
//! declared with [`config!`], and one export macro call ([`export_source!`],
//! [`export_sink!`], [`export_transform!`]). Build it with
//! `cargo build --release --target wasm32-wasip2` and drop the `.wasm` into the worker's
//! `plugin.path`. The worker owns Kafka, converters, offsets and the error policy; the plugin
//! sees [`Record`]s holding Connect data ([`data::Value`] with an optional [`data::Schema`]).
//!
//! The same code runs natively: [`testing`] drives a plugin with `cargo test`, no wasm needed.
//!
//! ## A complete transform
//!
//! ```
//! use wasmconnect_sdk::prelude::*;
//!
//! wasmconnect_sdk::config! {
//!     pub struct UppercaseConfig {
//!         /// Struct field (or map key) to upper-case.
//!         #[key = "field", importance = High]
//!         pub field: String,
//!     }
//! }
//!
//! pub struct Uppercase {
//!     field: String,
//! }
//!
//! impl Transform for Uppercase {
//!     type Config = UppercaseConfig;
//!
//!     fn metadata() -> Metadata {
//!         Metadata::new("Uppercase", env!("CARGO_PKG_VERSION"), "Upper-cases one string field.")
//!     }
//!
//!     fn configure(config: UppercaseConfig) -> Result<Self, PluginError> {
//!         Ok(Uppercase { field: config.field })
//!     }
//!
//!     fn apply(&mut self, mut record: Record) -> Outcome {
//!         let Value::Struct(s) = record.value.value() else {
//!             return Outcome::Failed(format!("only struct values are supported"));
//!         };
//!         let Some(Value::String(text)) = s.get(&self.field) else {
//!             return Outcome::Keep(record);
//!         };
//!         let upper = text.to_uppercase();
//!         match s.clone().put(&self.field, upper) {
//!             Ok(changed) => {
//!                 record.value.set_value(Value::Struct(changed));
//!                 Outcome::Keep(record)
//!             }
//!             Err(err) => Outcome::Failed(err.to_string()),
//!         }
//!     }
//! }
//!
//! wasmconnect_sdk::export_transform!(Uppercase);
//!
//! // The native harness runs the plugin as the worker would, without wasm.
//! let schema = std::sync::Arc::new(
//!     Schema::structure().field("name", Schema::new(SchemaType::String)),
//! );
//! let value = Struct::new(schema.clone()).unwrap().put("name", "ada").unwrap();
//! let mut harness = testing::TransformHarness::<Uppercase>::configure(
//!     Config::new().with("field", "name"),
//! ).unwrap();
//! let out = harness.apply(vec![Record::new("users", Data::new(schema, Value::Struct(value)))]);
//! let Outcome::Keep(record) = &out[0] else { panic!("kept") };
//! assert_eq!(record.value.value().as_struct().unwrap().get("name"), Some(&Value::from("ADA")));
//!
//! // Config errors name the key.
//! let Err(err) = testing::TransformHarness::<Uppercase>::configure(Config::new()) else {
//!     panic!("a missing key is an error")
//! };
//! assert!(err.to_string().contains("field"));
//! ```
//!
//! Built for `wasm32-wasip2` and dropped into `plugin.path`, it joins a connector's chain
//! beside Kafka's transforms, by its name, in Kafka Connect's syntax:
//!
//! ```properties
//! transforms=upper,route
//! transforms.upper.type=Uppercase
//! transforms.upper.field=name
//! transforms.route.type=org.apache.kafka.connect.transforms.RegexRouter
//! transforms.route.regex=(.*)
//! transforms.route.replacement=$1-upper
//! ```
//!
//! A record it answers with [`Outcome::Failed`] goes to the
//! connector's error policy (`errors.tolerance`, the dead letter queue).

extern crate self as wasmconnect_sdk;

pub mod config;
pub mod data;
pub mod errant;
pub mod log;
pub mod redis;
pub mod sql;
pub mod testing;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __guest;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __rt {
    pub use wit_bindgen;
}

use config::{Config, ConfigIssue, ConfigStruct};
use data::{Outcome, PluginError, Record, RecordFailure, SourcePosition, SourceRecord};

/// What a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Source,
    Sink,
    Transform,
}

/// Who a plugin is: served by `GET /connector-plugins` and used to resolve
/// `connector.class`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub name: &'static str,
    pub version: &'static str,
    pub summary: &'static str,
    /// Other names `connector.class` may use, such as a Java class name.
    pub aliases: &'static [&'static str],
    /// Config keys naming files the plugin reads or writes; the worker grants only those.
    pub file_grants: &'static [&'static str],
}

impl Metadata {
    pub const fn new(name: &'static str, version: &'static str, summary: &'static str) -> Metadata {
        Metadata {
            name,
            version,
            summary,
            aliases: &[],
            file_grants: &[],
        }
    }

    /// Sets the aliases (builder style).
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Metadata {
        self.aliases = aliases;
        self
    }

    /// Sets the file grants (builder style).
    pub const fn file_grants(mut self, keys: &'static [&'static str]) -> Metadata {
        self.file_grants = keys;
        self
    }
}

fn validate_with<C: ConfigStruct>(config: &Config) -> Vec<ConfigIssue> {
    match C::from_config(config) {
        Ok(_) => Vec::new(),
        Err(issues) => issues,
    }
}

/// A source connector and its task.
pub trait Source: Sized + 'static {
    type Config: ConfigStruct;

    fn metadata() -> Metadata;

    /// Checks a connector config; by default, against [`Self::Config`]'s definition.
    fn validate(config: &Config) -> Vec<ConfigIssue> {
        validate_with::<Self::Config>(config)
    }

    /// Splits the work into at most `max_tasks` task configs; by default one task.
    ///
    /// # Errors
    /// When the work cannot be planned from this config.
    fn task_configs(config: &Config, _max_tasks: u32) -> Result<Vec<Config>, PluginError> {
        Ok(vec![config.clone()])
    }

    /// Starts a task; `resume` holds the last committed position of each source partition.
    ///
    /// # Errors
    /// When the task cannot start.
    fn open(config: Self::Config, resume: Vec<SourcePosition>) -> Result<Self, PluginError>;

    /// Returns up to `max_records` records; an empty list when nothing is ready.
    ///
    /// # Errors
    /// A retriable error makes the worker poll again later; any other fails the task.
    fn poll(&mut self, max_records: usize) -> Result<Vec<SourceRecord>, PluginError>;

    /// These positions were stored after Kafka acknowledged their records.
    ///
    /// # Errors
    /// When the source cannot act on the commit.
    fn commit(&mut self, _positions: &[SourcePosition]) -> Result<(), PluginError> {
        Ok(())
    }

    fn close(&mut self) {}
}

/// A sink connector and its task.
pub trait Sink: Sized + 'static {
    type Config: ConfigStruct;

    fn metadata() -> Metadata;

    /// Checks a connector config; by default, against [`Self::Config`]'s definition.
    fn validate(config: &Config) -> Vec<ConfigIssue> {
        validate_with::<Self::Config>(config)
    }

    /// Splits the work into at most `max_tasks` task configs; by default `max_tasks` copies
    /// (the worker's consumer group spreads the partitions).
    ///
    /// # Errors
    /// When the work cannot be planned from this config.
    fn task_configs(config: &Config, max_tasks: u32) -> Result<Vec<Config>, PluginError> {
        Ok(vec![config.clone(); max_tasks.max(1) as usize])
    }

    /// Starts a task.
    ///
    /// # Errors
    /// When the task cannot start.
    fn open(config: Self::Config) -> Result<Self, PluginError>;

    /// Writes (or buffers) a batch; returns the records it could not write. It may return
    /// before the batch is written, as long as [`Sink::flush`] waits for it; records found
    /// unwritable after that are reported with [`crate::errant::report_previous`] in the
    /// next `put` or in `flush`.
    ///
    /// # Errors
    /// A retriable error makes the worker redeliver the batch; any other fails the task.
    fn put(&mut self, records: Vec<Record>) -> Result<Vec<RecordFailure>, PluginError>;

    /// Makes everything accepted so far durable; offsets are committed after this succeeds.
    ///
    /// # Errors
    /// When buffered records could not be made durable.
    fn flush(&mut self) -> Result<(), PluginError> {
        Ok(())
    }

    fn close(&mut self) {}
}

/// A single message transform.
pub trait Transform: Sized + 'static {
    type Config: ConfigStruct;

    fn metadata() -> Metadata;

    /// Checks a transform config; by default, against [`Self::Config`]'s definition.
    fn validate(config: &Config) -> Vec<ConfigIssue> {
        validate_with::<Self::Config>(config)
    }

    /// Builds the transform.
    ///
    /// # Errors
    /// When the config cannot be used.
    fn configure(config: Self::Config) -> Result<Self, PluginError>;

    /// Transforms one record.
    fn apply(&mut self, record: Record) -> Outcome;

    /// Transforms a batch: exactly one outcome per record, in order. Override it when a
    /// batch can be handled faster as a whole.
    fn apply_batch(&mut self, records: Vec<Record>) -> Vec<Outcome> {
        records.into_iter().map(|r| self.apply(r)).collect()
    }

    fn close(&mut self) {}
}

/// Exports a [`Source`] implementation as the component's plugin.
#[macro_export]
macro_rules! export_source {
    ($t:ty) => {
        $crate::__export_role!($crate::__guest::SourceRole<$t>);
    };
}

/// Exports a [`Sink`] implementation as the component's plugin.
#[macro_export]
macro_rules! export_sink {
    ($t:ty) => {
        $crate::__export_role!($crate::__guest::SinkRole<$t>);
    };
}

/// Exports a [`Transform`] implementation as the component's plugin.
#[macro_export]
macro_rules! export_transform {
    ($t:ty) => {
        $crate::__export_role!($crate::__guest::TransformRole<$t>);
    };
}

/// On native targets the export macros expand to nothing.
#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_role {
    ($role:ty) => {};
}

/// What a plugin usually needs.
pub mod prelude {
    pub use crate::config::{Config, ConfigIssue, ConfigStruct, Password};
    pub use crate::data::{
        Data, Header, OffsetMap, Outcome, PluginError, Record, RecordFailure, Scalar, Schema,
        SchemaType, SourcePosition, SourceRecord, Struct, Value, offset_get, offset_map,
    };
    pub use crate::testing;
    pub use crate::{Metadata, Sink, Source, Transform};
    pub use crate::{debug, error, info, warn};
}
