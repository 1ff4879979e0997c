//! What crosses the boundary besides batches (which travel in the SDK's batch frame):
//! source positions and configs.

use wasmconnect_sdk::data::{Scalar, SourcePosition};

use super::bindings::types as wit;

/// A batch from a plugin could not be decoded: the plugin broke the contract.
#[derive(Debug, thiserror::Error)]
#[error("plugin sent malformed data: {0}")]
pub struct WireError(pub String);

impl From<wasmconnect_sdk::data::codec::DecodeError> for WireError {
    fn from(e: wasmconnect_sdk::data::codec::DecodeError) -> WireError {
        WireError(e.0)
    }
}

fn scalar_to_wit(s: &Scalar) -> wit::Scalar {
    match s {
        Scalar::Null => wit::Scalar::Null,
        Scalar::Boolean(b) => wit::Scalar::Boolean(*b),
        Scalar::Integer(i) => wit::Scalar::Integer(*i),
        Scalar::Float(f) => wit::Scalar::Float(*f),
        Scalar::Text(t) => wit::Scalar::Text(t.clone()),
    }
}

pub fn position_to_wit(p: &SourcePosition) -> wit::SourcePosition {
    let map = |m: &Vec<(String, Scalar)>| {
        m.iter()
            .map(|(k, v)| (k.clone(), scalar_to_wit(v)))
            .collect()
    };
    wit::SourcePosition {
        partition: map(&p.partition),
        offset: map(&p.offset),
    }
}

/// A flat string config for a plugin.
pub fn config_to_wit<'a>(
    config: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> wit::Config {
    config
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
