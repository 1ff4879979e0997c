//! `JdbcSinkConnector`: writes records into MySQL, MariaDB, PostgreSQL or SQLite tables
//! with Confluent's JDBC sink keys and semantics, through the worker's `sql` capability.
//!
//! Each `put` is one transaction. Consecutive records for the same table with the same
//! columns go out as one multi-row statement (up to `batch.size` rows, and at most a part
//! of 1000 records: the database runs one part's statements while the sink builds the
//! next), so order is kept exactly: a delete followed by an insert of the same key leaves
//! the row present. `put` submits the batch's COMMIT too and returns; the next `put` or
//! `flush` waits for it (`settle`), so the database writes one batch while the
//! worker prepares the next. A transient database error rolls the batch back and it is
//! written again (`max.retries` times, `retry.backoff.ms` apart). A record the database
//! rejects is reported as failed on its own (through `errant-records` when its `put` has
//! returned); the rest of the batch is written.

mod config;
pub mod dialect;
mod row;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use wasmconnect_sdk::prelude::*;
use wasmconnect_sdk::sql::{self, Connection, SqlError, SqlValue, Submitted};

use config::InsertMode;
pub use config::{JdbcSinkConfig, Settings};
use dialect::{ColumnSpec, DbColumn, Sql, TableId};
use row::{Cell, Change};

/// A table as the database has it.
#[derive(Debug, Clone)]
struct TableInfo {
    columns: Vec<DbColumn>,
    view: bool,
}

impl TableInfo {
    /// The table's column for `name`: exact match first, then case-insensitive.
    fn column(&self, name: &str) -> Option<&DbColumn> {
        self.columns.iter().find(|c| c.name == name).or_else(|| {
            self.columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
        })
    }
}

/// Why a write failed.
#[derive(Debug)]
enum WriteError {
    /// Retry the batch.
    Transient(String),
    /// The database rejected a statement: find the record with the per-record path.
    Statement(String),
    /// Creating or altering a table failed, or the table cannot take the records.
    Schema(String),
}

impl From<SqlError> for WriteError {
    fn from(e: SqlError) -> WriteError {
        match e {
            SqlError::Transient(m) => WriteError::Transient(m),
            SqlError::Statement(m) => WriteError::Statement(m),
            SqlError::Denied(m) => WriteError::Schema(m),
        }
    }
}

#[derive(Debug)]
pub struct JdbcSink {
    /// Shared, so a batch's changes can borrow names from it while the sink changes.
    settings: Rc<Settings>,
    db: Option<Connection>,
    sql: Option<Sql>,
    tables: BTreeMap<TableId, TableInfo>,
    retries_left: u32,
    /// Multi-row INSERT texts already built: a batch mostly repeats the last one's.
    inserts: RefCell<HashMap<InsertShape, Rc<str>>>,
    /// The last batch `put` accepted, until it is known to be written.
    in_flight: Option<InFlight>,
}

/// A batch accepted by `put` and not yet known to be written.
#[derive(Debug)]
struct InFlight {
    records: Vec<Record>,
    state: Flight,
}

#[derive(Debug)]
enum Flight {
    /// Its BEGIN, statements and COMMIT are submitted: their results, the COMMIT's last.
    Submitted(Vec<Submitted>),
    /// A transient failure rolled it back: it is written again before anything else.
    Again,
}

impl InFlight {
    /// Waits for it to be written; a batch to write again fails as transient.
    fn wait(&mut self) -> Result<(), WriteError> {
        match std::mem::replace(&mut self.state, Flight::Again) {
            Flight::Submitted(submitted) => finish(submitted),
            Flight::Again => Err(WriteError::Transient(
                "an earlier attempt to write it failed".into(),
            )),
        }
    }
}

/// How [`JdbcSink::write_batch`] runs a batch's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Begins, then reads every result and commits: the batch is written when it returns.
    Now,
    /// Submits the BEGIN behind whatever was submitted before (the last batch) and the
    /// statements after it, and returns their results with the transaction open: the
    /// caller submits the COMMIT.
    Later,
}

/// What an INSERT's text depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InsertShape {
    table: TableId,
    columns: Vec<String>,
    key_count: usize,
    rows: usize,
    upsert: bool,
}

/// Statement texts kept at most; past it the cache starts over.
const MAX_CACHED_INSERTS: usize = 64;

/// Records turned into rows and submitted at a time: the plugin works on the next part
/// while the database runs the statements of this one. Each part is at least one statement
/// on the connection's chain, so a part of a whole batch of 1000 (one statement, as the
/// native loop writes) beat four of 250 by a fifth of the sink's rate on MariaDB, where the
/// next batch's statements are already queued behind this one's COMMIT
/// (docs/measurements.md, stop 29).
const PART: usize = 1000;

/// Consecutive changes that share one statement.
struct Run<'a> {
    table: Rc<TableId>,
    changes: Vec<(usize, &'a Change<'a>)>,
}

/// A batch in the making: its records, turned into changes a part at a time.
struct Batch<'a> {
    records: &'a [Record],
    settings: &'a Settings,
    changes: Vec<(usize, Rc<TableId>, Change<'a>)>,
    /// Records that cannot become rows, or that the database rejected.
    failures: Vec<RecordFailure>,
    /// Records looked at so far.
    converted: usize,
    /// The last record's topic and its table: the records of a batch mostly share one.
    last: Option<(&'a Arc<str>, Rc<TableId>)>,
}

impl<'a> Batch<'a> {
    fn new(records: &'a [Record], settings: &'a Settings) -> Batch<'a> {
        Batch {
            records,
            settings,
            changes: Vec::with_capacity(records.len()),
            failures: Vec::new(),
            converted: 0,
            last: None,
        }
    }

    /// Turns the next [`PART`] records into changes; false when none are left.
    fn convert_part(&mut self) -> bool {
        let from = self.converted;
        let to = (from + PART).min(self.records.len());
        for (index, record) in self.records.iter().enumerate().take(to).skip(from) {
            // The frame reader shares one `Arc` among a run of records of the same topic,
            // so the address settles most comparisons without reading the name.
            let table = match &self.last {
                Some((topic, table))
                    if Arc::ptr_eq(topic, &record.topic) || **topic == record.topic =>
                {
                    table.clone()
                }
                _ => {
                    let table = Rc::new(TableId::from_format(
                        &self.settings.table_name_format,
                        &record.topic,
                    ));
                    self.last = Some((&record.topic, table.clone()));
                    table
                }
            };
            match row::change_of(record, self.settings) {
                Ok(change) => self.changes.push((index, table, change)),
                Err(message) => self.failures.push(RecordFailure {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    message,
                }),
            }
        }
        self.converted = to;
        to > from
    }
}

/// The changes whose table or columns differ from the change before: consecutive records
/// mostly share both, so those are compared, not looked up.
fn shape_changes<'c, 'a>(
    changes: &'c [(usize, Rc<TableId>, Change<'a>)],
) -> impl Iterator<Item = (&'c TableId, &'c Change<'a>)> {
    let mut previous: Option<(&TableId, &Change<'_>)> = None;
    changes.iter().filter_map(move |(_, table, change)| {
        let repeated = previous.is_some_and(|(t, c)| t == &**table && c.same_shape(change));
        previous = Some((&**table, change));
        (!repeated).then_some((&**table, change))
    })
}

/// Waits for submitted statements in order: the first failure is the batch's.
fn wait_for(submitted: Vec<Submitted>) -> Result<(), WriteError> {
    for statement in submitted {
        statement.rows_affected()?;
    }
    Ok(())
}

/// Waits for a batch's submitted BEGIN, statements and COMMIT. The COMMIT's result is read
/// first: once it has run, reading a statement's error can no longer let it commit (the
/// host refuses a COMMIT behind an unread failure). A rejected statement is the batch's
/// error even though the COMMIT's refusal comes first.
fn finish(mut submitted: Vec<Submitted>) -> Result<(), WriteError> {
    let committed = submitted.pop().map_or(Ok(0), Submitted::rows_affected);
    wait_for(submitted)?;
    committed?;
    Ok(())
}

impl JdbcSink {
    /// The connection, opened on first use with `connection.attempts` tries.
    fn connection(&mut self) -> Result<(&Connection, Sql), PluginError> {
        if self.db.is_none() {
            let db = sql::connect_with_attempts(
                self.settings.connection_attempts,
                self.settings.connection_backoff_ms,
            )?;
            self.sql = Some(Sql {
                dialect: db.dialect(),
                quote: self.settings.quote,
            });
            self.db = Some(db);
        }
        match (&self.db, self.sql) {
            (Some(db), Some(sql)) => Ok((db, sql)),
            _ => Err(PluginError::fatal("no database connection")),
        }
    }

    fn describe(db: &Connection, sql: Sql, table: &TableId) -> Result<Option<TableInfo>, SqlError> {
        let params = [
            table.schema.clone().map_or(SqlValue::Null, SqlValue::Text),
            SqlValue::Text(table.name.clone()),
        ];
        let rows = db.query(sql.columns_query(), &params)?;
        if rows.rows.is_empty() {
            return Ok(None);
        }
        let view = db
            .query(sql.view_query(), &params)?
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .unwrap_or(0)
            > 0;
        let postgres = sql.dialect == sql::Dialect::Postgres;
        Ok(Some(TableInfo {
            columns: rows
                .rows
                .into_iter()
                .filter_map(|r| {
                    let mut r = r.into_iter();
                    let name = r.next()?.as_str()?.to_owned();
                    let cast = r.next().and_then(|t| t.as_str().map(str::to_owned));
                    Some(DbColumn {
                        name,
                        cast: if postgres { cast } else { None },
                    })
                })
                .collect(),
            view,
        }))
    }

    /// Makes sure `table` exists with every column of `cells`, creating or altering it
    /// when allowed.
    fn ensure_table(&mut self, table: &TableId, cells: &[Cell<'_>]) -> Result<(), WriteError> {
        self.connection()
            .map_err(|e| WriteError::Transient(e.message().to_owned()))?;
        let (Some(db), Some(sql)) = (self.db.as_ref(), self.sql) else {
            return Err(WriteError::Transient("no database connection".into()));
        };
        if let Some(info) = self.tables.get(table)
            && cells.iter().all(|c| info.column(c.spec.name).is_some())
        {
            return Ok(());
        }
        let info = match JdbcSink::describe(db, sql, table)? {
            Some(info) => info,
            None if self.settings.auto_create => {
                let specs: Vec<ColumnSpec> = cells.iter().map(|c| c.spec.column()).collect();
                let create = sql
                    .create_table(table, &specs)
                    .map_err(WriteError::Schema)?;
                wasmconnect_sdk::info!("Creating table {table}: {create}");
                if let Err(e) = db.execute(&create, &[]) {
                    // Another task may have created it meanwhile.
                    if JdbcSink::describe(db, sql, table)?.is_none() {
                        return Err(WriteError::Schema(format!(
                            "cannot create table {table}: {e}"
                        )));
                    }
                }
                JdbcSink::describe(db, sql, table)?.ok_or_else(|| {
                    WriteError::Schema(format!("table {table} is missing after CREATE TABLE"))
                })?
            }
            None => {
                return Err(WriteError::Schema(format!(
                    "Table {table} is missing and auto-creation is disabled (auto.create=false)"
                )));
            }
        };
        if info.view && !self.settings.allow_views {
            return Err(WriteError::Schema(format!(
                "{table} is a view; add VIEW to table.types to write to it"
            )));
        }
        let missing: Vec<ColumnSpec> = cells
            .iter()
            .filter(|c| info.column(c.spec.name).is_none())
            .map(|c| c.spec.column())
            .collect();
        if missing.is_empty() {
            self.tables.insert(table.clone(), info);
            return Ok(());
        }
        let names: Vec<&str> = missing.iter().map(|c| c.name.as_str()).collect();
        if !self.settings.auto_evolve || info.view {
            return Err(WriteError::Schema(format!(
                "Table {table} is missing fields {names:?} and auto-evolution is disabled (auto.evolve=false, or a view)"
            )));
        }
        if let Some(c) = missing.iter().find(|c| !c.optional && c.default.is_none()) {
            return Err(WriteError::Schema(format!(
                "Cannot ALTER TABLE {table} to add missing field {:?}, as the field is not optional and does not have a default value",
                c.name
            )));
        }
        for alter in sql
            .add_columns(table, &missing)
            .map_err(WriteError::Schema)?
        {
            wasmconnect_sdk::info!("Amending table {table}: {alter}");
            db.execute(&alter, &[])
                .map_err(|e| WriteError::Schema(format!("cannot alter table {table}: {e}")))?;
        }
        let info = JdbcSink::describe(db, sql, table)?
            .ok_or_else(|| WriteError::Schema(format!("table {table} vanished")))?;
        self.tables.insert(table.clone(), info);
        Ok(())
    }

    /// Writes one run and waits for it.
    fn write_run(&self, run: &Run<'_>) -> Result<(), WriteError> {
        let mut submitted = Vec::new();
        self.submit_run(run, &mut submitted)?;
        wait_for(submitted)
    }

    /// Submits one run's statements to `out`: a multi-row statement per `batch.size` rows
    /// (one statement per row for `update`).
    fn submit_run(&self, run: &Run<'_>, out: &mut Vec<Submitted>) -> Result<(), WriteError> {
        let (Some(db), Some(sql)) = (&self.db, self.sql) else {
            return Err(WriteError::Transient("no database connection".into()));
        };
        let info = self
            .tables
            .get(&run.table)
            .ok_or_else(|| WriteError::Schema(format!("no metadata for {}", run.table)))?;
        let Some((_, first)) = run.changes.first() else {
            return Ok(());
        };
        let columns: Vec<&DbColumn> = first
            .cells()
            .iter()
            .map(|c| {
                info.column(c.spec.name).ok_or_else(|| {
                    WriteError::Schema(format!(
                        "table {} has no column {:?}",
                        run.table, c.spec.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let per_statement = self
            .settings
            .batch_size
            .min(sql.max_params() / columns.len().max(1))
            .max(1);
        match first {
            Change::Delete { .. } => {
                for chunk in run.changes.chunks(per_statement) {
                    let statement = sql
                        .delete(&run.table, &columns, chunk.len())
                        .map_err(WriteError::Schema)?;
                    let params = chunk
                        .iter()
                        .flat_map(|(_, c)| c.cells().iter().map(|cell| &cell.value));
                    out.push(db.submit_each(&statement, params)?);
                }
            }
            Change::Write { key_count, .. } => {
                let key_count = *key_count;
                if self.settings.insert_mode == InsertMode::Update {
                    let statement = sql
                        .update(&run.table, &columns[..key_count], &columns[key_count..])
                        .map_err(WriteError::Schema)?;
                    for (_, change) in &run.changes {
                        let (keys, rest) = change.cells().split_at(key_count);
                        let params = rest.iter().chain(keys).map(|c| &c.value);
                        out.push(db.submit_each(&statement, params)?);
                    }
                    return Ok(());
                }
                let upsert = self.settings.insert_mode == InsertMode::Upsert;
                // One statement cannot touch a key twice (PostgreSQL refuses it): the last
                // write of a key wins, as it would row by row.
                let mut rows: Vec<&[Cell<'_>]> =
                    run.changes.iter().map(|(_, c)| c.cells()).collect();
                if upsert && key_count > 0 {
                    let mut seen: HashSet<row::KeyValues<'_>, row::KeyHash> =
                        HashSet::with_capacity_and_hasher(rows.len(), row::KeyHash::default());
                    let mut kept: Vec<&[Cell<'_>]> = rows
                        .into_iter()
                        .rev()
                        .filter(|cells| seen.insert(row::KeyValues(&cells[..key_count])))
                        .collect();
                    kept.reverse();
                    rows = kept;
                }
                for chunk in rows.chunks(per_statement) {
                    let statement = self.insert_statement(
                        sql,
                        &run.table,
                        &columns,
                        key_count,
                        chunk.len(),
                        upsert,
                    )?;
                    let params = chunk
                        .iter()
                        .flat_map(|cells| cells.iter().map(|c| &c.value));
                    out.push(db.submit_each(&statement, params)?);
                }
            }
        }
        Ok(())
    }

    /// The text of a multi-row INSERT, built once per shape.
    fn insert_statement(
        &self,
        sql: Sql,
        table: &TableId,
        columns: &[&DbColumn],
        key_count: usize,
        rows: usize,
        upsert: bool,
    ) -> Result<Rc<str>, WriteError> {
        let shape = InsertShape {
            table: table.clone(),
            columns: columns.iter().map(|c| c.name.clone()).collect(),
            key_count,
            rows,
            upsert,
        };
        if let Some(text) = self.inserts.borrow().get(&shape) {
            return Ok(text.clone());
        }
        let text: Rc<str> = sql
            .insert(table, columns, key_count, rows, upsert)
            .map_err(WriteError::Schema)?
            .into();
        let mut inserts = self.inserts.borrow_mut();
        if inserts.len() >= MAX_CACHED_INSERTS {
            inserts.clear();
        }
        inserts.insert(shape, text.clone());
        Ok(text)
    }

    /// Groups changes into runs of the same table, kind and columns, in order.
    fn runs<'a>(&self, changes: &'a [(usize, Rc<TableId>, Change<'a>)]) -> Vec<Run<'a>> {
        let mut runs: Vec<Run<'a>> = Vec::new();
        for (index, table, change) in changes {
            let same = runs.last().is_some_and(|run| {
                run.table == *table
                    && run
                        .changes
                        .first()
                        .is_some_and(|(_, c)| c.same_shape(change))
            });
            if same {
                if let Some(run) = runs.last_mut() {
                    run.changes.push((*index, change));
                }
            } else {
                runs.push(Run {
                    table: table.clone(),
                    changes: vec![(*index, change)],
                });
            }
        }
        runs
    }

    /// Writes a batch as one transaction, a part at a time: each part's records become
    /// rows and their statements are submitted, so the database runs one part while the
    /// plugin works on the next. A part that needs a table created, altered or looked up
    /// first rolls back what was submitted (MySQL would commit it on DDL) and the
    /// transaction starts over after it. Changes the batch already holds go first. With
    /// [`Commit::Later`] returns the BEGIN's and the statements' results, the transaction
    /// left open (none when nothing was written); with [`Commit::Now`] nothing is left.
    fn write_batch(
        &mut self,
        batch: &mut Batch<'_>,
        commit: Commit,
    ) -> Result<Vec<Submitted>, WriteError> {
        let mut submitted = Vec::new();
        // `changes[..checked]` have their tables in place; `changes[..written]` are
        // submitted in the open transaction.
        let mut checked = 0;
        let mut written = 0;
        let mut open = false;
        let result = loop {
            if checked == batch.changes.len() && !batch.convert_part() {
                break Ok(());
            }
            let from = checked;
            checked = batch.changes.len();
            if !self.tables_known(&batch.changes[from..]) {
                if open {
                    submitted.clear();
                    open = false;
                    written = 0;
                    self.rollback();
                }
                if let Err(e) = self.ensure_tables(&batch.changes[from..]) {
                    break Err(e);
                }
            }
            if batch.changes.len() == written {
                continue;
            }
            if !open {
                let Some(db) = &self.db else {
                    break Err(WriteError::Transient("no database connection".into()));
                };
                let begun = match commit {
                    Commit::Now => db.begin(),
                    Commit::Later => db.submit_begin().map(|begin| submitted.push(begin)),
                };
                if let Err(e) = begun {
                    break Err(e.into());
                }
                open = true;
            }
            let step = self
                .runs(&batch.changes[written..])
                .iter()
                .try_for_each(|run| self.submit_run(run, &mut submitted));
            written = batch.changes.len();
            if let Err(e) = step {
                break Err(e);
            }
        };
        if !open {
            return result.map(|()| Vec::new());
        }
        let Some(db) = &self.db else {
            return Err(WriteError::Transient("no database connection".into()));
        };
        let result = result.and_then(|()| match commit {
            Commit::Now => {
                wait_for(std::mem::take(&mut submitted))?;
                db.commit()?;
                Ok(Vec::new())
            }
            Commit::Later => Ok(std::mem::take(&mut submitted)),
        });
        if result.is_err() {
            drop(submitted);
            self.rollback();
        }
        result
    }

    /// Writes a batch and waits for it: one transaction, or, when the database rejects a
    /// statement, record by record. Returns the records the database rejected; those that
    /// cannot become rows stay in the batch's `failures`.
    fn write_now(&mut self, batch: &mut Batch<'_>) -> Result<Vec<RecordFailure>, WriteError> {
        match self.write_batch(batch, Commit::Now) {
            Ok(_) => Ok(Vec::new()),
            Err(WriteError::Statement(m)) => self.write_rejecting(batch, "A batch statement", &m),
            Err(e) => Err(e),
        }
    }

    /// After `failed` (what) was rejected with `message`: writes every record of the batch
    /// on its own ([`JdbcSink::write_one_by_one`]), its tables checked first: a transient
    /// failure since they were may have dropped what the sink knew of them.
    fn write_rejecting(
        &mut self,
        batch: &mut Batch<'_>,
        failed: &str,
        message: &str,
    ) -> Result<Vec<RecordFailure>, WriteError> {
        wasmconnect_sdk::warn!("{failed} failed ({message}); writing its records one by one.");
        while batch.convert_part() {}
        self.ensure_tables(&batch.changes)?;
        self.write_one_by_one(&batch.changes)
    }

    /// Waits for the batch in flight, if any, and writes it again if it failed
    /// ([`JdbcSink::recover`]).
    fn settle(&mut self) -> Result<(), PluginError> {
        let Some(mut flight) = self.in_flight.take() else {
            return Ok(());
        };
        match flight.wait() {
            Ok(()) => {
                self.retries_left = self.settings.max_retries;
                Ok(())
            }
            Err(e) => self.recover(flight.records, e),
        }
    }

    /// Writes a batch that failed after its `put` returned. After a rejected statement,
    /// record by record, reporting the records the database rejects (`errant-records`);
    /// after a transient failure, whole: in this call, and in every later one until it is
    /// written or `max.retries` runs out. Its records that could not become rows were
    /// returned by its `put`, so only the database's rejections are reported.
    fn recover(&mut self, records: Vec<Record>, failed: WriteError) -> Result<(), PluginError> {
        let settings = Rc::clone(&self.settings);
        let mut batch = Batch::new(&records, &settings);
        let written = match failed {
            WriteError::Statement(m) => {
                self.write_rejecting(&mut batch, "A statement of the last batch", &m)
            }
            WriteError::Transient(m) => {
                wasmconnect_sdk::warn!("The last batch was not written ({m}); writing it again.");
                self.write_now(&mut batch)
            }
            WriteError::Schema(m) => Err(WriteError::Schema(m)),
        };
        match written {
            Ok(rejected) => {
                self.retries_left = self.settings.max_retries;
                for failure in rejected {
                    wasmconnect_sdk::errant::report_previous(failure.index, &failure.message)
                        .map_err(PluginError::fatal)?;
                }
                Ok(())
            }
            Err(WriteError::Transient(m)) => {
                drop(batch);
                self.in_flight = Some(InFlight {
                    records,
                    state: Flight::Again,
                });
                Err(self.retry_or_fail(m))
            }
            Err(e) => Err(self.plugin_error(e)),
        }
    }

    /// Submits a batch behind the one in flight ([`Commit::Later`]). If that fails, this
    /// batch's transaction is already rolled back: the one in flight is settled, then this
    /// batch is written record by record after a rejected statement (its rejections
    /// joining its `failures`), and any other failure returned.
    fn submit_batch(&mut self, batch: &mut Batch<'_>) -> Result<Vec<Submitted>, PluginError> {
        let failed = match self.write_batch(batch, Commit::Later) {
            Ok(submitted) => return Ok(submitted),
            Err(e) => e,
        };
        self.settle()?;
        match failed {
            WriteError::Statement(m) => {
                let rejected = self
                    .write_rejecting(batch, "A batch statement", &m)
                    .map_err(|e| self.plugin_error(e))?;
                batch.failures.extend(rejected);
                Ok(Vec::new())
            }
            e => Err(self.plugin_error(e)),
        }
    }

    /// Rolls the open transaction back; a failure only leaves it to the pool to end.
    fn rollback(&self) {
        if let Some(db) = &self.db
            && let Err(e) = db.rollback()
        {
            wasmconnect_sdk::warn!("Rollback failed: {e}");
        }
    }

    /// Whether every table of `changes` is known to have their columns, without asking
    /// the database.
    fn tables_known(&self, changes: &[(usize, Rc<TableId>, Change<'_>)]) -> bool {
        shape_changes(changes).all(|(table, change)| {
            self.tables.get(table).is_some_and(|info| {
                change
                    .cells()
                    .iter()
                    .all(|c| info.column(c.spec.name).is_some())
            })
        })
    }

    /// Makes sure every table of `changes` exists with their columns. DDL: never inside
    /// the batch's transaction.
    fn ensure_tables(
        &mut self,
        changes: &[(usize, Rc<TableId>, Change<'_>)],
    ) -> Result<(), WriteError> {
        let mut checked: HashSet<(&TableId, Vec<&str>)> = HashSet::new();
        for (table, change) in shape_changes(changes) {
            if !checked.insert((table, change.shape())) {
                continue;
            }
            match self.ensure_table(table, change.cells()) {
                Ok(()) => {}
                Err(WriteError::Statement(m)) => return Err(WriteError::Schema(m)),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn in_transaction(
        &self,
        f: impl FnOnce(&JdbcSink) -> Result<(), WriteError>,
    ) -> Result<(), WriteError> {
        let Some(db) = &self.db else {
            return Err(WriteError::Transient("no database connection".into()));
        };
        db.begin()?;
        match f(self) {
            Ok(()) => Ok(db.commit()?),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// After a rejected statement: every change alone, each under a savepoint, so the
    /// records the database rejects are reported and the others written.
    fn write_one_by_one(
        &self,
        changes: &[(usize, Rc<TableId>, Change<'_>)],
    ) -> Result<Vec<RecordFailure>, WriteError> {
        let Some(db) = &self.db else {
            return Err(WriteError::Transient("no database connection".into()));
        };
        let mut failures = Vec::new();
        self.in_transaction(|this| {
            for (index, table, change) in changes {
                let run = Run {
                    table: table.clone(),
                    changes: vec![(*index, change)],
                };
                db.execute("SAVEPOINT wasmconnect_record", &[])?;
                match this.write_run(&run) {
                    Ok(()) => {
                        db.execute("RELEASE SAVEPOINT wasmconnect_record", &[])?;
                    }
                    Err(WriteError::Statement(message)) => {
                        db.execute("ROLLBACK TO SAVEPOINT wasmconnect_record", &[])?;
                        failures.push(RecordFailure {
                            index: u32::try_from(*index).unwrap_or(u32::MAX),
                            message: format!("table {table}: {message}"),
                        });
                    }
                    Err(other) => return Err(other),
                }
            }
            Ok(())
        })?;
        Ok(failures)
    }

    /// What the worker hears of a failed write.
    fn plugin_error(&mut self, e: WriteError) -> PluginError {
        match e {
            WriteError::Transient(m) => self.retry_or_fail(m),
            WriteError::Statement(m) | WriteError::Schema(m) => PluginError::fatal(m),
        }
    }

    fn retry_or_fail(&mut self, message: String) -> PluginError {
        // The pool reconnects by itself; table metadata may be stale after a restart.
        self.tables.clear();
        if self.retries_left == 0 {
            return PluginError::fatal(format!(
                "Exceeded max.retries ({}) writing to the database: {message}",
                self.settings.max_retries
            ));
        }
        self.retries_left -= 1;
        wasmconnect_sdk::warn!(
            "Database write failed, {} retries left: {message}",
            self.retries_left
        );
        std::thread::sleep(Duration::from_millis(
            self.settings.retry_backoff_ms.min(10_000),
        ));
        PluginError::retriable(message)
    }
}

impl Sink for JdbcSink {
    type Config = JdbcSinkConfig;

    fn metadata() -> Metadata {
        Metadata::new(
            "JdbcSinkConnector",
            env!("CARGO_PKG_VERSION"),
            "Writes records into MySQL, MariaDB, PostgreSQL or SQLite tables (Confluent JDBC sink keys).",
        )
        .aliases(&["jdbc", "io.confluent.connect.jdbc.JdbcSinkConnector"])
    }

    fn validate(config: &Config) -> Vec<ConfigIssue> {
        config::validate(config)
    }

    fn open(config: JdbcSinkConfig) -> Result<Self, PluginError> {
        let settings = Settings::from_config(&config)?;
        let mut sink = JdbcSink {
            retries_left: settings.max_retries,
            settings: Rc::new(settings),
            db: None,
            sql: None,
            tables: BTreeMap::new(),
            inserts: RefCell::default(),
            in_flight: None,
        };
        // Fail fast on an unreachable database or a bad URL.
        sink.connection()?;
        Ok(sink)
    }

    /// Submits the batch as one transaction, its COMMIT included, and returns without
    /// waiting for it: the database writes it while the worker prepares the next. Its
    /// BEGIN and statements queue behind the batch before, which is waited for only then,
    /// before this batch's COMMIT is submitted: if it failed, this batch is rolled back,
    /// that one written again (`recover`), then this one submitted behind it.
    fn put(&mut self, records: Vec<Record>) -> Result<Vec<RecordFailure>, PluginError> {
        let settings = Rc::clone(&self.settings);
        let mut batch = Batch::new(&records, &settings);
        // Built while the database finishes the batch before.
        batch.convert_part();
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| matches!(f.state, Flight::Again))
        {
            self.settle()?;
        }
        let mut submitted = self.submit_batch(&mut batch)?;
        if let Some(mut flight) = self.in_flight.take() {
            match flight.wait() {
                Ok(()) => self.retries_left = self.settings.max_retries,
                Err(e) => {
                    if !submitted.is_empty() {
                        submitted.clear();
                        self.rollback();
                    }
                    self.recover(flight.records, e)?;
                    submitted = self.submit_batch(&mut batch)?;
                }
            }
        }
        let mut failures = std::mem::take(&mut batch.failures);
        failures.sort_by_key(|f| f.index);
        drop(batch);
        if !submitted.is_empty() {
            let committed = match &self.db {
                Some(db) => db.submit_commit().map_err(WriteError::from),
                None => Err(WriteError::Transient("no database connection".into())),
            };
            match committed {
                Ok(commit) => submitted.push(commit),
                Err(e) => {
                    submitted.clear();
                    self.rollback();
                    return Err(self.plugin_error(e));
                }
            }
            self.in_flight = Some(InFlight {
                records,
                state: Flight::Submitted(submitted),
            });
        }
        Ok(failures)
    }

    /// Waits for the last batch: once this returns, everything accepted is written.
    fn flush(&mut self) -> Result<(), PluginError> {
        self.settle()
    }
}

wasmconnect_sdk::export_sink!(JdbcSink);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_conflicting_keys() {
        let base = Config::new().with("connection.url", "jdbc:mysql://127.0.0.1/test");
        let issues = JdbcSink::validate(&base.clone().with("insert.mode", "upsert"));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "pk.mode");
        assert!(issues[0].message.contains("requires key field names"));
        let issues = JdbcSink::validate(&base.clone().with("delete.enabled", "true"));
        assert_eq!(issues[0].key, "delete.enabled");
        let issues = JdbcSink::validate(&base.clone().with("pk.mode", "bogus"));
        assert_eq!(issues[0].key, "pk.mode");
        let issues = JdbcSink::validate(&base.clone().with("db.timezone", "Mars/Olympus"));
        assert_eq!(issues[0].key, "db.timezone");
        assert!(JdbcSink::validate(&Config::new())[0].key == "connection.url");
        assert!(JdbcSink::validate(&base).is_empty());
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(wasmconnect_sdk::sql::parse_zone_offset("UTC"), Some(0));
        assert_eq!(
            wasmconnect_sdk::sql::parse_zone_offset("+02:00"),
            Some(7200)
        );
        assert_eq!(
            wasmconnect_sdk::sql::parse_zone_offset("-0530"),
            Some(-19_800)
        );
        assert_eq!(wasmconnect_sdk::sql::parse_zone_offset("UTC+1"), Some(3600));
        assert_eq!(
            wasmconnect_sdk::sql::parse_zone_offset("Europe/Paris"),
            None
        );
    }

    #[test]
    fn outside_the_worker_open_reports_no_database() {
        let config = JdbcSinkConfig::from_config(
            &Config::new().with("connection.url", "jdbc:mysql://127.0.0.1/test"),
        )
        .expect("config");
        let err = JdbcSink::open(config).expect_err("no capability natively");
        assert!(err.message().contains("only inside"), "{}", err.message());
    }
}
