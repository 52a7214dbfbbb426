//! Queries: `table.select(..).where_(..).order_by(..).limit(n)` and its terminal calls
//! (`collect`, `collect_as`, `head`, `first`, `count`, `stream`).
//!
//! A query is data until a terminal call; each terminal call is one read transaction (a
//! stream, one a batch) that checks the expressions against the table's schema at that moment.
//! Expressions without UDFs run in SQLite; expressions with UDFs are evaluated in Rust on
//! the fetched rows only, so `head(3)` calls a UDF at most 3 times and writes nothing.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::catalog::{all_columns, check_predicate, Table};
use crate::compute::BATCH;

/// Rows a preview (`head`, a limit) with a UDF filter evaluates beyond the ones it still needs.
pub(crate) const PREVIEW_SLACK: u64 = 16;
use crate::error::{err, Result};
use crate::eval::{eval, Batch};
use crate::expr::Expr;
use crate::row::Row;
use crate::schema::Schema;
use crate::store::{sql, Kind, Scan, Seen, Tx};
use crate::types::{ColumnType, Value, Version};
use crate::udf::Registry;

/// A query on one table; build it with [`Table::select`] or [`Table::select_all`].
#[derive(Debug, Clone)]
pub struct Query {
    table: Table,
    items: Vec<Expr>,
    filter: Option<Expr>,
    order: Vec<(Expr, bool)>,
    limit: Option<u64>,
    offset: u64,
}

/// Where an output column comes from.
enum Output {
    /// The fetched SQL column at this index.
    Fetched(usize),
    /// Evaluated in Rust over the fetched columns.
    Eval(Expr, Option<ColumnType>),
}

/// A query compiled against one version of the table.
struct Plan {
    names: Arc<[String]>,
    outputs: Vec<Output>,
    /// What the store reads: the SQL-evaluated outputs, then the inputs of Rust-evaluated
    /// ones, in the scan's order.
    scan: Scan,
    fetch_names: Vec<String>,
    fetch_types: Vec<Option<ColumnType>>,
    rust_filter: Option<Expr>,
    /// On a server, when an order key is an expression it cannot compute with Tabula's
    /// meaning: every key, evaluated here and sorted here (the scan reads in row order).
    rust_order: Vec<(Expr, bool)>,
    version: Version,
    epoch: i64,
    /// The base of a view.
    view_base: Option<crate::types::TableId>,
}

impl Plan {
    /// True when SQL alone produces the result (nothing evaluated here: no UDF or server-
    /// refused expression in outputs, filter or order), so a fetched row is a result row.
    fn pure_sql(&self) -> bool {
        self.rust_filter.is_none()
            && self.rust_order.is_empty()
            && self.outputs.iter().all(|o| matches!(o, Output::Fetched(_)))
    }

    /// Turns fetched rows into result rows: the Rust filter, then the Rust outputs of the
    /// matching rows after the first `skip`, at most `take` of them (so a preview evaluates
    /// UDF outputs only for the rows it returns). Returns them and how many rows matched.
    fn finish(
        &self,
        rows: Vec<Vec<Value>>,
        first_row: usize,
        udfs: &Registry,
        skip: u64,
        take: Option<u64>,
    ) -> Result<(Vec<Row>, u64)> {
        let rows = self.filter_rows(rows, first_row, udfs)?;
        self.outputs_of(rows, first_row, udfs, skip, take)
    }

    /// The fetched rows where the Rust filter holds (all of them without one).
    fn filter_rows(&self, rows: Vec<Vec<Value>>, first_row: usize, udfs: &Registry) -> Result<Vec<Vec<Value>>> {
        let Some(filter) = &self.rust_filter else { return Ok(rows) };
        let keep = eval(filter, &Batch { names: &self.fetch_names, rows: &rows }, udfs)?;
        let mut kept = Vec::with_capacity(rows.len());
        for (i, (row, k)) in rows.into_iter().zip(keep).enumerate() {
            let k = k.map_err(|e| err!(UdfFailed, "row {}: `{filter}` failed: {e}", first_row + i))?;
            if k == Value::Bool(true) {
                kept.push(row);
            }
        }
        Ok(kept)
    }

    /// The Rust order keys of each of `rows` (fetched values): null where a key fails.
    fn order_keys(&self, rows: &[Vec<Value>], udfs: &Registry) -> Result<Vec<Vec<Value>>> {
        let columns = Batch { names: &self.fetch_names, rows };
        let mut keys: Vec<std::vec::IntoIter<_>> = Vec::with_capacity(self.rust_order.len());
        for (key, _) in &self.rust_order {
            keys.push(eval(key, &columns, udfs)?.into_iter());
        }
        let next = |k: &mut std::vec::IntoIter<_>| k.next().and_then(|cell: std::result::Result<Value, _>| cell.ok());
        Ok(rows.iter().map(|_| keys.iter_mut().map(|k| next(k).unwrap_or(Value::Null)).collect()).collect())
    }

    /// How two rows' Rust order keys compare, as SQLite orders them: nulls (and keys that
    /// failed) first going up, last going down.
    fn compare_keys(&self, a: &[Value], b: &[Value]) -> std::cmp::Ordering {
        for ((x, y), (_, desc)) in a.iter().zip(b).zip(&self.rust_order) {
            let o = match (x, y) {
                (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
                (Value::Null, _) => std::cmp::Ordering::Less,
                (_, Value::Null) => std::cmp::Ordering::Greater,
                _ => crate::eval::compare(x, y).unwrap_or(std::cmp::Ordering::Equal),
            };
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }

    /// [`Plan::finish`] of rows the Rust filter already kept.
    fn outputs_of(
        &self,
        rows: Vec<Vec<Value>>,
        first_row: usize,
        udfs: &Registry,
        skip: u64,
        take: Option<u64>,
    ) -> Result<(Vec<Row>, u64)> {
        let window = |rows: Vec<Vec<Value>>| -> (Vec<Vec<Value>>, u64) {
            let matched = rows.len() as u64;
            let skip = skip.min(matched) as usize;
            let take = take.map_or(usize::MAX, |t| t.min(usize::MAX as u64) as usize);
            (rows.into_iter().skip(skip).take(take).collect(), matched)
        };
        if self.pure_sql() {
            let (rows, matched) = window(rows);
            return Ok((rows.into_iter().map(|values| Row::new(self.names.clone(), values)).collect(), matched));
        }
        let fail = |expr: &Expr, i: usize, e: crate::udf::CellError| {
            err!(UdfFailed, "row {}: `{expr}` failed: {e}", first_row + i)
        };
        let (rows, matched) = window(rows);
        let mut columns: Vec<Vec<Value>> = Vec::with_capacity(self.outputs.len());
        for output in &self.outputs {
            columns.push(match output {
                Output::Fetched(i) => rows.iter().map(|r| r[*i].clone()).collect(),
                Output::Eval(expr, ty) => {
                    let cells = eval(expr, &Batch { names: &self.fetch_names, rows: &rows }, udfs)?;
                    let mut values = Vec::with_capacity(cells.len());
                    for (i, cell) in cells.into_iter().enumerate() {
                        let v = cell.map_err(|e| fail(expr, i, e))?;
                        values.push(match ty {
                            Some(t) => v.coerce_to(*t).unwrap_or(Value::Null),
                            None => v,
                        });
                    }
                    values
                }
            });
        }
        let n = rows.len();
        let mut out = Vec::with_capacity(n);
        let mut iters: Vec<_> = columns.into_iter().map(Vec::into_iter).collect();
        for _ in 0..n {
            out.push(Row::new(
                self.names.clone(),
                iters.iter_mut().map(|it| it.next().unwrap_or(Value::Null)).collect(),
            ));
        }
        Ok((out, matched))
    }
}

impl Query {
    pub(crate) fn new(table: Table, items: Vec<Expr>) -> Query {
        Query { table, items, filter: None, order: Vec::new(), limit: None, offset: 0 }
    }

    /// Keeps the rows where `pred` is true (null counts as false). Called twice, both must hold.
    pub fn where_(mut self, pred: Expr) -> Query {
        self.filter = Some(match self.filter.take() {
            Some(old) => old.and(pred),
            None => pred,
        });
        self
    }

    /// Sorts by `key`, ascending (nulls first); later keys break ties.
    pub fn order_by(mut self, key: impl Into<Expr>) -> Query {
        self.order.push((key.into(), false));
        self
    }

    /// Sorts by `key`, descending (nulls last).
    pub fn order_by_desc(mut self, key: impl Into<Expr>) -> Query {
        self.order.push((key.into(), true));
        self
    }

    /// Returns at most `n` rows.
    pub fn limit(mut self, n: u64) -> Query {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Query {
        self.offset = n;
        self
    }

    fn udfs(&self) -> &Registry {
        &self.table.catalog.inner.udfs
    }

    fn plan(&self, tx: &Tx, at: Option<Version>) -> Result<Plan> {
        let mut meta = self.table.meta(tx)?;
        let mut pinned = self.table.pinned;
        let mut base_at = None;
        match (at, &meta.kind) {
            (Some(v), Kind::Table) => {
                meta.schema = tx.schema_at(meta.id, v)?;
                meta.version = v;
                pinned = Some(v);
            }
            // A view's stream is pinned to its base's version.
            (Some(v), Kind::View { .. }) => base_at = Some(v),
            _ => {}
        }
        let meta = meta;
        let schema = &meta.schema;
        let items = if self.items.is_empty() { all_columns(schema) } else { self.items.clone() };
        let seen = match base_at {
            Some(v) => Seen::BaseAt(v),
            None => Seen::Current(pinned),
        };
        // Each piece of the scan (outputs, filter, inputs, order keys) binds its own literals.
        let mut scan = Scan::new(tx, &meta, seen)?;
        let mut names: Vec<String> = Vec::with_capacity(items.len());
        let mut fetch_names = Vec::new();
        let mut fetch_types = Vec::new();
        let mut outputs = Vec::with_capacity(items.len());
        let mut inputs: Vec<String> = Vec::new();
        let mut sql_items = Vec::new();
        // What the store cannot compute is computed here: UDFs, and on a server what only
        // Tabula's SQL functions (registered on SQLite) compute as Tabula does.
        let server = tx.on_server();
        let in_rust = |e: &Expr, predicate: bool| {
            e.has_udf()
                || (server
                    && !if predicate { sql::portable_predicate(e, schema) } else { sql::portable_operand(e, schema) })
        };
        for item in &items {
            let name = item.output_name();
            if names.contains(&name) {
                return Err(err!(
                    InvalidArgument,
                    "two selected expressions are named '{name}'; give one an alias (`.alias(\"...\")`)"
                ));
            }
            let ty = item.check(schema)?.ty;
            if in_rust(item, false) {
                self.udfs().check_expr(item)?;
                inputs.extend(item.columns());
                outputs.push(Output::Eval(item.unaliased().clone(), ty));
            } else {
                outputs.push(Output::Fetched(sql_items.len()));
                sql_items.push(item);
                fetch_names.push(format!("\u{0}{}", sql_items.len()));
                fetch_types.push(ty);
            }
            names.push(name);
        }
        for item in sql_items {
            scan.fetch(&meta, item)?;
        }
        let mut rust_filter = None;
        if let Some(filter) = &self.filter {
            check_predicate(schema, filter)?;
            if in_rust(filter, true) {
                self.udfs().check_expr(filter)?;
                inputs.extend(filter.columns());
                rust_filter = Some(filter.clone());
            } else {
                scan.filter(&meta, filter)?;
            }
        }
        // A server sorts by what it computes as Tabula does; an order with any other key is
        // sorted here, every key evaluated here (UDF keys are refused on both backends).
        let mut rust_order = Vec::new();
        if server && self.order.iter().any(|(key, _)| !key.has_udf() && in_rust(key, false)) {
            for (key, desc) in &self.order {
                key.check(schema)?;
                if key.has_udf() {
                    return Err(err!(
                        InvalidArgument,
                        "order_by `{key}`: sorting by a UDF is not supported; add it as a computed column and sort by that"
                    ));
                }
                inputs.extend(key.columns());
                rust_order.push((key.clone(), *desc));
            }
        }
        for input in inputs {
            if !fetch_names.contains(&input) {
                let column = schema.column(&input).ok_or_else(|| err!(UnknownColumn, "no column '{input}'"))?;
                scan.fetch_column(&meta, &input);
                fetch_types.push(Some(column.ty));
                fetch_names.push(input);
            }
        }
        if scan.fetched() == 0 {
            scan.fetch_null();
            fetch_names.push("\u{0}none".into());
            fetch_types.push(None);
        }
        for (key, desc) in self.order.iter().filter(|_| rust_order.is_empty()) {
            key.check(schema)?;
            if in_rust(key, false) {
                let what = if key.has_udf() { "a UDF" } else { "an expression on a PostgreSQL catalog" };
                return Err(err!(
                    InvalidArgument,
                    "order_by `{key}`: sorting by {what} is not supported; add it as a computed column and sort by that"
                ));
            }
            scan.order_by(&meta, key, *desc)?;
        }
        Ok(Plan {
            names: names.into(),
            outputs,
            scan,
            fetch_names,
            fetch_types,
            rust_filter,
            rust_order,
            version: meta.version,
            epoch: meta.epoch,
            view_base: meta.root,
        })
    }

    fn run(&self, limit: Option<u64>) -> Result<Vec<Row>> {
        let table = &self.table;
        table
            .catalog
            .store()
            .read(|tx| {
                let plan = self.plan(tx, None)?;
                if !plan.rust_order.is_empty() {
                    return self.run_sorted_here(tx, &plan, limit);
                }
                // With a Rust filter, limit and offset apply after it.
                let pushed = plan.rust_filter.is_none();
                let (sql_limit, sql_offset) = if pushed { (limit, self.offset) } else { (None, 0) };
                let mut out = Vec::new();
                if plan.pure_sql() {
                    tx.scan_rows(&plan.scan, sql_limit, sql_offset, &plan.fetch_types, |values| {
                        out.push(Row::new(plan.names.clone(), values));
                        Ok(true)
                    })?;
                    return Ok(out);
                }
                let (mut skip, want) = if pushed { (0, None) } else { (self.offset, limit) };
                let mut batch = Vec::with_capacity(BATCH);
                let mut fetched = 0usize;
                // Rows a batch takes before the Rust filter runs on it: with a limit, no more
                // than the rows still wanted plus PREVIEW_SLACK, so a preview with a UDF filter
                // calls it on few more rows than it needs.
                let size = |skip: u64, have: usize| match want {
                    Some(w) => (skip + w.saturating_sub(have as u64) + PREVIEW_SLACK).min(BATCH as u64) as usize,
                    None => BATCH,
                };
                let target = std::cell::Cell::new(size(skip, 0));
                let mut flush =
                    |batch: &mut Vec<Vec<Value>>, out: &mut Vec<Row>, fetched: &mut usize| -> Result<bool> {
                        let n = batch.len();
                        let take = want.map(|w| w.saturating_sub(out.len() as u64));
                        let (rows, matched) = plan.finish(std::mem::take(batch), *fetched, self.udfs(), skip, take)?;
                        skip = skip.saturating_sub(matched);
                        out.extend(rows);
                        *fetched += n;
                        target.set(size(skip, out.len()));
                        Ok(want.is_none_or(|w| (out.len() as u64) < w))
                    };
                let mut more = true;
                tx.scan_rows(&plan.scan, sql_limit, sql_offset, &plan.fetch_types, |values| {
                    batch.push(values);
                    if batch.len() >= target.get() {
                        more = flush(&mut batch, &mut out, &mut fetched)?;
                    }
                    Ok(more)
                })?;
                if more {
                    flush(&mut batch, &mut out, &mut fetched)?;
                }
                Ok(out)
            })
            .map_err(|e| e.context(format_args!("select from '{}'", table.display_path())))
    }

    /// [`Query::run`] of a plan sorted here: every row the scan reads (in row order) that
    /// the Rust filter keeps, with its order keys evaluated here (a key that fails is null,
    /// as SQLite's functions make it), sorted as SQLite sorts (nulls first going up, last
    /// going down; ties in row order), then offset, limit and the outputs. The matching
    /// rows' fetched values are held, as the result is.
    fn run_sorted_here(&self, tx: &Tx, plan: &Plan, limit: Option<u64>) -> Result<Vec<Row>> {
        let udfs = self.udfs();
        let mut keyed: Vec<(Vec<Value>, Vec<Value>)> = Vec::new();
        let mut fetched = 0;
        let mut sort_batch = |batch: Vec<Vec<Value>>, keyed: &mut Vec<(Vec<Value>, Vec<Value>)>| -> Result<()> {
            let n = batch.len();
            let rows = plan.filter_rows(batch, fetched, udfs)?;
            fetched += n;
            keyed.extend(plan.order_keys(&rows, udfs)?.into_iter().zip(rows));
            Ok(())
        };
        let mut batch = Vec::with_capacity(BATCH);
        tx.scan_rows(&plan.scan, None, 0, &plan.fetch_types, |values| {
            batch.push(values);
            if batch.len() >= BATCH {
                sort_batch(std::mem::take(&mut batch), &mut keyed)?;
            }
            Ok(true)
        })?;
        sort_batch(batch, &mut keyed)?;
        keyed.sort_by(|(a, _), (b, _)| plan.compare_keys(a, b));
        let rows: Vec<Vec<Value>> = keyed.into_iter().map(|(_, row)| row).collect();
        Ok(plan.outputs_of(rows, 0, udfs, self.offset, limit)?.0)
    }

    /// The physical row ids of the query's rows in its order, after its offset, at most its
    /// limit, where the order has keys the server cannot compute with Tabula's meaning (see
    /// [`Query::run_sorted_here`]): the rows are read a page at a time, the Rust filter and
    /// the keys evaluated, and only each row's keys and id kept for the sort. What an
    /// ordered stream then reads by id.
    fn sorted_ids_here(&self, tx: &Tx, plan: &Plan) -> Result<Vec<i64>> {
        let udfs = self.udfs();
        let mut types = vec![Some(ColumnType::Int)];
        types.extend(&plan.fetch_types);
        let mut keyed: Vec<(Vec<Value>, i64)> = Vec::new();
        let (mut after, mut fetched) = (0, 0);
        loop {
            let mut page: Vec<Vec<Value>> = Vec::with_capacity(BATCH);
            tx.scan_after(&plan.scan, after, BATCH, &types, |mut values| {
                // The row id goes last, where the filter and keys, which read the fetched
                // columns by name, do not see it.
                let id = values.remove(0);
                values.push(id);
                page.push(values);
                Ok(true)
            })?;
            let Some(Value::Int(last)) = page.last().and_then(|row| row.last()).cloned() else { break };
            let n = page.len();
            let rows = plan.filter_rows(page, fetched, udfs)?;
            (after, fetched) = (last, fetched + n);
            for (keys, row) in plan.order_keys(&rows, udfs)?.into_iter().zip(&rows) {
                if let Some(Value::Int(id)) = row.last() {
                    keyed.push((keys, *id));
                }
            }
            if n < BATCH {
                break;
            }
        }
        keyed.sort_by(|(a, _), (b, _)| plan.compare_keys(a, b));
        let skip = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let take = self.limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(keyed.into_iter().skip(skip).take(take).map(|(_, id)| id).collect())
    }

    /// The path of the table (or view, or snapshot) this query reads.
    pub fn table_path(&self) -> String {
        self.table.display_path()
    }

    /// The columns this query returns, as a schema: each output's name and type, nullable
    /// where the expression can be null (a UDF's result always can: a failure is null).
    /// An output without a type (a bare null) is an error naming it.
    pub fn output_schema(&self) -> Result<Schema> {
        let schema = self.table.catalog.store().read(|tx| Ok(self.table.meta(tx)?.schema))?;
        let items = if self.items.is_empty() { all_columns(&schema) } else { self.items.clone() };
        let mut out = Schema::new();
        for item in &items {
            let t = item.check(&schema)?;
            let name = item.output_name();
            let Some(ty) = t.ty else {
                return Err(err!(
                    InvalidExpr,
                    "the output '{name}' has no type (it is always null); cast it or leave it out"
                ));
            };
            out = if t.nullable || item.has_udf() { out.nullable(name, ty) } else { out.required(name, ty) };
        }
        Ok(out)
    }

    /// Every matching row.
    pub fn collect(&self) -> Result<Vec<Row>> {
        self.run(self.limit)
    }

    /// Every matching row, deserialized into `T` (field names match output column names).
    pub fn collect_as<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.collect()?
            .iter()
            .enumerate()
            .map(|(i, row)| {
                serde_json::from_value(row.to_json()).map_err(|e| {
                    err!(
                        Serde,
                        "select from '{}': row {i} ({row}) does not deserialize: {e}",
                        self.table.display_path()
                    )
                })
            })
            .collect()
    }

    /// The first `n` matching rows: a preview that writes nothing and computes UDF outputs
    /// only for those rows. A UDF filter runs on the rows needed to find them plus at most
    /// 16 more.
    pub fn head(&self, n: u64) -> Result<Vec<Row>> {
        self.run(Some(self.limit.map_or(n, |l| l.min(n))))
    }

    /// The first matching row, if any.
    pub fn first(&self) -> Result<Option<Row>> {
        Ok(self.head(1)?.into_iter().next())
    }

    /// The number of matching rows (after limit and offset).
    pub fn count(&self) -> Result<u64> {
        let table = &self.table;
        let counted = table
            .catalog
            .store()
            .read(|tx| {
                let plan = self.plan(tx, None)?;
                match plan.rust_filter {
                    Some(_) => Ok(None),
                    None => tx.scan_count(&plan.scan, self.limit, self.offset).map(Some),
                }
            })
            .map_err(|e| e.context(format_args!("count '{}'", table.display_path())))?;
        if let Some(n) = counted {
            return Ok(n);
        }
        // The filter runs in Rust (a UDF, or what a server cannot run as Tabula does): count
        // the rows of a stream, a batch at a time.
        let mut n = 0;
        for row in self.clone_with_items(vec![crate::expr::lit(1)]).stream()? {
            row?;
            n += 1;
        }
        Ok(n)
    }

    fn clone_with_items(&self, items: Vec<Expr>) -> Query {
        Query { items, ..self.clone() }
    }

    /// The matching rows as an iterator that reads them in batches of 1024, so the table is
    /// never held in memory (an ordered stream keeps only the sorted row ids, 8 bytes a row).
    /// The stream reads the version that was current when it started (a view: its base's
    /// version), whatever is written meanwhile; if the table (or a view's base) is reverted
    /// past that version, the next batch is an error.
    pub fn stream(&self) -> Result<RowStream> {
        let (version, epoch, base, order_ids, rust_filter, sorted_here) = self.table.catalog.store().read(|tx| {
            let plan = self.plan(tx, None)?;
            // A view's stream reads its base as of now, whatever is written meanwhile.
            let (version, base) = match plan.view_base {
                Some(id) => {
                    let base = tx.load_table(id, self.table.path())?;
                    (base.version, Some((id, base.epoch)))
                }
                None => (plan.version, None),
            };
            let pushed = plan.rust_filter.is_none();
            if !plan.rust_order.is_empty() {
                // Keys the server cannot compute (SQLite computes them all): sorted here,
                // the Rust filter, offset and limit applied to the ids.
                return Ok((version, plan.epoch, base, Some(self.sorted_ids_here(tx, &plan)?), false, true));
            }
            let ids = if plan.scan.is_ordered() {
                let (limit, offset) = if pushed { (self.limit, self.offset) } else { (None, 0) };
                Some(tx.scan_ordered_ids(&plan.scan, limit, offset)?)
            } else {
                None
            };
            Ok((version, plan.epoch, base, ids, !pushed, false))
        })?;
        // Limit and offset are already applied to the ordered ids, unless a Rust filter must
        // see the rows first.
        let (skip, limit) = if order_ids.is_some() && !rust_filter { (0, None) } else { (self.offset, self.limit) };
        Ok(RowStream {
            query: self.clone(),
            version,
            epoch,
            base,
            order_ids,
            sorted_here,
            position: 0,
            last_rowid: 0,
            fetched: 0,
            skip,
            limit,
            emitted: 0,
            buffer: VecDeque::new(),
            done: false,
        })
    }
}

/// An iterator over the rows of a query, read in batches; see [`Query::stream`].
pub struct RowStream {
    query: Query,
    /// The version read: the table's, or a view's base's.
    version: Version,
    epoch: i64,
    /// A view's base and its epoch when the stream started.
    base: Option<(crate::types::TableId, i64)>,
    order_ids: Option<Vec<i64>>,
    /// The ids were sorted by Tabula, its filter already applied to their rows.
    sorted_here: bool,
    position: usize,
    last_rowid: i64,
    fetched: usize,
    skip: u64,
    limit: Option<u64>,
    emitted: u64,
    buffer: VecDeque<Row>,
    done: bool,
}

impl RowStream {
    fn fetch(&mut self) -> Result<()> {
        let q = &self.query;
        let (version, epoch, base, skip) = (self.version, self.epoch, self.base, self.skip);
        let (batch, matched) = q.table.catalog.store().read(|tx| {
            // A revert since the stream started may have removed the version it reads.
            let base_reverted = match base {
                Some((id, base_epoch)) => tx.load_table(id, q.table.path())?.epoch != base_epoch,
                None => false,
            };
            if q.table.meta(tx)?.epoch != epoch || base_reverted {
                return Err(err!(
                    Conflict,
                    "table '{}' was reverted while this stream was reading it; start the query again",
                    q.table.display_path()
                ));
            }
            let plan = q.plan(tx, Some(version))?;
            let mut types = vec![Some(ColumnType::Int)];
            types.extend(&plan.fetch_types);
            let mut rows: Vec<(i64, Vec<Value>)> = Vec::with_capacity(BATCH);
            let mut collect = |mut values: Vec<Value>| {
                if let Value::Int(id) = values.remove(0) {
                    rows.push((id, values));
                }
                Ok(true)
            };
            let fetched = match &self.order_ids {
                Some(ids) => {
                    let end = (self.position + BATCH).min(ids.len());
                    let wanted = &ids[self.position..end];
                    self.position = end;
                    if !wanted.is_empty() {
                        tx.scan_ids(&plan.scan, wanted, &types, &mut collect)?;
                        let mut by_id: std::collections::HashMap<i64, Vec<Value>> = rows.drain(..).collect();
                        rows.extend(wanted.iter().filter_map(|id| by_id.remove(id).map(|v| (*id, v))));
                    }
                    self.done = self.position >= ids.len();
                    wanted.len()
                }
                None => {
                    tx.scan_after(&plan.scan, self.last_rowid, BATCH, &types, &mut collect)?;
                    if let Some((id, _)) = rows.last() {
                        self.last_rowid = *id;
                    }
                    self.done = rows.len() < BATCH;
                    rows.len()
                }
            };
            let first = self.fetched;
            self.fetched += fetched;
            let rows = rows.into_iter().map(|(_, v)| v).collect();
            match self.sorted_here {
                true => plan.outputs_of(rows, first, q.udfs(), skip, None),
                false => plan.finish(rows, first, q.udfs(), skip, None),
            }
        })?;
        self.skip = self.skip.saturating_sub(matched);
        self.buffer.extend(batch);
        Ok(())
    }
}

impl Iterator for RowStream {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        if self.limit.is_some_and(|l| self.emitted >= l) {
            return None;
        }
        while self.buffer.is_empty() && !self.done {
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
        }
        let row = self.buffer.pop_front()?;
        self.emitted += 1;
        Some(Ok(row))
    }
}
