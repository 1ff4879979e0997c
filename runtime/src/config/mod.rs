//! Worker and connector configuration: `.properties` files, config providers, and the typed
//! worker config.
pub mod connector;
pub mod distributed;
pub mod errors;
pub mod properties;
pub mod providers;
pub mod transforms;
pub mod worker;

pub use worker::{KafkaTarget, WorkerConfig, WorkerConfigError};

/// A comma-separated list value (Kafka's `ConfigDef.Type.LIST`): trimmed, empty items
/// dropped; absent is empty.
pub fn list(config: &std::collections::BTreeMap<String, String>, key: &str) -> Vec<String> {
    config
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A config map from pairs, for tests.
#[cfg(test)]
pub(crate) fn map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
