//! Registers the builtin functions (`tb_*`) on every connection, so SQLite runs the same
//! Rust implementation that row-wise evaluation uses.

use std::sync::Arc;

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::Connection;

use super::codec::decode;
use crate::expr::func::cast;
use crate::expr::Func;
use crate::store::sql::parse_types;
use crate::types::{ColumnType, Value};

type Types = Vec<Option<ColumnType>>;

pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    for func in Func::ALL {
        conn.create_scalar_function(&format!("tb_{}", func.name()), -1, flags, move |ctx| {
            let n = ctx.len();
            if n == 0 {
                return Ok(ToSqlOutput::Owned(SqlValue::Null));
            }
            let types = arg_types(ctx, n - 1)?;
            // `length` of text is the hot builtin of computed columns: count in place, without
            // copying the text (the same result as `Func::apply`, which counts chars).
            if func == Func::Length {
                if let rusqlite::types::ValueRef::Text(bytes) = ctx.get_raw(0) {
                    let chars = String::from_utf8_lossy(bytes).chars().count();
                    return Ok(ToSqlOutput::Owned(SqlValue::Integer(chars as i64)));
                }
            }
            let mut args = Vec::with_capacity(n - 1);
            for i in 0..n - 1 {
                args.push(decode(ctx.get_raw(i), types.get(i).copied().flatten()).unwrap_or(Value::Null));
            }
            Ok(ToSqlOutput::Owned(encode(func.apply(&args))))
        })?;
    }
    conn.create_scalar_function("tb_cast", 3, flags, |ctx| {
        let from = arg_types(ctx, 1)?.first().copied().flatten();
        let to = arg_types(ctx, 2)?.first().copied().flatten();
        let v = decode(ctx.get_raw(0), from).unwrap_or(Value::Null);
        Ok(ToSqlOutput::Owned(match to {
            Some(to) => encode(cast(&v, to)),
            None => SqlValue::Null,
        }))
    })
}

/// The parsed type list in argument `i` (a constant), cached by SQLite across rows.
fn arg_types(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Arc<Types>> {
    ctx.get_or_create_aux(i as i32, |raw| -> Result<Types, rusqlite::Error> {
        Ok(parse_types(raw.as_str().unwrap_or("")))
    })
}

/// A value as SQLite stores it.
pub(super) fn encode(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(i) | Value::Timestamp(i) => SqlValue::Integer(i),
        Value::Date(d) => SqlValue::Integer(i64::from(d)),
        Value::Bool(b) => SqlValue::Integer(i64::from(b)),
        Value::Float(f) if f.is_nan() => SqlValue::Null,
        Value::Float(f) => SqlValue::Real(f),
        Value::String(s) => SqlValue::Text(s),
        Value::Json(j) => SqlValue::Text(j.to_string()),
        Value::Bytes(b) => SqlValue::Blob(b),
    }
}

/// A Rust function that the SQL of one statement calls as `name(rowid, args...)`: the
/// physical rowid of the row it is evaluated for, then its arguments decoded by `types`.
/// Returning `Err` fails the statement with that message.
pub(crate) struct RowFunction {
    pub(crate) name: String,
    pub(crate) types: Vec<ColumnType>,
    pub(crate) call: Box<dyn FnMut(i64, Vec<Value>) -> Result<Value, String> + Send>,
}

impl super::Tx<'_> {
    /// Runs `run` with `functions` registered on this transaction's connection, and removes
    /// them after, whether `run` succeeds or not.
    pub(crate) fn with_functions<T>(
        &self,
        functions: Vec<RowFunction>,
        run: impl FnOnce(&Self) -> crate::error::Result<T>,
    ) -> crate::error::Result<T> {
        let names: Vec<(String, i32)> = functions.iter().map(|f| (f.name.clone(), f.types.len() as i32 + 1)).collect();
        let conn = self.sqlite()?;
        let mut registered = Ok(());
        for RowFunction { name, types, mut call } in functions {
            let flags = FunctionFlags::SQLITE_UTF8;
            let added = conn.create_scalar_function(&name, types.len() as i32 + 1, flags, move |ctx| {
                let rowid: i64 = ctx.get(0)?;
                let mut args = Vec::with_capacity(types.len());
                for (i, ty) in types.iter().enumerate() {
                    args.push(decode(ctx.get_raw(i + 1), Some(*ty)).unwrap_or(Value::Null));
                }
                match call(rowid, args) {
                    Ok(v) => Ok(ToSqlOutput::Owned(encode(v))),
                    Err(message) => Err(rusqlite::Error::UserFunctionError(message.into())),
                }
            });
            if let Err(e) = added {
                registered = Err(self.fail(e));
                break;
            }
        }
        let out = registered.and_then(|()| run(self));
        for (name, n) in names {
            // Removing a function never fails but for a name that was never added.
            let _ = conn.remove_function(&name, n);
        }
        out
    }
}
