//! docs-app's own tests, written the way a Tabula user writes them: a template catalog with
//! the migrations and seed data applied once, a test namespace per test, snapshot tests of
//! the pending migrations and of the UDF change.
#![allow(clippy::unwrap_used)]

use tabula::{col, lit, Catalog, Path};
use tabula_testkit::{assert_migration_snapshot, MigrationCheck, Synth, TestEnv, TestNamespace, UdfDiff};

/// A catalog with every migration applied to `docs` and 300 synthetic documents, built
/// once per migration set (and copied for each test).
fn migrated() -> TestEnv {
    let migrations = docs_app::migrations();
    TestEnv::from_template(("docs-app", migrations.fingerprint(), 7u64), |cat| {
        let ns = Path::parse("docs")?;
        docs_app::register(cat);
        migrations.apply_through(cat, &ns, "0001_tables")?;
        Synth::new(7).fill(&cat.get_table("docs/authors")?, 30)?;
        Synth::new(8)
            .column("author_id", tabula_testkit::Gen::Range(1, 30))
            .fill(&cat.get_table("docs/documents")?, 300)?;
        migrations.apply(cat, &ns)?;
        Ok(())
    })
    .unwrap()
}

#[test]
fn a_new_document_gets_its_computed_columns() {
    let env = migrated();
    let cat = env.catalog();
    docs_app::register(cat);
    let ns = TestNamespace::new(cat, "test_docs").unwrap();
    docs_app::migrations().apply(cat, ns.path()).unwrap();
    docs_app::add_author(cat, ns.path(), 1, "Ada", "ada@example.com").unwrap();
    docs_app::add_document(cat, ns.path(), 1, 1, "Engines", "The engine weaves algebraic patterns. Like a loom.")
        .unwrap();
    let doc = &docs_app::longest(cat, ns.path(), 1).unwrap()[0];
    assert_eq!(doc.word_count, 8);
    assert_eq!(doc.summary.as_deref(), Some("The engine weaves algebraic patterns (8 words)"));
    let embedding = ns.table("documents").unwrap().select([col("embedding")]).first().unwrap().unwrap();
    assert_eq!(embedding.get::<serde_json::Value>("embedding").unwrap().as_array().unwrap().len(), docs_app::EMBED_DIM);
}

#[test]
fn the_template_holds_the_migrated_seeded_app() {
    let env = migrated();
    let docs = env.catalog().get_table("docs/documents").unwrap();
    assert_eq!(docs.count().unwrap(), 300);
    let longest = docs_app::longest(env.catalog(), &Path::parse("docs").unwrap(), 3).unwrap();
    assert!(longest[0].word_count >= longest[2].word_count);
    assert!(longest.iter().all(|d| d.summary.as_deref().is_some_and(|s| s.ends_with("words)"))));
    // Each test has its own copy: a delete here is not seen by another test.
    docs.delete(lit(true)).unwrap();
    assert_eq!(migrated().catalog().get_table("docs/documents").unwrap().count().unwrap(), 300);
}

#[test]
fn pending_migrations_snapshot() {
    let cat = Catalog::in_memory().unwrap();
    docs_app::register_production(&cat);
    let migrations = docs_app::migrations();
    let report =
        MigrationCheck::new(&migrations).applied_through(docs_app::APPLIED_IN_PRODUCTION).data(seed).run(&cat).unwrap();
    assert!(report.passed(), "{}", report.to_text());
    assert_migration_snapshot!(report);
}

/// A few synthetic authors and documents, loaded after the applied steps.
fn seed(ctx: &tabula_testkit::MigrationCtx) -> tabula::Result<()> {
    Synth::new(11).fill(&ctx.table("authors")?, 5)?;
    Synth::new(12).column("author_id", tabula_testkit::Gen::Range(1, 5)).fill(&ctx.table("documents")?, 20)?;
    Ok(())
}

#[test]
fn summarize_v2_snapshot() {
    let env = migrated();
    let docs = env.catalog().get_table("docs/documents").unwrap();
    let report =
        UdfDiff::new(&docs_app::summarize_v1(), &docs_app::summarize_v2()).on_table(&docs, [col("body")], 3).unwrap();
    assert!(report.passed());
    insta::assert_snapshot!(report.to_text());
}

#[test]
fn the_checked_in_fixtures_match_their_generators() {
    let drift = docs_app::fixtures().check().unwrap();
    assert!(drift.is_empty(), "run `cargo xtask fixtures generate`: {drift:?}");
}
