//! Test namespaces: unique, dropped with force, reaped after a killed process.

use tabula::{row, Catalog, ColumnType, IfExists, Recursive, Schema};
use tabula_testkit::{reap_orphans, TestEnv, TestNamespace, LEASE_TABLE};

fn dirs(cat: &Catalog) -> Vec<String> {
    cat.list_dirs("", Recursive::No)
        .unwrap()
        .into_iter()
        .map(|p| p.to_string())
        .filter(|p| p != "tabula_testkit")
        .collect()
}

#[test]
fn a_namespace_is_unique_and_dropped_with_its_contents() {
    let env = TestEnv::new().unwrap();
    let cat = env.catalog();
    let a = TestNamespace::new(cat, "test_app").unwrap();
    let b = TestNamespace::new(cat, "test_app").unwrap();
    assert_ne!(a.path(), b.path());
    assert!(a.path().to_string().starts_with("test_app_"));
    cat.create_table(a.child("docs").unwrap(), Schema::new().required("x", ColumnType::Int), IfExists::Error).unwrap();
    a.table("docs").unwrap().insert([row! {"x" => 1}]).unwrap();
    assert_eq!(dirs(cat).len(), 2);
    drop(a);
    assert_eq!(dirs(cat), [b.path().to_string()]);
    b.close().unwrap();
    assert!(dirs(cat).is_empty());
    assert_eq!(cat.get_table(LEASE_TABLE).unwrap().count().unwrap(), 0, "leases are released");
}

#[test]
fn a_panicking_test_still_drops_its_namespace() {
    let env = TestEnv::new().unwrap();
    let cat = env.catalog().clone();
    let result = std::panic::catch_unwind(move || {
        let ns = TestNamespace::new(&cat, "test_panic").unwrap();
        cat.create_table(ns.child("t").unwrap(), Schema::new().required("x", ColumnType::Int), IfExists::Error)
            .unwrap();
        panic!("the test failed");
    });
    assert!(result.is_err());
    assert!(dirs(env.catalog()).is_empty());
}

#[test]
fn keep_leaves_the_namespace_and_gives_up_the_lease() {
    let env = TestEnv::new().unwrap();
    let ns = TestNamespace::new(env.catalog(), "test_keep").unwrap();
    let path = ns.keep();
    assert_eq!(dirs(env.catalog()), [path.to_string()]);
    assert!(reap_orphans(env.catalog()).unwrap().is_empty());
    assert_eq!(dirs(env.catalog()), [path.to_string()]);
}

#[test]
fn parallel_tests_in_threads_never_collide() {
    let env = TestEnv::new().unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    let ns = TestNamespace::new(env.catalog(), "test_par").unwrap();
                    let t = env
                        .catalog()
                        .create_table(
                            ns.child("t").unwrap(),
                            Schema::new().required("x", ColumnType::Int),
                            IfExists::Error,
                        )
                        .unwrap();
                    t.insert([row! {"x" => 1}]).unwrap();
                    assert_eq!(t.count().unwrap(), 1);
                }
            });
        }
    });
    assert!(dirs(env.catalog()).is_empty());
}

#[test]
fn persist_keeps_the_namespace_quietly_and_unleased() {
    let env = TestEnv::new().unwrap();
    let ns = TestNamespace::new(env.catalog(), "test_persist").unwrap();
    let path = ns.persist();
    assert_eq!(dirs(env.catalog()), [path.to_string()]);
    assert_eq!(env.catalog().get_table(LEASE_TABLE).unwrap().count().unwrap(), 0);
}
