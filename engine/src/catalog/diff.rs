//! What differs between two versions of a table, row by row: [`Table::diff`].

use std::sync::Arc;

use super::table::Table;
use crate::error::{err, Result};
use crate::row::Row;
use crate::schema::TableSchema;
use crate::store::Kind;
use crate::types::{ColumnType, Value, Version};

/// How one row differs between two versions of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum RowChange {
    /// The row is in the later version only.
    Added(Row),
    /// The row is in the earlier version only.
    Removed(Row),
    /// The row is in both, with other values: as each version shows it.
    Changed {
        /// The row in the earlier version.
        before: Row,
        /// The row in the later version.
        after: Row,
    },
}

impl Table {
    /// The rows that differ between versions `from` and `to` of this table, in row order,
    /// each handed to `each` until it returns `Ok(false)`: rows added, removed, and changed
    /// (an update keeps a row's identity, so an updated row is one change, not a removal
    /// and an addition). Each side shows the columns its version has; a row counts as
    /// changed when its values differ, so an update that set the same values is no change.
    /// With `from` later than `to`, added and removed swap: the diff reads from `from` to
    /// `to`.
    ///
    /// One read of the table (a scan, however many versions lie between), holding at
    /// most one row in memory. A column whose definition changed between the versions
    /// without its rows changing (a replaced computed column, filled in place) shows in
    /// the schemas (`Catalog::get_table("t:N")?.schema()`), not here.
    pub fn diff(&self, from: Version, to: Version, mut each: impl FnMut(RowChange) -> Result<bool>) -> Result<()> {
        let path = self.display_path();
        self.catalog
            .store()
            .read(|tx| {
                let meta = self.meta(tx)?;
                if !matches!(meta.kind, Kind::Table) {
                    return Err(err!(
                        InvalidArgument,
                        "'{path}' is a view or a snapshot; diff compares versions of a table (diff its base)"
                    ));
                }
                let schema = |v: Version| -> Result<TableSchema> {
                    let gone = || {
                        err!(
                            NotFound,
                            "table '{path}' has no version {v} (its current version is {}; a reverted or compacted version is gone)",
                            meta.version
                        )
                    };
                    if v > meta.version {
                        return Err(gone());
                    }
                    tx.schema_at(meta.id, v).map_err(|_| gone())
                };
                let (lo, hi) = (from.min(to), from.max(to));
                let sides = [Side::new(&schema(lo)?), Side::new(&schema(hi)?)];
                if lo == hi {
                    return Ok(());
                }
                let mut columns: Vec<(u32, ColumnType)> = Vec::new();
                for side in &sides {
                    for (id, ty) in &side.ids {
                        if !columns.iter().any(|(c, _)| c == id) {
                            columns.push((*id, *ty));
                        }
                    }
                }
                let flipped = from > to;
                let mut emit = |change: RowChange| -> Result<bool> {
                    each(match (flipped, change) {
                        (false, change) => change,
                        (true, RowChange::Added(row)) => RowChange::Removed(row),
                        (true, RowChange::Removed(row)) => RowChange::Added(row),
                        (true, RowChange::Changed { before, after }) => RowChange::Changed { before: after, after: before },
                    })
                };
                // A row's version at `lo` comes just before its version at `hi`.
                let mut pending: Option<(i64, Row)> = None;
                let mut going = true;
                tx.scan_changes(&meta, lo, hi, &columns, |id, at_hi, values| {
                    let row = sides[usize::from(at_hi)].row(&columns, &values);
                    if let Some((pid, before)) = pending.take() {
                        if at_hi && pid == id {
                            if differs(&before, &row) {
                                going = emit(RowChange::Changed { before, after: row })?;
                            }
                            return Ok(going);
                        }
                        going = emit(RowChange::Removed(before))?;
                        if !going {
                            return Ok(false);
                        }
                    }
                    if at_hi {
                        going = emit(RowChange::Added(row))?;
                    } else {
                        pending = Some((id, row));
                    }
                    Ok(going)
                })?;
                if let (Some((_, removed)), true) = (pending, going) {
                    emit(RowChange::Removed(removed))?;
                }
                Ok(())
            })
            .map_err(|e| e.context(format_args!("diff '{path}' {from}..{to}")))
    }
}

/// True when a column both rows have holds different values (a column one version lacks
/// is a schema change, not a row's).
fn differs(before: &Row, after: &Row) -> bool {
    before.iter().any(|(name, v)| after.value(name).is_some_and(|w| w != v))
}

/// The columns one version shows: names, and the physical column (id, type) of each.
struct Side {
    names: Arc<[String]>,
    ids: Vec<(u32, ColumnType)>,
}

impl Side {
    fn new(schema: &TableSchema) -> Side {
        Side {
            names: schema.columns.iter().map(|c| c.name.clone()).collect(),
            ids: schema.columns.iter().map(|c| (c.id.0, c.ty)).collect(),
        }
    }

    /// This version's row from the fetched physical columns.
    fn row(&self, fetched: &[(u32, ColumnType)], values: &[Value]) -> Row {
        let values = self
            .ids
            .iter()
            .map(|(id, _)| fetched.iter().position(|(c, _)| c == id).map_or(Value::Null, |i| values[i].clone()))
            .collect();
        Row::new(self.names.clone(), values)
    }
}
