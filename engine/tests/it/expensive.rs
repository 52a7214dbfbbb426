//! Expensive UDFs: calls in flight at once, a process-wide rate limit, timeouts, and retries
//! of transient failures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tabula::{
    col, row, CellErrorKind, ColumnOptions, ColumnType, IfExists, OnError, RetryPolicy, Schema, Table, Udf, UdfError,
};

use crate::catalog;

/// `app/t(n)` with rows 0..rows.
fn numbers(cat: &tabula::Catalog, rows: i64) -> Table {
    let t = cat.create_table("app/t", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
    t.insert((0..rows).map(|n| row! {"n" => n})).unwrap();
    t
}

fn ignore() -> ColumnOptions {
    ColumnOptions { on_error: OnError::Ignore, ..Default::default() }
}

/// `(value, error kind)` of column `c` in row order.
fn cells(t: &Table, c: &str) -> Vec<(Option<i64>, Option<String>)> {
    t.select([col(c).alias("v"), col(c).errortype().alias("e")])
        .order_by(col("n"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| (r.get("v").unwrap(), r.get("e").unwrap()))
        .collect()
}

/// A UDF that sleeps `pause` a call and records how many calls were in flight at most.
fn slow(pause: Duration) -> (Udf, Arc<AtomicUsize>) {
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = most.clone();
    let udf = Udf::new("slow", 1, move |n: i64| {
        let in_flight = now.fetch_add(1, Ordering::SeqCst) + 1;
        seen.fetch_max(in_flight, Ordering::SeqCst);
        std::thread::sleep(pause);
        now.fetch_sub(1, Ordering::SeqCst);
        n * 10
    });
    (udf, most)
}

#[test]
fn concurrency_puts_up_to_n_calls_in_flight_and_keeps_row_order() {
    let cat = catalog();
    let t = numbers(&cat, 64);
    let (udf, most) = slow(Duration::from_millis(20));
    let udf = udf.concurrency(8);
    cat.register(&udf);
    t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()).unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 8, "eight calls at once, never more");
    assert_eq!(cells(&t, "x"), (0..64).map(|n| (Some(n * 10), None)).collect::<Vec<_>>());
    // Inserts and previews use it too.
    most.store(0, Ordering::SeqCst);
    t.insert((64..96).map(|n| row! {"n" => n})).unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 8);
    assert_eq!(cells(&t, "x")[95], (Some(950), None));
    let preview = t.select([udf.call([col("n")]).alias("y")]).head(3).unwrap();
    assert_eq!(preview.len(), 3);

    // Without it, one call at a time.
    let cat = catalog();
    let t = numbers(&cat, 8);
    let (udf, most) = slow(Duration::from_millis(5));
    cat.register(&udf);
    t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()).unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[test]
fn a_batch_udf_with_concurrency_gets_its_batch_in_parts_at_once() {
    let cat = catalog();
    let t = numbers(&cat, 100);
    let (now, most, batches) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let (seen, sizes) = (most.clone(), batches.clone());
    let udf = Udf::batch("double", 1, [ColumnType::Int], ColumnType::Int, move |rows| {
        seen.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        now.fetch_sub(1, Ordering::SeqCst);
        sizes.lock().unwrap().push(rows.len());
        rows.iter()
            .map(|r| match r[0] {
                tabula::Value::Int(n) => Ok(tabula::Value::Int(2 * n)),
                _ => Err("?".into()),
            })
            .collect()
    })
    .concurrency(4);
    cat.register(&udf);
    t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()).unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 4);
    assert_eq!(batches.lock().unwrap().iter().sum::<usize>(), 100);
    assert_eq!(cells(&t, "x"), (0..100).map(|n| (Some(2 * n), None)).collect::<Vec<_>>());
}

#[test]
fn a_rate_limit_spaces_calls_across_the_whole_process() {
    let cat = catalog();
    let t = numbers(&cat, 400);
    let udf = Udf::new("limited", 1, |n: i64| n).rate_limit(200.0).concurrency(16);
    cat.register(&udf);
    let started = Instant::now();
    t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()).unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900), "400 calls at 200/s took {took:?}");

    // Two handles, each with its own copy of the UDF: one limit between them.
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let cat = catalog();
                let t = numbers(&cat, 50);
                let udf = Udf::new("shared_limit", 1, |n: i64| n).rate_limit(100.0);
                cat.register(&udf);
                t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()).unwrap();
            });
        }
    });
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(950), "2 x 50 calls at 100/s took {took:?}");
}

#[test]
fn a_call_past_its_timeout_fails_its_cell_without_waiting_for_it() {
    let cat = catalog();
    let t = numbers(&cat, 4);
    let udf = Udf::new("hangs", 1, |n: i64| {
        if n == 2 {
            std::thread::sleep(Duration::from_secs(3));
        }
        n
    })
    .timeout(Duration::from_millis(100));
    cat.register(&udf);
    let started = Instant::now();
    t.add_computed_column("x", udf.call([col("n")]), ignore()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let got = cells(&t, "x");
    assert_eq!(got[2], (None, Some(CellErrorKind::UdfTimeout.to_string())));
    assert_eq!(got[3], (Some(3), None));
}

#[test]
fn transient_failures_are_retried_and_permanent_ones_are_not() {
    let cat = catalog();
    let t = numbers(&cat, 10);
    let calls: Arc<Mutex<HashMap<i64, u32>>> = Arc::default();
    let seen = calls.clone();
    let flaky = Udf::new("flaky", 1, move |n: i64| -> Result<i64, UdfError> {
        let mut calls = seen.lock().unwrap();
        let k = calls.entry(n).or_insert(0);
        *k += 1;
        match n {
            // Always down: gives up after the last attempt.
            7 => Err(UdfError::Transient("503 from the service".into())),
            // A bad input: not worth another call.
            8 => Err(UdfError::Permanent("no such document".into())),
            // Down for the first two calls of each row.
            _ if *k <= 2 => Err(UdfError::Transient("timed out upstream".into())),
            _ => Ok(n + 100),
        }
    })
    .retry(RetryPolicy::attempts(3).base(Duration::from_millis(1)).cap(Duration::from_millis(4)))
    .concurrency(4);
    cat.register(&flaky);
    t.add_computed_column("x", flaky.call([col("n")]), ignore()).unwrap();
    let got = cells(&t, "x");
    for n in [0, 1, 2, 3, 4, 5, 6, 9] {
        assert_eq!(got[n as usize], (Some(n + 100), None), "row {n}");
    }
    assert_eq!(got[7].1.as_deref(), Some("UdfTransient"));
    assert_eq!(got[8].1.as_deref(), Some("UdfError"));
    let calls = calls.lock().unwrap();
    assert_eq!((calls[&0], calls[&7], calls[&8]), (3, 3, 1));
    let why: String =
        t.select([col("x").errormsg().alias("m")]).where_(col("n").eq(7)).first().unwrap().unwrap().get("m").unwrap();
    assert_eq!(why, "503 from the service (gave up after 3 attempts)");
}

/// The expensive-UDF workflow after an outage: a permanent failure is kept, transient ones
/// are retried later for exactly the failed rows, in one version that a revert undoes.
#[test]
fn recompute_only_errors_pays_for_exactly_the_failed_rows() {
    let cat = catalog();
    let t = numbers(&cat, 10);
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let (is_down, seen) = (down.clone(), calls.clone());
    let api = Udf::new("api", 1, move |n: i64| -> Result<i64, UdfError> {
        seen.fetch_add(1, Ordering::SeqCst);
        if n == 9 {
            return Err(UdfError::Permanent("bad input".into()));
        }
        if n % 3 == 0 && is_down.load(Ordering::SeqCst) {
            return Err(UdfError::Transient("503".into()));
        }
        Ok(n * 2)
    });
    cat.register(&api);
    t.add_computed_column("x", api.call([col("n")]), ignore()).unwrap();
    t.add_computed_column("y", col("x") + 1, ColumnOptions::default()).unwrap();
    assert_eq!(calls.swap(0, Ordering::SeqCst), 10);
    let before = t.version().unwrap();
    assert_eq!(cells(&t, "y")[3].1.as_deref(), Some("UpstreamError"));

    down.store(false, Ordering::SeqCst);
    let w = t.recompute("x", tabula::Only::Errors).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4, "rows 0, 3, 6 and 9 failed; nothing else is called");
    assert_eq!((w.change, w.updated, w.version.0), (Some(tabula::ChangeKind::Recompute), 4, before.0 + 1));
    let x = cells(&t, "x");
    assert_eq!(x[3], (Some(6), None));
    assert_eq!(x[9].1.as_deref(), Some("UdfError"));
    assert_eq!(cells(&t, "y")[3], (Some(7), None), "what reads it follows");
    // Nothing failed transiently any more: another pass calls only the permanent failure.
    calls.store(0, Ordering::SeqCst);
    let none = t.recompute_where("x", tabula::Only::Errors, col("n").lt(9)).unwrap();
    assert_eq!(none.change, None);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no failed row below 9: no version, no call");
    t.revert().unwrap();
    assert_eq!(cells(&t, "x")[3].1.as_deref(), Some("UdfTransient"), "the revert brings the errors back");
    assert_eq!(t.version().unwrap(), before);
    t.recompute("x", tabula::Only::All).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    let e = t.recompute("n", tabula::Only::All).unwrap_err();
    assert!(e.to_string().contains("'n' is stored; only computed columns"), "{e}");
    assert_eq!(t.recompute("nope", tabula::Only::All).unwrap_err().code(), tabula::ErrorCode::UnknownColumn);
}

/// A failure budget: past it the add stops calling the UDF and stores nothing, and the
/// error says how many failed of how many, with the first causes. Within it, the add keeps
/// its failures as usual. Both fill paths (SQL calling back, Rust batches) honour it.
#[test]
fn a_failure_budget_stops_the_add_and_stores_nothing() {
    for concurrency in [1, 4] {
        let cat = catalog();
        let t = numbers(&cat, 2000);
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        // Every tenth row fails: 10%.
        let udf = Udf::new("often_fails", 1, move |n: i64| {
            seen.fetch_add(1, Ordering::SeqCst);
            if n % 10 == 0 {
                Err(format!("no luck with {n}"))
            } else {
                Ok(n)
            }
        })
        .concurrency(concurrency);
        cat.register(&udf);
        let before = crate::state(&cat);
        let budget = |b| ColumnOptions { max_failures: Some(b), ..ignore() };
        let e = t
            .add_computed_column("x", udf.call([col("n")]), budget(tabula::FailureBudget::Fraction(0.05)))
            .unwrap_err();
        assert_eq!(e.code(), tabula::ErrorCode::UdfFailed);
        let msg = e.to_string();
        assert!(msg.contains(" rows tried failed (10."), "{msg}");
        assert!(msg.contains("past the budget of 5% (100 of 2000 rows); stopped, nothing was stored"), "{msg}");
        assert!(msg.contains("no luck with 0"), "{msg}");
        assert!(calls.load(Ordering::SeqCst) < 2000, "it stopped calling: {}", calls.load(Ordering::SeqCst));
        assert_eq!(crate::state(&cat), before, "nothing stored");

        t.add_computed_column("x", udf.call([col("n")]), budget(tabula::FailureBudget::Rows(200))).unwrap();
        assert_eq!(t.select_all().where_(col("x").errortype().is_not_null()).count().unwrap(), 200);
    }
}

/// A counting UDF over `n`; `tune` sets its policy.
fn counting(name: &str, tune: impl Fn(Udf) -> Udf) -> (Udf, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let udf = Udf::new(name, 1, move |n: i64| {
        seen.fetch_add(1, Ordering::SeqCst);
        n * 3
    });
    (tune(udf), calls)
}

/// "Try on 3 rows, then add": with remembered results, the add does not pay again for the
/// preview's rows. An expensive UDF (one with a call policy) remembers by default; a plain
/// one does not unless asked; `remember(false)` opts out (a clock, a random choice).
#[test]
fn a_preview_then_an_add_pays_each_row_once() {
    for (label, tune, want) in [
        ("expensive", (|u: Udf| u.concurrency(4)) as fn(Udf) -> Udf, 100),
        ("plain", |u: Udf| u, 103),
        ("asked", |u: Udf| u.remember(true), 100),
        ("opted out", |u: Udf| u.concurrency(4).remember(false), 103),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cat = tabula::Catalog::open(dir.path().join("cat.db")).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        let t = numbers(&cat, 100);
        let (udf, calls) = counting("triple", tune);
        cat.register(&udf);
        let preview = t.select([col("n"), udf.call([col("n")]).alias("x")]).head(3).unwrap();
        assert_eq!(preview[2].get::<i64>("x").unwrap(), 6);
        t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), want, "{label}");
        assert_eq!(cells(&t, "x")[99], (Some(297), None), "{label}");
    }
}

/// A catalog that another handle can open too (as another process would), with directory
/// `app`: a file, or on the test server (`TABULA_TEST_POSTGRES`) a schema of its own; and how
/// to open it again.
fn shared_catalog() -> (crate::Scratch, Box<dyn Fn() -> tabula::Catalog>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    #[cfg(feature = "postgres")]
    {
        let cat = crate::catalog();
        if crate::on_server(&cat) {
            // The test server's URL has no password: the location is the URL.
            let url = cat.location().to_string();
            return (cat, Box::new(move || tabula::Catalog::connect(&url).unwrap()), dir);
        }
    }
    let path = dir.path().join("cat.db");
    let cat = tabula::Catalog::open(&path).unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    (crate::Scratch::file(cat), Box::new(move || tabula::Catalog::open(&path).unwrap()), dir)
}

/// A failed add, run again, pays only for the rows it had not computed; a replace with the
/// same UDF over the same arguments pays nothing; `forget_results` makes every call again,
/// and compaction forgets the versions no column uses. On a file and on a server (whose
/// results live in a table of the catalog's schema).
#[test]
fn an_add_run_again_pays_only_for_what_it_had_not_computed() {
    let (cat, reopen, _dir) = shared_catalog();
    let t = numbers(&cat, 3000);
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let (is_broken, seen) = (broken.clone(), calls.clone());
    let udf = Udf::new("fragile", 1, move |n: i64| -> Result<i64, String> {
        seen.fetch_add(1, Ordering::SeqCst);
        if n == 2500 && is_broken.load(Ordering::SeqCst) {
            return Err("the model server went away".into());
        }
        Ok(n + 1)
    })
    .concurrency(2);
    cat.register(&udf);
    assert!(t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()).is_err());
    let paid = calls.swap(0, Ordering::SeqCst);
    assert!(paid >= 2049, "two batches of 1024 computed before the failing one: {paid}");
    broken.store(false, Ordering::SeqCst);
    // Another handle on the same file (another process would do the same): the results
    // were committed outside the failed add.
    let again = reopen();
    again.register(&udf);
    let t = again.get_table("app/t").unwrap();
    t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()).unwrap();
    assert_eq!(
        calls.swap(0, Ordering::SeqCst),
        3000 - (paid - 1),
        "only the rows not yet computed (the failed call again)"
    );
    assert_eq!(t.history().unwrap().len(), 3, "create, insert, one add");
    assert_eq!(cells(&t, "x")[2999], (Some(3000), None));

    t.add_computed_column("y", udf.call([col("n")]), ColumnOptions::default()).unwrap();
    assert_eq!(calls.swap(0, Ordering::SeqCst), 0, "same UDF, same arguments: all remembered");
    assert_eq!(again.forget_results(Some(&udf)).unwrap(), 3000);
    t.add_computed_column("z", udf.call([col("n")]), ColumnOptions::default()).unwrap();
    assert_eq!(calls.swap(0, Ordering::SeqCst), 3000);
    for c in ["x", "y", "z"] {
        t.drop_column(c).unwrap();
    }
    again.compact(tabula::Retention::Versions(1)).unwrap();
    t.add_computed_column("w", udf.call([col("n")]), ColumnOptions::default()).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3000, "compaction forgot a version no column uses");
}

/// An expensive add does not stop other writers: its UDF runs before it takes the write
/// lock (the results remembered), and the short write that follows also computes the rows
/// inserted meanwhile, so its version holds every row.
#[test]
fn an_expensive_add_lets_other_writers_in_while_its_udf_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    let cat = tabula::Catalog::open(&path).unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    let t = numbers(&cat, 6000);
    let log = cat.create_table("app/log", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
    let (udf, _) = slow(Duration::from_millis(2));
    let udf = udf.concurrency(4); // 6,000 x 2 ms / 4: 3 s of calls
    cat.register(&udf);
    let started = Instant::now();
    std::thread::scope(|s| {
        let add = s.spawn(|| t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()).unwrap());
        std::thread::sleep(Duration::from_millis(300));
        let other = tabula::Catalog::open(&path).unwrap();
        other.register(&udf);
        let waited = Instant::now();
        other.get_table("app/log").unwrap().insert([row! {"n" => 1}]).unwrap();
        other.get_table("app/t").unwrap().insert([row! {"n" => 6000}]).unwrap();
        let waited = waited.elapsed();
        assert!(waited < Duration::from_secs(2), "the other writer waited {waited:?}");
        assert!(!add.is_finished(), "the add was still calling its UDF");
        add.join().unwrap();
    });
    assert!(started.elapsed() >= Duration::from_millis(2500), "{:?}", started.elapsed());
    assert_eq!(log.count().unwrap(), 1);
    assert_eq!(t.select_all().where_(col("x").eq(col("n") * 10)).count().unwrap(), 6001, "every row, the late one too");
    assert_eq!(t.history().unwrap().len(), 4, "create, insert, the other insert, one add");
}

/// An observer is told how an expensive add is coming along, a batch at a time, up to the
/// whole table, with the failures so far; one that panics does not break the add.
#[test]
fn progress_is_reported_batch_by_batch() {
    let cat = catalog();
    let t = numbers(&cat, 2500);
    let seen: Arc<Mutex<Vec<tabula::Progress>>> = Arc::default();
    let log = seen.clone();
    cat.on_progress(move |p| log.lock().unwrap().push(p.clone()));
    let udf = Udf::new("odd", 1, |n: i64| if n % 100 == 0 { Err("round".to_string()) } else { Ok(n) }).concurrency(2);
    cat.register(&udf);
    t.add_computed_column("x", udf.call([col("n")]), ignore()).unwrap();
    let seen = seen.lock().unwrap();
    let done: Vec<u64> = seen.iter().map(|p| p.done).collect();
    assert_eq!(done, [1024, 2048, 2500]);
    let last = seen.last().unwrap();
    assert_eq!((last.table.as_str(), last.column.as_str(), last.total, last.failed), ("app/t", "x", 2500, 25));
    assert_eq!(last.eta(), Some(Duration::ZERO));
    assert!(last.to_string().starts_with("app/t.x: 2500/2500 rows (25 failed), "), "{last}");

    cat.on_progress(|_| panic!("a broken progress bar"));
    t.add_computed_column("y", udf.call([col("n")]), ignore()).unwrap();
    assert_eq!(t.select_all().where_(col("y").is_not_null()).count().unwrap(), 2475);
}

/// The estimate before an add: rows, calls still to pay (remembered rows and null
/// arguments make none), and the time from the measured call time, the concurrency and the
/// rate limit.
#[test]
fn an_estimate_counts_the_calls_left_and_their_time() {
    let cat = catalog();
    let t = cat.create_table("app/t", Schema::new().nullable("n", ColumnType::Int), IfExists::Error).unwrap();
    t.insert((0..200).map(|n| row! {"n" => if n < 10 { None } else { Some(n) }})).unwrap();
    let (udf, _) = slow(Duration::from_millis(10));
    let udf = udf.concurrency(10).rate_limit(50.0);
    cat.register(&udf);
    let before = t.estimate(&udf.call([col("n")])).unwrap();
    assert_eq!((before.rows, before.calls, before.time), (200, 190, None));
    assert!(before.to_string().contains("preview a few rows first"), "{before}");
    t.select([udf.call([col("n")])]).where_(col("n").is_not_null()).head(5).unwrap();
    let after = t.estimate(&udf.call([col("n")])).unwrap();
    assert_eq!((after.calls, after.in_flight, after.per_second), (185, 10, Some(50.0)));
    let per_call = after.per_call.unwrap();
    assert!(per_call >= Duration::from_millis(10), "{per_call:?}");
    // 185 calls of ~10 ms, 10 at once, take ~0.2 s; the rate limit (50 a second) makes 3.7 s.
    let time = after.time.unwrap();
    assert!(time >= Duration::from_millis(3690) && time < Duration::from_secs(4), "{time:?}");
    assert!(after.to_string().starts_with("200 rows, 185 calls (~"), "{after}");
    assert_eq!(t.estimate(&(col("n") + 1)).unwrap().to_string(), "200 rows, 0 calls", "no UDF, no calls");
}
