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

/// The statements a store runs from its caches, recorded in tests: a statement's text is
/// its cache key (SQLite's statement cache, a server connection's prepared statements), so
/// it must not carry values that change from call to call (a version, a row id, a page's
/// start or size, a user's value): those are bound. Otherwise every call parses and plans
/// its statements again (on a server, one more exchange each) and evicts the statements
/// other calls reuse.
#[cfg(test)]
pub(crate) mod ran {
    use std::cell::RefCell;

    thread_local! {
        static RAN: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    }

    /// Notes that this thread ran `sql` from a statement cache.
    pub(crate) fn record(sql: &str) {
        RAN.with(|r| {
            if let Some(ran) = r.borrow_mut().as_mut() {
                ran.push(sql.to_string());
            }
        });
    }

    /// What `f` returns, and the distinct statements it ran on this thread (sorted).
    pub(crate) fn statements_of<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
        RAN.with(|r| *r.borrow_mut() = Some(Vec::new()));
        let out = f();
        let mut ran = RAN.with(|r| r.borrow_mut().take()).unwrap_or_default();
        ran.sort();
        ran.dedup();
        (out, ran)
    }
}

impl<'a> Tx<'a> {
    /// `sql` prepared on the SQLite connection, from its statement cache (see `ran` for
    /// what the text may hold).
    pub(crate) fn cached(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>> {
        #[cfg(test)]
        ran::record(sql);
        self.sqlite()?.prepare_cached(sql).map_err(|e| self.fail(e))
    }

    /// Runs one statement with bound values; returns the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.execute(sql, params);
        }
        let mut stmt = self.cached(sql)?;
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

    /// Opens a copy into `table` on a server that rows are added to while they are gathered
    /// (see `PgTx::copy_open`); SQLite has no `COPY`.
    pub(crate) fn copy_open(
        &self,
        table: &str,
        columns: &[String],
        first: i64,
        width: usize,
        constants: &[Value],
    ) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.copy_open(table, columns, first, width, constants);
        }
        let _ = (columns, first, width, constants);
        Err(err!(Storage, "a COPY into '{table}' ran on SQLite (a bug in Tabula)"))
    }

    /// Adds rows to the copy [`Tx::copy_open`] opened.
    pub(crate) fn copy_more(&self, values: &[Value]) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.copy_more(values);
        }
        let _ = values;
        Err(err!(Storage, "a COPY ran on SQLite (a bug in Tabula)"))
    }

    /// Ends the copy [`Tx::copy_open`] opened; returns how many rows it wrote.
    pub(crate) fn copy_close(&self) -> Result<u64> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.copy_close();
        }
        Err(err!(Storage, "a COPY ran on SQLite (a bug in Tabula)"))
    }

    /// Drops the rowid index of an empty `table` on a server for the rest of a load into it,
    /// and its key's index if the load checks its keys itself (see
    /// `PgTx::load_without_indexes`); says whether it did. On SQLite the rowid is the
    /// table's own btree, and appends stay in its indexes: nothing to drop.
    pub(crate) fn load_without_indexes(&self, table: &str, keys_checked: bool) -> Result<bool> {
        #[cfg(feature = "postgres")]
        if let Conn::Postgres(tx) = &self.conn {
            return tx.load_without_indexes(table, keys_checked);
        }
        let _ = (table, keys_checked);
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
        let mut stmt = self.cached(sql)?;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::ran::statements_of;
    use crate::{col, row, Catalog, ColumnOptions, ColumnType, IfExists, IfMissing, Schema, Udf};

    /// Runs each kind of call three times, other calls between them (so versions, row ids
    /// and pages move on), and checks that the second and third runs of a kind ran the same
    /// statements: nothing that changes from call to call is written into a statement's
    /// text. Returns what differed, by call.
    pub(crate) fn statements_that_carry_values(cat: &Catalog) -> Vec<String> {
        let schema = Schema::new()
            .required("k", ColumnType::Int)
            .required("n", ColumnType::Int)
            .nullable("s", ColumnType::String)
            .primary_key(["k"]);
        let t = cat.create_table("t", schema, IfExists::Error).unwrap();
        let udf = Udf::new("twice", 1, |n: i64| n * 2);
        cat.register(&udf);
        t.add_computed_column("n2", col("n") * 2, ColumnOptions::default()).unwrap();
        t.add_computed_column("n4", udf.call([col("n2")]), ColumnOptions::default()).unwrap();
        let v = cat.create_view("v", &t, col("n").ge(0), IfExists::Error).unwrap();
        v.add_computed_column("m", col("n") + 1, ColumnOptions::default()).unwrap();
        let many = |from: i64, n: i64| (from..from + n).map(|k| row! {"k" => k, "n" => k, "s" => "a"});
        t.insert(many(1_000_000, 3_000)).unwrap();
        type Call<'a> = (&'a str, Box<dyn Fn(i64) + 'a>);
        let calls: Vec<Call> = vec![
            (
                "insert of a row",
                Box::new(|i| {
                    t.insert(many(i * 100, 1)).unwrap();
                }),
            ),
            (
                "insert of 40 rows",
                Box::new(|i| {
                    t.insert(many(i * 100 + 1, 40)).unwrap();
                }),
            ),
            (
                "revert",
                Box::new(|_| {
                    t.revert().unwrap();
                }),
            ),
            (
                "update by key",
                Box::new(|i| {
                    t.update([("n", col("n") + 1)], col("k").eq(i * 100)).unwrap();
                }),
            ),
            (
                "update where",
                Box::new(|i| {
                    t.update([("s", col("s").upper())], col("k").lt(i * 100 + 5)).unwrap();
                }),
            ),
            (
                "upsert",
                Box::new(|i| {
                    t.upsert(many(i * 100 + 2, 2)).unwrap();
                }),
            ),
            (
                "batch update",
                Box::new(|i| {
                    t.batch_update(many(i * 100 + 2, 2), IfMissing::Error).unwrap();
                }),
            ),
            (
                "delete by key",
                Box::new(|i| {
                    t.delete(col("k").eq(i * 100 + 1)).unwrap();
                }),
            ),
            (
                "delete where",
                Box::new(|i| {
                    t.delete(col("k").ge(i * 100 + 40).and(col("k").lt(i * 100 + 42))).unwrap();
                }),
            ),
            (
                "read where",
                Box::new(|i| {
                    t.select_all().where_(col("k").ge(i)).collect().unwrap();
                }),
            ),
            (
                "count",
                Box::new(|_| {
                    t.count().unwrap();
                }),
            ),
            (
                "read a view",
                Box::new(|_| {
                    v.select_all().collect().unwrap();
                }),
            ),
            ("stream of pages", Box::new(|_| assert!(t.select_all().stream().unwrap().count() > 2_000))),
        ];
        let mut seen: Vec<Vec<Vec<String>>> = vec![Vec::new(); calls.len()];
        for round in 1..=3 {
            for (i, (_, call)) in calls.iter().enumerate() {
                seen[i].push(statements_of(|| call(round)).1);
            }
        }
        let mut differ = Vec::new();
        for ((name, _), runs) in calls.iter().zip(&seen) {
            let (second, third) = (&runs[1], &runs[2]);
            let only = |a: &[String], b: &[String]| a.iter().filter(|s| !b.contains(s)).cloned().collect::<Vec<_>>();
            if second != third {
                differ.push(format!("{name}: {:?} became {:?}", only(second, third), only(third, second)));
            }
            if runs.iter().any(|r| r.is_empty()) {
                differ.push(format!("{name}: ran no cached statement (the recorder missed it)"));
            }
        }
        differ
    }

    #[test]
    fn a_call_runs_the_same_statements_whatever_its_versions_and_rows() {
        let cat = Catalog::in_memory().unwrap();
        let differ = statements_that_carry_values(&cat);
        assert!(differ.is_empty(), "statements whose text changed between two calls:\n{}", differ.join("\n"));
    }
}
