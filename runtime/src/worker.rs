//! Assembling a worker: Kafka (embedded or not), the plugin registry, the herder and the
//! REST server, with one cancellation token for a structured shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::distributed::DistributedConfig;
use crate::config::{KafkaTarget, WorkerConfig};
use crate::herder::distributed::LogError;
use crate::herder::distributed::log_spec;
use crate::herder::offsets::{OffsetError, OffsetStore};
use crate::herder::{DistributedHerder, Herder, HerderError, StandaloneHerder, TargetState};
use crate::kafka::{EmbeddedKafka, TopicCreator, client_config};
use crate::plugin::{PluginEngine, PluginError, PluginRegistry};
use crate::rest::{self, AppState};
use crate::task::WorkerShared;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot set up Kafka clients: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error(transparent)]
    Config(#[from] crate::config::WorkerConfigError),
    #[error("cannot set up the internal topics: {0}")]
    InternalTopics(#[from] LogError),
    #[error(transparent)]
    Plugins(#[from] PluginError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connector {name}: {source}")]
    Connector {
        name: String,
        #[source]
        source: HerderError,
    },
}

/// A running worker, standalone or distributed.
#[derive(Debug)]
pub struct Worker {
    herder: Arc<Herder>,
    cancel: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    addr: SocketAddr,
    embedded: Option<EmbeddedKafka>,
}

fn fetch_cluster_id(bootstrap: &str) -> Option<String> {
    let consumer: BaseConsumer = client_config(bootstrap, &[], &[]).create().ok()?;
    consumer.client().fetch_cluster_id(Duration::from_secs(5))
}

impl Worker {
    /// Starts a standalone worker and begins serving the REST API.
    ///
    /// # Errors
    /// When Kafka, the offset file, the plugins or the listener cannot be set up.
    pub async fn start(config: WorkerConfig) -> Result<Worker, StartError> {
        Worker::start_mode(config, false).await
    }

    /// Starts a worker of the group `group.id` names (`connect-distributed`).
    ///
    /// # Errors
    /// When a distributed setting is missing or bad, or Kafka, the internal topics, the
    /// plugins or the listener cannot be set up.
    pub async fn start_distributed(config: WorkerConfig) -> Result<Worker, StartError> {
        Worker::start_mode(config, true).await
    }

    async fn start_mode(config: WorkerConfig, distributed: bool) -> Result<Worker, StartError> {
        let distributed = if distributed {
            Some(DistributedConfig::from_map(&config.raw)?)
        } else {
            None
        };
        let started = Instant::now();
        let embedded = match &config.kafka {
            KafkaTarget::Embedded => {
                let kafka = EmbeddedKafka::start(1)?;
                tracing::warn!(
                    bootstrap = %kafka.bootstrap_servers(),
                    "Started the embedded Kafka (librdkafka mock cluster). It is for development only: nothing in it is durable."
                );
                Some(kafka)
            }
            KafkaTarget::Servers(_) => None,
        };
        let bootstrap = match (&config.kafka, &embedded) {
            (KafkaTarget::Servers(s), _) => s.clone(),
            (_, Some(k)) => k.bootstrap_servers().to_owned(),
            (KafkaTarget::Embedded, None) => unreachable!("embedded Kafka was started above"),
        };
        let engine = Arc::new(
            PluginEngine::new(config.plugin_cache_dir.clone())?
                .with_allowed_hosts(config.plugin_allowed_hosts.clone()),
        );
        let registry = Arc::new(PluginRegistry::scan(engine, &config.plugin_path).await);
        if registry.all().is_empty() {
            tracing::warn!(plugin_path = ?config.plugin_path, "No plugins found; run `make build` or set plugin.path.");
        }
        let listen = format!("{}:{}", config.listen.0, config.listen.1);
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|source| StartError::Listen {
                addr: listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Listen {
            addr: listen,
            source,
        })?;
        let kafka_cluster_id = {
            let b = bootstrap.clone();
            tokio::task::spawn_blocking(move || fetch_cluster_id(&b))
                .await
                .ok()
                .flatten()
        };
        if kafka_cluster_id.is_none() {
            tracing::warn!(bootstrap = %bootstrap, "Cannot reach Kafka to read its cluster id; tasks will retry.");
        }
        let cancel = CancellationToken::new();
        let topics = match embedded.as_ref().and_then(EmbeddedKafka::topics) {
            Some(mock) => TopicCreator::Embedded(mock),
            None => {
                let admin: AdminClient<DefaultClientContext> =
                    client_config(&bootstrap, &[], &[&config.prefixed("admin.")])
                        .create()
                        .map_err(StartError::Kafka)?;
                TopicCreator::Admin(Arc::new(admin))
            }
        };
        let offsets = match &distributed {
            None => OffsetStore::open(config.offset_file.clone())?,
            Some(d) => {
                let spec = log_spec(
                    "offset.storage.topic",
                    &d.offset_topic,
                    format!("{}-offsets", d.group_id),
                );
                OffsetStore::on_topic(
                    &bootstrap,
                    &[&config.prefixed("producer.")],
                    &topics,
                    &spec,
                    Duration::from_secs(30),
                )
                .await?
            }
        };
        let worker = Arc::new(WorkerShared {
            config,
            bootstrap,
            offsets,
            topics: topics.clone(),
            plugins: registry.clone(),
        });
        let herder = Arc::new(match distributed {
            None => Herder::Standalone(StandaloneHerder::new(worker, registry, cancel.clone())),
            Some(d) => Herder::Distributed(
                DistributedHerder::start(worker, registry, d, &topics, cancel.clone()).await?,
            ),
        });
        let app = rest::app(AppState {
            herder: herder.clone(),
            kafka_cluster_id,
        });
        let shutdown = cancel.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        });
        tracing::info!(rest = %addr, elapsed_ms = started.elapsed().as_millis() as u64, "Worker started.");
        Ok(Worker {
            herder,
            cancel,
            server,
            addr,
            embedded,
        })
    }

    /// Creates a connector from a config given at start.
    ///
    /// # Errors
    /// When the config is invalid or the connector exists.
    pub async fn add_connector(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
        initial: TargetState,
    ) -> Result<(), StartError> {
        self.herder
            .create(name, config, initial)
            .await
            .map(drop)
            .map_err(|source| StartError::Connector {
                name: name.to_owned(),
                source,
            })
    }

    pub fn rest_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn herder(&self) -> &Arc<Herder> {
        &self.herder
    }

    /// Stops serving, stops every task (each flushes and commits), then stops Kafka if
    /// it is embedded.
    pub async fn shutdown(self) {
        tracing::info!("Worker shutting down.");
        self.herder.shutdown().await;
        self.cancel.cancel();
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "REST server stopped with an error."),
            Err(e) => tracing::warn!(error = %e, "REST server task failed."),
        }
        drop(self.embedded);
        tracing::info!("Worker stopped.");
    }
}
