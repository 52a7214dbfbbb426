//! # shop
//!
//! A small shop on Tabula: customers, orders with a computed size, and a Rust UDF that
//! reads the customer's note on an order. It is written the way a team writes its own
//! application: the schema is a list of migrations applied to a namespace given at run
//! time, the UDF is versioned, and the staging check, the QA datasets and the tests come
//! from `tabula-testkit`.

use std::path::Path as FsPath;

use tabula::{col, if_, row, Catalog, ColumnOptions, ColumnType, IfExists, Path, Result, Schema, Udf};
use tabula_testkit::staging::App;
use tabula_testkit::{migration, Anonymizer, Dataset, Fixtures, Gen, Migrations, Rule};

/// The last step production has applied; the steps after it ship with this release.
pub const APPLIED_IN_PRODUCTION: &str = "0003_note_tone";

/// Notes customers write on orders: what the QA data is made of.
pub const NOTES: [&str; 8] = [
    "Please leave the parcel at the door.",
    "Arrived late and the box was damaged.",
    "Great service, thank you!",
    "Wrong size, I am sending it back.",
    "Gift wrap please.",
    "Second time it arrived broken. Very disappointed.",
    "Fast delivery, lovely quality.",
    "Call before delivery.",
];

/// The customers table.
pub fn customers_schema() -> Schema {
    Schema::new()
        .required("customer_id", ColumnType::Int)
        .required("name", ColumnType::String)
        .required("email", ColumnType::String)
        .nullable("phone", ColumnType::String)
        .required("birth_date", ColumnType::Date)
}

/// The orders table.
pub fn orders_schema() -> Schema {
    Schema::new()
        .required("order_id", ColumnType::Int)
        .required("customer_id", ColumnType::Int)
        .required("total", ColumnType::Float)
        .nullable("note", ColumnType::String)
        .required("placed_at", ColumnType::Timestamp)
}

/// Version 1 of the note's tone: complaints mention lateness.
pub fn tone_v1() -> Udf {
    Udf::new("tone", 1, |note: String| if note.contains("late") { "complaint" } else { "neutral" }.to_string())
}

/// Version 2: damage and returns are complaints too, thanks are praise.
pub fn tone_v2() -> Udf {
    Udf::new("tone", 2, |note: String| {
        let n = note.to_lowercase();
        let complaint = ["late", "damaged", "broken", "sending it back", "disappointed"].iter().any(|w| n.contains(w));
        let praise = ["thank", "great", "lovely"].iter().any(|w| n.contains(w));
        match (complaint, praise) {
            (true, _) => "complaint",
            (false, true) => "praise",
            _ => "neutral",
        }
        .to_string()
    })
}

/// Registers the UDF versions production runs.
pub fn register_production(catalog: &Catalog) {
    catalog.register(&tone_v1());
}

/// Registers every UDF version this release's code uses: the migrations add `tone@1` before
/// they replace it with `tone@2`, and a handle holds both.
pub fn register(catalog: &Catalog) {
    catalog.register(&tone_v1());
    catalog.register(&tone_v2());
}

// README: migrations
/// The shop's schema history.
pub fn migrations() -> Migrations {
    Migrations::new([
        migration!("0001_tables", |ctx| {
            ctx.create_table("customers", customers_schema())?;
            ctx.create_table("orders", orders_schema())?;
            Ok(())
        }),
        migration!("0002_order_size", |ctx| {
            let size = if_(col("total").gt(100.0)).then("large").else_("small");
            ctx.table("orders")?.add_computed_column("size", size, ColumnOptions::if_exists(IfExists::Ignore))?;
            Ok(())
        }),
        migration!("0003_note_tone", |ctx| {
            let tone = tone_v1().call([col("note")]);
            ctx.table("orders")?.add_computed_column("tone", tone, ColumnOptions::if_exists(IfExists::Ignore))?;
            Ok(())
        }),
        migration!("0004_note_tone_v2", |ctx| {
            let tone = tone_v2().call([col("note")]);
            ctx.table("orders")?.add_computed_column("tone", tone, ColumnOptions::if_exists(IfExists::Replace))?;
            Ok(())
        })
        .allow_destructive(),
    ])
}
// README: end

// README: staging
/// How production data is anonymized for staging: every column has a rule.
pub fn anonymizer(key: &str) -> Anonymizer {
    Anonymizer::new(key)
        .rule("customer_id", Rule::Hash)
        .rule("name", Rule::Name)
        .rule("email", Rule::Email)
        .rule("phone", Rule::Phone)
        .rule("birth_date", Rule::DateShift { entity: "customer_id".into(), max_days: 365 })
        .keep("order_id")
        .rule("total", Rule::Noise { relative: 0.05 })
        .rule("note", Rule::FreeText)
        .rule("placed_at", Rule::DateShift { entity: "customer_id".into(), max_days: 30 })
}

/// The QA datasets: `shop-small` is checked in under `fixtures/`.
pub fn fixtures() -> Fixtures {
    Fixtures::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")).dataset(
        Dataset::new("shop-small", 2026).table("customers", customers_schema(), 25, |s| s).table(
            "orders",
            orders_schema(),
            120,
            |s| s.column("customer_id", Gen::Range(1, 25)).column("note", Gen::corpus(NOTES)).null_ratio(0.2),
        ),
    )
}

/// The shop as the staging check sees it.
pub fn staging_app() -> App {
    App::new("shop", migrations())
        .production_udfs(register_production)
        .release_udfs(register)
        .anonymizer(anonymizer)
        .udf_change(tone_v1(), tone_v2(), "orders", &["note"])
        .demo_production(demo_production)
}
// README: end

/// A demo production catalog: the QA data with the steps production has applied, and
/// notes that name their customers (what a staging copy must not show).
pub fn demo_production(path: &FsPath) -> Result<()> {
    let catalog = Catalog::open(path)?;
    let ns = Path::parse("shop")?;
    register_production(&catalog);
    migrations().apply_through(&catalog, &ns, "0001_tables")?;
    fixtures().load("shop-small", &catalog, &ns)?;
    let customers = catalog.get_table(ns.join("customers")?)?.select([col("customer_id"), col("name")]).head(5)?;
    let orders = catalog.get_table(ns.join("orders")?)?;
    for (i, c) in customers.iter().enumerate() {
        let (id, name): (i64, String) = (c.get("customer_id")?, c.get("name")?);
        orders.insert([row! {
            "order_id" => 10_000 + i as i64, "customer_id" => id, "total" => 42.5,
            "note" => format!("{name} asked us to call before delivery."), "placed_at" => "2026-10-01T10:00:00Z",
        }])?;
    }
    migrations().apply_through(&catalog, &ns, APPLIED_IN_PRODUCTION)?;
    Ok(())
}

/// Places an order; its size and tone are computed by Tabula.
pub fn place_order(
    catalog: &Catalog,
    shop: &Path,
    order_id: i64,
    customer_id: i64,
    total: f64,
    note: &str,
) -> Result<()> {
    catalog.get_table(shop.join("orders")?)?.insert([row! {
        "order_id" => order_id, "customer_id" => customer_id, "total" => total, "note" => note,
        "placed_at" => "2026-11-01T12:00:00Z",
    }])?;
    Ok(())
}
