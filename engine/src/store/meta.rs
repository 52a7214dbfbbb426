//! Tabula's own metadata tables: format version, directories, tables and table versions.

use rusqlite::{params, OptionalExtension};

use super::{codec::sql_type, Tx, FORMAT_VERSION};
use crate::error::{err, Result};
use crate::path::Path;
use crate::schema::{ColumnDef, TableSchema};
use crate::types::{TableId, Version};

/// What a catalog path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Dir,
    Table,
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
}

impl TableMeta {
    /// The physical table name.
    pub(crate) fn phys(&self) -> String {
        phys_name(self.id)
    }
}

pub(crate) fn phys_name(id: TableId) -> String {
    format!("t{}", id.0)
}

/// One table version as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VersionRecord {
    pub(crate) version: Version,
    pub(crate) created_at: i64,
    pub(crate) change: String,
    pub(crate) detail: String,
    pub(crate) inserted: u64,
    pub(crate) updated: u64,
    pub(crate) deleted: u64,
    /// The physical rowids this version wrote lie in `first_rowid..=last_rowid`.
    pub(crate) rowids: Option<(i64, i64)>,
    pub(crate) schema: TableSchema,
}

const CREATE_META: &str = "
CREATE TABLE _tabula_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE _tabula_dirs(path TEXT PRIMARY KEY, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE _tabula_tables(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    next_row_id INTEGER NOT NULL,
    next_col_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    created_at INTEGER NOT NULL);
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

/// Creates the metadata tables in an empty file, or checks the format of an existing catalog.
pub(super) fn init_or_check(tx: &Tx, location: &str) -> Result<()> {
    let has_meta: bool = tx
        .tx
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = '_tabula_meta'", [], |r| r.get(0))
        .map_err(|e| tx.fail(e))?;
    if has_meta {
        return check_format(tx, location);
    }
    let others: i64 =
        tx.tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(|e| tx.fail(e))?;
    if others > 0 {
        return Err(err!(
            NotACatalog,
            "'{location}' is an SQLite database but not a Tabula catalog (it has no _tabula_meta table); use a new file"
        ));
    }
    tx.tx.execute_batch(CREATE_META).map_err(|e| tx.fail(e))?;
    tx.tx
        .execute("INSERT INTO _tabula_meta(key, value) VALUES ('format_version', ?1)", [FORMAT_VERSION.to_string()])
        .map_err(|e| tx.fail(e))?;
    Ok(())
}

/// Checks that the catalog's format is one this build reads.
pub(super) fn check_format(tx: &Tx, location: &str) -> Result<()> {
    let found: Option<String> = tx
        .tx
        .query_row("SELECT value FROM _tabula_meta WHERE key = 'format_version'", [], |r| r.get(0))
        .optional()
        .map_err(|e| match e.sqlite_error_code() {
            None => tx.fail(e),
            Some(_) => err!(NotACatalog, "'{location}' is not a Tabula catalog ({e})"),
        })?;
    let found =
        found.ok_or_else(|| err!(NotACatalog, "'{location}' has no format version; it is not a Tabula catalog"))?;
    let version: i64 = found
        .parse()
        .map_err(|_| err!(NotACatalog, "'{location}' has format version '{found}', which is not a number"))?;
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

impl Tx<'_> {
    /// What `path` names, if anything.
    pub(crate) fn entry_kind(&self, path: &Path) -> Result<Option<EntryKind>> {
        if path.is_root() {
            return Ok(Some(EntryKind::Dir));
        }
        let text = path.to_string();
        let kind: Option<i64> = self
            .tx
            .query_row(
                "SELECT 0 FROM _tabula_dirs WHERE path = ?1 UNION ALL SELECT 1 FROM _tabula_tables WHERE path = ?1",
                [&text],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        Ok(kind.map(|k| if k == 0 { EntryKind::Dir } else { EntryKind::Table }))
    }

    pub(crate) fn insert_dir(&self, path: &Path) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO _tabula_dirs(path, created_at) VALUES (?1, ?2)",
                params![path.to_string(), now_micros()],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub(crate) fn delete_dir(&self, path: &Path) -> Result<()> {
        self.tx.execute("DELETE FROM _tabula_dirs WHERE path = ?1", [path.to_string()]).map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// The entries below `dir` (children only, or every descendant), sorted by path.
    pub(crate) fn list_entries(&self, dir: &Path, recursive: bool) -> Result<Vec<(Path, EntryKind)>> {
        let prefix = if dir.is_root() { String::new() } else { format!("{dir}/") };
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT path, 0 FROM _tabula_dirs WHERE substr(path, 1, length(?1)) = ?1
                 UNION ALL SELECT path, 1 FROM _tabula_tables WHERE substr(path, 1, length(?1)) = ?1
                 ORDER BY 1",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([&prefix], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (text, kind) = row.map_err(|e| self.fail(e))?;
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
        let (from_text, to_text) = (from.to_string(), to.to_string());
        for table in ["_tabula_dirs", "_tabula_tables"] {
            self.tx
                .execute(
                    &format!(
                        "UPDATE {table} SET path = ?2 || substr(path, length(?1) + 1)
                         WHERE path = ?1 OR substr(path, 1, length(?1) + 1) = ?1 || '/'"
                    ),
                    [&from_text, &to_text],
                )
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Creates the metadata, version 0 and the physical table of a new table.
    pub(crate) fn create_table(&self, path: &Path, schema: &TableSchema) -> Result<TableId> {
        let now = now_micros();
        self.tx
            .execute(
                "INSERT INTO _tabula_tables(path, version, next_row_id, next_col_id, epoch, created_at)
                 VALUES (?1, 0, 0, ?2, 0, ?3)",
                params![path.to_string(), schema.columns.len() as i64, now],
            )
            .map_err(|e| self.fail(e))?;
        let id = TableId(self.tx.last_insert_rowid());
        let phys = phys_name(id);
        let mut ddl =
            format!("CREATE TABLE {phys}(_id INTEGER NOT NULL, _vmin INTEGER NOT NULL, _vmax INTEGER NOT NULL");
        for c in &schema.columns {
            ddl.push_str(&format!(", {}", column_ddl(c)));
        }
        ddl.push_str(&format!(");\nCREATE INDEX {phys}_ended ON {phys}(_vmax) WHERE _vmax < {};", super::LIVE));
        self.tx.execute_batch(&ddl).map_err(|e| self.fail(e))?;
        self.insert_version(
            id,
            &VersionRecord {
                version: Version(0),
                created_at: now,
                change: "create".into(),
                detail: format!("create table {path} ({schema})"),
                inserted: 0,
                updated: 0,
                deleted: 0,
                rowids: None,
                schema: schema.clone(),
            },
        )?;
        Ok(id)
    }

    /// The id of the table at `path`, if there is one.
    pub(crate) fn table_id(&self, path: &Path) -> Result<Option<TableId>> {
        self.tx
            .query_row("SELECT id FROM _tabula_tables WHERE path = ?1", [path.to_string()], |r| r.get(0))
            .optional()
            .map(|id| id.map(TableId))
            .map_err(|e| self.fail(e))
    }

    /// The current metadata of table `id`; `shown` names it in the error when it is gone.
    pub(crate) fn load_table(&self, id: TableId, shown: &Path) -> Result<TableMeta> {
        let row = self
            .tx
            .prepare_cached("SELECT path, version, next_row_id, next_col_id, epoch FROM _tabula_tables WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([id.0], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get::<_, i64>(3)?, r.get(4)?))
                })
                .optional()
            })
            .map_err(|e| self.fail(e))?;
        let (path, version, next_row_id, next_col_id, epoch) = row.ok_or_else(|| {
            err!(
                NotFound,
                "table '{shown}' no longer exists (it was dropped, possibly by another handle); open it again"
            )
        })?;
        let version = Version(version as u64);
        Ok(TableMeta {
            id,
            path: Path::parse(&path)?,
            version,
            schema: self.schema_at(id, version)?,
            next_row_id,
            next_col_id: next_col_id as u32,
            epoch,
        })
    }

    /// The schema table `id` had at `version`.
    pub(crate) fn schema_at(&self, id: TableId, version: Version) -> Result<TableSchema> {
        let text: Option<String> = self
            .tx
            .prepare_cached("SELECT schema FROM _tabula_versions WHERE table_id = ?1 AND version = ?2")
            .and_then(|mut s| s.query_row(params![id.0, version.0 as i64], |r| r.get(0)).optional())
            .map_err(|e| self.fail(e))?;
        let text = text.ok_or_else(|| err!(NotFound, "version {version} does not exist"))?;
        serde_json::from_str(&text).map_err(|e| {
            err!(Storage, "the stored schema of version {version} does not parse ({e}); the catalog may be damaged")
        })
    }

    /// Removes a table: its metadata, versions and rows.
    pub(crate) fn drop_table(&self, id: TableId) -> Result<()> {
        self.tx
            .execute_batch(&format!(
                "DELETE FROM _tabula_tables WHERE id = {0}; DELETE FROM _tabula_versions WHERE table_id = {0};
                 DROP TABLE IF EXISTS {1};",
                id.0,
                phys_name(id)
            ))
            .map_err(|e| self.fail(e))
    }

    /// Adds the physical storage of a new column (and its error slot, when computed).
    pub(crate) fn add_physical_column(&self, meta: &TableMeta, col: &ColumnDef) -> Result<()> {
        let phys = meta.phys();
        let mut ddl = format!("ALTER TABLE {phys} ADD COLUMN c{} {};", col.id.0, sql_type(col.ty));
        if col.is_computed() {
            ddl.push_str(&format!("ALTER TABLE {phys} ADD COLUMN e{} TEXT;", col.id.0));
        }
        self.tx.execute_batch(&ddl).map_err(|e| self.fail(e))
    }

    fn insert_version(&self, id: TableId, rec: &VersionRecord) -> Result<()> {
        let schema = serde_json::to_string(&rec.schema)
            .map_err(|e| err!(Storage, "could not serialize the schema of version {} ({e})", rec.version))?;
        self.tx
            .prepare_cached(
                "INSERT INTO _tabula_versions(table_id, version, created_at, change, detail, inserted, updated, deleted,
                 first_rowid, last_rowid, schema) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id.0,
                    rec.version.0 as i64,
                    rec.created_at,
                    rec.change,
                    rec.detail,
                    rec.inserted as i64,
                    rec.updated as i64,
                    rec.deleted as i64,
                    rec.rowids.map(|r| r.0),
                    rec.rowids.map(|r| r.1),
                    schema
                ])
            })
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Records a new version of `meta`'s table and makes it current; `meta` carries the
    /// counters (next row and column ids) as they are after the change.
    pub(crate) fn commit_version(&self, meta: &TableMeta, rec: &VersionRecord) -> Result<()> {
        self.insert_version(meta.id, rec)?;
        self.tx
            .prepare_cached("UPDATE _tabula_tables SET version = ?2, next_row_id = ?3, next_col_id = ?4 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![meta.id.0, rec.version.0 as i64, meta.next_row_id, meta.next_col_id]))
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Every recorded version of table `id`, newest first.
    pub(crate) fn versions(&self, id: TableId) -> Result<Vec<VersionRecord>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT version, created_at, change, detail, inserted, updated, deleted, first_rowid, last_rowid, schema
                 FROM _tabula_versions WHERE table_id = ?1 ORDER BY version DESC",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([id.0], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    [r.get::<_, i64>(4)?, r.get::<_, i64>(5)?, r.get::<_, i64>(6)?],
                    (r.get::<_, Option<i64>>(7)?, r.get::<_, Option<i64>>(8)?),
                    r.get::<_, String>(9)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (version, created_at, change, detail, counts, range, schema) = row.map_err(|e| self.fail(e))?;
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
                schema: serde_json::from_str(&schema)
                    .map_err(|e| err!(Storage, "stored schema of version {version} does not parse ({e})"))?,
            });
        }
        Ok(out)
    }
}

fn column_ddl(c: &ColumnDef) -> String {
    let mut ddl = format!("c{} {}", c.id.0, sql_type(c.ty));
    if c.is_computed() {
        ddl.push_str(&format!(", e{} TEXT", c.id.0));
    }
    ddl
}
