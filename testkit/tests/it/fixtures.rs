//! Fixtures for any schema: generate, check drift by table and column, load, export.

use tabula::{Catalog, ColumnType, Path, Schema};
use tabula_testkit::{Dataset, Fixtures, Format, Gen};

/// The shop's small dataset; `total` overrides the generator of `orders.total`.
fn small(total: Option<Gen>) -> Dataset {
    Dataset::new("shop-small", 7)
        .table(
            "customers",
            Schema::new().required("customer_id", ColumnType::Int).required("name", ColumnType::String),
            10,
            |s| s.column("customer_id", Gen::Range(1, 10)),
        )
        .table(
            "orders",
            Schema::new()
                .required("customer_id", ColumnType::Int)
                .required("total", ColumnType::Float)
                .nullable("note", ColumnType::String),
            30,
            |s| match total {
                Some(gen) => s.column("customer_id", Gen::Range(1, 10)).column("total", gen),
                None => s.column("customer_id", Gen::Range(1, 10)),
            },
        )
}

fn shop(dir: &std::path::Path) -> Fixtures {
    Fixtures::new(dir).dataset(small(None)).dataset(
        Dataset::new("shop-large", 8)
            .table("orders", Schema::new().required("total", ColumnType::Float), 5_000, |s| s)
            .generated_on_demand(),
    )
}

#[test]
fn datasets_generate_check_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = shop(dir.path());
    let manifests = fixtures.generate().unwrap();
    assert_eq!(manifests.len(), 1, "only checked-in datasets are written");
    assert!(dir.path().join("shop-small.jsonl").exists() && !dir.path().join("shop-large.jsonl").exists());
    assert!(fixtures.check().unwrap().is_empty());
    let cat = Catalog::in_memory().unwrap();
    let report = fixtures.load("shop-small", &cat, &Path::parse("qa").unwrap()).unwrap();
    assert_eq!((report.rows["customers"], report.rows["orders"]), (10, 30));
    let large = fixtures.load("shop-large", &cat, &Path::parse("big").unwrap()).unwrap();
    assert_eq!(large.rows["orders"], 5_000, "generated when loaded");
    let e = fixtures.load("nope", &cat, &Path::parse("qa").unwrap()).unwrap_err();
    assert!(e.to_string().contains("there are: shop-small, shop-large"), "{e}");
    // Deterministic: the same declaration gives the same data.
    assert_eq!(
        shop(dir.path()).get("shop-small").unwrap().generate().unwrap().0,
        fixtures.get("shop-small").unwrap().generate().unwrap().0
    );
}

#[test]
fn drift_is_named_by_table_and_column() {
    let dir = tempfile::tempdir().unwrap();
    shop(dir.path()).generate().unwrap();
    // The generator of orders.total changed (a new range), as a code change would do it.
    let changed = Fixtures::new(dir.path()).dataset(small(Some(Gen::FloatRange(1.0, 2.0))));
    let drift = changed.check().unwrap();
    let lines: Vec<String> = drift.iter().map(|d| d.to_string()).collect();
    assert_eq!(drift.len(), 1, "{lines:?}");
    assert_eq!((drift[0].table.as_deref(), drift[0].column.as_deref()), (Some("orders"), Some("total")));
    assert!(lines[0].starts_with("shop-small, table orders, column total: 30 value(s) differ"), "{}", lines[0]);
    // A hand-edited data file no longer matches its checksum, and loading refuses it.
    let data = dir.path().join("shop-small.jsonl");
    std::fs::write(&data, std::fs::read_to_string(&data).unwrap().replacen("\"customer_id\":", "\"customer_id\":9", 1))
        .unwrap();
    let fixtures = shop(dir.path());
    assert!(fixtures.check().unwrap().iter().any(|d| d.what.contains("checksum")));
    let e = fixtures.load("shop-small", &Catalog::in_memory().unwrap(), &Path::parse("qa").unwrap()).unwrap_err();
    assert!(e.to_string().contains("does not match its manifest's checksum"), "{e}");
}

#[test]
fn export_writes_one_file_a_table_and_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = shop(dir.path());
    fixtures.generate().unwrap();
    let out = dir.path().join("export");
    let files = fixtures.export("shop-small", &out, Format::Csv).unwrap();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["customers.csv", "orders.csv", "shop-small.manifest.json"]);
    let csv = std::fs::read_to_string(out.join("orders.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("customer_id,total,note"));
    assert_eq!(csv.lines().count(), 31);
    fixtures.export("shop-small", &out, Format::Jsonl).unwrap();
    let first: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(out.join("customers.jsonl")).unwrap().lines().next().unwrap())
            .unwrap();
    assert!(first["customer_id"].is_i64() && first["name"].is_string(), "{first}");
}
