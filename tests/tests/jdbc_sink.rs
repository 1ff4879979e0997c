//! The JDBC sink end to end: records produced to a real Kafka-protocol broker
//! (`KAFKA_BOOTSTRAP`, Tansu under `make test`), a `wasmconnect` worker process with the
//! `JdbcSinkConnector` plugin, and the rows read back from the real MariaDB and PostgreSQL
//! of the machine (`MYSQL_URL`, `POSTGRES_URL` override where they are).

use std::time::Duration;

use serde_json::json;
use sqlx::Row;
use wasmconnect_e2e::db::{DATABASE, mysql_database, postgres_url};
use wasmconnect_e2e::kafka::{bootstrap, create_topic, produce, runtime};
use wasmconnect_e2e::{RestWorker, unique, wait_for};

/// A user row as Kafka Connect's JsonConverter writes it: a struct with logical types and a
/// field whose name tries to break out of the quoting.
fn user_envelope(id: i64, name: &str, with_email: bool) -> String {
    let mut fields = vec![
        json!({"type": "int64", "optional": false, "field": "id"}),
        json!({"type": "string", "optional": true, "field": "name"}),
        json!({"type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": {"scale": "2"}, "field": "amount"}),
        json!({"type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date", "version": 1, "field": "born"}),
        json!({"type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1, "field": "seen"}),
        json!({"type": "boolean", "optional": true, "field": "active"}),
        json!({"type": "string", "optional": true, "field": "we`ird\"; DROP TABLE x; --"}),
    ];
    let mut payload = json!({
        "id": id,
        "name": name,
        // 1234 as a big-endian unscaled integer: 12.34
        "amount": "BNI=",
        "born": 19_000,
        "seen": 1_700_000_000_123_i64,
        "active": id % 2 == 0,
        "we`ird\"; DROP TABLE x; --": "ok",
    });
    if with_email {
        fields.push(json!({"type": "string", "optional": true, "field": "email"}));
        payload["email"] = json!(format!("u{id}@example.com"));
    }
    json!({"schema": {"type": "struct", "fields": fields, "optional": false, "name": "test_user"}, "payload": payload})
        .to_string()
}

fn wait_rows(
    rt: &tokio::runtime::Runtime,
    worker: &RestWorker,
    connector: &str,
    what: &str,
    mut check: impl FnMut(&tokio::runtime::Runtime) -> bool,
) {
    wait_for(
        what,
        Duration::from_secs(90),
        || check(rt),
        || format!("connector status: {}", worker.status(connector)),
    );
}

#[test]
fn mariadb_upsert_with_auto_create_evolve_and_replay() {
    let rt = runtime();
    let db = mysql_database(&rt);
    let topic = unique("users");
    rt.block_on(create_topic(&topic));

    let first: Vec<_> = (0..1000)
        .map(|id| {
            (
                id.to_string(),
                Some(user_envelope(id, &format!("user-{id}"), false)),
            )
        })
        .collect();
    let updates: Vec<_> = (0..500)
        .map(|id| {
            (
                id.to_string(),
                Some(user_envelope(id, &format!("user-{id}-v2"), false)),
            )
        })
        .collect();
    rt.block_on(produce(&topic, &first));
    rt.block_on(produce(&topic, &updates));

    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-mariadb");
    worker.create(
        &name,
        json!({
            "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
            "topics": topic,
            "connection.url": format!("jdbc:mysql://127.0.0.1:3306/{DATABASE}?useSSL=false&serverTimezone=UTC&rewriteBatchedStatements=true"),
            "connection.user": "root",
            "insert.mode": "upsert",
            "pk.mode": "record_value",
            "pk.fields": "id",
            "auto.create": "true",
            "auto.evolve": "true",
            "batch.size": "200",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "true",
        }),
    );
    let table = format!("`{topic}`");
    let count = |rt: &tokio::runtime::Runtime, filter: &str| -> i64 {
        rt.block_on(
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table} {filter}"))
                .fetch_one(&db),
        )
        .unwrap_or(-1)
    };
    wait_rows(
        &rt,
        &worker,
        &name,
        "1000 rows, 500 of them updated",
        |rt| count(rt, "") == 1000 && count(rt, "WHERE name LIKE '%-v2'") == 500,
    );

    // Types from auto.create, and values that round-trip exactly.
    let row = rt
        .block_on(
            sqlx::query(&format!(
                "SELECT CAST(amount AS CHAR), CAST(born AS CHAR), CAST(seen AS CHAR), active, `we``ird\"; DROP TABLE x; --` FROM {table} WHERE id = 7"
            ))
            .fetch_one(&db),
        )
        .expect("row 7");
    assert_eq!(row.get::<String, _>(0), "12.34");
    assert_eq!(row.get::<String, _>(1), "2022-01-08");
    assert_eq!(row.get::<String, _>(2), "2023-11-14 22:13:20.123");
    assert_eq!(row.get::<i8, _>(3), 0);
    assert_eq!(row.get::<String, _>(4), "ok");
    let key: String = rt
        .block_on(
            sqlx::query_scalar(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'",
            )
            .bind(DATABASE)
            .bind(&topic)
            .fetch_one(&db),
        )
        .expect("primary key");
    assert_eq!(key, "id");

    // Replaying the same records leaves the same rows.
    let snapshot = |rt: &tokio::runtime::Runtime| -> Vec<(i64, Option<String>)> {
        rt.block_on(
            sqlx::query_as(&format!("SELECT id, name FROM {table} ORDER BY id")).fetch_all(&db),
        )
        .expect("rows")
    };
    let before = snapshot(&rt);
    rt.block_on(produce(&topic, &updates));
    // auto.evolve: a new optional field becomes a new column.
    let evolved: Vec<_> = (1000..1010)
        .map(|id| (id.to_string(), Some(user_envelope(id, "evolved", true))))
        .collect();
    rt.block_on(produce(&topic, &evolved));
    wait_rows(&rt, &worker, &name, "the evolved rows", |rt| {
        count(rt, "WHERE email IS NOT NULL") == 10
    });
    let after: Vec<_> = snapshot(&rt).into_iter().take(1000).collect();
    assert_eq!(before, after, "a replayed batch leaves the same rows");
    let (state, trace) = worker.task_state(&name);
    assert_eq!(state, "RUNNING", "{trace}");
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

#[test]
fn postgres_schemaless_upsert_and_tombstones_keep_order() {
    let rt = runtime();
    let db = rt
        .block_on(sqlx::PgPool::connect(&postgres_url()))
        .expect("PostgreSQL reachable (scripts/services.sh starts it)");
    let topic = unique("orders");
    rt.block_on(create_topic(&topic));

    let order = |id: i64, status: &str| -> (String, Option<String>) {
        (
            id.to_string(),
            Some(
                json!({"id": id, "status": status, "total": id as f64 * 1.5, "lines": [1, 2]})
                    .to_string(),
            ),
        )
    };
    let mut records: Vec<_> = (1..=100).map(|id| order(id, "new")).collect();
    // Write then tombstone: absent. Tombstone then write: present.
    records.push((5.to_string(), None));
    records.push((6.to_string(), None));
    records.push(order(6, "again"));
    records.push(order(200, "late"));
    records.push((200.to_string(), None));
    rt.block_on(produce(&topic, &records));

    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-postgres");
    worker.create(
        &name,
        json!({
            "connector.class": "JdbcSinkConnector",
            "topics": topic,
            "connection.url": "jdbc:postgresql://127.0.0.1:5432/test?sslmode=disable",
            "connection.user": "postgres",
            "insert.mode": "upsert",
            "pk.mode": "record_key",
            "pk.fields": "id",
            "delete.enabled": "true",
            "auto.create": "true",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
        }),
    );
    let table = format!("\"{topic}\"");
    let ids = |rt: &tokio::runtime::Runtime| -> Vec<i64> {
        rt.block_on(
            sqlx::query_scalar::<_, i64>(&format!("SELECT id FROM {table} ORDER BY id"))
                .fetch_all(&db),
        )
        .unwrap_or_default()
    };
    let expected: Vec<i64> = (1..=100).filter(|id| *id != 5).collect();
    wait_rows(&rt, &worker, &name, "99 orders", |rt| ids(rt) == expected);
    let row = rt
        .block_on(
            sqlx::query(&format!(
                "SELECT status, total, lines FROM {table} WHERE id = 6"
            ))
            .fetch_one(&db),
        )
        .expect("order 6");
    assert_eq!(row.get::<String, _>(0), "again");
    assert_eq!(row.get::<f64, _>(1), 9.0);
    assert_eq!(row.get::<String, _>(2), "[1,2]");
    // A later tombstone deletes a row written by an earlier batch.
    rt.block_on(produce(&topic, &[(10.to_string(), None)]));
    let expected: Vec<i64> = (1..=100).filter(|id| *id != 5 && *id != 10).collect();
    wait_rows(&rt, &worker, &name, "order 10 deleted", |rt| {
        ids(rt) == expected
    });
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

#[test]
fn missing_table_without_auto_create_fails_the_task_with_a_clear_trace() {
    let rt = runtime();
    mysql_database(&rt);
    let topic = unique("nowhere");
    rt.block_on(create_topic(&topic));
    rt.block_on(produce(
        &topic,
        &[("1".into(), Some(user_envelope(1, "x", false)))],
    ));
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-missing");
    worker.create(
        &name,
        json!({
            "connector.class": "JdbcSinkConnector",
            "topics": topic,
            "connection.url": format!("jdbc:mariadb://127.0.0.1:3306/{DATABASE}"),
            "connection.user": "root",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        }),
    );
    let trace = worker.wait_task_failed(&name);
    assert!(
        trace.contains("is missing and auto-creation is disabled"),
        "{trace}"
    );
}

#[test]
fn invalid_configs_are_rejected_with_the_key_named() {
    let worker = RestWorker::start(&bootstrap(), "");
    let message = worker.create_refused(json!({
        "connector.class": "JdbcSinkConnector",
        "topics": "t",
        "connection.url": "jdbc:mysql://127.0.0.1/test",
        "insert.mode": "upsert",
    }));
    assert!(message.contains("pk.mode"), "{message}");
}
