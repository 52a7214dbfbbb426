//! Privacy as a reviewer checks it: personal data of every kind planted in production, every
//! byte of the copy searched for each original value and its substrings.

use std::collections::HashSet;

use tabula::{row, Catalog, ColumnType, ErrorCode, IfExists, Schema, Value};
use tabula_testkit::{Anonymizer, Rule};

const NAMES: [&str; 2] = ["Jürgen Weißkopf", "Oluwaseun Adeyemi-Brannigan"];
const EMAILS: [&str; 2] = ["jürgen.weißkopf@beispiel.de", "seun.ab@correo-mail.ng"];
/// Planted in free text only.
const IN_TEXT: [&str; 7] = [
    "030/4477/8812",
    "+49 (30) 4477-8812",
    "+1 (202) 555-0147",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "203.0.113.77",
    "https://seun:hunter2secret@db.internal",
];
const SSNS: [i64; 2] = [123_456_789, 987_654_321];
const SALARIES: [f64; 2] = [81_234.5, 64_000.25];

fn production(path: &std::path::Path) -> Catalog {
    let cat = Catalog::open(path).unwrap();
    cat.create_dir("app", IfExists::Error).unwrap();
    let customers = cat
        .create_table(
            "app/customers",
            Schema::new()
                .required("customer_id", ColumnType::Int)
                .required("full_name", ColumnType::String)
                .required("email", ColumnType::String)
                .required("ssn", ColumnType::Int)
                .required("salary", ColumnType::Float)
                .required("birth_date", ColumnType::Date)
                .required("last_visit", ColumnType::Timestamp)
                .required("vip", ColumnType::Bool)
                .required("notes", ColumnType::String)
                .required("profile", ColumnType::Json),
            IfExists::Error,
        )
        .unwrap();
    customers
        .insert((0..2).map(|i| {
            let other = NAMES[1 - i];
            row! {
                "customer_id" => 70_001 + i as i64, "full_name" => NAMES[i], "email" => EMAILS[i],
                "ssn" => SSNS[i], "salary" => SALARIES[i],
                "birth_date" => ["1961-04-12", "1990-11-30"][i],
                "last_visit" => ["2026-10-01T08:15:00Z", "2026-11-02T17:45:10Z"][i],
                "vip" => i == 0,
                "notes" => format!(
                    "{} called about {}'s order 70001; phones {} and {} and {}; card {}; iban {}; from {}; \
                     see {}/admin. mail {}",
                    NAMES[i], other, IN_TEXT[0], IN_TEXT[1], IN_TEXT[2], IN_TEXT[3], IN_TEXT[4], IN_TEXT[5],
                    IN_TEXT[6], EMAILS[i]
                ),
                "profile" => Value::Json(serde_json::json!({
                    EMAILS[i]: {"phone": IN_TEXT[0], "ip": IN_TEXT[5]},
                    "contacts": [other, EMAILS[1 - i]],
                })),
            }
        }))
        .unwrap();
    cat
}

fn rules(key: &str) -> Anonymizer {
    Anonymizer::new(key)
        .rule("customer_id", Rule::Hash)
        .rule("full_name", Rule::Name)
        .rule("email", Rule::Email)
        .rule("ssn", Rule::Hash)
        .rule("salary", Rule::Noise { relative: 0.05 })
        .rule("birth_date", Rule::DateShift { entity: "customer_id".into(), max_days: 180 })
        .rule("last_visit", Rule::DateShift { entity: "customer_id".into(), max_days: 30 })
        .keep("vip")
        .rule("notes", Rule::FreeText)
        .rule("profile", Rule::FreeText)
}

/// Each planted value and each of its substrings of 6 bytes or more (at char boundaries).
fn needles() -> Vec<String> {
    let mut out = HashSet::new();
    // Of a URL, the credentials are personal; its scheme and host are kept on purpose.
    let credentials = IN_TEXT[6].trim_start_matches("https://").trim_end_matches("@db.internal");
    for v in NAMES.iter().chain(&EMAILS).chain(&IN_TEXT[..6]).chain([&credentials]) {
        let chars: Vec<(usize, char)> = v.char_indices().collect();
        for (a, _) in &chars {
            for b in (a + 6)..=v.len() {
                if v.is_char_boundary(b) {
                    out.insert(v[*a..b].to_string());
                }
            }
        }
    }
    out.into_iter().collect()
}

fn bytes_of(path: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", path.display())) {
            all.extend(b);
        }
    }
    all
}

/// The catalog file and its journal files.
fn files(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm"].iter().map(|s| std::path::PathBuf::from(format!("{}{s}", path.display()))).collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn nothing_planted_reaches_any_byte_of_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let prod_path = dir.path().join("prod.db");
    let prod = production(&prod_path);
    let staging_path = dir.path().join("staging.db");
    let staging = Catalog::open(&staging_path).unwrap();
    let report = rules("a key of the staging run").copy(&prod, "app", &staging, "copy").unwrap();
    assert_eq!(report.kept(), ["app/customers.vip"], "the report names what was kept as it is");

    // Positive control: production holds every planted value.
    let prod_bytes = bytes_of(&prod_path);
    for v in NAMES.iter().chain(&EMAILS).chain(&IN_TEXT) {
        assert!(contains(&prod_bytes, v), "the control finds '{v}' in production");
    }
    let copy_bytes = bytes_of(&staging_path);
    let leaked: Vec<String> = needles().into_iter().filter(|n| contains(&copy_bytes, n)).collect();
    assert!(leaked.is_empty(), "leaked into the copy: {leaked:?}");

    // Numbers and times: no original value is in the copy.
    let copied = staging.rows("copy/customers").unwrap();
    for (i, r) in copied.iter().enumerate() {
        assert!(!SSNS.contains(&r.get::<i64>("ssn").unwrap()));
        assert!(!SALARIES.contains(&r.get::<f64>("salary").unwrap()));
        let original = &prod.rows("app/customers").unwrap()[i];
        for c in ["customer_id", "birth_date", "last_visit"] {
            assert_ne!(r.value(c), original.value(c), "{c}");
        }
    }
    // The copy stays useful: free text keeps its words, names map to the same pseudonyms.
    let name0: String = copied[0].get("full_name").unwrap();
    let notes0: String = copied[0].get("notes").unwrap();
    assert!(notes0.starts_with(&format!("{name0} called about ")), "{notes0}");
    assert!(notes0.contains(&copied[1].get::<String>("full_name").unwrap()), "another customer's name too: {notes0}");
    let profile0 = copied[0].value("profile").unwrap().to_string();
    assert!(profile0.contains(&copied[0].get::<String>("email").unwrap()), "Json keys are scrubbed: {profile0}");

    // The leak scan sees the same: nothing in the copy, everything in production.
    let anonymizer = rules("a key of the staging run");
    let outputs = files(&staging_path);
    let outputs: Vec<&std::path::Path> = outputs.iter().map(|p| p.as_path()).collect();
    let clean = anonymizer.leak_scan(&prod, "app", 100, &outputs, &[]).unwrap();
    assert!(clean.passed() && clean.checked >= 15, "{clean}");
    let inputs = files(&prod_path);
    let inputs: Vec<&std::path::Path> = inputs.iter().map(|p| p.as_path()).collect();
    let control = anonymizer.leak_scan(&prod, "app", 100, &inputs, &[]).unwrap();
    let columns: Vec<&str> = control.found.iter().map(|l| l.column.as_str()).collect();
    assert!(columns.contains(&"customers.email") && columns.contains(&"customers.notes"), "{control}");
    assert!(!control.to_string().contains(EMAILS[0]), "the scan names columns, never values: {control}");
}

#[test]
fn every_unmapped_column_is_refused_whatever_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let prod = production(&dir.path().join("prod.db"));
    let staging = Catalog::in_memory().unwrap();
    let e = Anonymizer::new("k")
        .rule("full_name", Rule::Name)
        .rule("email", Rule::Email)
        .rule("notes", Rule::FreeText)
        .rule("profile", Rule::FreeText)
        .copy(&prod, "app", &staging, "copy")
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let msg = e.to_string();
    for listed in [
        "customers.customer_id Int",
        "customers.ssn Int (suggest Rule::Hash)",
        "customers.salary Float",
        "customers.birth_date Date (suggest Rule::DateShift",
        "customers.last_visit Timestamp",
        "customers.vip Bool",
    ] {
        assert!(msg.contains(listed), "'{listed}' missing from: {msg}");
    }
    assert!(staging.list_dirs("", tabula::Recursive::Yes).unwrap().is_empty(), "nothing was written");
}

#[test]
fn numbers_and_times_rules_are_keyed_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    let prod = production(&dir.path().join("prod.db"));
    let copy = |key: &str| {
        let staging = Catalog::in_memory().unwrap();
        rules(key).copy(&prod, "app", &staging, "c").unwrap();
        staging.rows("c/customers").unwrap()
    };
    let a = copy("k1");
    assert_eq!(a, copy("k1"), "same key, same copy");
    let b = copy("k2");
    for c in ["salary", "birth_date", "ssn"] {
        assert_ne!(a[0].value(c), b[0].value(c), "{c} depends on the key");
    }
    // Intervals within one entity survive a date shift.
    let original = prod.rows("app/customers").unwrap();
    let shifted = rules("k1")
        .rule("last_visit", Rule::DateShift { entity: "customer_id".into(), max_days: 180 })
        .rule("birth_date", Rule::DateShift { entity: "customer_id".into(), max_days: 180 });
    let staging = Catalog::in_memory().unwrap();
    shifted.copy(&prod, "app", &staging, "c").unwrap();
    let s = staging.rows("c/customers").unwrap();
    let span = |r: &tabula::Row| match (r.value("last_visit"), r.value("birth_date")) {
        (Some(Value::Timestamp(t)), Some(Value::Date(d))) => t / 86_400_000_000 - i64::from(*d),
        other => panic!("{other:?}"),
    };
    assert_eq!(span(&s[0]), span(&original[0]));
    // Bucket, Constant, Null.
    let staging = Catalog::in_memory().unwrap();
    rules("k1")
        .rule("salary", Rule::Bucket { width: 10_000.0 })
        .rule("vip", Rule::Constant(Value::Bool(false)))
        .copy(&prod, "app", &staging, "c")
        .unwrap();
    let r = &staging.rows("c/customers").unwrap()[0];
    assert_eq!((r.value("salary"), r.value("vip")), (Some(&Value::Float(80_000.0)), Some(&Value::Bool(false))));
    // Text that cannot be scrubbed with confidence: synthetic text of the same shape.
    let staging = Catalog::in_memory().unwrap();
    rules("k1").rule("notes", Rule::Synthetic).copy(&prod, "app", &staging, "c").unwrap();
    for (copy, original) in staging.rows("c/customers").unwrap().iter().zip(&original) {
        let (c, o): (String, String) = (copy.get("notes").unwrap(), original.get("notes").unwrap());
        assert_eq!(c.chars().count(), o.chars().count());
        assert!(o.split_whitespace().filter(|w| w.len() >= 4).all(|w| !c.contains(w)), "{c}");
    }
    let e = rules("k1").rule("ssn", Rule::Null).copy(&prod, "app", &Catalog::in_memory().unwrap(), "c").unwrap_err();
    assert!(e.to_string().contains("rule Null needs a nullable column"), "{e}");
}

#[test]
fn a_custom_rule_is_keyed_and_runs_during_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let prod = production(&dir.path().join("prod.db"));
    // Age band from the birth date, keyed jitter on the salary by the customer's row.
    let band = Rule::custom("decade", |_keyed, v, _row| match v {
        Value::Date(d) => Ok(Value::Date(d - d.rem_euclid(3653))),
        other => Err(format!("decade needs a Date, found {}", other.type_name())),
    });
    let salary = Rule::custom("salary-by-id", |keyed, v, row| {
        let id = row.value("customer_id").map(|v| v.to_string()).unwrap_or_default();
        match v {
            Value::Float(f) => Ok(Value::Float((f * (0.9 + 0.2 * keyed.unit("salary", id.as_bytes()))).round())),
            _ => Err("salary must be a Float".into()),
        }
    });
    let copy = |key: &str| {
        let staging = Catalog::in_memory().unwrap();
        let report = rules(key)
            .rule("birth_date", band.clone())
            .rule("salary", salary.clone())
            .copy(&prod, "app", &staging, "c")
            .unwrap();
        assert_eq!(report.tables[0].rules["salary"], "Custom(salary-by-id)");
        staging.rows("c/customers").unwrap()
    };
    let (a, again, other) = (copy("k1"), copy("k1"), copy("k2"));
    assert_eq!(a, again);
    assert_ne!(a[0].value("salary"), other[0].value("salary"));
    assert!(!SALARIES.contains(&a[0].get::<f64>("salary").unwrap()));
    let failing = Rule::custom("broken", |_, _, _| Err("cannot do this one".into()));
    let staging = Catalog::in_memory().unwrap();
    let e = rules("k1").rule("notes", failing).copy(&prod, "app", &staging, "c").unwrap_err();
    assert!(e.to_string().contains("column 'notes': cannot do this one"), "{e}");
    // A rule that lets a value through is caught by the leak scan, which names the column.
    let sloppy = rules("k1").rule("email", Rule::custom("identity", |_, v, _| Ok(v.clone())));
    let path = dir.path().join("sloppy.db");
    sloppy.copy(&prod, "app", &Catalog::open(&path).unwrap(), "c").unwrap();
    let outputs = files(&path);
    let outputs: Vec<&std::path::Path> = outputs.iter().map(|p| p.as_path()).collect();
    let scan = sloppy.leak_scan(&prod, "app", 100, &outputs, &[]).unwrap();
    assert_eq!(scan.found.iter().map(|l| l.column.as_str()).collect::<Vec<_>>(), ["customers.email"], "{scan}");
}

#[test]
fn email_pseudonyms_do_not_collide() {
    // 4,000,000 in the long form (TABULA_PSEUDONYM_COUNT=4000000), about 5 s in release.
    let n: u64 = std::env::var("TABULA_PSEUDONYM_COUNT").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let a = Anonymizer::new("collision test key");
    let mut seen = HashSet::with_capacity(n as usize);
    for i in 0..n {
        let p = a.pseudonym(&Rule::Email, &format!("person{i}@company{}.example", i % 997));
        assert!(seen.insert(p), "two distinct emails got one pseudonym at {i}");
    }
    let sample = a.pseudonym(&Rule::Email, "x@y.example");
    let hex = sample.trim_start_matches('u').split('@').next().unwrap();
    assert_eq!(hex.len(), 16, "64 keyed bits: {sample}");
}
