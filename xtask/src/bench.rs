//! `cargo xtask bench`: each workload on Tabula and, where there is one, its equivalent
//! written directly with rusqlite, on the same data in the same run; a table of medians,
//! ratios (Tabula throughput / raw throughput) and targets; the same as JSON in
//! `target/bench/latest.json`. Benchmarks are measurements, not tests: nothing here fails a
//! build, but a missed target is printed as such.

use std::fmt::Write as _;
use std::path::Path as FsPath;
use std::time::Instant;

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection};
use serde::Serialize;
use tabula::{col, Catalog, ColumnOptions, ColumnType, Error, ErrorCode, IfExists, Result, Row, Schema, Udf, Value};
use tabula_testkit::{Anonymizer, Gen, Rule, Synth, TestEnv, TestNamespace};

mod pg;

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The workload.
    pub workload: String,
    /// Median time on Tabula, in milliseconds.
    pub tabula_ms: f64,
    /// Median time of the raw rusqlite equivalent, in milliseconds (when there is one).
    pub raw_ms: Option<f64>,
    /// raw time / Tabula time (Tabula throughput relative to raw), or the measured figure
    /// the target is about.
    pub figure: f64,
    /// What `figure` is.
    pub unit: String,
    /// The target, as text.
    pub target: String,
    /// Whether the target holds.
    pub pass: bool,
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::Storage, format!("bench: {e}"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn time<T>(f: impl FnOnce() -> Result<T>) -> Result<(f64, T)> {
    let started = Instant::now();
    let out = f()?;
    Ok((started.elapsed().as_secs_f64() * 1000.0, out))
}

/// Text of about 200 characters, different for every row.
fn text(i: u64) -> String {
    let words =
        ["tabula", "versioned", "table", "store", "computed", "column", "revert", "staging", "anonymized", "namespace"];
    let mut s = format!("doc {i}:");
    let mut k = i.wrapping_mul(2_654_435_761);
    while s.len() < 200 {
        s.push(' ');
        s.push_str(words[(k % 10) as usize]);
        k = k / 10 + 7;
    }
    s
}

/// The raw side's connection: WAL, `synchronous=NORMAL` and reads mapped like Tabula's
/// defaults (its fastest settings, so neither side wins by configuration).
fn raw_open(path: &FsPath) -> Result<Connection> {
    let conn = Connection::open(path).map_err(err)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA mmap_size=67108864;")
        .map_err(err)?;
    Ok(conn)
}

fn word_count(text: String) -> i64 {
    text.split_whitespace().count() as i64
}

fn schema() -> Schema {
    Schema::new().required("id", ColumnType::Int).required("n", ColumnType::Int).required("text", ColumnType::String)
}

fn rows(n: u64) -> Vec<Row> {
    (0..n).map(|i| tabula::row! {"id" => i as i64, "n" => (i % 100_000) as i64, "text" => text(i)}).collect()
}

/// The times of `n` test namespace lives in `cat`: made, a table created in it, closed.
fn namespace_cycles(cat: &Catalog, n: usize) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let cycle = || {
            let ns = TestNamespace::new(cat, "bench")?;
            cat.create_table(ns.child("t")?, schema(), IfExists::Error)?;
            ns.close()
        };
        times.push(time(cycle)?.0);
    }
    Ok(times)
}

fn raw_fill(conn: &mut Connection, n: u64) -> Result<()> {
    conn.execute_batch("CREATE TABLE t(id INTEGER NOT NULL, n INTEGER NOT NULL, text TEXT NOT NULL)").map_err(err)?;
    let tx = conn.transaction().map_err(err)?;
    {
        let mut stmt = tx.prepare("INSERT INTO t(id, n, text) VALUES (?1, ?2, ?3)").map_err(err)?;
        for i in 0..n {
            stmt.execute(params![i as i64, (i % 100_000) as i64, text(i)]).map_err(err)?;
        }
    }
    tx.commit().map_err(err)
}

/// Rows of one multi-row INSERT on the raw side.
const RAW_INSERT_ROWS: usize = 32;

/// The fastest way we know to insert rows with rusqlite: in one transaction, a prepared
/// `INSERT ... VALUES (..), (..), ...` of 32 rows (13% faster than a prepared one-row insert
/// on this work; 8 rows gain 9%, 100 rows no more than 32), the rest one row a statement.
/// Like `table.insert(rows)`, it consumes (and frees) its input.
fn raw_insert(conn: &mut Connection, texts: Vec<String>) -> Result<()> {
    let tx = conn.transaction().map_err(err)?;
    {
        let tuples: Vec<String> =
            (0..RAW_INSERT_ROWS).map(|j| format!("(?{}, ?{}, ?{})", 3 * j + 1, 3 * j + 2, 3 * j + 3)).collect();
        let mut many = tx.prepare(&format!("INSERT INTO t(id, n, text) VALUES {}", tuples.join(", "))).map_err(err)?;
        let mut one = tx.prepare("INSERT INTO t(id, n, text) VALUES (?1, ?2, ?3)").map_err(err)?;
        let full = texts.len() / RAW_INSERT_ROWS * RAW_INSERT_ROWS;
        for (i, s) in texts.into_iter().enumerate() {
            let n = (i as u64 % 100_000) as i64;
            if i < full {
                let at = 3 * (i % RAW_INSERT_ROWS);
                many.raw_bind_parameter(at + 1, i as i64).map_err(err)?;
                many.raw_bind_parameter(at + 2, n).map_err(err)?;
                many.raw_bind_parameter(at + 3, s).map_err(err)?;
                if i % RAW_INSERT_ROWS == RAW_INSERT_ROWS - 1 {
                    many.raw_execute().map_err(err)?;
                }
            } else {
                one.execute(params![i as i64, n, s]).map_err(err)?;
            }
        }
    }
    tx.commit().map_err(err)
}

struct Bench {
    rows: u64,
    reps: usize,
    dir: tempfile::TempDir,
    counter: usize,
    lines: Vec<Line>,
    /// A PostgreSQL server for the `pg-` workloads (a URL naming a database to connect to).
    server: Option<String>,
}

impl Bench {
    fn path(&mut self, what: &str) -> std::path::PathBuf {
        self.counter += 1;
        self.dir.path().join(format!("{what}-{}.db", self.counter))
    }

    fn ratio(&mut self, workload: &str, tabula: Vec<f64>, raw: Vec<f64>, target: impl Into<Option<f64>>) {
        let (t, r) = (median(tabula), median(raw));
        let ratio = r / t;
        let target = target.into();
        self.lines.push(Line {
            workload: workload.to_string(),
            tabula_ms: t,
            raw_ms: Some(r),
            figure: ratio,
            unit: "ratio".into(),
            target: target.map_or("(reported)".into(), |target| format!("ratio >= {target}")),
            pass: target.is_none_or(|target| ratio >= target),
        });
    }

    fn absolute(&mut self, workload: &str, tabula: Vec<f64>, figure: f64, unit: &str, target: String, pass: bool) {
        self.lines.push(Line {
            workload: workload.to_string(),
            tabula_ms: median(tabula),
            raw_ms: None,
            figure,
            unit: unit.into(),
            target,
            pass,
        });
    }

    /// A file catalog with `app/t` holding `n` rows.
    fn tabula_table(&mut self, n: u64) -> Result<(Catalog, tabula::Table)> {
        let path = self.path("tabula");
        let cat = Catalog::open(&path)?;
        cat.create_dir("app", IfExists::Error)?;
        let t = cat.create_table("app/t", schema(), IfExists::Error)?;
        t.insert(rows(n))?;
        Ok((cat, t))
    }

    fn raw_table(&mut self, n: u64) -> Result<Connection> {
        let path = self.path("raw");
        let mut conn = raw_open(&path)?;
        raw_fill(&mut conn, n)?;
        Ok(conn)
    }

    fn insert(&mut self) -> Result<()> {
        let (mut t, mut r) = (Vec::new(), Vec::new());
        for rep in 0..self.reps {
            // Alternate which side runs first, so neither always meets a warmer cache.
            for side in [rep % 2, 1 - rep % 2] {
                if side == 0 {
                    let path = self.path("tabula");
                    let cat = Catalog::open(&path)?;
                    let table = cat.create_table("t", schema(), IfExists::Error)?;
                    let data = rows(self.rows);
                    t.push(time(|| table.insert(data))?.0);
                } else {
                    let path = self.path("raw");
                    let mut conn = raw_open(&path)?;
                    let texts: Vec<String> = (0..self.rows).map(text).collect();
                    conn.execute_batch("CREATE TABLE t(id INTEGER NOT NULL, n INTEGER NOT NULL, text TEXT NOT NULL)")
                        .map_err(err)?;
                    r.push(time(|| raw_insert(&mut conn, texts))?.0);
                }
            }
        }
        self.ratio("insert", t, r, 0.85);
        Ok(())
    }

    fn select(&mut self) -> Result<()> {
        let (_cat, table) = self.tabula_table(self.rows)?;
        let conn = self.raw_table(self.rows)?;
        let (lo, hi) = ((self.rows / 5) as i64, (self.rows * 3 / 10) as i64);
        let q = table.select([col("id"), col("text")]).where_(col("n").ge(lo).and(col("n").lt(hi)));
        let raw = || -> Result<Vec<(i64, String)>> {
            let mut stmt = conn.prepare_cached("SELECT id, text FROM t WHERE n >= ?1 AND n < ?2").map_err(err)?;
            let out = stmt
                .query_map(params![lo, hi], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(err)?;
            Ok(out)
        };
        let (mut t, mut r) = (Vec::new(), Vec::new());
        for rep in 0..self.reps {
            // Alternate which side runs first, so neither always meets a warmer cache.
            if rep % 2 == 0 {
                t.push(time(|| q.collect())?.0);
                r.push(time(raw)?.0);
            } else {
                r.push(time(raw)?.0);
                t.push(time(|| q.collect())?.0);
            }
        }
        self.ratio("filtered select (10%)", t, r, 0.85);
        Ok(())
    }

    /// The filtered select from one thread, then from two threads at once on clones of one
    /// handle (this machine has 2 cores): reads run on their own connections, so two threads
    /// should give nearly twice the throughput.
    fn parallel_reads(&mut self) -> Result<()> {
        let (_cat, table) = self.tabula_table(self.rows)?;
        let (lo, hi) = ((self.rows / 5) as i64, (self.rows * 3 / 10) as i64);
        let q = table.select([col("id"), col("text")]).where_(col("n").ge(lo).and(col("n").lt(hi)));
        let per_thread = if self.reps == 1 { 5 } else { 40 };
        let run = |q: &tabula::Query| -> Result<()> {
            for _ in 0..per_thread {
                q.collect()?;
            }
            Ok(())
        };
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for _ in 0..self.reps.min(5) {
            one.push(time(|| run(&q))?.0);
            two.push(
                time(|| {
                    std::thread::scope(|s| {
                        let a = s.spawn(|| run(&q));
                        let b = s.spawn(|| run(&q));
                        let (a, b) = (a.join(), b.join());
                        match (a, b) {
                            (Ok(a), Ok(b)) => a.and(b),
                            _ => Err(err("a reader thread panicked")),
                        }
                    })
                })?
                .0,
            );
        }
        // Throughput: two threads did twice the work.
        let speedup = 2.0 * median(one) / median(two.clone());
        self.absolute(
            "filtered select (10%), 2 threads vs 1 (throughput)",
            two,
            speedup,
            "x",
            ">= 1.6x".into(),
            speedup >= 1.6,
        );
        Ok(())
    }

    /// Times `tabula` and `raw`, each right after its own setup (so neither side is measured
    /// in the other's wake), alternating which side goes first.
    fn pair<S, R>(
        &mut self,
        rep: usize,
        mut tabula: impl FnMut(&mut Bench) -> Result<S>,
        mut tabula_run: impl FnMut(&S) -> Result<()>,
        mut raw: impl FnMut(&mut Bench) -> Result<R>,
        mut raw_run: impl FnMut(&mut R) -> Result<()>,
    ) -> Result<(f64, f64)> {
        let (mut t, mut r) = (0.0, 0.0);
        for side in [rep % 2, 1 - rep % 2] {
            if side == 0 {
                let setup = tabula(self)?;
                t = time(|| tabula_run(&setup))?.0;
            } else {
                let mut setup = raw(self)?;
                r = time(|| raw_run(&mut setup))?.0;
            }
        }
        Ok((t, r))
    }

    /// `length(text)` added as a column. The raw side does what Tabula promises, the column
    /// and its values in one transaction; a second line runs the same statements in
    /// autocommit, each its own transaction (not atomic: a failed `UPDATE` leaves the column
    /// empty). There SQLite keeps no statement journal: in a transaction of several
    /// statements it copies every page a statement calling a function changes into one
    /// (the statement could fail halfway), and past 64 KiB that goes to a temporary file.
    fn builtin_column(&mut self) -> Result<()> {
        let (mut t, mut r, mut own) = (Vec::new(), Vec::new(), Vec::new());
        let n = self.rows;
        for rep in 0..self.reps {
            let (a, b) = self.pair(
                rep,
                |b| b.tabula_table(n),
                |(_, table)| {
                    table.add_computed_column("len", col("text").length(), ColumnOptions::default()).map(|_| ())
                },
                |b| b.raw_table(n),
                |conn| {
                    conn.execute_batch(
                        "BEGIN; ALTER TABLE t ADD COLUMN len INTEGER; UPDATE t SET len = length(text); COMMIT;",
                    )
                    .map_err(err)
                },
            )?;
            t.push(a);
            r.push(b);
            let conn = self.raw_table(n)?;
            let autocommit = "ALTER TABLE t ADD COLUMN len INTEGER; UPDATE t SET len = length(text);";
            own.push(time(|| conn.execute_batch(autocommit).map_err(err))?.0);
        }
        self.ratio("SQL builtin computed column", t.clone(), r, 0.85);
        self.ratio("SQL builtin computed column (raw: each statement its own transaction, not atomic)", t, own, None);
        Ok(())
    }

    /// A Rust function over every row, added as a column. The raw side is what a competent
    /// engineer writes with rusqlite: the closure registered with `create_scalar_function`
    /// (reading the text in place, without a copy) and one `UPDATE t SET words = f(text)`.
    /// A second line compares with the row loop (read rows, update each by rowid), which
    /// teaches what one statement saves.
    fn udf_column(&mut self) -> Result<()> {
        let (mut t, mut r, mut l) = (Vec::new(), Vec::new(), Vec::new());
        let n = self.rows;
        let udf = Udf::new("word_count", 1, word_count);
        let setup = |b: &mut Bench| -> Result<tabula::Table> {
            let (cat, table) = b.tabula_table(n)?;
            cat.register(&udf);
            Ok(table)
        };
        let add = |table: &tabula::Table| {
            table.add_computed_column("words", udf.call([col("text")]), ColumnOptions::default()).map(|_| ())
        };
        for rep in 0..self.reps {
            let (a, b) = self.pair(
                rep,
                setup,
                add,
                |b| b.raw_table(n),
                |conn| {
                    let tx = conn.transaction().map_err(err)?;
                    tx.create_scalar_function(
                        "word_count",
                        1,
                        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
                        |ctx| Ok(ctx.get_raw(0).as_str().map_or(0, |s| s.split_whitespace().count() as i64)),
                    )
                    .map_err(err)?;
                    tx.execute_batch("ALTER TABLE t ADD COLUMN words INTEGER; UPDATE t SET words = word_count(text);")
                        .map_err(err)?;
                    tx.commit().map_err(err)
                },
            )?;
            t.push(a);
            r.push(b);
            let (_, c) = self.pair(
                rep,
                setup,
                add,
                |b| b.raw_table(n),
                |conn| {
                    let tx = conn.transaction().map_err(err)?;
                    tx.execute_batch("ALTER TABLE t ADD COLUMN words INTEGER").map_err(err)?;
                    {
                        let mut read = tx.prepare("SELECT rowid, text FROM t").map_err(err)?;
                        let mut write = tx.prepare("UPDATE t SET words = ?1 WHERE rowid = ?2").map_err(err)?;
                        let mut rows = read.query([]).map_err(err)?;
                        while let Some(row) = rows.next().map_err(err)? {
                            let id: i64 = row.get(0).map_err(err)?;
                            let text: String = row.get(1).map_err(err)?;
                            write.execute(params![word_count(text), id]).map_err(err)?;
                        }
                    }
                    tx.commit().map_err(err)
                },
            )?;
            l.push(c);
        }
        self.ratio("Rust-UDF computed column (raw: scalar function + one UPDATE)", t.clone(), r, 0.8);
        self.ratio("Rust-UDF computed column (raw: row loop, update by rowid)", t, l, None);
        Ok(())
    }

    /// `head(3)` of a select with a UDF column, on a small and a large table: it must call
    /// the UDF exactly 3 times on both (counted, so the check cannot be fooled by noise) and
    /// take about the same time (median of many calls, within 2x, no absolute slack).
    /// An expensive UDF (a 2 ms call, standing in for an API) with 32 calls in flight over
    /// 5,000 rows, against the ideal `rows x 2 ms / 32`; the serial time is measured on a
    /// tenth of the rows and scaled.
    fn udf_concurrency(&mut self) -> Result<()> {
        let rows: u64 = if self.reps == 1 { 1_000 } else { 5_000 };
        let call = std::time::Duration::from_millis(2);
        let reps = self.reps.min(3);
        let slow = |b: &mut Bench, n: u64| -> Result<(Catalog, tabula::Table)> {
            let cat = Catalog::open(b.path("udf-concurrency"))?;
            let t = cat.create_table("t", Schema::new().required("n", ColumnType::Int), IfExists::Error)?;
            t.insert((0..n as i64).map(|n| tabula::row! {"n" => n}))?;
            Ok((cat, t))
        };
        let api = move |n: i64| {
            std::thread::sleep(call);
            n
        };
        let mut times = Vec::new();
        for _ in 0..reps {
            let (cat, t) = slow(self, rows)?;
            let udf = Udf::new("api", 1, api).concurrency(32);
            cat.register(&udf);
            times.push(time(|| t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()))?.0);
        }
        let (cat, t) = slow(self, rows / 10)?;
        let udf = Udf::new("api", 1, api);
        cat.register(&udf);
        let serial = 10.0 * time(|| t.add_computed_column("x", udf.call([col("n")]), ColumnOptions::default()))?.0;
        let ideal = rows as f64 * call.as_secs_f64() * 1000.0 / 32.0;
        let ratio = median(times.clone()) / ideal;
        self.absolute(
            &format!("2 ms UDF, {rows} rows, concurrency 32 (serial: {serial:.0} ms)"),
            times,
            ratio,
            &format!("x the ideal {ideal:.0} ms"),
            "<= 1.3x".into(),
            ratio <= 1.3,
        );
        Ok(())
    }

    fn preview(&mut self, sizes: [u64; 2]) -> Result<()> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let mut medians = Vec::new();
        let mut calls_per_preview = Vec::new();
        for n in sizes {
            let (cat, table) = self.tabula_table(n)?;
            let calls = Arc::new(AtomicUsize::new(0));
            let counter = calls.clone();
            let udf = Udf::new("word_count", 1, move |text: String| {
                counter.fetch_add(1, Ordering::Relaxed);
                word_count(text)
            });
            cat.register(&udf);
            let q = table.select([col("text"), udf.call([col("text")])]);
            let reps = 51;
            let mut times = Vec::new();
            for _ in 0..reps {
                times.push(time(|| q.head(3))?.0);
            }
            calls_per_preview.push(calls.load(Ordering::Relaxed) as f64 / reps as f64);
            medians.push(median(times));
        }
        let ratio = medians[1] / medians[0];
        let pass = ratio < 2.0 && calls_per_preview.iter().all(|c| *c == 3.0);
        self.absolute(
            &format!("preview head(3) with a UDF, {}k vs {}k rows", sizes[0] / 1000, sizes[1] / 1000),
            vec![medians[1]],
            ratio,
            &format!(
                "x ({:.3} ms vs {:.3} ms; UDF calls a preview: {} and {})",
                medians[0], medians[1], calls_per_preview[0], calls_per_preview[1]
            ),
            "3 calls at both sizes, time within 2x".into(),
            pass,
        );
        Ok(())
    }

    /// Small writes, one call each, as a service makes them: a one-row insert, an update of
    /// one row by its key and a delete of one row by its key, interleaved over four tables
    /// (id `i` goes to table `i % 4`; it is inserted, updated, and deleted ten ids later),
    /// each Tabula call its own transaction (a version), against the raw side's prepared
    /// statements in autocommit on one table with the same unique index on `id`. What a
    /// call costs beyond SQLite's own work: the metadata read, the version record, the
    /// statements it runs (prepared once a connection, if its cache holds them all).
    fn small_writes(&mut self) -> Result<()> {
        let calls: i64 = if self.reps == 1 { 100 } else { 1_000 };
        let cat = Catalog::open(self.path("tabula"))?;
        let key = Schema::new()
            .required("id", ColumnType::Int)
            .required("n", ColumnType::Int)
            .required("text", ColumnType::String)
            .primary_key(["id"]);
        let tables: Vec<_> =
            (0..4).map(|k| cat.create_table(format!("t{k}"), key.clone(), IfExists::Error)).collect::<Result<_>>()?;
        let conn = raw_open(&self.path("raw"))?;
        conn.execute_batch("CREATE TABLE t(id INTEGER NOT NULL UNIQUE, n INTEGER NOT NULL, text TEXT NOT NULL)")
            .map_err(err)?;
        // Milliseconds a call of each kind, Tabula's then raw's: insert, update, delete.
        let mut times = [(); 6].map(|_| Vec::new());
        for rep in 0..self.reps as i64 {
            let ids = rep * calls..(rep + 1) * calls;
            for side in [rep % 2, 1 - rep % 2] {
                let mut spent = [0.0f64; 3];
                let mut timed = |kind: usize, call: &mut dyn FnMut() -> Result<()>| {
                    let started = Instant::now();
                    call()?;
                    spent[kind] += started.elapsed().as_secs_f64() * 1000.0;
                    Ok::<(), Error>(())
                };
                let deleted = ids.start + 10..ids.end;
                if side == 0 {
                    for i in ids.clone() {
                        let table = &tables[(i % 4) as usize];
                        let row = tabula::row! {"id" => i, "n" => i, "text" => text(i as u64)};
                        timed(0, &mut || table.insert([row.clone()]).map(drop))?;
                        timed(1, &mut || table.update([("n", col("n") + 1)], col("id").eq(i)).map(drop))?;
                        if deleted.contains(&i) {
                            timed(2, &mut || tables[((i - 10) % 4) as usize].delete(col("id").eq(i - 10)).map(drop))?;
                        }
                    }
                } else {
                    let mut insert =
                        conn.prepare_cached("INSERT INTO t(id, n, text) VALUES (?1, ?2, ?3)").map_err(err)?;
                    let mut update = conn.prepare_cached("UPDATE t SET n = n + 1 WHERE id = ?1").map_err(err)?;
                    let mut delete = conn.prepare_cached("DELETE FROM t WHERE id = ?1").map_err(err)?;
                    for i in ids.clone() {
                        let text = text(i as u64);
                        timed(0, &mut || insert.execute(params![i, i, text]).map(drop).map_err(err))?;
                        timed(1, &mut || update.execute([i]).map(drop).map_err(err))?;
                        if deleted.contains(&i) {
                            timed(2, &mut || delete.execute([i - 10]).map(drop).map_err(err))?;
                        }
                    }
                }
                let counts = [calls, calls, deleted.end - deleted.start];
                for kind in 0..3 {
                    times[2 * kind + side as usize].push(spent[kind] / counts[kind] as f64);
                }
            }
        }
        let [ti, ri, tu, ru, td, rd] = times;
        self.ratio("insert of one row, a call (ms a call)", ti, ri, None);
        self.ratio("update of one row by key, a call (ms a call)", tu, ru, None);
        self.ratio("delete of one row by key, a call (ms a call)", td, rd, None);
        Ok(())
    }

    fn revert(&mut self) -> Result<()> {
        let (mut t, mut r) = (Vec::new(), Vec::new());
        let batch = 1000u64;
        let (_cat, table) = self.tabula_table(self.rows)?;
        let conn = self.raw_table(self.rows)?;
        for rep in 0..self.reps {
            let extra: Vec<Row> = (0..batch)
                .map(|i| tabula::row! {"id" => -(i as i64), "n" => 0, "text" => text(i + rep as u64)})
                .collect();
            table.insert(extra)?;
            t.push(time(|| table.revert())?.0);
            let before: i64 = conn.query_row("SELECT max(rowid) FROM t", [], |r| r.get(0)).map_err(err)?;
            {
                let mut stmt = conn.prepare_cached("INSERT INTO t(id, n, text) VALUES (?1, 0, ?2)").map_err(err)?;
                conn.execute_batch("BEGIN").map_err(err)?;
                for i in 0..batch {
                    stmt.execute(params![-(i as i64), text(i)]).map_err(err)?;
                }
                conn.execute_batch("COMMIT").map_err(err)?;
            }
            r.push(time(|| conn.execute("DELETE FROM t WHERE rowid > ?1", [before]).map_err(err))?.0);
        }
        let rows = self.rows;
        let (tm, rm) = (median(t.clone()), median(r.clone()));
        self.lines.push(Line {
            workload: format!("revert of the last insert (1k of {}k rows)", rows / 1000),
            tabula_ms: tm,
            raw_ms: Some(rm),
            figure: rm / tm,
            unit: "ratio".into(),
            target: "(reported; no target)".into(),
            pass: true,
        });
        Ok(())
    }

    fn namespace_cycle(&mut self) -> Result<()> {
        let cycles = |cat: &Catalog| namespace_cycles(cat, 200);
        let empty = Catalog::open(self.path("ns"))?;
        let times = cycles(&empty)?;
        let m = median(times.clone());
        self.absolute("namespace cycle (file catalog)", times, m, "ms median", "<= 1 ms".into(), m <= 1.0);
        // The same in a catalog of 5,000 tables in 50 directories: metadata calls use the
        // paths' indexes, so the cycle must not grow with the catalog.
        let full = Catalog::open(self.path("ns-full"))?;
        for d in 0..50 {
            full.create_dir(format!("app{d:02}"), IfExists::Error)?;
            for t in 0..100 {
                full.create_table(format!("app{d:02}/t{t:03}"), schema(), IfExists::Error)?;
            }
        }
        let busy = cycles(&full)?;
        let ratio = median(busy.clone()) / m;
        self.absolute(
            "namespace cycle in a catalog of 5,000 tables (vs empty)",
            busy,
            ratio,
            "x the empty catalog's",
            "<= 1.5x".into(),
            ratio <= 1.5,
        );
        Ok(())
    }

    /// What a version costs a service that writes one row a call: 20,000 one-row inserts into
    /// a 22-column table, against the same rows inserted by one call (one version), so the
    /// difference is the versions' own bytes; and `history()` of those 20,000 versions.
    fn version_cost(&mut self) -> Result<()> {
        let n: u64 = if self.reps == 1 { 2_000 } else { 20_000 };
        let mut schema = Schema::new();
        for i in 0..22 {
            schema = schema.nullable(format!("field_{i:02}"), ColumnType::String);
        }
        let row = |i: u64| tabula::row! {"field_00" => format!("request {i}"), "field_01" => "GET /api/items", "field_02" => "200"};
        let size = |path: &FsPath| -> Result<u64> {
            let conn = Connection::open(path).map_err(err)?;
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").map_err(err)?;
            let pages: u64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).map_err(err)?;
            let page: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(err)?;
            Ok(pages * page)
        };
        let (one_path, many_path) = (self.path("one-version"), self.path("many-versions"));
        let (one, many) = (Catalog::open(&one_path)?, Catalog::open(&many_path)?);
        let t1 = one.create_table("requests", schema.clone(), IfExists::Error)?;
        let tn = many.create_table("requests", schema, IfExists::Error)?;
        let (base1, basen) = (size(&one_path)?, size(&many_path)?);
        t1.insert((0..n).map(row))?;
        let started = Instant::now();
        for i in 0..n {
            tn.insert([row(i)])?;
        }
        let insert_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (rows_only, with_versions) = (size(&one_path)? - base1, size(&many_path)? - basen);
        let per_version = with_versions.saturating_sub(rows_only) as f64 / n as f64;
        self.absolute(
            &format!("bytes a one-row insert version costs beyond its row ({n} versions, 22 columns)"),
            vec![insert_ms],
            per_version,
            "bytes",
            "< 200".into(),
            per_version < 200.0,
        );
        let mut times = Vec::new();
        for _ in 0..self.reps {
            times.push(time(|| tn.history())?.0);
        }
        let m = median(times.clone());
        self.absolute(&format!("history() of {n} versions"), times, m, "ms median", "(reported)".into(), true);
        Ok(())
    }

    /// What every application start pays: `apply` with every step applied. It takes no lock
    /// then, so it should cost what reading the applied steps (`pending`) costs.
    fn apply_nothing_pending(&mut self) -> Result<()> {
        let cat = Catalog::open(self.path("migrations"))?;
        let ns = tabula::Path::parse("docs")?;
        let migrations = docs_app::migrations();
        docs_app::register(&cat);
        migrations.apply(&cat, &ns)?;
        let (mut apply, mut pending) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            apply.push(time(|| migrations.apply(&cat, &ns))?.0);
            pending.push(time(|| migrations.pending(&cat, &ns))?.0);
        }
        let figure = median(apply.clone()) / median(pending);
        let pass = figure <= 1.1;
        self.absolute("migrations apply, nothing pending", apply, figure, "x pending()", "<= 1.1 x".into(), pass);
        Ok(())
    }

    fn template_copy(&mut self) -> Result<()> {
        let key = ("bench-template", std::process::id());
        let build = |cat: &Catalog| -> Result<()> {
            cat.create_dir("app", IfExists::Error)?;
            cat.create_table("app/t", schema(), IfExists::Error)?.insert(rows(10_000))?;
            Ok(())
        };
        drop(TestEnv::from_template(key, build)?);
        let mut times = Vec::new();
        for _ in 0..20 {
            times.push(time(|| TestEnv::from_template(key, build))?.0);
        }
        let _ = std::fs::remove_file(tabula_testkit::template_file(key)?);
        let m = median(times.clone());
        self.absolute("template copy (10k rows)", times, m, "ms median", "<= 10 ms".into(), m <= 10.0);
        Ok(())
    }

    fn five_columns() -> Schema {
        Schema::new()
            .required("user_id", ColumnType::Int)
            .required("name", ColumnType::String)
            .required("email", ColumnType::String)
            .required("created_at", ColumnType::Timestamp)
            .required("score", ColumnType::Float)
    }

    fn synth(&mut self) -> Result<()> {
        let cat = Catalog::in_memory()?;
        let t = cat.create_table("u", Bench::five_columns(), IfExists::Error)?;
        let schema = t.schema()?;
        let n = self.rows;
        let mut times = Vec::new();
        for rep in 0..self.reps {
            times.push(time(|| Ok(Synth::new(rep as u64).rows(&schema, n).count()))?.0);
        }
        let rate = n as f64 / (median(times.clone()) / 1000.0);
        self.absolute(
            "synthetic data (5 columns, generation)",
            times,
            rate,
            "rows/s",
            ">= 500k rows/s".into(),
            rate >= 500_000.0,
        );
        let path = self.path("synth");
        let file = Catalog::open(&path)?;
        let mut fill = Vec::new();
        for rep in 0..self.reps {
            let t = file.create_table(format!("u{rep}"), Bench::five_columns(), IfExists::Error)?;
            fill.push(time(|| Synth::new(rep as u64).fill(&t, n))?.0);
        }
        let rate = n as f64 / (median(fill.clone()) / 1000.0);
        self.absolute("synthetic data (5 columns, into a table)", fill, rate, "rows/s", "(reported)".into(), true);
        Ok(())
    }

    /// Five columns, each under a rule: an id (hashed), a name, an email, a time shifted per
    /// user, and ~200 characters of free text that mention an email and a phone number.
    fn anonymize(&mut self) -> Result<()> {
        let src = Catalog::open(self.path("prod"))?;
        src.create_dir("app", IfExists::Error)?;
        let schema = Schema::new()
            .required("user_id", ColumnType::Int)
            .required("name", ColumnType::String)
            .required("email", ColumnType::String)
            .required("created_at", ColumnType::Timestamp)
            .required("notes", ColumnType::String);
        let t = src.create_table("app/users", schema, IfExists::Error)?;
        Synth::new(1)
            .column(
                "notes",
                Gen::with(|_, i| {
                    Value::from(format!("{} mail p{i}@mail.example, call +1 202 555 {:04}", text(i), i % 10_000))
                }),
            )
            .fill(&t, self.rows)?;
        let mut times = Vec::new();
        for _ in 0..self.reps {
            let dst = Catalog::open(self.path("staging"))?;
            let a = Anonymizer::new("bench key")
                .rule("user_id", Rule::Hash)
                .rule("name", Rule::Name)
                .rule("email", Rule::Email)
                .rule("created_at", Rule::DateShift { entity: "user_id".into(), max_days: 30 })
                .rule("notes", Rule::FreeText);
            times.push(time(|| a.copy(&src, "app", &dst, "app"))?.0);
        }
        let rate = self.rows as f64 / (median(times.clone()) / 1000.0);
        self.absolute(
            "anonymization (5 columns, 5 rules, ~200-char free text)",
            times,
            rate,
            "rows/s",
            ">= 200k rows/s".into(),
            rate >= 200_000.0,
        );
        Ok(())
    }

    fn peak_rss(&mut self, n: u64) -> Result<()> {
        // In a child process, so the figure is the work's own peak, not the bench's.
        let path = self.path("rss");
        {
            let cat = Catalog::open(&path)?;
            let t = cat.create_table("t", schema(), IfExists::Error)?;
            let mut i = 0;
            while i < n {
                let chunk = (n - i).min(100_000);
                t.insert(
                    (i..i + chunk)
                        .map(|k| tabula::row! {"id" => k as i64, "n" => (k % 100_000) as i64, "text" => text(k)}),
                )?;
                i += chunk;
            }
        }
        let exe = std::env::current_exe().map_err(err)?;
        let started = Instant::now();
        let out = std::process::Command::new(exe).args(["bench-rss-child"]).arg(&path).output().map_err(err)?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let text = String::from_utf8_lossy(&out.stdout);
        let kb: f64 = text
            .trim()
            .parse()
            .map_err(|_| err(format!("the RSS child said {text:?} ({})", String::from_utf8_lossy(&out.stderr))))?;
        let mb = kb / 1024.0;
        self.absolute(
            &format!("peak RSS, UDF column on {}k rows", n / 1000),
            vec![ms],
            mb,
            "MB",
            "< 100 MB".into(),
            mb < 100.0,
        );
        Ok(())
    }
}

/// The child side of the peak-RSS workload: adds a UDF column to the table in `path` and
/// prints the process's peak RSS in kB.
pub fn rss_child(path: &FsPath) -> Result<()> {
    let cat = Catalog::open(path)?;
    let udf = Udf::new("word_count", 1, word_count);
    cat.register(&udf);
    cat.get_table("t")?.add_computed_column("words", udf.call([col("text")]), ColumnOptions::default())?;
    let status = std::fs::read_to_string("/proc/self/status").map_err(err)?;
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).unwrap_or("0");
    println!("{hwm}");
    Ok(())
}

/// Runs every workload and prints the table.
/// Runs the workloads whose name contains `only` (all without it) and prints the table.
/// The `pg-` workloads run on `server` (skipped without one).
pub fn run(rows: u64, quick: bool, only: Option<&str>, server: Option<&str>, root: &FsPath) -> Result<()> {
    let rows = if quick { rows.min(10_000) } else { rows };
    let mut b = Bench {
        rows,
        reps: if quick { 1 } else { 9 },
        dir: tempfile::tempdir().map_err(err)?,
        counter: 0,
        lines: Vec::new(),
        server: server.map(str::to_string),
    };
    eprintln!("bench: {rows} rows, {} repetitions{}", b.reps, if quick { " (quick)" } else { "" });
    let preview_sizes = if quick { [1_000, 10_000] } else { [10_000, 1_000_000] };
    let rss_rows = if quick { 100_000 } else { 1_000_000 };
    type Workload<'a> = (&'a str, Box<dyn Fn(&mut Bench) -> Result<()> + 'a>);
    let workloads: Vec<Workload> = vec![
        ("insert", Box::new(Bench::insert)),
        ("select", Box::new(Bench::select)),
        ("parallel-reads", Box::new(Bench::parallel_reads)),
        ("builtin-column", Box::new(Bench::builtin_column)),
        ("udf-column", Box::new(Bench::udf_column)),
        ("udf-concurrency", Box::new(Bench::udf_concurrency)),
        ("preview", Box::new(move |b: &mut Bench| b.preview(preview_sizes))),
        ("small-writes", Box::new(Bench::small_writes)),
        ("revert", Box::new(Bench::revert)),
        ("namespace-cycle", Box::new(Bench::namespace_cycle)),
        ("version-cost", Box::new(Bench::version_cost)),
        ("apply-nothing-pending", Box::new(Bench::apply_nothing_pending)),
        ("template-copy", Box::new(Bench::template_copy)),
        ("synth", Box::new(Bench::synth)),
        ("anonymize", Box::new(Bench::anonymize)),
        ("peak-rss", Box::new(move |b: &mut Bench| b.peak_rss(rss_rows))),
        ("pg-insert", Box::new(Bench::pg_insert)),
        ("pg-select", Box::new(Bench::pg_select)),
        ("pg-small-insert", Box::new(Bench::pg_small_insert)),
        ("pg-columns", Box::new(Bench::pg_columns)),
        ("pg-namespace-cycle", Box::new(Bench::pg_namespace_cycle)),
        ("pg-template-clone", Box::new(Bench::pg_template_clone)),
    ];
    for (name, run) in &workloads {
        if name.starts_with("pg-") && server.is_none() {
            continue;
        }
        if only.is_none_or(|o| name.contains(o)) {
            // Each workload starts with no dirty pages of the one before still being written
            // back, which would otherwise slow whichever workload comes next.
            let _ = std::process::Command::new("sync").status();
            run(&mut b)?;
        }
    }
    let mut table = String::new();
    if quick {
        writeln!(table, "Quick run: small tables, one repetition; per-call costs dominate, so targets are judged only in a full run.\n").ok();
    }
    writeln!(table, "| workload | Tabula median | raw median | figure | target | result |").ok();
    writeln!(table, "|---|---|---|---|---|---|").ok();
    for l in &b.lines {
        let raw = l.raw_ms.map(|r| format!("{r:.2} ms")).unwrap_or_else(|| "-".into());
        let figure =
            if l.unit == "rows/s" { format!("{:.0} rows/s", l.figure) } else { format!("{:.2} {}", l.figure, l.unit) };
        writeln!(
            table,
            "| {} | {:.2} ms | {raw} | {figure} | {} | {} |",
            l.workload,
            l.tabula_ms,
            l.target,
            if quick {
                "-"
            } else if l.pass {
                "pass"
            } else {
                "MISS"
            }
        )
        .ok();
    }
    println!("{table}");
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).map_err(err)?;
    let json = serde_json::json!({ "rows": rows, "quick": quick, "lines": b.lines });
    std::fs::write(out.join("latest.json"), serde_json::to_string_pretty(&json).map_err(err)?).map_err(err)?;
    std::fs::write(out.join("latest.md"), table).map_err(err)?;
    Ok(())
}
