//! A transform that returns every record unchanged: the boundary benchmark's subject.

use wasmconnect_sdk::prelude::*;

wasmconnect_sdk::config! {
    pub struct IdentityConfig {}
}

#[derive(Debug)]
pub struct Identity;

impl Transform for Identity {
    type Config = IdentityConfig;

    fn metadata() -> Metadata {
        Metadata::new(
            "Identity",
            env!("CARGO_PKG_VERSION"),
            "Returns every record unchanged.",
        )
    }

    fn configure(_config: IdentityConfig) -> Result<Self, PluginError> {
        Ok(Identity)
    }

    fn apply(&mut self, record: Record) -> Outcome {
        Outcome::Keep(record)
    }
}

wasmconnect_sdk::export_transform!(Identity);
