//! Translation of expressions to SQLite SQL. Literals become bound parameters (never
//! inlined text), and column references are resolved by the caller to physical names or to
//! other SQL (the new value of a column inside an update).
//!
//! Operators whose SQLite semantics match Tabula's (comparisons, boolean logic, Float
//! arithmetic) run natively; Int arithmetic and every builtin function run as `tb_*`
//! functions that `store` registers, whose implementation is the Rust one in `func`.
//!
//! For a PostgreSQL server (`Params::server`), which cannot call Tabula's functions, the
//! same translation writes what the server computes with Tabula's meaning in its own SQL
//! (`server_*` below: typed literals, guarded Int arithmetic, a few builtins), and
//! `portable_*` tell callers which expressions those are; the rest they evaluate in Rust.

use crate::error::{err, Result};
use crate::expr::{BinaryOp, ErrorPart, Expr, Func, UnaryOp};
use crate::schema::TableSchema;
use crate::store::TableMeta;
use crate::types::{ColumnType, Value, Version};

/// Collects the bound parameters of one SQL statement while expressions are translated.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pub(crate) values: Vec<Value>,
    /// When set, UDF calls translate to `tbu_<k>(rowid, args...)`, the k-th call collected
    /// here, for the caller to register as functions of the statement; when not, a UDF call
    /// cannot be translated.
    pub(crate) udf_calls: Option<Vec<UdfCall>>,
    /// The SQL is for a PostgreSQL server: builtins it has with Tabula's meaning are written
    /// as its own functions (see [`server_function`]).
    pub(crate) server: bool,
}

/// A UDF call in an expression translated to SQL: which UDF it names.
#[derive(Debug, Clone)]
pub(crate) struct UdfCall {
    pub(crate) name: String,
    pub(crate) version: u32,
    pub(crate) params: Vec<ColumnType>,
    pub(crate) returns: ColumnType,
}

impl super::Tx<'_> {
    /// The parameters of a statement of this transaction (a server's SQL writes some
    /// builtins as its own functions: see [`server_function`]).
    pub(crate) fn params(&self) -> Params {
        Params { server: self.on_server(), ..Params::default() }
    }
}

impl Params {
    /// A placeholder for `value`.
    pub(crate) fn push(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("?{}", self.values.len())
    }

    /// A placeholder for the integer `n` (a version, a row id, a page's size): values that
    /// change from call to call are bound, never written into a statement (see
    /// `exec::ran`). Typed on a server, which cannot infer a parameter's type in a select
    /// list.
    pub(crate) fn int(&mut self, n: i64) -> String {
        let placeholder = self.push(Value::Int(n));
        match self.server {
            true => format!("CAST({placeholder} AS BIGINT)"),
            false => placeholder,
        }
    }

    /// A placeholder for version `v` (see [`Params::int`]).
    pub(crate) fn version(&mut self, v: Version) -> String {
        self.int(v.0 as i64)
    }

    /// `piece`'s SQL, its values bound after these (its placeholders renumbered).
    pub(crate) fn splice(&mut self, piece: &Piece) -> String {
        let base = self.values.len();
        let mut out = String::with_capacity(piece.sql.len() + 8);
        renumber(&piece.sql, &mut out, |n| n + base);
        self.values.extend(piece.values.iter().cloned());
        out
    }
}

/// Version `v` as a bound value.
pub(crate) fn version_value(v: Version) -> Value {
    Value::Int(v.0 as i64)
}

/// SQL with its own bound values, numbered from `?1`: a part of statements that is used in
/// some and not others (a read's outputs, filters, order keys), so that each statement binds
/// exactly the values it holds ([`Params::splice`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Piece {
    pub(crate) sql: String,
    pub(crate) values: Vec<Value>,
}

impl Piece {
    /// Plain SQL, binding nothing.
    pub(crate) fn plain(sql: impl Into<String>) -> Piece {
        Piece { sql: sql.into(), values: Vec::new() }
    }

    /// `expr` as SQL over `meta`'s columns (see [`sql_for_read`]), for a server's SQL or not.
    pub(crate) fn read(meta: &TableMeta, expr: &Expr, server: bool) -> Result<Piece> {
        let mut params = Params { server, ..Params::default() };
        let sql = sql_for_read(meta, expr, &mut params)?;
        Ok(Piece { sql, values: params.values })
    }
}

/// Copies `sql` to `out` with every parameter `?N` renumbered by `to`. (Tabula's generated SQL
/// binds every literal, so a `?` is never inside a quoted string.)
pub(crate) fn renumber(sql: &str, out: &mut String, to: impl Fn(usize) -> usize) {
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '?' {
            continue;
        }
        let mut n = 0usize;
        let mut digits = false;
        while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
            n = n * 10 + (d as usize - '0' as usize);
            digits = true;
            chars.next();
        }
        if digits {
            out.push_str(&to(n).to_string());
        }
    }
}

/// The SQL name of a column's error slot, as `resolve` is asked for it.
pub(crate) fn error_slot(column: &str) -> String {
    format!("{column}#error")
}

/// `expr` as SQL. `resolve` maps a column name (or [`error_slot`] of one) to the SQL that
/// yields its value; `schema` gives the column types.
pub(crate) fn to_sql(
    expr: &Expr,
    schema: &TableSchema,
    resolve: &dyn Fn(&str) -> Option<String>,
    params: &mut Params,
) -> Result<String> {
    let ty = |e: &Expr| e.check(schema).ok().and_then(|t| t.ty);
    let sql = |e: &Expr, params: &mut Params| to_sql(e, schema, resolve, params);
    Ok(match expr {
        Expr::Column(name) => resolve(name).ok_or_else(|| err!(UnknownColumn, "no column '{name}'"))?,
        Expr::Literal(Value::Null) => "NULL".to_string(),
        Expr::Literal(v) => {
            let placeholder = params.push(v.clone());
            match v.column_type().filter(|_| params.server) {
                Some(ty) => server_literal(&placeholder, ty),
                None => placeholder,
            }
        }
        Expr::Alias { expr, .. } => sql(expr, params)?,
        Expr::Unary { op, arg } => {
            // Whether a cell failed: its error slot, as a null test (the same on every backend).
            if let (UnaryOp::IsNull | UnaryOp::IsNotNull, Expr::CellError { column, .. }) = (op, &**arg) {
                let slot = resolve(&error_slot(column))
                    .ok_or_else(|| err!(InvalidExpr, "'{column}' has no error slot (is it a computed column?)"))?;
                let test = if *op == UnaryOp::IsNull { "IS NULL" } else { "IS NOT NULL" };
                return Ok(format!("({slot} {test})"));
            }
            let a = sql(arg, params)?;
            match op {
                UnaryOp::Not => format!("(NOT {a})"),
                UnaryOp::Neg if ty(arg) == Some(ColumnType::Int) && params.server => server_int_neg(&a),
                UnaryOp::Neg if ty(arg) == Some(ColumnType::Int) => call(Func::IntNeg, &[a], &[ty(arg)]),
                UnaryOp::Neg => format!("(-{a})"),
                UnaryOp::IsNull => format!("({a} IS NULL)"),
                UnaryOp::IsNotNull => format!("({a} IS NOT NULL)"),
            }
        }
        Expr::Binary { op, left, right } => {
            let (lt, rt) = (ty(left), ty(right));
            let l = sql(left, params)?;
            let r = sql(right, params)?;
            let ints = lt == Some(ColumnType::Int) && rt == Some(ColumnType::Int);
            let int_func = match op {
                BinaryOp::Add if ints => Some(Func::IntAdd),
                BinaryOp::Sub if ints => Some(Func::IntSub),
                BinaryOp::Mul if ints => Some(Func::IntMul),
                BinaryOp::Div if ints => Some(Func::IntDiv),
                BinaryOp::Rem => Some(Func::Rem),
                _ => None,
            };
            if let Some(sql) = server_int_op(*op, &l, &r).filter(|_| ints && params.server) {
                return Ok(sql);
            }
            if let Some(func) = int_func {
                return Ok(call(func, &[l, r], &[lt, rt]));
            }
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
        Expr::Func { func, args } => {
            let mut parts = Vec::with_capacity(args.len());
            let mut types = Vec::with_capacity(args.len());
            for a in args {
                parts.push(sql(a, params)?);
                types.push(ty(a));
            }
            if let (true, Some(sql)) = (params.server, server_guarded_function(*func, &parts, &types)) {
                return Ok(sql);
            }
            match server_function(*func, &types).filter(|_| params.server) {
                Some(name) => format!("{name}({})", parts.join(", ")),
                None => call(*func, &parts, &types),
            }
        }
        Expr::If { cond, then, otherwise } => {
            format!(
                "(CASE WHEN {} THEN {} ELSE {} END)",
                sql(cond, params)?,
                sql(then, params)?,
                sql(otherwise, params)?
            )
        }
        Expr::Cast { expr, to } => {
            let from = ty(expr).map(|t| t.to_string()).unwrap_or_else(|| "Null".into());
            format!("tb_cast({}, '{from}', '{to}')", sql(expr, params)?)
        }
        Expr::CellError { column, part } => {
            let slot = resolve(&error_slot(column))
                .ok_or_else(|| err!(InvalidExpr, "'{column}' has no error slot (is it a computed column?)"))?;
            match part {
                ErrorPart::Type => format!("substr({slot}, 1, instr({slot}, ':') - 1)"),
                ErrorPart::Message => format!("substr({slot}, instr({slot}, ':') + 2)"),
            }
        }
        Expr::Udf { name, version, params: types, returns, args } => {
            let Some(calls) = params.udf_calls.as_mut() else {
                return Err(err!(
                    InvalidExpr,
                    "{name}@{version} is a UDF; expressions with UDFs are evaluated in Rust"
                ));
            };
            let k = calls.len();
            calls.push(UdfCall { name: name.clone(), version: *version, params: types.clone(), returns: *returns });
            let mut parts = vec!["_rowid_".to_string()];
            for a in args {
                parts.push(sql(a, params)?);
            }
            format!("tbu_{k}({})", parts.join(", "))
        }
    })
}

/// A literal's parameter in a server's SQL, cast to its type: a server types a parameter by
/// where it first appears, and one beside another parameter (`?1 >= ?2`) or alone (a
/// selected literal) would be text. Text compares byte by byte (`COLLATE "C"`), as
/// Tabula's text columns do there, and not in the database's locale.
fn server_literal(placeholder: &str, ty: ColumnType) -> String {
    match ty {
        ColumnType::Int | ColumnType::Timestamp | ColumnType::Date => format!("CAST({placeholder} AS BIGINT)"),
        ColumnType::Float => format!("CAST({placeholder} AS DOUBLE PRECISION)"),
        ColumnType::Bool => format!("CAST({placeholder} AS BOOLEAN)"),
        ColumnType::String | ColumnType::Json => format!("(CAST({placeholder} AS TEXT) COLLATE \"C\")"),
        ColumnType::Bytes => format!("CAST({placeholder} AS BYTEA)"),
    }
}

/// `tb_<func>(args..., 'T1,T2')`: the trailing text tells the function how to decode its
/// arguments.
fn call(func: Func, args: &[String], types: &[Option<ColumnType>]) -> String {
    let types: Vec<String> = types.iter().map(|t| t.map(|t| t.to_string()).unwrap_or_else(|| "Null".into())).collect();
    let mut all = args.to_vec();
    all.push(format!("'{}'", types.join(",")));
    format!("tb_{}({})", func.name(), all.join(", "))
}

/// Parses the trailing type list of a `tb_*` call.
pub(crate) fn parse_types(text: &str) -> Vec<Option<ColumnType>> {
    text.split(',')
        .map(|t| match t {
            "Int" => Some(ColumnType::Int),
            "Float" => Some(ColumnType::Float),
            "Bool" => Some(ColumnType::Bool),
            "String" => Some(ColumnType::String),
            "Timestamp" => Some(ColumnType::Timestamp),
            "Date" => Some(ColumnType::Date),
            "Json" => Some(ColumnType::Json),
            "Bytes" => Some(ColumnType::Bytes),
            _ => None,
        })
        .collect()
}

/// Whether `expr`, as a filter over the columns of `schema`, is SQL a PostgreSQL server runs
/// with Tabula's meaning: comparisons of [`portable_operand`]s, Bool columns and literals,
/// joined by AND, OR and NOT, IS \[NOT\] NULL, whether a cell failed, and `contains`,
/// `starts_with` and `ends_with` of such text values. Anything else
/// (functions, casts, other arithmetic) needs Tabula's SQL functions, so a server catalog
/// evaluates it in Rust.
pub(crate) fn portable_predicate(expr: &Expr, schema: &TableSchema) -> bool {
    let predicate = |e: &Expr| portable_predicate(e, schema);
    let operand = |e: &Expr| portable_operand(e, schema);
    match expr {
        Expr::Alias { expr, .. } => predicate(expr),
        Expr::Binary { op: BinaryOp::And | BinaryOp::Or, left, right } => predicate(left) && predicate(right),
        Expr::Binary {
            op: BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge,
            left,
            right,
        } => operand(left) && operand(right) && exact_on_server(left, right, schema),
        Expr::Unary { op: UnaryOp::Not, arg } => predicate(arg),
        // A Bool column or literal: a server stores Bool as a boolean.
        Expr::Column(_) | Expr::Literal(Value::Bool(_)) => true,
        Expr::Unary { op: UnaryOp::IsNull | UnaryOp::IsNotNull, arg } => {
            operand(arg) || matches!(**arg, Expr::CellError { .. })
        }
        // Text tests (see `server_guarded_function`).
        Expr::Func { func: Func::Contains | Func::StartsWith | Func::EndsWith, args } => {
            let text = |e: &Expr| e.check(schema).ok().and_then(|t| t.ty) == Some(ColumnType::String);
            args.len() == 2 && args.iter().all(|a| text(a) && operand(a))
        }
        _ => false,
    }
}

/// Whether a server compares `left` with `right` as Tabula does. Tabula compares an Int with
/// a Float exactly (as SQLite does: 2^53 + 1 is greater than 2^53); a server converts the
/// Int to a Float first, which is exact only for an Int of at most 2^53 in magnitude: so
/// only such an Int literal may meet a Float there.
fn exact_on_server(left: &Expr, right: &Expr, schema: &TableSchema) -> bool {
    let ty = |e: &Expr| e.check(schema).ok().and_then(|t| t.ty);
    let small_int_literal = |e: &Expr| matches!(e, Expr::Literal(Value::Int(v)) if v.unsigned_abs() <= 1 << 53);
    match (ty(left), ty(right)) {
        (Some(ColumnType::Int), Some(ColumnType::Float)) => small_int_literal(left),
        (Some(ColumnType::Float), Some(ColumnType::Int)) => small_int_literal(right),
        _ => true,
    }
}

/// The PostgreSQL function that computes builtin `func` of arguments of `types` exactly as
/// Tabula does, if there is one: `length` of text counts characters (`char_length`; a server
/// holds no NUL, which SQLite's `length` stops at, and its text is UTF-8, which
/// [`super::pg`] checks at connect), of bytes counts bytes (`octet_length`); `abs` of a
/// Float; `coalesce` of values of one type (a server would convert an Int to Float where
/// Tabula keeps each value's own).
pub(crate) fn server_function(func: Func, types: &[Option<ColumnType>]) -> Option<&'static str> {
    match (func, types) {
        (Func::Length, [Some(ColumnType::String)]) => Some("char_length"),
        (Func::Length, [Some(ColumnType::Bytes)]) => Some("octet_length"),
        (Func::Abs, [Some(ColumnType::Float)]) => Some("abs"),
        (Func::Coalesce, [first, rest @ ..]) if rest.iter().all(|t| t == first || t.is_none()) => Some("COALESCE"),
        _ => None,
    }
}

/// Builtins a server computes with Tabula's meaning through more than one of its functions:
/// `contains`, `starts_with` and `ends_with` of text as byte comparisons, as Rust's `str`
/// methods are (Tabula's text columns are `COLLATE "C"` there, and a server's text holds no
/// NUL): `strpos`, `starts_with`, and the last characters compared with `=` (an empty
/// pattern matches every text, as in Rust); `abs` of an Int, null for `i64::MIN` (Rust's
/// `checked_abs`), which a server refuses; `concat` of text as `||`.
fn server_guarded_function(func: Func, parts: &[String], types: &[Option<ColumnType>]) -> Option<String> {
    if let (Func::Abs, [Some(ColumnType::Int)], [a]) = (func, types, parts) {
        return Some(format!(
            "(CASE WHEN CAST({a} AS BIGINT) = CAST({} AS BIGINT) THEN NULL ELSE abs(CAST({a} AS BIGINT)) END)",
            i64::MIN
        ));
    }
    if func == Func::Concat && types.iter().all(|t| *t == Some(ColumnType::String)) {
        // Null when any part is (as Tabula's), which `||` is and `concat()` is not.
        let parts: Vec<String> = parts.iter().map(|p| format!("CAST({p} AS TEXT)")).collect();
        return Some(format!("({})", parts.join(" || ")));
    }
    let [text, pattern] = parts else { return None };
    let (text, pattern) = (format!("CAST({text} AS TEXT)"), format!("CAST({pattern} AS TEXT)"));
    Some(match func {
        Func::Contains => format!("(strpos({text}, {pattern}) > 0)"),
        Func::StartsWith => format!("starts_with({text}, {pattern})"),
        Func::EndsWith => format!("(right({text}, char_length({pattern})) = {pattern})"),
        _ => return None,
    })
}

/// Whether `expr`, as the value of a computed column over `schema`, is SQL a PostgreSQL
/// server computes with Tabula's meaning: a [`portable_predicate`] or a [`portable_operand`].
/// A server fills such a column with one `UPDATE`; any other is computed in Rust, a page
/// of rows at a time.
pub(crate) fn portable_value(expr: &Expr, schema: &TableSchema) -> bool {
    match expr {
        Expr::Alias { expr, .. } => portable_value(expr, schema),
        Expr::CellError { .. } => false,
        _ => portable_operand(expr, schema) || portable_predicate(expr, schema),
    }
}

/// Whether `expr` is a value a server reads or computes as Tabula does: a column, a
/// literal, a builtin of such values that [`server_function`] or [`server_guarded_function`]
/// writes, an `if_` of a [`portable_predicate`] between two of one type, or Int arithmetic
/// (`+ - * / %`, negation) of such values (see [`server_int_op`]). What is guarded must
/// read a column: a server folds constants when it plans a statement, guard or not.
pub(crate) fn portable_operand(expr: &Expr, schema: &TableSchema) -> bool {
    let int = |e: &Expr| e.check(schema).ok().and_then(|t| t.ty) == Some(ColumnType::Int);
    match expr {
        Expr::Alias { expr, .. } => portable_operand(expr, schema),
        Expr::Column(_) | Expr::Literal(_) | Expr::CellError { .. } => true,
        Expr::Func { func, args } => {
            let types: Vec<Option<ColumnType>> = args.iter().map(|a| a.check(schema).ok().and_then(|t| t.ty)).collect();
            // `abs` of an Int is guarded (see `server_guarded_function`): it must read a column.
            let int_abs = *func == Func::Abs && types == [Some(ColumnType::Int)] && !expr.columns().is_empty();
            let texts = *func == Func::Concat && types.iter().all(|t| *t == Some(ColumnType::String));
            (int_abs || texts || server_function(*func, &types).is_some())
                && args.iter().all(|a| portable_operand(a, schema))
        }
        // Both branches of one type: a server's `CASE` would convert an Int to Float.
        Expr::If { cond, then, otherwise } => {
            let (a, b) = (then.check(schema).ok().and_then(|t| t.ty), otherwise.check(schema).ok().and_then(|t| t.ty));
            (a == b || a.is_none() || b.is_none())
                && portable_predicate(cond, schema)
                && portable_operand(then, schema)
                && portable_operand(otherwise, schema)
        }
        Expr::Binary {
            op: BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem,
            left,
            right,
        } => {
            int(left)
                && int(right)
                && portable_operand(left, schema)
                && portable_operand(right, schema)
                && !(left.columns().is_empty() && right.columns().is_empty())
        }
        Expr::Unary { op: UnaryOp::Neg, arg } => int(arg) && portable_operand(arg, schema) && !arg.columns().is_empty(),
        _ => false,
    }
}

/// Tabula's Int arithmetic `l op r` in a server's SQL: null where Rust's `checked_*` gives
/// none, where a server would fail the whole statement; otherwise the server's operator,
/// which computes what Rust's does (division truncates toward zero, a remainder takes the
/// dividend's sign). `+`, `-` and `*` are checked against the Int range in `NUMERIC`;
/// `/` and `%` are null for a zero divisor and for `i64::MIN` by -1. Each operand is cast
/// to `BIGINT`, so a parameter is bound as one (a server types a parameter by where it
/// first appears).
fn server_int_op(op: BinaryOp, l: &str, r: &str) -> Option<String> {
    let (l, r) = (format!("CAST({l} AS BIGINT)"), format!("CAST({r} AS BIGINT)"));
    let (min, max) = (i64::MIN, i64::MAX);
    let checked = |sym: &str| {
        format!("(CASE WHEN CAST({l} AS NUMERIC) {sym} {r} BETWEEN {min} AND {max} THEN {l} {sym} {r} END)")
    };
    let divided = |sym: &str| {
        format!("(CASE WHEN {r} = 0 OR ({r} = -1 AND {l} = CAST({min} AS BIGINT)) THEN NULL ELSE {l} {sym} {r} END)")
    };
    Some(match op {
        BinaryOp::Add => checked("+"),
        BinaryOp::Sub => checked("-"),
        BinaryOp::Mul => checked("*"),
        BinaryOp::Div => divided("/"),
        BinaryOp::Rem => divided("%"),
        _ => return None,
    })
}

/// Tabula's negation of Int SQL `a` in a server's SQL: null for `i64::MIN` (Rust's
/// `checked_neg`), which a server refuses.
fn server_int_neg(a: &str) -> String {
    format!("(CASE WHEN CAST({a} AS BIGINT) = CAST({} AS BIGINT) THEN NULL ELSE -CAST({a} AS BIGINT) END)", i64::MIN)
}

/// `expr` as SQL over the physical columns of `schema`.
pub(crate) fn sql_over_columns(schema: &TableSchema, expr: &Expr, params: &mut Params) -> Result<String> {
    to_sql(expr, schema, &|name| physical(schema, name), params)
}

/// `expr` as SQL for a read of `meta`'s rows (columns qualified as `meta.source_sql()` names them).
pub(crate) fn sql_for_read(meta: &TableMeta, expr: &Expr, params: &mut Params) -> Result<String> {
    to_sql(expr, &meta.schema, &|name| meta.column_sql(name), params)
}

/// The physical column for a column name or the error slot (`name#error`) of one.
pub(crate) fn physical(schema: &TableSchema, name: &str) -> Option<String> {
    if let Some(column) = name.strip_suffix("#error") {
        return schema.column(column).filter(|c| c.is_computed()).map(|c| format!("e{}", c.id.0));
    }
    schema.column(name).map(|c| format!("c{}", c.id.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::col;
    use crate::schema::Schema;

    #[test]
    fn literals_are_parameters_and_columns_are_resolved() {
        let schema =
            Schema::new().required("a", ColumnType::Int).required("b", ColumnType::String).to_table_schema().unwrap();
        let mut params = Params::default();
        let e = col("a").gt(1).and(col("b").eq("x'; drop table t; --")).or((col("a") + 1).eq(3));
        let sql = to_sql(&e, &schema, &|n| Some(format!("c_{n}")), &mut params).unwrap();
        assert_eq!(sql, "(((c_a > ?1) AND (c_b = ?2)) OR (tb_int_add(c_a, ?3, 'Int,Int') = ?4))");
        assert_eq!(
            params.values,
            vec![Value::Int(1), Value::from("x'; drop table t; --"), Value::Int(1), Value::Int(3)]
        );
    }
}
