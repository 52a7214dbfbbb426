//! Writing rows and computing computed columns: the insert path (stored values checked and
//! coerced, computed columns evaluated for every new row), the rewrite of updated rows
//! (assigned columns and everything downstream of them recomputed), and filling computed
//! columns over existing rows.
//!
//! Expressions without UDFs compile into the SQL statements themselves (SQLite evaluates
//! them, builtins included). Expressions with UDFs are evaluated in Rust, in batches of
//! [`BATCH`] rows, so batch UDFs see many rows at once and memory stays flat. Per-cell
//! failures follow the column's [`OnError`]. This module goes through `store` for all I/O.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::change::Change;
use crate::change::ChangeKind;
use crate::error::{err, Result};
use crate::eval::{eval, Batch, Cells};
use crate::expr::Expr;
use crate::row::Row;
use crate::schema::{ColumnDef, OnError, TableSchema};
use crate::store::{Appender, RowFunction, Scope, Set, TableMeta, Tx, ViewRows};
use crate::types::{ColumnType, Value, Version};
use crate::udf::{CellError, Registry};

/// Rows evaluated together in Rust (and handed to batch UDFs at once).
pub(crate) const BATCH: usize = 1024;

/// Checks that `expr` may be assigned to `column` in an update.
pub(crate) fn check_assignable(schema: &TableSchema, column: &ColumnDef, expr: &Expr) -> Result<()> {
    let t = expr.check(schema)?;
    match t.ty {
        None if !column.nullable => {
            Err(err!(NotNull, "update: column '{}' is required and cannot be set to null", column.name))
        }
        Some(ty) if !(ty == column.ty || (ty == ColumnType::Int && column.ty == ColumnType::Float)) => {
            Err(err!(TypeMismatch, "update: column '{}' is {}, but `{expr}` is {ty}", column.name, column.ty))
        }
        _ => Ok(()),
    }
}

/// The text kept in an error slot: `Kind: message`.
fn slot_text(e: &CellError) -> Value {
    Value::String(format!("{}: {}", e.kind, e.message))
}

/// Applies a computed column's error policy to its evaluated cells: returns (value, error
/// slot) a row, or the error that aborts the call. `describe_row` names a row for that error.
fn settle(column: &ColumnDef, cells: Cells, describe_row: &dyn Fn(usize) -> String) -> Result<Vec<(Value, Value)>> {
    let policy = column.computed.as_ref().map(|c| c.on_error).unwrap_or_default();
    cells
        .into_iter()
        .enumerate()
        .map(|(i, cell)| match cell {
            Ok(v) => v
                .coerce_to(column.ty)
                .map(|v| (v, Value::Null))
                .map_err(|why| err!(UdfFailed, "computed column '{}', {}: {why}", column.name, describe_row(i))),
            Err(e) if policy == OnError::Ignore => Ok((Value::Null, slot_text(&e))),
            Err(e) => Err(abort_error(column, &describe_row(i), &e)),
        })
        .collect()
}

/// The error of a call that a failing cell of `column` aborts.
/// The error slot a cell inherits when computed column `input`, which it reads, failed with
/// `slot`: an `UpstreamError` naming the column where the failure started (what the store
/// writes in SQL for the same case).
fn inherited(input: &str, slot: &str) -> Value {
    if slot.starts_with("UpstreamError: ") {
        Value::String(slot.to_string())
    } else {
        Value::String(format!("UpstreamError: column '{input}' failed: {slot}"))
    }
}

/// Evaluates computed `column` over a batch (`rows` named `names`) and applies its error
/// policy: `(value, error slot)` a row. `errors` holds each row's error slots of the
/// computed columns named `error_names`: a row where one the column reads failed inherits
/// that error, and the expression (its UDFs) is not run for it.
fn evaluate(
    column: &ColumnDef,
    schema: &TableSchema,
    batch: &Batch<'_>,
    error_names: &[String],
    errors: &[Vec<Value>],
    udfs: &Registry,
    describe_row: &dyn Fn(usize) -> String,
) -> Result<Vec<(Value, Value)>> {
    let Some(computed) = &column.computed else { return Ok(vec![(Value::Null, Value::Null); batch.rows.len()]) };
    // The failures it inherits, from the expression as written (before the error reads
    // below become columns).
    let reads: Vec<usize> = schema
        .failing_inputs(&computed.expr)
        .iter()
        .filter_map(|c| error_names.iter().position(|n| *n == c.name))
        .collect();
    // `errortype(c)` / `errormsg(c)` read the batch's error slots of c, as extra columns.
    let mut extended: Option<(Vec<String>, Vec<Vec<Value>>)> = None;
    let mut expr = std::borrow::Cow::Borrowed(&computed.expr);
    let mut parts: Vec<(String, crate::expr::ErrorPart)> = Vec::new();
    computed.expr.visit(&mut |e| {
        if let Expr::CellError { column, part } = e {
            if !parts.contains(&(column.clone(), *part)) {
                parts.push((column.clone(), *part));
            }
        }
    });
    if !parts.is_empty() {
        let mut names = batch.names.to_vec();
        let mut rows = batch.rows.to_vec();
        for (c, part) in &parts {
            names.push(format!("{c}#{part:?}"));
            let at = error_names.iter().position(|n| n == c);
            for (row, slots) in rows.iter_mut().zip(errors) {
                row.push(match at.map(|j| &slots[j]) {
                    Some(Value::String(text)) => {
                        let (kind, message) = text.split_once(": ").unwrap_or(("UdfError", text.as_str()));
                        Value::String(match part {
                            crate::expr::ErrorPart::Type => kind.to_string(),
                            crate::expr::ErrorPart::Message => message.to_string(),
                        })
                    }
                    _ => Value::Null,
                });
            }
        }
        expr = std::borrow::Cow::Owned(
            computed.expr.replace_cell_errors(&|c, part| Expr::Column(format!("{c}#{part:?}"))),
        );
        extended = Some((names, rows));
    }
    let extended_batch = extended.as_ref().map(|(names, rows)| Batch { names, rows });
    let batch = extended_batch.as_ref().unwrap_or(batch);
    let upstream: Vec<Option<Value>> = errors
        .iter()
        .map(|slots| {
            reads.iter().find_map(|&j| match &slots[j] {
                Value::String(slot) => Some(inherited(&error_names[j], slot)),
                _ => None,
            })
        })
        .collect();
    if upstream.iter().all(Option::is_none) {
        let cells = eval(&expr, batch, udfs)?;
        return settle(column, cells, describe_row);
    }
    let clean: Vec<usize> = (0..batch.rows.len()).filter(|&i| upstream[i].is_none()).collect();
    let rows: Vec<Vec<Value>> = clean.iter().map(|&i| batch.rows[i].clone()).collect();
    let cells = eval(&expr, &Batch { names: batch.names, rows: &rows }, udfs)?;
    let settled = settle(column, cells, &|k| describe_row(clean[k]))?;
    let mut out: Vec<(Value, Value)> = upstream.into_iter().map(|u| (Value::Null, u.unwrap_or(Value::Null))).collect();
    for (i, cell) in clean.into_iter().zip(settled) {
        out[i] = cell;
    }
    Ok(out)
}

fn abort_error(column: &ColumnDef, row: &str, e: &CellError) -> crate::error::Error {
    err!(
        UdfFailed,
        "computed column '{}', {row}: {e} (nothing was stored; use OnError::Ignore to keep the rows that work and record the errors)",
        column.name
    )
}

fn describe_inputs(names: &[String], values: &[Value]) -> String {
    let shown: Vec<String> = names
        .iter()
        .zip(values)
        .filter(|(n, _)| !n.starts_with('\u{0}'))
        .map(|(n, v)| {
            let mut text = v.to_string();
            if text.len() > 60 {
                let cut = (0..=57).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                text.truncate(cut);
                text.push_str("...");
            }
            format!("{n} = {text}")
        })
        .collect();
    shown.join(", ")
}

/// Inserts rows into one table in one version: checks and coerces each stored value, and
/// computes the computed columns.
pub(crate) struct RowWriter<'t> {
    inserter: Appender<'t>,
    stored: Vec<ColumnDef>,
    /// Computed columns evaluated in Rust (all of them when any calls a UDF), in order.
    rust_columns: Vec<ColumnDef>,
    /// The table's schema (which columns a computed column inherits failures from).
    schema: TableSchema,
    /// Names of every computed column (for the error when a row gives one).
    computed: Vec<String>,
    /// Where each value of the last row shape goes among `stored`.
    shape: Option<(Arc<[String]>, Vec<usize>)>,
    /// The same the other way round: for each stored column, its value's place in the row.
    sources: Vec<Option<usize>>,
    /// Rows checked but not yet written (Rust-evaluated tables write a batch at a time):
    /// `[logical id, stored values...]`.
    pending: Vec<Vec<Value>>,
    /// Reused per row: the row being written and which of its columns were given.
    buf: Vec<Value>,
    given: Vec<bool>,
    pending_index: Vec<usize>,
    next_row_id: i64,
    count: u64,
    udfs: &'t Registry,
}

impl<'t> RowWriter<'t> {
    pub(crate) fn new(tx: &'t Tx<'t>, meta: &TableMeta, version: Version, udfs: &'t Registry) -> Result<RowWriter<'t>> {
        let schema = &meta.schema;
        if schema.has_udf_columns() {
            udfs.check_schema(schema).map_err(|e| e.context("insert refused"))?;
        }
        // A server cannot run Tabula's SQL functions: every computed value is computed here.
        let plan = tx.insert_plan(meta, version, schema.has_udf_columns() || tx.on_server())?;
        Ok(RowWriter {
            inserter: plan.appender,
            stored: plan.stored,
            rust_columns: plan.rust_columns,
            schema: schema.clone(),
            computed: schema.columns.iter().filter(|c| c.is_computed()).map(|c| c.name.clone()).collect(),
            shape: None,
            sources: Vec::new(),
            buf: Vec::new(),
            given: Vec::new(),
            pending: Vec::new(),
            pending_index: Vec::new(),
            next_row_id: meta.next_row_id,
            count: 0,
            udfs,
        })
    }

    /// Applies `on_error` to every computed column for this insert, whatever each says.
    pub(crate) fn override_on_error(&mut self, on_error: OnError) {
        for c in &mut self.rust_columns {
            if let Some(computed) = &mut c.computed {
                computed.on_error = on_error;
            }
        }
    }

    /// Learns where the values of rows shaped like `row` go (kept while rows share a shape).
    fn learn_shape(&mut self, index: usize, row: &Row) -> Result<()> {
        let names = row.names_arc();
        if let Some((known, _)) = &self.shape {
            if Arc::ptr_eq(known, names) || known[..] == names[..] {
                return Ok(());
            }
        }
        let mut positions = Vec::with_capacity(names.len());
        for name in names.iter() {
            match self.stored.iter().position(|c| c.name == *name) {
                Some(p) if positions.contains(&p) => {
                    return Err(err!(InvalidArgument, "row {index}: column '{name}' is given twice"))
                }
                Some(p) => positions.push(p),
                None => return Err(self.unknown(index, name)),
            }
        }
        self.sources = vec![None; self.stored.len()];
        for (i, p) in positions.iter().enumerate() {
            self.sources[*p] = Some(i);
        }
        self.shape = Some((names.clone(), positions));
        Ok(())
    }

    fn unknown(&self, index: usize, name: &str) -> crate::error::Error {
        let computed = self.computed.iter().any(|c| c == name);
        err!(
            UnknownColumn,
            "row {index}: no stored column '{name}'{} (the stored columns are: {})",
            if computed { "; it is computed, not inserted" } else { "" },
            self.stored.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        )
    }

    /// Writes one row given as named values (moved, not copied).
    pub(crate) fn push_row(&mut self, index: usize, row: Row) -> Result<()> {
        self.learn_shape(index, &row)?;
        if self.rust_columns.is_empty() {
            return self.push_direct(index, row);
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(self.stored.len() + 1, Value::Null);
        buf[0] = Value::Int(self.next_row_id);
        let mut given = std::mem::take(&mut self.given);
        given.clear();
        given.resize(self.stored.len(), false);
        if let Some((_, positions)) = &self.shape {
            for (value, pos) in row.into_values().into_iter().zip(positions) {
                buf[pos + 1] = value;
                given[*pos] = true;
            }
        }
        let done = self.accept(index, buf, &given);
        self.given = given;
        done
    }

    /// Writes a row of a table without Rust-computed columns straight into the statement's
    /// values: each stored column's value moved out of the row by place, defaulted, checked
    /// and coerced on the way (the path of a plain insert, so it allocates nothing a row).
    fn push_direct(&mut self, index: usize, row: Row) -> Result<()> {
        let id = self.next_row_id;
        self.next_row_id = id.checked_add(1).ok_or_else(|| {
            err!(
                InvalidArgument,
                "row {index}: the table has used up its row ids (the next would pass {}); copy it into a new table",
                i64::MAX
            )
        })?;
        let mut values = row.into_values();
        let (stored, sources) = (&self.stored, &self.sources);
        self.inserter.push_with(|out| {
            out.push(Value::Int(id));
            for (c, source) in stored.iter().zip(sources) {
                let value = match source {
                    Some(at) => std::mem::replace(&mut values[*at], Value::Null),
                    None => c.default.clone().unwrap_or(Value::Null),
                };
                if value.is_null() && !c.nullable {
                    return Err(err!(NotNull, "row {index}: column '{}' is required but has no value", c.name));
                }
                out.push(
                    value
                        .coerce_to(c.ty)
                        .map_err(|why| err!(TypeMismatch, "row {index}, column '{}': {why}", c.name))?,
                );
            }
            Ok(())
        })?;
        self.count += 1;
        Ok(())
    }

    /// Writes one row given as a JSON object (a serialized record).
    pub(crate) fn push_json(&mut self, index: usize, json: serde_json::Value) -> Result<()> {
        let serde_json::Value::Object(mut fields) = json else {
            return Err(err!(Serde, "row {index}: a record must serialize to a struct or a map, found {json}"));
        };
        let mut buf = Vec::with_capacity(self.stored.len() + 1);
        let mut given = Vec::with_capacity(self.stored.len());
        buf.push(Value::Int(self.next_row_id));
        for c in &self.stored {
            let value = match fields.remove(&c.name) {
                Some(v) => Value::from_json(v, c.ty)
                    .map_err(|why| err!(TypeMismatch, "row {index}, column '{}': {why}", c.name))?,
                None => Value::Null,
            };
            given.push(!value.is_null());
            buf.push(value);
        }
        if let Some(name) = fields.keys().next() {
            return Err(self.unknown(index, name));
        }
        self.accept(index, buf, &given)
    }

    fn accept(&mut self, index: usize, mut buf: Vec<Value>, given: &[bool]) -> Result<()> {
        for ((c, slot), given) in self.stored.iter().zip(buf[1..].iter_mut()).zip(given) {
            let mut value = std::mem::replace(slot, Value::Null);
            if let (false, Some(default)) = (given, &c.default) {
                value = default.clone();
            }
            if value.is_null() && !c.nullable {
                return Err(err!(NotNull, "row {index}: column '{}' is required but has no value", c.name));
            }
            *slot =
                value.coerce_to(c.ty).map_err(|why| err!(TypeMismatch, "row {index}, column '{}': {why}", c.name))?;
        }
        self.next_row_id = self.next_row_id.checked_add(1).ok_or_else(|| {
            err!(
                InvalidArgument,
                "row {index}: the table has used up its row ids (the next would pass {}); copy it into a new table",
                i64::MAX
            )
        })?;
        self.count += 1;
        if self.rust_columns.is_empty() {
            let done = self.inserter.push(buf.drain(..));
            // Keep the buffer (and its capacity) for the next row.
            self.buf = buf;
            return done;
        }
        self.pending.push(buf);
        self.pending_index.push(index);
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Evaluates the Rust-computed columns of the pending rows and writes them.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = vec!["\u{0}id".to_string()];
        names.extend(self.stored.iter().map(|c| c.name.clone()));
        let mut rows = std::mem::take(&mut self.pending);
        let indexes = std::mem::take(&mut self.pending_index);
        let mut slots: Vec<Vec<Value>> = vec![Vec::with_capacity(2 * self.rust_columns.len()); rows.len()];
        // Each row's error slots of the columns computed so far, to pass failures on.
        let mut error_names: Vec<String> = Vec::new();
        let mut errors: Vec<Vec<Value>> = vec![Vec::new(); rows.len()];
        for c in &self.rust_columns {
            let describe = |i: usize| format!("row {}", indexes[i]);
            let batch = Batch { names: &names, rows: &rows };
            let settled = evaluate(c, &self.schema, &batch, &error_names, &errors, self.udfs, &describe)?;
            for (((row, slot), errs), (value, error)) in
                rows.iter_mut().zip(slots.iter_mut()).zip(errors.iter_mut()).zip(settled)
            {
                row.push(value.clone());
                slot.push(value);
                errs.push(error.clone());
                slot.push(error);
            }
            names.push(c.name.clone());
            error_names.push(c.name.clone());
        }
        let stored_len = self.stored.len() + 1;
        for (mut row, slot) in rows.into_iter().zip(slots) {
            row.truncate(stored_len);
            self.inserter.push(row.into_iter().chain(slot))?;
        }
        Ok(())
    }

    /// Ends the insert: updates `meta`'s counters and says what changed.
    pub(crate) fn finish(mut self, meta: &mut TableMeta) -> Result<Option<Change>> {
        self.flush()?;
        self.inserter.finish()?;
        if self.count == 0 {
            return Ok(None);
        }
        meta.next_row_id = self.next_row_id;
        let noun = if self.count == 1 { "row" } else { "rows" };
        Ok(Some(Change {
            rowids: self.inserter.rowids(),
            changed: None,
            ..Change::rows(ChangeKind::Insert, format!("insert {} {noun}", self.count), self.count, 0, 0)
        }))
    }
}

/// A failure budget for one column of a fill: past `allowed` failed rows of `total`, the
/// fill stops and the call fails, storing nothing.
pub(crate) struct Budget {
    pub(crate) column: String,
    pub(crate) allowed: u64,
    pub(crate) total: u64,
    pub(crate) budget: crate::schema::FailureBudget,
}

impl Budget {
    /// The error once `failed` of the `tried` rows failed; `causes` are the first few.
    fn exceeded(&self, failed: u64, tried: u64, causes: &[String]) -> crate::error::Error {
        err!(
            UdfFailed,
            "computed column '{}': {failed} of the {tried} rows tried failed ({:.1}%), past the budget of {} ({} of {} rows); stopped, nothing was stored (first causes: {})",
            self.column,
            100.0 * failed as f64 / tried.max(1) as f64,
            self.budget,
            self.allowed,
            self.total,
            causes.join("; ")
        )
    }
}

/// Whether an error slot is the column's own failure (not one inherited from upstream).
fn own_failure(slot: &Value) -> Option<&str> {
    match slot {
        Value::String(s) if !s.starts_with("UpstreamError: ") => Some(s),
        _ => None,
    }
}

/// Where a pass gets its rows: `fetch(after, each)` hands `each` the rows (`rowid,
/// inputs...`) after physical row `after`, in rowid order, at most [`BATCH`] of them.
type Fetch<'a> = dyn Fn(i64, &mut dyn FnMut(Vec<Value>) -> Result<bool>) -> Result<()> + 'a;

/// One pass of Rust evaluation over computed columns (in dependency order): the stored
/// inputs they read, fetched a batch of rows at a time, and the columns evaluated in order,
/// each seeing the ones before it.
struct Pass<'a> {
    columns: &'a [&'a ColumnDef],
    schema: &'a TableSchema,
    inputs: Vec<&'a ColumnDef>,
    names: Vec<String>,
    /// The computed columns among `inputs`, whose error slots are fetched too.
    failing: Vec<&'a ColumnDef>,
}

impl<'a> Pass<'a> {
    /// Checks the UDFs the columns call and finds the columns they read that this pass does
    /// not compute itself.
    fn new(columns: &'a [&'a ColumnDef], schema: &'a TableSchema, udfs: &Registry) -> Result<Pass<'a>> {
        for c in columns {
            if let Some(computed) = &c.computed {
                udfs.check_expr(&computed.expr).map_err(|e| e.context(format_args!("computed column '{}'", c.name)))?;
            }
        }
        let computing: BTreeSet<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let mut inputs: Vec<&ColumnDef> = Vec::new();
        for c in columns {
            for name in c.computed.as_ref().map(|comp| comp.expr.columns()).unwrap_or_default() {
                if !computing.contains(name.as_str()) && !inputs.iter().any(|i| i.name == name) {
                    if let Some(def) = schema.column(&name) {
                        inputs.push(def);
                    }
                }
            }
        }
        let names = inputs.iter().map(|c| c.name.clone()).collect();
        let failing = inputs.iter().copied().filter(|c| c.is_computed()).collect();
        Ok(Pass { columns, schema, inputs, names, failing })
    }

    /// Runs the pass over every batch `fetch(after, each)` gives (rows `rowid, inputs...`
    /// with rowids above `after`, in rowid order, at most [`BATCH`]), handing `store` each
    /// row's rowid and `[value, error slot]` of every column.
    fn run(
        &self,
        fetch: &Fetch<'_>,
        udfs: &Registry,
        what: &str,
        budget: Option<&Budget>,
        mut store: impl FnMut(i64, &[Value]) -> Result<()>,
    ) -> Result<()> {
        let (mut last, mut seen) = (i64::MIN, 0usize);
        let (mut failed, mut tried, mut causes) = (0u64, 0u64, Vec::new());
        loop {
            let mut rowids = Vec::with_capacity(BATCH);
            let mut rows: Vec<Vec<Value>> = Vec::with_capacity(BATCH);
            fetch(last, &mut |mut values| {
                if let Value::Int(id) = values.remove(0) {
                    rowids.push(id);
                }
                rows.push(values);
                Ok(true)
            })?;
            let Some(&end) = rowids.last() else { return Ok(()) };
            let mut names = self.names.clone();
            // Each row's error slots of the computed inputs (fetched after the inputs), then
            // of the columns computed so far.
            let mut error_names: Vec<String> = self.failing.iter().map(|c| c.name.clone()).collect();
            let mut errors: Vec<Vec<Value>> = rows.iter_mut().map(|r| r.split_off(self.inputs.len())).collect();
            // `[value, error]` of every column, row after row (one allocation a batch).
            let width = 2 * self.columns.len();
            let mut out: Vec<Value> = vec![Value::Null; width * rows.len()];
            for (k, c) in self.columns.iter().enumerate() {
                let describe = |i: usize| format!("{what} {} ({})", seen + i, describe_inputs(&self.names, &rows[i]));
                let batch = Batch { names: &names, rows: &rows };
                let settled = evaluate(c, self.schema, &batch, &error_names, &errors, udfs, &describe)?;
                if let Some(b) = budget.filter(|b| b.column == c.name) {
                    tried += settled.len() as u64;
                    for (i, (_, slot)) in settled.iter().enumerate() {
                        if let Some(why) = own_failure(slot) {
                            failed += 1;
                            if causes.len() < 3 {
                                causes.push(format!("{} {}: {why}", what, seen + i));
                            }
                        }
                    }
                    if failed > b.allowed {
                        return Err(b.exceeded(failed, tried, &causes));
                    }
                }
                let later = k + 1 < self.columns.len();
                for (i, ((row, errs), (value, error))) in
                    rows.iter_mut().zip(errors.iter_mut()).zip(settled).enumerate()
                {
                    if later {
                        // The columns after this one may read it.
                        row.push(value.clone());
                        errs.push(error.clone());
                    }
                    out[i * width + 2 * k] = value;
                    out[i * width + 2 * k + 1] = error;
                }
                names.push(c.name.clone());
                error_names.push(c.name.clone());
            }
            for (rowid, o) in rowids.iter().zip(out.chunks(width.max(1))) {
                store(*rowid, o)?;
            }
            seen += rows.len();
            last = end;
            if rowids.len() < BATCH {
                return Ok(());
            }
        }
    }
}

/// Ends, at `version`, the live rows of `meta` where `pred` holds; returns how many. In one
/// statement, or, on a server, for a condition it cannot run with Tabula's meaning
/// (functions, arithmetic, a Bool column as a predicate), by evaluating it here on the live
/// rows a batch at a time, as SQLite's functions would (a cell that fails does not match).
pub(crate) fn end_rows(tx: &Tx, meta: &TableMeta, version: Version, pred: &Expr, udfs: &Registry) -> Result<u64> {
    if !tx.on_server() || crate::store::sql::portable_predicate(pred, &meta.schema) {
        return tx.end_rows(meta, version, pred);
    }
    let names: Vec<String> = pred.columns().into_iter().collect();
    let inputs = names
        .iter()
        .map(|n| meta.schema.column(n).ok_or_else(|| err!(UnknownColumn, "no column '{n}'")))
        .collect::<Result<Vec<_>>>()?;
    // Each batch's rows are ended before the next batch is read (which starts after them by
    // rowid), so memory stays one batch whatever the table's size.
    let mut ended = 0;
    let mut after = 0;
    loop {
        let (mut rowids, mut rows) = (Vec::new(), Vec::new());
        tx.fetch_inputs(meta, &inputs, &[], Scope::Live, after, BATCH, |mut values| {
            if let Some(Value::Int(id)) = values.first() {
                rowids.push(*id);
                rows.push(values.split_off(1));
            }
            Ok(true)
        })?;
        let cells = eval(pred, &Batch { names: &names, rows: &rows }, udfs)?;
        let matching: Vec<i64> =
            rowids.iter().zip(cells).filter(|(_, c)| matches!(c, Ok(Value::Bool(true)))).map(|(id, _)| *id).collect();
        ended += tx.end_rowids(meta, version, &matching)?;
        match rowids.last() {
            Some(last) if rowids.len() == BATCH => after = *last,
            _ => break,
        }
    }
    Ok(ended)
}

/// The new values of an update's `set` for the rows ended at `version`, computed here (a
/// server cannot run Tabula's functions) and staged by physical rowid for the rewrite. A
/// value a function cannot compute is null, as SQLite's functions make it.
fn stage_set_in_rust(
    tx: &Tx,
    meta: &TableMeta,
    version: Version,
    set: &[(String, Expr)],
    udfs: &Registry,
) -> Result<crate::store::Staged> {
    let mut names: Vec<String> = set.iter().flat_map(|(_, e)| e.columns()).collect();
    names.sort();
    names.dedup();
    let column = |n: &str| meta.schema.column(n).ok_or_else(|| err!(UnknownColumn, "no column '{n}'"));
    let inputs = names.iter().map(|n| column(n)).collect::<Result<Vec<_>>>()?;
    let targets = set.iter().map(|(n, _)| column(n).cloned()).collect::<Result<Vec<_>>>()?;
    // Staged a batch at a time: memory stays one batch whatever the table's size.
    let stage = tx.stage_by_rowid(targets.clone())?;
    let mut after = 0;
    loop {
        let (mut rowids, mut rows) = (Vec::new(), Vec::new());
        tx.fetch_inputs(meta, &inputs, &[], Scope::EndedAt(version), after, BATCH, |mut values| {
            if let Some(Value::Int(id)) = values.first() {
                rowids.push(*id);
                rows.push(values.split_off(1));
            }
            Ok(true)
        })?;
        let batch = Batch { names: &names, rows: &rows };
        let mut values: Vec<Vec<Option<Value>>> = vec![Vec::with_capacity(set.len()); rows.len()];
        for ((_, expr), target) in set.iter().zip(&targets) {
            for (i, cell) in eval(expr, &batch, udfs)?.into_iter().enumerate() {
                let value = cell
                    .unwrap_or(Value::Null)
                    .coerce_to(target.ty)
                    .map_err(|why| err!(TypeMismatch, "update: the new value of column '{}': {why}", target.name))?;
                values[i].push(Some(value));
            }
        }
        let staged: Vec<crate::store::StagedRow> = rowids
            .iter()
            .zip(values)
            .map(|(id, set)| crate::store::StagedRow { key: vec![Value::Int(*id)], set, group: 0 })
            .collect();
        tx.append_staged(&stage, &staged)?;
        match rowids.last() {
            Some(last) if rowids.len() == BATCH => after = *last,
            _ => break,
        }
    }
    Ok(stage)
}

/// Computes `columns` (computed columns of `meta.schema`, in dependency order) for the rows
/// in `scope`: in one SQL statement each when none calls a UDF, else in Rust, a batch of
/// rows at a time.
pub(crate) fn recompute(
    tx: &Tx,
    meta: &TableMeta,
    columns: &[&ColumnDef],
    scope: Scope,
    udfs: &Registry,
    budget: Option<&Budget>,
) -> Result<()> {
    let schema = &meta.schema;
    let has_udf = columns.iter().any(|c| c.computed.as_ref().is_some_and(|comp| comp.expr.has_udf()));
    // A server runs the statement only when its own SQL computes every column as Tabula does.
    let server_runs = || {
        columns
            .iter()
            .all(|c| c.computed.as_ref().is_none_or(|comp| crate::store::sql::portable_value(&comp.expr, schema)))
    };
    if !has_udf && (!tx.on_server() || server_runs()) {
        // Every column filled here is a fresh physical column (added, or given a new id by a
        // replace), so its error slot is already null: only the value is written.
        for c in columns {
            tx.fill_computed(meta, c, scope)?;
        }
        return Ok(());
    }
    let pass = Pass::new(columns, schema, udfs)?;
    if in_sql(columns, udfs) && !tx.on_server() {
        return recompute_in_sql(tx, meta, &pass, scope, udfs, budget);
    }
    let fetch = |after: i64, each: &mut dyn FnMut(Vec<Value>) -> Result<bool>| {
        tx.fetch_inputs(meta, &pass.inputs, &pass.failing, scope, after, BATCH, each)
    };
    let mut update = tx.cell_writer(meta, pass.columns)?;
    pass.run(&fetch, udfs, "row", budget, |rowid, values| update.write(rowid, values))?;
    update.finish()
}

/// Fills fresh computed `columns` (added by this version, in dependency order) in every live
/// row of table `meta`, as [`recompute`] does; or on a server, when [`Tx::rebuild_pays`], by
/// copying the table with them filled into a new physical table, which `meta` names from
/// then on: in SQL for one column the server computes ([`Tx::fill_by_rebuild`]), else
/// computed here a batch at a time and staged ([`Tx::cell_stage`]).
pub(crate) fn fill_added(
    tx: &Tx,
    meta: &mut TableMeta,
    columns: &[ColumnDef],
    udfs: &Registry,
    budget: Option<&Budget>,
) -> Result<()> {
    let refs: Vec<&ColumnDef> = columns.iter().collect();
    if !tx.rebuild_pays(meta)? {
        return recompute(tx, meta, &refs, Scope::Live, udfs, budget);
    }
    let in_server_sql = refs.iter().all(|c| {
        c.computed
            .as_ref()
            .is_none_or(|comp| !comp.expr.has_udf() && crate::store::sql::portable_value(&comp.expr, &meta.schema))
    });
    let new = match refs[..] {
        [only] if in_server_sql => tx.fill_by_rebuild(meta, only)?,
        // Each reads the one before it: filled in place, one statement each.
        _ if in_server_sql => return recompute(tx, meta, &refs, Scope::Live, udfs, budget),
        _ => {
            let pass = Pass::new(&refs, &meta.schema, udfs)?;
            let fetch = |after: i64, each: &mut dyn FnMut(Vec<Value>) -> Result<bool>| {
                tx.fetch_inputs(meta, &pass.inputs, &pass.failing, Scope::Live, after, BATCH, each)
            };
            let mut stage = tx.cell_stage(pass.columns)?;
            pass.run(&fetch, udfs, "row", budget, |rowid, values| stage.write(rowid, values))?;
            stage.finish(meta)?
        }
    };
    meta.phys = new;
    Ok(())
}

/// Whether `columns` can be filled by SQL statements that call their UDFs back: every UDF
/// they call takes one row a call (batch UDFs want batches, concurrent ones several rows at
/// once), and none reads an error slot
/// (which Rust evaluation refuses next to a UDF, so inserts and fills agree).
fn in_sql(columns: &[&ColumnDef], udfs: &Registry) -> bool {
    columns.iter().all(|c| {
        let Some(computed) = &c.computed else { return true };
        let mut ok = true;
        computed.expr.visit(&mut |e| match e {
            Expr::Udf { name, version, params, returns, .. } => {
                // SQLite calls a function one row at a time: a UDF allowed several calls in
                // flight is evaluated in Rust batches.
                ok &=
                    udfs.resolve(name, *version, params, *returns).is_ok_and(|u| u.is_row() && u.max_in_flight() == 1);
            }
            Expr::CellError { .. } => ok = false,
            _ => {}
        });
        ok
    })
}

/// Fills the pass's columns with one `UPDATE` each, in which SQLite calls every row UDF back
/// as a function of the statement (`tbu_<k>(rowid, args...)`): one pass over the rows,
/// written in place, as a hand-written `create_scalar_function` and `UPDATE` would. A cell
/// whose UDF fails is null in the statement; under `OnError::Ignore` it then gets its error
/// slot (and null, whatever the rest of the expression made of the null), and under `Abort`
/// the statement stops at that row and the call fails naming it. Unlike Rust evaluation, an
/// `if_` whose condition failed still evaluates its `else` branch; its value is discarded.
fn recompute_in_sql(
    tx: &Tx,
    meta: &TableMeta,
    pass: &Pass,
    scope: Scope,
    udfs: &Registry,
    budget: Option<&Budget>,
) -> Result<()> {
    use std::sync::Mutex;
    for c in pass.columns {
        let Some(computed) = &c.computed else { continue };
        let abort = computed.on_error == OnError::Abort;
        // Past the budget, the statement stops at the next failure.
        let allowed = budget.filter(|b| b.column == c.name).map(|b| b.allowed as usize);
        let failed: Arc<Mutex<Vec<(i64, CellError)>>> = Arc::default();
        let tried = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let done = tx.fill_computed_calling(meta, c, scope, |k, call| {
            let udf = udfs.row_caller(udfs.resolve(&call.name, call.version, &call.params, call.returns)?);
            let (failed, tried) = (failed.clone(), tried.clone());
            Ok(RowFunction {
                name: format!("tbu_{k}"),
                types: call.params,
                call: Box::new(move |rowid, args| {
                    if allowed.is_some() {
                        tried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    match udf(args) {
                        Ok(v) => Ok(v),
                        Err(e) => {
                            let message = e.to_string();
                            let mut failed = failed.lock().unwrap_or_else(|p| p.into_inner());
                            failed.push((rowid, e));
                            if abort || allowed.is_some_and(|allowed| failed.len() > allowed) {
                                Err(message)
                            } else {
                                Ok(Value::Null)
                            }
                        }
                    }
                }),
            })
        });
        let failed = std::mem::take(&mut *failed.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(b) = budget.filter(|b| b.column == c.name && failed.len() as u64 > b.allowed) {
            let mut rows: Vec<i64> = failed.iter().map(|(rowid, _)| *rowid).collect();
            rows.dedup();
            let causes: Vec<String> = failed.iter().take(3).map(|(_, e)| e.to_string()).collect();
            return Err(b.exceeded(rows.len() as u64, tried.load(std::sync::atomic::Ordering::Relaxed), &causes));
        }
        match (done, failed.first()) {
            (Err(_), Some((rowid, e))) if abort => {
                let before = tx.count_before(meta, scope, *rowid)?;
                let inputs = tx.read_cells(meta, &pass.inputs, *rowid)?;
                let row = format!("row {before} ({})", describe_inputs(&pass.names, &inputs));
                return Err(abort_error(c, &row, e));
            }
            (Err(e), _) => return Err(e),
            (Ok(()), _) => {}
        }
        // The first failure of a row is its error (an expression may call several UDFs).
        let mut seen = BTreeSet::new();
        let errors =
            failed.into_iter().filter(|(rowid, _)| seen.insert(*rowid)).map(|(rowid, e)| (rowid, slot_text(&e)));
        tx.set_cell_errors(meta, c, errors)?;
    }
    Ok(())
}

/// Computes a view's own computed `columns` for the base row versions in `rows` that the
/// view shows, in Rust, and stores them in the view's table.
pub(crate) fn recompute_view(
    tx: &Tx,
    meta: &TableMeta,
    columns: &[&ColumnDef],
    rows: ViewRows,
    udfs: &Registry,
) -> Result<()> {
    let pass = Pass::new(columns, &meta.schema, udfs)?;
    let fetch = |after: i64, each: &mut dyn FnMut(Vec<Value>) -> Result<bool>| {
        tx.fetch_view_inputs(meta, &pass.inputs, &pass.failing, rows, after, BATCH, each)
    };
    let mut upsert = tx.view_writer(meta, pass.columns)?;
    pass.run(&fetch, udfs, "base row", None, |rowid, values| upsert.write(rowid, values))?;
    upsert.finish()
}

/// Writes new versions (at `version`) of the rows just ended at `version`, with `set`
/// applied, and the computed columns in `again` and (with `cascade`) every one downstream
/// of them or of the set columns computed again; the others keep their values. Returns the
/// physical rowid range written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rewrite_ended(
    tx: &Tx,
    meta: &TableMeta,
    version: Version,
    set: Set,
    again: &BTreeSet<String>,
    cascade: bool,
    udfs: &Registry,
) -> Result<Option<(i64, i64)>> {
    if let (true, Set::Exprs(exprs)) = (tx.on_server(), set) {
        if exprs.iter().any(|(_, e)| !crate::store::sql::portable_operand(e, &meta.schema)) {
            let staged = stage_set_in_rust(tx, meta, version, exprs, udfs)?;
            let out = rewrite_ended(tx, meta, version, Set::Staged(&staged, 0), again, cascade, udfs)?;
            tx.unstage()?;
            return Ok(out);
        }
    }
    let schema = &meta.schema;
    let names = set.names();
    let changed: BTreeSet<String> = names.iter().cloned().collect();
    let mut downstream = schema.recomputed(&changed, again);
    if !cascade {
        downstream.retain(|c| again.contains(&c.name));
    }
    let in_rust = tx.on_server() && !downstream.is_empty()
        || downstream.iter().any(|c| c.computed.as_ref().is_some_and(|comp| comp.expr.has_udf()));
    if in_rust {
        for c in &downstream {
            if let Some(comp) = &c.computed {
                udfs.check_expr(&comp.expr).map_err(|e| {
                    e.context(format_args!("update refused: computed column '{}' must be recomputed", c.name))
                })?;
            }
        }
    }
    let recompute_in_sql: BTreeSet<&str> =
        if in_rust { BTreeSet::new() } else { downstream.iter().map(|c| c.name.as_str()).collect() };
    let (before, after) = tx.rewrite_ended(meta, version, set, &recompute_in_sql)?;
    for name in &names {
        let Some(c) = schema.column(name) else { continue };
        if c.nullable {
            continue;
        }
        let nulls = tx.nulls_after(meta, c, before)?;
        if nulls > 0 {
            return Err(err!(
                NotNull,
                "update would set required column '{name}' to null in {nulls} row(s); guard the expression (e.g. with a where clause)"
            ));
        }
    }
    if in_rust {
        recompute(tx, meta, &downstream, Scope::After(before), udfs, None)?;
    }
    Ok((after > before).then_some((before + 1, after)))
}
