//! The engine's process scenarios: a writer killed at a random moment, concurrent writer
//! processes whose commits are replayed, two processes appending events.

use std::io::Write;

use tabula::{col, row, Catalog, ColumnOptions, ColumnType, IfExists, Retention, Schema, Table, Udf, WriteResult};

/// Rows of each insert of the crash scenario: one batch, all or nothing.
pub const CRASH_BATCH: i64 = 5_000;

/// `crash(batch, i, text)`, the table the crash scenario writes, and `crash_low`, a view of
/// its rows with `i < 100` and a computed column `i3 = i * 3` (the view follows every write,
/// so a kill also lands in its maintenance and its version records).
pub fn crash_table(cat: &Catalog) -> tabula::Result<Table> {
    let t = cat.create_table(
        "crash",
        Schema::new()
            .required("batch", ColumnType::Int)
            .required("i", ColumnType::Int)
            .required("text", ColumnType::String),
        IfExists::Ignore,
    )?;
    let view = cat.create_view("crash_low", &t, col("i").lt(100), IfExists::Ignore)?;
    view.add_computed_column("i3", col("i") * 3, ColumnOptions::if_exists(IfExists::Ignore))?;
    Ok(t)
}

/// Writes until killed, printing `start write|revert` before each call and
/// `committed VERSION` after it: two large inserts, a computed column filled over every row,
/// a revert, then a compaction (which rebuilds the table without the reverted column), round
/// after round.
pub fn crash_writer(path: &str, out: &mut impl Write) -> Result<(), Box<dyn std::error::Error>> {
    let cat = Catalog::open(path)?;
    let twice = Udf::new("twice", 1, |i: i64| i * 2);
    cat.register(&twice);
    let t = crash_table(&cat)?;
    for round in 0.. {
        let next = t.history()?.len() as i64;
        // Tell the parent what is in flight: a revert lowers the version, a write raises it,
        // a compaction leaves it.
        let what = match round % 5 {
            3 => "revert",
            4 => "compact",
            _ => "write",
        };
        writeln!(out, "start {what}")?;
        out.flush()?;
        let version = match round % 5 {
            0 | 1 => {
                t.insert(
                    (0..CRASH_BATCH)
                        .map(|i| row! {"batch" => next, "i" => i, "text" => format!("row {i} of batch {next}")}),
                )?
                .version
            }
            2 => {
                // Named after the version count, so a column left by a killed child never clashes.
                let name = format!("c{next}");
                t.add_computed_column(&name, twice.call([col("i")]), ColumnOptions::default())?.version
            }
            3 => t.revert()?,
            // Drops the column the revert left behind: a rebuild of the whole table.
            _ => {
                t.compact(Retention::All)?;
                t.version()?
            }
        };
        writeln!(out, "committed {}", version.0)?;
        out.flush()?;
    }
    Ok(())
}

/// One operation of a concurrent writer, as logged with the version it made.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    /// One row.
    Insert {
        /// The writer's number.
        writer: i64,
        /// The writer's call number.
        seq: i64,
        /// A value later calls change.
        x: i64,
    },
    /// `x += add` where `seq % modulo == 0`.
    Update {
        /// Added to x.
        add: i64,
        /// Which rows.
        modulo: i64,
    },
    /// Deletes where `x % modulo == rest` and `seq > 5`.
    Delete {
        /// Which rows.
        modulo: i64,
        /// Which rows.
        rest: i64,
    },
}

/// Applies one operation.
pub fn apply(t: &Table, op: &Op) -> tabula::Result<WriteResult> {
    match op {
        Op::Insert { writer, seq, x } => t.insert([row! {"writer" => *writer, "seq" => *seq, "x" => *x}]),
        Op::Update { add, modulo } => t.update([("x", col("x") + *add)], (col("seq") % *modulo).eq(0)),
        Op::Delete { modulo, rest } => t.delete((col("x") % *modulo).eq(*rest).and(col("seq").gt(5))),
    }
}

/// `shared(writer, seq, x)`, the table concurrent writers share.
pub fn writer_table(cat: &Catalog) -> tabula::Result<Table> {
    cat.create_table(
        "shared",
        Schema::new()
            .required("writer", ColumnType::Int)
            .required("seq", ColumnType::Int)
            .required("x", ColumnType::Int),
        IfExists::Ignore,
    )
}

/// A tiny deterministic generator (xorshift) for operations and kill times.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Writer `id` makes `ops` random calls on `shared` of the catalog at `target` (a file, or a
/// `postgres://` URL), logging each one that changed something as a JSON line
/// `{"version": V, "op": ...}` to `log`.
pub fn concurrent_writer(
    target: &str,
    id: i64,
    ops: u64,
    log: &mut impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let cat = if target.starts_with("postgres") { Catalog::connect(target)? } else { Catalog::open(target)? };
    let t = writer_table(&cat)?;
    let mut rng = Rng(0x9e37_79b9 + id.unsigned_abs());
    for seq in 0..ops as i64 {
        let op = match rng.below(10) {
            0..=5 => Op::Insert { writer: id, seq, x: rng.below(100) as i64 },
            6..=7 => Op::Update { add: rng.below(5) as i64 + 1, modulo: rng.below(4) as i64 + 2 },
            _ => Op::Delete { modulo: 7, rest: rng.below(7) as i64 },
        };
        // Every failure is a clear, unexpected one: the child exits with it.
        let done = apply(&t, &op).map_err(|e| format!("writer {id}: {op:?} failed: {e}"))?;
        if done.inserted + done.updated + done.deleted > 0 {
            writeln!(log, "{}", serde_json::json!({"version": done.version.0, "op": op}))?;
        }
    }
    Ok(())
}

/// `app/events(writer, seq)`, the table the events scenario appends to.
pub fn events_table(cat: &Catalog) -> tabula::Result<Table> {
    cat.create_dir("app", IfExists::Ignore)?;
    cat.create_table(
        "app/events",
        Schema::new().required("writer", ColumnType::String).required("seq", ColumnType::Int),
        IfExists::Ignore,
    )
}

/// Appends `n` events of `writer`, updating every tenth: `n + ceil(n / 10)` versions.
pub fn write_events(path: &str, writer: &str, n: i64) -> tabula::Result<()> {
    let cat = Catalog::open(path)?;
    let t = events_table(&cat)?;
    for i in 0..n {
        t.insert([row! {"writer" => writer, "seq" => i}])?;
        if i % 10 == 0 {
            t.update([("seq", col("seq"))], col("writer").eq(writer).and(col("seq").eq(i)))?;
        }
    }
    Ok(())
}

/// The UDF of the expensive-add scenario, `paid@1`: a 2 ms call (standing in for a request),
/// four in flight, telling `paid` of each call before it returns.
pub fn paid_udf(paid: impl Fn() + Send + Sync + 'static) -> tabula::Udf {
    tabula::Udf::new("paid", 1, move |n: i64| {
        paid();
        std::thread::sleep(std::time::Duration::from_millis(2));
        n * 7
    })
    .concurrency(4)
}

/// The child side of the expensive-add scenario: adds `paid@1(n)` to table `docs`, appending a
/// line to `count_file` at each call, until it is killed.
pub fn expensive_add(path: &str, count_file: &str) -> Result<(), Box<dyn std::error::Error>> {
    let cat = Catalog::open(path)?;
    let log = std::sync::Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(count_file)?);
    let udf = paid_udf(move || {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(log, "call");
    });
    cat.register(&udf);
    cat.get_table("docs")?.add_computed_column("x", udf.call([tabula::col("n")]), tabula::ColumnOptions::default())?;
    Ok(())
}

/// Characters of each row's text in the memory scenario: its table of `rows` rows holds
/// `rows` KiB of text, far more than a page of 1,024 rows.
pub const MEMORY_TEXT: usize = 1_000;

/// The memory scenario: on the catalog at `target` (a server URL or a file), a table
/// `big(k, text)` of `rows` rows and a view of it with a stored column `note`; then three
/// writes whose expressions a server cannot run with Tabula's meaning (`upper`, `lower`,
/// `%`), so that Tabula evaluates them there: an update of every row's text, an update of
/// the view's note in every row it shows, a delete of a third of the rows. Prints, for each,
/// `<name> <bytes>`: the peak growth of the heap during the call (`peak` measures it; the
/// child's allocator counts every allocation).
pub fn write_peaks(
    target: &str,
    rows: i64,
    peak: &dyn peakmem_alloc::PeakMemAllocTrait,
    out: &mut impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let cat = if target.starts_with("postgres") { Catalog::connect(target)? } else { Catalog::open(target)? };
    let schema = Schema::new().required("k", ColumnType::Int).required("text", ColumnType::String);
    let t = cat.create_table("big", schema, IfExists::Error)?;
    let filler = "tabula ".repeat(MEMORY_TEXT / 7 + 1);
    for start in (0..rows).step_by(1_000) {
        let end = (start + 1_000).min(rows);
        t.insert((start..end).map(|k| row! {"k" => k, "text" => format!("{k} {}", &filler[..MEMORY_TEXT])}))?;
    }
    let view = cat.create_view("big_view", &t, col("k").ge(0), IfExists::Error)?;
    view.add_column("note", ColumnType::String, tabula::Value::Null, IfExists::Error)?;
    let mut measured = |name: &str, write: &mut dyn FnMut() -> tabula::Result<WriteResult>| {
        peak.reset_peak_memory();
        let done = write()?;
        let bytes = peak.get_peak_memory();
        writeln!(out, "{name} {bytes} {}", done.updated + done.deleted)?;
        Ok::<(), Box<dyn std::error::Error>>(())
    };
    measured("update", &mut || t.update([("text", col("text").upper())], tabula::lit(true)))?;
    measured("view-update", &mut || view.update([("note", col("text").lower())], tabula::lit(true)))?;
    measured("delete", &mut || t.delete((col("k") % 3).eq(0)))?;
    Ok(())
}
