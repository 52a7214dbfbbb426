//! Insert, update, delete: counts, versions, errors and atomicity.

use serde::Serialize;
use tabula::{col, lit, row, ColumnType, ErrorCode, IfExists, Schema, Value, Version};

use crate::{catalog, docs, fails_cleanly};

#[test]
fn insert_returns_counts_and_one_version_per_call() {
    let cat = catalog();
    let t = docs(&cat);
    let done = t.insert([row! {"title" => "d", "words" => 1, "draft" => true}]).unwrap();
    assert_eq!((done.version, done.inserted, done.updated, done.deleted), (Version(2), 1, 0, 0));
    assert_eq!(t.count().unwrap(), 4);
    let none = t.insert(Vec::new()).unwrap();
    assert_eq!((none.version, none.inserted), (Version(2), 0), "inserting nothing makes no version");
}

#[test]
fn insert_errors_name_row_column_expected_and_found() {
    let cat = catalog();
    let t = docs(&cat);
    let bad = || {
        t.insert([
            row! {"title" => "ok", "words" => 1, "draft" => true},
            row! {"title" => "ok", "words" => "many", "draft" => true},
        ])
    };
    let msg = fails_cleanly(&cat, ErrorCode::TypeMismatch, bad);
    assert_eq!(msg, "table 'app/docs': row 1, column 'words': expected Int, found String \"many\"");
    let msg = fails_cleanly(&cat, ErrorCode::NotNull, || t.insert([row! {"title" => "x", "draft" => true}]));
    assert_eq!(msg, "table 'app/docs': row 0: column 'words' is required but has no value");
    let msg = fails_cleanly(&cat, ErrorCode::UnknownColumn, || {
        t.insert([row! {"title" => "x", "wrds" => 1, "draft" => true}])
    });
    assert!(msg.contains("row 0: no stored column 'wrds'") && msg.contains("title, words, score, draft"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::TypeMismatch, || {
        t.insert([row! {"title" => "x", "words" => 1, "score" => f64::NAN, "draft" => true}])
    });
    assert!(msg.contains("NaN"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || {
        t.insert([row! {"title" => "x", "title" => "y", "words" => 1, "draft" => true}])
    });
    assert!(msg.contains("given twice"), "{msg}");
}

#[test]
fn values_of_every_type_round_trip() {
    let cat = catalog();
    let schema = Schema::new()
        .required("i", ColumnType::Int)
        .required("f", ColumnType::Float)
        .required("b", ColumnType::Bool)
        .required("s", ColumnType::String)
        .required("ts", ColumnType::Timestamp)
        .required("d", ColumnType::Date)
        .required("j", ColumnType::Json)
        .required("by", ColumnType::Bytes)
        .nullable("n", ColumnType::String);
    let t = cat.create_table("app/all", schema, IfExists::Error).unwrap();
    let json = serde_json::json!({"a": [1, 2, {"b": null}], "é": "ü"});
    // A server's text cannot hold NUL: refused there, stored exactly in a file.
    let text = if crate::on_server(&cat) {
        let nul = row! {"i" => 0, "f" => 0.0, "b" => true, "s" => "a\u{0}b", "ts" => "2024-05-01T12:30:00Z",
        "d" => "2024-02-29", "j" => 1, "by" => vec![0u8]};
        let msg = crate::fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.insert([nul]));
        assert!(msg.contains("NUL"), "{msg}");
        "it's \"quoted\"\nand 日本"
    } else {
        "it's \"quoted\"\n\u{0}and 日本"
    };
    t.insert([row! {
        "i" => i64::MIN, "f" => f64::INFINITY, "b" => true, "s" => text,
        "ts" => "2024-05-01T12:30:00.123456Z", "d" => "2024-02-29", "j" => json.clone(),
        "by" => vec![0u8, 255, 10], "n" => None::<String>,
    }])
    .unwrap();
    let r = &t.select_all().collect().unwrap()[0];
    assert_eq!(r.get::<i64>("i").unwrap(), i64::MIN);
    assert_eq!(r.get::<f64>("f").unwrap(), f64::INFINITY);
    assert!(r.get::<bool>("b").unwrap());
    assert_eq!(r.get::<String>("s").unwrap(), text);
    assert_eq!(
        tabula::format_timestamp(match r.value("ts").unwrap() {
            Value::Timestamp(t) => *t,
            other => panic!("{other:?}"),
        }),
        "2024-05-01T12:30:00.123456Z"
    );
    assert_eq!(r.value("d"), Some(&Value::Date(19782)));
    assert_eq!(r.get::<serde_json::Value>("j").unwrap(), json);
    assert_eq!(r.get::<Vec<u8>>("by").unwrap(), vec![0, 255, 10]);
    assert_eq!(r.get::<Option<String>>("n").unwrap(), None);
    assert_eq!(r.get::<i64>("s").unwrap_err().code(), ErrorCode::TypeMismatch);
}

#[derive(Serialize)]
struct Doc<'a> {
    title: &'a str,
    words: i64,
    score: Option<f64>,
    draft: bool,
}

#[test]
fn insert_records_from_serde_structs() {
    let cat = catalog();
    let t = docs(&cat);
    let done = t
        .insert_records([
            Doc { title: "s1", words: 5, score: Some(1.0), draft: false },
            Doc { title: "s2", words: 6, score: None, draft: true },
        ])
        .unwrap();
    assert_eq!(done.inserted, 2);
    let titles: Vec<String> = t
        .select([col("title")])
        .where_(col("words").lt(10))
        .collect()
        .unwrap()
        .iter()
        .map(|r| r.get("title").unwrap())
        .collect();
    assert_eq!(titles, ["s1", "s2"]);

    #[derive(Serialize)]
    struct Extra {
        title: String,
        words: i64,
        draft: bool,
        colour: String,
    }
    let msg = fails_cleanly(&cat, ErrorCode::UnknownColumn, || {
        t.insert_records([Extra { title: "x".into(), words: 1, draft: true, colour: "red".into() }])
    });
    assert!(msg.contains("no stored column 'colour'"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::Serde, || t.insert_records([3]));
    assert!(msg.contains("must serialize to a struct"), "{msg}");
}

#[test]
fn update_sets_expressions_and_makes_one_version() {
    let cat = catalog();
    let t = docs(&cat);
    let done = t.update([("words", col("words") * 2), ("draft", lit(true))], col("words").ge(20)).unwrap();
    assert_eq!((done.version, done.updated), (Version(2), 2));
    let rows = t.select([col("title"), col("words"), col("draft")]).order_by(col("title")).collect().unwrap();
    let got: Vec<(String, i64, bool)> =
        rows.iter().map(|r| (r.get("title").unwrap(), r.get("words").unwrap(), r.get("draft").unwrap())).collect();
    assert_eq!(got, [("alpha".into(), 10, false), ("beta".into(), 40, true), ("gamma".into(), 60, true)]);
    assert_eq!(t.count().unwrap(), 3, "an update replaces rows, it does not add them");
    let none = t.update([("words", lit(0))], col("title").eq("nobody")).unwrap();
    assert_eq!((none.version, none.updated), (Version(2), 0), "an update matching nothing makes no version");
    let h = t.history().unwrap();
    assert_eq!(h[0].detail, "update words = words * 2, draft = true where words >= 20");
    assert_eq!(h[0].updated, 2);
}

#[test]
fn update_errors_leave_the_table_unchanged() {
    let cat = catalog();
    let t = docs(&cat);
    let msg = fails_cleanly(&cat, ErrorCode::UnknownColumn, || t.update([("nope", lit(1))], lit(true)));
    assert!(msg.contains("no column 'nope'"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::TypeMismatch, || t.update([("words", lit("x"))], lit(true)));
    assert!(msg.contains("column 'words' is Int, but `\"x\"` is String"), "{msg}");
    fails_cleanly(&cat, ErrorCode::NotNull, || t.update([("title", lit(Value::Null))], lit(true)));
    // Null only at run time (score is null in one row): caught after the write, rolled back.
    let msg = fails_cleanly(&cat, ErrorCode::TypeMismatch, || t.update([("words", col("score"))], lit(true)));
    assert!(msg.contains("is Float"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::NotNull, || t.update([("draft", col("score").gt(1.0))], lit(true)));
    assert!(msg.contains("required column 'draft' to null in 1 row"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || t.update([("words", lit(1))], col("words")));
    assert!(msg.contains("is Int, not Bool"), "{msg}");
    fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.update(Vec::<(String, tabula::Expr)>::new(), lit(true)));
}

#[test]
fn delete_counts_and_versions() {
    let cat = catalog();
    let t = docs(&cat);
    let done = t.delete(col("draft")).unwrap();
    assert_eq!((done.version, done.deleted), (Version(2), 1));
    assert_eq!(t.count().unwrap(), 2);
    assert_eq!(t.delete(col("title").eq("zzz")).unwrap().version, Version(2));
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || t.delete(col("title") + 1));
    assert!(msg.contains("expression `title + 1`"), "{msg}");
}

#[test]
fn pinned_versions_read_old_rows_and_refuse_writes() {
    let cat = catalog();
    let t = docs(&cat);
    t.update([("words", lit(0))], lit(true)).unwrap();
    t.delete(col("title").eq("alpha")).unwrap();
    let v1 = cat.get_table("app/docs:1").unwrap();
    let words: Vec<i64> = v1
        .select([col("words")])
        .order_by(col("words"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| r.get("words").unwrap())
        .collect();
    assert_eq!(words, [10, 20, 30]);
    assert_eq!(cat.get_table("app/docs:2").unwrap().count().unwrap(), 3);
    assert_eq!(cat.get_table("app/docs:3").unwrap().count().unwrap(), 2);
    assert_eq!(cat.get_table("app/docs:0").unwrap().count().unwrap(), 0);
    assert_eq!(v1.history().unwrap().len(), 2);
    let msg = fails_cleanly(&cat, ErrorCode::ReadOnly, || v1.delete(lit(true)));
    assert!(msg.contains("'app/docs:1' is a read-only version"), "{msg}");
    assert!(v1.describe().unwrap().to_string().starts_with("table 'app/docs' (version 1, read-only)"));
}

#[test]
fn failing_mid_insert_leaves_no_partial_rows_in_a_file_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let cat = tabula::Catalog::open(dir.path().join("c.db")).unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    let t = docs(&cat);
    let rows = (0..10_000).map(|i| {
        if i == 9_999 {
            row! {"title" => "bad", "words" => "x", "draft" => true}
        } else {
            row! {"title" => format!("t{i}"), "words" => i, "draft" => false}
        }
    });
    let e = t.insert(rows).unwrap_err();
    assert_eq!(e.code(), ErrorCode::TypeMismatch);
    drop(t);
    drop(cat);
    let again = tabula::Catalog::open(dir.path().join("c.db")).unwrap();
    let t = again.get_table("app/docs").unwrap();
    assert_eq!((t.count().unwrap(), t.version().unwrap()), (3, Version(1)));
}

/// Writes whose expressions a server cannot run with Tabula's meaning (`%`, `upper`) are
/// evaluated by Tabula there, a page of rows at a time: over a table of several pages every
/// row is written exactly once, as SQLite runs them in one statement. (A view's own stored
/// column too, whose update reads the rows the view shows a page at a time.)
#[test]
fn writes_evaluated_by_tabula_reach_every_page_of_a_large_table() {
    let cat = catalog();
    let schema = Schema::new().required("k", ColumnType::Int).required("text", ColumnType::String);
    let t = cat.create_table("app/big", schema, IfExists::Error).unwrap();
    let n = 3_100; // three pages of 1,024 rows and part of a fourth
    t.insert((0..n).map(|k| row! {"k" => k, "text" => format!("row {k}")})).unwrap();

    let done = t.delete((col("k") % 3).eq(0)).unwrap();
    assert_eq!(done.deleted, (0..n).filter(|k| k % 3 == 0).count() as u64);
    let done = t.update([("text", col("text").upper())], (col("k") % 2).eq(0)).unwrap();
    assert_eq!(done.updated, (0..n).filter(|k| k % 3 != 0 && k % 2 == 0).count() as u64);

    let view = cat.create_view("app/big_view", &t, col("k").gt(100), IfExists::Error).unwrap();
    view.add_column("note", ColumnType::String, Value::Null, IfExists::Error).unwrap();
    let done = view.update([("note", tabula::concat([col("text").lower(), lit("!")]))], (col("k") % 7).eq(0)).unwrap();
    let noted = |k: i64| k % 3 != 0 && k > 100 && k % 7 == 0;
    assert_eq!(done.updated, (0..n).filter(|k| noted(*k)).count() as u64);

    let mut rows: Vec<(i64, String)> =
        t.select_all().collect().unwrap().iter().map(|r| (r.get("k").unwrap(), r.get("text").unwrap())).collect();
    rows.sort();
    let expected: Vec<(i64, String)> = (0..n)
        .filter(|k| k % 3 != 0)
        .map(|k| (k, if k % 2 == 0 { format!("ROW {k}") } else { format!("row {k}") }))
        .collect();
    assert_eq!(rows, expected);
    let mut notes: Vec<(i64, Option<String>)> =
        view.select_all().collect().unwrap().iter().map(|r| (r.get("k").unwrap(), r.get("note").unwrap())).collect();
    notes.sort();
    let expected: Vec<(i64, Option<String>)> =
        (0..n).filter(|k| k % 3 != 0 && *k > 100).map(|k| (k, noted(k).then(|| format!("row {k}!")))).collect();
    assert_eq!(notes, expected);
    assert_eq!(cat.integrity_check().map_err(|e| e.to_string()), Ok(()));
}
