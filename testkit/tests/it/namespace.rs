//! Test namespaces: unique, dropped with force, reaped after a killed process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tabula::{col, row, Catalog, ColumnType, IfExists, Recursive, Schema};
use tabula_testkit::{reap_orphans, Lease, TestEnv, TestNamespace, LEASE_TABLE};

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

/// The child side of `namespaces_of_killed_processes_are_reaped`.
#[test]
fn child_holds_a_namespace_until_killed() {
    let Ok(path) = std::env::var("TABULA_TESTKIT_CHILD_DB") else { return };
    let cat = Catalog::open(&path).unwrap();
    let ns = TestNamespace::new(&cat, "test_orphan").unwrap();
    cat.create_table(ns.child("t").unwrap(), Schema::new().required("x", ColumnType::Int), IfExists::Error).unwrap();
    println!("READY");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn namespaces_of_killed_processes_are_reaped() {
    let env = TestEnv::new().unwrap();
    let file = env.file().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "namespace::child_holds_a_namespace_until_killed", "--nocapture", "--test-threads=1"])
        .env("TABULA_TESTKIT_CHILD_DB", &file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child holds its namespace, then kill it (SIGKILL: no destructor runs).
    let started = Instant::now();
    while !dirs(env.catalog()).iter().any(|d| d.starts_with("test_orphan_")) {
        assert!(started.elapsed() < Duration::from_secs(30), "the child never created its namespace");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let leases: Vec<Lease> = env.catalog().get_table(LEASE_TABLE).unwrap().select_all().collect_as().unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].pid, i64::from(child.id()));
    let reaped = reap_orphans(env.catalog()).unwrap();
    assert_eq!(reaped, [leases[0].path.clone()]);
    assert!(dirs(env.catalog()).is_empty(), "the orphan and its tables are gone");
    let lease_rows =
        env.catalog().get_table(LEASE_TABLE).unwrap().select_all().where_(col("pid").eq(leases[0].pid)).count();
    assert_eq!(lease_rows.unwrap(), 0);
}

#[test]
fn persist_keeps_the_namespace_quietly_and_unleased() {
    let env = TestEnv::new().unwrap();
    let ns = TestNamespace::new(env.catalog(), "test_persist").unwrap();
    let path = ns.persist();
    assert_eq!(dirs(env.catalog()), [path.to_string()]);
    assert_eq!(env.catalog().get_table(LEASE_TABLE).unwrap().count().unwrap(), 0);
}
