//! Assembling a worker: Kafka (embedded or not), the plugin registry, the herder and the
//! REST server, with one cancellation token for a structured shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{KafkaTarget, WorkerConfig};
use crate::herder::offsets::{OffsetError, OffsetStore};
use crate::herder::{Herder, HerderError, TargetState};
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

/// A running standalone worker.
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
    /// Starts everything and begins serving the REST API.
    ///
    /// # Errors
    /// When Kafka, the offset file, the plugins or the listener cannot be set up.
    pub async fn start(config: WorkerConfig) -> Result<Worker, StartError> {
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
        let offsets = OffsetStore::open(config.offset_file.clone())?;
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
        let worker = Arc::new(WorkerShared {
            config,
            bootstrap,
            offsets,
            topics,
            plugins: registry.clone(),
        });
        let herder = Arc::new(Herder::new(worker, registry, cancel.clone()));
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
        self.cancel.cancel();
        self.herder.shutdown().await;
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "REST server stopped with an error."),
            Err(e) => tracing::warn!(error = %e, "REST server task failed."),
        }
        drop(self.embedded);
        tracing::info!("Worker stopped.");
    }
}
