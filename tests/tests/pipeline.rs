//! datagen -> Kafka -> file sink through the real `wasmconnect` binary: N records in, N
//! distinct records out, and nothing lost when the worker is killed with SIGKILL mid-run
//! and started again. Runs on the embedded (mock) cluster and on a real Kafka-protocol
//! broker at `KAFKA_BOOTSTRAP` (`make test` starts Tansu there).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wasmconnect::kafka::EmbeddedKafka;
use wasmconnect_e2e::{
    Worker, binary, free_port, rest_get, stop_gracefully, unique, wait_for, workspace,
};

const RECORDS: u64 = 3000;
/// Milliseconds between generated records: 3000 records take 15 s, so the kill lands
/// mid-run even when the sink's group join takes seconds on a loaded machine (at 1 ms the
/// whole run once finished before the sink wrote its first line).
const INTERVAL_MS: u64 = 5;

struct Setup {
    dir: tempfile::TempDir,
    worker: PathBuf,
    connectors: Vec<PathBuf>,
    out: PathBuf,
    port: u16,
    topic: String,
}

fn setup(bootstrap: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let topic = unique("e2e-users");
    let out = dir.path().join("out.jsonl");
    let worker = dir.path().join("worker.properties");
    std::fs::write(
        &worker,
        format!(
            "bootstrap.servers={bootstrap}\nlisteners=http://127.0.0.1:{port}\nplugin.path={}\nplugin.cache.dir={}\n\
             offset.storage.file.filename={}\noffset.flush.interval.ms=300\nkey.converter=org.apache.kafka.connect.storage.StringConverter\n\
             value.converter=org.apache.kafka.connect.json.JsonConverter\n\
             consumer.session.timeout.ms=6000\nconsumer.heartbeat.interval.ms=1000\nconsumer.max.poll.interval.ms=20000\n",
            workspace().join("target/plugins").display(),
            workspace().join("target/test-plugin-cache").display(),
            dir.path().join("offsets.json").display(),
        ),
    )
    .expect("worker.properties");
    let source = dir.path().join("source.properties");
    std::fs::write(
        &source,
        format!(
            "name={}\nconnector.class=DatagenConnector\nkafka.topic={topic}\nmax.interval={INTERVAL_MS}\niterations={RECORDS}\nbatch.max.records=100\n",
            unique("gen")
        ),
    )
    .expect("source.properties");
    let sink = dir.path().join("sink.json");
    std::fs::write(
        &sink,
        serde_json::json!({"name": unique("file"), "config": {"connector.class": "FileStreamSink", "topics": topic, "file": out.display().to_string()}})
            .to_string(),
    )
    .expect("sink.json");
    Setup {
        dir,
        worker,
        connectors: vec![source, sink],
        out,
        port,
        topic,
    }
}

fn start(setup: &Setup) -> Worker {
    Worker(Some(spawn(setup)))
}

fn spawn(setup: &Setup) -> Child {
    Command::new(binary())
        .arg("standalone")
        .arg(&setup.worker)
        .args(&setup.connectors)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("worker process starts")
}

/// The distinct datagen ids in the output, and the number of lines.
fn read_ids(out: &Path) -> (BTreeSet<u64>, usize) {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut ids = BTreeSet::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        ids.insert(v["id"].as_u64().expect("id"));
    }
    (ids, lines)
}

fn run_kill_and_restart(bootstrap: &str, create_topic: impl FnOnce(&str)) {
    let setup = setup(bootstrap);
    create_topic(&setup.topic);
    let mut first = start(&setup);
    let explain = || {
        let (ids, lines) = read_ids(&setup.out);
        format!(
            "{} distinct ids, {lines} lines; worker says {}",
            ids.len(),
            rest_get(setup.port, "/connectors?expand=status")
        )
    };
    wait_for(
        "the first records in the file",
        Duration::from_secs(90),
        || read_ids(&setup.out).1 as u64 >= RECORDS / 10,
        explain,
    );
    if let Some(mut child) = first.0.take() {
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
    let (before, _) = read_ids(&setup.out);
    assert!(
        (before.len() as u64) < RECORDS,
        "the kill happened mid-run ({} of {RECORDS} done)",
        before.len()
    );

    let second = start(&setup);
    wait_for(
        "every record after the restart",
        Duration::from_secs(120),
        || read_ids(&setup.out).0.len() as u64 >= RECORDS,
        explain,
    );
    let (ids, lines) = read_ids(&setup.out);
    let expected: BTreeSet<u64> = (0..RECORDS).collect();
    assert_eq!(ids, expected, "every record arrived, none invented");
    assert!(lines as u64 >= RECORDS, "at least once: {lines} lines");
    // A REST call works on the restarted worker.
    let status = std::net::TcpStream::connect(("127.0.0.1", setup.port));
    assert!(status.is_ok(), "REST port is open");
    stop_gracefully(second);
    drop(setup.dir);
}

#[test]
fn datagen_to_file_survives_kill_on_the_embedded_cluster() {
    // The cluster lives in this process, so killing the worker does not take Kafka with it.
    // The mock cluster does not serve CreateTopics, so the test creates the topic and the
    // worker finds it exists.
    let kafka = EmbeddedKafka::start(1).expect("mock cluster");
    let topics = kafka.topics().expect("topics handle");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    run_kill_and_restart(kafka.bootstrap_servers(), |topic| {
        runtime
            .block_on(topics.create(topic, 1))
            .expect("create topic");
    });
}

#[test]
fn datagen_to_file_survives_kill_on_a_real_broker() {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").expect(
        "KAFKA_BOOTSTRAP must name a Kafka-protocol broker; `make test` starts Tansu and sets it",
    );
    // The worker creates the topic itself (brokers like Tansu do not create on produce).
    run_kill_and_restart(&bootstrap, |_| {});
}
