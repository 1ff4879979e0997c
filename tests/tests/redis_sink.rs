//! The Redis sink end to end: records produced to a real Kafka-protocol broker
//! (`KAFKA_BOOTSTRAP`, Tansu under `make test`), a `wasmconnect` worker process with the
//! `RedisSinkConnector` plugin, and the keys read back from the machine's real Redis
//! (`REDIS_URL` overrides where it is).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::Commands;
use serde_json::{Value, json};
use wasmconnect_e2e::kafka::{bootstrap, create_topic, produce, runtime, task_put_dead_letters};
use wasmconnect_e2e::{RestWorker, unique, wait_for};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// `REDIS_URL` with database `db` in place of the one it names, if any.
fn redis_url_in(db: i64) -> String {
    let url = redis_url();
    let server = match url.rsplit_once('/') {
        // `redis://host:port/0`: the last segment is the database.
        Some((server, last))
            if server.contains("://") && last.bytes().all(|b| b.is_ascii_digit()) =>
        {
            server.to_owned()
        }
        _ => url,
    };
    format!("{server}/{db}")
}

fn redis() -> redis::Connection {
    redis::Client::open(redis_url())
        .and_then(|c| c.get_connection())
        .expect("Redis reachable (scripts/services.sh starts it)")
}

fn sink(topic: &str, redis_type: &str, extra: Value) -> Value {
    let mut config = json!({
        "connector.class": "com.redis.kafka.connect.RedisSinkConnector",
        "topics": topic,
        "redis.uri": redis_url(),
        "redis.type": redis_type,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    config
}

fn kv(key: impl ToString, value: Option<&str>) -> (String, Option<String>) {
    (key.to_string(), value.map(str::to_owned))
}

fn wait_redis(worker: &RestWorker, connectors: &[&str], what: &str, check: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(90), check, || {
        connectors
            .iter()
            .map(|c| format!("{c}: {}", worker.status(c)))
            .collect::<Vec<_>>()
            .join("\n")
    });
}

#[test]
fn every_type_keeps_record_order_tombstones_and_ttl() {
    let rt = runtime();
    let mut r = redis();
    let topics: BTreeMap<&str, String> = ["string", "hash", "stream", "list", "set", "zset"]
        .into_iter()
        .map(|t| (t, unique(&format!("redis-{t}"))))
        .collect();
    for topic in topics.values() {
        rt.block_on(create_topic(topic));
    }

    // STRING: 100 keys; a write then a tombstone in the same batch leaves the key absent,
    // a tombstone then a write leaves it present.
    let mut strings: Vec<_> = (0..100).map(|i| kv(i, Some(&format!("v{i}")))).collect();
    strings.extend([
        kv(5, None),
        kv(6, None),
        kv(6, Some("again")),
        kv(200, Some("late")),
        kv(200, None),
    ]);
    rt.block_on(produce(&topics["string"], &strings));
    // HASH from schemaless JSON objects, inside MULTI/EXEC.
    let hashes = [
        kv(
            1,
            Some(r#"{"id": 1, "name": "alice", "tags": ["a", "b"], "gone": null}"#),
        ),
        kv(2, Some(r#"{"id": 2, "name": "bob"}"#)),
        kv(2, None),
        kv(3, Some(r#"{"id": 3, "name": "carol"}"#)),
    ];
    rt.block_on(produce(&topics["hash"], &hashes));
    // STREAM from Connect structs (JsonConverter with schemas).
    let envelope = |id: i64| {
        json!({"schema": {"type": "struct", "optional": false, "name": "event", "fields": [
            {"type": "int64", "optional": false, "field": "id"},
            {"type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": {"scale": "2"}, "field": "amount"},
        ]}, "payload": {"id": id, "amount": "BNI="}})
        .to_string()
    };
    let events: Vec<_> = (0..20).map(|i| kv(i, Some(&envelope(i)))).collect();
    rt.block_on(produce(&topics["stream"], &events));
    // Collections: the record key is the member; a tombstone removes it.
    rt.block_on(produce(
        &topics["list"],
        &[
            kv("a", Some("x")),
            kv("b", Some("x")),
            kv("a", Some("x")),
            kv("a", None),
        ],
    ));
    rt.block_on(produce(
        &topics["set"],
        &[
            kv("x", Some("1")),
            kv("y", Some("1")),
            kv("x", None),
            kv("z", Some("1")),
        ],
    ));
    rt.block_on(produce(
        &topics["zset"],
        &[
            kv("alice", Some("10")),
            kv("bob", Some("2.5")),
            kv("alice", None),
            kv("carol", Some("-1")),
        ],
    ));

    let worker = RestWorker::start(&bootstrap(), "");
    let names: BTreeMap<&str, String> = topics
        .keys()
        .map(|t| (*t, unique(&format!("redis-sink-{t}"))))
        .collect();
    let json_values = json!({
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    });
    worker.create(
        &names["string"],
        sink(&topics["string"], "STRING", json!({"redis.key.ttl": "300"})),
    );
    let mut hash_extra = json_values.clone();
    hash_extra["redis.multiexec"] = json!("true");
    hash_extra["redis.keyspace"] = json!("users");
    hash_extra["redis.separator"] = json!("/");
    worker.create(&names["hash"], sink(&topics["hash"], "HASH", hash_extra));
    worker.create(
        &names["stream"],
        sink(
            &topics["stream"],
            "STREAM",
            json!({
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter.schemas.enable": "true",
            }),
        ),
    );
    worker.create(&names["list"], sink(&topics["list"], "LIST", json!({})));
    worker.create(
        &names["set"],
        sink(
            &topics["set"],
            "SET",
            json!({"redis.keyspace": "set:${topic}"}),
        ),
    );
    worker.create(&names["zset"], sink(&topics["zset"], "ZSET", json_values));
    let all: Vec<&str> = names.values().map(String::as_str).collect();

    let t = &topics["string"];
    wait_redis(&worker, &all, "the STRING keys", || {
        let present: Vec<Option<String>> = (0..100)
            .map(|i| r.get(format!("{t}:{i}")).unwrap_or(None))
            .collect();
        present
            .iter()
            .enumerate()
            .all(|(i, v)| (i == 5) == v.is_none())
    });
    let v: Option<String> = r.get(format!("{t}:6")).expect("redis");
    assert_eq!(v.as_deref(), Some("again"));
    let v: Option<String> = r.get(format!("{t}:42")).expect("redis");
    assert_eq!(v.as_deref(), Some("v42"));
    let late: bool = r.exists(format!("{t}:200")).expect("redis");
    assert!(
        !late,
        "a write then its tombstone in one batch leaves no key"
    );
    let ttl: i64 = r.ttl(format!("{t}:42")).expect("redis");
    assert!((1..=300).contains(&ttl), "redis.key.ttl applied: {ttl}");

    wait_redis(&worker, &all, "the HASH keys", || {
        r.exists::<_, bool>("users/3").unwrap_or(false)
    });
    let alice: BTreeMap<String, String> = r.hgetall("users/1").expect("redis");
    assert_eq!(
        alice,
        BTreeMap::from([
            ("id".to_owned(), "1".to_owned()),
            ("name".to_owned(), "alice".to_owned()),
            ("tags".to_owned(), r#"["a","b"]"#.to_owned()),
        ])
    );
    assert!(
        !r.exists::<_, bool>("users/2").expect("redis"),
        "tombstone deleted users/2"
    );

    let s = &topics["stream"];
    wait_redis(&worker, &all, "20 stream entries", || {
        r.xlen::<_, i64>(s).unwrap_or(0) >= 20
    });
    assert_eq!(r.xlen::<_, i64>(s).expect("XLEN"), 20);
    let first: redis::Value = redis::cmd("XRANGE")
        .arg(s)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query(&mut r)
        .expect("redis");
    let text = format!("{first:?}");
    assert!(
        text.contains("amount") && text.contains("12.34"),
        "decimal field as text: {text}"
    );

    let l = &topics["list"];
    wait_redis(&worker, &all, "the LIST", || {
        r.lrange::<_, Vec<String>>(l, 0, -1).unwrap_or_default() == ["b"]
    });
    let set_key = format!("set:{}", topics["set"]);
    wait_redis(&worker, &all, "the SET", || {
        r.smembers::<_, BTreeSet<String>>(&set_key)
            .unwrap_or_default()
            == BTreeSet::from(["y".to_owned(), "z".to_owned()])
    });
    let z = &topics["zset"];
    wait_redis(&worker, &all, "the ZSET", || {
        r.zcard::<_, i64>(z).unwrap_or(0) == 2
    });
    let scores: Vec<(String, f64)> = r.zrange_withscores(z, 0, -1).expect("redis");
    assert_eq!(
        scores,
        [("carol".to_owned(), -1.0), ("bob".to_owned(), 2.5)]
    );
    for name in &all {
        let (state, trace) = worker.task_state(name);
        assert_eq!(state, "RUNNING", "{name}: {trace}");
    }

    // Tidy up the keys this test wrote.
    let mut keys: Vec<String> = (0..201).map(|i| format!("{t}:{i}")).collect();
    keys.extend([
        "users/1".into(),
        "users/3".into(),
        s.clone(),
        l.clone(),
        set_key,
        z.clone(),
    ]);
    let _: i64 = r.del(keys).expect("redis");
}

#[test]
fn a_record_redis_cannot_take_fails_the_task_with_a_clear_trace() {
    let rt = runtime();
    let mut r = redis();
    let topic = unique("redis-bad");
    rt.block_on(create_topic(&topic));
    // A key that already holds a string cannot take HSET: Redis answers WRONGTYPE.
    let _: () = r.set(format!("{topic}:1"), "a string").expect("redis");
    rt.block_on(produce(&topic, &[kv(1, Some(r#"{"id": 1}"#))]));
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("redis-wrongtype");
    worker.create(
        &name,
        sink(
            &topic,
            "HASH",
            json!({
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter.schemas.enable": "false",
            }),
        ),
    );
    let trace = worker.wait_task_failed(&name);
    assert!(
        trace.contains("WRONGTYPE") && trace.contains("offset 0"),
        "{trace}"
    );
    let _: i64 = r.del(format!("{topic}:1")).expect("redis");
}

/// A batch goes to Redis as a few pipelines sent back to back (`PARTS` in the plugin):
/// commands still run in record order across them, and a command Redis rejects in a
/// later part fails the record it came from.
#[test]
fn a_batch_sent_in_parts_keeps_record_order_and_blames_the_right_record() {
    let rt = runtime();
    let mut r = redis();
    let big = json!({
        "batch.max.records": "1000",
        "consumer.override.max.poll.records": "1000",
    });
    // LIST: RPUSH of 1000 members, whose order in the list is the records' order.
    let list = unique("redis-parts-list");
    let members: Vec<_> = (0..1000).map(|i| kv(i, Some("x"))).collect();
    // STRING: 600 writes, then tombstones of the first 300, in one batch when it fills.
    let strings = unique("redis-parts-string");
    let mut writes: Vec<_> = (0..600).map(|i| kv(i, Some("v"))).collect();
    writes.extend((0..300).map(|i| kv(i, None)));
    // HASH: record 700 of 800 meets a key that holds a string (WRONGTYPE).
    let hashes = unique("redis-parts-hash");
    let _: () = r.set(format!("{hashes}:700"), "a string").expect("redis");
    let objects: Vec<_> = (0..800).map(|i| kv(i, Some(r#"{"n": 1}"#))).collect();
    for (topic, records) in [(&list, &members), (&strings, &writes), (&hashes, &objects)] {
        rt.block_on(create_topic(topic));
        rt.block_on(produce(topic, records));
    }

    let worker = RestWorker::start(&bootstrap(), "");
    let names = [
        unique("redis-parts-list"),
        unique("redis-parts-string"),
        unique("redis-parts-hash"),
    ];
    worker.create(&names[0], sink(&list, "LIST", big.clone()));
    worker.create(&names[1], sink(&strings, "STRING", big.clone()));
    let mut hash_extra = big;
    hash_extra["value.converter"] = json!("org.apache.kafka.connect.json.JsonConverter");
    hash_extra["value.converter.schemas.enable"] = json!("false");
    worker.create(&names[2], sink(&hashes, "HASH", hash_extra));
    let all: Vec<&str> = names.iter().map(String::as_str).collect();

    wait_redis(&worker, &all, "1000 list members", || {
        r.llen::<_, i64>(&list).unwrap_or(0) >= 1000
    });
    let got: Vec<String> = r.lrange(&list, 0, -1).expect("LRANGE");
    let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(got, expected, "members in record order");

    wait_redis(&worker, &all, "the STRING keys", || {
        (0..600).all(|i| {
            r.exists::<_, bool>(format!("{strings}:{i}"))
                .unwrap_or(true)
                == (i >= 300)
        })
    });

    let trace = worker.wait_task_failed(&names[2]);
    assert!(
        trace.contains("WRONGTYPE") && trace.contains("offset 700"),
        "{trace}"
    );
    for name in &names[..2] {
        let (state, trace) = worker.task_state(name);
        assert_eq!(state, "RUNNING", "{name}: {trace}");
    }

    let mut keys: Vec<String> = (0..600).map(|i| format!("{strings}:{i}")).collect();
    keys.extend((0..800).map(|i| format!("{hashes}:{i}")));
    keys.push(list);
    for chunk in keys.chunks(500) {
        let _: i64 = r.del(chunk).expect("redis");
    }
}

/// `put` returns once a batch is sent and reads its replies in the next `put` or in
/// `flush`: a command Redis rejects then is reported for its record (`errant-records`),
/// which the error policy sends to the DLQ, and the rest of both batches is written.
#[test]
fn commands_rejected_after_put_returned_go_to_the_dlq_and_the_rest_is_written() {
    let rt = runtime();
    let mut r = redis();
    let topic = unique("redis-late");
    rt.block_on(create_topic(&topic));
    // Batches of 500: key 400 is in the first (its reply read when the second is put),
    // key 700 in the second (read at flush). Both hold strings, so HSET gets WRONGTYPE.
    for taken in [400, 700] {
        let _: () = r
            .set(format!("{topic}:{taken}"), "a string")
            .expect("redis");
    }
    let records: Vec<_> = (0..1000).map(|i| kv(i, Some(r#"{"n": 1}"#))).collect();
    rt.block_on(produce(&topic, &records));
    let dlq = unique("redis-late-dead");
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("redis-late");
    worker.create(
        &name,
        sink(
            &topic,
            "HASH",
            json!({
                "batch.max.records": "500",
                "consumer.override.max.poll.records": "500",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter.schemas.enable": "false",
                "errors.tolerance": "all",
                "errors.deadletterqueue.topic.name": dlq,
                "errors.deadletterqueue.topic.replication.factor": "1",
                "errors.deadletterqueue.context.headers.enable": "true",
            }),
        ),
    );
    let keys = task_put_dead_letters(&dlq, 2, "RedisSinkConnector", "WRONGTYPE");
    assert_eq!(keys, ["400", "700"]);
    let hashes = |r: &mut redis::Connection| {
        (0..1000)
            .filter(|i| {
                r.hget::<_, _, Option<String>>(format!("{topic}:{i}"), "n")
                    .ok()
                    .flatten()
                    .is_some()
            })
            .count()
    };
    wait_redis(&worker, &[&name], "the other 998 hashes", || {
        hashes(&mut r) == 998
    });
    assert_eq!(worker.task_state(&name).0, "RUNNING");
    let keys: Vec<String> = (0..1000).map(|i| format!("{topic}:{i}")).collect();
    let _: i64 = r.del(keys).expect("redis");
}

/// A connection that breaks while a batch's replies are on the way loses them: that batch
/// is sent again before anything else, so every record is written (at least once, which
/// for SET is exactly the value), and the plugin's connection handle takes a new connection
/// at its next call. The test kills the sink's connections (in a Redis database of its own,
/// so no other test's) a few times while it writes.
#[test]
fn replies_lost_with_the_connection_are_sent_again_and_nothing_is_lost() {
    const DB: i64 = 5;
    const RECORDS: usize = 100_000;
    // Rounds of killing the sink's connections, 100 ms apart.
    const KILL_ROUNDS: usize = 5;
    let rt = runtime();
    let url = redis_url_in(DB);
    let mut r = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .expect("Redis reachable");
    let own: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query(&mut r)
        .expect("CLIENT ID");
    let topic = unique("redis-killed");
    rt.block_on(create_topic(&topic));
    let records: Vec<_> = (0..RECORDS)
        .map(|i| kv(i, Some(&format!("v{i}"))))
        .collect();
    rt.block_on(produce(&topic, &records));
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("redis-killed");
    worker.create(
        &name,
        sink(
            &topic,
            "STRING",
            json!({
                "redis.uri": url,
                "batch.max.records": "1000",
                "consumer.override.max.poll.records": "1000",
            }),
        ),
    );
    let last = format!("{topic}:{}", RECORDS - 1);
    let first = format!("{topic}:0");
    let mut kills = 0;
    let mut rounds = 0;
    wait_redis(&worker, &[&name], "the last key", || {
        let started: bool = r.exists(&first).unwrap_or(false);
        let done: bool = r.exists(&last).unwrap_or(false);
        if started && !done && rounds < KILL_ROUNDS {
            rounds += 1;
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query(&mut r)
                .unwrap_or_default();
            for line in clients
                .lines()
                .filter(|l| l.contains(&format!(" db={DB} ")))
            {
                let id = line
                    .split(' ')
                    .find_map(|f| f.strip_prefix("id="))
                    .unwrap_or("");
                if id != own.to_string() {
                    let killed: i64 = redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("ID")
                        .arg(id)
                        .query(&mut r)
                        .unwrap_or(0);
                    kills += killed;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        done
    });
    assert!(
        kills > 0,
        "the sink finished before a connection could be killed"
    );
    let keys: Vec<String> = (0..RECORDS).map(|i| format!("{topic}:{i}")).collect();
    let mut missing = Vec::new();
    for chunk in keys.chunks(1000) {
        let values: Vec<Option<String>> = r.mget(chunk).expect("MGET");
        for (key, value) in chunk.iter().zip(values) {
            let i = key.rsplit(':').next().unwrap_or("");
            if value.as_deref() != Some(format!("v{i}").as_str()) {
                missing.push(key.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} keys not written after {kills} kills, the first {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(worker.task_state(&name).0, "RUNNING");
    for chunk in keys.chunks(10_000) {
        let _: i64 = r.del(chunk).expect("redis");
    }
}

/// JSON needs the RedisJSON module: with it the document is stored, without it (Debian's
/// Redis) the record fails with Redis' own "unknown command" in the task's trace.
#[test]
fn json_documents_need_the_redisjson_module() {
    let rt = runtime();
    let mut r = redis();
    let modules: redis::Value = redis::cmd("MODULE")
        .arg("LIST")
        .query(&mut r)
        .expect("redis");
    let has_json = format!("{modules:?}").to_ascii_lowercase().contains("json");
    let topic = unique("redis-json");
    rt.block_on(create_topic(&topic));
    rt.block_on(produce(
        &topic,
        &[kv(1, Some(r#"{"id": 1, "tags": ["a"]}"#))],
    ));
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("redis-json");
    worker.create(
        &name,
        sink(
            &topic,
            "JSON",
            json!({
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter.schemas.enable": "false",
            }),
        ),
    );
    let key = format!("{topic}:1");
    if has_json {
        wait_redis(&worker, &[&name], "the JSON document", || {
            r.exists::<_, bool>(&key).unwrap_or(false)
        });
        let doc: String = redis::cmd("JSON.GET")
            .arg(&key)
            .query(&mut r)
            .expect("redis");
        assert_eq!(doc, r#"{"id":1,"tags":["a"]}"#);
        let _: i64 = r.del(&key).expect("redis");
    } else {
        let trace = worker.wait_task_failed(&name);
        assert!(
            trace.contains("unknown command") && trace.contains("JSON.SET"),
            "{trace}"
        );
    }
}

#[test]
fn invalid_configs_are_rejected_with_the_key_named() {
    let worker = RestWorker::start(&bootstrap(), "");
    for (config, key) in [
        (
            json!({"connector.class": "RedisSinkConnector", "topics": "t", "redis.type": "LIST", "redis.keyspace": ""}),
            "redis.keyspace",
        ),
        (
            json!({"connector.class": "RedisSinkConnector", "topics": "t", "redis.type": "TIMESERIES"}),
            "redis.type",
        ),
    ] {
        let message = worker.create_refused(config);
        assert!(message.contains(key), "{message} names {key}");
    }
}
