//! A sink that misbehaves on purpose, for the isolation and error policy tests: on its first
//! `put` it traps, loops forever, allocates without bound, or probes the filesystem (`fs`:
//! it reads the granted `probe.file` and the ungranted `probe.ungranted`, and fails with
//! what it saw). `flaky` fails every other `put` retriably and `reject` refuses the records
//! whose value has `"reject": true`; both append what they accepted to `probe.file` as
//! `topic/partition/offset` lines.

use wasmconnect_sdk::prelude::*;

wasmconnect_sdk::config! {
    pub struct FaultsConfig {
        /// What to do: none, trap, loop, oom, fs, flaky or reject.
        #[key = "fault", importance = High, values = ["none", "trap", "loop", "oom", "fs", "flaky", "reject"]]
        pub fault: String,
        /// With fs: a file the worker grants (its folder is preopened).
        #[key = "probe.file", importance = Low, default = String::new()]
        pub probe_file: String,
        /// With fs: a file outside every grant.
        #[key = "probe.ungranted", importance = Low, default = String::new()]
        pub probe_ungranted: String,
    }
}

#[derive(Debug)]
pub struct Faults {
    config: FaultsConfig,
    written: u64,
    calls: u64,
}

/// Appends `topic/partition/offset` of each record to the granted file.
fn append(path: &str, records: &[&Record]) -> Result<(), PluginError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| PluginError::fatal(format!("cannot open {path}: {e}")))?;
    let mut lines = String::new();
    for r in records {
        lines.push_str(&format!(
            "{}/{}/{}\n",
            r.topic,
            r.partition.unwrap_or(-1),
            r.offset.unwrap_or(-1)
        ));
    }
    file.write_all(lines.as_bytes())
        .map_err(|e| PluginError::retriable(format!("cannot write {path}: {e}")))
}

fn probe(path: &str) -> String {
    match std::fs::read(path) {
        Ok(bytes) => format!("ok({} bytes)", bytes.len()),
        Err(e) => format!("err({e})"),
    }
}

impl Sink for Faults {
    type Config = FaultsConfig;

    fn metadata() -> Metadata {
        Metadata::new(
            "TestFaultsSink",
            env!("CARGO_PKG_VERSION"),
            "Misbehaves on purpose (tests only).",
        )
        .file_grants(&["probe.file"])
    }

    fn open(config: FaultsConfig) -> Result<Self, PluginError> {
        Ok(Faults {
            config,
            written: 0,
            calls: 0,
        })
    }

    fn put(&mut self, records: Vec<Record>) -> Result<Vec<RecordFailure>, PluginError> {
        self.calls += 1;
        match self.config.fault.as_str() {
            "flaky" => {
                if self.calls % 2 == 1 {
                    return Err(PluginError::retriable(format!(
                        "test-faults: transient failure on call {}",
                        self.calls
                    )));
                }
                append(&self.config.probe_file, &records.iter().collect::<Vec<_>>())?;
                Ok(Vec::new())
            }
            "reject" => {
                let rejected =
                    |r: &Record| r.value.value().map_get("reject") == Some(&Value::Boolean(true));
                let accepted: Vec<&Record> = records.iter().filter(|r| !rejected(r)).collect();
                append(&self.config.probe_file, &accepted)?;
                Ok(records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| rejected(r))
                    .map(|(i, _)| RecordFailure {
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        message: "test-faults: rejected on purpose".into(),
                    })
                    .collect())
            }
            "fs" => Err(PluginError::fatal(format!(
                "fs probe: granted={} ungranted={}",
                probe(&self.config.probe_file),
                probe(&self.config.probe_ungranted)
            ))),
            "trap" => panic!(
                "test-faults: deliberate trap after {} records",
                self.written
            ),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 * 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            _ => {
                self.written += records.len() as u64;
                Ok(Vec::new())
            }
        }
    }
}

wasmconnect_sdk::export_sink!(Faults);
