//! The worker's `plugin.allowed.hosts` end to end: a connector whose database or Redis is
//! on a host outside the list fails its task with a trace naming the host and the key,
//! and the same connector on a listed host writes. Real broker, MariaDB and Redis.

use serde_json::{Value, json};
use sqlx::Row;
use std::time::Duration;
use wasmconnect_e2e::db::{DATABASE, mysql_database};
use wasmconnect_e2e::kafka::{bootstrap, create_topic, produce, runtime};
use wasmconnect_e2e::{RestWorker, unique, wait_for};

/// A schemaless JDBC sink upserting `topic` into MariaDB on 127.0.0.1.
fn jdbc_sink(topic: &str) -> Value {
    json!({
        "connector.class": "JdbcSinkConnector",
        "topics": topic,
        "connection.url": format!("jdbc:mariadb://127.0.0.1:3306/{DATABASE}"),
        "connection.user": "root",
        "insert.mode": "upsert",
        "pk.mode": "record_value",
        "pk.fields": "id",
        "auto.create": "true",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    })
}

fn redis_sink(topic: &str) -> Value {
    json!({
        "connector.class": "RedisSinkConnector",
        "topics": topic,
        "redis.host": "127.0.0.1",
        "redis.port": "6379",
        "redis.type": "STRING",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    })
}

/// A topic holding one record, `{"id": 1, "name": "allowed"}` under key `1`.
fn topic_with_a_row(rt: &tokio::runtime::Runtime, prefix: &str) -> String {
    let topic = unique(prefix).replace('-', "_");
    rt.block_on(create_topic(&topic));
    rt.block_on(produce(
        &topic,
        &[(
            "1".into(),
            Some(json!({"id": 1, "name": "allowed"}).to_string()),
        )],
    ));
    topic
}

#[test]
fn connections_outside_the_allow_list_fail_the_task_naming_the_host() {
    let rt = runtime();
    let topic = topic_with_a_row(&rt, "denied");
    let worker = RestWorker::start(
        &bootstrap(),
        "plugin.allowed.hosts=db.internal,*.cache.internal",
    );

    for (name, config) in [
        (unique("jdbc-denied"), jdbc_sink(&topic)),
        (unique("redis-denied"), redis_sink(&topic)),
    ] {
        worker.create(&name, config);
        let trace = worker.wait_task_failed(&name);
        assert!(
            trace.contains("host 127.0.0.1 is not in the worker's plugin.allowed.hosts"),
            "{name}: {trace}"
        );
    }
    let mut check = redis::Client::open("redis://127.0.0.1:6379/0")
        .and_then(|c| c.get_connection())
        .expect("Redis reachable (scripts/services.sh starts it)");
    let written: i64 = redis::cmd("EXISTS")
        .arg(format!("{topic}:1"))
        .query(&mut check)
        .expect("EXISTS");
    assert_eq!(written, 0, "a denied Redis sink wrote its key");
}

#[test]
fn a_listed_host_is_reached() {
    let rt = runtime();
    let db = mysql_database(&rt);
    let topic = topic_with_a_row(&rt, "allowed");
    let worker = RestWorker::start(&bootstrap(), "plugin.allowed.hosts=db.internal, 127.0.0.1");
    let name = unique("jdbc-allowed");
    worker.create(&name, jdbc_sink(&topic));
    let query = format!("SELECT name FROM `{topic}` WHERE id = 1");
    wait_for(
        "the row in MariaDB",
        Duration::from_secs(60),
        || {
            rt.block_on(sqlx::query(&query).fetch_optional(&db))
                .ok()
                .flatten()
                .is_some_and(|row| row.get::<String, _>(0) == "allowed")
        },
        || format!("{}", worker.status(&name)),
    );
}
