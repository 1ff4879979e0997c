//! datagen -> Kafka -> file sink through the real `wasmconnect` binary: N records in, N
//! distinct records out, and nothing lost when the worker is killed with SIGKILL mid-run
//! and started again. Runs on the embedded (mock) cluster and on a real Kafka-protocol
//! broker at `KAFKA_BOOTSTRAP` (`make test` starts Tansu there).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmconnect::kafka::EmbeddedKafka;

const RECORDS: u64 = 3000;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn binary() -> PathBuf {
    let path = std::env::var_os("WASMCONNECT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/wasmconnect"));
    assert!(
        path.is_file(),
        "{} is missing: build it first (make test does)",
        path.display()
    );
    path
}

/// A free port below Linux's ephemeral range (32768-60999), so that no client socket (the
/// embedded cluster of a test running beside this one, say) takes it between the check and
/// the worker's bind, or while the worker restarts.
fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

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
            "name={}\nconnector.class=DatagenConnector\nkafka.topic={topic}\nmax.interval=1\niterations={RECORDS}\nbatch.max.records=100\n",
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

/// Kills the worker if a test fails before stopping it.
struct Worker(Option<Child>);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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

fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
    explain: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            explain()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on the worker's REST API, as text (for failure messages).
fn rest_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return "REST API unreachable".into();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.split("\r\n\r\n").nth(1).unwrap_or(&body).to_owned()
}

fn stop_gracefully(mut worker: Worker) {
    let Some(mut child) = worker.0.take() else {
        return;
    };
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "clean shutdown exits 0, got {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "worker did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
        || read_ids(&setup.out).1 as u64 >= RECORDS / 4,
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
