//! Several handles and threads on one catalog file (processes: `proctests/`).

use tabula::{col, row, Catalog, ColumnType, IfExists, Schema};

fn counter_table(cat: &Catalog) -> tabula::Table {
    cat.create_dir("app", IfExists::Ignore).unwrap();
    cat.create_table(
        "app/events",
        Schema::new().required("writer", ColumnType::String).required("seq", ColumnType::Int),
        IfExists::Ignore,
    )
    .unwrap()
}

#[test]
fn a_shared_handle_works_across_threads() {
    let cat = Catalog::in_memory().unwrap();
    let t = counter_table(&cat);
    std::thread::scope(|s| {
        for w in ["x", "y"] {
            let t = t.clone();
            s.spawn(move || {
                for i in 0..100 {
                    t.insert([row! {"writer" => w, "seq" => i}]).unwrap();
                }
            });
        }
    });
    assert_eq!(t.count().unwrap(), 200);
}

#[test]
fn a_handle_sees_schema_changes_made_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let a = Catalog::open(&path).unwrap();
    let t = counter_table(&a);
    let b = Catalog::open(&path).unwrap();
    b.create_table("app/events", Schema::new().required("other", ColumnType::Int), IfExists::Replace).unwrap();
    let e = t.insert([row! {"writer" => "a", "seq" => 1}]).unwrap_err();
    assert_eq!(e.code(), tabula::ErrorCode::NotFound, "{e}");
    let fresh = a.get_table("app/events").unwrap();
    fresh.insert([row! {"other" => 1}]).unwrap();
    assert_eq!(b.get_table("app/events").unwrap().count().unwrap(), 1);
}

#[test]
fn opening_a_catalog_does_not_wait_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let cat = Catalog::open(&path).unwrap();
    let t = counter_table(&cat);
    t.insert([row! {"writer" => "a", "seq" => 1}]).unwrap();
    // A slow UDF keeps a write transaction open for a while.
    let slow = tabula::Udf::new("slow", 1, |n: i64| {
        std::thread::sleep(std::time::Duration::from_millis(3000));
        n
    });
    cat.register(&slow);
    std::thread::scope(|s| {
        let writer = s.spawn(|| t.add_computed_column("s", slow.call([col("seq")]), tabula::ColumnOptions::default()));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let started = std::time::Instant::now();
        let other = Catalog::open(&path).unwrap();
        assert_eq!(other.get_table("app/events").unwrap().count().unwrap(), 1, "readers see the last commit");
        // Waiting for the writer would take 2.7 s or more; a plain open takes milliseconds.
        assert!(started.elapsed() < std::time::Duration::from_millis(2000), "open waited {:?}", started.elapsed());
        writer.join().unwrap().unwrap();
    });
}

/// Inserting rows pulled lazily from a stream of the same handle would wait for itself: it
/// fails at once, changing nothing; a stream of another handle of the same file works.
#[test]
fn inserting_from_a_stream_of_the_same_handle_fails_at_once_and_another_handle_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let cat = Catalog::open(&path).unwrap();
    let a = counter_table(&cat);
    a.insert((0..3_000).map(|i| row! {"writer" => "a", "seq" => i})).unwrap();
    let b = cat
        .create_table(
            "app/copy",
            Schema::new().required("writer", ColumnType::String).required("seq", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    let started = std::time::Instant::now();
    let msg =
        crate::fails_cleanly(&cat, tabula::ErrorCode::Reentrant, || b.insert_results(a.select_all().stream().unwrap()));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "it failed at once");
    assert!(msg.contains("collect the rows first") && msg.contains("another handle"), "{msg}");
    // Through a second handle, the stream reads while the first writes.
    let reader = Catalog::open(&path).unwrap().get_table("app/events").unwrap();
    let done = b.insert_results(reader.select_all().stream().unwrap()).unwrap();
    assert_eq!(done.inserted, 3_000);
    assert_eq!(b.count().unwrap(), 3_000);
}
