//! `JdbcSourceConnector`: copies MySQL, MariaDB, PostgreSQL or SQLite tables (or a query)
//! into Kafka with Confluent's JDBC source keys and offsets, through the worker's `sql`
//! capability.
//!
//! Each table is read with a streaming cursor, `batch.max.rows` rows per poll, so memory
//! stays bounded on tables of any size. Offsets use Confluent's maps (partition
//! `{"protocol": "1", "table": "db.t"}`, offset `{"incrementing": 42}` and/or
//! `{"timestamp": ms, "timestamp_nanos": ns}`), so a migrated connector resumes where the
//! Java one stopped.

mod columns;
mod config;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmconnect_sdk::prelude::*;
use wasmconnect_sdk::sql::{self, Connection, Cursor, Dialect, SqlParam, SqlValue};

use columns::{ColumnInfo, FieldType};
use config::{Initial, TASK_TABLES};
pub use config::{JdbcSourceConfig, Mode, Settings};

const TABLE_KEY: &str = "table";
const PROTOCOL_KEY: &str = "protocol";
const QUERY_KEY: &str = "query";
const INCREMENTING_KEY: &str = "incrementing";
const TIMESTAMP_KEY: &str = "timestamp";
const TIMESTAMP_NANOS_KEY: &str = "timestamp_nanos";

/// How far a table has been read: the last incrementing value and timestamp (database
/// zone, microseconds since the epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Offset {
    incrementing: Option<i64>,
    timestamp: Option<i64>,
}

/// One table (or the query) a task copies.
#[derive(Debug)]
struct Source {
    /// `db.t`, as in the offset partition; `None` for the query.
    full_name: Option<String>,
    /// The schema (database) and table name, for SQL and metadata.
    schema: Option<String>,
    name: String,
    topic: Arc<str>,
    columns: Vec<ColumnInfo>,
    incrementing: Option<String>,
    offset: Offset,
    cursor: Option<Cursor>,
    /// Timestamp mode: the last row read, not yet sent (see `read`).
    pending: Option<Vec<SqlParam<'static>>>,
    /// The cursor's columns as fields, in result order, with the struct schema.
    layout: Option<(Vec<ColumnInfo>, Arc<Schema>, Option<KeyLayout>)>,
    next_query: Instant,
}

#[derive(Debug)]
struct KeyLayout {
    /// Indexes of the key columns in the result.
    indexes: Vec<usize>,
    /// Those columns.
    columns: Vec<ColumnInfo>,
    schema: Arc<Schema>,
}

#[derive(Debug)]
pub struct JdbcSource {
    settings: Settings,
    db: Connection,
    dialect: Dialect,
    sources: Vec<Source>,
}

fn quote(dialect: Dialect, settings: &Settings, name: &str) -> Result<String, PluginError> {
    dialect
        .identifier(name, settings.quote)
        .map_err(PluginError::config)
}

/// The placeholder for the `n`th (1-based) parameter.
fn placeholder(dialect: Dialect, n: usize) -> String {
    if dialect == Dialect::Postgres {
        format!("${n}")
    } else {
        "?".to_owned()
    }
}

/// The current database (MySQL) or schema (PostgreSQL) and the tables in it.
fn list_tables(
    db: &Connection,
    dialect: Dialect,
    views: bool,
) -> Result<(Option<String>, Vec<String>), PluginError> {
    let (current, list) = match dialect {
        Dialect::MySql | Dialect::MariaDb => (
            "SELECT DATABASE()",
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
        ),
        Dialect::Postgres => (
            "SELECT current_schema()",
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name",
        ),
        Dialect::Sqlite => (
            "SELECT 'main'",
            "SELECT name, upper(type) FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name",
        ),
    };
    let schema = db
        .query(current, &[])?
        .rows
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.as_str().map(str::to_owned));
    let tables = db
        .query(list, &[])?
        .rows
        .into_iter()
        .filter_map(|r| {
            let name = r.first()?.as_str()?.to_owned();
            let kind = r.get(1).and_then(SqlValue::as_str).unwrap_or("TABLE");
            (views || !kind.to_ascii_uppercase().contains("VIEW")).then_some(name)
        })
        .collect();
    Ok((schema, tables))
}

/// A table's columns with types, nullability, primary key and auto-increment.
fn describe(
    db: &Connection,
    dialect: Dialect,
    schema: Option<&str>,
    table: &str,
) -> Result<Vec<ColumnInfo>, PluginError> {
    let schema_param = schema.map_or(SqlValue::Null, |s| SqlValue::Text(s.to_owned()));
    let table_param = SqlValue::Text(table.to_owned());
    let rows = match dialect {
        Dialect::MySql | Dialect::MariaDb => db.query(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES', NUMERIC_SCALE, COLUMN_KEY = 'PRI', EXTRA LIKE '%auto_increment%' \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            &[schema_param, table_param],
        )?,
        Dialect::Postgres => db.query(
            "SELECT c.column_name::text, c.data_type::text, c.is_nullable = 'YES', c.numeric_scale::bigint, \
               EXISTS (SELECT 1 FROM information_schema.table_constraints tc \
                 JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema \
                 WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = c.table_schema AND tc.table_name = c.table_name AND k.column_name = c.column_name), \
               COALESCE(c.column_default LIKE 'nextval(%' OR c.is_identity = 'YES', false) \
             FROM information_schema.columns c WHERE c.table_schema = COALESCE($1, current_schema()) AND c.table_name = $2 ORDER BY c.ordinal_position",
            &[schema_param, table_param],
        )?,
        Dialect::Sqlite => db.query(
            "SELECT name, type, \"notnull\" = 0 AND pk = 0, NULL, pk > 0, pk > 0 AND upper(type) = 'INTEGER' FROM pragma_table_info(?)",
            &[table_param],
        )?,
    };
    let flag = |v: Option<&SqlValue>| v.and_then(SqlValue::as_i64).unwrap_or(0) != 0;
    Ok(rows
        .rows
        .iter()
        .filter_map(|r| {
            let name = r.first()?.as_str()?.to_owned();
            let type_name = r.get(1).and_then(SqlValue::as_str).unwrap_or("TEXT");
            let scale = r
                .get(3)
                .and_then(SqlValue::as_i64)
                .and_then(|s| i32::try_from(s).ok());
            Some(ColumnInfo {
                name,
                field: FieldType::of(type_name, scale),
                nullable: flag(r.get(2)),
                primary_key: flag(r.get(4)),
                auto_increment: flag(r.get(5)),
            })
        })
        .collect())
}

/// Whether `name` (a table in `schema`) is named by an entry of a white- or blacklist,
/// bare or qualified.
fn listed(list: &[String], schema: Option<&str>, name: &str) -> bool {
    list.iter().any(|entry| match entry.split_once('.') {
        Some((s, t)) => Some(s) == schema && t == name,
        None => entry == name,
    })
}

impl Source {
    /// Confluent's source partition: `{"protocol": "1", "table": "db.t"}` for incremental
    /// table modes, `{"table": "t"}` in bulk mode, `{"query": "query"}` for a query.
    fn partition(&self, mode: Mode) -> OffsetMap {
        match &self.full_name {
            None => offset_map([(QUERY_KEY, Scalar::from("query"))]),
            Some(_) if mode == Mode::Bulk => {
                offset_map([(TABLE_KEY, Scalar::from(self.name.as_str()))])
            }
            Some(full) => offset_map([
                (PROTOCOL_KEY, Scalar::from("1")),
                (TABLE_KEY, Scalar::from(full.as_str())),
            ]),
        }
    }

    /// The stored offset for this table: protocol 1 first, then the legacy bare name.
    fn resume(&mut self, mode: Mode, positions: &[SourcePosition], tz_offset_secs: i64) {
        let ours = self.partition(mode);
        let legacy = offset_map([(TABLE_KEY, Scalar::from(self.name.as_str()))]);
        let Some(position) = positions
            .iter()
            .find(|p| *p.partition == ours)
            .or_else(|| positions.iter().find(|p| *p.partition == legacy))
        else {
            return;
        };
        if let Some(Scalar::Integer(i)) = offset_get(&position.offset, INCREMENTING_KEY) {
            self.offset.incrementing = Some(*i);
        }
        if let Some(Scalar::Integer(ms)) = offset_get(&position.offset, TIMESTAMP_KEY) {
            let nanos = match offset_get(&position.offset, TIMESTAMP_NANOS_KEY) {
                Some(Scalar::Integer(n)) => *n,
                _ => (ms.rem_euclid(1000)) * 1_000_000,
            };
            let micros = ms.div_euclid(1000) * 1_000_000 + nanos / 1000;
            self.offset.timestamp = Some(micros + tz_offset_secs * 1_000_000);
        }
        wasmconnect_sdk::info!(
            "Resuming {} at incrementing={:?} timestamp={:?}.",
            self.full_name.as_deref().unwrap_or("the query"),
            self.offset.incrementing,
            self.offset.timestamp
        );
    }

    /// Confluent's source offset for a row read up to `offset`.
    fn offset_map(&self, offset: Offset, tz_offset_secs: i64) -> OffsetMap {
        let mut pairs: Vec<(&str, Scalar)> = Vec::new();
        if let Some(i) = offset.incrementing {
            pairs.push((INCREMENTING_KEY, Scalar::Integer(i)));
        }
        if let Some(ts) = offset.timestamp {
            let utc = ts - tz_offset_secs * 1_000_000;
            pairs.push((TIMESTAMP_KEY, Scalar::Integer(utc.div_euclid(1000))));
            pairs.push((
                TIMESTAMP_NANOS_KEY,
                Scalar::Integer(utc.rem_euclid(1_000_000) * 1000),
            ));
        }
        offset_map(pairs)
    }
}

/// A timestamp row value in the database's zone, as microseconds.
fn timestamp_micros(v: &SqlParam<'_>) -> Option<i64> {
    match v {
        SqlParam::Timestamp(m) => Some(*m),
        SqlParam::Date(d) => Some(i64::from(*d) * 86_400_000_000),
        SqlParam::Text(s) => parse_datetime(s),
        _ => None,
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (SQLite's CURRENT_TIMESTAMP and text columns).
fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next().flatten().unwrap_or(0));
    let micros_frac: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000) + micros_frac)
}

impl JdbcSource {
    fn now_in_db(&self) -> Result<i64, PluginError> {
        let rows = self.db.query("SELECT CURRENT_TIMESTAMP", &[])?;
        rows.rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| timestamp_micros(&v.into()))
            .ok_or_else(|| PluginError::retriable("SELECT CURRENT_TIMESTAMP returned no time"))
    }

    /// The SQL expression of the timestamp column(s).
    fn timestamp_expr(&self) -> Result<String, PluginError> {
        let cols = self
            .settings
            .timestamp_columns
            .iter()
            .map(|c| quote(self.dialect, &self.settings, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if cols.len() == 1 {
            cols[0].clone()
        } else {
            format!("COALESCE({})", cols.join(", "))
        })
    }

    /// The statement and parameters of the next query of source `i`.
    fn statement(&self, i: usize) -> Result<(String, Vec<SqlValue>), PluginError> {
        let source = &self.sources[i];
        let base = match (&self.settings.query, &source.full_name) {
            (Some(query), _) => query.clone(),
            (None, _) => {
                let table = quote(self.dialect, &self.settings, &source.name)?;
                match &source.schema {
                    Some(schema) if self.dialect != Dialect::Sqlite => format!(
                        "SELECT * FROM {}.{table}",
                        quote(self.dialect, &self.settings, schema)?
                    ),
                    _ => format!("SELECT * FROM {table}"),
                }
            }
        };
        let mode = self.settings.mode;
        let inc = match (&source.incrementing, mode.incrementing()) {
            (Some(c), true) => Some(quote(self.dialect, &self.settings, c)?),
            _ => None,
        };
        let p = |n| placeholder(self.dialect, n);
        let last_inc = SqlValue::Int(source.offset.incrementing.unwrap_or(-1));
        Ok(match mode {
            Mode::Bulk => (base, Vec::new()),
            Mode::Incrementing => {
                let inc = inc.unwrap_or_default();
                (
                    format!("{base} WHERE {inc} > {} ORDER BY {inc} ASC", p(1)),
                    vec![last_inc],
                )
            }
            Mode::Timestamp | Mode::TimestampIncrementing => {
                let ts = self.timestamp_expr()?;
                let end = self.now_in_db()? - self.settings.timestamp_delay_ms * 1000;
                let last =
                    source
                        .offset
                        .timestamp
                        .unwrap_or(match self.settings.timestamp_initial {
                            Initial::Beginning => i64::MIN / 2,
                            Initial::Now => end,
                            Initial::At(ms) => ms * 1000 + self.settings.tz_offset_secs * 1_000_000,
                        });
                // Far before any real row, but a valid DATETIME for every database.
                let last = last.max(-62_135_596_800_000_000);
                if mode == Mode::Timestamp {
                    (
                        format!(
                            "{base} WHERE {ts} > {} AND {ts} < {} ORDER BY {ts} ASC",
                            p(1),
                            p(2)
                        ),
                        vec![SqlValue::Timestamp(last), SqlValue::Timestamp(end)],
                    )
                } else {
                    let inc = inc.unwrap_or_default();
                    (
                        format!(
                            "{base} WHERE {ts} < {} AND (({ts} = {} AND {inc} > {}) OR {ts} > {}) ORDER BY {ts}, {inc} ASC",
                            p(1),
                            p(2),
                            p(3),
                            p(4)
                        ),
                        vec![
                            SqlValue::Timestamp(end),
                            SqlValue::Timestamp(last),
                            last_inc,
                            SqlValue::Timestamp(last),
                        ],
                    )
                }
            }
        })
    }

    /// The fields of a result: the table's metadata where it names the column, else the
    /// database's type name.
    fn layout(
        settings: &Settings,
        source: &Source,
        cursor: &Cursor,
        rows: &[&[SqlParam<'_>]],
    ) -> (Vec<ColumnInfo>, Arc<Schema>, Option<KeyLayout>) {
        let columns: Vec<ColumnInfo> = cursor
            .columns()
            .into_iter()
            .enumerate()
            .map(|(index, c)| {
                // Without metadata (a query), a DECIMAL's scale is the widest in the rows.
                let scale = rows
                    .iter()
                    .filter_map(|r| r.get(index).and_then(SqlParam::as_str))
                    .map(columns::scale_of)
                    .max();
                source
                    .columns
                    .iter()
                    .find(|m| m.name == c.name)
                    .cloned()
                    .unwrap_or(ColumnInfo {
                        field: FieldType::of(&c.type_name, scale),
                        name: c.name,
                        nullable: true,
                        primary_key: false,
                        auto_increment: false,
                    })
            })
            .collect();
        let name = source.full_name.as_ref().map(|_| source.name.as_str());
        let schema = columns::row_schema(name, &columns);
        let key = settings
            .key_from_primary_key
            .then(|| {
                let indexes: Vec<usize> = columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.primary_key)
                    .map(|(i, _)| i)
                    .collect();
                let key_columns: Vec<ColumnInfo> =
                    indexes.iter().map(|i| columns[*i].clone()).collect();
                let schema = match key_columns.as_slice() {
                    [] => return None,
                    [one] => Arc::new(one.field.schema(false)),
                    many => columns::row_schema(Some(&format!("{}Key", source.name)), many),
                };
                Some(KeyLayout {
                    indexes,
                    columns: key_columns,
                    schema,
                })
            })
            .flatten();
        (columns, schema, key)
    }

    /// The source to read next: one with an open cursor, else the most overdue.
    fn next_source(&self, now: Instant) -> Option<usize> {
        if let Some(i) = self.sources.iter().position(|s| s.cursor.is_some()) {
            return Some(i);
        }
        self.sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.next_query <= now)
            .min_by_key(|(_, s)| s.next_query)
            .map(|(i, _)| i)
    }

    fn read(&mut self, i: usize, max_rows: u32) -> Result<Vec<SourceRecord>, PluginError> {
        if self.sources[i].cursor.is_none() {
            let (statement, params) = self.statement(i)?;
            let cursor = self.db.open_cursor(&statement, &params)?;
            self.sources[i].cursor = Some(cursor);
            self.sources[i].layout = None;
        }
        let source = &mut self.sources[i];
        let Some(cursor) = source.cursor.as_mut() else {
            return Ok(Vec::new());
        };
        let frame = match cursor.next_frame(max_rows) {
            Ok(frame) => frame,
            Err(e) => {
                // Start again from the last offset.
                source.cursor = None;
                source.pending = None;
                return Err(e.into());
            }
        };
        let cells = frame.rows()?;
        // A partial batch is not the end: only an empty one is.
        let done = cells.is_empty();
        let held = source.pending.take();
        let mut rows: Vec<&[SqlParam<'_>]> =
            held.iter().map(Vec::as_slice).chain(cells.iter()).collect();
        // Timestamp-only mode holds the last row back until the next fetch shows whether
        // more rows share its timestamp.
        if self.settings.mode == Mode::Timestamp && !done {
            source.pending = rows
                .pop()
                .map(|row| row.iter().map(|p| p.borrowed().into_owned()).collect());
        }
        let source = &self.sources[i];
        if source.layout.is_none()
            && let Some(cursor) = source.cursor.as_ref()
        {
            let layout = JdbcSource::layout(&self.settings, source, cursor, &rows);
            self.sources[i].layout = Some(layout);
        }
        let mode = self.settings.mode;
        let tz = self.settings.tz_offset_secs;
        let source = &mut self.sources[i];
        let Some((columns, schema, key)) = source.layout.as_ref() else {
            return Ok(Vec::new());
        };
        let inc_index = source
            .incrementing
            .as_ref()
            .filter(|_| mode.incrementing())
            .and_then(|c| columns.iter().position(|col| &col.name == c));
        let ts_indexes: Vec<usize> = if mode.timestamp() {
            self.settings
                .timestamp_columns
                .iter()
                .filter_map(|c| columns.iter().position(|col| &col.name == c))
                .collect()
        } else {
            Vec::new()
        };
        let row_ts = |row: &[SqlParam<'_>]| -> Option<i64> {
            ts_indexes
                .iter()
                .find_map(|i| row.get(*i).and_then(timestamp_micros))
        };
        // One map for the batch, which each record shares.
        let partition = Arc::new(source.partition(mode));
        let name = source
            .full_name
            .clone()
            .unwrap_or_else(|| "the query".into());
        let mut records = Vec::with_capacity(rows.len());
        for (n, row) in rows.iter().enumerate() {
            let value = columns::encode_row(columns, row, tz)
                .map_err(|e| PluginError::fatal(format!("{name}: {e}")))?;
            let mut offset = source.offset;
            if let Some(i) = inc_index {
                offset.incrementing =
                    Some(row.get(i).and_then(SqlParam::as_i64).ok_or_else(|| {
                        PluginError::fatal(format!(
                            "{name}: the incrementing column {} is null or not an integer",
                            columns[i].name
                        ))
                    })?);
            }
            if mode.timestamp() {
                let ts = row_ts(row).ok_or_else(|| {
                    PluginError::fatal(format!("{name}: the timestamp column is null"))
                })?;
                // Timestamp-only: advance past a timestamp only once every row sharing it
                // has been read, so a restart inside an equal run loses nothing.
                let run_complete = mode == Mode::TimestampIncrementing
                    || rows
                        .get(n + 1)
                        .map_or(done, |next| row_ts(next) != Some(ts));
                if run_complete {
                    offset.timestamp = Some(ts);
                }
            }
            source.offset = offset;
            // Valid by construction; the worker checks every value it receives anyway.
            let mut record = Record::new(
                source.topic.clone(),
                Data::from_encoded_unchecked(Some(schema.clone()), value),
            );
            if let Some(key) = key {
                let key_error = |e| PluginError::fatal(format!("{name}: key: {e}"));
                record.key = if let [index] = key.indexes[..] {
                    let value = columns::connect_value(&row[index], columns[index].field, tz)
                        .map_err(key_error)?;
                    Data::new(key.schema.clone(), value)
                } else {
                    let key_row: Vec<SqlParam<'_>> =
                        key.indexes.iter().map(|i| row[*i].borrowed()).collect();
                    let value =
                        columns::encode_row(&key.columns, &key_row, tz).map_err(key_error)?;
                    Data::from_encoded_unchecked(Some(key.schema.clone()), value)
                };
            }
            records.push(SourceRecord {
                position: SourcePosition {
                    partition: partition.clone(),
                    offset: if mode == Mode::Bulk {
                        offset_map(Vec::<(String, Scalar)>::new())
                    } else {
                        source.offset_map(offset, tz)
                    },
                },
                record,
            });
        }
        if done {
            source.cursor = None;
            source.next_query =
                Instant::now() + Duration::from_millis(self.settings.poll_interval_ms);
        }
        Ok(records)
    }
}

/// The incrementing and timestamp columns exist, and with `validate.non.null` the
/// incrementing column and at least one timestamp column are NOT NULL.
fn check_tracked_columns(
    settings: &Settings,
    table: &str,
    columns: &[ColumnInfo],
    incrementing: Option<&str>,
) -> Result<(), PluginError> {
    let find = |name: &str| {
        columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| PluginError::config(format!("table {table} has no column {name}")))
    };
    if let Some(name) = incrementing
        && find(name)?.nullable
        && settings.validate_non_null
    {
        return Err(PluginError::config(format!(
            "validate.non.null: the incrementing column {name} of table {table} is nullable"
        )));
    }
    if settings.mode.timestamp() {
        let tracked = settings
            .timestamp_columns
            .iter()
            .map(|name| find(name))
            .collect::<Result<Vec<_>, _>>()?;
        if settings.validate_non_null && tracked.iter().all(|c| c.nullable) {
            return Err(PluginError::config(format!(
                "validate.non.null: no timestamp column of table {table} is NOT NULL"
            )));
        }
    }
    Ok(())
}

impl wasmconnect_sdk::Source for JdbcSource {
    type Config = JdbcSourceConfig;

    fn metadata() -> Metadata {
        Metadata::new(
            "JdbcSourceConnector",
            env!("CARGO_PKG_VERSION"),
            "Copies MySQL, MariaDB, PostgreSQL or SQLite tables into Kafka (Confluent JDBC source keys and offsets).",
        )
        .aliases(&["jdbc-source", "io.confluent.connect.jdbc.JdbcSourceConnector"])
    }

    fn validate(config: &Config) -> Vec<ConfigIssue> {
        config::validate(config)
    }

    /// A query is one task; listed tables are dealt round-robin over at most `max_tasks`
    /// tasks. Without `table.whitelist` one task copies every table (the connector
    /// cannot list tables before its tasks reach the database).
    fn task_configs(config: &Config, max_tasks: u32) -> Result<Vec<Config>, PluginError> {
        let typed = JdbcSourceConfig::from_config(config)?;
        if typed.table_whitelist.is_empty() || !typed.query.trim().is_empty() {
            return Ok(vec![config.clone()]);
        }
        let tasks = (max_tasks.max(1) as usize).min(typed.table_whitelist.len());
        let mut groups = vec![Vec::new(); tasks];
        for (n, table) in typed.table_whitelist.iter().enumerate() {
            groups[n % tasks].push(table.clone());
        }
        Ok(groups
            .into_iter()
            .map(|tables| {
                let mut task = config.clone();
                task.set(TASK_TABLES, tables.join(","));
                task
            })
            .collect())
    }

    fn open(config: JdbcSourceConfig, resume: Vec<SourcePosition>) -> Result<Self, PluginError> {
        let settings = Settings::from_config(&config)?;
        let db = sql::connect_with_attempts(
            settings.connection_attempts,
            settings.connection_backoff_ms,
        )?;
        let dialect = db.dialect();
        let mut sources = Vec::new();
        let now = Instant::now();
        if settings.query.is_some() {
            sources.push(Source {
                full_name: None,
                schema: None,
                name: "query".into(),
                topic: Arc::from(settings.topic_prefix.as_str()),
                columns: Vec::new(),
                incrementing: settings.incrementing_column.clone(),
                offset: Offset::default(),
                cursor: None,
                pending: None,
                layout: None,
                next_query: now,
            });
        } else {
            let (current, tables) = list_tables(&db, dialect, settings.views)?;
            for table in tables {
                let wanted = if settings.whitelist.is_empty() {
                    !listed(&settings.blacklist, current.as_deref(), &table)
                } else {
                    listed(&settings.whitelist, current.as_deref(), &table)
                };
                if !wanted {
                    continue;
                }
                let columns = describe(&db, dialect, current.as_deref(), &table)?;
                let incrementing = match (
                    &settings.incrementing_column,
                    settings.mode.incrementing(),
                ) {
                    (_, false) => None,
                    (Some(c), true) => Some(c.clone()),
                    (None, true) => {
                        let auto = columns.iter().find(|c| c.auto_increment).or_else(|| {
                            let pk: Vec<_> = columns.iter().filter(|c| c.primary_key).collect();
                            (pk.len() == 1
                                && matches!(pk[0].field, FieldType::Int32 | FieldType::Int64))
                            .then(|| pk[0])
                        });
                        Some(auto.map(|c| c.name.clone()).ok_or_else(|| {
                            PluginError::config(format!(
                                "incrementing.column.name: table {table} has no AUTO_INCREMENT column; name one"
                            ))
                        })?)
                    }
                };
                check_tracked_columns(&settings, &table, &columns, incrementing.as_deref())?;
                let mut source = Source {
                    full_name: Some(match &current {
                        Some(db) => format!("{db}.{table}"),
                        None => table.clone(),
                    }),
                    schema: current.clone(),
                    topic: Arc::from(format!("{}{table}", settings.topic_prefix).as_str()),
                    name: table,
                    columns,
                    incrementing,
                    offset: Offset::default(),
                    cursor: None,
                    pending: None,
                    layout: None,
                    next_query: now,
                };
                source.resume(settings.mode, &resume, settings.tz_offset_secs);
                sources.push(source);
            }
            let missing: Vec<&String> = settings
                .whitelist
                .iter()
                .filter(|w| {
                    !sources
                        .iter()
                        .any(|s| listed(std::slice::from_ref(*w), s.schema.as_deref(), &s.name))
                })
                .collect();
            if !missing.is_empty() {
                return Err(PluginError::config(format!(
                    "table.whitelist: no such table {missing:?} in {}",
                    current.as_deref().unwrap_or("the database")
                )));
            }
        }
        if let Some(query) = sources.first_mut().filter(|s| s.full_name.is_none()) {
            query.resume(settings.mode, &resume, settings.tz_offset_secs);
        }
        wasmconnect_sdk::info!(
            "Copying {} in {:?} mode.",
            sources
                .iter()
                .map(|s| s.full_name.clone().unwrap_or_else(|| "the query".into()))
                .collect::<Vec<_>>()
                .join(", "),
            settings.mode
        );
        Ok(JdbcSource {
            settings,
            db,
            dialect,
            sources,
        })
    }

    fn poll(&mut self, max_records: usize) -> Result<Vec<SourceRecord>, PluginError> {
        let Some(i) = self.next_source(Instant::now()) else {
            return Ok(Vec::new());
        };
        let max_rows = self
            .settings
            .batch_max_rows
            .min(u32::try_from(max_records).unwrap_or(u32::MAX))
            .max(1);
        self.read(i, max_rows)
    }
}

wasmconnect_sdk::export_source!(JdbcSource);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_epoch_micros() {
        assert_eq!(parse_datetime("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(
            parse_datetime("2020-01-01 00:00:00.5"),
            Some(1_577_836_800_500_000)
        );
        assert_eq!(parse_datetime("garbage"), None);
    }

    #[test]
    fn lists_match_bare_and_qualified_names() {
        let list = vec!["shop.orders".to_owned(), "users".to_owned()];
        assert!(listed(&list, Some("shop"), "orders"));
        assert!(!listed(&list, Some("other"), "orders"));
        assert!(listed(&list, Some("any"), "users"));
    }

    #[test]
    fn whitelisted_tables_are_dealt_over_tasks() {
        let config = Config::new()
            .with("connection.url", "jdbc:mysql://127.0.0.1/db")
            .with("mode", "incrementing")
            .with("topic.prefix", "db-")
            .with("table.whitelist", "a,b,c");
        let tasks = <JdbcSource as wasmconnect_sdk::Source>::task_configs(&config, 2)
            .expect("task configs");
        let tables: Vec<_> = tasks.iter().map(|t| t.get("tables")).collect();
        assert_eq!(tables, [Some("a,c"), Some("b")]);
    }

    #[test]
    fn bad_configs_name_their_key() {
        let config = Config::new()
            .with("connection.url", "jdbc:mysql://127.0.0.1/db")
            .with("mode", "timestamp")
            .with("topic.prefix", "db-");
        let keys: Vec<String> = config::validate(&config)
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["timestamp.column.name"]);
        let config = Config::new()
            .with("connection.url", "jdbc:mysql://127.0.0.1/db")
            .with("topic.prefix", "db-");
        let keys: Vec<String> = config::validate(&config)
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["mode"]);
    }
}
