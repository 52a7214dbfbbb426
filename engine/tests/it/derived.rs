//! Tables made from others: from a query.

use tabula::{col, row, ColumnOptions, ColumnType, ErrorCode, IfExists, Udf};

use crate::{catalog, docs, fails_cleanly};

#[test]
fn a_table_from_a_query_copies_its_rows_and_types_and_then_lives_on_its_own() {
    let cat = catalog();
    let t = docs(&cat);
    let shout = Udf::new("shout", 1, |s: String| s.to_uppercase());
    cat.register(&shout);
    let q = t
        .select([
            col("title"),
            (col("words") * 2).alias("double"),
            shout.call([col("title")]).alias("loud"),
            col("score"),
        ])
        .where_(col("draft").eq(false));
    let copy = cat.create_table_from_query("app/published", &q, IfExists::Error).unwrap();
    let info = copy.describe().unwrap();
    let shape: Vec<(String, ColumnType, bool, bool)> =
        info.columns.iter().map(|c| (c.name.clone(), c.ty, c.nullable, c.computed.is_some())).collect();
    assert_eq!(
        shape,
        [
            ("title".into(), ColumnType::String, false, false),
            ("double".into(), ColumnType::Int, false, false),
            ("loud".into(), ColumnType::String, true, false),
            ("score".into(), ColumnType::Float, true, false),
        ]
    );
    let rows: Vec<(String, i64, String)> = copy
        .select_all()
        .order_by(col("title"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| (r.get("title").unwrap(), r.get("double").unwrap(), r.get("loud").unwrap()))
        .collect();
    assert_eq!(rows, [("alpha".into(), 20, "ALPHA".into()), ("gamma".into(), 60, "GAMMA".into())]);
    // Versions: the table, then its rows.
    assert_eq!(copy.history().unwrap().len(), 2);
    // A copy, not a view: the source moves on without it.
    t.delete(col("title").eq("alpha")).unwrap();
    assert_eq!(copy.count().unwrap(), 2);
    copy.insert([row! { "title" => "new", "double" => 1 }]).unwrap();
    assert_eq!(t.count().unwrap(), 2);
}

#[test]
fn a_table_from_an_old_version_or_a_view() {
    let cat = catalog();
    let t = docs(&cat);
    t.delete(col("words").gt(10)).unwrap();
    let old = cat.get_table("app/docs:1").unwrap();
    let copy = cat.create_table_from_query("app/old", &old.select_all(), IfExists::Error).unwrap();
    assert_eq!(copy.count().unwrap(), 3);
    let view = cat.create_view("app/short", &t, col("words").lt(100), IfExists::Error).unwrap();
    view.add_computed_column("w1", col("words") + 1, ColumnOptions::default()).unwrap();
    let from_view = cat.create_table_from_query("app/from_view", &view.select_all(), IfExists::Error).unwrap();
    let names: Vec<String> = from_view.describe().unwrap().columns.into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["title", "words", "score", "draft", "w1"]);
    assert_eq!(from_view.count().unwrap(), 1);
}

#[test]
fn a_table_from_a_query_refuses_bad_outputs_and_changes_nothing() {
    let cat = catalog();
    let t = docs(&cat);
    let msg = fails_cleanly(&cat, ErrorCode::InvalidName, || {
        cat.create_table_from_query("app/bad", &t.select([col("words") + 1]), IfExists::Error)
    });
    assert!(msg.contains("create table 'app/bad'"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || {
        cat.create_table_from_query("app/docs", &t.select_all(), IfExists::Error)
    });
    assert!(msg.contains("table 'app/docs' already exists"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::UnknownColumn, || {
        cat.create_table_from_query("app/bad", &t.select([col("nope")]), IfExists::Error)
    });
    assert!(msg.contains("from a query"), "{msg}");
}
