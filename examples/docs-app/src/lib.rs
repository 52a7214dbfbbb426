//! # docs-app
//!
//! A small document store built on Tabula, written the way our users write theirs: its
//! tables live in one namespace given at run time, its schema is a list of migrations, its
//! UDFs are versioned Rust functions, and its tests (in `tests/`) use `tabula-testkit`.
//!
//! ```
//! use tabula::{Catalog, Path};
//!
//! # fn main() -> tabula::Result<()> {
//! let catalog = Catalog::in_memory()?;
//! let app = Path::parse("docs")?;
//! docs_app::register(&catalog);
//! docs_app::migrations().apply(&catalog, &app)?;
//! docs_app::add_author(&catalog, &app, 1, "Ada Lovelace", "ada@example.com")?;
//! docs_app::add_document(&catalog, &app, 1, 1, "Notes", "The engine weaves patterns. It computes.")?;
//! let top = docs_app::longest(&catalog, &app, 1)?;
//! assert_eq!(top[0].summary.as_deref(), Some("The engine weaves patterns (6 words)"));
//! # Ok(())
//! # }
//! ```

mod migrations;
mod staging;
mod udfs;

use serde::Deserialize;
use tabula::{col, row, Catalog, Path, Result};
use tabula_testkit::{Anonymizer, Rule};

pub use migrations::{authors_schema, documents_schema, migrations, APPLIED_IN_PRODUCTION};
pub use staging::{demo_production, demo_production_in, fixtures, staging_app};
pub use udfs::{summarize_v1, summarize_v2, toy_embed, EMBED_DIM};

/// Registers the UDF versions production runs (before the pending migrations), so a copy
/// of production data can recompute its computed columns as production defined them.
pub fn register_production(catalog: &Catalog) {
    catalog.register(&summarize_v1());
    catalog.register(&toy_embed());
}

/// How production data of this app is anonymized for staging: every stored column has a
/// rule. Authors' names and emails are pseudonymized wherever they appear, bodies and titles
/// included (the free-text rule scrubs every value the copy maps).
pub fn anonymizer(key: &str) -> Anonymizer {
    Anonymizer::new(key)
        .rule("author_id", Rule::Hash)
        .table_rule("authors", "name", Rule::Name)
        .table_rule("authors", "email", Rule::Email)
        .table_rule("authors", "joined_at", Rule::DateShift { entity: "author_id".into(), max_days: 30 })
        .table_rule("documents", "title", Rule::FreeText)
        .table_rule("documents", "body", Rule::FreeText)
        .table_rule("documents", "doc_id", Rule::Keep)
        .table_rule("documents", "created_at", Rule::DateShift { entity: "author_id".into(), max_days: 30 })
        .table_rule("documents", "legacy_flag", Rule::Keep)
}

/// Registers every UDF the current code uses on `catalog`.
pub fn register(catalog: &Catalog) {
    for udf in udfs::current() {
        catalog.register(&udf);
    }
}

/// Adds an author.
pub fn add_author(catalog: &Catalog, app: &Path, author_id: i64, name: &str, email: &str) -> Result<()> {
    catalog.get_table(app.join("authors")?)?.insert([row! {
        "author_id" => author_id, "name" => name, "email" => email, "joined_at" => "2024-01-01T00:00:00Z",
    }])?;
    Ok(())
}

/// Adds a document; its word count, summary and embedding are computed by Tabula.
pub fn add_document(catalog: &Catalog, app: &Path, doc_id: i64, author_id: i64, title: &str, body: &str) -> Result<()> {
    catalog.get_table(app.join("documents")?)?.insert([row! {
        "doc_id" => doc_id, "author_id" => author_id, "title" => title, "body" => body,
        "created_at" => "2024-06-01T00:00:00Z",
    }])?;
    Ok(())
}

/// A document as the app shows it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DocSummary {
    /// The document id.
    pub doc_id: i64,
    /// The title.
    pub title: String,
    /// Words in the body.
    pub word_count: i64,
    /// The computed summary.
    pub summary: Option<String>,
}

/// The `n` longest documents.
pub fn longest(catalog: &Catalog, app: &Path, n: u64) -> Result<Vec<DocSummary>> {
    catalog
        .get_table(app.join("documents")?)?
        .select([col("doc_id"), col("title"), col("word_count"), col("summary")])
        .order_by_desc(col("word_count"))
        .order_by(col("doc_id"))
        .limit(n)
        .collect_as()
}
