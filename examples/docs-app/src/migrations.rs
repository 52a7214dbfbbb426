//! The app's schema history. Each step is idempotent setup code for the namespace it is
//! given; production has applied the steps up to [`APPLIED_IN_PRODUCTION`].

use tabula::{col, ColumnOptions, ColumnType, IfExists, Schema};
use tabula_testkit::{migration, Migrations};

use crate::udfs::{summarize_v1, summarize_v2, toy_embed};

/// The last step production has applied; the steps after it are pending.
pub const APPLIED_IN_PRODUCTION: &str = "0004_embedding";

fn ignore() -> ColumnOptions {
    ColumnOptions::if_exists(IfExists::Ignore)
}

/// The authors table as step 0001 creates it.
pub fn authors_schema() -> Schema {
    Schema::new()
        .required("author_id", ColumnType::Int)
        .required("name", ColumnType::String)
        .required("email", ColumnType::String)
        .required("joined_at", ColumnType::Timestamp)
}

/// The documents table as step 0001 creates it.
pub fn documents_schema() -> Schema {
    Schema::new()
        .required("doc_id", ColumnType::Int)
        .required("author_id", ColumnType::Int)
        .required("title", ColumnType::String)
        .required("body", ColumnType::String)
        .required("created_at", ColumnType::Timestamp)
        .nullable("legacy_flag", ColumnType::Bool)
}

/// Every step, in order.
pub fn migrations() -> Migrations {
    Migrations::new([
        migration!("0001_tables", |ctx| {
            ctx.create_table("authors", authors_schema())?;
            ctx.create_table("documents", documents_schema())?;
            Ok(())
        }),
        migration!("0002_word_count", |ctx| {
            let words = col("body").trim().length() - col("body").trim().replace(" ", "").length() + 1;
            ctx.table("documents")?.add_computed_column("word_count", words, ignore())?;
            Ok(())
        }),
        migration!("0003_summary", |ctx| {
            ctx.catalog().register(&summarize_v1());
            ctx.table("documents")?.add_computed_column("summary", summarize_v1().call([col("body")]), ignore())?;
            Ok(())
        }),
        migration!("0004_embedding", |ctx| {
            ctx.catalog().register(&toy_embed());
            ctx.table("documents")?.add_computed_column("embedding", toy_embed().call([col("body")]), ignore())?;
            Ok(())
        }),
        migration!("0005_summary_v2", |ctx| {
            ctx.catalog().register(&summarize_v2());
            // Idempotent as written: replacing with the stored definition is a no-op.
            let expr = summarize_v2().call([col("body")]);
            ctx.table("documents")?.add_computed_column(
                "summary",
                expr,
                ColumnOptions::if_exists(IfExists::Replace),
            )?;
            Ok(())
        })
        .allow_destructive(),
        migration!("0006_drop_legacy_flag", |ctx| {
            let docs = ctx.table("documents")?;
            if docs.schema()?.column("legacy_flag").is_some() {
                docs.drop_column("legacy_flag")?;
            }
            Ok(())
        })
        .allow_destructive(),
    ])
}
