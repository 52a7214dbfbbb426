//! Reliability: hostile input, damaged files, read-only media. Killed writers and concurrent
//! writer processes are tested with real processes in `proctests/` (see RELIABILITY.md).

use std::process::Command;
use std::time::Duration;

use tabula::{row, Catalog, ColumnType, ErrorCode, IfExists, Recursive, Schema, Value, Version};

use crate::fails_cleanly;

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
    // A server's text cannot hold NUL: refused there (nothing written), stored in a file.
    let odd = if crate::on_server(&cat) {
        let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.insert([row! {"s" => "\u{0}"}]));
        assert!(msg.contains("NUL"), "{msg}");
        "\u{1}\u{7f}\u{fffd}🦀"
    } else {
        "\u{0}\u{1}\u{7f}\u{fffd}🦀"
    };
    t.insert([
        row! {"f" => f64::INFINITY, "s" => huge.clone(), "b" => blob.clone()},
        row! {"f" => f64::NEG_INFINITY, "s" => odd, "j" => serde_json::json!({"\"quoted\"": [null, 1e308]})},
        row! {"f" => -0.0, "s" => ""},
    ])
    .unwrap();
    let rows = t.select_all().collect().unwrap();
    assert_eq!(rows[0].get::<String>("s").unwrap(), huge);
    assert_eq!(rows[0].get::<Vec<u8>>("b").unwrap(), blob);
    assert_eq!(rows[1].get::<f64>("f").unwrap(), f64::NEG_INFINITY);
    assert_eq!(rows[1].get::<String>("s").unwrap(), odd);
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
