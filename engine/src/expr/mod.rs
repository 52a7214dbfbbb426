//! Expressions as data: [`Expr`] for projections, predicates and computed columns.
//!
//! Building an expression never touches storage. An expression is type-checked against a
//! table's schema when it is used (`check`), translated to SQL where SQLite can run it
//! (`sql`), and its [`Display`](std::fmt::Display) is stable and readable: it is what errors,
//! `describe()`, history and snapshots show.

mod check;
pub(crate) mod sql;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::Value;

pub use check::ExprType;

/// An expression over the columns of one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// A column of the table, by name.
    Column(String),
    /// A constant.
    Literal(Value),
    /// A prefix or postfix operator.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// Its operand.
        arg: Box<Expr>,
    },
    /// An infix operator.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// A name for a selected expression (`expr as name`); only meaningful in `select`.
    Alias {
        /// The expression.
        expr: Box<Expr>,
        /// The output column name.
        name: String,
    },
}

/// Operators with one operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnaryOp {
    /// Boolean negation.
    Not,
    /// Arithmetic negation.
    Neg,
    /// True when the operand is null.
    IsNull,
    /// True when the operand is not null.
    IsNotNull,
}

/// Operators with two operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (integer division for two Ints; null when dividing by zero)
    Div,
    /// `%` (null when dividing by zero)
    Rem,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `and`
    And,
    /// `or`
    Or,
}

impl BinaryOp {
    fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }

    fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 4,
            BinaryOp::Add | BinaryOp::Sub => 6,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 7,
        }
    }

    /// True for `== != < <= > >=`.
    pub fn is_comparison(self) -> bool {
        self.precedence() == 4
    }
}

/// A column reference: `col("title")`.
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Column(name.into())
}

/// A constant: `lit(3)`, `lit("text")`, `lit(Value::Null)`.
pub fn lit(value: impl Into<Value>) -> Expr {
    Expr::Literal(value.into())
}

macro_rules! binary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident),* $(,)?) => {$(
        $(#[$doc])*
        pub fn $name(self, other: impl Into<Expr>) -> Expr {
            Expr::Binary { op: BinaryOp::$op, left: Box::new(self), right: Box::new(other.into()) }
        }
    )*};
}

impl Expr {
    binary_methods! {
        /// `self == other` (null when either side is null).
        eq => Eq,
        /// `self != other`.
        ne => Ne,
        /// `self < other`.
        lt => Lt,
        /// `self <= other`.
        le => Le,
        /// `self > other`.
        gt => Gt,
        /// `self >= other`.
        ge => Ge,
        /// Boolean `and` (three-valued, as in SQL).
        and => And,
        /// Boolean `or` (three-valued, as in SQL).
        or => Or,
    }

    /// True when `self` is null.
    pub fn is_null(self) -> Expr {
        Expr::Unary { op: UnaryOp::IsNull, arg: Box::new(self) }
    }

    /// True when `self` is not null.
    pub fn is_not_null(self) -> Expr {
        Expr::Unary { op: UnaryOp::IsNotNull, arg: Box::new(self) }
    }

    /// Names the expression in a `select`: `col("a").alias("b")`.
    pub fn alias(self, name: impl Into<String>) -> Expr {
        Expr::Alias { expr: Box::new(self.unaliased().clone()), name: name.into() }
    }

    /// The expression without its alias, if it has one.
    pub fn unaliased(&self) -> &Expr {
        match self {
            Expr::Alias { expr, .. } => expr,
            other => other,
        }
    }

    /// The name of this expression as a selected column: its alias, its column name, or its
    /// display text.
    pub fn output_name(&self) -> String {
        match self {
            Expr::Alias { name, .. } => name.clone(),
            Expr::Column(name) => name.clone(),
            other => other.to_string(),
        }
    }

    /// The names of the columns this expression reads.
    pub fn columns(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.visit(&mut |e| {
            if let Expr::Column(name) = e {
                out.insert(name.clone());
            }
        });
        out
    }

    /// Calls `f` on this expression and every sub-expression, parents first.
    pub fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Column(_) | Expr::Literal(_) => {}
            Expr::Unary { arg, .. } => arg.visit(f),
            Expr::Binary { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
            Expr::Alias { expr, .. } => expr.visit(f),
        }
    }

    /// This expression with every column reference renamed by `rename` (used when a column
    /// is renamed and dependent expressions must follow).
    pub fn rename_columns(&self, rename: &impl Fn(&str) -> Option<String>) -> Expr {
        match self {
            Expr::Column(name) => Expr::Column(rename(name).unwrap_or_else(|| name.clone())),
            Expr::Literal(v) => Expr::Literal(v.clone()),
            Expr::Unary { op, arg } => Expr::Unary { op: *op, arg: Box::new(arg.rename_columns(rename)) },
            Expr::Binary { op, left, right } => Expr::Binary {
                op: *op,
                left: Box::new(left.rename_columns(rename)),
                right: Box::new(right.rename_columns(rename)),
            },
            Expr::Alias { expr, name } => {
                Expr::Alias { expr: Box::new(expr.rename_columns(rename)), name: name.clone() }
            }
        }
    }

    fn precedence(&self) -> u8 {
        match self {
            Expr::Alias { .. } => 0,
            Expr::Binary { op, .. } => op.precedence(),
            Expr::Unary { op: UnaryOp::Not, .. } => 3,
            Expr::Unary { op: UnaryOp::IsNull | UnaryOp::IsNotNull, .. } => 5,
            Expr::Unary { op: UnaryOp::Neg, .. } => 8,
            Expr::Column(_) | Expr::Literal(_) => 9,
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let child = |f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool| {
            if parens {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        match self {
            Expr::Column(name) => f.write_str(name),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Unary { op: UnaryOp::Not, arg } => {
                f.write_str("not ")?;
                child(f, arg, arg.precedence() < 3)
            }
            Expr::Unary { op: UnaryOp::Neg, arg } => {
                f.write_str("-")?;
                child(f, arg, arg.precedence() < 9)
            }
            Expr::Unary { op: op @ (UnaryOp::IsNull | UnaryOp::IsNotNull), arg } => {
                child(f, arg, arg.precedence() <= 5)?;
                f.write_str(if *op == UnaryOp::IsNull { " is null" } else { " is not null" })
            }
            Expr::Binary { op, left, right } => {
                let p = op.precedence();
                child(f, left, left.precedence() < p || (op.is_comparison() && left.precedence() == p))?;
                write!(f, " {} ", op.symbol())?;
                child(f, right, right.precedence() <= p)
            }
            Expr::Alias { expr, name } => write!(f, "{expr} as {name}"),
        }
    }
}

macro_rules! expr_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Expr {
            fn from(v: $t) -> Expr {
                Expr::Literal(Value::from(v))
            }
        }
    )*};
}
expr_from!(i64, i32, u32, f64, bool, String, &str, &String, Vec<u8>, serde_json::Value);

impl From<Value> for Expr {
    fn from(v: Value) -> Expr {
        Expr::Literal(v)
    }
}

macro_rules! arith_ops {
    ($($trait:ident $method:ident $op:ident),*) => {$(
        impl<T: Into<Expr>> std::ops::$trait<T> for Expr {
            type Output = Expr;
            fn $method(self, rhs: T) -> Expr {
                Expr::Binary { op: BinaryOp::$op, left: Box::new(self), right: Box::new(rhs.into()) }
            }
        }
    )*};
}
arith_ops!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div, Rem rem Rem);

impl std::ops::Neg for Expr {
    type Output = Expr;
    fn neg(self) -> Expr {
        Expr::Unary { op: UnaryOp::Neg, arg: Box::new(self) }
    }
}

impl std::ops::Not for Expr {
    type Output = Expr;
    fn not(self) -> Expr {
        Expr::Unary { op: UnaryOp::Not, arg: Box::new(self) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_readable_and_parenthesized_only_where_needed() {
        let check = |e: Expr, want: &str| assert_eq!(e.to_string(), want);
        check(col("a") + 1, "a + 1");
        check((col("a") + 1) * col("b"), "(a + 1) * b");
        check(col("a") + col("b") * 2, "a + b * 2");
        check(col("a") - (col("b") - 1), "a - (b - 1)");
        check(col("a").gt(1).and(col("b").is_null()), "a > 1 and b is null");
        check(!(col("a").eq("x").or(col("b").lt(2.5))), "not (a == \"x\" or b < 2.5)");
        check(-(col("a") + 1), "-(a + 1)");
        check((col("a") + 1).alias("b"), "a + 1 as b");
    }

    #[test]
    fn columns_lists_every_reference_once() {
        let e = col("a") + col("b") * col("a");
        assert_eq!(e.columns().into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn equality_is_structural() {
        assert_eq!(col("a") + 1, col("a") + 1);
        assert_ne!(col("a") + 1, col("a") + 2);
        assert_ne!(col("a") + 1, lit(1) + col("a"));
    }
}
