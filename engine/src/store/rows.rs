//! Physical row operations: prepared inserts, statements with bound [`Value`]s, and
//! decoded row scans.

use super::{codec::decode, SqlValue, Tx};
use crate::error::Result;
use crate::types::{ColumnType, Value};

/// `_vmax` of a live row version.
pub(crate) const LIVE: i64 = i64::MAX;

/// The condition of the partial index on ended row versions. A query that looks up ended
/// rows by `_vmax` must contain this exact term, or SQLite cannot use the index.
pub(crate) const ENDED: &str = "_vmax < 9223372036854775807";

/// The condition for the row versions ended at `version` (SQL: a literal or a parameter),
/// written so that SQLite uses the partial index.
pub(crate) fn ended_at(version: &str) -> String {
    format!("_vmax = {version} AND {ENDED}")
}

/// A prepared insert statement, bound and run once a row.
pub(crate) struct Inserter<'t> {
    stmt: rusqlite::CachedStatement<'t>,
    tx: &'t Tx<'t>,
    /// The physical rowid of the first row inserted (rows are appended, so the ones after it
    /// follow it up to `last_insert_rowid`).
    first: Option<i64>,
}

impl<'t> Tx<'t> {
    /// Prepares `sql` (an INSERT with positional parameters) for many rows.
    pub(crate) fn inserter(&'t self, sql: &str) -> Result<Inserter<'t>> {
        let stmt = self.tx.prepare_cached(sql).map_err(|e| self.fail(e))?;
        Ok(Inserter { stmt, tx: self, first: None })
    }
}

impl Inserter<'_> {
    /// Binds `params` to ?1, ?2, ... and runs the insert.
    pub(crate) fn insert<'v>(&mut self, params: impl IntoIterator<Item = &'v Value>) -> Result<()> {
        for (i, v) in params.into_iter().enumerate() {
            self.stmt.raw_bind_parameter(i + 1, SqlValue(v)).map_err(|e| self.tx.fail(e))?;
        }
        self.stmt.raw_execute().map_err(|e| self.tx.fail(e))?;
        if self.first.is_none() {
            self.first = Some(self.tx.tx.last_insert_rowid());
        }
        Ok(())
    }

    /// The first and last physical rowid an INSERT statement wrote.
    pub(crate) fn rowids(&self) -> Option<(i64, i64)> {
        self.first.map(|first| (first, self.tx.tx.last_insert_rowid()))
    }
}

impl Tx<'_> {
    /// Runs one statement with bound values; returns the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(|e| self.fail(e))?;
        for (i, v) in params.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, SqlValue(v)).map_err(|e| self.fail(e))?;
        }
        stmt.raw_execute().map(|n| n as u64).map_err(|e| self.fail(e))
    }

    /// Runs a query and calls `each` with every row decoded by `types` (one a result
    /// column), until it returns `Ok(false)`.
    pub(crate) fn query_each(
        &self,
        sql: &str,
        params: &[Value],
        types: &[Option<ColumnType>],
        mut each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(|e| self.fail(e))?;
        for (i, v) in params.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, SqlValue(v)).map_err(|e| self.fail(e))?;
        }
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let mut values = Vec::with_capacity(types.len());
            for (i, ty) in types.iter().enumerate() {
                values.push(decode(row.get_ref(i).map_err(|e| self.fail(e))?, *ty)?);
            }
            if !each(values)? {
                break;
            }
        }
        Ok(())
    }

    /// Runs a query that returns one integer.
    pub(crate) fn query_i64(&self, sql: &str, params: &[Value]) -> Result<i64> {
        let mut out = 0;
        self.query_each(sql, params, &[Some(ColumnType::Int)], |v| {
            if let Some(Value::Int(i)) = v.first() {
                out = *i;
            }
            Ok(false)
        })?;
        Ok(out)
    }
}
