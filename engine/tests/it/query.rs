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

/// A counting UDF `is_even(x)`.
fn counting_even(calls: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> tabula::Udf {
    let calls = calls.clone();
    tabula::Udf::new("is_even", 1, move |x: i64| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        x % 2 == 0
    })
}

fn numbers(cat: &tabula::Catalog, n: i64) -> tabula::Table {
    let t = cat.create_table("app/numbers", Schema::new().required("x", ColumnType::Int), IfExists::Error).unwrap();
    t.insert((0..n).map(|x| row! {"x" => x})).unwrap();
    t
}

/// Invariant 5 with a UDF filter: a preview calls the filter on the rows it needs to find
/// its matches plus at most PREVIEW_SLACK (16) more, not a whole batch of 1,024, and UDF
/// outputs only for the rows it returns.
#[test]
fn a_preview_with_a_udf_filter_calls_it_on_few_more_rows_than_it_needs() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let cat = catalog();
    let t = numbers(&cat, 5_000);
    let (filter_calls, output_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let even = counting_even(&filter_calls);
    let oc = output_calls.clone();
    let tenfold = tabula::Udf::new("tenfold", 1, move |x: i64| {
        oc.fetch_add(1, Ordering::SeqCst);
        x * 10
    });
    cat.register(&even);
    cat.register(&tenfold);
    let q = t.select([col("x"), tenfold.call([col("x")]).alias("t")]).where_(even.call([col("x")]).eq(true));
    let rows = q.head(3).unwrap();
    assert_eq!(column::<i64>(&rows, "t"), [0, 20, 40]);
    // The third match is the fifth row: 5 rows needed, at most 16 more evaluated.
    let calls = filter_calls.load(Ordering::SeqCst);
    assert!((5..=5 + 16).contains(&calls), "the filter ran on {calls} rows");
    assert_eq!(output_calls.load(Ordering::SeqCst), 3, "outputs only for the rows returned");
    // With an offset, the skipped matches are needed too; outputs still only for the rows returned.
    filter_calls.store(0, Ordering::SeqCst);
    output_calls.store(0, Ordering::SeqCst);
    let rows = q.clone().offset(100).head(2).unwrap();
    assert_eq!(column::<i64>(&rows, "x"), [200, 202]);
    let calls = filter_calls.load(Ordering::SeqCst);
    assert!((203..=203 + 16).contains(&calls), "the filter ran on {calls} rows");
    assert_eq!(output_calls.load(Ordering::SeqCst), 2);
}

/// `count()` with a UDF filter streams and agrees with `collect()`, limit and offset included.
#[test]
fn count_with_a_udf_filter_agrees_with_collect() {
    let cat = catalog();
    let t = numbers(&cat, 3_000);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let even = counting_even(&calls);
    cat.register(&even);
    let q = t.select_all().where_(even.call([col("x")]).eq(true));
    assert_eq!(q.count().unwrap(), 1_500);
    assert_eq!(q.clone().offset(1_000).count().unwrap(), 500);
    assert_eq!(q.clone().offset(10).limit(7).count().unwrap(), 7);
    assert_eq!(
        q.clone().offset(10).limit(7).count().unwrap(),
        q.clone().offset(10).limit(7).collect().unwrap().len() as u64
    );
}

/// A view's stream reads its base as it was when the stream started: updated from another
/// handle every 500 rows read, every row still comes exactly once (a table stream does the
/// same).
#[test]
fn a_view_stream_is_pinned_while_its_base_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    let cat = tabula::Catalog::open(&path).unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    let t = numbers(&cat, 5_000);
    let view = cat.create_view("app/small", &t, col("x").lt(4_000), IfExists::Error).unwrap();
    let other = tabula::Catalog::open(&path).unwrap().get_table("app/numbers").unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (i, row) in view.select([col("x")]).stream().unwrap().enumerate() {
        *seen.entry(row.unwrap().get::<i64>("x").unwrap()).or_insert(0) += 1;
        if i % 500 == 499 {
            // Every row changes (and a row that was outside the view moves in).
            other.update([("x", col("x") + 1)], lit(true)).unwrap();
        }
    }
    assert_eq!(seen.len(), 4_000, "each row of the view as it was at the start");
    assert!(seen.values().all(|n| *n == 1), "no row twice");
    assert_eq!(seen.keys().next_back(), Some(&3_999));
}

/// `length` of a column in filters, order keys, counts, updates and deletes counts
/// characters on every backend (a server runs it as `char_length`; before, a server read
/// every row into Rust for such a filter, and refused such an order key).
#[test]
fn length_filters_orders_updates_and_deletes_count_characters() {
    let cat = catalog();
    let t = cat
        .create_table(
            "app/words",
            Schema::new().required("w", ColumnType::String).nullable("n", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    t.insert(["日本語", "ab", "", "héllo", "xyzw"].map(|w| row! {"w" => w})).unwrap();
    let long = t.select([col("w")]).where_(col("w").length().ge(3)).collect().unwrap();
    assert_eq!(column::<String>(&long, "w"), ["日本語", "héllo", "xyzw"], "characters, not bytes");
    assert_eq!(t.select([col("w")]).where_(col("w").length().eq(0)).count().unwrap(), 1);
    let by_length = t.select([col("w")]).order_by_desc(col("w").length()).collect().unwrap();
    assert_eq!(column::<String>(&by_length, "w"), ["héllo", "xyzw", "日本語", "ab", ""]);
    t.update([("n", col("w").length())], col("w").length().gt(2)).unwrap();
    let set = t.select([col("w"), col("n")]).where_(col("n").is_not_null()).collect().unwrap();
    assert_eq!(column::<i64>(&set, "n"), [3, 5, 4]);
    t.delete(col("w").length().lt(3)).unwrap();
    assert_eq!(column::<String>(&t.select([col("w")]).collect().unwrap(), "w"), ["日本語", "héllo", "xyzw"]);
}

/// Order keys a server cannot compute as Tabula does (functions, arithmetic) are sorted by
/// Tabula there, as SQLite sorts them: nulls (and keys that fail, such as a division by
/// zero) first going up and last going down, ties in write order, with a filter evaluated
/// in Rust, offset, limit, head and UDF outputs; streams too, a page at a time. (A server
/// refused every such order, then every such stream, before.)
#[test]
fn order_keys_a_server_cannot_compute_sort_as_on_sqlite() {
    let cat = catalog();
    let schema = Schema::new().required("name", ColumnType::String).nullable("n", ColumnType::Int);
    let t = cat.create_table("app/names", schema, IfExists::Error).unwrap();
    let rows = [("b", Some(5)), ("A", Some(3)), ("a", None), ("C", Some(7)), ("B", Some(4)), ("c", Some(1))];
    t.insert(rows.map(|(name, n)| row! {"name" => name, "n" => n})).unwrap();
    let names = |q: tabula::Query| column::<String>(&q.collect().unwrap(), "name");

    let by_lower = t.select([col("name")]).order_by(col("name").lower());
    assert_eq!(names(by_lower.clone()), ["A", "a", "b", "B", "C", "c"]);
    assert_eq!(column::<String>(&by_lower.head(2).unwrap(), "name"), ["A", "a"]);
    let mixed = t.select([col("name")]).order_by_desc(col("n") % 3).order_by(col("name"));
    assert_eq!(names(mixed), ["b", "B", "C", "c", "A", "a"]);
    let failing = t.select([col("name")]).order_by(col("n") / (col("n") - 3));
    assert_eq!(names(failing.clone()), ["A", "a", "c", "C", "b", "B"]);
    let filtered =
        t.select([col("name")]).where_((col("n") % 2).eq(1)).order_by_desc(col("name").lower()).offset(1).limit(2);
    assert_eq!(names(filtered.clone()), ["c", "b"]);
    let shout = tabula::Udf::new("shout", 1, |s: String| s.to_uppercase());
    cat.register(&shout);
    let loud = t.select([shout.call([col("name")]).alias("loud")]).order_by_desc(col("name").lower()).limit(3);
    assert_eq!(column::<String>(&loud.collect().unwrap(), "loud"), ["C", "C", "B"]);

    // Streams so sorted, on every backend: the same rows as collect().
    let streamed = |q: &tabula::Query| -> Vec<Row> { q.stream().unwrap().collect::<tabula::Result<_>>().unwrap() };
    for q in [by_lower, failing, filtered, loud] {
        assert_eq!(streamed(&q), q.collect().unwrap(), "{q:?}");
    }
    // Many rows, read a page at a time in that order: filtered, an offset, a limit.
    let many = cat.create_table("app/many", Schema::new().required("k", ColumnType::Int), IfExists::Error).unwrap();
    many.insert((0..3000i64).map(|k| row! {"k" => k})).unwrap();
    let q = many
        .select([col("k")])
        .where_((col("k") % 3).ne(0))
        .order_by_desc((col("k") * 7) % 1000)
        .order_by(col("k"))
        .offset(5)
        .limit(1500);
    let mut want: Vec<i64> = (0..3000).filter(|k| k % 3 != 0).collect();
    want.sort_by_key(|k| (std::cmp::Reverse(k * 7 % 1000), *k));
    let want: Vec<i64> = want.into_iter().skip(5).take(1500).collect();
    assert_eq!(column::<i64>(&streamed(&q), "k"), want);
    assert_eq!(column::<i64>(&q.collect().unwrap(), "k"), want);
    let udf_key = t.select([col("name")]).order_by(shout.call([col("name")])).collect();
    assert_eq!(udf_key.unwrap_err().code(), ErrorCode::InvalidArgument, "a UDF key, on both");
}

/// Every read a query makes binds exactly the literals its statement holds: literals in
/// outputs, filters and order keys, read as ordered ids, pages by id, counts and streams.
/// (An order key's literal was bound to statements that did not order, and an output's to
/// ones that fetched nothing: such a stream or count failed on both backends.)
#[test]
fn literals_in_every_part_of_a_query_bind_in_each_of_its_reads() {
    let cat = catalog();
    let t = docs(&cat);
    let q = t
        .select([col("title"), (col("words") + 1).alias("w1")])
        .where_(col("words").gt(5))
        .order_by_desc(col("words") % 7)
        .order_by(col("title"));
    let want = [("beta", 21), ("alpha", 11), ("gamma", 31)];
    let got = |rows: Vec<Row>| -> Vec<(String, i64)> {
        rows.iter().map(|r| (r.get("title").unwrap(), r.get("w1").unwrap())).collect()
    };
    let want: Vec<(String, i64)> = want.iter().map(|(t, w)| (t.to_string(), *w)).collect();
    assert_eq!(got(q.collect().unwrap()), want);
    assert_eq!(got(q.stream().unwrap().collect::<tabula::Result<_>>().unwrap()), want);
    assert_eq!(q.count().unwrap(), 3);
    assert_eq!(got(q.clone().limit(2).stream().unwrap().collect::<tabula::Result<_>>().unwrap()), want[..2]);
    let unordered = t.select([(col("words") * 2).alias("w1"), col("title")]).where_(col("title").ne("beta"));
    assert_eq!(unordered.count().unwrap(), 2);
    let streamed: Vec<i64> = unordered.stream().unwrap().map(|r| r.unwrap().get("w1").unwrap()).collect();
    assert_eq!(streamed, [20, 60]);
}

/// Int and Float compare exactly, as SQLite does and Tabula's Rust evaluation does: an Int
/// is not rounded to the nearest Float (2^53 + 1 is greater than 2^53, `i64::MAX` less than
/// 2^63), on every backend (a server would convert the Int to a Float: its comparisons of
/// an Int column or a large Int literal with a Float are evaluated by Tabula).
#[test]
fn int_and_float_compare_exactly_on_every_backend() {
    let cat = catalog();
    let shape =
        Schema::new().required("k", ColumnType::Int).required("i", ColumnType::Int).required("f", ColumnType::Float);
    let t = cat.create_table("app/t", shape, IfExists::Error).unwrap();
    let two_53 = 9_007_199_254_740_992i64;
    let rows = [
        (two_53 + 1, two_53 as f64),
        (i64::MAX, 9_223_372_036_854_775_808.0),
        (i64::MIN, -9_223_372_036_854_775_808.0),
        (3, 2.5),
        (-3, -2.5),
        (5, 5.0),
    ];
    t.insert(rows.iter().enumerate().map(|(k, (i, f))| row! {"k" => k as i64, "i" => *i, "f" => *f})).unwrap();
    let keys =
        |filter: tabula::Expr| -> Vec<i64> { column(&t.select([col("k")]).where_(filter).collect().unwrap(), "k") };
    assert_eq!(keys(col("i").gt(col("f"))), [0, 3]);
    assert_eq!(keys(col("f").lt(col("i"))), [0, 3]);
    assert_eq!(keys(col("i").eq(col("f"))), [2, 5]);
    assert_eq!(keys(col("f").ge(lit(two_53 + 1))), [1]);
    assert_eq!(keys(col("f").gt(lit(2))), [0, 1, 3, 5]);
    assert_eq!(t.select_all().where_(col("i").lt(col("f"))).count().unwrap(), 2);
}
