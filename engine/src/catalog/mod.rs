//! The [`Catalog`] handle: opening catalogs, directories, and creating, opening, moving and
//! dropping tables. Every call here is one transaction on the store; metadata is read inside
//! that transaction, so a handle never acts on stale metadata written by another handle or
//! process.

mod batch;
mod columns;
mod compact;
mod diff;
mod follow;
mod lock;
mod open;
mod query;
mod table;
mod versions;

use std::fmt;
use std::sync::Arc;

use crate::error::{err, Error, Result};
use crate::expr::Expr;
use crate::path::{IntoPath, Path};
use crate::schema::Schema;
use crate::store::{Entry, EntryKind, Kind, Store, Tx};
use crate::udf::{Registry, Udf};

pub use batch::IfMissing;
pub use columns::{Alter, ColumnOptions, Estimate};
pub use compact::Retention;
pub use diff::RowChange;
pub use lock::{CatalogLock, LockHolder, LockOptions, TryLock};
pub use open::{Create, Durability, OpenOptions};
pub use query::{Query, RowStream};
pub(crate) use table::{all_columns, check_predicate, maintain_views, rows_writable};
pub use table::{Cascade, ColumnInfo, Only, Table, TableInfo, TableKind, VersionInfo, WriteResult};

/// The schema `rows` imply; see [`Catalog::create_table_from_rows`].
fn infer_schema(rows: &[crate::row::Row]) -> Result<Schema> {
    use crate::types::ColumnType;
    // (name, type, nullable, the row that gave the type)
    let mut columns: Vec<(String, Option<ColumnType>, bool, usize)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        for (name, value) in row.iter() {
            let at = match columns.iter().position(|c| c.0 == name) {
                Some(at) => at,
                None => {
                    // A column first seen in a later row is missing from the earlier ones.
                    columns.push((name.to_string(), None, i > 0, i));
                    columns.len() - 1
                }
            };
            let column = &mut columns[at];
            match (column.1, value.column_type()) {
                (_, None) => column.2 = true,
                (None, Some(ty)) => (column.1, column.3) = (Some(ty), i),
                (Some(a), Some(b)) if a == b => {}
                (Some(ColumnType::Int), Some(ColumnType::Float)) | (Some(ColumnType::Float), Some(ColumnType::Int)) => {
                    column.1 = Some(ColumnType::Float)
                }
                (Some(a), Some(b)) => {
                    return Err(err!(
                        TypeMismatch,
                        "column '{name}' is {a} in row {} and {b} in row {i}; give it one type, or create the table with a schema",
                        column.3
                    ))
                }
            }
        }
        for column in columns.iter_mut() {
            if row.value(&column.0).is_none() {
                column.2 = true;
            }
        }
    }
    if rows.is_empty() {
        return Err(err!(InvalidArgument, "no rows to take a schema from; create the table with a schema"));
    }
    let mut schema = Schema::new();
    for (name, ty, nullable, _) in columns {
        let ty = ty.ok_or_else(|| {
            err!(
                InvalidArgument,
                "column '{name}' is null in every row, so it has no type; create the table with a schema"
            )
        })?;
        schema = if nullable { schema.nullable(name, ty) } else { schema.required(name, ty) };
    }
    Ok(schema)
}

/// One entry of [`Catalog::ls`].
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// Its path.
    pub path: Path,
    /// What it is.
    pub kind: ListingKind,
    /// A table's (view's, snapshot's) current version; `None` for a directory.
    pub version: Option<crate::types::Version>,
    /// The rows it shows; `None` for a directory.
    pub rows: Option<u64>,
    /// How many of its computed cells hold an error (kept under `OnError::Ignore`, or
    /// inherited); `None` for a directory.
    pub error_cells: Option<u64>,
}

/// What a [`Listing`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingKind {
    /// A directory.
    Dir,
    /// A table.
    Table,
    /// A view.
    View,
    /// A snapshot.
    Snapshot,
}

/// What a create call does when the path is already taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IfExists {
    /// Fail with [`ErrorCode::AlreadyExists`](crate::ErrorCode::AlreadyExists).
    #[default]
    Error,
    /// Keep what is there (a no-op). Fails when what is there differs from what was asked
    /// for, showing both: never silent drift.
    Ignore,
    /// Replace what is there. Refuses a non-empty directory (use `ReplaceForce`).
    Replace,
    /// Replace what is there, dropping everything inside it.
    ReplaceForce,
}

/// Whether a drop may remove what is inside or depends on the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// Refuse when the directory is not empty.
    No,
    /// Drop everything inside too.
    Yes,
}

/// Whether a listing goes into subdirectories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recursive {
    /// Direct children only.
    No,
    /// Every descendant.
    Yes,
}

/// A handle on a catalog: cheap to clone, `Send + Sync`; clones share one connection.
/// Several handles (in threads or processes) may open the same file: writes serialize.
#[derive(Clone)]
pub struct Catalog {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) udfs: Registry,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Catalog({})", self.inner.store.location())
    }
}

impl Catalog {
    /// Opens the catalog file at `path`, creating it when absent (WAL mode), with the
    /// default [`OpenOptions`]. Fails with [`NotACatalog`](crate::ErrorCode::NotACatalog) for
    /// a file that is not one, and [`FormatTooNew`](crate::ErrorCode::FormatTooNew) for one
    /// from a newer Tabula. A service should prefer [`Catalog::open_existing`], so that a
    /// wrong path fails instead of starting an empty catalog.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Catalog> {
        OpenOptions::new().open(path)
    }

    /// Opens an existing catalog file; a missing one is [`NotFound`](crate::ErrorCode::NotFound).
    pub fn open_existing(path: impl AsRef<std::path::Path>) -> Result<Catalog> {
        OpenOptions::new().create(Create::Never).open(path)
    }

    /// Creates a new catalog file; an existing one is
    /// [`AlreadyExists`](crate::ErrorCode::AlreadyExists).
    pub fn create(path: impl AsRef<std::path::Path>) -> Result<Catalog> {
        OpenOptions::new().create(Create::New).open(path)
    }

    /// The options to open a catalog with: durability, busy timeout, create or not.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Opens an existing catalog file for reading only: every write fails with
    /// [`ReadOnly`](crate::ErrorCode::ReadOnly), and the file is never changed. A file on
    /// read-only media, or in a directory this user cannot write, opens too (see
    /// [`Catalog::read_mode`]). Anything but a regular file is refused at once.
    pub fn open_read_only(path: impl AsRef<std::path::Path>) -> Result<Catalog> {
        OpenOptions::new().read_only().open(path)
    }

    /// A new, private, in-memory catalog.
    pub fn in_memory() -> Result<Catalog> {
        Catalog::from_store(Store::in_memory()?)
    }

    /// Connects to the catalog in a PostgreSQL database (its current schema: choose one with
    /// `?options=-csearch_path%3Dname` in the URL), making the schema a catalog when it has
    /// none. `postgres://user:password@host:port/database`; errors show the URL without its
    /// password. Several processes on several hosts may write one catalog: each call is one
    /// transaction, and writers of a catalog take turns (waiting up to 30 s, then
    /// [`Busy`](crate::ErrorCode::Busy); [`OpenOptions::busy_timeout`] and
    /// [`OpenOptions::connect`] to wait otherwise), so versions are numbered without gaps in
    /// commit order.
    ///
    /// The backend is new (see "Backends" in ARCHITECTURE.md): tables, computed columns
    /// (computed in Rust on a server, builtins included), versions, revert, views, snapshots,
    /// queries, streams, diffs, compaction, batch updates and locks work as on SQLite;
    /// [`Catalog::backup_to`] and [`Catalog::integrity_check`] are for catalog files and say so.
    /// Remembered UDF results live in the schema (`_tabula_results`), for every host.
    #[cfg(feature = "postgres")]
    pub fn connect(url: &str) -> Result<Catalog> {
        OpenOptions::new().connect(url)
    }

    /// Connects to an existing catalog on a PostgreSQL server for reading only: every write
    /// fails with [`ReadOnly`](crate::ErrorCode::ReadOnly), and a schema without a catalog is
    /// [`NotFound`](crate::ErrorCode::NotFound) instead of becoming one. (Give the server a
    /// user without write grants too, for a production a check must not touch.)
    #[cfg(feature = "postgres")]
    pub fn connect_read_only(url: &str) -> Result<Catalog> {
        OpenOptions::new().read_only().connect(url)
    }

    pub(crate) fn from_store(store: Store) -> Result<Catalog> {
        // Remembered UDF results live beside a writable catalog (a file, or a server's
        // table), else in memory.
        let results = store.results_at();
        Ok(Catalog { inner: Arc::new(Inner { store, udfs: Registry::new(results) }) })
    }

    /// Tells `observer` how long computed-column fills on this handle (and its clones) are
    /// coming along, after each batch of rows: rows done and to do, failures, rate, time
    /// left. Reported while an expensive UDF (one that remembers its results) is called, the
    /// part of an add or a recompute that takes long. Replaces an earlier observer.
    pub fn on_progress(&self, observer: impl Fn(&crate::udf::Progress) + Send + Sync + 'static) {
        self.inner.udfs.set_progress(Some(Arc::new(observer)));
    }

    /// Forgets the remembered results of `udf` (its name and version), or of every UDF with
    /// `None` (see [`Udf::remember`]); returns how many results went. The next calls pay again.
    pub fn forget_results(&self, udf: Option<&Udf>) -> Result<u64> {
        self.inner.udfs.results().clear(udf.map(|u| (u.name(), u.version())))
    }

    /// Registers a UDF on this handle (and its clones), replacing one of the same name and
    /// version. Several versions of a UDF can be registered at once: computed columns name
    /// the (name, version) they were made with and use exactly that one; writes that need a
    /// UDF fail until that version is registered.
    pub fn register(&self, udf: &Udf) {
        self.inner.udfs.register(udf.clone());
    }

    /// True when both handles share one connection (one is a clone of the other): a read
    /// stream of one cannot run inside a write of the other.
    pub fn same_handle(&self, other: &Catalog) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Where the catalog lives: its file path, or `:memory:`.
    pub fn location(&self) -> &str {
        self.inner.store.location()
    }

    /// How a catalog opened with [`Catalog::open_read_only`] is read: in place, as an
    /// immutable file, or from a private copy (when its directory cannot be written); see
    /// [`ReadMode`](crate::ReadMode). `Direct` for every other catalog.
    pub fn read_mode(&self) -> crate::store::ReadMode {
        self.inner.store.read_mode()
    }

    /// The catalog's file, if it is one.
    pub fn file(&self) -> Option<std::path::PathBuf> {
        self.inner.store.file()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Creates the directory `path`; its parent must exist.
    pub fn create_dir(&self, path: impl IntoPath, if_exists: IfExists) -> Result<()> {
        let path = unversioned(path.into_path()?, "create_dir")?;
        if path.is_root() {
            return Err(err!(InvalidPath, "the root directory always exists; name a directory below it"));
        }
        self.store().write(|tx| {
            match tx.entry_kind(&path)? {
                None => {}
                Some(EntryKind::Table) => {
                    return Err(err!(WrongKind, "'{path}' is a table, not a directory; drop it or choose another path"))
                }
                Some(EntryKind::Dir) => match if_exists {
                    IfExists::Error => {
                        return Err(err!(
                            AlreadyExists,
                            "directory '{path}' already exists (use IfExists::Ignore to keep it or IfExists::Replace to recreate it)"
                        ))
                    }
                    IfExists::Ignore => return Ok(()),
                    IfExists::Replace => {
                        let inside = tx.list_entries(&path, true)?;
                        if !inside.is_empty() {
                            return Err(err!(
                                DirNotEmpty,
                                "directory '{path}' is not empty ({}); use IfExists::ReplaceForce to drop its contents",
                                describe_entries(&inside)
                            ));
                        }
                        return Ok(());
                    }
                    IfExists::ReplaceForce => {
                        drop_contents(tx, &tx.list_entries(&path, true)?)?;
                        return Ok(());
                    }
                },
            }
            require_parent_dir(tx, &path)?;
            tx.insert_dir(&path)
        })
    }

    /// Creates the directory `path` and every missing directory above it, in one
    /// transaction; what exists already is kept (as `std::fs::create_dir_all`). A table on
    /// the way is an error.
    pub fn create_dir_all(&self, path: impl IntoPath) -> Result<()> {
        let path = unversioned(path.into_path()?, "create_dir_all")?;
        let mut chain = vec![path.clone()];
        while let Some(parent) = chain.last().and_then(Path::parent).filter(|p| !p.is_root()) {
            chain.push(parent);
        }
        self.store().write(|tx| {
            for dir in chain.iter().rev().filter(|d| !d.is_root()) {
                match tx.entry_kind(dir)? {
                    Some(EntryKind::Dir) => {}
                    Some(EntryKind::Table) => {
                        return Err(err!(WrongKind, "'{dir}' is a table, so '{path}' cannot be a directory"))
                    }
                    None => tx.insert_dir(dir)?,
                }
            }
            Ok(())
        })
    }

    /// Drops the directory `path`. A non-empty one needs `Force::Yes`, and the error lists
    /// what is inside.
    pub fn drop_dir(&self, path: impl IntoPath, force: Force) -> Result<()> {
        self.drop_dir_inner(path, force, false).map(|_| ())
    }

    /// Drops the directory `path` if there is one, as [`drop_dir`](Self::drop_dir) does;
    /// returns whether it did. For teardowns that run whether or not setup got that far.
    pub fn drop_dir_if_exists(&self, path: impl IntoPath, force: Force) -> Result<bool> {
        self.drop_dir_inner(path, force, true)
    }

    fn drop_dir_inner(&self, path: impl IntoPath, force: Force, missing_ok: bool) -> Result<bool> {
        let path = unversioned(path.into_path()?, "drop_dir")?;
        if path.is_root() {
            return Err(err!(InvalidPath, "the root directory cannot be dropped; drop the directories inside it"));
        }
        self.store().write(|tx| {
            match tx.entry_kind(&path)? {
                None if missing_ok => return Ok(false),
                None => return Err(err!(NotFound, "directory '{path}' does not exist")),
                Some(EntryKind::Table) => {
                    return Err(err!(WrongKind, "'{path}' is a table, not a directory (use drop_table)"))
                }
                Some(EntryKind::Dir) => {}
            }
            let inside = tx.list_entries(&path, true)?;
            if !inside.is_empty() && force == Force::No {
                return Err(err!(
                    DirNotEmpty,
                    "directory '{path}' is not empty ({}); use Force::Yes to drop it with its contents",
                    describe_entries(&inside)
                ));
            }
            drop_contents(tx, &inside)?;
            tx.delete_dir(&path)?;
            Ok(true)
        })
    }

    /// The directories below `path` (`""` for the root), sorted.
    pub fn list_dirs(&self, path: impl IntoPath, recursive: Recursive) -> Result<Vec<Path>> {
        self.list(path, recursive, EntryKind::Dir)
    }

    /// The tables below `path` (`""` for the root), sorted.
    pub fn list_tables(&self, path: impl IntoPath, recursive: Recursive) -> Result<Vec<Path>> {
        self.list(path, recursive, EntryKind::Table)
    }

    /// What is below `path` (`""` for the root), sorted by path, as one consistent read:
    /// directories, and tables, views and snapshots with their version, row count and
    /// how many of their computed cells hold an error (what `tabula ls` prints).
    pub fn ls(&self, path: impl IntoPath, recursive: Recursive) -> Result<Vec<Listing>> {
        let path = unversioned(path.into_path()?, "ls")?;
        self.store().read(|tx| {
            match tx.entry_kind(&path)? {
                Some(EntryKind::Dir) => {}
                Some(EntryKind::Table) => return Err(err!(WrongKind, "'{path}' is a table, not a directory")),
                None => return Err(err!(NotFound, "directory '{path}' does not exist")),
            }
            let mut out = Vec::new();
            for (entry, kind) in tx.list_entries(&path, recursive == Recursive::Yes)? {
                if kind == EntryKind::Dir {
                    out.push(Listing {
                        path: entry,
                        kind: ListingKind::Dir,
                        version: None,
                        rows: None,
                        error_cells: None,
                    });
                    continue;
                }
                let id = tx.table_id(&entry)?.ok_or_else(|| err!(NotFound, "'{entry}' vanished"))?;
                let meta = tx.load_table(id, &entry)?;
                let (rows, errors) = tx.rows_and_errors(&meta)?;
                let kind = match meta.kind {
                    Kind::Table => ListingKind::Table,
                    Kind::View { .. } => ListingKind::View,
                    Kind::Snapshot { .. } => ListingKind::Snapshot,
                };
                out.push(Listing {
                    path: entry,
                    kind,
                    version: Some(meta.version),
                    rows: Some(rows),
                    error_cells: Some(errors),
                });
            }
            Ok(out)
        })
    }

    fn list(&self, path: impl IntoPath, recursive: Recursive, kind: EntryKind) -> Result<Vec<Path>> {
        let path = unversioned(path.into_path()?, "list")?;
        self.store().read(|tx| {
            match tx.entry_kind(&path)? {
                Some(EntryKind::Dir) => {}
                Some(EntryKind::Table) => return Err(err!(WrongKind, "'{path}' is a table, not a directory")),
                None => return Err(err!(NotFound, "directory '{path}' does not exist")),
            }
            Ok(tx
                .list_entries(&path, recursive == Recursive::Yes)?
                .into_iter()
                .filter(|(_, k)| *k == kind)
                .map(|(p, _)| p)
                .collect())
        })
    }

    /// Moves (renames) the table or directory at `from` to `to`; a directory moves with
    /// everything in it. Open `Table` handles keep working.
    pub fn move_(&self, from: impl IntoPath, to: impl IntoPath) -> Result<()> {
        let from = unversioned(from.into_path()?, "move_")?;
        let to = unversioned(to.into_path()?, "move_")?;
        if from.is_root() || to.is_root() {
            return Err(err!(InvalidPath, "the root directory cannot be moved or replaced"));
        }
        if to.starts_with(&from) {
            return Err(err!(InvalidPath, "cannot move '{from}' into itself ('{to}')"));
        }
        self.store().write(|tx| {
            if tx.entry_kind(&from)?.is_none() {
                return Err(err!(NotFound, "'{from}' does not exist"));
            }
            if tx.entry_kind(&to)?.is_some() {
                return Err(err!(AlreadyExists, "'{to}' already exists; drop it first or choose another path"));
            }
            require_parent_dir(tx, &to)?;
            tx.move_entries(&from, &to)
        })
    }

    /// Creates a table. With `IfExists::Ignore` an existing table with the same schema is
    /// returned; one with another schema is an error that shows both.
    pub fn create_table(&self, path: impl IntoPath, schema: Schema, if_exists: IfExists) -> Result<Table> {
        let path = unversioned(path.into_path()?, "create_table")?;
        if path.is_root() {
            return Err(err!(InvalidPath, "a table needs a name"));
        }
        let stored = schema.to_table_schema().map_err(|e| e.context(format_args!("create table '{path}'")))?;
        let id = self.store().write(|tx| self.create_table_in(tx, &path, &schema, &stored, if_exists))?;
        Ok(Table::new(self.clone(), id, path, None))
    }

    /// Creates a table whose schema comes from `rows`, and inserts them, in one transaction
    /// (version 0 the table, version 1 the rows). Each column takes the type of its values
    /// (Int and Float together make Float) and is nullable when a row has it null or lacks
    /// it; columns come in the order they first appear. A column whose values have two types,
    /// or only nulls, is an error naming it: give those a schema with `create_table`.
    pub fn create_table_from_rows(
        &self,
        path: impl IntoPath,
        rows: impl IntoIterator<Item = crate::row::Row>,
        if_exists: IfExists,
    ) -> Result<Table> {
        let path = unversioned(path.into_path()?, "create_table_from_rows")?;
        let rows: Vec<crate::row::Row> = rows.into_iter().collect();
        let schema = infer_schema(&rows).map_err(|e| e.context(format_args!("create table '{path}' from rows")))?;
        self.create_filled(path, &schema, rows, if_exists)
    }

    /// Creates a table holding what `query` returns: one stored column an output (its name,
    /// type, and nullability), the rows as of the query's run, in one transaction (version 0
    /// the table, version 1 its rows). The new table is independent of the query's table:
    /// a copy, not a view. Outputs must have valid column names (alias expressions with
    /// `.alias("...")`). The rows are read before the table is written, so they are held in
    /// memory once.
    pub fn create_table_from_query(&self, path: impl IntoPath, query: &Query, if_exists: IfExists) -> Result<Table> {
        let path = unversioned(path.into_path()?, "create_table_from_query")?;
        let in_context = |e: Error| e.context(format_args!("create table '{path}' from a query"));
        let schema = query.output_schema().map_err(in_context)?;
        let rows = query.collect().map_err(in_context)?;
        self.create_filled(path, &schema, rows, if_exists)
    }

    /// Creates a snapshot of a query: a read-only table holding the rows `query` returns now
    /// (its outputs as columns, as [`create_table_from_query`](Self::create_table_from_query)
    /// makes them), plus `additional` computed columns, each computed once for every row
    /// (an expression may read the outputs and the additional columns before it; UDFs are
    /// called once a row, and a failure fails the call). As Pixeltable's
    /// `create_snapshot(path, t.where(..), additional_columns=..)`. It holds its own copy of
    /// its rows, so nothing that happens to the query's table changes it. One transaction;
    /// the snapshot has one version. `IfExists::Ignore` keeps an existing snapshot with the
    /// same columns and expressions (its rows are those of its own time).
    pub fn create_snapshot_of<N: Into<String>>(
        &self,
        path: impl IntoPath,
        query: &Query,
        additional: impl IntoIterator<Item = (N, Expr)>,
        if_exists: IfExists,
    ) -> Result<Table> {
        let path = unversioned(path.into_path()?, "create_snapshot_of")?;
        let in_context = |e: Error| e.context(format_args!("create snapshot '{path}' of a query"));
        let outputs = query.output_schema().map_err(in_context)?;
        let mut stored = outputs.to_table_schema().map_err(in_context)?;
        for (i, (name, expr)) in additional.into_iter().enumerate() {
            let (name, expr): (String, Expr) = (name.into(), expr.unaliased().clone());
            stored.check_new_name(&name).map_err(in_context)?;
            let t = expr.check(&stored).map_err(in_context)?;
            let Some(ty) = t.ty else {
                return Err(in_context(err!(
                    InvalidExpr,
                    "the type of `{expr}` (column '{name}') is unknown (a bare null); cast it"
                )));
            };
            self.inner.udfs.check_expr(&expr).map_err(in_context)?;
            stored.columns.push(crate::schema::ColumnDef {
                id: crate::types::ColumnId((outputs.columns.len() + i) as u32),
                name,
                ty,
                nullable: t.nullable || expr.has_udf(),
                computed: Some(crate::schema::Computed { expr, on_error: crate::schema::OnError::Abort }),
                default: None,
            });
        }
        let rows = query.collect().map_err(in_context)?;
        let detail = format!("create snapshot {path} of a query of '{}' ({} rows)", query.table_path(), rows.len());
        let id = self.store().write(|tx| {
            if let Some(id) = tx.table_id(&path)? {
                let existing = tx.load_table(id, &path)?;
                match if_exists {
                    IfExists::Ignore
                        if matches!(existing.kind, Kind::Snapshot { .. })
                            && existing.schema.columns == stored.columns =>
                    {
                        return Ok(id)
                    }
                    IfExists::Error | IfExists::Ignore => {
                        return Err(err!(
                            AlreadyExists,
                            "'{path}' already exists{} (use IfExists::Replace to recreate it)",
                            if if_exists == IfExists::Ignore {
                                " with other columns; IfExists::Ignore keeps only a snapshot with the same columns"
                            } else {
                                ""
                            }
                        ))
                    }
                    IfExists::Replace => drop_with_dependents(tx, id, &path, Force::No)?,
                    IfExists::ReplaceForce => drop_with_dependents(tx, id, &path, Force::Yes)?,
                }
            }
            require_parent_dir(tx, &path)?;
            let id = tx.create_table(&path, &stored)?;
            let table = Table::new(self.clone(), id, path.clone(), None);
            table.write_in(tx, |tx, meta, version| table.insert_rows(tx, meta, version, rows.into_iter().map(Ok)))?;
            tx.seal_snapshot(id, &detail)?;
            Ok(id)
        })?;
        Ok(Table::new(self.clone(), id, path, None))
    }

    /// Creates `path` with `schema` and inserts `rows`, in one transaction.
    fn create_filled(
        &self,
        path: Path,
        schema: &Schema,
        rows: Vec<crate::row::Row>,
        if_exists: IfExists,
    ) -> Result<Table> {
        let stored = schema.to_table_schema().map_err(|e| e.context(format_args!("create table '{path}'")))?;
        let id = self.store().write(|tx| {
            let id = self.create_table_in(tx, &path, schema, &stored, if_exists)?;
            let table = Table::new(self.clone(), id, path.clone(), None);
            table.write_in(tx, |tx, meta, version| table.insert_rows(tx, meta, version, rows.into_iter().map(Ok)))?;
            Ok(id)
        })?;
        Ok(Table::new(self.clone(), id, path, None))
    }

    fn create_table_in(
        &self,
        tx: &Tx,
        path: &Path,
        schema: &Schema,
        stored: &crate::schema::TableSchema,
        if_exists: IfExists,
    ) -> Result<crate::types::TableId> {
        {
            match tx.entry(path)? {
                None => {}
                Some(Entry::Dir) => {
                    return Err(err!(WrongKind, "'{path}' is a directory, not a table; choose another path"))
                }
                Some(Entry::Table(id)) => {
                    match if_exists {
                        IfExists::Error => {
                            return Err(err!(
                                AlreadyExists,
                                "table '{path}' already exists (use IfExists::Ignore to keep it or IfExists::Replace to recreate it)"
                            ))
                        }
                        IfExists::Ignore => {
                            // Compare with the schema the table was created with: later
                            // migration steps may have changed it since.
                            let created = tx.schema_at(id, crate::types::Version(0))?;
                            if Schema::from_stored(&created) != *schema {
                                return Err(err!(
                                    AlreadyExists,
                                    "table '{path}' already exists, created with another schema; IfExists::Ignore keeps it only when it matches\n  existing:  {}\n  requested: {schema}\n(use IfExists::Replace to recreate it, or a migration to change it)",
                                    Schema::from_stored(&created)
                                ));
                            }
                            return Ok(id);
                        }
                        IfExists::Replace => drop_with_dependents(tx, id, path, Force::No)?,
                        IfExists::ReplaceForce => drop_with_dependents(tx, id, path, Force::Yes)?,
                    }
                }
            }
            require_parent_dir(tx, path)?;
            tx.create_table(path, stored)
        }
    }

    /// Opens the table at `path`; `dir/table:3` opens version 3, read-only.
    pub fn get_table(&self, path: impl IntoPath) -> Result<Table> {
        let path = path.into_path()?;
        let plain = path.unversioned();
        let id = self.store().read(|tx| {
            let id = match tx.entry(&plain)? {
                Some(Entry::Table(id)) => Some(id),
                Some(Entry::Dir) => return Err(err!(WrongKind, "'{plain}' is a directory, not a table")),
                None => None,
            };
            let id = id.ok_or_else(|| not_found_table(tx, &plain))?;
            if let Some(v) = path.version() {
                let meta = tx.load_table(id, &plain)?;
                if v > meta.version || tx.schema_at(id, v).is_err() {
                    return Err(err!(
                        NotFound,
                        "table '{plain}' has no version {v} (its current version is {}; a reverted version is gone)",
                        meta.version
                    ));
                }
            }
            Ok(id)
        })?;
        // UDFs are not checked here: stored values stay readable without them, and a
        // migration must be able to open the table to replace a column (`Table::check_udfs`).
        Ok(Table::new(self.clone(), id, plain, path.version()))
    }

    /// Drops the table (or view, or snapshot) at `path` with all its versions. Views and
    /// snapshots of it are dropped too with `Force::Yes`; without, the error names them.
    pub fn drop_table(&self, path: impl IntoPath, force: Force) -> Result<()> {
        self.drop_table_inner(path, force, false).map(|_| ())
    }

    /// Drops the table (or view, or snapshot) at `path` if there is one, as
    /// [`drop_table`](Self::drop_table) does; returns whether it did. A directory at `path`
    /// is still an error: only absence is ignored.
    pub fn drop_table_if_exists(&self, path: impl IntoPath, force: Force) -> Result<bool> {
        self.drop_table_inner(path, force, true)
    }

    fn drop_table_inner(&self, path: impl IntoPath, force: Force, missing_ok: bool) -> Result<bool> {
        let path = unversioned(path.into_path()?, "drop_table")?;
        self.store().write(|tx| {
            let id = match tx.entry(&path)? {
                Some(Entry::Dir) => return Err(err!(WrongKind, "'{path}' is a directory, not a table (use drop_dir)")),
                Some(Entry::Table(id)) => id,
                None if missing_ok => return Ok(false),
                None => return Err(not_found_table(tx, &path)),
            };
            drop_with_dependents(tx, id, &path, force)?;
            Ok(true)
        })
    }

    /// The format version of the catalog's file: at most [`FORMAT_VERSION`](crate::FORMAT_VERSION)
    /// (a newer file is refused when opened); an older file is upgraded by the first write
    /// that needs the newer format.
    pub fn format_version(&self) -> Result<i64> {
        self.store().read(|tx| tx.format_version())
    }

    /// Checks the catalog file: SQLite's integrity check, then Tabula's storage model (no
    /// physical table without its table or table without its physical table, no view or
    /// snapshot whose base is gone, no version records of a missing table, every table's
    /// current version recorded). An error lists everything it found.
    pub fn integrity_check(&self) -> Result<()> {
        let problems = self.store().integrity_check()?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(err!(Storage, "catalog '{}' failed its integrity check: {}", self.location(), problems.join("; ")))
        }
    }

    /// Drops at once the physical tables a server keeps for ten minutes after a table is
    /// dropped or compacted, for the readers that began before. Call it only where no reader
    /// can be in flight, such as a catalog being built as a template (the testkit does, so
    /// that copies of it do not carry them). Nothing to do on a file.
    pub fn drop_kept_tables(&self) -> Result<()> {
        self.store().write(|tx| tx.drop_trash(std::time::Duration::ZERO))
    }

    /// Writes a consistent copy of the whole catalog to the file `dest` (SQLite's online
    /// backup), for example to make a template or a staging copy.
    pub fn backup_to(&self, dest: impl AsRef<std::path::Path>) -> Result<()> {
        self.store().backup_to(dest.as_ref())
    }
}

fn unversioned(path: Path, call: &str) -> Result<Path> {
    if path.version().is_some() {
        return Err(err!(InvalidPath, "{call}: '{path}' names a version; versions are read-only (drop the ':N')"));
    }
    Ok(path)
}

fn require_parent_dir(tx: &Tx, path: &Path) -> Result<()> {
    let Some(parent) = path.parent() else { return Ok(()) };
    match tx.entry_kind(&parent)? {
        Some(EntryKind::Dir) => Ok(()),
        Some(EntryKind::Table) => {
            Err(err!(WrongKind, "cannot create '{path}': '{parent}' is a table, not a directory"))
        }
        None => Err(err!(NotFound, "cannot create '{path}': directory '{parent}' does not exist (create it first)")),
    }
}

fn not_found_table(tx: &Tx, path: &Path) -> crate::error::Error {
    let hint = path
        .parent()
        .and_then(|dir| tx.list_entries(&dir, false).ok())
        .map(|entries| {
            let tables: Vec<String> =
                entries.iter().filter(|(_, k)| *k == EntryKind::Table).map(|(p, _)| p.to_string()).collect();
            if tables.is_empty() {
                String::new()
            } else {
                format!(" (tables there: {})", tables.join(", "))
            }
        })
        .unwrap_or_default();
    err!(NotFound, "table '{path}' does not exist{hint}")
}

/// Drops table `id` after its views and snapshots (which needs `Force::Yes` when it has any).
fn drop_with_dependents(tx: &Tx, id: crate::types::TableId, path: &Path, force: Force) -> Result<()> {
    let deps = tx.descendants(id)?;
    if !deps.is_empty() && force == Force::No {
        return Err(versions::dependents_error(path, &deps));
    }
    // Those reading others last are dropped first.
    for (dep, _) in deps.into_iter().rev() {
        tx.drop_table(dep)?;
    }
    tx.drop_table(id)
}

/// Drops `inside`, everything below a directory (as `Tx::list_entries` lists it,
/// recursively): views and snapshots before the tables they read (also those outside the
/// directory), then the tables, then the directories, deepest first.
fn drop_contents(tx: &Tx, inside: &[(Path, EntryKind)]) -> Result<()> {
    for (path, kind) in inside.iter().rev() {
        if *kind == EntryKind::Table {
            // It may be gone already, as a dependent of a table dropped before it.
            if let Some(id) = tx.table_id(path)? {
                drop_with_dependents(tx, id, path, Force::Yes)?;
            }
        }
    }
    for (path, kind) in inside.iter().rev() {
        if *kind == EntryKind::Dir {
            tx.delete_dir(path)?;
        }
    }
    Ok(())
}

fn describe_entries(entries: &[(Path, EntryKind)]) -> String {
    const SHOWN: usize = 10;
    let mut parts: Vec<String> = entries
        .iter()
        .take(SHOWN)
        .map(|(p, k)| format!("{} '{p}'", if *k == EntryKind::Dir { "directory" } else { "table" }))
        .collect();
    if entries.len() > SHOWN {
        parts.push(format!("and {} more", entries.len() - SHOWN));
    }
    format!("it holds {}", parts.join(", "))
}
