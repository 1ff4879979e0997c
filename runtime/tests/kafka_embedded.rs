//! The embedded cluster supports what the worker needs: topic creation, idempotent produce,
//! group consumption with manual commits.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use wasmconnect::kafka::{EmbeddedKafka, client_config};

#[tokio::test]
async fn embedded_cluster_creates_produces_consumes_and_commits() {
    let kafka = EmbeddedKafka::start(1).expect("mock cluster");
    let topics = kafka.topics().expect("topics handle");
    topics.create("t1", 2).await.expect("create");
    topics
        .create("t1", 2)
        .await
        .expect("creating twice is fine");
    let bootstrap = kafka.bootstrap_servers();
    let producer: FutureProducer = client_config(bootstrap, &[("enable.idempotence", "true")], &[])
        .create()
        .expect("producer");
    for i in 0..10 {
        let payload = format!("m{i}");
        producer
            .send(
                FutureRecord::<(), _>::to("t1")
                    .payload(&payload)
                    .partition(i % 2),
                Duration::from_secs(5),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("acked");
    }
    let consumer: StreamConsumer = client_config(
        bootstrap,
        &[
            ("group.id", "g1"),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
        ],
        &[],
    )
    .create()
    .expect("consumer");
    consumer.subscribe(&["t1"]).expect("subscribe");
    let mut seen = 0;
    while seen < 10 {
        let m = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("in time")
            .expect("message");
        assert!(m.payload().is_some());
        seen += 1;
        consumer
            .commit_message(&m, CommitMode::Sync)
            .expect("commit");
    }
}
