//! Every REST endpoint and its error paths, against a worker on the embedded Kafka.

mod common;

use std::time::Duration;

use common::{Rest, start_worker, task_state};
use serde_json::json;

const SINK: &str = r#"{"name":"s1","config":{"connector.class":"TestFaultsSink","topics":"t1","fault":"none","tasks.max":"1"}}"#;

fn is_error(body: &serde_json::Value, code: u16) -> bool {
    body["error_code"] == code && body["message"].as_str().is_some_and(|m| !m.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_health_and_plugins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path(), &[]).await;
    let rest = Rest::new(&worker);

    let (code, info) = rest.get("/").await;
    assert_eq!(code, 200);
    assert!(
        info["version"].is_string() && info["commit"].is_string(),
        "{info}"
    );
    assert!(
        info["kafka_cluster_id"].is_string(),
        "the embedded cluster has an id: {info}"
    );
    let (code, health) = rest.get("/health").await;
    assert_eq!((code, health["status"].as_str()), (200, Some("healthy")));

    let (code, plugins) = rest.get("/connector-plugins").await;
    assert_eq!(code, 200);
    let classes: Vec<&str> = plugins
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["class"].as_str())
        .collect();
    assert!(
        classes.contains(&"DatagenConnector") && classes.contains(&"FileSinkConnector"),
        "{plugins}"
    );
    assert!(
        !classes.contains(&"Identity"),
        "connectorsOnly defaults to true"
    );
    let (_, all) = rest.get("/connector-plugins?connectorsOnly=false").await;
    let types: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["type"].as_str())
        .collect();
    assert!(
        types.contains(&"transformation")
            && types.contains(&"converter")
            && types.contains(&"header_converter"),
        "{all}"
    );
    let (code, bad) = rest.get("/connector-plugins?connectorsOnly=maybe").await;
    assert!(code == 400 && is_error(&bad, 400), "{bad}");

    // Plugin config by name or alias.
    let (code, keys) = rest
        .get("/connector-plugins/io.confluent.kafka.connect.datagen.DatagenConnector/config")
        .await;
    assert_eq!(code, 200);
    let topic = keys
        .as_array()
        .expect("list")
        .iter()
        .find(|k| k["name"] == "kafka.topic")
        .expect("kafka.topic");
    assert_eq!(topic["type"], "STRING");
    assert_eq!(topic["required"], true);
    assert_eq!(topic["importance"], "HIGH");
    assert_eq!(topic["group"], "Datagen");
    assert!(
        topic["order"].is_number() && topic["dependents"].is_array() && topic["width"].is_string()
    );
    let (code, body) = rest.get("/connector-plugins/NoSuchPlugin/config").await;
    assert!(code == 404 && is_error(&body, 404), "{body}");

    // Validation reports per-field errors in the body, not as a 4xx.
    let (code, v) = rest
        .call(
            "PUT",
            "/connector-plugins/FileSinkConnector/config/validate",
            Some(r#"{"connector.class":"FileStreamSink","topics":"a","tasks.max":"zero"}"#),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["error_count"], 3, "name, file and tasks.max: {v}");
    assert_eq!(v["name"], "FileStreamSink");
    assert!(
        v["groups"]
            .as_array()
            .expect("groups")
            .contains(&json!("Common"))
    );
    let field = |name: &str| {
        v["configs"]
            .as_array()
            .and_then(|c| c.iter().find(|f| f["value"]["name"] == name))
            .cloned()
    };
    let file = field("file").expect("file field");
    assert!(
        file["value"]["errors"][0]
            .as_str()
            .expect("error")
            .contains("file"),
        "{file}"
    );
    assert_eq!(file["definition"]["type"], "STRING");
    let (code, ok) = rest
        .call("PUT", "/connector-plugins/FileSinkConnector/config/validate", Some(r#"{"connector.class":"FileSinkConnector","name":"f","topics":"a","file":"/tmp/x"}"#))
        .await;
    assert_eq!((code, ok["error_count"].as_u64()), (200, Some(0)), "{ok}");
    let (code, body) = rest
        .call(
            "PUT",
            "/connector-plugins/FileSinkConnector/config/validate",
            Some(r#"{"topics":"a"}"#),
        )
        .await;
    assert!(
        code == 400 && is_error(&body, 400),
        "missing connector.class: {body}"
    );
    let (code, body) = rest
        .call(
            "PUT",
            "/connector-plugins/DatagenConnector/config/validate",
            Some(r#"{"connector.class":"FileSinkConnector"}"#),
        )
        .await;
    assert!(
        code == 400
            && body["message"]
                .as_str()
                .unwrap_or("")
                .contains("does not match"),
        "{body}"
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_lifecycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path(), &[]).await;
    let rest = Rest::new(&worker);
    let wait = Duration::from_secs(30);

    assert_eq!(rest.get("/connectors").await, (200, json!([])));

    // Create.
    let resp = rest
        .http
        .post(format!("{}/connectors", rest.base))
        .header("content-type", "application/json")
        .body(SINK)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(
        resp.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/connectors/s1")
    );
    let info: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(info["name"], "s1");
    assert_eq!(info["type"], "sink");
    assert_eq!(
        info["config"]["name"], "s1",
        "the name is filled into the config"
    );
    assert_eq!(info["tasks"], json!([{"connector": "s1", "task": 0}]));
    let (code, body) = rest.call("POST", "/connectors", Some(SINK)).await;
    assert!(
        code == 409 && body["message"] == "Connector s1 already exists",
        "{body}"
    );

    // Read.
    assert_eq!(rest.get("/connectors").await.1, json!(["s1"]));
    assert_eq!(rest.get("/connectors/s1").await.1, info);
    assert_eq!(rest.get("/connectors/s1/config").await.1["topics"], "t1");
    let status = rest
        .wait_status("s1", wait, |s| task_state(s, 0) == "RUNNING")
        .await;
    assert_eq!(status["connector"]["state"], "RUNNING");
    assert_eq!(status["type"], "sink");
    assert!(
        status["connector"]["worker_id"]
            .as_str()
            .is_some_and(|w| w.contains(':'))
    );
    assert!(
        status["tasks"][0].get("trace").is_none(),
        "no trace key without a trace: {status}"
    );
    let (code, tasks) = rest.get("/connectors/s1/tasks").await;
    assert_eq!(code, 200);
    assert_eq!(tasks[0]["id"], json!({"connector": "s1", "task": 0}));
    assert_eq!(tasks[0]["config"]["fault"], "none");
    let (code, ts) = rest.get("/connectors/s1/tasks/0/status").await;
    assert_eq!(
        (code, ts["id"].as_u64(), ts["state"].as_str()),
        (200, Some(0), Some("RUNNING"))
    );
    for path in [
        "/connectors/s1/tasks/7/status",
        "/connectors/s1/tasks/x/status",
        "/connectors/nope",
        "/connectors/nope/status",
        "/connectors/nope/config",
        "/connectors/nope/tasks",
    ] {
        let (code, body) = rest.get(path).await;
        assert!(code == 404 && is_error(&body, 404), "{path}: {code} {body}");
    }

    // Expand.
    let (_, expanded) = rest.get("/connectors?expand=status&expand=info").await;
    assert_eq!(expanded["s1"]["info"]["name"], "s1");
    assert_eq!(expanded["s1"]["status"]["name"], "s1");
    let (_, only_status) = rest.get("/connectors?expand=status&expand=bogus").await;
    assert!(only_status["s1"].get("info").is_none() && only_status["s1"]["status"].is_object());

    // Update, create through PUT, name mismatch, patch.
    let (code, updated) = rest
        .call(
            "PUT",
            "/connectors/s1/config",
            Some(r#"{"connector.class":"TestFaultsSink","topics":"t2","fault":"none"}"#),
        )
        .await;
    assert_eq!(
        (code, updated["config"]["topics"].as_str()),
        (200, Some("t2")),
        "{updated}"
    );
    let (code, made) = rest
        .call(
            "PUT",
            "/connectors/s2/config",
            Some(r#"{"connector.class":"TestFaultsSink","topics":"t1","fault":"none"}"#),
        )
        .await;
    assert_eq!((code, made["name"].as_str()), (201, Some("s2")));
    let (code, body) = rest
        .call("PUT", "/connectors/s2/config", Some(r#"{"name":"other","connector.class":"TestFaultsSink","topics":"t1","fault":"none"}"#))
        .await;
    assert!(
        code == 400
            && body["message"]
                .as_str()
                .unwrap_or("")
                .contains("doesn't match"),
        "{body}"
    );
    let (code, patched) = rest
        .call(
            "PATCH",
            "/connectors/s2/config",
            Some(r#"{"topics":"t3","tasks.max":null}"#),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["config"]["topics"], "t3");
    assert!(patched["config"].get("tasks.max").is_none());
    let (code, _) = rest
        .call(
            "PATCH",
            "/connectors/nope/config",
            Some(r#"{"topics":"x"}"#),
        )
        .await;
    assert_eq!(code, 404);

    // Pause, resume, stop.
    assert_eq!(rest.call("PUT", "/connectors/s1/pause", None).await.0, 202);
    rest.wait_status("s1", wait, |s| {
        s["connector"]["state"] == "PAUSED" && task_state(s, 0) == "PAUSED"
    })
    .await;
    assert_eq!(rest.call("PUT", "/connectors/s1/resume", None).await.0, 202);
    rest.wait_status("s1", wait, |s| {
        s["connector"]["state"] == "RUNNING" && task_state(s, 0) == "RUNNING"
    })
    .await;
    assert_eq!(rest.call("PUT", "/connectors/s1/stop", None).await.0, 204);
    let stopped = rest
        .wait_status("s1", wait, |s| s["connector"]["state"] == "STOPPED")
        .await;
    assert_eq!(
        stopped["tasks"],
        json!([]),
        "a stopped connector has no tasks"
    );
    assert_eq!(rest.get("/connectors/s1/tasks").await.1, json!([]));
    assert_eq!(rest.call("PUT", "/connectors/s1/resume", None).await.0, 202);
    rest.wait_status("s1", wait, |s| task_state(s, 0) == "RUNNING")
        .await;
    for path in [
        "/connectors/nope/pause",
        "/connectors/nope/resume",
        "/connectors/nope/stop",
    ] {
        assert_eq!(rest.call("PUT", path, None).await.0, 404, "{path}");
    }

    // Restart: 204 without flags, 202 with the planned states otherwise.
    let (code, body) = rest.call("POST", "/connectors/s1/restart", None).await;
    assert_eq!((code, body), (204, serde_json::Value::Null));
    let (code, planned) = rest
        .call("POST", "/connectors/s1/restart?includeTasks=true", None)
        .await;
    assert_eq!(code, 202, "{planned}");
    assert_eq!(planned["connector"]["state"], "RESTARTING");
    assert_eq!(planned["tasks"][0]["state"], "RESTARTING");
    let (code, planned) = rest
        .call(
            "POST",
            "/connectors/s1/restart?includeTasks=true&onlyFailed=true",
            None,
        )
        .await;
    assert_eq!(code, 202);
    assert_eq!(
        planned["connector"]["state"], "RUNNING",
        "only failed instances restart: {planned}"
    );
    assert_eq!(
        rest.call("POST", "/connectors/s1/tasks/0/restart", None)
            .await
            .0,
        204
    );
    assert_eq!(
        rest.call("POST", "/connectors/s1/tasks/5/restart", None)
            .await
            .0,
        404
    );
    assert_eq!(
        rest.call("POST", "/connectors/nope/restart", None).await.0,
        404
    );
    rest.wait_status("s1", wait, |s| task_state(s, 0) == "RUNNING")
        .await;

    // Topics.
    let (code, topics) = rest.get("/connectors/s1/topics").await;
    assert_eq!(code, 200);
    assert!(topics["s1"]["topics"].is_array(), "{topics}");
    assert_eq!(
        rest.call("PUT", "/connectors/s1/topics/reset", None)
            .await
            .0,
        202
    );
    assert_eq!(rest.get("/connectors/nope/topics").await.0, 404);

    // A sink's offsets are its consumer group's; they change only while it is stopped
    // (tests/tests/offsets.rs moves them on the real broker).
    let (code, body) = rest.get("/connectors/s1/offsets").await;
    assert_eq!(code, 200, "{body}");
    assert!(body["offsets"].is_array(), "{body}");
    let move_to = json!({"offsets": [{
        "partition": {"kafka_topic": "t", "kafka_partition": 0},
        "offset": {"kafka_offset": 1},
    }]})
    .to_string();
    let (code, body) = rest
        .call("PATCH", "/connectors/s1/offsets", Some(&move_to))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("STOPPED state"),
        "{body}"
    );
    let (code, body) = rest
        .call(
            "PATCH",
            "/connectors/s1/offsets",
            Some(r#"{"offsets": []}"#),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        rest.call("DELETE", "/connectors/s1/offsets", None).await.0,
        400
    );
    assert_eq!(rest.get("/connectors/nope/offsets").await.0, 404);

    // Delete.
    assert_eq!(rest.call("DELETE", "/connectors/s1", None).await.0, 204);
    assert_eq!(rest.call("DELETE", "/connectors/s1", None).await.0, 404);
    assert_eq!(rest.get("/connectors").await.1, json!(["s2"]));
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_connect_errors_never_500() {
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path(), &[]).await;
    let rest = Rest::new(&worker);
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        ("POST", "/connectors", Some("{not json"), 400),
        ("POST", "/connectors", Some(""), 400),
        ("POST", "/connectors", Some(r#"{"config":{}}"#), 400),
        (
            "POST",
            "/connectors",
            Some(r#"{"name":"x","config":{"connector.class":"Nope"}}"#),
            400,
        ),
        (
            "POST",
            "/connectors",
            Some(r#"{"name":"x","config":{"connector.class":"FileSinkConnector","topics":"t"}}"#),
            400,
        ),
        (
            "POST",
            "/connectors",
            Some(r#"{"name":"x","config":{"connector.class":"Identity"}}"#),
            400,
        ),
        (
            "POST",
            "/connectors",
            Some(
                r#"{"name":"x","config":{"name":"y","connector.class":"DatagenConnector","kafka.topic":"t"}}"#,
            ),
            400,
        ),
        (
            "POST",
            "/connectors",
            Some(
                r#"{"name":"x","config":{"connector.class":"DatagenConnector","kafka.topic":{"nested":1}}}"#,
            ),
            400,
        ),
        (
            "POST",
            "/connectors",
            Some(
                r#"{"name":"x","config":{"connector.class":"DatagenConnector","kafka.topic":"t"},"initial_state":"SLEEPING"}"#,
            ),
            400,
        ),
        ("PUT", "/connectors/x/config", Some("[1,2]"), 400),
        ("GET", "/no/such/path", None, 404),
        ("DELETE", "/connector-plugins", None, 405),
        (
            "POST",
            "/connectors/x/restart?includeTasks=perhaps",
            None,
            400,
        ),
    ];
    for (method, path, body, expected) in cases {
        let (code, resp) = rest.call(method, path, *body).await;
        assert!(
            code == *expected && is_error(&resp, *expected),
            "{method} {path} {body:?}: {code} {resp}"
        );
    }
    // The invalid-config message lists every error, as Kafka Connect's does.
    let (_, resp) = rest
        .call(
            "POST",
            "/connectors",
            Some(r#"{"name":"x","config":{"connector.class":"FileSinkConnector"}}"#),
        )
        .await;
    let message = resp["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with(
            "Connector configuration is invalid and contains the following 3 error(s):"
        ),
        "{message}"
    );
    assert!(
        message.contains("file:") && message.contains("topics:"),
        "{message}"
    );
    assert_eq!(
        rest.get("/connectors").await.1,
        json!([]),
        "nothing was created"
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_state_and_unresolved_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("secrets.properties");
    std::fs::write(&secrets, "topic=secret-topic\n").expect("write");
    let worker = start_worker(
        dir.path(),
        &[
            ("config.providers", "file"),
            (
                "config.providers.file.class",
                "org.apache.kafka.common.config.provider.FileConfigProvider",
            ),
        ],
    )
    .await;
    let rest = Rest::new(&worker);
    let placeholder = format!("${{file:{}:topic}}", secrets.display());
    let body = json!({"name": "paused", "config": {"connector.class": "DatagenConnector", "kafka.topic": placeholder, "max.interval": "0", "iterations": "5"}, "initial_state": "paused"});
    let (code, info) = rest
        .call("POST", "/connectors", Some(&body.to_string()))
        .await;
    assert_eq!(code, 201, "{info}");
    assert_eq!(
        info["config"]["kafka.topic"],
        placeholder.as_str(),
        "stored with the placeholder"
    );
    rest.wait_status("paused", Duration::from_secs(30), |s| {
        s["connector"]["state"] == "PAUSED" && task_state(s, 0) == "PAUSED"
    })
    .await;
    let (_, tasks) = rest.get("/connectors/paused/tasks").await;
    assert_eq!(
        tasks[0]["config"]["kafka.topic"],
        placeholder.as_str(),
        "task configs keep the placeholder: {tasks}"
    );
    assert!(
        !rest
            .get("/connectors/paused/config")
            .await
            .1
            .to_string()
            .contains("secret-topic")
    );
    assert_eq!(
        rest.call("PUT", "/connectors/paused/resume", None).await.0,
        202
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, topics) = rest.get("/connectors/paused/topics").await;
        if topics["paused"]["topics"] == json!(["secret-topic"]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the task wrote to the resolved topic: {topics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = json!({"name": "stopped", "config": {"connector.class": "DatagenConnector", "kafka.topic": "t"}, "initial_state": "STOPPED"});
    assert_eq!(
        rest.call("POST", "/connectors", Some(&stopped.to_string()))
            .await
            .0,
        201
    );
    let s = rest
        .wait_status("stopped", Duration::from_secs(10), |s| {
            s["connector"]["state"] == "STOPPED"
        })
        .await;
    assert_eq!(s["tasks"], json!([]));
    worker.shutdown().await;
}
