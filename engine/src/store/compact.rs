//! Compaction: removes what no kept version needs. Versions older than the oldest kept one
//! are forgotten (their records deleted, the oldest kept record made to hold its schema),
//! row versions that ended at or before it are deleted (and a view's own values for them),
//! snapshots that read those versions first get their own copy, and the columns no kept
//! version has (dropped ones, and ones whose versions were reverted) go: on SQLite the
//! physical table is rebuilt without them, so a table that lives for years never reaches its
//! column limit; on a server they are dropped in place (see
//! [`SERVER_SLOTS_BEFORE_REBUILD`]).
//! Everything happens in the caller's one transaction: killed at any moment, the file is as
//! before or as after.

use std::collections::BTreeSet;

use super::meta::{physical_columns, Kind, TableMeta};
use super::Tx;
use crate::error::{err, Result};
use crate::schema::TableSchema;
use crate::types::Version;

/// Column slots a table on a server may have used (of the server's 1,600) before its
/// compaction copies it into a new physical table to reclaim those of dropped columns; below
/// it, compaction drops columns in place (instantly: the server only marks them dropped).
/// Half the limit, so a table can take 800 more columns between compactions.
const SERVER_SLOTS_BEFORE_REBUILD: i64 = 800;

#[cfg(test)]
thread_local! {
    /// Tests of this thread: compactions on a server rebuild from this many slots on, and
    /// drop the tables they replaced this long after.
    pub(crate) static TEST_SERVER_COMPACTION: std::cell::Cell<(i64, std::time::Duration)> =
        const { std::cell::Cell::new((SERVER_SLOTS_BEFORE_REBUILD, TRASH_AGE)) };
}

/// [`SERVER_SLOTS_BEFORE_REBUILD`] and [`TRASH_AGE`] (in tests, what the test set).
fn server_compaction() -> (i64, std::time::Duration) {
    #[cfg(test)]
    return TEST_SERVER_COMPACTION.with(|c| c.get());
    #[cfg(not(test))]
    (SERVER_SLOTS_BEFORE_REBUILD, TRASH_AGE)
}

/// How long a physical table a server compaction replaced, or a dropped table's, is kept
/// for the readers that began before (their snapshot still names it); the next compaction
/// or drop after drops it. A read transaction longer than this fails naming the missing
/// table instead of seeing wrong rows.
const TRASH_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// A name for a new physical table of table `meta` that replaces its current one:
/// `t<id>_<microseconds>`.
pub(crate) fn new_phys_name(meta: &TableMeta) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("t{}_{}", meta.id.0, now.as_micros())
}

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
        if self.on_server() {
            return self.drop_dead_columns_on_server(meta, &present, &kept, dead);
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
        Ok(dead as u64)
    }

    /// [`Tx::drop_dead_columns`] on a server, where a table rewritten in place would show a
    /// reader whose snapshot predates it an empty table (rewrites are not MVCC-safe there):
    /// the columns are dropped in place (the server only marks them dropped), until their
    /// slots near the server's limit of 1,600; then the kept columns are copied into a new
    /// physical table that `phys:<id>` names from then on, and the old one waits
    /// [`TRASH_AGE`] for the readers that began before (their snapshot still names it)
    /// before a later compaction drops it.
    fn drop_dead_columns_on_server(
        &self,
        meta: &TableMeta,
        present: &[String],
        kept: &[(String, &'static str)],
        dead: usize,
    ) -> Result<u64> {
        let phys = meta.phys();
        let system = ["_id", "_vmin", "_vmax"];
        self.empty_trash()?;
        if self.server_slots_used(&phys)? <= server_compaction().0 {
            let drops: Vec<String> = present
                .iter()
                .filter(|p| !system.contains(&p.as_str()) && !kept.iter().any(|(k, _)| k == *p))
                .map(|p| format!("DROP COLUMN {p}"))
                .collect();
            self.execute_batch(&format!("ALTER TABLE {phys} {}", drops.join(", ")))?;
            return Ok(dead as u64);
        }
        let kept: Vec<(String, &'static str)> =
            kept.iter().filter(|(name, _)| present.contains(name)).cloned().collect();
        let ddl = self.columns_ddl(&kept);
        let list: String = kept.iter().map(|(c, _)| format!(", {c}")).collect();
        let new = new_phys_name(meta);
        self.execute_batch(&format!(
            "CREATE TABLE {new}(_rowid_ BIGINT GENERATED BY DEFAULT AS IDENTITY, _id BIGINT NOT NULL, \
             _vmin BIGINT NOT NULL, _vmax BIGINT NOT NULL{ddl});
             INSERT INTO {new}(_rowid_, _id, _vmin, _vmax{list}) SELECT _rowid_, _id, _vmin, _vmax{list} FROM {phys};",
        ))?;
        self.install_rebuilt(meta, &new)?;
        Ok(dead as u64)
    }

    /// Makes `new`, a new physical table holding a copy of every row version of table
    /// `meta` (made without indexes, and with its rowid column an identity without a
    /// primary key), the table's physical table: builds its indexes after its rows (the
    /// bulk-load way), continues its rowid sequence past the old one's, makes `phys:<id>`
    /// name it, and files the old physical table as trash for the readers that began before
    /// this transaction (their snapshot still names it). On a server, where a table
    /// rewritten in place is not safe for such readers.
    pub(crate) fn install_rebuilt(&self, meta: &TableMeta, new: &str) -> Result<()> {
        let old = meta.phys();
        let key = super::meta::key_physical(&meta.schema);
        let key_index = if key.is_empty() { String::new() } else { super::meta::key_index_sql(meta.layout, new, &key) };
        self.execute_batch(&format!(
            "ALTER TABLE {new} ADD PRIMARY KEY (_rowid_);
             CREATE INDEX {new}_ended ON {new}(_vmax, _id) WHERE {ended};
             {key_index}
             SELECT setval(pg_get_serial_sequence('{new}', '_rowid_'), greatest(
                 coalesce((SELECT max(_rowid_) FROM {new}), 0),
                 coalesce(pg_sequence_last_value(pg_get_serial_sequence('{old}', '_rowid_')::regclass), 0)) + 1, false);",
            ended = meta.layout.ended("")
        ))?;
        self.execute("DELETE FROM _tabula_meta WHERE key = 'phys:' || ?1", &[meta.id.0.into()])?;
        self.execute(
            "INSERT INTO _tabula_meta(key, value) VALUES ('phys:' || ?1, ?2)",
            &[meta.id.0.into(), new.into()],
        )?;
        self.forget_statements(&old);
        self.to_trash(&old)
    }

    /// Files physical table `phys`, which no table names any more, as trash: a server's
    /// reader whose snapshot predates this transaction still names it and reads it, so it
    /// is dropped [`TRASH_AGE`] later (by [`Tx::empty_trash`]), not now.
    pub(crate) fn to_trash(&self, phys: &str) -> Result<()> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.execute(
            "INSERT INTO _tabula_meta(key, value) VALUES ('trash:' || ?1, ?2)",
            &[phys.into(), (now.as_micros() as i64).to_string().into()],
        )?;
        Ok(())
    }

    /// Drops the physical tables filed as trash more than [`TRASH_AGE`] ago.
    pub(crate) fn empty_trash(&self) -> Result<()> {
        self.drop_trash(server_compaction().1)
    }

    /// Drops the physical tables filed as trash more than `age` ago; on a server, also those
    /// that no transaction can still name: filed by a transaction that has committed (not
    /// this one), when no other session's snapshot is as old as that transaction
    /// (`backend_xmin`; a session whose state the server hides from this role counts as
    /// old). A snapshot taken before that commit has an xmin at most its xid (it was
    /// running then); one taken after reads the new `phys:` mapping and never names the old
    /// table. So the space comes back at the next call instead of minutes later.
    pub(crate) fn drop_trash(&self, age: std::time::Duration) -> Result<()> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let before = now.as_micros() as i64 - age.as_micros() as i64;
        let unreadable = match self.on_server() {
            false => "",
            true => {
                " OR (m.xmin <> CAST(CAST(txid_current() % 4294967296 AS TEXT) AS xid) AND NOT EXISTS (
                    SELECT 1 FROM pg_stat_activity a WHERE a.datname = current_database()
                    AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
                    AND (a.state IS NULL OR (a.backend_xmin IS NOT NULL AND age(a.backend_xmin) >= age(m.xmin)))))"
            }
        };
        let old = self.query_rows(
            &format!(
                "SELECT substr(m.key, 7) FROM _tabula_meta m WHERE substr(m.key, 1, 6) = 'trash:'
                 AND (CAST(m.value AS BIGINT) < ?1{unreadable})"
            ),
            &[before.into()],
            1,
        )?;
        // One batch drops them all and forgets them (on a server, one exchange).
        let mut batch = String::new();
        let mut keys = Vec::new();
        for row in old {
            let phys = row.text(0)?;
            if phys.is_empty() || !phys.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(err!(
                    Storage,
                    "the trash names '{phys}', which is no table's name; the catalog may be damaged"
                ));
            }
            batch.push_str(&format!("DROP TABLE IF EXISTS {phys};\n"));
            keys.push(format!("'trash:{phys}'"));
        }
        if keys.is_empty() {
            return Ok(());
        }
        batch.push_str(&format!("DELETE FROM _tabula_meta WHERE key IN ({})", keys.join(", ")));
        self.execute_batch(&batch)
    }

    /// How many column slots physical table `phys` has used on a server (its columns, the
    /// dropped ones included: a server never reuses a slot).
    fn server_slots_used(&self, phys: &str) -> Result<i64> {
        self.query_i64(
            "SELECT coalesce(max(attnum), 0) FROM pg_attribute WHERE attrelid = to_regclass(?1)",
            &[phys.into()],
        )
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
