//! wasmconnect worker.
pub mod plugin;
