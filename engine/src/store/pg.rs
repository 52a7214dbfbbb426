//! The store's SQL executor on PostgreSQL: what [`super::exec`] does on SQLite, for a
//! transaction on a server. Statements are written once for both, with `?N` parameters;
//! here they become `$N`, each [`Value`] is bound as the type the server inferred for its
//! parameter, and result columns decode by their server type into [`Value`]s.
//!
//! `PgStore` is the catalog on a server (`Catalog::connect`): its connections, transactions
//! and write lock. Tested against a real server when `TABULA_TEST_POSTGRES` holds a URL.

use std::cell::RefCell;

use postgres::types::{ToSql, Type};

mod copy;

use super::codec::decode_as;
use crate::error::{err, Error, Result};
use crate::types::{ColumnType, Value};

/// A connection to a server and the statements prepared on it, by their SQL: a statement
/// is parsed once a connection, not at every call (a server re-plans it by itself when DDL
/// changes what it reads).
pub(crate) struct Conn {
    client: postgres::Client,
    prepared: std::collections::HashMap<String, postgres::Statement>,
    /// Exchanges with the server (a message sent, its answer awaited) made on this
    /// connection, added to its store's count (see [`PgStore::exchanges`]).
    exchanges: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// A page (`PgTx::query_page`) turned the planner's sorts off for the rest of the
    /// transaction: the next page keeps them off, any other statement turns them back on
    /// first, and the transaction's end does by itself.
    sorts_off: bool,
}

/// Statements a connection keeps prepared; past it, it starts over.
const PREPARED: usize = 512;

impl Conn {
    pub(crate) fn new(client: postgres::Client) -> Conn {
        Conn { client, prepared: std::collections::HashMap::new(), exchanges: Default::default(), sorts_off: false }
    }

    /// Turns the planner's sorts back on if a page turned them off.
    fn sort_again(&mut self) -> std::result::Result<(), postgres::Error> {
        if self.sorts_off {
            self.exchanged(1);
            self.client.batch_execute("RESET enable_sort")?;
            self.sorts_off = false;
        }
        Ok(())
    }

    /// Counts `n` exchanges with the server.
    fn exchanged(&self, n: u64) {
        self.exchanges.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Forgets the statements prepared on this connection whose SQL names `table`: a table
    /// made again with other column types (the batch stage) would otherwise get values bound
    /// as its old types.
    fn forget(&mut self, table: &str) {
        self.prepared.retain(|sql, _| !sql.contains(table));
    }

    /// `sql` prepared on this connection.
    fn prepare(&mut self, sql: &str) -> std::result::Result<postgres::Statement, postgres::Error> {
        #[cfg(test)]
        super::exec::ran::record(sql);
        if let Some(stmt) = self.prepared.get(sql) {
            return Ok(stmt.clone());
        }
        self.exchanged(1);
        let stmt = self.client.prepare(&server_sql(sql))?;
        if self.prepared.len() >= PREPARED {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

/// A transaction on a PostgreSQL server: begun on a connection, rolled back when dropped
/// without [`PgTx::commit`].
pub(crate) struct PgTx<'a> {
    /// The connection; `None` while a streaming copy's thread has it (see
    /// [`PgTx::copy_open`]).
    client: &'a RefCell<Option<Conn>>,
    /// Names the server in errors (its URL without a password).
    location: String,
    done: bool,
    /// The statements that build again the rowid indexes dropped for a first load (see
    /// [`PgTx::load_without_indexes`]).
    deferred: RefCell<Vec<String>>,
    /// Live rows from which a fill copies the table (`OpenOptions::copy_fills_from`).
    pub(crate) copy_fills_from: i64,
    /// How Tabula tests a view filter the server cannot run (see [`super::RowTest`]).
    pub(crate) row_test: Option<super::RowTest>,
    /// A copy kept open while its rows are gathered (see [`PgTx::copy_open`]).
    stream: RefCell<Option<Box<copy::Stream>>>,
}

impl<'a> PgTx<'a> {
    /// Begins a transaction on `client` with `begin` (`BEGIN ...`).
    pub(crate) fn begin(client: &'a RefCell<Option<Conn>>, location: String, begin: &str) -> Result<PgTx<'a>> {
        let mut conn = conn_in(client, &location)?;
        conn.exchanged(1);
        conn.sorts_off = false;
        conn.client.batch_execute(begin).map_err(|e| pg_error(&location, e))?;
        drop(conn);
        Ok(PgTx {
            client,
            location,
            done: false,
            deferred: RefCell::new(Vec::new()),
            copy_fills_from: super::fill::REBUILD_FROM as i64,
            row_test: None,
            stream: RefCell::new(None),
        })
    }

    /// The connection, for one statement. A statement can only come between a streaming
    /// copy's open and close through a bug in Tabula: it fails instead.
    fn conn(&self) -> Result<std::cell::RefMut<'a, Conn>> {
        conn_in(self.client, &self.location)
    }

    /// Where the catalog lives, as errors name it.
    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// Commits the transaction.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.build_deferred()?;
        let mut conn = self.conn()?;
        self.done = true;
        conn.exchanged(1);
        conn.sorts_off = false;
        conn.client.batch_execute("COMMIT").map_err(|e| match connection_lost(&e) {
            true => err!(
                Disconnected,
                "catalog '{}': the connection to the server was lost while committing ({e}): the call may have \
                 been committed or not; read the table's version (or history) before retrying it",
                self.location
            ),
            false => pg_error(&self.location, e),
        })
    }

    /// Refuses a statement that calls Tabula's SQL functions (`tb_*`: builtins with Tabula's
    /// semantics, registered on SQLite connections), which a server does not have yet.
    fn portable(&self, sql: &str) -> Result<()> {
        if sql.contains("tb_") {
            return Err(err!(
                InvalidArgument,
                "catalog '{}': this expression needs Tabula's SQL functions (arithmetic, string and date functions, \
                 casts), which a PostgreSQL catalog does not have yet; use comparisons, AND/OR/NOT, IS NULL and length",
                self.location
            ));
        }
        Ok(())
    }

    fn fail(&self, e: postgres::Error) -> Error {
        pg_error(&self.location, e)
    }

    /// The connection, and `sql` prepared on it (refused first if not portable), to run with
    /// the planner's sorts on.
    fn prepared(&self, sql: &str) -> Result<(std::cell::RefMut<'_, Conn>, postgres::Statement)> {
        let (mut conn, stmt) = self.prepared_for_page(sql)?;
        conn.sort_again().map_err(|e| self.fail(e))?;
        Ok((conn, stmt))
    }

    /// [`PgTx::prepared`], leaving the planner's sorts as they are.
    fn prepared_for_page(&self, sql: &str) -> Result<(std::cell::RefMut<'_, Conn>, postgres::Statement)> {
        self.portable(sql)?;
        let mut conn = self.conn()?;
        let stmt = conn.prepare(sql).map_err(|e| self.fail(e))?;
        Ok((conn, stmt))
    }

    /// Runs one statement with bound values; returns the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        let (mut conn, stmt) = self.prepared(sql)?;
        let bound = bind_all(stmt.params(), params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        conn.exchanged(1);
        conn.client.execute(&stmt, &refs).map_err(|e| self.fail(e))
    }

    /// Runs one statement whose every parameter is an array: `arrays[k]` bound to `$k+1`,
    /// each value as the element type of the array type the server gives the parameter.
    pub(crate) fn execute_arrays(&self, sql: &str, arrays: &[Vec<Value>]) -> Result<u64> {
        let (mut conn, stmt) = self.prepared(sql)?;
        let bound = bind_arrays(stmt.params(), arrays)?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        conn.exchanged(1);
        conn.client.execute(&stmt, &refs).map_err(|e| self.fail(e))
    }

    /// [`PgTx::query_each`] with every parameter an array (see [`PgTx::execute_arrays`]).
    pub(crate) fn query_arrays(
        &self,
        sql: &str,
        arrays: &[Vec<Value>],
        types: &[Option<ColumnType>],
        each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        let (mut conn, stmt) = self.prepared(sql)?;
        let bound = bind_arrays(stmt.params(), arrays)?;
        conn.exchanged(1);
        let rows = conn.client.query_raw(&stmt, bound.iter().map(|b| b as &dyn ToSql)).map_err(|e| self.fail(e))?;
        self.each_row(rows, types, each)
    }

    /// Calls `each` with every row of `rows` decoded by `types`, until it returns `Ok(false)`.
    fn each_row(
        &self,
        mut rows: postgres::RowIter<'_>,
        types: &[Option<ColumnType>],
        mut each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            if !each(self.decode(&row, types)?)? {
                break;
            }
        }
        Ok(())
    }

    /// Forgets the statements prepared on this transaction's connection that name `table`
    /// (see [`Conn::forget`]).
    pub(crate) fn forget_statements(&self, table: &str) {
        if let Ok(mut conn) = self.conn() {
            conn.forget(table);
        }
    }

    /// Runs statements without parameters, separated by `;`.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        let mut conn = self.conn()?;
        conn.sort_again().map_err(|e| self.fail(e))?;
        conn.exchanged(1);
        conn.client.batch_execute(sql).map_err(|e| self.fail(e))
    }

    /// Runs a query and calls `each` with every row decoded by `types` (one a result
    /// column; `None`: by the server's type), until it returns `Ok(false)`.
    pub(crate) fn query_each(
        &self,
        sql: &str,
        params: &[Value],
        types: &[Option<ColumnType>],
        each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        let (mut conn, stmt) = self.prepared(sql)?;
        let bound = bind_all(stmt.params(), params)?;
        conn.exchanged(1);
        let rows = conn.client.query_raw(&stmt, bound.iter().map(|b| b as &dyn ToSql)).map_err(|e| self.fail(e))?;
        self.each_row(rows, types, each)
    }

    /// [`PgTx::query_each`] for a page of rows in row id order (`_rowid_ > after ORDER BY
    /// _rowid_ LIMIT n`): its rows come in one exchange (`query_each` streams them, and the
    /// `postgres` crate runs the client's event loop once a row as it does, about 0.4 us a
    /// row). It is planned without sorts, so the server walks the row id index and stops
    /// at the page's last row: on a table with no statistics yet (one loaded since it was
    /// made, as test catalogs are) the planner guesses few rows match and sorts every row
    /// after `after` for each page, which makes a paged read quadratic (a stream of a
    /// 100,000-row view page by page: 8.4 ms a page instead of 0.5). Reads cannot
    /// `ANALYZE` (a read-only transaction, a read-only role), as fills do (`plan_ready`).
    /// Sorts stay off for the pages that follow in the transaction and come back on before
    /// any other statement (`Conn::sorts_off`): one exchange a page, not three.
    pub(crate) fn query_page(
        &self,
        sql: &str,
        params: &[Value],
        types: &[Option<ColumnType>],
        mut each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        let (mut conn, stmt) = self.prepared_for_page(sql)?;
        let bound = bind_all(stmt.params(), params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        if !conn.sorts_off {
            conn.exchanged(1);
            conn.client.batch_execute("SET LOCAL enable_sort = off").map_err(|e| self.fail(e))?;
            conn.sorts_off = true;
        }
        conn.exchanged(1);
        let rows = conn.client.query(&stmt, &refs).map_err(|e| self.fail(e))?;
        drop(conn);
        for row in rows {
            if !each(self.decode(&row, types)?)? {
                break;
            }
        }
        Ok(())
    }

    /// A result row decoded by `types`.
    fn decode(&self, row: &postgres::Row, types: &[Option<ColumnType>]) -> Result<Vec<Value>> {
        let mut values = Vec::with_capacity(types.len());
        for (i, ty) in types.iter().enumerate() {
            values.push(cell(row, i, *ty).map_err(|e| e.context(format_args!("catalog '{}'", self.location)))?);
        }
        Ok(values)
    }
}

/// Refuses a database whose encoding is not UTF-8: Tabula's text is UTF-8, and a server
/// counts characters in its own encoding (`char_length`; in `SQL_ASCII`, bytes).
fn utf8_database(tx: &super::Tx, location: &str) -> Result<()> {
    let row = tx.query_row("SELECT current_setting('server_encoding')", &[], 1)?;
    let encoding = row.map(|r| r.text(0)).transpose()?.unwrap_or_default();
    if encoding != "UTF8" {
        return Err(err!(
            InvalidArgument,
            "catalog '{location}': the database's encoding is {encoding}, and Tabula stores text as UTF-8; use a \
             database made with ENCODING 'UTF8'"
        ));
    }
    Ok(())
}

impl PgTx<'_> {
    /// Drops the rowid index of `table` for the rest of a load into it, when the table is
    /// empty and no reader is using it, and says whether it did; and its key's unique index
    /// too when `keys_checked` (the load checks its rows' keys against each other itself, and
    /// an empty table has no other row to clash with). A btree filled row by row costs a
    /// copy as much as the copy itself (COPY of 100,000 rows: 66 ms without it, 117 with
    /// it); built after the copy, it costs 16-20 ms. The indexes come back at the end of
    /// the load ([`PgTx::build_deferred`]), before the transaction commits at the latest, so
    /// no other transaction ever sees the table without them. What it costs others: the
    /// table is locked (`ACCESS EXCLUSIVE`) until the load commits, so a reader that comes
    /// meanwhile waits for it; a reader already in the table makes the load keep its indexes
    /// instead (`NOWAIT`, undone to a savepoint).
    pub(crate) fn load_without_indexes(&self, table: &str, keys_checked: bool) -> Result<bool> {
        // The name of its primary key, if it is empty, and how its key's index is made.
        let mut found = None;
        self.query_each(
            &format!(
                "SELECT conname::text, CASE WHEN ?2 THEN pg_get_indexdef(to_regclass(?3)) END FROM pg_constraint \
                 WHERE conrelid = to_regclass(?1) AND contype = 'p' AND NOT EXISTS (SELECT 1 FROM {table})"
            ),
            &[Value::String(table.to_string()), Value::Bool(keys_checked), Value::String(format!("{table}_key"))],
            &[Some(ColumnType::String), Some(ColumnType::String)],
            |row| {
                found = Some(row);
                Ok(false)
            },
        )?;
        let Some([Value::String(name), key]) = found.as_deref() else { return Ok(false) };
        let mut drop =
            format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE NOWAIT; ALTER TABLE {table} DROP CONSTRAINT {name}");
        let mut build = format!("ALTER TABLE {table} ADD CONSTRAINT {name} PRIMARY KEY (_rowid_)");
        if let Value::String(key) = key {
            drop.push_str(&format!("; DROP INDEX {table}_key"));
            build.push_str(&format!("; {key}"));
        }
        self.execute_batch("SAVEPOINT tabula_load")?;
        if self.execute_batch(&drop).is_err() {
            self.execute_batch("ROLLBACK TO SAVEPOINT tabula_load; RELEASE SAVEPOINT tabula_load")?;
            return Ok(false);
        }
        self.execute_batch("RELEASE SAVEPOINT tabula_load")?;
        self.deferred.borrow_mut().push(build);
        Ok(true)
    }

    /// Builds the indexes dropped for loads in this transaction.
    pub(crate) fn build_deferred(&self) -> Result<()> {
        let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
        for sql in deferred {
            self.execute_batch(&sql)?;
        }
        Ok(())
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // A failed call: nothing it did stays. A broken connection rolls back by itself.
            self.copy_abandon();
            let Ok(mut conn) = self.conn() else { return };
            conn.exchanged(1);
            conn.sorts_off = false;
            let _ = conn.client.batch_execute("ROLLBACK");
        }
    }
}

/// The connection in `client`, unless a streaming copy has it (see [`PgTx::conn`]).
fn conn_in<'c>(client: &'c RefCell<Option<Conn>>, location: &str) -> Result<std::cell::RefMut<'c, Conn>> {
    std::cell::RefMut::filter_map(client.borrow_mut(), Option::as_mut).map_err(|_| {
        err!(Storage, "catalog '{location}': a statement ran while rows were being copied in (a bug in Tabula)")
    })
}

/// A catalog on a PostgreSQL server: connections to one database, one transaction a call.
pub(crate) struct PgStore {
    /// The connection URL (its configuration is parsed at each connect: `postgres::Config`
    /// holds a callback, which would make every `Catalog` lose `UnwindSafe`).
    url: String,
    /// Idle connections.
    idle: std::sync::Mutex<Vec<Conn>>,
    location: String,
    /// Every write fails with `ReadOnly` (a staging check reading production).
    read_only: bool,
    /// How long a write waits for the catalog's write lock.
    busy_timeout: std::time::Duration,
    /// Live rows from which a fill copies the table (`OpenOptions::copy_fills_from`).
    copy_fills_from: i64,
    /// How Tabula tests a view filter the server cannot run (see [`super::RowTest`]).
    row_test: Option<super::RowTest>,
    /// Exchanges with the server on every connection of this store (see
    /// [`PgStore::exchanges`]).
    exchanges: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The catalog's format version when this store connected: it has that one at least
    /// (a format version only grows).
    format_floor: i64,
}

impl PgStore {
    /// Fills fresh computed columns of tables of at least `rows` live rows by copying the
    /// table (see `OpenOptions::copy_fills_from`).
    pub(crate) fn copy_fills_from(mut self, rows: u64) -> PgStore {
        self.copy_fills_from = i64::try_from(rows).unwrap_or(i64::MAX);
        self
    }

    /// Runs view filters the server cannot compute with `test` (see [`super::RowTest`]).
    pub(crate) fn row_test(mut self, test: super::RowTest) -> PgStore {
        self.row_test = Some(test);
        self
    }

    /// Connects to the database `url` names and makes it a catalog if it is not one yet.
    pub(crate) fn connect(url: &str, read_only: bool, busy_timeout: std::time::Duration) -> Result<PgStore> {
        super::tls::config(url)?;
        let store = PgStore {
            url: url.to_string(),
            idle: std::sync::Mutex::new(Vec::new()),
            location: super::redacted_url(url),
            read_only,
            busy_timeout,
            copy_fills_from: super::fill::REBUILD_FROM as i64,
            row_test: None,
            exchanges: Default::default(),
            format_floor: 0,
        };
        let location = store.location.clone();
        if read_only {
            let found = store.read(|tx| {
                utf8_database(tx, &location)?;
                let has_meta =
                    "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '_tabula_meta'";
                if tx.query_i64(has_meta, &[])? == 0 {
                    return Err(err!(
                        NotFound,
                        "'{location}' holds no Tabula catalog (its current schema has no _tabula_meta table); check \
                         the database and the search path"
                    ));
                }
                tx.format_version()
            })?;
            if found > super::FORMAT_VERSION {
                return Err(err!(
                    FormatTooNew,
                    "catalog '{location}' has format version {found}, newer than this Tabula reads ({}); upgrade tabula",
                    super::FORMAT_VERSION
                ));
            }
            return Ok(PgStore { format_floor: found, ..store });
        }
        // Two processes creating the same catalog: one waits for the other (the write lock).
        let found = store.write(|tx| {
            utf8_database(tx, &location)?;
            let has_meta = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '_tabula_meta'";
            if tx.query_i64(has_meta, &[])? == 0 {
                refuse_foreign_names(tx, &location)?;
                tx.execute_batch(&ddl(super::meta::CREATE_META))?;
                tx.execute_batch(&ddl(super::follows::CREATE_FOLLOWS))?;
                tx.execute_batch(&ddl(super::locks::CREATE_LOCKS))?;
                tx.execute(
                    "INSERT INTO _tabula_meta(key, value) VALUES ('format_version', ?1), ('live_vmax', '0')",
                    &[super::FORMAT_VERSION.to_string().into()],
                )?;
                return Ok(super::FORMAT_VERSION);
            }
            let found = tx.format_version()?;
            if found > super::FORMAT_VERSION {
                return Err(err!(
                    FormatTooNew,
                    "catalog '{location}' has format version {found}, newer than this Tabula reads ({}); upgrade tabula",
                    super::FORMAT_VERSION
                ));
            }
            Ok(found)
        })?;
        Ok(PgStore { format_floor: found, ..store })
    }

    /// The server and database, as messages name them.
    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// An idle connection (`true`), or a new one.
    fn client(&self) -> Result<(Conn, bool)> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            if !conn.client.is_closed() {
                return Ok((conn, true));
            }
        }
        self.new_conn().map(|conn| (conn, false))
    }

    /// A new connection, its exchanges counted in this store's.
    fn new_conn(&self) -> Result<Conn> {
        let mut conn = Conn::new(super::tls::connect(&self.url)?);
        conn.exchanges = self.exchanges.clone();
        Ok(conn)
    }

    /// How many exchanges with the server (a message sent, its answer awaited: one round
    /// trip each) this catalog's calls have made so far, connecting aside. On a server
    /// across a network each costs a round trip's latency, whatever the statement.
    #[cfg(test)]
    pub(crate) fn exchanges(&self) -> u64 {
        self.exchanges.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn put(&self, client: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < 4 {
            idle.push(client);
        }
    }

    /// Runs `f` in a write transaction; commits when it returns `Ok`, rolls back otherwise.
    /// Writers of one catalog run one at a time, as on SQLite: each takes the catalog's
    /// lock (a transaction-scoped advisory lock on its schema's name) before reading
    /// anything, waiting up to its busy timeout (then [`Busy`](crate::ErrorCode::Busy)); each statement
    /// after it sees every commit made before (read committed), so versions are numbered
    /// without gaps in commit order. Readers never wait.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&super::Tx) -> Result<T>) -> Result<T> {
        if self.read_only {
            return Err(err!(
                ReadOnly,
                "catalog '{}' was connected read-only; connect with Catalog::connect to write",
                self.location
            ));
        }
        self.run("BEGIN", true, f)
    }

    /// Whether every write is refused.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The URL the catalog was connected with (its password too: for connections of its
    /// own, never for messages).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Runs `f` in a read-only transaction that sees one state of the catalog throughout.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&super::Tx) -> Result<T>) -> Result<T> {
        self.run("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", false, f)
    }

    /// Runs `f` in a transaction begun with `begin`; a write's begins by taking the
    /// catalog's write lock, in the same exchange.
    fn run<T>(&self, begin: &str, write: bool, f: impl FnOnce(&super::Tx) -> Result<T>) -> Result<T> {
        let begin = match write {
            true => {
                // 0 would be no timeout at all on a server.
                let ms = self.busy_timeout.as_millis().clamp(1, i32::MAX as u128);
                format!(
                    "{begin}; SET LOCAL lock_timeout = '{ms}ms'; \
                     SELECT pg_advisory_xact_lock(hashtext('tabula:' || current_schema()))"
                )
            }
            false => begin.to_string(),
        };
        let (conn, idle) = self.client()?;
        let client = RefCell::new(Some(conn));
        let out = (|| {
            let began = match PgTx::begin(&client, self.location.clone(), &begin) {
                // An idle connection the server or a proxy closed meanwhile (a restart, an
                // idle timeout) shows it only when used: nothing ran yet, so a new one
                // takes its place.
                Err(e) if idle && client.borrow().as_ref().is_some_and(|c| c.client.is_closed()) => {
                    drop(e);
                    *client.borrow_mut() = Some(self.new_conn()?);
                    PgTx::begin(&client, self.location.clone(), &begin)
                }
                began => began,
            };
            let mut began = began.map_err(|e| match e.code() {
                crate::error::ErrorCode::Busy => err!(
                    Busy,
                    "catalog '{}': another writer held the catalog's write lock longer than this connection \
                     waits ({:?}); retry the call, or wait longer with OpenOptions::busy_timeout",
                    self.location,
                    self.busy_timeout
                ),
                _ => e,
            })?;
            began.copy_fills_from = self.copy_fills_from;
            began.row_test = self.row_test;
            let tx = super::Tx::on_postgres(began, self.format_floor);
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })();
        // A connection left in a failed state is not reused.
        if let (Some(client), true) = (client.into_inner(), out.is_ok()) {
            self.put(client);
        }
        out
    }
}

/// Tabula's metadata DDL (written for SQLite) as PostgreSQL takes it: 64-bit integers,
/// identity keys, no `WITHOUT ROWID`, and text compared byte by byte as SQLite does (the
/// directory listings are ranges such as `["dir/", "dir0")`, which a locale's collation
/// would order otherwise).
fn ddl(sqlite: &str) -> String {
    sqlite
        .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace("TEXT", "TEXT COLLATE \"C\"")
        .replace(" WITHOUT ROWID", "")
}

/// A statement written for both backends as the server takes it: parameters written `$N`,
/// and SQLite's `instr(text, part)` (where an error slot's kind ends) as `strpos`, the same
/// function under PostgreSQL's name.
fn server_sql(sql: &str) -> String {
    dollar_params(&sql.replace("instr(", "strpos("))
}

/// `sql` with its parameters written `$N`: `?N` keeps its number, and a bare `?` takes one
/// more than the largest number before it, as SQLite numbers it. Text in quotes (literals,
/// quoted names) is left as it is.
pub(crate) fn dollar_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut largest = 0u32;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = match digits.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => largest + 1,
                };
                largest = largest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Each value as the type the server expects for its parameter.
fn bind_all<'v>(types: &[Type], params: &'v [Value]) -> Result<Vec<Bound<'v>>> {
    if types.len() != params.len() {
        return Err(err!(
            Storage,
            "a statement takes {} parameters but {} were given (a bug in Tabula)",
            types.len(),
            params.len()
        ));
    }
    types.iter().zip(params).enumerate().map(|(i, (ty, v))| Bound::new(i + 1, ty, v)).collect()
}

/// Each array of values as the array type the server gives its parameter, each value as
/// the array's element type.
fn bind_arrays<'v>(types: &[Type], arrays: &'v [Vec<Value>]) -> Result<Vec<Vec<Bound<'v>>>> {
    if types.len() != arrays.len() {
        return Err(err!(
            Storage,
            "a statement takes {} arrays but {} were given (a bug in Tabula)",
            types.len(),
            arrays.len()
        ));
    }
    let mut bound = Vec::with_capacity(arrays.len());
    for (k, (ty, values)) in types.iter().zip(arrays).enumerate() {
        let postgres::types::Kind::Array(member) = ty.kind() else {
            return Err(err!(Storage, "parameter ${} is a {ty}, not an array (a bug in Tabula)", k + 1));
        };
        bound.push(values.iter().map(|v| Bound::new(k + 1, member, v)).collect::<Result<_>>()?);
    }
    Ok(bound)
}

/// A [`Value`] checked against the server type of the parameter (or copied column) it goes
/// to, and encoded as that type: borrowed, so binding copies no text or bytes.
#[derive(Debug)]
enum Bound<'v> {
    Null,
    Int8(i64),
    Int4(i32),
    Int2(i16),
    Float8(f64),
    Bool(bool),
    Bytes(&'v [u8]),
    Text(std::borrow::Cow<'v, str>),
}

impl<'v> Bound<'v> {
    /// `v` as server type `ty` (of parameter or column `at`, counted from 1), or why not.
    fn new(at: usize, ty: &Type, v: &'v Value) -> Result<Bound<'v>> {
        let wrong =
            || err!(Storage, "parameter ${at} is a {ty} on the server; {} {v} cannot be bound to it", v.type_name());
        let int = |v: &Value| -> Option<i64> {
            match v {
                Value::Int(i) | Value::Timestamp(i) => Some(*i),
                Value::Date(d) => Some(i64::from(*d)),
                Value::Bool(b) => Some(i64::from(*b)),
                _ => None,
            }
        };
        if v.is_null() {
            return Ok(Bound::Null);
        }
        Ok(match *ty {
            Type::INT8 => Bound::Int8(int(v).ok_or_else(wrong)?),
            Type::INT4 => Bound::Int4(int(v).and_then(|i| i32::try_from(i).ok()).ok_or_else(wrong)?),
            Type::INT2 => Bound::Int2(int(v).and_then(|i| i16::try_from(i).ok()).ok_or_else(wrong)?),
            Type::FLOAT8 => Bound::Float8(match v {
                Value::Float(f) => *f,
                other => int(other).ok_or_else(wrong)? as f64,
            }),
            Type::BOOL => Bound::Bool(match v {
                Value::Bool(b) => *b,
                other => int(other).ok_or_else(wrong)? != 0,
            }),
            Type::BYTEA => match v {
                Value::Bytes(b) => Bound::Bytes(b),
                _ => return Err(wrong()),
            },
            // Text next to a number (`'phys:' || ?1`) takes the number's digits, as SQLite does.
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => match v {
                Value::String(s) if s.contains('\0') => {
                    return Err(err!(
                        InvalidArgument,
                        "a PostgreSQL catalog cannot store text holding the NUL character (\\0); remove it, or keep \
                         the value as Bytes"
                    ))
                }
                Value::String(s) => Bound::Text(s.as_str().into()),
                Value::Json(j) => Bound::Text(j.to_string().into()),
                Value::Int(i) => Bound::Text(i.to_string().into()),
                _ => return Err(wrong()),
            },
            _ => return Err(wrong()),
        })
    }
}

impl ToSql for Bound<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Bound::Null => Ok(postgres::types::IsNull::Yes),
            Bound::Int8(i) => i.to_sql(ty, out),
            Bound::Int4(i) => i.to_sql(ty, out),
            Bound::Int2(i) => i.to_sql(ty, out),
            Bound::Float8(f) => f.to_sql(ty, out),
            Bound::Bool(b) => b.to_sql(ty, out),
            Bound::Bytes(b) => b.to_sql(ty, out),
            Bound::Text(s) => s.as_ref().to_sql(ty, out),
        }
    }

    /// Every type: [`Bound::new`] chose the encoding for the type it was given.
    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// Column `i` of `row` as a [`Value`]: read by its server type, then as `ty` if given.
fn cell(row: &postgres::Row, i: usize, ty: Option<ColumnType>) -> Result<Value> {
    let column = row.columns().get(i).ok_or_else(|| err!(Storage, "a result row has no column {i}"))?;
    let server = column.type_().clone();
    let read = |e: postgres::Error| err!(Storage, "column {i} ({server}) could not be read ({e})");
    let value = match server {
        Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(read)?.map(Value::Int),
        Type::INT4 => row.try_get::<_, Option<i32>>(i).map_err(read)?.map(|n| Value::Int(n.into())),
        Type::INT2 => row.try_get::<_, Option<i16>>(i).map_err(read)?.map(|n| Value::Int(n.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map_err(read)?.map(Value::Float),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(i).map_err(read)?.map(|f| Value::Float(f.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(i).map_err(read)?.map(Value::Bool),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i).map_err(read)?.map(Value::Bytes),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            row.try_get::<_, Option<String>>(i).map_err(read)?.map(Value::String)
        }
        other => return Err(err!(Storage, "column {i} has type {other}, which Tabula does not read")),
    };
    match (value, ty) {
        (None, _) => Ok(Value::Null),
        (Some(v), None) => Ok(v),
        (Some(v), Some(ty)) => decode_as(v, ty),
    }
}

/// Maps a PostgreSQL failure into an [`Error`] naming the server.
/// Whether `e` says the connection is gone: closed, a failed socket, or the server ending
/// the session (SQLSTATE class 08, or 57P01-57P03: shut down, crashed, starting up).
/// Before a catalog is made in the current schema: refuses a schema that holds relations of
/// the names Tabula gives its own (`_tabula_*`, and `t<N>..` for its tables): the create
/// that met one would fail with the server's own words, using up a table id.
fn refuse_foreign_names(tx: &super::Tx, location: &str) -> Result<()> {
    let mut names = Vec::new();
    tx.query_each(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = CAST(current_schema() AS regnamespace)
         AND (c.relname LIKE '\\_tabula\\_%' OR c.relname ~ '^t[0-9]') ORDER BY c.relname LIMIT 5",
        &[],
        &[Some(ColumnType::String)],
        |row| {
            if let Some(Value::String(name)) = row.into_iter().next() {
                names.push(name);
            }
            Ok(true)
        },
    )?;
    if names.is_empty() {
        return Ok(());
    }
    Err(err!(
        InvalidArgument,
        "catalog '{location}': its schema holds no Tabula catalog but has relations named as Tabula names its own \
         ({}); a catalog keeps its tables in a schema of its own: give it another schema (a URL with \
         options=-csearch_path%3D<schema>), or move those relations out",
        names.join(", ")
    ))
}

fn connection_lost(e: &postgres::Error) -> bool {
    let io = std::error::Error::source(e).is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
    e.is_closed() || io || e.code().is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P0"))
}

pub(crate) fn pg_error(location: &str, e: postgres::Error) -> Error {
    use crate::error::ErrorCode;
    use postgres::error::SqlState;
    if connection_lost(&e) {
        return Error::new(
            ErrorCode::Disconnected,
            format!(
                "catalog '{location}': the connection to the server was lost ({e}); the server rolled the call \
                 back: retry it"
            ),
        )
        .with_source(e);
    }
    let code = match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => ErrorCode::DuplicateKey,
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            ErrorCode::Busy
        }
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => ErrorCode::Busy,
        _ => ErrorCode::Storage,
    };
    let hint = match code {
        ErrorCode::Busy => " (another writer holds what this call needs; retry)",
        ErrorCode::DuplicateKey => " (two live rows would share a primary key)",
        _ if e.code() == Some(&SqlState::DUPLICATE_TABLE) => {
            " (a relation Tabula did not make is in the catalog's schema under a name Tabula gives its tables, \
             t<N>; nothing was changed: move it out of the schema, which a catalog should have to itself)"
        }
        _ => "",
    };
    let detail = match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(more) => format!("{}: {} ({more})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => e.to_string(),
    };
    Error::new(code, format!("catalog '{location}': {detail}{hint}")).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_dollar_numbers_outside_quotes_only() {
        assert_eq!(dollar_params("SELECT ?1, ?12 FROM t WHERE a = ?2"), "SELECT $1, $12 FROM t WHERE a = $2");
        assert_eq!(dollar_params("SELECT '?1', \"?2\" || ?3"), "SELECT '?1', \"?2\" || $3");
        assert_eq!(dollar_params("SELECT 'it''s ?1' WHERE x = ?1"), "SELECT 'it''s ?1' WHERE x = $1");
        assert_eq!(dollar_params("VALUES (?, ?, ?5, ?)"), "VALUES ($1, $2, $5, $6)", "bare ? as SQLite numbers it");
    }

    const THIRTY_S: std::time::Duration = std::time::Duration::from_secs(30);

    /// Live rows from which a fill copies the table by default.
    const BIG: i64 = super::super::fill::REBUILD_FROM as i64;

    /// Connections use TLS as the URL's `sslmode` says, against the test server's
    /// self-signed certificate (`TABULA_TEST_POSTGRES_CA`): `disable` never, `require`
    /// always (unchecked, as libpq), `verify-full` only with the certificate trusted through
    /// `sslrootcert`, and refuses the server otherwise, saying so. A catalog works through it.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES) offering TLS (TABULA_TEST_POSTGRES_CA)"]
    fn connections_use_tls_as_the_url_says() {
        let url = std::env::var("TABULA_TEST_POSTGRES").expect("TABULA_TEST_POSTGRES names the test server");
        let ca = std::env::var("TABULA_TEST_POSTGRES_CA").expect("TABULA_TEST_POSTGRES_CA names its certificate");
        let tls = |query: &str| -> bool {
            let mut client = crate::connect_server(&format!("{url}?{query}")).unwrap();
            let sql = "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)";
            client.query_one(sql, &[]).unwrap().get(0)
        };
        assert!(!tls("sslmode=disable"));
        assert!(tls("sslmode=require"));
        assert!(tls("sslmode=prefer"), "the server offers it");
        assert!(tls(&format!("sslmode=verify-full&sslrootcert={ca}")));
        let e = crate::connect_server(&format!("{url}?sslmode=verify-full")).err().expect("an untrusted certificate");
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
        let (mut admin, schema) = server();
        let cat = crate::Catalog::connect(&format!(
            "{url}?sslmode=verify-full&sslrootcert={ca}&options=-csearch_path%3D{schema}"
        ))
        .unwrap();
        let t = cat
            .create_table("t", crate::Schema::new().required("n", crate::ColumnType::Int), crate::IfExists::Error)
            .unwrap();
        t.insert((0..10).map(|i| crate::row! {"n" => i})).unwrap();
        assert_eq!(t.count().unwrap(), 10);
        drop((t, cat));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// A reader whose transaction began before a compaction dropped a column, and reads the
    /// table after it committed, still sees every row, whether the compaction dropped the
    /// column in place or copied the table into a new one (a table rewritten in place,
    /// `CREATE .. INSERT .. DROP .. RENAME`, showed such a reader an empty table: rewrites
    /// are not MVCC-safe on PostgreSQL). The replaced table stays until a later compaction
    /// finds it old enough, and the catalog's integrity check counts it as kept.
    /// A page in row id order walks the row id index even where the planner has no
    /// statistics and would sort every row after the page's start (which made paged reads
    /// of fresh tables quadratic); the setting ends with the page.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_page_walks_the_row_id_index_of_a_table_without_statistics() {
        let (mut admin, schema) = server();
        admin
            .batch_execute(&format!(
                "CREATE TABLE {schema}.fresh(_rowid_ BIGINT PRIMARY KEY, c0 TEXT) WITH (autovacuum_enabled = false);
                 INSERT INTO {schema}.fresh SELECT i, CASE WHEN i % 4 = 0 THEN 'a' ELSE 'b' END
                 FROM generate_series(1, 20000) i"
            ))
            .unwrap();
        // (Writable: it makes the schema a catalog; a read is read-only either way.)
        let reader = PgStore::connect(&url_in(&schema), false, THIRTY_S).unwrap();
        let page = "EXPLAIN SELECT _rowid_ FROM fresh WHERE c0 = 'a' AND _rowid_ > 100 ORDER BY _rowid_ LIMIT 50";
        let (paged, after) = reader
            .read(|tx| {
                let plan = |paged: bool| -> crate::error::Result<String> {
                    let mut lines = Vec::new();
                    let each = |v: Vec<Value>| {
                        lines.push(v.first().map(|l| l.to_string()).unwrap_or_default());
                        Ok(true)
                    };
                    match paged {
                        true => tx.query_page(page, &[], &[Some(ColumnType::String)], each)?,
                        false => tx.query_each(page, &[], &[Some(ColumnType::String)], each)?,
                    }
                    Ok(lines.join("\n"))
                };
                Ok((plan(true)?, plan(false)?))
            })
            .unwrap();
        assert!(!paged.contains("Sort") && paged.contains("Index Scan"), "{paged}");
        assert!(after.contains("Sort"), "the planner's guess, again after the page: {after}");
        // Pages in a row turn sorts off once; the statement after them turns them back on.
        let rows = "SELECT _rowid_ FROM fresh WHERE _rowid_ > ?1 ORDER BY _rowid_ LIMIT 10";
        let pages_then_a_count = || {
            let before = reader.exchanges();
            reader
                .read(|tx| {
                    for after in [0, 10, 20] {
                        tx.query_page(rows, &[Value::Int(after)], &[None], |_| Ok(true))?;
                    }
                    tx.query_i64("SELECT count(*) FROM fresh", &[])
                })
                .unwrap();
            reader.exchanges() - before
        };
        pages_then_a_count();
        // BEGIN, sorts off, 3 pages, sorts on, the count, COMMIT.
        assert_eq!(pages_then_a_count(), 8);
        drop(reader);
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_reader_across_a_compaction_sees_every_row() {
        use crate::{Catalog, ColumnType, IfExists, Retention, Schema};
        use std::sync::mpsc;
        for rebuild in [false, true] {
            let (mut admin, schema) = server();
            let url = url_in(&schema);
            let cat = Catalog::connect(&url).unwrap();
            let t = cat.create_table("t", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
            t.insert((0..100).map(|i| crate::row! {"n" => i})).unwrap();
            t.add_column("gone", ColumnType::Int, 1, IfExists::Error).unwrap();
            t.drop_column("gone").unwrap();
            let physical = |admin: &mut postgres::Client| -> Vec<String> {
                let sql = "SELECT table_name::text FROM information_schema.columns
                           WHERE table_schema = $1 AND column_name = '_rowid_' ORDER BY 1";
                admin.query(sql, &[&schema]).unwrap().iter().map(|r| r.get(0)).collect()
            };
            let before = physical(&mut admin);
            let reader = PgStore::connect(&url, true, THIRTY_S).unwrap();
            let (began, compact) = mpsc::channel::<()>();
            let (compacted, read_on) = mpsc::channel::<()>();
            let table = &t;
            std::thread::scope(|s| {
                s.spawn(move || {
                    compact.recv().unwrap();
                    let slots = if rebuild { 0 } else { 1_000 };
                    let keep = std::time::Duration::from_secs(600);
                    super::super::compact::TEST_SERVER_COMPACTION.with(|c| c.set((slots, keep)));
                    let report = table.compact(Retention::Versions(1)).unwrap();
                    assert_eq!(report.columns_removed, 1, "{report:?}");
                    compacted.send(()).unwrap();
                });
                let seen = reader
                    .read(|tx| {
                        // The transaction's snapshot is taken by its first statement.
                        let phys = tx.phys_of(crate::types::TableId(1))?;
                        began.send(()).unwrap();
                        read_on.recv().unwrap();
                        tx.query_i64(&format!("SELECT count(*) FROM {phys}"), &[])
                    })
                    .unwrap();
                assert_eq!(seen, 100, "rebuild {rebuild}: the reader's snapshot shows every row after the compaction");
            });
            assert_eq!(t.count().unwrap(), 100);
            cat.integrity_check().unwrap();
            let after = physical(&mut admin);
            match rebuild {
                false => assert_eq!(after, before, "dropped in place"),
                true => assert_eq!(after.len(), 2, "the new table and the replaced one: {after:?}"),
            }
            if rebuild {
                // Once old enough, the next compaction drops the replaced table.
                super::super::compact::TEST_SERVER_COMPACTION.with(|c| c.set((0, std::time::Duration::ZERO)));
                t.add_column("gone_too", ColumnType::Int, 1, IfExists::Error).unwrap();
                t.drop_column("gone_too").unwrap();
                t.compact(Retention::Versions(1)).unwrap();
                let last = physical(&mut admin);
                assert!(!last.contains(&before[0]), "{last:?}");
                assert_eq!(t.count().unwrap(), 100);
                cat.integrity_check().unwrap();
            }
            drop((t, cat, reader));
            admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
        }
    }

    /// A database whose encoding is not UTF-8 is refused at connect, saying how to make one
    /// that is (in `SQL_ASCII` a server counts bytes, not characters, and keeps any bytes).
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_database_not_in_utf8_is_refused() {
        let (mut admin, schema) = server();
        let db = format!("{schema}_ascii");
        admin.batch_execute(&format!("CREATE DATABASE {db} ENCODING 'SQL_ASCII' TEMPLATE template0")).unwrap();
        let url = std::env::var("TABULA_TEST_POSTGRES").unwrap();
        let (base, query) = url.split_once('?').map_or((url.as_str(), ""), |(b, q)| (b, q));
        let other =
            format!("{}/{db}{}{query}", base.rsplit_once('/').unwrap().0, if query.is_empty() { "" } else { "?" });
        let Err(e) = crate::Catalog::connect(&other) else { panic!("a SQL_ASCII database was taken") };
        assert!(e.to_string().contains("SQL_ASCII") && e.to_string().contains("ENCODING 'UTF8'"), "{e}");
        let Err(e) = crate::Catalog::connect_read_only(&other) else { panic!("a SQL_ASCII database was read") };
        assert!(e.to_string().contains("SQL_ASCII"), "{e}");
        admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// A reader whose transaction began before a table was dropped, and reads it after the
    /// drop committed, still sees the rows its snapshot shows (the table was dropped at once,
    /// and such a reader failed: "relation does not exist"); the dropped table's physical
    /// tables (a view's own cells too) are trash until old enough, then a later drop
    /// removes them.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_reader_across_a_drop_still_reads_the_table() {
        use crate::{Catalog, ColumnType, IfExists, Schema};
        use std::sync::mpsc;
        let (mut admin, schema) = server();
        let url = url_in(&schema);
        let cat = Catalog::connect(&url).unwrap();
        let t = cat.create_table("t", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
        t.insert((0..100).map(|i| crate::row! {"n" => i})).unwrap();
        let v = cat.create_view("v", &t, crate::lit(true), IfExists::Error).unwrap();
        v.add_column("note", ColumnType::String, crate::Value::Null, IfExists::Error).unwrap();
        let tables = |admin: &mut postgres::Client| physical_tables(admin, &schema);
        let before = tables(&mut admin);
        assert_eq!(before, ["t1", "t2", "t2_stored"], "the table's rows, the view's, the view's own cells");
        let reader = PgStore::connect(&url, true, THIRTY_S).unwrap();
        let (began, drop_it) = mpsc::channel::<()>();
        let (dropped, read_on) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let cat = &cat;
            s.spawn(move || {
                drop_it.recv().unwrap();
                cat.drop_table("v", crate::Force::No).unwrap();
                cat.drop_table("t", crate::Force::No).unwrap();
                dropped.send(()).unwrap();
            });
            let seen = reader
                .read(|tx| {
                    let phys = tx.phys_of(crate::types::TableId(1))?;
                    began.send(()).unwrap();
                    read_on.recv().unwrap();
                    tx.query_i64(&format!("SELECT count(*) FROM {phys}"), &[])
                })
                .unwrap();
            assert_eq!(seen, 100, "the reader's snapshot shows every row after the drop");
        });
        cat.integrity_check().unwrap();
        assert_eq!(tables(&mut admin), before, "kept as trash");
        // Once old enough, the next drop removes them.
        super::super::compact::TEST_SERVER_COMPACTION.with(|c| c.set((1_000, std::time::Duration::ZERO)));
        let u = cat.create_table("u", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
        drop(u);
        cat.drop_table("u", crate::Force::No).unwrap();
        let left = tables(&mut admin);
        assert!(before.iter().all(|phys| !left.contains(phys)), "{left:?}");
        cat.integrity_check().unwrap();
        drop((t, v, cat, reader));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// A computed column added to a big table is filled by copying the table into a new
    /// physical table (`Tx::fill_by_rebuild`), which `phys:<id>` then names: a reader whose
    /// snapshot predates the fill still reads the old one, filed as trash, with every row; a
    /// small table, or one whose last copy still waits as trash for such a reader, is
    /// updated in place.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_big_fill_copies_the_table_and_readers_in_flight_keep_reading_the_old_one() {
        use crate::{col, Catalog, ColumnOptions};
        use std::sync::mpsc;
        let (mut admin, schema) = server();
        let url = url_in(&schema);
        let cat = Catalog::connect(&url).unwrap();
        let small = strings_table(&cat, "small", 100);
        let big = strings_table(&cat, "big", BIG);
        let reader = PgStore::connect(&url, true, THIRTY_S).unwrap();
        let phys = |id: i64| reader.read(|tx| tx.phys_of(crate::types::TableId(id))).unwrap();
        assert_eq!((phys(1), phys(2)), ("t1".to_string(), "t2".to_string()));
        let (began, fill_it) = mpsc::channel::<()>();
        let (filled, read_on) = mpsc::channel::<()>();
        let trash = |admin: &mut postgres::Client| -> i64 {
            let sql = format!("SELECT count(*) FROM {schema}._tabula_meta WHERE key = 'trash:t2'");
            admin.query_one(&sql, &[]).unwrap().get(0)
        };
        std::thread::scope(|s| {
            let (big, phys, admin) = (&big, &phys, &mut admin);
            s.spawn(move || {
                fill_it.recv().unwrap();
                big.add_computed_column("n", col("s").length(), ColumnOptions::default()).unwrap();
                let new = phys(2);
                assert!(new.starts_with("t2_"), "{new}");
                assert_eq!(trash(admin), 1, "the old physical table waits as trash for the reader that began before");
                // While that copy waits, the next fill updates in place: a run of fills does
                // not take the table's space again for each.
                big.add_computed_column("long", col("s").length().gt(3), ColumnOptions::default()).unwrap();
                assert_eq!(phys(2), new, "no second copy while the first waits");
                filled.send(()).unwrap();
            });
            let seen = reader
                .read(|tx| {
                    let phys = tx.phys_of(crate::types::TableId(2))?;
                    began.send(()).unwrap();
                    read_on.recv().unwrap();
                    tx.query_i64(&format!("SELECT count(*) FROM {phys}"), &[])
                })
                .unwrap();
            assert_eq!(seen, BIG, "the reader's snapshot shows every row after the fill");
        });
        small.add_computed_column("n", col("s").length(), ColumnOptions::default()).unwrap();
        assert_eq!(phys(1), "t1", "a small table is updated in place");
        // `OpenOptions::copy_fills_from` moves the threshold: a copy from 100 rows, never.
        let eager = crate::OpenOptions::new().copy_fills_from(100).connect(&url).unwrap();
        eager.get_table("small").unwrap().add_computed_column("m", col("n") + 1, ColumnOptions::default()).unwrap();
        assert!(phys(1).starts_with("t1_"), "{}", phys(1));
        strings_table(&cat, "kept", BIG);
        let never = crate::OpenOptions::new().copy_fills_from(u64::MAX).connect(&url).unwrap();
        never.get_table("kept").unwrap().add_computed_column("n", col("s").length(), ColumnOptions::default()).unwrap();
        assert_eq!(phys(3), "t3", "a big table updated in place");
        assert_eq!(small.select([col("m")]).collect().unwrap()[0].get::<i64>("m").unwrap(), 3);
        let lengths = big.select([col("n")]).collect().unwrap();
        assert!(lengths.iter().all(|r| r.get::<i64>("n").unwrap() >= 2), "every row filled");
        let long = big.select_all().where_(col("long")).count().unwrap();
        assert_eq!(long, (0..BIG).filter(|i| i.to_string().len() > 2).count() as u64);
        cat.integrity_check().unwrap();
        drop((small, big, cat, eager, never, reader));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// A physical table filed as trash (here by a fill's copy) stays while a reader whose
    /// snapshot predates the copy is still in its transaction, however many calls come; a
    /// call after that reader ends drops it, long before its 10 minutes.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn trash_goes_as_soon_as_no_reader_can_name_it() {
        use crate::{col, Catalog, ColumnOptions, ColumnType, IfExists, Schema};
        use std::sync::mpsc;
        let (mut admin, schema) = server();
        let url = url_in(&schema);
        let cat = Catalog::connect(&url).unwrap();
        let shape = || Schema::new().required("s", ColumnType::String);
        let big = strings_table(&cat, "big", BIG);
        let tables = |admin: &mut postgres::Client| physical_tables(admin, &schema);
        let churn = |cat: &Catalog| {
            cat.create_table("other", shape(), IfExists::Error).unwrap();
            cat.drop_table("other", crate::Force::No).unwrap();
        };
        let reader = PgStore::connect(&url, true, THIRTY_S).unwrap();
        let (began, fill_it) = mpsc::channel::<()>();
        let (checked, read_on) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            // Moved in, so that a failed assertion below drops it and the reader stops waiting.
            let checked = checked;
            let reader = &reader;
            s.spawn(move || {
                let seen = reader
                    .read(|tx| {
                        let phys = tx.phys_of(crate::types::TableId(1))?;
                        began.send(()).unwrap();
                        read_on.recv().unwrap();
                        tx.query_i64(&format!("SELECT count(*) FROM {phys}"), &[])
                    })
                    .unwrap();
                assert_eq!(seen, BIG);
            });
            fill_it.recv().unwrap();
            big.add_computed_column("n", col("s").length(), ColumnOptions::default()).unwrap();
            churn(&cat);
            churn(&cat);
            assert!(
                tables(&mut admin).contains(&"t1".to_string()),
                "kept while the reader is in: {:?}",
                tables(&mut admin)
            );
            checked.send(()).unwrap();
        });
        // Other tests' sessions on the same server may hold a snapshot as old for a moment
        // (they count as readers): a few calls, a tenth of a second apart.
        let mut left = Vec::new();
        for _ in 0..50 {
            churn(&cat);
            left = tables(&mut admin);
            if !left.contains(&"t1".to_string()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // The copy is there, the old table gone (the tables the churn dropped may wait a
        // moment more, for other tests' sessions).
        assert!(left.iter().any(|t| t.starts_with("t1_")) && !left.contains(&"t1".to_string()), "{left:?}");
        assert_eq!(big.select_all().where_(col("n").ge(2)).count().unwrap(), BIG as u64);
        cat.integrity_check().unwrap();
        drop((big, cat, reader));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// A pooled connection that the server ended while it was idle (a restart, an idle
    /// timeout, a proxy) is replaced when a call takes it, without an error, and so is the
    /// connection of remembered UDF results. A connection lost during a call fails that
    /// call with `Disconnected`, saying to retry; the server rolled it back, and the retry
    /// succeeds.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_connection_the_server_ended_is_replaced_and_a_call_it_broke_says_retry() {
        use crate::{col, row, Catalog, ColumnOptions, ColumnType, ErrorCode, IfExists, Schema, Udf};
        let (admin, schema) = server();
        let admin = std::sync::Arc::new(std::sync::Mutex::new(admin));
        let cat = Catalog::connect(&format!("{}&application_name={schema}", url_in(&schema))).unwrap();
        // Ends the sessions of the catalog's connections (they carry the schema's name).
        let ender = |admin: std::sync::Arc<std::sync::Mutex<postgres::Client>>, name: String| {
            move || -> u64 {
                let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1";
                let ended = admin.lock().unwrap().execute(sql, &[&name]).unwrap();
                // The server ends them a moment later.
                std::thread::sleep(std::time::Duration::from_millis(100));
                ended
            }
        };
        let end_sessions = ender(admin.clone(), schema.clone());
        let t = cat.create_table("t", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
        t.insert((0..10).map(|i| row! {"n" => i})).unwrap();
        assert!(end_sessions() >= 1, "the catalog's idle connection");
        assert_eq!(t.count().unwrap(), 10, "a new connection took the ended one's place");

        let end_in_call = ender(admin.clone(), schema.clone());
        let breaks = Udf::new("breaks", 1, move |n: i64| {
            if n == 5 {
                end_in_call();
            }
            n
        });
        cat.register(&breaks);
        let e = t.add_computed_column("x", breaks.call([col("n")]), ColumnOptions::default()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Disconnected, "{e}");
        assert!(e.to_string().contains("retry it"), "{e}");
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let fine = Udf::new("fine", 1, move |n: i64| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            n * 2
        })
        .remember(true);
        cat.register(&fine);
        t.add_computed_column("x", fine.call([col("n")]), ColumnOptions::default()).unwrap();
        assert_eq!(t.select_all().where_(col("x").eq(18)).count().unwrap(), 1);
        assert_eq!(t.history().unwrap().len(), 3, "create, insert, the column: nothing of the broken call");
        // The connection of remembered results too (it lives as long as the handle; a
        // broken one would make every lookup miss, silently: it is only a cache).
        assert!(end_sessions() >= 1);
        t.add_computed_column("y", fine.call([col("n") + 1]), ColumnOptions::default()).unwrap();
        assert_eq!(t.select_all().where_(col("y").eq(20)).count().unwrap(), 1);
        let paid = calls.load(std::sync::atomic::Ordering::Relaxed);
        t.add_computed_column("z", fine.call([col("n") + 1]), ColumnOptions::default()).unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), paid, "every result of y was remembered");
        drop((t, cat, breaks));
        admin.lock().unwrap().batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// The first load of an empty table copies its rows without the btree on `_rowid_` and
    /// builds it at the end (a btree filled row by row doubled the copy): after the load the
    /// table has its primary key again (the integrity check says so), whether the load
    /// succeeded or failed in its second copy (undone with its transaction, the index with
    /// it); and a reader already in the table neither waits for the load nor makes it wait
    /// (the load keeps the index instead).
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_first_load_builds_the_rowid_index_after_its_rows() {
        use crate::{row, Catalog, ColumnType, IfExists, Schema};
        let (mut admin, schema) = server();
        let cat = Catalog::connect(&url_in(&schema)).unwrap();
        let shape = || Schema::new().required("n", ColumnType::Int).required("s", ColumnType::String);
        let rows = |n: i64, bad: Option<i64>| {
            (0..n)
                .map(move |i| row! {"n" => i, "s" => if Some(i) == bad { "a\0b".to_string() } else { format!("s{i}") }})
        };
        let primary_keys = |admin: &mut postgres::Client| -> i64 {
            let sql = "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                       WHERE c.relnamespace = CAST(current_schema() AS regnamespace) AND i.indisprimary";
            admin.query_one(sql, &[]).unwrap().get(0)
        };

        // Two copies (65,536 rows of four values each, then the rest).
        let t = cat.create_table("t", shape(), IfExists::Error).unwrap();
        let keys = primary_keys(&mut admin);
        t.insert(rows(70_000, None)).unwrap();
        assert_eq!(primary_keys(&mut admin), keys);
        cat.integrity_check().unwrap();
        let found = t.select([crate::col("s")]).where_(crate::col("n").eq(69_999)).collect().unwrap();
        assert_eq!(found.len(), 1);

        // A value the server refuses in the second copy: nothing stays, the index is there.
        let u = cat.create_table("u", shape(), IfExists::Error).unwrap();
        let e = u.insert(rows(70_000, Some(69_000))).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
        assert_eq!(u.count().unwrap(), 0);
        cat.integrity_check().unwrap();

        // A reader in the table: the load neither waits for it nor drops the index under it.
        let id: i64 = admin.query_one("SELECT id FROM _tabula_tables WHERE path = 'u'", &[]).unwrap().get(0);
        let mut reader =
            postgres::Client::connect(&std::env::var("TABULA_TEST_POSTGRES").unwrap(), postgres::NoTls).unwrap();
        let mut in_table = reader.transaction().unwrap();
        in_table.batch_execute(&format!("SET LOCAL search_path TO {schema}; SELECT count(*) FROM t{id}")).unwrap();
        let (done, loaded) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| done.send(u.insert(rows(70_000, None)).map(|w| w.inserted)).unwrap());
            let result = loaded.recv_timeout(std::time::Duration::from_secs(30));
            assert!(matches!(result, Ok(Ok(70_000))), "the load waited for the reader: {result:?}");
        });
        in_table.commit().unwrap();
        assert_eq!(u.count().unwrap(), 70_000);
        cat.integrity_check().unwrap();
        drop((t, u, cat));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// An append of many rows without a key opens one copy once it has gathered its first
    /// rows (`STREAM_ROWS`) and the rest go in while the caller is still producing them:
    /// the server has stored rows of the call before its last row is made (seen through
    /// `pg_stat_progress_copy` from inside the rows' iterator; before, the rows were
    /// gathered in batches of 65,536 and copied after). The rows get consecutive ids that
    /// the table's sequence goes on from, into an empty table (a first load, its index
    /// built after) and into a table with rows alike, and rows can come from a stream of
    /// the same handle (its pages are read on another connection meanwhile).
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_large_append_streams_its_rows_into_the_server_while_they_are_made() {
        use crate::{col, row, Catalog, ColumnType, IfExists, Schema};
        let (mut admin, schema) = server();
        let cat = Catalog::connect(&url_in(&schema)).unwrap();
        let shape = || Schema::new().required("n", ColumnType::Int).required("s", ColumnType::String);
        let t = cat.create_table("t", shape(), IfExists::Error).unwrap();
        let id = table_id(&mut admin, "t");
        let (copying, inserted) = copying_at_row_9000(&mut admin, id, |at_row| {
            t.insert((0..12_345_i64).map(|i| {
                at_row(i);
                row! {"n" => i, "s" => format!("{i:0>100}")}
            }))
        });
        assert_eq!(inserted.unwrap().inserted, 12_345);
        let copying = copying.expect("the server was copying rows while row 9,000 was made");
        assert!(copying < 12_345, "{copying}");
        let ids = |admin: &mut postgres::Client| -> (i64, i64, i64) {
            let r = admin.query_one(&format!("SELECT min(_rowid_), max(_rowid_), count(*) FROM t{id}"), &[]).unwrap();
            (r.get(0), r.get(1), r.get(2))
        };
        let (lo, hi, n) = ids(&mut admin);
        assert_eq!((hi - lo + 1, n), (12_345, 12_345), "consecutive row ids");
        // Into a table with rows: the ids go on, and a small append after takes the next ones.
        t.insert((0..7_000).map(|i| row! {"n" => 20_000 + i, "s" => "more"})).unwrap();
        t.insert([row! {"n" => -1, "s" => "last"}]).unwrap();
        assert_eq!(ids(&mut admin), (lo, lo + 19_345, 19_346));
        let last: i64 = admin.query_one(&format!("SELECT _rowid_ FROM t{id} WHERE c0 = -1"), &[]).unwrap().get(0);
        assert_eq!(last, lo + 19_345);
        // From a stream of the same handle, into another table.
        let u = cat.create_table("u", shape(), IfExists::Error).unwrap();
        assert_eq!(u.insert_results(t.select_all().stream().unwrap()).unwrap().inserted, 19_346);
        assert_eq!(u.select_all().where_(col("s").eq("more")).count().unwrap(), 7_000);
        cat.integrity_check().unwrap();
        drop((t, u, cat));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// A table with a key streams its first load too (no live row can hold a key yet) and
    /// still names two rows of the load with the same key, whatever rows lie between them,
    /// storing nothing; an append to it once it has rows looks each batch's keys up before
    /// copying it, and names a row whose key a live row has.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_first_load_of_a_keyed_table_streams_and_still_names_a_repeated_key() {
        use crate::{row, Catalog, ColumnType, ErrorCode, IfExists, Schema};
        let (mut admin, schema) = server();
        let cat = Catalog::connect(&url_in(&schema)).unwrap();
        let shape =
            Schema::new().required("sku", ColumnType::String).required("n", ColumnType::Int).primary_key(["sku"]);
        let t = cat.create_table("t", shape, IfExists::Error).unwrap();
        let rows = |n: i64, sku: fn(i64) -> String| (0..n).map(move |i| row! {"sku" => sku(i), "n" => i});
        let watched = |at_row: &mut dyn FnMut(i64)| {
            t.insert((0..12_000).map(|i| {
                at_row(i);
                row! {"sku" => format!("k{i}"), "n" => i}
            }))
        };
        let e = t.insert(rows(12_000, |i| format!("k{}", if i == 11_000 { 3 } else { i }))).unwrap_err();
        assert_eq!(e.code(), ErrorCode::DuplicateKey, "{e}");
        assert!(e.to_string().contains("rows 3 and 11000") && e.to_string().contains("sku = \"k3\""), "{e}");
        assert_eq!((t.count().unwrap(), t.history().unwrap().len()), (0, 1));

        let id = table_id(&mut admin, "t");
        let (copying, inserted) = copying_at_row_9000(&mut admin, id, watched);
        assert_eq!(inserted.unwrap().inserted, 12_000);
        assert!(copying.is_some(), "the server was copying rows while row 9,000 was made");

        let e = t.insert(rows(8_000, |i| format!("{}{i}", if i == 7_500 { "k" } else { "new" }))).unwrap_err();
        assert!(e.to_string().contains("row 7500: 't' already has a row with primary key sku = \"k7500\""), "{e}");
        t.insert(rows(8_000, |i| format!("new{i}"))).unwrap();
        assert_eq!(t.count().unwrap(), 20_000);
        cat.integrity_check().unwrap();
        drop((t, cat));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// The id of catalog table `path` (its physical table is `t<id>`).
    fn table_id(admin: &mut postgres::Client, path: &str) -> i64 {
        admin.query_one("SELECT id FROM _tabula_tables WHERE path = $1", &[&path]).unwrap().get(0)
    }

    /// Runs `insert`, whose rows are made lazily, and says how many rows the server had
    /// copied into table `t<id>` by the time row 9,000 was made (waiting for it up to 20
    /// s): `None` if it was copying none.
    fn copying_at_row_9000<T>(
        admin: &mut postgres::Client,
        id: i64,
        insert: impl FnOnce(&mut dyn FnMut(i64)) -> T,
    ) -> (Option<i64>, T) {
        let sql = "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy WHERE relid = to_regclass($1)";
        let mut seen = None;
        let mut at_row = |i: i64| {
            let started = std::time::Instant::now();
            while i == 9_000 && seen.is_none() && started.elapsed() < std::time::Duration::from_secs(20) {
                let copied: i64 = admin.query_one(sql, &[&format!("t{id}")]).unwrap().get(0);
                seen = Some(copied).filter(|n| *n > 0);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        };
        let out = insert(&mut at_row);
        (seen, out)
    }

    /// A call whose rows fail while they stream in (its rows' source fails, or panics)
    /// leaves nothing: the copy is abandoned, the table is as it was, and the next calls
    /// work, on a pooled connection or a new one.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn an_append_that_fails_while_its_rows_stream_in_leaves_nothing() {
        use crate::{row, Catalog, ColumnType, IfExists, Schema};
        let (mut admin, schema) = server();
        let cat = Catalog::connect(&url_in(&schema)).unwrap();
        let t = cat.create_table("t", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
        t.insert((0..10).map(|i| row! {"n" => i})).unwrap();
        let before = (t.version().unwrap(), t.count().unwrap());
        let failing = (0..20_000_i64).map(|i| match i {
            15_000 => Err(err!(InvalidArgument, "the source broke at row 15,000")),
            _ => Ok(row! {"n" => i}),
        });
        let e = t.insert_results(failing).unwrap_err();
        assert!(e.to_string().contains("the source broke"), "{e}");
        assert_eq!((t.version().unwrap(), t.count().unwrap()), before);
        let panicking = (0..20_000_i64).map(|i| {
            assert!(i != 12_000, "a source that panics");
            row! {"n" => i}
        });
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.insert(panicking)));
        assert!(caught.is_err());
        assert_eq!((t.version().unwrap(), t.count().unwrap()), before);
        t.insert((0..6_000).map(|i| row! {"n" => i})).unwrap();
        assert_eq!(t.count().unwrap(), 6_010);
        cat.integrity_check().unwrap();
        drop((t, cat));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// A connection to the test server, and a schema of its own that is dropped after.
    /// The tests that need one are ignored unless asked for (`cargo test -- --ignored`, as
    /// `.ci/run` does with the server it starts), so a run without a server reports them
    /// ignored instead of passing them untried.
    fn server() -> (postgres::Client, String) {
        let url = std::env::var("TABULA_TEST_POSTGRES")
            .expect("TABULA_TEST_POSTGRES=postgres://user@host:port/db names the test server (`.ci/postgres start`)");
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("the test server answers");
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let schema =
            format!("exec_test_{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        client.batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path TO {schema}")).expect("a schema");
        (client, schema)
    }

    /// The physical row tables (`t<id>`, `t<id>_<micros>`) in `schema`, by name.
    fn physical_tables(admin: &mut postgres::Client, schema: &str) -> Vec<String> {
        let sql = "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND tablename ~ '^t[0-9]' ORDER BY 1";
        admin.query(sql, &[&schema]).unwrap().iter().map(|r| r.get(0)).collect()
    }

    /// Table `name(s String)` in `cat` with `n` rows `s0, s1, ..`.
    fn strings_table(cat: &crate::Catalog, name: &str, n: i64) -> crate::Table {
        let shape = crate::Schema::new().required("s", crate::ColumnType::String);
        let t = cat.create_table(name, shape, crate::IfExists::Error).unwrap();
        t.insert((0..n).map(|i| crate::row! {"s" => format!("s{i}")})).unwrap();
        t
    }

    /// The URL of the test server with `schema` as the search path of its connections.
    fn url_in(schema: &str) -> String {
        let url = std::env::var("TABULA_TEST_POSTGRES").unwrap_or_default();
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-csearch_path%3D{schema}")
    }

    /// The store's directory operations (shared SQL, run through the executor) give the
    /// same answers on a server as on SQLite, and a failed call leaves nothing behind.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn directory_operations_answer_on_postgres_as_on_sqlite() {
        use crate::path::Path;
        let (mut admin, schema) = server();
        let pg = PgStore::connect(&url_in(&schema), false, THIRTY_S).unwrap();
        let lite = super::super::Store::in_memory().unwrap();
        let p = |s: &str| Path::parse(s).unwrap();
        let script = |tx: &super::super::Tx| -> Result<Vec<String>> {
            for d in ["app", "app/sub", "app/sub/deep", "app0", "apps", "zeta"] {
                tx.insert_dir(&p(d))?;
            }
            tx.move_entries(&p("app/sub"), &p("app/moved"))?;
            tx.delete_dir(&p("zeta"))?;
            let mut out: Vec<String> = tx
                .list_entries(&Path::root(), true)?
                .into_iter()
                .map(|(path, kind)| format!("{path} {kind:?}"))
                .collect();
            out.push(format!("{:?}", tx.entry_kind(&p("app/moved/deep"))?));
            out.push(format!("{:?}", tx.entry_kind(&p("app/sub"))?));
            out.extend(tx.list_entries(&p("app"), false)?.into_iter().map(|(path, _)| path.to_string()));
            Ok(out)
        };
        let on_pg = pg.write(script).unwrap();
        let on_lite = lite.write(script).unwrap();
        assert_eq!(on_pg, on_lite);
        assert!(on_pg.contains(&"app/moved/deep Dir".to_string()), "{on_pg:?}");
        // A call that fails half way leaves nothing: the first insert is rolled back too.
        let e = pg
            .write(|tx| {
                tx.insert_dir(&p("new"))?;
                tx.insert_dir(&p("app"))
            })
            .unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::DuplicateKey, "{e}");
        assert_eq!(pg.read(|tx| tx.entry_kind(&p("new"))).unwrap().map(|k| format!("{k:?}")), None);
        // Connecting again finds the catalog, of this format.
        let again = PgStore::connect(&url_in(&schema), false, THIRTY_S).unwrap();
        assert_eq!(again.read(|tx| tx.format_version()).unwrap(), super::super::FORMAT_VERSION);
        drop((pg, again));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// An insert and a column fill larger than one copy and one array update: every row
    /// gets its rowid and value once, the rowids of one insert are consecutive, revert
    /// removes them all, and the fill gave the fresh table statistics (without them each
    /// page of the fill sorted the whole table: 1.9 s instead of 0.5 for 100,000 rows).
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn inserts_and_fills_larger_than_one_batch_write_every_row_once() {
        use crate::{col, Catalog, ColumnOptions, ColumnType, IfExists, Schema, Udf};
        let (mut admin, schema) = server();
        let cat = Catalog::connect(&url_in(&schema)).unwrap();
        // Sixteen values a row with its id: 16,384 rows a copy; one computed column: 65,536
        // rows an array update.
        let extra: Vec<String> = (1..16).map(|k| format!("x{k}")).collect();
        let schema_ =
            extra.iter().fold(Schema::new().required("n", ColumnType::Int), |s, x| s.nullable(x, ColumnType::Int));
        let t = cat.create_table("t", schema_, IfExists::Error).unwrap();
        let n: i64 = 70_000;
        let row = |i: i64| crate::row! {"n" => i};
        t.insert((0..n).map(row)).unwrap();
        t.insert((n..n + 10).map(row)).unwrap();
        let phys: String = admin
            .query_one(
                "SELECT table_name::text FROM information_schema.columns WHERE table_schema = $1 AND column_name = '_rowid_'",
                &[&schema],
            )
            .unwrap()
            .get(0);
        let (count, low, high): (i64, i64, i64) = admin
            .query_one(&format!("SELECT count(*), min(_rowid_), max(_rowid_) FROM {phys}"), &[])
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .unwrap();
        assert_eq!((count, high - low + 1), (n + 10, n + 10), "each row once, at consecutive rowids");
        let double = Udf::new("double", 1, |x: i64| x * 2);
        cat.register(&double);
        t.add_computed_column("d", double.call([col("n")]), ColumnOptions::default()).unwrap();
        let rows = t.select([col("n"), col("d")]).collect().unwrap();
        assert_eq!(rows.len() as i64, n + 10);
        let wrong: Vec<_> =
            rows.iter().filter(|r| r.get::<i64>("d").ok() != r.get::<i64>("n").ok().map(|x| x * 2)).collect();
        assert!(wrong.is_empty(), "{} rows with a wrong value, first {:?}", wrong.len(), wrong.first());
        // Column statistics (the row count alone, which the first load's index build sets,
        // left the planner's guess as bad).
        let analyzed: i64 = admin
            .query_one("SELECT count(*) FROM pg_stats WHERE schemaname = $1 AND tablename = $2", &[&schema, &phys])
            .map(|r| r.get(0))
            .unwrap();
        assert!(analyzed >= 16, "the table's columns have statistics: {analyzed} of them do");
        t.revert().unwrap();
        t.revert().unwrap();
        assert_eq!(t.count().unwrap() as i64, n, "revert of the second insert leaves the first");
        drop((t, cat));
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// What a user does with a table, on a catalog on the server and on an in-memory one:
    /// every answer the same (computed columns included: builtins and UDFs computed in Rust
    /// on the server, builtins by SQLite's functions on a file), a refused write changes
    /// nothing.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_table_behaves_on_postgres_as_on_sqlite() {
        use crate::{col, lit, row, Catalog, ColumnType, IfExists, Schema};
        let (mut admin, schema) = server();
        let scenario = |cat: &Catalog| -> Vec<String> {
            let mut out = Vec::new();
            let rows = |t: &crate::Table| -> String {
                let rows = t.select_all().order_by(col("k")).collect().unwrap();
                rows.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join("; ")
            };
            cat.create_dir("app", IfExists::Error).unwrap();
            let t = cat
                .create_table(
                    "app/t",
                    Schema::new()
                        .required("k", ColumnType::Int)
                        .nullable("name", ColumnType::String)
                        .nullable("score", ColumnType::Float)
                        .required("ok", ColumnType::Bool)
                        .primary_key(["k"]),
                    IfExists::Error,
                )
                .unwrap();
            t.insert(
                (1..=3)
                    .map(|k| row! {"k" => k, "name" => format!("n{k}"), "score" => k as f64 / 2.0, "ok" => k % 2 == 0}),
            )
            .unwrap();
            t.insert([row! {"k" => 10, "name" => "ten", "ok" => true}, row! {"k" => 11, "ok" => false}]).unwrap();
            out.push(rows(&t));
            t.update([("name", lit("renamed"))], col("k").eq(2)).unwrap();
            t.delete(col("score").is_null()).unwrap();
            out.push(rows(&t));
            t.revert().unwrap();
            out.push(rows(&t));
            // Computed columns: computed in Rust on a server, by SQLite's functions on a file.
            let opts = crate::ColumnOptions::default;
            t.add_computed_column("len", col("name").length(), opts()).unwrap();
            t.add_computed_column("k10", col("k") * 10, opts()).unwrap();
            let inc = crate::Udf::new("inc", 1, |x: i64| x.checked_add(1).ok_or("overflow"));
            cat.register(&inc);
            t.add_computed_column("k11", inc.call([col("k10")]), opts()).unwrap();
            t.update([("name", lit("longer name"))], col("k").eq(1)).unwrap();
            t.insert([row! {"k" => 7, "name" => "seven", "ok" => true}]).unwrap();
            // Named locks with a lease.
            let lock = match cat.try_lock("migrate", std::time::Duration::from_secs(60)).unwrap() {
                crate::TryLock::Taken(lock) => lock,
                crate::TryLock::Held(h) => panic!("held by {h:?}"),
            };
            out.push(format!(
                "{}",
                matches!(cat.try_lock("migrate", std::time::Duration::from_secs(60)).unwrap(), crate::TryLock::Held(_))
            ));
            lock.release().unwrap();
            out.push(format!("{:?}", cat.lock_holder("migrate").unwrap().is_none()));
            // Batches by key: staged in a temporary table.
            t.upsert([row! {"k" => 7, "name" => "seven!"}, row! {"k" => 30, "name" => "thirty", "ok" => false}])
                .unwrap();
            let e = t.batch_update([row! {"k" => 99, "name" => "none"}], crate::IfMissing::Error).unwrap_err();
            out.push(format!("{:?}", e.code()));
            t.batch_update(
                [row! {"k" => 99, "name" => "none"}, row! {"k" => 30, "score" => 3.0}],
                crate::IfMissing::Ignore,
            )
            .unwrap();
            out.push(rows(&t));
            out.push(format!("{}", t.select_all().where_(col("len").gt(4)).count().unwrap()));
            // Conditions only Tabula's functions decide: evaluated in Rust on a server.
            t.update([("score", lit(9.5))], (col("k10") + col("len")).gt(60).and(col("ok"))).unwrap();
            t.delete(col("name").upper().eq("THIRTY")).unwrap();
            out.push(rows(&t));
            // Expressions only Tabula's functions compute: in Rust on a server.
            let long = t
                .select([col("k"), (col("k10") + col("len")).alias("sum")])
                .where_(col("name").length().gt(4).and(col("ok")));
            out.push(format!("{:?} {}", long.clone().order_by(col("k")).collect().unwrap(), long.count().unwrap()));
            out.push(format!("{:?}", t.select([col("k")]).where_(col("name").upper().eq("TEN")).collect().unwrap()));
            out.push(format!("{}", t.select_all().where_(col("k").gt(2).and(col("ok").eq(true))).count().unwrap()));
            out.push(rows(&cat.get_table("app/t:1").unwrap()));
            let e = t.insert([row! {"k" => 20, "ok" => true}, row! {"k" => 3, "ok" => true}]).unwrap_err();
            out.push(format!("{:?}: {e}", e.code()));
            let history = t.history().unwrap();
            out.push(
                history
                    .iter()
                    .map(|v| format!("{} {:?} +{} ~{} -{}", v.version, v.change, v.inserted, v.updated, v.deleted))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            out.push(rows(&t));
            // Snapshots, views (with a computed column of their own), previews, streams, diffs.
            let snap = cat.create_snapshot("app/snap", &t, IfExists::Error).unwrap();
            let view = cat.create_view("app/big", &t, col("k").ge(3), IfExists::Error).unwrap();
            view.add_computed_column("twice", col("k10") * 2, opts()).unwrap();
            t.insert([row! {"k" => 8, "name" => "eight", "ok" => false}]).unwrap();
            t.delete(col("k").eq(3)).unwrap();
            out.push(rows(&view));
            out.push(rows(&snap));
            out.push(format!("{:?}", t.select_all().order_by(col("k")).head(2).unwrap()));
            out.push(format!("{}", t.select_all().stream().unwrap().count()));
            let mut changes = Vec::new();
            t.diff(crate::Version(1), t.version().unwrap(), |c| {
                changes.push(format!("{c:?}"));
                Ok(true)
            })
            .unwrap();
            out.push(changes.join(" | "));
            let report = t.compact(crate::Retention::Versions(2)).unwrap();
            out.push(format!("{report:?}"));
            out.push(rows(&view));
            out.push(rows(&snap));
            out.push(format!("{:?}", cat.ls("app", crate::Recursive::Yes).unwrap()));
            cat.drop_table("app/big", crate::Force::No).unwrap();
            cat.drop_table("app/snap", crate::Force::No).unwrap();
            // Set to what only Tabula's functions compute: computed in Rust on a server.
            t.update([("k", col("k") * 100), ("name", col("name").upper())], col("k").lt(3)).unwrap();
            out.push(rows(&t));
            let e = t.update([("score", col("k").cast(ColumnType::String))], lit(true)).unwrap_err();
            out.push(format!("{:?}", e.code()));

            cat.drop_table("app/t", crate::Force::No).unwrap();
            out.push(format!("{:?}", cat.ls("", crate::Recursive::Yes).unwrap()));
            out
        };
        let server = Catalog::connect(&url_in(&schema)).unwrap();
        let on_server = scenario(&server);
        let on_file = scenario(&Catalog::in_memory().unwrap());
        assert_eq!(on_server, on_file);
        assert!(on_server.iter().any(|l| l.contains("{k: 100, name: \"LONGER NAME\"")), "{on_server:?}");
        let refusal = on_server.iter().find(|l| l.starts_with("DuplicateKey: "));
        assert!(
            refusal.is_some_and(|l| l.contains("row 1: 'app/t' already has a row with primary key k = 3")),
            "{on_server:?}"
        );
        // The Rust-evaluated update and delete changed rows (not vacuously equal).
        assert!(on_server.iter().any(|l| l.contains("score: 9.5") && !l.contains("thirty")), "{on_server:?}");
        let computed = on_server.iter().find(|l| l.contains("longer name")).cloned().unwrap_or_default();
        assert!(
            computed.contains("{k: 1, name: \"longer name\", score: 0.5, ok: false, len: 11, k10: 10, k11: 11}"),
            "{computed}"
        );
        drop(server);
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// Trash is dropped in one batch whose statements name the tables: a trash entry that
    /// names no table (a tampered catalog) fails the call that would drop it, which then
    /// leaves everything as it was, instead of running what the entry says.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn trash_that_names_no_table_fails_the_call_and_runs_nothing() {
        use crate::{Catalog, ColumnType, Force, IfExists, Schema};
        let (mut admin, schema) = server();
        let cat = Catalog::connect(&url_in(&schema)).unwrap();
        let shape = || Schema::new().required("s", ColumnType::String);
        cat.create_table("kept", shape(), IfExists::Error).unwrap();
        admin
            .batch_execute(&format!(
                "INSERT INTO {schema}._tabula_meta(key, value) VALUES ('trash:t1; DROP TABLE {schema}._tabula_dirs', '0')"
            ))
            .unwrap();
        let e = cat.drop_table("kept", Force::No).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::Storage, "{e}");
        assert!(e.to_string().contains("the trash names 't1; DROP TABLE"), "{e}");
        assert!(e.to_string().contains("which is no table's name"), "{e}");
        assert!(cat.get_table("kept").is_ok(), "the failed drop left the table");
        let dirs =
            format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}' AND tablename = '_tabula_dirs'");
        assert_eq!(admin.query_one(&dirs, &[]).unwrap().get::<_, i64>(0), 1);
        drop(cat);
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// What `call(1)` costs in exchanges with the server: `call(0)` ran before it, to
    /// prepare its statements on the connection (as a service's first calls do); `setup(n)`
    /// runs before `call(n)`, not counted.
    fn exchanges_of<T>(pg: &PgStore, setup: impl Fn(usize), call: impl Fn(usize) -> T) -> u64 {
        setup(0);
        drop(call(0));
        setup(1);
        let before = pg.exchanges();
        drop(call(1));
        pg.exchanges() - before
    }

    /// The exchanges with the server (each a round trip's latency on a network: a test
    /// server across a network answers in 0.5-1 ms) that the small calls a test suite or a
    /// service makes over and over cost. Each was 1.5-2x as many before a call's metadata
    /// came in one statement and a write's lock with its `BEGIN`.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn small_calls_take_few_exchanges_with_the_server() {
        use crate::{col, lit, row, Catalog, ColumnType, Force, IfExists, Schema};
        let (mut admin, schema) = server();
        let cat = Catalog::connect(&url_in(&schema)).unwrap();
        let super::super::Store::Postgres(pg) = cat.store() else { panic!("a server catalog") };
        let shape = || Schema::new().required("k", ColumnType::Int).nullable("s", ColumnType::String);
        let none = |_: usize| {};
        cat.create_dir("d", IfExists::Error).unwrap();
        let t = cat.create_table("d/t", shape(), IfExists::Error).unwrap();
        let costs = [
            ("create_dir", exchanges_of(pg, none, |n| cat.create_dir(format!("e{n}"), IfExists::Error).unwrap())),
            (
                "create_table",
                exchanges_of(pg, none, |n| cat.create_table(format!("d/t{n}"), shape(), IfExists::Error).unwrap()),
            ),
            ("get_table", exchanges_of(pg, none, |_| cat.get_table("d/t").unwrap())),
            ("insert of a row", exchanges_of(pg, none, |n| t.insert([row! {"k" => n as i64, "s" => "a"}]).unwrap())),
            ("insert of 10 rows", exchanges_of(pg, none, |_| t.insert((0..10).map(|k| row! {"k" => k})).unwrap())),
            ("count", exchanges_of(pg, none, |_| t.count().unwrap())),
            ("collect", exchanges_of(pg, none, |_| t.select_all().collect().unwrap())),
            ("update", exchanges_of(pg, none, |n| t.update([("s", lit("b"))], col("k").eq(n as i64)).unwrap())),
            ("delete", exchanges_of(pg, none, |n| t.delete(col("k").eq(n as i64)).unwrap())),
            (
                "drop_table",
                exchanges_of(
                    pg,
                    |n| drop(cat.create_table(format!("d/x{n}"), shape(), IfExists::Error).unwrap()),
                    |n| cat.drop_table(format!("d/x{n}"), Force::No).unwrap(),
                ),
            ),
            (
                "drop_dir of a table",
                exchanges_of(
                    pg,
                    |n| drop(cat.create_table(format!("e{n}/t"), shape(), IfExists::Error).unwrap()),
                    |n| cat.drop_dir(format!("e{n}"), Force::Yes).unwrap(),
                ),
            ),
        ];
        // BEGIN with the lock, what the call reads and writes, COMMIT (a count and a read are
        // a read transaction). A drop files the table as trash, and drops (one more
        // exchange) the trash no session can read any more, which depends on the other
        // tests' sessions: one exchange more or less.
        let expected = [
            ("create_dir", 4..=4),
            ("create_table", 7..=7),
            ("get_table", 3..=3),
            ("insert of a row", 5..=5),
            ("insert of 10 rows", 5..=5),
            ("count", 4..=4),
            ("collect", 4..=4),
            ("update", 6..=6),
            ("delete", 5..=5),
            ("drop_table", 8..=9),
            ("drop_dir of a table", 11..=12),
        ];
        let wrong = costs.iter().zip(&expected).filter(|((_, n), (_, ok))| !ok.contains(n)).count();
        assert_eq!(wrong, 0, "exchanges a call: {costs:?}, expected {expected:?}");
        drop(cat);
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// A catalog is not made in a schema holding relations named as Tabula names its own
    /// (the first table's create failed with the server's "relation t1 already exists");
    /// one that appears later fails the call that meets it, saying so, and the catalog
    /// stays as it was.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn relations_tabula_did_not_make_under_its_names_are_refused_clearly() {
        use crate::{Catalog, ColumnType, ErrorCode, IfExists, Recursive, Schema};
        let (mut admin, schema) = server();
        admin.batch_execute("CREATE TABLE t1(x INT); CREATE TABLE users(x INT)").unwrap();
        let e = Catalog::connect(&url_in(&schema)).expect_err("a schema with a foreign t1 is refused");
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
        assert!(e.message().contains("(t1)") && e.message().contains("search_path"), "{e}");
        let meta =
            format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}' AND tablename LIKE '\\_tabula%'");
        assert_eq!(admin.query_one(&meta, &[]).unwrap().get::<_, i64>(0), 0, "nothing made");
        // Without it the catalog is made beside `users`; a `t<N>` that appears later fails the
        // create that would make it.
        admin.batch_execute("DROP TABLE t1").unwrap();
        let cat = Catalog::connect(&url_in(&schema)).unwrap();
        let shape = || Schema::new().required("x", ColumnType::Int);
        cat.create_table("a", shape(), IfExists::Error).unwrap();
        admin.batch_execute("CREATE TABLE t2(x INT)").unwrap();
        let e = cat.create_table("b", shape(), IfExists::Error).expect_err("t2 is not Tabula's");
        assert!(e.message().contains("\"t2\" already exists") && e.message().contains("Tabula did not make"), "{e}");
        assert_eq!(cat.list_tables("", Recursive::Yes).unwrap().len(), 1, "the catalog is as it was");
        drop(cat);
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// On a server too, a call's statements do not carry its values: each is prepared once
    /// a connection (an exchange saved a statement a call).
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn a_call_runs_the_same_statements_on_a_server_whatever_its_versions_and_rows() {
        let (mut admin, schema) = server();
        let cat = crate::Catalog::connect(&url_in(&schema)).unwrap();
        let differ = super::super::exec::tests::statements_that_carry_values(&cat);
        drop(cat);
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
        assert!(differ.is_empty(), "statements whose text changed between two calls:\n{}", differ.join("\n"));
    }

    /// Writers on several connections (as several processes or hosts would be) insert into
    /// one table at once: every row is there, and the versions are 1..n without a gap, each
    /// recording the rows of one call.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn concurrent_writers_on_a_server_number_versions_without_gaps() {
        use crate::{row, Catalog, ColumnType, IfExists, Schema};
        let (mut admin, schema) = server();
        let url = url_in(&schema);
        let open = || Catalog::connect(&url).unwrap();
        open()
            .create_table(
                "t",
                Schema::new().required("w", ColumnType::Int).required("i", ColumnType::Int),
                IfExists::Error,
            )
            .unwrap();
        let (writers, calls) = (4, 15);
        std::thread::scope(|s| {
            for w in 0..writers {
                let cat = open();
                s.spawn(move || {
                    let t = cat.get_table("t").unwrap();
                    for i in 0..calls {
                        t.insert([row! {"w" => w, "i" => i}, row! {"w" => w, "i" => -i}]).unwrap();
                    }
                });
            }
        });
        let t = open().get_table("t").unwrap();
        assert_eq!(t.count().unwrap(), (writers * calls * 2) as u64);
        let mut versions: Vec<u64> = t.history().unwrap().iter().map(|v| v.version.0).collect();
        versions.sort();
        assert_eq!(versions, (0..=(writers * calls) as u64).collect::<Vec<_>>());
        assert!(t.history().unwrap().iter().filter(|v| v.version.0 > 0).all(|v| v.inserted == 2));
        // Each version shows exactly the rows of the calls up to it.
        for v in [1, 17, 60] {
            assert_eq!(open().get_table(format!("t:{v}")).unwrap().count().unwrap(), 2 * v);
        }
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    /// Conditions and values a server cannot compute run in Rust a batch of rows at a time,
    /// and the rows they match are ended 500 rowids a statement: more than one of each here.
    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn rust_evaluated_updates_and_deletes_cover_every_batch() {
        use crate::{col, lit, row, Catalog, ColumnType, IfExists, Schema};
        let (mut admin, schema) = server();
        let scenario = |cat: &Catalog| -> (u64, u64, i64) {
            let t = cat.create_table("t", Schema::new().required("k", ColumnType::Int), IfExists::Error).unwrap();
            t.insert((0..2500).map(|k| row! {"k" => k})).unwrap();
            let deleted = t.delete((col("k") % 2).eq(0)).unwrap().deleted;
            let updated = t.update([("k", col("k") * 10)], (col("k") % 5).eq(lit(1))).unwrap().updated;
            let rows = t.select([col("k")]).collect().unwrap();
            let sum: i64 = rows.iter().map(|r| r.get::<i64>("k").unwrap()).sum();
            (deleted, updated, sum)
        };
        let server = Catalog::connect(&url_in(&schema)).unwrap();
        let on_server = scenario(&server);
        assert_eq!(on_server, scenario(&Catalog::in_memory().unwrap()));
        assert_eq!((on_server.0, on_server.1), (1250, 250));
        // A format from a newer Tabula is refused at connect.
        server
            .store()
            .write(|tx| tx.execute("UPDATE _tabula_meta SET value = '99' WHERE key = 'format_version'", &[]))
            .unwrap();
        let e = Catalog::connect(&url_in(&schema)).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::FormatTooNew, "{e}");
        drop(server);
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    #[test]
    fn connection_urls_are_shown_without_their_password() {
        assert_eq!(super::super::redacted_url("postgres://ann:s3cret@db:5432/prod"), "postgres://ann@db:5432/prod");
        assert_eq!(super::super::redacted_url("postgres://ann@db/prod"), "postgres://ann@db/prod");
        assert_eq!(super::super::redacted_url("host=db user=ann"), "host=db user=ann");
        let e = PgStore::connect("postgres://ann:pw@db:notaport/x", false, THIRTY_S).err().unwrap();
        assert_eq!(e.code(), crate::ErrorCode::InvalidArgument);
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn every_kind_of_value_round_trips_through_the_server() {
        let (client, schema) = server();
        let client = RefCell::new(Some(Conn::new(client)));
        let tx = PgTx::begin(&client, "test server".into(), "BEGIN").unwrap();
        tx.execute_batch(
            "CREATE TABLE t(i BIGINT, f DOUBLE PRECISION, s TEXT, b BOOLEAN, y BYTEA, ts BIGINT, d BIGINT, j TEXT)",
        )
        .unwrap();
        let row = vec![
            Value::Int(-7),
            Value::Float(2.5),
            Value::String("naïve 'quoted' ?1".into()),
            Value::Bool(true),
            Value::Bytes(vec![0, 255, 7]),
            Value::Timestamp(1_700_000_000_000_000),
            Value::Date(19_000),
            Value::Json(serde_json::json!({"a": [1, 2]})),
        ];
        let n = tx.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", &row).unwrap();
        assert_eq!(n, 1);
        tx.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", &vec![Value::Null; 8]).unwrap();
        let types = [
            Some(ColumnType::Int),
            Some(ColumnType::Float),
            Some(ColumnType::String),
            Some(ColumnType::Bool),
            Some(ColumnType::Bytes),
            Some(ColumnType::Timestamp),
            Some(ColumnType::Date),
            Some(ColumnType::Json),
        ];
        let mut read = Vec::new();
        tx.query_each("SELECT * FROM t ORDER BY i NULLS LAST", &[], &types, |r| {
            read.push(r);
            Ok(true)
        })
        .unwrap();
        assert_eq!(read, vec![row, vec![Value::Null; 8]]);
        // A parameter compared with a column takes the column's type.
        let mut found = 0;
        tx.query_each(
            "SELECT count(*) FROM t WHERE i = ?1 AND s = ?2",
            &[Value::Int(-7), "naïve 'quoted' ?1".into()],
            &[None],
            |r| {
                found = match r[0] {
                    Value::Int(n) => n,
                    _ => -1,
                };
                Ok(false)
            },
        )
        .unwrap();
        assert_eq!(found, 1);
        drop(tx);
        client.into_inner().unwrap().client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn server_errors_name_the_catalog_and_map_to_codes() {
        let (client, schema) = server();
        let client = RefCell::new(Some(Conn::new(client)));
        let tx = PgTx::begin(&client, "pg://test".into(), "BEGIN").unwrap();
        tx.execute_batch("CREATE TABLE k(a BIGINT PRIMARY KEY)").unwrap();
        let e = tx.execute("INSERT INTO k VALUES (?1)", &[Value::String("x".into())]).unwrap_err();
        assert!(e.to_string().contains("parameter $1 is a int8"), "{e}");
        tx.execute("INSERT INTO k VALUES (?1)", &[Value::Int(1)]).unwrap();
        let e = tx.execute("INSERT INTO k VALUES (?1)", &[Value::Int(1)]).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::DuplicateKey, "{e}");
        assert!(e.to_string().contains("catalog 'pg://test'"), "{e}");
        drop(tx);
        // Dropped without a commit: the table is gone with the transaction.
        let mut client = client.into_inner().unwrap().client;
        let left = client.query_one(&format!("SELECT count(*) FROM pg_tables WHERE schemaname = '{schema}'"), &[]);
        assert_eq!(left.unwrap().get::<_, i64>(0), 0);
        client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }
}
