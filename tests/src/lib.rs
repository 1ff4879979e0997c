//! Shared support for the end-to-end tests in `tests/tests/`: finding the binary, free
//! ports, running a worker process, waiting, and talking to its REST API.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn binary() -> PathBuf {
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
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Kills the worker if a test fails before stopping it.
#[derive(Debug)]
pub struct Worker(pub Option<Child>);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn wait_for(
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
pub fn rest_get(port: u16, path: &str) -> String {
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

pub fn stop_gracefully(mut worker: Worker) {
    let Some(mut child) = worker.0.take() else {
        return;
    };
    terminate(&child);
    wait_clean_exit(&mut child);
}

/// Sends SIGTERM.
fn terminate(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
}

/// Waits (up to 15 s) for a process sent SIGTERM to exit with status 0.
fn wait_clean_exit(child: &mut Child) {
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

/// Sends `method path` with a JSON body to the worker's REST API; returns the status code
/// and the body.
pub fn rest(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, "REST API unreachable".into());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let _ = write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// Where a worker's log goes: the test's stderr, or with `WORKER_LOG_DIR` set, the file
/// `<port>.log` there (appended to across restarts), so the workers of a group can be told
/// apart when a test fails.
fn worker_log(port: u16) -> std::process::Stdio {
    let Some(dir) = std::env::var_os("WORKER_LOG_DIR") else {
        return std::process::Stdio::inherit();
    };
    let path = Path::new(&dir).join(format!("{port}.log"));
    let _ = std::fs::create_dir_all(&dir);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
        .into()
}

/// Runs `wasmconnect <mode> <dir>/worker.properties` and waits for its REST API on `port`.
fn spawn_worker(mode: &str, dir: &tempfile::TempDir, port: u16) -> Worker {
    let child = Command::new(binary())
        .arg(mode)
        .arg(dir.path().join("worker.properties"))
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(worker_log(port))
        .spawn()
        .expect("worker process starts");
    let mut worker = Worker(Some(child));
    wait_for(
        "the REST API",
        Duration::from_secs(60),
        || {
            if let Some(child) = worker.0.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the worker exited before serving REST: {status}");
            }
            rest(port, "GET", "/", None).0 == 200
        },
        || "no answer on GET /".into(),
    );
    worker
}

/// A worker process with only a worker config (connectors come through REST), its REST
/// port, and its folder.
#[derive(Debug)]
pub struct RestWorker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub worker: Worker,
}

impl RestWorker {
    /// Starts `wasmconnect standalone` on `bootstrap` with `extra` worker properties and
    /// waits for its REST API.
    pub fn start(bootstrap: &str, extra: &str) -> RestWorker {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("worker.properties");
        std::fs::write(
            &config,
            format!(
                "bootstrap.servers={bootstrap}\nlisteners=http://127.0.0.1:{port}\nplugin.path={}\nplugin.cache.dir={}\n\
                 offset.storage.file.filename={}\noffset.flush.interval.ms=500\n\
                 consumer.session.timeout.ms=6000\nconsumer.heartbeat.interval.ms=1000\nconsumer.max.poll.interval.ms=20000\n{extra}\n",
                workspace().join("target/plugins").display(),
                workspace().join("target/test-plugin-cache").display(),
                dir.path().join("offsets.json").display(),
            ),
        )
        .expect("worker.properties");
        let mut worker = RestWorker {
            port,
            dir,
            worker: Worker(None),
        };
        worker.spawn();
        worker
    }

    fn spawn(&mut self) {
        self.worker = spawn_worker("standalone", &self.dir, self.port);
    }

    /// Kills the worker with SIGKILL (no shutdown at all) and starts it again.
    pub fn kill_and_restart(&mut self) {
        if let Some(mut child) = self.worker.0.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
        self.spawn();
    }

    /// Stops the worker with SIGTERM (it must exit cleanly) and starts it again with the
    /// same config and offsets file. Connectors created through REST must be created again,
    /// as with Kafka Connect's standalone mode.
    pub fn restart(&mut self) {
        stop_gracefully(std::mem::replace(&mut self.worker, Worker(None)));
        self.spawn();
    }

    /// Creates a connector; panics with the worker's answer unless it is 201.
    pub fn create(&self, name: &str, config: serde_json::Value) {
        let (status, body) = rest(
            self.port,
            "POST",
            "/connectors",
            Some(&serde_json::json!({"name": name, "config": config})),
        );
        assert_eq!(status, 201, "creating {name}: {body}");
    }

    /// Creates a connector that must be refused with 400; returns the error message.
    pub fn create_refused(&self, config: serde_json::Value) -> String {
        let (status, body) = rest(
            self.port,
            "POST",
            "/connectors",
            Some(&serde_json::json!({"name": unique("refused"), "config": config})),
        );
        assert_eq!(status, 400, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
        body["message"].as_str().unwrap_or_default().to_owned()
    }

    /// The connector's status document.
    pub fn status(&self, name: &str) -> serde_json::Value {
        let (_, body) = rest(
            self.port,
            "GET",
            &format!("/connectors/{name}/status"),
            None,
        );
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    /// Waits (up to a minute) for the connector's first task to fail; returns its trace.
    pub fn wait_task_failed(&self, name: &str) -> String {
        wait_for(
            "the task to fail",
            Duration::from_secs(60),
            || self.task_state(name).0 == "FAILED",
            || format!("{}", self.status(name)),
        );
        self.task_state(name).1
    }

    /// The first task's state and trace, for failure messages and checks.
    pub fn task_state(&self, name: &str) -> (String, String) {
        let status = self.status(name);
        let task = &status["tasks"][0];
        (
            task["state"].as_str().unwrap_or("?").to_owned(),
            task["trace"].as_str().unwrap_or("").to_owned(),
        )
    }
}

/// A `wasmconnect distributed` worker process of the group `group`, on its own REST port.
#[derive(Debug)]
pub struct GroupWorker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub worker: Worker,
}

impl GroupWorker {
    /// Starts a worker of `group` (internal topics `<group>-configs|offsets|status`) on
    /// `bootstrap`, with `extra` worker properties, and waits for its REST API.
    pub fn start(bootstrap: &str, group: &str, extra: &str) -> GroupWorker {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        std::fs::write(
            dir.path().join("worker.properties"),
            format!(
                "bootstrap.servers={bootstrap}\nlisteners=http://127.0.0.1:{port}\nplugin.path={},{}\nplugin.cache.dir={}\n\
                 group.id={group}\nconfig.storage.topic={group}-configs\noffset.storage.topic={group}-offsets\n\
                 status.storage.topic={group}-status\nconfig.storage.replication.factor=1\n\
                 offset.storage.replication.factor=1\nstatus.storage.replication.factor=1\n\
                 offset.storage.partitions=5\nstatus.storage.partitions=3\noffset.flush.interval.ms=500\n\
                 consumer.session.timeout.ms=6000\nconsumer.heartbeat.interval.ms=1000\n{extra}\n",
                workspace().join("target/plugins").display(),
                workspace().join("target/test-plugins").display(),
                workspace().join("target/test-plugin-cache").display(),
            ),
        )
        .expect("worker.properties");
        let mut worker = GroupWorker {
            port,
            dir,
            worker: Worker(None),
        };
        worker.spawn();
        worker
    }

    pub fn spawn(&mut self) {
        self.worker = spawn_worker("distributed", &self.dir, self.port);
    }

    /// `host:port`, as statuses name this worker.
    pub fn id(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether this worker leads: a leader-only write with `forward=false` is refused with
    /// 409 by the others, and validated (400 for this empty config) by the leader.
    pub fn is_leader(&self) -> bool {
        let (status, _) = rest(
            self.port,
            "POST",
            "/connectors?forward=false",
            Some(&serde_json::json!({"name": "leader-probe", "config": {}})),
        );
        status == 400
    }

    /// SIGKILL: no shutdown, no LeaveGroup.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.worker.0.take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    /// SIGTERM; it must exit cleanly.
    pub fn stop(&mut self) {
        stop_gracefully(std::mem::replace(&mut self.worker, Worker(None)));
    }

    /// Sends SIGTERM and returns at once; [`GroupWorker::wait_stopped`] waits for the exit.
    pub fn begin_stop(&self) {
        if let Some(child) = &self.worker.0 {
            terminate(child);
        }
    }

    /// Waits for a worker sent SIGTERM to exit cleanly.
    pub fn wait_stopped(&mut self) {
        if let Some(mut child) = self.worker.0.take() {
            wait_clean_exit(&mut child);
        }
    }
}

/// A real Kafka-protocol broker for the tests: topics and records.
pub mod kafka {
    use std::time::Duration;

    use rdkafka::ClientConfig;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    /// The broker at `KAFKA_BOOTSTRAP` (`make test` starts Tansu and sets it).
    pub fn bootstrap() -> String {
        std::env::var("KAFKA_BOOTSTRAP").expect(
            "KAFKA_BOOTSTRAP must name a Kafka-protocol broker; `make test` starts Tansu and sets it",
        )
    }

    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    pub async fn create_topic(topic: &str) {
        create_topic_with(topic, 1).await;
    }

    pub async fn create_topic_with(topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .expect("admin client");
        let results = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("create topic");
        for r in results {
            r.expect("topic created");
        }
    }

    /// Deletes topics, so that a long benchmark leaves the broker as it found it (Tansu
    /// keeps every record in memory). A failure is printed, not fatal.
    pub async fn delete_topics(topics: &[&str]) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .expect("admin client");
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        match admin.delete_topics(topics, &options).await {
            Ok(results) => {
                for failed in results.into_iter().filter_map(Result::err) {
                    eprintln!("cannot delete topic {}: {}", failed.0, failed.1);
                }
            }
            Err(e) => eprintln!("cannot delete topics {topics:?}: {e}"),
        }
    }

    /// Produces `(key, value)` pairs in order; `None` is a tombstone. Every record is
    /// queued before any delivery is awaited, so large runs go out in full batches.
    pub async fn produce(topic: &str, records: &[(String, Option<String>)]) {
        produce_with(topic, records, "10000").await;
    }

    /// Like [`produce`], one record per batch. Tansu 0.6 answers a fetch from the middle
    /// of a batch with the batches after it only (`dynostore.rs` keeps batches whose base
    /// offset is at or after the fetch offset), so a consumer that resumes from a committed
    /// offset inside a batch never sees the rest of that batch; Kafka returns the whole
    /// batch. Tests that move committed offsets or tasks produce this way.
    pub async fn produce_one_per_batch(topic: &str, records: &[(String, Option<String>)]) {
        produce_with(topic, records, "1").await;
    }

    async fn produce_with(topic: &str, records: &[(String, Option<String>)], batch: &str) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("batch.num.messages", batch)
            // One record per batch is slow on a Tansu that holds earlier tests' data (a
            // 200,000-record run once took over librdkafka's 300 s default): no time limit.
            .set("message.timeout.ms", "0")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .expect("producer");
        let mut deliveries = Vec::with_capacity(records.len());
        for (k, v) in records {
            loop {
                let mut record = FutureRecord::to(topic).key(k.as_str());
                if let Some(v) = v {
                    record = record.payload(v.as_str());
                }
                match producer.send_result(record) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    // The local queue is full: let deliveries drain it.
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        _,
                    )) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err((e, _)) => panic!("cannot queue a record: {e}"),
                }
            }
        }
        for delivery in deliveries {
            delivery
                .await
                .expect("delivery not cancelled")
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    }

    /// A record read back, as text.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Consumed {
        pub key: Option<String>,
        pub value: Option<String>,
        pub headers: Vec<(String, String)>,
        pub offset: i64,
    }

    impl Consumed {
        /// The value of the first header called `key`.
        pub fn header(&self, key: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Reads `topic` from the start until `count` records arrived or `timeout` passed;
    /// returns `(key, value)` pairs as text.
    pub fn consume(
        topic: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<(Option<String>, Option<String>)> {
        consume_records(topic, count, timeout)
            .into_iter()
            .map(|c| (c.key, c.value))
            .collect()
    }

    /// Like [`consume`], with headers and offsets.
    pub fn consume_records(topic: &str, count: usize, timeout: Duration) -> Vec<Consumed> {
        use rdkafka::message::Headers;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", crate::unique("e2e-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            // The topic may not exist yet (a source creates it with its first record):
            // look again every half second, not every five minutes.
            .set("topic.metadata.refresh.interval.ms", "500")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < count && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_owned(), text(h.value).unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Consumed {
                    key: text(m.key()),
                    value: text(m.payload()),
                    headers,
                    offset: m.offset(),
                });
            }
        }
        out
    }

    /// Reads `count` dead letters from `dlq` and checks that each is a `TASK_PUT` failure of
    /// the plugin `class` whose message contains `reason`; returns their keys, sorted.
    pub fn task_put_dead_letters(
        dlq: &str,
        count: usize,
        class: &str,
        reason: &str,
    ) -> Vec<String> {
        let dead = consume_records(dlq, count, Duration::from_secs(60));
        for d in &dead {
            assert_eq!(
                d.header("__connect.errors.stage"),
                Some("TASK_PUT"),
                "{d:?}"
            );
            assert_eq!(
                d.header("__connect.errors.class.name"),
                Some(class),
                "{d:?}"
            );
            let message = d.header("__connect.errors.exception.message").unwrap_or("");
            assert!(message.contains(reason), "{message}");
        }
        let mut keys: Vec<String> = dead.into_iter().filter_map(|d| d.key).collect();
        keys.sort_unstable();
        keys
    }

    /// Every record of `topic` (all partitions) from the beginning, read until none has
    /// come for `quiet`; `(key, value)` pairs as text, in each partition's order.
    pub fn read_all(topic: &str, quiet: Duration) -> Vec<(Option<String>, Option<String>)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", crate::unique("e2e-reader"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let mut out = Vec::new();
        let mut last = std::time::Instant::now();
        // The group join comes first; give it time before counting quiet.
        let joined_by = last + Duration::from_secs(10);
        while last.elapsed() < quiet || (out.is_empty() && std::time::Instant::now() < joined_by) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                out.push((text(m.key()), text(m.payload())));
                last = std::time::Instant::now();
            }
        }
        out
    }

    /// The offset a consumer group committed for partition 0 of `topic` (-1 for none).
    pub fn committed(group: &str, topic: &str) -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", group)
            .create()
            .expect("consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(topic, 0);
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        match committed.find_partition(topic, 0).map(|p| p.offset()) {
            Some(rdkafka::Offset::Offset(o)) => o,
            _ => -1,
        }
    }
}

/// The machine's real databases (`scripts/services.sh` starts them).
pub mod db {
    pub const DATABASE: &str = "wasmconnect_test";

    pub fn mysql_server() -> String {
        std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
    }

    pub fn postgres_url() -> String {
        std::env::var("POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// The test database on the MariaDB server, created when missing.
    pub fn mysql_database(rt: &tokio::runtime::Runtime) -> sqlx::MySqlPool {
        let server = rt
            .block_on(sqlx::MySqlPool::connect(&mysql_server()))
            .expect("MariaDB reachable (scripts/services.sh starts it)");
        rt.block_on(
            sqlx::query(&format!("CREATE DATABASE IF NOT EXISTS {DATABASE}")).execute(&server),
        )
        .expect("database");
        rt.block_on(sqlx::MySqlPool::connect(&format!(
            "{}/{DATABASE}",
            mysql_server()
        )))
        .expect("test database")
    }
}
