//! Issue 4's benchmark: the chain InsertField$Value + ReplaceField$Value + RegexRouter
//! through WebAssembly (the shipped `transforms` plugin run by the worker's own chain: the
//! three aliases share one instance and one call per batch) against the same three
//! transforms called natively, in records per second. `separate` is the same chain with
//! one instance and one call per alias, as a chain of different plugins runs.
//!
//! Run: `make bench-chain` (builds the plugins, then `cargo bench -p wasmconnect --bench
//! chain`; add `-- 64 4096` for other batch sizes; the default is 500, `batch.max.records`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use transforms::{KafkaTransforms, TransformConfig};
use wasmconnect::config::transforms::TransformSpec;
use wasmconnect::plugin::{Limits, Plugin, PluginEngine, TransformInstance};
use wasmconnect::task::chain::{Chain, Transformed};
use wasmconnect_sdk::Transform;
use wasmconnect_sdk::config::Config;
use wasmconnect_sdk::data::{Outcome, Record};

mod common;
use common::{cpu_model, measure, records};

const RECORDS_PER_MEASUREMENT: usize = 300_000;
const RUNS: usize = 5;

/// The chain, as a connector config would give it (`transforms.<alias>.*`, prefix removed).
fn chain_configs() -> Vec<BTreeMap<String, String>> {
    let config = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>()
    };
    vec![
        config(&[
            (
                "type",
                "org.apache.kafka.connect.transforms.InsertField$Value",
            ),
            ("static.field", "origin"),
            ("static.value", "wasmconnect"),
            ("topic.field", "source_topic"),
        ]),
        config(&[
            (
                "type",
                "org.apache.kafka.connect.transforms.ReplaceField$Value",
            ),
            ("exclude", "payload"),
            ("renames", "name:title"),
        ]),
        config(&[
            ("type", "org.apache.kafka.connect.transforms.RegexRouter"),
            ("regex", "bench"),
            ("replacement", "bench-routed"),
        ]),
    ]
}

fn kept(outcomes: Vec<Outcome>) -> Vec<Record> {
    outcomes
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Keep(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn main() {
    let plugin_file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/transforms.wasm");
    assert!(
        plugin_file.is_file(),
        "{} is missing: run `make plugins` (or `make bench-chain`)",
        plugin_file.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = Arc::new(PluginEngine::new(None).expect("engine"));
    let loading = std::time::Instant::now();
    let plugin = runtime
        .block_on(Plugin::load(engine, &plugin_file))
        .expect("transforms plugin");
    let load_ms = loading.elapsed().as_secs_f64() * 1e3;
    let plugin = Arc::new(plugin);
    let starting = std::time::Instant::now();
    let mut wasm: Vec<TransformInstance> = chain_configs()
        .iter()
        .map(|config| {
            let mut t = runtime
                .block_on(plugin.transform(Limits::default()))
                .expect("instance");
            runtime.block_on(t.configure(config)).expect("configure");
            t
        })
        .collect();
    let specs: Vec<TransformSpec> = chain_configs()
        .into_iter()
        .enumerate()
        .map(|(i, config)| TransformSpec {
            alias: format!("t{i}"),
            class: config["type"].clone(),
            plugin: plugin.clone(),
            config,
            predicate: None,
        })
        .collect();
    let mut chain = runtime
        .block_on(Chain::start(specs, Limits::default()))
        .expect("chain");
    let start_us = starting.elapsed().as_secs_f64() * 1e6 / 3.0;
    let mut native: Vec<KafkaTransforms> = chain_configs()
        .into_iter()
        .map(|c| {
            KafkaTransforms::configure(TransformConfig(c.into_iter().collect::<Config>()))
                .expect("configure")
        })
        .collect();

    println!("chain InsertField$Value + ReplaceField$Value + RegexRouter, 3-field struct values");
    println!(
        "best of {RUNS} runs of {RECORDS_PER_MEASUREMENT} records; machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!(
        "one component for all 16 classes ({} KiB): loaded (compiled, no cache) in {load_ms:.0} ms; \
         an alias instantiated and configured in {start_us:.0} us",
        std::fs::metadata(&plugin_file).map_or(0, |m| m.len() / 1024)
    );
    println!();
    println!(
        "{:>6}  {:>14}  {:>14}  {:>12}  {:>16}  {:>12}",
        "batch", "native rec/s", "wasm rec/s", "wasm/native", "separate rec/s", "sep./native"
    );
    let chosen: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if chosen.is_empty() { vec![500] } else { chosen };
    for size in sizes {
        let batch = records(size);
        let iterations = (RECORDS_PER_MEASUREMENT / size).max(100);
        let best =
            |f: &mut dyn FnMut() -> f64| (0..RUNS).map(|_| f()).fold(f64::INFINITY, f64::min);
        let native_ns = best(&mut || {
            let mut pool: Vec<Vec<Record>> = (0..iterations).map(|_| batch.clone()).collect();
            measure(size, iterations, |_| {
                let mut records = pool.pop().expect("a batch per iteration");
                for t in &mut native {
                    records = kept(t.apply_batch(records));
                }
                assert_eq!(records.len(), size);
                black_box(records);
            })
        });
        let wasm_ns = best(&mut || {
            let mut pool: Vec<Vec<Record>> = (0..iterations).map(|_| batch.clone()).collect();
            measure(size, iterations, |_| {
                let owned = pool.pop().expect("a batch per iteration");
                let out = runtime.block_on(chain.apply(owned)).expect("apply");
                assert_eq!(out.len(), size);
                black_box(out);
            })
        });
        let separate_ns = best(&mut || {
            measure(size, iterations, |_| {
                let mut records = runtime
                    .block_on(wasm[0].apply(black_box(&batch)))
                    .map(kept)
                    .expect("apply");
                for t in &mut wasm[1..] {
                    records = kept(runtime.block_on(t.apply(&records)).expect("apply"));
                }
                assert_eq!(records.len(), size);
                black_box(records);
            })
        });
        // Check once that both paths produce the same records.
        let mut check_native = batch.clone();
        for t in &mut native {
            check_native = kept(t.apply_batch(check_native));
        }
        let mut check_wasm = batch.clone();
        for t in &mut wasm {
            check_wasm = kept(runtime.block_on(t.apply(&check_wasm)).expect("apply"));
        }
        assert_eq!(check_native, check_wasm, "WASM and native agree");
        let fused: Vec<Record> = runtime
            .block_on(chain.apply(batch.clone()))
            .expect("apply")
            .into_iter()
            .filter_map(|t| match t {
                Transformed::Keep(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(check_native, fused, "the worker's chain agrees");
        println!(
            "{size:>6}  {:>14.0}  {:>14.0}  {:>12.2}  {:>16.0}  {:>12.2}",
            1e9 / native_ns,
            1e9 / wasm_ns,
            native_ns / wasm_ns,
            1e9 / separate_ns,
            native_ns / separate_ns
        );
    }
}
