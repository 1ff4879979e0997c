//! The error policy end to end, through the `wasmconnect` binary and the broker at
//! `KAFKA_BOOTSTRAP`: a poison-pill run with `errors.tolerance=all` (exactly the bad records
//! in the dead letter queue with Kafka's headers, every good one written, offsets committed
//! past both) and with `none` (the task fails at the first bad record and nothing after it
//! is committed); a sink that fails transiently; records a sink rejects; a source's DLQ;
//! and automatic task restart.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value as Json, json};
use wasmconnect_e2e::kafka::{
    bootstrap, committed, consume, consume_records, create_topic, produce, runtime,
};
use wasmconnect_e2e::{RestWorker, unique, wait_for, workspace};

const RECORDS: usize = 10_000;
const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";

/// Every hundredth record is not JSON.
fn poison_pill_records(n: usize) -> Vec<(String, Option<String>)> {
    (0..n)
        .map(|i| {
            let value = if i % 100 == 50 {
                format!("{{\"id\": {i}, broken")
            } else {
                json!({"id": i, "name": format!("user-{i}")}).to_string()
            };
            (i.to_string(), Some(value))
        })
        .collect()
}

/// A worker that also loads the test fixtures (the faulty sink).
fn worker() -> RestWorker {
    RestWorker::start(
        &bootstrap(),
        &format!(
            "plugin.path={},{}",
            workspace().join("target/plugins").display(),
            workspace().join("target/test-plugins").display()
        ),
    )
}

fn file_sink(topic: &str, out: &std::path::Path, extra: Json) -> Json {
    let mut config = json!({
        "connector.class": "FileStreamSink", "topics": topic, "file": out.display().to_string(),
        "key.converter": STRING_CONVERTER,
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "batch.max.records": "500",
    });
    for (k, v) in extra.as_object().expect("an object") {
        config[k] = v.clone();
    }
    config
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn poison_pills_go_to_the_dead_letter_queue_with_kafkas_headers() {
    let rt = runtime();
    let worker = worker();
    let topic = unique("pills");
    let dlq = unique("pills-dlq");
    rt.block_on(create_topic(&topic));
    let records = poison_pill_records(RECORDS);
    rt.block_on(produce(&topic, &records));
    let out = worker.dir.path().join("out.jsonl");
    let name = unique("tolerant");
    worker.create(
        &name,
        file_sink(
            &topic,
            &out,
            json!({
                "errors.tolerance": "all",
                "errors.log.enable": "true",
                "errors.deadletterqueue.topic.name": dlq,
                "errors.deadletterqueue.topic.replication.factor": "1",
                "errors.deadletterqueue.context.headers.enable": "true",
            }),
        ),
    );
    wait_for(
        "offsets committed past every record, good and bad",
        Duration::from_secs(120),
        || committed(&format!("connect-{name}"), &topic) == RECORDS as i64,
        || {
            format!(
                "committed {} {}",
                committed(&format!("connect-{name}"), &topic),
                worker.status(&name)
            )
        },
    );
    let written: BTreeSet<i64> = lines(&out)
        .iter()
        .map(|l| {
            serde_json::from_str::<Json>(l).expect("JSON")["id"]
                .as_i64()
                .expect("id")
        })
        .collect();
    let good: BTreeSet<i64> = (0..RECORDS as i64).filter(|i| i % 100 != 50).collect();
    assert_eq!(
        written, good,
        "every good record, and only those, in the target"
    );

    let dead = consume_records(&dlq, RECORDS, Duration::from_secs(30));
    assert_eq!(
        dead.len(),
        RECORDS / 100,
        "exactly the bad records in the DLQ"
    );
    for d in &dead {
        let id: usize = d
            .key
            .as_deref()
            .expect("the original key")
            .parse()
            .expect("key");
        assert_eq!(d.value, records[id].1, "the original value bytes");
        assert_eq!(d.header("__connect.errors.topic"), Some(topic.as_str()));
        assert_eq!(d.header("__connect.errors.partition"), Some("0"));
        assert_eq!(
            d.header("__connect.errors.offset"),
            Some(id.to_string().as_str())
        );
        assert_eq!(
            d.header("__connect.errors.connector.name"),
            Some(name.as_str())
        );
        assert_eq!(d.header("__connect.errors.task.id"), Some("0"));
        assert_eq!(d.header("__connect.errors.stage"), Some("VALUE_CONVERTER"));
        assert_eq!(
            d.header("__connect.errors.class.name"),
            Some("org.apache.kafka.connect.json.JsonConverter")
        );
        assert_eq!(
            d.header("__connect.errors.exception.class.name"),
            Some("org.apache.kafka.connect.errors.DataException")
        );
        assert!(
            d.header("__connect.errors.exception.message")
                .is_some_and(|m| !m.is_empty())
        );
        assert!(d.header("__connect.errors.exception.stacktrace").is_some());
    }
    assert_eq!(worker.task_state(&name).0, "RUNNING");
}

#[test]
fn without_tolerance_the_first_poison_pill_fails_the_task_and_nothing_after_it_is_committed() {
    let rt = runtime();
    let worker = worker();
    let topic = unique("pills-strict");
    rt.block_on(create_topic(&topic));
    rt.block_on(produce(&topic, &poison_pill_records(1000)));
    let out = worker.dir.path().join("out.jsonl");
    let name = unique("strict");
    worker.create(&name, file_sink(&topic, &out, json!({})));
    let trace = worker.wait_task_failed(&name);
    assert!(
        trace.contains("offset 50") && trace.contains("VALUE_CONVERTER"),
        "{trace}"
    );
    assert!(trace.contains("Tolerance exceeded"), "{trace}");
    // The worker commits every 500 ms; give it the chance to commit wrongly.
    std::thread::sleep(Duration::from_secs(2));
    let at = committed(&format!("connect-{name}"), &topic);
    assert!(
        at <= 50,
        "nothing at or after the bad record is committed (committed {at})"
    );
    assert!(
        lines(&out).len() <= 50,
        "nothing after the bad record was written"
    );
}

#[test]
fn a_transiently_failing_sink_recovers_through_retries_without_loss_or_duplicates() {
    let rt = runtime();
    let worker = worker();
    let topic = unique("flaky");
    rt.block_on(create_topic(&topic));
    let n = 2000;
    let records: Vec<(String, Option<String>)> = (0..n)
        .map(|i| (i.to_string(), Some(json!({"id": i}).to_string())))
        .collect();
    rt.block_on(produce(&topic, &records));
    let probe = worker.dir.path().join("accepted.txt");
    let name = unique("flaky");
    worker.create(
        &name,
        json!({
            "connector.class": "TestFaultsSink", "topics": topic, "fault": "flaky",
            "probe.file": probe.display().to_string(), "batch.max.records": "500",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "key.converter": STRING_CONVERTER,
            "errors.retry.timeout": "-1", "errors.retry.delay.max.ms": "1000",
        }),
    );
    wait_for(
        "every record accepted after the retries",
        Duration::from_secs(120),
        || lines(&probe).len() >= n,
        || format!("{} accepted; {}", lines(&probe).len(), worker.status(&name)),
    );
    let accepted = lines(&probe);
    let distinct: BTreeSet<&String> = accepted.iter().collect();
    assert_eq!(distinct.len(), n, "every record written");
    assert_eq!(
        accepted.len(),
        n,
        "none written twice (the worker did not restart)"
    );
    assert_eq!(worker.task_state(&name).0, "RUNNING");
}

#[test]
fn records_a_sink_rejects_go_to_the_dlq_and_the_rest_of_the_batch_is_written() {
    let rt = runtime();
    let worker = worker();
    let topic = unique("reject");
    let dlq = unique("reject-dlq");
    rt.block_on(create_topic(&topic));
    let records: Vec<(String, Option<String>)> = (0..300)
        .map(|i| {
            (
                i.to_string(),
                Some(json!({"id": i, "reject": i % 10 == 0}).to_string()),
            )
        })
        .collect();
    rt.block_on(produce(&topic, &records));
    let probe = worker.dir.path().join("accepted.txt");
    let name = unique("reject");
    worker.create(
        &name,
        json!({
            "connector.class": "TestFaultsSink", "topics": topic, "fault": "reject",
            "probe.file": probe.display().to_string(),
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "key.converter": STRING_CONVERTER,
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": dlq,
            "errors.deadletterqueue.topic.replication.factor": "1",
            "errors.deadletterqueue.context.headers.enable": "true",
        }),
    );
    let dead = consume_records(&dlq, 30, Duration::from_secs(60));
    assert_eq!(dead.len(), 30, "the rejected tenth");
    for d in &dead {
        assert_eq!(d.header("__connect.errors.stage"), Some("TASK_PUT"));
        assert_eq!(
            d.header("__connect.errors.class.name"),
            Some("TestFaultsSink")
        );
        assert_eq!(
            d.header("__connect.errors.exception.message"),
            Some("test-faults: rejected on purpose")
        );
        let id: i64 = d.key.as_deref().expect("key").parse().expect("id");
        assert_eq!(id % 10, 0);
    }
    wait_for(
        "the accepted records",
        Duration::from_secs(30),
        || lines(&probe).len() >= 270,
        || format!("{} accepted", lines(&probe).len()),
    );
    assert_eq!(lines(&probe).len(), 270);
}

#[test]
fn a_source_record_that_fails_a_transform_goes_to_the_sources_dlq() {
    let worker = worker();
    let topic = unique("gen");
    let dlq = unique("gen-dlq");
    let name = unique("gen");
    worker.create(
        &name,
        json!({
            "connector.class": "DatagenConnector", "kafka.topic": topic,
            "iterations": "30", "max.interval": "0",
            // Two aliases of one plugin run in one call: the failure still names its class.
            "transforms": "insert,cast",
            "transforms.insert.type": "org.apache.kafka.connect.transforms.InsertField$Value",
            "transforms.insert.static.field": "origin",
            "transforms.insert.static.value": "test",
            "transforms.cast.type": "org.apache.kafka.connect.transforms.Cast$Value",
            "transforms.cast.spec": "userid:int32",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": dlq,
            "errors.deadletterqueue.topic.replication.factor": "1",
            "errors.deadletterqueue.context.headers.enable": "true",
        }),
    );
    let dead = consume_records(&dlq, 30, Duration::from_secs(60));
    assert_eq!(dead.len(), 30, "every record failed the cast");
    for d in &dead {
        assert_eq!(d.header("__connect.errors.stage"), Some("TRANSFORMATION"));
        assert_eq!(
            d.header("__connect.errors.class.name"),
            Some("org.apache.kafka.connect.transforms.Cast$Value")
        );
        assert!(
            d.header("__connect.errors.source.partition")
                .is_some_and(|p| p.contains("task.id"))
        );
        let value: Json = serde_json::from_str(d.value.as_deref().expect("value")).expect("JSON");
        assert!(
            value["payload"]["userid"].is_string(),
            "the record as the source gave it: {value}"
        );
    }
    assert!(
        consume(&topic, 1, Duration::from_secs(3)).is_empty(),
        "nothing reached the topic"
    );
    // The skipped records' positions are stored: a restart would not repeat them.
    wait_for(
        "the source offsets",
        Duration::from_secs(30),
        || {
            let (_, body) = wasmconnect_e2e::rest(
                worker.port,
                "GET",
                &format!("/connectors/{name}/offsets"),
                None,
            );
            body.contains("\"current.iteration\":29") || body.contains("\"current.iteration\":30")
        },
        || {
            wasmconnect_e2e::rest(
                worker.port,
                "GET",
                &format!("/connectors/{name}/offsets"),
                None,
            )
            .1
        },
    );
}

#[test]
fn a_failed_task_restarts_automatically_when_the_connector_opts_in() {
    let rt = runtime();
    let worker = worker();
    let topic = unique("trap");
    rt.block_on(create_topic(&topic));
    rt.block_on(produce(&topic, &[("k".into(), Some("{}".into()))]));
    let name = unique("restart");
    worker.create(
        &name,
        json!({
            "connector.class": "TestFaultsSink", "topics": topic, "fault": "trap",
            "key.converter": STRING_CONVERTER,
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "errors.task.restart.enable": "true",
            "errors.task.restart.max.attempts": "2",
            "errors.task.restart.backoff.ms": "200",
        }),
    );
    wait_for(
        "two restarts, then FAILED",
        Duration::from_secs(90),
        || {
            let task = &worker.status(&name)["tasks"][0];
            task["state"] == "FAILED" && task["restarts"] == 2
        },
        || format!("{}", worker.status(&name)),
    );
    let (_, trace) = worker.task_state(&name);
    assert!(trace.contains("deliberate trap"), "{trace}");
}
