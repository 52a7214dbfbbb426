//! Reliability: killed writers, concurrent writer processes checked against a replay, and
//! hostile input. The long forms run with `TABULA_CRASH_KILLS=50` and
//! `TABULA_WRITER_OPS=2000` (see RELIABILITY.md).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tabula::{
    col, row, Catalog, ColumnOptions, ColumnType, ErrorCode, IfExists, Recursive, Schema, Udf, Value, Version,
};

use crate::fails_cleanly;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A tiny deterministic generator (xorshift) for kill times and operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const BATCH: i64 = 5_000;

fn crash_table(cat: &Catalog) -> tabula::Table {
    cat.create_table(
        "crash",
        Schema::new()
            .required("batch", ColumnType::Int)
            .required("i", ColumnType::Int)
            .required("text", ColumnType::String),
        IfExists::Ignore,
    )
    .unwrap()
}

/// The child side of `killed_writers_leave_a_consistent_catalog`: writes until killed,
/// printing each committed version.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var("TABULA_CRASH_DB") else { return };
    let cat = Catalog::open(&path).unwrap();
    let twice = Udf::new("twice", 1, |i: i64| i * 2);
    cat.register(&twice);
    let t = crash_table(&cat);
    let mut out = std::io::stdout();
    for round in 0.. {
        let next = t.history().unwrap().len() as i64;
        // Tell the parent what is in flight: a revert lowers the version, a write raises it.
        writeln!(out, "start {}", if round % 4 == 3 { "revert" } else { "write" }).unwrap();
        out.flush().unwrap();
        let done = match round % 4 {
            // A large insert: one batch, all or nothing.
            0 | 1 => t.insert(
                (0..BATCH).map(|i| row! {"batch" => next, "i" => i, "text" => format!("row {i} of batch {next}")}),
            ),
            // A computed column fill over every row, then its revert.
            2 => {
                // Named after the version count, so a column left by a killed child never clashes.
                let name = format!("c{next}");
                t.add_computed_column(&name, twice.call([col("i")]), ColumnOptions::default())
            }
            _ => t.revert().map(|v| tabula::WriteResult { version: v, inserted: 0, updated: 0, deleted: 0 }),
        }
        .unwrap();
        writeln!(out, "committed {}", done.version.0).unwrap();
        out.flush().unwrap();
    }
}

fn check_consistent(cat: &Catalog) {
    cat.integrity_check().unwrap();
    let t = cat.get_table("crash").unwrap();
    // No partial rows: every batch is complete.
    let mut per_batch = std::collections::BTreeMap::new();
    for r in t.select([col("batch")]).stream().unwrap() {
        *per_batch.entry(r.unwrap().get::<i64>("batch").unwrap()).or_insert(0i64) += 1;
    }
    assert!(per_batch.values().all(|n| *n == BATCH), "a batch is incomplete: {per_batch:?}");
    // The metadata agrees with the data: rows = inserted - deleted over the history.
    let history = t.history().unwrap();
    let expected: u64 = history.iter().map(|v| v.inserted - v.deleted).sum();
    assert_eq!(t.count().unwrap(), expected);
    // Computed columns are complete too.
    for c in t.describe().unwrap().columns.iter().filter(|c| c.computed.is_some()) {
        assert_eq!(t.select_all().where_(col(c.name.clone()).is_null()).count().unwrap(), 0, "{} has holes", c.name);
    }
}

#[test]
fn killed_writers_leave_a_consistent_catalog() {
    let kills = env_number("TABULA_CRASH_KILLS", 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    crash_table(&Catalog::open(&path).unwrap());
    let mut rng = Rng(0x5eed_1234_abcd);
    let exe = std::env::current_exe().unwrap();
    for kill in 0..kills {
        let mut child = Command::new(&exe)
            .args(["--exact", "reliability::crash_child", "--nocapture", "--test-threads=1"])
            .env("TABULA_CRASH_DB", &path)
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
        check_consistent(&cat);
        assert!(started.elapsed() < Duration::from_secs(120));
    }
}

/// One operation of a concurrent writer, as logged with the version it made.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Op {
    Insert { writer: i64, seq: i64, x: i64 },
    Update { add: i64, modulo: i64 },
    Delete { modulo: i64, rest: i64 },
}

fn apply(t: &tabula::Table, op: &Op) -> tabula::Result<tabula::WriteResult> {
    match op {
        Op::Insert { writer, seq, x } => t.insert([row! {"writer" => *writer, "seq" => *seq, "x" => *x}]),
        Op::Update { add, modulo } => t.update([("x", col("x") + *add)], (col("seq") % *modulo).eq(0)),
        Op::Delete { modulo, rest } => t.delete((col("x") % *modulo).eq(*rest).and(col("seq").gt(5))),
    }
}

fn writer_table(cat: &Catalog) -> tabula::Table {
    cat.create_table(
        "shared",
        Schema::new()
            .required("writer", ColumnType::Int)
            .required("seq", ColumnType::Int)
            .required("x", ColumnType::Int),
        IfExists::Ignore,
    )
    .unwrap()
}

/// The child side of `concurrent_writers_equal_a_replay_of_their_commits`.
#[test]
fn writer_child() {
    let (Ok(path), Ok(id)) = (std::env::var("TABULA_WRITER_DB"), std::env::var("TABULA_WRITER_ID")) else { return };
    let id: i64 = id.parse().unwrap();
    let ops = env_number("TABULA_WRITER_OPS", 60);
    let cat = Catalog::open(&path).unwrap();
    let t = writer_table(&cat);
    let mut rng = Rng(0x9e37_79b9 + id as u64);
    let mut log = std::fs::File::create(format!("{path}.log{id}")).unwrap();
    for seq in 0..ops as i64 {
        let op = match rng.below(10) {
            0..=5 => Op::Insert { writer: id, seq, x: rng.below(100) as i64 },
            6..=7 => Op::Update { add: rng.below(5) as i64 + 1, modulo: rng.below(4) as i64 + 2 },
            _ => Op::Delete { modulo: 7, rest: rng.below(7) as i64 },
        };
        match apply(&t, &op) {
            Ok(done) if done.inserted + done.updated + done.deleted > 0 => {
                writeln!(log, "{}", serde_json::json!({"version": done.version.0, "op": op})).unwrap();
            }
            Ok(_) => {}
            // Every failure must be a clear, expected one (here: none is expected).
            Err(e) => panic!("writer {id}: {op:?} failed: {e}"),
        }
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
    writer_table(&Catalog::open(&path).unwrap());
    let exe = std::env::current_exe().unwrap();
    let writers: Vec<_> = (1..=3)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", "reliability::writer_child", "--test-threads=1"])
                .env("TABULA_WRITER_DB", &path)
                .env("TABULA_WRITER_ID", id.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in writers {
        assert!(w.wait().unwrap().success(), "a writer failed");
    }
    let cat = Catalog::open(&path).unwrap();
    cat.integrity_check().unwrap();
    let t = cat.get_table("shared").unwrap();
    // Replay every committed operation, in version order, on a fresh catalog.
    let mut log: Vec<(u64, Op)> = Vec::new();
    for id in 1..=3 {
        for line in std::fs::read_to_string(format!("{}.log{id}", path.display())).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            log.push((v["version"].as_u64().unwrap(), serde_json::from_value(v["op"].clone()).unwrap()));
        }
    }
    log.sort_by_key(|(v, _)| *v);
    let versions: Vec<u64> = log.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions,
        (1..=log.len() as u64).collect::<Vec<_>>(),
        "every version was made by exactly one logged call"
    );
    let fresh = Catalog::in_memory().unwrap();
    let replay = writer_table(&fresh);
    for (v, op) in &log {
        assert_eq!(apply(&replay, op).unwrap().version, Version(*v));
    }
    assert_eq!(contents(&t), contents(&replay));
}

#[test]
fn hostile_names_and_paths_are_refused_cleanly() {
    let cat = crate::catalog();
    for bad in [
        "a b",
        "a'b",
        "a\"b",
        "x; DROP TABLE _tabula_tables; --",
        "naïve",
        "tab\tle",
        "nul\u{0}l",
        "../up",
        "a/",
        "/a",
        "_tabula_meta",
        "a//b",
        "9lives",
        "app/docs:x",
        "",
        "日本",
    ] {
        if bad.is_empty() {
            fails_cleanly(&cat, ErrorCode::InvalidPath, || cat.create_dir(bad, IfExists::Error));
            continue;
        }
        let e = fails_cleanly(&cat, ErrorCode::InvalidPath, || cat.create_dir(format!("app/{bad}"), IfExists::Error));
        assert!(e.contains("app/"), "{e}");
        let schema = Schema::new().required(bad, ColumnType::Int);
        if !bad.contains('/') && !bad.contains(':') {
            fails_cleanly(&cat, ErrorCode::InvalidName, || cat.create_table("app/t", schema, IfExists::Error));
        }
    }
    assert_eq!(cat.list_tables("", Recursive::Yes).unwrap().len(), 0);
}

#[test]
fn hostile_values_are_stored_exactly_or_refused() {
    let cat = crate::catalog();
    let t = cat
        .create_table(
            "app/v",
            Schema::new()
                .nullable("f", ColumnType::Float)
                .nullable("s", ColumnType::String)
                .nullable("b", ColumnType::Bytes)
                .nullable("j", ColumnType::Json),
            IfExists::Error,
        )
        .unwrap();
    let huge = "x'); DROP TABLE t1; --".repeat(500_000);
    let blob: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    t.insert([
        row! {"f" => f64::INFINITY, "s" => huge.clone(), "b" => blob.clone()},
        row! {"f" => f64::NEG_INFINITY, "s" => "\u{0}\u{1}\u{7f}\u{fffd}🦀", "j" => serde_json::json!({"\"quoted\"": [null, 1e308]})},
        row! {"f" => -0.0, "s" => ""},
    ])
    .unwrap();
    let rows = t.select_all().collect().unwrap();
    assert_eq!(rows[0].get::<String>("s").unwrap(), huge);
    assert_eq!(rows[0].get::<Vec<u8>>("b").unwrap(), blob);
    assert_eq!(rows[1].get::<f64>("f").unwrap(), f64::NEG_INFINITY);
    assert_eq!(rows[1].get::<String>("s").unwrap(), "\u{0}\u{1}\u{7f}\u{fffd}🦀");
    assert_eq!(rows[1].get::<serde_json::Value>("j").unwrap(), serde_json::json!({"\"quoted\"": [null, 1e308]}));
    let msg = fails_cleanly(&cat, ErrorCode::TypeMismatch, || t.insert([row! {"f" => f64::NAN}]));
    assert!(msg.contains("NaN"), "{msg}");
    let mut deep = serde_json::json!(1);
    for _ in 0..500 {
        deep = serde_json::json!([deep]);
    }
    let msg = fails_cleanly(&cat, ErrorCode::TypeMismatch, || t.insert([row! {"j" => deep.clone()}]));
    assert!(msg.contains("nested 500 levels deep; the limit is 120"), "{msg}");
    for (value, name) in [(Value::from("1.5"), "f"), (Value::Int(3), "b"), (Value::Bool(true), "s")] {
        fails_cleanly(&cat, ErrorCode::TypeMismatch, || t.insert([tabula::Row::from_pairs([(name, value.clone())])]));
    }
}

#[test]
fn damaged_catalog_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let cat = Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        let t = cat.create_table("app/t", Schema::new().required("s", ColumnType::String), IfExists::Error).unwrap();
        t.insert((0..20_000).map(|i| row! {"s" => format!("row {i} with some padding text to fill pages")})).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    // Truncated to half.
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let outcome = Catalog::open(&truncated).and_then(|cat| {
        cat.integrity_check()?;
        cat.get_table("app/t")?.count()
    });
    let e = outcome.expect_err("a truncated catalog must not read as fine");
    assert!(matches!(e.code(), ErrorCode::Storage | ErrorCode::NotACatalog), "{e}");
    assert!(e.to_string().contains("truncated.db"), "the error names the file: {e}");
    // Garbage over the middle pages.
    let corrupted = dir.path().join("corrupted.db");
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    for b in &mut damaged[mid..mid + 16_384] {
        *b = 0xA5;
    }
    std::fs::write(&corrupted, &damaged).unwrap();
    let outcome = Catalog::open(&corrupted).and_then(|cat| {
        cat.integrity_check()?;
        cat.get_table("app/t")?.select_all().collect().map(|r| r.len())
    });
    assert!(outcome.is_err(), "a corrupted catalog must be reported, got {outcome:?}");
    // An empty file is a new catalog; a short garbage file is not a catalog.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"SQLite format 3\0 but not really").unwrap();
    assert!(Catalog::open(&garbage).is_err());
}

/// A read-only bind mount of `dir`, unmounted on drop; `None` where this user cannot mount
/// (not root), which the caller reports.
struct ReadOnlyMount(std::path::PathBuf);

impl ReadOnlyMount {
    fn of(dir: &std::path::Path) -> Option<ReadOnlyMount> {
        let target = dir.with_extension("ro");
        std::fs::create_dir_all(&target).ok()?;
        let run = |args: &[&str]| Command::new("mount").args(args).status().is_ok_and(|s| s.success());
        let (d, t) = (dir.to_str()?.to_string(), target.to_str()?.to_string());
        if !run(&["--bind", &d, &t]) {
            return None;
        }
        let mount = ReadOnlyMount(target);
        run(&["-o", "remount,ro,bind", &t]).then_some(mount)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_catalog_on_read_only_media_opens_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("prod");
    std::fs::create_dir(&src).unwrap();
    // One catalog closed cleanly, one whose last commits are still in its write-ahead log.
    {
        let clean = Catalog::open(src.join("clean.db")).unwrap();
        clean.create_dir("app", IfExists::Error).unwrap();
        crate::docs(&clean);
    }
    let busy = Catalog::open(src.join("busy.db")).unwrap();
    busy.create_dir("app", IfExists::Error).unwrap();
    crate::docs(&busy);
    assert!(std::fs::metadata(src.join("busy.db-wal")).unwrap().len() > 0);
    // A file and its log without SQLite's shared-memory file (copied by hand, say).
    std::fs::copy(src.join("busy.db"), src.join("orphan.db")).unwrap();
    std::fs::copy(src.join("busy.db-wal"), src.join("orphan.db-wal")).unwrap();
    let Some(mount) = ReadOnlyMount::of(&src) else {
        eprintln!("not run: this user cannot mount a read-only view (run as root)");
        return;
    };
    assert!(std::fs::write(mount.0.join("probe"), b"x").is_err(), "the mount is read-only");
    for (file, mode) in [
        ("clean.db", tabula::ReadMode::Immutable),
        ("busy.db", tabula::ReadMode::Direct),
        ("orphan.db", tabula::ReadMode::Copy),
    ] {
        let cat = Catalog::open_read_only(mount.0.join(file)).unwrap();
        assert_eq!(cat.read_mode(), mode, "{file}");
        let docs = cat.get_table("app/docs").unwrap();
        assert_eq!(docs.count().unwrap(), 3, "{file}: every commit is read, the log's too");
        let e = docs.insert([row! {"title" => "x", "words" => 1, "draft" => true}]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ReadOnly);
    }
    drop(busy);
}

#[test]
fn directories_fifos_and_sockets_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    for (path, what) in
        [(dir.path().to_path_buf(), "a directory"), (fifo, "not a regular file"), (socket, "not a regular file")]
    {
        let (send, receive) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = send.send((Catalog::open_read_only(&p).err(), Catalog::open(&p).err()));
        });
        let (ro, rw) = receive.recv_timeout(Duration::from_secs(1)).expect("refused within a second, without blocking");
        for e in [ro.unwrap(), rw.unwrap()] {
            assert_eq!(e.code(), ErrorCode::NotACatalog);
            assert!(e.to_string().contains(what) && e.to_string().contains(&path.display().to_string()), "{e}");
        }
    }
}

#[test]
fn a_catalog_cut_short_by_one_byte_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let cat = Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        let t = cat.create_table("app/t", Schema::new().required("s", ColumnType::String), IfExists::Error).unwrap();
        t.insert((0..200).map(|i| row! {"s" => format!("row {i}")})).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    for (name, cut) in [("one_byte.db", bytes.len() - 1), ("one_page.db", bytes.len() - 4096)] {
        let torn = dir.path().join(name);
        std::fs::write(&torn, &bytes[..cut]).unwrap();
        for e in [Catalog::open(&torn).unwrap_err(), Catalog::open_read_only(&torn).unwrap_err()] {
            assert_eq!(e.code(), ErrorCode::NotACatalog, "{e}");
            assert!(e.to_string().contains(name) && e.to_string().contains("restore it from a backup"), "{e}");
        }
        assert_eq!(std::fs::read(&torn).unwrap().len(), cut, "the file is left as it was");
    }
}

#[test]
fn unknown_format_versions_and_exhausted_row_ids_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let cat = Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        cat.create_table("app/t", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE _tabula_tables SET next_row_id = ?1", [i64::MAX - 1]).unwrap();
    drop(raw);
    let cat = Catalog::open(&path).unwrap();
    let t = cat.get_table("app/t").unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.insert([row! {"n" => 1}, row! {"n" => 2}]));
    assert!(msg.contains("used up its row ids"), "{msg}");
    drop((t, cat));
    for bad in ["0", "-1"] {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute("UPDATE _tabula_meta SET value = ?1 WHERE key = 'format_version'", [bad]).unwrap();
        drop(raw);
        let e = Catalog::open(&path).unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotACatalog, "format version {bad}: {e}");
    }
}

#[test]
fn versions_in_paths_are_plain_decimal_and_long_names_are_cut_in_errors() {
    for bad in ["app/t:+1", "app/t:01", "app/t: 1", "app/t:", "app/t:1.0"] {
        let e = tabula::Path::parse(bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidPath, "{bad}");
    }
    assert_eq!(tabula::Path::parse("app/t:0").unwrap().version(), Some(Version(0)));
    assert_eq!(tabula::Path::parse("app/t:12").unwrap().version(), Some(Version(12)));
    let long = "x".repeat(10_000);
    let e = tabula::Path::parse(&format!("app/{long}")).unwrap_err();
    assert!(e.to_string().len() < 300, "{} bytes: {e}", e.to_string().len());
    assert!(e.to_string().contains("(10004 characters)") && e.to_string().contains("(10000 characters)"), "{e}");
}
