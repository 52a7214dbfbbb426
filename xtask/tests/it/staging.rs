//! The staging-check pipeline on small catalogs: reports, failures, bad input.

use tabula::{col, Catalog, ErrorCode, IfExists, Path};
use tabula_testkit::staging::{self, Options};
use tabula_testkit::{Migration, Migrations};

fn opts(out: &std::path::Path, prod: Option<std::path::PathBuf>, key: Option<&str>) -> Options {
    Options { prod, key: key.map(staging::Key::new), out: out.to_path_buf(), staging: None, progress: false }
}

#[test]
fn the_default_pipeline_passes_and_writes_both_reports() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = staging::run(&docs_app::staging_app(), &opts(dir.path(), None, None)).unwrap();
    assert!(outcome.passed, "{}", staging::summary(&outcome));
    assert_eq!(outcome.applied, ["0001_tables", "0002_word_count", "0003_summary", "0004_embedding"]);
    let ids: Vec<&str> = outcome.migrations.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["0005_summary_v2", "0006_drop_legacy_flag"]);
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.starts_with("# Staging check: PASSED"), "{md}");
    assert!(md.contains("| 0005_summary_v2 | ok | yes (allowed) | yes | yes |"), "{md}");
    assert!(md.contains("summarize@1 → summarize@2: 200 of 200 sampled rows change"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["passed"], true);
    assert_eq!(json["migrations"]["steps"][1]["destructive"][0], "documents: drop column legacy_flag");
    // The production file was opened read-only and is unchanged by the run.
    let prod = Catalog::open_read_only(dir.path().join("demo-prod.db")).unwrap();
    let docs = prod.get_table("docs/documents").unwrap();
    assert!(docs.schema().unwrap().column("legacy_flag").is_some());
    // No original email reaches the staging copy.
    let emails: Vec<String> = prod
        .get_table("docs/authors")
        .unwrap()
        .select([col("email")])
        .collect()
        .unwrap()
        .iter()
        .map(|r| r.get("email").unwrap())
        .collect();
    let staging = std::fs::read(dir.path().join("staging.db")).unwrap();
    let text = String::from_utf8_lossy(&staging);
    assert!(emails.iter().all(|e| !text.contains(e.as_str())));
    // Nor any author's name, though the bodies mention them.
    let names: Vec<String> = prod
        .get_table("docs/authors")
        .unwrap()
        .select([col("name")])
        .collect()
        .unwrap()
        .iter()
        .map(|r| r.get("name").unwrap())
        .collect();
    let bodies = prod.get_table("docs/documents").unwrap().select([col("body")]).collect().unwrap();
    assert!(
        names.iter().any(|n| bodies.iter().any(|b| b.get::<String>("body").unwrap().contains(n.as_str()))),
        "the fixture plants names in bodies"
    );
    for n in &names {
        assert!(!text.contains(n.as_str()), "'{n}' reached the staging copy");
        assert!(!md.contains(n.as_str()), "'{n}' reached the report");
    }
    let scan = outcome.leak_scan.as_ref().unwrap();
    assert!(scan.passed() && scan.checked > 100, "{scan}");
    assert!(md.contains(&format!("- {scan}")), "{md}");
    assert!(md.contains("| docs/documents.legacy_flag | Keep |"), "every column's rule is listed: {md}");
}

/// Production on a PostgreSQL server: read through a read-only connection, and the check
/// passes as on a file; the report names the server without its password, and production is
/// unchanged.
#[test]
#[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
fn the_pipeline_passes_with_production_on_a_server() {
    let url = std::env::var("TABULA_TEST_POSTGRES").expect("TABULA_TEST_POSTGRES names the test server");
    let env = tabula_testkit::TestEnv::on_server(&url).unwrap();
    let prod_url = env.url().unwrap().to_string();
    docs_app::demo_production_in(env.catalog()).unwrap();
    let before = Catalog::connect_read_only(&prod_url).unwrap().get_table("docs/documents").unwrap().version().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = Some("a secret key of this test, long enough");
    let outcome =
        staging::run(&docs_app::staging_app(), &opts(dir.path(), Some(prod_url.clone().into()), key)).unwrap();
    assert!(outcome.passed, "{}", staging::summary(&outcome));
    assert_eq!(outcome.applied, ["0001_tables", "0002_word_count", "0003_summary", "0004_embedding"]);
    assert!(outcome.leak_scan.as_ref().is_some_and(|s| s.passed() && s.checked > 100));
    assert!(outcome.prod.starts_with("postgres://"), "{}", outcome.prod);
    let prod = Catalog::connect_read_only(&prod_url).unwrap();
    let docs = prod.get_table("docs/documents").unwrap();
    assert_eq!(docs.version().unwrap(), before, "production is unchanged");
    assert!(docs.schema().unwrap().column("legacy_flag").is_some());
    let e = docs.insert([tabula::row! {"doc_id" => 1}]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReadOnly, "{e}");
    // A schema without a catalog is not made one by a read-only connection.
    let sep = if url.contains('?') { '&' } else { '?' };
    let empty = format!("{url}{sep}options=-csearch_path%3Dpublic");
    assert_eq!(Catalog::connect_read_only(&empty).unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn a_failing_check_is_reported_and_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let app = docs_app::staging_app();
    let mut steps: Vec<Migration> = app.migrations().steps().to_vec();
    steps.push(Migration::new("0007_drop_titles", |ctx| {
        let docs = ctx.table("documents")?;
        if docs.schema()?.column("title").is_some() {
            docs.drop_column("title")?;
        }
        Ok(())
    }));
    let app = app.with_migrations(Migrations::new(steps));
    let outcome = staging::run(&app, &opts(dir.path(), None, None)).unwrap();
    assert!(!outcome.passed);
    let summary = staging::summary(&outcome);
    assert!(summary.contains("FAIL 0007_drop_titles"), "{summary}");
    assert!(summary.contains("destructive but not marked as allowed (documents: drop column title)"), "{summary}");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.starts_with("# Staging check: FAILED") && md.contains("**yes, not allowed**"), "{md}");
}

#[test]
fn a_silent_udf_change_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let silent = tabula::Udf::new("summarize", 1, |s: String| s.to_uppercase());
    let app = docs_app::staging_app().clear_udf_changes().udf_change(
        docs_app::summarize_v1(),
        silent,
        "documents",
        &["body"],
    );
    let outcome = staging::run(&app, &opts(dir.path(), None, None)).unwrap();
    assert!(!outcome.passed);
    assert!(staging::summary(&outcome).contains("kept its version; bump the version"));
}

#[test]
fn bad_input_gives_clear_errors_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let e =
        staging::run(&docs_app::staging_app(), &opts(dir.path(), Some(missing.clone()), Some("a long enough key!")))
            .err()
            .unwrap();
    assert_eq!(e.code(), ErrorCode::NotFound);
    assert!(!missing.exists(), "a missing production file is not created");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a catalog, just some text that is long enough to fill a header page").unwrap();
    let before = std::fs::read(&text).unwrap();
    let e = staging::run(&docs_app::staging_app(), &opts(dir.path(), Some(text.clone()), Some("a long enough key!")))
        .err()
        .unwrap();
    assert_eq!(e.code(), ErrorCode::NotACatalog, "{e}");
    assert_eq!(std::fs::read(&text).unwrap(), before);
    let e = staging::run(&docs_app::staging_app(), &opts(dir.path(), Some(text.clone()), None)).err().unwrap();
    assert!(e.to_string().contains("TABULA_STAGING_KEY"), "{e}");
    let e = staging::run(&docs_app::staging_app(), &opts(dir.path(), None, Some("short"))).err().unwrap();
    assert!(e.to_string().contains("use at least 16") && !e.to_string().contains("short"), "{e}");
    // The public demo key cannot anonymize a real production catalog.
    let e = staging::run(&docs_app::staging_app(), &opts(dir.path(), Some(text.clone()), Some(staging::DEMO_KEY)))
        .err()
        .unwrap();
    assert!(e.to_string().contains("the demo key is public"), "{e}");
    // A key file: its first line; errors name the file, never the key.
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "a secret key of the team\n").unwrap();
    assert_eq!(
        staging::Key::from_file_or_env(Some(&key_file)).unwrap(),
        Some(staging::Key::new("a secret key of the team"))
    );
    assert_eq!(format!("{:?}", staging::Key::new("a secret key of the team")), "Key(24 characters)");
    std::fs::write(&key_file, "\n").unwrap();
    let e = staging::Key::from_file_or_env(Some(&key_file)).unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
    let e = staging::Key::from_file_or_env(Some(&dir.path().join("no-such-key"))).unwrap_err();
    assert!(e.to_string().contains("cannot read the key file"), "{e}");
    // An SQLite file of another program: refused, and not changed by a byte.
    let foreign = dir.path().join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE invoices(id INTEGER); INSERT INTO invoices VALUES (1);").unwrap();
    }
    let before = std::fs::read(&foreign).unwrap();
    let started = std::time::Instant::now();
    let e =
        staging::run(&docs_app::staging_app(), &opts(dir.path(), Some(foreign.clone()), Some("a long enough key!")))
            .err()
            .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(e.code(), ErrorCode::NotACatalog, "{e}");
    assert_eq!(std::fs::read(&foreign).unwrap(), before);
    assert!(!dir.path().join("foreign.db-wal").exists());
    // A directory and a FIFO: refused at once (a FIFO must not block), nothing created.
    let fifo = dir.path().join("prod.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for bad in [dir.path().to_path_buf(), fifo] {
        let started = std::time::Instant::now();
        let e =
            staging::run(&docs_app::staging_app(), &opts(dir.path(), Some(bad.clone()), Some("a long enough key!")))
                .err()
                .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(e.code(), ErrorCode::NotACatalog, "{e}");
        assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
    }
    // A catalog without the app's namespace.
    let empty = dir.path().join("empty.db");
    Catalog::open(&empty).unwrap().create_dir("other", IfExists::Error).unwrap();
    let e = staging::run(&docs_app::staging_app(), &opts(dir.path(), Some(empty), Some("a long enough key!")))
        .err()
        .unwrap();
    assert!(e.to_string().contains("has no namespace 'docs'"), "{e}");
}

#[test]
fn a_migration_that_panics_is_a_clear_error_and_production_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let app = docs_app::staging_app();
    let mut steps: Vec<Migration> = app.migrations().steps().to_vec();
    steps.push(Migration::new("0007_broken", |_| panic!("index out of range in the new step")));
    let app = app.with_migrations(Migrations::new(steps));
    let e = staging::run(&app, &opts(dir.path(), None, None)).err().unwrap();
    assert!(e.to_string().contains("migration '0007_broken' panicked: index out of range"), "{e}");
    let prod = Catalog::open_read_only(dir.path().join("demo-prod.db")).unwrap();
    assert_eq!(app.migrations().pending(&prod, &Path::parse("docs").unwrap()).unwrap().len(), 3);
}

#[test]
fn an_applied_step_edited_since_production_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let app = docs_app::staging_app();
    let mut steps: Vec<Migration> = app.migrations().steps().to_vec();
    steps[1] = Migration::new("0002_word_count", |ctx| {
        let words = col("body").length();
        ctx.table("documents")?.add_computed_column(
            "word_count",
            words,
            tabula::ColumnOptions::if_exists(IfExists::Ignore),
        )?;
        Ok(())
    });
    let app = app.with_migrations(Migrations::new(steps));
    let outcome = staging::run(&app, &opts(dir.path(), None, None)).unwrap();
    assert!(!outcome.passed);
    let summary = staging::summary(&outcome);
    assert!(summary.contains("FAIL edited after it was applied: 0002_word_count"), "{summary}");
}

#[test]
fn a_production_that_drifted_from_the_code_stops_the_check() {
    let dir = tempfile::tempdir().unwrap();
    // The code lacks a step production applied (say, a release was rolled back).
    let app = docs_app::staging_app();
    let steps: Vec<Migration> = app.migrations().steps().iter().filter(|s| s.id() != "0003_summary").cloned().collect();
    let app = app.with_migrations(Migrations::new(steps));
    let e = staging::run(&app, &opts(dir.path(), None, None)).err().unwrap();
    assert_eq!(e.code(), ErrorCode::Conflict);
    assert!(e.to_string().contains("step '0003_summary' is applied, but the code has no such step"), "{e}");
    // A fingerprinted step whose code changed since it was applied.
    let app = docs_app::staging_app();
    let mut steps: Vec<Migration> = app.migrations().steps().to_vec();
    steps[0] = tabula_testkit::migration!("0001_tables", |ctx| {
        ctx.create_table("authors", docs_app::authors_schema())?;
        Ok(())
    });
    let app = app.with_migrations(Migrations::new(steps));
    let e = staging::run(&app, &opts(dir.path(), None, None)).err().unwrap();
    assert!(e.to_string().contains("step '0001_tables' was edited after it was applied"), "{e}");
}

/// The staging copy on a server (`--staging postgres://..`): the check passes, the copy is a
/// namespace of that catalog, a second run replaces the first run's copy, and the leak scan
/// reads the server's tables: a rule that lets emails through fails the run there too, naming
/// the table it found them in, and production on a server stays as it was.
#[test]
#[ignore = "needs a PostgreSQL server (TABULA_TEST_POSTGRES)"]
fn the_staging_copy_can_live_on_a_server_and_its_leaks_are_found_there() {
    let url = std::env::var("TABULA_TEST_POSTGRES").expect("TABULA_TEST_POSTGRES names the test server");
    let prod_env = tabula_testkit::TestEnv::on_server(&url).unwrap();
    docs_app::demo_production_in(prod_env.catalog()).unwrap();
    let staging_env = tabula_testkit::TestEnv::on_server(&url).unwrap();
    let staging_url = staging_env.url().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let key = Some("a secret key of this test, long enough");
    let run = |app: &staging::App| {
        let options = Options {
            staging: Some(staging_url.clone()),
            ..opts(dir.path(), Some(prod_env.url().unwrap().into()), key)
        };
        staging::run(app, &options).unwrap()
    };
    let first = run(&docs_app::staging_app());
    assert!(first.passed, "{}", staging::summary(&first));
    assert!(first.staging.starts_with("postgres://"), "{}", first.staging);
    assert!(!dir.path().join("staging.db").exists(), "no file copy");
    let scan = first.leak_scan.as_ref().unwrap();
    assert!(
        scan.checked > 100
            && scan.outputs.iter().any(|(name, bytes)| name.ends_with("/_tabula_versions") && *bytes > 0),
        "{scan}"
    );
    let copied = Catalog::connect_read_only(&staging_url).unwrap();
    let docs = copied.get_table(format!("{}/documents", first.namespace)).unwrap().count().unwrap();
    assert_eq!(docs, first.copied.iter().find(|(t, _)| t.ends_with("documents")).unwrap().1);

    let leaky = docs_app::staging_app().anonymizer(|key| {
        docs_app::anonymizer(key).table_rule(
            "authors",
            "email",
            tabula_testkit::Rule::custom("identity", |_, v, _| Ok(v.clone())),
        )
    });
    let second = run(&leaky);
    assert!(!second.passed);
    let leaks = &second.leak_scan.as_ref().unwrap().found;
    let email = leaks.iter().find(|l| l.column == "authors.email").expect("the leaked column is named");
    assert!(email.outputs.iter().any(|o| o.starts_with("postgres://")), "{:?}", email.outputs);
    let dirs: Vec<String> =
        copied.list_dirs("", tabula::Recursive::No).unwrap().iter().map(|d| d.to_string()).collect();
    assert!(!dirs.contains(&first.namespace) && dirs.contains(&second.namespace), "{dirs:?}");
    assert_eq!(prod_env.catalog().get_table("docs/documents").unwrap().count().unwrap(), docs);
}

#[test]
fn a_leak_fails_the_check_and_names_the_column_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    // A custom rule that lets emails through, as a careless rule would.
    let app = docs_app::staging_app().anonymizer(|key| {
        docs_app::anonymizer(key).table_rule(
            "authors",
            "email",
            tabula_testkit::Rule::custom("identity", |_, v, _| Ok(v.clone())),
        )
    });
    let outcome = staging::run(&app, &opts(dir.path(), None, None)).unwrap();
    assert!(!outcome.passed);
    let summary = staging::summary(&outcome);
    assert!(summary.contains("FAIL leak scan") && summary.contains("authors.email"), "{summary}");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.starts_with("# Staging check: FAILED") && md.contains("**failure:** leak scan"), "{md}");
    let prod = Catalog::open_read_only(dir.path().join("demo-prod.db")).unwrap();
    let email: String =
        prod.get_table("docs/authors").unwrap().select([col("email")]).collect().unwrap()[0].get("email").unwrap();
    assert!(!md.contains(&email) && !summary.contains(&email), "the report never quotes the value");
}

#[test]
fn the_command_exits_2_at_once_on_a_production_that_is_no_catalog_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("prod.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for bad in [dir.path().to_path_buf(), fifo] {
        let started = std::time::Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([
                "staging-check",
                "--quiet",
                "--prod",
                bad.to_str().unwrap(),
                "--out",
                dir.path().join("out").to_str().unwrap(),
            ])
            .env("TABULA_STAGING_KEY", "a long enough secret key")
            .output()
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "it does not block");
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
        assert!(
            stderr.contains(&bad.display().to_string()) && !stderr.contains("a long enough secret key"),
            "{stderr}"
        );
    }
}

#[test]
fn an_application_without_rules_or_production_is_told_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let no_demo = staging::App::new("docs", docs_app::migrations()).anonymizer(docs_app::anonymizer);
    let e = staging::run(&no_demo, &opts(dir.path(), None, None)).err().unwrap();
    assert!(e.to_string().contains("no production catalog: pass --prod PATH"), "{e}");
    let bare = staging::App::new("docs", docs_app::migrations());
    let prod = dir.path().join("prod.db");
    docs_app::demo_production(&prod).unwrap();
    let e = staging::run(&bare, &opts(dir.path(), Some(prod), Some("a long enough key!"))).err().unwrap();
    assert!(e.to_string().contains("gives no anonymization rules (App::anonymizer)"), "{e}");
    assert!(!dir.path().join("staging.db").exists(), "nothing was copied");
}

/// The JSON report as data and the markdown report as text, pinned: what changes between runs
/// (paths, the namespace's name, times and speeds, process ids, file sizes) is redacted, the rest (every
/// rule, count, diff and sample) must stay exactly as reviewed.
#[test]
fn the_reports_of_the_default_pipeline_are_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = staging::run(&docs_app::staging_app(), &opts(dir.path(), None, None)).unwrap();
    let ns = outcome.namespace.clone();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    let namespace = move |value: insta::internals::Content, _path: insta::internals::ContentPath<'_>| {
        value.as_str().map_or(value.clone(), |s| s.replace(&ns, "[namespace]").into())
    };
    insta::assert_json_snapshot!("report_json", json, {
        ".prod" => "[path]",
        ".staging" => "[path]",
        ".reports" => "[paths]",
        ".timings" => "[timings]",
        ".namespace" => "[namespace]",
        ".anonymization.tables[].target" => insta::dynamic_redaction(namespace.clone()),
        ".production.applied[].applied_us" => "[time]",
        ".production.applied[].pid" => "[pid]",
        ".production.applied[].host" => "[host]",
        ".leak_scan.outputs[][1]" => "[bytes]",
        ".leak_scan.outputs[0][0]" => "[path]",
        ".migrations.steps[].millis" => "[ms]",
        ".udfs[].new_us_per_row" => "[us]",
        ".udfs[].old_us_per_row" => "[us]",
        ".udfs[].recompute[].estimated_ms" => "[ms]",
        ".udfs[].recompute[].table" => insta::dynamic_redaction(namespace.clone()),
    });
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let (out, ns) = (regex::escape(&dir.path().to_string_lossy()), regex::escape(&outcome.namespace));
    insta::with_settings!({filters => vec![
        (out.as_str(), "[out]"),
        (ns.as_str(), "[namespace]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z by process \d+ on '[^']*'", "[time] by [process]"),
        (r"\| \d+ ms \|", "| [ms] |"),
        (r"time per row: .*", "time per row: [us]"),
        (r"about [0-9.]+ ms", "about [ms]"),
        (r"(?m)^(- [^:\n]+): \d+ ms$", "$1: [ms]"),
    ]}, {
        insta::assert_snapshot!("report_md", md);
    });
}
