//! `cargo xtask staging-check`: from a production catalog (opened read-only), make an
//! anonymized staging copy, apply the pending migrations in an isolated namespace, run the
//! migration and UDF checks, and write `report.json` and `report.md`.

use std::fmt::Write as _;
use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tabula::{col, Catalog, Error, ErrorCode, Path, Result, Udf};
use tabula_testkit::{
    check_pending, Anonymizer, MigrationReport, MigrationStatus, Migrations, TestNamespace, UdfDiff, UdfDiffReport,
};

/// The shortest key accepted for pseudonyms.
pub const MIN_KEY_LEN: usize = 16;

/// The environment variable that can hold the key.
pub const KEY_ENV: &str = "TABULA_STAGING_KEY";

/// The key used with the built-in demo production catalog only.
pub const DEMO_KEY: &str = "tabula-demo-staging-key";

/// Where a UDF change is sampled: a table (relative to the namespace) and its argument columns.
pub type UdfSample = (String, Vec<String>);

/// What an application gives the staging check.
pub struct App {
    /// Its migrations.
    pub migrations: Migrations,
    /// The namespace its tables live in, in production.
    pub namespace: String,
    /// Registers the UDF versions production runs.
    pub register_production: fn(&Catalog),
    /// The anonymization rules, given a key.
    pub anonymizer: fn(&str) -> Anonymizer,
    /// The UDF changes of this release: (production's, this code's).
    pub udf_changes: Vec<(Udf, Udf)>,
    /// Table and argument columns to sample for each UDF change, by UDF name.
    pub udf_samples: fn(&str) -> Option<UdfSample>,
}

/// The docs-app example, the default application.
pub fn docs_app() -> App {
    App {
        migrations: docs_app::migrations(),
        namespace: "docs".into(),
        register_production: docs_app::register_production,
        anonymizer: docs_app::anonymizer,
        udf_changes: docs_app::udf_changes(),
        udf_samples: |name| (name == "summarize").then(|| ("documents".to_string(), vec!["body".to_string()])),
    }
}

/// Options of one run.
pub struct Options {
    /// The production catalog; `None` builds the demo one under `out`.
    pub prod: Option<PathBuf>,
    /// The anonymization key.
    pub key: Option<String>,
    /// Where the staging catalog and the reports go.
    pub out: PathBuf,
    /// Show progress bars.
    pub progress: bool,
}

/// The result of a run.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// True when every check passed.
    pub passed: bool,
    /// The production catalog.
    pub prod: String,
    /// The staging catalog.
    pub staging: String,
    /// The namespace the checks ran in.
    pub namespace: String,
    /// Steps production had applied.
    pub applied: Vec<String>,
    /// Production's migration status (applied, pending, who is applying now).
    pub production: MigrationStatus,
    /// Rows copied, per table.
    pub copied: Vec<(String, u64)>,
    /// The migration checks.
    pub migrations: MigrationReport,
    /// The UDF checks.
    pub udfs: Vec<UdfDiffReport>,
    /// Time of each phase, in milliseconds.
    pub timings: Vec<(String, f64)>,
    /// Where the reports were written.
    pub reports: Vec<String>,
}

struct Phases {
    progress: bool,
    timings: Vec<(String, f64)>,
}

impl Phases {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let bar = if self.progress { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(80));
        let started = Instant::now();
        let out = f();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        bar.finish_and_clear();
        if self.progress {
            eprintln!("{} {name} ({ms:.0} ms)", if out.is_ok() { "✓" } else { "✗" });
        }
        self.timings.push((name.to_string(), ms));
        out
    }
}

fn io(what: &str, path: &FsPath, e: std::io::Error) -> Error {
    Error::new(ErrorCode::Storage, format!("{what} '{}': {e}", path.display()))
}

/// Builds the demo production catalog at `path`: the docs-small fixture with the steps
/// production has applied.
pub fn build_demo_prod(path: &FsPath) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let _ = std::fs::remove_file(path.with_extension("db-shm"));
    let catalog = Catalog::open(path)?;
    let ns = Path::parse("docs")?;
    docs_app::register_production(&catalog);
    let migrations = docs_app::migrations();
    migrations.apply_through(&catalog, &ns, "0001_tables")?;
    tabula_fixtures::load("docs-small", &catalog, &ns)?;
    migrations.apply_through(&catalog, &ns, docs_app::APPLIED_IN_PRODUCTION)?;
    Ok(())
}

/// Runs the whole check for `app`.
pub fn run(app: &App, opts: &Options) -> Result<Outcome> {
    let mut phases = Phases { progress: opts.progress, timings: Vec::new() };
    std::fs::create_dir_all(&opts.out).map_err(|e| io("creating", &opts.out, e))?;
    let (prod_path, key) = match &opts.prod {
        Some(p) => {
            let key = opts.key.clone().ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidArgument,
                    format!("no anonymization key: pass --key or set {KEY_ENV} (the demo key is only used with the built-in demo catalog)"),
                )
            })?;
            (p.clone(), key)
        }
        None => {
            let p = opts.out.join("demo-prod.db");
            phases.run("build demo production catalog", || build_demo_prod(&p))?;
            (p, opts.key.clone().unwrap_or_else(|| DEMO_KEY.to_string()))
        }
    };
    if key.len() < MIN_KEY_LEN {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("the anonymization key is {} characters long; use at least {MIN_KEY_LEN}", key.len()),
        ));
    }
    let prod = phases.run("open production (read-only)", || {
        if !prod_path.exists() {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("production catalog '{}' does not exist", prod_path.display()),
            ));
        }
        Catalog::open_read_only(&prod_path)
    })?;
    let prod_ns = Path::parse(&app.namespace)?;
    if prod.list_tables(&prod_ns, tabula::Recursive::Yes).is_err() {
        return Err(Error::new(
            ErrorCode::NotFound,
            format!("production catalog '{}' has no namespace '{}'", prod_path.display(), app.namespace),
        ));
    }
    // Production must match the code before anything is checked against it.
    let production = app.migrations.status(&prod, &prod_ns)?;
    if !production.drift.is_empty() {
        let drift: Vec<String> = production.drift.iter().map(|d| format!("  - {d}")).collect();
        return Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "production catalog '{}' does not match the code's migrations:\n{}\nthe check cannot tell what this \
                 release would do; make the code's steps match what production applied",
                prod_path.display(),
                drift.join("\n")
            ),
        ));
    }
    let applied: Vec<String> = production.applied.iter().map(|a| a.id.clone()).collect();
    let staging_path = opts.out.join("staging.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", staging_path.display()));
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| io("removing old", &p, e))?;
        }
    }
    let staging = Catalog::open(&staging_path)?;
    (app.register_production)(&staging);
    let ns = TestNamespace::new(&staging, "staging")?;
    let copied = phases.run("anonymized copy", || {
        let report = (app.anonymizer)(&key).copy(&prod, &app.namespace, &staging, &ns.path().to_string())?;
        app.migrations.mark_applied(&staging, ns.path(), &applied)?;
        Ok(report.tables.into_iter().map(|t| (t.source, t.rows_written)).collect::<Vec<_>>())
    })?;
    let udfs = phases.run("UDF checks", || {
        let mut out = Vec::new();
        for (old, new) in &app.udf_changes {
            let Some((table, args)) = (app.udf_samples)(new.name()) else { continue };
            let table = staging.get_table(ns.path().join(&table)?)?;
            let report = UdfDiff::new(old, new).on_table(&table, args.iter().map(|a| col(a.clone())), 200)?;
            out.push(report.plan_recompute(&staging)?);
        }
        Ok(out)
    })?;
    let migrations = phases.run("pending migrations", || check_pending(&app.migrations, &staging, ns.path()))?;
    let namespace = ns.persist().to_string();
    let passed = migrations.passed() && udfs.iter().all(UdfDiffReport::passed);
    let mut outcome = Outcome {
        passed,
        prod: prod_path.display().to_string(),
        staging: staging_path.display().to_string(),
        namespace,
        applied,
        production,
        copied,
        migrations,
        udfs,
        timings: phases.timings,
        reports: Vec::new(),
    };
    let json_path = opts.out.join("report.json");
    let md_path = opts.out.join("report.md");
    outcome.reports = vec![json_path.display().to_string(), md_path.display().to_string()];
    let json = serde_json::to_string_pretty(&outcome).map_err(|e| Error::new(ErrorCode::Serde, e.to_string()))?;
    std::fs::write(&json_path, json).map_err(|e| io("writing", &json_path, e))?;
    std::fs::write(&md_path, markdown(&outcome)).map_err(|e| io("writing", &md_path, e))?;
    Ok(outcome)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**NO**"
    }
}

fn cell(text: &str) -> String {
    let t = text.replace('|', "\\|").replace('\n', " ");
    if t.chars().count() > 70 {
        format!("{}…", t.chars().take(69).collect::<String>())
    } else {
        t
    }
}

/// The report a reviewer reads before promoting the change.
pub fn markdown(o: &Outcome) -> String {
    let mut md = String::new();
    let verdict = if o.passed { "PASSED" } else { "FAILED" };
    writeln!(md, "# Staging check: {verdict}\n").ok();
    writeln!(md, "- production: `{}` (read-only), applied: {}", o.prod, o.applied.join(", ")).ok();
    writeln!(
        md,
        "- staging copy: `{}`, namespace `{}`; rows copied: {}",
        o.staging,
        o.namespace,
        o.copied.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
    )
    .ok();
    writeln!(md, "\n## Production migrations\n\n```\n{}```", o.production).ok();
    if !o.migrations.edited.is_empty() {
        writeln!(md, "\n## Applied steps that were edited\n").ok();
        for e in &o.migrations.edited {
            writeln!(md, "- **failure:** {e}").ok();
        }
    }
    writeln!(md, "\n## Pending migrations\n").ok();
    if o.migrations.steps.is_empty() {
        writeln!(md, "None: production is up to date.").ok();
    } else {
        writeln!(md, "| step | result | destructive | idempotent | revert restores | time |").ok();
        writeln!(md, "|---|---|---|---|---|---|").ok();
        for s in &o.migrations.steps {
            let destructive = if s.destructive.is_empty() {
                "no".to_string()
            } else if s.destructive_allowed {
                "yes (allowed)".to_string()
            } else {
                "**yes, not allowed**".to_string()
            };
            writeln!(
                md,
                "| {} | {} | {destructive} | {} | {} | {:.0} ms |",
                s.id,
                if s.passed() { "ok" } else { "**FAILED**" },
                yes(s.idempotent),
                yes(s.revert_restores),
                s.millis
            )
            .ok();
        }
        for s in &o.migrations.steps {
            writeln!(md, "\n### {}\n", s.id).ok();
            for f in &s.failures {
                writeln!(md, "- **failure:** {f}").ok();
            }
            for (name, lines) in [
                ("Changes", &s.changes),
                ("Schema diff", &s.schema_diff),
                ("Data effect", &s.data_diff),
                ("Destructive", &s.destructive),
            ] {
                if !lines.is_empty() {
                    writeln!(md, "{name}:\n").ok();
                    for l in lines {
                        writeln!(md, "- `{}`", l.replace('`', "'")).ok();
                    }
                    writeln!(md).ok();
                }
            }
        }
    }
    writeln!(md, "\n## UDF changes\n").ok();
    if o.udfs.is_empty() {
        writeln!(md, "None.").ok();
    }
    for u in &o.udfs {
        writeln!(
            md,
            "### {} → {}: {} of {} sampled rows change{}\n",
            u.old,
            u.new,
            u.changed,
            u.rows,
            if u.passed() { "" } else { " — **FAILED**" }
        )
        .ok();
        for f in &u.failures {
            writeln!(md, "- **failure:** {f}").ok();
        }
        writeln!(md, "- time per row: {:.2} µs → {:.2} µs", u.old_us_per_row, u.new_us_per_row).ok();
        for r in &u.recompute {
            writeln!(md, "- recomputes `{}.{}`: {} rows, about {:.1} ms", r.table, r.column, r.rows, r.estimated_ms)
                .ok();
        }
        if !u.examples.is_empty() {
            writeln!(md, "\n| input | old | new |\n|---|---|---|").ok();
            for e in u.examples.iter().take(5) {
                writeln!(md, "| {} | {} | {} |", cell(&e.input), cell(&e.old), cell(&e.new)).ok();
            }
        }
        writeln!(md).ok();
    }
    writeln!(md, "## Timings\n").ok();
    for (phase, ms) in &o.timings {
        writeln!(md, "- {phase}: {ms:.0} ms").ok();
    }
    md
}

/// The one-screen summary printed at the end.
pub fn summary(o: &Outcome) -> String {
    let mut s = String::new();
    writeln!(s, "staging check {}", if o.passed { "PASSED" } else { "FAILED" }).ok();
    for e in &o.migrations.edited {
        writeln!(s, "  FAIL edited after it was applied: {e}").ok();
    }
    for step in &o.migrations.steps {
        writeln!(s, "  {} {}", if step.passed() { "ok  " } else { "FAIL" }, step.id).ok();
        for f in &step.failures {
            writeln!(s, "       {f}").ok();
        }
    }
    for u in &o.udfs {
        writeln!(
            s,
            "  {} {} -> {}: {}/{} rows change",
            if u.passed() { "ok  " } else { "FAIL" },
            u.old,
            u.new,
            u.changed,
            u.rows
        )
        .ok();
        for f in &u.failures {
            writeln!(s, "       {f}").ok();
        }
    }
    for r in &o.reports {
        writeln!(s, "  report: {r}").ok();
    }
    s
}
