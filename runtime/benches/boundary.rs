//! The cost of the WebAssembly boundary: an identity transform called through wasmtime
//! (records encoded, one call per batch, results decoded) against the same transform called
//! natively, at batch sizes 1, 64, 512 and 4096, with 100-byte values and a small struct
//! schema. Prints ns per record for both and the difference.
//!
//! Run: `make bench` (builds the guest fixtures, then `cargo bench -p wasmconnect --bench boundary`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use identity_transform::Identity;
use wasmconnect::plugin::{Limits, Plugin, PluginEngine};
use wasmconnect_sdk::Transform;
use wasmconnect_sdk::data::batch::{decode_records, encode_records};
use wasmconnect_sdk::data::codec::{SchemaCache, encode_value};
use wasmconnect_sdk::data::{Data, Record, Schema, SchemaType, Struct, Value};

const BATCH_SIZES: [usize; 4] = [1, 64, 512, 4096];
/// Each measurement handles at least this many records and runs at least this long.
const MIN_RECORDS: usize = 400_000;
const MIN_TIME: Duration = Duration::from_millis(1500);

fn records(n: usize) -> Vec<Record> {
    let schema = Arc::new(
        Schema::structure()
            .named("bench.Event")
            .field("id", Schema::new(SchemaType::Int64))
            .field("name", Schema::new(SchemaType::String))
            .field("payload", Schema::new(SchemaType::String)),
    );
    (0..n)
        .map(|i| {
            let value = Struct::from_values(
                schema.clone(),
                vec![
                    Value::Int64(i as i64),
                    Value::String(format!("event-{i:08}")),
                    Value::String("x".repeat(70)),
                ],
            )
            .expect("struct");
            Record {
                topic: "bench".into(),
                partition: Some(0),
                offset: Some(i as i64),
                timestamp: Some(1_700_000_000_000),
                key: Data::schemaless(format!("key-{i}")),
                value: Data::new(schema.clone(), Value::Struct(value)),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// Runs `f` on whole batches until both minimums are met; returns ns per record.
fn measure(batch: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut done = 0;
    while done < MIN_RECORDS || start.elapsed() < MIN_TIME {
        f();
        done += batch;
    }
    start.elapsed().as_nanos() as f64 / done as f64
}

fn main() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-plugins/identity_transform.wasm");
    assert!(
        fixture.is_file(),
        "{} is missing: run `make test-plugins` (or `make bench`)",
        fixture.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = Arc::new(PluginEngine::new(None).expect("engine"));
    let plugin = runtime
        .block_on(Plugin::load(engine, &fixture))
        .expect("identity plugin");
    let mut wasm = runtime
        .block_on(plugin.transform(Limits::default()))
        .expect("instance");
    runtime
        .block_on(wasm.configure(&BTreeMap::new()))
        .expect("configure");
    let mut native = Identity;

    let sample = records(1);
    let value_bytes = encode_value(&sample[0].value.value).len();
    println!(
        "identity transform, {value_bytes}-byte encoded struct values (3 fields), one call per batch"
    );
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!();
    println!(
        "{:>6}  {:>12}  {:>12}  {:>14}  {:>16}",
        "batch", "native ns/rec", "wasm ns/rec", "boundary ns/rec", "of which codec ns"
    );
    for &size in &BATCH_SIZES {
        let batch = records(size);
        let native_ns = measure(size, || {
            // The host hands the transform records it owns: a clone stands in for that.
            let out = native.apply_batch(black_box(batch.clone()));
            black_box(out);
        });
        let wasm_ns = measure(size, || {
            let out = runtime
                .block_on(wasm.apply(black_box(&batch)))
                .expect("apply");
            assert_eq!(out.len(), size);
            black_box(out);
        });
        // The codec's share, measured natively: one encode and one decode of the batch frame.
        // The boundary does this twice (host to guest, guest to host).
        let mut cache = SchemaCache::new();
        let codec_ns = measure(size, || {
            let frame = encode_records(black_box(&batch));
            black_box(decode_records(&frame, &mut cache).expect("decode"));
        });
        println!(
            "{size:>6}  {native_ns:>12.1}  {wasm_ns:>12.1}  {:>14.1}  {:>16.1}",
            wasm_ns - native_ns,
            codec_ns * 2.0
        );
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
