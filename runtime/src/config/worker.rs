//! The worker config: Kafka Connect's key names, typed, with the defaults of
//! `connect-standalone`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::plugin::Limits;

use super::providers::{ConfigProviders, ProviderError};

/// A bad worker config.
#[derive(Debug, thiserror::Error)]
pub enum WorkerConfigError {
    #[error("invalid value {value} for configuration {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("missing required configuration \"{0}\" which has no default value")]
    Missing(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// Where the worker's Kafka is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaTarget {
    /// librdkafka's in-process mock cluster: development only, not durable.
    Embedded,
    Servers(String),
}

/// The worker config.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Every key as given, for client and converter settings.
    pub raw: BTreeMap<String, String>,
    pub kafka: KafkaTarget,
    /// Host and port the REST API listens on.
    pub listen: (String, u16),
    /// The `host:port` this worker is known by (`worker_id` in statuses).
    pub advertised: String,
    pub plugin_path: Vec<PathBuf>,
    pub plugin_cache_dir: Option<PathBuf>,
    /// `plugin.allowed.hosts`: the hosts plugins may open database and cache connections
    /// to (exact names, `*.suffix`, or `*`); empty allows any.
    pub plugin_allowed_hosts: Vec<String>,
    pub offset_file: Option<PathBuf>,
    pub offset_flush_interval: Duration,
    pub task_shutdown_timeout: Duration,
    pub topic_creation_enable: bool,
    pub topic_tracking_enable: bool,
    pub topic_tracking_allow_reset: bool,
    pub limits: Limits,
    pub providers: ConfigProviders,
}

pub(super) fn parse_num<T: std::str::FromStr>(
    raw: &BTreeMap<String, String>,
    key: &str,
    default: T,
) -> Result<T, WorkerConfigError> {
    match raw.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| WorkerConfigError::Invalid {
            key: key.into(),
            value: v.clone(),
            reason: "not a number".into(),
        }),
    }
}

fn parse_bool(
    raw: &BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, WorkerConfigError> {
    match raw.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(WorkerConfigError::Invalid {
            key: key.into(),
            value: v,
            reason: "expected true or false".into(),
        }),
    }
}

/// Parses the first of `listeners` (`http://host:port`; an empty host means all interfaces).
fn parse_listener(raw: &BTreeMap<String, String>) -> Result<(String, u16), WorkerConfigError> {
    let value = raw.get("listeners").map_or("http://:8083", String::as_str);
    let first = value.split(',').next().unwrap_or("").trim();
    let invalid = |reason: &str| WorkerConfigError::Invalid {
        key: "listeners".into(),
        value: value.into(),
        reason: reason.into(),
    };
    let rest = first
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// listeners are supported"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected http://host:port"))?;
    let port = port.parse().map_err(|_| invalid("bad port"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

/// Where `make build` puts the plugins: `target/plugins`, beside the folder of the binary.
pub fn default_plugin_path() -> Vec<PathBuf> {
    let beside_binary = std::env::current_exe().ok().and_then(|exe| {
        exe.parent()
            .and_then(|d| d.parent())
            .map(|t| t.join("plugins"))
    });
    beside_binary.into_iter().collect()
}

const KNOWN_KEYS: &[&str] = &[
    "bootstrap.servers",
    "listeners",
    "rest.advertised.host.name",
    "rest.advertised.port",
    "rest.advertised.listener",
    "plugin.path",
    "plugin.cache.dir",
    "plugin.memory.max.bytes",
    "plugin.call.timeout.ms",
    "plugin.allowed.hosts",
    "offset.storage.file.filename",
    "offset.flush.interval.ms",
    "offset.flush.timeout.ms",
    "task.shutdown.graceful.timeout.ms",
    "topic.creation.enable",
    "topic.tracking.enable",
    "topic.tracking.allow.reset",
    "key.converter",
    "value.converter",
    "header.converter",
    "config.providers",
    "group.id",
    "config.storage.topic",
    "config.storage.replication.factor",
    "offset.storage.topic",
    "offset.storage.replication.factor",
    "offset.storage.partitions",
    "status.storage.topic",
    "status.storage.replication.factor",
    "status.storage.partitions",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "rebalance.timeout.ms",
    "scheduled.rebalance.max.delay.ms",
    "connect.protocol",
    "worker.sync.timeout.ms",
    "worker.unsync.backoff.ms",
];

const KNOWN_PREFIXES: &[&str] = &[
    "key.converter.",
    "value.converter.",
    "header.converter.",
    "config.providers.",
    "producer.",
    "consumer.",
    "admin.",
    "listeners.",
    "config.storage.",
    "offset.storage.",
    "status.storage.",
];

impl WorkerConfig {
    /// Reads a worker config.
    ///
    /// # Errors
    /// A bad value, naming its key.
    pub fn from_map(raw: BTreeMap<String, String>) -> Result<WorkerConfig, WorkerConfigError> {
        for key in raw.keys() {
            if !KNOWN_KEYS.contains(&key.as_str())
                && !KNOWN_PREFIXES.iter().any(|p| key.starts_with(p))
            {
                tracing::warn!(key = %key, "The configuration was supplied but isn't a known config.");
            }
        }
        let kafka = match raw.get("bootstrap.servers").map(|s| s.trim()) {
            None | Some("") | Some("embedded") => KafkaTarget::Embedded,
            Some(servers) => KafkaTarget::Servers(servers.to_owned()),
        };
        let listen = parse_listener(&raw)?;
        let advertised_host = raw
            .get("rest.advertised.host.name")
            .cloned()
            .unwrap_or_else(|| {
                if listen.0 == "0.0.0.0" {
                    "localhost".into()
                } else {
                    listen.0.clone()
                }
            });
        let advertised_port = parse_num(&raw, "rest.advertised.port", listen.1)?;
        let plugin_path = match raw.get("plugin.path") {
            Some(p) => p
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            None => default_plugin_path(),
        };
        let plugin_cache_dir = match raw.get("plugin.cache.dir").map(|s| s.trim()) {
            Some("") => None,
            Some(dir) => Some(PathBuf::from(dir)),
            None => Some(std::env::temp_dir().join("wasmconnect-plugin-cache")),
        };
        let limits = Limits {
            memory_bytes: parse_num(
                &raw,
                "plugin.memory.max.bytes",
                Limits::DEFAULT_MEMORY_BYTES,
            )?,
            call_timeout: Duration::from_millis(parse_num(
                &raw,
                "plugin.call.timeout.ms",
                Limits::DEFAULT_CALL_TIMEOUT.as_millis() as u64,
            )?),
        };
        Ok(WorkerConfig {
            kafka,
            listen,
            advertised: format!("{advertised_host}:{advertised_port}"),
            plugin_path,
            plugin_cache_dir,
            plugin_allowed_hosts: super::list(&raw, "plugin.allowed.hosts"),
            offset_file: raw.get("offset.storage.file.filename").map(PathBuf::from),
            offset_flush_interval: Duration::from_millis(parse_num(
                &raw,
                "offset.flush.interval.ms",
                60_000,
            )?),
            task_shutdown_timeout: Duration::from_millis(parse_num(
                &raw,
                "task.shutdown.graceful.timeout.ms",
                5_000,
            )?),
            topic_creation_enable: parse_bool(&raw, "topic.creation.enable", true)?,
            topic_tracking_enable: parse_bool(&raw, "topic.tracking.enable", true)?,
            topic_tracking_allow_reset: parse_bool(&raw, "topic.tracking.allow.reset", true)?,
            limits,
            providers: ConfigProviders::from_worker_config(&raw)?,
            raw,
        })
    }

    /// Settings under `prefix` (such as `producer.`), prefix removed.
    pub fn prefixed(&self, prefix: &str) -> BTreeMap<String, String> {
        prefixed(&self.raw, prefix)
    }
}

/// Entries of `map` under `prefix`, prefix removed.
pub fn prefixed(map: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    map.iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_owned(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::map;

    #[test]
    fn defaults_and_embedded_kafka() {
        let c = WorkerConfig::from_map(map(&[])).expect("valid");
        assert_eq!(c.kafka, KafkaTarget::Embedded);
        assert_eq!(c.listen, ("0.0.0.0".into(), 8083));
        assert_eq!(c.advertised, "localhost:8083");
        let c = WorkerConfig::from_map(map(&[
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("listeners", "http://127.0.0.1:18083"),
            ("offset.flush.interval.ms", "10000"),
        ]))
        .expect("valid");
        assert_eq!(c.kafka, KafkaTarget::Servers("127.0.0.1:9092".into()));
        assert_eq!(c.listen, ("127.0.0.1".into(), 18083));
        assert_eq!(c.offset_flush_interval, Duration::from_secs(10));
    }

    #[test]
    fn bad_values_name_their_key() {
        let err =
            WorkerConfig::from_map(map(&[("offset.flush.interval.ms", "soon")])).expect_err("bad");
        assert!(
            err.to_string().contains("offset.flush.interval.ms"),
            "{err}"
        );
        let err = WorkerConfig::from_map(map(&[("listeners", "https://:8443")])).expect_err("bad");
        assert!(err.to_string().contains("listeners"), "{err}");
    }
}
