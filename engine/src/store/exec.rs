//! How the store runs SQL: statements with [`Value`] parameters (`?1`, `?2`, ...) and
//! result rows decoded into [`Value`]s. The store's operations go through these methods, not
//! through the driver, so what is specific to the driver stays here and in the few places
//! that are SQLite's by nature (opening files, registered functions, the schema catalog).

use super::codec::{bind, decode};
#[cfg(feature = "postgres")]
use super::Conn;
use super::Tx;
use crate::error::{err, Result};
use crate::types::{ColumnType, Value};

/// A result row of [`Tx::query_row`] or [`Tx::query_rows`]: its values as the database gave
/// them (integers as `Int`, text as `String`), read by position.
pub(crate) struct DbRow(Vec<Value>);

impl DbRow {
    /// The integer at `i`.
    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| err!(Storage, "column {i} of a metadata row is NULL; the catalog may be damaged"))
    }

    /// The integer at `i`, or `None` for NULL.
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.0.get(i) {
            Some(Value::Int(n)) => Ok(Some(*n)),
            Some(Value::Null) => Ok(None),
            other => Err(damaged(i, "an integer", other)),
        }
    }

    /// The text at `i`.
    pub(crate) fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| err!(Storage, "column {i} of a metadata row is NULL; the catalog may be damaged"))
    }

    /// The text at `i`, or `None` for NULL.
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.0.get(i) {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Null) => Ok(None),
            other => Err(damaged(i, "text", other)),
        }
    }
}

fn damaged(i: usize, wanted: &str, found: Option<&Value>) -> crate::error::Error {
    match found {
        Some(v) => err!(Storage, "column {i} of a metadata row holds {v}, not {wanted}; the catalog may be damaged"),
        None => err!(Storage, "a metadata row has no column {i}"),
    }
}

impl Tx<'_> {
    /// Runs one statement with bound values; returns the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.execute(sql, params);
        }
        let mut stmt = self.sqlite()?.prepare_cached(sql).map_err(|e| self.fail(e))?;
        for (i, v) in params.iter().enumerate() {
            bind(&mut stmt, i + 1, v).map_err(|e| self.fail(e))?;
        }
        stmt.raw_execute().map(|n| n as u64).map_err(|e| self.fail(e))
    }

    /// Appends rows with `COPY` on a server (see `PgTx::copy_rows`); SQLite has no `COPY`.
    pub(crate) fn copy_rows(
        &self,
        table: &str,
        columns: &[String],
        first: Option<i64>,
        values: &[Value],
        width: usize,
        constants: &[Value],
    ) -> Result<u64> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.copy_rows(table, columns, first, values, width, constants);
        }
        let _ = (columns, first, values, width, constants);
        Err(err!(Storage, "a COPY into '{table}' ran on SQLite (a bug in Tabula)"))
    }

    /// Drops the rowid index of an empty `table` on a server for the rest of a load into it
    /// (see `PgTx::load_without_rowid_index`); says whether it did. On SQLite the rowid is
    /// the table's own btree: nothing to drop.
    pub(crate) fn load_without_rowid_index(&self, table: &str) -> Result<bool> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.load_without_rowid_index(table);
        }
        let _ = table;
        Ok(false)
    }

    /// Builds the indexes dropped for loads in this transaction (also done before it commits).
    pub(crate) fn build_deferred_indexes(&self) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.build_deferred();
        }
        Ok(())
    }

    /// Runs one statement on a server whose every parameter is an array: `arrays[k]` is
    /// bound to `?k+1`, each value as the array's element type. SQLite has no arrays.
    pub(crate) fn execute_arrays(&self, sql: &str, arrays: &[Vec<Value>]) -> Result<u64> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.execute_arrays(sql, arrays);
        }
        let _ = arrays;
        Err(err!(Storage, "a statement binding arrays ran on SQLite (a bug in Tabula): {sql}"))
    }

    /// A query on a server whose every parameter is an array (see [`Tx::execute_arrays`]);
    /// `each` gets every row decoded by `types`. SQLite has no arrays.
    pub(crate) fn query_arrays(
        &self,
        sql: &str,
        arrays: &[Vec<Value>],
        types: &[Option<ColumnType>],
        each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.query_arrays(sql, arrays, types, each);
        }
        let _ = (arrays, types, each);
        Err(err!(Storage, "a query binding arrays ran on SQLite (a bug in Tabula): {sql}"))
    }

    /// Forgets the statements prepared on a server connection that name `table`, made again
    /// with other column types. (SQLite prepares again by itself and binds by value.)
    pub(crate) fn forget_statements(&self, table: &str) {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            tx.forget_statements(table);
        }
        let _ = table;
    }

    /// Runs statements without parameters (DDL), separated by `;`.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.execute_batch(sql);
        }
        self.sqlite()?.execute_batch(sql).map_err(|e| self.fail(e))
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
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.query_each(sql, params, types, each);
        }
        let mut stmt = self.sqlite()?.prepare_cached(sql).map_err(|e| self.fail(e))?;
        for (i, v) in params.iter().enumerate() {
            bind(&mut stmt, i + 1, v).map_err(|e| self.fail(e))?;
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

    /// [`Tx::query_each`] for a query whose rows the caller bounds (a page: `LIMIT n`): on a
    /// server they come in one exchange, not one client event-loop turn a row.
    pub(crate) fn query_page(
        &self,
        sql: &str,
        params: &[Value],
        types: &[Option<ColumnType>],
        each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.query_page(sql, params, types, each);
        }
        self.query_each(sql, params, types, each)
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

    /// The first row of a query of `width` columns, if it returns any.
    pub(crate) fn query_row(&self, sql: &str, params: &[Value], width: usize) -> Result<Option<DbRow>> {
        let mut out = None;
        self.query_each(sql, params, &vec![None; width], |v| {
            out = Some(DbRow(v));
            Ok(false)
        })?;
        Ok(out)
    }

    /// Every row of a query of `width` columns.
    pub(crate) fn query_rows(&self, sql: &str, params: &[Value], width: usize) -> Result<Vec<DbRow>> {
        let mut out = Vec::new();
        self.query_each(sql, params, &vec![None; width], |v| {
            out.push(DbRow(v));
            Ok(true)
        })?;
        Ok(out)
    }
}
