//! Anonymized copies: keyed, stable, format-preserving, complete, private.

use tabula::{col, row, Catalog, ColumnOptions, ColumnType, ErrorCode, IfExists, Schema, Value};
use tabula_testkit::{Anonymizer, Gen, Rule, Synth};

const PII_EMAILS: [&str; 3] =
    ["ada.lovelace@analytical.example", "grace@navy.example", "alan.turing@bletchley.example"];
const PII_NAMES: [&str; 3] = ["Ada Lovelace", "Grace Hopper", "Alan Turing"];
const PII_PHONES: [&str; 3] = ["+44-20-7946-0018", "+1-202-555-0147", "+44-161-496-0753"];

/// A production-like catalog: users, and orders that reference users by email.
fn prod() -> Catalog {
    let cat = Catalog::in_memory().unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    let users = cat
        .create_table(
            "app/users",
            Schema::new()
                .required("user_id", ColumnType::Int)
                .required("email", ColumnType::String)
                .required("name", ColumnType::String)
                .nullable("phone", ColumnType::String)
                .required("notes", ColumnType::String)
                .required("signed_up", ColumnType::Timestamp)
                .required("plan", ColumnType::String),
            IfExists::Error,
        )
        .unwrap();
    users
        .insert((0..3).map(|i| {
            row! {
                "user_id" => i as i64, "email" => PII_EMAILS[i], "name" => PII_NAMES[i], "phone" => PII_PHONES[i],
                "notes" => format!("call {} or write to {}", PII_PHONES[i], PII_EMAILS[i]),
                "signed_up" => "2024-03-01T10:00:00Z", "plan" => "pro",
            }
        }))
        .unwrap();
    users.add_computed_column("domain_len", col("email").length(), ColumnOptions::default()).unwrap();
    let orders = cat
        .create_table(
            "app/orders",
            Schema::new()
                .required("user_id", ColumnType::Int)
                .required("email", ColumnType::String)
                .required("amount", ColumnType::Float),
            IfExists::Error,
        )
        .unwrap();
    orders
        .insert(
            (0..9)
                .map(|i| row! {"user_id" => (i % 3) as i64, "email" => PII_EMAILS[i % 3], "amount" => 10.0 * i as f64}),
        )
        .unwrap();
    cat
}

fn anonymizer(key: &str) -> Anonymizer {
    Anonymizer::new(key)
        .rule("email", Rule::Email)
        .rule("name", Rule::Name)
        .rule("phone", Rule::Phone)
        .rule("notes", Rule::FreeText)
        .rule("signed_up", Rule::DateShift { entity: "user_id".into(), max_days: 30 })
        .rule("amount", Rule::Noise { relative: 0.1 })
        .keep("plan")
        .keep("user_id")
}

fn strings(cat: &Catalog, table: &str, column: &str) -> Vec<String> {
    cat.get_table(table)
        .unwrap()
        .select([col(column)])
        .order_by(col("user_id"))
        .collect()
        .unwrap()
        .iter()
        .map(|r| r.get(column).unwrap())
        .collect()
}

#[test]
fn pseudonyms_are_stable_across_tables_and_keep_their_format() {
    let src = prod();
    let dst = Catalog::in_memory().unwrap();
    let report = anonymizer("k1").copy(&src, "app", &dst, "staging").unwrap();
    assert_eq!(report.tables.len(), 2);
    assert_eq!(report.tables[1].recomputed, ["domain_len"]);
    let emails = strings(&dst, "staging/users", "email");
    for e in &emails {
        let (user, domain) = e.split_once('@').unwrap();
        assert!(user.starts_with('u') && domain.starts_with("example."), "{e}");
    }
    // Joins survive: every order's email is its user's pseudonym.
    let orders = dst.get_table("staging/orders").unwrap().select([col("user_id"), col("email")]).collect().unwrap();
    for o in orders {
        let uid: i64 = o.get("user_id").unwrap();
        assert_eq!(o.get::<String>("email").unwrap(), emails[uid as usize]);
    }
    let phones = strings(&dst, "staging/users", "phone");
    for (p, original) in phones.iter().zip(PII_PHONES) {
        assert_ne!(p, original);
        assert_eq!(p.replace(|c: char| c.is_ascii_digit(), "9"), original.replace(|c: char| c.is_ascii_digit(), "9"));
    }
    let notes = strings(&dst, "staging/users", "notes");
    assert_eq!(
        notes[0],
        format!("call {} or write to {}", phones[0], emails[0]),
        "embedded PII is scrubbed consistently"
    );
    // Computed columns were recomputed from the anonymized inputs.
    let lens: Vec<i64> = dst.rows("staging/users").unwrap().iter().map(|r| r.get("domain_len").unwrap()).collect();
    assert_eq!(lens, emails.iter().map(|e| e.chars().count() as i64).collect::<Vec<_>>());
    // Plans were kept; times moved by at most 30 days.
    assert_eq!(strings(&dst, "staging/users", "plan"), ["pro", "pro", "pro"]);
}

#[test]
fn the_same_key_gives_the_same_output_and_another_key_unrelated_output() {
    let src = prod();
    let copy = |key: &str| {
        let dst = Catalog::in_memory().unwrap();
        anonymizer(key).copy(&src, "app", &dst, "s").unwrap();
        (strings(&dst, "s/users", "email"), strings(&dst, "s/users", "name"))
    };
    assert_eq!(copy("k1"), copy("k1"));
    let (a, b) = (copy("k1"), copy("k2"));
    assert!(a.0.iter().zip(&b.0).all(|(x, y)| x != y));
    let pseudo = Anonymizer::new("k1").pseudonym(&Rule::Email, "ada.lovelace@analytical.example");
    assert_eq!(pseudo, a.0[0]);
    assert!(!pseudo.contains("k1"));
}

#[test]
fn unmapped_text_columns_are_refused_with_suggestions() {
    let src = prod();
    let dst = Catalog::in_memory().unwrap();
    let e = Anonymizer::new("k").rule("email", Rule::Email).copy(&src, "app", &dst, "s").unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let msg = e.to_string();
    assert!(msg.contains("users.name String (suggest Rule::Name)"), "{msg}");
    assert!(msg.contains("users.phone String (suggest Rule::Phone)"), "{msg}");
    assert!(msg.contains("users.notes String (suggest Rule::FreeText"), "{msg}");
    assert!(msg.contains("users.plan String (suggest Rule::Keep if it holds no personal data"), "{msg}");
    // Every type is refused without a rule, not only text.
    assert!(msg.contains("orders.amount Float (suggest Rule::Noise"), "{msg}");
    assert!(msg.contains("users.user_id Int (suggest Rule::Hash)"), "{msg}");
    assert!(msg.contains("users.signed_up Timestamp (suggest Rule::DateShift"), "{msg}");
    assert!(!msg.contains("domain_len"), "computed columns are recomputed, not copied: {msg}");
    assert!(dst.list_dirs("", tabula::Recursive::Yes).unwrap().is_empty(), "nothing was written");
    let e = anonymizer("k").rule("plan", Rule::Noise { relative: 0.1 }).copy(&src, "app", &dst, "s").unwrap_err();
    assert!(e.to_string().contains("rule Noise(0.1) does not apply to a String column"), "{e}");
}

#[test]
fn sampling_is_consistent_across_tables() {
    let src = Catalog::in_memory().unwrap();
    src.create_dir("app", IfExists::Error).unwrap();
    let users = src
        .create_table(
            "app/users",
            Schema::new().required("user_id", ColumnType::Int).required("name", ColumnType::String),
            IfExists::Error,
        )
        .unwrap();
    Synth::new(1).fill(&users, 1000).unwrap();
    let orders = src
        .create_table(
            "app/orders",
            Schema::new().required("user_id", ColumnType::Int).required("total", ColumnType::Int),
            IfExists::Error,
        )
        .unwrap();
    Synth::new(2).column("user_id", Gen::Range(1, 1000)).fill(&orders, 3000).unwrap();
    let dst = Catalog::in_memory().unwrap();
    let report = Anonymizer::new("k")
        .rule("name", Rule::Name)
        .rule("user_id", Rule::Hash)
        .keep("total")
        .sample("user_id", 0.2)
        .copy(&src, "app", &dst, "s")
        .unwrap();
    let kept = report.tables.iter().find(|t| t.source == "app/users").unwrap().rows_written;
    assert!((130..270).contains(&kept), "about a fifth of the users: {kept}");
    let user_ids: std::collections::BTreeSet<i64> =
        dst.rows("s/users").unwrap().iter().map(|r| r.get("user_id").unwrap()).collect();
    for o in dst.rows("s/orders").unwrap() {
        assert!(user_ids.contains(&o.get::<i64>("user_id").unwrap()), "every sampled order has its user");
    }
    let limited = Anonymizer::new("k")
        .rule("name", Rule::Name)
        .keep("user_id")
        .keep("total")
        .limit(10)
        .copy(&src, "app", &dst, "t")
        .unwrap();
    assert!(limited.tables.iter().all(|t| t.rows_written == 10));
}

#[test]
fn no_original_value_survives_anywhere_in_the_target_file() {
    let src = prod();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("staging.db");
    {
        let dst = Catalog::open(&file).unwrap();
        anonymizer("secret key").copy(&src, "app", &dst, "staging").unwrap();
        dst.integrity_check().unwrap();
    }
    let mut bytes = std::fs::read(&file).unwrap();
    if let Ok(wal) = std::fs::read(file.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    let haystack = String::from_utf8_lossy(&bytes);
    let mut originals: Vec<String> =
        PII_EMAILS.iter().chain(&PII_NAMES).chain(&PII_PHONES).map(|s| s.to_string()).collect();
    originals.extend(PII_NAMES.iter().flat_map(|n| n.split(' ').map(str::to_string)));
    originals.extend(PII_EMAILS.iter().map(|e| e.split('@').next().unwrap().to_string()));
    for original in originals {
        assert!(!haystack.contains(&original), "'{original}' leaked into the staging file");
    }
    assert!(haystack.contains("example."), "the file does hold the pseudonyms");
}

#[test]
fn copying_within_one_catalog_into_a_test_namespace_works() {
    let src = prod();
    src.create_dir("ns", IfExists::Error).unwrap();
    anonymizer("k").copy(&src, "app", &src, "ns/app").unwrap();
    assert_eq!(src.get_table("ns/app/orders").unwrap().count().unwrap(), 9);
    let v = src.get_table("ns/app/users").unwrap().select([col("plan")]).first().unwrap().unwrap();
    assert_eq!(v.value("plan"), Some(&Value::from("pro")));
}

#[test]
fn a_large_copy_keeps_row_order_and_stops_at_a_failing_row() {
    let src = Catalog::in_memory().unwrap();
    src.create_dir("app", IfExists::Error).unwrap();
    let t = src
        .create_table(
            "app/events",
            Schema::new().required("n", ColumnType::Int).required("note", ColumnType::String),
            IfExists::Error,
        )
        .unwrap();
    t.insert((0..5_000).map(|n| row! {"n" => n, "note" => format!("event {n}, call +1 202 555 {n:04}")})).unwrap();
    let dst = Catalog::in_memory().unwrap();
    Anonymizer::new("k").keep("n").rule("note", Rule::FreeText).copy(&src, "app", &dst, "c").unwrap();
    let ns: Vec<i64> = dst.rows("c/events").unwrap().iter().map(|r| r.get("n").unwrap()).collect();
    assert_eq!(ns, (0..5_000).collect::<Vec<_>>(), "rows are copied in their order");
    // A rule failing deep into the copy: the error names the row, and nothing is kept.
    let picky = Rule::custom("picky", |_, v, _| match v {
        Value::Int(3_777) => Err("cannot map 3777".into()),
        other => Ok(other.clone()),
    });
    let e = Anonymizer::new("k").rule("n", picky).rule("note", Rule::FreeText).copy(&src, "app", &dst, "d");
    let msg = e.unwrap_err().to_string();
    assert!(msg.contains("row 3777: column 'n': cannot map 3777"), "{msg}");
    assert!(dst.list_dirs("", tabula::Recursive::Yes).unwrap().iter().all(|d| d.to_string() != "d"), "nothing is left");
}
