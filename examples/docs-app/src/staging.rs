//! What the staging check and QA need to know about docs-app: its datasets, a demo
//! production catalog built from them, and the staging description.

use std::path::Path as FsPath;

use tabula::{col, row, Catalog, Path, Result};
use tabula_testkit::staging::App;
use tabula_testkit::{Dataset, Fixtures, Gen};

use crate::{anonymizer, authors_schema, documents_schema, migrations, register, register_production};
use crate::{summarize_v1, summarize_v2, APPLIED_IN_PRODUCTION};

/// docs-app's datasets: `docs-small` (checked in under `fixtures/`) and `docs-large`
/// (generated when loaded).
pub fn fixtures() -> Fixtures {
    let docs = |name: &str, seed: u64, authors: u64, documents: u64| {
        Dataset::new(name, seed).table("authors", authors_schema(), authors, |s| s).table(
            "documents",
            documents_schema(),
            documents,
            |s| s.null_ratio(0.5).column("author_id", Gen::Range(1, authors as i64)),
        )
    };
    Fixtures::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"))
        .dataset(docs("docs-small", 20_240_601, 20, 200))
        .dataset(docs("docs-large", 20_240_602, 1_000, 100_000).generated_on_demand())
}

/// Builds a demo production catalog at `path`: the `docs-small` dataset with the steps
/// production has applied, and notes that mention their authors by name, email and phone
/// (what a staging copy must not show).
pub fn demo_production(path: &FsPath) -> Result<()> {
    demo_production_in(&Catalog::open(path)?)
}

/// [`demo_production`] into `catalog` (a file's, or one on a PostgreSQL server).
pub fn demo_production_in(catalog: &Catalog) -> Result<()> {
    let catalog = catalog.clone();
    let ns = Path::parse("docs")?;
    register_production(&catalog);
    let steps = migrations();
    steps.apply_through(&catalog, &ns, "0001_tables")?;
    fixtures().load("docs-small", &catalog, &ns)?;
    steps.apply_through(&catalog, &ns, APPLIED_IN_PRODUCTION)?;
    let authors = catalog.get_table(ns.join("authors")?)?.select([col("author_id"), col("name"), col("email")]);
    let docs = catalog.get_table(ns.join("documents")?)?;
    let first_id = docs.count()? as i64 + 1;
    let mut notes = Vec::new();
    for (i, author) in authors.collect()?.iter().enumerate() {
        let (id, name, email): (i64, String, String) =
            (author.get("author_id")?, author.get("name")?, author.get("email")?);
        notes.push(row! {
            "doc_id" => first_id + i as i64, "author_id" => id, "title" => format!("A note from {name}"),
            "body" => format!("{name} wrote this. Reach {name} at {email} or +49 (30) 4477-{:04}.", 1000 + i),
            "created_at" => "2024-06-01T09:00:00Z",
        });
    }
    docs.insert(notes)?;
    Ok(())
}

/// docs-app as the staging check sees it.
pub fn staging_app() -> App {
    App::new("docs", migrations())
        .production_udfs(register_production)
        .release_udfs(register)
        .anonymizer(anonymizer)
        .udf_change(summarize_v1(), summarize_v2(), "documents", &["body"])
        .demo_production(demo_production)
}
