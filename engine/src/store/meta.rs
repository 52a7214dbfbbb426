//! Tabula's own metadata tables: format version, directories, tables and table versions.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::OptionalExtension;

use super::{Layout, Tx, FORMAT_VERSION};
use crate::change::ChangeKind;
use crate::error::{err, Result};
use crate::expr::Expr;
use crate::path::Path;
use crate::schema::{ColumnDef, TableSchema};
use crate::types::{TableId, Version};

/// Column ids of a view's own columns start at its level times this (level 1: a view of a
/// table or snapshot, 2: a view of a level 1 view, ...), so they never collide with the ids
/// of the columns it reads, and a column's id says which physical table holds it.
pub(crate) const VIEW_COLUMN_IDS: u32 = 1_000_000;

/// What one view adds to the reads of a view that reads through it (or is it): its own
/// computed columns, keyed by root rowid (`phys`), and its own stored columns, versioned by
/// the view's versions and keyed by root row identity (`stored`, when the view has any).
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub(crate) phys: String,
    /// The table of its stored columns, when the schema read has any.
    pub(crate) stored: Option<String>,
    /// The version of that view the read shows (`None`: its current one).
    pub(crate) at: Option<Version>,
}

/// The table of a view's own stored columns (values by root row identity, with the view's
/// versions): `<phys>_stored`.
pub(crate) fn stored_name(phys: &str) -> String {
    format!("{phys}_stored")
}

/// The level of the table whose physical table holds column `id`: 0 the root's rows, L the
/// view of level L.
pub(crate) fn column_level(id: crate::types::ColumnId) -> usize {
    (id.0 / VIEW_COLUMN_IDS) as usize
}

/// What kind of table an id is, and where its rows come from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A table with its own rows.
    Table,
    /// The rows of `base` where `filter` holds, plus the view's own computed columns (kept
    /// in the view's physical table, keyed by the base row version's rowid).
    View { base: TableId, filter: Expr },
    /// The rows of `base` at version `at`; `base` is `None` once the snapshot holds its own
    /// copy (made when the base is reverted past `at`).
    Snapshot { base: Option<TableId>, at: Version },
}

/// What a catalog path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Dir,
    Table,
}

/// What a catalog path names, with a table's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Dir,
    Table(TableId),
}

/// The current metadata of one table, read inside the transaction that uses it.
#[derive(Debug, Clone)]
pub(crate) struct TableMeta {
    pub(crate) id: TableId,
    pub(crate) path: Path,
    pub(crate) version: Version,
    pub(crate) schema: TableSchema,
    pub(crate) next_row_id: i64,
    pub(crate) next_col_id: u32,
    pub(crate) epoch: i64,
    /// The highest version number this table ever had (numbers are never reused).
    pub(crate) last_version: Version,
    pub(crate) kind: Kind,
    /// The physical table of this table's own rows (or a view's own columns).
    pub(crate) phys: String,
    /// The physical table of the rows a view or snapshot reads (for a view of a view, its
    /// root's).
    pub(crate) base_phys: Option<String>,
    /// For a view: the tables of its own columns and of the views it reads through, from
    /// level 1 up to its own (its level is their number).
    pub(crate) layers: Vec<Layer>,
    /// For a view over a snapshot: the version its root's rows are read at.
    pub(crate) root_at: Option<Version>,
    /// For a view that reads a table's live rows (directly or through views): that table.
    pub(crate) root: Option<TableId>,
    /// For a view: its filter and those of the views it reads through.
    pub(crate) view_filter: Option<Expr>,
    /// Whether a view or snapshot reads this table (when it was loaded: nothing made one
    /// since, as the call that loaded it holds the catalog as it was).
    pub(crate) has_dependents: bool,
    /// The catalog's row layout.
    pub(crate) layout: Layout,
}

impl TableMeta {
    /// The physical table name (of this table's own rows, or a view's own columns).
    pub(crate) fn phys(&self) -> String {
        self.phys.clone()
    }

    /// What a read selects from; row columns are qualified with `b.`, the own columns of
    /// the view of level L with `sL.` (each view's own table is keyed by the root rowid).
    pub(crate) fn source_sql(&self) -> String {
        match &self.kind {
            Kind::Table | Kind::Snapshot { base: None, .. } => format!("{} b", self.phys),
            // A view, or a snapshot of a table or of a view (whose layers it reads).
            Kind::Snapshot { base: Some(_), .. } | Kind::View { .. } => {
                let mut sql = format!("{} b", self.base_phys());
                for (i, layer) in self.layers.iter().enumerate() {
                    let level = i + 1;
                    sql.push_str(&format!(" LEFT JOIN {} s{level} ON s{level}._id = b._rowid_", layer.phys));
                    if let Some(stored) = &layer.stored {
                        let u = format!("u{level}.");
                        let shown = match layer.at {
                            None => self.layout.is_live(&u),
                            Some(v) => self.layout.visible_at(&u, &v.0.to_string()),
                        };
                        sql.push_str(&format!(" LEFT JOIN {stored} u{level} ON u{level}._id = b._id AND {shown}"));
                    }
                }
                sql
            }
        }
    }

    /// A view's level: 1 for a view of a table or snapshot, one more than its base's for a
    /// view of a view; 0 otherwise.
    pub(crate) fn level(&self) -> usize {
        self.layers.len()
    }

    /// The alias of this view's own physical table in [`TableMeta::source_sql`].
    pub(crate) fn own_alias(&self) -> String {
        format!("s{}", self.level())
    }

    /// The columns this table holds itself: a view's own columns (not those it reads).
    pub(crate) fn own_columns(&self) -> Vec<&ColumnDef> {
        let level = self.level();
        self.schema.columns.iter().filter(|c| column_level(c.id) == level).collect()
    }

    fn base_phys(&self) -> &str {
        self.base_phys.as_deref().unwrap_or(&self.phys)
    }

    /// The condition for the row versions a read of what the table shows now sees (a view
    /// or snapshot: as of its root's version, fixed for the object read, so written in).
    pub(crate) fn visible_sql(&self) -> String {
        let at = match &self.kind {
            Kind::Table | Kind::Snapshot { base: None, .. } => None,
            Kind::Snapshot { base: Some(_), .. } | Kind::View { .. } => self.root_at,
        };
        match at {
            None => self.layout.is_live("b."),
            Some(v) => self.layout.visible_at("b.", &v.0.to_string()),
        }
    }

    /// The SQL reading column `name` (or its error slot, for `name#error`) in a read.
    pub(crate) fn column_sql(&self, name: &str) -> Option<String> {
        let (column, prefix) = match name.strip_suffix("#error") {
            Some(column) => (self.schema.column(column).filter(|c| c.is_computed())?, "e"),
            None => (self.schema.column(name)?, "c"),
        };
        let owner = match column_level(column.id) {
            level if level > 0 && !self.layers.is_empty() && !column.is_computed() => format!("u{level}"),
            level if level > 0 && !self.layers.is_empty() => format!("s{level}"),
            _ => "b".into(),
        };
        Some(format!("{owner}.{prefix}{}", column.id.0))
    }
}

/// The name a new table's physical table gets: `t<id>`. A table that reuses a spare physical
/// table (see [`Tx::create_table`]) records the spare's name instead, under `phys:<id>` in
/// `_tabula_meta`; [`Tx::load_at`] reads it with the rest of a table's metadata.
fn phys_name(id: TableId) -> String {
    format!("t{}", id.0)
}

/// At most this many physical tables of dropped tables wait to be reused.
const SPARE_TABLES: i64 = 64;

/// The physical columns of a table with `columns`: `c<id>` a column, `e<id>` an error slot.
pub(crate) fn physical_columns(columns: &[ColumnDef]) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for c in columns {
        out.push((format!("c{}", c.id.0), super::codec::declared_type(c.ty)));
        if c.is_computed() {
            out.push((format!("e{}", c.id.0), "TEXT"));
        }
    }
    out
}

/// What a spare physical table is filed under: its columns after the system ones, in order,
/// and the columns of its key index (`|key c0,c1`), if it has one.
fn signature<'a>(columns: impl IntoIterator<Item = (&'a str, &'a str)>, key: &[String]) -> String {
    // As SQLite declares them (a dropped table's are read back from its schema).
    let sqlite = |ty: &'a str| if ty == "BOOLEAN" { "INTEGER" } else { ty };
    let sig = columns.into_iter().map(|(name, ty)| format!("{name} {}", sqlite(ty)));
    let mut sig = sig.collect::<Vec<_>>().join(",");
    if !key.is_empty() {
        sig.push_str(&format!("|key {}", key.join(",")));
    }
    sig
}

/// The physical columns of a schema's primary key (empty without one).
pub(crate) fn key_physical(schema: &TableSchema) -> Vec<String> {
    schema.key_columns().iter().map(|c| format!("c{}", c.id.0)).collect()
}

/// The unique index that enforces a primary key over physical columns `key` among the live
/// row versions (older versions of a row share its key). A lookup by key must contain the
/// term [`Layout::is_live`] for SQLite to use it.
pub(crate) fn key_index_sql(layout: Layout, phys: &str, key: &[String]) -> String {
    format!("CREATE UNIQUE INDEX {phys}_key ON {phys}({}) WHERE {};", key.join(", "), layout.is_live(""))
}

impl Tx<'_> {
    /// The physical table of a table's rows: the system columns, then `columns` (name and
    /// SQLite type), with the partial index on its ended row versions.
    pub(crate) fn rows_table_sql(&self, phys: &str, columns: &[(String, &str)]) -> String {
        format!(
            "CREATE TABLE {phys}({}{});
             CREATE INDEX {phys}_ended ON {phys}(_vmax, _id) WHERE {};",
            self.system_columns(),
            self.columns_ddl(columns),
            self.layout.ended("")
        )
    }

    /// `, c1 INTEGER, e1 TEXT ...`: `columns` (name and SQLite type) as this backend
    /// declares them.
    pub(crate) fn columns_ddl(&self, columns: &[(String, &str)]) -> String {
        columns.iter().map(|(name, ty)| format!(", {name} {}", self.column_type(ty))).collect()
    }
}

/// The `_tabula_meta` keys of the spare tables with `signature`: `[spare:<sig>/, spare:<sig>0)`.
fn spare_range(signature: &str) -> (String, String) {
    (format!("spare:{signature}/"), format!("spare:{signature}0"))
}

/// One table version as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VersionRecord {
    pub(crate) version: Version,
    pub(crate) created_at: i64,
    pub(crate) change: ChangeKind,
    pub(crate) detail: String,
    pub(crate) inserted: u64,
    pub(crate) updated: u64,
    pub(crate) deleted: u64,
    /// The physical rowids this version wrote lie in `first_rowid..=last_rowid`.
    pub(crate) rowids: Option<(i64, i64)>,
    /// The schema, for a version that changed it; `None` for a data change (the record then
    /// points at the version that holds its schema, so it costs no schema's bytes). Not
    /// loaded by [`Tx::versions`].
    pub(crate) schema: Option<TableSchema>,
}

impl VersionRecord {
    /// Version 0 of a new table.
    fn first(detail: String, schema: TableSchema) -> VersionRecord {
        VersionRecord {
            version: Version(0),
            created_at: now_micros(),
            change: ChangeKind::Create,
            detail,
            inserted: 0,
            updated: 0,
            deleted: 0,
            rowids: None,
            schema: Some(schema),
        }
    }
}

pub(super) const CREATE_META: &str = "
CREATE TABLE _tabula_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE _tabula_dirs(path TEXT PRIMARY KEY, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE _tabula_tables(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    next_row_id INTEGER NOT NULL,
    next_col_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    last_version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    base_id INTEGER,
    base_version INTEGER,
    filter TEXT,
    created_at INTEGER NOT NULL);
CREATE INDEX _tabula_tables_base ON _tabula_tables(base_id) WHERE base_id IS NOT NULL;
CREATE TABLE _tabula_versions(
    table_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    change TEXT NOT NULL,
    detail TEXT NOT NULL,
    inserted INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    first_rowid INTEGER,
    last_rowid INTEGER,
    schema TEXT NOT NULL,
    PRIMARY KEY (table_id, version)) WITHOUT ROWID;
";

/// True when the file has Tabula's metadata table.
pub(super) fn has_meta(tx: &Tx) -> Result<bool> {
    tx.sqlite()?
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = '_tabula_meta'", [], |r| r.get(0))
        .map_err(|e| tx.fail(e))
}

/// Creates the metadata tables in an empty file, or checks the format of an existing catalog.
pub(super) fn init_or_check(tx: &Tx, location: &str) -> Result<()> {
    if has_meta(tx)? {
        return check_format(tx, location);
    }
    let others: i64 =
        tx.sqlite()?.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(|e| tx.fail(e))?;
    if others > 0 {
        return Err(err!(
            NotACatalog,
            "'{location}' is an SQLite database but not a Tabula catalog (it has no _tabula_meta table); use a new file"
        ));
    }
    tx.execute_batch(CREATE_META)?;
    tx.execute_batch(super::follows::CREATE_FOLLOWS)?;
    tx.execute(
        "INSERT INTO _tabula_meta(key, value) VALUES ('format_version', ?1), ('live_vmax', '0')",
        &[FORMAT_VERSION.to_string().into()],
    )?;
    Ok(())
}

/// The catalog's row layout: `live_vmax` = `0` since format 5; catalogs created before have
/// no such key and keep `i64::MAX`.
pub(super) fn read_layout(tx: &Tx, location: &str) -> Result<Layout> {
    let found = tx.query_row("SELECT value FROM _tabula_meta WHERE key = 'live_vmax'", &[], 1)?;
    match found.map(|r| r.text(0)).transpose()?.as_deref() {
        None => Ok(Layout::Max),
        Some("0") => Ok(Layout::Zero),
        Some(other) => Err(err!(
            NotACatalog,
            "catalog '{location}' marks live rows with _vmax = '{other}', which no Tabula writes (0, or no key for \
             i64::MAX); the file is damaged"
        )),
    }
}

impl Tx<'_> {
    /// What in the file breaks the storage model (empty when nothing does): physical tables
    /// no table owns, tables without their physical table or their current version's
    /// record, views and snapshots whose base is gone, version records of no table, spare
    /// entries naming no physical table, view version records of no version. Each finding
    /// names the object.
    pub(crate) fn dangling_objects(&self) -> Result<Vec<String>> {
        let strings = |sql: &str| -> Result<Vec<(String, String)>> {
            self.query_rows(sql, &[], 2)?.iter().map(|r| Ok((r.text(0)?, r.text(1)?))).collect()
        };
        let tables = match self.on_server() {
            false => "SELECT name, '' FROM sqlite_master WHERE type = 'table' AND name GLOB 't[0-9]*'",
            true => {
                "SELECT CAST(tablename AS TEXT), '' FROM pg_tables WHERE schemaname = current_schema()
                     AND tablename ~ '^t[0-9]'"
            }
        };
        let physical: BTreeSet<String> = strings(tables)?.into_iter().map(|(name, _)| name).collect();
        let mapped: BTreeMap<String, String> =
            strings("SELECT substr(key, 6), value FROM _tabula_meta WHERE substr(key, 1, 5) = 'phys:'")?
                .into_iter()
                .collect();
        let spares: Vec<String> = strings("SELECT key, '' FROM _tabula_meta WHERE substr(key, 1, 6) = 'spare:'")?
            .into_iter()
            .filter_map(|(key, _)| key.rsplit_once('/').map(|(_, phys)| phys.to_string()))
            .collect();
        let mut problems = Vec::new();
        let mut owned = BTreeSet::new();
        let tables = strings(
            "SELECT CAST(id AS TEXT) || ' ' || kind || ' ' || coalesce(CAST(base_id AS TEXT), '-'), path
             FROM _tabula_tables ORDER BY path",
        )?;
        let ids: BTreeSet<&str> = tables.iter().filter_map(|(key, _)| key.split(' ').next()).collect();
        for (key, path) in &tables {
            let mut parts = key.split(' ');
            let (id, kind, base) =
                (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or("-"));
            let phys = mapped.get(id).cloned().unwrap_or_else(|| format!("t{id}"));
            let needs_own = kind != "snapshot" || base == "-";
            if needs_own && !physical.contains(&phys) {
                problems.push(format!("{kind} '{path}' has no physical table {phys}"));
            }
            let stored = stored_name(&phys);
            if kind == "view" && physical.contains(&stored) {
                owned.insert(stored);
            }
            if physical.contains(&phys) {
                owned.insert(phys);
            }
            if base != "-" && !ids.contains(base) {
                problems.push(format!("{kind} '{path}' reads table id {base}, which does not exist"));
            }
        }
        // A table with a primary key keeps it unique among live rows by an index that a
        // server's appends do not test but that stops a concurrent writer; every physical
        // table made for it (a spare taken, a compaction's or a fill's copy) must have it.
        let indexes: BTreeSet<String> = strings(match self.on_server() {
            false => "SELECT name, '' FROM sqlite_master WHERE type = 'index'",
            true => "SELECT CAST(indexname AS TEXT), '' FROM pg_indexes WHERE schemaname = current_schema()",
        })?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
        for (key, path) in &tables {
            let mut parts = key.split(' ');
            let (Some(Ok(id)), Some("table")) = (parts.next().map(str::parse::<i64>), parts.next()) else { continue };
            // One that does not load is reported by the checks below.
            let Ok(meta) = Path::parse(path).and_then(|shown| self.load_table(TableId(id), &shown)) else { continue };
            if physical.contains(&meta.phys) && !key_physical(&meta.schema).is_empty() {
                let index = format!("{}_key", meta.phys);
                if !indexes.contains(&index) {
                    problems.push(format!(
                        "'{path}' has a primary key, but its physical table {} has no unique index {index} on it",
                        meta.phys
                    ));
                }
            }
        }
        for phys in &spares {
            if !physical.contains(phys) {
                problems.push(format!("spare physical table {phys} does not exist"));
            }
            owned.insert(phys.clone());
        }
        // Replaced by a compaction on a server, kept a while for readers that began before.
        for (phys, _) in strings("SELECT substr(key, 7), value FROM _tabula_meta WHERE substr(key, 1, 6) = 'trash:'")? {
            owned.insert(phys);
        }
        for phys in physical.difference(&owned) {
            problems.push(format!("physical table {phys} belongs to no table"));
        }
        if self.on_server() {
            // A server's row tables find row versions by their primary key, `_rowid_` (a
            // view's own cells, `_stored`, by partial indexes on `_id`); a first load drops
            // it for its copy and must build it again.
            for (phys, _) in strings(
                "SELECT CAST(c.relname AS TEXT), '' FROM pg_class c WHERE c.relnamespace = CAST(current_schema() AS regnamespace)
                 AND c.relkind = 'r' AND c.relname ~ '^t[0-9]' AND c.relname !~ '_stored$'
                 AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) ORDER BY 1",
            )? {
                problems.push(format!("physical table {phys} has no primary key to find its rows by"));
            }
        }
        for (id, n) in strings(
            "SELECT CAST(table_id AS TEXT), CAST(count(*) AS TEXT) FROM _tabula_versions WHERE table_id NOT IN (SELECT id FROM _tabula_tables) GROUP BY table_id",
        )? {
            problems.push(format!("{n} version records belong to table id {id}, which does not exist"));
        }
        for (path, version) in strings(
            "SELECT path, CAST(version AS TEXT) FROM _tabula_tables t WHERE NOT EXISTS
             (SELECT 1 FROM _tabula_versions v WHERE v.table_id = t.id AND v.version = t.version)",
        )? {
            problems.push(format!("'{path}' has no record of its current version {version}"));
        }
        if self.has_format(4)? {
            for (path, version) in strings(
                "SELECT coalesce((SELECT path FROM _tabula_tables WHERE id = f.view_id), 'view id ' || CAST(f.view_id AS TEXT)),
                 CAST(f.version AS TEXT) FROM _tabula_follows f WHERE NOT EXISTS
                 (SELECT 1 FROM _tabula_versions v WHERE v.table_id = f.view_id AND v.version = f.version)",
            )? {
                problems.push(format!("'{path}' records what its version {version} shows, but has no such version"));
            }
        }
        Ok(problems)
    }

    /// The format version the file says it has (read once a transaction).
    pub(crate) fn format_version(&self) -> Result<i64> {
        if let Some(known) = self.format.exact.get() {
            return Ok(known);
        }
        let text = self
            .query_row("SELECT value FROM _tabula_meta WHERE key = 'format_version'", &[], 1)?
            .ok_or_else(|| err!(NotACatalog, "the catalog has no format version"))?
            .text(0)?;
        let found = text.parse().map_err(|_| err!(NotACatalog, "the format version '{text}' is not a number"))?;
        self.format.exact.set(Some(found));
        Ok(found)
    }

    /// Whether the catalog has format `n` or a newer one; asks only when what the store
    /// saw when it connected does not already say so.
    pub(crate) fn has_format(&self, n: i64) -> Result<bool> {
        Ok(self.format.floor >= n || self.format_version()? >= n)
    }
}

/// Checks that the catalog's format is one this build reads.
pub(super) fn check_format(tx: &Tx, location: &str) -> Result<()> {
    let found: Option<String> = tx
        .sqlite()?
        .query_row("SELECT value FROM _tabula_meta WHERE key = 'format_version'", [], |r| r.get(0))
        .optional()
        .map_err(|e| match e.sqlite_error_code() {
            None => tx.fail(e),
            Some(_) => err!(NotACatalog, "'{location}' is not a Tabula catalog ({e})").with_source(e),
        })?;
    let found =
        found.ok_or_else(|| err!(NotACatalog, "'{location}' has no format version; it is not a Tabula catalog"))?;
    let version: i64 = found
        .parse()
        .map_err(|_| err!(NotACatalog, "'{location}' has format version '{found}', which is not a number"))?;
    if version < 1 {
        return Err(err!(
            NotACatalog,
            "'{location}' has format version {version}, which no Tabula writes (they start at 1); the file is damaged or not a catalog"
        ));
    }
    if version > FORMAT_VERSION {
        return Err(err!(
            FormatTooNew,
            "catalog '{location}' has format version {version}, newer than this Tabula reads ({FORMAT_VERSION}); upgrade tabula"
        ));
    }
    Ok(())
}

pub(crate) fn now_micros() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

/// The range of paths strictly below `dir`: `["dir/", "dir0")`.
fn below(dir: &Path) -> (String, String) {
    (format!("{dir}/"), format!("{dir}0"))
}

impl Tx<'_> {
    /// What `path` names, if anything.
    pub(crate) fn entry_kind(&self, path: &Path) -> Result<Option<EntryKind>> {
        Ok(self.entry(path)?.map(|e| match e {
            Entry::Dir => EntryKind::Dir,
            Entry::Table(_) => EntryKind::Table,
        }))
    }

    /// What `path` names, if anything, with a table's id (one statement).
    pub(crate) fn entry(&self, path: &Path) -> Result<Option<Entry>> {
        if path.is_root() {
            return Ok(Some(Entry::Dir));
        }
        let found = self.query_row(
            "SELECT 0, 0 FROM _tabula_dirs WHERE path = ?1 UNION ALL SELECT 1, id FROM _tabula_tables WHERE path = ?1",
            &[path.to_string().into()],
            2,
        )?;
        found.map(|k| Ok(if k.int(0)? == 0 { Entry::Dir } else { Entry::Table(TableId(k.int(1)?)) })).transpose()
    }

    pub(crate) fn insert_dir(&self, path: &Path) -> Result<()> {
        self.execute(
            "INSERT INTO _tabula_dirs(path, created_at) VALUES (?1, ?2)",
            &[path.to_string().into(), now_micros().into()],
        )?;
        Ok(())
    }

    pub(crate) fn delete_dir(&self, path: &Path) -> Result<()> {
        self.execute("DELETE FROM _tabula_dirs WHERE path = ?1", &[path.to_string().into()])?;
        Ok(())
    }

    /// The entries below `dir` (children only, or every descendant), sorted by path.
    pub(crate) fn list_entries(&self, dir: &Path, recursive: bool) -> Result<Vec<(Path, EntryKind)>> {
        // The paths below `dir/` are exactly those in ["dir/", "dir0"): '0' follows '/'. A
        // range on the paths' unique indexes, so listing a namespace never scans the catalog.
        let (low, high) = if dir.is_root() { (String::new(), "\u{10ffff}".to_string()) } else { below(dir) };
        let rows = self.query_rows(
            "SELECT path, 0 FROM _tabula_dirs WHERE path >= ?1 AND path < ?2
             UNION ALL SELECT path, 1 FROM _tabula_tables WHERE path >= ?1 AND path < ?2
             ORDER BY 1",
            &[low.into(), high.into()],
            2,
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (text, kind) = (row.text(0)?, row.int(1)?);
            let path =
                Path::parse(&text).map_err(|e| e.context("stored path is invalid; the catalog may be damaged"))?;
            if recursive || path.depth() == dir.depth() + 1 {
                out.push((path, if kind == 0 { EntryKind::Dir } else { EntryKind::Table }));
            }
        }
        Ok(out)
    }

    /// Renames `from` (a table or a directory with everything below it) to `to`.
    pub(crate) fn move_entries(&self, from: &Path, to: &Path) -> Result<()> {
        let (low, high) = below(from);
        let params = [from.to_string().into(), to.to_string().into(), low.into(), high.into()];
        for table in ["_tabula_dirs", "_tabula_tables"] {
            self.execute(
                &format!(
                    "UPDATE {table} SET path = ?2 || substr(path, length(?1) + 1)
                     WHERE path = ?1 OR (path >= ?3 AND path < ?4)"
                ),
                &params,
            )?;
        }
        Ok(())
    }

    /// Creates the metadata, version 0 and the physical table of a new table.
    pub(crate) fn create_table(&self, path: &Path, schema: &TableSchema) -> Result<TableId> {
        let id = self.insert_table_row(path, &Kind::Table, schema.columns.len() as i64)?;
        let columns = physical_columns(&schema.columns);
        let key = key_physical(schema);
        if !self.reuse_spare(id, &signature(columns.iter().map(|(n, t)| (n.as_str(), *t)), &key))? {
            let phys = phys_name(id);
            let key_index = if key.is_empty() { String::new() } else { key_index_sql(self.layout, &phys, &key) };
            self.execute_batch(&format!("{}\n{key_index}", self.rows_table_sql(&phys, &columns)))?;
        }
        self.insert_version(
            id,
            &VersionRecord::first(format!("create table {path} ({schema})"), schema.clone()),
            None,
        )?;
        Ok(id)
    }

    /// Creates a view (its own physical table holds only its computed columns, a row a base
    /// row version) or a snapshot (no physical table until it needs its own copy).
    pub(crate) fn create_derived(&self, path: &Path, kind: &Kind, level: usize, detail: String) -> Result<TableId> {
        let id = self.insert_table_row(path, kind, i64::from(VIEW_COLUMN_IDS) * level.max(1) as i64)?;
        if let Kind::View { .. } = kind {
            let id_type = self.column_type("INTEGER");
            self.execute_batch(&format!("CREATE TABLE {}(_id {id_type} PRIMARY KEY)", phys_name(id)))?;
        }
        self.insert_version(id, &VersionRecord::first(detail, TableSchema::default()), None)?;
        Ok(id)
    }

    fn insert_table_row(&self, path: &Path, kind: &Kind, next_col_id: i64) -> Result<TableId> {
        let (name, base, at, filter) = match kind {
            Kind::Table => ("table", None, None, None),
            Kind::View { base, filter } => {
                let filter = serde_json::to_string(filter)
                    .map_err(|e| err!(Storage, "could not serialize the view filter ({e})"))?;
                ("view", Some(base.0), None, Some(filter))
            }
            Kind::Snapshot { base, at } => ("snapshot", base.map(|b| b.0), Some(at.0 as i64), None),
        };
        let id = self.query_i64(
            "INSERT INTO _tabula_tables(path, version, next_row_id, next_col_id, epoch, last_version, kind, base_id,
             base_version, filter, created_at) VALUES (?1, 0, 0, ?2, 0, 0, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            &[
                path.to_string().into(),
                next_col_id.into(),
                name.into(),
                base.into(),
                at.into(),
                filter.into(),
                now_micros().into(),
            ],
        )?;
        Ok(TableId(id))
    }

    /// Every view and snapshot that reads table `id`, directly or through others, as (id,
    /// path): those reading `id` first, then those reading them, and so on.
    pub(crate) fn descendants(&self, id: TableId) -> Result<Vec<(TableId, Path)>> {
        let mut out = self.dependents(id)?;
        let mut at = 0;
        while at < out.len() {
            let more = self.dependents(out[at].0)?;
            out.extend(more);
            at += 1;
        }
        Ok(out)
    }

    /// The metadata of every view and snapshot reading table `id`, in the order of
    /// [`Tx::descendants`], each loaded before anything is changed.
    pub(crate) fn descendant_metas(&self, id: TableId) -> Result<Vec<TableMeta>> {
        self.descendants(id)?.into_iter().map(|(dep, path)| self.load_table(dep, &path)).collect()
    }

    /// The views and snapshots whose rows come from table `id`, as (id, path).
    pub(crate) fn dependents(&self, id: TableId) -> Result<Vec<(TableId, Path)>> {
        let rows =
            self.query_rows("SELECT id, path FROM _tabula_tables WHERE base_id = ?1 ORDER BY path", &[id.0.into()], 2)?;
        rows.iter().map(|row| Ok((TableId(row.int(0)?), Path::parse(&row.text(1)?)?))).collect()
    }

    /// Makes a snapshot hold its own copy of its rows (before its base is reverted past the
    /// snapshot's version, or compacted), so it no longer depends on its base. The rows keep
    /// their rowids, so views of the snapshot keep their values; a snapshot of a view copies
    /// the view's columns (its own ones included) as they were.
    pub(crate) fn materialize_snapshot(&self, meta: &TableMeta) -> Result<()> {
        let snapshot = meta.id;
        let schema = &meta.schema;
        let phys = phys_name(snapshot);
        let columns = physical_columns(&schema.columns);
        self.execute_batch(&format!("CREATE TABLE {phys}({}{})", self.system_columns(), self.columns_ddl(&columns)))?;
        let mut sources = Vec::new();
        for c in &schema.columns {
            sources.push(meta.column_sql(&c.name).unwrap_or_else(|| "NULL".into()));
            if c.is_computed() {
                sources.push(meta.column_sql(&format!("{}#error", c.name)).unwrap_or_else(|| "NULL".into()));
            }
        }
        let list = columns.iter().map(|(c, _)| format!(", {c}")).collect::<String>();
        let selected = sources.iter().map(|c| format!(", {c}")).collect::<String>();
        let mut params = self.params();
        let filter = match &meta.view_filter {
            Some(_) => format!(" AND {}", self.shown_sql(meta, &meta.visible_sql(), &mut params)?),
            None => String::new(),
        };
        self.execute(
            &format!(
                "INSERT INTO {phys}(_rowid_, _id, _vmin, _vmax{list}) SELECT b._rowid_, b._id, 0, {live}{selected} FROM {} \
                 WHERE {}{filter} ORDER BY b._rowid_",
                meta.source_sql(),
                meta.visible_sql(),
                live = self.layout.live(),
            ),
            &params.values,
        )?;
        self.execute("UPDATE _tabula_tables SET base_id = NULL WHERE id = ?1", &[snapshot.0.into()])?;
        let text = serde_json::to_string(schema).map_err(|e| err!(Storage, "could not serialize a schema ({e})"))?;
        self.execute(
            "UPDATE _tabula_versions SET schema = ?1 WHERE table_id = ?2 AND version = 0",
            &[text.into(), snapshot.0.into()],
        )?;
        Ok(())
    }

    /// Turns table `id`, just created and filled in this transaction, into a snapshot that
    /// holds its own rows: one version (0, `detail`, holding its final schema), read-only.
    pub(crate) fn seal_snapshot(&self, id: TableId, detail: &str) -> Result<()> {
        let current = self.query_i64("SELECT version FROM _tabula_tables WHERE id = ?1", &[id.0.into()])?;
        let schema = self.schema_at(id, Version(current as u64))?;
        let text = serde_json::to_string(&schema).map_err(|e| err!(Storage, "could not serialize a schema ({e})"))?;
        self.execute("DELETE FROM _tabula_versions WHERE table_id = ?1 AND version > 0", &[id.0.into()])?;
        self.execute(
            "UPDATE _tabula_versions SET schema = ?2, detail = ?3, first_rowid = NULL, last_rowid = NULL
             WHERE table_id = ?1 AND version = 0",
            &[id.0.into(), text.into(), detail.into()],
        )?;
        self.execute(
            "UPDATE _tabula_tables SET kind = 'snapshot', base_id = NULL, base_version = 0, version = 0,
             last_version = 0 WHERE id = ?1",
            &[id.0.into()],
        )?;
        Ok(())
    }

    /// The id of the table at `path`, if there is one.
    pub(crate) fn table_id(&self, path: &Path) -> Result<Option<TableId>> {
        let row = self.query_row("SELECT id FROM _tabula_tables WHERE path = ?1", &[path.to_string().into()], 1)?;
        row.map(|r| Ok(TableId(r.int(0)?))).transpose()
    }

    /// The current metadata of table `id`; `shown` names it in the error when it is gone.
    pub(crate) fn load_table(&self, id: TableId, shown: &Path) -> Result<TableMeta> {
        self.load_at(id, shown, None)
    }

    /// The metadata of table `id` at version `at` (`None`: current): a table's schema then;
    /// a view's own schema then and its base as that version showed it (the version of its
    /// base it recorded). A snapshot has one version.
    pub(crate) fn load_at(&self, id: TableId, shown: &Path, at: Option<Version>) -> Result<TableMeta> {
        // One statement (on a server, one exchange): the table's row, the record of the
        // version read and the one holding its schema when it refers to another, where its
        // rows are, and whether anything reads it.
        let row = self
            .query_row(
                "SELECT t.path, t.version, t.next_row_id, t.next_col_id, t.epoch, t.last_version, t.kind, t.base_id,
                 t.base_version, t.filter, v.schema, r.schema, m.value,
                 CASE WHEN EXISTS (SELECT 1 FROM _tabula_tables d WHERE d.base_id = t.id) THEN 1 ELSE 0 END
                 FROM _tabula_tables t
                 LEFT JOIN _tabula_versions v ON v.table_id = t.id AND v.version =
                   CASE WHEN t.kind IN ('table', 'view') THEN coalesce(CAST(?2 AS BIGINT), t.version) ELSE t.version END
                 LEFT JOIN _tabula_versions r ON r.table_id = t.id AND r.version =
                   CASE WHEN substr(v.schema, 1, 1) = '@' THEN CAST(substr(v.schema, 2) AS BIGINT) END
                 LEFT JOIN _tabula_meta m ON m.key = 'phys:' || t.id
                 WHERE t.id = ?1",
                &[id.0.into(), at.map(|v| v.0 as i64).into()],
                14,
            )?
            .ok_or_else(|| {
                err!(
                    NotFound,
                    "table '{shown}' no longer exists (it was dropped, possibly by another handle); open it again"
                )
            })?;
        let (path, version, next_row_id, next_col_id, epoch, last_version) =
            (row.text(0)?, row.int(1)?, row.int(2)?, row.int(3)?, row.int(4)?, row.int(5)?);
        let (kind, base, base_version, filter) = (row.text(6)?, row.opt_int(7)?, row.opt_int(8)?, row.opt_text(9)?);
        let current = Version(version as u64);
        let version = match (at, kind.as_str()) {
            (Some(v), "table" | "view") => v,
            _ => current,
        };
        let text = row.opt_text(10)?.ok_or_else(|| err!(NotFound, "version {version} does not exist"))?;
        let text = match schema_ref(&text, version)? {
            None => text,
            Some(held) => match row.opt_text(11)? {
                None => return Err(err!(NotFound, "version {held} does not exist")),
                Some(text) if text.starts_with('@') => {
                    return Err(err!(
                        Storage,
                        "version {held} refers to another version's schema too; the catalog may be damaged"
                    ))
                }
                Some(text) => text,
            },
        };
        let mut schema = parse_schema(&text, version)?;
        let phys = row.opt_text(12)?.unwrap_or_else(|| phys_name(id));
        let has_dependents = row.int(13)? != 0;
        let mut base_phys = None;
        let mut layers = Vec::new();
        let mut root_at = None;
        let mut root = None;
        let mut view_filter = None;
        let kind = match kind.as_str() {
            "view" => {
                let base = TableId(
                    base.ok_or_else(|| err!(Storage, "view '{path}' has no base; the catalog may be damaged"))?,
                );
                let filter: Expr = serde_json::from_str(filter.as_deref().unwrap_or("null"))
                    .map_err(|e| err!(Storage, "the filter of view '{path}' does not parse ({e})"))?;
                // A view has every column of its base, then its own columns.
                let base_at = match at {
                    None => None,
                    Some(v) => Some(
                        self.follow_of(id, v)?
                            .ok_or_else(|| {
                                err!(
                                    NotFound,
                                    "version {v} of view '{path}' does not record the version of its base it showed (views record it since format 4); read the view's current version"
                                )
                            })?
                            .0,
                    ),
                };
                let base_meta = self.load_at(base, shown, base_at).map_err(|e| match (at, base_at) {
                    // The base's own record of that version is gone (not its base's).
                    (Some(v), Some(b)) if e.code() == crate::error::ErrorCode::NotFound && self.schema_text(base, b).is_err() => err!(
                        NotFound,
                        "version {v} of view '{path}' showed version {b} of its base, which is gone (reverted or compacted away); read a newer version of the view"
                    ),
                    _ => e,
                })?;
                let own = std::mem::take(&mut schema.columns);
                schema.columns = base_meta.schema.columns;
                schema.columns.retain(|c| !own.iter().any(|o| o.name == c.name));
                schema.columns.extend(own);
                match base_meta.kind {
                    // A view or a snapshot that reads another table: its root, layers and
                    // filter, and this view's on top.
                    Kind::View { .. } | Kind::Snapshot { base: Some(_), .. } => {
                        base_phys = base_meta.base_phys;
                        layers = base_meta.layers;
                        root_at = base_meta.root_at;
                        root = base_meta.root;
                        view_filter = base_meta.view_filter.map(|f| f.and(filter.clone()));
                    }
                    Kind::Snapshot { base: None, .. } => base_phys = Some(base_meta.phys),
                    Kind::Table => {
                        base_phys = Some(base_meta.phys);
                        root = Some(base);
                        root_at = base_at;
                    }
                }
                let level = layers.len() + 1;
                let has_stored = schema.columns.iter().any(|c| column_level(c.id) == level && !c.is_computed());
                layers.push(Layer { phys: phys.clone(), stored: has_stored.then(|| stored_name(&phys)), at });
                view_filter = Some(view_filter.unwrap_or_else(|| filter.clone()));
                Kind::View { base, filter }
            }
            "snapshot" => {
                let snap_at = Version(base_version.unwrap_or(0) as u64);
                match base {
                    Some(base) => {
                        // What its base showed at that version: a table's rows then, or a
                        // view as it was then (a view's layers, filter and root version).
                        let base = TableId(base);
                        let base_meta = self.load_at(base, shown, Some(snap_at))?;
                        schema = base_meta.schema;
                        match base_meta.kind {
                            Kind::View { .. } => {
                                base_phys = base_meta.base_phys;
                                layers = base_meta.layers;
                                root = base_meta.root;
                                root_at = base_meta.root_at;
                                view_filter = base_meta.view_filter;
                            }
                            _ => {
                                base_phys = Some(base_meta.phys);
                                root = Some(base);
                                root_at = Some(snap_at);
                            }
                        }
                        Kind::Snapshot { base: Some(base), at: snap_at }
                    }
                    None => Kind::Snapshot { base: None, at: snap_at },
                }
            }
            _ => Kind::Table,
        };
        Ok(TableMeta {
            id,
            path: Path::parse(&path)?,
            version,
            schema,
            next_row_id,
            next_col_id: next_col_id as u32,
            epoch,
            last_version: Version(last_version as u64),
            kind,
            phys,
            base_phys,
            layers,
            root_at,
            root,
            view_filter,
            has_dependents,
            layout: self.layout,
        })
    }

    /// The schema table `id` had at `version`: two lookups by key at most, however many
    /// versions the table has.
    pub(crate) fn schema_at(&self, id: TableId, version: Version) -> Result<TableSchema> {
        let mut text = self.schema_text(id, version)?;
        if let Some(at) = schema_ref(&text, version)? {
            text = self.schema_text(id, at)?;
            if text.starts_with('@') {
                return Err(err!(
                    Storage,
                    "version {at} refers to another version's schema too; the catalog may be damaged"
                ));
            }
        }
        parse_schema(&text, version)
    }

    /// The stored schema text of `version`: JSON, or `@N` for the schema of version N.
    fn schema_text(&self, id: TableId, version: Version) -> Result<String> {
        let row = self.query_row(
            "SELECT schema FROM _tabula_versions WHERE table_id = ?1 AND version = ?2",
            &[id.0.into(), (version.0 as i64).into()],
            1,
        )?;
        row.ok_or_else(|| err!(NotFound, "version {version} does not exist"))?.text(0)
    }

    /// Removes a table: its metadata, versions and rows. The physical table of a table's own
    /// rows is emptied and kept as a spare for the next new table with the same columns (a
    /// test namespace's tables are dropped and made again each test; SQLite's `CREATE` and
    /// `DROP` cost in proportion to the whole schema, a reuse costs no DDL), up to
    /// [`SPARE_TABLES`]; others are dropped, on a server only after the readers that began
    /// before have had time to finish (see `Tx::to_trash`).
    pub(crate) fn drop_table(&self, id: TableId) -> Result<()> {
        let found = self.query_row(
            "SELECT t.kind, m.value FROM _tabula_tables t LEFT JOIN _tabula_meta m ON m.key = 'phys:' || t.id
             WHERE t.id = ?1",
            &[id.0.into()],
            2,
        )?;
        let (kind, phys) = match found {
            Some(row) => (Some(row.text(0)?), row.opt_text(1)?.unwrap_or_else(|| phys_name(id))),
            None => (None, phys_name(id)),
        };
        // One batch (on a server, one exchange); an id is a number, written as it is.
        let n = id.0;
        let mut forget = format!(
            "DELETE FROM _tabula_tables WHERE id = {n};
             DELETE FROM _tabula_versions WHERE table_id = {n};
             DELETE FROM _tabula_meta WHERE key = 'phys:{n}';"
        );
        if self.has_format(4)? {
            forget.push_str(&format!("DELETE FROM _tabula_follows WHERE view_id = {n};"));
        }
        self.execute_batch(&forget)?;
        // A server's DDL is transactional and does not scan a schema catalog: no spares there.
        if kind.as_deref() == Some("table")
            && !self.on_server()
            && self.query_i64("SELECT count(*) FROM _tabula_meta WHERE key >= 'spare:' AND key < 'spare;'", &[])?
                < SPARE_TABLES
        {
            let present = self.present_columns(&phys)?;
            if present.len() >= 3 && present[..3].iter().map(|(n, _)| n.as_str()).eq(["_id", "_vmin", "_vmax"]) {
                let key = self.key_index_columns(&phys)?;
                let sig = signature(present[3..].iter().map(|(n, t)| (n.as_str(), t.as_str())), &key);
                self.execute(&format!("DELETE FROM {phys}"), &[])?;
                self.execute(
                    "INSERT INTO _tabula_meta(key, value) VALUES (?1, '')",
                    &[format!("{}{phys}", spare_range(&sig).0).into()],
                )?;
                return Ok(());
            }
        }
        let mut gone = vec![phys.clone()];
        if kind.as_deref() == Some("view") {
            gone.insert(0, stored_name(&phys));
        }
        if self.on_server() {
            // A reader whose snapshot predates this drop still reads the table: kept a while.
            // (A name without a table, such as a snapshot's that shares its base's rows, is
            // dropped later `IF EXISTS`.)
            self.empty_trash()?;
            for phys in gone {
                self.to_trash(&phys)?;
            }
            return Ok(());
        }
        for phys in gone {
            self.execute_batch(&format!("DROP TABLE IF EXISTS {phys}"))?;
        }
        Ok(())
    }

    /// The columns of physical table `phys`'s key index, in order (empty: it has none).
    fn key_index_columns(&self, phys: &str) -> Result<Vec<String>> {
        let mut stmt = self.sqlite()?.prepare(&format!("PRAGMA index_info({phys}_key)")).map_err(|e| self.fail(e))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(2)).map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.fail(e))
    }

    /// Makes the new table `id` keep its rows in a spare physical table with exactly the
    /// columns and key index of `signature`, if there is one; false when there is none.
    fn reuse_spare(&self, id: TableId, signature: &str) -> Result<bool> {
        if self.on_server() {
            // None are kept there (see `Tx::drop_table`).
            return Ok(false);
        }
        let (from, to) = spare_range(signature);
        let key = self.query_row(
            "SELECT key FROM _tabula_meta WHERE key >= ?1 AND key < ?2 LIMIT 1",
            &[from.clone().into(), to.into()],
            1,
        )?;
        let Some(key) = key.map(|r| r.text(0)).transpose()? else { return Ok(false) };
        let phys = &key[from.len()..];
        self.require_format(3)?;
        self.execute("DELETE FROM _tabula_meta WHERE key = ?1", &[key.as_str().into()])?;
        self.execute("INSERT INTO _tabula_meta(key, value) VALUES ('phys:' || ?1, ?2)", &[id.0.into(), phys.into()])?;
        Ok(true)
    }

    /// The physical table holding table `id`'s rows (or a view's own columns); for tests
    /// (calls learn it with the rest of a table's metadata, `Tx::load_at`).
    #[cfg(all(test, feature = "postgres"))]
    pub(crate) fn phys_of(&self, id: TableId) -> Result<String> {
        let mapped = self.query_row("SELECT value FROM _tabula_meta WHERE key = 'phys:' || ?1", &[id.0.into()], 1)?;
        Ok(match mapped {
            Some(row) => row.text(0)?,
            None => phys_name(id),
        })
    }

    /// The columns of physical table `phys` as declared: (name, type).
    pub(crate) fn present_columns(&self, phys: &str) -> Result<Vec<(String, String)>> {
        if self.on_server() {
            let rows = self.query_rows(
                "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ?1 AND column_name <> '_rowid_'
                 ORDER BY ordinal_position",
                &[phys.into()],
                2,
            )?;
            return rows.iter().map(|r| Ok((r.text(0)?, r.text(1)?))).collect();
        }
        let mut stmt = self.sqlite()?.prepare(&format!("PRAGMA table_info({phys})")).map_err(|e| self.fail(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(1)?, r.get(2)?))).map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.fail(e))
    }

    /// Marks the file as needing format `n` at least (a build that reads only older formats
    /// then refuses it, instead of misreading it).
    pub(super) fn require_format(&self, n: i64) -> Result<()> {
        if self.has_format(n)? {
            return Ok(());
        }
        self.execute(
            "UPDATE _tabula_meta SET value = ?1 WHERE key = 'format_version' AND CAST(value AS INTEGER) < ?2",
            &[n.to_string().into(), n.into()],
        )?;
        self.format.exact.set(Some(n));
        Ok(())
    }

    /// Adds the storage of a new stored column of view `meta`: a column of its stored
    /// table, made with the view's first stored column.
    pub(crate) fn add_view_stored_column(&self, meta: &TableMeta, col: &ColumnDef) -> Result<()> {
        let stored = stored_name(&meta.phys);
        self.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {stored}(_id {int} NOT NULL, _vmin {int} NOT NULL, _vmax {int} NOT NULL);
                 CREATE INDEX IF NOT EXISTS {stored}_live ON {stored}(_id) WHERE {live};
                 CREATE INDEX IF NOT EXISTS {stored}_ended ON {stored}(_vmax) WHERE {ended};
                 ALTER TABLE {stored} ADD COLUMN c{} {};",
            col.id.0,
            self.column_type(super::codec::declared_type(col.ty)),
            live = self.layout.is_live(""),
            ended = self.layout.ended(""),
            int = self.column_type("INTEGER"),
        ))
    }

    /// Adds the physical storage of a new column (and its error slot, when computed).
    pub(crate) fn add_physical_column(&self, meta: &TableMeta, col: &ColumnDef) -> Result<()> {
        let phys = meta.phys();
        let mut ddl = format!(
            "ALTER TABLE {phys} ADD COLUMN c{} {};",
            col.id.0,
            self.column_type(super::codec::declared_type(col.ty))
        );
        if col.is_computed() {
            ddl.push_str(&format!("ALTER TABLE {phys} ADD COLUMN e{} {};", col.id.0, self.column_type("TEXT")));
        }
        self.execute_batch(&ddl)
    }

    /// Records a version. `current` is the table's version before it, whose schema a data
    /// change keeps: its record then holds `@N`, N the version that stores that schema.
    fn insert_version(&self, id: TableId, rec: &VersionRecord, current: Option<Version>) -> Result<()> {
        let (sql, values, refers) = self.version_insert(id, rec, current)?;
        let written = self.execute(&sql, &values)?;
        missing_reference(written, refers)
    }

    /// The statement recording `rec` as a version of table `id` (parameters `?1..?11`), and
    /// the version whose schema it refers to (`current`'s) when it keeps the schema: the
    /// statement then writes nothing if that version has no record.
    fn version_insert(
        &self,
        id: TableId,
        rec: &VersionRecord,
        current: Option<Version>,
    ) -> Result<(String, Vec<crate::types::Value>, Option<Version>)> {
        let mut values: Vec<crate::types::Value> = vec![
            id.0.into(),
            (rec.version.0 as i64).into(),
            rec.created_at.into(),
            rec.change.as_str().into(),
            rec.detail.as_str().into(),
            (rec.inserted as i64).into(),
            (rec.updated as i64).into(),
            (rec.deleted as i64).into(),
            rec.rowids.map(|r| r.0).into(),
            rec.rowids.map(|r| r.1).into(),
        ];
        let columns = "INSERT INTO _tabula_versions(table_id, version, created_at, change, detail, inserted, updated, \
                       deleted, first_rowid, last_rowid, schema)";
        let current = match (&rec.schema, current) {
            (Some(schema), _) => {
                let schema = serde_json::to_string(schema)
                    .map_err(|e| err!(Storage, "could not serialize the schema of version {} ({e})", rec.version))?;
                values.push(schema.into());
                return Ok((format!("{columns} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"), values, None));
            }
            (None, Some(current)) => current,
            (None, None) => return Err(err!(Storage, "version {} has no schema to refer to", rec.version)),
        };
        // A file of format 1 is read by Tabulas that expect JSON in every record: from its
        // first reference on, it says it is format 2.
        self.require_format(2)?;
        // The record refers to the one holding the schema of `current`: `current`'s own, or
        // the one `current` refers to (found in the same statement).
        values.push((current.0 as i64).into());
        let sql = format!(
            "{columns} SELECT CAST(?1 AS BIGINT), CAST(?2 AS BIGINT), CAST(?3 AS BIGINT), CAST(?4 AS TEXT), \
             CAST(?5 AS TEXT), CAST(?6 AS BIGINT), CAST(?7 AS BIGINT), CAST(?8 AS BIGINT), CAST(?9 AS BIGINT), \
             CAST(?10 AS BIGINT), CASE WHEN substr(s.schema, 1, 1) = '@' THEN s.schema \
             ELSE '@' || CAST(s.version AS TEXT) END \
             FROM _tabula_versions s WHERE s.table_id = ?1 AND s.version = ?11"
        );
        Ok((sql, values, Some(current)))
    }

    /// Records a new version of `meta`'s table and makes it current; `meta` carries the
    /// counters (next row and column ids) as they are after the change. On a server, in one
    /// statement (one exchange: PostgreSQL runs an `INSERT` inside a `WITH`).
    pub(crate) fn commit_version(&self, meta: &TableMeta, rec: &VersionRecord) -> Result<()> {
        let (insert, mut values, refers) = self.version_insert(meta.id, rec, Some(meta.version))?;
        let n = values.len();
        values.push(meta.next_row_id.into());
        values.push(meta.next_col_id.into());
        let update = format!(
            "UPDATE _tabula_tables SET version = ?2, next_row_id = ?{}, next_col_id = ?{},
             last_version = CASE WHEN last_version > ?2 THEN last_version ELSE ?2 END WHERE id = ?1",
            n + 1,
            n + 2
        );
        if self.on_server() {
            let both = format!("WITH recorded AS ({insert} RETURNING 1) {update} AND EXISTS (SELECT 1 FROM recorded)");
            return missing_reference(self.execute(&both, &values)?, refers);
        }
        missing_reference(self.execute(&insert, &values[..n])?, refers)?;
        self.execute(&update, &values)?;
        Ok(())
    }

    /// Every recorded version of table `id`, newest first, without their schemas.
    pub(crate) fn versions(&self, id: TableId) -> Result<Vec<VersionRecord>> {
        let rows = self.query_rows(
            "SELECT version, created_at, change, detail, inserted, updated, deleted, first_rowid, last_rowid
             FROM _tabula_versions WHERE table_id = ?1 ORDER BY version DESC",
            &[id.0.into()],
            9,
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (version, created_at, change, detail) = (row.int(0)?, row.int(1)?, row.text(2)?, row.text(3)?);
            let counts = [row.int(4)?, row.int(5)?, row.int(6)?];
            let range = (row.opt_int(7)?, row.opt_int(8)?);
            let change = ChangeKind::parse(&change).ok_or_else(|| {
                err!(
                    Storage,
                    "version {version} of table {} records a change of kind '{}', which this Tabula does not know; \
                     the catalog was written by a newer Tabula",
                    id.0,
                    crate::error::shown(&change)
                )
            })?;
            out.push(VersionRecord {
                version: Version(version as u64),
                created_at,
                change,
                detail,
                inserted: counts[0] as u64,
                updated: counts[1] as u64,
                deleted: counts[2] as u64,
                rowids: match range {
                    (Some(a), Some(b)) => Some((a, b)),
                    _ => None,
                },
                schema: None,
            });
        }
        Ok(out)
    }
}

/// Whether the only version record left is version 0.
fn latest_is_zero(top: &[(i64, Option<i64>, Option<i64>)]) -> bool {
    top.first().is_none_or(|(v, ..)| *v == 0)
}

/// The version a stored `@N` schema text refers to, if it is one.
/// The error for a version record that wrote nothing because the version whose schema it
/// refers to has no record.
fn missing_reference(written: u64, refers: Option<Version>) -> Result<()> {
    match refers {
        Some(current) if written == 0 => Err(err!(NotFound, "version {current} does not exist")),
        _ => Ok(()),
    }
}

/// The stored schema `text` of `version`, parsed.
fn parse_schema(text: &str, version: Version) -> Result<TableSchema> {
    serde_json::from_str(text).map_err(|e| {
        err!(Storage, "the stored schema of version {version} does not parse ({e}); the catalog may be damaged")
    })
}

fn schema_ref(text: &str, version: Version) -> Result<Option<Version>> {
    let Some(n) = text.strip_prefix('@') else { return Ok(None) };
    n.parse::<u64>().map(|n| Some(Version(n))).map_err(|_| {
        err!(
            Storage,
            "the stored schema of version {version} is '{}'; the catalog may be damaged",
            crate::error::shown(text)
        )
    })
}

impl Tx<'_> {
    /// Undoes the latest version of `meta`'s table: deletes the row versions it wrote,
    /// reopens the ones it ended, and makes the version before it current. Snapshots that
    /// see the undone version first get their own copy. Returns the new current version.
    pub(crate) fn revert_latest(&self, meta: &TableMeta) -> Result<Version> {
        let top = self
            .query_rows(
                "SELECT version, first_rowid, last_rowid FROM _tabula_versions WHERE table_id = ?1
                 ORDER BY version DESC LIMIT 2",
                &[meta.id.0.into()],
                3,
            )?
            .iter()
            .map(|r| Ok((r.int(0)?, r.opt_int(1)?, r.opt_int(2)?)))
            .collect::<Result<Vec<_>>>()?;
        let [(latest, first, last), (previous, ..)] = top[..] else {
            let why = if latest_is_zero(&top) { "as created" } else { "its older versions were compacted away" };
            return Err(err!(
                NothingToRevert,
                "'{}' is at version {} ({why}); there is nothing to revert",
                meta.path,
                meta.version
            ));
        };
        if let Kind::Table = meta.kind {
            // Snapshots the revert would take rows from copy them first (keeping their
            // rowids, so views of them keep their values); views of the live rows drop their
            // values for the rows the reverted version wrote.
            // Every snapshot first: one of a view copies that view's values too.
            let deps = self.descendant_metas(meta.id)?;
            for dep in &deps {
                if matches!(dep.kind, Kind::Snapshot { base: Some(_), .. })
                    && dep.root == Some(meta.id)
                    && dep.root_at.is_some_and(|at| at.0 >= latest as u64)
                {
                    self.materialize_snapshot(dep)?;
                }
            }
            for dep in &deps {
                if let (Kind::View { .. }, true, None, Some(a), Some(b)) =
                    (&dep.kind, dep.root == Some(meta.id), dep.root_at, first, last)
                {
                    self.execute(
                        &format!("DELETE FROM {} WHERE _id BETWEEN ?1 AND ?2", dep.phys),
                        &[a.into(), b.into()],
                    )?;
                }
            }
            let phys = meta.phys();
            if let (Some(a), Some(b)) = (first, last) {
                self.execute(
                    &format!("DELETE FROM {phys} WHERE _rowid_ BETWEEN ?1 AND ?2 AND _vmin = ?3"),
                    &[a.into(), b.into(), latest.into()],
                )?;
            }
            self.execute(
                &format!("UPDATE {phys} SET _vmax = {} WHERE {}", self.layout.live(), self.layout.ended_at("", "?1")),
                &[latest.into()],
            )?;
        }
        self.execute(
            "DELETE FROM _tabula_versions WHERE table_id = ?1 AND version = ?2",
            &[meta.id.0.into(), latest.into()],
        )?;
        if let Kind::View { .. } = meta.kind {
            self.forget_follow(meta.id, Version(latest as u64))?;
            // Stored values the version wrote go, the ones it replaced come back.
            if meta.layers.last().is_some_and(|l| l.stored.is_some()) {
                let stored = stored_name(&meta.phys);
                self.execute(&format!("DELETE FROM {stored} WHERE _vmin = ?1"), &[latest.into()])?;
                self.execute(
                    &format!(
                        "UPDATE {stored} SET _vmax = {} WHERE {}",
                        self.layout.live(),
                        self.layout.ended_at("", "?1")
                    ),
                    &[latest.into()],
                )?;
            }
        }
        self.execute(
            "UPDATE _tabula_tables SET version = ?2, epoch = epoch + 1 WHERE id = ?1",
            &[meta.id.0.into(), previous.into()],
        )?;
        Ok(Version(previous as u64))
    }
}

#[cfg(test)]
mod tests {
    use crate::{col, row, Catalog, ColumnType, IfExists, Schema};

    /// Revert and update look ended rows up by `_vmax`; they must use the partial index, or
    /// a revert costs a scan of the whole table instead of the rows it touches.
    #[test]
    fn ended_row_lookups_use_the_partial_index() {
        let dir = tempfile::tempdir().unwrap();
        for (layout, cat) in super::super::rows::catalogs_of_each_layout(dir.path()) {
            ended_row_lookups_use_the_partial_index_in(layout, &cat);
        }
    }

    fn ended_row_lookups_use_the_partial_index_in(layout: super::Layout, cat: &Catalog) {
        let t = cat.create_table("t", Schema::new().required("x", ColumnType::Int), IfExists::Error).unwrap();
        t.insert([row! {"x" => 1}]).unwrap();
        t.update([("x", col("x") + 1)], crate::expr::lit(true)).unwrap();
        let plans = cat
            .store()
            .read(|tx| {
                assert_eq!(tx.layout, layout);
                let mut out = Vec::new();
                for sql in [
                    format!("UPDATE t1 SET _vmax = 1 WHERE {}", tx.layout.ended_at("", "?1")),
                    format!("SELECT * FROM t1 WHERE {}", tx.layout.ended_at("", "?1")),
                    format!("SELECT * FROM t1 WHERE {} AND ?1 = 1", tx.layout.ended_at("", "5")),
                ] {
                    let mut stmt = tx.sqlite().unwrap().prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                    let rows: Vec<String> =
                        stmt.query_map([1], |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect();
                    out.push(rows.join(" "));
                }
                Ok(out)
            })
            .unwrap();
        for plan in plans {
            assert!(plan.contains("USING INDEX t1_ended"), "{layout:?}: {plan}");
        }
    }
}
