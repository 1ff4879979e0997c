//! Converting records between the worker's data model and the WIT types (the host side of
//! what `wasmconnect_sdk::__guest` does in the plugin).

use std::sync::Arc;

use wasmconnect_sdk::data::codec::{SchemaCache, SchemaTable, decode_value, encode_value};
use wasmconnect_sdk::data::{
    Data, Header, OffsetMap, Record, Scalar, Schema, SourcePosition, SourceRecord, Value,
};

use super::bindings::types as wit;

/// A batch from a plugin could not be decoded: the plugin broke the contract.
#[derive(Debug, thiserror::Error)]
#[error("plugin sent malformed data: {0}")]
pub struct WireError(pub String);

fn data_to_wit(d: &Data, table: &mut SchemaTable) -> Option<wit::Data> {
    if d.schema.is_none() && d.value.is_null() {
        return None;
    }
    Some(wit::Data {
        schema: d.schema.as_ref().map(|s| table.index(s)),
        value: encode_value(&d.value),
    })
}

fn data_from_wit(d: Option<wit::Data>, schemas: &[Arc<Schema>]) -> Result<Data, WireError> {
    let Some(d) = d else {
        return Ok(Data::NULL);
    };
    let schema = match d.schema {
        None => None,
        Some(i) => Some(
            schemas
                .get(i as usize)
                .cloned()
                .ok_or_else(|| WireError(format!("schema index {i} out of range")))?,
        ),
    };
    let value = decode_value(&d.value, schema.as_ref()).map_err(|e| WireError(e.to_string()))?;
    Ok(Data { schema, value })
}

/// Encodes a record for a plugin, adding its schemas to `table`.
pub fn record_to_wit(r: &Record, table: &mut SchemaTable) -> wit::DataRecord {
    wit::DataRecord {
        topic: r.topic.clone(),
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: data_to_wit(&r.key, table),
        value: data_to_wit(&r.value, table),
        headers: r
            .headers
            .iter()
            .map(|h| wit::Header {
                key: h.key.clone(),
                value: data_to_wit(&h.value, table).unwrap_or_else(|| wit::Data {
                    schema: None,
                    value: encode_value(&Value::Null),
                }),
            })
            .collect(),
    }
}

/// Decodes a record a plugin returned.
///
/// # Errors
/// When the plugin's bytes do not decode.
pub fn record_from_wit(r: wit::DataRecord, schemas: &[Arc<Schema>]) -> Result<Record, WireError> {
    let mut headers = Vec::with_capacity(r.headers.len());
    for h in r.headers {
        headers.push(Header {
            key: h.key,
            value: data_from_wit(Some(h.value), schemas)?,
        });
    }
    Ok(Record {
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: data_from_wit(r.key, schemas)?,
        value: data_from_wit(r.value, schemas)?,
        headers,
    })
}

/// Encodes a batch.
pub fn batch_to_wit(records: &[Record]) -> wit::RecordBatch {
    let mut table = SchemaTable::new();
    let records = records
        .iter()
        .map(|r| record_to_wit(r, &mut table))
        .collect();
    wit::RecordBatch {
        schemas: table.into_encoded(),
        records,
    }
}

/// Decodes a schema table through the task's cache.
///
/// # Errors
/// When a schema does not decode.
pub fn schemas_from_wit(
    cache: &mut SchemaCache,
    table: &[Vec<u8>],
) -> Result<Vec<Arc<Schema>>, WireError> {
    cache
        .decode_table(table)
        .map_err(|e| WireError(e.to_string()))
}

fn scalar_from_wit(s: wit::Scalar) -> Scalar {
    match s {
        wit::Scalar::Null => Scalar::Null,
        wit::Scalar::Boolean(b) => Scalar::Boolean(b),
        wit::Scalar::Integer(i) => Scalar::Integer(i),
        wit::Scalar::Float(f) => Scalar::Float(f),
        wit::Scalar::Text(t) => Scalar::Text(t),
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

fn map_from_wit(m: wit::OffsetMap) -> OffsetMap {
    m.into_iter()
        .map(|(k, v)| (k, scalar_from_wit(v)))
        .collect()
}

fn map_to_wit(m: &OffsetMap) -> wit::OffsetMap {
    m.iter()
        .map(|(k, v)| (k.clone(), scalar_to_wit(v)))
        .collect()
}

pub fn position_to_wit(p: &SourcePosition) -> wit::SourcePosition {
    wit::SourcePosition {
        partition: map_to_wit(&p.partition),
        offset: map_to_wit(&p.offset),
    }
}

/// Decodes a source batch.
///
/// # Errors
/// When the plugin's bytes do not decode.
pub fn source_batch_from_wit(
    cache: &mut SchemaCache,
    batch: wit::SourceBatch,
) -> Result<Vec<SourceRecord>, WireError> {
    let schemas = schemas_from_wit(cache, &batch.schemas)?;
    batch
        .records
        .into_iter()
        .map(|r| {
            Ok(SourceRecord {
                position: SourcePosition {
                    partition: map_from_wit(r.position.partition),
                    offset: map_from_wit(r.position.offset),
                },
                record: record_from_wit(r.data, &schemas)?,
            })
        })
        .collect()
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
