//! The `sql` host capability: a pooled database connection that the worker opens from the
//! connector's own config (`connection.url`, `connection.user`, `connection.password`).
//!
//! A plugin that uses this module imports `wasmconnect:plugin/sql`; the worker then opens
//! the database named by the connector's config when the plugin calls [`connect`]. Nothing
//! else can reach a database. Outside the worker (native unit tests), [`connect`] answers
//! [`SqlError::Denied`].
//!
//! ```no_run
//! use wasmconnect_sdk::sql::{self, SqlValue};
//!
//! # fn main() -> Result<(), sql::SqlError> {
//! let db = sql::connect()?;
//! db.begin()?;
//! db.execute("INSERT INTO t(id, name) VALUES (?, ?)", &[SqlValue::Int(1), "a".into()])?;
//! db.commit()?;
//! let rows = db.query("SELECT name FROM t WHERE id = ?", &[SqlValue::Int(1)])?;
//! assert_eq!(rows.rows.len(), 1);
//! # Ok(())
//! # }
//! ```

use crate::data::PluginError;

pub mod params;

pub use params::SqlParam;

/// The database a connection talks to; statements differ in placeholders (`?` or `$n`),
/// identifier quoting and upsert syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    MariaDb,
    Postgres,
    Sqlite,
}

impl Dialect {
    /// `name` as an identifier for statements: quoted ([`Dialect::quote_identifier`]), or
    /// with `quote` off (`quote.sql.identifiers=never`) as it is, when it is a plain
    /// identifier (letters, digits, `_`, `$`, not starting with a digit).
    ///
    /// # Errors
    /// An empty name, a NUL, or an unquoted name that is not plain.
    pub fn identifier(self, name: &str, quote: bool) -> Result<String, String> {
        if name.is_empty() || name.contains('\0') {
            return Err(format!("{name:?} is not a usable SQL identifier"));
        }
        if quote {
            return Ok(self.quote_identifier(name));
        }
        let mut chars = name.chars();
        let plain = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if plain {
            Ok(name.to_owned())
        } else {
            Err(format!(
                "{name:?} is not a plain SQL identifier and quote.sql.identifiers=never"
            ))
        }
    }

    /// `name` as a quoted identifier: backticks on MySQL and MariaDB, double quotes
    /// elsewhere, the quote character doubled inside, so no name can break out.
    pub fn quote_identifier(self, name: &str) -> String {
        let q = if matches!(self, Dialect::MySql | Dialect::MariaDb) {
            '`'
        } else {
            '"'
        };
        let mut out = String::with_capacity(name.len() + 2);
        out.push(q);
        for c in name.chars() {
            if c == q {
                out.push(q);
            }
            out.push(c);
        }
        out.push(q);
        out
    }
}

/// `db.timezone`: parses `UTC`, `Z`, `GMT`, `+02:00`, `-0530`, `UTC+1` into seconds east of UTC.
pub fn parse_zone_offset(zone: &str) -> Option<i64> {
    let z = zone.trim();
    let rest = ["UTC", "GMT", "Z", "Etc/UTC"]
        .iter()
        .find_map(|p| z.strip_prefix(p))
        .unwrap_or(z);
    if rest.is_empty() {
        return Some(0);
    }
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 18 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// A bound parameter or a column value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Boolean(bool),
    Int(i64),
    /// Unsigned 64-bit columns (MySQL `BIGINT UNSIGNED`).
    Uint(u64),
    Double(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// An exact decimal as text, e.g. `-12.340`.
    Decimal(String),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01T00:00:00, in the database's zone.
    Timestamp(i64),
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> SqlValue {
        SqlValue::Text(s.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> SqlValue {
        SqlValue::Text(s)
    }
}

impl From<i64> for SqlValue {
    fn from(i: i64) -> SqlValue {
        SqlValue::Int(i)
    }
}

impl SqlValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) | SqlValue::Decimal(s) => Some(s),
            _ => None,
        }
    }

    /// See [`SqlParam::as_i64`].
    pub fn as_i64(&self) -> Option<i64> {
        SqlParam::from(self).as_i64()
    }
}

/// A column of a result: its name and the database's (upper-case) type name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_name: String,
}

/// The rows of a query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// Why a database call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlError {
    /// The database could not be reached, the connection broke, a deadlock or a lock
    /// timeout: worth retrying.
    Transient(String),
    /// The database rejected the statement: retrying it fails again.
    Statement(String),
    /// No database for this connector (no `connection.url`, a host the worker does not
    /// allow), or a call outside a running task.
    Denied(String),
}

impl SqlError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SqlError::Transient(_))
    }

    pub fn message(&self) -> &str {
        match self {
            SqlError::Transient(m) | SqlError::Statement(m) | SqlError::Denied(m) => m,
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlError::Transient(m) => write!(f, "database unavailable: {m}"),
            SqlError::Statement(m) => write!(f, "database error: {m}"),
            SqlError::Denied(m) => write!(f, "no database: {m}"),
        }
    }
}

impl std::error::Error for SqlError {}

impl From<SqlError> for PluginError {
    fn from(err: SqlError) -> PluginError {
        match err {
            SqlError::Transient(_) => PluginError::retriable(err.to_string()),
            SqlError::Statement(_) => PluginError::fatal(err.to_string()),
            SqlError::Denied(_) => PluginError::config(err.to_string()),
        }
    }
}

/// [`connect`], trying up to `attempts` times while the database is unreachable, with
/// `backoff_ms` (at most 10 s) between tries (`connection.attempts`,
/// `connection.backoff.ms`).
///
/// # Errors
/// The last attempt's error, or the first that is not transient.
pub fn connect_with_attempts(attempts: u32, backoff_ms: u64) -> Result<Connection, SqlError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match connect() {
            Err(e) if e.is_transient() && attempt < attempts => {
                crate::warn!("Cannot reach the database (attempt {attempt} of {attempts}): {e}");
                std::thread::sleep(std::time::Duration::from_millis(backoff_ms.min(10_000)));
            }
            result => return result,
        }
    }
}

/// Opens (or reuses) the task's connection pool from its connector config.
///
/// # Errors
/// [`SqlError::Transient`] when the database cannot be reached, [`SqlError::Denied`]
/// without a usable `connection.url` or outside the worker.
pub fn connect() -> Result<Connection, SqlError> {
    imp::connect().map(|inner| Connection { inner })
}

/// A task's pooled database connection.
#[derive(Debug)]
pub struct Connection {
    inner: imp::Connection,
}

impl Connection {
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }

    /// Runs one statement with `?` (MySQL, SQLite) or `$n` (PostgreSQL) placeholders and
    /// returns the rows affected. A multi-row statement is one call.
    ///
    /// # Errors
    /// The database's error.
    pub fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<u64, SqlError> {
        self.inner.execute_each(statement, params)
    }

    /// [`Connection::execute`] with the parameters taken from where they are, such as the
    /// cells of many rows: each is copied once, into the call, with no slice built first.
    ///
    /// # Errors
    /// The database's error.
    pub fn execute_each<'p, P: Into<SqlParam<'p>>>(
        &self,
        statement: &str,
        params: impl IntoIterator<Item = P>,
    ) -> Result<u64, SqlError> {
        self.inner.execute_each(statement, params)
    }

    /// Queues a statement and returns at once, so the plugin can build its next statement
    /// while the database runs this one; [`Submitted::rows_affected`] waits for it.
    /// Submitted statements run one at a time in the order submitted, inside the
    /// transaction open when they were submitted; every other call on the connection
    /// first waits for them all. At most 8 wait to run: a further submit waits for room.
    /// [`Connection::commit`] refuses (and rolls back) a transaction in which a submitted
    /// statement failed and its error was not read: read the results before committing.
    ///
    /// # Errors
    /// The connection's failure; the statement's own error comes from
    /// [`Submitted::rows_affected`].
    pub fn submit_each<'p, P: Into<SqlParam<'p>>>(
        &self,
        statement: &str,
        params: impl IntoIterator<Item = P>,
    ) -> Result<Submitted, SqlError> {
        self.inner
            .submit_each(statement, params)
            .map(|inner| Submitted { inner })
    }

    /// Queues a BEGIN behind what was submitted before it (a [`Connection::submit_commit`],
    /// say) and returns at once: statements submitted after it run in the new transaction.
    /// If it fails, the statements and the COMMIT submitted after it fail with its error
    /// (transient) instead of running outside a transaction.
    ///
    /// # Errors
    /// The connection's failure; the BEGIN's own error comes from
    /// [`Submitted::rows_affected`].
    pub fn submit_begin(&self) -> Result<Submitted, SqlError> {
        self.inner.submit_begin().map(|inner| Submitted { inner })
    }

    /// Queues the open transaction's COMMIT behind the statements submitted before it and
    /// returns at once; [`Submitted::rows_affected`] gives the commit's outcome (0 rows).
    /// When it runs it does what [`Connection::commit`] does then: it refuses (and rolls
    /// back) if a submitted statement of the transaction failed and its error has not been
    /// read. The connection's next call waits for it, so a [`Connection::begin`] after it
    /// starts the next transaction once this one has committed.
    ///
    /// # Errors
    /// The connection's failure; the commit's own error comes from
    /// [`Submitted::rows_affected`].
    pub fn submit_commit(&self) -> Result<Submitted, SqlError> {
        self.inner.submit_commit().map(|inner| Submitted { inner })
    }

    /// Runs a query and returns all its rows.
    ///
    /// # Errors
    /// The database's error.
    pub fn query(&self, statement: &str, params: &[SqlValue]) -> Result<RowSet, SqlError> {
        self.inner.query(statement, params)
    }

    /// Starts a transaction; statements run in it until [`Connection::commit`] or
    /// [`Connection::rollback`]. Dropping the connection rolls it back.
    ///
    /// # Errors
    /// The database's error, or a transaction already open.
    pub fn begin(&self) -> Result<(), SqlError> {
        self.inner.begin()
    }

    /// # Errors
    /// The database's error, or no transaction open.
    pub fn commit(&self) -> Result<(), SqlError> {
        self.inner.commit()
    }

    /// # Errors
    /// The database's error, or no transaction open.
    pub fn rollback(&self) -> Result<(), SqlError> {
        self.inner.rollback()
    }

    /// Starts a query whose rows are fetched in pieces, for reads larger than memory.
    ///
    /// # Errors
    /// The database's error.
    pub fn open_cursor(&self, statement: &str, params: &[SqlValue]) -> Result<Cursor, SqlError> {
        self.inner
            .open_cursor(statement, params)
            .map(|inner| Cursor { inner, width: None })
    }
}

/// A statement given to [`Connection::submit_each`], or a BEGIN or COMMIT submitted,
/// running or done.
#[derive(Debug)]
pub struct Submitted {
    inner: imp::Submitted,
}

impl Submitted {
    /// Waits for the statement and returns the rows it affected.
    ///
    /// # Errors
    /// The database's error for this statement.
    pub fn rows_affected(self) -> Result<u64, SqlError> {
        self.inner.rows_affected()
    }
}

/// Rows of a query fetched in pieces; dropping it ends the query.
#[derive(Debug)]
pub struct Cursor {
    inner: imp::Cursor,
    /// Columns per row, known once a row has been fetched.
    width: Option<usize>,
}

impl Cursor {
    /// The result's columns, known once a row has been fetched.
    pub fn columns(&self) -> Vec<Column> {
        self.inner.columns()
    }

    /// Up to `max_rows` more rows in one frame, their text and bytes read in place
    /// ([`RowFrame::rows`]); empty when the query is done.
    ///
    /// # Errors
    /// The database's error.
    pub fn next_frame(&mut self, max_rows: u32) -> Result<RowFrame, SqlError> {
        let bytes = self.inner.next_encoded(max_rows)?;
        if self.width.is_none() && !bytes.is_empty() {
            self.width = Some(self.inner.columns().len());
        }
        Ok(RowFrame {
            bytes,
            width: self.width.unwrap_or(0),
        })
    }

    /// Up to `max_rows` more rows, owning their values; empty when the query is done.
    ///
    /// # Errors
    /// The database's error.
    pub fn next_rows(&mut self, max_rows: u32) -> Result<Vec<Vec<SqlValue>>, SqlError> {
        let frame = self.next_frame(max_rows)?;
        Ok(frame
            .rows()?
            .iter()
            .map(|row| row.iter().map(SqlParam::to_value).collect())
            .collect())
    }
}

/// Rows fetched by [`Cursor::next_frame`]: row after row, each its columns' values in the
/// parameter frame's encoding (`wit/plugin/BATCH-FORMAT.md`).
#[derive(Debug, Clone, Default)]
pub struct RowFrame {
    bytes: Vec<u8>,
    width: usize,
}

impl RowFrame {
    /// No rows: the query is done.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The rows, their text and bytes borrowed from the frame.
    ///
    /// # Errors
    /// [`SqlError::Statement`] for a frame that is not whole rows of parameters (a worker
    /// bug), naming the byte or the count.
    pub fn rows(&self) -> Result<Rows<'_>, SqlError> {
        let cells = params::decode(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(SqlError::Statement)?;
        let whole_rows = match self.width {
            0 => cells.is_empty(),
            width => cells.len().is_multiple_of(width),
        };
        if !whole_rows {
            return Err(SqlError::Statement(format!(
                "a cursor sent {} values, not whole rows of {}",
                cells.len(),
                self.width
            )));
        }
        Ok(Rows {
            cells,
            width: self.width.max(1),
        })
    }
}

/// The rows of a [`RowFrame`].
#[derive(Debug, Clone)]
pub struct Rows<'a> {
    cells: Vec<SqlParam<'a>>,
    width: usize,
}

impl<'a> Rows<'a> {
    pub fn len(&self) -> usize {
        self.cells.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Each row's values, in column order.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, SqlParam<'a>> {
        self.cells.chunks_exact(self.width)
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{Column, Dialect, RowSet, SqlError, SqlParam, SqlValue, params};
    use crate::__guest::wasmconnect::plugin::sql as wit;

    pub fn connect() -> Result<Connection, SqlError> {
        wit::connect().map(Connection).map_err(error)
    }

    fn error(e: wit::SqlError) -> SqlError {
        match e {
            wit::SqlError::Transient(m) => SqlError::Transient(m),
            wit::SqlError::Statement(m) => SqlError::Statement(m),
            wit::SqlError::Denied(m) => SqlError::Denied(m),
        }
    }

    fn to_wit(v: &SqlValue) -> wit::SqlValue {
        match v {
            SqlValue::Null => wit::SqlValue::Null,
            SqlValue::Boolean(b) => wit::SqlValue::Boolean(*b),
            SqlValue::Int(i) => wit::SqlValue::Int(*i),
            SqlValue::Uint(u) => wit::SqlValue::Uint(*u),
            SqlValue::Double(f) => wit::SqlValue::Double(*f),
            SqlValue::Text(s) => wit::SqlValue::Text(s.clone()),
            SqlValue::Bytes(b) => wit::SqlValue::Bytes(b.clone()),
            SqlValue::Decimal(s) => wit::SqlValue::Decimal(s.clone()),
            SqlValue::Date(d) => wit::SqlValue::Date(*d),
            SqlValue::Time(t) => wit::SqlValue::Time(*t),
            SqlValue::Timestamp(t) => wit::SqlValue::Timestamp(*t),
        }
    }

    fn from_wit(v: wit::SqlValue) -> SqlValue {
        match v {
            wit::SqlValue::Null => SqlValue::Null,
            wit::SqlValue::Boolean(b) => SqlValue::Boolean(b),
            wit::SqlValue::Int(i) => SqlValue::Int(i),
            wit::SqlValue::Uint(u) => SqlValue::Uint(u),
            wit::SqlValue::Double(f) => SqlValue::Double(f),
            wit::SqlValue::Text(s) => SqlValue::Text(s),
            wit::SqlValue::Bytes(b) => SqlValue::Bytes(b),
            wit::SqlValue::Decimal(s) => SqlValue::Decimal(s),
            wit::SqlValue::Date(d) => SqlValue::Date(d),
            wit::SqlValue::Time(t) => SqlValue::Time(t),
            wit::SqlValue::Timestamp(t) => SqlValue::Timestamp(t),
        }
    }

    fn params<'a>(p: impl IntoIterator<Item = &'a SqlValue>) -> Vec<wit::SqlValue> {
        p.into_iter().map(to_wit).collect()
    }

    fn rows(rows: Vec<Vec<wit::SqlValue>>) -> Vec<Vec<SqlValue>> {
        rows.into_iter()
            .map(|r| r.into_iter().map(from_wit).collect())
            .collect()
    }

    fn columns(c: Vec<wit::Column>) -> Vec<Column> {
        c.into_iter()
            .map(|c| Column {
                name: c.name,
                type_name: c.type_name,
            })
            .collect()
    }

    #[derive(Debug)]
    pub struct Connection(wit::Connection);

    impl Connection {
        pub fn dialect(&self) -> Dialect {
            match self.0.dialect() {
                wit::Dialect::Mysql => Dialect::MySql,
                wit::Dialect::Mariadb => Dialect::MariaDb,
                wit::Dialect::Postgres => Dialect::Postgres,
                wit::Dialect::Sqlite => Dialect::Sqlite,
            }
        }

        pub fn execute_each<'p, P: Into<SqlParam<'p>>>(
            &self,
            statement: &str,
            p: impl IntoIterator<Item = P>,
        ) -> Result<u64, SqlError> {
            self.0
                .execute_encoded(statement, &params::encode(p))
                .map_err(error)
        }

        pub fn submit_each<'p, P: Into<SqlParam<'p>>>(
            &self,
            statement: &str,
            p: impl IntoIterator<Item = P>,
        ) -> Result<Submitted, SqlError> {
            self.0
                .submit_encoded(statement, &params::encode(p))
                .map(Submitted)
                .map_err(error)
        }

        pub fn submit_begin(&self) -> Result<Submitted, SqlError> {
            self.0.submit_begin().map(Submitted).map_err(error)
        }

        pub fn submit_commit(&self) -> Result<Submitted, SqlError> {
            self.0.submit_commit().map(Submitted).map_err(error)
        }

        pub fn query(&self, statement: &str, p: &[SqlValue]) -> Result<RowSet, SqlError> {
            let set = self.0.query(statement, &params(p)).map_err(error)?;
            Ok(RowSet {
                columns: columns(set.columns),
                rows: rows(set.rows),
            })
        }

        pub fn begin(&self) -> Result<(), SqlError> {
            self.0.begin().map_err(error)
        }

        pub fn commit(&self) -> Result<(), SqlError> {
            self.0.commit().map_err(error)
        }

        pub fn rollback(&self) -> Result<(), SqlError> {
            self.0.rollback().map_err(error)
        }

        pub fn open_cursor(&self, statement: &str, p: &[SqlValue]) -> Result<Cursor, SqlError> {
            self.0
                .open_cursor(statement, &params(p))
                .map(Cursor)
                .map_err(error)
        }
    }

    #[derive(Debug)]
    pub struct Submitted(wit::PendingExecute);

    impl Submitted {
        pub fn rows_affected(self) -> Result<u64, SqlError> {
            self.0.rows_affected().map_err(error)
        }
    }

    #[derive(Debug)]
    pub struct Cursor(wit::Cursor);

    impl Cursor {
        pub fn columns(&self) -> Vec<Column> {
            columns(self.0.columns())
        }

        pub fn next_encoded(&mut self, max_rows: u32) -> Result<Vec<u8>, SqlError> {
            self.0.next_encoded(max_rows).map_err(error)
        }
    }
}

/// Outside the worker there is no database: `connect` is denied, so a connection never
/// exists.
#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{Column, Dialect, RowSet, SqlError, SqlParam, SqlValue};

    #[derive(Debug)]
    pub enum Never {}

    pub fn connect() -> Result<Connection, SqlError> {
        Err(SqlError::Denied(
            "the sql capability exists only inside the wasmconnect worker".into(),
        ))
    }

    #[derive(Debug)]
    pub struct Connection(Never);

    impl Connection {
        pub fn dialect(&self) -> Dialect {
            match self.0 {}
        }
        pub fn execute_each<'p, P: Into<SqlParam<'p>>>(
            &self,
            _: &str,
            _: impl IntoIterator<Item = P>,
        ) -> Result<u64, SqlError> {
            match self.0 {}
        }
        pub fn submit_each<'p, P: Into<SqlParam<'p>>>(
            &self,
            _: &str,
            _: impl IntoIterator<Item = P>,
        ) -> Result<Submitted, SqlError> {
            match self.0 {}
        }
        pub fn submit_begin(&self) -> Result<Submitted, SqlError> {
            match self.0 {}
        }
        pub fn submit_commit(&self) -> Result<Submitted, SqlError> {
            match self.0 {}
        }
        pub fn query(&self, _: &str, _: &[SqlValue]) -> Result<RowSet, SqlError> {
            match self.0 {}
        }
        pub fn begin(&self) -> Result<(), SqlError> {
            match self.0 {}
        }
        pub fn commit(&self) -> Result<(), SqlError> {
            match self.0 {}
        }
        pub fn rollback(&self) -> Result<(), SqlError> {
            match self.0 {}
        }
        pub fn open_cursor(&self, _: &str, _: &[SqlValue]) -> Result<Cursor, SqlError> {
            match self.0 {}
        }
    }

    #[derive(Debug)]
    pub struct Submitted(Never);

    impl Submitted {
        pub fn rows_affected(self) -> Result<u64, SqlError> {
            match self.0 {}
        }
    }

    #[derive(Debug)]
    pub struct Cursor(Never);

    impl Cursor {
        pub fn columns(&self) -> Vec<Column> {
            match self.0 {}
        }
        pub fn next_encoded(&mut self, _: u32) -> Result<Vec<u8>, SqlError> {
            match self.0 {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_frame_reads_whole_rows_borrowing_their_text() {
        let cells = [
            SqlValue::Int(1),
            SqlValue::Text("a".into()),
            SqlValue::Int(2),
            SqlValue::Null,
        ];
        let frame = RowFrame {
            bytes: params::encode(&cells),
            width: 2,
        };
        let rows = frame.rows().expect("whole rows");
        assert_eq!(rows.len(), 2);
        let read: Vec<&[SqlParam<'_>]> = rows.iter().collect();
        assert!(matches!(
            read[0],
            [
                SqlParam::Int(1),
                SqlParam::Text(std::borrow::Cow::Borrowed("a"))
            ]
        ));
        assert_eq!(read[1], [SqlParam::Int(2), SqlParam::Null]);

        let cut = RowFrame {
            bytes: params::encode(&cells[..3]),
            width: 2,
        };
        let err = cut.rows().expect_err("not whole rows");
        assert_eq!(
            err,
            SqlError::Statement("a cursor sent 3 values, not whole rows of 2".into())
        );
        assert!(RowFrame::default().rows().expect("none").is_empty());
    }
}
