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

use identity_transform::Identity;
use wasmconnect::plugin::{Limits, Plugin, PluginEngine};
use wasmconnect_sdk::Transform;
use wasmconnect_sdk::data::batch::{decode_records, encode_records};
use wasmconnect_sdk::data::codec::{SchemaCache, encode_value};
use wasmconnect_sdk::data::{Outcome, Record};

mod common;
use common::{cpu_model, measure, records};

const BATCH_SIZES: [usize; 4] = [1, 64, 512, 4096];
/// Records handled per measurement (each measurement is repeated and the best run kept).
const RECORDS_PER_MEASUREMENT: usize = 300_000;
const RUNS: usize = 3;

fn iterations_for(batch: usize) -> usize {
    (RECORDS_PER_MEASUREMENT / batch).max(200)
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
    let value_bytes = encode_value(sample[0].value.value()).len();
    println!(
        "identity transform; {value_bytes}-byte encoded struct values (3 fields), string keys"
    );
    println!(
        "one call per batch, batches in the batch frame; best of {RUNS} runs of {RECORDS_PER_MEASUREMENT} records"
    );
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!();
    println!(
        "{:>6}  {:>13}  {:>12}  {:>15}  {:>16}  {:>12}",
        "batch",
        "native ns/rec",
        "wasm ns/rec",
        "boundary ns/rec",
        "wasm+read ns/rec",
        "codec ns/rec"
    );
    // `cargo bench ... -- 512` measures only the batch sizes given.
    let chosen: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes: &[usize] = if chosen.is_empty() {
        &BATCH_SIZES
    } else {
        &chosen
    };
    for &size in sizes {
        let batch = records(size);
        let iterations = iterations_for(size);
        let best =
            |f: &mut dyn FnMut() -> f64| (0..RUNS).map(|_| f()).fold(f64::INFINITY, f64::min);
        // Native: the transform takes ownership of each batch, as it does in the host; the
        // batches are cloned before the clock starts.
        let native_ns = best(&mut || {
            let mut pool: Vec<Vec<Record>> = (0..iterations).map(|_| batch.clone()).collect();
            measure(size, iterations, |_| {
                let owned = pool.pop().expect("a batch per iteration");
                black_box(native.apply_batch(black_box(owned)));
            })
        });
        // WASM: encode, one call, decode the outcomes (values stay encoded until read).
        let wasm_ns = best(&mut || {
            measure(size, iterations, |_| {
                let out = runtime
                    .block_on(wasm.apply(black_box(&batch)))
                    .expect("apply");
                assert_eq!(out.len(), size);
                black_box(out);
            })
        });
        // The same, then every output key and value read: what a consumer that looks at
        // all of them pays on top.
        let read_ns = best(&mut || {
            measure(size, iterations, |_| {
                let out = runtime
                    .block_on(wasm.apply(black_box(&batch)))
                    .expect("apply");
                for o in &out {
                    if let Outcome::Keep(r) = o {
                        black_box(r.key.value());
                        black_box(r.value.value());
                    }
                }
                black_box(out);
            })
        });
        // The frame codec alone, natively: one encode and one decode of the batch.
        let mut cache = SchemaCache::new();
        let codec_ns = best(&mut || {
            measure(size, iterations, |_| {
                let frame = encode_records(black_box(&batch));
                black_box(decode_records(frame, &mut cache).expect("decode"));
            })
        });
        println!(
            "{size:>6}  {native_ns:>13.1}  {wasm_ns:>12.1}  {:>15.1}  {read_ns:>16.1}  {codec_ns:>12.1}",
            wasm_ns - native_ns
        );
    }
}
