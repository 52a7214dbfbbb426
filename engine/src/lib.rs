//! # Tabula
//!
//! An embedded, versioned table store with computed columns, on SQLite. Tables live in
//! directories (`app/documents`); every change to a table is a new version; reads stream.
//!
//! ```
//! use tabula::{col, row, Catalog, ColumnOptions, ColumnType, IfExists, Schema, Udf};
//!
//! # fn main() -> tabula::Result<()> {
//! let catalog = Catalog::in_memory()?; // or Catalog::open("app.db")?
//! catalog.create_dir("app", IfExists::Ignore)?;
//! let docs = catalog.create_table(
//!     "app/documents",
//!     Schema::new()
//!         .required("title", ColumnType::String)
//!         .required("body", ColumnType::String)
//!         .nullable("rating", ColumnType::Int),
//!     IfExists::Ignore,
//! )?;
//!
//! // Each mutating call is one transaction and one new version.
//! let done = docs.insert([
//!     row! { "title" => "Intro", "body" => "Tabula keeps tables in directories.", "rating" => 4 },
//!     row! { "title" => "Usage", "body" => "Every change makes a version." },
//! ])?;
//! assert_eq!((done.version.0, done.inserted), (1, 2));
//! docs.update([("rating", col("rating") + 1)], col("title").eq("Intro"))?;
//!
//! // Queries are data until a terminal call.
//! let rated = docs
//!     .select([col("title"), col("rating")])
//!     .where_(col("rating").is_not_null())
//!     .order_by_desc(col("rating"))
//!     .collect()?;
//! assert_eq!(rated[0].get::<i64>("rating")?, 5);
//!
//! // A version stays readable: `:1` opens version 1, read-only.
//! let v1 = catalog.get_table("app/documents:1")?;
//! assert_eq!(v1.select([col("rating")]).where_(col("title").eq("Intro")).collect()?[0].get::<i64>("rating")?, 4);
//! assert_eq!(docs.history()?.len(), 3); // create, insert, update
//!
//! // Computed columns: try a UDF on a few rows (nothing stored), then keep it.
//! let summarize = Udf::new("summarize", 1, |body: String| body.split('.').next().unwrap_or("").to_string());
//! catalog.register(&summarize);
//! let preview = docs.select([col("title"), summarize.call([col("body")]).alias("summary")]).order_by(col("title")).head(1)?;
//! assert_eq!(preview[0].get::<String>("summary")?, "Tabula keeps tables in directories");
//! docs.add_computed_column("summary", summarize.call([col("body")]), ColumnOptions::default())?;
//! // Rerunning setup code is a no-op; a changed expression would be an error showing both.
//! docs.add_computed_column("summary", summarize.call([col("body")]), ColumnOptions::if_exists(IfExists::Ignore))?;
//! docs.revert()?; // undoes the column
//! # Ok(())
//! # }
//! ```
//!
//! ## Expensive UDFs
//! When a UDF costs money or time (an LLM call, a model, a remote API), declare it so:
//! [`Udf::concurrency`], [`Udf::rate_limit`], [`Udf::timeout`] and [`Udf::retry`] (with
//! [`UdfError::Transient`] for failures worth another try). Such a UDF remembers its results
//! ([`Udf::remember`]), so the workflow wastes no call: preview a few rows, ask
//! [`Table::estimate`] what the add would take, watch [`Catalog::on_progress`], and add the
//! column: its calls run before the write lock is taken, the preview's rows are not paid
//! again, an add killed halfway pays only for the rest when run again, a
//! [`FailureBudget`] stops a hopeless add, and [`Table::recompute`] with [`Only::Errors`]
//! later pays for exactly the rows that failed.
//!
//! ```
//! use tabula::{col, row, Catalog, ColumnType, ColumnOptions, IfExists, RetryPolicy, Schema, Udf};
//! # fn main() -> tabula::Result<()> {
//! let catalog = Catalog::in_memory()?;
//! let docs = catalog.create_table("docs", Schema::new().required("n", ColumnType::Int), IfExists::Error)?;
//! docs.insert((0..50).map(|n| row! {"n" => n}))?;
//! let model = Udf::new("model", 1, |n: i64| n * 2).concurrency(8).retry(RetryPolicy::attempts(3));
//! catalog.register(&model);
//! docs.select([model.call([col("n")])]).head(3)?;              // try it: 3 calls
//! let estimate = docs.estimate(&model.call([col("n")]))?;       // 50 rows, 47 calls, ~time
//! assert_eq!(estimate.calls, 47);
//! docs.add_computed_column("twice", model.call([col("n")]), ColumnOptions::default())?; // 47 calls
//! # Ok(())
//! # }
//! ```
//!
//! ## Keys, views and snapshots
//! - A table may have a primary key ([`Schema::primary_key`]): no two live rows share one,
//!   and [`Table::upsert`] / [`Table::batch_update`] change rows by key, as one version.
//! - A view ([`Catalog::create_view`]) shows the rows of a table, a snapshot or another view
//!   that pass its filter, with computed columns of its own and stored ones it sets with
//!   `update`; it gets a version when what it shows changes, and `view:N` reads it as it was.
//! - A snapshot ([`Catalog::create_snapshot`]) freezes a table or a view as it is now;
//!   [`Catalog::create_snapshot_of`] freezes a filtered query with extra computed columns;
//!   [`Catalog::create_table_from_query`] makes a new table of a query's rows.
//!
//! ## Choices
//! - Names (directories, tables, columns) are ASCII identifiers; see [`Path`].
//! - A call that changes nothing (an update or delete matching no row, an insert of no rows)
//!   makes no new version and returns the current one.
//! - Without `order_by`, rows come in storage order: insertion order, except that an updated
//!   row moves to the end.
//! - Every call reads the table's metadata inside its own transaction, so a handle never acts
//!   on metadata that another handle or process has changed.

mod catalog;
mod change;
mod compute;
mod error;
mod eval;
mod expr;
mod path;
pub mod process;
mod row;
mod schema;
mod store;
mod types;
mod udf;

pub use catalog::{
    Alter, Cascade, Catalog, CatalogLock, ColumnInfo, ColumnOptions, Create, Durability, Estimate, Force, IfExists,
    IfMissing, Listing, ListingKind, LockHolder, LockOptions, Only, OpenOptions, Query, Recursive, Retention,
    RowChange, RowStream, Table, TableInfo, TableKind, TryLock, VersionInfo, WriteResult,
};
pub use change::ChangeKind;
pub use error::{Error, ErrorCode, Result};
pub use expr::{coalesce, col, concat, if_, lit, BinaryOp, ErrorPart, Expr, Func, IfBuilder, ThenBuilder, UnaryOp};
pub use path::{IntoPath, Path};
pub use row::Row;
pub use schema::{ColumnDef, Computed, ExprType, FailureBudget, OnError, Schema, TableSchema};
pub use store::{redacted_url, CompactReport, ReadMode, FORMAT_VERSION};
pub use types::{format_date, format_timestamp, ColumnId, ColumnType, FromValue, TableId, Value, Version};
pub use udf::{CellError, CellErrorKind, IntoUdfFn, Progress, RetryPolicy, Udf, UdfError, UdfReturn, UdfValue};
/// A client of a PostgreSQL server connected as Tabula connects (TLS as the URL's `sslmode`
/// says: `disable`, `prefer`, `require`, `verify-ca`, `verify-full`, with `sslrootcert`), for
/// what runs beside Tabula on the same server; and the `postgres` crate it returns.
#[cfg(feature = "postgres")]
pub use {postgres, store::tls::connect as connect_server};
