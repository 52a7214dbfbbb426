//! Writing rows and computing computed columns: the insert path (stored values checked and
//! coerced, computed columns evaluated for every new row), the rewrite of updated rows
//! (assigned columns and everything downstream of them recomputed), and filling a new
//! computed column over existing rows in batches.
//!
//! Expressions that SQLite can run are compiled into the SQL statement itself; this module
//! never touches rusqlite directly (it goes through `store`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::catalog::Change;
use crate::error::{err, Result};
use crate::expr::sql::{to_sql, Params};
use crate::expr::Expr;
use crate::row::Row;
use crate::schema::{ColumnDef, TableSchema};
use crate::store::{Inserter, TableMeta, Tx, LIVE};
use crate::types::{ColumnType, Value, Version};
use crate::udf::Registry;

/// `expr` as SQL over the physical columns of `schema`.
pub(crate) fn sql_over_columns(schema: &TableSchema, expr: &Expr, params: &mut Params) -> Result<String> {
    let resolve = |name: &str| schema.column(name).map(|c| format!("c{}", c.id.0));
    to_sql(expr, &resolve, params)
}

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

/// Inserts rows into one table in one version: checks and coerces each stored value, and
/// computes the computed columns.
pub(crate) struct RowWriter<'t> {
    inserter: Inserter<'t>,
    stored: Vec<ColumnDef>,
    /// The literal parameters of the computed columns' SQL, bound after the row's values.
    literals: Vec<Value>,
    /// Where each value of the last row shape goes among `stored` (`None`: not a column).
    shape: Option<(Arc<[String]>, Vec<usize>)>,
    /// `[logical id, stored values...]` of the row being written.
    buf: Vec<Value>,
    next_row_id: i64,
    count: u64,
}

impl<'t> RowWriter<'t> {
    pub(crate) fn new(tx: &'t Tx<'t>, meta: &TableMeta, version: Version, _udfs: &Registry) -> Result<RowWriter<'t>> {
        let stored: Vec<ColumnDef> = meta.schema.columns.iter().filter(|c| !c.is_computed()).cloned().collect();
        let mut params = Params { values: vec![Value::Null; stored.len() + 1] };
        let mut targets = vec!["_id".to_string(), "_vmin".into(), "_vmax".into()];
        let mut values = vec!["?1".to_string(), version.0.to_string(), LIVE.to_string()];
        let mut sql_of: HashMap<&str, String> = HashMap::new();
        for (i, c) in stored.iter().enumerate() {
            targets.push(format!("c{}", c.id.0));
            values.push(format!("?{}", i + 2));
            sql_of.insert(&c.name, format!("?{}", i + 2));
        }
        for c in meta.schema.columns.iter() {
            let Some(computed) = &c.computed else { continue };
            let sql = to_sql(&computed.expr, &|name| sql_of.get(name).cloned(), &mut params)?;
            targets.push(format!("c{}", c.id.0));
            values.push(sql.clone());
            sql_of.insert(&c.name, sql);
        }
        let sql = format!("INSERT INTO {}({}) VALUES ({})", meta.phys(), targets.join(", "), values.join(", "));
        let literals = params.values.split_off(stored.len() + 1);
        Ok(RowWriter {
            inserter: tx.inserter(&sql)?,
            buf: Vec::with_capacity(stored.len() + 1),
            stored,
            literals,
            shape: None,
            next_row_id: meta.next_row_id,
            count: 0,
        })
    }

    fn positions(&mut self, index: usize, row: &Row) -> Result<&[usize]> {
        let names = row.names_arc();
        let reuse = match &self.shape {
            Some((known, _)) => Arc::ptr_eq(known, names) || known[..] == names[..],
            None => false,
        };
        if !reuse {
            let mut positions = Vec::with_capacity(names.len());
            for name in names.iter() {
                match self.stored.iter().position(|c| c.name == *name) {
                    Some(p) => {
                        if positions.contains(&p) {
                            return Err(err!(InvalidArgument, "row {index}: column '{name}' is given twice"));
                        }
                        positions.push(p)
                    }
                    None => return Err(self.unknown(index, name)),
                }
            }
            self.shape = Some((names.clone(), positions));
        }
        Ok(self.shape.as_ref().map(|(_, p)| p.as_slice()).unwrap_or(&[]))
    }

    fn unknown(&self, index: usize, name: &str) -> crate::Error {
        err!(
            UnknownColumn,
            "row {index}: no stored column '{name}' (computed columns are computed, not inserted; the stored columns are: {})",
            self.stored.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        )
    }

    /// Writes one row given as named values.
    pub(crate) fn push_row(&mut self, index: usize, row: &Row) -> Result<()> {
        let positions = self.positions(index, row)?.to_vec();
        self.buf.clear();
        self.buf.push(Value::Int(self.next_row_id));
        self.buf.resize(self.stored.len() + 1, Value::Null);
        for (value, pos) in row.values().iter().zip(positions) {
            self.buf[pos + 1] = value.clone();
        }
        self.write_buf(index)
    }

    /// Writes one row given as a JSON object (a serialized record).
    pub(crate) fn push_json(&mut self, index: usize, json: serde_json::Value) -> Result<()> {
        let serde_json::Value::Object(mut fields) = json else {
            return Err(err!(Serde, "row {index}: a record must serialize to a struct or a map, found {json}"));
        };
        self.buf.clear();
        self.buf.push(Value::Int(self.next_row_id));
        for c in &self.stored {
            let value = match fields.remove(&c.name) {
                Some(v) => Value::from_json(v, c.ty)
                    .map_err(|why| err!(TypeMismatch, "row {index}, column '{}': {why}", c.name))?,
                None => Value::Null,
            };
            self.buf.push(value);
        }
        if let Some(name) = fields.keys().next() {
            return Err(self.unknown(index, name));
        }
        self.write_buf(index)
    }

    fn write_buf(&mut self, index: usize) -> Result<()> {
        for (c, slot) in self.stored.iter().zip(self.buf[1..].iter_mut()) {
            let value = std::mem::replace(slot, Value::Null);
            if value.is_null() && !c.nullable {
                return Err(err!(NotNull, "row {index}: column '{}' is required but has no value", c.name));
            }
            *slot =
                value.coerce_to(c.ty).map_err(|why| err!(TypeMismatch, "row {index}, column '{}': {why}", c.name))?;
        }
        self.inserter.insert(self.buf.iter().chain(&self.literals))?;
        self.next_row_id += 1;
        self.count += 1;
        Ok(())
    }

    /// Ends the insert: updates `meta`'s counters and says what changed.
    pub(crate) fn finish(self, meta: &mut TableMeta) -> Result<Option<Change>> {
        if self.count == 0 {
            return Ok(None);
        }
        meta.next_row_id = self.next_row_id;
        let noun = if self.count == 1 { "row" } else { "rows" };
        Ok(Some(Change {
            rowids: self.inserter.rowids,
            ..Change::rows("insert", format!("insert {} {noun}", self.count), self.count, 0, 0)
        }))
    }
}

/// Writes new versions (at `version`) of the rows just ended at `version`, with `set`
/// applied and every computed column downstream of the set columns recomputed. Returns the
/// physical rowid range written.
pub(crate) fn rewrite_ended(
    tx: &Tx,
    meta: &TableMeta,
    version: Version,
    set: &[(String, Expr)],
    _udfs: &Registry,
) -> Result<Option<(i64, i64)>> {
    let phys = meta.phys();
    let before = tx.query_i64(&format!("SELECT coalesce(max(rowid), 0) FROM {phys}"), &[])?;
    let mut params = Params::default();
    let changed: BTreeSet<String> = set.iter().map(|(n, _)| n.clone()).collect();
    let downstream: BTreeSet<String> = meta.schema.downstream_of(&changed).iter().map(|c| c.name.clone()).collect();
    let old = |name: &str| meta.schema.column(name).map(|c| format!("c{}", c.id.0));
    let mut new_sql: HashMap<String, String> = HashMap::new();
    let mut targets = vec!["_id".to_string(), "_vmin".into(), "_vmax".into()];
    let mut values = vec!["_id".to_string(), version.0.to_string(), LIVE.to_string()];
    for c in &meta.schema.columns {
        let sql = if let Some((_, expr)) = set.iter().find(|(n, _)| *n == c.name) {
            to_sql(expr, &old, &mut params)?
        } else if let (Some(computed), true) = (&c.computed, downstream.contains(&c.name)) {
            let resolve = |name: &str| new_sql.get(name).cloned().or_else(|| old(name));
            to_sql(&computed.expr, &resolve, &mut params)?
        } else {
            if c.is_computed() {
                targets.push(format!("e{}", c.id.0));
                values.push(format!("e{}", c.id.0));
            }
            format!("c{}", c.id.0)
        };
        targets.push(format!("c{}", c.id.0));
        values.push(sql.clone());
        new_sql.insert(c.name.clone(), format!("({sql})"));
    }
    tx.execute(
        &format!(
            "INSERT INTO {phys}({}) SELECT {} FROM {phys} WHERE _vmax = {}",
            targets.join(", "),
            values.join(", "),
            version.0
        ),
        &params.values,
    )?;
    let after = tx.query_i64(&format!("SELECT coalesce(max(rowid), 0) FROM {phys}"), &[])?;
    for (name, _) in set {
        let Some(c) = meta.schema.column(name) else { continue };
        if c.nullable {
            continue;
        }
        let nulls =
            tx.query_i64(&format!("SELECT count(*) FROM {phys} WHERE rowid > {before} AND c{} IS NULL", c.id.0), &[])?;
        if nulls > 0 {
            return Err(err!(
                NotNull,
                "update would set required column '{name}' to null in {nulls} row(s); guard the expression (e.g. with a where clause)"
            ));
        }
    }
    Ok((after > before).then_some((before + 1, after)))
}
