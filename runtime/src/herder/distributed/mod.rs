//! Distributed mode: workers with the same `group.id` form one cluster through Kafka's group
//! coordinator, and keep configs, statuses and source offsets in Connect-format topics.

pub mod assign;
pub mod group;
mod herder;
pub mod log;
pub mod protocol;
pub mod store;

pub use herder::{DistributedHerder, log_spec};
pub use log::LogError;
