//! Directories, tables, paths, opening files.

use tabula::{Catalog, ColumnType, ErrorCode, Force, IfExists, Recursive, Schema};

use crate::{catalog, docs, fails_cleanly, state};

fn names(paths: Vec<tabula::Path>) -> Vec<String> {
    paths.into_iter().map(|p| p.to_string()).collect()
}

fn one_col() -> Schema {
    Schema::new().required("x", ColumnType::Int)
}

#[test]
fn nested_directories_and_listings() {
    let cat = catalog();
    cat.create_dir("app/a", IfExists::Error).unwrap();
    cat.create_dir("app/a/b", IfExists::Error).unwrap();
    cat.create_table("app/a/b/t", one_col(), IfExists::Error).unwrap();
    cat.create_table("app/t0", one_col(), IfExists::Error).unwrap();
    assert_eq!(names(cat.list_dirs("", Recursive::No).unwrap()), ["app"]);
    assert_eq!(names(cat.list_dirs("app", Recursive::Yes).unwrap()), ["app/a", "app/a/b"]);
    assert_eq!(names(cat.list_tables("app", Recursive::No).unwrap()), ["app/t0"]);
    assert_eq!(names(cat.list_tables("app", Recursive::Yes).unwrap()), ["app/a/b/t", "app/t0"]);
}

#[test]
fn create_dir_if_exists_modes() {
    let cat = catalog();
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.create_dir("app", IfExists::Error));
    assert!(msg.contains("IfExists::Ignore"), "{msg}");
    cat.create_dir("app", IfExists::Ignore).unwrap();
    cat.create_table("app/t", one_col(), IfExists::Error).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::DirNotEmpty, || cat.create_dir("app", IfExists::Replace));
    assert!(msg.contains("table 'app/t'") && msg.contains("ReplaceForce"), "{msg}");
    cat.create_dir("app", IfExists::ReplaceForce).unwrap();
    assert!(cat.list_tables("app", Recursive::Yes).unwrap().is_empty());
    cat.create_dir("app", IfExists::Replace).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::NotFound, || cat.create_dir("nope/x", IfExists::Error));
    assert!(msg.contains("directory 'nope' does not exist"), "{msg}");
    cat.create_table("app/t", one_col(), IfExists::Error).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::WrongKind, || cat.create_dir("app/t", IfExists::Ignore));
    assert!(msg.contains("is a table"), "{msg}");
}

#[test]
fn drop_dir_needs_force_and_lists_contents() {
    let cat = catalog();
    cat.create_dir("app/sub", IfExists::Error).unwrap();
    cat.create_table("app/sub/t", one_col(), IfExists::Error).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::DirNotEmpty, || cat.drop_dir("app", Force::No));
    assert!(
        msg.contains("directory 'app/sub'") && msg.contains("table 'app/sub/t'") && msg.contains("Force::Yes"),
        "{msg}"
    );
    cat.drop_dir("app", Force::Yes).unwrap();
    assert!(cat.list_dirs("", Recursive::Yes).unwrap().is_empty());
    fails_cleanly(&cat, ErrorCode::NotFound, || cat.drop_dir("app", Force::Yes));
    fails_cleanly(&cat, ErrorCode::InvalidPath, || cat.drop_dir("", Force::Yes));
    // The physical table is gone too: a new table at the same path starts empty.
    cat.create_dir("app", IfExists::Error).unwrap();
    cat.create_dir("app/sub", IfExists::Error).unwrap();
    let t = cat.create_table("app/sub/t", one_col(), IfExists::Error).unwrap();
    assert_eq!(t.count().unwrap(), 0);
}

#[test]
fn drop_dir_of_many_tables_is_listed_briefly() {
    let cat = catalog();
    for i in 0..12 {
        cat.create_table(format!("app/t{i:02}"), one_col(), IfExists::Error).unwrap();
    }
    let msg = fails_cleanly(&cat, ErrorCode::DirNotEmpty, || cat.drop_dir("app", Force::No));
    assert!(msg.contains("and 2 more"), "{msg}");
}

#[test]
fn move_tables_and_directories() {
    let cat = catalog();
    let t = docs(&cat);
    cat.create_dir("app/sub", IfExists::Error).unwrap();
    cat.move_("app/docs", "app/sub/docs").unwrap();
    assert_eq!(cat.get_table("app/sub/docs").unwrap().count().unwrap(), 3);
    assert_eq!(t.count().unwrap(), 3, "an open handle keeps working after a move");
    cat.create_dir("other", IfExists::Error).unwrap();
    cat.move_("app", "other/app2").unwrap();
    assert_eq!(names(cat.list_tables("", Recursive::Yes).unwrap()), ["other/app2/sub/docs"]);
    assert_eq!(names(cat.list_dirs("", Recursive::Yes).unwrap()), ["other", "other/app2", "other/app2/sub"]);
    fails_cleanly(&cat, ErrorCode::InvalidPath, || cat.move_("other", "other/inner"));
    fails_cleanly(&cat, ErrorCode::NotFound, || cat.move_("nope", "x"));
    fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.move_("other/app2", "other"));
    fails_cleanly(&cat, ErrorCode::NotFound, || cat.move_("other/app2", "missing/x"));
}

#[test]
fn paths_with_like_wildcards_do_not_leak_into_siblings() {
    // '_' is a LIKE wildcard; prefix matching must be exact.
    let cat = catalog();
    cat.create_dir("a_b", IfExists::Error).unwrap();
    cat.create_dir("axb", IfExists::Error).unwrap();
    cat.create_table("axb/t", one_col(), IfExists::Error).unwrap();
    cat.drop_dir("a_b", Force::No).unwrap();
    assert_eq!(names(cat.list_tables("", Recursive::Yes).unwrap()), ["axb/t"]);
}

#[test]
fn create_table_if_exists_modes() {
    let cat = catalog();
    let t = docs(&cat);
    let schema = Schema::new()
        .required("title", ColumnType::String)
        .required("words", ColumnType::Int)
        .nullable("score", ColumnType::Float)
        .required("draft", ColumnType::Bool);
    let msg =
        fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.create_table("app/docs", schema.clone(), IfExists::Error));
    assert!(msg.contains("IfExists::Ignore"), "{msg}");
    let same = cat.create_table("app/docs", schema.clone(), IfExists::Ignore).unwrap();
    assert_eq!(same.count().unwrap(), 3, "Ignore keeps the rows");
    let msg =
        fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.create_table("app/docs", one_col(), IfExists::Ignore));
    assert!(msg.contains("existing:  title String, words Int, score Float?, draft Bool"), "{msg}");
    assert!(msg.contains("requested: x Int"), "{msg}");
    let fresh = cat.create_table("app/docs", one_col(), IfExists::Replace).unwrap();
    assert_eq!(fresh.count().unwrap(), 0);
    assert_eq!(t.count().unwrap_err().code(), ErrorCode::NotFound, "the old handle sees its table is gone");
}

#[test]
fn bad_schemas_are_refused() {
    let cat = catalog();
    let dup = Schema::new().required("a", ColumnType::Int).required("A", ColumnType::Int);
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.create_table("app/t", dup, IfExists::Error));
    assert!(msg.contains("create table 'app/t'") && msg.contains("column 'A' already exists"), "{msg}");
    for bad in ["1a", "a b", "a\"b", "rowid", ""] {
        let schema = Schema::new().required(bad, ColumnType::Int);
        fails_cleanly(&cat, ErrorCode::InvalidName, || cat.create_table("app/t", schema, IfExists::Error));
    }
    fails_cleanly(&cat, ErrorCode::InvalidPath, || cat.create_table("app/t:2", one_col(), IfExists::Error));
    fails_cleanly(&cat, ErrorCode::WrongKind, || cat.create_table("app", one_col(), IfExists::Replace));
}

#[test]
fn get_and_drop_table_errors_name_the_fix() {
    let cat = catalog();
    docs(&cat);
    let e = cat.get_table("app/doc").unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert_eq!(e.to_string(), "table 'app/doc' does not exist (tables there: app/docs)");
    assert_eq!(cat.get_table("app").unwrap_err().code(), ErrorCode::WrongKind);
    assert_eq!(cat.get_table("app/docs:9").unwrap_err().code(), ErrorCode::NotFound);
    fails_cleanly(&cat, ErrorCode::WrongKind, || cat.drop_table("app", Force::No));
    cat.drop_table("app/docs", Force::No).unwrap();
    assert!(state(&cat).starts_with("dir app\n") && !state(&cat).contains("docs"));
}

#[test]
fn describe_shows_columns_and_version() {
    let cat = catalog();
    let t = docs(&cat);
    insta::assert_snapshot!(t.describe().unwrap().to_string(), @r"
    table 'app/docs' (version 1)
      title  String
      words  Int
      score  Float?
      draft  Bool
    ");
}

#[test]
fn file_catalogs_persist_and_refuse_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    {
        let cat = Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        docs(&cat);
    }
    let cat = Catalog::open(&path).unwrap();
    assert_eq!(cat.get_table("app/docs").unwrap().count().unwrap(), 3);
    cat.integrity_check().unwrap();

    let text = dir.path().join("notes.txt");
    let content = "this is not a database, just some text that is long enough to have a header";
    std::fs::write(&text, content).unwrap();
    let e = Catalog::open(&text).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotACatalog, "{e}");
    // SQLite's own error is kept as the source, for callers that log the chain.
    let source = std::error::Error::source(&e).expect("the SQLite error is the source");
    assert!(source.downcast_ref::<rusqlite::Error>().is_some(), "{source:?}");
    assert_eq!(std::fs::read_to_string(&text).unwrap(), content, "the foreign file is untouched");

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE users(id INTEGER)").unwrap();
    let e = Catalog::open(&other).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotACatalog, "{e}");
    assert!(e.to_string().contains("not a Tabula catalog"), "{e}");
}

#[test]
fn catalogs_from_a_newer_format_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    Catalog::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE _tabula_meta SET value = '99' WHERE key = 'format_version'", []).unwrap();
    drop(conn);
    let e = Catalog::open(&path).unwrap_err();
    assert_eq!(e.code(), ErrorCode::FormatTooNew);
    assert!(e.to_string().contains("format version 99") && e.to_string().contains("upgrade tabula"), "{e}");
}

/// A version that only changes rows stores no schema: its record refers to the version that
/// holds it, so a service writing one row a call pays a few bytes a version, not a schema's.
/// Every version still reads with its exact schema.
#[test]
fn data_versions_store_no_schema_and_every_version_reads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    let cat = Catalog::open(&path).unwrap();
    let mut schema = Schema::new();
    for i in 0..22 {
        schema = schema.nullable(format!("column_number_{i}"), ColumnType::String);
    }
    let t = cat.create_table("wide", schema, IfExists::Error).unwrap();
    for i in 0..200 {
        t.insert([tabula::row! {"column_number_0" => format!("row {i}")}]).unwrap();
    }
    t.add_column("extra", ColumnType::Int, 7, IfExists::Error).unwrap();
    for i in 0..100 {
        t.update([("extra", tabula::lit(i))], tabula::col("column_number_0").eq("row 3")).unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (data, bytes): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(length(schema)) FROM _tabula_versions WHERE change IN ('insert', 'update')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(data, 300);
    assert!(bytes <= 300 * 4, "data versions hold {bytes} bytes of schema");
    let format: String =
        conn.query_row("SELECT value FROM _tabula_meta WHERE key = 'format_version'", [], |r| r.get(0)).unwrap();
    assert_eq!(format, tabula::FORMAT_VERSION.to_string());
    // Versions before and after the schema change read with their own schemas.
    let before = cat.get_table("wide:150").unwrap();
    assert!(before.schema().unwrap().column("extra").is_none());
    assert_eq!(before.count().unwrap(), 150);
    let after = cat.get_table("wide:260").unwrap();
    assert_eq!(after.schema().unwrap().column("extra").map(|c| c.ty), Some(ColumnType::Int));
    assert_eq!(t.history().unwrap().len(), 302);
    // Reverting back over the schema change restores the schema before it.
    t.revert_to(tabula::Version(150)).unwrap();
    assert!(t.schema().unwrap().column("extra").is_none());
    t.insert([tabula::row! {"column_number_1" => "after the revert"}]).unwrap();
    assert_eq!(t.count().unwrap(), 151);
}

/// A catalog of format 1 (a schema in every version record) is read as it is and says it
/// is format 2 from its first data change, so an older Tabula refuses it instead of
/// misreading it.
#[test]
fn a_format_1_catalog_is_read_and_upgraded_by_its_first_data_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    crate::format_4_file(&path);
    {
        let cat = Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        docs(&cat);
    }
    // Make it what format 1 wrote: JSON in every record (here version 1, an insert).
    let conn = rusqlite::Connection::open(&path).unwrap();
    let json: String =
        conn.query_row("SELECT schema FROM _tabula_versions WHERE version = 0", [], |r| r.get(0)).unwrap();
    conn.execute("UPDATE _tabula_versions SET schema = ?1 WHERE version = 1", [&json]).unwrap();
    conn.execute("UPDATE _tabula_meta SET value = '1' WHERE key = 'format_version'", []).unwrap();
    drop(conn);
    let t = Catalog::open(&path).unwrap().get_table("app/docs").unwrap();
    assert_eq!(t.count().unwrap(), 3);
    t.insert([tabula::row! {"title" => "delta", "words" => 4, "draft" => true}]).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let format: String =
        conn.query_row("SELECT value FROM _tabula_meta WHERE key = 'format_version'", [], |r| r.get(0)).unwrap();
    assert_eq!(format, "2");
    let reference: String =
        conn.query_row("SELECT schema FROM _tabula_versions WHERE version = 2", [], |r| r.get(0)).unwrap();
    assert_eq!(reference, "@1", "refers to the version holding the schema (a format 1 record)");
    assert_eq!(Catalog::open(&path).unwrap().get_table("app/docs:2").unwrap().count().unwrap(), 4);
}

/// Version records this Tabula cannot read give clear errors naming what is wrong: a change
/// kind from a newer Tabula, a schema reference that is not a version number.
#[test]
fn damaged_or_newer_version_records_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    {
        let cat = Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        docs(&cat).insert([tabula::row! {"title" => "delta", "words" => 4, "draft" => true}]).unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE _tabula_versions SET change = 'vacuum' WHERE version = 1", []).unwrap();
    let cat = Catalog::open(&path).unwrap();
    let e = cat.get_table("app/docs").unwrap().history().unwrap_err();
    assert_eq!(e.code(), ErrorCode::Storage, "{e}");
    assert!(e.to_string().contains("'\"vacuum\"'") && e.to_string().contains("newer Tabula"), "{e}");
    conn.execute("UPDATE _tabula_versions SET schema = '@x' WHERE version = 2", []).unwrap();
    let e = cat.get_table("app/docs").unwrap().schema().unwrap_err();
    assert_eq!(e.code(), ErrorCode::Storage, "{e}");
    assert!(e.to_string().contains("version 2") && e.to_string().contains("damaged"), "{e}");
}

#[test]
fn read_only_catalogs_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    {
        let cat = Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        docs(&cat);
    }
    let ro = Catalog::open_read_only(&path).unwrap();
    let t = ro.get_table("app/docs").unwrap();
    assert_eq!(t.count().unwrap(), 3);
    let e = t.insert([tabula::row! {"title" => "x", "words" => 1, "draft" => true}]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReadOnly, "{e}");
    assert_eq!(ro.create_dir("b", IfExists::Error).unwrap_err().code(), ErrorCode::ReadOnly);
    assert_eq!(Catalog::open_read_only(dir.path().join("missing.db")).unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn opening_and_creating_are_distinct_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("prodd.db");
    let e = Catalog::open_existing(&typo).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(e.to_string().contains("prodd.db") && e.to_string().contains("check the path"), "{e}");
    assert!(!typo.exists(), "a mistyped path creates nothing");
    let made = dir.path().join("new.db");
    Catalog::create(&made).unwrap().create_dir("app", IfExists::Error).unwrap();
    let e = Catalog::create(&made).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists);
    assert_eq!(Catalog::open_existing(&made).unwrap().list_dirs("", Recursive::No).unwrap().len(), 1);
}

#[test]
fn the_busy_timeout_is_the_one_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    Catalog::open(&path).unwrap().create_dir("app", IfExists::Error).unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let cat = tabula::OpenOptions::new().busy_timeout(std::time::Duration::from_millis(200)).open(&path).unwrap();
    let started = std::time::Instant::now();
    let e = cat.create_dir("other", IfExists::Error).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Busy, "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "waited {:?}", started.elapsed());
    assert!(e.to_string().contains("busy timeout"), "{e}");
    holder.execute_batch("ROLLBACK").unwrap();
    cat.create_dir("other", IfExists::Error).unwrap();
}

/// The schema cookie: SQLite adds one for every `CREATE`, `DROP` or `ALTER`.
fn ddl_count(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path).unwrap().query_row("PRAGMA schema_version", [], |r| r.get(0)).unwrap()
}

/// A test namespace's tables are made and dropped each test; SQLite's DDL costs in proportion
/// to the whole schema, so a new table reuses the emptied physical table of a dropped one with
/// the same columns. Nothing of the old table may show through: rows, versions, column types.
#[test]
fn a_new_table_reuses_a_dropped_tables_storage_and_sees_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    let cat = Catalog::open(&path).unwrap();
    cat.create_dir("ns", IfExists::Error).unwrap();
    let schema = || Schema::new().required("k", ColumnType::Int).nullable("s", ColumnType::String);
    let cycle = |i: i64| {
        let t = cat.create_table("ns/t", schema(), IfExists::Error).unwrap();
        assert_eq!(t.count().unwrap(), 0, "cycle {i}: the new table starts empty");
        assert_eq!(t.history().unwrap().len(), 1, "cycle {i}: only its own creation");
        t.insert([tabula::row! {"k" => i, "s" => format!("cycle {i}")}]).unwrap();
        t.insert([tabula::row! {"k" => i + 100, "s" => None::<String>}]).unwrap();
        t.delete(tabula::col("k").eq(i + 100)).unwrap();
        let rows = t.select_all().collect().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<String>("s").unwrap(), format!("cycle {i}"));
        cat.drop_table("ns/t", Force::No).unwrap();
    };
    cycle(0);
    let after_first = ddl_count(&path);
    for i in 1..20 {
        cycle(i);
    }
    assert_eq!(ddl_count(&path), after_first, "19 more cycles ran no DDL");

    // Other column types get a table of their own: an Int column's INTEGER affinity would
    // turn the text "007" into 7.
    let u = cat
        .create_table(
            "ns/u",
            Schema::new().required("k", ColumnType::String).nullable("s", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    assert!(ddl_count(&path) > after_first, "a table of other types is created, not reused");
    u.insert([tabula::row! {"k" => "007", "s" => 7}]).unwrap();
    assert_eq!(u.select_all().collect().unwrap()[0].get::<String>("k").unwrap(), "007");
}

/// Everything that names a table's physical storage works on a reused one: views, snapshots
/// that take their own copy when the base is reverted past them, revert, and compaction,
/// which rebuilds the physical table under its (reused) name.
#[test]
fn views_snapshots_revert_and_compaction_work_on_a_reused_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    let cat = Catalog::open(&path).unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    docs(&cat);
    cat.drop_table("app/docs", Force::No).unwrap();
    let before = ddl_count(&path);
    let t = docs(&cat);
    assert_eq!(ddl_count(&path), before, "the new app/docs reuses the old one's physical table");
    let v = cat.create_view("app/long", &t, tabula::col("words").gt(15), IfExists::Error).unwrap();
    v.add_computed_column("twice", tabula::col("words") * 2, tabula::ColumnOptions::default()).unwrap();
    let snap = cat.create_snapshot("app/snap", &t, IfExists::Error).unwrap();
    t.insert([tabula::row! {"title" => "delta", "words" => 40, "score" => None::<f64>, "draft" => false}]).unwrap();
    assert_eq!(v.count().unwrap(), 3);
    t.revert().unwrap();
    t.revert().unwrap(); // past the snapshot's version: it takes its own copy
    assert_eq!(t.count().unwrap(), 0);
    assert_eq!(snap.count().unwrap(), 3, "the snapshot kept its rows");
    assert_eq!(v.count().unwrap(), 0);
    t.insert([tabula::row! {"title" => "eps", "words" => 50, "score" => 1.0, "draft" => true}]).unwrap();
    t.add_column("gone", ColumnType::Int, None::<i64>, IfExists::Error).unwrap();
    t.drop_column("gone").unwrap();
    let report = t.compact(tabula::Retention::Versions(1)).unwrap();
    assert_eq!(report.columns_removed, 1, "{report:?}");
    t.insert([tabula::row! {"title" => "zeta", "words" => 60, "score" => 2.0, "draft" => false}]).unwrap();
    let titles: Vec<String> =
        t.select_all().collect().unwrap().iter().map(|r| r.get::<String>("title").unwrap()).collect();
    assert_eq!(titles, ["eps", "zeta"]);
    assert_eq!(
        v.select_all().collect().unwrap().iter().map(|r| r.get::<i64>("twice").unwrap()).collect::<Vec<_>>(),
        [100, 120]
    );
}

/// At most 64 dropped tables' storage waits for reuse; the rest is dropped. A file of format
/// 2 stays readable by the Tabula that wrote it until its first reuse, which makes it format 3.
#[test]
fn spare_tables_are_bounded_and_a_reuse_upgrades_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    crate::format_4_file(&path);
    let cat = Catalog::open(&path).unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let count = |sql: &str| -> i64 { raw.query_row(sql, [], |r| r.get(0)).unwrap() };
    for i in 0..70 {
        cat.create_table(format!("app/t{i}"), one_col(), IfExists::Error).unwrap();
    }
    raw.execute("UPDATE _tabula_meta SET value = '2' WHERE key = 'format_version'", []).unwrap();
    for i in 0..70 {
        cat.drop_table(format!("app/t{i}"), Force::No).unwrap();
    }
    assert_eq!(count("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name GLOB 't[0-9]*'"), 64);
    let format = || -> String {
        raw.query_row("SELECT value FROM _tabula_meta WHERE key = 'format_version'", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(format(), "2", "dropping alone keeps the format");
    assert_eq!(cat.format_version().unwrap(), 2);
    cat.create_table("app/new", one_col(), IfExists::Error).unwrap().insert([tabula::row! {"x" => 1}]).unwrap();
    assert_eq!(format(), "3");
    assert_eq!(cat.format_version().unwrap(), 3);
    assert_eq!(count("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name GLOB 't[0-9]*'"), 64);
}

/// `integrity_check` finds what breaks the storage model, each finding naming the object:
/// planted here one by one in a sound catalog, as a bug or a hand edit would leave them.
#[test]
fn integrity_check_finds_dangling_objects_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    let cat = Catalog::open(&path).unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    let t = docs(&cat);
    cat.create_view("app/v", &t, tabula::col("words").gt(1), IfExists::Error).unwrap();
    cat.create_snapshot("app/s", &t, IfExists::Error).unwrap();
    cat.create_table("app/gone", one_col(), IfExists::Error).unwrap();
    cat.drop_table("app/gone", Force::No).unwrap(); // leaves a spare: not dangling
    let keyed = Schema::new().required("k", ColumnType::Int).primary_key(["k"]);
    cat.create_table("app/keyed", keyed, IfExists::Error).unwrap();
    cat.integrity_check().unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let id = |path: &str| -> i64 {
        raw.query_row("SELECT id FROM _tabula_tables WHERE path = ?1", [path], |r| r.get(0)).unwrap()
    };
    let docs_id = id("app/docs");
    let view_id = id("app/v");
    let keyed_id = id("app/keyed");
    raw.execute_batch(&format!(
        "CREATE TABLE t9999(x);
         DROP INDEX t{keyed_id}_key;
         INSERT INTO _tabula_versions SELECT 4242, version, created_at, change, detail, inserted, updated, deleted,
             first_rowid, last_rowid, schema FROM _tabula_versions WHERE table_id = {docs_id};
         DROP TABLE t{view_id};
         UPDATE _tabula_tables SET version = 7 WHERE id = {docs_id};
         INSERT INTO _tabula_follows VALUES ({view_id}, 9, 0, 1);"
    ))
    .unwrap();
    let e = cat.integrity_check().unwrap_err().to_string();
    for finding in [
        "physical table t9999 belongs to no table",
        "version records belong to table id 4242, which does not exist",
        &format!("view 'app/v' has no physical table t{view_id}"),
        "'app/docs' has no record of its current version 7",
        "'app/v' records what its version 9 shows, but has no such version",
        &format!(
            "'app/keyed' has a primary key, but its physical table t{keyed_id} has no unique index t{keyed_id}_key"
        ),
    ] {
        assert!(e.contains(finding), "{finding}: {e}");
    }
    raw.execute_batch(&format!("DELETE FROM _tabula_tables WHERE id = {docs_id}")).unwrap();
    let e = cat.integrity_check().unwrap_err().to_string();
    assert!(e.contains(&format!("snapshot 'app/s' reads table id {docs_id}, which does not exist")), "{e}");
}

/// A test's setup and teardown run whether or not the last run got that far: drops that
/// are no-ops when there is nothing to drop, and `create_dir_all`. Only absence is ignored:
/// the wrong kind of object is still an error.
#[test]
fn teardown_drops_are_idempotent_and_create_dir_all_makes_parents() {
    let cat = catalog();
    cat.create_dir_all("app/a/b/c").unwrap();
    cat.create_dir_all("app/a/b/c").unwrap();
    cat.create_dir_all("top/level").unwrap();
    assert_eq!(
        names(cat.list_dirs("", Recursive::Yes).unwrap()),
        ["app", "app/a", "app/a/b", "app/a/b/c", "top", "top/level"]
    );
    let t = docs(&cat);
    let msg = fails_cleanly(&cat, ErrorCode::WrongKind, || cat.create_dir_all("app/docs/sub/x"));
    assert!(msg.contains("'app/docs' is a table"), "{msg}");

    let before = state(&cat);
    assert!(!cat.drop_table_if_exists("app/nope", Force::No).unwrap());
    assert!(!cat.drop_dir_if_exists("nope/deeper", Force::Yes).unwrap());
    let unchanged = t.drop_column_if_exists("nope").unwrap();
    assert_eq!((unchanged.change, unchanged.version), (None, t.version().unwrap()));
    assert_eq!(state(&cat), before, "dropping nothing changes nothing");
    fails_cleanly(&cat, ErrorCode::WrongKind, || cat.drop_table_if_exists("app/a", Force::No));
    fails_cleanly(&cat, ErrorCode::WrongKind, || cat.drop_dir_if_exists("app/docs", Force::No));
    fails_cleanly(&cat, ErrorCode::DirNotEmpty, || cat.drop_dir_if_exists("app", Force::No));

    assert_eq!(t.drop_column_if_exists("score").unwrap().change, Some(tabula::ChangeKind::DropColumn));
    assert!(t.schema().unwrap().column("score").is_none());
    assert!(cat.drop_table_if_exists("app/docs", Force::No).unwrap());
    assert!(!cat.drop_table_if_exists("app/docs", Force::No).unwrap());
    assert!(cat.drop_dir_if_exists("app", Force::Yes).unwrap());
    assert!(!cat.drop_dir_if_exists("app", Force::Yes).unwrap());
    assert_eq!(names(cat.list_dirs("", Recursive::Yes).unwrap()), ["top", "top/level"]);
}

/// `ls` lists a directory tree in one read: kinds, versions, rows, and error cells (kept and
/// inherited failures alike).
#[test]
fn ls_lists_kinds_versions_rows_and_error_cells() {
    use tabula::{col, ListingKind, OnError};
    let cat = catalog();
    cat.create_dir_all("app/sub").unwrap();
    let t = docs(&cat);
    let picky = tabula::Udf::new("picky", 1, |n: i64| if n > 25 { Err("too many words".to_string()) } else { Ok(n) });
    cat.register(&picky);
    let ignore = tabula::ColumnOptions { on_error: OnError::Ignore, ..Default::default() };
    t.add_computed_column("w", picky.call([col("words")]), ignore).unwrap();
    t.add_computed_column("w2", col("w") * 2, tabula::ColumnOptions::default()).unwrap();
    cat.create_view("app/sub/long", &t, col("words").gt(15), IfExists::Error).unwrap();
    cat.create_snapshot("app/snap", &t, IfExists::Error).unwrap();
    let line = |l: &tabula::Listing| {
        format!("{} {:?} {:?} {:?} {:?}", l.path, l.kind, l.version.map(|v| v.0), l.rows, l.error_cells)
    };
    let all: Vec<String> = cat.ls("", Recursive::Yes).unwrap().iter().map(line).collect();
    assert_eq!(
        all,
        [
            "app Dir None None None",
            "app/docs Table Some(3) Some(3) Some(2)",
            "app/snap Snapshot Some(0) Some(3) Some(2)",
            "app/sub Dir None None None",
            "app/sub/long View Some(0) Some(2) Some(2)",
        ]
    );
    let top = cat.ls("app", Recursive::No).unwrap();
    assert_eq!(
        top.iter().map(|l| l.kind).collect::<Vec<_>>(),
        [ListingKind::Table, ListingKind::Snapshot, ListingKind::Dir]
    );
    fails_cleanly(&cat, ErrorCode::WrongKind, || cat.ls("app/docs", Recursive::No));
    fails_cleanly(&cat, ErrorCode::NotFound, || cat.ls("nope", Recursive::No));
}

/// A table from rows: the schema comes from the values (Int and Float make Float; a null or
/// a missing value makes the column nullable), in one transaction with the rows; a column
/// of two types or only nulls is an error naming it, and nothing is created.
#[test]
fn create_table_from_rows_infers_the_schema_and_inserts_them() {
    use tabula::{row, Value};
    let cat = catalog();
    let t = cat
        .create_table_from_rows(
            "app/imported",
            [
                row! {"id" => 1, "score" => 2, "note" => "a"},
                row! {"id" => 2, "score" => 2.5, "note" => None::<String>},
                row! {"id" => 3, "score" => 1, "tag" => "late"},
            ],
            IfExists::Error,
        )
        .unwrap();
    assert_eq!(t.schema().unwrap().to_string(), "id Int, score Float, note String?, tag String?");
    assert_eq!(t.count().unwrap(), 3);
    assert_eq!(t.history().unwrap().len(), 2, "create, insert");
    let scores: Vec<f64> =
        t.select([tabula::col("score")]).collect().unwrap().iter().map(|r| r.get("score").unwrap()).collect();
    assert_eq!(scores, [2.0, 2.5, 1.0]);

    let msg = fails_cleanly(&cat, ErrorCode::TypeMismatch, || {
        cat.create_table_from_rows("app/bad", [row! {"x" => 1}, row! {"x" => "one"}], IfExists::Error)
    });
    assert!(msg.contains("column 'x' is Int in row 0 and String in row 1"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || {
        cat.create_table_from_rows("app/bad", [row! {"x" => 1, "y" => Value::Null}], IfExists::Error)
    });
    assert!(msg.contains("column 'y' is null in every row"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || {
        cat.create_table_from_rows("app/empty", Vec::<tabula::Row>::new(), IfExists::Error)
    });
    assert!(msg.contains("no rows to take a schema from"), "{msg}");
    // An existing table is an error, as with create_table.
    fails_cleanly(&cat, ErrorCode::AlreadyExists, || {
        cat.create_table_from_rows("app/imported", [row! {"id" => 9}], IfExists::Error)
    });
}

/// A catalog created at format 5 marks live rows with `_vmax = 0` (stored in no bytes); one
/// created before keeps `i64::MAX` through every kind of write, stays format 4 (so the Tabula
/// that wrote it still reads it), and reads the same.
#[test]
fn live_rows_are_marked_by_the_layout_the_catalog_was_created_with() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format_4) in [("new.db", false), ("old.db", true)] {
        let path = dir.path().join(name);
        if format_4 {
            crate::format_4_file(&path);
        }
        let cat = Catalog::open(&path).unwrap();
        let t = cat
            .create_table("t", Schema::new().required("k", ColumnType::Int).primary_key(["k"]), IfExists::Error)
            .unwrap();
        t.insert((0..4).map(|k| tabula::row! {"k" => k})).unwrap();
        t.update([("k", tabula::col("k") + 10)], tabula::col("k").lt(2)).unwrap();
        t.delete(tabula::col("k").eq(3)).unwrap();
        t.revert().unwrap();
        t.upsert([tabula::row! {"k" => 20}]).unwrap();
        t.add_column("tmp", ColumnType::Int, 0, IfExists::Error).unwrap();
        t.drop_column("tmp").unwrap();
        // Keeps version 6 alone: the physical table is rebuilt without `tmp`.
        t.compact(tabula::Retention::Versions(1)).unwrap();
        t.update([("k", tabula::col("k") + 1)], tabula::col("k").eq(20)).unwrap();
        let e = t.insert([tabula::row! {"k" => 2}]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::DuplicateKey, "{name}: {e}");
        let view = cat.create_view("v", &t, tabula::col("k").ge(10), IfExists::Error).unwrap();
        view.add_column("note", ColumnType::String, tabula::Value::Null, IfExists::Error).unwrap();
        view.update([("note", tabula::lit("n"))], tabula::lit(true)).unwrap();
        let raw = rusqlite::Connection::open(&path).unwrap();
        let ends = |table: &str| -> Vec<i64> {
            let mut stmt = raw.prepare(&format!("SELECT DISTINCT _vmax FROM {table} ORDER BY 1")).unwrap();
            stmt.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
        };
        let format: String =
            raw.query_row("SELECT value FROM _tabula_meta WHERE key = 'format_version'", [], |r| r.get(0)).unwrap();
        if format_4 {
            assert_eq!(ends("t1"), vec![7, i64::MAX], "{name}");
            assert_eq!(ends("t2_stored"), vec![i64::MAX], "{name}");
            assert_eq!(format, "4");
        } else {
            assert_eq!(ends("t1"), vec![0, 7], "{name}");
            assert_eq!(ends("t2_stored"), vec![0], "{name}");
            assert_eq!(format, tabula::FORMAT_VERSION.to_string());
        }
        let keys = |at: &str| -> Vec<i64> {
            let rows = cat.get_table(at).unwrap().select_all().collect().unwrap();
            let mut keys: Vec<i64> = rows.iter().map(|r| r.get("k").unwrap()).collect();
            keys.sort();
            keys
        };
        assert_eq!(keys("t"), vec![2, 3, 10, 11, 21], "{name}");
        assert_eq!(keys("t:6"), vec![2, 3, 10, 11, 20], "{name}");
        assert_eq!(view.count().unwrap(), 3, "{name}");
        cat.integrity_check().unwrap();
    }
}

/// A `live_vmax` no Tabula writes is refused at open, naming the file.
#[test]
fn an_unknown_live_row_marker_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    drop(Catalog::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE _tabula_meta SET value = '7' WHERE key = 'live_vmax'", []).unwrap();
    let e = Catalog::open(&path).err().unwrap();
    assert_eq!(e.code(), ErrorCode::NotACatalog);
    assert!(e.to_string().contains("cat.db") && e.to_string().contains("'7'"), "{e}");
}
