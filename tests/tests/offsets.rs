//! The Offsets API (KIP-875) of a standalone worker against the real broker at
//! `KAFKA_BOOTSTRAP`: a source connector's offsets (the offsets file) and a sink connector's
//! (its consumer group) are read, altered and reset while it is stopped, refused while it
//! runs, and the connector resumes from what was set. The distributed test does the same
//! through a non-leader with the offset topic.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value as Json, json};
use wasmconnect_e2e::{RestWorker, kafka, rest, unique, wait_for};

fn offsets(w: &RestWorker, name: &str) -> Json {
    let (status, body) = rest(w.port, "GET", &format!("/connectors/{name}/offsets"), None);
    assert_eq!(status, 200, "GET offsets: {body}");
    serde_json::from_str(&body).expect("offsets JSON")
}

/// Sends a request and checks its status code; returns the body.
fn expect(w: &RestWorker, method: &str, path: &str, body: Option<&Json>, code: u16) -> String {
    let (status, answer) = rest(w.port, method, path, body);
    assert_eq!(status, code, "{method} {path}: {answer}");
    answer
}

fn stop(w: &RestWorker, name: &str) {
    expect(w, "PUT", &format!("/connectors/{name}/stop"), None, 204);
    wait_for(
        "the connector to stop",
        Duration::from_secs(20),
        || w.status(name)["connector"]["state"] == "STOPPED",
        || w.status(name).to_string(),
    );
}

fn resume(w: &RestWorker, name: &str) {
    expect(w, "PUT", &format!("/connectors/{name}/resume"), None, 202);
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn source_offsets_are_altered_and_reset_while_stopped_and_the_source_resumes_from_them() {
    let w = RestWorker::start(&kafka::bootstrap(), "");
    let topic = unique("offsets-gen");
    let name = unique("gen");
    w.create(
        &name,
        json!({"connector.class": "DatagenConnector", "kafka.topic": topic, "iterations": "20", "max.interval": "1"}),
    );
    let iteration = || offsets(&w, &name)["offsets"][0]["offset"]["current.iteration"].as_i64();
    wait_for(
        "the source's offset at 20",
        Duration::from_secs(60),
        || iteration() == Some(20),
        || offsets(&w, &name).to_string(),
    );
    let path = format!("/connectors/{name}/offsets");
    let to_five =
        json!({"offsets": [{"partition": {"task.id": 0}, "offset": {"current.iteration": 5}}]});

    // Refused while it runs, with Kafka's message.
    let refused = expect(&w, "PATCH", &path, Some(&to_five), 400);
    assert!(
        refused.contains(&format!("'/connectors/{name}/stop' endpoint")),
        "{refused}"
    );
    stop(&w, &name);
    // Bad bodies are refused with a message that names the problem.
    let empty = expect(&w, "PATCH", &path, Some(&json!({"offsets": []})), 400);
    assert!(empty.contains("need to be provided"), "{empty}");
    let bad = expect(
        &w,
        "PATCH",
        &path,
        Some(&json!({"offsets": [{"partition": {"task.id": [0]}, "offset": null}]})),
        400,
    );
    assert!(bad.contains("Source partitions"), "{bad}");

    // Altered: stored in the offsets file, and the source resumes from it.
    let answer = expect(&w, "PATCH", &path, Some(&to_five), 200);
    assert_eq!(
        serde_json::from_str::<Json>(&answer).expect("json")["message"],
        "The offsets for this connector have been altered successfully"
    );
    assert_eq!(iteration(), Some(5));
    let file = std::fs::read_to_string(w.dir.path().join("offsets.json")).expect("offsets file");
    assert!(file.contains(r#""current.iteration":5"#), "{file}");
    resume(&w, &name);
    let records = kafka::consume(&topic, 35, Duration::from_secs(60));
    assert_eq!(
        records.len(),
        35,
        "20 records, then 15 more from iteration 5"
    );
    wait_for(
        "the source's offset back at 20",
        Duration::from_secs(30),
        || iteration() == Some(20),
        || offsets(&w, &name).to_string(),
    );

    // Reset: no offsets, and the source starts over.
    stop(&w, &name);
    let answer = expect(&w, "DELETE", &path, None, 200);
    assert!(answer.contains("reset successfully"), "{answer}");
    assert_eq!(offsets(&w, &name), json!({"offsets": []}));
    resume(&w, &name);
    let records = kafka::consume(&topic, 55, Duration::from_secs(60));
    assert_eq!(records.len(), 55, "20 more records from the start");
}

#[test]
fn sink_offsets_are_its_consumer_groups_and_moving_them_replays_records() {
    let w = RestWorker::start(&kafka::bootstrap(), "");
    let rt = kafka::runtime();
    let topic = unique("offsets-sink");
    rt.block_on(kafka::create_topic(&topic));
    let records: Vec<(String, Option<String>)> = (0..10)
        .map(|i| (format!("k{i}"), Some(json!({"n": i}).to_string())))
        .collect();
    rt.block_on(kafka::produce_one_per_batch(&topic, &records));
    let out = w.dir.path().join("out.jsonl");
    let name = unique("file");
    w.create(
        &name,
        json!({
            "connector.class": "FileStreamSink",
            "topics": topic,
            "file": out.display().to_string(),
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
        }),
    );
    let committed = || offsets(&w, &name)["offsets"][0]["offset"]["kafka_offset"].as_i64();
    wait_for(
        "the sink's committed offset at 10",
        Duration::from_secs(60),
        || committed() == Some(10),
        || format!("{} ({} lines)", offsets(&w, &name), lines(&out)),
    );
    assert_eq!(
        offsets(&w, &name)["offsets"][0]["partition"],
        json!({"kafka_topic": topic, "kafka_partition": 0})
    );
    let path = format!("/connectors/{name}/offsets");
    let to_four = json!({"offsets": [{
        "partition": {"kafka_topic": topic, "kafka_partition": 0},
        "offset": {"kafka_offset": "4"},
    }]});
    expect(&w, "PATCH", &path, Some(&to_four), 400);
    stop(&w, &name);
    let bad = expect(
        &w,
        "PATCH",
        &path,
        Some(
            &json!({"offsets": [{"partition": {"kafka_topic": topic}, "offset": {"kafka_offset": 1}}]}),
        ),
        400,
    );
    assert!(bad.contains("'kafka_partition'"), "{bad}");

    // Moved back to 4: the group's committed offset, and six records are written again.
    let answer = expect(&w, "PATCH", &path, Some(&to_four), 200);
    assert!(answer.contains("altered successfully"), "{answer}");
    assert_eq!(committed(), Some(4));
    assert_eq!(kafka::committed(&format!("connect-{name}"), &topic), 4);
    let before = lines(&out);
    assert_eq!(before, 10, "each record once before the move");
    let explain = || {
        let (lines, offsets, status) = (lines(&out), offsets(&w, &name), w.status(&name));
        format!("{lines} lines; {offsets}; {status}")
    };
    resume(&w, &name);
    wait_for(
        "records 4..10 written again",
        Duration::from_secs(60),
        || lines(&out) == 16 && committed() == Some(10),
        explain,
    );

    // Reset: the group is gone, and the sink reads the topic from the start.
    stop(&w, &name);
    let answer = expect(&w, "DELETE", &path, None, 200);
    assert!(answer.contains("reset successfully"), "{answer}");
    assert_eq!(offsets(&w, &name), json!({"offsets": []}));
    resume(&w, &name);
    wait_for(
        "every record written again",
        Duration::from_secs(60),
        || lines(&out) == 26,
        explain,
    );
}
