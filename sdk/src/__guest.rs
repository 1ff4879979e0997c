//! The glue between the generated component bindings and the SDK's traits. Plugin authors
//! never touch this module: the `export_*!` macros use it.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::config::{Config, ConfigIssue, ConfigStruct, ConfigType, Importance, Width};
use crate::data::codec::SchemaCache;
use crate::data::{self, PluginError, Record, Scalar, SourcePosition, batch};
use crate::{Metadata, PluginKind, Sink, Source, Transform};

wit_bindgen::generate!({
    world: "sdk-guest",
    path: "../wit/plugin",
    pub_export_macro: true,
    export_macro_name: "__export_sdk_guest",
    default_bindings_module: "wasmconnect_sdk::__guest",
    runtime_path: "wasmconnect_sdk::__rt::wit_bindgen::rt",
});

use wasmconnect::plugin::types as wit;

/// Talc instead of the default dlmalloc: a batch allocates per record on decode and encode,
/// and the boundary benchmark measured the difference (README).
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    static SCHEMAS: RefCell<SchemaCache> = RefCell::new(SchemaCache::new());
}

fn with_instance<T: 'static, R>(
    f: impl FnOnce(&mut T) -> Result<R, PluginError>,
) -> Result<R, PluginError> {
    INSTANCE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let instance = slot
            .as_mut()
            .and_then(|b| b.downcast_mut::<T>())
            .ok_or_else(|| PluginError::fatal("the task is not open"))?;
        f(instance)
    })
}

fn set_instance<T: 'static>(instance: T) {
    INSTANCE.with(|cell| *cell.borrow_mut() = Some(Box::new(instance)));
}

fn take_instance<T: 'static>() -> Option<T> {
    INSTANCE.with(|cell| {
        cell.borrow_mut()
            .take()
            .and_then(|b| b.downcast::<T>().ok())
            .map(|b| *b)
    })
}

use crate::config::parse_struct as parse;

// ---- conversions between the generated types and the SDK's ----

pub fn config_from_wit(config: wit::Config) -> Config {
    config.into_iter().collect()
}

pub fn config_to_wit(config: Config) -> wit::Config {
    config.into_iter().collect()
}

pub fn error_to_wit(err: PluginError) -> wit::PluginError {
    match err {
        PluginError::Config(m) => wit::PluginError::Config(m),
        PluginError::Retriable(m) => wit::PluginError::Retriable(m),
        PluginError::Fatal(m) => wit::PluginError::Fatal(m),
    }
}

fn scalar_to_wit(s: Scalar) -> wit::Scalar {
    match s {
        Scalar::Null => wit::Scalar::Null,
        Scalar::Boolean(b) => wit::Scalar::Boolean(b),
        Scalar::Integer(i) => wit::Scalar::Integer(i),
        Scalar::Float(f) => wit::Scalar::Float(f),
        Scalar::Text(t) => wit::Scalar::Text(t),
    }
}

fn scalar_from_wit(s: wit::Scalar) -> Scalar {
    match s {
        wit::Scalar::Null => Scalar::Null,
        wit::Scalar::Boolean(b) => Scalar::Boolean(b),
        wit::Scalar::Integer(i) => Scalar::Integer(i),
        wit::Scalar::Float(f) => Scalar::Float(f),
        wit::Scalar::Text(t) => Scalar::Text(t),
    }
}

fn map_to_wit(map: data::OffsetMap) -> wit::OffsetMap {
    map.into_iter()
        .map(|(k, v)| (k, scalar_to_wit(v)))
        .collect()
}

fn map_from_wit(map: wit::OffsetMap) -> data::OffsetMap {
    map.into_iter()
        .map(|(k, v)| (k, scalar_from_wit(v)))
        .collect()
}

pub fn position_to_wit(p: SourcePosition) -> wit::SourcePosition {
    wit::SourcePosition {
        partition: map_to_wit(Arc::unwrap_or_clone(p.partition)),
        offset: map_to_wit(p.offset),
    }
}

pub fn position_from_wit(p: wit::SourcePosition) -> SourcePosition {
    SourcePosition {
        partition: Arc::new(map_from_wit(p.partition)),
        offset: map_from_wit(p.offset),
    }
}

fn decode_error(e: crate::data::codec::DecodeError) -> PluginError {
    PluginError::fatal(e.to_string())
}

fn decode_batch(batch: Vec<u8>) -> Result<Vec<Record>, PluginError> {
    SCHEMAS
        .with(|c| batch::decode_records_with(batch, &mut c.borrow_mut(), batch::Trust::Worker))
        .map_err(decode_error)
}

fn metadata_to_wit(m: Metadata, kind: PluginKind) -> wit::PluginMetadata {
    wit::PluginMetadata {
        name: m.name.into(),
        version: m.version.into(),
        kind: match kind {
            PluginKind::Source => wit::PluginKind::Source,
            PluginKind::Sink => wit::PluginKind::Sink,
            PluginKind::Transform => wit::PluginKind::Transform,
        },
        summary: m.summary.into(),
        aliases: m.aliases.iter().map(|s| (*s).to_owned()).collect(),
        file_grants: m.file_grants.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn definition_to_wit<C: ConfigStruct>() -> Vec<wit::ConfigKey> {
    C::definition()
        .keys
        .into_iter()
        .map(|k| wit::ConfigKey {
            name: k.name,
            type_: match k.config_type {
                ConfigType::Boolean => wit::ConfigType::Boolean,
                ConfigType::String => wit::ConfigType::String,
                ConfigType::Int => wit::ConfigType::Int,
                ConfigType::Long => wit::ConfigType::Long,
                ConfigType::Double => wit::ConfigType::Double,
                ConfigType::List => wit::ConfigType::List,
                ConfigType::Class => wit::ConfigType::Class,
                ConfigType::Password => wit::ConfigType::Password,
            },
            default_value: k.default_value,
            required: k.required,
            importance: match k.importance {
                Importance::High => wit::Importance::High,
                Importance::Medium => wit::Importance::Medium,
                Importance::Low => wit::Importance::Low,
            },
            documentation: k.documentation,
            group: k.group,
            order: k.order,
            width: match k.width {
                Width::None => wit::Width::None,
                Width::Short => wit::Width::Short,
                Width::Medium => wit::Width::Medium,
                Width::Long => wit::Width::Long,
            },
            display_name: k.display_name,
            recommended_values: k.recommended_values,
        })
        .collect()
}

fn issues_to_wit(issues: Vec<ConfigIssue>) -> Vec<wit::ConfigIssue> {
    issues
        .into_iter()
        .map(|i| wit::ConfigIssue {
            key: i.key,
            message: i.message,
        })
        .collect()
}

fn unsupported<R>(role: &str) -> Result<R, wit::PluginError> {
    Err(wit::PluginError::Fatal(format!(
        "this plugin is not a {role}"
    )))
}

/// Everything a component exports, with "not this role" answers by default. The export
/// macros implement it for [`SourceRole`], [`SinkRole`] and [`TransformRole`].
pub trait GuestPlugin {
    fn metadata() -> wit::PluginMetadata;
    fn config_definition() -> Vec<wit::ConfigKey>;
    fn validate(config: wit::Config) -> Vec<wit::ConfigIssue>;

    fn task_configs(
        _config: wit::Config,
        _max_tasks: u32,
    ) -> Result<Vec<wit::Config>, wit::PluginError> {
        unsupported("connector")
    }
    fn source_open(
        _config: wit::Config,
        _resume: Vec<wit::SourcePosition>,
    ) -> Result<(), wit::PluginError> {
        unsupported("source")
    }
    fn source_poll(_max: u32) -> Result<wit::SourceBatch, wit::PluginError> {
        unsupported("source")
    }
    fn source_commit(_positions: Vec<wit::SourcePosition>) -> Result<(), wit::PluginError> {
        unsupported("source")
    }
    fn sink_open(_config: wit::Config) -> Result<(), wit::PluginError> {
        unsupported("sink")
    }
    fn sink_put(_batch: wit::RecordBatch) -> Result<Vec<wit::RecordFailure>, wit::PluginError> {
        unsupported("sink")
    }
    fn sink_flush() -> Result<(), wit::PluginError> {
        unsupported("sink")
    }
    fn transform_configure(_config: wit::Config) -> Result<(), wit::PluginError> {
        unsupported("transform")
    }
    fn transform_apply(_batch: wit::RecordBatch) -> Result<wit::OutcomeBatch, wit::PluginError> {
        unsupported("transform")
    }
    fn close();
}

#[derive(Debug)]
pub struct SourceRole<T>(PhantomData<T>);
#[derive(Debug)]
pub struct SinkRole<T>(PhantomData<T>);
#[derive(Debug)]
pub struct TransformRole<T>(PhantomData<T>);

impl<T: Source> GuestPlugin for SourceRole<T> {
    fn metadata() -> wit::PluginMetadata {
        metadata_to_wit(T::metadata(), PluginKind::Source)
    }
    fn config_definition() -> Vec<wit::ConfigKey> {
        definition_to_wit::<T::Config>()
    }
    fn validate(config: wit::Config) -> Vec<wit::ConfigIssue> {
        issues_to_wit(T::validate(&config_from_wit(config)))
    }
    fn task_configs(
        config: wit::Config,
        max_tasks: u32,
    ) -> Result<Vec<wit::Config>, wit::PluginError> {
        T::task_configs(&config_from_wit(config), max_tasks)
            .map(|cs| cs.into_iter().map(config_to_wit).collect())
            .map_err(error_to_wit)
    }
    fn source_open(
        config: wit::Config,
        resume: Vec<wit::SourcePosition>,
    ) -> Result<(), wit::PluginError> {
        let config = parse::<T::Config>(&config_from_wit(config)).map_err(error_to_wit)?;
        let resume = resume.into_iter().map(position_from_wit).collect();
        let task = T::open(config, resume).map_err(error_to_wit)?;
        set_instance(task);
        Ok(())
    }
    fn source_poll(max: u32) -> Result<wit::SourceBatch, wit::PluginError> {
        let records = with_instance::<T, _>(|t| t.poll(max as usize)).map_err(error_to_wit)?;
        Ok(batch::encode_source_records(&records))
    }
    fn source_commit(positions: Vec<wit::SourcePosition>) -> Result<(), wit::PluginError> {
        let positions: Vec<_> = positions.into_iter().map(position_from_wit).collect();
        with_instance::<T, _>(|t| t.commit(&positions)).map_err(error_to_wit)
    }
    fn close() {
        if let Some(mut t) = take_instance::<T>() {
            t.close();
        }
    }
}

impl<T: Sink> GuestPlugin for SinkRole<T> {
    fn metadata() -> wit::PluginMetadata {
        metadata_to_wit(T::metadata(), PluginKind::Sink)
    }
    fn config_definition() -> Vec<wit::ConfigKey> {
        definition_to_wit::<T::Config>()
    }
    fn validate(config: wit::Config) -> Vec<wit::ConfigIssue> {
        issues_to_wit(T::validate(&config_from_wit(config)))
    }
    fn task_configs(
        config: wit::Config,
        max_tasks: u32,
    ) -> Result<Vec<wit::Config>, wit::PluginError> {
        T::task_configs(&config_from_wit(config), max_tasks)
            .map(|cs| cs.into_iter().map(config_to_wit).collect())
            .map_err(error_to_wit)
    }
    fn sink_open(config: wit::Config) -> Result<(), wit::PluginError> {
        let config = parse::<T::Config>(&config_from_wit(config)).map_err(error_to_wit)?;
        let task = T::open(config).map_err(error_to_wit)?;
        set_instance(task);
        Ok(())
    }
    fn sink_put(batch: wit::RecordBatch) -> Result<Vec<wit::RecordFailure>, wit::PluginError> {
        let records = decode_batch(batch).map_err(error_to_wit)?;
        let failures = with_instance::<T, _>(|t| t.put(records)).map_err(error_to_wit)?;
        Ok(failures
            .into_iter()
            .map(|f| wit::RecordFailure {
                index: f.index,
                message: f.message,
            })
            .collect())
    }
    fn sink_flush() -> Result<(), wit::PluginError> {
        with_instance::<T, _>(|t| t.flush()).map_err(error_to_wit)
    }
    fn close() {
        if let Some(mut t) = take_instance::<T>() {
            t.close();
        }
    }
}

impl<T: Transform> GuestPlugin for TransformRole<T> {
    fn metadata() -> wit::PluginMetadata {
        metadata_to_wit(T::metadata(), PluginKind::Transform)
    }
    fn config_definition() -> Vec<wit::ConfigKey> {
        definition_to_wit::<T::Config>()
    }
    fn validate(config: wit::Config) -> Vec<wit::ConfigIssue> {
        issues_to_wit(T::validate(&config_from_wit(config)))
    }
    fn transform_configure(config: wit::Config) -> Result<(), wit::PluginError> {
        let config = parse::<T::Config>(&config_from_wit(config)).map_err(error_to_wit)?;
        let t = T::configure(config).map_err(error_to_wit)?;
        set_instance(t);
        Ok(())
    }
    fn transform_apply(batch: wit::RecordBatch) -> Result<wit::OutcomeBatch, wit::PluginError> {
        let (records, received) = SCHEMAS
            .with(|c| batch::Received::decode(batch, &mut c.borrow_mut()))
            .map_err(|e| error_to_wit(decode_error(e)))?;
        let outcomes =
            with_instance::<T, _>(|t| Ok(t.apply_batch(records))).map_err(error_to_wit)?;
        Ok(received.encode_outcomes(&outcomes))
    }
    fn close() {
        if let Some(mut t) = take_instance::<T>() {
            t.close();
        }
    }
}

/// Implements every generated `Guest` trait for a local type by delegating to a
/// [`GuestPlugin`], then exports it.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_role {
    ($role:ty) => {
        #[cfg(target_arch = "wasm32")]
        mod __wasmconnect_export {
            use super::*;
            use $crate::__guest::GuestPlugin as _;
            use $crate::__guest::exports::wasmconnect::plugin as ex;
            use $crate::__guest::wasmconnect::plugin::types as wit;

            type Role = $role;
            struct Component;

            impl ex::plugin::Guest for Component {
                fn metadata() -> wit::PluginMetadata {
                    Role::metadata()
                }
                fn config_definition() -> Vec<wit::ConfigKey> {
                    Role::config_definition()
                }
                fn validate(config: wit::Config) -> Vec<wit::ConfigIssue> {
                    Role::validate(config)
                }
            }
            impl ex::source_connector::Guest for Component {
                fn task_configs(c: wit::Config, n: u32) -> Result<Vec<wit::Config>, wit::PluginError> {
                    Role::task_configs(c, n)
                }
            }
            impl ex::sink_connector::Guest for Component {
                fn task_configs(c: wit::Config, n: u32) -> Result<Vec<wit::Config>, wit::PluginError> {
                    Role::task_configs(c, n)
                }
            }
            impl ex::source_task::Guest for Component {
                fn open(c: wit::Config, resume: Vec<wit::SourcePosition>) -> Result<(), wit::PluginError> {
                    Role::source_open(c, resume)
                }
                fn poll(max: u32) -> Result<wit::SourceBatch, wit::PluginError> {
                    Role::source_poll(max)
                }
                fn commit(p: Vec<wit::SourcePosition>) -> Result<(), wit::PluginError> {
                    Role::source_commit(p)
                }
                fn close() {
                    Role::close()
                }
            }
            impl ex::sink_task::Guest for Component {
                fn open(c: wit::Config) -> Result<(), wit::PluginError> {
                    Role::sink_open(c)
                }
                fn put(b: wit::RecordBatch) -> Result<Vec<wit::RecordFailure>, wit::PluginError> {
                    Role::sink_put(b)
                }
                fn flush() -> Result<(), wit::PluginError> {
                    Role::sink_flush()
                }
                fn close() {
                    Role::close()
                }
            }
            impl ex::transform::Guest for Component {
                fn configure(c: wit::Config) -> Result<(), wit::PluginError> {
                    Role::transform_configure(c)
                }
                fn apply(b: wit::RecordBatch) -> Result<wit::OutcomeBatch, wit::PluginError> {
                    Role::transform_apply(b)
                }
                fn close() {
                    Role::close()
                }
            }

            $crate::__guest::__export_sdk_guest!(Component with_types_in $crate::__guest);
        }
    };
}
