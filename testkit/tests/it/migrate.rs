//! Migrations: recording, pending steps, and the checks' failure cases.

use tabula::{col, lit, row, Catalog, ColumnOptions, ColumnType, Force, IfExists, Path, Schema, Udf, Value};
use tabula_testkit::{Migration, MigrationCheck, Migrations, Synth, UdfDiff};

fn create() -> Migration {
    Migration::new("0001_notes", |ctx| {
        ctx.create_table(
            "notes",
            Schema::new().required("note_id", ColumnType::Int).required("text", ColumnType::String),
        )?;
        Ok(())
    })
}

fn seed(ctx: &tabula_testkit::MigrationCtx) -> tabula::Result<()> {
    Synth::new(3).fill(&ctx.table("notes")?, 50)?;
    Ok(())
}

#[test]
fn apply_records_steps_and_applies_only_pending_ones() {
    let cat = Catalog::in_memory().unwrap();
    let ns = Path::parse("app").unwrap();
    let len = Migration::new("0002_len", |ctx| {
        ctx.table("notes")?.add_computed_column(
            "len",
            col("text").length(),
            ColumnOptions::if_exists(IfExists::Ignore),
        )?;
        Ok(())
    });
    let m1 = Migrations::new([create()]);
    assert_eq!(m1.apply(&cat, &ns).unwrap().ids(), ["0001_notes"]);
    let m2 = Migrations::new([create(), len]);
    assert_eq!(m2.pending(&cat, &ns).unwrap(), ["0002_len"]);
    assert_eq!(m2.apply(&cat, &ns).unwrap().ids(), ["0002_len"]);
    assert!(m2.apply(&cat, &ns).unwrap().steps.is_empty());
    let applied = m2.applied(&cat, &ns).unwrap();
    assert_eq!(applied.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["0001_notes", "0002_len"]);
    assert_eq!(applied[1].versions, serde_json::json!({"notes": [0, 1]}));
    assert_ne!(m1.fingerprint(), m2.fingerprint());
    // The same steps run on another namespace independently.
    assert_eq!(m2.apply(&cat, &Path::parse("other").unwrap()).unwrap().steps.len(), 2);
}

#[test]
fn a_good_step_passes_every_check() {
    let cat = Catalog::in_memory().unwrap();
    let m = Migrations::new([
        create(),
        Migration::new("0002_upper", |ctx| {
            ctx.table("notes")?.add_computed_column(
                "shout",
                col("text").upper(),
                ColumnOptions::if_exists(IfExists::Ignore),
            )?;
            Ok(())
        }),
    ]);
    let report = MigrationCheck::new(&m).applied_through("0001_notes").data(seed).run(&cat).unwrap();
    assert!(report.passed(), "{}", report.to_text());
    let text = report.to_text();
    assert!(text.contains("+ notes.shout String = upper(text)"), "{text}");
    assert!(text.contains("notes: add computed column shout = upper(text)"), "{text}");
    assert!(text.contains("destructive: none"), "{text}");
    assert!(report.to_json()["steps"][0]["idempotent"].as_bool().unwrap());
}

#[test]
fn a_step_that_is_not_idempotent_fails() {
    let cat = Catalog::in_memory().unwrap();
    let m = Migrations::new([
        create(),
        Migration::new("0002_seed", |ctx| {
            ctx.table("notes")?.insert([row! {"note_id" => 0, "text" => "welcome"}])?;
            Ok(())
        }),
    ]);
    let report = MigrationCheck::new(&m).applied_through("0001_notes").run(&cat).unwrap();
    assert!(!report.passed());
    assert_eq!(report.failures(), ["0002_seed: not idempotent: running it again made versions (notes 1 -> 2)"]);
}

#[test]
fn a_destructive_step_must_be_marked() {
    let cat = Catalog::in_memory().unwrap();
    let drop = |allowed: bool| {
        let step = Migration::new("0002_drop", |ctx| {
            let t = ctx.table("notes")?;
            if t.schema()?.column("text").is_some() {
                t.drop_column("text")?;
            }
            Ok(())
        });
        Migrations::new([create(), if allowed { step.allow_destructive() } else { step }])
    };
    let report = MigrationCheck::new(&drop(false)).applied_through("0001_notes").data(seed).run(&cat).unwrap();
    assert_eq!(
        report.failures(),
        ["0002_drop: destructive but not marked as allowed (notes: drop column text); mark it with .allow_destructive() if that is intended"]
    );
    let report = MigrationCheck::new(&drop(true)).applied_through("0001_notes").data(seed).run(&cat).unwrap();
    assert!(report.passed(), "{}", report.to_text());
    assert!(report.to_text().contains("destructive: notes: drop column text (allowed)"));
}

/// Replacing a stored column (`add_column` with `IfExists::Replace`) loses its values: it is
/// destructive like a drop, though it is written as an add.
#[test]
fn replacing_a_stored_column_is_destructive() {
    let cat = Catalog::in_memory().unwrap();
    let step = Migration::new("0002_retype", |ctx| {
        let t = ctx.table("notes")?;
        if t.schema()?.column("text").is_some_and(|c| !c.nullable) {
            // Same type, now nullable: the schema only widens, but every value is gone.
            t.add_column("text", ColumnType::String, Value::Null, IfExists::Replace)?;
        }
        Ok(())
    });
    let steps = Migrations::new([create(), step]);
    let report = MigrationCheck::new(&steps).applied_through("0001_notes").data(seed).run(&cat).unwrap();
    assert_eq!(
        report.failures(),
        ["0002_retype: destructive but not marked as allowed (notes: replace column text String?); mark it with .allow_destructive() if that is intended"]
    );
}

/// The schema diff compares column definitions, not their text: a step that only changes a
/// computed column's error policy shows.
#[test]
fn the_schema_diff_sees_what_text_would_hide() {
    let cat = Catalog::in_memory().unwrap();
    let len = Migration::new("0002_len", |ctx| {
        ctx.table("notes")?.add_computed_column(
            "len",
            col("text").length(),
            ColumnOptions::if_exists(IfExists::Ignore),
        )?;
        Ok(())
    });
    let keep_errors = Migration::new("0003_keep_errors", |ctx| {
        let options =
            ColumnOptions { on_error: tabula::OnError::Ignore, if_exists: IfExists::Replace, ..Default::default() };
        ctx.table("notes")?.add_computed_column("len", col("text").length(), options)?;
        Ok(())
    })
    .allow_destructive();
    let steps = Migrations::new([create(), len, keep_errors]);
    let report = MigrationCheck::new(&steps).applied_through("0002_len").data(seed).run(&cat).unwrap();
    let step = &report.steps[0];
    assert_eq!(
        step.schema_diff,
        ["~ notes.len Int = length(text)  =>  len Int? = length(text) (errors kept)"],
        "{}",
        report.to_text()
    );
}

#[test]
fn a_step_whose_revert_cannot_restore_the_data_fails() {
    let cat = Catalog::in_memory().unwrap();
    let m = Migrations::new([
        create(),
        Migration::new("0002_rebuild", |ctx| {
            // Recreating a table loses its history: no revert brings the old rows back.
            let t = ctx.table("notes")?;
            if t.schema()?.column("archived").is_none() {
                ctx.catalog().create_table(
                    ctx.path("notes")?,
                    Schema::new()
                        .required("note_id", ColumnType::Int)
                        .required("text", ColumnType::String)
                        .nullable("archived", ColumnType::Bool),
                    IfExists::Replace,
                )?;
            }
            Ok(())
        })
        .allow_destructive(),
    ]);
    let report = MigrationCheck::new(&m).applied_through("0001_notes").data(seed).run(&cat).unwrap();
    let failures = report.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("0002_rebuild: revert does not restore the state before the step (differs in: notes)")
    );
}

#[test]
fn the_check_runs_in_its_own_namespace_and_leaves_nothing() {
    let cat = Catalog::in_memory().unwrap();
    let m = Migrations::new([create()]);
    MigrationCheck::new(&m).run(&cat).unwrap();
    let dirs: Vec<String> = cat.list_dirs("", tabula::Recursive::No).unwrap().iter().map(|d| d.to_string()).collect();
    assert_eq!(dirs, ["tabula_testkit"]);
    let _ = (Force::Yes, lit(0), Value::Null);
}

fn summarize(version: u32, exclaim: bool) -> Udf {
    Udf::new("summarize", version, move |s: String| {
        let first: String = s.split('.').next().unwrap_or("").chars().take(20).collect();
        if exclaim {
            format!("{first}!")
        } else {
            first
        }
    })
}

#[test]
fn a_udf_that_changed_without_a_version_bump_fails() {
    let cat = Catalog::in_memory().unwrap();
    let t = cat.create_table("notes", Schema::new().required("text", ColumnType::String), IfExists::Error).unwrap();
    Synth::new(9).column("text", tabula_testkit::Gen::Words(3, 8)).fill(&t, 40).unwrap();
    let silent = UdfDiff::new(&summarize(1, false), &summarize(1, true)).on_table(&t, [col("text")], 40).unwrap();
    assert!(!silent.passed());
    assert_eq!(silent.changed, 40);
    assert!(
        silent.failures[0]
            .contains("summarize@1 changed its output on 40 of 40 rows but kept its version; bump the version"),
        "{}",
        silent.failures[0]
    );
    let same = UdfDiff::new(&summarize(1, false), &summarize(1, false)).on_table(&t, [col("text")], 40).unwrap();
    assert!(same.passed() && same.changed == 0);
}

#[test]
fn a_version_bump_reports_what_it_recomputes() {
    let cat = Catalog::in_memory().unwrap();
    let t = cat.create_table("notes", Schema::new().required("text", ColumnType::String), IfExists::Error).unwrap();
    t.insert([row! {"text" => "One. Two."}, row! {"text" => "Three"}]).unwrap();
    let v1 = summarize(1, false);
    cat.register(&v1);
    t.add_computed_column("summary", v1.call([col("text")]), ColumnOptions::default()).unwrap();
    let report =
        UdfDiff::new(&v1, &summarize(2, true)).on_table(&t, [col("text")], 10).unwrap().plan_recompute(&cat).unwrap();
    assert!(report.passed());
    insta::assert_snapshot!(report.to_text(), @r#"
    summarize@1 -> summarize@2: 2 of 2 rows changed
      ("One. Two."): "One" => "One!"
      ("Three"): "Three" => "Three!"
      recomputes notes.summary (2 rows)
    "#);
    let r = &report.recompute[0];
    assert!(
        (r.estimated_ms - r.rows as f64 * report.new_us_per_row / 1000.0).abs() < 1e-9,
        "rows x measured time per row"
    );
}

#[test]
fn an_applied_step_edited_afterwards_is_detected() {
    let cat = Catalog::in_memory().unwrap();
    let ns = Path::parse("app").unwrap();
    let step = |expr: fn() -> tabula::Expr| {
        Migration::new("0002_len", move |ctx| {
            ctx.table("notes")?.add_computed_column("len", expr(), ColumnOptions::if_exists(IfExists::Ignore))?;
            Ok(())
        })
    };
    Migrations::new([create(), step(|| col("text").length())]).apply(&cat, &ns).unwrap();
    // Someone edits the applied step instead of adding a new one.
    let edited = Migrations::new([create(), step(|| col("text").length() + 1)]);
    let found = tabula_testkit::verify_applied(&edited, &cat, &ns).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("0002_len: running it again failed:"), "{}", found[0]);
    assert!(
        found[0].contains("stored:    length(text)") && found[0].contains("requested: length(text) + 1"),
        "{}",
        found[0]
    );
    let report = tabula_testkit::check_pending(&edited, &cat, &ns).unwrap();
    assert!(!report.passed());
    assert!(report.to_text().starts_with("edited after it was applied: 0002_len"));
}

#[test]
fn a_replace_step_written_the_obvious_way_is_idempotent() {
    let cat = Catalog::in_memory().unwrap();
    let m = Migrations::new([
        create(),
        Migration::new("0002_len", |ctx| {
            let ignore = ColumnOptions::if_exists(IfExists::Ignore);
            ctx.table("notes")?.add_computed_column("len", col("text").length(), ignore)?;
            Ok(())
        }),
        Migration::new("0003_len_v2", |ctx| {
            let expr = col("text").length() * 2;
            ctx.table("notes")?.add_computed_column("len", expr, ColumnOptions::if_exists(IfExists::Replace))?;
            Ok(())
        })
        .allow_destructive(),
    ]);
    let report = MigrationCheck::new(&m).applied_through("0002_len").data(seed).run(&cat).unwrap();
    assert!(report.passed(), "{}", report.to_text());
    assert!(report.steps[0].idempotent);
}

#[test]
fn a_udf_diff_on_inputs_that_are_all_the_same_is_vacuous() {
    let old = Udf::new("tone", 1, |s: String| if s.contains("late") { "bad" } else { "plain" }.to_string());
    let new = Udf::new("tone", 2, |s: String| {
        if s.contains("late") || s.contains("damaged") { "bad" } else { "plain" }.to_string()
    });
    // Redacted text: every input is the same, so no change could show.
    let redacted: Vec<Vec<Value>> = (0..50).map(|_| vec![Value::from("[redacted]")]).collect();
    let report = UdfDiff::new(&old, &new).on_rows(&redacted);
    assert!(report.vacuous && !report.passed(), "{:?}", report.failures);
    assert!(
        report.failures[0].starts_with("vacuous: the 50 sampled input(s) are all the same"),
        "{:?}",
        report.failures
    );
    // Varied text that happens not to change is a real, passing result.
    let varied: Vec<Vec<Value>> = ["fine", "good", "ok"].iter().map(|s| vec![Value::from(*s)]).collect();
    let report = UdfDiff::new(&old, &new).on_rows(&varied);
    assert!(!report.vacuous && report.passed());
}
