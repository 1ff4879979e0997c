//! `make demo`'s script, both ways: MariaDB -> Kafka -> Redis where MariaDB and Redis are
//! reachable, and the SQLite -> Kafka -> file fallback (forced with
//! `WASMCONNECT_DEMO=sqlite`). Both use the demo's fixed REST port 8083 and `target/demo`,
//! so they run one after the other in a single test.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wasmconnect_e2e::{binary, wait_for, workspace};

struct Demo(Child);

impl Demo {
    fn start(forced: Option<&str>) -> Demo {
        let _ = std::fs::remove_dir_all(workspace().join("target/demo"));
        let mut command = Command::new("bash");
        command
            .arg(workspace().join("scripts/demo.sh"))
            .env("WASMCONNECT_BIN", binary())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(mode) = forced {
            command.env("WASMCONNECT_DEMO", mode);
        }
        Demo(command.spawn().expect("demo starts"))
    }
}

impl Drop for Demo {
    /// SIGTERM: the script's trap stops the worker and the row inserter.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn file_ids() -> BTreeSet<i64> {
    std::fs::read_to_string(workspace().join("target/demo/users.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_i64())
        .collect()
}

#[test]
fn demo_runs_mysql_to_redis_and_falls_back_to_sqlite() {
    use redis::Commands;
    let mut r = redis::Client::open("redis://127.0.0.1:6379/0")
        .and_then(|c| c.get_connection())
        .expect("Redis reachable (scripts/services.sh starts it)");
    let rt = wasmconnect_e2e::kafka::runtime();
    let server = rt
        .block_on(sqlx::MySqlPool::connect(
            &wasmconnect_e2e::db::mysql_server(),
        ))
        .expect("MariaDB reachable");
    rt.block_on(sqlx::query("DROP DATABASE IF EXISTS wasmconnect_demo").execute(&server))
        .expect("fresh demo database");
    let old: Vec<String> = r.keys("user:*").expect("KEYS");
    if !old.is_empty() {
        let _: i64 = r.del(old).expect("DEL");
    }

    {
        let _demo = Demo::start(None);
        wait_for(
            "user:1 and a live row in Redis",
            Duration::from_secs(120),
            || {
                let keys: Vec<String> = r.keys("user:*").unwrap_or_default();
                keys.len() >= 2
            },
            || "the demo's worker logs are above".into(),
        );
        let name: Option<String> = r.hget("user:1", "name").expect("HGET");
        assert_eq!(name.as_deref(), Some("alice"));
    }

    let _demo = Demo::start(Some("sqlite"));
    wait_for(
        "the seeded row and a live row in the file",
        Duration::from_secs(120),
        || file_ids().len() >= 2,
        || format!("ids so far: {:?}", file_ids()),
    );
    assert!(file_ids().contains(&1), "{:?}", file_ids());
}
