//! Worker and connector configuration: `.properties` files, config providers, and the typed
//! worker config.
pub mod connector;
pub mod properties;
pub mod providers;
pub mod worker;

pub use worker::{KafkaTarget, WorkerConfig, WorkerConfigError};
