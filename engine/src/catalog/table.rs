//! [`Table`]: a handle on one table (or one read-only version of it): describe, insert,
//! update, delete, select, history.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::catalog::Query;
use crate::change::{Change, ChangeKind};
use crate::compute::{self, RowWriter};
use crate::error::{err, Result};
use crate::expr::{col, Expr};
use crate::path::Path;
use crate::row::Row;
use crate::schema::{ColumnDef, TableSchema};
use crate::store::{column_level, now_micros, sql, Kind, Set, TableMeta, Tx, VersionRecord, ViewRows};
use crate::types::{ColumnType, TableId, Value, Version};

/// A handle on a table. Cheap to clone. It reads the table's metadata afresh in every call,
/// so it stays valid when other handles change or move the table.
#[derive(Clone)]
pub struct Table {
    pub(crate) catalog: Catalog,
    pub(crate) id: TableId,
    path: Path,
    pub(crate) pinned: Option<Version>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Table({})", self.display_path())
    }
}

/// Whether [`Table::recompute_with`] computes the columns that read the one it recomputes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cascade {
    /// They are computed again too (their inputs changed).
    Yes,
    /// They keep their values.
    No,
}

/// Which rows [`Table::recompute`] computes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    /// The rows whose cell of the column holds an error.
    Errors,
    /// Every row.
    All,
}

/// What kind of table a [`Table`] handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TableKind {
    /// A table with its own rows.
    Table,
    /// A view: the rows of a base table that pass a filter, with its own computed columns.
    View,
    /// A read-only snapshot of a table version.
    Snapshot,
}

/// What a mutating call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WriteResult {
    /// The table's version after the call (unchanged when the call changed nothing).
    pub version: Version,
    /// The kind of change the call's version made; `None` when it changed nothing.
    pub change: Option<ChangeKind>,
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
}

/// A column as `describe()` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnInfo {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it may be null.
    pub nullable: bool,
    /// The expression of a computed column, as text.
    pub computed: Option<String>,
}

/// What `describe()` returns: the table's path, version and columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableInfo {
    /// The table's path.
    pub path: String,
    /// The version described.
    pub version: Version,
    /// True for a handle on an old version.
    pub read_only: bool,
    /// The columns, in order.
    pub columns: Vec<ColumnInfo>,
    /// The primary key's columns (empty without one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
}

impl fmt::Display for TableInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "table '{}' (version {}{})",
            self.path,
            self.version,
            if self.read_only { ", read-only" } else { "" }
        )?;
        let width = self.columns.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.columns {
            let ty = format!("{}{}", c.ty, if c.nullable { "?" } else { "" });
            match &c.computed {
                Some(expr) => writeln!(f, "  {:width$}  {ty:10} = {expr}", c.name)?,
                None => writeln!(f, "  {:width$}  {ty}", c.name)?,
            }
        }
        if !self.primary_key.is_empty() {
            writeln!(f, "  primary key ({})", self.primary_key.join(", "))?;
        }
        Ok(())
    }
}

/// One entry of `history()`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionInfo {
    /// The version.
    pub version: Version,
    /// When it was made, in microseconds since the epoch.
    pub created_at: i64,
    /// The kind of change.
    pub change: ChangeKind,
    /// The change in words, e.g. `add computed column summary = summarize@1(text)`.
    pub detail: String,
    /// Rows inserted by this version.
    pub inserted: u64,
    /// Rows updated by this version.
    pub updated: u64,
    /// Rows deleted by this version.
    pub deleted: u64,
}

impl Table {
    pub(crate) fn new(catalog: Catalog, id: TableId, path: Path, pinned: Option<Version>) -> Table {
        Table { catalog, id, path, pinned }
    }

    /// The path the table was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The catalog this table lives in.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The version this handle is pinned to (`dir/table:3`), if any; such a handle is read-only.
    pub fn pinned_version(&self) -> Option<Version> {
        self.pinned
    }

    pub(crate) fn display_path(&self) -> String {
        match self.pinned {
            Some(v) => format!("{}:{v}", self.path),
            None => self.path.to_string(),
        }
    }

    /// The metadata as this handle sees it (a pinned table version's schema; a pinned view
    /// version's schema and base as they were).
    pub(crate) fn meta(&self, tx: &Tx) -> Result<TableMeta> {
        let meta = tx.load_table(self.id, &self.path)?;
        let Some(v) = self.pinned else { return Ok(meta) };
        if let Kind::Snapshot { .. } = meta.kind {
            return Err(err!(InvalidPath, "'{}' is a snapshot; it has one version, open it without one", self.path));
        }
        let gone = || {
            err!(
                NotFound,
                "'{}' has no version {v} (its current version is {}; a reverted version is gone)",
                self.path,
                meta.version
            )
        };
        if v > meta.version || tx.schema_at(self.id, v).is_err() {
            return Err(gone());
        }
        tx.load_at(self.id, &self.path, Some(v))
    }

    /// Runs a mutating call: one write transaction, refused on a pinned handle; `f` gets the
    /// current metadata and the number of the version it would create, and says what it did
    /// (`None`: nothing changed, so no version is made).
    pub(crate) fn write(
        &self,
        f: impl FnOnce(&Tx, &mut TableMeta, Version) -> Result<Option<Change>>,
    ) -> Result<WriteResult> {
        if self.pinned.is_some() {
            return Err(err!(
                ReadOnly,
                "'{}' is a read-only version of table '{}'; open '{}' to write (or revert to that version)",
                self.display_path(),
                self.path,
                self.path
            ));
        }
        self.catalog.store().write(|tx| self.write_in(tx, f))
    }

    /// [`Table::write`] inside a transaction the caller holds.
    pub(crate) fn write_in(
        &self,
        tx: &Tx,
        f: impl FnOnce(&Tx, &mut TableMeta, Version) -> Result<Option<Change>>,
    ) -> Result<WriteResult> {
        let udfs = &self.catalog.inner.udfs;
        {
            let mut meta = self.meta(tx)?;
            if let Kind::Snapshot { .. } = meta.kind {
                return Err(err!(ReadOnly, "'{}' is a snapshot; snapshots are read-only", meta.path));
            }
            // Version numbers are never reused, even after a revert.
            let next = Version(meta.last_version.0 + 1);
            let path = meta.path.clone();
            let Some(change) = f(tx, &mut meta, next).map_err(|e| e.context(format_args!("table '{path}'")))? else {
                return Ok(WriteResult { version: meta.version, change: None, inserted: 0, updated: 0, deleted: 0 });
            };
            if let (Some((first, _)), Kind::Table) = (change.rowids, &meta.kind) {
                let rows = match &change.changed {
                    None => ViewRows::From(first),
                    Some(_) => ViewRows::Rewritten { first, version: next },
                };
                maintain_views(tx, &meta, rows, change.changed.as_ref(), udfs)
                    .map_err(|e| e.context(format_args!("table '{path}'")))?;
            }
            let mut recorded = meta.schema.clone();
            if let Kind::View { .. } = meta.kind {
                let level = meta.level();
                recorded.columns.retain(|c| column_level(c.id) == level);
            }
            let record = VersionRecord {
                version: next,
                created_at: now_micros(),
                change: change.kind,
                detail: change.detail,
                inserted: change.inserted,
                updated: change.updated,
                deleted: change.deleted,
                rowids: change.rowids,
                // A data change keeps the schema: its record refers to the one that holds it.
                schema: change.kind.changes_schema().then_some(recorded),
            };
            tx.commit_version(&meta, &record)?;
            match &meta.kind {
                // The views reading this table follow it.
                Kind::Table => crate::catalog::follow::follow_base(tx, &meta, &record)?,
                // A view's own change records which version of its base it shows; the views
                // reading it follow it.
                Kind::View { base, .. } => {
                    let base_version = tx.load_table(*base, &meta.path)?.version;
                    tx.record_follow(meta.id, next, base_version, false)?;
                    crate::catalog::follow::follow_base(tx, &meta, &record)?;
                }
                Kind::Snapshot { .. } => {}
            }
            Ok(WriteResult {
                version: next,
                change: Some(change.kind),
                inserted: change.inserted,
                updated: change.updated,
                deleted: change.deleted,
            })
        }
    }

    /// Checks that every UDF the table's computed columns call is registered on this handle
    /// with the stored version and signature; the error names the column, the UDF and both
    /// versions. Opening a table does not check this (stored values stay readable, and a
    /// migration can replace the column); writes that need a missing UDF are refused.
    pub fn check_udfs(&self) -> Result<()> {
        let schema = self.catalog.store().read(|tx| Ok(self.meta(tx)?.schema))?;
        self.catalog.inner.udfs.check_schema(&schema).map(|_| ())
    }

    /// The views and snapshots that read this table, by path: what dropping it with
    /// `Force::Yes` drops too.
    pub fn dependents(&self) -> Result<Vec<Path>> {
        self.catalog.store().read(|tx| {
            let meta = self.meta(tx)?;
            Ok(tx.dependents(meta.id)?.into_iter().map(|(_, path)| path).collect())
        })
    }

    /// The table's current version (or the pinned one).
    pub fn version(&self) -> Result<Version> {
        self.catalog.store().read(|tx| Ok(self.meta(tx)?.version))
    }

    /// The schema of this table as stored (column ids, computed definitions).
    pub fn schema(&self) -> Result<TableSchema> {
        self.catalog.store().read(|tx| Ok(self.meta(tx)?.schema))
    }

    /// The table's path, version and columns.
    pub fn describe(&self) -> Result<TableInfo> {
        let meta = self.catalog.store().read(|tx| self.meta(tx))?;
        Ok(TableInfo {
            path: meta.path.to_string(),
            version: meta.version,
            read_only: self.pinned.is_some(),
            columns: meta
                .schema
                .columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.name.clone(),
                    ty: c.ty,
                    nullable: c.nullable,
                    computed: c.computed.as_ref().map(|comp| comp.expr.to_string()),
                })
                .collect(),
            primary_key: meta.schema.key_columns().iter().map(|c| c.name.clone()).collect(),
        })
    }

    /// Inserts rows (see [`row!`](crate::row!)). Computed columns are computed for each.
    /// One new version; a bad row fails the whole call, naming the row and column.
    pub fn insert(&self, rows: impl IntoIterator<Item = Row>) -> Result<WriteResult> {
        self.insert_results(rows.into_iter().map(Ok))
    }

    /// Inserts rows from a fallible source (a stream being read, a transformation that can
    /// fail): the first `Err` aborts the call, and nothing is inserted.
    ///
    /// The rows are pulled while this handle holds the catalog for the insert, so a stream
    /// of the same handle cannot be read meanwhile: it fails at once with
    /// [`ErrorCode::Reentrant`](crate::ErrorCode::Reentrant) (and nothing is inserted).
    /// Stream from another handle of the same file, or collect the rows first.
    pub fn insert_results(&self, rows: impl IntoIterator<Item = Result<Row>>) -> Result<WriteResult> {
        self.write(|tx, meta, version| self.insert_rows(tx, meta, version, rows))
    }

    /// Inserts rows with `on_error` for every computed column in this call, whatever each
    /// column says (as Pixeltable's `insert(.., on_error=...)`): `OnError::Ignore` keeps the
    /// rows whose cells fail, with their errors; `OnError::Abort` fails the call at the first
    /// failure, storing nothing.
    pub fn insert_with(
        &self,
        rows: impl IntoIterator<Item = Row>,
        on_error: crate::schema::OnError,
    ) -> Result<WriteResult> {
        let udfs = &self.catalog.inner.udfs;
        self.write(|tx, meta, version| {
            rows_writable(meta)?;
            let mut writer = RowWriter::new(tx, meta, version, udfs)?;
            writer.override_on_error(on_error);
            for (i, row) in rows.into_iter().enumerate() {
                writer.push_row(i, row)?;
            }
            writer.finish(meta)
        })
    }

    /// The insert of `rows`, inside a write.
    pub(crate) fn insert_rows(
        &self,
        tx: &Tx,
        meta: &mut TableMeta,
        version: Version,
        rows: impl IntoIterator<Item = Result<Row>>,
    ) -> Result<Option<Change>> {
        rows_writable(meta)?;
        let mut writer = RowWriter::new(tx, meta, version, &self.catalog.inner.udfs)?;
        for (i, row) in rows.into_iter().enumerate() {
            writer.push_row(i, row?)?;
        }
        writer.finish(meta)
    }

    /// Whether this is a table, a view or a snapshot.
    pub fn kind(&self) -> Result<TableKind> {
        let meta = self.catalog.store().read(|tx| self.meta(tx))?;
        Ok(match meta.kind {
            Kind::Table => TableKind::Table,
            Kind::View { .. } => TableKind::View,
            Kind::Snapshot { .. } => TableKind::Snapshot,
        })
    }

    /// Inserts `serde::Serialize` values (structs with one field a column). Field names must
    /// match column names; a missing field is null.
    pub fn insert_records<T: Serialize>(&self, records: impl IntoIterator<Item = T>) -> Result<WriteResult> {
        let records = records.into_iter();
        let udfs = &self.catalog.inner.udfs;
        self.write(|tx, meta, version| {
            rows_writable(meta)?;
            let mut writer = RowWriter::new(tx, meta, version, udfs)?;
            for (i, record) in records.enumerate() {
                let json = serde_json::to_value(&record)
                    .map_err(|e| err!(Serde, "row {i}: could not serialize the record ({e})"))?;
                writer.push_json(i, json)?;
            }
            writer.finish(meta)
        })
    }

    /// Sets columns to expressions (over the row's current values) in every row where
    /// `where_` is true; computed columns that depend on them are recomputed. Use
    /// `lit(true)` to update every row.
    pub fn update<N: Into<String>, E: Into<Expr>>(
        &self,
        set: impl IntoIterator<Item = (N, E)>,
        where_: Expr,
    ) -> Result<WriteResult> {
        self.update_inner(set, where_, None)
    }

    /// [`update`](Self::update) with `on_error` for every computed column it recomputes in
    /// this call, whatever each column says (as Pixeltable's `update(.., on_error=...)`).
    pub fn update_with<N: Into<String>, E: Into<Expr>>(
        &self,
        set: impl IntoIterator<Item = (N, E)>,
        where_: Expr,
        on_error: crate::schema::OnError,
    ) -> Result<WriteResult> {
        self.update_inner(set, where_, Some(on_error))
    }

    fn update_inner<N: Into<String>, E: Into<Expr>>(
        &self,
        set: impl IntoIterator<Item = (N, E)>,
        where_: Expr,
        on_error: Option<crate::schema::OnError>,
    ) -> Result<WriteResult> {
        let set: Vec<(String, Expr)> = set.into_iter().map(|(n, e)| (n.into(), e.into())).collect();
        let udfs = &self.catalog.inner.udfs;
        self.write(|tx, meta, version| {
            if let Some(on_error) = on_error {
                // For this call only: a data change records no schema.
                for c in &mut meta.schema.columns {
                    if let Some(computed) = &mut c.computed {
                        computed.on_error = on_error;
                    }
                }
            }
            if set.is_empty() {
                return Err(err!(InvalidArgument, "update needs at least one column to set"));
            }
            if let Kind::View { .. } = meta.kind {
                return update_view(tx, meta, version, &set, &where_);
            }
            rows_writable(meta)?;
            let mut changed = BTreeSet::new();
            for (name, expr) in &set {
                let Some(column) = meta.schema.column(name) else {
                    return Err(err!(
                        UnknownColumn,
                        "update: no column '{name}' (the columns are: {})",
                        meta.schema.names().join(", ")
                    ));
                };
                if column.is_computed() {
                    return Err(err!(
                        InvalidArgument,
                        "update: column '{name}' is computed; change its inputs or replace its expression"
                    ));
                }
                if !changed.insert(name.clone()) {
                    return Err(err!(InvalidArgument, "update: column '{name}' is set twice"));
                }
                compute::check_assignable(&meta.schema, column, expr)?;
                no_udf("update", expr)?;
            }
            check_predicate(&meta.schema, &where_)?;
            no_udf("the condition of an update or delete", &where_)?;
            let detail = format!(
                "update {} where {where_}",
                set.iter().map(|(n, e)| format!("{n} = {e}")).collect::<Vec<_>>().join(", ")
            );
            let n = compute::end_rows(tx, meta, version, &where_, udfs)?;
            if n == 0 {
                return Ok(None);
            }
            let rowids = compute::rewrite_ended(tx, meta, version, Set::Exprs(&set), &BTreeSet::new(), true, udfs)
                .map_err(|e| match e.code() {
                    crate::error::ErrorCode::DuplicateKey => err!(
                        DuplicateKey,
                        "update: setting {} would give two live rows the same primary key ({}); nothing was changed",
                        set.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                        meta.schema.key_columns().iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    _ => e,
                })?;
            changed.extend(meta.schema.downstream_of(&changed).iter().map(|c| c.name.clone()));
            Ok(Some(Change { rowids, changed: Some(changed), ..Change::rows(ChangeKind::Update, detail, 0, n, 0) }))
        })
    }

    /// Computes computed column `name` again, and every computed column that reads it, for
    /// the rows `only` names, as one version: those rows get new row versions, so a revert
    /// brings back what they had, errors included. `Only::Errors` pays only for the rows
    /// whose cell failed (an API that was briefly down); `Only::All` for every row.
    pub fn recompute(&self, name: &str, only: Only) -> Result<WriteResult> {
        self.recompute_where(name, only, crate::expr::lit(true))
    }

    /// [`recompute`](Self::recompute), for the rows where `where_` (no UDF) holds too.
    pub fn recompute_where(&self, name: &str, only: Only, where_: Expr) -> Result<WriteResult> {
        self.recompute_with(name, only, where_, Cascade::Yes)
    }

    /// [`recompute_where`](Self::recompute_where), saying whether the computed columns that
    /// read `name` (in this table and in its views) follow: `Cascade::No` computes `name`
    /// alone and keeps their values as they were (as Pixeltable's `cascade=False`: when a
    /// dependent's UDF is expensive and its result is known not to change, or is to be
    /// recomputed later); they then no longer match their inputs until recomputed.
    pub fn recompute_with(&self, name: &str, only: Only, where_: Expr, cascade: Cascade) -> Result<WriteResult> {
        let udfs = &self.catalog.inner.udfs;
        udfs.begin_session();
        let done = self.recompute_now(name, only, where_, cascade);
        udfs.end_session();
        done
    }

    fn recompute_now(&self, name: &str, only: Only, where_: Expr, cascade: Cascade) -> Result<WriteResult> {
        let udfs = &self.catalog.inner.udfs;
        if let Some(computed) = self.schema()?.column(name).and_then(|c| c.computed.clone()) {
            let rows = match only {
                Only::Errors => where_.clone().and(col(name).errortype().is_not_null()),
                Only::All => where_.clone(),
            };
            let stop_after = (computed.on_error == crate::schema::OnError::Abort).then_some(0);
            self.warm(name, &computed.expr, Some(rows), stop_after)?;
        }
        self.write(|tx, meta, version| {
            rows_writable(meta)?;
            let Some(column) = meta.schema.column(name) else {
                return Err(err!(
                    UnknownColumn,
                    "recompute: no column '{name}' (the columns are: {})",
                    meta.schema.names().join(", ")
                ));
            };
            if !column.is_computed() {
                return Err(err!(
                    InvalidArgument,
                    "recompute: column '{name}' is stored; only computed columns are computed again"
                ));
            }
            check_predicate(&meta.schema, &where_)?;
            no_udf("the condition of a recompute", &where_)?;
            let (rows, which) = match only {
                Only::Errors => (where_.clone().and(col(name).errortype().is_not_null()), "failed cells of "),
                Only::All => (where_.clone(), ""),
            };
            let n = compute::end_rows(tx, meta, version, &rows, udfs)?;
            if n == 0 {
                return Ok(None);
            }
            let again = BTreeSet::from([name.to_string()]);
            let cascades = cascade == Cascade::Yes;
            let rowids = compute::rewrite_ended(tx, meta, version, Set::Exprs(&[]), &again, cascades, udfs)?;
            // What views recompute: what changed, or nothing when the change does not cascade.
            let changed: BTreeSet<String> = match cascade {
                Cascade::Yes => {
                    meta.schema.recomputed(&BTreeSet::new(), &again).iter().map(|c| c.name.clone()).collect()
                }
                Cascade::No => BTreeSet::new(),
            };
            let alone = if cascades { "" } else { " (alone)" };
            Ok(Some(Change {
                rowids,
                changed: Some(changed),
                ..Change::rows(ChangeKind::Recompute, format!("recompute {which}{name}{alone} where {where_}"), 0, n, 0)
            }))
        })
    }

    /// Deletes every row where `where_` is true.
    pub fn delete(&self, where_: Expr) -> Result<WriteResult> {
        self.write(|tx, meta, version| {
            rows_writable(meta)?;
            check_predicate(&meta.schema, &where_)?;
            no_udf("the condition of an update or delete", &where_)?;
            let n = compute::end_rows(tx, meta, version, &where_, &self.catalog.inner.udfs)?;
            Ok((n > 0).then(|| Change::rows(ChangeKind::Delete, format!("delete where {where_}"), 0, 0, n)))
        })
    }

    /// A query over the given expressions: `table.select([col("a"), col("b") + 1])`.
    pub fn select(&self, items: impl IntoIterator<Item = Expr>) -> Query {
        Query::new(self.clone(), items.into_iter().collect())
    }

    /// A query over every column.
    pub fn select_all(&self) -> Query {
        Query::new(self.clone(), Vec::new())
    }

    /// The number of rows.
    pub fn count(&self) -> Result<u64> {
        self.select_all().count()
    }

    /// Every version of the table, newest first (only up to the pinned version on a pinned
    /// handle).
    pub fn history(&self) -> Result<Vec<VersionInfo>> {
        let records = self.catalog.store().read(|tx| {
            let meta = self.meta(tx)?;
            Ok(tx.versions(self.id)?.into_iter().filter(|r| r.version <= meta.version).collect::<Vec<_>>())
        })?;
        Ok(records
            .into_iter()
            .map(|r| VersionInfo {
                version: r.version,
                created_at: r.created_at,
                change: r.change,
                detail: r.detail,
                inserted: r.inserted,
                updated: r.updated,
                deleted: r.deleted,
            })
            .collect())
    }
}

/// Updates and deletes run as single SQL statements, which cannot call UDFs.
fn no_udf(what: &str, expr: &Expr) -> Result<()> {
    if expr.has_udf() {
        return Err(err!(
            InvalidArgument,
            "{what} `{expr}` calls a UDF; updates and deletes run in SQL: add the UDF as a computed column and use that column"
        ));
    }
    Ok(())
}

/// An update of view `meta`: only its own stored columns can be set (to expressions over the
/// view's columns, no UDF), in the rows it shows where `where_` holds.
fn update_view(
    tx: &Tx,
    meta: &TableMeta,
    version: Version,
    set: &[(String, Expr)],
    where_: &Expr,
) -> Result<Option<Change>> {
    let level = meta.level();
    let mut seen = BTreeSet::new();
    for (name, expr) in set {
        let column = meta.schema.column(name).ok_or_else(|| {
            err!(UnknownColumn, "update: no column '{name}' (the columns are: {})", meta.schema.names().join(", "))
        })?;
        if column_level(column.id) != level || column.is_computed() {
            return Err(err!(
                ReadOnly,
                "'{}' is a view: update sets only its own stored columns (add one with add_column), and '{name}' is {}",
                meta.path,
                if column.is_computed() { "computed" } else { "its base's: write to the base instead" }
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(err!(InvalidArgument, "update: column '{name}' is set twice"));
        }
        compute::check_assignable(&meta.schema, column, expr)?;
        no_udf("update", expr)?;
    }
    check_predicate(&meta.schema, where_)?;
    no_udf("the condition of an update or delete", where_)?;
    let schema = &meta.schema;
    // (The view's own filter the store evaluates either way: see `store::shown`.)
    let portable = sql::portable_predicate(where_, schema) && set.iter().all(|(_, e)| sql::portable_operand(e, schema));
    let n = match tx.on_server() && !portable {
        true => update_view_in_rust(tx, meta, version, set, where_)?,
        false => tx.update_view_stored(meta, version, set, where_)?,
    };
    let detail = format!(
        "update {} where {where_}",
        set.iter().map(|(n, e)| format!("{n} = {e}")).collect::<Vec<_>>().join(", ")
    );
    Ok((n > 0).then(|| Change::rows(ChangeKind::Update, detail, 0, n, 0)))
}

/// [`update_view`] where a server cannot run the condition, the view's filter or the new
/// values with Tabula's meaning (functions, arithmetic): each is evaluated here on the rows
/// the view shows, as SQLite's functions would (a condition that fails does not match; a
/// value a function cannot compute is null), and the new stored values are written.
fn update_view_in_rust(
    tx: &Tx,
    meta: &TableMeta,
    version: Version,
    set: &[(String, Expr)],
    where_: &Expr,
) -> Result<u64> {
    let level = meta.level();
    let own: Vec<&crate::schema::ColumnDef> =
        meta.schema.columns.iter().filter(|c| column_level(c.id) == level && !c.is_computed()).collect();
    let filter = meta.view_filter.clone().unwrap_or(Expr::Literal(Value::Bool(true)));
    let mut names: Vec<String> = own.iter().map(|c| c.name.clone()).collect();
    names.extend(filter.columns());
    names.extend(where_.columns());
    names.extend(set.iter().flat_map(|(_, e)| e.columns()));
    names.sort();
    names.dedup();
    let registry = crate::udf::Registry::new(crate::store::ResultsAt::Memory);
    let at = |name: &str| names.iter().position(|n| n == name);
    // A page of the view's rows at a time, its new stored values added before the next is
    // read: memory stays one page whatever the view's size. (The values they replace end
    // after the last page; until then, pages after this one read other row identities.)
    let mut written = 0;
    let mut after = 0;
    loop {
        let page = tx.view_rows(meta, &names, after, compute::BATCH)?;
        let full = page.len() == compute::BATCH;
        let (keys, values): (Vec<(i64, i64)>, Vec<Vec<Value>>) =
            page.into_iter().map(|(rowid, id, values)| ((rowid, id), values)).unzip();
        let batch = crate::eval::Batch { names: &names, rows: &values };
        let holds = |e: &Expr| crate::eval::holds(e, &names, &values);
        let (shown, chosen) = (holds(&filter)?, holds(where_)?);
        let mut new_values: Vec<Vec<Value>> = Vec::with_capacity(set.len());
        for (name, expr) in set {
            let column = meta.schema.column(name).ok_or_else(|| err!(UnknownColumn, "update: no column '{name}'"))?;
            let cells = crate::eval::eval(expr, &batch, &registry)?;
            let coerced = cells.into_iter().map(|c| {
                c.unwrap_or(Value::Null)
                    .coerce_to(column.ty)
                    .map_err(|why| err!(TypeMismatch, "update: the new value of column '{name}': {why}"))
            });
            new_values.push(coerced.collect::<Result<_>>()?);
        }
        let mut out = Vec::new();
        for (i, (_, id)) in keys.iter().enumerate() {
            if !(shown[i] && chosen[i]) {
                continue;
            }
            let row: Vec<Value> = own
                .iter()
                .map(|c| match set.iter().position(|(n, _)| *n == c.name) {
                    Some(k) => new_values[k][i].clone(),
                    None => at(&c.name).map(|p| values[i][p].clone()).unwrap_or(Value::Null),
                })
                .collect();
            out.push((*id, row));
        }
        tx.add_view_stored(meta, version, &out)?;
        written += out.len() as u64;
        match keys.last() {
            Some((rowid, _)) if full => after = *rowid,
            _ => break,
        }
    }
    tx.end_replaced_stored(meta, version)?;
    Ok(written)
}

/// Refuses row writes on views and snapshots.
pub(crate) fn rows_writable(meta: &TableMeta) -> Result<()> {
    match &meta.kind {
        Kind::Table => Ok(()),
        Kind::View { .. } => Err(err!(
            ReadOnly,
            "'{}' is a view; its rows follow its base table, so write to the base instead",
            meta.path
        )),
        Kind::Snapshot { .. } => Err(err!(ReadOnly, "'{}' is a snapshot; snapshots are read-only", meta.path)),
    }
}

/// Computes the own computed columns of every view reading `meta`'s table (directly, then
/// through other views) for the base row versions in `rows` (those the current call wrote,
/// or those a revert is about to reopen). For rows an update rewrote (`changed`: the base
/// columns whose values may differ), a view column that reads none of them, directly or
/// through the columns of the views it reads, keeps the value it had for the row version
/// replaced: its UDF is not called again.
pub(crate) fn maintain_views(
    tx: &Tx,
    meta: &TableMeta,
    rows: ViewRows,
    changed: Option<&BTreeSet<String>>,
    udfs: &crate::udf::Registry,
) -> Result<()> {
    if !meta.has_dependents {
        return Ok(());
    }
    for (view, path) in tx.dependents(meta.id)? {
        let view_meta = tx.load_table(view, &path)?;
        if !matches!(view_meta.kind, Kind::View { .. }) {
            continue;
        }
        // Its own computed columns (its stored ones are keyed by row identity: nothing to do).
        let own: Vec<&ColumnDef> = view_meta.own_columns().into_iter().filter(|c| c.is_computed()).collect();
        let in_view = |e: crate::error::Error| e.context(format_args!("view '{path}'"));
        match (rows, changed) {
            _ if own.is_empty() => {}
            (ViewRows::Rewritten { first, version }, Some(changed)) => {
                let level = view_meta.level();
                let stale: Vec<&ColumnDef> = view_meta
                    .schema
                    .downstream_of(changed)
                    .into_iter()
                    .filter(|c| column_level(c.id) == level)
                    .collect();
                let kept: Vec<&ColumnDef> =
                    own.iter().copied().filter(|c| !stale.iter().any(|s| s.id == c.id)).collect();
                // Kept values move to the new row versions (which then have a row of the
                // view's own); those rows get only the columns whose inputs changed; rows
                // without one (new to the view, or with nothing kept) get every column. In
                // this order, no row is computed twice.
                tx.copy_view_cells(&view_meta, &kept, first, version).map_err(in_view)?;
                if !stale.is_empty() {
                    compute::recompute_view(tx, &view_meta, &stale, ViewRows::Present(first), udfs).map_err(in_view)?;
                }
                compute::recompute_view(tx, &view_meta, &own, ViewRows::Missing(first), udfs).map_err(in_view)?;
            }
            _ => compute::recompute_view(tx, &view_meta, &own, rows, udfs).map_err(in_view)?,
        }
        // The views of this view read its columns: they follow it.
        maintain_views(tx, &view_meta, rows, changed, udfs)?;
    }
    Ok(())
}

/// Checks that `pred` is a Bool expression over the table.
pub(crate) fn check_predicate(schema: &TableSchema, pred: &Expr) -> Result<()> {
    let t = pred.check(schema)?;
    if !matches!(t.ty, None | Some(ColumnType::Bool)) {
        return Err(err!(
            InvalidExpr,
            "the condition `{pred}` is {}, not Bool; compare it with something (e.g. `{pred} == ...`)",
            t.ty.map(|t| t.to_string()).unwrap_or_default()
        ));
    }
    Ok(())
}

impl Catalog {
    /// Shorthand for `self.get_table(path)?.select_all().collect()`, handy in tests.
    pub fn rows(&self, path: &str) -> Result<Vec<Row>> {
        self.get_table(path)?.select_all().collect()
    }
}

/// A column reference for every column of `schema` (what `select_all` selects).
pub(crate) fn all_columns(schema: &TableSchema) -> Vec<Expr> {
    schema.columns.iter().map(|c| col(c.name.clone())).collect()
}

/// Handles are shared across test threads: keep them `Send + Sync`.
const _: fn() = || {
    fn check<T: Send + Sync>() {}
    check::<Table>();
    check::<Catalog>();
};
