//! The host side of the WIT contract (`wit/plugin`): one world per plugin role, sharing the
//! `types` and `log` interfaces.

pub mod source {
    wasmtime::component::bindgen!({
        world: "source-plugin",
        path: "../wit/plugin",
        exports: { default: async },
    });
}

pub mod sink {
    wasmtime::component::bindgen!({
        world: "sink-plugin",
        path: "../wit/plugin",
        exports: { default: async },
        with: {
            "wasmconnect:plugin/types": super::source::wasmconnect::plugin::types,
            "wasmconnect:plugin/log": super::source::wasmconnect::plugin::log,
        },
    });
}

pub mod transform {
    wasmtime::component::bindgen!({
        world: "transform-plugin",
        path: "../wit/plugin",
        exports: { default: async },
        with: {
            "wasmconnect:plugin/types": super::source::wasmconnect::plugin::types,
            "wasmconnect:plugin/log": super::source::wasmconnect::plugin::log,
        },
    });
}

pub use source::wasmconnect::plugin::log;
pub use source::wasmconnect::plugin::types;

/// Export names that tell which role a component plays.
pub const SOURCE_TASK_EXPORT: &str = "wasmconnect:plugin/source-task@0.1.0";
pub const SINK_TASK_EXPORT: &str = "wasmconnect:plugin/sink-task@0.1.0";
pub const TRANSFORM_EXPORT: &str = "wasmconnect:plugin/transform@0.1.0";
