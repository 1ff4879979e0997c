//! The connector benchmarks: each connector through the release `wasmconnect` binary and
//! a real broker, against a native Rust loop doing the same database work, on the same
//! rows, in one run. Prints rows per second and the ratio (wasmconnect / native).
//!
//! `make bench-connectors` (builds the release binary and plugins, starts the services and
//! Tansu), or `cargo bench -p wasmconnect-e2e --bench connectors -- [jdbc|redis|source]
//! [rows] [rounds]` with `KAFKA_BOOTSTRAP` and `WASMCONNECT_BIN` set. Each connector runs
//! `rounds` times (3 by default), native then wasmconnect each time, and the median ratios
//! follow its rounds. Every topic a run makes is deleted after it.
//!
//! - jdbc: records in a topic -> JDBC sink upsert (batch 1000) into MariaDB, vs multi-row
//!   `INSERT ... ON DUPLICATE KEY UPDATE` of 1000 rows per transaction straight to MariaDB.
//! - redis: records in a topic -> Redis sink STRING (SET), vs pipelined SETs of 1000.
//! - source: a MariaDB table -> JDBC source -> topic, vs a streamed SELECT into a producer.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sqlx::Row;
use wasmconnect_e2e::RestWorker;
use wasmconnect_e2e::db::{DATABASE, mysql_database};
use wasmconnect_e2e::kafka::{bootstrap, create_topic, delete_topics, produce, runtime};

const BATCH: usize = 1000;

/// librdkafka's `fetch.wait.max.ms` (Java's `fetch.max.wait.ms`) by default: how long a
/// broker may hold a fetch that finds too little data.
const DEFAULT_FETCH_WAIT_MS: u32 = 500;

/// The fetch wait of the benchmark's consumers, the worker's included. Tansu 0.6 holds
/// every fetch for about its whole wait even when data is waiting (it sleeps before it
/// looks at `fetch.min.bytes`), which caps a consumer at about 60,000 of these rows a
/// second with the default; Kafka answers as soon as `fetch.min.bytes` is there, so on
/// Kafka the setting only changes how often an idle consumer asks.
const FETCH_WAIT_MS: u32 = 10;

/// The worker's properties: its sink consumers use [`FETCH_WAIT_MS`], set under Java's
/// name as a Connect worker config would.
fn worker_settings() -> String {
    format!("consumer.fetch.max.wait.ms={FETCH_WAIT_MS}")
}

struct Figure {
    name: &'static str,
    rows: usize,
    native: Duration,
    /// From creating the connector (task start, group join) to the last row.
    wasm: Duration,
    /// From the first rows seen to the last: `(rows after the first sighting, time)`.
    steady: (usize, Duration),
}

impl Figure {
    fn rate(&self, d: Duration) -> f64 {
        self.rows as f64 / d.as_secs_f64()
    }

    fn steady_rate(&self) -> f64 {
        let (steady_rows, steady_time) = self.steady;
        steady_rows as f64 / steady_time.as_secs_f64()
    }

    /// wasmconnect's rate over the native one: from the start, and steady.
    fn ratios(&self) -> (f64, f64) {
        let native = self.rate(self.native);
        (self.rate(self.wasm) / native, self.steady_rate() / native)
    }

    fn print(&self) {
        let (from_start, steady) = self.ratios();
        println!(
            "{:<7} {:>8} rows | native {:>8.0} rows/s | wasmconnect from start {:>8.0} rows/s ({:>5.2} s), ratio {:.2} | steady {:>8.0} rows/s, ratio {:.2}",
            self.name,
            self.rows,
            self.rate(self.native),
            self.rate(self.wasm),
            self.wasm.as_secs_f64(),
            from_start,
            self.steady_rate(),
            steady,
        );
    }
}

/// The median ratios of a connector's rounds (each round's wasmconnect run against the
/// native run just before it, so that a slow or fast spell of the machine counts once),
/// and whether they meet the connector's target (README, Measurements).
fn print_medians(figures: &[Figure], target: f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        if v.len().is_multiple_of(2) {
            (v[mid - 1] + v[mid]) / 2.0
        } else {
            v[mid]
        }
    };
    let (from_start, steady): (Vec<f64>, Vec<f64>) = figures.iter().map(Figure::ratios).unzip();
    let (from_start, steady) = (median(from_start), median(steady));
    let verdict = |ratio: f64| if ratio >= target { "met" } else { "missed" };
    println!(
        "{:<7} median of {} rounds: ratio from start {from_start:.2}, steady {steady:.2} (target {target:.1}: {} from start, {} steady)",
        figures[0].name,
        figures.len(),
        verdict(from_start),
        verdict(steady),
    );
}

fn unique(prefix: &str) -> String {
    wasmconnect_e2e::unique(prefix).replace('-', "_")
}

fn user_row(id: usize) -> (i64, String, String, f64) {
    (
        id as i64,
        format!("user-{id}"),
        format!("user-{id}@example.com"),
        id as f64 * 0.5,
    )
}

/// Polls `progress` (rows done so far) until it reaches `rows`; returns the time from
/// `started` to the end and the steady part: rows after the first non-zero reading and
/// the time they took.
fn measure(
    what: &str,
    rows: usize,
    started: Instant,
    mut progress: impl FnMut() -> usize,
) -> (Duration, (usize, Duration)) {
    let deadline = started + Duration::from_secs(600);
    let mut first: Option<(usize, Instant)> = None;
    loop {
        let done = progress();
        let now = Instant::now();
        if done > 0 && first.is_none() {
            first = Some((done, now));
        }
        if done >= rows {
            let (seen, at) = first.unwrap_or((0, started));
            return (now - started, (rows - seen.min(rows), now - at));
        }
        assert!(
            now < deadline,
            "timed out waiting for {what} ({done} of {rows})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn jdbc(rows: usize) -> Figure {
    let rt = runtime();
    let db = mysql_database(&rt);
    let ddl = |table: &str| {
        format!(
            "CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(255), email VARCHAR(255), score DOUBLE)"
        )
    };
    // Native: multi-row upserts of BATCH rows, one transaction each.
    let native_table = unique("bench_native");
    rt.block_on(sqlx::query(&ddl(&native_table)).execute(&db))
        .expect("table");
    let started = Instant::now();
    rt.block_on(async {
        for chunk in (0..rows).collect::<Vec<_>>().chunks(BATCH) {
            let mut sql = format!("INSERT INTO {native_table} (id, name, email, score) VALUES ");
            sql.push_str(&vec!["(?, ?, ?, ?)"; chunk.len()].join(", "));
            sql.push_str(
                " ON DUPLICATE KEY UPDATE name = VALUES(name), email = VALUES(email), score = VALUES(score)",
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                let (id, name, email, score) = user_row(*id);
                query = query.bind(id).bind(name).bind(email).bind(score);
            }
            let mut tx = db.begin().await.expect("begin");
            query.execute(&mut *tx).await.expect("insert");
            tx.commit().await.expect("commit");
        }
    });
    let native = started.elapsed();

    // wasmconnect: the same rows as JsonConverter envelopes in a topic.
    let table = unique("bench_jdbc");
    rt.block_on(sqlx::query(&ddl(&table)).execute(&db))
        .expect("table");
    let topic = table.clone();
    rt.block_on(create_topic(&topic));
    let records: Vec<(String, Option<String>)> = (0..rows)
        .map(|i| {
            let (id, name, email, score) = user_row(i);
            let value = json!({"schema": {"type": "struct", "optional": false, "fields": [
                {"type": "int64", "optional": false, "field": "id"},
                {"type": "string", "optional": true, "field": "name"},
                {"type": "string", "optional": true, "field": "email"},
                {"type": "double", "optional": true, "field": "score"}]},
                "payload": {"id": id, "name": name, "email": email, "score": score}});
            (id.to_string(), Some(value.to_string()))
        })
        .collect();
    rt.block_on(produce(&topic, &records));
    read_ceiling(&topic, rows);
    let worker = RestWorker::start(&bootstrap(), &worker_settings());
    let started = Instant::now();
    worker.create(
        &table,
        json!({
            "connector.class": "JdbcSinkConnector",
            "topics": topic,
            "connection.url": format!("jdbc:mysql://127.0.0.1:3306/{DATABASE}"),
            "connection.user": "root",
            "insert.mode": "upsert",
            "pk.mode": "record_value",
            "pk.fields": "id",
            "batch.size": BATCH.to_string(),
            "batch.max.records": BATCH.to_string(),
            "consumer.override.max.poll.records": BATCH.to_string(),
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        }),
    );
    // Progress is the highest id written: one partition, written in order, a transaction
    // per batch, so every lower id is there too. (A COUNT(*) every 10 ms scans the growing
    // table and takes the database's CPU from the run it measures.)
    let highest = format!("SELECT COALESCE(MAX(id) + 1, 0) FROM {table}");
    let (wasm, steady) = measure("the JDBC sink's rows", rows, started, || {
        rt.block_on(sqlx::query_scalar::<_, i64>(&highest).fetch_one(&db))
            .unwrap_or(0) as usize
    });
    let count = format!("SELECT COUNT(*) FROM {table}");
    let written = rt
        .block_on(sqlx::query_scalar::<_, i64>(&count).fetch_one(&db))
        .expect("count");
    assert_eq!(written as usize, rows, "every row written once");
    for t in [&native_table, &table] {
        let _ = rt.block_on(sqlx::query(&format!("DROP TABLE {t}")).execute(&db));
    }
    drop(worker);
    rt.block_on(delete_topics(&[&topic]));
    Figure {
        name: "jdbc",
        rows,
        native,
        wasm,
        steady,
    }
}

fn redis(rows: usize) -> Figure {
    let rt = runtime();
    let client = redis::Client::open("redis://127.0.0.1:6379/0").expect("client");
    let prefix = unique("bench_native");
    let native = rt.block_on(async {
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis reachable");
        let started = Instant::now();
        for chunk in (0..rows).collect::<Vec<_>>().chunks(BATCH) {
            let mut pipe = redis::pipe();
            for i in chunk {
                pipe.cmd("SET")
                    .arg(format!("{prefix}:k{i}"))
                    .arg(format!("v{i}"))
                    .ignore();
            }
            let () = pipe.query_async(&mut connection).await.expect("pipeline");
        }
        started.elapsed()
    });

    // The sink starts from the Redis the native loop started from: without the native
    // keys, which would otherwise double the keyspace under it (a larger table and a
    // rehash of it inside its window).
    let mut check = client.get_connection().expect("Redis");
    delete_keys(&mut check, &prefix);

    let topic = unique("bench_redis");
    rt.block_on(create_topic(&topic));
    let records: Vec<(String, Option<String>)> = (0..rows)
        .map(|i| (format!("k{i}"), Some(format!("v{i}"))))
        .collect();
    rt.block_on(produce(&topic, &records));
    let worker = RestWorker::start(&bootstrap(), &worker_settings());
    let last = format!("{topic}:k{}", rows - 1);
    let started = Instant::now();
    worker.create(
        &topic,
        json!({
            "connector.class": "RedisSinkConnector",
            "topics": topic,
            "redis.uri": "redis://127.0.0.1:6379/0",
            "redis.type": "STRING",
            "batch.max.records": BATCH.to_string(),
            "consumer.override.max.poll.records": BATCH.to_string(),
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        }),
    );
    // One partition, commands in record order: the last key written means all were;
    // the first one marks the first batch.
    let first = format!("{topic}:k0");
    let (wasm, steady) = measure("the Redis sink's keys", rows, started, || {
        let exists = |key: &str, check: &mut redis::Connection| {
            redis::cmd("EXISTS")
                .arg(key)
                .query::<i64>(check)
                .unwrap_or(0)
                == 1
        };
        if exists(&last, &mut check) {
            rows
        } else {
            usize::from(exists(&first, &mut check))
        }
    });
    delete_keys(&mut check, &topic);
    drop(worker);
    rt.block_on(delete_topics(&[&topic]));
    Figure {
        name: "redis",
        rows,
        native,
        wasm,
        steady,
    }
}

/// Deletes the keys under `prefix:`.
fn delete_keys(check: &mut redis::Connection, prefix: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(check)
        .unwrap_or_default();
    for chunk in keys.chunks(10_000) {
        let _: Result<i64, _> = redis::cmd("DEL").arg(chunk).query(check);
    }
}

/// How fast a bare consumer reads the topic, from its start and from its first record:
/// the ceiling for a sink on this broker, with librdkafka's default fetch wait (Connect's
/// too) and with the benchmark's.
fn read_ceiling(topic: &str, rows: usize) {
    for wait in [DEFAULT_FETCH_WAIT_MS, FETCH_WAIT_MS] {
        let mut counter = TopicCounter::with_fetch_wait(topic, wait);
        let started = Instant::now();
        let (total, (steady_rows, steady)) = measure(topic, rows, started, || counter.count());
        println!(
            "        (a bare consumer with a {wait} ms fetch wait reads them at {:.0} rows/s from its start, {:.0} rows/s from its first record)",
            rows as f64 / total.as_secs_f64(),
            steady_rows as f64 / steady.as_secs_f64()
        );
    }
}

/// Counts the records of `topic` as they arrive. (Tansu's high watermark undercounts
/// compressed batches, so the records are read, not the watermark.)
struct TopicCounter {
    consumer: BaseConsumer,
    seen: usize,
}

impl TopicCounter {
    fn new(topic: &str) -> TopicCounter {
        TopicCounter::with_fetch_wait(topic, FETCH_WAIT_MS)
    }

    fn with_fetch_wait(topic: &str, fetch_wait_ms: u32) -> TopicCounter {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", unique("bench"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
            // As the worker's sink consumers: no 1 s pause each time the local queue
            // passes 100,000 records.
            .set("fetch.queue.backoff.ms", "10")
            .create()
            .expect("consumer");
        let mut assignment = rdkafka::TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
            .expect("partition");
        consumer.assign(&assignment).expect("assign");
        TopicCounter { consumer, seen: 0 }
    }

    /// A counter already reading `topic`: it has read a marker record written before it
    /// returns, which it does not count. A new consumer's first records reach it about
    /// half a second after they are in Tansu; that belongs to the counter, not to what
    /// is measured.
    fn reading(topic: &str, rt: &tokio::runtime::Runtime) -> TopicCounter {
        let mut counter = TopicCounter::new(topic);
        rt.block_on(produce(topic, &[("marker".into(), None)]));
        let deadline = Instant::now() + Duration::from_secs(30);
        while counter.count() == 0 {
            assert!(
                Instant::now() < deadline,
                "the counter never read its marker"
            );
        }
        counter.seen -= 1;
        counter
    }

    fn count(&mut self) -> usize {
        loop {
            match self.consumer.poll(Duration::from_millis(5)) {
                Some(Ok(_)) => self.seen += 1,
                Some(Err(e)) => eprintln!("reading: {e}"),
                None => return self.seen,
            }
        }
    }
}

fn source(rows: usize) -> Figure {
    let rt = runtime();
    let db = mysql_database(&rt);
    let table = unique("bench_src");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(255), email VARCHAR(255), score DOUBLE)"
        ))
        .execute(&db),
    )
    .expect("table");
    rt.block_on(async {
        for chunk in (0..rows).collect::<Vec<_>>().chunks(BATCH) {
            let mut sql = format!("INSERT INTO {table} VALUES ");
            sql.push_str(&vec!["(?, ?, ?, ?)"; chunk.len()].join(", "));
            let mut query = sqlx::query(&sql);
            for id in chunk {
                let (id, name, email, score) = user_row(*id);
                query = query.bind(id).bind(name).bind(email).bind(score);
            }
            query.execute(&db).await.expect("insert");
        }
    });
    // Native: a streamed SELECT, each row as a JSON object into a producer.
    let native_topic = unique("bench_native_src");
    rt.block_on(create_topic(&native_topic));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let started = Instant::now();
    rt.block_on(async {
        let select = format!("SELECT * FROM {table} ORDER BY id");
        let mut stream = sqlx::query(&select).fetch(&db);
        let mut sends = Vec::with_capacity(rows);
        while let Some(row) = stream.try_next().await.expect("row") {
            let id: i64 = row.get(0);
            let value = json!({"id": id, "name": row.get::<String, _>(1), "email": row.get::<String, _>(2), "score": row.get::<f64, _>(3)})
                .to_string();
            let key = id.to_string();
            sends.push(producer.send_result(
                FutureRecord::to(&native_topic).key(&key).payload(&value),
            ).map_err(|(e, _)| e).expect("queued"));
        }
        for send in sends {
            send.await.expect("delivered").map_err(|(e, _)| e).expect("acknowledged");
        }
    });
    let native = started.elapsed();

    let prefix = unique("bench");
    let topic = format!("{prefix}{table}");
    rt.block_on(create_topic(&topic));
    let worker = RestWorker::start(&bootstrap(), &worker_settings());
    let mut counter = TopicCounter::reading(&topic, &rt);
    let started = Instant::now();
    worker.create(
        &table,
        json!({
            "connector.class": "JdbcSourceConnector",
            "connection.url": format!("jdbc:mysql://127.0.0.1:3306/{DATABASE}"),
            "connection.user": "root",
            "mode": "incrementing",
            "table.whitelist": table,
            "topic.prefix": prefix,
            "batch.max.rows": BATCH.to_string(),
            "batch.max.records": BATCH.to_string(),
            "record.key": "primary_key",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
        }),
    );
    let (wasm, steady) = measure("the JDBC source's records", rows, started, || {
        counter.count()
    });
    let _ = rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db));
    // Nothing may still read or write the topics: librdkafka crashes on a topic deleted
    // under its consumer.
    drop((worker, counter, producer));
    rt.block_on(delete_topics(&[&native_topic, &topic]));
    Figure {
        name: "source",
        rows,
        native,
        wasm,
        steady,
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let which = args.first().map_or("all", String::as_str);
    // A million rows by default: the rates, not a connector's start (about 0.1-0.2 s on
    // Tansu), decide the ratios (README, Measurements).
    let rows: usize = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3).max(1);
    println!(
        "connector benchmarks: {rows} rows, {rounds} rounds, batches of {BATCH}, broker {}, consumers' fetch wait {FETCH_WAIT_MS} ms",
        bootstrap()
    );
    for (name, bench, target) in [
        ("jdbc", jdbc as fn(usize) -> Figure, 0.8),
        ("redis", redis, 0.7),
        ("source", source, 0.8),
    ] {
        if which == "all" || which == name {
            let figures: Vec<Figure> = (0..rounds)
                .map(|_| {
                    let figure = bench(rows);
                    figure.print();
                    figure
                })
                .collect();
            print_medians(&figures, target);
        }
    }
}
