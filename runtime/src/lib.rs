//! wasmconnect worker.
pub mod config;
pub mod convert;
pub mod plugin;
