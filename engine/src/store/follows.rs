//! View versions: which version of its base each version of a view read.
//!
//! `_tabula_follows(view_id, version, base_version, follows)`: one row a view version (format
//! 4; a file of an older format gets the table, and says it is format 4, at its first view
//! version). `base_version` is the version of the view's base (a table, or the view it
//! reads) that the view showed at that version; `follows` is 1 for a version the view got
//! because its base changed (its data, or the base columns it shows) and 0 for a change of
//! the view's own (created, a column added). Reading `view:N` reads its base at
//! `base_version`; a revert of the base takes the versions that followed the reverted one
//! away with it.

use super::sql::{version_value, Piece};
use super::{TableMeta, Tx};
use crate::error::Result;
use crate::types::{TableId, Value, Version};

/// The table's definition (in new files from the start, in older ones from the first view
/// version on).
pub(super) const CREATE_FOLLOWS: &str = "CREATE TABLE IF NOT EXISTS _tabula_follows(
    view_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    base_version INTEGER NOT NULL,
    follows INTEGER NOT NULL,
    PRIMARY KEY (view_id, version)) WITHOUT ROWID;";

/// How the rows of a view changed with one change of its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ViewChange {
    pub(crate) inserted: u64,
    pub(crate) updated: u64,
    pub(crate) deleted: u64,
}

impl ViewChange {
    pub(crate) fn is_empty(&self) -> bool {
        self.inserted + self.updated + self.deleted == 0
    }
}

impl Tx<'_> {
    /// Records that version `version` of view `view` shows its base at `base_version`
    /// (`follows`: it is a version the base's change made).
    pub(crate) fn record_follow(
        &self,
        view: TableId,
        version: Version,
        base_version: Version,
        follows: bool,
    ) -> Result<()> {
        if !self.has_format(4)? {
            self.execute_batch(CREATE_FOLLOWS)?;
            self.require_format(4)?;
        }
        self.execute(
            "INSERT INTO _tabula_follows(view_id, version, base_version, follows) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(view_id, version) DO UPDATE SET base_version = excluded.base_version, follows = excluded.follows",
            &[view.0.into(), (version.0 as i64).into(), (base_version.0 as i64).into(), i64::from(follows).into()],
        )?;
        Ok(())
    }

    /// The version of its base that version `version` of view `view` shows, and whether it
    /// followed a change of the base; `None` when not recorded (a version made before
    /// format 4).
    pub(crate) fn follow_of(&self, view: TableId, version: Version) -> Result<Option<(Version, bool)>> {
        if !self.has_format(4)? {
            return Ok(None);
        }
        let found = self.query_row(
            "SELECT base_version, follows FROM _tabula_follows WHERE view_id = ?1 AND version = ?2",
            &[view.0.into(), (version.0 as i64).into()],
            2,
        )?;
        found.map(|r| Ok((Version(r.int(0)? as u64), r.int(1)? != 0))).transpose()
    }

    /// After a revert took versions `gone` of its base away (its current version is now
    /// `base_now`): removes the versions of view `view` that followed them, and points the
    /// view's own versions that showed one of them at `base_now` (what the base shows at a
    /// reverted version's number is what it shows now). Returns the view versions removed;
    /// the view's current version becomes its newest remaining one.
    pub(crate) fn unfollow(&self, view: TableId, gone: &[Version], base_now: Version) -> Result<Vec<Version>> {
        if gone.is_empty() || !self.has_format(4)? {
            return Ok(Vec::new());
        }
        let mut removed = Vec::new();
        for base in gone {
            let versions = self.query_rows(
                "SELECT version FROM _tabula_follows WHERE view_id = ?1 AND base_version = ?2 AND follows = 1",
                &[view.0.into(), (base.0 as i64).into()],
                1,
            )?;
            for row in versions {
                removed.push(Version(row.int(0)? as u64));
            }
            self.execute(
                "UPDATE _tabula_follows SET base_version = ?3 WHERE view_id = ?1 AND base_version = ?2 AND follows = 0",
                &[view.0.into(), (base.0 as i64).into(), (base_now.0 as i64).into()],
            )?;
        }
        for v in &removed {
            let key = [view.0.into(), (v.0 as i64).into()];
            self.execute("DELETE FROM _tabula_follows WHERE view_id = ?1 AND version = ?2", &key)?;
            self.execute("DELETE FROM _tabula_versions WHERE table_id = ?1 AND version = ?2", &key)?;
        }
        if !removed.is_empty() {
            self.execute(
                "UPDATE _tabula_tables SET epoch = epoch + 1, version =
                 (SELECT max(version) FROM _tabula_versions WHERE table_id = ?1) WHERE id = ?1",
                &[view.0.into()],
            )?;
        }
        Ok(removed)
    }

    /// Forgets what version `version` of view `view` showed (the version is reverted).
    pub(crate) fn forget_follow(&self, view: TableId, version: Version) -> Result<()> {
        if !self.has_format(4)? {
            return Ok(());
        }
        self.execute(
            "DELETE FROM _tabula_follows WHERE view_id = ?1 AND version = ?2",
            &[view.0.into(), (version.0 as i64).into()],
        )?;
        Ok(())
    }

    /// How the rows of view `meta` changed with version `version` of its root, which wrote
    /// the physical rows `rowids` and ended others: rows that entered it, rows it shows in a
    /// new version, rows that left it (each row counted once, by its identity).
    pub(crate) fn view_change(
        &self,
        meta: &TableMeta,
        version: Version,
        rowids: Option<(i64, i64)>,
    ) -> Result<ViewChange> {
        if meta.view_filter.is_none() {
            return Ok(ViewChange::default());
        }
        let mut params = self.params();
        let source = meta.source_sql();
        // Each use of the filter binds its own literals (`?N` numbered on from the last).
        let written = match rowids {
            Some((first, last)) => {
                let rows = Piece {
                    sql: format!("b._rowid_ BETWEEN ?1 AND ?2 AND {}", meta.layout.is_live("b.")),
                    values: vec![Value::Int(first), Value::Int(last)],
                };
                let shown = self.shown_sql_among(meta, &rows, &mut params)?;
                let rows = params.splice(&rows);
                format!("SELECT b._id AS id, 1 AS w, 0 AS e FROM {source} WHERE {rows} AND {shown}")
            }
            None => "SELECT 0 AS id, 0 AS w, 0 AS e WHERE 1 = 0".into(),
        };
        let rows = Piece { sql: meta.layout.ended_at("b.", "?1"), values: vec![version_value(version)] };
        let shown = self.shown_sql_among(meta, &rows, &mut params)?;
        let rows = params.splice(&rows);
        let ended = format!("SELECT b._id, 0, 1 FROM {source} WHERE {rows} AND {shown}");
        let sql = format!(
            "SELECT CAST(coalesce(sum(CASE WHEN w = 1 AND e = 0 THEN 1 ELSE 0 END), 0) AS BIGINT),
               CAST(coalesce(sum(CASE WHEN w = 1 AND e = 1 THEN 1 ELSE 0 END), 0) AS BIGINT),
               CAST(coalesce(sum(CASE WHEN w = 0 AND e = 1 THEN 1 ELSE 0 END), 0) AS BIGINT) FROM (
               SELECT id, max(w) AS w, max(e) AS e FROM ({written} UNION ALL {ended}) AS touched GROUP BY id) AS rows_touched"
        );
        let mut out = ViewChange::default();
        let types = [Some(crate::types::ColumnType::Int); 3];
        self.query_each(&sql, &params.values, &types, |row| {
            let n = |i: usize| match row.get(i) {
                Some(crate::types::Value::Int(n)) => *n as u64,
                _ => 0,
            };
            out = ViewChange { inserted: n(0), updated: n(1), deleted: n(2) };
            Ok(false)
        })?;
        Ok(out)
    }
}
