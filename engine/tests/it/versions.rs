//! History, revert, revert_to, read-only versions, snapshots and views.

use tabula::{col, lit, row, ColumnOptions, ColumnType, ErrorCode, Force, IfExists, Recursive, Udf, Version};

use crate::{catalog, docs, fails_cleanly, state};

#[test]
fn history_lists_every_version_newest_first() {
    let cat = catalog();
    let t = docs(&cat);
    t.update([("words", col("words") + 1)], col("draft")).unwrap();
    t.delete(col("words").gt(25)).unwrap();
    t.add_computed_column("long", col("words").gt(15), ColumnOptions::default()).unwrap();
    t.rename_column("long", "is_long").unwrap();
    let lines: Vec<String> = t
        .history()
        .unwrap()
        .iter()
        .map(|v| format!("{} {} +{} ~{} -{} | {}", v.version, v.change, v.inserted, v.updated, v.deleted, v.detail))
        .collect();
    insta::assert_snapshot!(lines.join("\n"), @r"
    5 rename column +0 ~0 -0 | rename column long to is_long
    4 add computed column +0 ~0 -0 | add computed column long = words > 15
    3 delete +0 ~0 -1 | delete where words > 25
    2 update +0 ~1 -0 | update words = words + 1 where draft
    1 insert +3 ~0 -0 | insert 3 rows
    0 create +0 ~0 -0 | create table app/docs (title String, words Int, score Float?, draft Bool)
    ");
}

/// Every mutating call reports its kind of change, in its result and in the history, as a
/// `ChangeKind` (what the testkit's destructive check matches on); a call that changes
/// nothing reports none.
#[test]
fn every_call_reports_its_kind_of_change() {
    use tabula::ChangeKind as K;
    let cat = catalog();
    let t = docs(&cat);
    let replace = ColumnOptions::if_exists(IfExists::Replace);
    let calls: Vec<(tabula::WriteResult, K)> = vec![
        (t.update([("words", col("words") + 1)], col("draft")).unwrap(), K::Update),
        (t.delete(col("words").gt(25)).unwrap(), K::Delete),
        (t.insert([row! {"title" => "delta", "words" => 5, "draft" => true}]).unwrap(), K::Insert),
        (t.add_column("tag", ColumnType::String, tabula::Value::Null, IfExists::Error).unwrap(), K::AddColumn),
        (t.add_column("tag", ColumnType::String, "x", IfExists::Replace).unwrap(), K::ReplaceColumn),
        (t.add_computed_column("long", col("words").gt(15), ColumnOptions::default()).unwrap(), K::AddComputedColumn),
        (t.add_computed_column("long", col("words").gt(9), replace).unwrap(), K::ReplaceComputedColumn),
        (t.rename_column("long", "is_long").unwrap(), K::RenameColumn),
        (t.drop_column("tag").unwrap(), K::DropColumn),
    ];
    for (done, kind) in &calls {
        assert_eq!(done.change, Some(*kind), "{done:?}");
    }
    let mut history: Vec<K> = t.history().unwrap().iter().map(|v| v.change).collect();
    history.reverse();
    let mut expected = vec![K::Create, K::Insert];
    expected.extend(calls.iter().map(|(_, k)| *k));
    assert_eq!(history, expected);
    let nothing = t.delete(col("words").gt(1_000)).unwrap();
    assert_eq!(nothing.change, None, "a call that changes nothing makes no version and reports no kind");
}

#[test]
fn every_kind_of_change_reverts_exactly() {
    let cat = catalog();
    let t = docs(&cat);
    let calls = Udf::new("twice", 1, |n: i64| n * 2);
    cat.register(&calls);
    t.add_computed_column("w2", calls.call([col("words")]), ColumnOptions::default()).unwrap();
    t.add_computed_column("w3", col("w2") + 1, ColumnOptions::default()).unwrap();
    let changes: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| {
            t.insert([row! {"title" => "d", "words" => 4, "draft" => true}]).unwrap();
        }),
        Box::new(|| {
            t.update([("words", col("words") * 10)], col("words").gt(10)).unwrap();
        }),
        Box::new(|| {
            t.delete(col("draft")).unwrap();
        }),
        Box::new(|| {
            t.add_computed_column("upper", col("title").upper(), ColumnOptions::default()).unwrap();
        }),
        Box::new(|| {
            t.add_computed_column("w2", calls.call([col("words") + 1]), ColumnOptions::if_exists(IfExists::Replace))
                .unwrap();
        }),
        Box::new(|| {
            t.add_column("lang", ColumnType::String, "en", IfExists::Error).unwrap();
        }),
        Box::new(|| {
            t.drop_column("score").unwrap();
        }),
        Box::new(|| {
            t.rename_column("title", "name").unwrap();
        }),
    ];
    for change in &changes {
        let before = state(&cat);
        change();
        assert_ne!(state(&cat), before);
        t.revert().unwrap();
        assert_eq!(state(&cat), before);
    }
}

#[test]
fn revert_to_undoes_several_and_numbers_are_never_reused() {
    let cat = catalog();
    let t = docs(&cat);
    let at_one = state(&cat);
    t.insert([row! {"title" => "d", "words" => 4, "draft" => true}]).unwrap();
    t.delete(col("words").eq(10)).unwrap();
    t.add_column("n", ColumnType::Int, 0, IfExists::Error).unwrap();
    assert_eq!(t.revert_to(Version(1)).unwrap(), Version(1));
    assert_eq!(state(&cat), at_one);
    let next = t.insert([row! {"title" => "e", "words" => 5, "draft" => true}]).unwrap();
    assert_eq!(next.version, Version(5), "reverted numbers are not handed out again");
    let versions: Vec<u64> = t.history().unwrap().iter().map(|v| v.version.0).collect();
    assert_eq!(versions, [5, 1, 0]);
    let e = cat.get_table("app/docs:3").unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(e.to_string().contains("a reverted version is gone"), "{e}");
    fails_cleanly(&cat, ErrorCode::NotFound, || t.revert_to(Version(3)));
    t.revert_to(Version(0)).unwrap();
    assert_eq!(t.count().unwrap(), 0);
    let msg = fails_cleanly(&cat, ErrorCode::NothingToRevert, || t.revert());
    assert!(msg.contains("nothing to revert"), "{msg}");
    let pinned = cat.get_table("app/docs:0").unwrap();
    fails_cleanly(&cat, ErrorCode::ReadOnly, || pinned.revert());
}

#[test]
fn snapshots_keep_their_version_even_when_the_base_is_reverted() {
    let cat = catalog();
    let t = docs(&cat);
    let snap = cat.create_snapshot("app/docs_v1", &t, IfExists::Error).unwrap();
    t.insert([row! {"title" => "d", "words" => 4, "draft" => true}]).unwrap();
    t.add_column("n", ColumnType::Int, 7, IfExists::Error).unwrap();
    assert_eq!(snap.count().unwrap(), 3);
    assert_eq!(snap.describe().unwrap().columns.len(), 4);
    let before = snap.select_all().order_by(col("title")).collect().unwrap();
    t.revert_to(Version(0)).unwrap();
    assert_eq!(t.count().unwrap(), 0);
    assert_eq!(snap.select_all().order_by(col("title")).collect().unwrap(), before, "the snapshot kept its rows");
    fails_cleanly(&cat, ErrorCode::ReadOnly, || snap.insert([row! {"title" => "x", "words" => 1, "draft" => true}]));
    fails_cleanly(&cat, ErrorCode::ReadOnly, || snap.revert());
    // The materialized snapshot no longer depends on the base.
    cat.drop_table("app/docs", Force::No).unwrap();
    assert_eq!(snap.count().unwrap(), 3);
}

#[test]
fn views_follow_their_base_in_the_same_transaction() {
    let cat = catalog();
    let t = docs(&cat);
    let shout = Udf::new("shout", 1, |s: String| s.to_uppercase());
    cat.register(&shout);
    let v = cat.create_view("app/long", &t, col("words").ge(20), IfExists::Error).unwrap();
    v.add_computed_column("loud", shout.call([col("title")]), ColumnOptions::default()).unwrap();
    let titles = |v: &tabula::Table| -> Vec<(String, String)> {
        v.select([col("title"), col("loud")])
            .order_by(col("title"))
            .collect()
            .unwrap()
            .iter()
            .map(|r| (r.get("title").unwrap(), r.get("loud").unwrap()))
            .collect()
    };
    assert_eq!(titles(&v), [("beta".into(), "BETA".into()), ("gamma".into(), "GAMMA".into())]);
    t.insert([
        row! {"title" => "delta", "words" => 50, "draft" => false},
        row! {"title" => "eps", "words" => 1, "draft" => false},
    ])
    .unwrap();
    t.update([("title", lit("zeta"))], col("title").eq("beta")).unwrap();
    t.delete(col("title").eq("gamma")).unwrap();
    assert_eq!(titles(&v), [("delta".into(), "DELTA".into()), ("zeta".into(), "ZETA".into())]);
    // Revert the base: the view is what a fresh view of the reverted base would be.
    t.revert().unwrap();
    t.revert().unwrap();
    let fresh = cat.create_view("app/fresh", &t, col("words").ge(20), IfExists::Error).unwrap();
    fresh.add_computed_column("loud", shout.call([col("title")]), ColumnOptions::default()).unwrap();
    assert_eq!(titles(&v), titles(&fresh));
    fails_cleanly(&cat, ErrorCode::ReadOnly, || v.delete(lit(true)));
    fails_cleanly(&cat, ErrorCode::InvalidArgument, || v.add_column("x", ColumnType::Int, 0, IfExists::Error));
    let msg = fails_cleanly(&cat, ErrorCode::HasDependents, || t.drop_column("words"));
    assert!(msg.contains("'app/fresh', 'app/long'"), "{msg}");
    fails_cleanly(&cat, ErrorCode::HasDependents, || t.rename_column("title", "name"));
    t.drop_column("score").unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::HasDependents, || cat.drop_table("app/docs", Force::No));
    assert!(msg.contains("'app/fresh', 'app/long'") && msg.contains("Force::Yes"), "{msg}");
    // The view's latest version follows the base's drop: only the base can revert it.
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || v.revert());
    assert!(msg.contains("follows a change of 'app/docs'; revert 'app/docs' instead"), "{msg}");
    t.revert().unwrap();
    let kinds: Vec<tabula::ChangeKind> = v.history().unwrap().iter().map(|h| h.change).collect();
    use tabula::ChangeKind::{AddComputedColumn, Create, Insert};
    assert_eq!(kinds, [Insert, AddComputedColumn, Create]);
    // A view's own change, latest, reverts on the view.
    fresh.add_computed_column("w", col("words") + 1, ColumnOptions::default()).unwrap();
    fresh.revert().unwrap();
    assert!(fresh.select([col("w")]).collect().is_err(), "reverting the view's own change drops its column");
}

#[test]
fn drop_dir_with_force_drops_dependents_in_a_valid_order() {
    let cat = catalog();
    let t = docs(&cat);
    cat.create_dir("reports", IfExists::Error).unwrap();
    cat.create_view("reports/drafts", &t, col("draft"), IfExists::Error).unwrap();
    cat.create_snapshot("app/s", &t, IfExists::Error).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::DirNotEmpty, || cat.drop_dir("app", Force::No));
    assert!(msg.contains("table 'app/s'"), "{msg}");
    cat.drop_dir("app", Force::Yes).unwrap();
    assert!(cat.list_tables("", Recursive::Yes).unwrap().is_empty(), "the view outside the directory went too");
    cat.integrity_check().unwrap();
}

#[test]
fn views_and_snapshots_are_idempotent_to_create() {
    let cat = catalog();
    let t = docs(&cat);
    let v = cat.create_view("app/v", &t, col("draft"), IfExists::Error).unwrap();
    let again = cat.create_view("app/v", &t, col("draft"), IfExists::Ignore).unwrap();
    assert_eq!(again.count().unwrap(), v.count().unwrap());
    let msg =
        fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.create_view("app/v", &t, !col("draft"), IfExists::Ignore));
    assert!(
        msg.contains("as a view of 'app/docs' where draft; asked for a view of 'app/docs' where not draft"),
        "{msg}"
    );
    cat.create_view("app/v", &t, !col("draft"), IfExists::Replace).unwrap();
    assert_eq!(cat.get_table("app/v").unwrap().count().unwrap(), 2);
    fails_cleanly(&cat, ErrorCode::InvalidExpr, || cat.create_view("app/w", &t, col("words"), IfExists::Error));
    let v = cat.get_table("app/v").unwrap();
    let s = cat.create_snapshot("app/s", &v, IfExists::Error).unwrap();
    let again = cat.create_snapshot("app/s", &v, IfExists::Ignore).unwrap();
    assert_eq!(again.count().unwrap(), s.count().unwrap());
    fails_cleanly(&cat, ErrorCode::InvalidArgument, || cat.create_snapshot("app/s2", &s, IfExists::Error));
}

#[test]
fn a_revert_computes_view_columns_for_the_rows_it_reopens() {
    // Found by the model test: the update's old row versions were ended before the view
    // (and its column) existed, so reopening them must compute the view's column.
    let cat = catalog();
    let t = docs(&cat);
    t.update([("words", col("words") + 1)], lit(true)).unwrap();
    let v = cat.create_view("app/v", &t, col("words").gt(0), IfExists::Error).unwrap();
    v.add_computed_column("w2", col("words") * 2, ColumnOptions::default()).unwrap();
    t.revert().unwrap();
    let w2: Vec<Option<i64>> =
        v.select([col("w2")]).order_by(col("words")).collect().unwrap().iter().map(|r| r.get("w2").unwrap()).collect();
    assert_eq!(w2, [Some(20), Some(40), Some(60)]);
}

/// Compaction keeps what it is told to and removes only what no kept version shows: every
/// kept version reads the same before and after, the table reverts down to the oldest kept
/// version and no further, older versions are gone, and a snapshot of a forgotten version
/// keeps its rows.
#[test]
fn compaction_keeps_every_kept_version_exactly() {
    use tabula::{CompactReport, Retention};
    let cat = catalog();
    let t = docs(&cat);
    for i in 0..6 {
        t.update([("words", col("words") + 1)], col("title").eq("alpha")).unwrap();
        t.insert([row! {"title" => format!("extra {i}"), "words" => i, "draft" => false}]).unwrap();
    }
    t.delete(col("title").eq("beta")).unwrap();
    let old_snapshot = cat.create_snapshot("app/at3", &cat.get_table("app/docs:3").unwrap(), IfExists::Error).unwrap();
    let snapshot_rows = old_snapshot.select_all().collect().unwrap();
    let current = t.version().unwrap();
    let read =
        |v: u64| cat.get_table(format!("app/docs:{v}")).unwrap().select_all().order_by(col("title")).collect().unwrap();
    let kept: Vec<_> = (current.0 - 4..=current.0).map(|v| (v, read(v))).collect();

    let report: CompactReport = t.compact(Retention::keep_versions(5)).unwrap();
    assert_eq!(report.oldest_kept, Version(current.0 - 4));
    assert_eq!(report.versions_removed, current.0 - 4);
    assert!(report.rows_removed >= 2, "old versions of alpha went: {report:?}");
    for (v, rows) in &kept {
        assert_eq!(&read(*v), rows, "version {v} reads the same");
    }
    assert_eq!(t.history().unwrap().len(), 5);
    assert_eq!(old_snapshot.select_all().collect().unwrap(), snapshot_rows, "the snapshot kept its rows");
    let e = cat.get_table(format!("app/docs:{}", current.0 - 5)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    t.revert_to(Version(current.0 - 4)).unwrap();
    assert_eq!(t.select_all().order_by(col("title")).collect().unwrap(), kept[0].1);
    let msg = fails_cleanly(&cat, ErrorCode::NothingToRevert, || t.revert());
    assert!(msg.contains("compacted away"), "{msg}");
    // The default keeps every version: nothing more to remove.
    let again = t.compact(Retention::All).unwrap();
    assert_eq!((again.versions_removed, again.rows_removed, again.columns_removed), (0, 0, 0));
    let e = fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.compact(Retention::keep_versions(0)));
    assert!(e.contains("keep at least 1"), "{e}");
    // A view has no rows of its own to shed: compact the table it reads.
    let view = cat.create_view("app/long", &t, col("words").gt(5), IfExists::Error).unwrap();
    let e = fails_cleanly(&cat, ErrorCode::InvalidArgument, || view.compact(Retention::All));
    assert!(e.contains("compact the table it reads"), "{e}");
}

/// The columns of reverted versions are dead even when every version is kept: compaction
/// drops them. And a table that keeps adding and dropping columns (5,000 times) never hits
/// SQLite's column limit when it is compacted now and then.
#[test]
fn compaction_drops_dead_columns_so_a_table_takes_new_ones_forever() {
    use tabula::Retention;
    let cat = catalog();
    let t = docs(&cat);
    t.add_computed_column("twice", col("words") * 2, ColumnOptions::default()).unwrap();
    t.revert().unwrap();
    let report = t.compact(Retention::All).unwrap();
    assert_eq!(report.columns_removed, 2, "the reverted column and its error slot");
    assert_eq!(t.count().unwrap(), 3);
    for round in 0..5 {
        for i in 0..1_000 {
            let name = format!("c{round}_{i}");
            t.add_column(&name, ColumnType::Int, tabula::Value::Null, IfExists::Error).unwrap();
            t.drop_column(&name).unwrap();
        }
        let report = t.compact(Retention::keep_versions(1)).unwrap();
        assert_eq!(report.columns_removed, 1_000, "round {round}");
    }
    t.add_column("still_works", ColumnType::Int, 1, IfExists::Error).unwrap();
    assert_eq!(t.select([col("still_works")]).collect().unwrap().len(), 3);
    assert_eq!(t.history().unwrap().len(), 2);
}

/// Every change between two versions, as `diff` reports it.
fn diff_lines(t: &tabula::Table, from: u64, to: u64) -> Vec<String> {
    let mut out = Vec::new();
    t.diff(Version(from), Version(to), |change| {
        out.push(match change {
            tabula::RowChange::Added(r) => format!("+ {r}"),
            tabula::RowChange::Removed(r) => format!("- {r}"),
            tabula::RowChange::Changed { before, after } => format!("~ {before} -> {after}"),
        });
        Ok(true)
    })
    .unwrap();
    out
}

#[test]
fn diff_reports_rows_added_removed_and_changed_between_any_two_versions() {
    let cat = catalog();
    let t = docs(&cat); // v1: alpha 10, beta 20, gamma 30
    t.update([("words", col("words") + 1)], col("title").eq("beta")).unwrap(); // v2
    t.delete(col("title").eq("gamma")).unwrap(); // v3
    t.insert([row! {"title" => "delta", "words" => 40, "score" => None::<f64>, "draft" => true}]).unwrap(); // v4
    t.insert([row! {"title" => "eps", "words" => 50, "score" => None::<f64>, "draft" => true}]).unwrap(); // v5
    t.delete(col("title").eq("eps")).unwrap(); // v6: eps came and went
    t.add_column("lang", ColumnType::String, "en", IfExists::Error).unwrap(); // v7
    t.update([("words", col("words"))], col("title").eq("alpha")).unwrap(); // v8: same values
    assert_eq!(
        diff_lines(&t, 1, 6),
        [
            "~ {title: \"beta\", words: 20, score: null, draft: true} -> {title: \"beta\", words: 21, score: null, draft: true}",
            "- {title: \"gamma\", words: 30, score: 2.5, draft: false}",
            "+ {title: \"delta\", words: 40, score: null, draft: true}",
        ]
    );
    // Backwards, added and removed swap; each side shows its own columns.
    assert_eq!(
        diff_lines(&t, 8, 1),
        [
            "~ {title: \"beta\", words: 21, score: null, draft: true, lang: \"en\"} -> {title: \"beta\", words: 20, score: null, draft: true}",
            "+ {title: \"gamma\", words: 30, score: 2.5, draft: false}",
            "- {title: \"delta\", words: 40, score: null, draft: true, lang: \"en\"}",
        ]
    );
    assert!(diff_lines(&t, 7, 8).is_empty(), "an update to the same values changes nothing");
    assert!(diff_lines(&t, 4, 4).is_empty());
    let mut seen = 0;
    t.diff(Version(1), Version(6), |_| {
        seen += 1;
        Ok(false)
    })
    .unwrap();
    assert_eq!(seen, 1, "false stops the diff");

    let e = t.diff(Version(1), Version(9), |_| Ok(true)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(e.to_string().contains("no version 9"), "{e}");
    let v = cat.create_view("app/v", &t, col("words").gt(0), IfExists::Error).unwrap();
    assert_eq!(v.diff(Version(0), Version(0), |_| Ok(true)).unwrap_err().code(), ErrorCode::InvalidArgument);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// Applying `diff(a, b)` to the rows of version a gives the rows of version b, for every
    /// pair of versions of a random history of inserts, updates and deletes.
    #[test]
    fn applying_a_diff_to_one_version_gives_the_other(
        ops in proptest::collection::vec((0u8..3, 0i64..12, -5i64..5), 1..12)
    ) {
        let cat = catalog();
        let t = cat
            .create_table("app/t", tabula::Schema::new().required("k", ColumnType::Int).nullable("x", ColumnType::Int), IfExists::Error)
            .unwrap();
        let mut next = 0;
        for (op, k, x) in ops {
            match op {
                0 => {
                    t.insert((0..k % 3 + 1).map(|i| row! {"k" => next + i, "x" => x})).unwrap();
                    next += k % 3 + 1;
                }
                1 => { t.update([("x", col("x") + x)], col("k").le(k)).unwrap(); }
                _ => { t.delete(col("k").eq(k)).unwrap(); }
            }
        }
        let last = t.version().unwrap().0;
        let rows = |v: u64| -> std::collections::BTreeMap<i64, String> {
            cat.get_table(format!("app/t:{v}").as_str()).unwrap().select_all().collect().unwrap()
                .into_iter().map(|r| (r.get::<i64>("k").unwrap(), r.to_string())).collect()
        };
        for a in 0..=last {
            for b in 0..=last {
                let mut applied = rows(a);
                t.diff(Version(a), Version(b), |change| {
                    match change {
                        tabula::RowChange::Added(r) => {
                            assert!(applied.insert(r.get::<i64>("k")?, r.to_string()).is_none(), "added twice: {r}");
                        }
                        tabula::RowChange::Removed(r) => {
                            assert_eq!(applied.remove(&r.get::<i64>("k")?), Some(r.to_string()));
                        }
                        tabula::RowChange::Changed { before, after } => {
                            assert_ne!(before, after);
                            assert_eq!(applied.insert(after.get::<i64>("k")?, after.to_string()), Some(before.to_string()));
                        }
                    }
                    Ok(true)
                }).unwrap();
                proptest::prop_assert_eq!(applied, rows(b), "diff {} -> {}", a, b);
            }
        }
    }
}

/// `IfExists::Ignore` keeps an existing snapshot only when it is the one asked for: of the
/// same table at the same version. Anything else is an error saying what is there and what
/// was asked for.
#[test]
fn ignore_never_hides_a_different_snapshot() {
    let cat = catalog();
    let t = docs(&cat);
    let other =
        cat.create_table("app/other", tabula::Schema::new().required("x", ColumnType::Int), IfExists::Error).unwrap();
    let snap = cat.create_snapshot("app/s", &t, IfExists::Error).unwrap();
    let again = cat.create_snapshot("app/s", &t, IfExists::Ignore).unwrap();
    assert_eq!(again.count().unwrap(), snap.count().unwrap(), "the identical snapshot is kept");
    cat.create_view("app/v", &t, col("draft"), IfExists::Error).unwrap();
    let readers: Vec<String> = t.dependents().unwrap().iter().map(|p| p.to_string()).collect();
    assert_eq!(readers, ["app/s", "app/v"]);
    assert!(other.dependents().unwrap().is_empty());
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.create_snapshot("app/s", &other, IfExists::Ignore));
    assert!(
        msg.contains("as a snapshot of 'app/docs' at version 1; asked for a snapshot of 'app/other' at version 0"),
        "{msg}"
    );
    t.insert([row! {"title" => "delta", "words" => 40, "score" => None::<f64>, "draft" => true}]).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.create_snapshot("app/s", &t, IfExists::Ignore));
    assert!(msg.contains("asked for a snapshot of 'app/docs' at version 2"), "{msg}");
    let msg =
        fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.create_view("app/s", &t, col("draft"), IfExists::Ignore));
    assert!(msg.contains("asked for a view of 'app/docs' where draft"), "{msg}");
    // Reverted past, the snapshot holds its own copy and can never be asked for again.
    t.revert().unwrap();
    t.revert().unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::AlreadyExists, || cat.create_snapshot("app/s", &t, IfExists::Ignore));
    assert!(msg.contains("a snapshot of version 1 of a table since reverted past it"), "{msg}");
}

/// Updating a base column recomputes only the view columns that read it, directly or
/// through a base computed column or another view column; the others keep their values
/// and their UDFs are not called. A row the update brings into the view gets every column.
#[test]
fn a_base_update_recomputes_only_the_view_columns_it_affects() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let cat = catalog();
    let t = cat
        .create_table(
            "app/t",
            tabula::Schema::new()
                .required("k", ColumnType::Int)
                .required("a", ColumnType::Int)
                .required("b", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    t.add_computed_column("a2", col("a") * 2, ColumnOptions::default()).unwrap();
    t.insert((0..10).map(|k| row! {"k" => k, "a" => k, "b" => k % 2})).unwrap();
    let counted = |name: &str| {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let udf = Udf::new(name, 1, move |n: i64| -> i64 {
            seen.fetch_add(1, Ordering::SeqCst);
            n + 1000
        });
        cat.register(&udf);
        (udf, calls)
    };
    let (fa, calls_a) = counted("fa");
    let (fb, calls_b) = counted("fb");
    let (fc, calls_c) = counted("fc");
    let v = cat.create_view("app/v", &t, col("b").eq(0), IfExists::Error).unwrap();
    v.add_computed_column("va", fa.call([col("a2")]), ColumnOptions::default()).unwrap();
    v.add_computed_column("vk", fb.call([col("k")]), ColumnOptions::default()).unwrap();
    v.add_computed_column("vva", fc.call([col("va")]), ColumnOptions::default()).unwrap();
    let reset = || [&calls_a, &calls_b, &calls_c].map(|c| c.swap(0, Ordering::SeqCst));
    assert_eq!(reset(), [5, 5, 5]);

    // a changes for 2 rows in the view: va (through a2) and vva (through va) only.
    t.update([("a", col("a") + 100)], col("k").le(2).and(col("b").eq(0))).unwrap();
    assert_eq!(reset(), [2, 0, 2]);
    // b changes for rows outside the view and keeps them out: no call at all.
    t.update([("b", lit(3))], col("b").eq(1)).unwrap();
    assert_eq!(reset(), [0, 0, 0]);
    // b changes for 2 rows and brings them into the view: every column for those two.
    t.update([("b", lit(0))], col("k").ge(8)).unwrap();
    assert_eq!(reset(), [1, 1, 1], "k = 8 was already in the view; k = 9 enters it");
    let rows: Vec<(i64, i64, i64, i64)> = v
        .select([col("k"), col("va"), col("vk"), col("vva")])
        .order_by(col("k"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| (r.get("k").unwrap(), r.get("va").unwrap(), r.get("vk").unwrap(), r.get("vva").unwrap()))
        .collect();
    let want = |k: i64, a: i64| (k, 2 * a + 1000, k + 1000, 2 * a + 2000);
    assert_eq!(rows, [want(0, 100), want(2, 102), want(4, 4), want(6, 6), want(8, 8), want(9, 9)]);
    // Older versions read as they were; revert brings them back.
    t.revert_to(Version(2)).unwrap();
    assert_eq!(v.count().unwrap(), 5);
    assert_eq!(v.select([col("va")]).order_by(col("k")).collect().unwrap()[1].get::<i64>("va").unwrap(), 1004);
}
