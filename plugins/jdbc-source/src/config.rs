//! The JDBC source's configuration: Confluent's `JdbcSourceConnectorConfig` keys and
//! defaults, plus `record.key`.

use wasmconnect_sdk::config::{Config, ConfigIssue, ConfigStruct, Password};

/// The task-level key naming the tables one task copies (set by `task_configs`).
pub const TASK_TABLES: &str = "tables";

wasmconnect_sdk::config! {
    pub struct JdbcSourceConfig {
        /// JDBC connection URL, e.g. `jdbc:mysql://127.0.0.1:3306/shop`.
        #[key = "connection.url", importance = High, group = "Database"]
        pub connection_url: String,
        /// JDBC connection user.
        #[key = "connection.user", importance = High, default = String::new(), group = "Database"]
        pub connection_user: String,
        /// JDBC connection password.
        #[key = "connection.password", importance = High, default = Password::default(), group = "Database"]
        pub connection_password: Password,
        /// Attempts to reach the database when a task starts.
        #[key = "connection.attempts", importance = Low, default = 3, group = "Database"]
        pub connection_attempts: i32,
        /// Milliseconds between those attempts.
        #[key = "connection.backoff.ms", importance = Low, default = 10_000, group = "Database"]
        pub connection_backoff_ms: i64,
        /// Tables to copy (names or `db.table`); empty copies every table of the database.
        #[key = "table.whitelist", importance = Medium, default = Vec::new(), group = "Database"]
        pub table_whitelist: Vec<String>,
        /// Tables not to copy; cannot be combined with `table.whitelist`.
        #[key = "table.blacklist", importance = Medium, default = Vec::new(), group = "Database"]
        pub table_blacklist: Vec<String>,
        /// Kinds of table to copy: `TABLE`, `VIEW`.
        #[key = "table.types", importance = Low, default = vec!["TABLE".to_owned()], group = "Database"]
        pub table_types: Vec<String>,
        /// How rows are found: `bulk` (the whole table on every poll), `incrementing` (a
        /// strictly increasing column), `timestamp` (a last-modified column) or
        /// `timestamp+incrementing` (both, for updates without loss or repeats).
        #[key = "mode", importance = High, group = "Mode", values = ["bulk", "incrementing", "timestamp", "timestamp+incrementing"]]
        pub mode: String,
        /// The strictly increasing column; empty finds the AUTO_INCREMENT (or single
        /// integer primary key) column.
        #[key = "incrementing.column.name", importance = Medium, default = String::new(), group = "Mode"]
        pub incrementing_column_name: String,
        /// The timestamp column(s); with several, the first non-null (`COALESCE`) counts.
        #[key = "timestamp.column.name", importance = Medium, default = Vec::new(), group = "Mode"]
        pub timestamp_column_name: Vec<String>,
        /// Milliseconds after a timestamp before its rows are read, so that transactions
        /// in flight commit first.
        #[key = "timestamp.delay.interval.ms", importance = High, default = 0, group = "Mode"]
        pub timestamp_delay_interval_ms: i64,
        /// Epoch milliseconds to start from when there is no offset; `-1` means now.
        /// Empty reads from the beginning.
        #[key = "timestamp.initial", importance = Low, default = String::new(), group = "Mode"]
        pub timestamp_initial: String,
        /// Whether to fail when the incrementing or timestamp columns are nullable.
        #[key = "validate.non.null", importance = Low, default = true, group = "Mode"]
        pub validate_non_null: bool,
        /// A custom SELECT instead of whole tables; the mode's WHERE clause is appended.
        #[key = "query", importance = Medium, default = String::new(), group = "Mode"]
        pub query: String,
        /// Topic = prefix + table name; in `query` mode the prefix is the whole topic.
        #[key = "topic.prefix", importance = High, group = "Connector"]
        pub topic_prefix: String,
        /// Milliseconds between two queries of the same table.
        #[key = "poll.interval.ms", importance = High, default = 5000, group = "Connector"]
        pub poll_interval_ms: i64,
        /// Rows per batch at most; also the rows fetched per read from the database.
        #[key = "batch.max.rows", importance = Low, default = 100, group = "Connector"]
        pub batch_max_rows: i32,
        /// The zone DATETIME values are read in: `UTC` or a fixed offset such as `+02:00`.
        #[key = "db.timezone", importance = Medium, default = "UTC".to_owned(), group = "Connector"]
        pub db_timezone: String,
        /// Whether to quote table and column names: `always` or `never`.
        #[key = "quote.sql.identifiers", importance = Medium, default = "always".to_owned(), group = "Connector", values = ["always", "never"]]
        pub quote_sql_identifiers: String,
        /// Accepted for compatibility; DECIMAL columns are always Connect Decimals.
        #[key = "numeric.mapping", importance = Low, default = "none".to_owned(), group = "Connector", values = ["none", "best_fit", "best_fit_eager_double", "precision_only"]]
        pub numeric_mapping: String,
        /// Beyond Confluent: `primary_key` gives each record its row's primary key as
        /// the record key (one column: the value; several: a struct); `none` (Confluent's
        /// behaviour) sends no key.
        #[key = "record.key", importance = Medium, default = "none".to_owned(), group = "Connector", values = ["none", "primary_key"]]
        pub record_key: String,
        /// Set by the connector for each task: the tables it copies.
        #[key = "tables", importance = Low, default = Vec::new(), group = "Internal"]
        pub tables: Vec<String>,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bulk,
    Incrementing,
    Timestamp,
    TimestampIncrementing,
}

impl Mode {
    pub fn incrementing(self) -> bool {
        matches!(self, Mode::Incrementing | Mode::TimestampIncrementing)
    }

    pub fn timestamp(self) -> bool {
        matches!(self, Mode::Timestamp | Mode::TimestampIncrementing)
    }
}

/// Where a task starts when it has no offset (`timestamp.initial`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initial {
    Beginning,
    Now,
    At(i64),
}

/// The config, checked across keys.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub incrementing_column: Option<String>,
    pub timestamp_columns: Vec<String>,
    pub timestamp_delay_ms: i64,
    pub timestamp_initial: Initial,
    pub validate_non_null: bool,
    pub query: Option<String>,
    pub topic_prefix: String,
    pub poll_interval_ms: u64,
    pub batch_max_rows: u32,
    pub tz_offset_secs: i64,
    pub quote: bool,
    pub key_from_primary_key: bool,
    pub whitelist: Vec<String>,
    pub blacklist: Vec<String>,
    pub views: bool,
    pub connection_attempts: u32,
    pub connection_backoff_ms: u64,
}

impl Settings {
    /// # Errors
    /// Every problem, by key.
    pub fn from_config(c: &JdbcSourceConfig) -> Result<Settings, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mode = match c.mode.to_ascii_lowercase().as_str() {
            "bulk" => Mode::Bulk,
            "incrementing" => Mode::Incrementing,
            "timestamp" => Mode::Timestamp,
            _ => Mode::TimestampIncrementing,
        };
        if mode.timestamp() && c.timestamp_column_name.is_empty() {
            issues.push(ConfigIssue::new(
                "timestamp.column.name",
                format!("mode {} needs a timestamp column", c.mode),
            ));
        }
        if !c.table_whitelist.is_empty() && !c.table_blacklist.is_empty() {
            issues.push(ConfigIssue::new(
                "table.blacklist",
                "table.whitelist and table.blacklist cannot both be set",
            ));
        }
        let query = Some(c.query.trim().to_owned()).filter(|q| !q.is_empty());
        if query.is_some() && !c.table_whitelist.is_empty() {
            issues.push(ConfigIssue::new(
                "query",
                "a query and table.whitelist cannot both be set",
            ));
        }
        if query.is_some() && mode == Mode::Incrementing && c.incrementing_column_name.is_empty() {
            issues.push(ConfigIssue::new(
                "incrementing.column.name",
                "query mode needs the incrementing column named",
            ));
        }
        let timestamp_initial = match c.timestamp_initial.trim() {
            "" => Initial::Beginning,
            "-1" => Initial::Now,
            t => match t.parse::<i64>() {
                Ok(ms) if ms >= 0 => Initial::At(ms),
                _ => {
                    issues.push(ConfigIssue::new(
                        "timestamp.initial",
                        format!("must be epoch milliseconds or -1, not {t:?}"),
                    ));
                    Initial::Beginning
                }
            },
        };
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
        if c.batch_max_rows < 1 {
            issues.push(ConfigIssue::new("batch.max.rows", "must be at least 1"));
        }
        for (key, value) in [
            ("poll.interval.ms", c.poll_interval_ms),
            ("timestamp.delay.interval.ms", c.timestamp_delay_interval_ms),
            ("connection.backoff.ms", c.connection_backoff_ms),
        ] {
            if value < 0 {
                issues.push(ConfigIssue::new(key, "must not be negative"));
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let non_negative = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Settings {
            mode,
            incrementing_column: Some(c.incrementing_column_name.trim().to_owned())
                .filter(|s| !s.is_empty()),
            timestamp_columns: c.timestamp_column_name.clone(),
            timestamp_delay_ms: c.timestamp_delay_interval_ms,
            timestamp_initial,
            validate_non_null: c.validate_non_null,
            query,
            topic_prefix: c.topic_prefix.clone(),
            poll_interval_ms: non_negative(c.poll_interval_ms),
            batch_max_rows: u32::try_from(c.batch_max_rows).unwrap_or(1).max(1),
            tz_offset_secs,
            quote: !c.quote_sql_identifiers.eq_ignore_ascii_case("never"),
            key_from_primary_key: c.record_key.eq_ignore_ascii_case("primary_key"),
            whitelist: if c.tables.is_empty() {
                c.table_whitelist.clone()
            } else {
                c.tables.clone()
            },
            blacklist: c.table_blacklist.clone(),
            views: c.table_types.iter().any(|t| t.eq_ignore_ascii_case("VIEW")),
            connection_attempts: u32::try_from(c.connection_attempts).unwrap_or(1).max(1),
            connection_backoff_ms: non_negative(c.connection_backoff_ms),
        })
    }
}

/// The typed config plus the cross-key checks.
pub fn validate(config: &Config) -> Vec<ConfigIssue> {
    match JdbcSourceConfig::from_config(config) {
        Err(issues) => issues,
        Ok(c) => Settings::from_config(&c).err().unwrap_or_default(),
    }
}
