//! Computed columns, UDFs, preview, IfExists and OnError policies, schema changes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tabula::{
    col, concat, if_, lit, row, Catalog, ColumnOptions, ColumnType, ErrorCode, IfExists, OnError, Row, Schema, Table,
    Udf, Value, Version,
};

use crate::{catalog, docs, fails_cleanly};

fn notes(cat: &Catalog, n: usize) -> Table {
    let t = cat
        .create_table(
            "app/notes",
            Schema::new().required("text", ColumnType::String).nullable("stars", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    if n > 0 {
        t.insert((0..n).map(|i| row! {"text" => format!("note number {i}"), "stars" => (i % 5) as i64})).unwrap();
    }
    t
}

/// A UDF that counts its calls: `summarize@version(text)` = first word, upper-cased.
fn summarize(version: u32, calls: &Arc<AtomicUsize>) -> Udf {
    let calls = calls.clone();
    Udf::new("summarize", version, move |text: String| {
        calls.fetch_add(1, Ordering::SeqCst);
        let first = text.split_whitespace().next().unwrap_or("").to_uppercase();
        if version == 1 {
            first
        } else {
            format!("{first}!")
        }
    })
}

fn strings(t: &Table, column: &str) -> Vec<Option<String>> {
    t.select([col(column)]).collect().unwrap().iter().map(|r| r.get(column).unwrap()).collect()
}

#[test]
fn preview_runs_the_udf_only_on_the_previewed_rows_and_writes_nothing() {
    let cat = catalog();
    let t = notes(&cat, 20_000);
    let calls = Arc::new(AtomicUsize::new(0));
    let s = summarize(1, &calls);
    cat.register(&s);
    let before = t.version().unwrap();
    let rows = t.select([col("text"), s.call([col("text")]).alias("summary")]).head(3).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the UDF ran exactly 3 times on a 20k-row table");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].get::<String>("summary").unwrap(), "NOTE");
    assert_eq!(t.version().unwrap(), before, "a preview makes no version");
    assert!(t.describe().unwrap().columns.iter().all(|c| c.name != "summary"));
    // A UDF in the filter is evaluated on fetched rows, and limit applies after it.
    let shouting =
        t.select([col("stars")]).where_(s.call([col("text")]).eq("NOTE").and(col("stars").eq(4))).head(2).unwrap();
    assert_eq!(shouting.len(), 2);
}

#[test]
fn iterate_then_add_then_rerun_is_a_no_op() {
    let cat = catalog();
    let docs = notes(&cat, 5);
    let calls = Arc::new(AtomicUsize::new(0));
    let summarize = summarize(1, &calls);
    cat.register(&summarize);
    docs.select([col("text"), summarize.call([col("text")]).alias("summary")]).head(3).unwrap();
    let added = docs.add_computed_column("summary", summarize.call([col("text")]), ColumnOptions::default()).unwrap();
    assert_eq!(added.version, Version(2));
    assert_eq!(calls.load(Ordering::SeqCst), 3 + 5, "computed now for every existing row");
    assert!(strings(&docs, "summary").iter().all(|s| s.as_deref() == Some("NOTE")));
    let again = docs
        .add_computed_column("summary", summarize.call([col("text")]), ColumnOptions::if_exists(IfExists::Ignore))
        .unwrap();
    assert_eq!(again.version, Version(2), "rerunning the setup makes no version");
    assert_eq!(calls.load(Ordering::SeqCst), 8, "and computes nothing");
    // Later inserts compute it; updates of its input recompute it.
    docs.insert([row! {"text" => "fresh idea"}]).unwrap();
    docs.update([("text", lit("edited text"))], col("stars").eq(0)).unwrap();
    let rows = docs.select([col("text"), col("summary")]).collect().unwrap();
    for r in rows {
        let text: String = r.get("text").unwrap();
        let first = text.split(' ').next().unwrap().to_uppercase();
        assert_eq!(r.get::<String>("summary").unwrap(), first, "{r}");
    }
    assert_eq!(docs.history().unwrap()[2].detail, "add computed column summary = summarize@1(text)");
}

#[test]
fn ignore_with_a_different_expression_is_an_error_showing_both() {
    let cat = catalog();
    let t = notes(&cat, 3);
    t.add_computed_column("len", col("text").length(), ColumnOptions::default()).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || {
        t.add_computed_column("len", col("text").length() + 1, ColumnOptions::if_exists(IfExists::Ignore))
    });
    assert!(msg.contains("stored:    length(text)") && msg.contains("requested: length(text) + 1"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || {
        t.add_computed_column("len", col("text").length(), ColumnOptions::default())
    });
    assert!(msg.contains("IfExists::Replace"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || {
        t.add_computed_column("text", col("text").length(), ColumnOptions::if_exists(IfExists::Ignore))
    });
    assert!(msg.contains("stored column"), "{msg}");
}

#[test]
fn replace_is_one_version_and_recomputes_dependents_in_order() {
    let cat = catalog();
    let t = notes(&cat, 4);
    t.add_computed_column("len", col("text").length(), ColumnOptions::default()).unwrap();
    t.add_computed_column("len2", col("len") * 2, ColumnOptions::default()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let s = summarize(1, &calls);
    cat.register(&s);
    t.add_computed_column(
        "tag",
        concat([s.call([col("text")]), col("len2").cast(ColumnType::String)]),
        ColumnOptions::default(),
    )
    .unwrap();
    let v = t.version().unwrap();
    let done =
        t.add_computed_column("len", col("text").length() + 100, ColumnOptions::if_exists(IfExists::Replace)).unwrap();
    assert_eq!(done.version.0, v.0 + 1, "a replace is exactly one version");
    let rows = t.select([col("len"), col("len2"), col("tag")]).collect().unwrap();
    assert_eq!(rows[0].get::<i64>("len").unwrap(), 113);
    assert_eq!(rows[0].get::<i64>("len2").unwrap(), 226, "dependents recomputed");
    assert_eq!(rows[0].get::<String>("tag").unwrap(), "NOTE226", "UDF dependents too");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || {
        t.add_computed_column("len", col("len2") + 1, ColumnOptions::if_exists(IfExists::Replace))
    });
    assert!(msg.contains("cycle"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || {
        t.add_computed_column("len", col("text").upper(), ColumnOptions::if_exists(IfExists::Replace))
    });
    assert!(msg.contains("breaks computed column 'len2'"), "{msg}");
}

fn picky() -> Udf {
    Udf::new("picky", 1, |text: String| -> Result<i64, String> {
        if text.ends_with('3') {
            return Err(format!("cannot handle {text:?}"));
        }
        if text.ends_with('4') {
            panic!("boom on {text}");
        }
        Ok(text.len() as i64)
    })
}

#[test]
fn on_error_abort_names_the_row_and_stores_nothing() {
    let cat = catalog();
    let t = notes(&cat, 6);
    let p = picky();
    cat.register(&p);
    let msg = fails_cleanly(&cat, ErrorCode::UdfFailed, || {
        t.add_computed_column("n", p.call([col("text")]), ColumnOptions::default())
    });
    assert!(msg.contains("computed column 'n', row 3 (text = \"note number 3\"): UdfError: cannot handle"), "{msg}");
    assert!(msg.contains("OnError::Ignore"), "{msg}");
}

#[test]
fn on_error_ignore_keeps_errors_readable_and_catches_panics() {
    let cat = catalog();
    let t = notes(&cat, 6);
    let p = picky();
    cat.register(&p);
    t.add_computed_column(
        "n",
        p.call([col("text")]),
        ColumnOptions { on_error: OnError::Ignore, ..Default::default() },
    )
    .unwrap();
    let rows =
        t.select([col("n"), col("n").errortype().alias("kind"), col("n").errormsg().alias("why")]).collect().unwrap();
    assert_eq!(rows[0].get::<Option<i64>>("n").unwrap(), Some(13));
    assert_eq!(rows[0].get::<Option<String>>("kind").unwrap(), None);
    assert_eq!(rows[3].get::<Option<i64>>("n").unwrap(), None);
    assert_eq!(rows[3].get::<String>("kind").unwrap(), "UdfError");
    assert_eq!(rows[3].get::<String>("why").unwrap(), "cannot handle \"note number 3\"");
    assert_eq!(rows[4].get::<String>("kind").unwrap(), "UdfPanic");
    assert_eq!(rows[4].get::<String>("why").unwrap(), "panicked: boom on note number 4");
    // Inserts follow the same policy.
    t.insert([row! {"text" => "x3"}, row! {"text" => "ok"}]).unwrap();
    assert_eq!(t.select_all().where_(col("n").errortype().eq("UdfError")).count().unwrap(), 2);
    assert_eq!(t.select_all().where_(col("n").eq(2)).count().unwrap(), 1);
}

/// Filling a column over existing rows (SQLite calls the UDF back from one UPDATE) and
/// computing it for inserted rows (Rust evaluation, a batch at a time) give the same cells:
/// values, nulls and errors, also where a failed UDF sits inside a larger expression, and a
/// UDF in an `if_` branch is called only for the rows that take it.
#[test]
fn filled_and_inserted_cells_agree_and_branches_call_only_their_rows() {
    let cat = catalog();
    let p = picky();
    let calls = Arc::new(AtomicUsize::new(0));
    let s = summarize(1, &calls);
    cat.register(&p);
    cat.register(&s);
    let columns = [
        // A failure inside coalesce: the cell is the error, not coalesce's fallback.
        ("guarded", tabula::coalesce([p.call([col("text")]), lit(-1)])),
        ("both", p.call([col("text")]) + col("stars")),
        ("branch", if_(col("stars").ge(3)).then(s.call([col("text")])).else_(lit("low")).length()),
    ];
    let filled = notes(&cat, 12);
    let ignore = || ColumnOptions { on_error: OnError::Ignore, ..Default::default() };
    for (name, e) in &columns {
        filled.add_computed_column(name, e.clone(), ignore()).unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4, "summarize ran for the 4 rows with stars >= 3 only");
    let inserted = cat
        .create_table(
            "app/inserted",
            Schema::new().required("text", ColumnType::String).nullable("stars", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    for (name, e) in &columns {
        inserted.add_computed_column(name, e.clone(), ignore()).unwrap();
    }
    inserted.insert((0..12).map(|i| row! {"text" => format!("note number {i}"), "stars" => (i % 5) as i64})).unwrap();
    let cells = |t: &Table| {
        let mut out = Vec::new();
        for (name, _) in &columns {
            let select =
                [col(*name).alias("v"), col(*name).errortype().alias("kind"), col(*name).errormsg().alias("why")];
            out.push(t.select(select).collect().unwrap());
        }
        out
    };
    let (a, b) = (cells(&filled), cells(&inserted));
    assert_eq!(a, b);
    // Row 3 fails in picky: null with its error in both picky columns, whatever coalesce says.
    for column in &a[..2] {
        assert_eq!(column[3].get::<Option<i64>>("v").unwrap(), None);
        assert_eq!(column[3].get::<String>("kind").unwrap(), "UdfError");
        assert_eq!(column[2].get::<Option<String>>("kind").unwrap(), None);
    }
    assert_eq!(a[0][2].get::<i64>("v").unwrap(), 13);
    assert_eq!(a[2][3].get::<i64>("v").unwrap(), 4, "NOTE");
    assert_eq!(a[2][0].get::<i64>("v").unwrap(), 3, "low");
}

#[test]
fn insert_with_a_failing_udf_under_abort_inserts_nothing() {
    let cat = catalog();
    let t = notes(&cat, 2);
    let p = picky();
    cat.register(&p);
    t.add_computed_column("n", p.call([col("text")]), ColumnOptions::default()).unwrap();
    let msg =
        fails_cleanly(&cat, ErrorCode::UdfFailed, || t.insert([row! {"text" => "fine"}, row! {"text" => "bad3"}]));
    assert!(msg.contains("computed column 'n', row 1: UdfError"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::UdfFailed, || t.update([("text", lit("bad3"))], lit(true)));
    assert!(msg.contains("UdfError"), "{msg}");
}

#[test]
fn missing_or_other_versions_of_a_udf_refuse_writes_but_keep_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let calls = Arc::new(AtomicUsize::new(0));
    {
        let cat = Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        let t = notes(&cat, 3);
        cat.register(&summarize(1, &calls));
        t.add_computed_column("summary", summarize(1, &calls).call([col("text")]), ColumnOptions::default()).unwrap();
    }
    let cat = Catalog::open(&path).unwrap();
    let t = cat.get_table("app/notes").unwrap();
    assert_eq!(t.check_udfs().unwrap_err().code(), ErrorCode::UdfNotRegistered);
    assert_eq!(strings(&t, "summary"), vec![Some("NOTE".to_string()); 3], "stored values stay readable");
    let msg = fails_cleanly(&cat, ErrorCode::UdfNotRegistered, || t.insert([row! {"text" => "a"}]));
    assert!(msg.contains("summarize@1 is not registered") && msg.contains("computed column 'summary'"), "{msg}");
    fails_cleanly(&cat, ErrorCode::UdfNotRegistered, || t.select([summarize(1, &calls).call([col("text")])]).collect());
    // Updating a column nothing computed depends on does not need the UDF.
    t.update([("stars", lit(1))], lit(true)).unwrap();
    let v2 = summarize(2, &calls);
    cat.register(&v2);
    let msg = fails_cleanly(&cat, ErrorCode::UdfVersionMismatch, || t.update([("text", lit("b"))], lit(true)));
    assert!(msg.contains("needs UDF summarize@1, but only summarize@2 is registered"), "{msg}");
    // The fix the message names: replace the column with the new version.
    t.add_computed_column("summary", v2.call([col("text")]), ColumnOptions::if_exists(IfExists::Replace)).unwrap();
    assert_eq!(strings(&t, "summary"), vec![Some("NOTE!".to_string()); 3]);
    t.insert([row! {"text" => "new row"}]).unwrap();
}

#[test]
fn one_handle_holds_several_versions_and_each_column_uses_its_own() {
    let cat = catalog();
    let calls = Arc::new(AtomicUsize::new(0));
    let (v1, v2) = (summarize(1, &calls), summarize(2, &calls));
    cat.register(&v1);
    cat.register(&v2);
    let t = notes(&cat, 2);
    t.add_computed_column("old", v1.call([col("text")]), ColumnOptions::default()).unwrap();
    t.add_computed_column("new", v2.call([col("text")]), ColumnOptions::default()).unwrap();
    t.insert([row! {"text" => "fresh row"}]).unwrap();
    let rows = t.select([col("old"), col("new")]).collect().unwrap();
    assert_eq!(rows[2].get::<String>("old").unwrap(), "FRESH");
    assert_eq!(rows[2].get::<String>("new").unwrap(), "FRESH!");
}

#[test]
fn a_udf_whose_signature_changed_without_a_version_bump_is_refused() {
    let cat = catalog();
    let t = notes(&cat, 1);
    let v1 = Udf::new("f", 1, |s: String| s.len() as i64);
    cat.register(&v1);
    t.add_computed_column("f", v1.call([col("text")]), ColumnOptions::default()).unwrap();
    cat.register(&Udf::new("f", 1, |s: String| s));
    let msg = fails_cleanly(&cat, ErrorCode::UdfVersionMismatch, || t.insert([row! {"text" => "a"}]));
    assert!(msg.contains("needs a new version"), "{msg}");
}

#[test]
fn batch_udfs_get_whole_batches() {
    let cat = catalog();
    let t = notes(&cat, 2500);
    let batches = Arc::new(AtomicUsize::new(0));
    let seen = batches.clone();
    let embed = Udf::batch("embed", 1, [ColumnType::String], ColumnType::Json, move |rows| {
        seen.fetch_add(1, Ordering::SeqCst);
        rows.iter()
            .map(|args| match &args[0] {
                Value::String(s) => Ok(Value::Json(serde_json::json!([s.len(), s.matches('e').count()]))),
                other => Err(format!("unexpected {other}")),
            })
            .collect()
    });
    cat.register(&embed);
    t.add_computed_column("vec", embed.call([col("text")]), ColumnOptions::default()).unwrap();
    assert_eq!(batches.load(Ordering::SeqCst), 3, "2500 rows in batches of 1024");
    let first = t.select([col("vec").index(0).alias("len")]).first().unwrap().unwrap();
    assert_eq!(first.get::<serde_json::Value>("len").unwrap(), serde_json::json!(13));
}

#[test]
fn builtin_computed_columns_run_in_sql_and_follow_updates() {
    let cat = catalog();
    let t = notes(&cat, 10);
    t.add_computed_column("words", col("text").split(" ").cast(ColumnType::String).length(), ColumnOptions::default())
        .unwrap();
    t.add_computed_column("rating", if_(col("stars").ge(3)).then("good").else_("meh"), ColumnOptions::default())
        .unwrap();
    t.update([("stars", col("stars") + 10)], col("stars").eq(0)).unwrap();
    let rows = t.select([col("stars"), col("rating")]).where_(col("stars").ge(10)).collect().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.get::<String>("rating").unwrap() == "good"));
    let d = t.describe().unwrap().to_string();
    assert!(d.contains("rating  String     = if(stars >= 3, \"good\", \"meh\")"), "{d}");
}

#[test]
fn add_drop_and_rename_columns() {
    let cat = catalog();
    let t = notes(&cat, 3);
    t.add_column("lang", ColumnType::String, "en", IfExists::Error).unwrap();
    t.add_column("note", ColumnType::String, Value::Null, IfExists::Error).unwrap();
    assert_eq!(t.add_column("lang", ColumnType::String, "en", IfExists::Ignore).unwrap().version, Version(3));
    let msg =
        fails_cleanly(&cat, ErrorCode::AlreadyExists, || t.add_column("lang", ColumnType::Int, 0, IfExists::Ignore));
    assert!(msg.contains("already exists as String; requested Int"), "{msg}");
    assert_eq!(strings(&t, "lang"), vec![Some("en".to_string()); 3]);
    t.insert([row! {"text" => "x"}]).unwrap();
    assert_eq!(
        t.select([col("lang")]).where_(col("text").eq("x")).first().unwrap().unwrap().get::<String>("lang").unwrap(),
        "en",
        "new rows get the default"
    );
    fails_cleanly(&cat, ErrorCode::NotNull, || t.insert([row! {"text" => "x", "lang" => Value::Null}]));
    t.insert([row! {"text" => "x", "lang" => "de"}]).unwrap();
    t.add_computed_column("shout", col("text").upper(), ColumnOptions::default()).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::HasDependents, || t.drop_column("text"));
    assert!(msg.contains("computed column(s) shout"), "{msg}");
    t.rename_column("text", "body").unwrap();
    assert!(t.describe().unwrap().to_string().contains("= upper(body)"));
    t.insert([row! {"body" => "y", "lang" => "fr"}]).unwrap();
    assert_eq!(
        t.select([col("shout")]).where_(col("body").eq("y")).first().unwrap().unwrap().get::<String>("shout").unwrap(),
        "Y"
    );
    t.drop_column("note").unwrap();
    fails_cleanly(&cat, ErrorCode::UnknownColumn, || t.drop_column("note"));
    fails_cleanly(&cat, ErrorCode::AlreadyExists, || t.rename_column("body", "lang"));
    fails_cleanly(&cat, ErrorCode::TypeMismatch, || t.add_column("n", ColumnType::Int, "x", IfExists::Error));
    let h: Vec<String> = t.history().unwrap().into_iter().map(|v| v.detail).collect();
    assert_eq!(h[0], "drop column note");
    assert!(
        h.contains(&"rename column text to body".to_string())
            && h.contains(&"add column lang String = \"en\"".to_string())
    );
}

#[test]
fn bad_computed_expressions_are_refused_cleanly() {
    let cat = catalog();
    let t = notes(&cat, 2);
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || {
        t.add_computed_column("x", col("text") + 1, ColumnOptions::default())
    });
    assert!(msg.contains("expression `text + 1`"), "{msg}");
    fails_cleanly(&cat, ErrorCode::InvalidExpr, || {
        t.add_computed_column("x", lit(Value::Null), ColumnOptions::default())
    });
    fails_cleanly(&cat, ErrorCode::InvalidName, || t.add_computed_column("x y", lit(1), ColumnOptions::default()));
    fails_cleanly(&cat, ErrorCode::UdfNotRegistered, || {
        t.add_computed_column("x", picky().call([col("text")]), ColumnOptions::default())
    });
    let msg = fails_cleanly(&cat, ErrorCode::InvalidExpr, || {
        t.add_computed_column("x", picky().call([col("stars")]), ColumnOptions::default())
    });
    assert!(msg.contains("argument 1 of picky@1 must be String, found Int"), "{msg}");
}

#[test]
fn stored_expressions_keep_their_exact_floats_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let expr = || col("stars").cast(ColumnType::Float) * 201_571.982_853_331_78;
    {
        let cat = Catalog::open(&path).unwrap();
        cat.create_dir("app", IfExists::Error).unwrap();
        let t = notes(&cat, 2);
        t.add_computed_column("scaled", expr(), ColumnOptions::default()).unwrap();
    }
    let cat = Catalog::open(&path).unwrap();
    let t = cat.get_table("app/notes").unwrap();
    let again = t.add_computed_column("scaled", expr(), ColumnOptions::if_exists(IfExists::Ignore)).unwrap();
    assert_eq!(again.version, Version(2), "the stored literal is the same float, so Ignore is a no-op");
}

#[test]
fn updates_and_deletes_with_udfs_are_refused_with_the_way_out() {
    let cat = catalog();
    let t = notes(&cat, 3);
    let p = picky();
    cat.register(&p);
    let msg =
        fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.update([("stars", p.call([col("text")]))], lit(true)));
    assert!(msg.contains("add the UDF as a computed column"), "{msg}");
    fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.delete(p.call([col("text")]).gt(3)));
}

#[test]
fn giving_a_value_for_a_computed_column_says_it_is_computed() {
    let cat = catalog();
    let t = notes(&cat, 1);
    t.add_computed_column("len", col("text").length(), ColumnOptions::default()).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::UnknownColumn, || t.insert([row! {"text" => "x", "len" => 1}]));
    assert!(msg.contains("no stored column 'len'; it is computed, not inserted"), "{msg}");
}

#[test]
fn replacing_a_column_with_its_own_definition_is_a_no_op() {
    let cat = catalog();
    let t = notes(&cat, 50);
    let calls = Arc::new(AtomicUsize::new(0));
    let v2 = summarize(2, &calls);
    cat.register(&v2);
    let replace = ColumnOptions::if_exists(IfExists::Replace);
    let first = t.add_computed_column("summary", v2.call([col("text")]), replace).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 50);
    let again = t.add_computed_column("summary", v2.call([col("text")]), replace).unwrap();
    assert_eq!(again.version, first.version, "no new version");
    assert_eq!(calls.load(Ordering::SeqCst), 50, "no UDF call for a definition that is already stored");
    // Another on_error is another definition: that one recomputes.
    let ignore_errors =
        ColumnOptions { if_exists: IfExists::Replace, on_error: tabula::OnError::Ignore, ..Default::default() };
    assert!(t.add_computed_column("summary", v2.call([col("text")]), ignore_errors).unwrap().version > first.version);
}

/// A stored column can be replaced by a computed one (as in Pixeltable): one version, its
/// readers recomputed, recorded as a replace of data (which migration checks flag), and a
/// revert brings the stored values back.
#[test]
fn a_stored_column_is_replaced_by_a_computed_one_and_revert_restores_it() {
    let cat = catalog();
    let t = docs(&cat);
    t.add_column("label", ColumnType::String, "x", IfExists::Error).unwrap();
    t.update([("label", lit("hand-written"))], col("title").eq("beta")).unwrap();
    t.add_computed_column("shout", col("label").upper(), ColumnOptions::default()).unwrap();
    let before = t.version().unwrap();
    let labels = |t: &tabula::Table, c: &str| -> Vec<String> {
        t.select([col(c)])
            .order_by(col("words"))
            .collect()
            .unwrap()
            .iter()
            .map(|r| r.get::<String>(c).unwrap())
            .collect()
    };
    assert_eq!(labels(&t, "shout"), ["X", "HAND-WRITTEN", "X"]);

    let w = t.add_computed_column("label", col("title").lower(), ColumnOptions::if_exists(IfExists::Replace)).unwrap();
    assert_eq!(w.version.0, before.0 + 1, "one version");
    assert_eq!(w.change, Some(tabula::ChangeKind::ReplaceColumn));
    assert_eq!(labels(&t, "label"), ["alpha", "beta", "gamma"]);
    assert_eq!(labels(&t, "shout"), ["ALPHA", "BETA", "GAMMA"], "its reader is recomputed");
    assert!(t.schema().unwrap().column("label").unwrap().is_computed());

    t.revert().unwrap();
    assert_eq!(labels(&t, "label"), ["x", "hand-written", "x"]);
    assert_eq!(labels(&t, "shout"), ["X", "HAND-WRITTEN", "X"]);
    assert!(!t.schema().unwrap().column("label").unwrap().is_computed());
    t.insert([
        tabula::row! {"title" => "delta", "words" => 40, "score" => None::<f64>, "draft" => true, "label" => "typed"},
    ])
    .unwrap();
    assert_eq!(labels(&t, "label").last().unwrap(), "typed", "it is a stored column again");
}

/// Counts the calls of a UDF.
fn counted(name: &str, f: impl Fn(i64) -> Result<i64, String> + Send + Sync + 'static) -> (Udf, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let udf = Udf::new(name, 1, move |n: i64| {
        seen.fetch_add(1, Ordering::SeqCst);
        f(n)
    });
    (udf, calls)
}

/// `(value, errortype, errormsg)` of `column`, in `n` order.
fn cells(t: &Table, column: &str) -> Vec<(Option<i64>, Option<String>, Option<String>)> {
    t.select([col(column).alias("v"), col(column).errortype().alias("kind"), col(column).errormsg().alias("why")])
        .order_by(col("k"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| (r.get("v").unwrap(), r.get("kind").unwrap(), r.get("why").unwrap()))
        .collect()
}

/// A failed cell passes its failure on (as in Pixeltable): every computed column that reads
/// it gets an `UpstreamError` naming the column where the failure started, and its UDF is
/// not called for that row, whatever path computed it: an insert, a fill in SQL, a fill
/// calling a row UDF back, a batch UDF, an update, a view. An `Abort` column does not abort
/// on an inherited failure.
#[test]
fn a_failed_cell_passes_its_failure_on_to_the_columns_that_read_it() {
    let cat = catalog();
    let t = cat
        .create_table(
            "app/t",
            Schema::new().required("k", ColumnType::Int).required("n", ColumnType::Int).nullable("m", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    let (root, _) = counted("root", |n| if n < 0 { Err(format!("negative {n}")) } else { Ok(n) });
    let (child, child_calls) = counted("child", |n| Ok(n + 1000));
    let batch_calls = Arc::new(AtomicUsize::new(0));
    let seen = batch_calls.clone();
    let batch = Udf::batch("twice", 1, [ColumnType::Int], ColumnType::Int, move |rows| {
        seen.fetch_add(rows.len(), Ordering::SeqCst);
        rows.iter()
            .map(|r| match r[0] {
                Value::Int(n) => Ok(Value::Int(2 * n)),
                _ => Err("not an int".into()),
            })
            .collect()
    });
    for u in [&root, &child, &batch] {
        cat.register(u);
    }
    let ignore = ColumnOptions { on_error: OnError::Ignore, ..Default::default() };
    t.add_computed_column("i1", root.call([col("n")]), ignore).unwrap();
    t.add_computed_column("i2", col("i1") * 2, ColumnOptions::default()).unwrap();
    t.add_computed_column("i3", child.call([col("i2")]), ColumnOptions::default()).unwrap();
    // The insert computes everything in Rust.
    t.insert([row! {"k" => 1, "n" => 1}, row! {"k" => 2, "n" => -2}, row! {"k" => 3, "n" => 3}]).unwrap();
    assert_eq!(child_calls.load(Ordering::SeqCst), 2, "no call for the failed row");
    let failed =
        (None, Some("UpstreamError".to_string()), Some("column 'i1' failed: UdfError: negative -2".to_string()));
    assert_eq!(cells(&t, "i1")[1], (None, Some("UdfError".into()), Some("negative -2".into())));
    assert_eq!(cells(&t, "i2"), [(Some(2), None, None), failed.clone(), (Some(6), None, None)]);
    assert_eq!(cells(&t, "i3")[1], failed, "the failure's origin, not the column before");

    // Filled over existing rows: in SQL, with a row UDF called back, with a batch UDF.
    t.add_computed_column("s", col("i2") + 1, ColumnOptions::default()).unwrap();
    child_calls.store(0, Ordering::SeqCst);
    t.add_computed_column("c", child.call([col("i2")]), ColumnOptions::default()).unwrap();
    assert_eq!(child_calls.load(Ordering::SeqCst), 2);
    t.add_computed_column("b", batch.call([col("i3")]), ColumnOptions::default()).unwrap();
    assert_eq!(batch_calls.load(Ordering::SeqCst), 2);
    for column in ["s", "c", "b"] {
        assert_eq!(cells(&t, column)[1], failed, "{column}");
        assert!(cells(&t, column)[0].0.is_some(), "{column}");
    }

    // An update that fixes the root clears the failure downstream; one that breaks it
    // passes it on.
    t.update([("n", lit(5))], col("k").eq(2)).unwrap();
    t.update([("n", lit(-7))], col("k").eq(3)).unwrap();
    assert_eq!(cells(&t, "i1")[1], (Some(5), None, None), "the fixed root's error slot is cleared");
    let broken =
        (None, Some("UpstreamError".to_string()), Some("column 'i1' failed: UdfError: negative -7".to_string()));
    for column in ["i2", "i3", "s", "c", "b"] {
        let got = cells(&t, column);
        assert!(got[1].0.is_some() && got[1].1.is_none(), "{column}: {:?}", got[1]);
        assert_eq!(got[2], broken, "{column}");
    }
    // An update of another column rewrites rows in SQL; the failures stay.
    t.add_computed_column("sm", col("i1") + col("m"), ColumnOptions::default()).unwrap();
    t.update([("m", lit(1))], lit(true)).unwrap();
    assert_eq!(cells(&t, "sm"), [(Some(2), None, None), (Some(6), None, None), broken.clone()]);
    assert_eq!(cells(&t, "i2")[2], broken);

    // A view's own column inherits from the base.
    let v = cat.create_view("app/v", &t, lit(true), IfExists::Error).unwrap();
    v.add_computed_column("vc", child.call([col("i2")]), ColumnOptions::default()).unwrap();
    assert_eq!(cells(&v, "vc")[2], broken);
    // Reverting the updates brings back the cells as they were, errors included.
    cat.drop_table("app/v", tabula::Force::No).unwrap();
    t.revert_to(Version(7)).unwrap();
    assert_eq!(cells(&t, "i2"), [(Some(2), None, None), failed, (Some(6), None, None)]);
}

/// An update that makes a failed cell succeed clears its error slot (the new row version
/// once kept the old version's error next to the new value).
#[test]
fn a_recomputed_cell_that_succeeds_has_no_error() {
    let cat = catalog();
    let t = cat
        .create_table(
            "app/t",
            Schema::new().required("k", ColumnType::Int).required("n", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    let (root, _) = counted("root", |n| if n < 0 { Err(format!("negative {n}")) } else { Ok(n) });
    cat.register(&root);
    t.add_computed_column(
        "i1",
        root.call([col("n")]),
        ColumnOptions { on_error: OnError::Ignore, ..Default::default() },
    )
    .unwrap();
    t.insert([row! {"k" => 1, "n" => -2}]).unwrap();
    assert_eq!(cells(&t, "i1"), [(None, Some("UdfError".into()), Some("negative -2".into()))]);
    t.update([("n", lit(5))], lit(true)).unwrap();
    assert_eq!(cells(&t, "i1"), [(Some(5), None, None)]);
}

/// Several stored columns in one version, all or none.
#[test]
fn add_columns_adds_several_in_one_version_or_none() {
    let cat = catalog();
    let t = docs(&cat);
    let v = t.version().unwrap();
    let w = t
        .add_columns([("lang", ColumnType::String, Value::from("en")), ("stars", ColumnType::Int, Value::Null)])
        .unwrap();
    assert_eq!(w.version.0, v.0 + 1);
    assert_eq!(t.history().unwrap()[0].detail, "add columns lang String = \"en\", stars Int?");
    let row = &t.select_all().collect().unwrap()[0];
    assert_eq!((row.get::<String>("lang").unwrap(), row.get::<Option<i64>>("stars").unwrap()), ("en".into(), None));
    let before = crate::state(&cat);
    let e =
        t.add_columns([("fresh", ColumnType::Int, Value::Null), ("lang", ColumnType::Int, Value::Null)]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::AlreadyExists);
    assert_eq!(crate::state(&cat), before, "nothing added");
    let msg = fails_cleanly(&cat, ErrorCode::TypeMismatch, || {
        t.add_columns([("fresh", ColumnType::Int, Value::from("not a number"))])
    });
    assert!(msg.contains("add column 'fresh': default"), "{msg}");
    t.revert().unwrap();
    assert!(t.schema().unwrap().column("lang").is_none() && t.schema().unwrap().column("stars").is_none());
}

/// `alter_column`: nullable, required (refused while a row has no value), Int widened to
/// Float (a column of its own, so 3 reads 3.0 and divides as a float; older versions read
/// Ints), each one version that a revert undoes.
#[test]
fn alter_column_changes_nullability_and_widens_int_to_float() {
    use tabula::Alter;
    let cat = catalog();
    let t = docs(&cat); // words Int, score Float?
    t.alter_column("words", Alter::Nullable).unwrap();
    t.insert([row! {"title" => "delta", "words" => None::<i64>, "score" => None::<f64>, "draft" => true}]).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::NotNull, || t.alter_column("words", Alter::Required));
    assert!(msg.contains("1 row(s) have no value"), "{msg}");
    t.delete(col("words").is_null()).unwrap();
    t.alter_column("words", Alter::Required).unwrap();
    assert_eq!(t.alter_column("words", Alter::Required).unwrap().change, None, "already required");
    fails_cleanly(&cat, ErrorCode::NotNull, || {
        t.insert([row! {"title" => "e", "words" => None::<i64>, "score" => None::<f64>, "draft" => true}])
    });

    let before = t.version().unwrap();
    t.alter_column("words", Alter::ToFloat).unwrap();
    let halves: Vec<f64> = t
        .select([(col("words") / 20).alias("h")])
        .order_by(col("title"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| r.get("h").unwrap())
        .collect();
    assert_eq!(halves, [0.5, 1.0, 1.5], "Float division, not Int");
    t.insert([row! {"title" => "zeta", "words" => 2.5, "score" => None::<f64>, "draft" => true}]).unwrap();
    let old = cat.get_table(format!("app/docs:{}", before.0).as_str()).unwrap();
    assert_eq!(old.schema().unwrap().column("words").unwrap().ty, ColumnType::Int);
    assert_eq!(
        old.select([col("words")]).order_by(col("title")).collect().unwrap()[0].get::<i64>("words").unwrap(),
        10
    );
    fails_cleanly(&cat, ErrorCode::TypeMismatch, || t.alter_column("title", Alter::ToFloat));
    fails_cleanly(&cat, ErrorCode::UnknownColumn, || t.alter_column("nope", Alter::Nullable));
    t.add_column("n", ColumnType::Int, 1, IfExists::Error).unwrap();
    t.add_computed_column("n2", col("n") * 2, ColumnOptions::default()).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::HasDependents, || t.alter_column("n", Alter::ToFloat));
    assert!(msg.contains("n2 read it"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.alter_column("n2", Alter::Nullable));
    assert!(msg.contains("it is computed; replace it"), "{msg}");
    t.revert_to(before).unwrap();
    assert_eq!(t.schema().unwrap().column("words").unwrap().ty, ColumnType::Int);
    assert_eq!(t.count().unwrap(), 3);
}

/// `on_error` for one insert, over each column's own: Ignore keeps the failing rows with
/// their errors in an Abort column; Abort refuses the call in an Ignore column.
#[test]
fn on_error_can_be_given_for_one_insert() {
    let cat = catalog();
    let t = cat.create_table("app/t", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
    let picky = Udf::new("neg_fails", 1, |n: i64| if n < 0 { Err("negative".to_string()) } else { Ok(n) });
    cat.register(&picky);
    t.add_computed_column("strict", picky.call([col("n")]), ColumnOptions::default()).unwrap();
    fails_cleanly(&cat, ErrorCode::UdfFailed, || t.insert([row! {"n" => -1}]));
    t.insert_with([row! {"n" => -1}, row! {"n" => 2}], OnError::Ignore).unwrap();
    let kinds: Vec<Option<String>> = t
        .select([col("strict").errortype().alias("k")])
        .collect()
        .unwrap()
        .iter()
        .map(|r| r.get("k").unwrap())
        .collect();
    assert_eq!(kinds, [Some("UdfError".to_string()), None]);

    let lenient = ColumnOptions { on_error: OnError::Ignore, if_exists: IfExists::Error, ..Default::default() };
    t.add_computed_column("lenient", picky.call([col("n") - 10]), lenient).unwrap();
    fails_cleanly(&cat, ErrorCode::UdfFailed, || t.insert_with([row! {"n" => 3}], OnError::Abort));
    t.insert([row! {"n" => 3}]).unwrap();
    assert_eq!(t.count().unwrap(), 3, "the column's own policy again");
}

/// `on_error` for one update, over each recomputed column's own; the columns keep theirs.
#[test]
fn on_error_can_be_given_for_one_update() {
    let cat = catalog();
    let t = cat.create_table("app/t", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
    let picky = Udf::new("neg_fails", 1, |n: i64| if n < 0 { Err("negative".to_string()) } else { Ok(n) });
    cat.register(&picky);
    t.insert([row! {"n" => 1}, row! {"n" => 2}]).unwrap();
    t.add_computed_column("strict", picky.call([col("n")]), ColumnOptions::default()).unwrap();
    fails_cleanly(&cat, ErrorCode::UdfFailed, || t.update([("n", lit(-5))], col("n").eq(1)));
    t.update_with([("n", lit(-5))], col("n").eq(1), OnError::Ignore).unwrap();
    let kind: Option<String> = t
        .select([col("strict").errortype().alias("k")])
        .where_(col("n").eq(-5))
        .first()
        .unwrap()
        .unwrap()
        .get("k")
        .unwrap();
    assert_eq!(kind.as_deref(), Some("UdfError"));
    assert_eq!(t.schema().unwrap().column("strict").unwrap().computed.as_ref().unwrap().on_error, OnError::Abort);
    fails_cleanly(&cat, ErrorCode::UdfFailed, || t.update([("n", lit(-6))], col("n").eq(2)));
}

/// A computed column may read another's error (`errortype()`, `errormsg()`) in a table with
/// UDF columns: inserts, updates and fills compute it after the column it reads, it does
/// not inherit that column's failure (it handles it), and that column cannot be dropped
/// while it reads it.
#[test]
fn a_column_reading_another_columns_error_works_on_every_path() {
    let cat = catalog();
    let t = cat.create_table("app/t", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
    let picky = Udf::new("neg_fails", 1, |n: i64| if n < 0 { Err(format!("negative {n}")) } else { Ok(n) });
    cat.register(&picky);
    t.insert([row! {"n" => -1}, row! {"n" => 1}]).unwrap();
    // Added first, in the schema's order before the column it reads.
    let ignore = ColumnOptions { on_error: OnError::Ignore, ..Default::default() };
    t.add_computed_column("i1", picky.call([col("n")]), ignore).unwrap();
    t.add_computed_column(
        "why",
        if_(col("i1").errortype().is_null()).then("fine").else_(col("i1").errormsg()),
        ColumnOptions::default(),
    )
    .unwrap();
    t.add_computed_column(
        "safe",
        if_(col("i1").errortype().is_null()).then(col("i1")).else_(lit(0)),
        ColumnOptions::default(),
    )
    .unwrap();
    let read = |t: &Table| -> Vec<(String, i64)> {
        t.select([col("why"), col("safe")])
            .order_by(col("n"))
            .collect()
            .unwrap()
            .iter()
            .map(|r| (r.get("why").unwrap(), r.get("safe").unwrap()))
            .collect()
    };
    assert_eq!(read(&t), [("negative -1".to_string(), 0), ("fine".to_string(), 1)]);
    t.insert([row! {"n" => -2}, row! {"n" => 2}]).unwrap();
    assert_eq!(read(&t)[0], ("negative -2".to_string(), 0));
    assert_eq!(read(&t)[3], ("fine".to_string(), 2));
    t.update([("n", lit(5))], col("n").eq(-1)).unwrap();
    assert!(read(&t).contains(&("fine".to_string(), 5)));
    let msg = fails_cleanly(&cat, ErrorCode::HasDependents, || t.drop_column("i1"));
    assert!(msg.contains("why") && msg.contains("safe"), "{msg}");
}

/// Pixeltable's `recompute_columns(.., cascade=False)`: the column alone, its dependents
/// (here an expensive UDF, in the table and in a view) keep their values.
#[test]
fn a_recompute_that_does_not_cascade_leaves_dependents_as_they_were() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let cat = crate::catalog();
    let t = cat.create_table("app/t", Schema::new().required("x", ColumnType::Int), IfExists::Error).unwrap();
    t.insert((1..=4).map(|x| row! {"x" => x})).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let costly = Udf::new("costly", 1, move |n: i64| {
        seen.fetch_add(1, Ordering::SeqCst);
        n + 1000
    });
    cat.register(&costly);
    t.add_computed_column("a", col("x") * 2, ColumnOptions::default()).unwrap();
    t.add_computed_column("b", costly.call([col("a")]), ColumnOptions::default()).unwrap();
    let v = cat.create_view("app/v", &t, col("x").gt(0), IfExists::Error).unwrap();
    v.add_computed_column("vb", costly.call([col("a")]), ColumnOptions::default()).unwrap();
    calls.store(0, Ordering::SeqCst);
    let done = t.recompute_with("a", tabula::Only::All, col("x").le(2), tabula::Cascade::No).unwrap();
    assert_eq!((done.updated, calls.load(Ordering::SeqCst)), (2, 0));
    let b: Vec<i64> =
        t.select([col("b")]).order_by(col("x")).collect().unwrap().iter().map(|r| r.get("b").unwrap()).collect();
    assert_eq!(b, [1002, 1004, 1006, 1008]);
    assert_eq!(v.count().unwrap(), 4);
    assert!(t.history().unwrap()[0].detail.contains("recompute a (alone) where x <= 2"));
    // Cascading (the default) pays for every dependent of the rows recomputed.
    t.recompute_where("a", tabula::Only::All, col("x").le(2)).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4, "b and vb for two rows");
    t.revert().unwrap();
    t.revert().unwrap();
    assert_eq!(t.select([col("b")]).collect().unwrap().len(), 4);
}

/// Builtin columns that a catalog fills with one SQL statement (on a server: `length` of text
/// as `char_length`, of bytes as `octet_length`; comparisons, boolean logic, null tests as
/// the server's own operators; `contains`, `starts_with`, `ends_with` as byte comparisons) hold what Tabula's Rust evaluation computes for the same rows
/// (each expression is computed a second time through an identity UDF, which only Rust
/// runs): multibyte, empty and null text, bytes, Int against Float, nulls in logic. The
/// table is big enough that a server fills each column by copying the table
/// (`Tx::fill_by_rebuild`).
#[test]
fn builtin_columns_filled_in_sql_agree_with_rust_evaluation() {
    let cat = catalog();
    let t = cat
        .create_table(
            "app/t",
            Schema::new()
                .nullable("s", ColumnType::String)
                .nullable("b", ColumnType::Bytes)
                .nullable("i", ColumnType::Int)
                .nullable("f", ColumnType::Float)
                .nullable("ok", ColumnType::Bool),
            IfExists::Error,
        )
        .unwrap();
    let texts = [Some("日本語"), Some(""), None, Some("héllo wörld"), Some("b"), Some("a\ttab")];
    let bytes = [Some(vec![0u8, 255, 1]), Some(vec![]), None];
    t.insert((0..12_000i64).map(|k| {
        let s = texts[k as usize % texts.len()].map(str::to_string);
        let b = bytes[k as usize % bytes.len()].clone().map(Value::Bytes).unwrap_or(Value::Null);
        let i = if k % 4 == 3 { None } else { Some(k - 5) };
        let f = if k % 5 == 4 { None } else { Some(k as f64 / 2.0 - 2.5) };
        let ok = if k % 3 == 2 { None } else { Some(k % 2 == 0) };
        row! {"s" => s, "b" => b, "i" => i, "f" => f, "ok" => ok}
    }))
    .unwrap();
    let exprs = [
        ("len", col("s").length(), ColumnType::Int),
        ("bytes_len", col("b").length(), ColumnType::Int),
        ("before_b", col("s").lt("b"), ColumnType::Bool),
        ("int_over_float", col("i").gt(col("f")), ColumnType::Bool),
        ("logic", col("ok").and(col("i").ge(0)).or(col("s").is_null()), ColumnType::Bool),
        ("not_ok", !col("ok"), ColumnType::Bool),
        ("copy", col("s"), ColumnType::String),
        ("starts_h", col("s").starts_with("h"), ColumnType::Bool),
        ("ends_multibyte", col("s").ends_with("語"), ColumnType::Bool),
        ("ends_longer", col("s").ends_with("xb"), ColumnType::Bool),
        ("contains_empty", col("s").contains(""), ColumnType::Bool),
        ("contains_space", col("s").contains("o w").or(col("s").contains("\t")), ColumnType::Bool),
        ("ends_itself", col("s").ends_with(col("s")).and(col("s").starts_with(col("s"))), ColumnType::Bool),
    ];
    for (name, expr, ty) in exprs {
        let identity = Udf::row(format!("same_{ty}"), 1, [ty], ty, |args| Ok(args[0].clone()));
        cat.register(&identity);
        t.add_computed_column(name, expr.clone(), ColumnOptions::default()).unwrap();
        let in_rust = format!("{name}_in_rust");
        t.add_computed_column(&in_rust, identity.call([expr.clone()]), ColumnOptions::default()).unwrap();
        let rows = t.select([col(name), col(&in_rust)]).collect().unwrap();
        for r in &rows {
            let values = r.clone().into_values();
            assert_eq!(values[0], values[1], "{name} = {expr}");
        }
        if ty == ColumnType::Bool {
            // As a filter, the same expression (SQL) keeps the rows its Rust twin holds for.
            let kept = t.select_all().where_(expr.clone()).count().unwrap();
            assert_eq!(kept, t.select_all().where_(col(&in_rust)).count().unwrap(), "where {expr}");
        }
    }
    let lens: Vec<Value> =
        t.select([col("len")]).collect().unwrap().into_iter().map(|r| r.into_values()[0].clone()).collect();
    assert_eq!(&lens[..3], [Value::Int(3), Value::Int(0), Value::Null], "characters, not bytes");
}

/// Computed columns added to a table of many rows and versions (on a server: the first
/// filled by copying the table into a new physical table with the UDF's values staged, the
/// next in place) keep everything the table had: its older versions read as they did, reverts
/// bring back rows it ended, its primary key still refuses a live duplicate, new rows get
/// their own row ids and values, a view shows the new columns, and a UDF's failed cells
/// keep their errors.
#[test]
fn columns_added_to_a_big_table_keep_its_history_key_views_and_errors() {
    let cat = catalog();
    let schema = Schema::new().required("k", ColumnType::Int).required("text", ColumnType::String).primary_key(["k"]);
    let t = cat.create_table("app/big", schema, IfExists::Error).unwrap();
    let n = 12_000i64;
    t.insert((0..n).map(|k| row! {"k" => k, "text" => "x".repeat((k % 7) as usize)})).unwrap();
    t.update([("text", lit("changed"))], col("k").lt(300)).unwrap();
    t.delete(col("k").ge(n - 100)).unwrap();
    let low = cat.create_view("app/low", &t, col("k").lt(50), IfExists::Error).unwrap();
    let v = t.version().unwrap();
    let before: Vec<Row> = t.select_all().collect().unwrap();
    assert_eq!(before.len(), (n - 100) as usize);

    // The first is filled by a copy on a server; the second in place (the first copy waits).
    let shout = Udf::new("shout", 1, |s: String| if s == "xxx" { Err("three x") } else { Ok(s.to_uppercase()) });
    cat.register(&shout);
    let ignore = ColumnOptions { on_error: OnError::Ignore, ..ColumnOptions::default() };
    t.add_computed_column("loud", shout.call([col("text")]), ignore).unwrap();
    t.add_computed_column("len", col("text").length(), ColumnOptions::default()).unwrap();
    let cells = t.select([col("text"), col("len"), col("loud"), col("loud").errormsg().alias("why")]);
    let mut failed = 0;
    for r in cells.collect().unwrap() {
        let text: String = r.get("text").unwrap();
        assert_eq!(r.get::<i64>("len").unwrap(), text.chars().count() as i64, "{r}");
        let (loud, why): (Option<String>, Option<String>) = (r.get("loud").unwrap(), r.get("why").unwrap());
        if text == "xxx" {
            failed += 1;
            assert!(loud.is_none() && why.is_some_and(|w| w.contains("three x")), "{r}");
        } else {
            assert_eq!((loud, why), (Some(text.to_uppercase()), None), "{r}");
        }
    }
    assert_eq!(failed, (300..n - 100).filter(|k| k % 7 == 3).count());
    let shown = low.select([col("k"), col("len"), col("loud")]).collect().unwrap();
    assert_eq!(shown.len(), 50);
    assert!(shown.iter().all(|r| r.get::<String>("loud").unwrap() == "CHANGED"), "{shown:?}");
    let old = cat.get_table(format!("app/big:{}", v.0)).unwrap();
    assert_eq!(old.select_all().collect().unwrap(), before, "the version before the columns reads as it did");
    let msg = fails_cleanly(&cat, ErrorCode::DuplicateKey, || t.insert([row! {"k" => 5, "text" => "again"}]));
    assert!(msg.contains("k = 5"), "{msg}");
    t.insert([row! {"k" => n, "text" => "new!"}]).unwrap();
    let new = t.select([col("len")]).where_(col("k").eq(n)).collect().unwrap();
    assert_eq!(new[0].get::<i64>("len").unwrap(), 4);
    assert_eq!(t.count().unwrap(), (n - 99) as u64);

    t.revert().unwrap(); // the insert
    t.revert().unwrap(); // the builtin column
    t.revert().unwrap(); // the UDF column
    assert_eq!(t.select_all().collect().unwrap(), before);
    t.revert().unwrap(); // the delete: its rows come back
    assert_eq!(t.count().unwrap(), n as u64);
    let changed = t.select([col("text")]).where_(col("k").eq(7)).collect().unwrap();
    assert_eq!(changed[0].get::<String>("text").unwrap(), "changed");
    assert_eq!(cat.integrity_check().map_err(|e| e.to_string()), Ok(()));
}

/// Int arithmetic a catalog runs in SQL (on a server: its own operators, guarded; on SQLite:
/// Tabula's registered functions) gives what Rust's `checked_*` gives for every pair of
/// edge values: null on overflow, for a zero divisor and for `i64::MIN / -1`, division
/// truncated toward zero, a remainder with the dividend's sign. Each expression fills a
/// column in SQL and a second one through an identity UDF, which only Rust computes; a
/// filter on it counts the same rows; an update by it ends with the values Rust gives.
#[test]
fn int_arithmetic_in_sql_agrees_with_rust_on_edge_values() {
    let cat = catalog();
    let shape = Schema::new().nullable("i", ColumnType::Int).nullable("j", ColumnType::Int);
    let t = cat.create_table("app/t", shape, IfExists::Error).unwrap();
    let edges =
        [Some(i64::MIN), Some(i64::MIN + 1), Some(-3), Some(-1), Some(0), Some(1), Some(7), Some(i64::MAX), None];
    let pairs: Vec<(Option<i64>, Option<i64>)> = edges.iter().flat_map(|i| edges.iter().map(|j| (*i, *j))).collect();
    t.insert(pairs.iter().map(|(i, j)| row! {"i" => *i, "j" => *j})).unwrap();
    let identity = Udf::row("same_int", 1, [ColumnType::Int], ColumnType::Int, |args| Ok(args[0].clone()));
    cat.register(&identity);
    let exprs = [
        ("sum", col("i") + col("j")),
        ("difference", col("i") - col("j")),
        ("product", col("i") * col("j")),
        ("quotient", col("i") / col("j")),
        ("remainder", col("i") % col("j")),
        ("negated", -col("i")),
        ("mixed", (col("i") * 2 - col("j")) / 3 + 1),
    ];
    for (name, expr) in exprs {
        t.add_computed_column(name, expr.clone(), ColumnOptions::default()).unwrap();
        let in_rust = format!("{name}_in_rust");
        t.add_computed_column(&in_rust, identity.call([expr.clone()]), ColumnOptions::default()).unwrap();
        for r in t.select([col(name), col(&in_rust)]).collect().unwrap() {
            let values = r.into_values();
            assert_eq!(values[0], values[1], "{name} = {expr}");
        }
        let positive = t.select_all().where_(expr.clone().gt(0)).count().unwrap();
        let in_rust_positive = t.select_all().where_(col(&in_rust).gt(0)).count().unwrap();
        assert_eq!(positive, in_rust_positive, "{expr} > 0");
    }
    let sums: Vec<Option<i64>> = pairs.iter().map(|(i, j)| i.zip(*j).and_then(|(i, j)| i.checked_add(j))).collect();
    let nulls = sums.iter().filter(|s| s.is_none()).count() as u64;
    assert_eq!(t.select_all().where_((col("i") + col("j")).is_null()).count().unwrap(), nulls);
    t.update([("i", col("i") + col("j"))], col("j").is_not_null()).unwrap();
    let mut got: Vec<Option<i64>> =
        t.select([col("i")]).collect().unwrap().iter().map(|r| r.get("i").unwrap()).collect();
    let mut want: Vec<Option<i64>> =
        pairs.iter().zip(&sums).map(|((i, j), sum)| if j.is_some() { *sum } else { *i }).collect();
    // Updated rows are new row versions, written after the others: compared as multisets.
    got.sort();
    want.sort();
    assert_eq!(got, want);
}
