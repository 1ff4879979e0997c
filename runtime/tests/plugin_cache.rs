//! Compiled plugins are cached on disk: a second load (a worker restart) reads the cache
//! instead of compiling, and a damaged cache entry is replaced, not trusted.

mod common;

use std::sync::Arc;

use wasmconnect::plugin::{Plugin, PluginEngine};

fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("cache dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    entries.sort();
    entries
}

#[tokio::test]
async fn a_restart_loads_compiled_code_from_the_cache() {
    let wasm = common::plugin_dirs()[0].join("datagen.wasm");
    let cache = tempfile::tempdir().expect("tempdir");
    let engine = Arc::new(PluginEngine::new(Some(cache.path().to_owned())).expect("engine"));
    let first = Plugin::load(engine.clone(), &wasm)
        .await
        .expect("first load compiles");
    assert_eq!(first.name, "DatagenConnector");
    let entries = cache_entries(cache.path());
    assert_eq!(entries.len(), 1, "one compiled artifact: {entries:?}");
    let written = std::fs::metadata(&entries[0])
        .and_then(|m| m.modified())
        .expect("mtime");

    // A new engine, as after a restart: the artifact is read, not rewritten.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let engine = Arc::new(PluginEngine::new(Some(cache.path().to_owned())).expect("engine"));
    let second = Plugin::load(engine.clone(), &wasm)
        .await
        .expect("second load");
    assert_eq!(second.config_def, first.config_def);
    let again = std::fs::metadata(&entries[0])
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(written, again, "the cached artifact was used as it was");

    // A damaged entry is recompiled and replaced.
    std::fs::write(&entries[0], b"not a compiled component").expect("corrupt");
    let third = Plugin::load(engine, &wasm)
        .await
        .expect("load despite a bad cache entry");
    assert_eq!(third.name, "DatagenConnector");
    assert!(
        std::fs::metadata(&entries[0]).expect("entry").len() > 1000,
        "the entry was rewritten"
    );
}
