//! Shared setup for the worker's integration tests: an in-process worker on the embedded
//! Kafka with the built plugins and the test fixtures.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmconnect::config::WorkerConfig;
use wasmconnect::worker::Worker;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The plugin folders; the build must have produced them (`make plugins test-plugins`).
pub fn plugin_dirs() -> Vec<PathBuf> {
    let dirs = vec![
        workspace().join("target/plugins"),
        workspace().join("target/test-plugins"),
    ];
    for d in &dirs {
        assert!(
            d.is_dir(),
            "{} is missing: build the plugins first (make plugins test-plugins)",
            d.display()
        );
    }
    dirs
}

/// A worker on a free loopback port, embedded Kafka, its own offset file.
pub async fn start_worker(dir: &std::path::Path, extra: &[(&str, &str)]) -> Worker {
    let mut raw: BTreeMap<String, String> = BTreeMap::new();
    raw.insert("listeners".into(), "http://127.0.0.1:0".into());
    raw.insert(
        "plugin.path".into(),
        plugin_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    raw.insert(
        "plugin.cache.dir".into(),
        workspace()
            .join("target/test-plugin-cache")
            .display()
            .to_string(),
    );
    raw.insert(
        "offset.storage.file.filename".into(),
        dir.join("offsets.json").display().to_string(),
    );
    raw.insert("offset.flush.interval.ms".into(), "200".into());
    raw.insert("task.shutdown.graceful.timeout.ms".into(), "2000".into());
    for (k, v) in extra {
        raw.insert((*k).into(), (*v).into());
    }
    let config = WorkerConfig::from_map(raw).expect("worker config");
    Worker::start(config).await.expect("worker starts")
}

/// A small client for the worker's REST API.
pub struct Rest {
    pub base: String,
    pub http: reqwest::Client,
}

impl Rest {
    pub fn new(worker: &Worker) -> Rest {
        Rest {
            base: format!("http://{}", worker.rest_addr()),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    /// Polls a connector's status until `check` holds.
    pub async fn wait_status(
        &self,
        name: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, body) = self.get(&format!("/connectors/{name}/status")).await;
            if code == 200 && check(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "status of {name} did not settle: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn task_state(status: &Value, task: usize) -> &str {
    status["tasks"][task]["state"].as_str().unwrap_or("")
}
