//! [`ChangeKind`]: what a table version changed, as history and write results report it.

use serde::Serialize;

/// The kind of change a table version made. The enum is exhaustive on purpose: code that
/// decides what is destructive (the testkit's migration check) matches every kind, so a new
/// kind cannot pass unnoticed. The version's `detail` says the change in words and its counts
/// say how many rows it touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ChangeKind {
    /// The table (or view, or snapshot) was created: version 0.
    Create,
    /// Rows were inserted.
    Insert,
    /// Rows were updated (their old versions kept for older table versions).
    Update,
    /// Rows were deleted (kept for older table versions).
    Delete,
    /// A stored column was added.
    AddColumn,
    /// A stored column was replaced by a new one of the same name (`IfExists::Replace`): its
    /// values are gone from the current version.
    ReplaceColumn,
    /// A computed column was added and computed for every row.
    AddComputedColumn,
    /// A computed column was replaced (and its dependents recomputed).
    ReplaceComputedColumn,
    /// A column was dropped.
    DropColumn,
    /// A column was renamed.
    RenameColumn,
    /// A stored column was made nullable or required, or widened (`Table::alter_column`).
    AlterColumn,
    /// A computed column (and what reads it) was computed again for some rows
    /// (`Table::recompute`): they got new row versions.
    Recompute,
    /// Rows were changed by primary key, and those whose key was new inserted
    /// (`Table::batch_update`, `Table::upsert`).
    BatchUpdate,
}

impl ChangeKind {
    /// Every kind.
    pub const ALL: [ChangeKind; 13] = [
        ChangeKind::Create,
        ChangeKind::Insert,
        ChangeKind::Update,
        ChangeKind::Delete,
        ChangeKind::AddColumn,
        ChangeKind::ReplaceColumn,
        ChangeKind::AddComputedColumn,
        ChangeKind::ReplaceComputedColumn,
        ChangeKind::DropColumn,
        ChangeKind::RenameColumn,
        ChangeKind::AlterColumn,
        ChangeKind::Recompute,
        ChangeKind::BatchUpdate,
    ];

    /// The kind in words, as the catalog stores it (stable across versions).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
            ChangeKind::AddColumn => "add column",
            ChangeKind::ReplaceColumn => "replace column",
            ChangeKind::AddComputedColumn => "add computed column",
            ChangeKind::ReplaceComputedColumn => "replace computed column",
            ChangeKind::DropColumn => "drop column",
            ChangeKind::RenameColumn => "rename column",
            ChangeKind::AlterColumn => "alter column",
            ChangeKind::Recompute => "recompute",
            ChangeKind::BatchUpdate => "batch update",
        }
    }

    /// Whether a change of this kind may change the table's schema (the others change rows
    /// only).
    pub fn changes_schema(self) -> bool {
        match self {
            ChangeKind::Insert
            | ChangeKind::Update
            | ChangeKind::Delete
            | ChangeKind::Recompute
            | ChangeKind::BatchUpdate => false,
            ChangeKind::Create
            | ChangeKind::AddColumn
            | ChangeKind::ReplaceColumn
            | ChangeKind::AddComputedColumn
            | ChangeKind::ReplaceComputedColumn
            | ChangeKind::DropColumn
            | ChangeKind::RenameColumn
            | ChangeKind::AlterColumn => true,
        }
    }

    /// The kind stored as `text`, if it is one.
    pub fn parse(text: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a mutating call did, for its version record.
pub(crate) struct Change {
    pub(crate) kind: ChangeKind,
    pub(crate) detail: String,
    pub(crate) inserted: u64,
    pub(crate) updated: u64,
    pub(crate) deleted: u64,
    pub(crate) rowids: Option<(i64, i64)>,
    /// For rows rewritten by an update: the columns whose values may differ from the row
    /// versions they replace (set, and computed downstream of those). `None`: new rows.
    pub(crate) changed: Option<std::collections::BTreeSet<String>>,
}

impl Change {
    pub(crate) fn rows(kind: ChangeKind, detail: String, inserted: u64, updated: u64, deleted: u64) -> Change {
        Change { kind, detail, inserted, updated, deleted, rowids: None, changed: None }
    }

    pub(crate) fn schema(kind: ChangeKind, detail: String) -> Change {
        Change::rows(kind, detail, 0, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeKind;

    #[test]
    fn every_kind_is_stored_as_distinct_text_and_parsed_back() {
        let texts: std::collections::BTreeSet<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(texts.len(), ChangeKind::ALL.len());
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ChangeKind::parse("vacuum"), None);
    }
}
