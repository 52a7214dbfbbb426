//! Primary keys, batch updates by key and upserts, as a user runs them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tabula::{
    col, lit, row, Alter, Catalog, ChangeKind, ColumnOptions, ColumnType, ErrorCode, Force, IfExists, IfMissing,
    Retention, Row, Schema, Table, Udf, Version,
};

use crate::{catalog, fails_cleanly, on_server};

/// `app/products(sku String key, name String, price Int?)` with three rows.
fn products(cat: &Catalog) -> Table {
    let t = cat
        .create_table(
            "app/products",
            Schema::new()
                .required("sku", ColumnType::String)
                .required("name", ColumnType::String)
                .nullable("price", ColumnType::Int)
                .primary_key(["sku"]),
            IfExists::Error,
        )
        .unwrap();
    t.insert([
        row! { "sku" => "A", "name" => "apple", "price" => 3 },
        row! { "sku" => "B", "name" => "bread", "price" => 2 },
        row! { "sku" => "C", "name" => "cheese", "price" => None::<i64> },
    ])
    .unwrap();
    t
}

/// `(sku, name, price)` of every row, by sku.
fn listing(t: &Table) -> Vec<(String, String, Option<i64>)> {
    t.select_all()
        .order_by(col("sku"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| (r.get("sku").unwrap(), r.get("name").unwrap(), r.get("price").unwrap()))
        .collect()
}

fn item(sku: &str, name: &str, price: Option<i64>) -> (String, String, Option<i64>) {
    (sku.to_string(), name.to_string(), price)
}

#[test]
fn an_insert_of_a_key_a_live_row_has_fails_naming_the_row_and_key() {
    let cat = catalog();
    let t = products(&cat);
    let msg = fails_cleanly(&cat, ErrorCode::DuplicateKey, || {
        t.insert([row! { "sku" => "Z", "name" => "zest" }, row! { "sku" => "B", "name" => "butter" }])
    });
    assert!(msg.contains("row 1: 'app/products' already has a row with primary key sku = \"B\""), "{msg}");
    assert!(msg.contains("Table::upsert"), "{msg}");
}

#[test]
fn two_rows_of_one_insert_with_one_key_fail_whether_in_one_statement_or_not() {
    let cat = catalog();
    let t = products(&cat);
    // Rows 1 and 2 land in one multi-row statement; rows 3 and 90 in different ones.
    let msg = fails_cleanly(&cat, ErrorCode::DuplicateKey, || {
        t.insert([
            row! { "sku" => "X", "name" => "x" },
            row! { "sku" => "Y", "name" => "y" },
            row! { "sku" => "Y", "name" => "y2" },
        ])
    });
    assert!(
        msg.contains("rows 1 and 2 of the insert into 'app/products' have the same primary key sku = \"Y\""),
        "{msg}"
    );
    let rows: Vec<Row> = (0..100)
        .map(|i| {
            let sku = if i == 90 { "k3".to_string() } else { format!("k{i}") };
            row! { "sku" => sku, "name" => "n" }
        })
        .collect();
    let msg = fails_cleanly(&cat, ErrorCode::DuplicateKey, || t.insert(rows));
    // A server copies thousands of rows at a time: there, rows 3 and 90 go in together.
    let expected = match on_server(&cat) {
        true => "rows 3 and 90 of the insert into 'app/products' have the same primary key sku = \"k3\"",
        false => "row 90 of the insert into 'app/products' repeats the primary key sku = \"k3\"",
    };
    assert!(msg.contains(expected), "{msg}");
}

#[test]
fn a_deleted_key_can_be_inserted_again_and_older_versions_keep_both() {
    let cat = catalog();
    let t = products(&cat);
    t.delete(col("sku").eq("A")).unwrap();
    let v = t.insert([row! { "sku" => "A", "name" => "apricot", "price" => 5 }]).unwrap().version;
    assert_eq!(listing(&t)[0], item("A", "apricot", Some(5)));
    let before = cat.get_table(format!("app/products:{}", v.0 - 2)).unwrap();
    assert_eq!(listing(&before)[0], item("A", "apple", Some(3)));
    // Reverting both brings the first row back under its key, which stays enforced.
    t.revert().unwrap();
    t.revert().unwrap();
    assert_eq!(listing(&t)[0], item("A", "apple", Some(3)));
    let e = t.insert([row! { "sku" => "A", "name" => "again" }]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::DuplicateKey);
}

#[test]
fn upsert_replaces_given_columns_of_known_keys_and_inserts_new_ones_as_one_version() {
    let cat = catalog();
    let t = products(&cat);
    let before = t.version().unwrap();
    let w = t
        .upsert([
            row! { "sku" => "B", "price" => 4 },
            row! { "sku" => "D", "name" => "dates", "price" => 9 },
            row! { "sku" => "C", "name" => "cheddar" },
        ])
        .unwrap();
    assert_eq!((w.change, w.updated, w.inserted), (Some(ChangeKind::BatchUpdate), 2, 1));
    assert_eq!(w.version, Version(before.0 + 1));
    assert_eq!(
        listing(&t),
        [
            item("A", "apple", Some(3)),
            item("B", "bread", Some(4)),
            item("C", "cheddar", None),
            item("D", "dates", Some(9))
        ]
    );
    let last = t.history().unwrap().remove(0);
    assert_eq!(last.detail, "batch update of 3 rows by sku: 2 updated, 1 inserted (set name, price)");
    // The old row versions stay readable, and one revert undoes the whole batch.
    let old = cat.get_table(format!("app/products:{}", before.0)).unwrap();
    assert_eq!(listing(&old)[1], item("B", "bread", Some(2)));
    t.revert().unwrap();
    assert_eq!(listing(&t), listing(&old));
}

#[test]
fn an_upserted_new_row_must_give_every_required_column() {
    let cat = catalog();
    let t = products(&cat);
    let msg = fails_cleanly(&cat, ErrorCode::NotNull, || {
        t.upsert([row! { "sku" => "B", "price" => 1 }, row! { "sku" => "N", "price" => 1 }])
    });
    assert!(msg.contains("row 1: column 'name' is required"), "{msg}");
}

#[test]
fn batch_update_refuses_unknown_keys_unless_told_to_skip_them() {
    let cat = catalog();
    let t = products(&cat);
    let batch = || {
        vec![
            row! { "sku" => "A", "price" => 10 },
            row! { "sku" => "nope", "price" => 1 },
            row! { "sku" => "gone", "price" => 1 },
        ]
    };
    let msg = fails_cleanly(&cat, ErrorCode::NotFound, || t.batch_update(batch(), IfMissing::Error));
    assert!(msg.contains("2 of the 3 rows match no row, the first with sku = \"gone\""), "{msg}");
    let w = t.batch_update(batch(), IfMissing::Ignore).unwrap();
    assert_eq!((w.updated, w.inserted), (1, 0));
    assert_eq!(listing(&t)[0], item("A", "apple", Some(10)));
    assert_eq!(t.count().unwrap(), 3);
    // A batch that matches nothing makes no version.
    let v = t.version().unwrap();
    let w = t.batch_update([row! { "sku" => "nope", "price" => 1 }], IfMissing::Ignore).unwrap();
    assert_eq!((w.change, w.version), (None, v));
}

#[test]
fn bad_batches_fail_before_changing_anything() {
    let cat = catalog();
    let t = products(&cat);
    let msg = fails_cleanly(&cat, ErrorCode::DuplicateKey, || {
        t.upsert([
            row! { "sku" => "A", "price" => 1 },
            row! { "sku" => "B", "price" => 1 },
            row! { "sku" => "A", "price" => 2 },
        ])
    });
    assert!(msg.contains("rows 0 and 2 of the batch have the same primary key sku = \"A\""), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::NotNull, || t.upsert([row! { "name" => "no key" }]));
    assert!(msg.contains("row 0: key column 'sku' has no value"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::NotNull, || t.upsert([row! { "sku" => "A", "name" => None::<String> }]));
    assert!(msg.contains("row 0: column 'name' is required but is set to null"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::UnknownColumn, || t.upsert([row! { "sku" => "A", "colour" => "red" }]));
    assert!(msg.contains("row 0: no column 'colour'"), "{msg}");
    let msg = fails_cleanly(&cat, ErrorCode::TypeMismatch, || t.upsert([row! { "sku" => "A", "price" => "cheap" }]));
    assert!(msg.contains("row 0, column 'price'"), "{msg}");
    let plain = crate::docs(&cat);
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || plain.upsert([row! { "title" => "alpha" }]));
    assert!(msg.contains("'app/docs' has no primary key"), "{msg}");
}

#[test]
fn a_batch_recomputes_only_the_columns_downstream_of_what_it_sets() {
    let cat = catalog();
    let t = products(&cat);
    let calls = Arc::new(AtomicU64::new(0));
    let counted = |name: &'static str, calls: Arc<AtomicU64>| {
        Udf::new(name, 1, move |s: String| {
            calls.fetch_add(1, Ordering::SeqCst);
            s.to_uppercase()
        })
    };
    let shout = counted("shout", calls.clone());
    let name_calls = Arc::new(AtomicU64::new(0));
    let loud = counted("loud", name_calls.clone());
    cat.register(&shout);
    cat.register(&loud);
    t.add_computed_column("label", shout.call([col("sku")]), ColumnOptions::default()).unwrap();
    t.add_computed_column("loud_name", loud.call([col("name")]), ColumnOptions::default()).unwrap();
    t.add_computed_column("double", col("price") * 2, ColumnOptions::default()).unwrap();
    calls.store(0, Ordering::SeqCst);
    name_calls.store(0, Ordering::SeqCst);
    t.upsert([
        row! { "sku" => "A", "price" => 7 },
        row! { "sku" => "B", "name" => "brioche" },
        row! { "sku" => "E", "name" => "eggs" },
    ])
    .unwrap();
    // `label` reads only the key: computed for the new row alone. `loud_name` for the row
    // whose name changed and the new one.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(name_calls.load(Ordering::SeqCst), 2);
    let rows =
        t.select([col("sku"), col("loud_name"), col("double"), col("label")]).order_by(col("sku")).collect().unwrap();
    let got: Vec<(String, String, Option<i64>, String)> = rows
        .iter()
        .map(|r| {
            (r.get("sku").unwrap(), r.get("loud_name").unwrap(), r.get("double").unwrap(), r.get("label").unwrap())
        })
        .collect();
    assert_eq!(got[0], ("A".into(), "APPLE".into(), Some(14), "A".into()));
    assert_eq!(got[1], ("B".into(), "BRIOCHE".into(), Some(4), "B".into()));
    assert_eq!(got[3], ("E".into(), "EGGS".into(), None, "E".into()));
}

#[test]
fn views_follow_a_batch_update() {
    let cat = catalog();
    let t = products(&cat);
    let cheap = cat.create_view("app/cheap", &t, col("price").le(3), IfExists::Error).unwrap();
    cheap.add_computed_column("tag", col("name").upper(), ColumnOptions::default()).unwrap();
    let skus = |v: &Table| -> Vec<(String, String)> {
        v.select([col("sku"), col("tag")])
            .order_by(col("sku"))
            .collect()
            .unwrap()
            .iter()
            .map(|r| (r.get("sku").unwrap(), r.get("tag").unwrap()))
            .collect()
    };
    assert_eq!(skus(&cheap), [("A".into(), "APPLE".into()), ("B".into(), "BREAD".into())]);
    // A leaves the view, C enters it, B is renamed, F is new.
    t.upsert([
        row! { "sku" => "A", "price" => 30 },
        row! { "sku" => "C", "price" => 1 },
        row! { "sku" => "B", "name" => "bagel" },
        row! { "sku" => "F", "name" => "figs", "price" => 2 },
    ])
    .unwrap();
    assert_eq!(
        skus(&cheap),
        [("B".into(), "BAGEL".into()), ("C".into(), "CHEESE".into()), ("F".into(), "FIGS".into())]
    );
}

#[test]
fn an_update_that_would_duplicate_a_key_fails_cleanly() {
    let cat = catalog();
    let t = products(&cat);
    let msg = fails_cleanly(&cat, ErrorCode::DuplicateKey, || t.update([("sku", lit("A"))], col("sku").eq("B")));
    assert!(msg.contains("setting sku would give two live rows the same primary key (sku)"), "{msg}");
    // Renaming a key to a free one is fine.
    t.update([("sku", lit("Q"))], col("sku").eq("B")).unwrap();
    assert_eq!(listing(&t)[2], item("Q", "bread", Some(2)));
}

#[test]
fn a_composite_key_matches_on_every_column() {
    let cat = catalog();
    let t = cat
        .create_table(
            "app/stock",
            Schema::new()
                .required("shop", ColumnType::String)
                .required("day", ColumnType::Int)
                .required("units", ColumnType::Int)
                .primary_key(["shop", "day"]),
            IfExists::Error,
        )
        .unwrap();
    t.insert([row! { "shop" => "n", "day" => 1, "units" => 5 }, row! { "shop" => "s", "day" => 1, "units" => 6 }])
        .unwrap();
    let w = t
        .upsert([row! { "shop" => "n", "day" => 1, "units" => 50 }, row! { "shop" => "n", "day" => 2, "units" => 7 }])
        .unwrap();
    assert_eq!((w.updated, w.inserted), (1, 1));
    let units: Vec<i64> = t
        .select([col("units")])
        .order_by(col("shop"))
        .order_by(col("day"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| r.get("units").unwrap())
        .collect();
    assert_eq!(units, [50, 7, 6]);
    let msg =
        fails_cleanly(&cat, ErrorCode::DuplicateKey, || t.insert([row! { "shop" => "s", "day" => 1, "units" => 0 }]));
    assert!(msg.contains("primary key (shop, day) = (\"s\", 1)"), "{msg}");
}

#[test]
fn key_columns_cannot_be_dropped_loosened_or_replaced() {
    let cat = catalog();
    let t = products(&cat);
    for (msg, what) in [
        (fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.drop_column("sku")), "dropped"),
        (fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.alter_column("sku", Alter::Nullable)), "made nullable"),
        (
            fails_cleanly(&cat, ErrorCode::InvalidArgument, || {
                t.add_computed_column("sku", col("name"), ColumnOptions::if_exists(IfExists::Replace))
            }),
            "replaced by a computed column",
        ),
        (
            fails_cleanly(&cat, ErrorCode::InvalidArgument, || {
                t.add_column("sku", ColumnType::String, "x", IfExists::Replace)
            }),
            "replaced",
        ),
    ] {
        assert!(msg.contains(&format!("column 'sku' is part of the primary key (sku) and cannot be {what}")), "{msg}");
    }
    // Renaming keeps the key.
    t.rename_column("sku", "code").unwrap();
    assert_eq!(t.describe().unwrap().primary_key, ["code"]);
    assert_eq!(t.insert([row! { "code" => "A", "name" => "x" }]).unwrap_err().code(), ErrorCode::DuplicateKey);
}

#[test]
fn bad_primary_keys_are_refused_at_creation() {
    let cat = catalog();
    let base = || {
        Schema::new()
            .required("id", ColumnType::Int)
            .nullable("note", ColumnType::String)
            .required("x", ColumnType::Float)
    };
    for (schema, code, says) in [
        (base().primary_key(["nope"]), ErrorCode::UnknownColumn, "primary key: no column 'nope'"),
        (base().primary_key(["note"]), ErrorCode::InvalidArgument, "primary key column 'note' is nullable"),
        (base().primary_key(["x"]), ErrorCode::InvalidArgument, "primary key column 'x' is Float"),
        (base().primary_key(["id", "id"]), ErrorCode::InvalidArgument, "column 'id' is named twice"),
    ] {
        let msg = fails_cleanly(&cat, code, || cat.create_table("app/t", schema, IfExists::Error));
        assert!(msg.contains(says), "{msg}");
    }
}

#[test]
fn a_reused_physical_table_has_a_key_exactly_when_its_new_table_does() {
    let cat = catalog();
    let keyed = || Schema::new().required("id", ColumnType::Int).primary_key(["id"]);
    let plain = || Schema::new().required("id", ColumnType::Int);
    for round in 0..3 {
        let t = cat.create_table("app/k", keyed(), IfExists::Error).unwrap();
        t.insert([row! { "id" => 1 }]).unwrap();
        assert_eq!(t.insert([row! { "id" => 1 }]).unwrap_err().code(), ErrorCode::DuplicateKey, "round {round}");
        cat.drop_table("app/k", Force::No).unwrap();
        let t = cat.create_table("app/p", plain(), IfExists::Error).unwrap();
        t.insert([row! { "id" => 1 }, row! { "id" => 1 }]).unwrap();
        cat.drop_table("app/p", Force::No).unwrap();
    }
    cat.integrity_check().unwrap();
}

#[test]
fn compaction_keeps_the_key() {
    let cat = catalog();
    let t = products(&cat);
    t.add_column("tmp", ColumnType::Int, 0, IfExists::Error).unwrap();
    t.drop_column("tmp").unwrap();
    t.upsert([row! { "sku" => "A", "price" => 1 }]).unwrap();
    t.compact(Retention::keep_versions(1)).unwrap();
    assert_eq!(t.insert([row! { "sku" => "A", "name" => "x" }]).unwrap_err().code(), ErrorCode::DuplicateKey);
    assert_eq!(t.count().unwrap(), 3);
}

#[test]
fn a_batch_cannot_set_a_computed_column() {
    let cat = catalog();
    let t = products(&cat);
    t.add_computed_column("p2", col("price") * 2, ColumnOptions::default()).unwrap();
    let msg = fails_cleanly(&cat, ErrorCode::InvalidArgument, || t.upsert([row! { "sku" => "A", "p2" => 1 }]));
    assert!(msg.contains("row 0: column 'p2' is computed; set its inputs instead"), "{msg}");
}

/// Batch updates of tables whose keys have different types, on one handle: the stage of each
/// has that table's key types (a stage prepared for one must not bind the other's values).
#[test]
fn batch_writes_to_tables_with_keys_of_different_types_on_one_handle() {
    let cat = catalog();
    let by_int = cat
        .create_table(
            "by_int",
            Schema::new().required("k", ColumnType::Int).nullable("v", ColumnType::String).primary_key(["k"]),
            IfExists::Error,
        )
        .unwrap();
    let by_text = cat
        .create_table(
            "by_text",
            Schema::new().required("k", ColumnType::String).nullable("v", ColumnType::Int).primary_key(["k"]),
            IfExists::Error,
        )
        .unwrap();
    for round in 0..2i64 {
        by_int.upsert((0..50i64).map(|i| row! {"k" => i, "v" => format!("r{round}")})).unwrap();
        by_text.upsert((0..50i64).map(|i| row! {"k" => format!("k{i}"), "v" => round})).unwrap();
    }
    assert_eq!(by_int.count().unwrap(), 50);
    assert_eq!(by_text.count().unwrap(), 50);
    let v: Vec<i64> = by_text.select([col("v")]).collect().unwrap().iter().map(|r| r.get("v").unwrap()).collect();
    assert!(v.iter().all(|v| *v == 1), "{v:?}");
}
