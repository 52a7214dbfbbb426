//! Expressions as data: [`Expr`] for projections, predicates and computed columns.
//!
//! Building an expression never touches storage. An expression is type-checked against a
//! table's schema when it is used (`check`), translated to SQL where SQLite can run it
//! (`sql`), and its [`Display`](std::fmt::Display) is stable and readable: it is what errors,
//! `describe()`, history and snapshots show.

pub(crate) mod func;
mod parse;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::{ColumnType, Value};

pub use func::Func;

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
    /// A builtin function call: `lower(title)`.
    Func {
        /// The function.
        func: Func,
        /// Its arguments.
        args: Vec<Expr>,
    },
    /// `if(cond, then, otherwise)`: `then` where `cond` is true, else `otherwise`.
    If {
        /// The condition (null counts as false).
        cond: Box<Expr>,
        /// The value where it holds.
        then: Box<Expr>,
        /// The value elsewhere.
        otherwise: Box<Expr>,
    },
    /// `cast(expr as Type)`: null where the value does not convert.
    Cast {
        /// The value.
        expr: Box<Expr>,
        /// The target type.
        to: ColumnType,
    },
    /// A call of a versioned UDF: `summarize@1(text)`.
    Udf {
        /// The UDF's name.
        name: String,
        /// The UDF's version.
        version: u32,
        /// Its parameter types.
        params: Vec<ColumnType>,
        /// Its result type.
        returns: ColumnType,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// Why a computed column's cell failed (under `OnError::Ignore`): its error type or
    /// message, null where the cell has no error.
    CellError {
        /// The computed column.
        column: String,
        /// Which part of the error.
        part: ErrorPart,
    },
    /// A name for a selected expression (`expr as name`); only meaningful in `select`.
    Alias {
        /// The expression.
        expr: Box<Expr>,
        /// The output column name.
        name: String,
    },
}

/// The part of a cell error an [`Expr::CellError`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorPart {
    /// The kind: `UdfError`, `UdfPanic`, `UdfTypeError`, ...
    Type,
    /// The message.
    Message,
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
    pub(crate) fn symbol(self) -> &'static str {
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

    fn func(self, func: Func, rest: impl IntoIterator<Item = Expr>) -> Expr {
        let mut args = vec![self];
        args.extend(rest);
        Expr::Func { func, args }
    }

    /// `lower(self)`: Unicode lower case.
    pub fn lower(self) -> Expr {
        self.func(Func::Lower, [])
    }
    /// `upper(self)`: Unicode upper case.
    pub fn upper(self) -> Expr {
        self.func(Func::Upper, [])
    }
    /// `trim(self)`: without leading and trailing white space.
    pub fn trim(self) -> Expr {
        self.func(Func::Trim, [])
    }
    /// `length(self)`: characters of a String, bytes of Bytes.
    pub fn length(self) -> Expr {
        self.func(Func::Length, [])
    }
    /// `contains(self, part)`.
    pub fn contains(self, part: impl Into<Expr>) -> Expr {
        self.func(Func::Contains, [part.into()])
    }
    /// `starts_with(self, prefix)`.
    pub fn starts_with(self, prefix: impl Into<Expr>) -> Expr {
        self.func(Func::StartsWith, [prefix.into()])
    }
    /// `ends_with(self, suffix)`.
    pub fn ends_with(self, suffix: impl Into<Expr>) -> Expr {
        self.func(Func::EndsWith, [suffix.into()])
    }
    /// `substring(self, start, len)`: `len` characters from character `start` (0-based).
    pub fn substring(self, start: impl Into<Expr>, len: impl Into<Expr>) -> Expr {
        self.func(Func::Substring, [start.into(), len.into()])
    }
    /// `replace(self, from, to)`: every occurrence.
    pub fn replace(self, from: impl Into<Expr>, to: impl Into<Expr>) -> Expr {
        self.func(Func::Replace, [from.into(), to.into()])
    }
    /// `split(self, sep)`: a Json array of the parts.
    pub fn split(self, sep: impl Into<Expr>) -> Expr {
        self.func(Func::Split, [sep.into()])
    }
    /// `abs(self)`.
    pub fn abs(self) -> Expr {
        self.func(Func::Abs, [])
    }
    /// `round(self, digits)`, half away from zero.
    pub fn round(self, digits: i64) -> Expr {
        self.func(Func::Round, [lit(digits)])
    }
    /// `floor(self)`.
    pub fn floor(self) -> Expr {
        self.func(Func::Floor, [])
    }
    /// `ceil(self)`.
    pub fn ceil(self) -> Expr {
        self.func(Func::Ceil, [])
    }
    /// `sqrt(self)`: null for negative values.
    pub fn sqrt(self) -> Expr {
        self.func(Func::Sqrt, [])
    }
    /// `pow(self, exponent)`.
    pub fn pow(self, exponent: impl Into<Expr>) -> Expr {
        self.func(Func::Pow, [exponent.into()])
    }
    /// `year(self)` of a Timestamp or Date.
    pub fn year(self) -> Expr {
        self.func(Func::Year, [])
    }
    /// `month(self)`, 1 to 12.
    pub fn month(self) -> Expr {
        self.func(Func::Month, [])
    }
    /// `day(self)`, day of the month.
    pub fn day(self) -> Expr {
        self.func(Func::Day, [])
    }
    /// `hour(self)` of a Timestamp.
    pub fn hour(self) -> Expr {
        self.func(Func::Hour, [])
    }
    /// `minute(self)` of a Timestamp.
    pub fn minute(self) -> Expr {
        self.func(Func::Minute, [])
    }
    /// `second(self)` of a Timestamp.
    pub fn second(self) -> Expr {
        self.func(Func::Second, [])
    }
    /// A member of a Json object: `col("meta").get("author")`.
    pub fn get(self, key: impl Into<String>) -> Expr {
        self.func(Func::JsonGet, [lit(key.into())])
    }
    /// An element of a Json array: `col("meta").get("tags").index(0)`.
    pub fn index(self, i: i64) -> Expr {
        self.func(Func::JsonIndex, [lit(i)])
    }
    /// `cast(self as to)`: null where the value does not convert.
    pub fn cast(self, to: ColumnType) -> Expr {
        Expr::Cast { expr: Box::new(self), to }
    }
    /// The error type of this computed column's cell (null where it has none).
    pub fn errortype(self) -> Expr {
        self.cell_error(ErrorPart::Type)
    }
    /// The error message of this computed column's cell (null where it has none).
    pub fn errormsg(self) -> Expr {
        self.cell_error(ErrorPart::Message)
    }
    fn cell_error(self, part: ErrorPart) -> Expr {
        match self {
            Expr::Column(column) => Expr::CellError { column, part },
            // Not a column: leave a call that type-checking rejects with a clear message.
            other => Expr::CellError { column: format!("({other})"), part },
        }
    }

    /// True when the expression calls a UDF (so it is evaluated in Rust, not in SQL).
    pub fn has_udf(&self) -> bool {
        let mut found = false;
        self.visit(&mut |e| found |= matches!(e, Expr::Udf { .. }));
        found
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

    /// The names of the columns this expression reads: their values, or their errors
    /// (`errortype(c)`, `errormsg(c)`).
    pub fn columns(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.visit(&mut |e| match e {
            Expr::Column(name) | Expr::CellError { column: name, .. } => {
                out.insert(name.clone());
            }
            _ => {}
        });
        out
    }

    /// This expression with each `errortype(c)` / `errormsg(c)` replaced by `with(c, part)`.
    pub(crate) fn replace_cell_errors(&self, with: &impl Fn(&str, ErrorPart) -> Expr) -> Expr {
        let map = |e: &Expr| Box::new(e.replace_cell_errors(with));
        match self {
            Expr::CellError { column, part } => with(column, *part),
            Expr::Column(_) | Expr::Literal(_) => self.clone(),
            Expr::Unary { op, arg } => Expr::Unary { op: *op, arg: map(arg) },
            Expr::Binary { op, left, right } => Expr::Binary { op: *op, left: map(left), right: map(right) },
            Expr::Alias { expr, name } => Expr::Alias { expr: map(expr), name: name.clone() },
            Expr::Func { func, args } => {
                Expr::Func { func: *func, args: args.iter().map(|a| a.replace_cell_errors(with)).collect() }
            }
            Expr::Udf { name, version, params, returns, args } => Expr::Udf {
                name: name.clone(),
                version: *version,
                params: params.clone(),
                returns: *returns,
                args: args.iter().map(|a| a.replace_cell_errors(with)).collect(),
            },
            Expr::If { cond, then, otherwise } => {
                Expr::If { cond: map(cond), then: map(then), otherwise: map(otherwise) }
            }
            Expr::Cast { expr, to } => Expr::Cast { expr: map(expr), to: *to },
        }
    }

    /// Calls `f` on this expression and every sub-expression, parents first (a cell's error
    /// test visits its column).
    pub fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        if let Expr::CellError { column, .. } = self {
            f(&Expr::Column(column.clone()));
        }
        for child in self.children() {
            child.visit(f);
        }
    }

    /// The expression's direct sub-expressions, in order.
    pub(crate) fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Column(_) | Expr::Literal(_) | Expr::CellError { .. } => Vec::new(),
            Expr::Unary { arg, .. } => vec![arg],
            Expr::Binary { left, right, .. } => vec![left, right],
            Expr::Alias { expr, .. } | Expr::Cast { expr, .. } => vec![expr],
            Expr::Func { args, .. } | Expr::Udf { args, .. } => args.iter().collect(),
            Expr::If { cond, then, otherwise } => vec![cond, then, otherwise],
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
            Expr::Func { func, args } => {
                Expr::Func { func: *func, args: args.iter().map(|a| a.rename_columns(rename)).collect() }
            }
            Expr::Udf { name, version, params, returns, args } => Expr::Udf {
                name: name.clone(),
                version: *version,
                params: params.clone(),
                returns: *returns,
                args: args.iter().map(|a| a.rename_columns(rename)).collect(),
            },
            Expr::If { cond, then, otherwise } => Expr::If {
                cond: Box::new(cond.rename_columns(rename)),
                then: Box::new(then.rename_columns(rename)),
                otherwise: Box::new(otherwise.rename_columns(rename)),
            },
            Expr::Cast { expr, to } => Expr::Cast { expr: Box::new(expr.rename_columns(rename)), to: *to },
            Expr::CellError { column, part } => {
                Expr::CellError { column: rename(column).unwrap_or_else(|| column.clone()), part: *part }
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
            Expr::Column(_)
            | Expr::Literal(_)
            | Expr::Func { .. }
            | Expr::If { .. }
            | Expr::Cast { .. }
            | Expr::Udf { .. }
            | Expr::CellError { .. } => 9,
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
            Expr::Func { func, args } => write!(f, "{}({})", func.name(), list(args)),
            Expr::Udf { name, version, args, .. } => write!(f, "{name}@{version}({})", list(args)),
            Expr::If { cond, then, otherwise } => write!(f, "if({cond}, {then}, {otherwise})"),
            Expr::Cast { expr, to } => write!(f, "cast({expr} as {to})"),
            Expr::CellError { column, part: ErrorPart::Type } => write!(f, "errortype({column})"),
            Expr::CellError { column, part: ErrorPart::Message } => write!(f, "errormsg({column})"),
        }
    }
}

fn list(args: &[Expr]) -> String {
    args.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

/// `concat(a, b, ...)`: the strings joined; null when any part is null.
pub fn concat(parts: impl IntoIterator<Item = Expr>) -> Expr {
    Expr::Func { func: Func::Concat, args: parts.into_iter().collect() }
}

/// `coalesce(a, b, ...)`: the first argument that is not null.
pub fn coalesce(args: impl IntoIterator<Item = Expr>) -> Expr {
    Expr::Func { func: Func::Coalesce, args: args.into_iter().collect() }
}

/// Starts a conditional: `if_(cond).then(a).else_(b)`.
pub fn if_(cond: Expr) -> IfBuilder {
    IfBuilder { cond }
}

/// A conditional waiting for its `then` branch; see [`if_`].
#[derive(Debug, Clone)]
pub struct IfBuilder {
    cond: Expr,
}

impl IfBuilder {
    /// The value where the condition holds.
    pub fn then(self, value: impl Into<Expr>) -> ThenBuilder {
        ThenBuilder { cond: self.cond, then: value.into() }
    }
}

/// A conditional waiting for its `else_` branch; see [`if_`].
#[derive(Debug, Clone)]
pub struct ThenBuilder {
    cond: Expr,
    then: Expr,
}

impl ThenBuilder {
    /// The value where the condition does not hold (or is null).
    pub fn else_(self, value: impl Into<Expr>) -> Expr {
        Expr::If { cond: Box::new(self.cond), then: Box::new(self.then), otherwise: Box::new(value.into()) }
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
        check(col("t").lower().contains("x"), "contains(lower(t), \"x\")");
        check(if_(col("a").gt(1)).then("big").else_("small"), "if(a > 1, \"big\", \"small\")");
        check(col("meta").get("tags").index(0), "json_index(json_get(meta, \"tags\"), 0)");
        check(col("n").cast(ColumnType::String), "cast(n as String)");
        check(col("s").errortype(), "errortype(s)");
    }

    #[test]
    fn columns_lists_every_reference_once() {
        let e = col("a") + col("b") * col("a");
        assert_eq!(e.columns().into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
        // Reading a column's error reads that column too (it orders and guards like a value).
        let e = if_(col("c").errortype().is_null()).then(col("a")).else_(lit(0));
        assert_eq!(e.columns().into_iter().collect::<Vec<_>>(), vec!["a", "c"]);
    }

    #[test]
    fn equality_is_structural() {
        assert_eq!(col("a") + 1, col("a") + 1);
        assert_ne!(col("a") + 1, col("a") + 2);
        assert_ne!(col("a") + 1, lit(1) + col("a"));
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z_0-9]{0,3}".prop_filter("not a reserved word", |n| !super::parse::RESERVED.contains(&n.as_str()))
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![
            name().prop_map(col),
            any::<i64>().prop_map(lit),
            any::<String>().prop_map(lit),
            (-1e6f64..1e6).prop_map(lit),
            any::<bool>().prop_map(lit),
            Just(lit(Value::Null)),
            (-1_000_000_000_000_000i64..4_000_000_000_000_000).prop_map(|t| lit(Value::Timestamp(t))),
            (-100_000i32..100_000).prop_map(|d| lit(Value::Date(d))),
            proptest::collection::vec(any::<u8>(), 0..32).prop_map(|b| lit(Value::Bytes(b))),
            (any::<String>(), any::<i64>()).prop_map(|(k, v)| lit(Value::Json(serde_json::json!({ k: [v, "it's"] })))),
            name().prop_map(|n| col(n).errortype()),
        ];
        leaf.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| a + b),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| a * b.clone() - b),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| a / b.clone() % b),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| a.lt(b)),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| a.eq(b.clone()).or(b.is_null())),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| a.ge(b.clone()).and(b.is_not_null())),
                inner.clone().prop_map(|a| !a),
                inner.clone().prop_map(|a| -a),
                inner.clone().prop_map(|a| a.lower().length()),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| coalesce([a, b])),
                (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, a, b)| if_(c).then(a).else_(b)),
                inner.clone().prop_map(|a| a.cast(ColumnType::String)),
            ]
        })
    }

    /// `-5` is both `Neg(5)` and the literal `-5` in the text form; the parser reads the
    /// literal (the same value). `--5` is `Neg(-5)` and `-0` is `Neg(0)` either way.
    fn negated_literals_folded(e: Expr) -> Expr {
        let fold = |e: Box<Expr>| Box::new(negated_literals_folded(*e));
        match e {
            Expr::Unary { op: UnaryOp::Neg, arg } => match negated_literals_folded(*arg) {
                Expr::Literal(Value::Int(i)) if i > 0 => lit(-i),
                Expr::Literal(Value::Float(x)) if x.is_sign_positive() => lit(-x),
                arg => Expr::Unary { op: UnaryOp::Neg, arg: Box::new(arg) },
            },
            Expr::Unary { op, arg } => Expr::Unary { op, arg: fold(arg) },
            Expr::Binary { op, left, right } => Expr::Binary { op, left: fold(left), right: fold(right) },
            Expr::Func { func, args } => {
                Expr::Func { func, args: args.into_iter().map(negated_literals_folded).collect() }
            }
            Expr::If { cond, then, otherwise } => {
                Expr::If { cond: fold(cond), then: fold(then), otherwise: fold(otherwise) }
            }
            Expr::Cast { expr, to } => Expr::Cast { expr: fold(expr), to },
            Expr::Alias { expr, name } => Expr::Alias { expr: fold(expr), name },
            other => other,
        }
    }

    proptest! {
        /// The text form parses back to the same expression (what `describe` shows can be
        /// pasted into a filter), up to `-5` read as a literal.
        #[test]
        fn the_text_form_round_trips(e in expr(), alias in proptest::option::of(name())) {
            let e = match alias {
                Some(name) => e.alias(name),
                None => e,
            };
            let text = e.to_string();
            let back = Expr::parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
            let folded = negated_literals_folded(e);
            prop_assert_eq!(back.to_string(), folded.to_string());
            prop_assert_eq!(&back, &folded);
            prop_assert_eq!(Expr::parse(&back.to_string()).ok(), Some(back));
        }

        /// The stored (JSON) form round-trips to an equal expression with the same display
        /// (what reopening a catalog and the "ignore but different" check rely on).
        #[test]
        fn the_stored_form_round_trips(e in expr()) {
            let stored = serde_json::to_string(&e).unwrap();
            let back: Expr = serde_json::from_str(&stored).unwrap();
            prop_assert_eq!(&back, &e);
            prop_assert_eq!(back.to_string(), e.to_string());
        }

        /// Equality is structural: two expressions are equal exactly when their stored forms
        /// are, on random pairs (mostly different) and on a copy (the same).
        #[test]
        fn equality_is_the_stored_form(a in expr(), b in expr()) {
            let stored = |e: &Expr| serde_json::to_string(e).unwrap();
            prop_assert_eq!(a == b, stored(&a) == stored(&b));
            let copy: Expr = serde_json::from_str(&stored(&a)).unwrap();
            prop_assert!(copy == a);
            prop_assert!((a.clone() + lit(1)) != (a + lit(2)));
        }
    }
}
