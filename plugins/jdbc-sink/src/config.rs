//! The JDBC sink's configuration: Confluent's `JdbcSinkConfig` keys and defaults.

use wasmconnect_sdk::config::{Config, ConfigIssue, ConfigStruct, Password};

wasmconnect_sdk::config! {
    pub struct JdbcSinkConfig {
        /// JDBC connection URL, e.g. `jdbc:mysql://127.0.0.1:3306/shop`,
        /// `jdbc:postgresql://127.0.0.1:5432/test` or `jdbc:sqlite:/var/lib/app.db`.
        /// Unknown JDBC parameters are ignored.
        #[key = "connection.url", importance = High, group = "Connection"]
        pub connection_url: String,
        /// JDBC connection user.
        #[key = "connection.user", importance = High, default = String::new(), group = "Connection"]
        pub connection_user: String,
        /// JDBC connection password.
        #[key = "connection.password", importance = High, default = Password::default(), group = "Connection"]
        pub connection_password: Password,
        /// Maximum number of attempts to open the database before the task fails.
        #[key = "connection.attempts", importance = Low, default = 3, group = "Connection"]
        pub connection_attempts: i32,
        /// Backoff time in milliseconds between connection attempts.
        #[key = "connection.backoff.ms", importance = Low, default = 10_000, group = "Connection"]
        pub connection_backoff_ms: i64,
        /// The dialect to use; empty infers it from the URL (accepted for compatibility:
        /// the dialect always follows the database actually reached).
        #[key = "dialect.name", importance = Low, default = String::new(), group = "Connection"]
        pub dialect_name: String,
        /// The insertion mode: `insert` (plain INSERT), `upsert` (INSERT ... ON DUPLICATE
        /// KEY UPDATE on MySQL, ON CONFLICT on PostgreSQL and SQLite) or `update`.
        #[key = "insert.mode", importance = High, default = "insert".to_owned(), group = "Writes", values = ["insert", "upsert", "update"]]
        pub insert_mode: String,
        /// How many rows go into one multi-row statement at most.
        #[key = "batch.size", importance = Medium, default = 3000, group = "Writes"]
        pub batch_size: i32,
        /// Whether a tombstone (null value) deletes the row with its key; needs
        /// `pk.mode=record_key`.
        #[key = "delete.enabled", importance = Medium, default = false, group = "Writes"]
        pub delete_enabled: bool,
        /// The destination table name; `${topic}` is replaced by the record's topic. May be
        /// qualified (`db.table`).
        #[key = "table.name.format", importance = Medium, default = "${topic}".to_owned(), group = "Data Mapping"]
        pub table_name_format: String,
        /// Where the primary key comes from: `none`, `kafka` (topic, partition, offset),
        /// `record_key` or `record_value`.
        #[key = "pk.mode", importance = High, default = "none".to_owned(), group = "Data Mapping", values = ["none", "kafka", "record_key", "record_value"]]
        pub pk_mode: String,
        /// The primary key fields; their meaning depends on `pk.mode`.
        #[key = "pk.fields", importance = Medium, default = Vec::new(), group = "Data Mapping"]
        pub pk_fields: Vec<String>,
        /// Value fields to write (empty: all). Key columns are never dropped.
        #[key = "fields.whitelist", importance = Medium, default = Vec::new(), group = "Data Mapping"]
        pub fields_whitelist: Vec<String>,
        /// Whether to CREATE TABLE when the table is missing.
        #[key = "auto.create", importance = Medium, default = false, group = "DDL Support"]
        pub auto_create: bool,
        /// Whether to ALTER TABLE ... ADD missing columns. Columns are never dropped or
        /// retyped.
        #[key = "auto.evolve", importance = Medium, default = false, group = "DDL Support"]
        pub auto_evolve: bool,
        /// Whether to quote table and column names: `always` or `never` (then names must be
        /// plain identifiers).
        #[key = "quote.sql.identifiers", importance = Medium, default = "always".to_owned(), group = "DDL Support", values = ["always", "never"]]
        pub quote_sql_identifiers: String,
        /// How many times a batch is retried after a transient database error before the
        /// task fails.
        #[key = "max.retries", importance = Medium, default = 10, group = "Retries"]
        pub max_retries: i32,
        /// Milliseconds to wait before a retry.
        #[key = "retry.backoff.ms", importance = Medium, default = 3000, group = "Retries"]
        pub retry_backoff_ms: i64,
        /// The zone DATE, TIME and TIMESTAMP values are written in: `UTC` or a fixed
        /// offset such as `+02:00`.
        #[key = "db.timezone", importance = Medium, default = "UTC".to_owned(), group = "Data Mapping"]
        pub db_timezone: String,
        /// Kinds of table the sink writes to (`TABLE`, `VIEW`). Views are never altered.
        #[key = "table.types", importance = Low, default = vec!["TABLE".to_owned()], group = "DDL Support"]
        pub table_types: Vec<String>,
        /// Whether a null field is written as its schema's default.
        #[key = "replace.null.with.default", importance = Low, default = true, group = "Data Mapping"]
        pub replace_null_with_default: bool,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    Insert,
    Upsert,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
}

/// The config, checked across keys and turned into the writer's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub insert_mode: InsertMode,
    pub pk_mode: PkMode,
    pub pk_fields: Vec<String>,
    pub fields_whitelist: Vec<String>,
    pub table_name_format: String,
    pub batch_size: usize,
    pub delete_enabled: bool,
    pub auto_create: bool,
    pub auto_evolve: bool,
    pub quote: bool,
    pub max_retries: u32,
    pub retry_backoff_ms: u64,
    pub connection_attempts: u32,
    pub connection_backoff_ms: u64,
    /// Seconds east of UTC that temporal values are shifted by.
    pub tz_offset_secs: i64,
    pub allow_views: bool,
    pub replace_null_with_default: bool,
}

impl Settings {
    /// # Errors
    /// Every problem, by key.
    pub fn from_config(c: &JdbcSinkConfig) -> Result<Settings, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let insert_mode = match c.insert_mode.to_ascii_lowercase().as_str() {
            "upsert" => InsertMode::Upsert,
            "update" => InsertMode::Update,
            _ => InsertMode::Insert,
        };
        let pk_mode = match c.pk_mode.to_ascii_lowercase().as_str() {
            "kafka" => PkMode::Kafka,
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            _ => PkMode::None,
        };
        if c.delete_enabled && pk_mode != PkMode::RecordKey {
            issues.push(ConfigIssue::new(
                "delete.enabled",
                "Deletes are only supported for pk.mode record_key",
            ));
        }
        if insert_mode != InsertMode::Insert && pk_mode == PkMode::None {
            issues.push(ConfigIssue::new(
                "pk.mode",
                format!(
                    "insert.mode {} requires key field names to be known: set pk.mode to kafka, record_key or record_value",
                    c.insert_mode
                ),
            ));
        }
        if pk_mode == PkMode::Kafka && !c.pk_fields.is_empty() && c.pk_fields.len() != 3 {
            issues.push(ConfigIssue::new(
                "pk.fields",
                "PK mode for table is KAFKA, so there should either be no field names defined for defaults __connect_topic, __connect_partition and __connect_offset to be applicable, or exactly 3",
            ));
        }
        if c.batch_size < 1 {
            issues.push(ConfigIssue::new("batch.size", "must be at least 1"));
        }
        for (key, value) in [
            ("max.retries", i64::from(c.max_retries)),
            ("retry.backoff.ms", c.retry_backoff_ms),
            ("connection.attempts", i64::from(c.connection_attempts)),
            ("connection.backoff.ms", c.connection_backoff_ms),
        ] {
            if value < 0 {
                issues.push(ConfigIssue::new(key, "must not be negative"));
            }
        }
        let tz_offset_secs = wasmconnect_sdk::sql::parse_zone_offset(&c.db_timezone).unwrap_or_else(|| {
            issues.push(ConfigIssue::new(
                "db.timezone",
                format!(
                    "Invalid value {} for configuration db.timezone: use UTC or a fixed offset such as +02:00",
                    c.db_timezone
                ),
            ));
            0
        });
        for t in &c.table_types {
            if !["TABLE", "VIEW", "PARTITIONED TABLE"].contains(&t.to_ascii_uppercase().as_str()) {
                issues.push(ConfigIssue::new(
                    "table.types",
                    format!("Invalid value {t}: must be TABLE, PARTITIONED TABLE or VIEW"),
                ));
            }
        }
        if !c.table_name_format.contains("${topic}") && c.table_name_format.trim().is_empty() {
            issues.push(ConfigIssue::new("table.name.format", "must not be empty"));
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let non_negative = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Settings {
            insert_mode,
            pk_mode,
            pk_fields: c.pk_fields.clone(),
            fields_whitelist: c.fields_whitelist.clone(),
            table_name_format: c.table_name_format.clone(),
            batch_size: usize::try_from(c.batch_size).unwrap_or(1).max(1),
            delete_enabled: c.delete_enabled,
            auto_create: c.auto_create,
            auto_evolve: c.auto_evolve,
            quote: !c.quote_sql_identifiers.eq_ignore_ascii_case("never"),
            max_retries: u32::try_from(c.max_retries).unwrap_or(0),
            retry_backoff_ms: non_negative(c.retry_backoff_ms),
            connection_attempts: u32::try_from(c.connection_attempts).unwrap_or(1).max(1),
            connection_backoff_ms: non_negative(c.connection_backoff_ms),
            tz_offset_secs,
            allow_views: c.table_types.iter().any(|t| t.eq_ignore_ascii_case("VIEW")),
            replace_null_with_default: c.replace_null_with_default,
        })
    }
}

/// The typed config plus the cross-key checks.
pub fn validate(config: &Config) -> Vec<ConfigIssue> {
    match JdbcSinkConfig::from_config(config) {
        Err(issues) => issues,
        Ok(c) => Settings::from_config(&c).err().unwrap_or_default(),
    }
}
