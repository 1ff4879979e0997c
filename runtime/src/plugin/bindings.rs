//! The host side of the WIT contract (`wit/plugin`): one world per plugin role, sharing the
//! `types` and `log` interfaces.

/// The host capabilities: async host functions, resources kept in the task's table.
pub mod capabilities {
    wasmtime::component::bindgen!({
        world: "capabilities",
        path: "../wit/plugin",
        imports: { default: async | trappable },
        with: {
            "wasmconnect:plugin/sql.connection": crate::plugin::sql::SqlConnection,
            "wasmconnect:plugin/sql.cursor": crate::plugin::sql::SqlCursor,
            "wasmconnect:plugin/sql.pending-execute": crate::plugin::sql::SqlPending,
            "wasmconnect:plugin/redis.connection": crate::plugin::redis::RedisConnection,
            "wasmconnect:plugin/redis.pending": crate::plugin::redis::RedisPending,
        },
    });
}

pub mod source {
    wasmtime::component::bindgen!({
        world: "source-plugin",
        path: "../wit/plugin",
        exports: { default: async },
        with: {
            "wasmconnect:plugin/sql": super::capabilities::wasmconnect::plugin::sql,
            "wasmconnect:plugin/redis": super::capabilities::wasmconnect::plugin::redis,
        },
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
            "wasmconnect:plugin/sql": super::capabilities::wasmconnect::plugin::sql,
            "wasmconnect:plugin/redis": super::capabilities::wasmconnect::plugin::redis,
            "wasmconnect:plugin/errant-records": super::capabilities::wasmconnect::plugin::errant_records,
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

pub use capabilities::wasmconnect::plugin::{errant_records, redis, sql};
pub use source::wasmconnect::plugin::log;
pub use source::wasmconnect::plugin::types;

/// Export names that tell which role a component plays.
pub const SOURCE_TASK_EXPORT: &str = "wasmconnect:plugin/source-task@0.1.0";
pub const SINK_TASK_EXPORT: &str = "wasmconnect:plugin/sink-task@0.1.0";
pub const TRANSFORM_EXPORT: &str = "wasmconnect:plugin/transform@0.1.0";
/// Import names of the host capabilities.
pub const SQL_IMPORT: &str = "wasmconnect:plugin/sql@0.1.0";
pub const REDIS_IMPORT: &str = "wasmconnect:plugin/redis@0.1.0";
