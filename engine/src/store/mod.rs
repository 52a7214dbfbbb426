//! The only module that touches rusqlite: opening and initializing catalog files, Tabula's
//! own metadata tables, transactions and locking, value encoding, and the physical row
//! operations of versioned tables.
//!
//! Layout of a catalog file (format version [`FORMAT_VERSION`]):
//! - `_tabula_meta(key, value)`: `format_version`; `phys:<id>` for a table that keeps its
//!   rows in a reused physical table (its name); `spare:<columns>/<name>` for each emptied
//!   physical table of a dropped table waiting for a new table with exactly those columns
//!   (format 3; a format 2 file becomes format 3 at its first reuse); on a server, `phys:<id>`
//!   also for a table a compaction copied into a new physical table, and `trash:<name>` (when,
//!   in microseconds) for the one it replaced, dropped by a later compaction.
//! - `_tabula_dirs(path)`: directories.
//! - `_tabula_tables(id, path, kind, version, next_row_id, next_col_id, epoch, ...)`: one row
//!   a table; `version` is the current version, `epoch` counts reverts.
//! - `_tabula_versions(table_id, version, ...)`: one row a table version: what changed, the
//!   physical rowid range it wrote, and its schema: JSON for a version that changed the
//!   schema (and version 0), `@N` for a data change, N the version whose record holds it
//!   (format 2; format 1 stored JSON in every record, and a format 1 file becomes format 2
//!   with its first data change).
//! - `t<id>` (or the reused table that `phys:<id>` names): the rows of table `id`: `_id`
//!   (logical row id), `_vmin`, `_vmax` (the row version is visible in versions
//!   `_vmin <= v < _vmax`; live rows have `_vmax = 0`, or `i64::MAX` in a catalog created
//!   before format 5: see [`Layout`]), one `c<column id>` a column and
//!   one `e<column id>` error slot a computed column.
//! - `_tabula_follows(view_id, version, base_version, follows)`: the version of its base each
//!   view version shows (format 4; see `follows`).

mod batch;
mod codec;
mod compact;
mod exec;
mod fill;
mod follows;
mod functions;
mod locks;
mod meta;
#[cfg(feature = "postgres")]
mod pg;
mod results;
mod rows;
mod scan;
mod shown;
pub(crate) mod sql;
mod stored;
#[cfg(feature = "postgres")]
pub(crate) mod tls;

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{err, Error, ErrorCode, Result};

pub(crate) use batch::{Staged, StagedRow};
pub use compact::CompactReport;
pub(crate) use fill::{Scope, Set, ViewRows, REBUILD_FROM};
pub(crate) use follows::ViewChange;
pub(crate) use functions::RowFunction;
pub(crate) use locks::LockRow;
pub(crate) use meta::{column_level, now_micros, Entry, EntryKind, Kind, TableMeta, VersionRecord, VIEW_COLUMN_IDS};
pub(crate) use results::{args_key, ArgsKey, Results, ResultsAt};

/// A connection URL as messages and reports show it: without its password
/// (`postgres://ann:secret@db/x` is shown `postgres://ann@db/x`).
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}
pub(crate) use rows::{show_key, Appender, Layout};
pub(crate) use scan::{Scan, Seen};

/// Whether a predicate (no UDF) holds in each of some rows (values of the named columns), as
/// Tabula evaluates it: true only where it is `true`. The store sits below the evaluator, so
/// the catalog gives it this, to run a view's filter that a server cannot (see `shown`).
pub(crate) type RowTest = fn(&crate::expr::Expr, &[String], &[Vec<crate::types::Value>]) -> Result<Vec<bool>>;

/// The metadata format this build writes. Files with a larger number are refused.
pub const FORMAT_VERSION: i64 = 5;

/// How a store is opened (the catalog module's `OpenOptions`, as the store needs them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opening {
    pub(crate) read_only: bool,
    /// Fail when the file does not exist.
    pub(crate) must_exist: bool,
    /// Fail when the file exists.
    pub(crate) must_be_new: bool,
    /// `synchronous=FULL` (survives power loss) instead of `NORMAL` (survives crashes).
    pub(crate) full_sync: bool,
    /// How long a writer waits for another before failing with [`ErrorCode::Busy`].
    pub(crate) busy_timeout: Duration,
    /// `PRAGMA mmap_size` of every connection: how many bytes of the file reads map.
    pub(crate) mmap_size: u64,
}

/// The connections of a catalog handle, shared by all its clones: one that writes (one
/// write at a time) and reads when it is free, and, for a file, a pool of read-only
/// connections for the reads that find it busy: so reads never wait for each other or for
/// a write, and a read made during a write on the same thread (an insert pulling rows from
/// a stream of the same handle) has a connection of its own.
pub(crate) struct SqliteStore {
    /// Read connections (none for an in-memory catalog, whose data no other connection sees).
    /// Declared before `conn`, so they close first: the last connection to close folds the
    /// write-ahead log into the file, and only the writer may.
    readers: Option<Readers>,
    conn: Mutex<Connection>,
    /// The [`thread_token`] of the thread holding `conn` (0: none).
    holder: AtomicU64,
    location: String,
    read_only: bool,
    read_mode: ReadMode,
    /// How the catalog's row tables mark live rows (read once: it never changes).
    layout: Layout,
    /// The private copy a read-only catalog was opened from, when it had to be copied.
    _copy: Option<tempfile::TempDir>,
}

/// How a catalog file was opened for reading only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ReadMode {
    /// In place, like any reader: sees writers' commits as they happen.
    Direct,
    /// In place as an immutable file (`immutable=1`), because its directory cannot be
    /// written (read-only media, another user's directory) and it has no write-ahead log
    /// to read: SQLite takes no locks, so a writer changing it meanwhile is not seen safely.
    Immutable,
    /// From a private copy of the file and its write-ahead log, because its directory cannot
    /// be written and its log holds commits: a snapshot as of opening.
    Copy,
}

/// The connection of a store, held by one thread; releasing it clears the holder.
struct Held<'a> {
    guard: MutexGuard<'a, Connection>,
    holder: &'a AtomicU64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.holder.store(0, Ordering::Release);
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.guard
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.guard
    }
}

/// A number for the current thread, never 0 and never reused.
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    TOKEN.with(|t| *t)
}

/// A transaction on the store; every catalog call runs inside exactly one.
pub(crate) struct Tx<'a> {
    conn: Conn<'a>,
    /// The catalog's row layout.
    pub(crate) layout: Layout,
    /// What this transaction knows of the catalog's format version (see
    /// [`Tx::has_format`]).
    format: FormatKnown,
}

/// What a transaction knows of its catalog's format version without asking: a format
/// version only ever grows, so the version a store saw when it connected is a floor for
/// every transaction after; and no other call changes it while this one runs (writers take
/// turns; a read sees one state), so once read or raised here it is exact.
#[derive(Default)]
struct FormatKnown {
    floor: i64,
    exact: std::cell::Cell<Option<i64>>,
}

/// The transaction a [`Tx`] runs on.
enum Conn<'a> {
    Sqlite(rusqlite::Transaction<'a>),
    #[cfg(feature = "postgres")]
    Postgres(pg::PgTx<'a>),
}

/// A catalog's storage: a SQLite file (or memory), or a database on a PostgreSQL server.
pub(crate) enum Store {
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(pg::PgStore),
}

impl Store {
    /// Opens (creating when absent) the catalog file at `path`.
    pub(crate) fn open(path: &FsPath, opening: Opening) -> Result<Store> {
        SqliteStore::open(path, opening).map(Store::Sqlite)
    }

    /// A private in-memory catalog.
    pub(crate) fn in_memory() -> Result<Store> {
        SqliteStore::in_memory().map(Store::Sqlite)
    }

    /// Connects to the catalog in the PostgreSQL database `url` names (making it one).
    #[cfg(feature = "postgres")]
    pub(crate) fn connect(
        url: &str,
        read_only: bool,
        busy_timeout: std::time::Duration,
        copy_fills_from: u64,
        row_test: RowTest,
    ) -> Result<Store> {
        let store = pg::PgStore::connect(url, read_only, busy_timeout)?;
        Ok(Store::Postgres(store.copy_fills_from(copy_fills_from).row_test(row_test)))
    }

    /// Runs `f` in a write transaction; commits when `f` returns `Ok`, rolls back otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        match self {
            Store::Sqlite(s) => s.write(f),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.write(f),
        }
    }

    /// Runs `f` in a read transaction: one consistent state of the catalog.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        match self {
            Store::Sqlite(s) => s.read(f),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.read(f),
        }
    }

    /// The SQLite store, for what only a file has (backups, pragmas, SQLite's own check).
    fn sqlite(&self) -> Result<&SqliteStore> {
        match self {
            Store::Sqlite(s) => Ok(s),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => Err(err!(
                InvalidArgument,
                "catalog '{}' is on a PostgreSQL server; this works on a catalog file only",
                s.location()
            )),
        }
    }

    /// `PRAGMA <name>` of the writing connection and of a pool reader (what options set).
    #[cfg(test)]
    pub(crate) fn pragma(&self, name: &str) -> Result<(i64, Option<i64>)> {
        self.sqlite()?.pragma(name)
    }

    /// How a read-only store was opened.
    pub(crate) fn read_mode(&self) -> ReadMode {
        match self {
            Store::Sqlite(s) => s.read_mode(),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => ReadMode::Direct,
        }
    }

    /// Where this store lives (a file path, `:memory:`, or a server URL without password).
    pub(crate) fn location(&self) -> &str {
        match self {
            Store::Sqlite(s) => s.location(),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.location(),
        }
    }

    /// The file behind this store, if it is a file.
    pub(crate) fn file(&self) -> Option<PathBuf> {
        match self {
            Store::Sqlite(s) => s.file(),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => None,
        }
    }

    /// Where a writable catalog keeps its remembered UDF results.
    pub(crate) fn results_at(&self) -> results::ResultsAt {
        match self {
            Store::Sqlite(s) if !s.is_read_only() => match s.file() {
                Some(file) => {
                    let mut name = file.into_os_string();
                    name.push(".results");
                    results::ResultsAt::File(name.into())
                }
                None => results::ResultsAt::Memory,
            },
            #[cfg(feature = "postgres")]
            Store::Postgres(s) if !s.is_read_only() => results::ResultsAt::Server(s.url().to_string()),
            _ => results::ResultsAt::Memory,
        }
    }

    /// Copies the whole catalog into a file at `dest`.
    pub(crate) fn backup_to(&self, dest: &FsPath) -> Result<()> {
        self.sqlite()?.backup_to(dest)
    }

    /// Checks the storage (SQLite's own check on a file; a server checks its own), then the
    /// storage model.
    pub(crate) fn integrity_check(&self) -> Result<Vec<String>> {
        match self {
            Store::Sqlite(s) => s.integrity_check(),
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.read(|tx| tx.dangling_objects()),
        }
    }
}

/// A pool of read-only connections to one file.
struct Readers {
    /// What each opens: the file's path, or the URI the writer was opened with.
    target: String,
    busy_timeout: Duration,
    mmap_size: u64,
    idle: Mutex<Vec<Connection>>,
}

/// Idle read connections a pool keeps; more are opened when more threads read at once.
const IDLE_READERS: usize = 4;

/// Statements each SQLite connection keeps prepared (rusqlite keeps 16 by default). The
/// calls on one table run some 50 different statements (an insert, an update, a delete,
/// the metadata read and the version record each have theirs), so with 16 a service that
/// mixes its calls parsed most of its statements again at every call. Each costs a few KB.
const STATEMENTS: usize = 256;

impl Readers {
    fn new(target: String, opening: &Opening) -> Readers {
        Readers {
            target,
            busy_timeout: opening.busy_timeout,
            mmap_size: opening.mmap_size,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one.
    fn take(&self, location: &str) -> Result<Connection> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.target, flags).map_err(|e| storage(location, e))?;
        conn.busy_timeout(self.busy_timeout).map_err(|e| storage(location, e))?;
        conn.execute_batch(&format!("PRAGMA mmap_size={}", self.mmap_size)).map_err(|e| storage(location, e))?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        functions::register(&conn).map_err(|e| storage(location, e))?;
        Ok(conn)
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl SqliteStore {
    /// Opens (creating when absent) the catalog file at `path`. Anything but a regular file
    /// (a directory, a FIFO, a socket, a device) is refused before SQLite sees it, so a FIFO
    /// never blocks the call.
    pub(crate) fn open(path: &FsPath, opening: Opening) -> Result<SqliteStore> {
        let location = path.display().to_string();
        let read_only = opening.read_only;
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_file() => {
                let what = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
                return Err(err!(NotACatalog, "'{location}' is {what}; give the path of a catalog file"));
            }
            Ok(_) if opening.must_be_new => {
                return Err(err!(
                    AlreadyExists,
                    "catalog file '{location}' already exists; open it with Catalog::open, or choose a new path"
                ))
            }
            Ok(meta) => check_whole_pages(path, meta.len())?,
            Err(_) if read_only || opening.must_exist => {
                return Err(err!(
                    NotFound,
                    "catalog file '{location}' does not exist; check the path (Catalog::create makes a new catalog)"
                ))
            }
            Err(_) => {}
        }
        if !read_only {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI;
            let conn = Connection::open_with_flags(path, flags).map_err(|e| storage(&location, e))?;
            let readers = Readers::new(path.display().to_string(), &opening);
            return SqliteStore::init(conn, location, opening, Some(readers), ReadMode::Direct, None);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let direct = Connection::open_with_flags(path, flags).map_err(|e| storage(&location, e)).and_then(|conn| {
            let readers = Readers::new(path.display().to_string(), &opening);
            SqliteStore::init(conn, location.clone(), opening, Some(readers), ReadMode::Direct, None)
        });
        let e = match direct {
            Err(e) if matches!(e.code(), ErrorCode::ReadOnly | ErrorCode::Storage) => e,
            other => return other,
        };
        // SQLite could not set up its shared-memory file beside the catalog: the directory
        // cannot be written. Read the file as it is.
        let wal = PathBuf::from(format!("{location}-wal"));
        if std::fs::metadata(&wal).map(|m| m.len() == 0).unwrap_or(true) {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            let conn = Connection::open_with_flags(&uri, flags).map_err(|_| e.clone())?;
            let readers = Readers::new(uri, &opening);
            return SqliteStore::init(conn, location, opening, Some(readers), ReadMode::Immutable, None);
        }
        let copy = tempfile::Builder::new()
            .prefix("tabula-read-only-")
            .tempdir()
            .map_err(|io| err!(Storage, "catalog '{location}': {e}; copying it to read it failed too: {io}"))?;
        let db = copy.path().join("catalog.db");
        for (from, to) in [(path.to_path_buf(), db.clone()), (wal, PathBuf::from(format!("{}-wal", db.display())))] {
            std::fs::copy(&from, &to)
                .map_err(|io| err!(Storage, "catalog '{location}': copying '{}' to read it: {io}", from.display()))?;
        }
        let conn = Connection::open_with_flags(&db, flags).map_err(|e| storage(&location, e))?;
        let readers = Readers::new(db.display().to_string(), &opening);
        SqliteStore::init(conn, location, opening, Some(readers), ReadMode::Copy, Some(copy))
    }

    /// A private in-memory catalog.
    pub(crate) fn in_memory() -> Result<SqliteStore> {
        let conn = Connection::open_in_memory().map_err(|e| storage(":memory:", e))?;
        let opening = Opening {
            read_only: false,
            must_exist: false,
            must_be_new: false,
            full_sync: false,
            busy_timeout: Duration::from_secs(30),
            mmap_size: 0,
        };
        SqliteStore::init(conn, ":memory:".into(), opening, None, ReadMode::Direct, None)
    }

    fn init(
        conn: Connection,
        location: String,
        opening: Opening,
        readers: Option<Readers>,
        read_mode: ReadMode,
        copy: Option<tempfile::TempDir>,
    ) -> Result<SqliteStore> {
        let read_only = opening.read_only;
        conn.busy_timeout(opening.busy_timeout).map_err(|e| storage(&location, e))?;
        // Probe that the file is a database at all before changing anything.
        let probe: rusqlite::Result<i64> = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0));
        probe.map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => {
                err!(NotACatalog, "'{location}' is not a Tabula catalog (not even an SQLite database); check the path")
                    .with_source(e)
            }
            _ => storage(&location, e),
        })?;
        if readers.is_some() && !read_only {
            // SQLite answers a journal-mode change with SQLITE_BUSY at once (no busy handler)
            // while another process holds a lock, as when two processes open a new file
            // together: retry up to the busy timeout.
            let started = std::time::Instant::now();
            let mode: String = loop {
                match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
                    Ok(mode) => break mode,
                    Err(e)
                        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                            && started.elapsed() < opening.busy_timeout =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(storage(&location, e)),
                }
            };
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(err!(Storage, "catalog '{location}': could not switch to WAL mode (got '{mode}')"));
            }
        }
        let sync = if opening.full_sync { "FULL" } else { "NORMAL" };
        conn.execute_batch(&format!(
            "PRAGMA synchronous={sync}; PRAGMA foreign_keys=OFF; PRAGMA mmap_size={};",
            opening.mmap_size
        ))
        .map_err(|e| storage(&location, e))?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        functions::register(&conn).map_err(|e| storage(&location, e))?;
        let mut store = SqliteStore {
            readers,
            conn: Mutex::new(conn),
            holder: AtomicU64::new(0),
            location,
            read_only,
            read_mode,
            layout: Layout::Zero,
            _copy: copy,
        };
        // An existing catalog is only read here, so opening one never waits for a writer;
        // a new one is initialized in a write transaction (two processes may race to it).
        let initialized = store.read(meta::has_meta)?;
        if initialized || read_only {
            store.read(|tx| meta::check_format(tx, &store.location))?;
        } else {
            store.write(|tx| meta::init_or_check(tx, &store.location))?;
        }
        store.layout = store.read(|tx| meta::read_layout(tx, &store.location))?;
        Ok(store)
    }

    /// `PRAGMA <name>` of the writing connection and of a pool reader (what options set).
    #[cfg(test)]
    pub(crate) fn pragma(&self, name: &str) -> Result<(i64, Option<i64>)> {
        let sql = format!("PRAGMA {name}");
        let writer = self.write(|tx| tx.sqlite()?.query_row(&sql, [], |r| r.get(0)).map_err(|e| tx.fail(e)))?;
        let reader = match &self.readers {
            Some(readers) => {
                let conn = readers.take(&self.location)?;
                let value = conn.query_row(&sql, [], |r| r.get(0)).map_err(|e| storage(&self.location, e))?;
                readers.put(conn);
                Some(value)
            }
            None => None,
        };
        Ok((writer, reader))
    }

    /// Whether the store was opened read-only.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// How a read-only store was opened.
    pub(crate) fn read_mode(&self) -> ReadMode {
        self.read_mode
    }

    /// Where this store lives (a file path or `:memory:`).
    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// The file behind this store, if it is a file.
    pub(crate) fn file(&self) -> Option<PathBuf> {
        (self.location != ":memory:").then(|| PathBuf::from(&self.location))
    }

    /// The connection, if no thread holds it (this one included).
    fn try_lock(&self) -> Option<Held<'_>> {
        let me = thread_token();
        if self.holder.load(Ordering::Acquire) == me {
            return None;
        }
        let guard = match self.conn.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        self.holder.store(me, Ordering::Release);
        Some(Held { guard, holder: &self.holder })
    }

    /// The connection, for this thread. A thread that already holds it (a call made from
    /// inside another call on this handle, such as an insert pulling rows from a stream of
    /// the same handle) gets an error at once instead of waiting for itself forever.
    fn lock(&self) -> Result<Held<'_>> {
        let me = thread_token();
        if self.holder.load(Ordering::Acquire) == me {
            return Err(err!(
                Reentrant,
                "catalog '{}': a call on this handle was made while another call on the same handle runs on this \
                 thread (for example, inserting rows read lazily from a stream of the same handle); collect the \
                 rows first (`.collect()`), or read them through another handle (`Catalog::open` of the same file)",
                self.location
            ));
        }
        // A panic while the lock was held unwound through the transaction, which rolled back,
        // so the connection is in a clean state: take it back.
        let guard = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.holder.store(me, Ordering::Release);
        Ok(Held { guard, holder: &self.holder })
    }

    /// Runs `f` in a write transaction (BEGIN IMMEDIATE: writers serialize, waiting up to the
    /// busy timeout); commits when `f` returns `Ok`, rolls back otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        if self.read_only {
            return Err(err!(
                ReadOnly,
                "catalog '{}' was opened read-only; open it with Catalog::open to write",
                self.location
            ));
        }
        let mut conn = self.lock()?;
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| storage(&self.location, e))?;
        let tx = Tx { conn: Conn::Sqlite(tx), layout: self.layout, format: FormatKnown::default() };
        let out = f(&tx)?;
        tx.commit().map_err(|e| e.context(format_args!("catalog '{}'", self.location)))?;
        Ok(out)
    }

    /// Runs `f` in a read transaction: it sees one consistent state of the file (the last
    /// commit when it starts). On a file, it runs on a read connection of its own.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        if let Some(readers) = &self.readers {
            // The writer's connection when it is free: after a schema change (a new table,
            // a column) every other connection reloads the whole schema, which in a catalog
            // of thousands of tables costs more than the read. A read connection otherwise.
            if let Some(mut conn) = self.try_lock() {
                return SqliteStore::read_on(&mut conn, &self.location, self.layout, f);
            }
            let mut conn = readers.take(&self.location)?;
            let out = SqliteStore::read_on(&mut conn, &self.location, self.layout, f);
            readers.put(conn);
            return out;
        }
        let mut conn = self.lock()?;
        SqliteStore::read_on(&mut conn, &self.location, self.layout, f)
    }

    fn read_on<T>(
        conn: &mut Connection,
        location: &str,
        layout: Layout,
        f: impl FnOnce(&Tx) -> Result<T>,
    ) -> Result<T> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(|e| storage(location, e))?;
        let tx = Tx { conn: Conn::Sqlite(tx), layout, format: FormatKnown::default() };
        let out = f(&tx)?;
        // Nothing was written; ending the read transaction cannot lose anything.
        tx.rollback()?;
        Ok(out)
    }

    /// Copies the whole catalog into a file at `dest` with SQLite's online backup.
    pub(crate) fn backup_to(&self, dest: &FsPath) -> Result<()> {
        let conn = self.lock()?;
        conn.backup(rusqlite::DatabaseName::Main, dest, None)
            .map_err(|e| storage(&self.location, e).context(format_args!("backup to '{}'", dest.display())))
    }

    /// Runs SQLite's integrity check, then checks the storage model (no dangling objects);
    /// returns the findings (empty when the file is sound).
    pub(crate) fn integrity_check(&self) -> Result<Vec<String>> {
        let mut findings: Vec<String> = {
            let conn = self.lock()?;
            let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(|e| storage(&self.location, e))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| storage(&self.location, e))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| storage(&self.location, e))?;
            rows.into_iter().filter(|r| r != "ok").collect()
        };
        if findings.is_empty() {
            findings = self.read(|tx| tx.dangling_objects())?;
        }
        Ok(findings)
    }
}

/// Refuses an SQLite file whose size is not a whole number of its pages, or smaller than
/// the page count its header records: a torn copy or a truncated file, which SQLite would
/// otherwise open and read as if nothing were missing. Only a file without commits in its
/// write-ahead log is judged so.
fn check_whole_pages(path: &FsPath, len: u64) -> Result<()> {
    use std::io::Read;
    // With commits in its write-ahead log, the file may be in the middle of a checkpoint
    // (its header already counting pages not written yet); SQLite completes it from the log.
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let mut header = [0u8; 100];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() || &header[..16] != b"SQLite format 3\0" {
        return Ok(()); // not SQLite (or empty): the open says so
    }
    let location = path.display();
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    if page_size < 512 || !page_size.is_power_of_two() {
        return Err(err!(
            NotACatalog,
            "'{location}' has a damaged header (page size {page_size}); restore it from a backup"
        ));
    }
    if !len.is_multiple_of(page_size) {
        return Err(err!(
            NotACatalog,
            "'{location}' is torn or truncated: {len} bytes is not a whole number of {page_size}-byte pages; restore it from a backup"
        ));
    }
    // The header's page count is valid when its version-valid-for number matches the
    // change counter.
    let pages = u64::from(u32::from_be_bytes([header[28], header[29], header[30], header[31]]));
    if header[92..96] == header[24..28] && pages * page_size > len {
        return Err(err!(
            NotACatalog,
            "'{location}' is truncated: its header records {pages} pages, the file holds {}; restore it from a backup",
            len / page_size
        ));
    }
    Ok(())
}

/// `path` for a `file:` URI: absolute, with the characters URIs reserve escaped.
fn uri_path(path: &FsPath) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for c in absolute.display().to_string().chars() {
        match c {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Maps a SQLite failure into an [`Error`] naming the catalog.
pub(crate) fn storage(location: &str, e: rusqlite::Error) -> Error {
    let code = match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => ErrorCode::Busy,
        Some(rusqlite::ErrorCode::ReadOnly) => ErrorCode::ReadOnly,
        Some(rusqlite::ErrorCode::NotADatabase) => ErrorCode::NotACatalog,
        // Tabula's only unique indexes on row tables are primary keys' (the callers that can
        // say which rows and key add that; this is the fallback).
        Some(rusqlite::ErrorCode::ConstraintViolation) if is_unique_violation(&e) => ErrorCode::DuplicateKey,
        _ => ErrorCode::Storage,
    };
    let hint = match code {
        ErrorCode::Busy => " (another writer held the catalog longer than the busy timeout; retry, or open with a longer OpenOptions::busy_timeout)",
        ErrorCode::ReadOnly => " (the file or its directory is read-only; check permissions)",
        ErrorCode::DuplicateKey => " (two live rows would share a primary key)",
        _ => "",
    };
    Error::new(code, format!("catalog '{location}': {e}{hint}")).with_source(e)
}

/// Whether `e` is a violated unique index (a primary key's, for row tables).
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

impl<'a> Tx<'a> {
    /// Maps a SQLite failure inside this transaction.
    pub(crate) fn fail(&self, e: rusqlite::Error) -> Error {
        match &self.conn {
            Conn::Sqlite(tx) => storage(tx.path().unwrap_or(":memory:"), e),
            #[cfg(feature = "postgres")]
            Conn::Postgres(tx) => storage(tx.location(), e),
        }
    }

    /// Whether this transaction runs on a PostgreSQL server.
    pub(crate) fn on_server(&self) -> bool {
        match &self.conn {
            Conn::Sqlite(_) => false,
            #[cfg(feature = "postgres")]
            Conn::Postgres(_) => true,
        }
    }

    /// Live rows from which a fresh computed column is filled by copying its table (see
    /// [`Tx::rebuild_pays`]); SQLite fills in place.
    pub(crate) fn copy_fills_from(&self) -> i64 {
        match &self.conn {
            Conn::Sqlite(_) => i64::MAX,
            #[cfg(feature = "postgres")]
            Conn::Postgres(tx) => tx.copy_fills_from,
        }
    }

    /// How Tabula tests a predicate on rows, for a view filter the store's SQL cannot run
    /// (only a server has such filters; SQLite runs Tabula's functions itself).
    pub(crate) fn row_test(&self) -> Result<RowTest> {
        let test = match &self.conn {
            Conn::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Conn::Postgres(tx) => tx.row_test,
        };
        test.ok_or_else(|| {
            err!(Storage, "a view filter was to be run in Rust by a store given no way to (a bug in Tabula)")
        })
    }

    /// The declared type of a column whose SQLite type is `sqlite` (`INTEGER`, `REAL`,
    /// `TEXT`, `BLOB`, or `BOOLEAN`: see `codec::declared_type`), on this backend. On a server, text compares byte by byte, as in
    /// SQLite.
    pub(crate) fn column_type(&self, sqlite: &str) -> &'static str {
        match (self.on_server(), sqlite) {
            (false, "INTEGER" | "BOOLEAN") => "INTEGER",
            (true, "BOOLEAN") => "BOOLEAN",
            (false, "REAL") => "REAL",
            (false, "BLOB") => "BLOB",
            (false, _) => "TEXT",
            (true, "INTEGER") => "BIGINT",
            (true, "REAL") => "DOUBLE PRECISION",
            (true, "BLOB") => "BYTEA",
            (true, _) => "TEXT COLLATE \"C\"",
        }
    }

    /// The system columns that start a row table: SQLite's rows have an implicit `rowid`
    /// (`_rowid_`); a server's get an identity column of that name.
    pub(crate) fn system_columns(&self) -> &'static str {
        if self.on_server() {
            "_rowid_ BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, _id BIGINT NOT NULL, _vmin BIGINT NOT NULL, \
             _vmax BIGINT NOT NULL"
        } else {
            "_id INTEGER NOT NULL, _vmin INTEGER NOT NULL, _vmax INTEGER NOT NULL"
        }
    }

    /// The SQLite transaction, for what only SQLite has (registered functions, its schema
    /// catalog, pragmas, prepared multi-row inserts).
    pub(crate) fn sqlite(&self) -> Result<&rusqlite::Transaction<'a>> {
        match &self.conn {
            Conn::Sqlite(tx) => Ok(tx),
            #[cfg(feature = "postgres")]
            Conn::Postgres(tx) => Err(err!(
                Storage,
                "catalog '{}': an operation of the SQLite store ran on PostgreSQL (a bug in Tabula)",
                tx.location()
            )),
        }
    }

    /// A transaction on a PostgreSQL catalog, whose format is `floor` at least.
    #[cfg(feature = "postgres")]
    fn on_postgres(tx: pg::PgTx<'a>, floor: i64) -> Tx<'a> {
        Tx { conn: Conn::Postgres(tx), layout: Layout::Zero, format: FormatKnown { floor, exact: Default::default() } }
    }

    /// Ends the transaction, undoing what it wrote.
    fn rollback(self) -> Result<()> {
        match self.conn {
            Conn::Sqlite(tx) => {
                let location = tx.path().unwrap_or(":memory:").to_string();
                tx.rollback().map_err(|e| storage(&location, e))
            }
            // Dropping it rolls it back.
            #[cfg(feature = "postgres")]
            Conn::Postgres(tx) => {
                drop(tx);
                Ok(())
            }
        }
    }

    /// Commits the transaction.
    fn commit(self) -> Result<()> {
        match self.conn {
            Conn::Sqlite(tx) => {
                let location = tx.path().unwrap_or(":memory:").to_string();
                tx.commit().map_err(|e| storage(&location, e))
            }
            #[cfg(feature = "postgres")]
            Conn::Postgres(tx) => tx.commit(),
        }
    }
}
