//! Evaluation of expressions in Rust, a batch of rows at a time: for expressions that call
//! UDFs (computed columns, previews) and as the reference the SQL translation is tested
//! against. Its semantics are SQLite's: three-valued logic, exact Int/Float comparison,
//! null for division by zero and for NaN; Int overflow is null.

use std::cmp::Ordering;

use crate::error::{err, Result};
use crate::expr::func::{cast, normalize};
use crate::expr::{BinaryOp, Expr, Func, UnaryOp};
use crate::types::Value;
use crate::udf::{CellError, Registry};

/// Input rows: `rows[r][c]` is the value of column `names[c]` in row `r`.
pub(crate) struct Batch<'a> {
    pub(crate) names: &'a [String],
    pub(crate) rows: &'a [Vec<Value>],
}

/// One result a row: a value, or why that row's cell failed.
pub(crate) type Cells = Vec<std::result::Result<Value, CellError>>;

/// Whether predicate `expr` (no UDF) holds in each of `rows` (values of `names`): true only
/// where it is `true` (null, false and a failing row do not match), as a SQL filter. The
/// store is given this to run a view's filter where its SQL cannot (see `store::RowTest`).
pub(crate) fn holds(expr: &Expr, names: &[String], rows: &[Vec<Value>]) -> Result<Vec<bool>> {
    let udfs = Registry::new(crate::store::ResultsAt::Memory);
    let cells = eval(expr, &Batch { names, rows }, &udfs)?;
    Ok(cells.into_iter().map(|c| matches!(c, Ok(Value::Bool(true)))).collect())
}

/// Evaluates `expr` on every row of `batch`. Fails as a whole only when the expression
/// cannot be evaluated at all (a column missing from the batch, an unregistered UDF).
pub(crate) fn eval(expr: &Expr, batch: &Batch, udfs: &Registry) -> Result<Cells> {
    let n = batch.rows.len();
    Ok(match expr {
        Expr::Column(name) => {
            let i = batch
                .names
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| err!(UnknownColumn, "no column '{name}' in the evaluated row"))?;
            batch.rows.iter().map(|r| Ok(r[i].clone())).collect()
        }
        Expr::Literal(v) => vec![Ok(v.clone()); n],
        Expr::Alias { expr, .. } => eval(expr, batch, udfs)?,
        Expr::Unary { op, arg } => map1(eval(arg, batch, udfs)?, |a| unary(*op, a)),
        Expr::Binary { op, left, right } => {
            let (l, r) = (eval(left, batch, udfs)?, eval(right, batch, udfs)?);
            l.into_iter().zip(r).map(|(a, b)| Ok(binary(*op, &a?, &b?))).collect()
        }
        Expr::Func { func, args } => {
            let cols = args.iter().map(|a| eval(a, batch, udfs)).collect::<Result<Vec<_>>>()?;
            per_row(cols, n).into_iter().map(|row| row.map(|args| func.apply(&args))).collect()
        }
        Expr::Cast { expr, to } => map1(eval(expr, batch, udfs)?, |v| cast(&v, *to)),
        Expr::If { cond, then, otherwise } => {
            let cond = eval(cond, batch, udfs)?;
            let chosen: Vec<std::result::Result<bool, CellError>> =
                cond.into_iter().map(|c| c.map(|v| v == Value::Bool(true))).collect();
            let pick = |want: bool| -> Vec<usize> {
                chosen.iter().enumerate().filter(|(_, c)| matches!(c, Ok(b) if *b == want)).map(|(i, _)| i).collect()
            };
            let mut out: Cells = chosen.iter().map(|c| c.clone().map(|_| Value::Null)).collect();
            for (branch, rows) in [(then, pick(true)), (otherwise, pick(false))] {
                // Only the rows that take a branch evaluate it (a UDF there runs only for them).
                let sub: Vec<Vec<Value>> = rows.iter().map(|i| batch.rows[*i].clone()).collect();
                let values = eval(branch, &Batch { names: batch.names, rows: &sub }, udfs)?;
                for (i, v) in rows.into_iter().zip(values) {
                    out[i] = v;
                }
            }
            out
        }
        Expr::Udf { name, version, params, returns, args } => {
            let udf = udfs.resolve(name, *version, params, *returns)?;
            // The common case, a UDF of plain columns: copy each argument once, straight into
            // its row of arguments.
            let direct: Option<Vec<usize>> = args
                .iter()
                .map(|a| match a {
                    Expr::Column(c) => batch.names.iter().position(|n| n == c),
                    _ => None,
                })
                .collect();
            if let Some(at) = direct {
                let arg_rows = batch.rows.iter().map(|r| at.iter().map(|i| r[*i].clone()).collect()).collect();
                return Ok(udfs.call(&udf, arg_rows));
            }
            let cols = args.iter().map(|a| eval(a, batch, udfs)).collect::<Result<Vec<_>>>()?;
            let mut out: Cells = Vec::with_capacity(n);
            let mut ok = Vec::with_capacity(n);
            let mut arg_rows = Vec::with_capacity(n);
            for (i, row) in per_row(cols, n).into_iter().enumerate() {
                match row {
                    Ok(args) => {
                        ok.push(i);
                        arg_rows.push(args);
                        out.push(Ok(Value::Null));
                    }
                    Err(e) => out.push(Err(e)),
                }
            }
            for (i, v) in ok.into_iter().zip(udfs.call(&udf, arg_rows)) {
                out[i] = v;
            }
            out
        }
        Expr::CellError { .. } => {
            return Err(err!(
                InvalidExpr,
                "`{expr}` reads a stored error slot; it cannot be combined with a UDF call in one expression"
            ))
        }
    })
}

fn map1(cells: Cells, f: impl Fn(Value) -> Value) -> Cells {
    cells.into_iter().map(|c| c.map(&f)).collect()
}

/// Transposes argument columns into argument rows; a row with a failed argument fails.
fn per_row(cols: Vec<Cells>, n: usize) -> Vec<std::result::Result<Vec<Value>, CellError>> {
    let mut rows: Vec<std::result::Result<Vec<Value>, CellError>> = vec![Ok(Vec::with_capacity(cols.len())); n];
    for col in cols {
        for (row, cell) in rows.iter_mut().zip(col) {
            if let Ok(values) = row {
                match cell {
                    Ok(v) => values.push(v),
                    Err(e) => *row = Err(e),
                }
            }
        }
    }
    rows
}

fn unary(op: UnaryOp, v: Value) -> Value {
    match (op, v) {
        (UnaryOp::IsNull, v) => Value::Bool(v.is_null()),
        (UnaryOp::IsNotNull, v) => Value::Bool(!v.is_null()),
        (_, Value::Null) => Value::Null,
        (UnaryOp::Not, Value::Bool(b)) => Value::Bool(!b),
        (UnaryOp::Neg, Value::Int(i)) => Func::IntNeg.apply(&[Value::Int(i)]),
        // SQLite negates as `0 - x`, so -(0.0) is 0.0, not -0.0.
        (UnaryOp::Neg, Value::Float(f)) => Value::Float(0.0 - f),
        _ => Value::Null,
    }
}

/// One binary operator on two values, with SQLite's semantics.
pub(crate) fn binary(op: BinaryOp, a: &Value, b: &Value) -> Value {
    use BinaryOp::*;
    match op {
        And => match (truth(a), truth(b)) {
            (Some(false), _) | (_, Some(false)) => Value::Bool(false),
            (Some(true), Some(true)) => Value::Bool(true),
            _ => Value::Null,
        },
        Or => match (truth(a), truth(b)) {
            (Some(true), _) | (_, Some(true)) => Value::Bool(true),
            (Some(false), Some(false)) => Value::Bool(false),
            _ => Value::Null,
        },
        Eq | Ne | Lt | Le | Gt | Ge => match compare(a, b) {
            None => Value::Null,
            Some(o) => Value::Bool(match op {
                Eq => o == Ordering::Equal,
                Ne => o != Ordering::Equal,
                Lt => o == Ordering::Less,
                Le => o != Ordering::Greater,
                Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }),
        },
        Rem => Func::Rem.apply(&[a.clone(), b.clone()]),
        Add | Sub | Mul | Div => match (a, b) {
            (Value::Null, _) | (_, Value::Null) => Value::Null,
            (Value::Int(_), Value::Int(_)) => {
                let f = match op {
                    Add => Func::IntAdd,
                    Sub => Func::IntSub,
                    Mul => Func::IntMul,
                    _ => Func::IntDiv,
                };
                f.apply(&[a.clone(), b.clone()])
            }
            _ => match (as_f64(a), as_f64(b)) {
                (Some(x), Some(y)) => normalize(match op {
                    Add => Value::Float(x + y),
                    Sub => Value::Float(x - y),
                    Mul => Value::Float(x * y),
                    _ if y == 0.0 => Value::Null,
                    _ => Value::Float(x / y),
                }),
                _ => Value::Null,
            },
        },
    }
}

fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Orders two values as SQLite does (null: unknown).
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    use Value as V;
    Some(match (a, b) {
        (V::Null, _) | (_, V::Null) => return None,
        (V::Int(x), V::Int(y)) => x.cmp(y),
        (V::Float(x), V::Float(y)) => x.partial_cmp(y)?,
        (V::Int(x), V::Float(y)) => int_float_cmp(*x, *y),
        (V::Float(x), V::Int(y)) => int_float_cmp(*y, *x).reverse(),
        (V::Bool(x), V::Bool(y)) => x.cmp(y),
        (V::String(x), V::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (V::Timestamp(x), V::Timestamp(y)) => x.cmp(y),
        (V::Date(x), V::Date(y)) => x.cmp(y),
        (V::Bytes(x), V::Bytes(y)) => x.cmp(y),
        (V::Json(x), V::Json(y)) => x.to_string().as_bytes().cmp(y.to_string().as_bytes()),
        _ => return None,
    })
}

/// Exact comparison of an integer with a float (no rounding of the integer).
fn int_float_cmp(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    if f >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    if f < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - t)).unwrap_or(Ordering::Equal),
        o => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_are_exact_across_int_and_float() {
        assert_eq!(compare(&Value::Int(i64::MAX), &Value::Float(9.223372036854776e18)), Some(Ordering::Less));
        assert_eq!(compare(&Value::Int(3), &Value::Float(3.5)), Some(Ordering::Less));
        assert_eq!(compare(&Value::Int(-3), &Value::Float(-3.5)), Some(Ordering::Greater));
        assert_eq!(compare(&Value::Float(2.0), &Value::Int(2)), Some(Ordering::Equal));
    }

    #[test]
    fn logic_is_three_valued() {
        let (t, f, n) = (Value::Bool(true), Value::Bool(false), Value::Null);
        assert_eq!(binary(BinaryOp::And, &n, &f), f);
        assert_eq!(binary(BinaryOp::And, &n, &t), n);
        assert_eq!(binary(BinaryOp::Or, &n, &t), t);
        assert_eq!(binary(BinaryOp::Div, &Value::Float(1.0), &Value::Int(0)), n);
        assert_eq!(binary(BinaryOp::Sub, &Value::Float(f64::INFINITY), &Value::Float(f64::INFINITY)), n);
    }
}
