//! Schema changes of a table: computed columns (add, replace, ignore-if-same), plain columns,
//! drop and rename. Each is one transaction and one new version.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::catalog::{rows_writable, IfExists, Table, WriteResult};
use crate::change::Change;
use crate::change::ChangeKind;
use crate::compute::{fill_added, recompute_view, Budget};
use crate::error::{err, Result};
use crate::expr::Expr;
use crate::schema::{ColumnDef, Computed, FailureBudget, OnError};
use crate::store::{Kind, TableMeta, Tx, VIEW_COLUMN_IDS};
use crate::store::{Scope, ViewRows};
use crate::types::{ColumnId, ColumnType, Value};
use crate::udf::Udf;

/// How [`Table::alter_column`] changes a stored column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alter {
    /// It may be null from now on.
    Nullable,
    /// It must have a value from now on (refused while a row has none).
    Required,
    /// An Int column becomes Float (refused while computed columns or views read it).
    ToFloat,
}

/// What adding a computed column would take: see [`Table::estimate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The table's rows.
    pub rows: u64,
    /// The UDF calls the rows would make (none for a row with a null argument or a
    /// remembered result).
    pub calls: u64,
    /// The UDF's mean time a call so far; `None` before its first call.
    pub per_call: Option<Duration>,
    /// Its calls in flight at most.
    pub in_flight: usize,
    /// Its rate limit, in calls a second.
    pub per_second: Option<f64>,
    /// The time the calls would take; `None` before the UDF's first call.
    pub time: Option<Duration>,
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rows, {} calls", self.rows, self.calls)?;
        if self.calls == 0 {
            return Ok(());
        }
        match (self.per_call, self.time) {
            (Some(per_call), Some(time)) => write!(
                f,
                " (~{:.1} ms a call, {} in flight{}): about {:.1} s",
                per_call.as_secs_f64() * 1000.0,
                self.in_flight,
                self.per_second.map(|r| format!(", at most {r} a second")).unwrap_or_default(),
                time.as_secs_f64()
            ),
            _ => write!(f, " (time unknown: preview a few rows first)"),
        }
    }
}

/// Options of [`Table::add_computed_column`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColumnOptions {
    /// What to do when the column exists: `Error` (default), `Ignore` (a no-op when the
    /// stored expression is the same, an error showing both when not), `Replace` (one new
    /// version, every row recomputed; a no-op, with no version and no UDF call, when the
    /// stored definition is already the requested one, so a migration step that replaces is
    /// idempotent as written).
    pub if_exists: IfExists,
    /// What to do with rows where the expression fails.
    pub on_error: OnError,
    /// Under `OnError::Ignore`: how many rows may fail before the add gives up, storing
    /// nothing (it stops calling the UDF as soon as the budget is spent). `None`: any.
    pub max_failures: Option<FailureBudget>,
}

impl ColumnOptions {
    /// `ColumnOptions { if_exists, ..Default::default() }`.
    pub fn if_exists(if_exists: IfExists) -> ColumnOptions {
        ColumnOptions { if_exists, ..ColumnOptions::default() }
    }
}

impl Table {
    /// Adds a column computed by `expr` over the other columns: computed now for every row
    /// (in one transaction), and for every row inserted or updated later.
    ///
    /// ```
    /// # use tabula::*;
    /// # let cat = Catalog::in_memory().unwrap();
    /// # let docs = cat.create_table("docs", Schema::new().required("text", ColumnType::String), IfExists::Error).unwrap();
    /// docs.insert([row! {"text" => "Hello world"}])?;
    /// docs.add_computed_column("words", col("text").split(" ").cast(ColumnType::String).length(), ColumnOptions::default())?;
    /// // Running the same setup again is a no-op:
    /// let again = docs.add_computed_column(
    ///     "words",
    ///     col("text").split(" ").cast(ColumnType::String).length(),
    ///     ColumnOptions::if_exists(IfExists::Ignore),
    /// )?;
    /// assert_eq!(again.version.0, 2);
    /// # Ok::<(), tabula::Error>(())
    /// ```
    pub fn add_computed_column(&self, name: &str, expr: Expr, options: ColumnOptions) -> Result<WriteResult> {
        let expr = expr.unaliased().clone();
        let udfs = &self.catalog.inner.udfs;
        // Abort stops at the first failure, a budget past its allowance.
        let stop_after = match (options.on_error, options.max_failures) {
            (OnError::Abort, _) => Some(0),
            (OnError::Ignore, Some(budget)) => Some(budget.allowed(self.count()?)),
            (OnError::Ignore, None) => None,
        };
        udfs.begin_session();
        let done =
            self.warm(name, &expr, None, stop_after).and_then(|()| self.add_computed_column_now(name, expr, options));
        udfs.end_session();
        done
    }

    fn add_computed_column_now(&self, name: &str, expr: Expr, options: ColumnOptions) -> Result<WriteResult> {
        let udfs = &self.catalog.inner.udfs;
        self.write(|tx, meta, _| {
            let existing = meta.schema.column(name).cloned();
            if let Some(old) = &existing {
                match options.if_exists {
                    IfExists::Error => {
                        return Err(err!(
                            AlreadyExists,
                            "column '{name}' already exists (use IfExists::Ignore to keep it or IfExists::Replace to recompute it)"
                        ))
                    }
                    IfExists::Ignore => {
                        return match &old.computed {
                            Some(c) if c.expr == expr && c.on_error == options.on_error => Ok(None),
                            Some(c) => Err(err!(
                                AlreadyExists,
                                "computed column '{name}' exists with another definition; IfExists::Ignore keeps it only when it is the same\n  stored:    {} (on error: {:?})\n  requested: {expr} (on error: {:?})\n(use IfExists::Replace to recompute it with the new expression)",
                                c.expr,
                                c.on_error,
                                options.on_error
                            )),
                            None => Err(err!(
                                AlreadyExists,
                                "column '{name}' exists as a stored column, not a computed one; choose another name, or use IfExists::Replace to replace it with the computed column (a revert brings its stored values back)"
                            )),
                        };
                    }
                    // Replacing a column with its own definition recomputes nothing and makes
                    // no version: a migration step that replaces is idempotent as written,
                    // and an expensive UDF is not called again for the same values.
                    IfExists::Replace | IfExists::ReplaceForce => {
                        if old.computed.as_ref().is_some_and(|c| c.expr == expr && c.on_error == options.on_error) {
                            return Ok(None);
                        }
                        not_key(meta, name, "replaced by a computed column")?;
                    }
                }
            } else {
                meta.schema.check_new_name(name)?;
            }
            // The expression reads the table as it is without this column.
            let mut without = meta.schema.clone();
            without.columns.retain(|c| c.name != name);
            let t = expr.check(&without).map_err(|e| {
                if existing.is_some() && expr.columns().contains(name) {
                    err!(InvalidExpr, "computed column '{name}' cannot read itself (`{expr}`)")
                } else {
                    e
                }
            })?;
            let Some(ty) = t.ty else {
                return Err(err!(InvalidExpr, "the type of `{expr}` is unknown (a bare null); cast it, e.g. `lit(Value::Null).cast(ColumnType::String)`"));
            };
            udfs.check_expr(&expr)?;
            no_stored_view_reads(meta, &expr, &format!("computed column '{name}'"))?;
            if existing.is_some() {
                let depends_on_me: BTreeSet<String> = meta.schema.downstream_of(&BTreeSet::from([name.to_string()])).iter().map(|c| c.name.clone()).collect();
                if let Some(cycle) = expr.columns().iter().find(|c| depends_on_me.contains(*c)) {
                    return Err(err!(InvalidExpr, "computed column '{name}' would read '{cycle}', which itself depends on '{name}' (a cycle)"));
                }
            }
            let column = ColumnDef {
                id: next_column_id(meta),
                name: name.to_string(),
                ty,
                nullable: t.nullable || expr.has_udf() || options.on_error == OnError::Ignore,
                computed: Some(Computed { expr: expr.clone(), on_error: options.on_error }),
                default: None,
            };
            tx.add_physical_column(meta, &column)?;
            let is_view = matches!(meta.kind, Kind::View { .. });
            if existing.is_some() {
                let readers = view_readers(tx, meta, &BTreeSet::from([name.to_string()]))?;
                if !readers.is_empty() {
                    return Err(err!(
                        HasDependents,
                        "computed column '{name}' is read by view(s) {}; drop them before replacing it",
                        readers.join(", ")
                    ));
                }
            }
            match meta.schema.position(name) {
                Some(at) => {
                    meta.schema.columns[at] = column.clone();
                    // Columns that read this one are recomputed into new columns too, so the
                    // old values stay for a revert; they must type-check against its new type.
                    let downstream: Vec<String> = meta
                        .schema
                        .downstream_of(&BTreeSet::from([name.to_string()]))
                        .iter()
                        .map(|c| c.name.clone())
                        .collect();
                    for dep in downstream {
                        let Some(at) = meta.schema.position(&dep) else { continue };
                        if let Some(c) = &meta.schema.columns[at].computed {
                            c.expr.check(&meta.schema).map_err(|e| {
                                e.context(format_args!("replacing '{name}' breaks computed column '{dep}'"))
                            })?;
                        }
                        let mut fresh = meta.schema.columns[at].clone();
                        fresh.id = next_column_id(meta);
                        tx.add_physical_column(meta, &fresh)?;
                        meta.schema.columns[at] = fresh;
                    }
                }
                None => meta.schema.columns.push(column.clone()),
            }
            let mut todo = vec![&column];
            let downstream = meta.schema.downstream_of(&BTreeSet::from([name.to_string()]));
            todo.extend(downstream.iter().copied());
            if is_view {
                recompute_view(tx, meta, &todo, ViewRows::Live, udfs)?;
            } else {
                let budget = match options.max_failures {
                    Some(budget) if options.on_error == OnError::Ignore => {
                        let total = tx.count_before(meta, Scope::Live, i64::MAX)? as u64;
                        Some(Budget { column: name.to_string(), allowed: budget.allowed(total), total, budget })
                    }
                    _ => None,
                };
                let todo: Vec<ColumnDef> = todo.into_iter().cloned().collect();
                fill_added(tx, meta, &todo, udfs, budget.as_ref())?;
            }
            // A stored column's values are gone from this version on (a revert brings them
            // back): a replace of data, which migration checks flag, not a recompute.
            Ok(Some(match existing {
                Some(old) if !old.is_computed() => Change::schema(
                    ChangeKind::ReplaceColumn,
                    format!("replace stored column {name} with computed column {name} = {expr}"),
                ),
                Some(_) => Change::schema(
                    ChangeKind::ReplaceComputedColumn,
                    format!("replace computed column {name} = {expr}"),
                ),
                None => Change::schema(ChangeKind::AddComputedColumn, format!("add computed column {name} = {expr}")),
            }))
        })
    }

    /// What adding a column computed by `expr` would take, before paying for it: the rows,
    /// the calls of its UDF (rows with a null argument make none; remembered results make
    /// none), and the time those calls would take, from the UDF's measured time a call (a
    /// preview measures it), the calls in flight and its rate limit.
    ///
    /// ```
    /// # use tabula::{col, row, Catalog, ColumnType, IfExists, Schema, Udf};
    /// # let cat = Catalog::in_memory()?;
    /// # let t = cat.create_table("t", Schema::new().required("n", ColumnType::Int), IfExists::Error)?;
    /// # t.insert((0..100).map(|n| row! {"n" => n}))?;
    /// let model = Udf::new("model", 1, |n: i64| n * 2).concurrency(8);
    /// cat.register(&model);
    /// t.select([model.call([col("n")])]).head(3)?; // try it: 3 calls, timed and remembered
    /// let estimate = t.estimate(&model.call([col("n")]))?;
    /// assert_eq!((estimate.rows, estimate.calls), (100, 97));
    /// println!("{estimate}"); // 100 rows, 97 calls (~.. a call, 8 in flight): about .. s
    /// # Ok::<(), tabula::Error>(())
    /// ```
    pub fn estimate(&self, expr: &Expr) -> Result<Estimate> {
        let udfs = &self.catalog.inner.udfs;
        let rows = self.count()?;
        let mut calls = None;
        let mut udf = None;
        let mut found: Option<Expr> = None;
        expr.visit(&mut |e| {
            if found.is_none() && matches!(e, Expr::Udf { .. }) {
                found = Some(e.clone());
            }
        });
        if let Some(Expr::Udf { name, version, params, returns, args }) = found {
            let resolved = udfs.resolve(&name, version, &params, returns)?;
            let mut needed = 0;
            let mut batch = Vec::with_capacity(crate::compute::BATCH);
            for row in self.select(args).stream()? {
                batch.push(row?.into_values());
                if batch.len() == crate::compute::BATCH {
                    needed += udfs.calls_needed(&resolved, &batch);
                    batch.clear();
                }
            }
            needed += udfs.calls_needed(&resolved, &batch);
            calls = Some(needed);
            udf = Some(resolved);
        }
        let calls = calls.unwrap_or(0);
        let per_call = udf.as_ref().and_then(Udf::mean_call_time);
        let in_flight = udf.as_ref().map_or(1, Udf::max_in_flight);
        let per_second = udf.as_ref().and_then(Udf::calls_per_second);
        let time = per_call.map(|t| {
            let working = t.mul_f64(calls as f64 / in_flight as f64);
            let limited = per_second.map_or(Duration::ZERO, |r| Duration::from_secs_f64(calls as f64 / r));
            working.max(limited)
        });
        Ok(Estimate { rows, calls, per_call, in_flight, per_second, time })
    }

    /// Pays for the calls of an expensive UDF in `expr` (one that remembers its results)
    /// before the write that stores them takes the catalog's write lock: the rows of the
    /// current version (where `only` holds) are read a batch at a time, each batch in a
    /// short read, and the UDF is called outside any transaction, its results remembered.
    /// The write that follows finds them all and holds the lock only to store them (rows
    /// written meanwhile it computes itself), so other writers wait for that, not for the
    /// calls. Best effort: anything that stops it leaves the rest to the write.
    pub(crate) fn warm(&self, column: &str, expr: &Expr, only: Option<Expr>, stop_after: Option<u64>) -> Result<()> {
        let udfs = &self.catalog.inner.udfs;
        if self.pinned.is_some() || !udfs.remembers_any(expr) {
            return Ok(());
        }
        let schema = self.schema()?;
        if schema.columns.iter().any(|c| c.id.0 >= VIEW_COLUMN_IDS) || self.kind()? != crate::catalog::TableKind::Table
        {
            return Ok(());
        }
        let reads: Vec<String> = expr.columns().into_iter().filter(|c| schema.column(c).is_some()).collect();
        if reads.len() != expr.columns().len() {
            return Ok(()); // the write will say what is wrong
        }
        // Rows where a column it reads failed inherit that failure: no call for them.
        let failing: Vec<String> = schema.failing_inputs(expr).iter().map(|c| c.name.clone()).collect();
        let mut items: Vec<Expr> = reads.iter().map(|c| crate::expr::col(c.as_str())).collect();
        items.extend(failing.iter().map(|c| crate::expr::col(c.as_str()).errortype()));
        let mut query = self.select(items);
        if let Some(only) = only {
            query = query.where_(only);
        }
        let Ok(total) = query.count() else { return Ok(()) };
        let Ok(stream) = query.stream() else { return Ok(()) };
        let mut batch: Vec<Vec<Value>> = Vec::with_capacity(crate::compute::BATCH);
        let mut progress = crate::udf::Progress {
            table: self.display_path(),
            column: column.to_string(),
            done: 0,
            total,
            failed: 0,
            elapsed: std::time::Duration::ZERO,
        };
        let (started, mut own_failures) = (std::time::Instant::now(), 0u64);
        // Whether to go on: the batch evaluated, and failures within `stop_after`.
        let mut run = |batch: &mut Vec<Vec<Value>>, skipped: u64| -> bool {
            let cells = crate::eval::eval(expr, &crate::eval::Batch { names: &reads, rows: batch }, udfs);
            progress.done += batch.len() as u64 + skipped;
            batch.clear();
            let Ok(cells) = cells else { return false };
            let own = cells.iter().filter(|c| c.is_err()).count() as u64;
            own_failures += own;
            progress.failed += own + skipped;
            progress.elapsed = started.elapsed();
            udfs.report(&progress);
            stop_after.is_none_or(|most| own_failures <= most)
        };
        let mut skipped = 0;
        for row in stream {
            let Ok(row) = row else { return Ok(()) };
            let mut values = row.into_values();
            let failed = values.split_off(reads.len());
            if failed.iter().any(|e| !e.is_null()) {
                skipped += 1; // an inherited failure
                continue;
            }
            batch.push(values);
            if batch.len() == crate::compute::BATCH && !run(&mut batch, std::mem::take(&mut skipped)) {
                return Ok(());
            }
        }
        if !batch.is_empty() || skipped > 0 {
            run(&mut batch, skipped);
        }
        Ok(())
    }

    /// Adds a stored column. A null `default` makes it nullable; any other value fills
    /// every existing row, is given to new rows that leave the column out, and makes the
    /// column required (an explicit null is refused).
    pub fn add_column(
        &self,
        name: &str,
        ty: ColumnType,
        default: impl Into<Value>,
        if_exists: IfExists,
    ) -> Result<WriteResult> {
        let default =
            default.into().coerce_to(ty).map_err(|why| err!(TypeMismatch, "add column '{name}': default {why}"))?;
        self.write(|tx, meta, _| {
            stored_writable(meta, name, &default)?;
            let nullable = default.is_null();
            let mut replaced = false;
            if let Some(old) = meta.schema.column(name).cloned() {
                let same = !old.is_computed() && old.ty == ty && old.nullable == nullable;
                match if_exists {
                    IfExists::Ignore if same => return Ok(None),
                    IfExists::Error | IfExists::Ignore => {
                        return Err(err!(
                            AlreadyExists,
                            "column '{name}' already exists as {}{}{}; requested {ty}{}",
                            old.ty,
                            if old.nullable { "?" } else { "" },
                            if old.is_computed() { " (computed)" } else { "" },
                            if nullable { "?" } else { "" }
                        ))
                    }
                    IfExists::Replace | IfExists::ReplaceForce => {
                        own_column(meta, name)?;
                        not_key(meta, name, "replaced")?;
                        let deps = meta.schema.dependents_of(name);
                        if !deps.is_empty() {
                            return Err(err!(
                                HasDependents,
                                "column '{name}' cannot be replaced: computed columns {} read it",
                                deps.join(", ")
                            ));
                        }
                        meta.schema.columns.retain(|c| c.name != name);
                        replaced = true;
                    }
                }
            } else {
                meta.schema.check_new_name(name)?;
            }
            let what = add_stored(tx, meta, name, ty, &default)?;
            let (kind, verb) =
                if replaced { (ChangeKind::ReplaceColumn, "replace") } else { (ChangeKind::AddColumn, "add") };
            Ok(Some(Change::schema(kind, format!("{verb} column {name} {what}"))))
        })
    }

    /// Adds several stored columns in one version, each as [`add_column`](Self::add_column)
    /// with `IfExists::Error` would: `(name, type, default)`, a null default making it
    /// nullable. Nothing is added if any of them cannot be.
    pub fn add_columns<N: Into<String>, V: Into<Value>>(
        &self,
        columns: impl IntoIterator<Item = (N, ColumnType, V)>,
    ) -> Result<WriteResult> {
        let mut wanted = Vec::new();
        for (name, ty, default) in columns {
            let name = name.into();
            let default =
                default.into().coerce_to(ty).map_err(|why| err!(TypeMismatch, "add column '{name}': default {why}"))?;
            wanted.push((name, ty, default));
        }
        self.write(|tx, meta, _| {
            let mut added = Vec::new();
            for (name, ty, default) in &wanted {
                stored_writable(meta, name, default)?;
                if meta.schema.column(name).is_some() {
                    return Err(err!(AlreadyExists, "column '{name}' already exists; nothing was added"));
                }
                meta.schema.check_new_name(name)?;
                added.push(format!("{name} {}", add_stored(tx, meta, name, *ty, default)?));
            }
            if added.is_empty() {
                return Ok(None);
            }
            Ok(Some(Change::schema(ChangeKind::AddColumn, format!("add columns {}", added.join(", ")))))
        })
    }

    /// Changes a stored column in place, as one version (a revert undoes it): see [`Alter`].
    pub fn alter_column(&self, name: &str, alter: Alter) -> Result<WriteResult> {
        self.write(|tx, meta, _| {
            rows_writable(meta)?;
            require_column(meta, name)?;
            let at = meta.schema.position(name).ok_or_else(|| err!(UnknownColumn, "no column '{name}'"))?;
            let old = meta.schema.columns[at].clone();
            if old.is_computed() {
                return Err(err!(
                    InvalidArgument,
                    "alter column '{name}': it is computed; replace it (IfExists::Replace) to change it"
                ));
            }
            if matches!(alter, Alter::Nullable | Alter::ToFloat) {
                not_key(meta, name, "made nullable or Float")?;
            }
            let mut new = old.clone();
            match alter {
                Alter::Nullable if old.nullable => return Ok(None),
                Alter::Nullable => new.nullable = true,
                Alter::Required if !old.nullable => return Ok(None),
                Alter::Required => {
                    let nulls = tx.live_nulls(meta, &old)?;
                    if nulls > 0 {
                        return Err(err!(
                            NotNull,
                            "alter column '{name}': {nulls} row(s) have no value; fill them (update) before making it required"
                        ));
                    }
                    new.nullable = false;
                }
                Alter::ToFloat if old.ty == ColumnType::Float => return Ok(None),
                Alter::ToFloat => {
                    if old.ty != ColumnType::Int {
                        return Err(err!(
                            TypeMismatch,
                            "alter column '{name}': {} cannot widen to Float; only Int can (add a computed column with cast() instead)",
                            old.ty
                        ));
                    }
                    let mut readers = meta.schema.dependents_of(name);
                    readers.extend(view_readers(tx, meta, &BTreeSet::from([name.to_string()]))?);
                    if !readers.is_empty() {
                        return Err(err!(
                            HasDependents,
                            "alter column '{name}': {} read it and would change type; drop them first, widen, then add them again",
                            readers.join(", ")
                        ));
                    }
                    // A REAL column of its own: an INTEGER one would store 3.0 as 3, and SQL
                    // would divide it as an integer. Older versions keep reading the old one.
                    new.ty = ColumnType::Float;
                    new.id = next_column_id(meta);
                    new.default = old.default.clone().map(|d| d.coerce_to(ColumnType::Float)).transpose().map_err(|why| err!(TypeMismatch, "alter column '{name}': default {why}"))?;
                    tx.add_physical_column(meta, &new)?;
                    tx.copy_live_as_real(meta, &old, &new)?;
                }
            }
            meta.schema.columns[at] = new;
            let what = match alter {
                Alter::Nullable => "nullable",
                Alter::Required => "required",
                Alter::ToFloat => "Float",
            };
            Ok(Some(Change::schema(ChangeKind::AlterColumn, format!("alter column {name} to {what}"))))
        })
    }

    /// Drops a column (metadata only, so reverting it is instant). Refused while computed
    /// columns read it; the error names them.
    pub fn drop_column(&self, name: &str) -> Result<WriteResult> {
        self.drop_column_inner(name, false)
    }

    /// Drops the column if the table has it, as [`drop_column`](Self::drop_column) does;
    /// without it, makes no version (`WriteResult::change` is `None`).
    pub fn drop_column_if_exists(&self, name: &str) -> Result<WriteResult> {
        self.drop_column_inner(name, true)
    }

    fn drop_column_inner(&self, name: &str, missing_ok: bool) -> Result<WriteResult> {
        self.write(|tx, meta, _| {
            if missing_ok && meta.schema.column(name).is_none() {
                return Ok(None);
            }
            require_column(meta, name)?;
            own_column(meta, name)?;
            not_key(meta, name, "dropped")?;
            let readers = view_readers(tx, meta, &BTreeSet::from([name.to_string()]))?;
            if !readers.is_empty() {
                return Err(err!(
                    HasDependents,
                    "column '{name}' is read by view(s) {}; drop them first",
                    readers.join(", ")
                ));
            }
            let deps = meta.schema.dependents_of(name);
            if !deps.is_empty() {
                return Err(err!(
                    HasDependents,
                    "column '{name}' is read by computed column(s) {}; drop or replace those first",
                    deps.join(", ")
                ));
            }
            meta.schema.columns.retain(|c| c.name != name);
            Ok(Some(Change::schema(ChangeKind::DropColumn, format!("drop column {name}"))))
        })
    }

    /// Renames a column; computed columns that read it are rewritten to the new name.
    pub fn rename_column(&self, from: &str, to: &str) -> Result<WriteResult> {
        self.write(|tx, meta, _| {
            require_column(meta, from)?;
            own_column(meta, from)?;
            let readers = view_readers(tx, meta, &BTreeSet::from([from.to_string()]))?;
            if !readers.is_empty() {
                return Err(err!(
                    HasDependents,
                    "column '{from}' is read by view(s) {}; drop them before renaming it",
                    readers.join(", ")
                ));
            }
            if from != to {
                let mut without = meta.schema.clone();
                without.columns.retain(|c| c.name != from);
                without.check_new_name(to)?;
            }
            let rename = |n: &str| (n == from).then(|| to.to_string());
            for c in &mut meta.schema.columns {
                if c.name == from {
                    c.name = to.to_string();
                }
                if let Some(comp) = &mut c.computed {
                    comp.expr = comp.expr.rename_columns(&rename);
                }
            }
            Ok(Some(Change::schema(ChangeKind::RenameColumn, format!("rename column {from} to {to}"))))
        })
    }
}

/// The views reading `meta`'s table (directly or through other views) whose filter or own
/// computed columns read any of `columns`.
fn view_readers(tx: &Tx, meta: &TableMeta, columns: &BTreeSet<String>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (id, path) in tx.descendants(meta.id)? {
        let view = tx.load_table(id, &path)?;
        let Kind::View { filter, .. } = &view.kind else { continue };
        let mut reads = filter.columns();
        for c in view.own_columns() {
            if let Some(comp) = &c.computed {
                reads.extend(comp.expr.columns());
            }
        }
        if reads.iter().any(|r| columns.contains(r)) {
            out.push(format!("'{path}'"));
        }
    }
    Ok(out)
}

/// Adds stored column `name` (its physical column, its default in every live row): says
/// what it added (`Int?`, `String = "x"`).
fn add_stored(tx: &Tx, meta: &mut TableMeta, name: &str, ty: ColumnType, default: &Value) -> Result<String> {
    let nullable = default.is_null();
    let column = ColumnDef {
        id: next_column_id(meta),
        name: name.to_string(),
        ty,
        nullable,
        computed: None,
        default: (!nullable).then(|| default.clone()),
    };
    if let Kind::View { .. } = meta.kind {
        tx.add_view_stored_column(meta, &column)?;
    } else {
        tx.add_physical_column(meta, &column)?;
    }
    if !nullable {
        tx.fill_live(meta, &column, default)?;
    }
    meta.schema.columns.push(column);
    Ok(if nullable { format!("{ty}?") } else { format!("{ty} = {default}") })
}

fn require_column(meta: &TableMeta, name: &str) -> Result<()> {
    if meta.schema.column(name).is_none() {
        return Err(err!(UnknownColumn, "no column '{name}' (the columns are: {})", meta.schema.names().join(", ")));
    }
    Ok(())
}

/// Refuses a stored column `name` (with `default`) where it cannot be added: a snapshot; a
/// view takes only nullable ones (its stored values are set by `update` on it).
fn stored_writable(meta: &TableMeta, name: &str, default: &Value) -> Result<()> {
    match meta.kind {
        Kind::View { .. } if !default.is_null() => Err(err!(
            InvalidArgument,
            "view '{}': a view's own stored column starts null in every row; add '{name}' without a default (null) and set it with update, or read it with coalesce",
            meta.path
        )),
        Kind::View { .. } | Kind::Table => Ok(()),
        Kind::Snapshot { .. } => rows_writable(meta),
    }
}

/// Refuses an expression of view `meta` (a computed column's, or the filter of a view of
/// it) that reads a stored column of a view: those values change by `update` on the view,
/// which recomputes nothing.
pub(crate) fn no_stored_view_reads(meta: &TableMeta, expr: &Expr, what: &str) -> Result<()> {
    if !matches!(meta.kind, Kind::View { .. }) {
        return Ok(());
    }
    for name in expr.columns() {
        if let Some(c) = meta.schema.column(&name) {
            if crate::store::column_level(c.id) > 0 && !c.is_computed() {
                return Err(err!(
                    InvalidExpr,
                    "{what} reads '{name}', a stored column of a view; views compute nothing when such a column is updated, so only queries may read it"
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a change of column `name` by a view that only reads it (it is its base's).
fn own_column(meta: &TableMeta, name: &str) -> Result<()> {
    match &meta.kind {
        Kind::View { .. } if !meta.own_columns().iter().any(|c| c.name == name) => Err(err!(
            ReadOnly,
            "column '{name}' of view '{}' is read from the table or view it is made of; change it there",
            meta.path
        )),
        Kind::View { .. } | Kind::Table => Ok(()),
        Kind::Snapshot { .. } => rows_writable(meta),
    }
}

/// Refuses a change that would break the primary key, which a column of it cannot undergo.
fn not_key(meta: &TableMeta, name: &str, what: &str) -> Result<()> {
    if meta.schema.is_key(name) {
        let key: Vec<&str> = meta.schema.key_columns().iter().map(|c| c.name.as_str()).collect();
        return Err(err!(
            InvalidArgument,
            "column '{name}' is part of the primary key ({}) and cannot be {what}; copy the rows into a new table with another key instead",
            key.join(", ")
        ));
    }
    Ok(())
}

fn next_column_id(meta: &mut TableMeta) -> ColumnId {
    let id = ColumnId(meta.next_col_id);
    meta.next_col_id += 1;
    id
}
