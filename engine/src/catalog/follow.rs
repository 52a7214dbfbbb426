//! Views follow their base: a change of a table gives every view reading it whose rows (or
//! columns) it changed a version of its own, recording the version of its base it shows.

use std::collections::HashMap;

use crate::error::Result;
use crate::store::{now_micros, Kind, TableMeta, Tx, VersionRecord, ViewChange};
use crate::types::{TableId, Version};

/// Gives the views reading `meta` (a table, or a view; directly, then through other views)
/// the versions that follow its new version `record`: a schema change changes the columns
/// every one of them shows; a table's data change only those whose rows it changed (rows
/// written or ended, counted by row identity); a view's update of its stored values every
/// one (counting the rows each shows whose values changed).
pub(crate) fn follow_base(tx: &Tx, meta: &TableMeta, record: &VersionRecord) -> Result<()> {
    if !meta.has_dependents {
        return Ok(());
    }
    let schema_change = record.change.changes_schema();
    // The new version of each table or view that moved, for the views reading it.
    let mut moved: HashMap<TableId, (Version, String)> = HashMap::new();
    moved.insert(meta.id, (record.version, meta.path.to_string()));
    for view in tx.descendant_metas(meta.id)? {
        let Kind::View { base, .. } = view.kind else { continue };
        let Some((base_version, base_path)) = moved.get(&base).cloned() else { continue };
        let change = match (schema_change, &meta.kind) {
            (true, _) => ViewChange::default(),
            (false, Kind::Table) => tx.view_change(&view, record.version, record.rowids)?,
            (false, _) => ViewChange {
                updated: tx.rows_with_stored_change(&view, meta, record.version)?,
                ..ViewChange::default()
            },
        };
        // A view's stored values set on rows a view of it does not show now still give it a
        // version: a revert of the table can bring those rows back into it, showing them.
        if !schema_change && change.is_empty() && matches!(meta.kind, Kind::Table) {
            continue;
        }
        let next = Version(view.last_version.0 + 1);
        tx.commit_version(
            &view,
            &VersionRecord {
                version: next,
                created_at: now_micros(),
                change: record.change,
                detail: format!("follow '{base_path}' version {base_version}: {}", record.detail),
                inserted: change.inserted,
                updated: change.updated,
                deleted: change.deleted,
                rowids: None,
                schema: None,
            },
        )?;
        tx.record_follow(view.id, next, base_version, true)?;
        moved.insert(view.id, (next, view.path.to_string()));
    }
    Ok(())
}

/// Takes away, after a revert of table (or view) `id`'s version `reverted` (its current version is now
/// `now`), the versions of the views reading it that followed that version (and those of
/// views reading them); their own versions that showed a version taken away now show the
/// base's current one.
pub(crate) fn unfollow_base(tx: &Tx, id: TableId, reverted: Version, now: Version) -> Result<()> {
    let mut removed: HashMap<TableId, (Vec<Version>, Version)> = HashMap::new();
    removed.insert(id, (vec![reverted], now));
    for (dep, path) in tx.descendants(id)? {
        let view = tx.load_table(dep, &path)?;
        let Kind::View { base, .. } = view.kind else { continue };
        let Some((gone, base_now)) = removed.get(&base).cloned() else { continue };
        let taken = tx.unfollow(dep, &gone, base_now)?;
        let view_now = tx.load_table(dep, &path)?.version;
        removed.insert(dep, (taken, view_now));
    }
    Ok(())
}
