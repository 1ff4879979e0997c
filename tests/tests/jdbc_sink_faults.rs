//! The JDBC sink under failure, end to end (real MariaDB, real broker, the worker binary):
//! the worker killed with SIGKILL in the middle of a 100,000-record run, and MariaDB
//! restarted in the middle of a run. In both cases every record ends up in the table
//! exactly once (upsert). These restart the shared MariaDB, so they live in their own
//! test binary: cargo runs test binaries one after another.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use wasmconnect_e2e::db::{DATABASE, mysql_database, mysql_server};
use wasmconnect_e2e::kafka::{bootstrap, create_topic, produce, produce_one_per_batch, runtime};
use wasmconnect_e2e::{RestWorker, unique, wait_for, workspace};

/// One test at a time: one restarts the MariaDB the other writes to.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn record(id: i64) -> (String, Option<String>) {
    let value = json!({"schema": {"type": "struct", "optional": false, "fields": [
        {"type": "int64", "optional": false, "field": "id"},
        {"type": "string", "optional": false, "field": "name"}]},
        "payload": {"id": id, "name": format!("user-{id}")}});
    (id.to_string(), Some(value.to_string()))
}

fn sink(topic: &str, table: &str) -> serde_json::Value {
    json!({
        "connector.class": "JdbcSinkConnector",
        "topics": topic,
        "table.name.format": table,
        "connection.url": format!("jdbc:mysql://127.0.0.1:3306/{DATABASE}"),
        "connection.user": "root",
        "insert.mode": "upsert",
        "pk.mode": "record_value",
        "pk.fields": "id",
        "auto.create": "true",
        "batch.size": "1000",
        "batch.max.records": "1000",
        "consumer.override.max.poll.records": "1000",
        "max.retries": "30",
        "retry.backoff.ms": "500",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    })
}

/// `(rows, distinct ids, rows whose name is not user-<id>)`, or zeros while unreachable.
fn census(rt: &tokio::runtime::Runtime, table: &str) -> (i64, i64, i64) {
    let Ok(db) = rt.block_on(sqlx::MySqlPool::connect(&format!(
        "{}/{DATABASE}",
        mysql_server()
    ))) else {
        return (0, 0, 0);
    };
    let result = rt
        .block_on(
            sqlx::query_as::<_, (i64, i64, i64)>(&format!(
                "SELECT COUNT(*), COUNT(DISTINCT id), CAST(SUM(name <> CONCAT('user-', id)) AS SIGNED) FROM {table}"
            ))
            .fetch_one(&db),
        )
        .unwrap_or((0, 0, 0));
    rt.block_on(db.close());
    result
}

#[test]
fn sigkill_in_a_100k_run_then_restart_writes_every_record_exactly_once() {
    const RECORDS: i64 = 100_000;
    let _serial = serial();
    let rt = runtime();
    let db = mysql_database(&rt);
    let topic = unique("kill-run");
    let table = topic.replace('-', "_");
    rt.block_on(create_topic(&topic));
    let records: Vec<_> = (0..RECORDS).map(record).collect();
    // The restarted task resumes from a committed offset that may fall inside a batch,
    // which Tansu 0.6 cannot serve (`produce_one_per_batch` says why).
    rt.block_on(produce_one_per_batch(&topic, &records));

    let mut worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-kill");
    worker.create(&name, sink(&topic, &table));
    wait_for(
        "a fifth of the rows",
        Duration::from_secs(180),
        || census(&rt, &table).0 >= RECORDS / 5,
        || format!("{}", worker.status(&name)),
    );
    let at_kill = census(&rt, &table).0;
    assert!(at_kill < RECORDS, "the kill lands mid-run ({at_kill} rows)");
    worker.kill_and_restart();
    // Standalone connectors made through REST are not kept: create it again; its
    // consumer group resumes from the last committed offsets.
    worker.create(&name, sink(&topic, &table));
    wait_for(
        "every row",
        Duration::from_secs(300),
        || census(&rt, &table).0 >= RECORDS,
        || format!("{:?} {}", census(&rt, &table), worker.status(&name)),
    );
    assert_eq!(
        census(&rt, &table),
        (RECORDS, RECORDS, 0),
        "each record exactly once"
    );
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}

fn mariadb(action: &str) {
    let status = match action {
        "stop" => Command::new("start-stop-daemon")
            .args([
                "--stop",
                "--oknodo",
                "--retry",
                "30",
                "--exec",
                "/usr/sbin/mariadbd",
            ])
            .status(),
        _ => Command::new("bash")
            .arg(workspace().join("scripts/services.sh"))
            .arg("mariadb")
            .status(),
    }
    .expect("start-stop-daemon / services.sh");
    assert!(status.success(), "MariaDB {action}");
}

#[test]
fn a_mariadb_restart_mid_run_is_retried_without_loss() {
    const RECORDS: i64 = 20_000;
    let _serial = serial();
    let rt = runtime();
    let db = mysql_database(&rt);
    let topic = unique("db-restart");
    let table = topic.replace('-', "_");
    rt.block_on(create_topic(&topic));
    let records: Vec<_> = (0..RECORDS).map(record).collect();
    rt.block_on(produce(&topic, &records));
    rt.block_on(db.close());

    let worker = RestWorker::start(&bootstrap(), "");
    let name = unique("jdbc-db-restart");
    // Small batches, so that the run is still going when the database goes away.
    let mut config = sink(&topic, &table);
    config["batch.max.records"] = json!("20");
    config["consumer.override.max.poll.records"] = json!("20");
    worker.create(&name, config);
    wait_for(
        "the first rows",
        Duration::from_secs(120),
        || census(&rt, &table).0 >= 1000,
        || format!("{}", worker.status(&name)),
    );
    mariadb("stop");
    std::thread::sleep(Duration::from_secs(3));
    let (state, trace) = worker.task_state(&name);
    mariadb("start");
    assert_eq!(state, "RUNNING", "the task waits for the database: {trace}");
    let after_restart = census(&rt, &table).0;
    assert!(
        after_restart < RECORDS,
        "the restart landed mid-run ({after_restart} rows when the database came back)"
    );
    wait_for(
        "every row after the restart",
        Duration::from_secs(300),
        || census(&rt, &table).0 >= RECORDS,
        || format!("{:?} {}", census(&rt, &table), worker.status(&name)),
    );
    assert_eq!(
        census(&rt, &table),
        (RECORDS, RECORDS, 0),
        "nothing lost or doubled"
    );
    let (state, trace) = worker.task_state(&name);
    assert_eq!(state, "RUNNING", "{trace}");
    let db = mysql_database(&rt);
    rt.block_on(sqlx::query(&format!("DROP TABLE {table}")).execute(&db))
        .expect("drop");
}
