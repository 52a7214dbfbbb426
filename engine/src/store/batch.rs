//! Rows changed by key (`Table::batch_update`, `Table::upsert`): the batch is staged in a
//! temporary table of the write transaction, then matched with the live rows through the
//! primary key's index, so a batch of any size ends and rewrites its rows in two statements.

use super::codec::declared_type;
use super::{TableMeta, Tx};
use crate::error::Result;
use crate::schema::ColumnDef;
use crate::types::{ColumnType, Value, Version};

/// The staging table's name (temporary: only this connection sees it, and a rolled-back
/// write takes it away).
const STAGE: &str = "_tabula_batch";

/// A batch staged for a write: `k<i>` the key's values, `v<j>` the value of the j-th set
/// column, `grp` the row's group: the rows that set the same columns (each group is
/// rewritten on its own, so a row recomputes only what is downstream of what it sets).
pub(crate) struct Staged {
    key: Vec<ColumnDef>,
    /// Staged by physical rowid (`k0`) instead of by the table's key.
    by_rowid: bool,
    set: Vec<ColumnDef>,
    /// For each group, the indexes (in `set`) of the columns its rows set.
    groups: Vec<Vec<usize>>,
}

/// One staged row: its key's values, each set column's value (`None`: not given), and its
/// group.
pub(crate) struct StagedRow {
    pub(crate) key: Vec<Value>,
    pub(crate) set: Vec<Option<Value>>,
    pub(crate) group: usize,
}

impl Staged {
    /// The SQL of the new value of stored column `column` for the rows of `group` in a
    /// rewrite joined with the stage as `n`; `None` when they do not set it.
    pub(crate) fn value_sql(&self, group: usize, column: &ColumnDef) -> Option<String> {
        let j = self.set.iter().position(|c| c.id == column.id)?;
        self.groups[group].contains(&j).then(|| format!("n.v{j}"))
    }

    /// The names of the columns the rows of `group` set.
    pub(crate) fn set_names(&self, group: usize) -> impl Iterator<Item = &str> {
        self.groups[group].iter().map(|j| self.set[*j].name.as_str())
    }

    /// How many groups.
    pub(crate) fn groups(&self) -> usize {
        self.groups.len()
    }

    /// `<phys>` joined with the rows of `group` in the stage, on the key.
    pub(crate) fn join_sql(&self, phys: &str, group: usize) -> String {
        format!("{phys} JOIN {STAGE} n ON {} AND n.grp = {group}", self.key_match("n", phys))
    }

    fn key_match(&self, stage: &str, phys: &str) -> String {
        if self.by_rowid {
            return format!("{stage}.k0 = {phys}._rowid_");
        }
        let terms: Vec<String> =
            self.key.iter().enumerate().map(|(i, c)| format!("{stage}.k{i} = {phys}.c{}", c.id.0)).collect();
        terms.join(" AND ")
    }
}

impl Tx<'_> {
    /// Stages `rows` (keys unique among them, checked by the caller) for a write to `meta`
    /// that sets `set`, the rows of group g setting the columns `groups[g]` indexes.
    pub(crate) fn stage_batch(
        &self,
        meta: &TableMeta,
        set: Vec<ColumnDef>,
        groups: Vec<Vec<usize>>,
        rows: &[StagedRow],
    ) -> Result<Staged> {
        let key: Vec<ColumnDef> = meta.schema.key_columns().into_iter().cloned().collect();
        self.stage(key, false, set, groups, rows)
    }

    /// An empty stage for new values of `set` of physical rows (each row's key its rowid),
    /// which [`Tx::append_staged`] fills a batch at a time.
    pub(crate) fn stage_by_rowid(&self, set: Vec<ColumnDef>) -> Result<Staged> {
        let rowid = ColumnDef {
            id: crate::types::ColumnId(0),
            name: "_rowid_".into(),
            ty: ColumnType::Int,
            nullable: false,
            computed: None,
            default: None,
        };
        let group = (0..set.len()).collect();
        self.stage(vec![rowid], true, set, vec![group], &[])
    }

    fn stage(
        &self,
        key: Vec<ColumnDef>,
        by_rowid: bool,
        set: Vec<ColumnDef>,
        groups: Vec<Vec<usize>>,
        rows: &[StagedRow],
    ) -> Result<Staged> {
        let mut columns: Vec<String> =
            key.iter().enumerate().map(|(i, c)| format!("k{i} {}", self.column_type(declared_type(c.ty)))).collect();
        columns.extend(set.iter().enumerate().map(|(j, c)| format!("v{j} {}", self.column_type(declared_type(c.ty)))));
        columns.push(format!("grp {} NOT NULL", self.column_type("INTEGER")));
        let keys: Vec<String> = (0..key.len()).map(|i| format!("k{i}")).collect();
        self.execute(&format!("DROP TABLE IF EXISTS {STAGE}"), &[])?;
        self.execute(
            &format!(
                "CREATE TEMP TABLE {STAGE}({}, PRIMARY KEY({})){}",
                columns.join(", "),
                keys.join(", "),
                if self.on_server() { "" } else { " WITHOUT ROWID" }
            ),
            &[],
        )?;
        // Its columns' types are this call's: statements prepared for an earlier stage go.
        self.forget_statements(STAGE);
        let staged = Staged { key, by_rowid, set, groups };
        self.append_staged(&staged, rows)?;
        Ok(staged)
    }

    /// Adds `rows` to the stage `staged` (their keys not staged yet).
    pub(crate) fn append_staged(&self, staged: &Staged, rows: &[StagedRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let width = staged.key.len() + staged.set.len() + 1;
        let row_values = |row: &StagedRow| {
            let set = row.set.iter().map(|v| v.clone().unwrap_or(Value::Null));
            row.key.iter().cloned().chain(set).chain(std::iter::once(Value::Int(row.group as i64))).collect::<Vec<_>>()
        };
        if self.on_server() {
            // One copy instead of a statement (a round trip) a row.
            let mut names: Vec<String> = (0..staged.key.len()).map(|i| format!("k{i}")).collect();
            names.extend((0..staged.set.len()).map(|j| format!("v{j}")));
            names.push("grp".into());
            let values: Vec<Value> = rows.iter().flat_map(row_values).collect();
            return self.copy_rows(STAGE, &names, None, &values, width, &[]).map(|_| ());
        }
        let places: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
        let mut insert = self.inserter(&format!("INSERT INTO {STAGE} VALUES ({})", places.join(", ")))?;
        for row in rows {
            insert.insert(&row_values(row))?;
        }
        Ok(())
    }

    /// The keys of the staged rows that match no live row of `meta`, in key order.
    pub(crate) fn staged_missing(&self, meta: &TableMeta, staged: &Staged) -> Result<Vec<Vec<Value>>> {
        let keys: Vec<String> = (0..staged.key.len()).map(|i| format!("n.k{i}")).collect();
        let types: Vec<Option<ColumnType>> = staged.key.iter().map(|c| Some(c.ty)).collect();
        let phys = meta.phys();
        let mut out = Vec::new();
        self.query_each(
            &format!(
                "SELECT {0} FROM {STAGE} n WHERE NOT EXISTS (SELECT 1 FROM {phys} WHERE {1} AND {2}) ORDER BY {0}",
                keys.join(", "),
                staged.key_match("n", &phys),
                meta.layout.is_live(&format!("{phys}."))
            ),
            &[],
            &types,
            |key| {
                out.push(key);
                Ok(true)
            },
        )?;
        Ok(out)
    }

    /// Ends, at `version`, the live rows whose key is staged; returns how many.
    pub(crate) fn end_staged(&self, meta: &TableMeta, version: Version, staged: &Staged) -> Result<u64> {
        let phys = meta.phys();
        // Driven from the stage: each staged key is looked up through the key's index.
        self.execute(
            &format!(
                "UPDATE {phys} SET _vmax = ?1 WHERE _rowid_ IN
                 (SELECT p._rowid_ FROM {STAGE} n JOIN {phys} p ON {} AND {})",
                staged.key_match("n", "p"),
                meta.layout.is_live("p.")
            ),
            &[super::sql::version_value(version)],
        )
    }

    /// Drops the stage (the write is done with it).
    pub(crate) fn unstage(&self) -> Result<()> {
        self.execute(&format!("DROP TABLE IF EXISTS {STAGE}"), &[]).map(|_| ())
    }
}
