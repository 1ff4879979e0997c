//! wasmconnect worker.
pub mod config;
pub mod convert;
pub mod kafka;
pub mod plugin;
