//! A sink that misbehaves on purpose, for the isolation tests: on its first `put` it traps,
//! loops forever, allocates without bound, or probes the filesystem (`fs`: it reads the
//! granted `probe.file` and the ungranted `probe.ungranted`, and fails with what it saw).

use wasmconnect_sdk::prelude::*;

wasmconnect_sdk::config! {
    pub struct FaultsConfig {
        /// What to do on the first put: none, trap, loop, oom or fs.
        #[key = "fault", importance = High, values = ["none", "trap", "loop", "oom", "fs"]]
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
        Ok(Faults { config, written: 0 })
    }

    fn put(&mut self, records: Vec<Record>) -> Result<Vec<RecordFailure>, PluginError> {
        match self.config.fault.as_str() {
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
