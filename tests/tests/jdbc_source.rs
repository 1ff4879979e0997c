//! The JDBC source end to end: tables in the machine's real MariaDB, a `wasmconnect`
//! worker process with the `JdbcSourceConnector` plugin, and the records read back from a
//! real Kafka-protocol broker (`KAFKA_BOOTSTRAP`, Tansu under `make test`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use wasmconnect_e2e::db::{DATABASE, mysql_database, postgres_url};
use wasmconnect_e2e::kafka::{bootstrap, consume, runtime};
use wasmconnect_e2e::{RestWorker, unique, wait_for};

fn source(table: &str, prefix: &str, extra: Value) -> Value {
    let mut config = json!({
        "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
        "connection.url": format!("jdbc:mysql://127.0.0.1:3306/{DATABASE}?useSSL=false"),
        "connection.user": "root",
        "table.whitelist": table,
        "topic.prefix": prefix,
        "poll.interval.ms": "300",
        "batch.max.rows": "100",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    config
}

fn parse(records: &[(Option<String>, Option<String>)]) -> Vec<(Option<Value>, Value)> {
    records
        .iter()
        .map(|(k, v)| {
            (
                k.as_deref()
                    .map(|k| serde_json::from_str(k).expect("key JSON")),
                serde_json::from_str(v.as_deref().expect("a value")).expect("value JSON"),
            )
        })
        .collect()
}

fn ids(values: &[(Option<Value>, Value)]) -> Vec<i64> {
    values
        .iter()
        .map(|(_, v)| v["payload"]["id"].as_i64().expect("id"))
        .collect()
}

/// The example table, in incrementing mode: Kafka Connect's envelope, keys from
/// the primary key, new rows picked up, and a restart that resumes from the stored offset
/// without repeating a row.
#[test]
fn incrementing_mode_writes_connect_envelopes_and_resumes_after_restart() {
    let rt = runtime();
    let db = mysql_database(&rt);
    let table = unique("test_user").replace('-', "_");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (id bigint NOT NULL AUTO_INCREMENT, name varchar(255), PRIMARY KEY (id))"
        ))
        .execute(&db),
    )
    .expect("create table");
    let insert = |rt: &tokio::runtime::Runtime, from: i64, to: i64| {
        let values: Vec<String> = (from..to).map(|i| format!("('user-{i}')")).collect();
        rt.block_on(
            sqlx::query(&format!(
                "INSERT INTO {table} (name) VALUES {}",
                values.join(",")
            ))
            .execute(&db),
        )
        .expect("insert");
    };
    insert(&rt, 1, 251);

    let prefix = format!("{}-", unique("mysql"));
    let topic = format!("{prefix}{table}");
    let mut worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-source");
    let config = source(
        &table,
        &prefix,
        json!({"mode": "incrementing", "record.key": "primary_key"}),
    );
    worker.create(&name, config.clone());
    let first = parse(&consume(&topic, 250, Duration::from_secs(90)));
    assert_eq!(
        ids(&first),
        (1..=250).collect::<Vec<_>>(),
        "every row once, in order; worker says {}",
        worker.status(&name)
    );
    assert_eq!(
        first[0].1,
        json!({"schema": {"type": "struct", "fields": [
                {"type": "int64", "optional": false, "field": "id"},
                {"type": "string", "optional": true, "field": "name"}],
            "optional": false, "name": table},
         "payload": {"id": 1, "name": "user-1"}}),
        "Kafka Connect's envelope"
    );
    assert_eq!(first[0].0, Some(json!(1)), "the key is the primary key");

    // New rows arrive on the next poll.
    insert(&rt, 251, 261);
    let more = parse(&consume(&topic, 260, Duration::from_secs(60)));
    assert_eq!(ids(&more), (1..=260).collect::<Vec<_>>());

    // Stop, insert while stopped, start again: only the new rows follow.
    worker.restart();
    insert(&rt, 261, 266);
    worker.create(&name, config);
    let all = parse(&consume(&topic, 265, Duration::from_secs(60)));
    let all_ids = ids(&all);
    assert_eq!(
        all_ids,
        (1..=265).collect::<Vec<_>>(),
        "resumed without repeats"
    );
    let (state, trace) = worker.task_state(&name);
    assert_eq!(state, "RUNNING", "{trace}");
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

/// timestamp+incrementing sees updates; offsets use Confluent's partition and offset maps.
#[test]
fn timestamp_incrementing_mode_sees_updates_with_confluent_offsets() {
    let rt = runtime();
    let db = mysql_database(&rt);
    let table = unique("orders").replace('-', "_");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, status varchar(20) NOT NULL, \
             amount decimal(10,2), updated_at datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3))"
        ))
        .execute(&db),
    )
    .expect("create table");
    rt.block_on(
        sqlx::query(&format!(
            "INSERT INTO {table} (status, amount, updated_at) VALUES ('new', 12.34, '2024-01-01 00:00:00'), ('new', 5.00, '2024-01-01 00:00:00'), ('new', NULL, '2024-01-02 00:00:00')"
        ))
        .execute(&db),
    )
    .expect("insert");
    let prefix = format!("{}-", unique("mysql"));
    let topic = format!("{prefix}{table}");
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-source-ts");
    worker.create(
        &name,
        source(
            &table,
            &prefix,
            json!({"mode": "timestamp+incrementing", "timestamp.column.name": "updated_at", "incrementing.column.name": "id"}),
        ),
    );
    let rows = parse(&consume(&topic, 3, Duration::from_secs(90)));
    assert_eq!(
        ids(&rows),
        [1, 2, 3],
        "worker says {}",
        worker.status(&name)
    );
    let payload = &rows[0].1["payload"];
    // 12.34 as a Connect Decimal (base64 of the unscaled 1234) and the DATETIME as UTC ms.
    assert_eq!(payload["amount"], json!("BNI="));
    assert_eq!(payload["updated_at"], json!(1_704_067_200_000_i64));
    assert_eq!(rows[0].0, None, "no key unless record.key=primary_key");

    rt.block_on(
        sqlx::query(&format!(
            "UPDATE {table} SET status = 'paid', updated_at = '2024-02-01 00:00:00' WHERE id = 2"
        ))
        .execute(&db),
    )
    .expect("update");
    let rows = parse(&consume(&topic, 4, Duration::from_secs(60)));
    assert_eq!(ids(&rows), [1, 2, 3, 2]);
    assert_eq!(rows[3].1["payload"]["status"], json!("paid"));

    // The stored offsets are Confluent's maps. They are flushed every
    // offset.flush.interval.ms (500 ms here), so wait for the update's.
    let offsets = || -> Value {
        let (status, body) = wasmconnect_e2e::rest(
            worker.port,
            "GET",
            &format!("/connectors/{name}/offsets"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("offsets JSON")
    };
    wait_for(
        "the update's offset to be stored",
        Duration::from_secs(30),
        || offsets()["offsets"][0]["offset"]["timestamp"] == json!(1_706_745_600_000_i64),
        || format!("{}", offsets()),
    );
    let offsets = offsets();
    let entry = &offsets["offsets"][0];
    assert_eq!(
        entry["partition"],
        json!({"protocol": "1", "table": format!("{DATABASE}.{table}")}),
        "{offsets}"
    );
    assert_eq!(entry["offset"]["incrementing"], json!(2), "{offsets}");
    assert_eq!(
        entry["offset"]["timestamp"],
        json!(1_706_745_600_000_i64),
        "{offsets}"
    );
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

/// Timestamp-only mode with equal timestamps across batch boundaries: every row once, and
/// the stored timestamp moves past a timestamp only when all its rows were sent.
#[test]
fn timestamp_mode_keeps_equal_timestamp_runs_whole() {
    let rt = runtime();
    let db = mysql_database(&rt);
    let table = unique("events").replace('-', "_");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (id int NOT NULL PRIMARY KEY, at datetime NOT NULL)"
        ))
        .execute(&db),
    )
    .expect("create table");
    let insert = |rt: &tokio::runtime::Runtime, rows: &str| {
        rt.block_on(sqlx::query(&format!("INSERT INTO {table} VALUES {rows}")).execute(&db))
            .expect("insert");
    };
    insert(
        &rt,
        "(1, '2024-01-01 00:00:00'), (2, '2024-01-01 00:00:00'), (3, '2024-01-01 00:00:00'), \
         (4, '2024-01-02 00:00:00'), (5, '2024-01-02 00:00:00')",
    );
    let prefix = format!("{}-", unique("ts"));
    let topic = format!("{prefix}{table}");
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-ts");
    worker.create(
        &name,
        source(
            &table,
            &prefix,
            json!({"mode": "timestamp", "timestamp.column.name": "at", "batch.max.rows": "2"}),
        ),
    );
    let rows = parse(&consume(&topic, 5, Duration::from_secs(90)));
    let mut got = ids(&rows);
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3, 4, 5], "worker says {}", worker.status(&name));
    insert(&rt, "(6, '2024-01-03 00:00:00')");
    let rows = parse(&consume(&topic, 6, Duration::from_secs(60)));
    assert_eq!(
        rows.len(),
        6,
        "row 6 arrives; worker says {}",
        worker.status(&name)
    );
    // Several polls later only the new row has been added.
    let rows = parse(&consume(&topic, 7, Duration::from_secs(3)));
    let mut got = ids(&rows);
    got.sort_unstable();
    assert_eq!(got, [1, 2, 3, 4, 5, 6], "nothing repeated");
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

/// Bulk mode copies the whole table each time, and a table far larger than a batch is
/// streamed (the worker holds at most a cursor's read-ahead, not the table).
#[test]
fn bulk_mode_streams_a_large_table_and_query_mode_appends_its_where() {
    let rt = runtime();
    let db = mysql_database(&rt);
    let table = unique("big").replace('-', "_");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (id bigint NOT NULL PRIMARY KEY, payload varchar(100) NOT NULL)"
        ))
        .execute(&db),
    )
    .expect("create table");
    for chunk in 0..20 {
        let values: Vec<String> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| format!("({i}, 'row-{i}')"))
            .collect();
        rt.block_on(
            sqlx::query(&format!("INSERT INTO {table} VALUES {}", values.join(","))).execute(&db),
        )
        .expect("insert");
    }
    let prefix = format!("{}-", unique("bulk"));
    let topic = format!("{prefix}{table}");
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-bulk");
    worker.create(
        &name,
        source(
            &table,
            &prefix,
            json!({"mode": "bulk", "poll.interval.ms": "3600000", "batch.max.rows": "500"}),
        ),
    );
    let rows = consume(&topic, 20_000, Duration::from_secs(120));
    let distinct: BTreeSet<i64> = parse(&rows)
        .iter()
        .map(|(_, v)| v["payload"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(
        distinct.len(),
        20_000,
        "worker says {}",
        worker.status(&name)
    );

    // A query: the mode's WHERE is appended, the prefix is the whole topic.
    let query_topic = unique("query");
    let query_name = unique("jdbc-query");
    worker.create(
        &query_name,
        json!({
            "connector.class": "JdbcSourceConnector",
            "connection.url": format!("jdbc:mariadb://127.0.0.1:3306/{DATABASE}"),
            "connection.user": "root",
            "mode": "incrementing",
            "incrementing.column.name": "id",
            "query": format!("SELECT id, payload FROM {table}"),
            "topic.prefix": query_topic,
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
        }),
    );
    let rows = consume(&query_topic, 20_000, Duration::from_secs(120));
    assert_eq!(
        rows.len(),
        20_000,
        "worker says {}",
        worker.status(&query_name)
    );
    let last: Value =
        serde_json::from_str(rows[19_999].1.as_deref().expect("value")).expect("JSON");
    assert_eq!(last, json!({"id": 19_999, "payload": "row-19999"}));
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

/// The worker's peak memory while copying a table several times larger than it: rows are
/// streamed through a cursor, never collected.
#[test]
fn memory_stays_bounded_on_a_table_larger_than_the_worker() {
    const ROWS: i64 = 100_000;
    const ROW_BYTES: i64 = 1500;
    let rt = runtime();
    let db = mysql_database(&rt);
    let table = unique("wide").replace('-', "_");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, payload TEXT NOT NULL)"
        ))
        .execute(&db),
    )
    .expect("create table");
    // MariaDB's sequence engine fills 143 MiB in one statement.
    rt.block_on(
        sqlx::query(&format!(
            "INSERT INTO {table} SELECT seq, REPEAT('x', {ROW_BYTES}) FROM seq_1_to_{ROWS}"
        ))
        .execute(&db),
    )
    .expect("rows");
    let prefix = format!("{}-", unique("wide"));
    let topic = format!("{prefix}{table}");
    let worker = RestWorker::start(&bootstrap(), "");
    let pid = worker
        .worker
        .0
        .as_ref()
        .map(std::process::Child::id)
        .expect("pid");
    let name = unique("jdbc-wide");
    worker.create(
        &name,
        source(
            &table,
            &prefix,
            json!({"mode": "incrementing", "batch.max.rows": "500",
                   "value.converter.schemas.enable": "false"}),
        ),
    );
    let rows = consume(&topic, ROWS as usize, Duration::from_secs(300));
    assert_eq!(
        rows.len(),
        ROWS as usize,
        "worker says {}",
        worker.status(&name)
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let peak_kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    let table_mib = ROWS * ROW_BYTES / (1024 * 1024);
    eprintln!(
        "worker peak RSS {} MiB for a {table_mib} MiB table",
        peak_kib / 1024
    );
    // The worker alone (wasmtime, five compiled plugins, librdkafka) peaks at about 70 MiB
    // here; holding the table would put it above the table's size.
    assert!(
        peak_kib / 1024 < table_mib,
        "peak RSS {} MiB against a {table_mib} MiB table",
        peak_kib / 1024
    );
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

/// PostgreSQL: metadata from information_schema (bigserial found as the incrementing
/// column, NOT NULL columns required), numeric as a Decimal, keys from the primary key.
#[test]
fn postgres_table_in_incrementing_mode() {
    let rt = runtime();
    let db = rt
        .block_on(sqlx::PgPool::connect(&postgres_url()))
        .expect("PostgreSQL reachable (scripts/services.sh starts it)");
    let table = unique("pg_users").replace('-', "_");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (id bigserial PRIMARY KEY, name text NOT NULL, amount numeric(10,2), seen timestamp)"
        ))
        .execute(&db),
    )
    .expect("create table");
    rt.block_on(
        sqlx::query(&format!(
            "INSERT INTO {table} (name, amount, seen) VALUES ('a', 12.34, '2024-01-01 00:00:00'), ('b', NULL, NULL)"
        ))
        .execute(&db),
    )
    .expect("rows");
    let prefix = format!("{}-", unique("pg"));
    let topic = format!("{prefix}{table}");
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-pg-source");
    let mut config = source(
        &table,
        &prefix,
        json!({"mode": "incrementing", "record.key": "primary_key"}),
    );
    config["connection.url"] = json!("jdbc:postgresql://127.0.0.1:5432/test?sslmode=disable");
    config["connection.user"] = json!("postgres");
    worker.create(&name, config);
    let rows = parse(&consume(&topic, 2, Duration::from_secs(90)));
    assert_eq!(ids(&rows), [1, 2], "worker says {}", worker.status(&name));
    assert_eq!(rows[0].0, Some(json!(1)));
    assert_eq!(
        rows[0].1["schema"]["fields"],
        json!([
            {"type": "int64", "optional": false, "field": "id"},
            {"type": "string", "optional": false, "field": "name"},
            {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1, "parameters": {"scale": "2"}, "field": "amount"},
            {"type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp", "version": 1, "field": "seen"}
        ])
    );
    assert_eq!(
        rows[0].1["payload"],
        json!({"id": 1, "name": "a", "amount": "BNI=", "seen": 1_704_067_200_000_i64})
    );
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

/// A primary key of two columns becomes a struct key of both, in the table's order, and
/// every column type of the row reaches the envelope (text, a decimal, a NULL).
#[test]
fn a_composite_primary_key_becomes_a_struct_key() {
    let rt = runtime();
    let db = mysql_database(&rt);
    let table = unique("regional").replace('-', "_");
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {table} (region varchar(16) NOT NULL, id bigint NOT NULL, name varchar(64), \
             price decimal(8,2), PRIMARY KEY (region, id))"
        ))
        .execute(&db),
    )
    .expect("create table");
    rt.block_on(
        sqlx::query(&format!(
            "INSERT INTO {table} VALUES ('eu', 1, 'grüße \"a\"', 12.50), ('us', 2, NULL, NULL)"
        ))
        .execute(&db),
    )
    .expect("rows");
    let prefix = format!("{}-", unique("ck"));
    let topic = format!("{prefix}{table}");
    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-ck-source");
    worker.create(
        &name,
        source(
            &table,
            &prefix,
            json!({"mode": "incrementing", "incrementing.column.name": "id", "record.key": "primary_key"}),
        ),
    );
    let rows = parse(&consume(&topic, 2, Duration::from_secs(90)));
    assert_eq!(ids(&rows), [1, 2], "worker says {}", worker.status(&name));
    assert_eq!(rows[0].0, Some(json!({"region": "eu", "id": 1})));
    assert_eq!(rows[1].0, Some(json!({"region": "us", "id": 2})));
    assert_eq!(
        rows[0].1["payload"],
        json!({"region": "eu", "id": 1, "name": "grüße \"a\"", "price": "BOI="})
    );
    assert_eq!(
        rows[1].1["payload"],
        json!({"region": "us", "id": 2, "name": null, "price": null})
    );
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

#[test]
fn invalid_configs_are_rejected_with_the_key_named() {
    let worker = RestWorker::start(&bootstrap(), "");
    let message = worker.create_refused(json!({
        "connector.class": "JdbcSourceConnector",
        "connection.url": "jdbc:mysql://127.0.0.1/test",
        "mode": "timestamp",
        "topic.prefix": "x-",
    }));
    assert!(message.contains("timestamp.column.name"), "{message}");
}
