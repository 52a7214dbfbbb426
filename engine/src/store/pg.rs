//! The store's SQL executor on PostgreSQL: what [`super::exec`] does on SQLite, for a
//! transaction on a server. Statements are written once for both, with `?N` parameters;
//! here they become `$N`, each [`Value`] is bound as the type the server inferred for its
//! parameter, and result columns decode by their server type into [`Value`]s.
//!
//! The backend is being built (issue #22): this is its executor, tested against a real
//! server when `TABULA_TEST_POSTGRES` holds a URL. Nothing public opens a PostgreSQL
//! catalog yet.

use std::cell::RefCell;

use postgres::types::{ToSql, Type};

use super::codec::decode_as;
use crate::error::{err, Error, Result};
use crate::types::{ColumnType, Value};

/// A transaction on a PostgreSQL server.
pub(crate) struct PgTx<'a> {
    tx: RefCell<postgres::Transaction<'a>>,
    /// Names the server in errors (its URL without a password).
    location: String,
}

impl<'a> PgTx<'a> {
    pub(crate) fn new(tx: postgres::Transaction<'a>, location: String) -> PgTx<'a> {
        PgTx { tx: RefCell::new(tx), location }
    }

    /// Commits the transaction.
    pub(crate) fn commit(self) -> Result<()> {
        let location = self.location;
        self.tx.into_inner().commit().map_err(|e| pg_error(&location, e))
    }

    fn fail(&self, e: postgres::Error) -> Error {
        pg_error(&self.location, e)
    }

    /// Runs one statement with bound values; returns the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut tx = self.tx.borrow_mut();
        let stmt = tx.prepare(&dollar_params(sql)).map_err(|e| self.fail(e))?;
        let bound = bind_all(stmt.params(), params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b.as_ref()).collect();
        tx.execute(&stmt, &refs).map_err(|e| self.fail(e))
    }

    /// Runs statements without parameters, separated by `;`.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        self.tx.borrow_mut().batch_execute(sql).map_err(|e| self.fail(e))
    }

    /// Runs a query and calls `each` with every row decoded by `types` (one a result
    /// column; `None`: by the server's type), until it returns `Ok(false)`.
    pub(crate) fn query_each(
        &self,
        sql: &str,
        params: &[Value],
        types: &[Option<ColumnType>],
        mut each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let mut tx = self.tx.borrow_mut();
        let stmt = tx.prepare(&dollar_params(sql)).map_err(|e| self.fail(e))?;
        let bound = bind_all(stmt.params(), params)?;
        let refs = bound.iter().map(|b| b.as_ref() as &dyn ToSql);
        let mut rows = tx.query_raw(&stmt, refs).map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            let mut values = Vec::with_capacity(types.len());
            for (i, ty) in types.iter().enumerate() {
                values.push(cell(&row, i, *ty).map_err(|e| e.context(format_args!("catalog '{}'", self.location)))?);
            }
            if !each(values)? {
                break;
            }
        }
        Ok(())
    }
}

/// `sql` with its `?N` parameters written `$N`; text in quotes (literals, quoted names) is
/// left as it is.
pub(crate) fn dollar_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Each value as the type the server expects for its parameter.
fn bind_all(types: &[Type], params: &[Value]) -> Result<Vec<Box<dyn ToSql + Sync>>> {
    if types.len() != params.len() {
        return Err(err!(
            Storage,
            "a statement takes {} parameters but {} were given (a bug in Tabula)",
            types.len(),
            params.len()
        ));
    }
    types.iter().zip(params).enumerate().map(|(i, (ty, v))| bind_one(i + 1, ty, v)).collect()
}

fn bind_one(at: usize, ty: &Type, v: &Value) -> Result<Box<dyn ToSql + Sync>> {
    let wrong = || err!(Storage, "parameter ${at} is a {ty} on the server; {} {v} cannot be bound to it", v.type_name());
    let int = |v: &Value| -> Option<i64> {
        match v {
            Value::Int(i) | Value::Timestamp(i) => Some(*i),
            Value::Date(d) => Some(i64::from(*d)),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    };
    if v.is_null() {
        return Ok(match *ty {
            Type::INT8 => Box::new(None::<i64>),
            Type::INT4 => Box::new(None::<i32>),
            Type::INT2 => Box::new(None::<i16>),
            Type::FLOAT8 => Box::new(None::<f64>),
            Type::FLOAT4 => Box::new(None::<f32>),
            Type::BOOL => Box::new(None::<bool>),
            Type::BYTEA => Box::new(None::<Vec<u8>>),
            _ => Box::new(None::<String>),
        });
    }
    Ok(match *ty {
        Type::INT8 => Box::new(int(v).ok_or_else(wrong)?),
        Type::INT4 => Box::new(int(v).and_then(|i| i32::try_from(i).ok()).ok_or_else(wrong)?),
        Type::INT2 => Box::new(int(v).and_then(|i| i16::try_from(i).ok()).ok_or_else(wrong)?),
        Type::FLOAT8 => Box::new(match v {
            Value::Float(f) => *f,
            other => int(other).ok_or_else(wrong)? as f64,
        }),
        Type::BOOL => Box::new(match v {
            Value::Bool(b) => *b,
            other => int(other).ok_or_else(wrong)? != 0,
        }),
        Type::BYTEA => match v {
            Value::Bytes(b) => Box::new(b.clone()),
            _ => return Err(wrong()),
        },
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => match v {
            Value::String(s) => Box::new(s.clone()),
            Value::Json(j) => Box::new(j.to_string()),
            _ => return Err(wrong()),
        },
        _ => return Err(wrong()),
    })
}

/// Column `i` of `row` as a [`Value`]: read by its server type, then as `ty` if given.
fn cell(row: &postgres::Row, i: usize, ty: Option<ColumnType>) -> Result<Value> {
    let column = row.columns().get(i).ok_or_else(|| err!(Storage, "a result row has no column {i}"))?;
    let server = column.type_().clone();
    let read = |e: postgres::Error| err!(Storage, "column {i} ({server}) could not be read ({e})");
    let value = match server {
        Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(read)?.map(Value::Int),
        Type::INT4 => row.try_get::<_, Option<i32>>(i).map_err(read)?.map(|n| Value::Int(n.into())),
        Type::INT2 => row.try_get::<_, Option<i16>>(i).map_err(read)?.map(|n| Value::Int(n.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map_err(read)?.map(Value::Float),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(i).map_err(read)?.map(|f| Value::Float(f.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(i).map_err(read)?.map(Value::Bool),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i).map_err(read)?.map(Value::Bytes),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            row.try_get::<_, Option<String>>(i).map_err(read)?.map(Value::String)
        }
        other => return Err(err!(Storage, "column {i} has type {other}, which Tabula does not read")),
    };
    match (value, ty) {
        (None, _) => Ok(Value::Null),
        (Some(v), None) => Ok(v),
        (Some(v), Some(ty)) => decode_as(v, ty),
    }
}

/// Maps a PostgreSQL failure into an [`Error`] naming the server.
pub(crate) fn pg_error(location: &str, e: postgres::Error) -> Error {
    use crate::error::ErrorCode;
    use postgres::error::SqlState;
    let code = match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => ErrorCode::DuplicateKey,
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            ErrorCode::Busy
        }
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => ErrorCode::Busy,
        _ => ErrorCode::Storage,
    };
    let hint = match code {
        ErrorCode::Busy => " (another writer holds what this call needs; retry)",
        ErrorCode::DuplicateKey => " (two live rows would share a primary key)",
        _ => "",
    };
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    };
    Error::new(code, format!("catalog '{location}': {detail}{hint}")).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_dollar_numbers_outside_quotes_only() {
        assert_eq!(dollar_params("SELECT ?1, ?12 FROM t WHERE a = ?2"), "SELECT $1, $12 FROM t WHERE a = $2");
        assert_eq!(dollar_params("SELECT '?1', \"?2\" || ?3"), "SELECT '?1', \"?2\" || $3");
        assert_eq!(dollar_params("SELECT 'it''s ?1' WHERE x = ?1"), "SELECT 'it''s ?1' WHERE x = $1");
        assert_eq!(dollar_params("SELECT a ? b"), "SELECT a ? b", "a ? not followed by a digit stays");
    }

    /// A connection to the test server, and a schema of its own that is dropped after.
    /// The tests that need one are ignored unless asked for (`cargo test -- --ignored`, as
    /// `.ci/run` does with the server it starts), so a run without a server reports them
    /// ignored instead of passing them untried.
    fn server() -> (postgres::Client, String) {
        let url = std::env::var("TABULA_TEST_POSTGRES")
            .expect("TABULA_TEST_POSTGRES=postgres://user@host:port/db names the test server (`.ci/postgres start`)");
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("the test server answers");
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let schema = format!(
            "exec_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        client.batch_execute(&format!("CREATE SCHEMA {schema}; SET search_path TO {schema}")).expect("a schema");
        (client, schema)
    }

    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn every_kind_of_value_round_trips_through_the_server() {
        let (mut client, schema) = server();
        let tx = PgTx::new(client.transaction().unwrap(), "test server".into());
        tx.execute_batch(
            "CREATE TABLE t(i BIGINT, f DOUBLE PRECISION, s TEXT, b BOOLEAN, y BYTEA, ts BIGINT, d BIGINT, j TEXT)",
        )
        .unwrap();
        let row = vec![
            Value::Int(-7),
            Value::Float(2.5),
            Value::String("naïve 'quoted' ?1".into()),
            Value::Bool(true),
            Value::Bytes(vec![0, 255, 7]),
            Value::Timestamp(1_700_000_000_000_000),
            Value::Date(19_000),
            Value::Json(serde_json::json!({"a": [1, 2]})),
        ];
        let n = tx.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", &row).unwrap();
        assert_eq!(n, 1);
        tx.execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", &vec![Value::Null; 8]).unwrap();
        let types = [
            Some(ColumnType::Int),
            Some(ColumnType::Float),
            Some(ColumnType::String),
            Some(ColumnType::Bool),
            Some(ColumnType::Bytes),
            Some(ColumnType::Timestamp),
            Some(ColumnType::Date),
            Some(ColumnType::Json),
        ];
        let mut read = Vec::new();
        tx.query_each("SELECT * FROM t ORDER BY i NULLS LAST", &[], &types, |r| {
            read.push(r);
            Ok(true)
        })
        .unwrap();
        assert_eq!(read, vec![row, vec![Value::Null; 8]]);
        // A parameter compared with a column takes the column's type.
        let mut found = 0;
        tx.query_each("SELECT count(*) FROM t WHERE i = ?1 AND s = ?2", &[Value::Int(-7), "naïve 'quoted' ?1".into()], &[None], |r| {
            found = match r[0] {
                Value::Int(n) => n,
                _ => -1,
            };
            Ok(false)
        })
        .unwrap();
        assert_eq!(found, 1);
        drop(tx);
        client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }

    #[test]
    #[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
    fn server_errors_name_the_catalog_and_map_to_codes() {
        let (mut client, schema) = server();
        let tx = PgTx::new(client.transaction().unwrap(), "pg://test".into());
        tx.execute_batch("CREATE TABLE k(a BIGINT PRIMARY KEY)").unwrap();
        let e = tx.execute("INSERT INTO k VALUES (?1)", &[Value::String("x".into())]).unwrap_err();
        assert!(e.to_string().contains("parameter $1 is a int8"), "{e}");
        tx.execute("INSERT INTO k VALUES (?1)", &[Value::Int(1)]).unwrap();
        let e = tx.execute("INSERT INTO k VALUES (?1)", &[Value::Int(1)]).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::DuplicateKey, "{e}");
        assert!(e.to_string().contains("catalog 'pg://test'"), "{e}");
        drop(tx);
        client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }
}
