//! Rows changed by primary key: [`Table::batch_update`] and [`Table::upsert`].

use std::collections::{BTreeSet, HashMap};

use crate::catalog::table::rows_writable;
use crate::catalog::{Table, WriteResult};
use crate::change::{Change, ChangeKind};
use crate::compute::{self, RowWriter};
use crate::error::{err, Result};
use crate::row::Row;
use crate::schema::ColumnDef;
use crate::store::{Set, StagedRow, TableMeta, Tx};
use crate::types::{Value, Version};

/// What [`Table::batch_update`] does with a row whose key no live row has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// The call fails, naming the first such key; nothing changes.
    Error,
    /// The row is skipped.
    Ignore,
    /// The row is inserted (an upsert): it must then give every required column.
    Insert,
}

impl Table {
    /// Changes rows found by primary key, as one version: each row gives the key's columns
    /// and the stored columns to set (rows may set different columns; a column a row does not
    /// give keeps its value). Computed columns downstream of what a row sets are computed
    /// again for it, the others keep their values (a UDF is not called again for them), and
    /// views follow. `if_missing` says what happens to a row whose key no live row has.
    ///
    /// The table needs a primary key ([`Schema::primary_key`](crate::Schema::primary_key)).
    /// Two rows of one batch may not share a key. The whole batch is staged and matched in
    /// SQL, so a batch of any size costs two statements beyond staging it.
    pub fn batch_update(&self, rows: impl IntoIterator<Item = Row>, if_missing: IfMissing) -> Result<WriteResult> {
        let rows: Vec<Row> = rows.into_iter().collect();
        let udfs = &self.catalog.inner.udfs;
        self.write(|tx, meta, version| {
            rows_writable(meta)?;
            let key: Vec<ColumnDef> = meta.schema.key_columns().into_iter().cloned().collect();
            if key.is_empty() {
                return Err(err!(
                    InvalidArgument,
                    "'{}' has no primary key; batch_update and upsert find rows by key (create the table with Schema::primary_key, or use Table::update with a condition)",
                    meta.path
                ));
            }
            if rows.is_empty() {
                return Ok(None);
            }
            let batch = Batch::read(meta, &key, &rows)?;
            let total = rows.len();
            let staged = tx.stage_batch(meta, batch.set.clone(), batch.groups.clone(), &batch.staged)?;
            let missing = tx.staged_missing(meta, &staged)?;
            if if_missing == IfMissing::Error && !missing.is_empty() {
                let names: Vec<String> = key.iter().map(|c| c.name.clone()).collect();
                let first: Vec<&Value> = missing[0].iter().collect();
                return Err(err!(
                    NotFound,
                    "batch update: {} of the {} rows match no row, the first with {}; nothing was changed (IfMissing::Insert inserts them, IfMissing::Ignore skips them)",
                    missing.len(),
                    total,
                    crate::store::show_key(&names, &first)
                ));
            }
            let updated = tx.end_staged(meta, version, &staged)?;
            // Group by group: each row recomputes only what is downstream of what it sets.
            let mut rewritten: Option<(i64, i64)> = None;
            for group in 0..staged.groups() {
                if updated == 0 {
                    break;
                }
                let set = Set::Staged(&staged, group);
                if let Some((a, b)) = compute::rewrite_ended(tx, meta, version, set, &BTreeSet::new(), true, udfs)? {
                    rewritten = Some(rewritten.map_or((a, b), |(first, _)| (first, b)));
                }
            }
            tx.unstage()?;
            let inserted = match if_missing {
                IfMissing::Insert if !missing.is_empty() => insert_missing(tx, meta, version, udfs, &batch, rows, &missing)?,
                _ => None,
            };
            let rowids = match (rewritten, inserted) {
                (Some((a, _)), Some((_, b))) => Some((a, b)),
                (one, other) => one.or(other),
            };
            let set_names: BTreeSet<String> = batch.set.iter().map(|c| c.name.clone()).collect();
            let mut changed = set_names.clone();
            changed.extend(meta.schema.downstream_of(&set_names).iter().map(|c| c.name.clone()));
            let n_inserted = if inserted.is_some() { missing.len() as u64 } else { 0 };
            if updated == 0 && n_inserted == 0 {
                return Ok(None);
            }
            let keys: Vec<&str> = key.iter().map(|c| c.name.as_str()).collect();
            let detail = format!(
                "batch update of {total} rows by {}: {updated} updated, {n_inserted} inserted{}",
                keys.join(", "),
                if set_names.is_empty() {
                    String::new()
                } else {
                    format!(" (set {})", set_names.iter().cloned().collect::<Vec<_>>().join(", "))
                }
            );
            Ok(Some(Change {
                rowids,
                changed: Some(changed),
                ..Change::rows(ChangeKind::BatchUpdate, detail, n_inserted, updated, 0)
            }))
        })
    }

    /// Inserts rows whose key is new and replaces the columns they give in rows whose key a
    /// live row has, as one version: [`batch_update`](Self::batch_update) with
    /// [`IfMissing::Insert`].
    pub fn upsert(&self, rows: impl IntoIterator<Item = Row>) -> Result<WriteResult> {
        self.batch_update(rows, IfMissing::Insert)
    }
}

/// A batch read and checked against the schema.
struct Batch {
    /// The columns any row sets, in schema order.
    set: Vec<ColumnDef>,
    /// The groups of rows that set the same columns: each group's indexes in `set`.
    groups: Vec<Vec<usize>>,
    staged: Vec<StagedRow>,
    /// Each row's key, as a map key.
    keys: Vec<String>,
}

impl Batch {
    fn read(meta: &TableMeta, key: &[ColumnDef], rows: &[Row]) -> Result<Batch> {
        let schema = &meta.schema;
        let mut given = vec![false; schema.columns.len()];
        for (i, row) in rows.iter().enumerate() {
            for name in row.columns() {
                let Some(at) = schema.position(name) else {
                    return Err(err!(
                        UnknownColumn,
                        "row {i}: no column '{name}' (the columns are: {})",
                        schema.names().join(", ")
                    ));
                };
                if schema.columns[at].is_computed() {
                    return Err(err!(InvalidArgument, "row {i}: column '{name}' is computed; set its inputs instead"));
                }
                given[at] = true;
            }
        }
        let set: Vec<ColumnDef> = schema
            .columns
            .iter()
            .zip(&given)
            .filter(|(c, given)| **given && !schema.primary_key.contains(&c.id))
            .map(|(c, _)| c.clone())
            .collect();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let names: Vec<String> = key.iter().map(|c| c.name.clone()).collect();
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(rows.len());
        let mut staged = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let mut key_values = Vec::with_capacity(key.len());
            for c in key {
                let value = match row.value(&c.name) {
                    None | Some(Value::Null) => {
                        return Err(err!(
                            NotNull,
                            "row {i}: key column '{}' has no value; every row of a batch update gives the whole primary key",
                            c.name
                        ))
                    }
                    Some(v) => v.clone().coerce_to(c.ty).map_err(|why| err!(TypeMismatch, "row {i}, column '{}': {why}", c.name))?,
                };
                key_values.push(value);
            }
            let shown: Vec<&Value> = key_values.iter().collect();
            let map_key = format!("{key_values:?}");
            if let Some(earlier) = seen.insert(map_key.clone(), i) {
                return Err(err!(
                    DuplicateKey,
                    "rows {earlier} and {i} of the batch have the same primary key {}; give each key once",
                    crate::store::show_key(&names, &shown)
                ));
            }
            let mut set_values = Vec::with_capacity(set.len());
            for c in &set {
                let value = match row.value(&c.name) {
                    None => None,
                    Some(v) => {
                        let v = v
                            .clone()
                            .coerce_to(c.ty)
                            .map_err(|why| err!(TypeMismatch, "row {i}, column '{}': {why}", c.name))?;
                        if v.is_null() && !c.nullable {
                            return Err(err!(NotNull, "row {i}: column '{}' is required but is set to null", c.name));
                        }
                        Some(v)
                    }
                };
                set_values.push(value);
            }
            let shape: Vec<usize> = (0..set.len()).filter(|j| set_values[*j].is_some()).collect();
            let group = match groups.iter().position(|g| *g == shape) {
                Some(g) => g,
                None => {
                    groups.push(shape);
                    groups.len() - 1
                }
            };
            staged.push(StagedRow { key: key_values, set: set_values, group });
            keys.push(map_key);
        }
        Ok(Batch { set, groups, staged, keys })
    }
}

/// Inserts the rows of the batch whose key matched no live row; returns the rowids written.
fn insert_missing(
    tx: &Tx,
    meta: &mut TableMeta,
    version: Version,
    udfs: &crate::udf::Registry,
    batch: &Batch,
    rows: Vec<Row>,
    missing: &[Vec<Value>],
) -> Result<Option<(i64, i64)>> {
    let missing: std::collections::HashSet<String> = missing.iter().map(|k| format!("{k:?}")).collect();
    let mut writer = RowWriter::new(tx, meta, version, udfs)?;
    for (i, row) in rows.into_iter().enumerate() {
        if missing.contains(&batch.keys[i]) {
            writer.push_row(i, row)?;
        }
    }
    Ok(writer.finish(meta)?.and_then(|change| change.rowids))
}
