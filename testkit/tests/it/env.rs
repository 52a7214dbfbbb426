//! Test environments: temp files, in-memory catalogs, templates.

use std::sync::atomic::{AtomicUsize, Ordering};

use tabula::{row, ColumnType, IfExists, Schema};
use tabula_testkit::{template_file, template_schema, TestEnv};

#[test]
fn a_temp_file_catalog_is_removed_on_drop() {
    let env = TestEnv::new().unwrap();
    let file = env.file().unwrap();
    env.catalog().create_dir("app", IfExists::Error).unwrap();
    assert!(file.exists());
    drop(env);
    assert!(!file.exists());
    assert!(TestEnv::in_memory().unwrap().file().is_none());
}

fn seed(cat: &tabula::Catalog) -> tabula::Result<()> {
    cat.create_dir("app", IfExists::Error)?;
    let t = cat.create_table("app/t", Schema::new().required("n", ColumnType::Int), IfExists::Error)?;
    t.insert((0..10_000).map(|i| row! {"n" => i}))?;
    Ok(())
}

#[test]
fn templates_are_built_once_and_copied_per_test() {
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let key = ("testkit-template-test", std::process::id(), line!());
    let build = |cat: &tabula::Catalog| {
        BUILDS.fetch_add(1, Ordering::SeqCst);
        seed(cat)
    };
    let a = TestEnv::from_template(key, build).unwrap();
    let b = TestEnv::from_template(key, build).unwrap();
    assert_eq!(BUILDS.load(Ordering::SeqCst), 1, "the setup ran once");
    assert_eq!(a.catalog().get_table("app/t").unwrap().count().unwrap(), 10_000);
    // Each test has its own copy.
    a.catalog().get_table("app/t").unwrap().insert([row! {"n" => -1}]).unwrap();
    assert_eq!(b.catalog().get_table("app/t").unwrap().count().unwrap(), 10_000);
    a.catalog().integrity_check().unwrap();
    std::fs::remove_file(template_file(key).unwrap()).unwrap();
}

/// On a PostgreSQL server: built once (by one of several threads), copied into a schema of
/// each test's own, which goes with its `TestEnv`.
#[test]
#[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
fn templates_on_a_server_are_built_once_and_copied_per_test() {
    let url = std::env::var("TABULA_TEST_POSTGRES").expect("TABULA_TEST_POSTGRES names the test server");
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let key = ("testkit-server-template", std::process::id(), line!());
    // A setup that drops a table leaves no trash to copy.
    let build = |cat: &tabula::Catalog| {
        BUILDS.fetch_add(1, Ordering::SeqCst);
        let gone = cat.create_table("gone", Schema::new().required("n", ColumnType::Int), IfExists::Error)?;
        gone.insert((0..100).map(|i| row! {"n" => i}))?;
        cat.drop_table("gone", tabula::Force::No)?;
        seed(cat)
    };
    let envs: Vec<TestEnv> = std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..3).map(|_| s.spawn(|| TestEnv::from_template_on(&url, key, build).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(BUILDS.load(Ordering::SeqCst), 1, "the setup ran once");
    let started = std::time::Instant::now();
    let more = TestEnv::from_template_on(&url, key, build).unwrap();
    eprintln!("a copy of a 10,000-row template on the server: {:?}", started.elapsed());
    let t = |env: &TestEnv| env.catalog().get_table("app/t").unwrap();
    t(&envs[0]).insert([row! {"n" => -1}]).unwrap();
    assert_eq!(t(&envs[0]).count().unwrap(), 10_001);
    assert_eq!(t(&envs[1]).count().unwrap(), 10_000);
    assert_eq!(t(&more).count().unwrap(), 10_000);
    more.catalog().integrity_check().unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let copied = more.url().unwrap().rsplit("search_path%3D").next().unwrap().to_string();
    let physical: Vec<String> = admin
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 AND tablename ~ '^t[0-9]'", &[&copied])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(physical.len(), 1, "app/t's rows only, not the dropped table's: {physical:?}");
    // A copy keeps going where the template's rows stopped: its rowids and ids are new ones.
    let more_t = t(&more);
    more_t.insert((0..3).map(|i| row! {"n" => i})).unwrap();
    more_t.revert().unwrap();
    assert_eq!(more_t.count().unwrap(), 10_000, "the revert took back exactly the 3 rows");
    more.catalog().create_table("app/u", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
    // A copy's schema goes with its TestEnv; the template stays, until dropped.
    let names: Vec<String> = envs
        .iter()
        .chain([&more])
        .map(|env| env.url().unwrap().rsplit("search_path%3D").next().unwrap().to_string())
        .collect();
    let copies = |admin: &mut postgres::Client| -> i64 {
        admin.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)", &[&names]).unwrap().get(0)
    };
    assert_eq!(copies(&mut admin), 4);
    drop(envs);
    drop(more);
    assert_eq!(copies(&mut admin), 0);
    admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", template_schema(key))).unwrap();
}

/// A fresh catalog on a server: a schema of its own, gone with its `TestEnv`.
#[test]
#[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
fn a_catalog_on_a_server_lives_in_a_schema_of_its_own() {
    let url = std::env::var("TABULA_TEST_POSTGRES").expect("TABULA_TEST_POSTGRES names the test server");
    let (a, b) = (TestEnv::on_server(&url).unwrap(), TestEnv::on_server(&url).unwrap());
    seed(a.catalog()).unwrap();
    assert!(b.catalog().get_table("app/t").is_err(), "each has its own catalog");
    let again = tabula::Catalog::connect(a.url().unwrap()).unwrap();
    assert_eq!(again.get_table("app/t").unwrap().count().unwrap(), 10_000);
    drop(again);
    let url_a = a.url().unwrap().to_string();
    drop(a);
    // Gone: a read-only connection finds no catalog there.
    let e = tabula::Catalog::connect_read_only(&url_a).unwrap_err();
    assert_eq!(e.code(), tabula::ErrorCode::NotFound, "{e}");
    assert!(TestEnv::in_memory().unwrap().url().is_none());
}

#[test]
fn templates_are_built_once_across_threads() {
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let key = ("testkit-threads", std::process::id(), line!());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(move || {
                let env = TestEnv::from_template(key, |cat| {
                    BUILDS.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    seed(cat)
                })
                .unwrap();
                assert_eq!(env.catalog().get_table("app/t").unwrap().count().unwrap(), 10_000);
            });
        }
    });
    assert_eq!(BUILDS.load(Ordering::SeqCst), 1);
    std::fs::remove_file(template_file(key).unwrap()).unwrap();
}

#[test]
fn a_failing_setup_leaves_no_template() {
    let key = ("testkit-failing", std::process::id(), line!());
    let e = TestEnv::from_template(key, |cat| cat.create_dir("a/b", IfExists::Error)).err().unwrap();
    assert!(e.to_string().contains("building the test template"), "{e}");
    let env = TestEnv::from_template(key, seed).unwrap();
    assert_eq!(env.catalog().get_table("app/t").unwrap().count().unwrap(), 10_000);
    std::fs::remove_file(template_file(key).unwrap()).unwrap();
}

#[test]
fn editing_a_migration_body_rebuilds_the_template() {
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let steps = |len_of: &'static str| {
        let add = match len_of {
            "text" => tabula_testkit::migration!("0002_len", |ctx| {
                let t = ctx.table("t")?;
                t.add_computed_column("len", tabula::col("n") + 1, tabula::ColumnOptions::default())?;
                Ok(())
            }),
            _ => tabula_testkit::migration!("0002_len", |ctx| {
                let t = ctx.table("t")?;
                t.add_computed_column("len", tabula::col("n") + 2, tabula::ColumnOptions::default())?;
                Ok(())
            }),
        };
        tabula_testkit::Migrations::new([add])
    };
    let build = |m: &tabula_testkit::Migrations| {
        let key = ("testkit-edited", std::process::id(), m.fingerprint());
        let env = TestEnv::from_template(&key, |cat| {
            BUILDS.fetch_add(1, Ordering::SeqCst);
            seed(cat)?;
            m.apply(cat, &tabula::Path::parse("app")?)?;
            Ok(())
        })
        .unwrap();
        let _ = std::fs::remove_file(template_file(&key).unwrap());
        env.catalog().get_table("app/t").unwrap().select([tabula::col("len")]).first().unwrap().unwrap()
    };
    let before = build(&steps("text"));
    let after = build(&steps("edited"));
    assert_eq!(BUILDS.load(Ordering::SeqCst), 2, "the edited step's template was built anew");
    assert_ne!(before, after);
}

#[test]
fn templates_unused_for_a_day_are_removed() {
    let dir = std::env::temp_dir().join("tabula-templates");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join(format!("stale-{}.db", std::process::id()));
    std::fs::write(&stale, b"an old template").unwrap();
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 24 * 3600);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(two_days_ago).unwrap();
    let key = ("testkit-cleanup", std::process::id(), line!());
    TestEnv::from_template(key, seed).unwrap();
    assert!(!stale.exists(), "building a template cleans up old ones");
    assert!(template_file(key).unwrap().exists(), "and keeps the one just built");
    std::fs::remove_file(template_file(key).unwrap()).unwrap();
}
