//! Physical row operations: prepared inserts, statements with bound [`Value`]s, and
//! decoded row scans.

use std::collections::HashMap;

use super::codec::bind;
use super::sql::{renumber, sql_over_columns, version_value};
use super::TableMeta;
use super::Tx;
use crate::error::Result;
use crate::expr::Expr;
use crate::schema::ColumnDef;
use crate::types::{ColumnType, Value, Version};

/// Which `_vmax` marks a live row version in a catalog's row tables: fixed when the catalog
/// is created (`_tabula_meta` key `live_vmax`), the same for all its tables. Every condition
/// on `_vmax` is written by this type, so the two layouts cannot be mixed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `_vmax = 0` (catalogs created at format 5 or later): SQLite stores the integer 0 in
    /// no bytes, so a live row version is 8 bytes smaller than with `i64::MAX`.
    Zero,
    /// `_vmax = i64::MAX` (catalogs created before format 5, which keep it).
    Max,
}

impl Layout {
    /// `_vmax` of a live row version.
    pub(crate) fn live(self) -> i64 {
        match self {
            Layout::Zero => 0,
            Layout::Max => i64::MAX,
        }
    }

    /// The live row versions; `q` qualifies the column (`""`, or an alias and a dot).
    pub(crate) fn is_live(self, q: &str) -> String {
        format!("{q}_vmax = {}", self.live())
    }

    /// The ended row versions: the condition of the partial index on them. A query that
    /// looks ended rows up by `_vmax` must contain this exact term, or SQLite cannot use the
    /// index.
    pub(crate) fn ended(self, q: &str) -> String {
        match self {
            Layout::Zero => format!("{q}_vmax > 0"),
            Layout::Max => format!("{q}_vmax < {}", i64::MAX),
        }
    }

    /// The row versions ended at `version` (SQL: a literal or a parameter), written so that
    /// SQLite uses the partial index.
    pub(crate) fn ended_at(self, q: &str, version: &str) -> String {
        format!("{q}_vmax = {version} AND {}", self.ended(q))
    }

    /// The row versions visible in version `v` (SQL: a parameter, or a literal where the
    /// version is fixed for the object read, a snapshot's): `_vmin <= v < _vmax`, a live
    /// `_vmax` counting as past every version.
    pub(crate) fn visible_at(self, q: &str, v: &str) -> String {
        match self {
            Layout::Zero => format!("({q}_vmin <= {v} AND ({q}_vmax > {v} OR {q}_vmax = 0))"),
            Layout::Max => format!("({q}_vmin <= {v} AND {q}_vmax > {v})"),
        }
    }
}

/// One catalog file in each layout (for tests of the SQL each writes): a new one, and one
/// made as a Tabula before format 5 made it (no `live_vmax` key, format 4).
#[cfg(test)]
pub(crate) fn catalogs_of_each_layout(dir: &std::path::Path) -> Vec<(Layout, crate::Catalog)> {
    let old = dir.join("format-4.db");
    drop(crate::Catalog::open(&old).expect("a new catalog"));
    let conn = rusqlite::Connection::open(&old).expect("the catalog file");
    conn.execute_batch(
        "DELETE FROM _tabula_meta WHERE key = 'live_vmax';
         UPDATE _tabula_meta SET value = '4' WHERE key = 'format_version'",
    )
    .expect("made format 4");
    vec![
        (Layout::Zero, crate::Catalog::open(dir.join("new.db")).expect("a new catalog")),
        (Layout::Max, crate::Catalog::open(&old).expect("the format 4 catalog")),
    ]
}

/// A statement (an update or upsert by rowid), bound and run once a row: prepared once on
/// SQLite; on a server, sent with each row's values.
pub(crate) struct Inserter<'t> {
    stmt: Option<rusqlite::CachedStatement<'t>>,
    sql: String,
    tx: &'t Tx<'t>,
}

impl<'t> Tx<'t> {
    /// Prepares `sql` (a statement with positional parameters `?1`, `?2`, ...) for many rows.
    pub(crate) fn inserter(&'t self, sql: &str) -> Result<Inserter<'t>> {
        let stmt = match self.on_server() {
            true => None,
            false => Some(self.cached(sql)?),
        };
        Ok(Inserter { stmt, sql: sql.to_string(), tx: self })
    }
}

impl Inserter<'_> {
    /// Binds `params` to ?1, ?2, ... and runs the statement.
    pub(crate) fn insert<'v>(&mut self, params: impl IntoIterator<Item = &'v Value>) -> Result<()> {
        let Some(stmt) = &mut self.stmt else {
            let values: Vec<Value> = params.into_iter().cloned().collect();
            self.tx.execute(&self.sql, &values)?;
            return Ok(());
        };
        for (i, v) in params.into_iter().enumerate() {
            bind(stmt, i + 1, v).map_err(|e| self.tx.fail(e))?;
        }
        stmt.raw_execute().map_err(|e| self.tx.fail(e))?;
        Ok(())
    }
}

/// Rows appended by one statement at most (fewer when a row has many values: SQLite allows
/// 32,766 parameters a statement).
const APPEND_ROWS: usize = 32;

/// Appends rows to a table with multi-row `INSERT ... VALUES (..), (..), ...` statements,
/// [`APPEND_ROWS`] rows a statement: per row, SQLite then runs only the row's part of the
/// program, not the statement's setup (cursors on the table and its indexes, the reset).
/// Measured on 100,000 rows of three columns: 13% less time than one statement a row.
pub(crate) struct Appender<'t> {
    tx: &'t Tx<'t>,
    /// `INSERT INTO t(..) VALUES `.
    head: String,
    /// One row's tuple: `?1`..`?width` are the row's values; `?N` above `width` are the
    /// statement's shared `literals`.
    tuple: String,
    width: usize,
    literals: Vec<Value>,
    /// Rows a full statement takes.
    per_statement: usize,
    /// Values of the rows not yet written, row after row.
    pending: Vec<Value>,
    /// The prepared full statement, kept between writes.
    full: Option<rusqlite::CachedStatement<'t>>,
    first: Option<i64>,
    /// The rowid of the last row written.
    last: i64,
    /// Rows written by earlier statements.
    written: usize,
    /// For a table with a primary key: how to say which row broke it.
    key: Option<KeyCheck>,
    /// On a server: how rows are copied in.
    copy: Option<CopyRows>,
    /// On a server: the rows go into a copy kept open until [`Appender::finish`].
    streaming: bool,
    /// In a streaming append to a table with a key: the row of each key written so far,
    /// by the key's text (the table had no live row, so only this call's rows can clash).
    call_keys: Option<HashMap<String, usize>>,
}

/// How an [`Appender`] on a server writes: `COPY table(columns)`, each row its reserved
/// rowid, then its values, then `constants`.
pub(crate) struct CopyRows {
    /// The physical table.
    pub(crate) table: String,
    /// `_rowid_`, the columns of a row's values, the columns of `constants`.
    pub(crate) columns: Vec<String>,
    /// The values every row has (its version and live marker).
    pub(crate) constants: Vec<Value>,
}

/// Values an [`Appender`] on a server gathers before it copies them in: each `COPY` costs
/// round trips, and the server waits while the client gathers the next rows, so rows go in
/// tens of thousands at a time. Measured appending 100,000 rows of three columns (four
/// values with the row id): 184 ms at 8,192 values a copy, 145 ms at 65,536, 135 ms at
/// 262,144.
const COPY_VALUES: usize = 262_144;

/// Rows from which the first copy into an empty table drops its rowid index until the end
/// of the load (see `PgTx::load_without_indexes`): about where building it after the
/// rows costs less than adding the rows to it one by one (measured, appends of three
/// columns: 5,000 rows 12.1 -> 9.4 ms; 2,000 rows 5.6 -> 6.6 ms, slower).
const LOAD_WITHOUT_INDEX: usize = 5_000;

/// Rows an append on a server gathers before it opens one copy for all its rows
/// (`PgTx::copy_open`), and then at a time: the server stores rows while the next ones are
/// gathered. Only when no live row can hold one of the rows' keys (the table has no key,
/// or no live row yet): no statement can run while a copy is open, and a table with live
/// rows has each batch's keys looked up before it is copied ([`COPY_VALUES`] a batch).
const STREAM_ROWS: usize = LOAD_WITHOUT_INDEX;

/// Rows up to which an append on a server is one `INSERT` (see
/// `Appender::insert_on_server`) instead of a copy: each count of rows is a statement of
/// its own, prepared once a connection.
const INSERT_ROWS: usize = 16;

/// What an [`Appender`] of a table with a primary key needs to name the row of a duplicate
/// key (SQLite's error names only the index).
pub(crate) struct KeyCheck {
    /// The table, as the message names it.
    pub(crate) table: String,
    /// The key's column names, in key order.
    pub(crate) names: Vec<String>,
    /// The positions of the key's values among a row's values.
    pub(crate) positions: Vec<usize>,
    /// `SELECT _vmin FROM <phys> WHERE c<k1> = ?1 AND .. AND <live>`.
    pub(crate) lookup: String,
    /// On a server: a count that is 0 when the table has no live row (one at most).
    pub(crate) any_live: String,
    /// On a server: `SELECT _vmin, c<k1>, .. FROM <phys> WHERE <live> AND (c<k1>, ..) IN
    /// (SELECT * FROM unnest(?1, ..))`, the live rows of many keys at once (arrays of each
    /// key column's values).
    pub(crate) lookup_many: Option<String>,
    /// The key columns' types, in key order.
    pub(crate) types: Vec<ColumnType>,
    /// The version being written (a live row of it was written by this call).
    pub(crate) version: i64,
}

/// The error for rows `earlier` and `index` of an insert into `table` that have the same
/// key (`shown`).
fn same_key(table: &str, earlier: usize, index: usize, shown: &str) -> crate::error::Error {
    crate::error::err!(
        DuplicateKey,
        "rows {earlier} and {index} of the insert into '{table}' have the same primary key {shown}; give each row its own key, or use Table::upsert to keep the last"
    )
}

/// A key in words: `sku = "A-1"`, or `(region, id) = ("eu", 7)`.
pub(crate) fn show_key(names: &[String], values: &[&Value]) -> String {
    let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    match (names, values.as_slice()) {
        ([one], [value]) => format!("{one} = {value}"),
        _ => format!("({}) = ({})", names.join(", "), values.join(", ")),
    }
}

impl<'t> Tx<'t> {
    /// An appender of rows shaped by `tuple` (see [`Appender`]) to `head`.
    pub(crate) fn appender(&'t self, head: String, tuple: String, width: usize, literals: Vec<Value>) -> Appender<'t> {
        let per_statement = (32_000 / (width + 1).max(literals.len() + 1)).clamp(1, APPEND_ROWS);
        Appender {
            tx: self,
            head,
            tuple,
            width,
            literals,
            per_statement,
            pending: Vec::new(),
            full: None,
            first: None,
            last: 0,
            written: 0,
            key: None,
            copy: None,
            streaming: false,
            call_keys: None,
        }
    }
}

impl<'t> Appender<'t> {
    /// Makes this appender write on a server with `COPY` (see [`CopyRows`]).
    pub(crate) fn copy_on_server(&mut self, copy: CopyRows) {
        self.copy = Some(copy);
        self.per_statement = STREAM_ROWS;
    }

    /// Names the row and key of a duplicate primary key when a write breaks it.
    pub(crate) fn check_key(&mut self, key: KeyCheck) {
        self.key = Some(key);
    }

    /// The error for the pending rows, one of which broke the primary key: the first whose
    /// key an earlier row of this call or a live row already has.
    fn duplicate_key(&self) -> Result<crate::error::Error> {
        match (self.find_duplicate()?, &self.key) {
            (Some(e), _) => Ok(e),
            (None, Some(key)) => {
                Ok(crate::error::err!(DuplicateKey, "an insert into '{}' broke its primary key", key.table))
            }
            (None, None) => Err(crate::error::err!(DuplicateKey, "an insert gave two live rows the same primary key")),
        }
    }

    /// The error for the first pending row whose key an earlier row of this call or a live
    /// row already has, if one has. Linear in the rows: keys are compared by their text in a
    /// map, and a server finds the live rows of all the pending keys with one query.
    fn find_duplicate(&self) -> Result<Option<crate::error::Error>> {
        let Some(key) = &self.key else { return Ok(None) };
        let rows: Vec<&[Value]> = self.pending.chunks(self.width).collect();
        let key_text = |values: &[&Value]| format!("{values:?}");
        let keys: Vec<Vec<&Value>> = rows.iter().map(|row| key.positions.iter().map(|p| &row[*p]).collect()).collect();
        // The `_vmin` of the live row of each pending key that has one, by the key's text.
        let mut live: HashMap<String, i64> = HashMap::new();
        match &key.lookup_many {
            Some(sql) if self.tx.on_server() => {
                let arrays: Vec<Vec<Value>> =
                    (0..key.positions.len()).map(|k| keys.iter().map(|values| values[k].clone()).collect()).collect();
                let mut types = vec![Some(ColumnType::Int)];
                types.extend(key.types.iter().map(|t| Some(*t)));
                self.tx.query_arrays(sql, &arrays, &types, |v| {
                    if let Some((Value::Int(vmin), values)) = v.split_first() {
                        live.insert(key_text(&values.iter().collect::<Vec<_>>()), *vmin);
                    }
                    Ok(true)
                })?;
            }
            _ => {
                for values in &keys {
                    let owned: Vec<Value> = values.iter().map(|v| (*v).clone()).collect();
                    self.tx.query_each(&key.lookup, &owned, &[Some(ColumnType::Int)], |v| {
                        if let Some(Value::Int(vmin)) = v.first() {
                            live.insert(key_text(values), *vmin);
                        }
                        Ok(false)
                    })?;
                }
            }
        }
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(rows.len());
        for (j, values) in keys.iter().enumerate() {
            let index = self.written + j;
            let text = key_text(values);
            let shown = || show_key(&key.names, values);
            if let Some(earlier) = seen.get(&text) {
                return Ok(Some(same_key(&key.table, self.written + earlier, index, &shown())));
            }
            match live.get(&text) {
                Some(vmin) if *vmin == key.version => {
                    return Ok(Some(crate::error::err!(
                        DuplicateKey,
                        "row {index} of the insert into '{}' repeats the primary key {} of an earlier row; give each row its own key, or use Table::upsert to keep the last",
                        key.table,
                        shown()
                    )))
                }
                Some(_) => {
                    return Ok(Some(crate::error::err!(
                        DuplicateKey,
                        "row {index}: '{}' already has a row with primary key {}; use Table::upsert to replace it, or Table::batch_update to change it",
                        key.table,
                        shown()
                    )))
                }
                None => {}
            }
            seen.insert(text, j);
        }
        Ok(None)
    }

    /// In a streaming append to a table with a key ([`Appender::call_keys`]): the error for
    /// the first pending row whose key an earlier row of this call has; remembers the keys.
    fn check_call_keys(&mut self) -> Option<crate::error::Error> {
        let (Some(key), Some(seen)) = (&self.key, &mut self.call_keys) else { return None };
        for (j, row) in self.pending.chunks(self.width).enumerate() {
            let values: Vec<&Value> = key.positions.iter().map(|p| &row[*p]).collect();
            let index = self.written + j;
            if let Some(earlier) = seen.insert(format!("{values:?}"), index) {
                return Some(same_key(&key.table, earlier, index, &show_key(&key.names, &values)));
            }
        }
        None
    }

    /// Adds one row that `fill` pushes (`width` values; on an error it pushed part of one,
    /// which is taken back); writes a statement's worth of rows when it has them.
    pub(crate) fn push_with(&mut self, fill: impl FnOnce(&mut Vec<Value>) -> Result<()>) -> Result<()> {
        let start = self.pending.len();
        if let Err(e) = fill(&mut self.pending) {
            self.pending.truncate(start);
            return Err(e);
        }
        debug_assert_eq!(self.pending.len() - start, self.width);
        if self.pending.len() >= self.width * self.per_statement {
            self.write(true)?;
        }
        Ok(())
    }

    /// Adds one row (`width` values); writes a statement's worth of rows when it has them.
    pub(crate) fn push(&mut self, values: impl IntoIterator<Item = Value>) -> Result<()> {
        self.pending.extend(values);
        if self.pending.len() >= self.width * self.per_statement {
            self.write(true)?;
        }
        Ok(())
    }

    /// Writes the rows not yet written; `more`: rows may follow.
    fn write(&mut self, more: bool) -> Result<()> {
        let rows = self.pending.len().checked_div(self.width).unwrap_or(0);
        if rows == 0 {
            return Ok(());
        }
        let tx: &'t Tx<'t> = self.tx;
        if tx.on_server() {
            return self.write_on_server(rows, more);
        }
        let full = rows == self.per_statement;
        if full && self.full.is_none() {
            self.full = Some(tx.cached(&self.statement(rows))?);
        }
        let mut partial;
        let stmt = match self.full.as_mut().filter(|_| full) {
            Some(stmt) => stmt,
            None => {
                partial = tx.cached(&self.statement(rows))?;
                &mut partial
            }
        };
        for (i, v) in self.pending.iter().chain(&self.literals).enumerate() {
            bind(stmt, i + 1, v).map_err(|e| tx.fail(e))?;
        }
        if let Err(e) = stmt.raw_execute() {
            if super::is_unique_violation(&e) {
                return Err(self.duplicate_key().unwrap_or_else(|e| e));
            }
            return Err(tx.fail(e));
        }
        let last = tx.sqlite()?.last_insert_rowid();
        self.last = last;
        if self.first.is_none() {
            // One statement appends its rows at consecutive rowids.
            self.first = Some(last - rows as i64 + 1);
        }
        self.written += rows;
        self.pending.clear();
        Ok(())
    }

    /// The SQL of a statement of `rows` rows: each row's tuple with its parameters moved to
    /// its place, the literals after every row.
    fn statement(&self, rows: usize) -> String {
        let mut sql = self.head.clone();
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            renumber(&self.tuple, &mut sql, |n| {
                if n <= self.width {
                    row * self.width + n
                } else {
                    rows * self.width + n - self.width
                }
            });
        }
        sql
    }

    /// [`Appender::write`] on a server. Where no live row can hold one of the rows' keys (no
    /// key, or no live row yet), the first write that more rows may follow opens a copy that
    /// the rest go into (see [`STREAM_ROWS`]), numbered from the table's sequence's next row
    /// id (writers take turns; [`Appender::finish`] moves the sequence past them), the
    /// call's keys checked against each other in the client. Otherwise each write reserves
    /// its rows' ids from the sequence
    /// and copies them in, the keys checked first (a violation would abort the whole
    /// transaction before the check could name the row; the unique index still holds
    /// against a concurrent writer); a few rows are one `INSERT`.
    fn write_on_server(&mut self, rows: usize, more: bool) -> Result<()> {
        if self.streaming {
            if let Some(e) = self.check_call_keys() {
                return Err(e);
            }
            self.tx.copy_more(&self.pending)?;
            self.wrote(rows);
            return Ok(());
        }
        let table = self.copy_plan()?.table.clone();
        let streaming = more
            && rows > INSERT_ROWS
            && match &self.key {
                None => true,
                Some(key) => self.first.is_none() && self.tx.query_i64(&key.any_live, &[])? == 0,
            };
        if streaming && self.key.is_some() {
            self.call_keys = Some(HashMap::new());
            if let Some(e) = self.check_call_keys() {
                return Err(e);
            }
        } else if let Some(e) = self.find_duplicate()? {
            return Err(e);
        }
        let copy = self.copy_plan()?;
        if rows <= INSERT_ROWS {
            let (first, last) = self.insert_on_server(copy, rows)?;
            self.first.get_or_insert(first);
            self.last = last;
            self.written += rows;
            self.pending.clear();
            return Ok(());
        }
        let first = match streaming {
            true => self.tx.query_i64(
                "SELECT nextval(s::regclass) FROM pg_get_serial_sequence(?1, '_rowid_') s",
                &[Value::String(table.clone())],
            )?,
            false => {
                let last = self.tx.query_i64(
                    "SELECT setval(s::regclass, nextval(s::regclass) + ?1 - 1) FROM pg_get_serial_sequence(?2, '_rowid_') s",
                    &[Value::Int(rows as i64), Value::String(table.clone())],
                )?;
                last - rows as i64 + 1
            }
        };
        if self.first.is_none() && rows >= LOAD_WITHOUT_INDEX {
            self.tx.load_without_indexes(&table, self.call_keys.is_some())?;
        }
        if streaming {
            self.tx.copy_open(&table, &copy.columns, first, self.width, &copy.constants)?;
            self.streaming = true;
            self.tx.copy_more(&self.pending)?;
        } else {
            self.tx.copy_rows(&table, &copy.columns, Some(first), &self.pending, self.width, &copy.constants)?;
            // Batches from now on, their keys looked up before each.
            self.per_statement = (COPY_VALUES / self.width.max(1)).max(1);
        }
        self.first.get_or_insert(first);
        self.last = first - 1;
        self.wrote(rows);
        Ok(())
    }

    /// How rows are copied in on a server.
    fn copy_plan(&self) -> Result<&CopyRows> {
        self.copy
            .as_ref()
            .ok_or_else(|| crate::error::err!(Storage, "an append on a server has no copy plan (a bug in Tabula)"))
    }

    /// Counts the pending `rows` as written after the last row id.
    fn wrote(&mut self, rows: usize) {
        self.last += rows as i64;
        self.written += rows;
        self.pending.clear();
    }

    /// Appends the pending `rows` on a server with one `INSERT .. RETURNING _rowid_` (one
    /// exchange, where reserving row ids and copying take three): the table's row id
    /// sequence numbers them in order, and writers take turns, so they are consecutive
    /// (checked). Returns the first and last row id.
    fn insert_on_server(&self, copy: &CopyRows, rows: usize) -> Result<(i64, i64)> {
        let Some(("_rowid_", columns)) = copy.columns.split_first().map(|(id, rest)| (id.as_str(), rest)) else {
            return Err(crate::error::err!(Storage, "an append on a server copies no row ids (a bug in Tabula)"));
        };
        let shared = rows * self.width;
        let mut sql = format!("INSERT INTO {}({}) VALUES ", copy.table, columns.join(", "));
        for row in 0..rows {
            let own = (1..=self.width).map(|i| format!("?{}", row * self.width + i));
            let constants = (1..=copy.constants.len()).map(|i| format!("?{}", shared + i));
            let sep = if row == 0 { "" } else { ", " };
            sql.push_str(&format!("{sep}({})", own.chain(constants).collect::<Vec<_>>().join(", ")));
        }
        sql.push_str(" RETURNING _rowid_");
        let params: Vec<Value> = self.pending.iter().chain(&copy.constants).cloned().collect();
        let ids = self.tx.query_rows(&sql, &params, 1)?;
        let ids = ids.iter().map(|r| r.int(0)).collect::<Result<Vec<i64>>>()?;
        let (first, last) = (ids.iter().min().copied().unwrap_or(0), ids.iter().max().copied().unwrap_or(-1));
        if ids.len() != rows || last - first + 1 != rows as i64 {
            return Err(crate::error::err!(
                Storage,
                "'{}': {rows} rows appended got row ids {first}..{last}, not consecutive; another client writes \
                 this catalog's tables without taking its lock",
                copy.table
            ));
        }
        Ok((first, last))
    }

    /// Writes the rows not yet written and builds any index the load went without, so that
    /// what the call does next finds it.
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.write(false)?;
        if std::mem::take(&mut self.streaming) {
            let copied = self.tx.copy_close()?;
            let (Some(first), Some(copy)) = (self.first, &self.copy) else {
                return Err(crate::error::err!(Storage, "a copy on a server lost its rows' ids (a bug in Tabula)"));
            };
            if copied != (self.last - first + 1) as u64 {
                return Err(crate::error::err!(
                    Storage,
                    "'{}': the server took {copied} rows of a copy of {}",
                    copy.table,
                    self.last - first + 1
                ));
            }
            // The table's sequence goes on after the copied rows' ids.
            self.tx.query_i64(
                "SELECT setval(s::regclass, ?1) FROM pg_get_serial_sequence(?2, '_rowid_') s",
                &[Value::Int(self.last), Value::String(copy.table.clone())],
            )?;
        }
        self.tx.build_deferred_indexes()
    }

    /// The first and last physical rowid written (after [`Appender::write`]).
    pub(crate) fn rowids(&self) -> Option<(i64, i64)> {
        self.first.map(|first| (first, self.last))
    }
}

impl Tx<'_> {
    /// Sets stored column `column` to `value` in every live row (a column added with a
    /// default); returns how many rows.
    pub(crate) fn fill_live(&self, meta: &TableMeta, column: &ColumnDef, value: &Value) -> Result<u64> {
        self.execute(
            &format!("UPDATE {} SET c{} = ?1 WHERE {}", meta.phys(), column.id.0, meta.layout.is_live("")),
            std::slice::from_ref(value),
        )
    }

    /// How many live rows have `column` null.
    pub(crate) fn live_nulls(&self, meta: &TableMeta, column: &ColumnDef) -> Result<u64> {
        let n = self.query_i64(
            &format!(
                "SELECT count(*) FROM {} WHERE {} AND c{} IS NULL",
                meta.phys(),
                meta.layout.is_live(""),
                column.id.0
            ),
            &[],
        )?;
        Ok(n as u64)
    }

    /// Copies `from` into the REAL column `to` in every live row.
    pub(crate) fn copy_live_as_real(&self, meta: &TableMeta, from: &ColumnDef, to: &ColumnDef) -> Result<u64> {
        self.execute(
            &format!(
                "UPDATE {} SET c{} = CAST(c{} AS REAL) WHERE {}",
                meta.phys(),
                to.id.0,
                from.id.0,
                meta.layout.is_live("")
            ),
            &[],
        )
    }

    /// Ends, at `version`, the live rows among physical rows `rowids`; returns how many.
    pub(crate) fn end_rowids(&self, meta: &TableMeta, version: Version, rowids: &[i64]) -> Result<u64> {
        if rowids.is_empty() {
            return Ok(0);
        }
        if self.on_server() {
            // One statement, the same text whatever the rows (array parameters).
            let ids = vec![vec![version_value(version)], rowids.iter().map(|id| Value::Int(*id)).collect()];
            let sql = format!(
                "UPDATE {} SET _vmax = (?1::BIGINT[])[1] WHERE {} AND _rowid_ = ANY(?2)",
                meta.phys(),
                meta.layout.is_live("")
            );
            return self.execute_arrays(&sql, &ids);
        }
        // A statement of 500 rows, and one for the rest: the text depends on how many rows,
        // not which (the version is `?1`, the row ids follow).
        let mut n = 0;
        for chunk in rowids.chunks(500) {
            let list: Vec<String> = (2..chunk.len() + 2).map(|i| format!("?{i}")).collect();
            let mut values = vec![version_value(version)];
            values.extend(chunk.iter().map(|id| Value::Int(*id)));
            n += self.execute(
                &format!(
                    "UPDATE {} SET _vmax = ?1 WHERE {} AND _rowid_ IN ({})",
                    meta.phys(),
                    meta.layout.is_live(""),
                    list.join(", ")
                ),
                &values,
            )?;
        }
        Ok(n)
    }

    /// Ends, at `version`, the live rows where `pred` holds (an expression without UDFs);
    /// returns how many.
    pub(crate) fn end_rows(&self, meta: &TableMeta, version: Version, pred: &Expr) -> Result<u64> {
        let mut params = self.params();
        let at = params.version(version);
        let cond = sql_over_columns(&meta.schema, pred, &mut params)?;
        self.execute(
            &format!("UPDATE {} SET _vmax = {at} WHERE {} AND {cond}", meta.phys(), meta.layout.is_live("")),
            &params.values,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::renumber;

    #[test]
    fn parameters_are_renumbered_and_nothing_else() {
        let mut out = String::new();
        renumber("(?1, 5, tb_f(?2, ?10, 'Int,Int'), ?3)", &mut out, |n| n + 100);
        assert_eq!(out, "(?101, 5, tb_f(?102, ?110, 'Int,Int'), ?103)");
    }
}
