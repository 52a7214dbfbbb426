//! Writes of computed values and row versions, as the store runs them: the insert statement
//! of a table (stored values bound, SQL-computable columns computed by SQLite), filling a
//! computed column in place (in SQL, or with UDFs SQLite calls back), fetching the inputs
//! of a Rust-evaluated fill a batch at a time and writing its cells back, a view's own
//! values, and the new versions of updated rows. Only this module knows how they are
//! written in SQL.

use std::collections::{BTreeSet, HashMap};

use super::functions::RowFunction;
use super::rows::{Appender, CopyRows, Inserter, KeyCheck, Layout};
use super::shown::RustFilter;
use super::sql::{physical, sql_over_columns, to_sql, version_value, Params, Piece, UdfCall};
use super::{Kind, TableMeta, Tx};
use crate::error::{err, Result};
use crate::expr::Expr;
use crate::schema::{ColumnDef, TableSchema};
use crate::types::{ColumnType, Value, Version};

/// Which row versions of a table a fill touches.
#[derive(Clone, Copy)]
pub(crate) enum Scope {
    /// Every live row.
    Live,
    /// The row versions written after this physical rowid (by the current call).
    After(i64),
    /// The row versions ended at this version (by the current call).
    EndedAt(Version),
}

impl Scope {
    /// The rows of the scope, its row id or version bound in `params`.
    fn condition(self, meta: &TableMeta, params: &mut Params) -> String {
        match self {
            Scope::Live => meta.layout.is_live(""),
            Scope::After(rowid) => format!("_rowid_ > {}", params.int(rowid)),
            Scope::EndedAt(v) => meta.layout.ended_at("", &params.version(v)),
        }
    }
}

/// Live rows from which a server fills a fresh computed column by copying its table
/// ([`Tx::fill_by_rebuild`]) instead of updating every row, unless
/// `OpenOptions::copy_fills_from` says otherwise. Measured on 100,000 rows of three columns:
/// `UPDATE` 297-392 ms, the copy with its indexes built after 165-180 ms; below a few
/// thousand rows either takes a few milliseconds.
pub(crate) const REBUILD_FROM: u64 = 10_000;

/// The new values of a rewrite of ended rows.
#[derive(Clone, Copy)]
pub(crate) enum Set<'a> {
    /// Stored columns set to expressions over the old row (an update).
    Exprs(&'a [(String, Expr)]),
    /// The values of one group of a staged batch, matched by key (a batch update).
    Staged(&'a super::Staged, usize),
}

impl Set<'_> {
    /// The names of the columns set.
    pub(crate) fn names(&self) -> Vec<String> {
        match self {
            Set::Exprs(set) => set.iter().map(|(n, _)| n.clone()).collect(),
            Set::Staged(staged, group) => staged.set_names(*group).map(str::to_string).collect(),
        }
    }
}

/// Which base row versions a view's own columns are computed for.
#[derive(Clone, Copy)]
pub(crate) enum ViewRows {
    /// Every live row the view shows.
    Live,
    /// The live rows written by the current call (physical rowids from this one on).
    From(i64),
    /// The rows ended at this version that have no values yet: a revert of that version is
    /// about to make them visible again.
    EndedAt(Version),
    /// The row versions an update wrote at `version` (physical rowids from `first` on),
    /// each replacing the row version it ended at `version`.
    Rewritten { first: i64, version: Version },
    /// The live rows from physical rowid `first` on that have no values yet.
    Missing(i64),
    /// The live rows from physical rowid `first` on that have values.
    Present(i64),
}

/// How a table's rows are inserted: an [`Appender`] whose rows are `[logical id, stored
/// values..., (value, error slot) of each Rust-computed column...]`; the other computed
/// columns are computed by SQLite in the statement.
pub(crate) struct InsertPlan<'t> {
    pub(crate) appender: Appender<'t>,
    /// The stored columns, in the order their values are given.
    pub(crate) stored: Vec<ColumnDef>,
    /// The computed columns evaluated in Rust (all of them when `rust`), in order.
    pub(crate) rust_columns: Vec<ColumnDef>,
}

/// The error slot a computed column with expression `expr` inherits, as SQL over the error
/// slots of the computed columns it reads (`slot` gives one's SQL in the statement): the
/// first of them that failed, as an `UpstreamError` naming the column where the failure
/// started (what `compute::inherited` writes in Rust); NULL when none failed. `None` when
/// the expression reads no computed column by value.
fn inherited_error(schema: &TableSchema, expr: &Expr, slot: &dyn Fn(&ColumnDef) -> String) -> Option<String> {
    let arms: Vec<String> = schema
        .failing_inputs(expr)
        .into_iter()
        .map(|c| {
            let s = slot(c);
            format!(
                "WHEN {s} IS NOT NULL THEN (CASE WHEN substr({s}, 1, 15) = 'UpstreamError: ' THEN {s} \
                 ELSE 'UpstreamError: column ''{}'' failed: ' || {s} END)",
                c.name
            )
        })
        .collect();
    (!arms.is_empty()).then(|| format!("(CASE {} END)", arms.join(" ")))
}

/// The statement of [`Tx::copy_view_cells`]. It walks the new row versions (a rowid range)
/// and finds each one's predecessor through the ended rows' index on `(_vmax, _id)`: the
/// work is the rows the update touched, not the table. It binds the first new row's rowid
/// (`?1`) and the version (`?2`).
fn copy_view_cells_sql(layout: Layout, base: &str, view: &str, columns: &[&ColumnDef]) -> String {
    let targets: Vec<String> = columns.iter().flat_map(|c| [format!("c{}", c.id.0), format!("e{}", c.id.0)]).collect();
    let sources: Vec<String> = targets.iter().map(|t| format!("v.{t}")).collect();
    format!(
        "INSERT INTO {view}(_id, {targets}) SELECT n._rowid_, {sources}
         FROM {base} n CROSS JOIN {base} o CROSS JOIN {view} v
         WHERE n._rowid_ >= ?1 AND n._vmin = ?2 AND {ended} AND o._id = n._id
           AND v._id = o._rowid_
         ON CONFLICT(_id) DO NOTHING",
        targets = targets.join(", "),
        sources = sources.join(", "),
        ended = layout.ended_at("o.", "?2"),
    )
}

/// Values a [`CellWriter`] on a server gathers before it writes them with one statement:
/// 65,536 rows of one column. (Measured, a column filled on 100,000 rows: 530 ms in
/// statements of 8,192 rows, 513 ms in statements of 65,536.)
const CELL_VALUES: usize = 196_608;

/// Writes computed cells, `(value, error slot)` of some columns, by rowid: into a table's
/// physical rows ([`Tx::cell_writer`]) or a view's own rows ([`Tx::view_writer`]). On SQLite,
/// a prepared statement a row (a b-tree lookup by rowid, no round trip); on a server,
/// [`CELL_VALUES`] values a statement, `UPDATE .. FROM unnest(arrays)` or `INSERT .. SELECT
/// FROM unnest(arrays) ON CONFLICT ..` (one round trip for thousands of rows instead of one
/// a row). [`CellWriter::finish`] writes the rest.
#[must_use = "rows gathered on a server are written by `finish`"]
pub(crate) struct CellWriter<'t> {
    tx: &'t Tx<'t>,
    /// On SQLite: the statement of one row.
    each: Option<Inserter<'t>>,
    /// Whether that statement takes the rowid first (else last).
    id_first: bool,
    /// On a server: the update from arrays, and the arrays gathered (the rowids, then each
    /// column's values and error slots).
    sql: String,
    arrays: Vec<Vec<Value>>,
}

impl CellWriter<'_> {
    /// Writes `values` (`value, error slot` of each column) into row `rowid`.
    pub(crate) fn write(&mut self, rowid: i64, values: &[Value]) -> Result<()> {
        let id = Value::Int(rowid);
        if let Some(each) = &mut self.each {
            return match self.id_first {
                true => each.insert(std::iter::once(&id).chain(values)),
                false => each.insert(values.iter().chain(std::iter::once(&id))),
            };
        }
        if values.len() + 1 != self.arrays.len() {
            return Err(err!(
                Storage,
                "a cell write has {} values for {} columns (a bug in Tabula)",
                values.len(),
                self.arrays.len() - 1
            ));
        }
        self.arrays[0].push(id);
        for (array, v) in self.arrays[1..].iter_mut().zip(values) {
            array.push(v.clone());
        }
        if self.arrays[0].len() * self.arrays.len() >= CELL_VALUES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.arrays.first().is_some_and(|rowids| !rowids.is_empty()) {
            self.tx.execute_arrays(&self.sql, &self.arrays)?;
            self.arrays.iter_mut().for_each(Vec::clear);
        }
        Ok(())
    }

    /// Writes the rows not written yet.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.flush()
    }
}

/// The temporary table of a [`CellStage`]: `r` a physical rowid, then `c<id>, e<id>` of each
/// column filled.
const CELLS: &str = "_tabula_cells";

/// Computed cells of a fill that replaces a table's physical table ([`Tx::cell_stage`]):
/// copied to a temporary table [`CELL_VALUES`] values at a time, then joined with the
/// table's rows into its new physical table by [`CellStage::finish`].
#[must_use = "staged cells are written by `finish`"]
pub(crate) struct CellStage<'t> {
    tx: &'t Tx<'t>,
    names: Vec<String>,
    width: usize,
    pending: Vec<Value>,
}

impl CellStage<'_> {
    /// Stages `values` (`value, error slot` of each column) of row `rowid`.
    pub(crate) fn write(&mut self, rowid: i64, values: &[Value]) -> Result<()> {
        if values.len() + 1 != self.width {
            return Err(err!(
                Storage,
                "a cell write has {} values for {} columns (a bug in Tabula)",
                values.len(),
                self.width - 1
            ));
        }
        self.pending.push(Value::Int(rowid));
        self.pending.extend(values.iter().cloned());
        if self.pending.len() >= CELL_VALUES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.tx.copy_rows(CELLS, &self.names, None, &self.pending, self.width, &[])?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Copies table `meta`'s rows into a new physical table, each staged row with its
    /// staged cells, and makes it the table's; returns its name (which the caller's `meta`
    /// must name from then on).
    pub(crate) fn finish(mut self, meta: &TableMeta) -> Result<String> {
        self.flush()?;
        // Statistics, so that the join hashes the stage instead of looping over it.
        self.tx.execute_batch(&format!("ANALYZE {CELLS}"))?;
        let staged = &self.names[1..];
        let new = self.tx.rebuild(meta, &format!(" LEFT JOIN {CELLS} s ON s.r = p._rowid_"), &[], |name| {
            staged.iter().any(|n| n == name).then(|| format!("CASE WHEN s.r IS NULL THEN p.{name} ELSE s.{name} END"))
        })?;
        self.tx.execute_batch(&format!("DROP TABLE {CELLS}"))?;
        Ok(new)
    }
}

/// The array type a server binds values of `ty` to (the element type its column has).
fn array_type(ty: ColumnType) -> &'static str {
    match crate::store::codec::declared_type(ty) {
        "INTEGER" => "BIGINT[]",
        "REAL" => "DOUBLE PRECISION[]",
        "BLOB" => "BYTEA[]",
        "BOOLEAN" => "BOOLEAN[]",
        _ => "TEXT[]",
    }
}

impl<'t> Tx<'t> {
    /// The insert of rows into `meta`'s table at `version`. With `rust`, every computed
    /// column's value and error slot are given with the row; without, SQLite computes them.
    pub(crate) fn insert_plan(&'t self, meta: &TableMeta, version: Version, rust: bool) -> Result<InsertPlan<'t>> {
        let schema = &meta.schema;
        let stored: Vec<ColumnDef> = schema.columns.iter().filter(|c| !c.is_computed()).cloned().collect();
        let mut params = Params { values: vec![Value::Null; stored.len() + 1], ..self.params() };
        let mut targets = vec!["_id".to_string(), "_vmin".into(), "_vmax".into()];
        // `_vmin`: the version, bound as the statement's last literal (set below).
        let mut values = vec!["?1".to_string(), String::new(), meta.layout.live().to_string()];
        let mut sql_of: HashMap<String, String> = HashMap::new();
        for (i, c) in stored.iter().enumerate() {
            targets.push(format!("c{}", c.id.0));
            values.push(format!("?{}", i + 2));
            sql_of.insert(c.name.clone(), format!("?{}", i + 2));
        }
        let mut rust_columns = Vec::new();
        for c in schema.computed_order() {
            let Some(computed) = &c.computed else { continue };
            targets.push(format!("c{}", c.id.0));
            if rust {
                // Placeholders after the stored values: value and error slot of each column.
                let at = stored.len() + 2 + 2 * rust_columns.len();
                values.push(format!("?{at}"));
                targets.push(format!("e{}", c.id.0));
                values.push(format!("?{}", at + 1));
                rust_columns.push(c.clone());
            } else {
                let sql = to_sql(&computed.expr, schema, &|name| sql_of.get(name).cloned(), &mut params)?;
                values.push(sql.clone());
                sql_of.insert(c.name.clone(), format!("({sql})"));
            }
        }
        let head = format!("INSERT INTO {}({}) VALUES ", meta.phys(), targets.join(", "));
        let mut literals = params.values.split_off(stored.len() + 1);
        let width = stored.len() + 1 + 2 * rust_columns.len();
        literals.push(version_value(version));
        values[1] = format!("?{}", width + literals.len());
        let mut appender = self.appender(head, format!("({})", values.join(", ")), width, literals);
        if self.on_server() {
            // Every value is given (`rust`): the row's values in the order of `targets` after
            // the version columns, then those two.
            let mut columns = vec!["_rowid_".to_string(), "_id".into()];
            columns.extend(targets[3..].iter().cloned());
            columns.extend(["_vmin".to_string(), "_vmax".into()]);
            let constants = vec![Value::Int(version.0 as i64), Value::Int(meta.layout.live())];
            appender.copy_on_server(CopyRows { table: meta.phys(), columns, constants });
        }
        let key = schema.key_columns();
        if !key.is_empty() {
            let terms: Vec<String> = key.iter().enumerate().map(|(i, c)| format!("c{} = ?{}", c.id.0, i + 1)).collect();
            appender.check_key(KeyCheck {
                table: meta.path.to_string(),
                names: key.iter().map(|c| c.name.clone()).collect(),
                positions: key.iter().filter_map(|k| stored.iter().position(|c| c.id == k.id)).map(|p| p + 1).collect(),
                lookup: format!(
                    "SELECT _vmin FROM {} WHERE {} AND {}",
                    meta.phys(),
                    terms.join(" AND "),
                    meta.layout.is_live("")
                ),
                any_live: format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} LIMIT 1) live",
                    meta.phys(),
                    meta.layout.is_live("")
                ),
                lookup_many: self.on_server().then(|| {
                    let columns: Vec<String> = key.iter().map(|c| format!("c{}", c.id.0)).collect();
                    let arrays: Vec<String> =
                        key.iter().enumerate().map(|(i, c)| format!("?{}::{}", i + 1, array_type(c.ty))).collect();
                    format!(
                        "SELECT _vmin, {cols} FROM {} WHERE {} AND ({cols}) IN (SELECT * FROM unnest({}))",
                        meta.phys(),
                        meta.layout.is_live(""),
                        arrays.join(", "),
                        cols = columns.join(", ")
                    )
                }),
                types: key.iter().map(|c| c.ty).collect(),
                version: version.0 as i64,
            });
        }
        Ok(InsertPlan { appender, stored, rust_columns })
    }

    /// Fills computed `column` (no UDF; on a server, a `sql::portable_value`) in the rows of
    /// `scope` with one statement: its value, or where a computed column it reads failed,
    /// null and the inherited error.
    pub(crate) fn fill_computed(&self, meta: &TableMeta, column: &ColumnDef, scope: Scope) -> Result<()> {
        let Some((value, error, mut params)) = self.computed_sql(meta, column)? else { return Ok(()) };
        let id = column.id.0;
        let rows = scope.condition(meta, &mut params);
        self.execute(
            &format!("UPDATE {} SET c{id} = {value}, e{id} = {error} WHERE {rows}", meta.phys()),
            &params.values,
        )?;
        Ok(())
    }

    /// The SQL of computed `column`'s value and error slot over a row of `meta` (an
    /// inherited error, or null), and its parameters; `None` for a stored column.
    fn computed_sql(&self, meta: &TableMeta, column: &ColumnDef) -> Result<Option<(String, String, Params)>> {
        let Some(computed) = &column.computed else { return Ok(None) };
        let mut params = self.params();
        let sql = sql_over_columns(&meta.schema, &computed.expr, &mut params)?;
        Ok(Some(match inherited_error(&meta.schema, &computed.expr, &|c| format!("e{}", c.id.0)) {
            None => (sql, "NULL".into(), params),
            Some(error) => (format!("CASE WHEN {error} IS NULL THEN {sql} END"), error, params),
        }))
    }

    /// Whether a fill of fresh computed columns in every live row of table `meta` is
    /// cheaper by copying the table into a new physical table with the columns filled
    /// ([`Tx::fill_by_rebuild`], [`Tx::cell_stage`]) than by updating every row: on a server
    /// (where an `UPDATE` writes a whole new tuple and its index entries a row, and leaves
    /// the old ones dead), for a table with at least `OpenOptions::copy_fills_from` live rows
    /// ([`REBUILD_FROM`] by default) and no more
    /// ended ones (the copy takes them too), and no copy of it waiting as trash: the old
    /// physical table stays for the readers that began before (see `Tx::to_trash`), so a
    /// run of fills (a migration adding ten columns) copies the table once and updates it in
    /// place after, instead of taking ten times its space for those minutes.
    pub(crate) fn rebuild_pays(&self, meta: &TableMeta) -> Result<bool> {
        if !self.on_server() || !matches!(meta.kind, Kind::Table) {
            return Ok(false);
        }
        self.empty_trash()?;
        let id = meta.id.0;
        let waiting = self.query_i64(
            "SELECT count(*) FROM _tabula_meta WHERE key = ?1 OR key LIKE ?2",
            &[format!("trash:t{id}").into(), format!("trash:t{id}\\_%").into()],
        )?;
        if waiting > 0 {
            return Ok(false);
        }
        let counts = self.query_rows(
            &format!(
                "SELECT count(*) FILTER (WHERE {live}), count(*) FILTER (WHERE NOT ({live})) FROM {}",
                meta.phys(),
                live = meta.layout.is_live("")
            ),
            &[],
            2,
        )?;
        Ok(match counts.first() {
            Some(row) => {
                let (live, ended) = (row.int(0)?, row.int(1)?);
                live >= self.copy_fills_from() && ended <= live
            }
            None => false,
        })
    }

    /// Fills fresh computed `column` (a `sql::portable_value`) in every live row of table
    /// `meta` on a server by copying the table into a new physical table with the column
    /// filled, which then replaces it ([`Tx::install_rebuilt`]); returns that table, which
    /// the caller's `meta` must name from then on. For when [`Tx::rebuild_pays`].
    pub(crate) fn fill_by_rebuild(&self, meta: &TableMeta, column: &ColumnDef) -> Result<String> {
        let Some((value, error, params)) = self.computed_sql(meta, column)? else {
            return Err(err!(Storage, "a fill of stored column '{}' (a bug in Tabula)", column.name));
        };
        let (id, live) = (column.id.0, meta.layout.is_live(""));
        let new = self.rebuild(meta, "", &params.values, |name| {
            if name == format!("c{id}") {
                Some(format!("CASE WHEN {live} THEN {value} ELSE {name} END"))
            } else if name == format!("e{id}") {
                Some(format!("CASE WHEN {live} THEN {error} ELSE {name} END"))
            } else {
                None
            }
        })?;
        Ok(new)
    }

    /// Copies every row version of table `meta` (`FROM <phys> p <join>`) into a new physical
    /// table, each column as `value(name)` gives it (`None`: as it is), and makes that table
    /// the table's ([`Tx::install_rebuilt`]); returns its name.
    fn rebuild(
        &self,
        meta: &TableMeta,
        join: &str,
        params: &[Value],
        value: impl Fn(&str) -> Option<String>,
    ) -> Result<String> {
        let phys = meta.phys();
        let mut targets = vec!["_rowid_".to_string()];
        let mut values = vec!["p._rowid_".to_string()];
        for (name, _) in self.present_columns(&phys)? {
            values.push(value(&name).unwrap_or_else(|| format!("p.{name}")));
            targets.push(name);
        }
        let new = super::compact::new_phys_name(meta);
        self.execute_batch(&format!("CREATE TABLE {new} (LIKE {phys} INCLUDING DEFAULTS INCLUDING IDENTITY)"))?;
        self.execute(
            &format!("INSERT INTO {new}({}) SELECT {} FROM {phys} p{join}", targets.join(", "), values.join(", ")),
            params,
        )?;
        self.install_rebuilt(meta, &new)?;
        Ok(new)
    }

    /// A stage for the computed cells of `columns` in every live row of a table, which
    /// [`CellStage::finish`] copies into a new physical table with the rest of the table
    /// (for when [`Tx::rebuild_pays`]; a server's Rust-computed fill).
    pub(crate) fn cell_stage(&'t self, columns: &[&ColumnDef]) -> Result<CellStage<'t>> {
        let mut names = vec!["r".to_string()];
        let mut ddl = vec!["r BIGINT NOT NULL".to_string()];
        for c in columns {
            let id = c.id.0;
            ddl.push(format!("c{id} {}", self.column_type(crate::store::codec::declared_type(c.ty))));
            ddl.push(format!("e{id} TEXT"));
            names.extend([format!("c{id}"), format!("e{id}")]);
        }
        self.execute_batch(&format!("DROP TABLE IF EXISTS {CELLS}; CREATE TEMP TABLE {CELLS}({})", ddl.join(", ")))?;
        self.forget_statements(CELLS);
        Ok(CellStage { tx: self, width: names.len(), names, pending: Vec::new() })
    }

    /// Fills computed `column` in the rows of `scope` with one statement in which SQLite
    /// calls each UDF of its expression back: `function(k, call)` makes the function of the
    /// k-th UDF call (its arguments: the row's physical rowid, then the call's arguments).
    pub(crate) fn fill_computed_calling(
        &self,
        meta: &TableMeta,
        column: &ColumnDef,
        scope: Scope,
        mut function: impl FnMut(usize, UdfCall) -> Result<RowFunction>,
    ) -> Result<()> {
        let Some(computed) = &column.computed else { return Ok(()) };
        let mut params = Params { udf_calls: Some(Vec::new()), ..self.params() };
        let sql = sql_over_columns(&meta.schema, &computed.expr, &mut params)?;
        let mut functions = Vec::new();
        for (k, call) in params.udf_calls.take().unwrap_or_default().into_iter().enumerate() {
            functions.push(function(k, call)?);
        }
        let (phys, id, scope_kind) = (meta.phys(), column.id.0, scope);
        let rows = scope.condition(meta, &mut params);
        // Rows where a computed column it reads failed inherit that error; the UDFs are not
        // called for them.
        let inherited = inherited_error(&meta.schema, &computed.expr, &|c| format!("e{}", c.id.0));
        let clean = inherited.as_ref().map(|e| format!(" AND {e} IS NULL")).unwrap_or_default();
        // A fresh column's error slots are null already; a rewritten row's came with it.
        let reset = if matches!(scope_kind, Scope::Live) { String::new() } else { format!(", e{id} = NULL") };
        let update = format!("UPDATE {phys} SET c{id} = {sql}{reset} WHERE {rows}{clean}");
        self.with_functions(functions, |tx| tx.execute(&update, &params.values))?;
        if let Some(error) = inherited {
            let mut params = self.params();
            let rows = scope.condition(meta, &mut params);
            self.execute(
                &format!("UPDATE {phys} SET c{id} = NULL, e{id} = {error} WHERE {rows} AND {error} IS NOT NULL"),
                &params.values,
            )?;
        }
        Ok(())
    }

    /// Sets `column` to null with error slot `error` in each physical row `rowid`.
    pub(crate) fn set_cell_errors(
        &'t self,
        meta: &TableMeta,
        column: &ColumnDef,
        errors: impl IntoIterator<Item = (i64, Value)>,
    ) -> Result<()> {
        let mut mark = self.inserter(&format!(
            "UPDATE {} SET c{1} = NULL, e{1} = ?1 WHERE _rowid_ = ?2",
            meta.phys(),
            column.id.0
        ))?;
        for (rowid, error) in errors {
            mark.insert([&error, &Value::Int(rowid)])?;
        }
        Ok(())
    }

    /// How many rows of `scope` come before physical row `rowid` (a fill numbers its rows so).
    pub(crate) fn count_before(&self, meta: &TableMeta, scope: Scope, rowid: i64) -> Result<i64> {
        let mut params = self.params();
        let before = params.int(rowid);
        let rows = scope.condition(meta, &mut params);
        self.query_i64(
            &format!("SELECT count(*) FROM {} WHERE {rows} AND _rowid_ < {before}", meta.phys()),
            &params.values,
        )
    }

    /// The stored values of `columns` in physical row `rowid` (empty when it has none).
    pub(crate) fn read_cells(&self, meta: &TableMeta, columns: &[&ColumnDef], rowid: i64) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        if columns.is_empty() {
            return Ok(out);
        }
        let select: Vec<String> = columns.iter().map(|c| format!("c{}", c.id.0)).collect();
        let types: Vec<Option<ColumnType>> = columns.iter().map(|c| Some(c.ty)).collect();
        self.query_each(
            &format!("SELECT {} FROM {} WHERE _rowid_ = ?1", select.join(", "), meta.phys()),
            &[Value::Int(rowid)],
            &types,
            |values| {
                out = values;
                Ok(false)
            },
        )?;
        Ok(out)
    }

    /// The next `batch` rows of `scope` after physical row `after`, in rowid order: each
    /// row's rowid, the stored values of `inputs`, then the error slots of `failing`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fetch_inputs(
        &self,
        meta: &TableMeta,
        inputs: &[&ColumnDef],
        failing: &[&ColumnDef],
        scope: Scope,
        after: i64,
        batch: usize,
        each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        let select: Vec<String> = std::iter::once("_rowid_".to_string())
            .chain(inputs.iter().map(|c| format!("c{}", c.id.0)))
            .chain(failing.iter().map(|c| format!("e{}", c.id.0)))
            .collect();
        let types: Vec<Option<ColumnType>> = std::iter::once(Some(ColumnType::Int))
            .chain(inputs.iter().map(|c| Some(c.ty)))
            .chain(failing.iter().map(|_| Some(ColumnType::String)))
            .collect();
        if after <= 0 {
            self.plan_ready(&meta.phys())?;
        }
        let mut params = self.params();
        let rows = scope.condition(meta, &mut params);
        let (after, batch) = (params.int(after), params.int(batch as i64));
        let sql = format!(
            "SELECT {} FROM {} WHERE {rows} AND _rowid_ > {after} ORDER BY _rowid_ LIMIT {batch}",
            select.join(", "),
            meta.phys(),
        );
        self.query_page(&sql, &params.values, &types, each)
    }

    /// On a server, gives physical table `phys` statistics if it has none yet and holds
    /// more than a few pages: a table loaded since it was made. Without them the planner
    /// guesses that few rows are live and sorts the whole table for every page of a pass
    /// (`_rowid_ > after ORDER BY _rowid_ LIMIT n`) instead of walking its rowid index,
    /// which makes a pass over 100,000 fresh rows take seconds, not milliseconds.
    /// (PostgreSQL's autovacuum analyzes such a table too, but a minute or so later.)
    /// "None yet" is read from `pg_stats`, the columns' statistics: building an index (as a
    /// first load does) sets the table's row count in `pg_class`, but no column statistics,
    /// and the planner's guess stays as bad.
    pub(crate) fn plan_ready(&self, phys: &str) -> Result<()> {
        if !self.on_server() {
            return Ok(());
        }
        let unknown = self.query_i64(
            "SELECT count(*) FROM pg_class WHERE oid = to_regclass(?1) AND pg_relation_size(oid) > 65536
             AND NOT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = current_schema() AND tablename = ?1)",
            &[Value::String(phys.to_string())],
        )?;
        if unknown > 0 {
            self.execute_batch(&format!("ANALYZE {phys}"))?;
        }
        Ok(())
    }

    /// Writes `(value, error slot)` of each of `columns` into physical rows (see
    /// [`CellWriter`]).
    pub(crate) fn cell_writer(&'t self, meta: &TableMeta, columns: &[&ColumnDef]) -> Result<CellWriter<'t>> {
        if self.on_server() {
            let mut names = vec!["r".to_string()];
            let mut types = vec!["BIGINT[]"];
            let mut sets = Vec::new();
            for c in columns {
                let id = c.id.0;
                sets.push(format!("c{id} = v.c{id}, e{id} = v.e{id}"));
                names.extend([format!("c{id}"), format!("e{id}")]);
                types.extend([array_type(c.ty), "TEXT[]"]);
            }
            let arrays: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("?{}::{t}", i + 1)).collect();
            let sql = format!(
                "UPDATE {phys} AS t SET {} FROM unnest({}) AS v({}) WHERE t._rowid_ = v.r",
                sets.join(", "),
                arrays.join(", "),
                names.join(", "),
                phys = meta.phys()
            );
            return Ok(CellWriter {
                each: None,
                id_first: false,
                tx: self,
                sql,
                arrays: vec![Vec::new(); names.len()],
            });
        }
        let sets: Vec<String> = columns
            .iter()
            .enumerate()
            .flat_map(|(i, c)| [format!("c{} = ?{}", c.id.0, 2 * i + 1), format!("e{} = ?{}", c.id.0, 2 * i + 2)])
            .collect();
        let at = 2 * columns.len() + 1;
        let each = self.inserter(&format!("UPDATE {} SET {} WHERE _rowid_ = ?{at}", meta.phys(), sets.join(", ")))?;
        Ok(CellWriter { each: Some(each), id_first: false, tx: self, sql: String::new(), arrays: Vec::new() })
    }

    /// The next `batch` base rows of view `meta` in `rows` after base row `after`, in
    /// rowid order: each row's base rowid, the values of `inputs`, then the error slots of
    /// `failing`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fetch_view_inputs(
        &self,
        meta: &TableMeta,
        inputs: &[&ColumnDef],
        failing: &[&ColumnDef],
        rows: ViewRows,
        after: i64,
        batch: usize,
        mut each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        let (Kind::View { .. }, Some(filter)) = (&meta.kind, &meta.view_filter) else {
            return Err(err!(InvalidArgument, "'{}' is not a view", meta.path));
        };
        let own = meta.own_alias();
        let live = meta.visible_sql();
        // The rows, their row id or version bound (`?1`).
        let bound = |sql: String, n: i64| Piece { sql, values: vec![Value::Int(n)] };
        let which = match rows {
            ViewRows::Live => Piece::plain(live),
            ViewRows::From(first) | ViewRows::Rewritten { first, .. } => {
                bound(format!("{live} AND b._rowid_ >= ?1"), first)
            }
            ViewRows::EndedAt(v) => {
                bound(format!("{} AND {own}._id IS NULL", meta.layout.ended_at("b.", "?1")), v.0 as i64)
            }
            ViewRows::Missing(first) => bound(format!("{live} AND b._rowid_ >= ?1 AND {own}._id IS NULL"), first),
            ViewRows::Present(first) => bound(format!("{live} AND b._rowid_ >= ?1 AND {own}._id IS NOT NULL"), first),
        };
        let mut select = vec!["b._rowid_".to_string()];
        select.extend(inputs.iter().map(|c| meta.column_sql(&c.name).unwrap_or_else(|| "NULL".into())));
        select.extend(
            failing.iter().map(|c| meta.column_sql(&format!("{}#error", c.name)).unwrap_or_else(|| "NULL".into())),
        );
        let types: Vec<Option<ColumnType>> = std::iter::once(Some(ColumnType::Int))
            .chain(inputs.iter().map(|c| Some(c.ty)))
            .chain(failing.iter().map(|_| Some(ColumnType::String)))
            .collect();
        let page = |shown: &Piece, n: usize, each: &mut dyn FnMut(Vec<Value>) -> Result<bool>| {
            let mut params = self.params();
            let which = params.splice(&which);
            let shown = params.splice(shown);
            let (after, n) = (params.int(after), params.int(n as i64));
            let sql = format!(
                "SELECT {} FROM {} WHERE {which} AND {shown} AND b._rowid_ > {after} ORDER BY b._rowid_ LIMIT {n}",
                select.join(", "),
                meta.source_sql(),
            );
            let (mut read, mut more) = (0, true);
            self.query_page(&sql, &params.values, &types, |values| {
                read += 1;
                more = each(values)?;
                Ok(more)
            })?;
            Ok((read, more))
        };
        match RustFilter::of(self, meta) {
            None => page(&Piece::read(meta, filter, self.on_server())?, batch, &mut each).map(|_| ()),
            Some(f) => self.shown_pages(&f, &which, after, batch, |shown, n| page(shown, n, &mut each)),
        }
    }

    /// Gives the row versions an update wrote at `version` (physical rowids from `first` on)
    /// the view's values of `columns` that the row versions they replace had: the row
    /// version ended at `version` with the same row identity. Rows the view did not show
    /// before get nothing.
    pub(crate) fn copy_view_cells(
        &self,
        meta: &TableMeta,
        columns: &[&ColumnDef],
        first: i64,
        version: Version,
    ) -> Result<()> {
        let Some(base) = &meta.base_phys else {
            return Err(err!(InvalidArgument, "'{}' is not a view", meta.path));
        };
        if columns.is_empty() {
            return Ok(());
        }
        let sql = copy_view_cells_sql(meta.layout, base, &meta.phys, columns);
        self.execute(&sql, &[Value::Int(first), version_value(version)])?;
        Ok(())
    }

    /// Writes a view's own `(value, error slot)` of each of `columns` for base rows (see
    /// [`CellWriter`]: `write(base rowid, values)`), replacing what a row had.
    pub(crate) fn view_writer(&'t self, meta: &TableMeta, columns: &[&ColumnDef]) -> Result<CellWriter<'t>> {
        let targets: Vec<String> =
            columns.iter().flat_map(|c| [format!("c{}", c.id.0), format!("e{}", c.id.0)]).collect();
        let updates: Vec<String> = targets.iter().map(|t| format!("{t} = excluded.{t}")).collect();
        let head = format!("INSERT INTO {}(_id, {})", meta.phys(), targets.join(", "));
        let tail = format!("ON CONFLICT(_id) DO UPDATE SET {}", updates.join(", "));
        if self.on_server() {
            let mut types = vec!["BIGINT[]"];
            types.extend(columns.iter().flat_map(|c| [array_type(c.ty), "TEXT[]"]));
            let arrays: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("?{}::{t}", i + 1)).collect();
            let sql = format!("{head} SELECT * FROM unnest({}) {tail}", arrays.join(", "));
            return Ok(CellWriter { each: None, id_first: true, tx: self, sql, arrays: vec![Vec::new(); types.len()] });
        }
        let each = self.inserter(&format!("{head} VALUES ({}) {tail}", vec!["?"; targets.len() + 1].join(", ")))?;
        Ok(CellWriter { each: Some(each), id_first: true, tx: self, sql: String::new(), arrays: Vec::new() })
    }

    /// Writes new versions (at `version`) of the rows just ended at `version`, with `set`
    /// applied (expressions over the old row, or a staged batch's values); the computed columns in `in_sql` are recomputed by SQLite in the statement,
    /// the others copied (a Rust fill recomputes them after). Returns the physical rowids
    /// before and after the rows written.
    pub(crate) fn rewrite_ended(
        &self,
        meta: &TableMeta,
        version: Version,
        set: Set,
        in_sql: &BTreeSet<&str>,
    ) -> Result<(i64, i64)> {
        let schema = &meta.schema;
        let phys = meta.phys();
        let mut params = self.params();
        let at = params.version(version);
        let old = |name: &str| physical(schema, name);
        let mut new_sql: HashMap<String, String> = HashMap::new();
        let mut targets = vec!["_id".to_string(), "_vmin".into(), "_vmax".into()];
        let mut values = vec!["_id".to_string(), at.clone(), meta.layout.live().to_string()];
        let mut copied_slots = Vec::new();
        for c in schema.columns.iter().filter(|c| !c.is_computed()) {
            let given = match set {
                Set::Exprs(set) => match set.iter().find(|(n, _)| *n == c.name) {
                    Some((_, expr)) => Some(to_sql(expr, schema, &old, &mut params)?),
                    None => None,
                },
                Set::Staged(staged, group) => staged.value_sql(group, c),
            };
            let sql = given.unwrap_or_else(|| format!("c{}", c.id.0));
            targets.push(format!("c{}", c.id.0));
            values.push(sql.clone());
            new_sql.insert(c.name.clone(), format!("({sql})"));
        }
        // Each computed column's error slot in the new row, as SQL over the old one.
        let mut error_sql: HashMap<String, String> = HashMap::new();
        for c in schema.computed_order() {
            let Some(computed) = &c.computed else { continue };
            let sql = if in_sql.contains(c.name.as_str()) {
                let resolve = |name: &str| new_sql.get(name).cloned().or_else(|| old(name));
                let sql = to_sql(&computed.expr, schema, &resolve, &mut params)?;
                let slot = |u: &ColumnDef| error_sql.get(&u.name).cloned().unwrap_or_else(|| format!("e{}", u.id.0));
                match inherited_error(schema, &computed.expr, &slot) {
                    Some(error) => {
                        targets.push(format!("e{}", c.id.0));
                        values.push(error.clone());
                        error_sql.insert(c.name.clone(), error.clone());
                        format!("CASE WHEN {error} IS NULL THEN {sql} END")
                    }
                    None => {
                        error_sql.insert(c.name.clone(), "NULL".into());
                        sql
                    }
                }
            } else {
                copied_slots.push(format!("e{}", c.id.0));
                format!("c{}", c.id.0)
            };
            targets.push(format!("c{}", c.id.0));
            values.push(sql.clone());
            new_sql.insert(c.name.clone(), format!("({sql})"));
        }
        targets.extend(copied_slots.iter().cloned());
        values.extend(copied_slots);
        let source = match set {
            Set::Exprs(_) => phys.clone(),
            Set::Staged(staged, group) => staged.join_sql(&phys, group),
        };
        let insert = format!(
            "INSERT INTO {phys}({}) SELECT {} FROM {source} WHERE {}",
            targets.join(", "),
            values.join(", "),
            meta.layout.ended_at("", &at)
        );
        let last = format!("SELECT coalesce(max(_rowid_), 0) FROM {phys}");
        if self.on_server() {
            // One exchange: the rows written say which row ids they got (writers take
            // turns, so they are the next ones, in a row).
            let written = self.query_row(
                &format!(
                    "WITH written AS ({insert} RETURNING _rowid_)
                     SELECT count(*), coalesce(min(_rowid_), 0), coalesce(max(_rowid_), 0) FROM written"
                ),
                &params.values,
                3,
            )?;
            let Some(written) = written else {
                return Err(err!(Storage, "'{}': a rewrite returned nothing (a bug in Tabula)", meta.path));
            };
            let (n, first, last_written) = (written.int(0)?, written.int(1)?, written.int(2)?);
            return match n {
                0 => self.query_i64(&last, &[]).map(|id| (id, id)),
                n if last_written - first + 1 == n => Ok((first - 1, last_written)),
                n => Err(err!(
                    Storage,
                    "'{}': {n} rows rewritten got row ids {first}..{last_written}, not consecutive; another client \
                     writes this catalog's tables without taking its lock",
                    meta.path
                )),
            };
        }
        let before = self.query_i64(&last, &[])?;
        self.execute(&insert, &params.values)?;
        let after = self.query_i64(&last, &[])?;
        Ok((before, after))
    }

    /// How many rows written after physical row `before` have `column` null.
    pub(crate) fn nulls_after(&self, meta: &TableMeta, column: &ColumnDef, before: i64) -> Result<i64> {
        self.query_i64(
            &format!("SELECT count(*) FROM {} WHERE _rowid_ > ?1 AND c{} IS NULL", meta.phys(), column.id.0),
            &[Value::Int(before)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{col, row, Catalog, ColumnOptions, ColumnType, IfExists, Schema};

    /// Moving a view's values to the row versions an update wrote looks each predecessor up
    /// by `(_vmax, _id)`: without that index, an update of k rows costs k scans of them.
    #[test]
    fn copying_view_cells_looks_predecessors_up_by_index() {
        let dir = tempfile::tempdir().unwrap();
        for (layout, cat) in super::super::rows::catalogs_of_each_layout(dir.path()) {
            copying_view_cells_looks_predecessors_up_by_index_in(layout, &cat);
        }
    }

    fn copying_view_cells_looks_predecessors_up_by_index_in(layout: super::Layout, cat: &Catalog) {
        let t = cat.create_table("t", Schema::new().required("x", ColumnType::Int), IfExists::Error).unwrap();
        t.insert([row! {"x" => 1}]).unwrap();
        let v = cat.create_view("v", &t, col("x").gt(0), IfExists::Error).unwrap();
        v.add_computed_column("y", col("x") + 1, ColumnOptions::default()).unwrap();
        let plan = cat
            .store()
            .read(|tx| {
                let view = tx.load_table(crate::types::TableId(2), &crate::path::Path::root())?;
                assert_eq!(view.layout, layout);
                let own: Vec<&ColumnDef> = view.schema.columns.iter().filter(|c| c.name == "y").collect();
                let sql = copy_view_cells_sql(view.layout, "t1", &view.phys, &own);
                let mut stmt = tx.sqlite()?.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).map_err(|e| tx.fail(e))?;
                let rows = stmt.query_map([1i64, 2], |r| r.get::<_, String>(3)).map_err(|e| tx.fail(e))?;
                Ok(rows.map(|r| r.unwrap_or_default()).collect::<Vec<_>>().join(" | "))
            })
            .unwrap();
        assert!(plan.contains("USING COVERING INDEX t1_ended (_vmax=? AND _id=?)"), "{layout:?}: {plan}");
        assert!(!plan.contains("SCAN"), "{layout:?}: {plan}");
    }
}
