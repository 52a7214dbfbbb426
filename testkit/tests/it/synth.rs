//! Synthetic data: realistic, deterministic, overridable, streamed into tables.

use proptest::prelude::*;
use tabula::{col, Catalog, ColumnType, IfExists, Schema, Table, Value};
use tabula_testkit::{row_strategy, Gen, Synth};

fn users(cat: &Catalog) -> Table {
    cat.create_table(
        "users",
        Schema::new()
            .required("user_id", ColumnType::Int)
            .required("name", ColumnType::String)
            .required("email", ColumnType::String)
            .nullable("phone", ColumnType::String)
            .required("created_at", ColumnType::Timestamp)
            .required("bio", ColumnType::String)
            .required("plan", ColumnType::String)
            .required("score", ColumnType::Float),
        IfExists::Error,
    )
    .unwrap()
}

fn synth() -> Synth {
    Synth::new(42)
        .null_ratio(0.25)
        .column("plan", Gen::choice([("free", 3), ("pro", 1)]))
        .column("score", Gen::FloatRange(0.0, 5.0))
}

#[test]
fn the_first_rows_of_a_seed_are_pinned() {
    let cat = Catalog::in_memory().unwrap();
    let t = users(&cat);
    let rows: Vec<String> = synth().rows(&t.schema().unwrap(), 3).map(|r| r.to_string()).collect();
    insta::assert_snapshot!(rows.join("\n"));
}

/// Every generator and every column type, pinned: a change of `rand`, of the stable hash, or
/// of how an index is drawn (`usize` differs between 32- and 64-bit targets) shows here.
#[test]
fn every_generator_is_pinned() {
    let cat = Catalog::in_memory().unwrap();
    let schema = Schema::from_columns(&all_types().columns)
        .required("code", ColumnType::String)
        .required("words", ColumnType::String)
        .required("corpus", ColumnType::String)
        .required("range", ColumnType::Int)
        .required("street", ColumnType::String)
        .required("quantity", ColumnType::Int);
    let t = cat.create_table("g", schema, IfExists::Error).unwrap();
    let rows: Vec<String> = Synth::new(2026)
        .null_ratio(0.2)
        .column("code", Gen::Pattern("[A-Z]{2}-[a-z]{2}-\\d{3}".into()))
        .column("words", Gen::Words(2, 5))
        .column("corpus", Gen::corpus(["one.", "two.", "three.", "four."]))
        .column("range", Gen::Range(-5, 5))
        .rows(&t.schema().unwrap(), 4)
        .map(|r| r.to_string())
        .collect();
    insta::assert_snapshot!(rows.join("\n"));
}

#[test]
fn the_same_seed_gives_the_same_rows_and_another_seed_other_rows() {
    let cat = Catalog::in_memory().unwrap();
    let schema = users(&cat).schema().unwrap();
    let a: Vec<_> = synth().rows(&schema, 200).collect();
    let b: Vec<_> = synth().rows(&schema, 200).collect();
    assert_eq!(a, b);
    let c: Vec<_> = Synth::new(43).rows(&schema, 200).collect();
    assert_ne!(a, c);
    // Adding a column does not change the others.
    let wider = Schema::from_columns(&schema.columns).nullable("extra", ColumnType::Int);
    let t2 = cat.create_table("wider", wider, IfExists::Error).unwrap();
    let d: Vec<_> = synth().rows(&t2.schema().unwrap(), 200).collect();
    for (x, y) in a.iter().zip(&d) {
        assert_eq!(x.value("email"), y.value("email"));
        assert_eq!(x.value("bio"), y.value("bio"));
    }
}

#[test]
fn values_look_like_their_columns() {
    let cat = Catalog::in_memory().unwrap();
    let t = users(&cat);
    let done = synth().fill(&t, 2000).unwrap();
    assert_eq!(done.inserted, 2000);
    let ids: Vec<i64> =
        t.select([col("user_id")]).collect().unwrap().iter().map(|r| r.get("user_id").unwrap()).collect();
    assert_eq!(ids, (1..=2000).collect::<Vec<_>>(), "*_id columns are unique");
    for r in t.select_all().head(200).unwrap() {
        let email: String = r.get("email").unwrap();
        let (user, domain) = email.split_once('@').unwrap();
        assert!(!user.is_empty() && domain.contains('.'), "{email}");
        assert_eq!(r.get::<String>("name").unwrap().split(' ').count(), 2);
        assert!(r.get::<String>("bio").unwrap().ends_with('.'));
        let plan: String = r.get("plan").unwrap();
        assert!(plan == "free" || plan == "pro");
        let score: f64 = r.get("score").unwrap();
        assert!((0.0..5.0).contains(&score));
        assert!(matches!(r.value("created_at"), Some(Value::Timestamp(_))));
    }
    let nulls = t.select_all().where_(col("phone").is_null()).count().unwrap();
    assert!((350..650).contains(&nulls), "about a quarter of phones are null: {nulls}");
    let pro = t.select_all().where_(col("plan").eq("pro")).count().unwrap();
    assert!((350..650).contains(&pro), "weights are respected: {pro}");
}

#[test]
fn patterns_ranges_constants_and_closures() {
    let cat = Catalog::in_memory().unwrap();
    let t = cat
        .create_table(
            "t",
            Schema::new()
                .required("code", ColumnType::String)
                .required("n", ColumnType::Int)
                .required("k", ColumnType::String)
                .required("sq", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    let s = Synth::new(7)
        .column("code", Gen::Pattern("[A-Z]{3}-\\d{4}".into()))
        .column("n", Gen::Range(10, 12))
        .column("k", Gen::Const(Value::from("same")))
        .column("sq", Gen::with(|_, i| Value::Int((i * i) as i64)));
    for (i, r) in s.rows(&t.schema().unwrap(), 50).enumerate() {
        let code: String = r.get("code").unwrap();
        assert_eq!(code.len(), 8);
        assert!((10..=12).contains(&r.get::<i64>("n").unwrap()));
        assert_eq!(r.get::<String>("k").unwrap(), "same");
        assert_eq!(r.get::<i64>("sq").unwrap(), (i * i) as i64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Strategies generate rows every table accepts.
    #[test]
    fn strategy_rows_insert_cleanly(rows in proptest::collection::vec(row_strategy(&all_types()), 0..20)) {
        let cat = Catalog::in_memory().unwrap();
        let t = cat.create_table("t", Schema::from_columns(&all_types().columns), IfExists::Error).unwrap();
        let n = rows.len() as u64;
        t.insert(rows).unwrap();
        prop_assert_eq!(t.count().unwrap(), n);
    }
}

fn all_types() -> tabula::TableSchema {
    let cat = Catalog::in_memory().unwrap();
    let mut schema = Schema::new();
    for (i, ty) in [
        ColumnType::Int,
        ColumnType::Float,
        ColumnType::Bool,
        ColumnType::String,
        ColumnType::Timestamp,
        ColumnType::Date,
        ColumnType::Json,
        ColumnType::Bytes,
    ]
    .into_iter()
    .enumerate()
    {
        schema = if i % 2 == 0 { schema.required(format!("c{i}"), ty) } else { schema.nullable(format!("c{i}"), ty) };
    }
    cat.create_table("s", schema, IfExists::Error).unwrap().schema().unwrap()
}

#[test]
fn values_follow_what_a_column_means() {
    let schema = Schema::new()
        .required("birth_date", ColumnType::Date)
        .required("total", ColumnType::Float)
        .required("age", ColumnType::Int)
        .required("note", ColumnType::String);
    let cat = Catalog::in_memory().unwrap();
    let t = cat.create_table("t", schema, IfExists::Error).unwrap();
    let corpus = ["Arrived late and damaged.", "Great service, thank you!", "Wrong size, sending it back."];
    let rows: Vec<_> = Synth::new(5).column("note", Gen::corpus(corpus)).rows(&t.schema().unwrap(), 2_000).collect();
    let days: Vec<i32> = rows
        .iter()
        .map(|r| match r.value("birth_date") {
            Some(Value::Date(d)) => *d,
            other => panic!("{other:?}"),
        })
        .collect();
    // 2026-01-01 minus 18 to 90 years.
    assert!(days.iter().all(|d| (20_454 - 90 * 365..=20_454 - 18 * 365).contains(d)));
    assert!(days.iter().any(|d| *d < 20_454 - 60 * 365), "old people too, not only the last few years");
    let totals: Vec<f64> = rows.iter().map(|r| r.get("total").unwrap()).collect();
    let small = totals.iter().filter(|t| **t < 20.0).count();
    let large = totals.iter().filter(|t| **t > 500.0).count();
    assert!(
        small > 100 && large > 10 && totals.iter().all(|t| *t > 0.0),
        "a plausible spread: {small} small, {large} large"
    );
    assert!(rows.iter().all(|r| (18..=90).contains(&r.get::<i64>("age").unwrap())));
    let notes: std::collections::HashSet<String> = rows.iter().map(|r| r.get("note").unwrap()).collect();
    assert!(notes.iter().all(|n| corpus.iter().any(|c| n.contains(c))) && notes.len() > 10, "{notes:?}");
}
