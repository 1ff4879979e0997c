//! A sink task's consumer (`wasmconnect::kafka::StartAtCommitted`) against the real broker
//! at `KAFKA_BOOTSTRAP`: given partitions by its group, it starts each at the group's
//! committed offset, and one without at the offset `auto.offset.reset` names, which it
//! assigns itself rather than leave librdkafka to apply after its 100 ms backoff.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use wasmconnect::kafka::{StartAtCommitted, client_config};
use wasmconnect_e2e::{kafka, unique};

type SinkConsumer = StreamConsumer<StartAtCommitted>;

/// Writes `count` records to each of the topic's two partitions, one per batch (Tansu
/// answers a fetch from inside a batch with the batches after it only).
async fn produce(topic: &str, count: usize) {
    let producer: FutureProducer = client_config(
        &kafka::bootstrap(),
        &[("batch.num.messages", "1"), ("linger.ms", "0")],
        &[],
    )
    .create()
    .expect("producer");
    for partition in 0..2 {
        for i in 0..count {
            let payload = format!("p{partition}-{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .payload(&payload)
                        .partition(partition),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    }
}

fn sink_consumer(group: &str, reset: &str) -> SinkConsumer {
    let config = client_config(
        &kafka::bootstrap(),
        &[
            ("group.id", group),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", reset),
            ("fetch.wait.max.ms", "10"),
        ],
        &[],
    );
    config
        .create_with_context(StartAtCommitted::for_config(&config))
        .expect("consumer")
}

/// Reads until `wanted` records have come, returning each partition's offsets in order.
async fn read(consumer: &SinkConsumer, wanted: usize) -> BTreeMap<i32, Vec<i64>> {
    let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for _ in 0..wanted {
        let m = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("no record in 20 s; seen so far {seen:?}"))
            .expect("a record");
        seen.entry(m.partition()).or_default().push(m.offset());
    }
    seen
}

/// The offsets `consumer` was assigned its partitions with, by partition.
fn assigned(consumer: &SinkConsumer) -> BTreeMap<i32, Offset> {
    let assignment = consumer.assignment().expect("assignment");
    assignment
        .elements()
        .iter()
        .map(|p| (p.partition(), p.offset()))
        .collect()
}

#[tokio::test]
async fn a_partition_starts_at_its_committed_offset_and_one_without_at_the_reset() {
    let topic = unique("assign_committed");
    kafka::create_topic_with(&topic, 2).await;
    produce(&topic, 10).await;
    // The group committed partition 0 up to offset 4, and nothing of partition 1.
    let group = unique("assign_group");
    let committer: BaseConsumer = client_config(&kafka::bootstrap(), &[("group.id", &group)], &[])
        .create()
        .expect("committer");
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(&topic, 0, Offset::Offset(4))
        .expect("partition");
    committer
        .commit(&commit, CommitMode::Sync)
        .expect("commit offset 4");
    drop(committer);

    let consumer = sink_consumer(&group, "earliest");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let seen = read(&consumer, 6 + 10).await;
    assert_eq!(
        seen[&0],
        (4..10).collect::<Vec<_>>(),
        "partition 0 from its commit"
    );
    assert_eq!(
        seen[&1],
        (0..10).collect::<Vec<_>>(),
        "partition 1 from the start"
    );
    // Assigned with explicit start offsets, so librdkafka looked nothing up itself (left to
    // itself it assigns `Offset::Stored`, looks the commits up, and waits 100 ms before it
    // resets a partition it finds none for).
    assert_eq!(
        assigned(&consumer),
        BTreeMap::from([(0, Offset::Offset(4)), (1, Offset::Beginning)])
    );
    // Gone before its topic: librdkafka 2.12 crashes on Tansu's metadata for a deleted
    // topic that a live consumer subscribes to.
    drop(consumer);
    kafka::delete_topics(&[&topic]).await;
}

#[tokio::test]
async fn latest_starts_a_partition_without_a_commit_at_its_end() {
    let topic = unique("assign_latest");
    kafka::create_topic_with(&topic, 2).await;
    produce(&topic, 3).await;
    let consumer = sink_consumer(&unique("assign_group"), "latest");
    consumer.subscribe(&[&topic]).expect("subscribe");
    // Polling serves the rebalance. Until the partitions are assigned, and for half a
    // second after (the end offsets' lookup takes a round trip), no record comes: the
    // three already written are before the end.
    let started = Instant::now();
    while consumer.assignment().expect("assignment").count() < 2 {
        let polled = tokio::time::timeout(Duration::from_millis(50), consumer.recv()).await;
        assert!(polled.is_err(), "a record before the end: {polled:?}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no assignment in 20 s"
        );
    }
    let polled = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await;
    assert!(polled.is_err(), "a record before the end: {polled:?}");
    assert_eq!(
        assigned(&consumer),
        BTreeMap::from([(0, Offset::End), (1, Offset::End)])
    );
    produce(&topic, 2).await;
    let seen = read(&consumer, 4).await;
    assert_eq!(
        seen[&0],
        vec![3, 4],
        "partition 0: only the records after its end"
    );
    assert_eq!(
        seen[&1],
        vec![3, 4],
        "partition 1: only the records after its end"
    );
    // Gone before its topic: librdkafka 2.12 crashes on Tansu's metadata for a deleted
    // topic that a live consumer subscribes to.
    drop(consumer);
    kafka::delete_topics(&[&topic]).await;
}
