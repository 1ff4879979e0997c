//! Transform chains in real connectors, through the `wasmconnect` binary and the broker at
//! `KAFKA_BOOTSTRAP`: a source chain (a user transform built with the SDK, InsertField$Value,
//! RegexRouter) and a sink chain with a predicate (Filter on RecordIsTombstone,
//! MaskField$Value), in Kafka's config syntax.

use std::time::Duration;

use serde_json::{Value as Json, json};
use wasmconnect_e2e::kafka::{bootstrap, committed, consume, create_topic, produce, runtime};
use wasmconnect_e2e::{RestWorker, unique, wait_for, workspace};

const SCHEMALESS: [(&str, &str); 3] = [
    (
        "key.converter",
        "org.apache.kafka.connect.storage.StringConverter",
    ),
    (
        "value.converter",
        "org.apache.kafka.connect.json.JsonConverter",
    ),
    ("value.converter.schemas.enable", "false"),
];

fn with(mut config: Json, extra: &[(&str, &str)]) -> Json {
    for (k, v) in extra {
        config[*k] = json!(v);
    }
    config
}

#[test]
fn a_source_chain_inserts_a_field_and_routes_the_topic() {
    // The test fixtures too: a user transform built with the SDK joins the same chain.
    let worker = RestWorker::start(
        &bootstrap(),
        &format!(
            "plugin.path={},{}",
            workspace().join("target/plugins").display(),
            workspace().join("target/test-plugins").display()
        ),
    );
    let topic = unique("users");
    let config = with(
        json!({
            "connector.class": "io.confluent.kafka.connect.datagen.DatagenConnector",
            "kafka.topic": topic, "iterations": "20", "max.interval": "0",
            "transforms": "user,insert,route",
            "transforms.user.type": "Identity",
            "transforms.insert.type": "org.apache.kafka.connect.transforms.InsertField$Value",
            "transforms.insert.static.field": "origin",
            "transforms.insert.static.value": "wasmconnect",
            "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
            "transforms.route.regex": "(.*)",
            "transforms.route.replacement": "$1-routed",
        }),
        &SCHEMALESS,
    );
    worker.create(&unique("gen"), config);
    let routed = consume(&format!("{topic}-routed"), 20, Duration::from_secs(60));
    assert_eq!(routed.len(), 20, "every record reached the routed topic");
    for (_, value) in routed {
        let value: Json = serde_json::from_str(&value.expect("a value")).expect("JSON");
        assert_eq!(value["origin"], "wasmconnect", "{value}");
        assert!(
            value["userid"].is_string(),
            "the other fields are kept: {value}"
        );
    }
}

#[test]
fn a_sink_chain_filters_tombstones_by_predicate_and_masks_a_field() {
    let rt = runtime();
    let worker = RestWorker::start(&bootstrap(), "");
    let topic = unique("emails");
    rt.block_on(create_topic(&topic));
    let records: Vec<(String, Option<String>)> = (0..15)
        .map(|i| {
            let value = (i % 3 != 2)
                .then(|| json!({"id": i, "email": format!("u{i}@example.com")}).to_string());
            (i.to_string(), value)
        })
        .collect();
    rt.block_on(produce(&topic, &records));
    let out = worker.dir.path().join("out.jsonl");
    let name = unique("masked");
    let config = with(
        json!({
            "connector.class": "FileStreamSink", "topics": topic, "file": out.display().to_string(),
            "transforms": "dropTombstones,mask",
            "transforms.dropTombstones.type": "org.apache.kafka.connect.transforms.Filter",
            "transforms.dropTombstones.predicate": "isTombstone",
            "transforms.mask.type": "MaskField$Value",
            "transforms.mask.fields": "email",
            "transforms.mask.predicate": "isTombstone",
            "transforms.mask.negate": "true",
            "predicates": "isTombstone",
            "predicates.isTombstone.type": "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
        }),
        &SCHEMALESS,
    );
    worker.create(&name, config);
    wait_for(
        "every record's offset committed",
        Duration::from_secs(60),
        || committed(&format!("connect-{name}"), &topic) == 15,
        || format!("{}", worker.status(&name)),
    );
    let lines: Vec<Json> = std::fs::read_to_string(&out)
        .expect("output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        lines.len(),
        10,
        "the 5 tombstones were filtered out: {lines:?}"
    );
    for line in &lines {
        assert_eq!(line["email"], "", "masked: {line}");
        assert!(line["id"].is_i64(), "{line}");
    }
}

#[test]
fn bad_chains_are_refused_naming_the_key() {
    let worker = RestWorker::start(&bootstrap(), "");
    let sink = |extra: &[(&str, &str)]| {
        with(
            json!({"connector.class": "FileStreamSink", "topics": "t", "file": "/tmp/never"}),
            extra,
        )
    };
    let message = worker.create_refused(sink(&[
        ("transforms", "x"),
        ("transforms.x.type", "com.example.Nope"),
    ]));
    assert!(message.contains("transforms.x.type"), "{message}");
    let message = worker.create_refused(sink(&[
        ("transforms", "m"),
        ("transforms.m.type", "MaskField$Value"),
    ]));
    assert!(message.contains("transforms.m.fields"), "{message}");
    let message = worker.create_refused(sink(&[
        ("transforms", "f"),
        ("transforms.f.type", "Filter"),
        ("transforms.f.predicate", "missing"),
    ]));
    assert!(message.contains("transforms.f.predicate"), "{message}");
    let message = worker.create_refused(sink(&[
        ("predicates", "p"),
        ("predicates.p.type", "TopicNameMatches"),
    ]));
    assert!(message.contains("predicates.p.pattern"), "{message}");
}
