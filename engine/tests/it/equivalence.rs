//! Every builtin and operator gives the same result in SQL (SQLite) and in Rust evaluation:
//! random rows (nulls, extremes, empty and non-ASCII text) and random well-typed
//! expressions, each selected once as SQL and once wrapped in an identity UDF, which makes
//! Tabula evaluate the expression in Rust.

use proptest::prelude::*;
use tabula::{coalesce, col, concat, if_, lit, Catalog, ColumnType, Expr, IfExists, Row, Schema, Udf, Value};

/// A tiny deterministic generator driven by proptest's seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize].clone()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const INTS: [i64; 10] = [0, 1, -1, 2, 7, -13, 1000, i64::MAX, i64::MIN, 4_611_686_018_427_387_904];
const FLOATS: [f64; 10] = [0.0, -0.0, 1.5, -2.25, 0.1, 1e308, -1e308, f64::INFINITY, f64::NEG_INFINITY, 3.0];
const STRINGS: [&str; 9] = ["", "a", "héllo wörld", "日本語", "  pad  ", "ß", "A,b,,c", "x'y\"z", "tab\there"];

fn int(g: &mut Gen, d: u32) -> Expr {
    if d == 0 || g.below(3) == 0 {
        return if g.below(2) == 0 { col("i") } else { lit(g.pick(&INTS)) };
    }
    match g.below(12) {
        0 => int(g, d - 1) + int(g, d - 1),
        1 => int(g, d - 1) - int(g, d - 1),
        2 => int(g, d - 1) * int(g, d - 1),
        3 => int(g, d - 1) / int(g, d - 1),
        4 => int(g, d - 1) % int(g, d - 1),
        5 => -int(g, d - 1),
        6 => int(g, d - 1).abs(),
        7 => string(g, d - 1).length(),
        // Date parts of a timestamp column.
        11 if g.below(2) == 0 => match g.below(6) {
            0 => col("t").year(),
            1 => col("t").month(),
            2 => col("t").day(),
            3 => col("t").hour(),
            4 => col("t").minute(),
            _ => col("t").second(),
        },
        8 => if_(boolean(g, d - 1)).then(int(g, d - 1)).else_(int(g, d - 1)),
        9 => float(g, d - 1).cast(ColumnType::Int),
        10 => coalesce([int(g, d - 1), int(g, d - 1)]),
        _ => string(g, d - 1).cast(ColumnType::Int),
    }
}

fn float(g: &mut Gen, d: u32) -> Expr {
    if d == 0 || g.below(3) == 0 {
        return if g.below(2) == 0 { col("f") } else { lit(g.pick(&FLOATS)) };
    }
    match g.below(12) {
        0 => float(g, d - 1) + float(g, d - 1),
        1 => float(g, d - 1) - int(g, d - 1),
        2 => int(g, d - 1) * float(g, d - 1),
        3 => float(g, d - 1) / float(g, d - 1),
        4 => float(g, d - 1) % int(g, d - 1),
        5 => -float(g, d - 1),
        6 => float(g, d - 1).sqrt(),
        7 => float(g, d - 1).pow(int(g, d - 1)),
        8 => float(g, d - 1).floor(),
        9 => float(g, d - 1).round(g.below(4) as i64 - 1),
        10 => int(g, d - 1).cast(ColumnType::Float),
        _ => float(g, d - 1).abs(),
    }
}

fn string(g: &mut Gen, d: u32) -> Expr {
    if d == 0 || g.below(3) == 0 {
        return if g.below(2) == 0 { col("s") } else { lit(g.pick(&STRINGS)) };
    }
    match g.below(10) {
        0 => string(g, d - 1).lower(),
        1 => string(g, d - 1).upper(),
        2 => string(g, d - 1).trim(),
        3 => concat([string(g, d - 1), string(g, d - 1)]),
        4 => string(g, d - 1).substring(int(g, d - 1), int(g, d - 1)),
        5 => string(g, d - 1).replace(string(g, d - 1), string(g, d - 1)),
        6 => int(g, d - 1).cast(ColumnType::String),
        7 => float(g, d - 1).cast(ColumnType::String),
        8 => string(g, d - 1).split(",").index(g.below(3) as i64).cast(ColumnType::String),
        _ => if_(boolean(g, d - 1)).then(string(g, d - 1)).else_(string(g, d - 1)),
    }
}

fn boolean(g: &mut Gen, d: u32) -> Expr {
    if d == 0 || g.below(4) == 0 {
        return if g.below(2) == 0 { col("b") } else { lit(g.below(2) == 0) };
    }
    match g.below(14) {
        0 => int(g, d - 1).lt(int(g, d - 1)),
        1 => float(g, d - 1).le(int(g, d - 1)),
        2 => int(g, d - 1).eq(float(g, d - 1)),
        3 => string(g, d - 1).lt(string(g, d - 1)),
        4 => string(g, d - 1).eq(string(g, d - 1)),
        5 => boolean(g, d - 1).and(boolean(g, d - 1)),
        6 => boolean(g, d - 1).or(boolean(g, d - 1)),
        7 => !boolean(g, d - 1),
        8 => int(g, d - 1).is_null(),
        9 => string(g, d - 1).contains(string(g, d - 1)),
        10 => string(g, d - 1).starts_with(string(g, d - 1)),
        11 => float(g, d - 1).gt(float(g, d - 1)),
        12 => boolean(g, d - 1).ne(boolean(g, d - 1)),
        _ => int(g, d - 1).cast(ColumnType::Bool),
    }
}

/// One row: i, f, s, b, t (microseconds).
type TestRow = (Option<i64>, Option<f64>, Option<String>, Option<bool>, Option<i64>);

fn row_strategy() -> impl Strategy<Value = TestRow> {
    (
        proptest::option::of(prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(0i64), -1000i64..1000]),
        proptest::option::of(prop_oneof![Just(-0.0f64), Just(f64::INFINITY), Just(1e300), -1e6f64..1e6]),
        proptest::option::of(prop_oneof![Just(String::new()), "[a-zA-Zé日 ,.]{0,12}"]),
        proptest::option::of(any::<bool>()),
        proptest::option::of(-2_000_000_000_000_000i64..4_000_000_000_000_000),
    )
}

fn identity(ty: ColumnType) -> Udf {
    Udf::row(format!("id_{ty}"), 1, [ty], ty, |args| Ok(args[0].clone()))
}

fn values(rows: Vec<Row>) -> Vec<Value> {
    rows.into_iter().map(|r| r.into_values().remove(0)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("TABULA_EQUIV_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(192), ..ProptestConfig::default() })]

    #[test]
    fn sql_and_rust_evaluation_agree(
        rows in proptest::collection::vec(row_strategy(), 1..12),
        seed in 1u64..u64::MAX,
        kind in 0usize..4,
    ) {
        let cat = Catalog::in_memory().unwrap();
        let t = cat.create_table(
            "t",
            Schema::new()
                .nullable("i", ColumnType::Int)
                .nullable("f", ColumnType::Float)
                .nullable("s", ColumnType::String)
                .nullable("b", ColumnType::Bool)
                .nullable("t", ColumnType::Timestamp),
            IfExists::Error,
        ).unwrap();
        t.insert(rows.into_iter().map(|(i, f, s, b, ts)| {
            tabula::row! {"i" => i, "f" => f, "s" => s, "b" => b, "t" => ts.map(Value::Timestamp)}
        })).unwrap();
        let mut g = Gen(seed);
        let (expr, ty) = match kind {
            0 => (int(&mut g, 3), ColumnType::Int),
            1 => (float(&mut g, 3), ColumnType::Float),
            2 => (string(&mut g, 3), ColumnType::String),
            _ => (boolean(&mut g, 3), ColumnType::Bool),
        };
        let id = identity(ty);
        cat.register(&id);
        let in_sql = values(t.select([expr.clone().alias("v")]).collect().unwrap());
        let in_rust = values(t.select([id.call([expr.clone()]).alias("v")]).collect().unwrap());
        prop_assert_eq!(&in_sql, &in_rust, "expression: {}", expr);
        // As a filter, too: SQL `where` and Rust `where` keep the same rows.
        if ty == ColumnType::Bool {
            let kept_sql = t.select([col("i"), col("s")]).where_(expr.clone()).collect().unwrap();
            let kept_rust = t.select([col("i"), col("s")]).where_(id.call([expr.clone()]).eq(true)).collect().unwrap();
            prop_assert_eq!(kept_sql, kept_rust, "filter: {}", expr);
        }
    }
}

#[test]
fn known_edge_cases_agree() {
    let cat = Catalog::in_memory().unwrap();
    let t = cat.create_table("t", Schema::new().required("i", ColumnType::Int), IfExists::Error).unwrap();
    t.insert([tabula::row! {"i" => i64::MAX}]).unwrap();
    let id = identity(ColumnType::Int);
    cat.register(&id);
    for e in [
        col("i") + 1,
        col("i") * 2,
        -(col("i") + 1 - 1),
        (col("i") + 1) / 0,
        lit(i64::MIN) / -1,
        lit(i64::MIN) % lit(-1),
    ] {
        let sql = values(t.select([e.clone()]).collect().unwrap());
        let rust = values(t.select([id.call([e.clone()])]).collect().unwrap());
        assert_eq!(sql, vec![Value::Null], "{e}");
        assert_eq!(sql, rust, "{e}");
    }
}
