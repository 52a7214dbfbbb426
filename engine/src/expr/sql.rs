//! Translation of expressions to SQLite SQL. Literals become bound parameters (never
//! inlined text), and column references are resolved by the caller to physical names or to
//! other SQL (the new value of a column inside an update).

use crate::error::{err, Result};
use crate::expr::{BinaryOp, Expr, UnaryOp};
use crate::types::Value;

/// Collects the bound parameters of one SQL statement while expressions are translated.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pub(crate) values: Vec<Value>,
}

impl Params {
    /// A placeholder for `value`.
    pub(crate) fn push(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("?{}", self.values.len())
    }
}

/// `expr` as SQL. `resolve` maps a column name to the SQL that yields its value.
pub(crate) fn to_sql(expr: &Expr, resolve: &dyn Fn(&str) -> Option<String>, params: &mut Params) -> Result<String> {
    Ok(match expr {
        Expr::Column(name) => resolve(name).ok_or_else(|| err!(UnknownColumn, "no column '{name}'"))?,
        Expr::Literal(Value::Null) => "NULL".to_string(),
        Expr::Literal(v) => params.push(v.clone()),
        Expr::Alias { expr, .. } => to_sql(expr, resolve, params)?,
        Expr::Unary { op, arg } => {
            let a = to_sql(arg, resolve, params)?;
            match op {
                UnaryOp::Not => format!("(NOT {a})"),
                UnaryOp::Neg => format!("(-{a})"),
                UnaryOp::IsNull => format!("({a} IS NULL)"),
                UnaryOp::IsNotNull => format!("({a} IS NOT NULL)"),
            }
        }
        Expr::Binary { op, left, right } => {
            let l = to_sql(left, resolve, params)?;
            let r = to_sql(right, resolve, params)?;
            let sym = match op {
                BinaryOp::Add => "+",
                BinaryOp::Sub => "-",
                BinaryOp::Mul => "*",
                BinaryOp::Div => "/",
                BinaryOp::Rem => "%",
                BinaryOp::Eq => "=",
                BinaryOp::Ne => "<>",
                BinaryOp::Lt => "<",
                BinaryOp::Le => "<=",
                BinaryOp::Gt => ">",
                BinaryOp::Ge => ">=",
                BinaryOp::And => "AND",
                BinaryOp::Or => "OR",
            };
            format!("({l} {sym} {r})")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::col;

    #[test]
    fn literals_are_parameters_and_columns_are_resolved() {
        let mut params = Params::default();
        let e = col("a").gt(1).and(col("b").eq("x'; drop table t; --"));
        let sql = to_sql(&e, &|n| Some(format!("c_{n}")), &mut params).unwrap();
        assert_eq!(sql, "((c_a > ?1) AND (c_b = ?2))");
        assert_eq!(params.values, vec![Value::Int(1), Value::from("x'; drop table t; --")]);
    }
}
