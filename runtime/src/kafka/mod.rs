//! Kafka clients: construction from worker and connector settings, topic creation, and the
//! embedded development cluster.

mod assign;
mod embedded;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

pub use assign::StartAtCommitted;
pub use embedded::{EmbeddedKafka, EmbeddedTopics};

/// A Kafka operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("cannot create topic {topic}: {message}")]
    CreateTopic { topic: String, message: String },
}

/// Java client settings librdkafka does not have (it refuses unknown keys). The worker
/// reads `max.poll.records` itself (a sink's batch size); the rest have no meaning here.
const JAVA_ONLY: &[&str] = &[
    "max.poll.records",
    "key.serializer",
    "value.serializer",
    "key.deserializer",
    "value.deserializer",
    "interceptor.classes",
    "metric.reporters",
    "default.api.timeout.ms",
    "retry.backoff.max.ms",
];

/// Java client keys librdkafka knows under another name, with the same meaning and unit.
const JAVA_RENAMED: &[(&str, &str)] = &[("fetch.max.wait.ms", "fetch.wait.max.ms")];

/// A librdkafka client config: `bootstrap.servers`, the given defaults, then each settings
/// layer in order (worker `producer.*`, then connector `producer.override.*`, say). Java
/// client keys librdkafka lacks (`JAVA_ONLY`) are left out with a debug log; those it
/// names differently (`JAVA_RENAMED`) are passed under its name.
pub fn client_config(
    bootstrap: &str,
    defaults: &[(&str, &str)],
    layers: &[&BTreeMap<String, String>],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    for layer in layers {
        for (k, v) in layer.iter() {
            if JAVA_ONLY.contains(&k.as_str()) {
                tracing::debug!(key = %k, "Not passing a Java client setting to librdkafka.");
                continue;
            }
            let key = JAVA_RENAMED
                .iter()
                .find(|(java, _)| java == k)
                .map_or(k.as_str(), |(_, librdkafka)| librdkafka);
            config.set(key, v);
        }
    }
    config
}

/// How a missing topic is created (KIP-158's `topic.creation.*` for the matching group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub partitions: i32,
    pub replication_factor: i32,
    pub configs: BTreeMap<String, String>,
}

/// Creates topics: through the Admin API, or through the embedded cluster's own call.
#[derive(Debug, Clone)]
pub enum TopicCreator {
    Admin(std::sync::Arc<AdminClient<DefaultClientContext>>),
    Embedded(EmbeddedTopics),
}

impl TopicCreator {
    /// Creates `topic` if it does not exist.
    ///
    /// # Errors
    /// When the broker refuses to create it (other than because it exists).
    pub async fn ensure(&self, topic: &str, spec: &TopicSpec) -> Result<(), KafkaError> {
        match self {
            TopicCreator::Admin(admin) => {
                if topic_exists(admin.clone(), topic).await {
                    return Ok(());
                }
                ensure_topic(admin, topic, spec).await
            }
            TopicCreator::Embedded(mock) => {
                mock.create(topic, spec.partitions)
                    .await
                    .map_err(|message| KafkaError::CreateTopic {
                        topic: topic.to_owned(),
                        message,
                    })
            }
        }
    }
}

/// Whether the broker knows `topic` (with at least one partition).
async fn topic_exists(
    admin: std::sync::Arc<AdminClient<DefaultClientContext>>,
    topic: &str,
) -> bool {
    let name = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        admin
            .inner()
            .fetch_metadata(Some(&name), Duration::from_secs(10))
            .map(|m| {
                m.topics()
                    .iter()
                    .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Creates `topic` if it does not exist.
///
/// # Errors
/// When the broker refuses to create it (other than because it exists).
pub async fn ensure_topic(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    spec: &TopicSpec,
) -> Result<(), KafkaError> {
    let replication = if spec.replication_factor < 0 {
        TopicReplication::Fixed(-1)
    } else {
        TopicReplication::Fixed(spec.replication_factor)
    };
    let mut new_topic = NewTopic::new(topic, spec.partitions, replication);
    for (k, v) in &spec.configs {
        new_topic = new_topic.set(k, v);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics([&new_topic], &options).await?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic = %topic, partitions = spec.partitions, "Created topic."),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::CreateTopic {
                    topic: name,
                    message: code.to_string(),
                });
            }
        }
    }
    Ok(())
}
