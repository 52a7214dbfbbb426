//! Compaction: removes what no kept version needs. Versions older than the oldest kept one
//! are forgotten (their records deleted, the oldest kept record made to hold its schema),
//! row versions that ended at or before it are deleted (and a view's own values for them),
//! snapshots that read those versions first get their own copy, and the physical table is
//! rebuilt without the columns no kept version has (dropped ones, and ones whose versions
//! were reverted), so a table that lives for years never reaches SQLite's column limit.
//! Everything happens in the caller's one transaction: killed at any moment, the file is as
//! before or as after.

use std::collections::BTreeSet;

use super::meta::{physical_columns, Kind, TableMeta};
use super::Tx;
use crate::error::{err, Result};
use crate::schema::TableSchema;
use crate::types::Version;

/// What a compaction removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// The oldest version kept (the table can be read and reverted back to it, not past).
    pub oldest_kept: Version,
    /// Version records forgotten.
    pub versions_removed: u64,
    /// Row versions deleted (no kept version shows them).
    pub rows_removed: u64,
    /// Physical columns dropped (no kept version has them).
    pub columns_removed: u64,
}

impl Tx<'_> {
    /// Compacts table `meta` keeping every version from `keep_from` (an existing version, at
    /// most the current one) on.
    pub(crate) fn compact_table(&self, meta: &TableMeta, keep_from: Version) -> Result<CompactReport> {
        if !matches!(meta.kind, Kind::Table) {
            return Err(err!(InvalidArgument, "'{}' is a view or a snapshot; compact the table it reads", meta.path));
        }
        let id = meta.id;
        let phys = meta.phys();
        let k = keep_from.0 as i64;
        // The oldest kept record must hold its schema itself: the record it refers to goes.
        let schema = self.schema_at(id, keep_from)?;
        let json = serde_json::to_string(&schema).map_err(|e| err!(Storage, "could not serialize a schema ({e})"))?;
        // Snapshots of forgotten versions keep their rows; views drop their values for the
        // row versions that go.
        let dead = format!("_vmax <= {k} AND {}", meta.layout.ended(""));
        // Every snapshot first: one of a view copies that view's values too. Views of a
        // snapshot keep their values: its rows keep their rowids.
        let deps = self.descendant_metas(id)?;
        for dep in &deps {
            if matches!(dep.kind, Kind::Snapshot { base: Some(_), .. })
                && dep.root == Some(id)
                && dep.root_at.is_some_and(|at| at < keep_from)
            {
                self.materialize_snapshot(dep)?;
            }
        }
        for dep in &deps {
            if matches!(dep.kind, Kind::View { .. }) && dep.root == Some(id) && dep.root_at.is_none() {
                self.execute(
                    &format!("DELETE FROM {} WHERE _id IN (SELECT _rowid_ FROM {phys} WHERE {dead})", dep.phys),
                    &[],
                )?;
            }
        }
        let removed_versions = self
            .execute("DELETE FROM _tabula_versions WHERE table_id = ?1 AND version < ?2", &[id.0.into(), k.into()])?;
        if removed_versions > 0 {
            self.execute(
                "UPDATE _tabula_versions SET schema = ?3 WHERE table_id = ?1 AND version = ?2",
                &[id.0.into(), k.into(), json.into()],
            )?;
            // Records that referred to a forgotten version share the oldest kept schema.
            self.execute(
                "UPDATE _tabula_versions SET schema = '@' || ?2 WHERE table_id = ?1 AND version > ?2
                 AND substr(schema, 1, 1) = '@' AND CAST(substr(schema, 2) AS INTEGER) < ?2",
                &[id.0.into(), k.into()],
            )?;
        }
        let rows_removed = self.execute(&format!("DELETE FROM {phys} WHERE {dead}"), &[])?;
        let columns_removed = self.drop_dead_columns(meta)?;
        Ok(CompactReport { oldest_kept: keep_from, versions_removed: removed_versions, rows_removed, columns_removed })
    }

    /// Rebuilds the physical table with only the columns some kept version has; returns how
    /// many physical columns went.
    fn drop_dead_columns(&self, meta: &TableMeta) -> Result<u64> {
        let phys = meta.phys();
        let mut kept: Vec<(String, &'static str)> = Vec::new();
        let mut seen = BTreeSet::new();
        for schema in self.kept_schemas(meta)? {
            let new: Vec<_> = schema.columns.into_iter().filter(|c| seen.insert(c.id.0)).collect();
            kept.extend(physical_columns(&new));
        }
        let present: Vec<String> = self.present_columns(&phys)?.into_iter().map(|(name, _)| name).collect();
        let system = ["_id", "_vmin", "_vmax"];
        let dead =
            present.iter().filter(|p| !system.contains(&p.as_str()) && !kept.iter().any(|(k, _)| k == *p)).count();
        if dead == 0 {
            return Ok(0);
        }
        kept.retain(|(name, _)| present.contains(name));
        let columns: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        let ddl = self.columns_ddl(&kept.iter().map(|(n, ty)| (n.clone(), *ty)).collect::<Vec<_>>());
        let list: String = columns.iter().map(|c| format!(", {c}")).collect();
        let new = format!("{phys}_compacted");
        let key = super::meta::key_physical(&meta.schema);
        let key_index =
            if key.is_empty() { String::new() } else { super::meta::key_index_sql(meta.layout, &phys, &key) };
        self.execute_batch(&format!(
                "CREATE TABLE {new}({}{ddl});
                 INSERT INTO {new}(_rowid_, _id, _vmin, _vmax{list}) SELECT _rowid_, _id, _vmin, _vmax{list} FROM {phys} ORDER BY _rowid_;
                 DROP TABLE {phys};
                 ALTER TABLE {new} RENAME TO {phys};
                 CREATE INDEX {phys}_ended ON {phys}(_vmax, _id) WHERE {ended};
                 {key_index}",
                self.system_columns(),
                ended = meta.layout.ended("")
            ))?;
        if self.on_server() {
            // The copy kept its rowids; its identity goes on after them. (A server's own
            // DROP COLUMN would keep each dropped column's slot, and a table has 1,600.)
            self.execute_batch(&format!(
                "SELECT setval(pg_get_serial_sequence('{phys}', '_rowid_'), coalesce((SELECT max(_rowid_) FROM {phys}), 0) + 1, false)"
            ))?;
        }
        Ok(dead as u64)
    }

    /// The schemas of the kept versions (each stored once).
    fn kept_schemas(&self, meta: &TableMeta) -> Result<Vec<TableSchema>> {
        let texts = self.query_rows(
            "SELECT schema FROM _tabula_versions WHERE table_id = ?1 AND substr(schema, 1, 1) <> '@'",
            &[meta.id.0.into()],
            1,
        )?;
        let mut out = Vec::new();
        for row in texts {
            let text = row.text(0)?;
            out.push(serde_json::from_str(&text).map_err(|e| {
                err!(Storage, "a stored schema of '{}' does not parse ({e}); the catalog may be damaged", meta.path)
            })?);
        }
        Ok(out)
    }
}
