//! The `sql` host capability: a pooled database connection opened from the connector's own
//! config (`connection.url`, `connection.user`, `connection.password`), with bound
//! parameters, transactions, streaming cursors and submitted statements, BEGINs and
//! COMMITs (queued on a writer task that runs them in order while the plugin goes on).
//! MySQL and MariaDB, PostgreSQL and SQLite, through sqlx.
//!
//! Errors are values for the plugin, never traps: a database that cannot be reached is
//! `transient` (the plugin retries), a rejected statement is `statement`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use futures::StreamExt;
use sqlx::mysql::{
    MySql, MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlRow,
    MySqlSslMode,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Column as _, Connection as _, Row, Transaction, TypeInfo, ValueRef};
use tokio::sync::{mpsc, oneshot};
use wasmconnect_sdk::sql::SqlParam;
use wasmconnect_sdk::sql::params as frame;
use wasmtime::component::Resource;

use super::bindings::sql::{self, Column, Dialect, RowSet, SqlError, SqlValue};
use super::store::TaskState;
use super::{host_allowed, table_error};

/// Connections a task's pool keeps open at most: one for a transaction, one beside it for
/// a cursor. (On MySQL a connection's transactions run on one more, of its own.)
const POOL_SIZE: u32 = 2;
/// How long a session's own MySQL connection may sit unused before its next transaction
/// pings it first, as the pool does each checkout: a server's `wait_timeout` or a restart
/// may have closed it meanwhile.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(10);
/// How long `connect` (and every later checkout) waits for the database.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Submitted statements that wait to run on one connection at most; `submit` waits for room.
const SUBMIT_QUEUE: usize = 8;
/// Rows a cursor reads ahead of the plugin.
const CURSOR_READ_AHEAD: usize = 1024;
/// A cursor's reader hands on the rows it has read in chunks of at most this many: one
/// channel message, and at most one wake-up of either side, per chunk rather than per row.
const CURSOR_CHUNK: usize = 128;

/// Where a connector's database is, parsed from its config.
#[derive(Clone, PartialEq, Eq)]
pub struct SqlTarget {
    pub kind: DriverKind,
    pub host: String,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    password: Option<String>,
    /// `None`: the driver's default (prefer TLS, fall back to plain).
    pub tls: Option<bool>,
    /// SQLite: the database file (or `:memory:`).
    pub file: Option<String>,
}

impl std::fmt::Debug for SqlTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlTarget")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[hidden]"))
            .field("file", &self.file)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    MySql,
    Postgres,
    Sqlite,
}

impl SqlTarget {
    /// Reads `connection.url` (a JDBC URL, or the same without `jdbc:`), with
    /// `connection.user` and `connection.password` taking precedence over the URL's.
    /// Unknown JDBC parameters are ignored (logged at debug).
    ///
    /// # Errors
    /// A message naming the key and the value's problem.
    pub fn from_config(config: &BTreeMap<String, String>) -> Result<SqlTarget, String> {
        let raw = config
            .get("connection.url")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .ok_or("connection.url is not set")?;
        let mut target = SqlTarget::parse_url(raw)?;
        if let Some(user) = config.get("connection.user").filter(|s| !s.is_empty()) {
            target.user = Some(user.clone());
        }
        if let Some(password) = config.get("connection.password").filter(|s| !s.is_empty()) {
            target.password = Some(password.clone());
        }
        Ok(target)
    }

    fn parse_url(raw: &str) -> Result<SqlTarget, String> {
        let bad = |why: &str| format!("connection.url {raw:?} is not usable: {why}");
        let url = raw.strip_prefix("jdbc:").unwrap_or(raw);
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| bad("expected jdbc:<mysql|mariadb|postgresql|sqlite>:..."))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => DriverKind::MySql,
            "postgresql" | "postgres" => DriverKind::Postgres,
            "sqlite" => DriverKind::Sqlite,
            other => return Err(bad(&format!("unsupported database {other:?}"))),
        };
        if kind == DriverKind::Sqlite {
            // jdbc:sqlite:/path/to/file.db, jdbc:sqlite::memory:, sqlite://path
            let file = rest.strip_prefix("//").unwrap_or(rest);
            let file = file.split('?').next().unwrap_or(file);
            if file.is_empty() {
                return Err(bad("no SQLite file"));
            }
            return Ok(SqlTarget {
                kind,
                host: String::new(),
                port: None,
                database: None,
                user: None,
                password: None,
                tls: None,
                file: Some(file.to_owned()),
            });
        }
        let parsed =
            url::Url::parse(&format!("{scheme}:{rest}")).map_err(|e| bad(&e.to_string()))?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let database = parsed
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|d| !d.is_empty())
            .map(percent_decode);
        let mut target = SqlTarget {
            kind,
            host,
            port: parsed.port(),
            database,
            user: Some(parsed.username())
                .filter(|u| !u.is_empty())
                .map(percent_decode),
            password: parsed.password().map(percent_decode),
            tls: None,
            file: None,
        };
        for (key, value) in parsed.query_pairs() {
            let flag = || value.eq_ignore_ascii_case("true");
            match key.as_ref() {
                "user" => target.user = Some(value.into_owned()),
                "password" => target.password = Some(value.into_owned()),
                "useSSL" | "ssl" => target.tls = Some(flag()),
                "sslMode" | "sslmode" | "ssl-mode" => {
                    target.tls = Some(!matches!(
                        value.to_ascii_lowercase().as_str(),
                        "disabled" | "disable"
                    ));
                }
                "currentSchema" if kind == DriverKind::Postgres => {
                    tracing::debug!(
                        "connection.url parameter currentSchema is ignored; qualify table names instead"
                    );
                }
                other => tracing::debug!(
                    parameter = other,
                    "Ignoring a JDBC parameter of connection.url."
                ),
            }
        }
        Ok(target)
    }
}

fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&super::percent_decode(s)).into_owned()
}

/// sqlx logs every statement at info and a cursor's whole lifetime as a "slow statement"
/// warning; the plugin's statements are its own business, so they go to trace and debug.
fn quiet<O: sqlx::ConnectOptions>(options: O) -> O {
    options
        .log_statements(log::LevelFilter::Trace)
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
}

/// A task's connection pool, one per driver.
#[derive(Debug, Clone)]
pub enum SqlPool {
    MySql(MySqlPool, Dialect),
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl SqlPool {
    /// Opens a pool and checks it with one connection.
    ///
    /// # Errors
    /// `transient` when the database cannot be reached.
    pub async fn open(target: &SqlTarget) -> Result<SqlPool, SqlError> {
        let pool = match target.kind {
            DriverKind::MySql => {
                let mut options = MySqlConnectOptions::new()
                    .host(&target.host)
                    .port(target.port.unwrap_or(3306));
                if let Some(user) = &target.user {
                    options = options.username(user);
                }
                if let Some(password) = &target.password {
                    options = options.password(password);
                }
                if let Some(db) = &target.database {
                    options = options.database(db);
                }
                options = quiet(options).ssl_mode(match target.tls {
                    Some(false) => MySqlSslMode::Disabled,
                    Some(true) => MySqlSslMode::Required,
                    None => MySqlSslMode::Preferred,
                });
                let pool = MySqlPoolOptions::new()
                    .max_connections(POOL_SIZE)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(error_from)?;
                let version: String = sqlx::query_scalar("SELECT VERSION()")
                    .fetch_one(&pool)
                    .await
                    .map_err(error_from)?;
                let dialect = if version.to_ascii_lowercase().contains("mariadb") {
                    Dialect::Mariadb
                } else {
                    Dialect::Mysql
                };
                SqlPool::MySql(pool, dialect)
            }
            DriverKind::Postgres => {
                let mut options = PgConnectOptions::new_without_pgpass()
                    .host(&target.host)
                    .port(target.port.unwrap_or(5432));
                if let Some(user) = &target.user {
                    options = options.username(user);
                }
                if let Some(password) = &target.password {
                    options = options.password(password);
                }
                if let Some(db) = &target.database {
                    options = options.database(db);
                }
                options = quiet(options).ssl_mode(match target.tls {
                    Some(false) => PgSslMode::Disable,
                    Some(true) => PgSslMode::Require,
                    None => PgSslMode::Prefer,
                });
                SqlPool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(POOL_SIZE)
                        .acquire_timeout(CONNECT_TIMEOUT)
                        .connect_with(options)
                        .await
                        .map_err(error_from)?,
                )
            }
            DriverKind::Sqlite => {
                let file = target.file.as_deref().unwrap_or(":memory:");
                let options = SqliteConnectOptions::from_str(&format!("sqlite:{file}"))
                    .map_err(|e| SqlError::Denied(format!("connection.url: {e}")))?
                    .create_if_missing(true)
                    .busy_timeout(CONNECT_TIMEOUT);
                let options = quiet(options);
                SqlPool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(if file == ":memory:" { 1 } else { POOL_SIZE })
                        .acquire_timeout(CONNECT_TIMEOUT)
                        .connect_with(options)
                        .await
                        .map_err(error_from)?,
                )
            }
        };
        Ok(pool)
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            SqlPool::MySql(_, d) => *d,
            SqlPool::Postgres(_) => Dialect::Postgres,
            SqlPool::Sqlite(_) => Dialect::Sqlite,
        }
    }
}

/// The `sql` capability of one task: where its database is, and the pool once opened.
#[derive(Debug)]
pub struct SqlGrant {
    target: Result<SqlTarget, String>,
    allowed_hosts: Vec<String>,
    pool: Option<SqlPool>,
}

impl SqlGrant {
    pub fn new(config: &BTreeMap<String, String>, allowed_hosts: &[String]) -> SqlGrant {
        SqlGrant {
            target: SqlTarget::from_config(config),
            allowed_hosts: allowed_hosts.to_vec(),
            pool: None,
        }
    }

    async fn pool(&mut self) -> Result<SqlPool, SqlError> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let target = self.target.clone().map_err(SqlError::Denied)?;
        if target.kind != DriverKind::Sqlite && !host_allowed(&self.allowed_hosts, &target.host) {
            return Err(SqlError::Denied(format!(
                "host {} is not in the worker's plugin.allowed.hosts",
                target.host
            )));
        }
        let pool = SqlPool::open(&target).await?;
        tracing::info!(host = %target.host, database = ?target.database, dialect = ?pool.dialect(), "Opened the connector's database pool.");
        self.pool = Some(pool.clone());
        Ok(pool)
    }
}

/// A transaction in progress.
enum Tx {
    /// The session's own MySQL connection ([`Session::mysql`]), inside the transaction
    /// its first statement began.
    MySql(MySqlConnection),
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// What a connection's statements run on: its open transaction, else the pool.
struct Session {
    pool: SqlPool,
    tx: Option<Tx>,
    /// On MySQL and MariaDB, the connection the session's transactions run on between
    /// them ([`own_connection`]): opened beside the pool, never part of it, and with
    /// autocommit off, so that a transaction begins with its first statement and a BEGIN
    /// costs no round trip; a COMMIT or ROLLBACK ends it. A writer runs a transaction per
    /// batch, and on loopback the BEGIN's round trip was a tenth of a batch's time on the
    /// connection (docs/measurements.md, stop 28). Closed, not kept, when a COMMIT or
    /// ROLLBACK fails: its state is then unknown (the server rolls back what was open).
    mysql: Option<(MySqlConnection, Instant)>,
    failures: Arc<Mutex<UnreadFailures>>,
}

/// Submitted statements of the open transaction that failed and whose error the plugin
/// has not read: a transaction with any must not commit. A failure the plugin has read is
/// its own to handle (it may have rolled back to a savepoint).
#[derive(Debug, Default)]
struct UnreadFailures {
    /// Counts the transactions begun, so a late read of an earlier one's error does not
    /// count against this one.
    transaction: u64,
    count: usize,
}

impl UnreadFailures {
    fn lock(shared: &Mutex<UnreadFailures>) -> std::sync::MutexGuard<'_, UnreadFailures> {
        shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts counting for a new transaction, returning the last one's count.
    fn next_transaction(shared: &Mutex<UnreadFailures>) -> usize {
        let mut failures = UnreadFailures::lock(shared);
        failures.transaction += 1;
        std::mem::take(&mut failures.count)
    }
}

/// The host side of `sql.connection`. Its session is either here, for the calls that wait,
/// or with the writer task running submitted statements in order.
pub struct SqlConnection {
    pool: SqlPool,
    session: Option<Session>,
    writer: Option<Writer>,
    failures: Arc<Mutex<UnreadFailures>>,
}

/// A task that owns a connection's session while it runs the statements submitted to it.
struct Writer {
    queue: mpsc::Sender<Submitted>,
    task: tokio::task::JoinHandle<Session>,
}

/// Work waiting in a writer's queue, with where its result goes.
struct Submitted {
    work: Work,
    done: oneshot::Sender<Outcome>,
}

/// What a writer runs: a statement, a BEGIN, or the open transaction's COMMIT.
enum Work {
    /// A statement with its parameters in a parameter frame, checked when submitted.
    Execute {
        statement: String,
        params: Vec<u8>,
    },
    Begin,
    Commit,
}

/// A submitted statement's result, and the transaction it failed in, if it counted there
/// as an unread failure.
type Outcome = (Result<u64, SqlError>, Option<u64>);

/// The host side of `sql.pending-execute`.
#[derive(Debug)]
pub struct SqlPending {
    /// `None` once read.
    result: Option<oneshot::Receiver<Outcome>>,
    failures: Arc<Mutex<UnreadFailures>>,
}

impl SqlPending {
    /// Waits for the statement; reading a failure takes it off the transaction's unread ones.
    async fn read(&mut self) -> Result<u64, SqlError> {
        let Some(result) = self.result.take() else {
            return Err(SqlError::Statement("rows-affected was already read".into()));
        };
        let (result, counted_in) = result.await.unwrap_or_else(|_| {
            let abandoned = "the statement was abandoned with its connection";
            (Err(SqlError::Transient(abandoned.into())), None)
        });
        if let Some(transaction) = counted_in {
            let mut failures = UnreadFailures::lock(&self.failures);
            if failures.transaction == transaction {
                failures.count = failures.count.saturating_sub(1);
            }
        }
        result
    }
}

impl std::fmt::Debug for SqlConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlConnection")
            .field("dialect", &self.pool.dialect())
            .field(
                "in_transaction",
                &self.session.as_ref().map(|s| s.tx.is_some()),
            )
            .field("writing", &self.writer.is_some())
            .finish()
    }
}

impl Drop for SqlConnection {
    fn drop(&mut self) {
        // The statements still queued are abandoned with their transaction, which rolls
        // back when its connection returns to the pool.
        if let Some(writer) = &self.writer {
            writer.task.abort();
        }
    }
}

/// The host side of `sql.cursor`: a task reading the query ahead into a bounded channel,
/// its rows already in the parameter frame's encoding.
pub struct SqlCursor {
    columns: Vec<Column>,
    rows: mpsc::Receiver<Result<CursorItem, SqlError>>,
    /// The rest of the last chunk received, for the next `next`.
    held: Option<Chunk>,
    done: bool,
    reader: tokio::task::JoinHandle<()>,
}

/// Rows read by a cursor, with the columns the first time.
type CursorItem = (Option<Vec<Column>>, Chunk);

/// Rows one after another in the parameter frame's encoding, each its columns' values.
struct Chunk {
    frame: Vec<u8>,
    /// Where each row ends in `frame`.
    row_ends: Vec<usize>,
    /// Rows already handed on.
    taken: usize,
}

impl Chunk {
    /// Appends up to `max` of the rows not yet taken to `out`; returns how many.
    fn take_into(&mut self, out: &mut Vec<u8>, max: usize) -> usize {
        let from = self.taken.checked_sub(1).map_or(0, |i| self.row_ends[i]);
        let n = max.min(self.row_ends.len() - self.taken);
        self.taken += n;
        let to = self.taken.checked_sub(1).map_or(0, |i| self.row_ends[i]);
        out.extend_from_slice(&self.frame[from..to]);
        n
    }

    fn is_spent(&self) -> bool {
        self.taken == self.row_ends.len()
    }
}

impl std::fmt::Debug for SqlCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlCursor")
            .field("columns", &self.columns.len())
            .field("done", &self.done)
            .finish()
    }
}

impl Drop for SqlCursor {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Maps a sqlx error: connection trouble, deadlocks and lock timeouts are transient.
fn error_from(err: sqlx::Error) -> SqlError {
    match &err {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // MySQL: 1205 lock wait timeout, 1213 deadlock, 2006/2013 server gone.
            // PostgreSQL: 40001 serialization failure, 40P01 deadlock, 08xxx connection,
            // 57P01 admin shutdown. SQLite: 5 busy, 6 locked.
            let transient = matches!(
                code.as_ref(),
                "1205" | "1213" | "2006" | "2013" | "40001" | "40P01" | "57P01" | "5" | "6"
            ) || code.starts_with("08")
                || code.starts_with("HY000") && db.message().contains("Lock wait");
            let message = match db.code() {
                Some(code) => format!("{} (code {code})", db.message()),
                None => db.message().to_owned(),
            };
            if transient {
                SqlError::Transient(message)
            } else {
                SqlError::Statement(message)
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => SqlError::Transient(err.to_string()),
        _ => SqlError::Statement(err.to_string()),
    }
}

// ---- values: binding parameters and reading columns ----

fn date_of(days: i32) -> Result<NaiveDate, SqlError> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(i64::from(days))))
        .ok_or_else(|| {
            SqlError::Statement(format!(
                "date {days} (days since 1970-01-01) is out of range"
            ))
        })
}

fn time_of(micros: i64) -> Result<NaiveTime, SqlError> {
    let secs = micros.div_euclid(1_000_000);
    let nanos = micros.rem_euclid(1_000_000) * 1000;
    u32::try_from(secs)
        .ok()
        .zip(u32::try_from(nanos).ok())
        .and_then(|(s, n)| NaiveTime::from_num_seconds_from_midnight_opt(s, n))
        .ok_or_else(|| {
            SqlError::Statement(format!(
                "time {micros} (microseconds since midnight) is out of range"
            ))
        })
}

fn timestamp_of(micros: i64) -> Result<NaiveDateTime, SqlError> {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.naive_utc())
        .ok_or_else(|| {
            SqlError::Statement(format!(
                "timestamp {micros} (microseconds since 1970) is out of range"
            ))
        })
}

fn days_of(date: NaiveDate) -> i32 {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .map(|epoch| (date - epoch).num_days())
        .and_then(|d| i32::try_from(d).ok())
        .unwrap_or(i32::MAX)
}

fn micros_of_time(time: NaiveTime) -> i64 {
    i64::from(time.num_seconds_from_midnight()) * 1_000_000 + i64::from(time.nanosecond() / 1000)
}

/// A parameter of the old `list<sql-value>` calls, as the frame's parameters are bound.
fn param_of(value: &SqlValue) -> SqlParam<'_> {
    match value {
        SqlValue::Null => SqlParam::Null,
        SqlValue::Boolean(b) => SqlParam::Boolean(*b),
        SqlValue::Int(i) => SqlParam::Int(*i),
        SqlValue::Uint(u) => SqlParam::Uint(*u),
        SqlValue::Double(f) => SqlParam::Double(*f),
        SqlValue::Text(s) => SqlParam::Text(Cow::Borrowed(s)),
        SqlValue::Bytes(b) => SqlParam::Bytes(Cow::Borrowed(b)),
        SqlValue::Decimal(s) => SqlParam::Decimal(Cow::Borrowed(s)),
        SqlValue::Date(d) => SqlParam::Date(*d),
        SqlValue::Time(t) => SqlParam::Time(*t),
        SqlValue::Timestamp(t) => SqlParam::Timestamp(*t),
    }
}

/// A value read from a row as the WIT value: the rows of `query` and of a cursor's `next`.
fn value_of(param: SqlParam<'_>) -> SqlValue {
    match param {
        SqlParam::Null => SqlValue::Null,
        SqlParam::Boolean(b) => SqlValue::Boolean(b),
        SqlParam::Int(i) => SqlValue::Int(i),
        SqlParam::Uint(u) => SqlValue::Uint(u),
        SqlParam::Double(f) => SqlValue::Double(f),
        SqlParam::Text(s) => SqlValue::Text(s.into_owned()),
        SqlParam::Bytes(b) => SqlValue::Bytes(b.into_owned()),
        SqlParam::Decimal(s) => SqlValue::Decimal(s.into_owned()),
        SqlParam::Date(d) => SqlValue::Date(d),
        SqlParam::Time(t) => SqlValue::Time(t),
        SqlParam::Timestamp(t) => SqlValue::Timestamp(t),
    }
}

/// The parameters of a `list<sql-value>` call in a parameter frame: every statement is
/// bound from one.
fn frame_of(params: &[SqlValue]) -> Vec<u8> {
    frame::encode(params.iter().map(param_of))
}

/// Checks a plugin's parameter frame through to its end.
fn check_frame(params: &[u8]) -> Result<(), SqlError> {
    frame::decode(params)
        .try_for_each(|p| p.map(drop))
        .map_err(SqlError::Statement)
}

/// Binds the parameters of a frame; `$uint` binds an unsigned value, which only MySQL has
/// a type for. Text and bytes are bound from the frame itself.
macro_rules! bind_params {
    // PostgreSQL and SQLite have no unsigned 64-bit type: a value above i64::MAX goes as
    // text.
    ($query:expr, $params:expr, signed) => {
        bind_params!($query, $params, |q, u| match i64::try_from(u) {
            Ok(i) => q.bind(i),
            Err(_) => q.bind(u.to_string()),
        })
    };
    ($query:expr, $params:expr, |$q:ident, $u:ident| $uint:expr) => {{
        let mut q = $query;
        for param in frame::decode($params) {
            q = match param.map_err(SqlError::Statement)? {
                SqlParam::Null => q.bind(None::<String>),
                SqlParam::Boolean(b) => q.bind(b),
                SqlParam::Int(i) => q.bind(i),
                SqlParam::Uint($u) => {
                    let $q = q;
                    $uint
                }
                SqlParam::Double(f) => q.bind(f),
                SqlParam::Text(s) | SqlParam::Decimal(s) => q.bind(s),
                SqlParam::Bytes(Cow::Borrowed(b)) => q.bind(b),
                SqlParam::Bytes(Cow::Owned(b)) => q.bind(b),
                SqlParam::Date(d) => q.bind(date_of(d)?),
                SqlParam::Time(t) => q.bind(time_of(t)?),
                SqlParam::Timestamp(t) => q.bind(timestamp_of(t)?),
            };
        }
        q
    }};
}

fn bind_mysql<'q>(
    statement: &'q str,
    params: &'q [u8],
) -> Result<sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments>, SqlError> {
    Ok(bind_params!(sqlx::query(statement), params, |q, u| q.bind(u)))
}

fn bind_postgres<'q>(
    statement: &'q str,
    params: &'q [u8],
) -> Result<sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>, SqlError> {
    Ok(bind_params!(sqlx::query(statement), params, signed))
}

fn bind_sqlite<'q>(
    statement: &'q str,
    params: &'q [u8],
) -> Result<sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>, SqlError> {
    Ok(bind_params!(sqlx::query(statement), params, signed))
}

fn unreadable<R: Row>(row: &R, i: usize, type_name: &str, err: sqlx::Error) -> SqlError {
    let column = row.columns()[i].name();
    SqlError::Statement(format!(
        "cannot read column {column:?} of type {type_name}: {err}"
    ))
}

fn mysql_param(row: &MySqlRow, i: usize) -> Result<SqlParam<'_>, SqlError> {
    let raw = row.try_get_raw(i).map_err(error_from)?;
    if raw.is_null() {
        return Ok(SqlParam::Null);
    }
    // The drivers name their built-in types in upper case: no copy to compare.
    let type_info = raw.type_info();
    let type_name = type_info.name();
    let fail = |e| unreadable(row, i, type_name, e);
    let value = match type_name {
        "BOOLEAN" => SqlParam::Boolean(row.try_get(i).map_err(fail)?),
        "TINYINT" => SqlParam::Int(i64::from(row.try_get::<i8, _>(i).map_err(fail)?)),
        "SMALLINT" | "YEAR" => SqlParam::Int(i64::from(row.try_get::<i16, _>(i).map_err(fail)?)),
        "MEDIUMINT" | "INT" => SqlParam::Int(i64::from(row.try_get::<i32, _>(i).map_err(fail)?)),
        "BIGINT" => SqlParam::Int(row.try_get(i).map_err(fail)?),
        t if t.ends_with("UNSIGNED") => SqlParam::Uint(match t {
            "TINYINT UNSIGNED" => u64::from(row.try_get::<u8, _>(i).map_err(fail)?),
            "SMALLINT UNSIGNED" => u64::from(row.try_get::<u16, _>(i).map_err(fail)?),
            "MEDIUMINT UNSIGNED" | "INT UNSIGNED" => {
                u64::from(row.try_get::<u32, _>(i).map_err(fail)?)
            }
            _ => row.try_get::<u64, _>(i).map_err(fail)?,
        }),
        "FLOAT" => SqlParam::Double(f64::from(row.try_get::<f32, _>(i).map_err(fail)?)),
        "DOUBLE" => SqlParam::Double(row.try_get(i).map_err(fail)?),
        "DECIMAL" => SqlParam::Decimal(Cow::Owned(
            row.try_get::<BigDecimal, _>(i).map_err(fail)?.to_string(),
        )),
        "DATE" => SqlParam::Date(days_of(row.try_get(i).map_err(fail)?)),
        "TIME" => SqlParam::Time(micros_of_time(row.try_get(i).map_err(fail)?)),
        "DATETIME" | "TIMESTAMP" => SqlParam::Timestamp(
            row.try_get::<NaiveDateTime, _>(i)
                .map_err(fail)?
                .and_utc()
                .timestamp_micros(),
        ),
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT"
        | "GEOMETRY" => SqlParam::Bytes(Cow::Borrowed(row.try_get(i).map_err(fail)?)),
        _ => SqlParam::Text(Cow::Borrowed(row.try_get(i).map_err(fail)?)),
    };
    Ok(value)
}

fn postgres_param(row: &PgRow, i: usize) -> Result<SqlParam<'_>, SqlError> {
    let raw = row.try_get_raw(i).map_err(error_from)?;
    if raw.is_null() {
        return Ok(SqlParam::Null);
    }
    // The drivers name their built-in types in upper case: no copy to compare.
    let type_info = raw.type_info();
    let type_name = type_info.name();
    let fail = |e| unreadable(row, i, type_name, e);
    let value = match type_name {
        "BOOL" => SqlParam::Boolean(row.try_get(i).map_err(fail)?),
        "INT2" => SqlParam::Int(i64::from(row.try_get::<i16, _>(i).map_err(fail)?)),
        "INT4" => SqlParam::Int(i64::from(row.try_get::<i32, _>(i).map_err(fail)?)),
        "INT8" => SqlParam::Int(row.try_get(i).map_err(fail)?),
        "OID" => SqlParam::Int(i64::from(
            row.try_get::<sqlx::postgres::types::Oid, _>(i)
                .map_err(fail)?
                .0,
        )),
        "FLOAT4" => SqlParam::Double(f64::from(row.try_get::<f32, _>(i).map_err(fail)?)),
        "FLOAT8" => SqlParam::Double(row.try_get(i).map_err(fail)?),
        "NUMERIC" => SqlParam::Decimal(Cow::Owned(
            row.try_get::<BigDecimal, _>(i).map_err(fail)?.to_string(),
        )),
        "DATE" => SqlParam::Date(days_of(row.try_get(i).map_err(fail)?)),
        "TIME" => SqlParam::Time(micros_of_time(row.try_get(i).map_err(fail)?)),
        "TIMESTAMP" => SqlParam::Timestamp(
            row.try_get::<NaiveDateTime, _>(i)
                .map_err(fail)?
                .and_utc()
                .timestamp_micros(),
        ),
        "TIMESTAMPTZ" => SqlParam::Timestamp(
            row.try_get::<DateTime<chrono::Utc>, _>(i)
                .map_err(fail)?
                .timestamp_micros(),
        ),
        "BYTEA" => SqlParam::Bytes(Cow::Borrowed(row.try_get(i).map_err(fail)?)),
        _ => SqlParam::Text(Cow::Borrowed(row.try_get(i).map_err(fail)?)),
    };
    Ok(value)
}

fn sqlite_param(row: &SqliteRow, i: usize) -> Result<SqlParam<'_>, SqlError> {
    let raw = row.try_get_raw(i).map_err(error_from)?;
    if raw.is_null() {
        return Ok(SqlParam::Null);
    }
    // The value's storage class, not the declared type: SQLite columns hold anything.
    // The drivers name their built-in types in upper case: no copy to compare.
    let type_info = raw.type_info();
    let type_name = type_info.name();
    let fail = |e| unreadable(row, i, type_name, e);
    let value = match type_name {
        "INTEGER" | "BOOLEAN" => SqlParam::Int(row.try_get_unchecked(i).map_err(fail)?),
        "REAL" => SqlParam::Double(row.try_get_unchecked(i).map_err(fail)?),
        "BLOB" => SqlParam::Bytes(Cow::Borrowed(row.try_get_unchecked(i).map_err(fail)?)),
        _ => SqlParam::Text(Cow::Borrowed(row.try_get_unchecked(i).map_err(fail)?)),
    };
    Ok(value)
}

fn columns_of<R: Row>(row: &R) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            type_name: c.type_info().name().to_ascii_uppercase(),
        })
        .collect()
}

/// How a driver's row is read: column `i` as a parameter, borrowing its text and bytes
/// from the row.
type ReadParam<R> = for<'r> fn(&'r R, usize) -> Result<SqlParam<'r>, SqlError>;

fn row_set<R: Row>(rows: &[R], read: ReadParam<R>) -> Result<RowSet, SqlError> {
    Ok(RowSet {
        columns: rows.first().map(columns_of).unwrap_or_default(),
        rows: rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| read(r, i).map(value_of))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<_, _>>()?,
    })
}

/// Runs `$body` with `$query` (the statement bound for its driver), `$exec` (the open
/// transaction, else the pool) and `$read` (the driver's column reader): one expansion per
/// driver and executor, since each has its own types.
macro_rules! with_executor {
    ($conn:expr, $statement:expr, $params:expr, |$query:ident, $exec:ident, $read:ident| $body:expr) => {
        match (&$conn.pool, &mut $conn.tx) {
            (_, Some(Tx::MySql(connection))) => {
                let ($query, $exec, $read) = (
                    bind_mysql($statement, $params)?,
                    &mut *connection,
                    mysql_param,
                );
                $body
            }
            (_, Some(Tx::Postgres(tx))) => {
                let ($query, $exec, $read) = (
                    bind_postgres($statement, $params)?,
                    &mut **tx,
                    postgres_param,
                );
                $body
            }
            (_, Some(Tx::Sqlite(tx))) => {
                let ($query, $exec, $read) =
                    (bind_sqlite($statement, $params)?, &mut **tx, sqlite_param);
                $body
            }
            (SqlPool::MySql(pool, _), None) => {
                let ($query, $exec, $read) = (bind_mysql($statement, $params)?, pool, mysql_param);
                $body
            }
            (SqlPool::Postgres(pool), None) => {
                let ($query, $exec, $read) =
                    (bind_postgres($statement, $params)?, pool, postgres_param);
                $body
            }
            (SqlPool::Sqlite(pool), None) => {
                let ($query, $exec, $read) =
                    (bind_sqlite($statement, $params)?, pool, sqlite_param);
                $body
            }
        }
    };
}

impl Session {
    fn new(pool: SqlPool, failures: Arc<Mutex<UnreadFailures>>) -> Session {
        Session {
            pool,
            tx: None,
            mysql: None,
            failures,
        }
    }

    async fn execute(&mut self, statement: &str, params: &[u8]) -> Result<u64, SqlError> {
        with_executor!(self, statement, params, |query, exec, _read| {
            query
                .execute(exec)
                .await
                .map(|r| r.rows_affected())
                .map_err(error_from)
        })
    }

    async fn query(&mut self, statement: &str, params: &[u8]) -> Result<RowSet, SqlError> {
        with_executor!(self, statement, params, |query, exec, read| {
            row_set(&query.fetch_all(exec).await.map_err(error_from)?, read)
        })
    }

    async fn begin(&mut self) -> Result<(), SqlError> {
        if self.tx.is_some() {
            return Err(SqlError::Statement("a transaction is already open".into()));
        }
        UnreadFailures::next_transaction(&self.failures);
        self.tx = Some(match &self.pool {
            SqlPool::MySql(pool, _) => Tx::MySql(own_connection(pool, self.mysql.take()).await?),
            SqlPool::Postgres(pool) => Tx::Postgres(pool.begin().await.map_err(error_from)?),
            SqlPool::Sqlite(pool) => Tx::Sqlite(pool.begin().await.map_err(error_from)?),
        });
        Ok(())
    }

    async fn finish(&mut self, commit: bool) -> Result<(), SqlError> {
        let tx = self
            .tx
            .take()
            .ok_or_else(|| SqlError::Statement("no transaction is open".into()))?;
        let unread = UnreadFailures::next_transaction(&self.failures);
        if commit && unread > 0 {
            let rolled_back = match tx {
                Tx::MySql(connection) => self.end_mysql(connection, false).await,
                Tx::Postgres(tx) => tx.rollback().await,
                Tx::Sqlite(tx) => tx.rollback().await,
            };
            let note = match rolled_back {
                Ok(()) => "it was rolled back".to_owned(),
                Err(e) => format!("rolling it back failed too: {e}"),
            };
            return Err(SqlError::Statement(format!(
                "not committed: {unread} statement(s) submitted in this transaction failed and their errors were not read; {note}"
            )));
        }
        let result = match (tx, commit) {
            (Tx::MySql(connection), commit) => self.end_mysql(connection, commit).await,
            (Tx::Postgres(tx), true) => tx.commit().await,
            (Tx::Postgres(tx), false) => tx.rollback().await,
            (Tx::Sqlite(tx), true) => tx.commit().await,
            (Tx::Sqlite(tx), false) => tx.rollback().await,
        };
        result.map_err(error_from)
    }

    /// Commits or rolls back the transaction of the session's MySQL connection, and keeps
    /// the connection for the next one if that worked.
    async fn end_mysql(
        &mut self,
        mut connection: MySqlConnection,
        commit: bool,
    ) -> Result<(), sqlx::Error> {
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        sqlx::query(end).execute(&mut connection).await?;
        self.mysql = Some((connection, Instant::now()));
        Ok(())
    }
}

/// A session's own MySQL connection for its next transaction: the one it kept, `held`
/// with when it was last used, unless it sat long enough to need a ping and failed it;
/// else a new one with the pool's options and autocommit off, opened on the writers'
/// runtime ([`writers`]) so that its answers wake the writers' thread.
async fn own_connection(
    pool: &MySqlPool,
    held: Option<(MySqlConnection, Instant)>,
) -> Result<MySqlConnection, SqlError> {
    if let Some((mut connection, used)) = held
        && (used.elapsed() < IDLE_BEFORE_PING || connection.ping().await.is_ok())
    {
        return Ok(connection);
    }
    let options = pool.connect_options();
    let open = async move {
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut connection = MySqlConnection::connect_with(&options).await?;
            sqlx::query("SET autocommit = 0")
                .execute(&mut connection)
                .await?;
            Ok(connection)
        })
        .await
        .map_err(|_| {
            SqlError::Transient(format!(
                "no connection to the database within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(error_from)
    };
    on_writers(open).await.unwrap_or_else(|e| {
        Err(SqlError::Transient(format!(
            "opening a connection stopped: {e}"
        )))
    })
}

/// Runs `work` on the writers' runtime ([`writers`]), or on the worker's if that could not
/// start.
fn on_writers<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match writers() {
        Some(writers) => writers.spawn(work),
        None => tokio::spawn(work),
    }
}

/// The runtime the connections' writers ([`run_submitted`]) run on, with their own MySQL
/// connections: threads of its own, so that a statement's answer is read and the next
/// statement sent as soon as the answer arrives, not once a worker thread busy with a
/// plugin or a sink's intake gets to it (docs/measurements.md, stop 29). A writer mostly
/// waits; its threads, one per core, park while none has work. `None` if they cannot
/// start; the writers then run on the worker's own runtime.
fn writers() -> Option<&'static tokio::runtime::Handle> {
    static WRITERS: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    WRITERS
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cores)
                .thread_name("sql-writer")
                .enable_all()
                .build()
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "Cannot start the SQL writers' threads; they run on the worker's.");
                })
                .ok()
        })
        .as_ref()
        .map(tokio::runtime::Runtime::handle)
}

/// Runs the work of `queue` one at a time, in order, on `session`, until the queue closes;
/// hands the session back.
async fn run_submitted(mut session: Session, mut queue: mpsc::Receiver<Submitted>) -> Session {
    // The error of a submitted BEGIN that failed: the statements and the COMMIT submitted
    // for its transaction fail with it instead of running outside one.
    let mut unbegun: Option<SqlError> = None;
    while let Some(Submitted { work, done }) = queue.recv().await {
        if !matches!(work, Work::Begin)
            && let Some(e) = &unbegun
        {
            let failed = Err(e.clone());
            if matches!(work, Work::Commit) {
                unbegun = None;
            }
            let _ = done.send((failed, None));
            continue;
        }
        let (result, counted_in) = match work {
            Work::Begin => {
                let begun = session.begin().await;
                unbegun = begun.as_ref().err().map(not_begun);
                (begun.map(|()| 0), None)
            }
            Work::Execute { statement, params } => {
                let result = session.execute(&statement, &params).await;
                let counted_in = if result.is_err() && session.tx.is_some() {
                    let mut failures = UnreadFailures::lock(&session.failures);
                    failures.count += 1;
                    Some(failures.transaction)
                } else {
                    None
                };
                (result, counted_in)
            }
            // Ends the transaction either way: its failure belongs to no transaction.
            Work::Commit => (session.finish(true).await.map(|()| 0), None),
        };
        // A plugin that dropped its pending-execute does not want the result (its failure
        // stays unread).
        let _ = done.send((result, counted_in));
    }
    session
}

/// What a statement submitted after a failed BEGIN gets: a transient error, so that the
/// plugin writes the transaction again.
fn not_begun(e: &SqlError) -> SqlError {
    let (SqlError::Transient(m) | SqlError::Statement(m) | SqlError::Denied(m)) = e;
    SqlError::Transient(format!("the transaction did not begin: {m}"))
}

impl SqlConnection {
    fn new(pool: SqlPool) -> SqlConnection {
        let failures = Arc::new(Mutex::new(UnreadFailures::default()));
        SqlConnection {
            session: Some(Session::new(pool.clone(), failures.clone())),
            pool,
            writer: None,
            failures,
        }
    }

    /// The session, back from the writer once every submitted statement has run.
    async fn session(&mut self) -> Result<&mut Session, SqlError> {
        if let Some(Writer { queue, task }) = self.writer.take() {
            drop(queue);
            match task.await {
                Ok(session) => self.session = Some(session),
                Err(e) => {
                    // Its transaction is gone with it (rolled back).
                    self.session = Some(Session::new(self.pool.clone(), self.failures.clone()));
                    return Err(SqlError::Transient(format!(
                        "the connection's submitted statements stopped: {e}"
                    )));
                }
            }
        }
        Ok(self
            .session
            .get_or_insert_with(|| Session::new(self.pool.clone(), self.failures.clone())))
    }

    /// Queues work behind what was already submitted; waits only for room in the queue.
    async fn submit(&mut self, work: Work) -> Result<SqlPending, SqlError> {
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let session = self
                    .session
                    .take()
                    .unwrap_or_else(|| Session::new(self.pool.clone(), self.failures.clone()));
                let (queue, submitted) = mpsc::channel(SUBMIT_QUEUE);
                let task = on_writers(run_submitted(session, submitted));
                self.writer.insert(Writer { queue, task })
            }
        };
        let (done, result) = oneshot::channel();
        if writer.queue.send(Submitted { work, done }).await.is_err() {
            return Err(SqlError::Transient(
                "the connection's submitted statements stopped".into(),
            ));
        }
        Ok(SqlPending {
            result: Some(result),
            failures: self.failures.clone(),
        })
    }

    fn open_cursor(&self, statement: String, params: Vec<u8>) -> SqlCursor {
        let (tx, rx) = mpsc::channel(CURSOR_READ_AHEAD / CURSOR_CHUNK);
        let pool = self.pool.clone();
        let reader = tokio::spawn(async move {
            // Bind for the driver, then stream; a binding error is the cursor's first item.
            macro_rules! stream {
                ($bind:ident, $pool:expr, $read:ident) => {
                    match $bind(&statement, &params) {
                        Ok(q) => stream_rows(q.fetch($pool), $read, tx).await,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                        }
                    }
                };
            }
            match pool {
                SqlPool::MySql(pool, _) => stream!(bind_mysql, &pool, mysql_param),
                SqlPool::Postgres(pool) => stream!(bind_postgres, &pool, postgres_param),
                SqlPool::Sqlite(pool) => stream!(bind_sqlite, &pool, sqlite_param),
            }
        });
        SqlCursor {
            columns: Vec::new(),
            rows: rx,
            held: None,
            done: false,
            reader,
        }
    }
}

/// Reads `rows` into `out` in chunks of what the driver has ready (at most
/// [`CURSOR_CHUNK`]), encoded as they are read; a failure ends the stream after the rows
/// before it.
async fn stream_rows<R: Row>(
    rows: futures::stream::BoxStream<'_, Result<R, sqlx::Error>>,
    read: ReadParam<R>,
    out: mpsc::Sender<Result<CursorItem, SqlError>>,
) {
    let mut chunks = rows.ready_chunks(CURSOR_CHUNK);
    let mut first = true;
    while let Some(rows) = chunks.next().await {
        let mut columns = None;
        let mut chunk = Chunk {
            frame: Vec::new(),
            row_ends: Vec::with_capacity(rows.len()),
            taken: 0,
        };
        let mut failure = None;
        for row in rows {
            let encoded = row.map_err(error_from).and_then(|row| {
                if first {
                    columns = Some(columns_of(&row));
                    first = false;
                }
                (0..row.len()).try_for_each(|i| {
                    frame::encode_param(&read(&row, i)?, &mut chunk.frame);
                    Ok(())
                })
            });
            if let Err(e) = encoded {
                // Drop what was written of the unreadable row.
                chunk
                    .frame
                    .truncate(chunk.row_ends.last().copied().unwrap_or(0));
                failure = Some(e);
                break;
            }
            chunk.row_ends.push(chunk.frame.len());
        }
        if !chunk.row_ends.is_empty() && out.send(Ok((columns, chunk))).await.is_err() {
            return;
        }
        if let Some(e) = failure {
            let _ = out.send(Err(e)).await;
            return;
        }
    }
}

impl SqlCursor {
    /// Up to `max_rows` more rows in one parameter frame, and how many there are: empty
    /// when the query is done.
    async fn next_frame(&mut self, max_rows: u32) -> Result<(Vec<u8>, usize), SqlError> {
        let mut frame = Vec::new();
        let mut rows = 0;
        let max = usize::try_from(max_rows.max(1)).unwrap_or(usize::MAX);
        loop {
            if let Some(held) = &mut self.held {
                rows += held.take_into(&mut frame, max - rows);
                if held.is_spent() {
                    self.held = None;
                }
            }
            if rows == max || self.done {
                break;
            }
            // Wait for the first rows, then take what is already read.
            let item = if rows == 0 {
                self.rows.recv().await
            } else {
                match self.rows.try_recv() {
                    Ok(item) => Some(item),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match item {
                Some(Ok((columns, chunk))) => {
                    if let Some(columns) = columns {
                        self.columns = columns;
                    }
                    self.held = Some(chunk);
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                None => self.done = true,
            }
        }
        Ok((frame, rows))
    }

    /// [`Self::next_frame`] as WIT values, for `cursor.next`.
    async fn next(&mut self, max_rows: u32) -> Result<Vec<Vec<SqlValue>>, SqlError> {
        let (frame, rows) = self.next_frame(max_rows).await?;
        let mut cells = frame::decode(&frame);
        let width = self.columns.len();
        (0..rows)
            .map(|_| {
                cells
                    .by_ref()
                    .take(width)
                    .map(|cell| cell.map(value_of).map_err(SqlError::Statement))
                    .collect()
            })
            .collect()
    }
}

// ---- the generated host traits ----

impl sql::Host for TaskState {
    async fn connect(&mut self) -> wasmtime::Result<Result<Resource<SqlConnection>, SqlError>> {
        let Some(grant) = self.sql.as_mut() else {
            return Ok(Err(SqlError::Denied(
                "the sql capability is only available to a running task".into(),
            )));
        };
        let pool = match grant.pool().await {
            Ok(pool) => pool,
            Err(e) => return Ok(Err(e)),
        };
        let connection = self
            .table
            .push(SqlConnection::new(pool))
            .map_err(table_error)?;
        Ok(Ok(connection))
    }
}

impl TaskState {
    async fn submit_work(
        &mut self,
        this: Resource<SqlConnection>,
        work: Work,
    ) -> wasmtime::Result<Result<Resource<SqlPending>, SqlError>> {
        let connection = self.table.get_mut(&this).map_err(table_error)?;
        match connection.submit(work).await {
            Ok(pending) => Ok(Ok(self.table.push(pending).map_err(table_error)?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

impl sql::HostConnection for TaskState {
    async fn dialect(&mut self, this: Resource<SqlConnection>) -> wasmtime::Result<Dialect> {
        Ok(self.table.get(&this).map_err(table_error)?.pool.dialect())
    }

    async fn execute(
        &mut self,
        this: Resource<SqlConnection>,
        statement: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<u64, SqlError>> {
        self.execute_encoded(this, statement, frame_of(&params))
            .await
    }

    async fn query(
        &mut self,
        this: Resource<SqlConnection>,
        statement: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<RowSet, SqlError>> {
        let connection = self.table.get_mut(&this).map_err(table_error)?;
        Ok(match connection.session().await {
            Ok(session) => session.query(&statement, &frame_of(&params)).await,
            Err(e) => Err(e),
        })
    }

    async fn begin(
        &mut self,
        this: Resource<SqlConnection>,
    ) -> wasmtime::Result<Result<(), SqlError>> {
        let connection = self.table.get_mut(&this).map_err(table_error)?;
        Ok(match connection.session().await {
            Ok(session) => session.begin().await,
            Err(e) => Err(e),
        })
    }

    async fn commit(
        &mut self,
        this: Resource<SqlConnection>,
    ) -> wasmtime::Result<Result<(), SqlError>> {
        let connection = self.table.get_mut(&this).map_err(table_error)?;
        Ok(match connection.session().await {
            Ok(session) => session.finish(true).await,
            Err(e) => Err(e),
        })
    }

    async fn rollback(
        &mut self,
        this: Resource<SqlConnection>,
    ) -> wasmtime::Result<Result<(), SqlError>> {
        let connection = self.table.get_mut(&this).map_err(table_error)?;
        Ok(match connection.session().await {
            Ok(session) => session.finish(false).await,
            Err(e) => Err(e),
        })
    }

    async fn open_cursor(
        &mut self,
        this: Resource<SqlConnection>,
        statement: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<Resource<SqlCursor>, SqlError>> {
        let cursor = self
            .table
            .get(&this)
            .map_err(table_error)?
            .open_cursor(statement, frame_of(&params));
        Ok(Ok(self.table.push(cursor).map_err(table_error)?))
    }

    async fn submit(
        &mut self,
        this: Resource<SqlConnection>,
        statement: String,
        params: Vec<SqlValue>,
    ) -> wasmtime::Result<Result<Resource<SqlPending>, SqlError>> {
        self.submit_encoded(this, statement, frame_of(&params))
            .await
    }

    async fn execute_encoded(
        &mut self,
        this: Resource<SqlConnection>,
        statement: String,
        params: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, SqlError>> {
        // A malformed frame fails its binding, before the statement is sent.
        let connection = self.table.get_mut(&this).map_err(table_error)?;
        Ok(match connection.session().await {
            Ok(session) => session.execute(&statement, &params).await,
            Err(e) => Err(e),
        })
    }

    async fn submit_encoded(
        &mut self,
        this: Resource<SqlConnection>,
        statement: String,
        params: Vec<u8>,
    ) -> wasmtime::Result<Result<Resource<SqlPending>, SqlError>> {
        if let Err(e) = check_frame(&params) {
            return Ok(Err(e));
        }
        self.submit_work(this, Work::Execute { statement, params })
            .await
    }

    async fn submit_begin(
        &mut self,
        this: Resource<SqlConnection>,
    ) -> wasmtime::Result<Result<Resource<SqlPending>, SqlError>> {
        self.submit_work(this, Work::Begin).await
    }

    async fn submit_commit(
        &mut self,
        this: Resource<SqlConnection>,
    ) -> wasmtime::Result<Result<Resource<SqlPending>, SqlError>> {
        self.submit_work(this, Work::Commit).await
    }

    async fn drop(&mut self, this: Resource<SqlConnection>) -> wasmtime::Result<()> {
        // An open transaction rolls back when its connection returns to the pool.
        self.table.delete(this).map_err(table_error)?;
        Ok(())
    }
}

impl sql::HostPendingExecute for TaskState {
    async fn rows_affected(
        &mut self,
        this: Resource<SqlPending>,
    ) -> wasmtime::Result<Result<u64, SqlError>> {
        let pending = self.table.get_mut(&this).map_err(table_error)?;
        Ok(pending.read().await)
    }

    async fn drop(&mut self, this: Resource<SqlPending>) -> wasmtime::Result<()> {
        self.table.delete(this).map_err(table_error)?;
        Ok(())
    }
}

impl sql::HostCursor for TaskState {
    async fn columns(&mut self, this: Resource<SqlCursor>) -> wasmtime::Result<Vec<Column>> {
        Ok(self.table.get(&this).map_err(table_error)?.columns.clone())
    }

    async fn next(
        &mut self,
        this: Resource<SqlCursor>,
        max_rows: u32,
    ) -> wasmtime::Result<Result<Vec<Vec<SqlValue>>, SqlError>> {
        let cursor = self.table.get_mut(&this).map_err(table_error)?;
        Ok(cursor.next(max_rows).await)
    }

    async fn next_encoded(
        &mut self,
        this: Resource<SqlCursor>,
        max_rows: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, SqlError>> {
        let cursor = self.table.get_mut(&this).map_err(table_error)?;
        Ok(cursor.next_frame(max_rows).await.map(|(frame, _)| frame))
    }

    async fn drop(&mut self, this: Resource<SqlCursor>) -> wasmtime::Result<()> {
        self.table.delete(this).map_err(table_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn parses_jdbc_urls_of_every_dialect() {
        let t = SqlTarget::from_config(&config(&[
            ("connection.url", "jdbc:mysql://db.example:3307/shop?useSSL=false&serverTimezone=UTC&rewriteBatchedStatements=true"),
            ("connection.user", "app"),
            ("connection.password", "s3cret"),
        ]))
        .expect("mysql");
        assert_eq!(t.kind, DriverKind::MySql);
        assert_eq!((t.host.as_str(), t.port), ("db.example", Some(3307)));
        assert_eq!(t.database.as_deref(), Some("shop"));
        assert_eq!(t.user.as_deref(), Some("app"));
        assert_eq!(t.tls, Some(false));
        assert!(
            !format!("{t:?}").contains("s3cret"),
            "the password never shows"
        );

        let t = SqlTarget::from_config(&config(&[(
            "connection.url",
            "postgresql://u:p%40ss@127.0.0.1/test?sslmode=disable",
        )]))
        .expect("postgres");
        assert_eq!(t.kind, DriverKind::Postgres);
        assert_eq!(t.user.as_deref(), Some("u"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.port, None);

        let t = SqlTarget::from_config(&config(&[("connection.url", "jdbc:sqlite:/tmp/x.db")]))
            .expect("sqlite");
        assert_eq!(t.file.as_deref(), Some("/tmp/x.db"));
    }

    #[test]
    fn rejects_unusable_urls_naming_the_key() {
        for url in [
            "",
            "jdbc:oracle:thin:@host:1521:x",
            "mysql://:3306/db",
            "nonsense",
        ] {
            let err = SqlTarget::from_config(&config(&[("connection.url", url)])).expect_err(url);
            assert!(err.contains("connection.url"), "{err}");
        }
    }

    #[test]
    fn allow_list_matches_hosts_and_wildcards() {
        assert!(host_allowed(&[], "anything"));
        let list = vec!["127.0.0.1".to_owned(), "*.db.internal".to_owned()];
        assert!(host_allowed(&list, "127.0.0.1"));
        assert!(host_allowed(&list, "mysql.db.internal"));
        assert!(!host_allowed(&list, "db.internal"));
        assert!(!host_allowed(&list, "evil.example"));
    }

    #[test]
    fn converts_dates_and_times_both_ways() {
        let d = date_of(19_000).expect("date");
        assert_eq!(days_of(d), 19_000);
        let t = time_of(45_296_789_000).expect("time");
        assert_eq!(micros_of_time(t), 45_296_789_000);
        assert!(time_of(86_400_000_000).is_err());
        assert!(date_of(i32::MAX).is_err());
    }

    /// A pool on the machine's real database (`scripts/services.sh` starts them): the
    /// MariaDB test database, created when missing, or PostgreSQL's `test`.
    async fn real_pool(kind: DriverKind) -> SqlPool {
        let url = match kind {
            DriverKind::MySql => {
                let server = std::env::var("MYSQL_URL")
                    .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
                let target = SqlTarget::parse_url(&server).expect("MYSQL_URL");
                let SqlPool::MySql(pool, _) = SqlPool::open(&target).await.expect("MariaDB") else {
                    unreachable!("a MySQL URL opens a MySQL pool");
                };
                sqlx::query("CREATE DATABASE IF NOT EXISTS wasmconnect_test")
                    .execute(&pool)
                    .await
                    .expect("test database");
                format!("{server}/wasmconnect_test")
            }
            _ => std::env::var("POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        };
        let target = SqlTarget::parse_url(&url).expect("database URL");
        SqlPool::open(&target).await.expect("database reachable")
    }

    async fn outcome(mut pending: SqlPending) -> Result<u64, SqlError> {
        pending.read().await
    }

    async fn submit(
        conn: &mut SqlConnection,
        statement: &str,
        id: i64,
    ) -> Result<SqlPending, SqlError> {
        let params = frame_of(&[SqlValue::Int(id)]);
        conn.submit(Work::Execute {
            statement: statement.to_owned(),
            params,
        })
        .await
    }

    /// Runs a query once the submitted statements have run.
    async fn query_after(conn: &mut SqlConnection, statement: &str) -> RowSet {
        let session = conn.session().await.expect("session");
        session.query(statement, &[]).await.expect(statement)
    }

    async fn begin(conn: &mut SqlConnection) {
        let session = conn.session().await.expect("session");
        session.begin().await.expect("begin");
    }

    async fn count(conn: &mut SqlConnection, table: &str) -> i64 {
        let rows = query_after(conn, &format!("SELECT COUNT(*) FROM {table}")).await;
        match rows.rows.first().and_then(|r| r.first()) {
            Some(SqlValue::Int(n)) => *n,
            other => panic!("count: {other:?}"),
        }
    }

    /// `submit`: statements run in order behind one another, other calls wait for them,
    /// and a transaction in which one failed unread is refused at `commit` and rolled back,
    /// whether the commit is called or submitted.
    async fn submitted_statements_keep_order_and_an_unread_failure_blocks_the_commit(
        kind: DriverKind,
    ) {
        let table = "submit_order";
        let mut conn = SqlConnection::new(real_pool(kind).await);
        for ddl in [
            format!("DROP TABLE IF EXISTS {table}"),
            format!("CREATE TABLE {table} (id INT PRIMARY KEY, n INT NOT NULL)"),
        ] {
            let session = conn.session().await.expect("session");
            session.execute(&ddl, &[]).await.expect("ddl");
        }
        let place = |i: usize| match kind {
            DriverKind::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        };
        let insert = format!("INSERT INTO {table} (id, n) VALUES ({}, 0)", place(1));
        let bump = format!("UPDATE {table} SET n = n + 1 WHERE id = {}", place(1));

        // Outside a transaction: the update finds the row the insert before it wrote, and
        // a query waits for both.
        let first = submit(&mut conn, &insert, 1).await;
        let second = submit(&mut conn, &bump, 1).await;
        let rows = query_after(&mut conn, &format!("SELECT n FROM {table} WHERE id = 1")).await;
        assert!(
            matches!(rows.rows.as_slice(), [row] if matches!(row.as_slice(), [SqlValue::Int(1)])),
            "{:?}",
            rows.rows
        );
        assert!(matches!(outcome(first.expect("queued")).await, Ok(1)));
        assert!(matches!(outcome(second.expect("queued")).await, Ok(1)));

        // A duplicate key among three, its error never read: the commit is refused.
        begin(&mut conn).await;
        let mut pending = Vec::new();
        for id in [2, 1, 3] {
            pending.push(submit(&mut conn, &insert, id).await.expect("queued"));
        }
        let mut pending = pending.into_iter();
        let first = pending.next().expect("first");
        assert!(matches!(outcome(first).await, Ok(1)));
        drop(pending);
        let commit = conn.session().await.expect("session").finish(true).await;
        assert!(
            matches!(&commit, Err(SqlError::Statement(m)) if m.contains("not committed")),
            "{commit:?}"
        );
        assert_eq!(count(&mut conn, table).await, 1, "rolled back");

        // The same failure read and rolled back to a savepoint is the plugin's to handle:
        // the transaction commits what is left.
        let session = conn.session().await.expect("session");
        session.begin().await.expect("begin");
        session
            .execute("SAVEPOINT one", &[])
            .await
            .expect("savepoint");
        let duplicate = submit(&mut conn, &insert, 1).await;
        let failed = outcome(duplicate.expect("queued")).await;
        assert!(matches!(&failed, Err(SqlError::Statement(_))), "{failed:?}");
        let session = conn.session().await.expect("session");
        session
            .execute("ROLLBACK TO SAVEPOINT one", &[])
            .await
            .expect("rollback to savepoint");
        let fine = submit(&mut conn, &insert, 4).await;
        assert!(matches!(outcome(fine.expect("queued")).await, Ok(1)));
        let commit = conn.session().await.expect("session").finish(true).await;
        assert!(commit.is_ok(), "{commit:?}");
        assert_eq!(count(&mut conn, table).await, 2);

        // A clean transaction of submitted statements commits them all.
        begin(&mut conn).await;
        let pending = [
            submit(&mut conn, &insert, 2).await,
            submit(&mut conn, &insert, 3).await,
        ];
        let commit = conn.session().await.expect("session").finish(true).await;
        assert!(commit.is_ok(), "{commit:?}");
        for p in pending {
            assert!(matches!(outcome(p.expect("queued")).await, Ok(1)));
        }
        assert_eq!(count(&mut conn, table).await, 4);

        // A submitted COMMIT: the next `begin` waits for it, and the transaction after it
        // commits too.
        begin(&mut conn).await;
        let mut pending = vec![
            submit(&mut conn, &insert, 5).await,
            submit(&mut conn, &insert, 6).await,
            conn.submit(Work::Commit).await,
        ];
        begin(&mut conn).await;
        pending.push(submit(&mut conn, &insert, 7).await);
        pending.push(conn.submit(Work::Commit).await);
        for p in pending {
            let done = outcome(p.expect("queued")).await;
            assert!(done.is_ok(), "{done:?}");
        }
        assert_eq!(count(&mut conn, table).await, 7);

        // A submitted COMMIT behind a failure nobody has read is refused when it runs, and
        // its transaction rolled back; so is one with no transaction.
        begin(&mut conn).await;
        let fine = submit(&mut conn, &insert, 8).await.expect("queued");
        let duplicate = submit(&mut conn, &insert, 1).await.expect("queued");
        let commit = conn.submit(Work::Commit).await.expect("queued");
        let refused = outcome(commit).await;
        assert!(
            matches!(&refused, Err(SqlError::Statement(m)) if m.contains("not committed")),
            "{refused:?}"
        );
        assert!(matches!(outcome(fine).await, Ok(1)));
        assert!(matches!(
            outcome(duplicate).await,
            Err(SqlError::Statement(_))
        ));
        assert_eq!(count(&mut conn, table).await, 7, "rolled back");
        let alone = outcome(conn.submit(Work::Commit).await.expect("queued")).await;
        assert!(
            matches!(&alone, Err(SqlError::Statement(m)) if m.contains("no transaction")),
            "{alone:?}"
        );

        // A submitted BEGIN: what follows runs in its transaction, and the next submitted
        // BEGIN waits behind its COMMIT.
        let mut pending = vec![
            conn.submit(Work::Begin).await,
            submit(&mut conn, &insert, 9).await,
            conn.submit(Work::Commit).await,
            conn.submit(Work::Begin).await,
            submit(&mut conn, &insert, 10).await,
        ];
        let rolled_back = conn.session().await.expect("session").finish(false).await;
        assert!(
            rolled_back.is_ok(),
            "the second BEGIN's transaction: {rolled_back:?}"
        );
        for p in pending.drain(..) {
            let done = outcome(p.expect("queued")).await;
            assert!(done.is_ok(), "{done:?}");
        }
        assert_eq!(
            count(&mut conn, table).await,
            8,
            "9 committed, 10 rolled back"
        );

        // A BEGIN that fails (one is open already) takes down what was submitted for its
        // transaction, up to its COMMIT, instead of letting it run in the open one.
        begin(&mut conn).await;
        let pending = [
            conn.submit(Work::Begin).await,
            submit(&mut conn, &insert, 11).await,
            conn.submit(Work::Commit).await,
            submit(&mut conn, &insert, 12).await,
        ];
        let [begun, statement, commit, after] = pending.map(|p| p.expect("queued"));
        let begun = outcome(begun).await;
        assert!(
            matches!(&begun, Err(SqlError::Statement(m)) if m.contains("already open")),
            "{begun:?}"
        );
        let statement = outcome(statement).await;
        assert!(
            matches!(&statement, Err(SqlError::Transient(m)) if m.contains("did not begin")),
            "{statement:?}"
        );
        let commit = outcome(commit).await;
        assert!(matches!(&commit, Err(SqlError::Transient(_))), "{commit:?}");
        // After the COMMIT the statements run again, here in the transaction still open.
        assert!(matches!(outcome(after).await, Ok(1)));
        let rolled_back = conn.session().await.expect("session").finish(false).await;
        assert!(rolled_back.is_ok(), "{rolled_back:?}");
        assert_eq!(
            count(&mut conn, table).await,
            8,
            "11 never ran, 12 rolled back"
        );
    }

    /// Every kind of parameter is bound from a frame and reads back as it was sent; a
    /// malformed frame is refused naming the byte where it goes wrong, and runs nothing.
    async fn frames_bind_every_kind_and_malformed_ones_run_nothing(kind: DriverKind) {
        let table = "param_frames";
        let mut conn = SqlConnection::new(real_pool(kind).await);
        let (blob, decimal, timestamp) = match kind {
            DriverKind::Postgres => ("BYTEA", "NUMERIC(10, 3)", "TIMESTAMP"),
            _ => ("BLOB", "DECIMAL(10, 3)", "DATETIME(6)"),
        };
        let session = conn.session().await.expect("session");
        for ddl in [
            format!("DROP TABLE IF EXISTS {table}"),
            format!(
                "CREATE TABLE {table} (id BIGINT PRIMARY KEY, t TEXT, b {blob}, d {decimal}, \
                 day DATE, at {timestamp}, f DOUBLE PRECISION, flag BOOLEAN, n TEXT)"
            ),
        ] {
            session.execute(&ddl, &[]).await.expect("ddl");
        }
        let sent = vec![
            SqlValue::Int(1),
            SqlValue::Text("it's \"quoted\", grüße; DROP TABLE x".into()),
            SqlValue::Bytes(vec![0, 255, 39, 92]),
            SqlValue::Decimal("-12.340".into()),
            SqlValue::Date(19_000),
            SqlValue::Timestamp(1_641_081_600_123_456),
            SqlValue::Double(-0.5),
            SqlValue::Boolean(true),
            SqlValue::Null,
        ];
        let places: Vec<String> = (1..=sent.len())
            .map(|i| match kind {
                // A decimal is sent as text, which PostgreSQL casts only when told to (as
                // the JDBC sink's statements do).
                DriverKind::Postgres if i == 4 => format!("CAST(${i} AS NUMERIC)"),
                DriverKind::Postgres => format!("${i}"),
                _ => "?".to_owned(),
            })
            .collect();
        let insert = format!(
            "INSERT INTO {table} (id, t, b, d, day, at, f, flag, n) VALUES ({})",
            places.join(", ")
        );
        let frame = frame_of(&sent);
        let inserted = session.execute(&insert, &frame).await;
        assert!(matches!(inserted, Ok(1)), "{inserted:?}");
        let read = format!("SELECT id, t, b, d, day, at, f, flag, n FROM {table}");
        let rows = session.query(&read, &[]).await.expect("select");
        let row: Vec<SqlParam<'_>> = rows
            .rows
            .first()
            .expect("the row")
            .iter()
            .map(param_of)
            .collect();
        let sent: Vec<SqlParam<'_>> = sent.iter().map(param_of).collect();
        assert_eq!(&row[..3], &sent[..3]);
        assert!(
            // PostgreSQL's NUMERIC reads back as "-12.3400": the value is compared.
            matches!(&row[3], SqlParam::Decimal(d) if d.parse::<f64>() == Ok(-12.34)),
            "{:?}",
            row[3]
        );
        assert_eq!(&row[4..7], &sent[4..7]);
        assert!(
            matches!(row[7], SqlParam::Boolean(true) | SqlParam::Int(1)),
            "{:?}",
            row[7]
        );
        assert_eq!(row[8], SqlParam::Null);

        // The same frame cut inside its last text, and one with an unknown tag.
        let cut = &frame[..frame.len() - 3];
        let mut unknown = frame_of(&[SqlValue::Int(2)]);
        unknown.push(99);
        for bad in [cut, &unknown[..]] {
            let refused = check_frame(bad);
            assert!(
                matches!(&refused, Err(SqlError::Statement(m)) if m.contains("at byte")),
                "{refused:?}"
            );
            let session = conn.session().await.expect("session");
            let executed = session.execute(&insert, bad).await;
            assert_eq!(format!("{executed:?}"), format!("{refused:?}"));
        }
        let count = format!("SELECT COUNT(*) FROM {table}");
        let session = conn.session().await.expect("session");
        let rows = session.query(&count, &[]).await.expect("count");
        assert!(
            matches!(rows.rows.as_slice(), [row] if matches!(row.as_slice(), [SqlValue::Int(1)])),
            "nothing else ran: {:?}",
            rows.rows
        );
    }

    /// A cursor hands on every row once, in order, in pieces of any size (across the
    /// reader's chunks), its frames reading back as the rows `query` returns; `next` gives
    /// the same rows as values; both are empty at the end.
    async fn cursors_read_every_row_in_frames(kind: DriverKind) {
        let table = "cursor_frames";
        let mut conn = SqlConnection::new(real_pool(kind).await);
        let session = conn.session().await.expect("session");
        for ddl in [
            format!("DROP TABLE IF EXISTS {table}"),
            format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, t TEXT, f DOUBLE PRECISION)"),
        ] {
            session.execute(&ddl, &[]).await.expect("ddl");
        }
        let rows = 3 * CURSOR_CHUNK + 17;
        let places = match kind {
            DriverKind::Postgres => "($1, $2, $3)",
            _ => "(?, ?, ?)",
        };
        let insert = format!("INSERT INTO {table} (id, t, f) VALUES {places}");
        for id in 0..rows {
            let text = if id % 5 == 0 {
                None
            } else {
                Some(format!("row {id}: ü \"x\""))
            };
            let params = [
                SqlValue::Int(id as i64),
                text.map_or(SqlValue::Null, SqlValue::Text),
                SqlValue::Double(id as f64 / 4.0),
            ];
            session
                .execute(&insert, &frame_of(&params))
                .await
                .expect("insert");
        }
        let select = format!("SELECT id, t, f FROM {table} ORDER BY id");
        let expected = session.query(&select, &[]).await.expect("select").rows;
        assert_eq!(expected.len(), rows);
        // The bindings' values have no `==`: they are compared as parameters.
        let same = |read: &[Vec<SqlValue>]| {
            let params = |rows: &[Vec<SqlValue>]| -> Vec<Vec<SqlParam<'static>>> {
                rows.iter()
                    .map(|r| r.iter().map(|v| param_of(v).into_owned()).collect())
                    .collect()
            };
            assert_eq!(params(read), params(&expected));
        };

        let mut cursor = conn.open_cursor(select.clone(), Vec::new());
        let mut read = Vec::new();
        // Pieces smaller and larger than the reader's chunks.
        for max in [1, 50, 200].into_iter().cycle() {
            let (frame, n) = cursor.next_frame(max).await.expect("rows");
            if n == 0 {
                assert!(frame.is_empty(), "an empty frame at the end");
                break;
            }
            assert!(n <= max as usize);
            let values: Vec<SqlValue> = frame::decode(&frame)
                .map(|p| p.map(value_of).expect("a well-formed frame"))
                .collect();
            assert_eq!(values.len(), n * 3, "whole rows");
            read.extend(values.chunks(3).map(<[SqlValue]>::to_vec));
        }
        same(&read);
        assert_eq!(cursor.columns.len(), 3);
        assert!(cursor.next_frame(10).await.expect("done").0.is_empty());

        let mut cursor = conn.open_cursor(select, Vec::new());
        let mut read = Vec::new();
        loop {
            let rows = cursor.next(150).await.expect("rows");
            if rows.is_empty() {
                break;
            }
            read.extend(rows);
        }
        same(&read);
    }

    #[tokio::test]
    async fn cursors_on_mariadb() {
        cursors_read_every_row_in_frames(DriverKind::MySql).await;
    }

    #[tokio::test]
    async fn cursors_on_postgres() {
        cursors_read_every_row_in_frames(DriverKind::Postgres).await;
    }

    #[tokio::test]
    async fn frames_on_mariadb() {
        frames_bind_every_kind_and_malformed_ones_run_nothing(DriverKind::MySql).await;
    }

    #[tokio::test]
    async fn frames_on_postgres() {
        frames_bind_every_kind_and_malformed_ones_run_nothing(DriverKind::Postgres).await;
    }

    /// MariaDB: a session's transactions run on a connection of its own with autocommit
    /// off, which is never handed back to the pool: the pool's connections still commit
    /// each statement, a transaction's rows are seen only once it commits, a connection
    /// lost between transactions is replaced (before the first statement when it sat
    /// unused long enough to be pinged), and one dropped inside a transaction takes its
    /// rows with it.
    #[tokio::test]
    async fn mariadb_transactions_run_on_a_connection_of_their_own() {
        let table = "own_connection";
        let pool = real_pool(DriverKind::MySql).await;
        let SqlPool::MySql(shared, _) = pool.clone() else {
            unreachable!("a MariaDB pool")
        };
        let mut conn = SqlConnection::new(pool);
        let insert = format!("INSERT INTO {table} (id) VALUES (?)");
        let ids = async |shared: &MySqlPool| -> Vec<i64> {
            sqlx::query_scalar(&format!("SELECT id FROM {table} ORDER BY id"))
                .fetch_all(shared)
                .await
                .expect("ids")
        };
        let session = conn.session().await.expect("session");
        for ddl in [
            format!("DROP TABLE IF EXISTS {table}"),
            format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY)"),
        ] {
            session.execute(&ddl, &[]).await.expect("ddl");
        }
        let connection_id = async |session: &mut Session| -> i64 {
            let rows = session
                .query("SELECT CONNECTION_ID()", &[])
                .await
                .expect("connection id");
            match rows.rows.first().and_then(|r| r.first()) {
                Some(SqlValue::Int(id)) => *id,
                Some(SqlValue::Uint(id)) => i64::try_from(*id).expect("id"),
                other => panic!("connection id: {other:?}"),
            }
        };
        let write = async |session: &mut Session, id: i64| {
            session
                .execute(&insert, &frame_of(&[SqlValue::Int(id)]))
                .await
        };
        let kill = async |id: i64| {
            sqlx::query(&format!("KILL CONNECTION {id}"))
                .execute(&shared)
                .await
                .expect("kill");
        };

        // Committed: seen from the pool. Rolled back: never seen.
        session.begin().await.expect("begin");
        let first = connection_id(session).await;
        write(session, 1).await.expect("insert");
        assert_eq!(ids(&shared).await, Vec::<i64>::new(), "uncommitted");
        session.finish(true).await.expect("commit");
        assert_eq!(ids(&shared).await, [1]);
        session.begin().await.expect("begin");
        assert_eq!(connection_id(session).await, first, "the same connection");
        write(session, 2).await.expect("insert");
        session.finish(false).await.expect("rollback");
        assert_eq!(ids(&shared).await, [1]);

        // Outside a transaction a statement goes to the pool, and commits.
        write(session, 3).await.expect("insert");
        assert_eq!(ids(&shared).await, [1, 3]);

        // Its connection killed between transactions: the next fails as transient, its
        // ROLLBACK cannot reach the server either, and the one after runs on a new one.
        kill(first).await;
        session.begin().await.expect("begin");
        let lost = write(session, 4).await;
        assert!(matches!(lost, Err(SqlError::Transient(_))), "{lost:?}");
        assert!(
            session.finish(false).await.is_err(),
            "the rollback is lost too"
        );
        session.begin().await.expect("begin");
        assert_ne!(connection_id(session).await, first, "a new connection");
        write(session, 5).await.expect("insert");
        session.finish(true).await.expect("commit");
        assert_eq!(ids(&shared).await, [1, 3, 5]);

        // Killed while it sat unused long enough to be pinged: the next transaction finds
        // it gone before its first statement, and runs on a new one.
        session.begin().await.expect("begin");
        let second = connection_id(session).await;
        session.finish(true).await.expect("commit");
        kill(second).await;
        if let Some((_, used)) = &mut session.mysql {
            *used = Instant::now()
                .checked_sub(IDLE_BEFORE_PING)
                .expect("a clock older than the idle time");
        }
        session.begin().await.expect("begin");
        assert_ne!(connection_id(session).await, second, "a new connection");
        write(session, 7).await.expect("insert");
        session.finish(true).await.expect("commit");
        assert_eq!(ids(&shared).await, [1, 3, 5, 7]);

        // Dropped inside a transaction: closed with it, not pooled with its rows.
        session.begin().await.expect("begin");
        write(session, 6).await.expect("insert");
        drop(conn);
        assert_eq!(ids(&shared).await, [1, 3, 5, 7]);
        let mut held = Vec::new();
        for _ in 0..POOL_SIZE {
            let mut connection = shared.acquire().await.expect("pooled connection");
            let autocommit: i64 = sqlx::query_scalar("SELECT @@autocommit")
                .fetch_one(&mut *connection)
                .await
                .expect("autocommit");
            assert_eq!(
                autocommit, 1,
                "every pooled connection commits each statement"
            );
            held.push(connection);
        }
    }

    #[tokio::test]
    async fn submit_on_mariadb() {
        submitted_statements_keep_order_and_an_unread_failure_blocks_the_commit(DriverKind::MySql)
            .await;
    }

    #[tokio::test]
    async fn submit_on_postgres() {
        submitted_statements_keep_order_and_an_unread_failure_blocks_the_commit(
            DriverKind::Postgres,
        )
        .await;
    }
}
