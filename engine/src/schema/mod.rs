//! Table schemas: the [`Schema`] a user builds in code, and the stored [`TableSchema`]
//! (column ids, computed definitions) that each table version records.
//!
//! Pure data and checks; nothing here touches storage.

mod check;

pub use check::ExprType;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{err, Result};
use crate::expr::Expr;
use crate::path::validate_name;
use crate::types::{ColumnId, ColumnType};

/// The columns of a new table, built in code:
///
/// ```
/// use tabula::{ColumnType, Schema};
/// let schema = Schema::new()
///     .required("title", ColumnType::String)
///     .nullable("rating", ColumnType::Int);
/// assert_eq!(schema.to_string(), "title String, rating Int?");
/// ```
///
/// A primary key makes rows addressable by key: no two live rows share one, and
/// [`Table::upsert`](crate::Table::upsert) and [`Table::batch_update`](crate::Table::batch_update)
/// find rows by it:
///
/// ```
/// use tabula::{ColumnType, Schema};
/// let schema = Schema::new()
///     .required("sku", ColumnType::String)
///     .nullable("price", ColumnType::Int)
///     .primary_key(["sku"]);
/// assert_eq!(schema.to_string(), "sku String, price Int?, primary key (sku)");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub(crate) columns: Vec<(String, ColumnType, bool)>,
    pub(crate) primary_key: Vec<String>,
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Adds a column that must have a value in every row.
    pub fn required(mut self, name: impl Into<String>, ty: ColumnType) -> Schema {
        self.columns.push((name.into(), ty, false));
        self
    }

    /// Adds a column that may be null.
    pub fn nullable(mut self, name: impl Into<String>, ty: ColumnType) -> Schema {
        self.columns.push((name.into(), ty, true));
        self
    }

    /// Makes `columns` (required columns of this schema, none Float or Json) the table's
    /// primary key: an insert of a row whose key a live row has already fails, naming the
    /// key; [`Table::upsert`](crate::Table::upsert) replaces that row instead.
    pub fn primary_key<N: Into<String>>(mut self, columns: impl IntoIterator<Item = N>) -> Schema {
        self.primary_key = columns.into_iter().map(Into::into).collect();
        self
    }

    /// A schema with the name, type and nullability of `columns` (e.g. the stored columns of
    /// an existing table, to create a copy of it).
    pub fn from_columns<'a>(columns: impl IntoIterator<Item = &'a ColumnDef>) -> Schema {
        Schema {
            columns: columns.into_iter().map(|c| (c.name.clone(), c.ty, c.nullable)).collect(),
            primary_key: Vec::new(),
        }
    }

    /// The stored (not computed) columns of a table schema and its primary key, as a
    /// `Schema` (to create a copy of a table).
    pub fn from_stored(schema: &TableSchema) -> Schema {
        Schema {
            columns: schema
                .columns
                .iter()
                .filter(|c| !c.is_computed())
                .map(|c| (c.name.clone(), c.ty, c.nullable))
                .collect(),
            primary_key: schema.key_columns().iter().map(|c| c.name.clone()).collect(),
        }
    }

    /// The stored schema for a new table, with ids 0.. and names checked.
    pub(crate) fn to_table_schema(&self) -> Result<TableSchema> {
        let mut schema = TableSchema::default();
        for (i, (name, ty, nullable)) in self.columns.iter().enumerate() {
            schema.check_new_name(name)?;
            schema.columns.push(ColumnDef {
                id: ColumnId(i as u32),
                name: name.clone(),
                ty: *ty,
                nullable: *nullable,
                computed: None,
                default: None,
            });
        }
        for name in &self.primary_key {
            let Some(column) = schema.column(name) else {
                return Err(err!(
                    UnknownColumn,
                    "primary key: no column '{name}' (the columns are: {})",
                    schema.names().join(", ")
                ));
            };
            if column.nullable {
                return Err(err!(
                    InvalidArgument,
                    "primary key column '{name}' is nullable; declare it with Schema::required"
                ));
            }
            if matches!(column.ty, ColumnType::Float | ColumnType::Json) {
                return Err(err!(
                    InvalidArgument,
                    "primary key column '{name}' is {}, whose equality is not exact; key on an Int, String, Bool, Timestamp or Date column",
                    column.ty
                ));
            }
            if schema.primary_key.contains(&column.id) {
                return Err(err!(InvalidArgument, "primary key: column '{name}' is named twice"));
            }
            schema.primary_key.push(column.id);
        }
        Ok(schema)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, ty, nullable)) in self.columns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name} {ty}{}", if *nullable { "?" } else { "" })?;
        }
        if !self.primary_key.is_empty() {
            write!(f, ", primary key ({})", self.primary_key.join(", "))?;
        }
        Ok(())
    }
}

/// What a computed column does when its expression fails on a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnError {
    /// The whole call fails, nothing is stored, and the error names the row and the cause.
    #[default]
    Abort,
    /// The cell is null and its error type and message are kept (`errortype()`, `errormsg()`).
    Ignore,
}

/// How many rows may fail when a computed column is added under `OnError::Ignore` before
/// the call gives up, storing nothing: a count, or a fraction of the rows (0.05: 5%).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailureBudget {
    /// At most this many failed rows.
    Rows(u64),
    /// At most this fraction of the rows (between 0 and 1).
    Fraction(f64),
}

impl FailureBudget {
    /// The failed rows allowed among `total`.
    pub(crate) fn allowed(self, total: u64) -> u64 {
        match self {
            FailureBudget::Rows(n) => n,
            FailureBudget::Fraction(f) => (f.clamp(0.0, 1.0) * total as f64).floor() as u64,
        }
    }
}

impl std::fmt::Display for FailureBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureBudget::Rows(n) => write!(f, "{n} rows"),
            FailureBudget::Fraction(x) => write!(f, "{}%", x * 100.0),
        }
    }
}

/// The definition of a computed column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Computed {
    /// The expression, over the table's other columns.
    pub expr: Expr,
    /// The policy for rows where it fails.
    pub on_error: OnError,
}

/// A column as stored in a table version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// The column's id; its physical storage is named after it.
    pub id: ColumnId,
    /// The column's name.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it may be null.
    pub nullable: bool,
    /// `Some` for a computed column.
    pub computed: Option<Computed>,
    /// The value a new row gets when it gives none (set by `add_column` with a default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<crate::types::Value>,
}

impl ColumnDef {
    /// True for a computed column.
    pub fn is_computed(&self) -> bool {
        self.computed.is_some()
    }
}

/// The schema of one table version: its columns in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    /// The columns, in their display order.
    pub columns: Vec<ColumnDef>,
    /// The ids of the primary key's columns, in key order (empty: no primary key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<ColumnId>,
}

/// Column names that cannot be used because Tabula's own columns use them.
const RESERVED: [&str; 3] = ["rowid", "oid", "_rowid_"];

impl TableSchema {
    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The columns of the primary key, in key order (empty without one).
    pub fn key_columns(&self) -> Vec<&ColumnDef> {
        self.primary_key.iter().filter_map(|id| self.columns.iter().find(|c| c.id == *id)).collect()
    }

    /// Whether `name` is a column of the primary key.
    pub fn is_key(&self, name: &str) -> bool {
        self.column(name).is_some_and(|c| self.primary_key.contains(&c.id))
    }

    /// The index of the column with this name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The column names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Checks that `name` is valid and free in this schema.
    pub fn check_new_name(&self, name: &str) -> Result<()> {
        validate_name(name).map_err(|why| err!(InvalidName, "column name {why}"))?;
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(err!(InvalidName, "column name '{name}' is reserved by SQLite; choose another name"));
        }
        if self.columns.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
            return Err(err!(AlreadyExists, "column '{name}' already exists (names are case-insensitive)"));
        }
        Ok(())
    }

    /// The names of the computed columns whose expressions read `name`.
    pub fn dependents_of(&self, name: &str) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.computed.as_ref().is_some_and(|comp| comp.expr.columns().contains(name)))
            .map(|c| c.name.clone())
            .collect()
    }

    /// The computed columns whose failure `expr` inherits: those it reads by value and does
    /// not inspect with `errortype()`/`errormsg()` (an expression that looks at a column's
    /// error handles it itself). A row where one of them failed gets an upstream error
    /// instead of a value, and `expr` (its UDFs) is not run for it.
    pub(crate) fn failing_inputs(&self, expr: &Expr) -> Vec<&ColumnDef> {
        let mut inspected = BTreeSet::new();
        expr.visit(&mut |e| {
            if let Expr::CellError { column, .. } = e {
                inspected.insert(column.clone());
            }
        });
        expr.columns()
            .iter()
            .filter(|name| !inspected.contains(*name))
            .filter_map(|name| self.column(name))
            .filter(|c| c.is_computed())
            .collect()
    }

    /// The computed columns in `recompute` and every column downstream of them or of
    /// `changed`, in dependency order: what a write that changes `changed` and computes
    /// `recompute` again must compute.
    pub(crate) fn recomputed(&self, changed: &BTreeSet<String>, recompute: &BTreeSet<String>) -> Vec<&ColumnDef> {
        let mut dirty: BTreeSet<String> = changed.clone();
        let mut out = Vec::new();
        for col in self.computed_order() {
            let reads = col.computed.as_ref().map(|c| c.expr.columns()).unwrap_or_default();
            if recompute.contains(&col.name) || reads.iter().any(|c| dirty.contains(c)) {
                dirty.insert(col.name.clone());
                out.push(col);
            }
        }
        out
    }

    /// Every column that depends, directly or through other computed columns, on any of
    /// `changed`, in an order where each comes after the columns it reads.
    pub fn downstream_of(&self, changed: &BTreeSet<String>) -> Vec<&ColumnDef> {
        let mut dirty: BTreeSet<String> = changed.clone();
        let mut out = Vec::new();
        for col in self.computed_order() {
            let reads = col.computed.as_ref().map(|c| c.expr.columns()).unwrap_or_default();
            if reads.iter().any(|c| dirty.contains(c)) {
                dirty.insert(col.name.clone());
                out.push(col);
            }
        }
        out
    }

    /// The computed columns in an order where each comes after the computed columns it
    /// reads (a topological order; the schema has no cycles).
    pub fn computed_order(&self) -> Vec<&ColumnDef> {
        let computed: Vec<&ColumnDef> = self.columns.iter().filter(|c| c.is_computed()).collect();
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::with_capacity(computed.len());
        while out.len() < computed.len() {
            let before = out.len();
            for c in &computed {
                if done.contains(c.name.as_str()) {
                    continue;
                }
                let reads = c.computed.as_ref().map(|comp| comp.expr.columns()).unwrap_or_default();
                let ready =
                    reads.iter().all(|r| done.contains(r.as_str()) || !computed.iter().any(|other| other.name == *r));
                if ready {
                    done.insert(&c.name);
                    out.push(*c);
                }
            }
            if out.len() == before {
                // A cycle cannot be stored (adding one is refused); keep the rest in order.
                out.extend(computed.iter().filter(|c| !done.contains(c.name.as_str())));
                break;
            }
        }
        out
    }

    /// True when any computed column calls a UDF.
    pub fn has_udf_columns(&self) -> bool {
        self.columns.iter().any(|c| c.computed.as_ref().is_some_and(|comp| comp.expr.has_udf()))
    }
}

impl fmt::Display for TableSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}{}", c.name, c.ty, if c.nullable { "?" } else { "" })?;
            if let Some(comp) = &c.computed {
                write!(f, " = {}", comp.expr)?;
            }
        }
        let key = self.key_columns();
        if !key.is_empty() {
            let names: Vec<&str> = key.iter().map(|c| c.name.as_str()).collect();
            write!(f, ", primary key ({})", names.join(", "))?;
        }
        Ok(())
    }
}
