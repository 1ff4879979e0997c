//! The JDBC sink's other modes end to end (real broker, the worker binary): `update`,
//! `pk.mode=kafka`, `quote.sql.identifiers=never` and a non-UTC `db.timezone` on MariaDB,
//! `insert` with a duplicate key (the per-record path, failing the task or, found after
//! `put` returned, going to a DLQ), a column that appears in the middle
//! of a batch (`auto.evolve` between the batch's parts), and a SQLite file.

use serde_json::json;
use sqlx::Row;
use wasmconnect_e2e::db::{DATABASE, mysql_database};
use wasmconnect_e2e::kafka::{bootstrap, create_topic, produce, runtime, task_put_dead_letters};
use wasmconnect_e2e::{RestWorker, unique, wait_for};

use std::time::Duration;

fn envelope(id: i64, name: &str, seen_ms: i64) -> String {
    json!({"schema": {"type": "struct", "optional": false, "fields": [
        {"type": "int64", "optional": false, "field": "id"},
        {"type": "string", "optional": true, "field": "name"},
        {"type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1, "field": "seen"}]},
        "payload": {"id": id, "name": name, "seen": seen_ms}})
    .to_string()
}

fn sink(topic: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut config = json!({
        "connector.class": "JdbcSinkConnector",
        "topics": topic,
        "connection.url": format!("jdbc:mysql://127.0.0.1:3306/{DATABASE}"),
        "connection.user": "root",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    config
}

/// 2024-01-01T00:00:00Z in epoch milliseconds.
const NEW_YEAR_MS: i64 = 1_704_067_200_000;

#[test]
fn update_kafka_keys_unquoted_names_and_a_non_utc_zone_on_mariadb() {
    let rt = runtime();
    let db = mysql_database(&rt);
    let worker = RestWorker::start(&bootstrap(), "");

    // update: only existing rows change; a record for a missing row changes nothing.
    let topic = unique("upd");
    let table = topic.replace('-', "_");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(50), seen DATETIME(3))"
        ))
        .execute(&db),
    )
    .expect("table");
    rt.block_on(
        sqlx::query(&format!(
            "INSERT INTO {table} VALUES (1, 'old', NULL), (2, 'old', NULL)"
        ))
        .execute(&db),
    )
    .expect("rows");
    rt.block_on(create_topic(&topic));
    rt.block_on(produce(
        &topic,
        &[
            ("1".into(), Some(envelope(1, "new", NEW_YEAR_MS))),
            ("3".into(), Some(envelope(3, "ghost", NEW_YEAR_MS))),
        ],
    ));
    let update = unique("jdbc-update");
    worker.create(
        &update,
        sink(
            &topic,
            json!({"table.name.format": table, "insert.mode": "update", "pk.mode": "record_value",
                   "pk.fields": "id", "db.timezone": "+02:00", "quote.sql.identifiers": "never"}),
        ),
    );
    let rows = |rt: &tokio::runtime::Runtime| -> Vec<(i64, String, Option<String>)> {
        rt.block_on(
            sqlx::query(&format!(
                "SELECT id, name, CAST(seen AS CHAR) FROM {table} ORDER BY id"
            ))
            .fetch_all(&db),
        )
        .map(|rows| {
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
        })
        .unwrap_or_default()
    };
    wait_for(
        "row 1 updated",
        Duration::from_secs(90),
        || rows(&rt).first().is_some_and(|r| r.1 == "new"),
        || format!("{:?} {}", rows(&rt), worker.status(&update)),
    );
    // The timestamp is written in db.timezone (+02:00); row 3 was never inserted.
    assert_eq!(
        rows(&rt),
        [
            (
                1,
                "new".to_owned(),
                Some("2024-01-01 02:00:00.000".to_owned())
            ),
            (2, "old".to_owned(), None)
        ]
    );

    // pk.mode=kafka: the key is (topic, partition, offset), so a replay of the same
    // records cannot double them.
    let ktopic = unique("kafkapk");
    let ktable = ktopic.replace('-', "_");
    rt.block_on(create_topic(&ktopic));
    rt.block_on(produce(
        &ktopic,
        &[
            ("a".into(), Some(envelope(1, "x", NEW_YEAR_MS))),
            ("a".into(), Some(envelope(1, "x", NEW_YEAR_MS))),
        ],
    ));
    let kafka = unique("jdbc-kafka-pk");
    worker.create(
        &kafka,
        sink(
            &ktopic,
            json!({"table.name.format": ktable, "insert.mode": "upsert", "pk.mode": "kafka", "auto.create": "true"}),
        ),
    );
    let kafka_rows = |rt: &tokio::runtime::Runtime| -> Vec<(String, i32, i64)> {
        rt.block_on(
            sqlx::query(&format!(
                "SELECT __connect_topic, __connect_partition, __connect_offset FROM {ktable} ORDER BY __connect_offset"
            ))
            .fetch_all(&db),
        )
        .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
        .unwrap_or_default()
    };
    wait_for(
        "two rows keyed by offset",
        Duration::from_secs(90),
        || kafka_rows(&rt).len() == 2,
        || format!("{:?} {}", kafka_rows(&rt), worker.status(&kafka)),
    );
    assert_eq!(
        kafka_rows(&rt),
        [(ktopic.clone(), 0, 0), (ktopic.clone(), 0, 1)]
    );

    // quote.sql.identifiers=never refuses a name that is not a plain identifier: the
    // record fails clearly instead of becoming unquoted SQL.
    let bad_topic = unique("bad-name");
    rt.block_on(create_topic(&bad_topic));
    rt.block_on(produce(
        &bad_topic,
        &[("1".into(), Some(envelope(1, "x", 0)))],
    ));
    let never = unique("jdbc-never");
    worker.create(
        &never,
        sink(
            &bad_topic,
            json!({"quote.sql.identifiers": "never", "auto.create": "true"}),
        ),
    );
    let trace = worker.wait_task_failed(&never);
    assert!(trace.contains("not a plain SQL identifier"), "{trace}");
    for t in [&table, &ktable] {
        rt.block_on(sqlx::query(&format!("DROP TABLE {t}")).execute(&db))
            .expect("drop");
    }
}

/// A table whose rows `taken` are already written (named 'already'), and a topic of the
/// records of ids 1 to `records` (named 'new'), in order; returns the topic and the table.
fn taken_ids_and_records(
    rt: &tokio::runtime::Runtime,
    db: &sqlx::MySqlPool,
    prefix: &str,
    taken: &[i64],
    records: i64,
) -> (String, String) {
    let topic = unique(prefix);
    let table = topic.replace('-', "_");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name VARCHAR(50), seen DATETIME(3))"
        ))
        .execute(db),
    )
    .expect("table");
    for id in taken {
        rt.block_on(
            sqlx::query(&format!("INSERT INTO {table} VALUES (?, 'already', NULL)"))
                .bind(id)
                .execute(db),
        )
        .expect("a taken id");
    }
    rt.block_on(create_topic(&topic));
    let records: Vec<_> = (1..=records)
        .map(|id| (id.to_string(), Some(envelope(id, "new", NEW_YEAR_MS))))
        .collect();
    rt.block_on(produce(&topic, &records));
    (topic, table)
}

#[test]
fn insert_mode_duplicate_fails_only_its_record() {
    let rt = runtime();
    let db = mysql_database(&rt);
    // Id 1400 is in the second of the batch's two parts of 1000 records (the task is
    // handed 2000 at a time): its statement fails after the first part's was submitted.
    let (topic, table) = taken_ids_and_records(&rt, &db, "dup", &[1400], 2000);
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-dup");
    worker.create(
        &name,
        sink(
            &topic,
            json!({
                "table.name.format": table, "insert.mode": "insert",
                "batch.max.records": "2000",
            }),
        ),
    );
    let trace = worker.wait_task_failed(&name);
    // errors.tolerance=none: the duplicate fails the task, naming its offset (id 1400 is
    // record 1400, offset 1399), and the batch's other rows were written.
    assert!(
        trace.contains("offset 1399") && trace.contains("Duplicate"),
        "{trace}"
    );
    let names: Vec<(i64, String)> = rt
        .block_on(
            sqlx::query_as(&format!("SELECT id, name FROM {table} ORDER BY id")).fetch_all(&db),
        )
        .expect("rows");
    let expected: Vec<(i64, String)> = (1..=2000)
        .map(|id| (id, if id == 1400 { "already" } else { "new" }.to_owned()))
        .collect();
    assert_eq!(names, expected);
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

/// The sink returns from `put` once a batch is submitted and learns of a rejected statement
/// only in the next `put` or in `flush`: the records the database rejects still reach the
/// error policy then (`errant-records`), here a DLQ, and the rest of their batch is written.
#[test]
fn duplicates_found_after_put_returned_go_to_the_dlq_and_the_rest_is_written() {
    let rt = runtime();
    let db = mysql_database(&rt);
    // The consumer hands the task 500 records at a time: id 400 is in the first batch
    // (found when the second is put), id 700 in the second (found at flush).
    let (topic, table) = taken_ids_and_records(&rt, &db, "dup-dlq", &[400, 700], 1000);
    let dlq = unique("dup-dlq-dead");
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-dup-dlq");
    worker.create(
        &name,
        sink(
            &topic,
            json!({
                "table.name.format": table, "insert.mode": "insert",
                "errors.tolerance": "all",
                "errors.deadletterqueue.topic.name": dlq,
                "errors.deadletterqueue.topic.replication.factor": "1",
                "errors.deadletterqueue.context.headers.enable": "true",
            }),
        ),
    );
    let keys = task_put_dead_letters(&dlq, 2, "JdbcSinkConnector", "Duplicate");
    assert_eq!(keys, ["400", "700"]);
    let written = || -> i64 {
        rt.block_on(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE name = 'new'"))
                .fetch_one(&db),
        )
        .expect("count")
    };
    wait_for(
        "the other 998 rows",
        Duration::from_secs(30),
        || written() == 998,
        || format!("{} rows", written()),
    );
    assert_eq!(worker.task_state(&name).0, "RUNNING");
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

/// The sink builds and submits a batch 1000 records at a time; a part that brings a new
/// field rolls back what was submitted, adds the column and writes the batch again.
#[test]
fn a_field_new_in_the_middle_of_a_batch_becomes_a_column_and_no_row_is_lost() {
    let rt = runtime();
    let db = mysql_database(&rt);
    let topic = unique("evolve-mid");
    let table = topic.replace('-', "_");
    rt.block_on(create_topic(&topic));
    let with_email = |id: i64| {
        json!({"schema": {"type": "struct", "optional": false, "fields": [
            {"type": "int64", "optional": false, "field": "id"},
            {"type": "string", "optional": true, "field": "name"},
            {"type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1, "field": "seen"},
            {"type": "string", "optional": true, "field": "email"}]},
            "payload": {"id": id, "name": "evolved", "seen": NEW_YEAR_MS, "email": format!("u{id}@example.com")}})
        .to_string()
    };
    // Produced before the connector starts, so they mostly arrive as one batch: the new
    // field first appears in its second part.
    let records: Vec<_> = (0..2400)
        .map(|id| {
            let value = if id < 1200 {
                envelope(id, "plain", NEW_YEAR_MS)
            } else {
                with_email(id)
            };
            (id.to_string(), Some(value))
        })
        .collect();
    rt.block_on(produce(&topic, &records));
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-evolve-mid");
    worker.create(
        &name,
        sink(
            &topic,
            json!({
                "table.name.format": table,
                "insert.mode": "upsert",
                "pk.mode": "record_value",
                "pk.fields": "id",
                "auto.create": "true",
                "auto.evolve": "true",
                "batch.max.records": "2400",
            }),
        ),
    );
    let count = |filter: &str| -> i64 {
        rt.block_on(
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table} {filter}"))
                .fetch_one(&db),
        )
        .unwrap_or(-1)
    };
    wait_for(
        "2400 rows, the last 1200 with an email",
        Duration::from_secs(90),
        || count("") == 2400 && count("WHERE email IS NOT NULL") == 1200,
        || format!("connector status: {}", worker.status(&name)),
    );
    assert_eq!(count("WHERE email IS NULL AND id < 1200"), 1200);
    let (state, trace) = worker.task_state(&name);
    assert_eq!(state, "RUNNING", "{trace}");
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

#[test]
fn sqlite_file_upsert_end_to_end() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sink.db");
    let topic = unique("sqlite");
    rt.block_on(create_topic(&topic));
    let mut records: Vec<_> = (1..=50)
        .map(|id| (id.to_string(), Some(envelope(id, "v1", NEW_YEAR_MS))))
        .collect();
    records.push(("7".into(), Some(envelope(7, "v2", NEW_YEAR_MS))));
    rt.block_on(produce(&topic, &records));
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-sqlite");
    worker.create(
        &name,
        json!({
            "connector.class": "JdbcSinkConnector",
            "topics": topic,
            "connection.url": format!("jdbc:sqlite:{}", file.display()),
            "table.name.format": "users",
            "insert.mode": "upsert",
            "pk.mode": "record_value",
            "pk.fields": "id",
            "auto.create": "true",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        }),
    );
    let url = format!("sqlite:{}", file.display());
    let rows = |rt: &tokio::runtime::Runtime| -> Vec<(i64, String)> {
        let Ok(db) = rt.block_on(sqlx::SqlitePool::connect(&url)) else {
            return Vec::new();
        };
        let rows = rt
            .block_on(sqlx::query_as("SELECT id, name FROM users ORDER BY id").fetch_all(&db))
            .unwrap_or_default();
        rt.block_on(db.close());
        rows
    };
    wait_for(
        "50 rows, row 7 updated",
        Duration::from_secs(90),
        || {
            let r = rows(&rt);
            r.len() == 50 && r[6].1 == "v2"
        },
        || format!("{:?} {}", rows(&rt).len(), worker.status(&name)),
    );
}
