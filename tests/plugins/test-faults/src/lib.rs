//! A sink that misbehaves on purpose, for the isolation tests: it traps, loops forever or
//! allocates without bound on its first `put`, as its `fault` config says.

use wasmconnect_sdk::prelude::*;

wasmconnect_sdk::config! {
    pub struct FaultsConfig {
        /// What to do on the first put: none, trap, loop or oom.
        #[key = "fault", importance = High, values = ["none", "trap", "loop", "oom"]]
        pub fault: String,
    }
}

#[derive(Debug)]
pub struct Faults {
    fault: String,
    written: u64,
}

impl Sink for Faults {
    type Config = FaultsConfig;

    fn metadata() -> Metadata {
        Metadata::new(
            "TestFaultsSink",
            env!("CARGO_PKG_VERSION"),
            "Misbehaves on purpose (tests only).",
        )
    }

    fn open(config: FaultsConfig) -> Result<Self, PluginError> {
        Ok(Faults {
            fault: config.fault,
            written: 0,
        })
    }

    fn put(&mut self, records: Vec<Record>) -> Result<Vec<RecordFailure>, PluginError> {
        match self.fault.as_str() {
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
