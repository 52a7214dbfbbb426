//! Tables made from others: from a query.

use tabula::{col, row, ColumnOptions, ColumnType, ErrorCode, IfExists, Udf, Version};

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

/// `app/long`: the view of `app/docs` with `words >= 20` (beta and gamma at first).
fn long_docs(cat: &tabula::Catalog, t: &tabula::Table) -> tabula::Table {
    cat.create_view("app/long", t, col("words").ge(20), IfExists::Error).unwrap()
}

/// A UDF that fails for more than 15 words.
fn picky() -> Udf {
    Udf::new("picky", 1, |n: i64| if n > 15 { Err("too long".to_string()) } else { Ok(n) })
}

/// The titles of a table's rows, in its order.
fn titles_of(v: &tabula::Table) -> Vec<String> {
    v.select_all().collect().unwrap().iter().map(|r| r.get("title").unwrap()).collect()
}

/// `(title, own column)` of every row of a view, by title.
fn titled(v: &tabula::Table, column: &str) -> Vec<(String, tabula::Value)> {
    v.select([col("title"), col(column)])
        .order_by(col("title"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| (r.get("title").unwrap(), r.value(column).unwrap().clone()))
        .collect()
}

fn counting(name: &'static str) -> (Udf, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = calls.clone();
    let udf = Udf::new(name, 1, move |s: String| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        s.to_uppercase()
    });
    (udf, calls)
}

#[test]
fn a_view_of_a_view_filters_further_reads_its_columns_and_follows_the_base() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    long.add_computed_column("w2", col("words") * 2, ColumnOptions::default()).unwrap();
    // The second level filters on the first level's own column.
    let longer = cat.create_view("app/longer", &long, col("w2").gt(50), IfExists::Error).unwrap();
    let (shout, calls) = counting("shout");
    cat.register(&shout);
    longer.add_computed_column("loud", shout.call([col("title")]), ColumnOptions::default()).unwrap();
    let names: Vec<String> = longer.describe().unwrap().columns.into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["title", "words", "score", "draft", "w2", "loud"]);
    assert_eq!(titled(&longer, "loud"), [("gamma".into(), "GAMMA".into())]);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Inserts reach the second level through the first: only rows that pass both are called.
    t.insert([
        row! { "title" => "delta", "words" => 40, "draft" => false },
        row! { "title" => "eps", "words" => 21, "draft" => false },
    ])
    .unwrap();
    assert_eq!(titled(&longer, "loud"), [("delta".into(), "DELTA".into()), ("gamma".into(), "GAMMA".into())]);
    assert_eq!(titled(&long, "w2").len(), 4);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // An update of a column no view column reads calls nothing again.
    t.update([("score", tabula::lit(9.0))], tabula::lit(true)).unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(titled(&longer, "score"), [("delta".into(), 9.0.into()), ("gamma".into(), 9.0.into())]);
    // An update that moves a row out of the second level, and one in.
    t.update([("words", col("words") + 20)], col("title").eq("eps")).unwrap();
    t.update([("words", tabula::lit(1))], col("title").eq("gamma")).unwrap();
    assert_eq!(titled(&longer, "loud"), [("delta".into(), "DELTA".into()), ("eps".into(), "EPS".into())]);
    // A revert of the base reaches both levels.
    t.revert().unwrap();
    assert_eq!(titled(&longer, "loud").len(), 3);
    assert_eq!(titled(&long, "w2")[3], ("gamma".into(), 60.into()));
    cat.integrity_check().unwrap();
}

#[test]
fn what_a_view_of_a_view_reads_cannot_be_dropped_under_it() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    long.add_computed_column("w2", col("words") * 2, ColumnOptions::default()).unwrap();
    let longer = cat.create_view("app/longer", &long, col("w2").gt(50), IfExists::Error).unwrap();
    longer.add_computed_column("s", col("score") + 1.0, ColumnOptions::default()).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::HasDependents, || long.drop_column("w2"));
    assert!(msg.contains("'app/longer'"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::HasDependents, || {
        long.add_computed_column("w2", col("words") * 3, ColumnOptions::if_exists(IfExists::Replace))
    });
    assert!(msg.contains("'app/longer'"), "{msg}");
    // A base column the second level reads.
    let msg = fails_cleanly(&cat, ErrorCode::HasDependents, || t.drop_column("score"));
    assert!(msg.contains("'app/longer'"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::HasDependents, || cat.drop_table("app/long", tabula::Force::No));
    assert!(msg.contains("'app/longer'"), "{msg}");
    // A view changes only its own columns; it can drop and rename those.
    let msg = fails_cleanly(&cat, ErrorCode::ReadOnly, || longer.drop_column("w2"));
    assert!(msg.contains("column 'w2' of view 'app/longer' is read from the table or view it is made of"), "{msg}");
    longer.rename_column("s", "s1").unwrap();
    longer.drop_column("s1").unwrap();
    long.drop_column("w2").unwrap_err();
    assert_eq!(longer.describe().unwrap().columns.len(), 5);
    cat.drop_table("app/docs", tabula::Force::Yes).unwrap();
    assert!(cat.list_tables("app", tabula::Recursive::Yes).unwrap().is_empty());
    cat.integrity_check().unwrap();
}

#[test]
fn a_view_of_a_snapshot_never_changes_and_keeps_its_values_when_the_snapshot_takes_its_rows() {
    let cat = catalog();
    let t = docs(&cat);
    let snap = cat.create_snapshot("app/snap", &t, IfExists::Error).unwrap();
    let (shout, calls) = counting("shout");
    cat.register(&shout);
    let v = cat.create_view("app/snapview", &snap, col("words").gt(10), IfExists::Error).unwrap();
    v.add_computed_column("loud", shout.call([col("title")]), ColumnOptions::default()).unwrap();
    let want: Vec<(String, tabula::Value)> = vec![("beta".into(), "BETA".into()), ("gamma".into(), "GAMMA".into())];
    assert_eq!(titled(&v, "loud"), want);
    t.insert([row! { "title" => "delta", "words" => 40, "draft" => false }]).unwrap();
    t.update([("words", tabula::lit(0))], tabula::lit(true)).unwrap();
    assert_eq!(titled(&v, "loud"), want);
    // Reverting the base past the snapshot makes it copy its rows; the view keeps its values
    // without calling its UDF again.
    t.revert_to(Version(0)).unwrap();
    assert_eq!(t.count().unwrap(), 0);
    assert_eq!(titled(&v, "loud"), want);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The view is read-only, like its snapshot.
    assert_eq!(v.insert([row! { "title" => "x" }]).unwrap_err().code(), ErrorCode::ReadOnly);
    cat.integrity_check().unwrap();
}

#[test]
fn a_stream_of_a_view_of_a_view_reads_the_base_as_it_was_when_it_started() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    let longer = cat.create_view("app/longer", &long, col("draft").eq(false), IfExists::Error).unwrap();
    let stream = longer.select([col("title")]).stream().unwrap();
    t.insert([row! { "title" => "delta", "words" => 40, "draft" => false }]).unwrap();
    let titles: Vec<String> = stream.map(|r| r.unwrap().get("title").unwrap()).collect();
    assert_eq!(titles, ["gamma"]);
    assert_eq!(longer.count().unwrap(), 2);
}

#[test]
fn a_view_gets_a_version_when_its_rows_or_columns_change_and_reads_as_it_was() {
    use tabula::ChangeKind;
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    let (shout, calls) = counting("shout");
    cat.register(&shout);
    long.add_computed_column("loud", shout.call([col("title")]), ColumnOptions::default()).unwrap();
    assert_eq!(long.version().unwrap(), Version(1));
    // A row the view does not show: the base moves, the view does not.
    t.insert([row! { "title" => "tiny", "words" => 1, "draft" => false }]).unwrap();
    assert_eq!(long.version().unwrap(), Version(1));
    // One row in, one changed, one out, by one update: one version, counted by row.
    t.update([("words", col("words") + 10)], col("title").ne("beta")).unwrap();
    let last = &long.history().unwrap()[0];
    assert_eq!((last.version, last.change), (Version(2), ChangeKind::Update));
    assert_eq!((last.inserted, last.updated, last.deleted), (1, 1, 0), "{}", last.detail);
    assert!(last.detail.starts_with("follow 'app/docs' version 3: update"), "{}", last.detail);
    t.delete(col("title").eq("beta")).unwrap();
    let last = &long.history().unwrap()[0];
    assert_eq!((last.version, last.inserted, last.updated, last.deleted), (Version(3), 0, 0, 1));
    // A base column added: every view shows it, so every view follows.
    t.add_column("lang", ColumnType::String, "en", IfExists::Error).unwrap();
    assert_eq!(long.version().unwrap(), Version(4));
    // Each version reads as it was: rows, own values, columns.
    let at = |v: u64| cat.get_table(format!("app/long:{v}")).unwrap();
    assert_eq!(titled(&at(1), "loud"), [("beta".into(), "BETA".into()), ("gamma".into(), "GAMMA".into())]);
    assert_eq!(
        titled(&at(2), "words"),
        [("alpha".into(), 20.into()), ("beta".into(), 20.into()), ("gamma".into(), 40.into())]
    );
    assert_eq!(titled(&at(3), "loud"), [("alpha".into(), "ALPHA".into()), ("gamma".into(), "GAMMA".into())]);
    assert!(at(3).select([col("lang")]).collect().is_err(), "version 3 has no lang column");
    assert_eq!(at(4).select([col("lang")]).collect().unwrap().len(), 2);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3, "reading old versions calls nothing");
    // An old version is read-only.
    assert_eq!(at(2).drop_column("loud").unwrap_err().code(), ErrorCode::ReadOnly);
    // A revert of the base takes the view's version away; numbers are not reused.
    t.revert().unwrap();
    assert_eq!(long.version().unwrap(), Version(3));
    assert_eq!(cat.get_table("app/long:4").unwrap_err().code(), ErrorCode::NotFound);
    t.insert([row! { "title" => "zeta", "words" => 99, "draft" => false }]).unwrap();
    assert_eq!(long.version().unwrap(), Version(5));
    cat.integrity_check().unwrap();
}

#[test]
fn a_view_of_a_view_follows_its_base_view() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    let longer = cat.create_view("app/longer", &long, col("words").ge(30), IfExists::Error).unwrap();
    t.insert([row! { "title" => "mid", "words" => 25, "draft" => false }]).unwrap();
    assert_eq!((long.version().unwrap(), longer.version().unwrap()), (Version(1), Version(0)));
    t.insert([row! { "title" => "big", "words" => 35, "draft" => false }]).unwrap();
    assert_eq!((long.version().unwrap(), longer.version().unwrap()), (Version(2), Version(1)));
    let last = &longer.history().unwrap()[0];
    assert!(last.detail.starts_with("follow 'app/long' version 2: insert"), "{}", last.detail);
    assert_eq!(cat.get_table("app/longer:0").unwrap().count().unwrap(), 1);
    assert_eq!(cat.get_table("app/longer:1").unwrap().count().unwrap(), 2);
    t.revert().unwrap();
    assert_eq!((long.version().unwrap(), longer.version().unwrap()), (Version(1), Version(0)));
}

#[test]
fn a_snapshot_of_a_view_keeps_its_rows_and_values_through_base_changes_reverts_and_compaction() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    let (shout, calls) = counting("shout");
    cat.register(&shout);
    long.add_computed_column("loud", shout.call([col("title")]), ColumnOptions::default()).unwrap();
    let snap = cat.create_snapshot("app/long_then", &long, IfExists::Error).unwrap();
    let want: Vec<(String, tabula::Value)> = vec![("beta".into(), "BETA".into()), ("gamma".into(), "GAMMA".into())];
    assert_eq!(titled(&snap, "loud"), want);
    t.insert([row! { "title" => "delta", "words" => 40, "draft" => false }]).unwrap();
    t.update([("title", tabula::lit("renamed"))], col("title").eq("gamma")).unwrap();
    assert_eq!(titled(&snap, "loud"), want);
    assert_eq!(snap.insert([row! { "title" => "x" }]).unwrap_err().code(), ErrorCode::ReadOnly);
    // Compaction forgets the versions the snapshot read: it copies its rows first.
    t.compact(tabula::Retention::keep_versions(1)).unwrap();
    assert_eq!(titled(&snap, "loud"), want);
    // And a revert of everything leaves it as it was.
    let fresh = cat.create_snapshot("app/long_now", &long, IfExists::Error).unwrap();
    t.revert_to(t.version().unwrap()).unwrap();
    assert_eq!(titled(&fresh, "loud").len(), 3);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4);
    cat.integrity_check().unwrap();
}

#[test]
fn a_snapshot_of_a_view_takes_its_rows_before_a_base_revert_removes_them() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    long.add_computed_column("w2", col("words") * 2, ColumnOptions::default()).unwrap();
    t.insert([row! { "title" => "delta", "words" => 40, "draft" => false }]).unwrap();
    let snap = cat.create_snapshot("app/snap", &long, IfExists::Error).unwrap();
    let before = titled(&snap, "w2");
    assert_eq!(before.len(), 3);
    t.revert().unwrap();
    assert_eq!(long.count().unwrap(), 2);
    assert_eq!(titled(&snap, "w2"), before);
    cat.integrity_check().unwrap();
}

#[test]
fn an_update_calls_a_view_udf_once_a_row_whether_the_row_enters_the_view_or_stays() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    let (shout, calls) = counting("shout");
    cat.register(&shout);
    long.add_computed_column("loud", shout.call([col("title")]), ColumnOptions::default()).unwrap();
    long.add_computed_column("open", !col("draft"), ColumnOptions::default()).unwrap();
    let before = calls.load(std::sync::atomic::Ordering::SeqCst);
    // alpha enters the view with a new title; gamma stays in it with a new title.
    t.update([("title", col("title").upper())], col("title").eq("gamma")).unwrap();
    t.update([("title", tabula::lit("ALPHA")), ("words", tabula::lit(99))], col("title").eq("alpha")).unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst) - before, 2);
    assert_eq!(
        titled(&long, "loud"),
        [("ALPHA".into(), "ALPHA".into()), ("GAMMA".into(), "GAMMA".into()), ("beta".into(), "BETA".into())]
    );
}

#[test]
fn a_view_version_that_showed_a_reverted_base_version_shows_what_the_base_shows_now() {
    let cat = catalog();
    let t = docs(&cat);
    t.insert([row! { "title" => "delta", "words" => 40, "draft" => false }]).unwrap();
    let long = long_docs(&cat, &t);
    cat.create_view("app/longer", &long, col("words").ge(30), IfExists::Error).unwrap();
    t.revert().unwrap();
    for path in ["app/long:0", "app/longer:0"] {
        let pinned = cat.get_table(path).unwrap();
        let current = cat.get_table(path.trim_end_matches(":0")).unwrap();
        assert_eq!(titled(&pinned, "words"), titled(&current, "words"), "{path}");
    }
    assert_eq!(titled(&cat.get_table("app/longer:0").unwrap(), "words"), [("gamma".into(), 30.into())]);
}

#[test]
fn a_snapshot_of_a_filtered_query_with_extra_columns_is_computed_once_and_never_changes() {
    let cat = catalog();
    let t = docs(&cat);
    let (shout, calls) = counting("shout");
    cat.register(&shout);
    let q = t.select_all().where_(col("draft").eq(false));
    let snap = cat
        .create_snapshot_of(
            "app/published",
            &q,
            [("loud", shout.call([col("title")])), ("loud_len", col("loud").length())],
            IfExists::Error,
        )
        .unwrap();
    assert_eq!(snap.kind().unwrap(), tabula::TableKind::Snapshot);
    assert_eq!(titled(&snap, "loud"), [("alpha".into(), "ALPHA".into()), ("gamma".into(), "GAMMA".into())]);
    assert_eq!(titled(&snap, "loud_len")[0].1, 5.into());
    let info = snap.describe().unwrap();
    assert_eq!(info.columns.iter().filter(|c| c.computed.is_some()).count(), 2);
    assert_eq!(snap.history().unwrap().len(), 1);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Nothing that happens to the table changes it; it cannot be written.
    t.delete(tabula::lit(true)).unwrap();
    t.revert_to(Version(0)).unwrap();
    cat.compact(tabula::Retention::keep_versions(1)).unwrap();
    assert_eq!(titled(&snap, "loud").len(), 2);
    assert_eq!(snap.insert([row! { "title" => "x" }]).unwrap_err().code(), ErrorCode::ReadOnly);
    assert_eq!(snap.revert().unwrap_err().code(), ErrorCode::ReadOnly);
    // Ignore keeps only the same definition.
    let again = || t.select_all().where_(col("draft").eq(false));
    cat.create_snapshot_of(
        "app/published",
        &again(),
        [("loud", shout.call([col("title")])), ("loud_len", col("loud").length())],
        IfExists::Ignore,
    )
    .unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || {
        cat.create_snapshot_of("app/published", &again(), [("other", col("words") + 1)], IfExists::Ignore)
    });
    assert!(msg.contains("IfExists::Ignore keeps only a snapshot with the same columns"), "{msg}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    cat.integrity_check().unwrap();
}

#[test]
fn a_snapshot_of_a_query_fails_whole_when_a_column_fails() {
    let cat = catalog();
    let t = docs(&cat);
    let picky = picky();
    cat.register(&picky);
    let msg = fails_cleanly(&cat, ErrorCode::UdfFailed, || {
        cat.create_snapshot_of("app/s", &t.select_all(), [("p", picky.call([col("words")]))], IfExists::Error)
    });
    assert!(msg.contains("too long"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::UnknownColumn, || {
        cat.create_snapshot_of("app/s", &t.select_all(), [("p", col("nope") + 1)], IfExists::Error)
    });
    assert!(msg.contains("create snapshot 'app/s' of a query"), "{msg}");
}

#[test]
fn a_format_3_catalog_with_a_view_becomes_format_4_at_its_first_view_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cat.db");
    crate::format_4_file(&path);
    {
        let cat = tabula::Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        let t = docs(&cat);
        cat.create_view("app/long", &t, col("words").ge(20), IfExists::Error).unwrap();
    }
    // What a format 3 file looks like: no record of what view versions show.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE _tabula_follows; UPDATE _tabula_meta SET value = '3' WHERE key = 'format_version'")
        .unwrap();
    drop(conn);
    let cat = tabula::Catalog::open(&path).unwrap();
    assert_eq!(cat.format_version().unwrap(), 3);
    let t = cat.get_table("app/docs").unwrap();
    let long = cat.get_table("app/long").unwrap();
    assert_eq!(long.count().unwrap(), 2);
    let e = cat.get_table("app/long:0").unwrap().count().unwrap_err();
    assert!(e.to_string().contains("does not record the version of its base"), "{e}");
    t.insert([row! { "title" => "delta", "words" => 40, "draft" => false }]).unwrap();
    assert_eq!(cat.format_version().unwrap(), 4);
    assert_eq!(cat.get_table("app/long:1").unwrap().count().unwrap(), 3);
    cat.integrity_check().unwrap();
}

#[test]
fn a_view_keeps_its_own_stored_values_by_row_through_base_changes_versions_and_reverts() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    long.add_column("note", ColumnType::String, tabula::Value::Null, IfExists::Error).unwrap();
    let before = long.version().unwrap();
    let w = long.update([("note", tabula::lit("check"))], col("title").eq("beta")).unwrap();
    assert_eq!((w.updated, w.change), (1, Some(tabula::ChangeKind::Update)));
    let notes = |v: &tabula::Table| titled(v, "note");
    assert_eq!(notes(&long), [("beta".into(), "check".into()), ("gamma".into(), tabula::Value::Null)]);
    // Expressions over the view's columns, the stored column's own value included (on a
    // server, evaluated by Tabula: it cannot run Tabula's functions), and a condition that
    // is one too.
    let append = [("note", tabula::concat([col("note"), tabula::lit("ed")]))];
    let w = long.update(append, col("note").is_not_null().and(col("title").length().gt(3))).unwrap();
    assert_eq!(w.updated, 1);
    assert_eq!(notes(&long), [("beta".into(), "checked".into()), ("gamma".into(), tabula::Value::Null)]);
    let w = long.update([("note", col("title").upper())], col("title").length().gt(4)).unwrap();
    assert_eq!(w.updated, 1, "gamma only");
    assert_eq!(notes(&long)[1], ("gamma".into(), "GAMMA".into()));
    long.revert().unwrap();
    assert_eq!(notes(&long)[0].1, "checked".into());
    // The value belongs to the row: a base update (a new row version), leaving the view
    // and coming back keep it.
    t.update([("words", tabula::lit(5))], col("title").eq("beta")).unwrap();
    assert_eq!(notes(&long).len(), 1);
    t.update([("words", tabula::lit(25))], col("title").eq("beta")).unwrap();
    assert_eq!(notes(&long)[0], ("beta".into(), "checked".into()));
    // Older versions read the values they had.
    let at = |v: u64| cat.get_table(format!("app/long:{v}")).unwrap();
    assert_eq!(notes(&at(before.0))[0].1, tabula::Value::Null);
    assert_eq!(notes(&at(before.0 + 1))[0].1, "check".into());
    // A snapshot of the view keeps them.
    let snap = cat.create_snapshot("app/snap", &long, IfExists::Error).unwrap();
    long.update([("note", tabula::lit("later"))], tabula::lit(true)).unwrap();
    assert_eq!(notes(&snap)[0], ("beta".into(), "checked".into()));
    // A revert of the view's update brings the old values back.
    long.revert().unwrap();
    assert_eq!(notes(&long), [("beta".into(), "checked".into()), ("gamma".into(), tabula::Value::Null)]);
    cat.integrity_check().unwrap();
    cat.drop_table("app/long", tabula::Force::Yes).unwrap();
    cat.integrity_check().unwrap();
}

#[test]
fn a_view_of_a_view_shows_and_follows_its_stored_values() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    long.add_column("note", ColumnType::String, tabula::Value::Null, IfExists::Error).unwrap();
    let longer = cat.create_view("app/longer", &long, col("words").ge(30), IfExists::Error).unwrap();
    let v = longer.version().unwrap();
    // Every update of the first level's stored values is a version of the second (a revert
    // of the table may bring rows the second level does not show now back into it).
    long.update([("note", tabula::lit("x"))], col("title").eq("beta")).unwrap();
    let last = &longer.history().unwrap()[0];
    assert_eq!((last.version, last.updated), (Version(v.0 + 1), 0), "beta is not in the second level");
    long.update([("note", tabula::lit("y"))], col("title").eq("gamma")).unwrap();
    let last = &longer.history().unwrap()[0];
    assert_eq!((last.version, last.updated), (Version(v.0 + 2), 1));
    assert_eq!(titled(&longer, "note"), [("gamma".into(), "y".into())]);
    assert_eq!(titled(&cat.get_table(format!("app/longer:{}", v.0 + 1)).unwrap(), "note")[0].1, tabula::Value::Null);
    long.revert().unwrap();
    assert_eq!(longer.version().unwrap(), Version(v.0 + 1));
    assert_eq!(titled(&longer, "note"), [("gamma".into(), tabula::Value::Null)]);
    // A view's schema change reaches the views of it too.
    long.add_computed_column("w2", col("words") * 2, ColumnOptions::default()).unwrap();
    assert_eq!(longer.version().unwrap(), Version(v.0 + 3));
    assert!(cat.get_table(format!("app/longer:{}", v.0)).unwrap().select([col("w2")]).collect().is_err());
    assert_eq!(longer.select([col("w2")]).collect().unwrap().len(), 1);
}

#[test]
fn what_a_view_refuses_about_its_stored_columns() {
    let cat = catalog();
    let t = docs(&cat);
    let long = long_docs(&cat, &t);
    long.add_column("note", ColumnType::String, tabula::Value::Null, IfExists::Error).unwrap();
    let msg =
        fails_cleanly(&cat, ErrorCode::InvalidArgument, || long.add_column("n", ColumnType::Int, 0, IfExists::Error));
    assert!(msg.contains("starts null in every row"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::ReadOnly, || long.update([("words", tabula::lit(1))], tabula::lit(true)));
    assert!(msg.contains("'words' is its base's: write to the base instead"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || {
        long.add_computed_column("loud", col("note").upper(), ColumnOptions::default())
    });
    assert!(msg.contains("reads 'note', a stored column of a view"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || {
        cat.create_view("app/noted", &long, col("note").is_not_null(), IfExists::Error)
    });
    assert!(msg.contains("the filter of view 'app/noted' reads 'note'"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::ReadOnly, || {
        long.add_column("title", ColumnType::String, tabula::Value::Null, IfExists::Replace)
    });
    assert!(msg.contains("read from the table or view it is made of"), "{msg}");
    let v = long.version().unwrap();
    assert_eq!(long.update([("note", tabula::lit("z"))], col("title").eq("nobody")).unwrap().version, v);
}

#[test]
fn bad_outputs_views_and_view_updates_are_refused_naming_the_fix() {
    let cat = catalog();
    let t = docs(&cat);
    // A query output or an additional column without a type (a bare null).
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || {
        cat.create_table_from_query(
            "app/n",
            &t.select([tabula::lit(tabula::Value::Null).alias("nothing")]),
            IfExists::Error,
        )
    });
    assert!(msg.contains("the output 'nothing' has no type"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || {
        cat.create_snapshot_of(
            "app/n",
            &t.select_all(),
            [("nothing", tabula::lit(tabula::Value::Null))],
            IfExists::Error,
        )
    });
    assert!(msg.contains("column 'nothing'") && msg.contains("cast it"), "{msg}");
    // A view of a table version: make a snapshot first.
    let old = cat.get_table("app/docs:1").unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || {
        cat.create_view("app/v", &old, tabula::lit(true), IfExists::Error)
    });
    assert!(msg.contains("make a snapshot of it"), "{msg}");
    // Updates on a view set only its own stored columns, each once.
    let long = long_docs(&cat, &t);
    long.add_computed_column("w2", col("words") * 2, ColumnOptions::default()).unwrap();
    long.add_column("note", ColumnType::String, tabula::Value::Null, IfExists::Error).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::ReadOnly, || long.update([("w2", tabula::lit(1))], tabula::lit(true)));
    assert!(msg.contains("'w2' is computed"), "{msg}");
    let msg =
        fails_cleanly(&cat, ErrorCode::UnknownColumn, || long.update([("nope", tabula::lit(1))], tabula::lit(true)));
    assert!(msg.contains("no column 'nope'"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || {
        long.update([("note", tabula::lit("a")), ("note", tabula::lit("b"))], tabula::lit(true))
    });
    assert!(msg.contains("column 'note' is set twice"), "{msg}");
}

#[test]
fn views_nest_at_most_31_deep_and_the_deepest_reads_every_level() {
    // SQLite joins at most 64 tables: the root and two a level (computed, stored columns).
    let cat = catalog();
    let mut base = docs(&cat);
    for level in 1..=31 {
        base = cat.create_view(format!("app/v{level}"), &base, tabula::lit(true), IfExists::Error).unwrap();
        base.add_computed_column(&format!("k{level}"), col("words") + level, ColumnOptions::default()).unwrap();
        base.add_column(&format!("n{level}"), ColumnType::Int, tabula::Value::Null, IfExists::Error).unwrap();
    }
    base.update([("n31", tabula::lit(7))], col("title").eq("alpha")).unwrap();
    assert_eq!(titled(&base, "k31")[0], ("alpha".into(), 41.into()));
    assert_eq!(titled(&base, "n31")[0], ("alpha".into(), 7.into()));
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || {
        cat.create_view("app/v32", &base, tabula::lit(true), IfExists::Error)
    });
    assert!(msg.contains("at most 31 levels"), "{msg}");
}

#[test]
fn a_snapshot_of_a_query_is_replaced_on_request() {
    let cat = catalog();
    let t = docs(&cat);
    cat.create_snapshot_of("app/s", &t.select_all(), [("w1", col("words") + 1)], IfExists::Error).unwrap();
    t.delete(col("words").gt(10)).unwrap();
    let s = cat.create_snapshot_of("app/s", &t.select_all(), [("w1", col("words") + 1)], IfExists::Replace).unwrap();
    assert_eq!(s.count().unwrap(), 1);
}

/// A view's filter may use anything Tabula computes without a UDF, on every backend. Here
/// `upper` (Rust's: "straße" is "STRASSE"; a server's `upper` keeps "ß") and Float
/// arithmetic (a server fails on an overflow where Tabula gives infinity): on a server Tabula
/// evaluates such a filter itself, for every read that runs it (rows, counts, ordered reads,
/// streams over many pages, the view's computed columns, what follows a change of the base,
/// updates of its stored values, a snapshot of it kept after its base is reverted). Every
/// answer is checked against rows computed here from the data.
#[test]
fn a_view_filter_only_tabula_computes_shows_the_same_rows_on_every_backend() {
    let cat = catalog();
    let shape = tabula::Schema::new()
        .required("k", ColumnType::Int)
        .required("name", ColumnType::String)
        .required("x", ColumnType::Float);
    let t = cat.create_table("app/t", shape, IfExists::Error).unwrap();
    let names = ["straße", "alpha", "ÉMILE", "émile", "beta", "Strasse", "gamma"];
    // A stretch of 67,000 rows the filter rejects: a page read after it tests several
    // windows of rows to find its rows, and a read of all of them does too.
    let make = |k: i64| match (1000..68_000).contains(&k) {
        true => (k, "gamma".to_string(), 0.0),
        false => (k, names[k.rem_euclid(7) as usize].to_string(), (k.rem_euclid(11) - 3) as f64),
    };
    let mut rows: Vec<(i64, String, f64)> = (0..70_000).map(make).collect();
    rows.push((70_000, "huge".into(), f64::MAX));
    t.insert(rows.iter().map(|(k, n, x)| row! {"k" => *k, "name" => n.as_str(), "x" => *x})).unwrap();
    let shows = |(_, n, x): &(i64, String, f64)| n.to_uppercase() == "STRASSE" || x * 1.5 > 9.0;
    let filter = col("name").upper().eq("STRASSE").or((col("x") * 1.5).gt(9.0));
    let v = cat.create_view("app/v", &t, filter.clone(), IfExists::Error).unwrap();
    let keys = |q: tabula::Query| -> Vec<i64> { q.collect().unwrap().iter().map(|r| r.get("k").unwrap()).collect() };
    let want = |rows: &[(i64, String, f64)]| -> Vec<i64> { rows.iter().filter(|r| shows(r)).map(|r| r.0).collect() };
    let shown = want(&rows);
    assert!(shown.contains(&0) && shown.contains(&5) && shown.contains(&70_000) && !shown.contains(&1));
    assert_eq!(keys(v.select_all()), shown);
    assert_eq!(v.count().unwrap(), shown.len() as u64);
    let last_two = v.select_all().offset(shown.len() as u64 - 2).limit(5);
    assert_eq!((last_two.count().unwrap(), v.select_all().offset(3).limit(5).count().unwrap()), (2, 5));
    assert_eq!(keys(t.select_all().where_(filter.clone())), shown, "the table's filter agrees");
    let top: Vec<i64> = shown.iter().rev().take(3).copied().collect();
    assert_eq!(keys(v.select_all().order_by_desc(col("k")).limit(3)), top);
    assert_eq!(
        v.select_all().where_(col("k").lt(100)).count().unwrap(),
        shown.iter().filter(|k| **k < 100).count() as u64
    );
    let streamed: Vec<i64> = v.select([col("k")]).stream().unwrap().map(|r| r.unwrap().get("k").unwrap()).collect();
    assert_eq!(streamed, shown, "a stream of {} rows in pages", shown.len());
    let late = v.select([col("k")]).where_(col("k").ge(500)).stream().unwrap();
    let late: Vec<i64> = late.map(|r| r.unwrap().get("k").unwrap()).collect();
    assert_eq!(late, shown.iter().filter(|k| **k >= 500).copied().collect::<Vec<_>>());
    // The view's own computed columns: a builtin and a UDF.
    let twice = Udf::new("twice", 1, |n: i64| n * 2);
    cat.register(&twice);
    v.add_computed_column("k3", col("k") * 3, ColumnOptions::default()).unwrap();
    v.add_computed_column("k2", twice.call([col("k")]), ColumnOptions::default()).unwrap();
    let computed: Vec<(i64, i64, i64)> = v
        .select([col("k"), col("k3"), col("k2")])
        .collect()
        .unwrap()
        .iter()
        .map(|r| (r.get("k").unwrap(), r.get("k3").unwrap(), r.get("k2").unwrap()))
        .collect();
    assert_eq!(computed, shown.iter().map(|k| (*k, 3 * k, 2 * k)).collect::<Vec<_>>());
    // Changes of the base: rows enter and leave, each counted in the view's history.
    let added: Vec<(i64, String, f64)> = (70_001..70_015).map(make).collect();
    t.insert(added.iter().map(|(k, n, x)| row! {"k" => *k, "name" => n.as_str(), "x" => *x})).unwrap();
    let last = &v.history().unwrap()[0];
    assert_eq!((last.inserted, last.updated, last.deleted), (want(&added).len() as u64, 0, 0));
    rows.extend(added);
    t.update([("name", tabula::lit("STRAßE"))], col("k").lt(14)).unwrap();
    let before: Vec<bool> = rows[..14].iter().map(shows).collect();
    // Updated rows are written again: they come after the others.
    let mut updated: Vec<(i64, String, f64)> = rows.drain(..14).collect();
    for r in &mut updated {
        r.1 = "STRAßE".into();
    }
    rows.extend(updated);
    let last = &v.history().unwrap()[0];
    let entered = before.iter().filter(|b| !**b).count() as u64;
    assert_eq!((last.inserted, last.updated, last.deleted), (entered, 14 - entered, 0));
    let (n_before, snap_at) = (want(&rows).len(), v.history().unwrap()[0].version);
    let s = cat.create_snapshot("app/s", &v, IfExists::Error).unwrap();
    t.delete(col("name").eq("Strasse")).unwrap();
    let gone = rows.iter().filter(|r| r.1 == "Strasse").count() as u64;
    let last = &v.history().unwrap()[0];
    assert_eq!((last.inserted, last.updated, last.deleted), (0, 0, gone));
    rows.retain(|r| r.1 != "Strasse");
    assert_eq!(keys(v.select_all()), want(&rows));
    assert!(v.history().unwrap()[0].version > snap_at);
    // The view's stored values, set on the rows it shows where a condition holds.
    v.add_column("note", ColumnType::String, tabula::Value::Null, IfExists::Error).unwrap();
    let n = v.update([("note", col("name").lower())], col("k").lt(300)).unwrap().updated;
    assert_eq!(n, want(&rows).iter().filter(|k| **k < 300).count() as u64);
    let noted: Vec<Option<String>> = v
        .select([col("note")])
        .where_(col("k").eq(0))
        .collect()
        .unwrap()
        .iter()
        .map(|r| r.get("note").unwrap())
        .collect();
    assert_eq!(noted, [Some("straße".to_string())]);
    // A snapshot of the view keeps its rows when the base is reverted past it.
    t.revert().unwrap();
    t.revert().unwrap();
    t.revert().unwrap();
    assert_eq!(s.count().unwrap(), n_before as u64);
    assert_eq!(keys(s.select_all()).len(), n_before);
    assert_eq!(keys(v.select_all()), shown, "the view shows the base as first inserted");
}

/// A view of a view may filter, through what only Tabula computes, on the first view's own
/// computed column (kept in that view's table, joined by row identity): the same rows on
/// every backend, as the base changes.
#[test]
fn a_view_of_a_view_filters_on_its_computed_column_through_tabulas_functions() {
    let cat = catalog();
    let t = docs(&cat);
    let v = cat.create_view("app/v", &t, !col("draft"), IfExists::Error).unwrap();
    v.add_computed_column("loud", col("title").upper(), ColumnOptions::default()).unwrap();
    let w = cat
        .create_view("app/w", &v, col("loud").lower().cast(ColumnType::String).ne("alpha"), IfExists::Error)
        .unwrap();
    assert_eq!(titles_of(&w), ["gamma"]);
    t.insert([
        row! { "title" => "delta", "words" => 4, "score" => 1.0, "draft" => false },
        row! { "title" => "Alpha", "words" => 4, "score" => 1.0, "draft" => false },
    ])
    .unwrap();
    assert_eq!(titles_of(&w), ["gamma", "delta"]);
    assert_eq!(w.count().unwrap(), 2);
    t.update([("draft", tabula::lit(true))], col("title").eq("gamma")).unwrap();
    assert_eq!(titles_of(&w), ["delta"]);
    assert_eq!(w.history().unwrap()[0].deleted, 1);
}

/// A view filter may read a computed column's error slot (`errormsg`, `errortype`) next to a
/// function a server cannot run: there the server reads the slot's parts and Tabula
/// evaluates the rest. The same rows on every backend, as the rows enter and leave.
#[test]
fn a_view_filter_reading_error_slots_and_tabulas_functions_works_on_every_backend() {
    let cat = catalog();
    let t = docs(&cat);
    let picky = picky();
    cat.register(&picky);
    let ignore = ColumnOptions { on_error: tabula::OnError::Ignore, ..Default::default() };
    t.add_computed_column("p", picky.call([col("words")]), ignore).unwrap();
    let failed = col("p").errormsg().upper().eq("TOO LONG").and(col("title").upper().ne("BETA"));
    let v = cat.create_view("app/failed", &t, failed, IfExists::Error).unwrap();
    assert_eq!(titles_of(&v), ["gamma"]);
    let kinds = col("p").errortype().is_not_null().and(col("title").upper().starts_with("DEL"));
    let w = cat.create_view("app/kinds", &t, kinds, IfExists::Error).unwrap();
    assert!(titles_of(&w).is_empty());
    t.insert([
        row! { "title" => "delta", "words" => 40, "score" => 1.0, "draft" => false },
        row! { "title" => "Delphi", "words" => 5, "score" => 1.0, "draft" => false },
    ])
    .unwrap();
    assert_eq!(titles_of(&v), ["gamma", "delta"]);
    assert_eq!(titles_of(&w), ["delta"], "Delphi's cell did not fail");
    t.update([("words", tabula::lit(1))], col("title").eq("gamma")).unwrap();
    assert_eq!(titles_of(&v), ["delta"], "gamma's cell no longer fails");
    assert_eq!(v.history().unwrap()[0].deleted, 1);
}

/// A sample view (`k % n = r`, the usual way to keep a part of a table) is made on every
/// backend and shows the same rows: a server runs Int `%` itself with Tabula's meaning,
/// Rust's `checked_rem` (a zero divisor and `i64::MIN % -1` give null, which no row
/// matches; the sign follows the dividend). The view's computed column, count and stream,
/// a row entering it, and the table's filters, counts, computed column and delete by a
/// remainder agree with the same rows computed here.
#[test]
fn sample_views_by_remainder_show_the_same_rows_on_every_backend() {
    let cat = catalog();
    let shape = tabula::Schema::new().required("k", ColumnType::Int).nullable("d", ColumnType::Int);
    let t = cat.create_table("app/t", shape, IfExists::Error).unwrap();
    let divisor = |k: i64| [Some(0), Some(-1), None, Some(3)][k.rem_euclid(4) as usize];
    let mut rows: Vec<(i64, Option<i64>)> = (-20..20).map(|k| (k, divisor(k))).collect();
    rows.extend([(i64::MIN, Some(-1)), (i64::MAX, Some(3))]);
    t.insert(rows.iter().map(|(k, d)| row! {"k" => *k, "d" => *d})).unwrap();
    let keys = |q: tabula::Query| -> Vec<i64> { q.collect().unwrap().iter().map(|r| r.get("k").unwrap()).collect() };
    let sample = cat.create_view("app/sample", &t, (col("k") % 5).eq(-2), IfExists::Error).unwrap();
    assert_eq!(keys(sample.select_all()), [-17, -12, -7, -2]);
    sample.add_computed_column("k2", col("k") * 2, ColumnOptions::default()).unwrap();
    t.insert([row! {"k" => -22, "d" => 1}]).unwrap();
    rows.push((-22, Some(1)));
    assert_eq!(sample.count().unwrap(), 5, "-22 entered the sample");
    let stream = sample.select([col("k2")]).stream().unwrap();
    let doubled: Vec<i64> = stream.map(|r| r.unwrap().get("k2").unwrap()).collect();
    assert_eq!(doubled, [-34, -24, -14, -4, -44]);
    // A remainder by a column: what Rust's checked_rem gives, null where it gives none.
    let rem = |(k, d): &(i64, Option<i64>)| d.and_then(|d| k.checked_rem(d));
    let by_d = t.select_all().where_((col("k") % col("d")).eq(0));
    let want: Vec<i64> = rows.iter().filter(|r| rem(r) == Some(0)).map(|r| r.0).collect();
    assert_eq!(keys(by_d.clone()), want);
    assert_eq!(by_d.count().unwrap(), want.len() as u64);
    let nulls = rows.iter().filter(|r| rem(r).is_none()).count() as u64;
    assert_eq!(t.select_all().where_((col("k") % col("d")).is_null()).count().unwrap(), nulls);
    t.add_computed_column("r", col("k") % col("d"), ColumnOptions::default()).unwrap();
    let stored: Vec<tabula::Value> =
        t.select([col("r")]).collect().unwrap().into_iter().map(|r| r.into_values()[0].clone()).collect();
    let computed: Vec<tabula::Value> =
        rows.iter().map(|r| rem(r).map_or(tabula::Value::Null, tabula::Value::Int)).collect();
    assert_eq!(stored, computed);
    let sevens = rows.iter().filter(|(k, _)| k % 7 == 0).count() as u64;
    assert_eq!(t.delete((col("k") % 7).eq(0)).unwrap().deleted, sevens);
    assert_eq!(keys(sample.select_all()), [-17, -12, -2, -22], "-7 left the sample");
}
