//! Source offsets. Keys and values are the JSON of Kafka Connect's offset topic
//! (`["<connector>",{partition}]` -> `{offset}`), so they read the same to anyone migrating.
//! Standalone mode keeps them in `offset.storage.file.filename`, rewritten atomically;
//! distributed mode in `offset.storage.topic`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use wasmconnect_sdk::data::{OffsetMap, Scalar, SourcePosition};

use super::distributed::log::{LogError, LogRecord, LogSpec, TopicLog};
use crate::kafka::TopicCreator;

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
    #[error("cannot write offsets to the offset topic: {0}")]
    Topic(String),
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

/// Where offsets are kept.
enum Backend {
    /// In memory only (standalone without `offset.storage.file.filename`).
    Memory,
    /// Standalone: one file, rewritten on each flush.
    File(PathBuf),
    /// Distributed: the offset topic, read by a log that keeps `entries` current.
    Topic(TopicLog),
}

/// Source offsets, by offset-topic key. Writes go to memory; [`OffsetStore::flush`] makes
/// them durable. Standalone and distributed workers share this interface.
pub struct OffsetStore {
    backend: Backend,
    entries: Arc<Mutex<BTreeMap<String, Json>>>,
    /// Keys put since the last flush (the topic backend writes only those).
    dirty: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for OffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            Backend::Memory => "memory".to_owned(),
            Backend::File(p) => p.display().to_string(),
            Backend::Topic(log) => log.topic().to_owned(),
        };
        f.debug_struct("OffsetStore")
            .field("backend", &backend)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
            backend: file.map_or(Backend::Memory, Backend::File),
            entries: Arc::new(Mutex::new(entries)),
            dirty: Mutex::new(BTreeSet::new()),
        })
    }

    /// Opens the offset topic (`offset.storage.topic`), creating it when missing, and reads it.
    ///
    /// # Errors
    /// When the topic cannot be created or read.
    pub async fn on_topic(
        bootstrap: &str,
        client_layers: &[&BTreeMap<String, String>],
        creator: &TopicCreator,
        spec: &LogSpec,
        sync_timeout: Duration,
    ) -> Result<OffsetStore, LogError> {
        let entries: Arc<Mutex<BTreeMap<String, Json>>> = Arc::default();
        let sink = entries.clone();
        let apply = move |r: LogRecord| {
            let Some(key) = r.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
                return;
            };
            let value = r.value.as_deref().map(serde_json::from_slice::<Json>);
            let mut entries = lock(&sink);
            match value {
                None => {
                    entries.remove(key);
                }
                Some(Ok(v)) => {
                    entries.insert(key.to_owned(), v);
                }
                Some(Err(e)) => {
                    tracing::error!(key, error = %e, "Skipping an offset record that is not JSON.");
                }
            }
        };
        let log = TopicLog::open(bootstrap, client_layers, creator, spec, apply).await?;
        log.read_to_end(sync_timeout).await?;
        Ok(OffsetStore {
            backend: Backend::Topic(log),
            entries,
            dirty: Mutex::new(BTreeSet::new()),
        })
    }

    /// Waits until offsets written by other workers before the call are visible here.
    ///
    /// # Errors
    /// When the offset topic cannot be read to its end in time.
    pub async fn sync(&self, timeout: Duration) -> Result<(), LogError> {
        match &self.backend {
            Backend::Topic(log) => log.read_to_end(timeout).await,
            Backend::Memory | Backend::File(_) => Ok(()),
        }
    }

    /// Every stored position of `connector`.
    pub fn positions(&self, connector: &str) -> Vec<SourcePosition> {
        lock(&self.entries)
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
                    partition: Arc::new(map_from_json(partition)?),
                    offset: map_from_json(value)?,
                })
            })
            .collect()
    }

    /// Records positions in memory.
    pub fn put(&self, connector: &str, positions: &[SourcePosition]) {
        let mut entries = lock(&self.entries);
        let mut dirty = lock(&self.dirty);
        for p in positions {
            let key = offset_key(connector, &p.partition);
            entries.insert(key.clone(), map_to_json(&p.offset));
            dirty.insert(key);
        }
    }

    /// Removes positions in memory (the next flush writes tombstones to the topic).
    pub fn remove(&self, connector: &str, partitions: &[OffsetMap]) {
        let mut entries = lock(&self.entries);
        let mut dirty = lock(&self.dirty);
        for p in partitions {
            let key = offset_key(connector, p);
            entries.remove(&key);
            dirty.insert(key);
        }
    }

    /// Makes every position put so far durable: the file is rewritten atomically (a
    /// temporary file, fsync, rename); the topic gets one record per changed key.
    ///
    /// # Errors
    /// When the file or the topic cannot be written.
    pub async fn flush(&self) -> Result<(), OffsetError> {
        let dirty = std::mem::take(&mut *lock(&self.dirty));
        match &self.backend {
            Backend::Memory => Ok(()),
            Backend::File(path) => {
                let path = path.clone();
                let text = self.file_text();
                tokio::task::spawn_blocking(move || write_atomically(&path, &text))
                    .await
                    .map_err(|e| OffsetError::Topic(e.to_string()))?
            }
            Backend::Topic(log) => {
                let writes: Vec<(String, Option<Vec<u8>>)> = {
                    let entries = lock(&self.entries);
                    dirty
                        .iter()
                        .map(|k| {
                            (
                                k.clone(),
                                entries.get(k).map(|v| v.to_string().into_bytes()),
                            )
                        })
                        .collect()
                };
                let sends = writes
                    .iter()
                    .map(|(k, v)| log.send(k.as_bytes(), v.as_deref()));
                let results = futures::future::join_all(sends).await;
                if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                    // Put them back so the next flush tries again.
                    lock(&self.dirty).extend(dirty);
                    return Err(OffsetError::Topic(e.to_string()));
                }
                Ok(())
            }
        }
    }

    fn file_text(&self) -> String {
        let offsets: Vec<Json> = lock(&self.entries)
            .iter()
            .map(|(k, v)| json!({"key": serde_json::from_str::<Json>(k).unwrap_or(Json::Null), "value": v}))
            .collect();
        json!({"version": 1, "offsets": offsets}).to_string()
    }
}

fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), OffsetError> {
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
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmconnect_sdk::data::offset_map;

    #[tokio::test]
    async fn positions_survive_a_reopen_in_connects_key_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("offsets.json");
        let store = OffsetStore::open(Some(file.clone())).expect("open");
        let p = SourcePosition {
            partition: Arc::new(offset_map([("table", "db.t"), ("protocol", "1")])),
            offset: offset_map([("incrementing", 42i64)]),
        };
        store.put("jdbc", std::slice::from_ref(&p));
        store.put("other", std::slice::from_ref(&p));
        store.flush().await.expect("flush");
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
