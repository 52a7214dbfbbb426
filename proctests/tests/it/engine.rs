//! The engine under real processes: writers killed at random moments, concurrent writer
//! processes checked against a replay of their commits, threads and processes appending.
//! The long forms run with `TABULA_CRASH_KILLS=50` and `TABULA_WRITER_OPS=2000` (see
//! RELIABILITY.md).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tabula::{col, Catalog, Version};
use tabula_proctests::engine::{apply, crash_table, events_table, write_events, writer_table, Op, Rng, CRASH_BATCH};

const CHILD: &str = env!("CARGO_BIN_EXE_proctest-child");

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn check_consistent(cat: &Catalog) {
    cat.integrity_check().unwrap();
    let t = cat.get_table("crash").unwrap();
    // No partial rows: every batch is complete.
    let mut per_batch = std::collections::BTreeMap::new();
    for r in t.select([col("batch")]).stream().unwrap() {
        *per_batch.entry(r.unwrap().get::<i64>("batch").unwrap()).or_insert(0i64) += 1;
    }
    assert!(per_batch.values().all(|n| *n == CRASH_BATCH), "a batch is incomplete: {per_batch:?}");
    // The metadata agrees with the data: rows = inserted - deleted over the history.
    let history = t.history().unwrap();
    let expected: u64 = history.iter().map(|v| v.inserted - v.deleted).sum();
    assert_eq!(t.count().unwrap(), expected);
    // Computed columns are complete too.
    for c in t.describe().unwrap().columns.iter().filter(|c| c.computed.is_some()) {
        assert_eq!(t.select_all().where_(col(c.name.clone()).is_null()).count().unwrap(), 0, "{} has holes", c.name);
    }
    // The view: its rows and column complete, and its latest version reads as it does.
    let view = cat.get_table("crash_low").unwrap();
    let shown = |v: &tabula::Table| -> (u64, i64) {
        let rows = v.select([col("i3")]).collect().unwrap();
        (rows.len() as u64, rows.iter().map(|r| r.get::<i64>("i3").unwrap()).sum())
    };
    let now = shown(&view);
    assert_eq!(now.0, t.select_all().where_(col("i").lt(100)).count().unwrap(), "the view lost or gained rows");
    assert_eq!((now.0 * 99 * 3 / 2) as i64, now.1, "every batch's rows 0..100 each have i3 = 3 i");
    let latest = cat.get_table(format!("crash_low:{}", view.version().unwrap().0)).unwrap();
    assert_eq!(shown(&latest), now, "the view's latest version reads otherwise than the view");
}

#[test]
fn killed_writers_leave_a_consistent_catalog() {
    let kills = env_number("TABULA_CRASH_KILLS", 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    crash_table(&Catalog::open(&path).unwrap()).unwrap();
    let mut rng = Rng(0x5eed_1234_abcd);
    for kill in 0..kills {
        let mut child = Command::new(CHILD)
            .args(["crash", path.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Wait for the first commit of this child, then kill it at a random moment.
        let started = Instant::now();
        let (mut last, mut in_flight) = (None, String::new());
        while last.is_none() {
            let line = rx.recv_timeout(Duration::from_secs(60)).expect("the child never committed");
            if let Some(v) = line.strip_prefix("committed ") {
                last = v.parse::<u64>().ok();
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().unwrap();
        child.wait().unwrap();
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(v) = line.strip_prefix("committed ") {
                last = v.parse::<u64>().ok();
                in_flight.clear();
            } else if let Some(op) = line.strip_prefix("start ") {
                in_flight = op.to_string();
            }
        }
        let last = last.unwrap_or(0);
        let cat = Catalog::open(&path).unwrap();
        let version = cat.get_table("crash").unwrap().version().unwrap().0;
        // At the last printed commit, or past the call in flight if it committed before its
        // line was printed: a write raises the version, a revert lowers it.
        let ok =
            version == last || (in_flight == "write" && version > last) || (in_flight == "revert" && version < last);
        assert!(ok, "kill {kill}: version {version}, last committed {last}, in flight: {in_flight:?}");
        eprintln!("kill {kill}: in flight: {in_flight:?}, version {version}");
        check_consistent(&cat);
        assert!(started.elapsed() < Duration::from_secs(120));
    }
}

fn contents(t: &tabula::Table) -> Vec<(i64, i64, i64)> {
    let mut rows: Vec<(i64, i64, i64)> = t
        .select_all()
        .collect()
        .unwrap()
        .iter()
        .map(|r| (r.get("writer").unwrap(), r.get("seq").unwrap(), r.get("x").unwrap()))
        .collect();
    rows.sort();
    rows
}

#[test]
fn concurrent_writers_equal_a_replay_of_their_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let open = || Catalog::open(&path).unwrap();
    writers_equal_a_replay(path.to_str().unwrap(), dir.path(), &open);
}

/// The same on a PostgreSQL server: writer processes on their own connections (as on several
/// hosts), in a new schema of the test server's database.
#[test]
#[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
fn concurrent_writers_on_a_server_equal_a_replay_of_their_commits() {
    let url = std::env::var("TABULA_TEST_POSTGRES").expect("TABULA_TEST_POSTGRES names the test server");
    let env = tabula_testkit::TestEnv::on_server(&url).unwrap();
    let target = env.url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let open = || Catalog::connect(target).unwrap();
    writers_equal_a_replay(target, dir.path(), &open);
}

/// Three writer processes make random calls on one table of the catalog at `target`; every
/// committed call, replayed in version order on a fresh catalog, gives the same versions and
/// rows.
fn writers_equal_a_replay(target: &str, logs: &std::path::Path, open: &dyn Fn() -> Catalog) {
    writer_table(&open()).unwrap();
    let ops = env_number("TABULA_WRITER_OPS", 60).to_string();
    let log = |id: i64| logs.join(format!("writer{id}.log"));
    let writers: Vec<_> = (1..=3)
        .map(|id| {
            Command::new(CHILD)
                .args(["writer", target, &id.to_string(), &ops, log(id).to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "a writer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let cat = open();
    assert_eq!(cat.integrity_check().map_err(|e| e.to_string()), Ok(()));
    let t = cat.get_table("shared").unwrap();
    // Replay every committed operation, in version order, on a fresh catalog.
    let mut committed: Vec<(u64, Op)> = Vec::new();
    for id in 1..=3 {
        for line in std::fs::read_to_string(log(id)).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            committed.push((v["version"].as_u64().unwrap(), serde_json::from_value(v["op"].clone()).unwrap()));
        }
    }
    assert!(committed.len() > 30, "the writers committed too little to test anything: {}", committed.len());
    committed.sort_by_key(|(v, _)| *v);
    let versions: Vec<u64> = committed.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions,
        (1..=committed.len() as u64).collect::<Vec<_>>(),
        "every version was made by exactly one logged call"
    );
    let fresh = Catalog::in_memory().unwrap();
    let replay = writer_table(&fresh).unwrap();
    for (v, op) in &committed {
        assert_eq!(apply(&replay, op).unwrap().version, Version(*v));
    }
    assert_eq!(contents(&t), contents(&replay));
}

/// Every writer's events are there once, in order, and each call made one version.
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
    events_table(&Catalog::open(&path).unwrap()).unwrap();
    let writers = ["a", "b", "c", "d"];
    std::thread::scope(|s| {
        for w in writers {
            let path = path.to_str().unwrap();
            s.spawn(move || write_events(path, w, 50).unwrap());
        }
    });
    check_events(&path, &writers, 50);
}

#[test]
fn two_processes_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|name| {
            Command::new(CHILD)
                .args(["events", path.to_str().unwrap(), name, "100"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a writer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    check_events(&path, &["p1", "p2"], 100);
}

/// An add of an expensive UDF killed halfway: run again, it pays only for the rows the
/// killed one had not computed (plus the calls in flight when it died), and the table has
/// exactly one new version with every value.
#[test]
fn an_expensive_add_killed_halfway_pays_only_for_the_rest_when_run_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    const ROWS: usize = 1500;
    let dir = tempfile::tempdir().unwrap();
    let (path, count) = (dir.path().join("cat.db"), dir.path().join("calls"));
    let cat = Catalog::open(&path).unwrap();
    let t = cat
        .create_table("docs", tabula::Schema::new().required("n", tabula::ColumnType::Int), tabula::IfExists::Error)
        .unwrap();
    t.insert((0..ROWS as i64).map(|n| tabula::row! {"n" => n})).unwrap();
    let mut child = Command::new(CHILD)
        .args(["expensive", path.to_str().unwrap(), count.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let calls_in_file = || std::fs::read_to_string(&count).map(|s| s.lines().count()).unwrap_or(0);
    let started = Instant::now();
    while calls_in_file() < ROWS / 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "the child made {} calls in 60 s", calls_in_file());
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let paid_before = calls_in_file();
    assert!(paid_before < ROWS, "killed before the end: {paid_before} calls");
    assert_eq!(t.history().unwrap().len(), 2, "the killed add made no version");

    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let udf = tabula_proctests::engine::paid_udf(move || {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    cat.register(&udf);
    t.add_computed_column("x", udf.call([col("n")]), tabula::ColumnOptions::default()).unwrap();
    let paid_after = calls.load(Ordering::SeqCst);
    assert!(
        paid_after <= ROWS - paid_before + 4,
        "run again it paid {paid_after} calls; the killed run had paid {paid_before} of {ROWS}"
    );
    assert_eq!(t.history().unwrap().len(), 3, "one new version");
    assert_eq!(t.select_all().where_(col("x").eq(col("n") * 7)).count().unwrap(), ROWS as u64);
}

/// Rows of the memory scenario: 40,000 rows of 1,000 characters, 40 MB of text.
const MEMORY_ROWS: i64 = 40_000;

/// What one write may add to the heap at its peak: a few copies of a page of 1,024 rows of
/// 1,000 characters (its values read, computed, staged and framed for the copy), a fifth of
/// the table's text.
const MEMORY_BOUND: usize = 8 << 20;

/// Runs the memory scenario on `target`: each write's name, peak heap growth, rows written.
fn write_peaks(target: &str) -> Vec<(String, usize, u64)> {
    let out = Command::new(CHILD).args(["memory", target, &MEMORY_ROWS.to_string()]).output().unwrap();
    assert!(out.status.success(), "the memory scenario failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8(out.stdout).unwrap();
    lines
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            (parts[0].to_string(), parts[1].parse().unwrap(), parts[2].parse().unwrap())
        })
        .collect()
}

/// Every write of the scenario changed the rows it should and stayed under the bound.
fn check_peaks(peaks: &[(String, usize, u64)]) {
    let names: Vec<&str> = peaks.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["update", "view-update", "delete"]);
    let rows: Vec<u64> = peaks.iter().map(|(_, _, rows)| *rows).collect();
    let thirds = (0..MEMORY_ROWS).filter(|k| k % 3 == 0).count() as u64;
    assert_eq!(rows, [MEMORY_ROWS as u64, MEMORY_ROWS as u64, thirds]);
    for (name, bytes, _) in peaks {
        assert!(*bytes < MEMORY_BOUND, "{name} held {bytes} bytes at once (bound {MEMORY_BOUND}): {peaks:?}");
    }
}

/// On a file, SQLite runs these writes in its statements: the client holds no rows.
#[test]
fn big_writes_hold_no_table_in_memory_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    check_peaks(&write_peaks(dir.path().join("big.db").to_str().unwrap()));
}

/// On a server, Tabula evaluates them itself (the server cannot run `upper`, `lower` or `%`
/// with Tabula's meaning): a page of rows at a time, so a write holds a page, not the table
/// (they held every row's new values, and the view's every row, before).
#[test]
#[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
fn big_writes_tabula_evaluates_on_a_server_hold_a_page_at_a_time() {
    let url = std::env::var("TABULA_TEST_POSTGRES").expect("TABULA_TEST_POSTGRES names the test server");
    let env = tabula_testkit::TestEnv::on_server(&url).unwrap();
    check_peaks(&write_peaks(env.url().unwrap()));
}
