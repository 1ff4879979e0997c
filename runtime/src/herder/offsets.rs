//! Source offsets. Keys and values are the JSON of Kafka Connect's offset topic
//! (`["<connector>",{partition}]` -> `{offset}`), so they read the same to anyone migrating.
//! Standalone mode keeps them in `offset.storage.file.filename`, rewritten atomically.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{Map, Value as Json, json};
use wasmconnect_sdk::data::{OffsetMap, Scalar, SourcePosition};

/// The offset store failed.
#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot read offsets from {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write offsets to {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub fn map_to_json(map: &OffsetMap) -> Json {
    let mut o = Map::new();
    for (k, v) in map {
        let v = match v {
            Scalar::Null => Json::Null,
            Scalar::Boolean(b) => Json::Bool(*b),
            Scalar::Integer(i) => json!(i),
            Scalar::Float(f) => json!(f),
            Scalar::Text(t) => Json::String(t.clone()),
        };
        o.insert(k.clone(), v);
    }
    Json::Object(o)
}

/// Reads a partition or offset map; `None` when it is not a map of primitives.
pub fn map_from_json(json: &Json) -> Option<OffsetMap> {
    let o = json.as_object()?;
    let mut map = Vec::with_capacity(o.len());
    for (k, v) in o {
        let s = match v {
            Json::Null => Scalar::Null,
            Json::Bool(b) => Scalar::Boolean(*b),
            Json::Number(n) => n
                .as_i64()
                .map_or_else(|| Scalar::Float(n.as_f64().unwrap_or(0.0)), Scalar::Integer),
            Json::String(s) => Scalar::Text(s.clone()),
            _ => return None,
        };
        map.push((k.clone(), s));
    }
    map.sort_by(|a, b| a.0.cmp(&b.0));
    Some(map)
}

/// The offset-topic key of a connector's source partition, as compact JSON.
pub fn offset_key(connector: &str, partition: &OffsetMap) -> String {
    json!([connector, map_to_json(partition)]).to_string()
}

/// Source offsets, by offset-topic key. Writes go to memory; [`OffsetStore::flush`] makes
/// them durable.
#[derive(Debug)]
pub struct OffsetStore {
    file: Option<PathBuf>,
    entries: Mutex<BTreeMap<String, Json>>,
}

impl OffsetStore {
    /// Opens the store, reading `file` if it exists; without a file offsets live in memory.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn open(file: Option<PathBuf>) -> Result<OffsetStore, OffsetError> {
        let mut entries = BTreeMap::new();
        if let Some(path) = &file
            && path.exists()
        {
            let read_err = |message: String| OffsetError::Read {
                path: path.clone(),
                message,
            };
            let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
            if !text.trim().is_empty() {
                let json: Json =
                    serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
                let list = json
                    .get("offsets")
                    .and_then(Json::as_array)
                    .ok_or_else(|| read_err("no \"offsets\" list".into()))?;
                for entry in list {
                    let (Some(key), Some(value)) = (entry.get("key"), entry.get("value")) else {
                        return Err(read_err("an entry lacks key or value".into()));
                    };
                    entries.insert(key.to_string(), value.clone());
                }
            }
        }
        Ok(OffsetStore {
            file,
            entries: Mutex::new(entries),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Json>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every stored position of `connector`.
    pub fn positions(&self, connector: &str) -> Vec<SourcePosition> {
        self.lock()
            .iter()
            .filter_map(|(key, value)| {
                let key: Json = serde_json::from_str(key).ok()?;
                let [name, partition] = key.as_array()?.as_slice() else {
                    return None;
                };
                if name.as_str()? != connector {
                    return None;
                }
                Some(SourcePosition {
                    partition: map_from_json(partition)?,
                    offset: map_from_json(value)?,
                })
            })
            .collect()
    }

    /// Records positions in memory.
    pub fn put(&self, connector: &str, positions: &[SourcePosition]) {
        let mut entries = self.lock();
        for p in positions {
            entries.insert(offset_key(connector, &p.partition), map_to_json(&p.offset));
        }
    }

    /// Writes every position to the file (atomically: a temporary file, fsync, rename).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn flush(&self) -> Result<(), OffsetError> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let offsets: Vec<Json> = self
            .lock()
            .iter()
            .map(|(k, v)| json!({"key": serde_json::from_str::<Json>(k).unwrap_or(Json::Null), "value": v}))
            .collect();
        let text = json!({"version": 1, "offsets": offsets}).to_string();
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, path)
        };
        write().map_err(|source| OffsetError::Write {
            path: path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmconnect_sdk::data::offset_map;

    #[test]
    fn positions_survive_a_reopen_in_connects_key_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("offsets.json");
        let store = OffsetStore::open(Some(file.clone())).expect("open");
        let p = SourcePosition {
            partition: offset_map([("table", "db.t"), ("protocol", "1")]),
            offset: offset_map([("incrementing", 42i64)]),
        };
        store.put("jdbc", std::slice::from_ref(&p));
        store.put("other", std::slice::from_ref(&p));
        store.flush().expect("flush");
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(
            text.contains(r#"["jdbc",{"protocol":"1","table":"db.t"}]"#),
            "{text}"
        );
        let reopened = OffsetStore::open(Some(file)).expect("reopen");
        assert_eq!(reopened.positions("jdbc"), vec![p]);
        assert!(reopened.positions("missing").is_empty());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("offsets.json");
        std::fs::write(&file, "{nope").expect("write");
        assert!(OffsetStore::open(Some(file)).is_err());
    }
}
