//! The embedded development cluster: librdkafka's in-process mock cluster, owned by its own
//! thread (the mock is not `Send`) for as long as the handle lives. The mock does not serve
//! the CreateTopics API, so topics are created through the mock's own call.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        done: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
}

/// Creates topics on a running embedded cluster; cheap to clone.
#[derive(Debug, Clone)]
pub struct EmbeddedTopics {
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl EmbeddedTopics {
    /// Creates `name` (existing topics are left as they are).
    ///
    /// # Errors
    /// When the cluster is gone or refuses.
    pub async fn create(&self, name: &str, partitions: i32) -> Result<(), String> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.commands
            .send(Command::CreateTopic {
                name: name.to_owned(),
                partitions: partitions.max(1),
                done,
            })
            .map_err(|_| "the embedded Kafka has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the embedded Kafka has stopped".to_owned())?
    }
}

/// A running mock cluster. Not durable: everything is gone when it stops.
#[derive(Debug)]
pub struct EmbeddedKafka {
    bootstrap: String,
    topics: Option<EmbeddedTopics>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedKafka {
    /// Starts a cluster of `brokers` brokers.
    ///
    /// # Errors
    /// When librdkafka cannot create the mock cluster.
    pub fn start(brokers: i32) -> Result<EmbeddedKafka, rdkafka::error::KafkaError> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (commands, command_rx) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || match MockCluster::new(brokers) {
                Ok(cluster) => {
                    let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                    // Ends when every EmbeddedTopics handle is dropped.
                    while let Ok(command) = command_rx.recv() {
                        match command {
                            Command::CreateTopic { name, partitions, done } => {
                                let result = match cluster.create_topic(&name, partitions, brokers.min(3)) {
                                    Ok(()) => Ok(()),
                                    Err(e)
                                        if e.rdkafka_error_code()
                                            == Some(rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists) =>
                                    {
                                        Ok(())
                                    }
                                    Err(e) => Err(e.to_string()),
                                };
                                let _ = done.send(result);
                            }
                        }
                    }
                    drop(cluster);
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                }
            })
            .map_err(|e| rdkafka::error::KafkaError::ClientCreation(e.to_string()))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|e| rdkafka::error::KafkaError::ClientCreation(e.to_string()))??;
        Ok(EmbeddedKafka {
            bootstrap,
            topics: Some(EmbeddedTopics { commands }),
            thread: Some(thread),
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// A handle that creates topics on this cluster.
    pub fn topics(&self) -> Option<EmbeddedTopics> {
        self.topics.clone()
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        drop(self.topics.take());
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
        // A task may still hold a topics handle; the thread ends when the last one goes.
    }
}
