//! Type-checking of expressions against a table schema.

use crate::error::{err, Result};
use crate::expr::func::castable;
use crate::expr::{BinaryOp, Expr, UnaryOp};
use crate::schema::TableSchema;
use crate::types::ColumnType;

/// The type of an expression: `ty` is `None` only for a bare null literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExprType {
    /// The value type, if known.
    pub ty: Option<ColumnType>,
    /// Whether the expression can be null.
    pub nullable: bool,
}

impl ExprType {
    fn of(ty: ColumnType, nullable: bool) -> ExprType {
        ExprType { ty: Some(ty), nullable }
    }
}

fn name(t: Option<ColumnType>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "Null".into())
}

impl Expr {
    /// The type of this expression over `schema`, or an error naming the expression, the
    /// offending part and what would fix it.
    pub fn check(&self, schema: &TableSchema) -> Result<ExprType> {
        self.check_inner(schema).map_err(|e| {
            if e.message().starts_with("expression ") {
                e
            } else {
                e.context(format_args!("expression `{self}`"))
            }
        })
    }

    fn check_inner(&self, schema: &TableSchema) -> Result<ExprType> {
        Ok(match self {
            Expr::Column(name) => match schema.column(name) {
                Some(c) => ExprType::of(c.ty, c.nullable),
                None => {
                    return Err(err!(
                        UnknownColumn,
                        "no column '{name}' (the columns are: {})",
                        schema.names().join(", ")
                    ))
                }
            },
            Expr::Literal(v) => ExprType { ty: v.column_type(), nullable: v.is_null() },
            Expr::Alias { expr, .. } => expr.check_inner(schema)?,
            Expr::Func { func, args } => {
                let mut types = Vec::with_capacity(args.len());
                let mut nullable = func.may_yield_null();
                for a in args {
                    let t = a.check_inner(schema)?;
                    types.push(t.ty);
                    nullable |= t.nullable;
                }
                let ty = func.result_type(&types).map_err(|why| err!(InvalidExpr, "{why}"))?;
                ExprType::of(ty, nullable)
            }
            Expr::If { cond, then, otherwise } => {
                let c = cond.check_inner(schema)?;
                if !matches!(c.ty, None | Some(ColumnType::Bool)) {
                    return Err(err!(InvalidExpr, "the condition of if() must be Bool, found {} in `{cond}`", name(c.ty)));
                }
                let (a, b) = (then.check_inner(schema)?, otherwise.check_inner(schema)?);
                let ty = match (a.ty, b.ty) {
                    (Some(x), Some(y)) if x != y => {
                        return Err(err!(
                            InvalidExpr,
                            "the branches of if() have different types ({x} and {y}); cast one (`.cast(ColumnType::{y})`)"
                        ))
                    }
                    (x, y) => x.or(y),
                };
                ExprType { ty, nullable: a.nullable || b.nullable || ty.is_none() }
            }
            Expr::Cast { expr, to } => {
                let t = expr.check_inner(schema)?;
                if let Some(from) = t.ty {
                    if !castable(from, *to) {
                        return Err(err!(InvalidExpr, "cannot cast {from} to {to}"));
                    }
                }
                ExprType::of(*to, true)
            }
            Expr::Udf { name: udf, version, params, returns, args } => {
                if args.len() != params.len() {
                    return Err(err!(
                        InvalidExpr,
                        "{udf}@{version} takes {} argument(s), found {}",
                        params.len(),
                        args.len()
                    ));
                }
                for (i, (a, want)) in args.iter().zip(params).enumerate() {
                    let t = a.check_inner(schema)?;
                    let fits = match t.ty {
                        None => true,
                        Some(found) => found == *want || (found == ColumnType::Int && *want == ColumnType::Float),
                    };
                    if !fits {
                        return Err(err!(
                            InvalidExpr,
                            "argument {} of {udf}@{version} must be {want}, found {} in `{a}`",
                            i + 1,
                            name(t.ty)
                        ));
                    }
                }
                ExprType::of(*returns, true)
            }
            Expr::CellError { column, .. } => match schema.column(column) {
                Some(c) if c.is_computed() => ExprType::of(ColumnType::String, true),
                Some(_) => {
                    return Err(err!(
                        InvalidExpr,
                        "'{column}' is a stored column; errortype() and errormsg() read computed columns"
                    ))
                }
                None => {
                    return Err(err!(
                        InvalidExpr,
                        "errortype() and errormsg() take a computed column by name (`col(\"summary\").errortype()`), found `{column}`"
                    ))
                }
            },
            Expr::Unary { op, arg } => {
                let a = arg.check_inner(schema)?;
                match op {
                    UnaryOp::IsNull | UnaryOp::IsNotNull => ExprType::of(ColumnType::Bool, false),
                    UnaryOp::Not => match a.ty {
                        None | Some(ColumnType::Bool) => ExprType::of(ColumnType::Bool, a.nullable),
                        Some(t) => return Err(err!(InvalidExpr, "`not` needs a Bool, found {t} in `{arg}`")),
                    },
                    UnaryOp::Neg => match a.ty {
                        None => ExprType { ty: None, nullable: true },
                        Some(t) if t.is_numeric() => ExprType::of(t, a.nullable),
                        Some(t) => return Err(err!(InvalidExpr, "`-` needs an Int or Float, found {t} in `{arg}`")),
                    },
                }
            }
            Expr::Binary { op, left, right } => {
                let l = left.check_inner(schema)?;
                let r = right.check_inner(schema)?;
                let nullable = l.nullable || r.nullable;
                match op {
                    BinaryOp::And | BinaryOp::Or => {
                        for (side, t) in [(left, l.ty), (right, r.ty)] {
                            if !matches!(t, None | Some(ColumnType::Bool)) {
                                return Err(err!(
                                    InvalidExpr,
                                    "`{}` needs Bool operands, found {} in `{side}`",
                                    op.symbol(),
                                    name(t)
                                ));
                            }
                        }
                        ExprType::of(ColumnType::Bool, nullable)
                    }
                    op if op.is_comparison() => {
                        let comparable = match (l.ty, r.ty) {
                            (None, _) | (_, None) => true,
                            (Some(a), Some(b)) => a == b || (a.is_numeric() && b.is_numeric()),
                        };
                        if !comparable {
                            return Err(err!(
                                InvalidExpr,
                                "cannot compare {} with {} (`{left}` {} `{right}`); cast one side",
                                name(l.ty),
                                name(r.ty),
                                op.symbol()
                            ));
                        }
                        ExprType::of(ColumnType::Bool, nullable)
                    }
                    op => {
                        let ty = match (l.ty, r.ty) {
                            (Some(ColumnType::Int), Some(ColumnType::Int)) => Some(ColumnType::Int),
                            (Some(a), Some(b)) if a.is_numeric() && b.is_numeric() => Some(ColumnType::Float),
                            (None, Some(t)) | (Some(t), None) if t.is_numeric() => Some(t),
                            (None, None) => None,
                            _ => {
                                return Err(err!(
                                    InvalidExpr,
                                    "cannot apply `{}` to {} and {}; arithmetic needs Int or Float",
                                    op.symbol(),
                                    name(l.ty),
                                    name(r.ty)
                                ))
                            }
                        };
                        let may_divide_by_zero = matches!(op, BinaryOp::Div | BinaryOp::Rem);
                        ExprType { ty, nullable: nullable || may_divide_by_zero || ty.is_none() }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::expr::{col, lit};
    use crate::schema::Schema;
    use crate::types::Value;

    fn schema() -> TableSchema {
        Schema::new()
            .required("n", ColumnType::Int)
            .nullable("x", ColumnType::Float)
            .required("s", ColumnType::String)
            .required("b", ColumnType::Bool)
            .to_table_schema()
            .unwrap()
    }

    #[test]
    fn types_follow_the_operands() {
        let s = schema();
        let t = |e: Expr| e.check(&s).unwrap();
        assert_eq!(t(col("n") + 1), ExprType::of(ColumnType::Int, false));
        assert_eq!(t(col("n") + col("x")), ExprType::of(ColumnType::Float, true));
        assert_eq!(t(col("n") / 2), ExprType::of(ColumnType::Int, true));
        assert_eq!(t(col("s").eq("a").and(col("b"))), ExprType::of(ColumnType::Bool, false));
        assert_eq!(t(col("x").is_null()), ExprType::of(ColumnType::Bool, false));
        assert_eq!(t(col("n") + lit(Value::Null)), ExprType::of(ColumnType::Int, true));
    }

    #[test]
    fn errors_name_the_expression_and_the_problem() {
        let s = schema();
        let e = (col("s") + 1).check(&s).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidExpr);
        assert_eq!(
            e.message(),
            "expression `s + 1`: cannot apply `+` to String and Int; arithmetic needs Int or Float"
        );
        let e = col("nope").gt(1).check(&s).unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnknownColumn);
        assert_eq!(e.message(), "expression `nope > 1`: no column 'nope' (the columns are: n, x, s, b)");
        let e = col("s").lt(3).check(&s).unwrap_err();
        assert!(e.message().contains("cannot compare String with Int"), "{e}");
    }
}
