//! Test namespaces: unique, dropped with force, reaped after a killed process.

use tabula::{col, lit, row, Catalog, ColumnType, IfExists, Recursive, Schema};
use tabula_testkit::{reap_orphans, renew_live_leases, Lease, TestEnv, TestNamespace, LEASE_TABLE, LEASE_TTL};

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

/// A lease lasts minutes and is renewed while its namespace lives; once it expired and a
/// process on another host reaped the namespace, renewing it says so.
#[test]
fn leases_are_renewed_while_the_namespace_lives_and_expire_after() {
    let env = TestEnv::new().unwrap();
    let cat = env.catalog();
    let ns = TestNamespace::new(cat, "test_lease").unwrap();
    let lease = || -> Lease {
        let leases: Vec<Lease> = cat.get_table(LEASE_TABLE).unwrap().select_all().collect_as().unwrap();
        leases.into_iter().find(|l| l.path == ns.path().to_string()).expect("the namespace's lease")
    };
    let first = lease();
    assert_eq!(first.expires_us - first.created_us, LEASE_TTL.as_micros() as i64);
    std::thread::sleep(std::time::Duration::from_millis(2));
    ns.renew().unwrap();
    let second = lease().expires_us;
    assert!(second > first.expires_us, "renewed: {second} after {}", first.expires_us);
    std::thread::sleep(std::time::Duration::from_millis(2));
    // What the heartbeat thread runs every LEASE_HEARTBEAT: this namespace is among the live.
    assert!(renew_live_leases() >= 1);
    assert!(lease().expires_us > second, "the heartbeat renewed it");
    // Its owner stopped past the lease, seen from another host: expired, so reaped.
    let leases = cat.get_table(LEASE_TABLE).unwrap();
    leases
        .update([("host", lit("another-host")), ("expires_us", lit(0))], col("path").eq(ns.path().to_string()))
        .unwrap();
    assert_eq!(reap_orphans(cat).unwrap(), [ns.path().to_string()]);
    let e = ns.renew().unwrap_err();
    assert_eq!(e.code(), tabula::ErrorCode::NotFound, "{e}");
    assert!(e.to_string().contains("expired and another process reaped the namespace"), "{e}");
}

/// The lease registry keeps no history: after namespaces came and went, a reap leaves it one
/// version and only its live leases' rows (a shared server's registry would otherwise grow
/// with every test ever run on it).
#[test]
fn the_reaper_forgets_the_lease_registrys_history() {
    reaper_forgets_history(&TestEnv::new().unwrap());
}

#[test]
#[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
fn the_reaper_forgets_the_lease_registrys_history_on_a_server() {
    let url = std::env::var("TABULA_TEST_POSTGRES").expect("TABULA_TEST_POSTGRES names the test server");
    reaper_forgets_history(&TestEnv::on_server(&url).unwrap());
}

fn reaper_forgets_history(env: &TestEnv) {
    let cat = env.catalog();
    for _ in 0..5 {
        TestNamespace::new(cat, "test_hist").unwrap().close().unwrap();
    }
    let live = TestNamespace::new(cat, "test_hist").unwrap();
    let leases = cat.get_table(LEASE_TABLE).unwrap();
    assert!(leases.history().unwrap().len() >= 11, "each namespace's lease and release are versions");
    assert!(reap_orphans(cat).unwrap().is_empty());
    assert_eq!(leases.history().unwrap().len(), 1);
    let leased: Vec<Lease> = leases.select_all().collect_as().unwrap();
    assert_eq!(leased.iter().map(|l| l.path.as_str()).collect::<Vec<_>>(), [live.path().to_string()]);
    live.renew().unwrap();
    live.close().unwrap();
    assert_eq!(leases.count().unwrap(), 0);
}

/// A namespace whose lease registry was dropped under it (someone cleared the catalog)
/// still closes: its lease went with the registry.
#[test]
fn a_namespace_closes_after_its_lease_registry_was_dropped() {
    let env = TestEnv::new().unwrap();
    let cat = env.catalog();
    let ns = TestNamespace::new(cat, "test_gone").unwrap();
    cat.drop_dir("tabula_testkit", tabula::Force::Yes).unwrap();
    ns.close().unwrap();
    assert!(dirs(cat).is_empty());
}
