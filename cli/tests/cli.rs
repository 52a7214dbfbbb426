//! The `tabula` binary, driven as a user would, on catalogs the tests build.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tabula::{col, row, Catalog, ColumnOptions, ColumnType, IfExists, OnError, Schema, Udf};

/// `app/docs(title, words, draft)` with three rows (versions 0 and 1), a builtin column
/// `long` (version 2) and a UDF column `shout` kept with its errors (version 3); `app/short`
/// is a view of it.
fn catalog(dir: &Path) -> PathBuf {
    let path = dir.join("cat.db");
    let cat = Catalog::open(&path).unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    let t = cat
        .create_table(
            "app/docs",
            Schema::new()
                .required("title", ColumnType::String)
                .required("words", ColumnType::Int)
                .nullable("draft", ColumnType::Bool),
            IfExists::Error,
        )
        .unwrap();
    t.insert([
        row! {"title" => "alpha", "words" => 10, "draft" => false},
        row! {"title" => "beta, \"quoted\"", "words" => 20, "draft" => None::<bool>},
        row! {"title" => "gamma", "words" => 30, "draft" => true},
    ])
    .unwrap();
    t.add_computed_column("long", col("words").gt(15), ColumnOptions::default()).unwrap();
    let shout =
        Udf::new("shout", 1, |s: String| if s == "gamma" { Err("no gamma".to_string()) } else { Ok(s.to_uppercase()) });
    cat.register(&shout);
    let opts = ColumnOptions { on_error: OnError::Ignore, ..ColumnOptions::default() };
    t.add_computed_column("shout", shout.call([col("title")]), opts).unwrap();
    cat.create_view("app/short", &t, col("words").lt(25), IfExists::Error).unwrap();
    path
}

fn tabula(cat: &Path) -> Command {
    let mut cmd = Command::cargo_bin("tabula").unwrap();
    cmd.arg("--catalog").arg(cat).env_remove("TABULA_CATALOG");
    cmd
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Fails with exit code 2 and one line naming the problem; returns that line.
fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err.trim_end().to_string()
}

/// Runs SQL on the catalog file behind Tabula's back (to damage it).
fn rusqlite_exec(cat: &Path, sql: &str) {
    rusqlite::Connection::open(cat).unwrap().execute_batch(sql).unwrap();
}

/// Everything a reader can see, to show that a failed command changed nothing.
fn state(cat: &Path) -> String {
    let cat = Catalog::open_read_only(cat).unwrap();
    let t = cat.get_table("app/docs").unwrap();
    format!("{:?}\n{:?}", t.history().unwrap(), t.select_all().collect().unwrap())
}

#[test]
fn ls_describe_history_and_show_print_what_a_reader_needs() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path());
    insta::assert_snapshot!("ls", stdout(tabula(&cat).args(["ls", "-r"])));
    insta::assert_snapshot!("describe", stdout(tabula(&cat).args(["describe", "app/docs"])));
    insta::with_settings!({filters => vec![(r"\d{4}-\d\d-\d\dT[0-9:.]+Z", "[time]")]}, {
        insta::assert_snapshot!("history", stdout(tabula(&cat).args(["history", "app/docs"])));
    });
    insta::assert_snapshot!("show", stdout(tabula(&cat).args(["show", "app/docs"])));
    // What describe prints pastes back as a filter.
    let filtered = stdout(tabula(&cat).args([
        "show",
        "app/docs",
        "--where",
        "words > 15 and draft is null",
        "--columns",
        "title,long",
    ]));
    insta::assert_snapshot!("show_where", filtered);
    insta::assert_snapshot!("show_old_version", stdout(tabula(&cat).args(["show", "app/docs:1", "--limit", "2"])));
}

#[test]
fn rows_print_as_json_jsonl_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path());
    let json = stdout(tabula(&cat).args(["show", "app/docs", "--format", "json", "--columns", "title,words"]));
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed[1], serde_json::json!({"title": "beta, \"quoted\"", "words": 20}));
    let jsonl = stdout(tabula(&cat).args(["export", "app/short"]));
    assert_eq!(jsonl.lines().count(), 2);
    insta::assert_snapshot!("export_csv", stdout(tabula(&cat).args(["export", "app/docs", "--format", "csv"])));
    assert_eq!(stdout(tabula(&cat).args(["show", "app/docs", "--format", "json", "--where", "words > 99"])), "[]\n");
}

#[test]
fn revert_asks_for_confirmation_and_says_what_it_undid() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path());
    let before = state(&cat);
    let e = fails(tabula(&cat).args(["revert", "app/docs"]));
    assert!(e.contains("pass --yes") && e.contains("version 3 (add computed column shout"), "{e}");
    assert_eq!(state(&cat), before, "nothing reverted without --yes");
    // Without --to, only the latest version goes.
    let out = stdout(tabula(&cat).args(["revert", "app/docs", "--yes"]));
    assert_eq!(
        out,
        "reverted app/docs to version 2; undid:\n  version 3 (add computed column shout = shout@1(title))\n"
    );
    insta::assert_snapshot!("revert", stdout(tabula(&cat).args(["revert", "app/docs", "--to", "1", "--yes"])));
    let t = Catalog::open_read_only(&cat).unwrap().get_table("app/docs").unwrap();
    assert_eq!(t.version().unwrap().0, 1);
    assert!(t.schema().unwrap().column("long").is_none());
}

#[test]
fn bad_input_exits_2_with_one_clear_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path());
    let before = state(&cat);
    assert!(fails(tabula(&cat).args(["show", "app/nope"])).contains("app/nope"));
    let e = fails(tabula(&cat).args(["show", "app/docs", "--where", "words >"]));
    assert!(e.contains("expected a value, found the end"), "{e}");
    let e = fails(tabula(&cat).args(["show", "app/docs", "--where", "wrods > 1"]));
    assert!(e.contains("wrods"), "{e}");
    let e = fails(tabula(&cat).args(["show", "app/docs:99"]));
    assert!(e.contains("99"), "{e}");
    let e = fails(tabula(&cat).args(["show", "app/docs:x"]));
    assert!(e.contains("app/docs:x"), "{e}");
    let e = fails(tabula(&cat).args(["revert", "app/docs", "--to", "7", "--yes"]));
    assert!(e.contains('7'), "{e}");
    assert_eq!(state(&cat), before);

    let missing = dir.path().join("missing.db");
    fails(tabula(&missing).args(["ls"]));
    fails(tabula(&missing).args(["revert", "app/docs", "--yes"]));
    assert!(!missing.exists(), "a missing catalog is not created");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a catalog").unwrap();
    assert!(fails(tabula(&text).args(["ls"])).contains("not a Tabula catalog"));
    assert_eq!(std::fs::read_to_string(&text).unwrap(), "not a catalog");
    let mut no_catalog = Command::cargo_bin("tabula").unwrap();
    assert!(fails(no_catalog.env_remove("TABULA_CATALOG").args(["ls"])).contains("--catalog FILE"));
}

#[test]
fn import_inserts_json_lines_and_refuses_a_udf_write_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path());
    let plain = Catalog::open(&cat).unwrap();
    plain.create_table("app/notes", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
    let out = stdout(tabula(&cat).args(["import", "app/notes"]).write_stdin("{\"n\": 1}\n\n{\"n\": 2}\n"));
    assert_eq!(out, "imported 2 rows into app/notes (version 1)\n");
    assert_eq!(plain.get_table("app/notes").unwrap().count().unwrap(), 2);
    let e = fails(tabula(&cat).args(["import", "app/notes"]).write_stdin("{\"n\": 3}\nnot json\n"));
    assert!(e.contains("line 2") && e.contains("nothing was imported"), "{e}");
    let before = state(&cat);
    let e = fails(tabula(&cat).args(["import", "app/docs"]).write_stdin("{\"title\": \"x\", \"words\": 1}\n"));
    assert!(e.contains("shout") && e.contains("must run in the application"), "{e}");
    assert_eq!(state(&cat), before);
}

#[test]
fn compact_check_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path());
    insta::assert_snapshot!("check", stdout(tabula(&cat).args(["check"])));
    let t = Catalog::open(&cat).unwrap().get_table("app/docs").unwrap();
    t.delete(col("words").eq(10)).unwrap();
    insta::assert_snapshot!("compact", stdout(tabula(&cat).args(["compact", "app/docs", "--keep", "1"])));
    assert_eq!(t.count().unwrap(), 2);
    assert!(t.history().unwrap().len() == 1);
    // A physical table that belongs to no table: check fails with exit code 1, naming it.
    rusqlite_exec(&cat, "CREATE TABLE t777(x)");
    let out = tabula(&cat).args(["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("check failed") && err.contains("physical table t777 belongs to no table"), "{err}");
    let bash = stdout(Command::cargo_bin("tabula").unwrap().args(["completions", "bash"]));
    assert!(bash.contains("_tabula()") && bash.contains("describe"), "{bash}");
}

#[test]
fn diff_shows_columns_and_rows_changed_between_two_versions() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path());
    let t = Catalog::open(&cat).unwrap().get_table("app/docs").unwrap();
    t.update([("words", col("words") + 1)], col("title").eq("alpha")).unwrap(); // v4
    t.delete(col("title").eq("gamma")).unwrap(); // v5
    insta::assert_snapshot!("diff", stdout(tabula(&cat).args(["diff", "app/docs", "1", "5"])));
    let json = stdout(tabula(&cat).args(["diff", "app/docs", "5", "1", "--format", "json"]));
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["columns"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(
        parsed["rows"][1],
        serde_json::json!({"change": "added", "row": {"title": "gamma", "words": 30, "draft": true}})
    );
    let unchanged = stdout(tabula(&cat).args(["diff", "app/docs", "3", "3", "--format", "json"]));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&unchanged).unwrap()["rows"], serde_json::json!([]));
    assert!(fails(tabula(&cat).args(["diff", "app/docs", "1", "9"])).contains("no version 9"));
}

/// The README's session, run: each `$ tabula ...` line against the catalog it describes,
/// its output compared with the lines that follow it. The README cannot drift from the CLI.
#[test]
fn the_readme_session_is_what_the_cli_prints() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog(dir.path());
    let t = Catalog::open(&cat).unwrap().get_table("app/docs").unwrap();
    t.update([("words", col("words") + 1)], col("title").eq("alpha")).unwrap();
    t.delete(col("title").eq("gamma")).unwrap();

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("$ export TABULA_CATALOG=app.db").expect("the README's CLI session");
    let session = &readme[start..start + readme[start..].find("```").unwrap()];
    let mut commands = 0;
    for block in session.split("$ tabula ").skip(1) {
        let (command, expected) = block.split_once('\n').unwrap();
        let mut args = Vec::new();
        for (i, part) in command.split('\'').enumerate() {
            if i % 2 == 1 {
                args.push(part.to_string());
            } else {
                args.extend(part.split_whitespace().map(str::to_string));
            }
        }
        assert_eq!(stdout(tabula(&cat).args(&args)), expected, "README: $ tabula {command}");
        commands += 1;
    }
    assert_eq!(commands, 5);
}

#[test]
fn describe_names_the_primary_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyed.db");
    let cat = Catalog::open(&path).unwrap();
    cat.create_table(
        "stock",
        tabula::Schema::new()
            .required("shop", tabula::ColumnType::String)
            .required("day", tabula::ColumnType::Int)
            .primary_key(["shop", "day"]),
        tabula::IfExists::Error,
    )
    .unwrap();
    drop(cat);
    let out = stdout(tabula(&path).args(["describe", "stock"]));
    assert!(out.contains("primary key: shop, day"), "{out}");
}
