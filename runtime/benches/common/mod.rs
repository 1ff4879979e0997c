//! What the benchmarks share: the records they push through, the clock and the machine.

use std::sync::Arc;
use std::time::Instant;

use wasmconnect_sdk::data::{Data, Record, Schema, SchemaType, Struct, Value};

/// `n` records with a string key and a 3-field struct value of about 100 bytes.
pub fn records(n: usize) -> Vec<Record> {
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

/// Runs `f` for `iterations` batches of `batch` records; returns ns per record.
pub fn measure(batch: usize, iterations: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    start.elapsed().as_nanos() as f64 / (batch * iterations) as f64
}

/// The CPU, for the printed report.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
