//! Queries: `table.select(..).where_(..).order_by(..).limit(n)` and its terminal calls
//! (`collect`, `collect_as`, `head`, `first`, `count`, `stream`).
//!
//! A query is data until a terminal call; each terminal call is one read transaction (a
//! stream, one a batch) that checks the expressions against the table's schema at that moment.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::catalog::{all_columns, check_predicate, Table};
use crate::compute::sql_over_columns;
use crate::error::{err, Result};
use crate::expr::sql::Params;
use crate::expr::Expr;
use crate::row::Row;
use crate::store::{visible, Tx};
use crate::types::{ColumnType, Version};

/// Rows fetched per read transaction by [`Query::stream`].
const STREAM_BATCH: usize = 1024;

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

/// A query compiled against one version of the table.
struct Plan {
    names: Arc<[String]>,
    types: Vec<Option<ColumnType>>,
    select: String,
    from_where: String,
    order: String,
    params: Params,
    version: Version,
    epoch: i64,
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

    fn plan(&self, tx: &Tx, at: Option<Version>) -> Result<Plan> {
        let mut meta = self.table.meta(tx)?;
        if let Some(v) = at {
            meta.schema = tx.schema_at(meta.id, v)?;
            meta.version = v;
        }
        let schema = &meta.schema;
        let items = if self.items.is_empty() { all_columns(schema) } else { self.items.clone() };
        let mut params = Params::default();
        let mut names: Vec<String> = Vec::with_capacity(items.len());
        let mut types = Vec::with_capacity(items.len());
        let mut select = Vec::with_capacity(items.len());
        for item in &items {
            let name = item.output_name();
            if names.contains(&name) {
                return Err(err!(
                    InvalidArgument,
                    "two selected expressions are named '{name}'; give one an alias (`.alias(\"...\")`)"
                ));
            }
            types.push(item.check(schema)?.ty);
            select.push(sql_over_columns(schema, item, &mut params)?);
            names.push(name);
        }
        let mut cond = visible(Some(meta.version));
        if self.table.pinned.is_none() && at.is_none() {
            cond = visible(None);
        }
        if let Some(filter) = &self.filter {
            check_predicate(schema, filter)?;
            cond = format!("{cond} AND {}", sql_over_columns(schema, filter, &mut params)?);
        }
        let mut order = Vec::new();
        for (key, desc) in &self.order {
            key.check(schema)?;
            order.push(format!("{}{}", sql_over_columns(schema, key, &mut params)?, if *desc { " DESC" } else { "" }));
        }
        Ok(Plan {
            names: names.into(),
            types,
            select: select.join(", "),
            from_where: format!("FROM {} WHERE {cond}", meta.phys()),
            order: if order.is_empty() { String::new() } else { format!(" ORDER BY {}", order.join(", ")) },
            params,
            version: meta.version,
            epoch: meta.epoch,
        })
    }

    fn limit_sql(&self, limit: Option<u64>) -> String {
        match (limit, self.offset) {
            (None, 0) => String::new(),
            (None, off) => format!(" LIMIT -1 OFFSET {off}"),
            (Some(n), off) => format!(" LIMIT {} OFFSET {off}", n.min(i64::MAX as u64)),
        }
    }

    fn run(&self, limit: Option<u64>) -> Result<Vec<Row>> {
        let table = &self.table;
        table
            .catalog
            .store()
            .read(|tx| {
                let plan = self.plan(tx, None)?;
                let sql = format!("SELECT {} {}{}{}", plan.select, plan.from_where, plan.order, self.limit_sql(limit));
                let mut out = Vec::new();
                tx.query_each(&sql, &plan.params.values, &plan.types, |values| {
                    out.push(Row::new(plan.names.clone(), values));
                    Ok(true)
                })?;
                Ok(out)
            })
            .map_err(|e| e.context(format_args!("select from '{}'", table.display_path())))
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

    /// The first `n` matching rows: a preview that computes only those rows and writes nothing.
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
        table
            .catalog
            .store()
            .read(|tx| {
                let plan = self.plan(tx, None)?;
                let sql = format!("SELECT count(*) FROM (SELECT 1 {}{})", plan.from_where, self.limit_sql(self.limit));
                Ok(tx.query_i64(&sql, &plan.params.values)? as u64)
            })
            .map_err(|e| e.context(format_args!("count '{}'", table.display_path())))
    }

    /// The matching rows as an iterator that reads them in batches of 1024, so the table is
    /// never held in memory (an ordered stream keeps only the sorted row ids, 8 bytes a row).
    /// The stream reads the version that was current when it started, whatever is written
    /// meanwhile; if the table is reverted past that version, the next batch is an error.
    pub fn stream(&self) -> Result<RowStream> {
        let (version, epoch, order_ids) = self.table.catalog.store().read(|tx| {
            let plan = self.plan(tx, None)?;
            let ids = if plan.order.is_empty() {
                None
            } else {
                let sql = format!("SELECT rowid {}{}{}", plan.from_where, plan.order, self.limit_sql(self.limit));
                let mut ids = Vec::new();
                tx.query_each(&sql, &plan.params.values, &[Some(ColumnType::Int)], |v| {
                    if let Some(crate::Value::Int(id)) = v.first() {
                        ids.push(*id);
                    }
                    Ok(true)
                })?;
                Some(ids)
            };
            Ok((plan.version, plan.epoch, ids))
        })?;
        Ok(RowStream {
            query: self.clone(),
            version,
            epoch,
            order_ids,
            position: 0,
            last_rowid: 0,
            skipped: 0,
            emitted: 0,
            buffer: VecDeque::new(),
            done: false,
        })
    }
}

/// An iterator over the rows of a query, read in batches; see [`Query::stream`].
pub struct RowStream {
    query: Query,
    version: Version,
    epoch: i64,
    order_ids: Option<Vec<i64>>,
    position: usize,
    last_rowid: i64,
    skipped: u64,
    emitted: u64,
    buffer: VecDeque<Row>,
    done: bool,
}

impl RowStream {
    fn fetch(&mut self) -> Result<()> {
        let q = &self.query;
        let (version, epoch) = (self.version, self.epoch);
        q.table.catalog.store().read(|tx| {
            let plan = q.plan(tx, Some(version))?;
            if plan.epoch != epoch {
                return Err(err!(
                    Conflict,
                    "table '{}' was reverted while this stream was reading it; start the query again",
                    q.table.display_path()
                ));
            }
            match &self.order_ids {
                Some(ids) => {
                    let end = (self.position + STREAM_BATCH).min(ids.len());
                    let batch = &ids[self.position..end];
                    self.position = end;
                    if batch.is_empty() {
                        self.done = true;
                        return Ok(());
                    }
                    let list = batch.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                    let sql = format!("SELECT rowid, {} {} AND rowid IN ({list})", plan.select, plan.from_where);
                    let mut types = vec![Some(ColumnType::Int)];
                    types.extend(&plan.types);
                    let mut found = std::collections::HashMap::with_capacity(batch.len());
                    tx.query_each(&sql, &plan.params.values, &types, |mut values| {
                        if let crate::Value::Int(id) = values.remove(0) {
                            found.insert(id, Row::new(plan.names.clone(), values));
                        }
                        Ok(true)
                    })?;
                    self.buffer.extend(batch.iter().filter_map(|id| found.remove(id)));
                }
                None => {
                    let sql = format!(
                        "SELECT rowid, {} {} AND rowid > {} ORDER BY rowid LIMIT {STREAM_BATCH}",
                        plan.select, plan.from_where, self.last_rowid
                    );
                    let mut types = vec![Some(ColumnType::Int)];
                    types.extend(&plan.types);
                    let mut n = 0;
                    tx.query_each(&sql, &plan.params.values, &types, |mut values| {
                        n += 1;
                        if let crate::Value::Int(id) = values.remove(0) {
                            self.last_rowid = id;
                        }
                        if self.skipped < q.offset {
                            self.skipped += 1;
                        } else {
                            self.buffer.push_back(Row::new(plan.names.clone(), values));
                        }
                        Ok(true)
                    })?;
                    if n < STREAM_BATCH {
                        self.done = true;
                    }
                }
            }
            Ok(())
        })
    }
}

impl Iterator for RowStream {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        if self.order_ids.is_none() && self.query.limit.is_some_and(|l| self.emitted >= l) {
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
