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

/// Reading while writing on the same handle: on a file, the read has a connection of its
/// own, so an insert can pull rows lazily from a stream of the same handle (the stream sees
/// the last commit before it, never the insert's own rows). An in-memory catalog has one
/// connection: there it fails at once, changing nothing, instead of waiting for itself.
#[test]
fn inserting_from_a_stream_of_the_same_handle_works_on_a_file_and_fails_at_once_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = Catalog::open(dir.path().join("c.db")).unwrap();
    let memory = Catalog::in_memory().unwrap();
    for cat in [&file, &memory] {
        let a = counter_table(cat);
        a.insert((0..3_000).map(|i| row! {"writer" => "a", "seq" => i})).unwrap();
        let copy = Schema::new().required("writer", ColumnType::String).required("seq", ColumnType::Int);
        let b = cat.create_table("app/copy", copy, IfExists::Error).unwrap();
        let started = std::time::Instant::now();
        if std::ptr::eq(cat, &file) {
            let done = b.insert_results(a.select_all().stream().unwrap()).unwrap();
            assert_eq!(done.inserted, 3_000);
            // Into the same table it streams from: the stream reads the rows before the insert.
            let done = a.insert_results(a.select_all().stream().unwrap()).unwrap();
            assert_eq!((done.inserted, a.count().unwrap()), (3_000, 6_000));
        } else {
            let msg = crate::fails_cleanly(cat, tabula::ErrorCode::Reentrant, || {
                b.insert_results(a.select_all().stream().unwrap())
            });
            assert!(msg.contains("collect the rows first"), "{msg}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no call waited for itself");
    }
}

/// Reads on one handle run at once in several threads, each on its own connection: two
/// reads whose filters wait for each other both get in (with one shared connection, the
/// second would wait for the first forever).
#[test]
fn reads_on_one_handle_run_in_parallel() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(dir.path().join("c.db")).unwrap();
    let t = counter_table(&cat);
    t.insert((0..10).map(|i| row! {"writer" => "a", "seq" => i})).unwrap();
    let inside = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let rendezvous = tabula::Udf::new("rendezvous", 1, move |seq: i64| {
        use std::sync::atomic::Ordering;
        if seq == 0 {
            // Say this read is inside its filter, then wait until the other one is too.
            inside.fetch_add(1, Ordering::SeqCst);
            let started = std::time::Instant::now();
            while inside.load(Ordering::SeqCst) < 2 {
                if started.elapsed() > Duration::from_secs(10) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        true
    });
    cat.register(&rendezvous);
    let q = t.select([col("seq")]).where_(rendezvous.call([col("seq")]));
    let counts: Vec<usize> = std::thread::scope(|s| {
        let a = s.spawn(|| q.collect().unwrap().len());
        let b = s.spawn(|| q.collect().unwrap().len());
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    assert_eq!(counts, [10, 10], "both reads met inside their filters");
}
