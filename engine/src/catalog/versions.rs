//! Versions beyond the single write: revert, revert_to, snapshots and views.
//!
//! A revert deletes the row versions the undone version wrote and reopens the ones it ended
//! (proportional to the rows it touched); schema changes revert by making the previous
//! version's schema current again (constant time). Views read their base live, so a revert
//! of the base leaves them right; a snapshot that would lose its rows gets its own copy first.

use crate::catalog::{Catalog, IfExists, Table};
use crate::error::{err, Result};
use crate::expr::Expr;
use crate::path::{IntoPath, Path};
use crate::store::ViewRows;
use crate::store::{Entry, EntryKind, Kind, Tx};
use crate::types::Version;

impl Table {
    /// Undoes the latest version: rows, schema and computed values exactly as they were.
    /// Returns the version that is current afterwards. At version 0 it is an error.
    pub fn revert(&self) -> Result<Version> {
        self.revert_while(None)
    }

    /// Undoes every version after `version`, in one transaction (a no-op when `version` is
    /// the current one).
    pub fn revert_to(&self, version: Version) -> Result<Version> {
        self.revert_while(Some(version))
    }

    /// Reverts the latest version once (`target` is `None`) or until `target` is current.
    fn revert_while(&self, target: Option<Version>) -> Result<Version> {
        if self.pinned.is_some() {
            return Err(err!(ReadOnly, "'{}' is a read-only version; revert the table itself", self.display_path()));
        }
        self.catalog.store().write(|tx| {
            let mut meta = self.meta(tx)?;
            if let Kind::Snapshot { .. } = meta.kind {
                return Err(err!(ReadOnly, "'{}' is a snapshot; snapshots are read-only", meta.path));
            }
            match target {
                Some(t) if t > meta.version || tx.schema_at(meta.id, t).is_err() => {
                    return Err(err!(
                        NotFound,
                        "table '{}' has no version {t} to revert to (its current version is {})",
                        meta.path,
                        meta.version
                    ))
                }
                None if meta.version == Version(0) => {
                    return Err(err!(
                        NothingToRevert,
                        "'{}' is at version 0 (as created); there is nothing to revert",
                        meta.path
                    ))
                }
                Some(t) if t == meta.version => return Ok(t),
                _ => {}
            }
            loop {
                match meta.kind {
                    Kind::Table => {
                        // Rows this revert reopens may predate a view's own columns.
                        let udfs = &self.catalog.inner.udfs;
                        crate::catalog::maintain_views(tx, &meta, ViewRows::EndedAt(meta.version), None, udfs)?;
                    }
                    Kind::View { base, .. } => {
                        if let Some((_, true)) = tx.follow_of(meta.id, meta.version)? {
                            let base = tx.load_table(base, &meta.path)?;
                            return Err(err!(
                                InvalidArgument,
                                "version {} of view '{}' follows a change of '{}'; revert '{}' instead (the view follows it)",
                                meta.version,
                                meta.path,
                                base.path,
                                base.path
                            ));
                        }
                    }
                    Kind::Snapshot { .. } => {}
                }
                let reverted = meta.version;
                let now = tx.revert_latest(&meta)?;
                if let Kind::Table | Kind::View { .. } = meta.kind {
                    crate::catalog::follow::unfollow_base(tx, meta.id, reverted, now)?;
                }
                meta = self.meta(tx)?;
                if target.is_none_or(|t| meta.version <= t) {
                    return Ok(meta.version);
                }
            }
        })
    }
}

/// How many views deep a view may read (a view of a view of ... a table). A read joins the
/// root with two tables a level (its computed and its stored columns), and SQLite joins at
/// most 64 tables: 1 + 2 x 31 = 63.
const MAX_VIEW_LEVEL: usize = 31;

impl Catalog {
    /// Creates a snapshot: a named, read-only handle on `table`'s current version that keeps
    /// showing it while the table moves on (no rows are copied unless the table is later
    /// reverted past it, or compacted). `table` may be a view: the snapshot keeps the view's
    /// rows and columns (its own computed ones included) as they are now.
    pub fn create_snapshot(&self, path: impl IntoPath, table: &Table, if_exists: IfExists) -> Result<Table> {
        let path = path.into_path()?;
        let id = self.store().write(|tx| {
            let base = table.meta(tx)?;
            if let Kind::Snapshot { .. } = base.kind {
                return Err(err!(
                    InvalidArgument,
                    "'{}' is a snapshot already; use it as it is (it never changes)",
                    base.path
                ));
            }

            let at = base.version;
            let kind = Kind::Snapshot { base: Some(base.id), at };
            if let Some(existing) = claim(tx, &path, if_exists, &kind)? {
                return Ok(existing);
            }
            tx.create_derived(&path, &kind, 0, format!("create snapshot {path} of {}:{at}", base.path))
        })?;
        Ok(Table::new(self.clone(), id, path, None))
    }

    /// Creates a view: the rows of `base` where `filter` holds, kept up to date with every
    /// change of the base. `base` may be a table, a snapshot (the view's rows then never
    /// change) or another view (the view shows its rows and columns, its own columns
    /// included, and filters them further). A view can have its own computed columns; its
    /// rows are read-only. The filter cannot call UDFs (filter on a computed column of the
    /// base instead). On a PostgreSQL catalog, what the server cannot compute with Tabula's
    /// meaning (Tabula's other functions, Float arithmetic, casts) is evaluated by Tabula on
    /// the rows each read tests: such a view reads more slowly than one whose filter the
    /// server runs.
    pub fn create_view(&self, path: impl IntoPath, base: &Table, filter: Expr, if_exists: IfExists) -> Result<Table> {
        let path = path.into_path()?;
        let id = self.store().write(|tx| {
            let base_meta = base.meta(tx)?;
            if base.pinned.is_some() {
                return Err(err!(
                    InvalidArgument,
                    "'{}' is a version of a table; make a snapshot of it (Catalog::create_snapshot) and a view of the snapshot",
                    base.display_path()
                ));
            }
            let level = base_meta.level() + 1;
            if level > MAX_VIEW_LEVEL {
                return Err(err!(
                    InvalidArgument,
                    "view '{path}' would read through {level} views; at most {MAX_VIEW_LEVEL} levels are allowed"
                ));
            }
            crate::catalog::check_predicate(&base_meta.schema, &filter)
                .map_err(|e| e.context(format_args!("view '{path}'")))?;
            crate::catalog::columns::no_stored_view_reads(&base_meta, &filter, &format!("the filter of view '{path}'"))?;
            if filter.has_udf() {
                return Err(err!(
                    InvalidExpr,
                    "view '{path}': the filter `{filter}` calls a UDF; filter on a computed column of the base instead"
                ));
            }
            let kind = Kind::View { base: base_meta.id, filter: filter.clone() };
            if let Some(existing) = claim(tx, &path, if_exists, &kind)? {
                return Ok(existing);
            }
            let id = tx.create_derived(
                &path,
                &kind,
                level,
                format!("create view {path} of {} where {filter}", base_meta.path),
            )?;
            tx.record_follow(id, Version(0), base_meta.version, false)?;
            Ok(id)
        })?;
        Ok(Table::new(self.clone(), id, path, None))
    }
}

/// Applies `if_exists` for a new view or snapshot at `path`: `Some(id)` when an identical one
/// exists and may be kept.
fn claim(tx: &Tx, path: &Path, if_exists: IfExists, kind: &Kind) -> Result<Option<crate::types::TableId>> {
    if path.is_root() || path.version().is_some() {
        return Err(err!(InvalidPath, "'{path}' cannot name a view or snapshot"));
    }
    match tx.entry(path)? {
        None => {}
        Some(Entry::Dir) => return Err(err!(WrongKind, "'{path}' is a directory")),
        Some(Entry::Table(id)) => {
            let existing = tx.load_table(id, path)?;
            let same = match (&existing.kind, kind) {
                (Kind::View { base: a, filter: f }, Kind::View { base: b, filter: g }) => a == b && f == g,
                // A snapshot is the same only of the same table at the same version (one that
                // took its own copy was reverted past: its version cannot be asked for again).
                (Kind::Snapshot { base: a, at: v }, Kind::Snapshot { base: b, at: w }) => {
                    a.is_some() && a == b && v == w
                }
                _ => false,
            };
            match if_exists {
                IfExists::Ignore if same => return Ok(Some(id)),
                IfExists::Error | IfExists::Ignore => {
                    let difference = if same {
                        String::new()
                    } else {
                        format!(" as {}; asked for {}", describe_kind(tx, &existing.kind), describe_kind(tx, kind))
                    };
                    return Err(err!(
                        AlreadyExists,
                        "'{path}' already exists{difference} (use IfExists::Replace to recreate it{})",
                        if same { "" } else { "; IfExists::Ignore keeps only an identical one" }
                    ));
                }
                IfExists::Replace | IfExists::ReplaceForce => {
                    let deps = tx.descendants(id)?;
                    if !deps.is_empty() && if_exists == IfExists::Replace {
                        return Err(dependents_error(path, &deps));
                    }
                    for (dep, _) in deps.into_iter().rev() {
                        tx.drop_table(dep)?;
                    }
                    tx.drop_table(id)?;
                }
            }
        }
    }
    if let Some(parent) = path.parent() {
        if tx.entry_kind(&parent)? != Some(EntryKind::Dir) {
            return Err(err!(
                NotFound,
                "cannot create '{path}': directory '{parent}' does not exist (create it first)"
            ));
        }
    }
    Ok(None)
}

/// What a view or snapshot is, in words: `a snapshot of 'app/docs' at version 3`.
fn describe_kind(tx: &Tx, kind: &Kind) -> String {
    let name = |id: crate::types::TableId| {
        tx.load_table(id, &Path::root()).map_or_else(|_| format!("table id {}", id.0), |m| format!("'{}'", m.path))
    };
    match kind {
        Kind::Table => "a table".into(),
        Kind::View { base, filter } => format!("a view of {} where {filter}", name(*base)),
        Kind::Snapshot { base: Some(base), at } => format!("a snapshot of {} at version {at}", name(*base)),
        Kind::Snapshot { base: None, at } => format!("a snapshot of version {at} of a table since reverted past it"),
    }
}

/// The error for dropping something views or snapshots still read.
pub(crate) fn dependents_error(path: &Path, deps: &[(crate::types::TableId, Path)]) -> crate::error::Error {
    let names: Vec<String> = deps.iter().map(|(_, p)| format!("'{p}'")).collect();
    err!(
        HasDependents,
        "'{path}' is read by {} {}; drop those first or use Force::Yes to drop them too",
        if deps.len() == 1 { "view/snapshot" } else { "views/snapshots" },
        names.join(", ")
    )
}
