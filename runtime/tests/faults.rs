//! A plugin that traps, one that loops forever and one that allocates without bound each
//! fail only their own task, with a readable trace; the worker keeps serving and a healthy
//! connector beside them keeps running.

mod common;

use std::time::Duration;

use common::{Rest, start_worker, task_state};

fn sink(name: &str, fault: &str, extra: &str) -> String {
    format!(
        r#"{{"name":"{name}","config":{{"connector.class":"TestFaultsSink","topics":"faults-in","fault":"{fault}"{extra}}}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_plugins_fail_only_their_own_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = start_worker(dir.path(), &[]).await;
    let granted = dir.path().join("granted");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(&granted).expect("dir");
    std::fs::write(granted.join("probe.txt"), "hello probe").expect("write");
    std::fs::write(outside.path().join("secret.txt"), "top secret").expect("write");
    let fs_extra = format!(
        r#","probe.file":"{}","probe.ungranted":"{}""#,
        granted.join("probe.txt").display(),
        outside.path().join("secret.txt").display()
    );
    let rest = Rest::new(&worker);
    let source = r#"{"name":"feed","config":{"connector.class":"DatagenConnector","kafka.topic":"faults-in","max.interval":"0","iterations":"20"}}"#;
    assert_eq!(rest.call("POST", "/connectors", Some(source)).await.0, 201);
    for body in [
        sink("healthy", "none", ""),
        sink("trapper", "trap", ""),
        sink("looper", "loop", r#","plugin.call.timeout.ms":"1000""#),
        sink("hoarder", "oom", r#","plugin.memory.max.bytes":"67108864""#),
        sink("prober", "fs", &fs_extra),
    ] {
        let (code, resp) = rest.call("POST", "/connectors", Some(&body)).await;
        assert_eq!(code, 201, "{resp}");
    }
    let wait = Duration::from_secs(60);
    let trap = rest
        .wait_status("trapper", wait, |s| task_state(s, 0) == "FAILED")
        .await;
    let trace = trap["tasks"][0]["trace"].as_str().unwrap_or("");
    assert!(trace.contains("trapped"), "{trace}");
    assert!(
        trace.contains("test-faults: deliberate trap"),
        "the plugin's panic message is in the trace: {trace}"
    );

    let looped = rest
        .wait_status("looper", wait, |s| task_state(s, 0) == "FAILED")
        .await;
    let trace = looped["tasks"][0]["trace"].as_str().unwrap_or("");
    assert!(trace.contains("deadline of 1000 ms"), "{trace}");

    let hoarded = rest
        .wait_status("hoarder", wait, |s| task_state(s, 0) == "FAILED")
        .await;
    let trace = hoarded["tasks"][0]["trace"].as_str().unwrap_or("");
    assert!(trace.contains("trapped"), "{trace}");
    assert!(
        trace.to_lowercase().contains("memory"),
        "the trace says memory ran out: {trace}"
    );

    // The filesystem a plugin sees is its granted folders and nothing else.
    let probed = rest
        .wait_status("prober", wait, |s| task_state(s, 0) == "FAILED")
        .await;
    let trace = probed["tasks"][0]["trace"].as_str().unwrap_or("");
    assert!(
        trace.contains("granted=ok(11 bytes)"),
        "the granted file is readable: {trace}"
    );
    assert!(
        trace.contains("ungranted=err("),
        "a file outside the grants is not: {trace}"
    );

    // The worker still serves, and the healthy connector is untouched.
    assert_eq!(rest.get("/health").await.0, 200);
    let healthy = rest.get("/connectors/healthy/status").await.1;
    assert_eq!(task_state(&healthy, 0), "RUNNING", "{healthy}");
    assert_eq!(
        rest.get("/connectors/feed/status").await.1["connector"]["state"],
        "RUNNING"
    );
    // A connector-only restart leaves a failed task as it is (Kafka Connect's rule); with
    // includeTasks and onlyFailed, just the failed task is planned for a restart.
    assert_eq!(
        rest.call("POST", "/connectors/trapper/restart", None)
            .await
            .0,
        204
    );
    let after = rest.get("/connectors/trapper/status").await.1;
    assert_eq!(task_state(&after, 0), "FAILED", "{after}");
    let (code, planned) = rest
        .call(
            "POST",
            "/connectors/trapper/restart?includeTasks=true&onlyFailed=true",
            None,
        )
        .await;
    assert_eq!(code, 202);
    assert_eq!(planned["connector"]["state"], "RUNNING", "{planned}");
    assert_eq!(planned["tasks"][0]["state"], "RESTARTING", "{planned}");
    // A failed task comes back when restarted.
    assert_eq!(
        rest.call("POST", "/connectors/trapper/tasks/0/restart", None)
            .await
            .0,
        204
    );
    worker.shutdown().await;
}
