//! The shop's tests: a template catalog built once, a namespace per test, a snapshot of
//! what the pending migrations do, and the UDF change on realistic notes.

use tabula::{col, Path};
use tabula_testkit::{assert_migration_snapshot, MigrationCheck, TestEnv, TestNamespace, UdfDiff};

// README: tests
/// A catalog with every migration applied to `shop` and the QA data loaded, built once per
/// migration set (and per build of this test binary), copied for each test.
fn migrated() -> TestEnv {
    let migrations = shop::migrations();
    TestEnv::from_template(("shop", migrations.fingerprint()), |cat| {
        let ns = Path::parse("shop")?;
        shop::register(cat);
        migrations.apply_through(cat, &ns, "0001_tables")?;
        shop::fixtures().load("shop-small", cat, &ns)?;
        migrations.apply(cat, &ns)?;
        Ok(())
    })
    .unwrap()
}

#[test]
fn an_order_gets_its_size_and_tone() {
    let env = migrated();
    let cat = env.catalog();
    shop::register(cat);
    let ns = TestNamespace::new(cat, "test_shop").unwrap();
    shop::migrations().apply(cat, ns.path()).unwrap();
    shop::place_order(cat, ns.path(), 1, 7, 250.0, "Arrived late and the box was damaged.").unwrap();
    let order = ns.table("orders").unwrap().select([col("size"), col("tone")]).first().unwrap().unwrap();
    assert_eq!(order.get::<String>("size").unwrap(), "large");
    assert_eq!(order.get::<String>("tone").unwrap(), "complaint");
}
// README: end

#[test]
fn the_template_holds_the_qa_data() {
    let env = migrated();
    assert_eq!(env.catalog().get_table("shop/orders").unwrap().count().unwrap(), 120);
}

#[test]
fn pending_migrations_snapshot() {
    let env = TestEnv::new().unwrap();
    shop::register(env.catalog());
    let migrations = shop::migrations();
    let report = MigrationCheck::new(&migrations)
        .applied_through(shop::APPLIED_IN_PRODUCTION)
        .data(|ctx| {
            shop::fixtures().load("shop-small", ctx.catalog(), ctx.namespace())?;
            Ok(())
        })
        .run(env.catalog())
        .unwrap();
    assert!(report.passed(), "{}", report.to_text());
    assert_migration_snapshot!(report);
}

#[test]
fn the_tone_change_on_realistic_notes() {
    let env = migrated();
    let orders = env.catalog().get_table("shop/orders").unwrap();
    let report = UdfDiff::new(&shop::tone_v1(), &shop::tone_v2()).on_table(&orders, [col("note")], 200).unwrap();
    assert!(report.passed(), "{:?}", report.failures);
    assert!(report.changed > 10, "the new version reads damage, returns and thanks: {} changed", report.changed);
}

#[test]
fn the_checked_in_fixtures_match_their_generators() {
    assert!(shop::fixtures().check().unwrap().is_empty());
}
