//! Queries: projections, filters, order, limit, head, count, collect_as, streaming.

use serde::Deserialize;
use tabula::{col, lit, row, ColumnType, ErrorCode, IfExists, Row, Schema, Value};

use crate::{catalog, docs};

fn column<T: tabula::FromValue>(rows: &[Row], name: &str) -> Vec<T> {
    rows.iter().map(|r| r.get(name).unwrap()).collect()
}

#[test]
fn select_expressions_with_aliases() {
    let cat = catalog();
    let t = docs(&cat);
    let rows = t
        .select([
            col("title"),
            (col("words") * 2 + 1).alias("w"),
            col("words") / 4,
            col("score").is_null().alias("missing"),
        ])
        .order_by(col("title"))
        .collect()
        .unwrap();
    assert_eq!(rows[0].columns(), ["title", "w", "words / 4", "missing"]);
    assert_eq!(column::<i64>(&rows, "w"), [21, 41, 61]);
    assert_eq!(column::<i64>(&rows, "words / 4"), [2, 5, 7], "Int / Int is integer division");
    assert_eq!(column::<bool>(&rows, "missing"), [false, true, false]);
    assert_eq!(rows[1].to_string(), "{title: \"beta\", w: 41, words / 4: 5, missing: true}");
}

#[test]
fn filters_follow_three_valued_logic() {
    let cat = catalog();
    let t = docs(&cat);
    let titles = |pred: tabula::Expr| -> Vec<String> {
        column(&t.select([col("title")]).where_(pred).order_by(col("title")).collect().unwrap(), "title")
    };
    assert_eq!(titles(col("score").gt(1.0)), ["gamma"]);
    assert_eq!(titles(!col("score").gt(1.0)), ["alpha"], "null is neither true nor false");
    assert_eq!(titles(col("score").gt(1.0).or(col("draft"))), ["beta", "gamma"]);
    assert_eq!(titles(col("words").ne(20).and(!col("draft"))), ["alpha", "gamma"]);
    assert_eq!(titles((col("words") % 20).eq(10)), ["alpha", "gamma"]);
    assert_eq!(titles(col("words").gt(10).and(col("words").lt(30))), ["beta"]);
    assert_eq!(titles(col("score").is_null()), ["beta"]);
    assert_eq!(titles(col("title").ge("b")), ["beta", "gamma"]);
    assert_eq!(titles((col("words") / 0).is_null()), ["alpha", "beta", "gamma"], "division by zero is null");
}

#[test]
fn order_limit_offset_head_count() {
    let cat = catalog();
    let t = docs(&cat);
    let q = t.select([col("title")]).order_by_desc(col("words"));
    assert_eq!(column::<String>(&q.collect().unwrap(), "title"), ["gamma", "beta", "alpha"]);
    assert_eq!(column::<String>(&q.clone().limit(2).collect().unwrap(), "title"), ["gamma", "beta"]);
    assert_eq!(column::<String>(&q.clone().offset(1).collect().unwrap(), "title"), ["beta", "alpha"]);
    assert_eq!(column::<String>(&q.head(1).unwrap(), "title"), ["gamma"]);
    assert_eq!(q.first().unwrap().unwrap().get::<String>("title").unwrap(), "gamma");
    assert_eq!(q.clone().limit(2).count().unwrap(), 2);
    assert_eq!(t.select_all().where_(col("draft")).count().unwrap(), 1);
    let by_score = t.select([col("title")]).order_by(col("score")).collect().unwrap();
    assert_eq!(column::<String>(&by_score, "title"), ["beta", "alpha", "gamma"], "nulls sort first");
}

#[derive(Debug, Deserialize, PartialEq)]
struct Doc {
    title: String,
    words: i64,
    score: Option<f64>,
    draft: bool,
}

#[test]
fn collect_as_deserializes_rows() {
    let cat = catalog();
    let t = docs(&cat);
    let docs: Vec<Doc> = t.select_all().where_(col("words").eq(20)).collect_as().unwrap();
    assert_eq!(docs, [Doc { title: "beta".into(), words: 20, score: None, draft: true }]);
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        title: i64,
    }
    let e = t.select([col("title")]).collect_as::<Wrong>().unwrap_err();
    assert_eq!(e.code(), ErrorCode::Serde);
    assert!(e.to_string().contains("row 0 ({title: \"alpha\"}) does not deserialize"), "{e}");
}

#[test]
fn query_errors_name_the_expression() {
    let cat = catalog();
    let t = docs(&cat);
    let e = t.select([col("nope")]).collect().unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnknownColumn);
    assert_eq!(
        e.to_string(),
        "select from 'app/docs': expression `nope`: no column 'nope' (the columns are: title, words, score, draft)"
    );
    let e = t.select([col("title"), col("title")]).collect().unwrap_err();
    assert!(e.to_string().contains("give one an alias"), "{e}");
    let e = t.select_all().where_(col("title")).collect().unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidExpr);
}

fn big(cat: &tabula::Catalog, n: i64) -> tabula::Table {
    let t = cat.create_table("app/big", Schema::new().required("n", ColumnType::Int), IfExists::Error).unwrap();
    t.insert((0..n).map(|i| row! {"n" => (i * 7919) % n})).unwrap();
    t
}

#[test]
fn streams_read_in_batches_at_a_fixed_version() {
    let cat = catalog();
    let t = big(&cat, 5000);
    let mut stream = t.select([col("n")]).where_((col("n") % 2).eq(0)).stream().unwrap();
    let first = stream.next().unwrap().unwrap();
    // Writes during the stream are not seen by it.
    t.delete(lit(true)).unwrap();
    t.insert([row! {"n" => -1}]).unwrap();
    let rest: Vec<i64> = stream.map(|r| r.unwrap().get("n").unwrap()).collect();
    assert_eq!(rest.len() + 1, 2500);
    assert!(first.get::<i64>("n").unwrap() % 2 == 0 && rest.iter().all(|n| n % 2 == 0));

    let t2 = cat.get_table("app/big:1").unwrap();
    let ordered: Vec<i64> = t2
        .select([col("n")])
        .order_by_desc(col("n"))
        .offset(10)
        .limit(3000)
        .stream()
        .unwrap()
        .map(|r| r.unwrap().get("n").unwrap())
        .collect();
    assert_eq!(ordered.len(), 3000);
    assert_eq!(ordered[0], 4989);
    assert!(ordered.windows(2).all(|w| w[0] > w[1]));
    let limited: Vec<Row> = t2.select_all().offset(1500).limit(2000).stream().unwrap().map(Result::unwrap).collect();
    assert_eq!(limited.len(), 2000);
    assert_eq!(limited.first().unwrap().value("n"), Some(&Value::Int((1500 * 7919) % 5000)));
}

#[test]
fn a_stream_reports_a_revert_of_the_rows_it_reads() {
    let cat = catalog();
    let t = big(&cat, 5000);
    let mut stream = t.select([col("n")]).stream().unwrap();
    assert!(stream.next().unwrap().is_ok());
    t.revert().unwrap();
    let e = stream.find_map(Result::err).expect("the stream must report the revert");
    assert_eq!(e.code(), ErrorCode::Conflict);
    assert!(e.to_string().contains("was reverted while this stream was reading it"), "{e}");
}
