//! Several handles, threads and processes on one catalog file.

use std::process::Command;

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

fn write_events(path: &std::path::Path, writer: &str, n: i64) {
    let cat = Catalog::open(path).unwrap();
    let t = counter_table(&cat);
    for i in 0..n {
        t.insert([row! {"writer" => writer, "seq" => i}]).unwrap();
        if i % 10 == 0 {
            t.update([("seq", col("seq"))], col("writer").eq(writer).and(col("seq").eq(i))).unwrap();
        }
    }
}

fn check_events(path: &std::path::Path, writers: &[&str], n: i64) {
    let cat = Catalog::open(path).unwrap();
    cat.integrity_check().unwrap();
    let t = cat.get_table("app/events").unwrap();
    for w in writers {
        let seqs: Vec<i64> = t
            .select([col("seq")])
            .where_(col("writer").eq(*w))
            .order_by(col("seq"))
            .collect()
            .unwrap()
            .iter()
            .map(|r| r.get("seq").unwrap())
            .collect();
        assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "writer {w}");
    }
    let inserts = writers.len() as u64 * n as u64;
    let updates = writers.len() as u64 * (n as u64).div_ceil(10);
    assert_eq!(t.version().unwrap().0, inserts + updates, "one version per committed call");
}

#[test]
fn handles_in_threads_serialize_their_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    counter_table(&Catalog::open(&path).unwrap());
    let writers = ["a", "b", "c", "d"];
    std::thread::scope(|s| {
        for w in writers {
            let path = &path;
            s.spawn(move || write_events(path, w, 50));
        }
    });
    check_events(&path, &writers, 50);
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

/// The child side of `two_processes_write_at_once`: runs only when spawned by it.
#[test]
fn child_writer_process() {
    let (Ok(path), Ok(name)) = (std::env::var("TABULA_TEST_CHILD_DB"), std::env::var("TABULA_TEST_CHILD_NAME")) else {
        return;
    };
    write_events(std::path::Path::new(&path), &name, 100);
}

#[test]
fn two_processes_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|name| {
            Command::new(&exe)
                .args(["--exact", "concurrency::child_writer_process", "--test-threads=1", "--nocapture"])
                .env("TABULA_TEST_CHILD_DB", &path)
                .env("TABULA_TEST_CHILD_NAME", name)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a writer failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    check_events(&path, &["p1", "p2"], 100);
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
