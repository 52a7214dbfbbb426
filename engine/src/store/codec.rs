//! How each [`Value`] is encoded in SQLite and decoded back, by column type.

use rusqlite::types::{Null, ValueRef};
use rusqlite::Statement;

use crate::error::{err, Result};
use crate::types::{ColumnType, Value};

/// Binds `v` to parameter `at` (1-based) of `stmt`, each kind through rusqlite's binding of
/// its primitive type (no intermediate `ToSqlOutput`: this runs for every value written).
pub(crate) fn bind(stmt: &mut Statement<'_>, at: usize, v: &Value) -> rusqlite::Result<()> {
    match v {
        Value::Null => stmt.raw_bind_parameter(at, Null),
        Value::Int(i) | Value::Timestamp(i) => stmt.raw_bind_parameter(at, *i),
        Value::Date(d) => stmt.raw_bind_parameter(at, i64::from(*d)),
        Value::Bool(b) => stmt.raw_bind_parameter(at, i64::from(*b)),
        Value::Float(f) => stmt.raw_bind_parameter(at, *f),
        Value::String(s) => stmt.raw_bind_parameter(at, s.as_str()),
        Value::Bytes(b) => stmt.raw_bind_parameter(at, b.as_slice()),
        Value::Json(j) => stmt.raw_bind_parameter(at, j.to_string()),
    }
}

/// The type a column of Tabula type `ty` is declared with, before a backend names it
/// ([`Tx::column_type`](super::Tx::column_type)): SQLite's type, but `BOOLEAN` for `Bool`,
/// which SQLite stores as `INTEGER` and a server as a boolean (its conditions take no
/// integers).
pub(crate) fn declared_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Bool => "BOOLEAN",
        other => sql_type(other),
    }
}

/// The SQLite column type declared for a Tabula type.
pub(crate) fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Int | ColumnType::Bool | ColumnType::Timestamp | ColumnType::Date => "INTEGER",
        ColumnType::Float => "REAL",
        ColumnType::String | ColumnType::Json => "TEXT",
        ColumnType::Bytes => "BLOB",
    }
}

/// Decodes a stored or computed SQLite value as a value of type `ty` (`None`: by its
/// SQLite storage class).
pub(crate) fn decode(v: ValueRef<'_>, ty: Option<ColumnType>) -> Result<Value> {
    use ColumnType as T;
    Ok(match (ty, v) {
        (_, ValueRef::Null) => Value::Null,
        (Some(T::Bool), ValueRef::Integer(i)) => Value::Bool(i != 0),
        (Some(T::Timestamp), ValueRef::Integer(i)) => Value::Timestamp(i),
        (Some(T::Date), ValueRef::Integer(i)) => Value::Date(
            i32::try_from(i)
                .map_err(|_| err!(Storage, "stored date {i} is out of range; the catalog may be damaged"))?,
        ),
        (Some(T::Float), ValueRef::Integer(i)) => Value::Float(i as f64),
        (Some(T::Json), ValueRef::Text(t)) => Value::Json(
            serde_json::from_slice(t)
                .map_err(|e| err!(Storage, "stored JSON does not parse ({e}); the catalog may be damaged"))?,
        ),
        (_, ValueRef::Integer(i)) => Value::Int(i),
        (_, ValueRef::Real(f)) => Value::Float(f),
        (_, ValueRef::Text(t)) => Value::String(match std::str::from_utf8(t) {
            Ok(s) => s.to_owned(),
            // Tabula writes only UTF-8; text written by something else is shown, not refused.
            Err(_) => String::from_utf8_lossy(t).into_owned(),
        }),
        (_, ValueRef::Blob(b)) => Value::Bytes(b.to_vec()),
    })
}

/// A value as a server returned it (by its own type), read as a value of type `ty`: how
/// Tabula stores each type on PostgreSQL (`Bool` as boolean or integer, times and dates as
/// integers, JSON as text).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn decode_as(v: Value, ty: ColumnType) -> Result<Value> {
    use ColumnType as T;
    Ok(match (ty, v) {
        (_, Value::Null) => Value::Null,
        (T::Bool, Value::Int(i)) => Value::Bool(i != 0),
        (T::Int, Value::Bool(b)) => Value::Int(i64::from(b)),
        (T::Timestamp, Value::Int(i)) => Value::Timestamp(i),
        (T::Date, Value::Int(i)) => Value::Date(
            i32::try_from(i)
                .map_err(|_| err!(Storage, "stored date {i} is out of range; the catalog may be damaged"))?,
        ),
        (T::Float, Value::Int(i)) => Value::Float(i as f64),
        (T::Json, Value::String(t)) => Value::Json(
            serde_json::from_str(&t)
                .map_err(|e| err!(Storage, "stored JSON does not parse ({e}); the catalog may be damaged"))?,
        ),
        (_, v) => v,
    })
}
