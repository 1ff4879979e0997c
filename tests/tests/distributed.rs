//! Distributed mode against the real broker at `KAFKA_BOOTSTRAP`: `wasmconnect distributed`
//! workers as separate processes on loopback ports form one group through the broker's
//! group coordinator, share connectors and tasks, forward leader-only writes, and move work
//! when a worker dies, stops or joins; a stopped connector's offsets are altered and reset
//! through any worker. Sinks write to MariaDB so that every record can be
//! counted after a failover.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use wasmconnect::herder::distributed::group::{GroupMember, GroupSettings};
use wasmconnect::herder::distributed::protocol::{
    Assignment, PROTOCOL_TYPE, Protocol, Work, WorkerMetadata,
};
use wasmconnect_e2e::db::mysql_database;
use wasmconnect_e2e::{GroupWorker, kafka, rest, unique, wait_for};

/// The tests start up to five workers each on a two-core machine; they run one after the
/// other so none's timings or waits depend on another's load.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn start_group(n: usize, group: &str) -> Vec<GroupWorker> {
    let bootstrap = kafka::bootstrap();
    (0..n)
        .map(|_| GroupWorker::start(&bootstrap, group, ""))
        .collect()
}

fn status_of(w: &GroupWorker, name: &str) -> Json {
    let (_, body) = rest(w.port, "GET", &format!("/connectors/{name}/status"), None);
    serde_json::from_str(&body).unwrap_or(Json::Null)
}

/// Sends a request and checks its status code; returns the body.
fn expect(port: u16, method: &str, path: &str, body: Option<&Json>, code: u16) -> String {
    let (status, answer) = rest(port, method, path, body);
    assert_eq!(status, code, "{method} {path}: {answer}");
    answer
}

/// Every worker's answer, for failure messages.
fn statuses(workers: &[&GroupWorker], name: &str) -> String {
    workers
        .iter()
        .map(|w| format!("{}: {}", w.port, status_of(w, name)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until every worker knows the leader (a leader-only write reaches it from each:
/// the probe's empty config is refused with 400 there), then returns the leader's index.
fn leader(workers: &[&GroupWorker]) -> usize {
    for w in workers {
        wait_for(
            "the worker to know its leader",
            Duration::from_secs(60),
            || {
                rest(
                    w.port,
                    "POST",
                    "/connectors",
                    Some(&json!({"name": "leader-probe", "config": {}})),
                )
                .0 == 400
            },
            || {
                rest(
                    w.port,
                    "POST",
                    "/connectors",
                    Some(&json!({"name": "leader-probe", "config": {}})),
                )
                .1
            },
        );
    }
    let mut found = None;
    wait_for(
        "a leader",
        Duration::from_secs(60),
        || {
            found = workers.iter().position(|w| w.is_leader());
            found.is_some()
        },
        || "no worker accepts leader-only writes".into(),
    );
    found.unwrap_or_default()
}

/// The connector's state and its tasks' (state, worker) as one worker reports them.
fn summary(status: &Json) -> (String, Vec<(String, String)>) {
    let tasks = status["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        t["state"].as_str().unwrap_or("?").to_owned(),
                        t["worker_id"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (
        status["connector"]["state"]
            .as_str()
            .unwrap_or("?")
            .to_owned(),
        tasks,
    )
}

/// Waits until every worker reports the connector in `state` with `tasks` tasks in `state`.
fn wait_everywhere(
    workers: &[&GroupWorker],
    name: &str,
    state: &str,
    tasks: usize,
    within: Duration,
) {
    wait_for(
        &format!("{name} {state} with {tasks} tasks on every worker"),
        within,
        || {
            let first = summary(&status_of(workers[0], name));
            first.0 == state
                && first.1.len() == tasks
                && first.1.iter().all(|(s, _)| s == state)
                && workers[1..]
                    .iter()
                    .all(|w| summary(&status_of(w, name)) == first)
        },
        || statuses(workers, name),
    );
}

/// Waits (as [`wait_everywhere`]) until every worker reports the connector in `state` with
/// `tasks` tasks in `state`, and checks that they agreed within a second: from the first
/// worker that showed it (each worker serves statuses from its own read of the status
/// topic) to the last. Returns the time from `since` until every worker showed it.
fn agreed_within_a_second(
    workers: &[&GroupWorker],
    name: &str,
    state: &str,
    tasks: usize,
    since: Instant,
) -> Duration {
    let target = |s: &(String, Vec<(String, String)>)| {
        s.0 == state && s.1.len() == tasks && s.1.iter().all(|(t, _)| t == state)
    };
    let mut first_seen: Option<Instant> = None;
    let mut reports = Vec::new();
    wait_for(
        &format!("{name} {state} with {tasks} tasks on every worker"),
        Duration::from_secs(30),
        || {
            reports = workers
                .iter()
                .map(|w| summary(&status_of(w, name)))
                .collect();
            if first_seen.is_none() && reports.iter().any(target) {
                first_seen = Some(Instant::now());
            }
            target(&reports[0]) && reports.iter().all(|r| *r == reports[0])
        },
        || statuses(workers, name),
    );
    let lag = first_seen.map(|t| t.elapsed()).unwrap_or_default();
    assert!(
        lag <= Duration::from_secs(1),
        "{name} {state}: the last worker reported it {} ms after the first",
        lag.as_millis()
    );
    println!(
        "{name} {state}: on every worker {} ms after the request, {} ms from the first to the last",
        since.elapsed().as_millis(),
        lag.as_millis()
    );
    since.elapsed()
}

fn jdbc_sink(topic: &str, table: &str, tasks: u32) -> Json {
    json!({
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "topics": topic,
        "tasks.max": tasks.to_string(),
        "connection.url": format!("jdbc:mysql://127.0.0.1:3306/{}?useSSL=false", wasmconnect_e2e::db::DATABASE),
        "connection.user": "root",
        "insert.mode": "upsert",
        "pk.mode": "record_value",
        "pk.fields": "id",
        "auto.create": "true",
        "table.name.format": table,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        "consumer.override.max.poll.records": "2000",
    })
}

fn row(id: u64) -> String {
    json!({
        "schema": {"type": "struct", "name": "row", "optional": false, "fields": [
            {"type": "int64", "optional": false, "field": "id"},
            {"type": "string", "optional": true, "field": "v"},
        ]},
        "payload": {"id": id, "v": "x"},
    })
    .to_string()
}

#[test]
fn writes_through_a_non_leader_are_forwarded_and_everything_survives_a_full_restart() {
    let _serial = one_at_a_time();
    let group = unique("wc-cluster");
    let mut workers = start_group(3, &group);
    let refs: Vec<&GroupWorker> = workers.iter().collect();
    let first_leader = leader(&refs);
    let other = &workers[(first_leader + 1) % 3];
    let rt = kafka::runtime();
    let _database = mysql_database(&rt);
    let topic = unique("dist-contract");
    rt.block_on(kafka::create_topic_with(&topic, 3));
    let table = topic.replace('-', "_");
    let name = unique("sink");

    // Create through a non-leader: forwarded, 201, applied.
    let created = Instant::now();
    expect(
        other.port,
        "POST",
        "/connectors",
        Some(&json!({"name": name, "config": jdbc_sink(&topic, &table, 3)})),
        201,
    );
    let refs: Vec<&GroupWorker> = workers.iter().collect();
    agreed_within_a_second(&refs, &name, "RUNNING", 3, created);

    // Tasks spread evenly once the group settles: no worker has more than one task above
    // another. (A status read mid-rebalance may show a worker that has not joined yet.)
    let per_worker = || {
        let (_, tasks) = summary(&status_of(&workers[0], &name));
        let mut per: BTreeMap<String, usize> = workers.iter().map(|w| (w.id(), 0)).collect();
        for (_, w) in &tasks {
            *per.entry(w.clone()).or_default() += 1;
        }
        per
    };
    wait_for(
        "tasks spread evenly",
        Duration::from_secs(30),
        || {
            let per = per_worker();
            let min = per.values().min().copied().unwrap_or(0);
            per.values().max().copied().unwrap_or(0) - min <= 1
        },
        || format!("uneven spread: {:?}", per_worker()),
    );

    // Active topics (KIP-558) live in the status topic: every worker answers with the
    // topic once a task has read from it, a reset through any worker empties the set on
    // all of them, and the next record read records the topic again.
    let topics_everywhere = |expected: &[&str]| {
        let path = format!("/connectors/{name}/topics");
        let want = json!({ &name: {"topics": expected} });
        for w in &workers {
            wait_for(
                &format!("active topics {expected:?}"),
                Duration::from_secs(30),
                || {
                    serde_json::from_str::<Json>(&rest(w.port, "GET", &path, None).1).ok()
                        == Some(want.clone())
                },
                || format!("{}: {}", w.port, rest(w.port, "GET", &path, None).1),
            );
        }
    };
    let one = |id: u64| vec![(id.to_string(), Some(row(id)))];
    rt.block_on(kafka::produce(&topic, &one(1)));
    topics_everywhere(&[&topic]);
    expect(
        other.port,
        "PUT",
        &format!("/connectors/{name}/topics/reset"),
        None,
        202,
    );
    topics_everywhere(&[]);
    rt.block_on(kafka::produce(&topic, &one(2)));
    topics_everywhere(&[&topic]);

    // Update, pause, stop, resume and restart through the non-leader.
    let mut config = jdbc_sink(&topic, &table, 2);
    config["name"] = json!(name);
    let updated = Instant::now();
    expect(
        other.port,
        "PUT",
        &format!("/connectors/{name}/config"),
        Some(&config),
        200,
    );
    agreed_within_a_second(&refs, &name, "RUNNING", 2, updated);
    let body = expect(
        other.port,
        "GET",
        &format!("/connectors/{name}/config"),
        None,
        200,
    );
    assert_eq!(
        serde_json::from_str::<Json>(&body).expect("json")["tasks.max"],
        "2"
    );

    // The task-count change rebalances the group; let it finish (every worker out of the
    // rebalance, so a leader-only write reaches the leader from each) before timing a pause.
    leader(&refs);
    let paused_at = Instant::now();
    expect(
        other.port,
        "PUT",
        &format!("/connectors/{name}/pause"),
        None,
        202,
    );
    agreed_within_a_second(&refs, &name, "PAUSED", 2, paused_at);

    let stopped_at = Instant::now();
    expect(
        other.port,
        "PUT",
        &format!("/connectors/{name}/stop"),
        None,
        204,
    );
    agreed_within_a_second(&refs, &name, "STOPPED", 0, stopped_at);

    let resumed_at = Instant::now();
    expect(
        other.port,
        "PUT",
        &format!("/connectors/{name}/resume"),
        None,
        202,
    );
    agreed_within_a_second(&refs, &name, "RUNNING", 2, resumed_at);

    expect(
        other.port,
        "POST",
        &format!("/connectors/{name}/restart?includeTasks=true"),
        None,
        202,
    );
    wait_everywhere(&refs, &name, "RUNNING", 2, Duration::from_secs(30));

    // A second connector, paused, to see target states come back after the restart.
    let paused = unique("paused-sink");
    expect(
        other.port,
        "POST",
        "/connectors",
        Some(
            &json!({"name": paused, "config": jdbc_sink(&topic, &format!("{table}_p"), 1), "initial_state": "PAUSED"}),
        ),
        201,
    );
    wait_everywhere(&refs, &paused, "PAUSED", 1, Duration::from_secs(30));

    // A source whose offsets live in the offset topic: stopped, its offsets altered through
    // the non-leader, the same on every worker (and again after the full restart below).
    let generator = unique("gen");
    expect(
        other.port,
        "POST",
        "/connectors",
        Some(&json!({"name": generator, "config": {
            "connector.class": "DatagenConnector",
            "kafka.topic": format!("{topic}-gen"),
            "iterations": "5",
            "max.interval": "1",
        }})),
        201,
    );
    let iteration = |w: &GroupWorker| {
        let body = rest(
            w.port,
            "GET",
            &format!("/connectors/{generator}/offsets"),
            None,
        )
        .1;
        serde_json::from_str::<Json>(&body).unwrap_or(Json::Null)["offsets"][0]["offset"]
            ["current.iteration"]
            .as_i64()
    };
    wait_for(
        "the generator's offset at 5",
        Duration::from_secs(30),
        || iteration(other) == Some(5),
        || {
            rest(
                other.port,
                "GET",
                &format!("/connectors/{generator}/offsets"),
                None,
            )
            .1
        },
    );
    let offsets_path = format!("/connectors/{generator}/offsets");
    let altered =
        json!({"offsets": [{"partition": {"task.id": 0}, "offset": {"current.iteration": 3}}]});
    let refused = expect(other.port, "PATCH", &offsets_path, Some(&altered), 400);
    assert!(refused.contains("STOPPED state"), "{refused}");
    expect(
        other.port,
        "PUT",
        &format!("/connectors/{generator}/stop"),
        None,
        204,
    );
    wait_everywhere(&refs, &generator, "STOPPED", 0, Duration::from_secs(10));
    let answer = expect(other.port, "PATCH", &offsets_path, Some(&altered), 200);
    assert!(answer.contains("altered successfully"), "{answer}");
    for w in &workers {
        assert_eq!(iteration(w), Some(3), "offsets on {}", w.port);
    }

    // Delete through the non-leader.
    let doomed = unique("doomed");
    expect(
        other.port,
        "POST",
        "/connectors",
        Some(&json!({"name": doomed, "config": jdbc_sink(&topic, &format!("{table}_d"), 1)})),
        201,
    );
    expect(
        other.port,
        "DELETE",
        &format!("/connectors/{doomed}"),
        None,
        204,
    );
    let mut first_gone: Option<Instant> = None;
    wait_for(
        "the deleted connector to disappear from every worker",
        Duration::from_secs(10),
        || {
            let gone = workers
                .iter()
                .filter(|w| rest(w.port, "GET", &format!("/connectors/{doomed}"), None).0 == 404)
                .count();
            if gone > 0 && first_gone.is_none() {
                first_gone = Some(Instant::now());
            }
            gone == workers.len()
        },
        || statuses(&refs, &doomed),
    );
    let lag = first_gone.map(|t| t.elapsed()).unwrap_or_default();
    assert!(
        lag <= Duration::from_secs(1),
        "the last worker forgot {doomed} {} ms after the first",
        lag.as_millis()
    );

    // Stop every worker, start them again: everything comes back as it was.
    for w in &mut workers {
        w.stop();
    }
    for w in &mut workers {
        w.spawn();
    }
    let refs: Vec<&GroupWorker> = workers.iter().collect();
    wait_everywhere(&refs, &name, "RUNNING", 2, Duration::from_secs(60));
    wait_everywhere(&refs, &paused, "PAUSED", 1, Duration::from_secs(30));
    wait_everywhere(&refs, &generator, "STOPPED", 0, Duration::from_secs(30));
    for w in &workers {
        assert_eq!(
            iteration(w),
            Some(3),
            "offsets after the restart on {}",
            w.port
        );
    }
    // A leader-only request answers 409 until the restarted group has a leader again.
    leader(&refs);
    let answer = expect(workers[0].port, "DELETE", &offsets_path, None, 200);
    assert!(answer.contains("reset successfully"), "{answer}");
    for w in &workers {
        assert_eq!(iteration(w), None, "offsets after the reset on {}", w.port);
    }
    let (_, list) = rest(workers[2].port, "GET", "/connectors", None);
    let list: Vec<String> = serde_json::from_str(&list).expect("list");
    assert!(
        list.contains(&name) && list.contains(&paused) && !list.contains(&doomed),
        "{list:?}"
    );
}

/// A topic of `partitions` partitions holding rows `0..count` for a JDBC sink, and the
/// MariaDB table it is to write: `(runtime, pool, topic, table)`. One record per batch:
/// tasks resume from committed offsets inside what would otherwise be one batch, which
/// Tansu 0.6 cannot serve (`kafka::produce_one_per_batch`).
fn sink_input(
    prefix: &str,
    partitions: usize,
    count: u64,
) -> (tokio::runtime::Runtime, sqlx::MySqlPool, String, String) {
    let rt = kafka::runtime();
    let pool = mysql_database(&rt);
    let topic = unique(prefix);
    rt.block_on(kafka::create_topic_with(&topic, partitions as i32));
    let table = topic.replace('-', "_");
    let records: Vec<(String, Option<String>)> =
        (0..count).map(|i| (i.to_string(), Some(row(i)))).collect();
    let produced = Instant::now();
    rt.block_on(kafka::produce_one_per_batch(&topic, &records));
    println!(
        "produced {count} records in {} ms",
        produced.elapsed().as_millis()
    );
    (rt, pool, topic, table)
}

/// Counts rows of `table` (0 when it does not exist yet).
fn count(rt: &tokio::runtime::Runtime, pool: &sqlx::MySqlPool, table: &str) -> i64 {
    rt.block_on(
        sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM `{table}`")).fetch_one(pool),
    )
    .unwrap_or(0)
}

/// What the group's status topic says of `name`'s tasks, as Connect's records have it.
struct TaskHistory {
    /// Per task, the workers that reported it RUNNING, in order, repeats folded.
    owners: BTreeMap<u32, Vec<String>>,
    /// Status records written per task.
    writes: BTreeMap<u32, usize>,
    /// The highest group generation any status record carries.
    generation: i64,
}

impl TaskHistory {
    fn read(group: &str, name: &str) -> TaskHistory {
        let prefix = format!("status-task-{name}-");
        let mut history = TaskHistory {
            owners: BTreeMap::new(),
            writes: BTreeMap::new(),
            generation: -1,
        };
        for (key, value) in kafka::read_all(&format!("{group}-status"), Duration::from_secs(2)) {
            let value: Json = value
                .and_then(|v| serde_json::from_str(&v).ok())
                .unwrap_or(Json::Null);
            history.generation = history
                .generation
                .max(value["generation"].as_i64().unwrap_or(-1));
            let Some(task) = key
                .as_deref()
                .and_then(|k| k.strip_prefix(&prefix))
                .and_then(|id| id.parse::<u32>().ok())
            else {
                continue;
            };
            *history.writes.entry(task).or_default() += 1;
            if value["state"] == "RUNNING" {
                let owner = value["worker_id"].as_str().unwrap_or("?").to_owned();
                let owners = history.owners.entry(task).or_default();
                if owners.last() != Some(&owner) {
                    owners.push(owner);
                }
            }
        }
        history
    }

    /// Times a task started RUNNING on a worker other than the one before it.
    fn moves(&self) -> usize {
        self.owners
            .values()
            .map(|o| o.len().saturating_sub(1))
            .sum()
    }
}

/// Milliseconds from `since` until every task of `name` is RUNNING on a worker other than
/// `gone`, as `observer` reports it.
fn wait_moved(
    observer: &GroupWorker,
    name: &str,
    gone: &str,
    tasks: usize,
    since: Instant,
) -> u128 {
    wait_for(
        "the tasks to run elsewhere",
        Duration::from_secs(60),
        || {
            let (_, ts) = summary(&status_of(observer, name));
            ts.len() == tasks && ts.iter().all(|(s, w)| s == "RUNNING" && w != gone)
        },
        || format!("{}", status_of(observer, name)),
    );
    since.elapsed().as_millis()
}

/// The failover run: kill -9 a worker with tasks in the middle of a 200,000-record
/// JDBC sink run, then stop another cleanly, then add two workers. Prints the time from
/// the kill and from the stop to every task RUNNING elsewhere (`scripts/bench-failover.sh`
/// takes the median of several runs). `FAILOVER_RECORDS` changes the record count.
#[test]
fn a_sink_run_survives_kill_9_a_clean_stop_and_a_joining_worker() {
    let _serial = one_at_a_time();
    let record_count: u64 = std::env::var("FAILOVER_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    const TASKS: usize = 6;
    let group = unique("wc-failover");
    let mut workers = start_group(3, &group);
    let (rt, pool, topic, table) = sink_input("dist-failover", TASKS, record_count);
    let refs: Vec<&GroupWorker> = workers.iter().collect();
    let leader = leader(&refs);
    let name = unique("failover-sink");
    expect(
        workers[(leader + 1) % 3].port,
        "POST",
        "/connectors",
        Some(&json!({"name": name, "config": jdbc_sink(&topic, &table, TASKS as u32)})),
        201,
    );
    wait_everywhere(&refs, &name, "RUNNING", TASKS, Duration::from_secs(60));
    wait_for(
        "the sink to start writing",
        Duration::from_secs(60),
        || count(&rt, &pool, &table) > 0,
        || statuses(&refs, &name),
    );

    // kill -9 a worker that runs tasks, mid-run.
    let (_, tasks) = summary(&status_of(&workers[0], &name));
    let victim = workers
        .iter()
        .position(|w| tasks.iter().any(|(_, id)| *id == w.id()))
        .expect("some worker runs tasks");
    let gone = workers[victim].id();
    let written_at_kill = count(&rt, &pool, &table);
    let killed = Instant::now();
    workers[victim].kill();
    let observer = &workers[(victim + 1) % 3];
    let kill_ms = wait_moved(observer, &name, &gone, TASKS, killed);
    println!(
        "kill -9: tasks RUNNING elsewhere after {kill_ms} ms ({written_at_kill} of {record_count} rows written at the kill)"
    );
    let dead = workers.remove(victim);

    // A clean stop of another worker with tasks.
    let (_, tasks) = summary(&status_of(&workers[0], &name));
    let leaving = workers
        .iter()
        .position(|w| tasks.iter().any(|(_, id)| *id == w.id()))
        .expect("some worker runs tasks");
    let gone = workers[leaving].id();
    let stopped = Instant::now();
    workers[leaving].begin_stop();
    let observer = &workers[1 - leaving];
    let stop_ms = wait_moved(observer, &name, &gone, TASKS, stopped);
    println!("clean stop: tasks RUNNING elsewhere after {stop_ms} ms");
    workers[leaving].wait_stopped();
    workers.remove(leaving);

    // Every record arrives (at least once; upserts make duplicates one row).
    let pool_ref = &pool;
    wait_for(
        "every record in MariaDB",
        Duration::from_secs(180),
        || count(&rt, pool_ref, &table) == record_count as i64,
        || {
            format!(
                "{} rows; {}",
                count(&rt, pool_ref, &table),
                status_of(&workers[0], &name)
            )
        },
    );

    // Two more workers join: load spreads without stopping the tasks that stay.
    let survivor = workers[0].id();
    let before: Vec<(String, String)> = summary(&status_of(&workers[0], &name)).1;
    assert!(before.iter().all(|(_, w)| *w == survivor));
    let history_before = TaskHistory::read(&group, &name);
    drop(dead);
    let bootstrap = kafka::bootstrap();
    workers.push(GroupWorker::start(&bootstrap, &group, ""));
    workers.push(GroupWorker::start(&bootstrap, &group, ""));
    let refs: Vec<&GroupWorker> = workers.iter().collect();
    wait_for(
        "the load to spread over three workers",
        Duration::from_secs(60),
        || {
            let (_, ts) = summary(&status_of(refs[0], &name));
            let mut per: BTreeMap<String, usize> = refs.iter().map(|w| (w.id(), 0)).collect();
            for (s, w) in &ts {
                if s == "RUNNING" {
                    *per.entry(w.clone()).or_default() += 1;
                }
            }
            ts.len() == TASKS && per.values().all(|n| *n == TASKS / 3)
        },
        || statuses(&refs, &name),
    );
    // The survivor kept its share; the rest moved.
    let after = summary(&status_of(&workers[0], &name)).1;
    let kept: Vec<u32> = after
        .iter()
        .enumerate()
        .filter(|(_, (_, w))| *w == survivor)
        .map(|(id, _)| id as u32)
        .collect();
    assert_eq!(kept.len(), TASKS / 3, "{after:?}");
    // The kept tasks were never stopped: a task that stops because its work is revoked
    // writes UNASSIGNED, and one that starts writes RUNNING, so neither wrote anything.
    let history_after = TaskHistory::read(&group, &name);
    for id in &kept {
        assert_eq!(
            history_after.writes.get(id),
            history_before.writes.get(id),
            "task {id} stayed on {survivor} but its status was written while the load spread"
        );
    }
}

/// A worker told to revoke work it does not run still starts a new round, so that the
/// leader can hand the work out. A leader does this when it counted the work as the
/// worker's (the status topic showed it starting there after the worker's report) and
/// then moved it to even the load. Revoking it leaves the worker's report unchanged, and
/// Tansu answers a rejoin with unchanged metadata with the same generation and the same
/// assignment: a worker that only rejoined would loop in that round while the work ran
/// nowhere (a rolling restart once left a connector and a task UNASSIGNED so). The test
/// leads the group itself, through the runtime's group client, to send that assignment.
#[test]
fn a_worker_told_to_revoke_work_it_does_not_run_starts_a_new_round() {
    let _serial = one_at_a_time();
    let group = unique("wc-revoke");
    let rt = kafka::runtime();
    let mut lead = TestMember::new(&group, &format!("{group}-test-leader"));
    rt.block_on(lead.round(&BTreeSet::new()));
    assert!(lead.led, "the first member leads");
    let _worker = GroupWorker::start(&kafka::bootstrap(), &group, "");
    // Until the worker is in a round and the group then stays put for five seconds.
    let joined = Instant::now();
    loop {
        let round = rt.block_on(lead.next_round(Duration::from_secs(5)));
        if round.is_none() && lead.others > 0 {
            break;
        }
        assert!(
            joined.elapsed() < Duration::from_secs(60),
            "the worker never settled in the group"
        );
    }
    lead.config_offset += 1; // changed metadata: the coordinator starts a round
    let ghost = BTreeSet::from([Work::Connector("ghost".into())]);
    let told = rt.block_on(lead.round(&ghost));
    assert!(
        lead.led && lead.others == 1,
        "the test leads the round that tells the worker to revoke"
    );
    let next = rt.block_on(lead.next_round(Duration::from_secs(20)));
    assert!(
        next.is_some_and(|generation| generation > told),
        "no round after generation {told}, in which the worker was told to revoke work it does not run"
    );
    let _ = rt.block_on(lead.member.leave());
}

/// Work handed to a member that never starts it is handed out again. A member can miss
/// its assignment while every member heartbeats: after a full restart, Tansu 0.6 let two
/// members lead one generation, and one of them synced its own assignment (nothing) instead
/// of the other's, so a connector and a task ran nowhere. The leader now starts a new round
/// when, a session timeout after handing work out, the status topic does not show it
/// started where it went. The test is that member: it joins a real worker's group as a
/// follower, takes its share of a connector's work, and runs nothing; once it leaves, the
/// worker runs all of it.
#[test]
fn work_a_member_never_starts_is_handed_out_again() {
    let _serial = one_at_a_time();
    let group = unique("wc-unstarted");
    let worker = GroupWorker::start(&kafka::bootstrap(), &group, "");
    leader(&[&worker]);
    let rt = kafka::runtime();
    let mut member = TestMember::new(&group, "0-test-member");
    rt.block_on(member.round(&BTreeSet::new()));
    assert!(!member.led, "the worker, first in the group, leads it");
    let name = unique("unstarted");
    let config = json!({"name": name, "config": {
        "connector.class": "DatagenConnector",
        "kafka.topic": format!("{name}-out"),
        "iterations": "1000000",
        "max.interval": "1000",
    }});
    expect(worker.port, "POST", "/connectors", Some(&config), 201);
    // The worker takes the connector or its task, and the test's member (the less loaded)
    // the other.
    let created = Instant::now();
    while member.assigned.is_empty() {
        rt.block_on(member.next_round(Duration::from_secs(1)));
        assert!(
            created.elapsed() < Duration::from_secs(60),
            "no work went to the test's member"
        );
    }
    let given = member.generation;
    let next = rt.block_on(member.next_round(Duration::from_secs(20)));
    assert!(
        next.is_some_and(|generation| generation > given),
        "no round after generation {given}, in which the test's member got work it never started"
    );
    let _ = rt.block_on(member.member.leave());
    wait_everywhere(&[&worker], &name, "RUNNING", 1, Duration::from_secs(60));
}

/// The test as a member of a group, through the runtime's group client. It runs nothing and
/// reports nothing; as the group's leader (the first member leads) it tells every other
/// member to revoke what the test says, and assigns nothing.
struct TestMember {
    member: GroupMember,
    /// The config offset in this member's metadata; changing it changes the metadata.
    config_offset: i64,
    /// Whether it led the last round, and how many other members that round had (known
    /// to a leader only).
    led: bool,
    others: usize,
    /// The last round's generation, and what it assigned this member.
    generation: i32,
    assigned: BTreeSet<Work>,
}

impl TestMember {
    fn new(group: &str, client_id: &str) -> TestMember {
        let settings = GroupSettings {
            group_id: group.to_owned(),
            client_id: client_id.to_owned(),
            session_timeout: Duration::from_secs(6),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(6),
        };
        TestMember {
            member: GroupMember::new(&kafka::bootstrap(), PROTOCOL_TYPE, settings),
            config_offset: -1,
            led: false,
            others: 0,
            generation: -1,
            assigned: BTreeSet::new(),
        }
    }

    /// Joins a round; as its leader, tells every other member to revoke `revoked`. Returns
    /// the round's generation.
    async fn round(&mut self, revoked: &BTreeSet<Work>) -> i32 {
        let protocol = Protocol::Sessioned;
        loop {
            let metadata = WorkerMetadata {
                url: "http://127.0.0.1:9/".into(),
                config_offset: self.config_offset,
                allocation: None,
            };
            let joined = self
                .member
                .join(&[(protocol.name(), metadata.encode(protocol.version()))])
                .await
                .expect("the test joins");
            let assignments: Vec<(String, Vec<u8>)> = joined
                .members
                .iter()
                .map(|(id, _)| {
                    let other = *id != joined.member_id;
                    let assignment = Assignment {
                        leader: joined.member_id.clone(),
                        leader_url: metadata.url.clone(),
                        config_offset: -1,
                        revoked: if other {
                            revoked.clone()
                        } else {
                            BTreeSet::new()
                        },
                        ..Assignment::default()
                    };
                    (id.clone(), assignment.encode(protocol.version()))
                })
                .collect();
            self.led = joined.is_leader();
            self.others = assignments.len().saturating_sub(1);
            match self.member.sync(&joined, assignments).await {
                Ok(bytes) => {
                    let mine = Assignment::decode(&bytes).expect("an assignment the test reads");
                    self.generation = joined.generation;
                    self.assigned = mine.assigned;
                    return joined.generation;
                }
                Err(e) if e.needs_rejoin() => continue,
                Err(e) => panic!("SyncGroup: {e}"),
            }
        }
    }

    /// Heartbeats until the coordinator starts a round, then joins it (revoking nothing)
    /// and returns its generation; `None` when `within` passes first.
    async fn next_round(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match self.member.heartbeat().await {
                Ok(()) => {}
                Err(e) if e.needs_rejoin() => return Some(self.round(&BTreeSet::new()).await),
                Err(e) => panic!("Heartbeat: {e}"),
            }
        }
        None
    }
}

/// Each worker of three is stopped and started again in turn while a sink runs: after
/// each, the tasks spread evenly again; then the group stays put (no status written for
/// ten seconds), and every record arrives. Prints how many times tasks moved (the
/// restarts require 12: the leaving worker's two tasks out, then two back to it, three
/// times) and how many generations the group went through.
#[test]
fn a_rolling_restart_settles_and_loses_nothing() {
    let _serial = one_at_a_time();
    const TASKS: usize = 6;
    const RECORDS: u64 = 6_000;
    let group = unique("wc-rolling");
    let mut workers = start_group(3, &group);
    let (rt, pool, topic, table) = sink_input("dist-rolling", TASKS, RECORDS);
    let refs: Vec<&GroupWorker> = workers.iter().collect();
    let leader = leader(&refs);
    let name = unique("rolling-sink");
    expect(
        workers[leader].port,
        "POST",
        "/connectors",
        Some(&json!({"name": name, "config": jdbc_sink(&topic, &table, TASKS as u32)})),
        201,
    );
    let spread_evenly = |workers: &[GroupWorker]| {
        let refs: Vec<&GroupWorker> = workers.iter().collect();
        wait_everywhere(&refs, &name, "RUNNING", TASKS, Duration::from_secs(60));
        wait_for(
            "two tasks RUNNING on each worker",
            Duration::from_secs(60),
            || {
                let (_, ts) = summary(&status_of(&workers[0], &name));
                workers.iter().all(|w| {
                    ts.iter()
                        .filter(|(s, id)| s == "RUNNING" && *id == w.id())
                        .count()
                        == TASKS / 3
                })
            },
            || statuses(&refs, &name),
        );
    };
    spread_evenly(&workers);
    let before = TaskHistory::read(&group, &name);

    let started = Instant::now();
    for i in 0..workers.len() {
        let gone = workers[i].id();
        workers[i].stop();
        let observer = &workers[(i + 1) % 3];
        wait_moved(observer, &name, &gone, TASKS, Instant::now());
        workers[i].spawn();
        spread_evenly(&workers);
    }
    println!(
        "rolling restart of 3 workers: {} ms",
        started.elapsed().as_millis()
    );

    let after = TaskHistory::read(&group, &name);
    println!(
        "rolling restart: {} task moves (12 needed), {} generations",
        after.moves() - before.moves(),
        after.generation - before.generation
    );
    // No storm: once settled, the group stays put; no task status is written for a while.
    std::thread::sleep(Duration::from_secs(10));
    let quiet = TaskHistory::read(&group, &name);
    assert_eq!(
        quiet.writes, after.writes,
        "task statuses still changing after the rolling restart settled: {:?}",
        quiet.owners
    );
    wait_for(
        "every record in MariaDB",
        Duration::from_secs(60),
        || count(&rt, &pool, &table) == RECORDS as i64,
        || format!("{} rows", count(&rt, &pool, &table)),
    );
}
