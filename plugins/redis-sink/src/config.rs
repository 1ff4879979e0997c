//! The Redis sink's configuration: the keys of Redis' own Kafka connector
//! (`com.redis.kafka.connect.RedisSinkConnector`, 1.x).

use wasmconnect_sdk::config::{Config, ConfigIssue, ConfigStruct, Password};

wasmconnect_sdk::config! {
    pub struct RedisSinkConfig {
        /// Redis URI, e.g. `redis://user:password@host:6379/0`; `rediss://` uses TLS. When
        /// empty, `redis.host` and `redis.port` are used.
        #[key = "redis.uri", importance = High, default = String::new(), group = "Connection"]
        pub uri: String,
        /// The Redis host, when there is no `redis.uri`.
        #[key = "redis.host", importance = High, default = "localhost".to_owned(), group = "Connection"]
        pub host: String,
        /// The Redis port, when there is no `redis.uri`.
        #[key = "redis.port", importance = High, default = 6379, group = "Connection"]
        pub port: i32,
        /// ACL user name (overrides the URI's).
        #[key = "redis.username", importance = Medium, default = String::new(), group = "Connection"]
        pub username: String,
        /// Password (overrides the URI's).
        #[key = "redis.password", importance = Medium, default = Password::default(), group = "Connection"]
        pub password: Password,
        /// The database number (overrides the URI's).
        #[key = "redis.database", importance = Medium, default = 0, group = "Connection"]
        pub database: i32,
        /// Connect with TLS (as `rediss://` does).
        #[key = "redis.tls", importance = Medium, default = false, group = "Connection"]
        pub tls: bool,
        /// With TLS, accept any certificate (test setups only).
        #[key = "redis.insecure", importance = Low, default = false, group = "Connection"]
        pub insecure: bool,
        /// Seconds to wait for the connection and for each reply.
        #[key = "redis.timeout", importance = Low, default = 60, group = "Connection"]
        pub timeout: i32,
        /// What each record becomes: `STRING` (SET), `HASH` (HSET), `JSON` (JSON.SET, needs
        /// the RedisJSON module), `STREAM` (XADD), `LIST` (RPUSH), `SET` (SADD) or `ZSET`
        /// (ZADD).
        #[key = "redis.type", importance = High, default = "STREAM".to_owned(), group = "Writes", values = ["STRING", "HASH", "JSON", "STREAM", "LIST", "SET", "ZSET"]]
        pub redis_type: String,
        /// The key prefix (STRING, HASH, JSON) or the collection's whole key (STREAM, LIST,
        /// SET, ZSET); `${topic}` is replaced by the record's topic.
        #[key = "redis.keyspace", importance = Medium, default = "${topic}".to_owned(), group = "Writes"]
        pub keyspace: String,
        /// Joins the keyspace and the record key.
        #[key = "redis.separator", importance = Medium, default = ":".to_owned(), group = "Writes"]
        pub separator: String,
        /// Wrap each batch in MULTI/EXEC.
        #[key = "redis.multiexec", importance = Medium, default = false, group = "Writes"]
        pub multiexec: bool,
        /// Seconds until a written key expires (EXPIRE after each write); -1 never. A
        /// record header `redis.key.ttl` overrides it.
        #[key = "redis.key.ttl", importance = Medium, default = -1, group = "Writes"]
        pub key_ttl: i64,
        /// After each batch, wait until this many replicas acknowledged it (WAIT); 0 does
        /// not wait.
        #[key = "redis.wait.replicas", importance = Low, default = 0, group = "Writes"]
        pub wait_replicas: i32,
        /// Milliseconds WAIT may take.
        #[key = "redis.wait.timeout", importance = Low, default = 1000, group = "Writes"]
        pub wait_timeout: i64,
        /// The charset of keys and values; only UTF-8 is supported.
        #[key = "redis.charset", importance = Low, default = "UTF-8".to_owned(), group = "Writes"]
        pub charset: String,
    }
}

/// What a record becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisType {
    String,
    Hash,
    Json,
    Stream,
    List,
    Set,
    ZSet,
}

impl RedisType {
    pub fn name(self) -> &'static str {
        match self {
            RedisType::String => "STRING",
            RedisType::Hash => "HASH",
            RedisType::Json => "JSON",
            RedisType::Stream => "STREAM",
            RedisType::List => "LIST",
            RedisType::Set => "SET",
            RedisType::ZSet => "ZSET",
        }
    }

    /// Whether the record key names the Redis key (`keyspace:key`) rather than a member of
    /// the collection at `keyspace`.
    pub fn keyed(self) -> bool {
        matches!(self, RedisType::String | RedisType::Hash | RedisType::Json)
    }
}

/// The config, checked across keys.
#[derive(Debug, Clone)]
pub struct Settings {
    pub redis_type: RedisType,
    pub keyspace: String,
    pub separator: String,
    pub multiexec: bool,
    /// Seconds; `None` never expires.
    pub ttl: Option<i64>,
    pub wait_replicas: i64,
    pub wait_timeout_ms: i64,
}

impl Settings {
    /// # Errors
    /// Every problem, by key.
    pub fn from_config(c: &RedisSinkConfig) -> Result<Settings, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let redis_type = match c.redis_type.to_ascii_uppercase().as_str() {
            "STRING" => RedisType::String,
            "HASH" => RedisType::Hash,
            "JSON" => RedisType::Json,
            "LIST" => RedisType::List,
            "SET" => RedisType::Set,
            "ZSET" => RedisType::ZSet,
            _ => RedisType::Stream,
        };
        if !c.charset.eq_ignore_ascii_case("UTF-8") && !c.charset.eq_ignore_ascii_case("UTF8") {
            issues.push(ConfigIssue::new(
                "redis.charset",
                format!("only UTF-8 is supported, not {:?}", c.charset),
            ));
        }
        if !redis_type.keyed() && c.keyspace.trim().is_empty() {
            issues.push(ConfigIssue::new(
                "redis.keyspace",
                format!(
                    "redis.type {} writes into the collection named by redis.keyspace, which must not be empty",
                    c.redis_type
                ),
            ));
        }
        if c.key_ttl == 0 || c.key_ttl < -1 {
            issues.push(ConfigIssue::new(
                "redis.key.ttl",
                format!(
                    "must be a positive number of seconds or -1, not {}",
                    c.key_ttl
                ),
            ));
        }
        if c.wait_replicas < 0 {
            issues.push(ConfigIssue::new(
                "redis.wait.replicas",
                "must not be negative",
            ));
        }
        if c.wait_timeout < 0 {
            issues.push(ConfigIssue::new(
                "redis.wait.timeout",
                "must not be negative",
            ));
        }
        if !(1..=65535).contains(&c.port) {
            issues.push(ConfigIssue::new(
                "redis.port",
                format!("must be a port number (1-65535), not {}", c.port),
            ));
        }
        if c.database < 0 {
            issues.push(ConfigIssue::new("redis.database", "must not be negative"));
        }
        if c.timeout < 1 {
            issues.push(ConfigIssue::new(
                "redis.timeout",
                "must be at least 1 second",
            ));
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Settings {
            redis_type,
            keyspace: c.keyspace.clone(),
            separator: c.separator.clone(),
            multiexec: c.multiexec,
            ttl: (c.key_ttl > 0).then_some(c.key_ttl),
            wait_replicas: i64::from(c.wait_replicas),
            wait_timeout_ms: c.wait_timeout,
        })
    }
}

/// The typed config plus the cross-key checks.
pub fn validate(config: &Config) -> Vec<ConfigIssue> {
    match RedisSinkConfig::from_config(config) {
        Err(issues) => issues,
        Ok(c) => Settings::from_config(&c).err().unwrap_or_default(),
    }
}
