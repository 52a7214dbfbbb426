//! The staging check, for any application: from a production catalog (opened read-only,
//! never written), check that production's applied migrations match the code, make an
//! anonymized staging copy, check the pending migrations and the UDF changes of this
//! release on it, scan every output for leaked production values, and write `report.json`
//! and `report.md`.
//!
//! An application describes itself once with [`App`]; a downstream `xtask` runs it with
//! [`run`] (or, with the `cli` feature, `StagingArgs` in one line).
//!
//! ```
//! use tabula::{row, Catalog, ColumnType, Path, Schema};
//! use tabula_testkit::staging::{self, App, Options};
//! use tabula_testkit::{migration, Anonymizer, Migrations, Rule};
//!
//! # fn main() -> tabula::Result<()> {
//! fn steps() -> Migrations {
//!     Migrations::new([migration!("0001_notes", |ctx| {
//!         ctx.create_table("notes", Schema::new().required("text", ColumnType::String))?;
//!         Ok(())
//!     })])
//! }
//! let app = App::new("notes_app", steps())
//!     .anonymizer(|key| Anonymizer::new(key).rule("text", Rule::FreeText))
//!     // For runs without a production catalog: a small one with personal data in it.
//!     .demo_production(|path| {
//!         let prod = Catalog::open(path)?;
//!         let ns = Path::parse("notes_app")?;
//!         steps().apply(&prod, &ns)?;
//!         prod.get_table(ns.join("notes")?)?.insert([row! {"text" => "call ada@example.org"}])?;
//!         Ok(())
//!     });
//! # let dir = tempfile::tempdir().map_err(|e| tabula::Error::new(tabula::ErrorCode::Storage, e.to_string()))?;
//! let options = Options { prod: None, key: None, out: dir.path().to_path_buf(), staging: None, progress: false };
//! let outcome = staging::run(&app, &options)?;
//! assert!(outcome.passed, "{}", staging::summary(&outcome));
//! assert!(outcome.leak_scan.as_ref().is_some_and(|scan| scan.passed()));
//! # Ok(())
//! # }
//! ```

use std::fmt::Write as _;
use std::path::{Path as FsPath, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tabula::{col, Catalog, Error, ErrorCode, Path, Result, Udf};

use crate::anonymize::{AnonymizeReport, Anonymizer, LeakScan};
use crate::migrate::{check_pending, MigrationReport, MigrationStatus, Migrations};
use crate::namespace::TestNamespace;
use crate::udf_diff::{UdfDiff, UdfDiffReport};

/// The files a catalog at a path may use: the file, its write-ahead log and shared memory,
/// and its remembered UDF results (with theirs).
const CATALOG_FILES: [&str; 6] = ["", "-wal", "-shm", ".results", ".results-wal", ".results-shm"];

/// The staging copy's namespace: `staging_<pid>_<n>_<nanos>` (a test namespace's name).
const STAGING_PREFIX: &str = "staging_";

/// The shortest key accepted for pseudonyms.
pub const MIN_KEY_LEN: usize = 16;

/// The environment variable that can hold the key.
pub const KEY_ENV: &str = "TABULA_STAGING_KEY";

/// Original values sampled per column for the leak scan.
const LEAK_SAMPLE: usize = 500;

/// The anonymization key. It is read from the environment or a file, never from the
/// command line (where every user of the machine sees it), and never printed: its `Debug`
/// shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(String);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} characters)", self.0.chars().count())
    }
}

impl Key {
    /// A key from a value (for tests and callers that hold it already).
    pub fn new(key: impl Into<String>) -> Key {
        Key(key.into())
    }

    /// The key from `file` when given (its first line), else from [`KEY_ENV`], else none.
    /// Errors name the file, never its content.
    pub fn from_file_or_env(file: Option<&FsPath>) -> Result<Option<Key>> {
        if let Some(file) = file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Error::new(ErrorCode::InvalidArgument, format!("cannot read the key file '{}': {e}", file.display()))
            })?;
            let key = text.lines().next().unwrap_or("").trim().to_string();
            if key.is_empty() {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!("the key file '{}' is empty; put the key on its first line", file.display()),
                ));
            }
            return Ok(Some(Key(key)));
        }
        Ok(std::env::var(KEY_ENV).ok().filter(|k| !k.trim().is_empty()).map(|k| Key(k.trim().to_string())))
    }
}

/// The key used with the built-in demo production catalog only.
pub const DEMO_KEY: &str = "tabula-demo-staging-key";

type Register = Box<dyn Fn(&Catalog) + Send + Sync>;
type MakeAnonymizer = Box<dyn Fn(&str) -> Anonymizer + Send + Sync>;
type BuildDemo = Box<dyn Fn(&FsPath) -> Result<()> + Send + Sync>;

/// One UDF change of a release: production's version, this release's, and where to sample
/// it (a table relative to the namespace and the argument columns).
pub struct UdfChange {
    /// Production's version.
    pub old: Udf,
    /// This release's version.
    pub new: Udf,
    /// The table its column lives in, relative to the namespace.
    pub table: String,
    /// The argument columns, in order.
    pub args: Vec<String>,
}

/// What the staging check needs to know about an application.
pub struct App {
    migrations: Migrations,
    namespace: String,
    register_production: Register,
    register_release: Register,
    anonymizer: Option<MakeAnonymizer>,
    udf_changes: Vec<UdfChange>,
    demo: Option<BuildDemo>,
}

impl App {
    /// An application whose tables live in `namespace` (in production) and whose schema is
    /// `migrations`. It still needs its anonymization rules ([`App::anonymizer`]).
    pub fn new(namespace: impl Into<String>, migrations: Migrations) -> App {
        App {
            migrations,
            namespace: namespace.into(),
            register_production: Box::new(|_| {}),
            register_release: Box::new(|_| {}),
            anonymizer: None,
            udf_changes: Vec::new(),
            demo: None,
        }
    }

    /// Registers the UDF versions production runs, so the copy can recompute its computed
    /// columns as production defined them.
    pub fn production_udfs(mut self, register: impl Fn(&Catalog) + Send + Sync + 'static) -> App {
        self.register_production = Box::new(register);
        self
    }

    /// Registers the UDF versions of this release, before the pending migrations run.
    pub fn release_udfs(mut self, register: impl Fn(&Catalog) + Send + Sync + 'static) -> App {
        self.register_release = Box::new(register);
        self
    }

    /// The anonymization rules, given the key. Every column needs a rule.
    pub fn anonymizer(mut self, rules: impl Fn(&str) -> Anonymizer + Send + Sync + 'static) -> App {
        self.anonymizer = Some(Box::new(rules));
        self
    }

    /// A UDF changed in this release: compare `old` and `new` on up to 200 rows of `table`
    /// (relative to the namespace), called with `args`.
    pub fn udf_change(mut self, old: Udf, new: Udf, table: &str, args: &[&str]) -> App {
        let args = args.iter().map(|a| a.to_string()).collect();
        self.udf_changes.push(UdfChange { old, new, table: table.to_string(), args });
        self
    }

    /// Forgets the UDF changes given so far.
    pub fn clear_udf_changes(mut self) -> App {
        self.udf_changes.clear();
        self
    }

    /// Builds a demo production catalog at the path given, for runs without `--prod` (the
    /// public demo key is used then, and only then).
    pub fn demo_production(mut self, build: impl Fn(&FsPath) -> Result<()> + Send + Sync + 'static) -> App {
        self.demo = Some(Box::new(build));
        self
    }

    /// The same application with other migrations (for checking a change to them).
    pub fn with_migrations(mut self, migrations: Migrations) -> App {
        self.migrations = migrations;
        self
    }

    /// Its migrations.
    pub fn migrations(&self) -> &Migrations {
        &self.migrations
    }

    /// Its namespace in production.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// Options of one run.
pub struct Options {
    /// The production catalog; `None` builds the demo one under `out`.
    pub prod: Option<PathBuf>,
    /// The anonymization key (see [`Key::from_file_or_env`]).
    pub key: Option<Key>,
    /// Where the staging catalog and the reports go.
    pub out: PathBuf,
    /// A catalog on a PostgreSQL server (`postgres://` URL) to make the staging copy in,
    /// instead of the file `<out>/staging.db`; `None`: the file.
    pub staging: Option<String>,
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
    /// How production was read: in place, as an immutable file, or from a private copy
    /// (when its directory cannot be written).
    pub prod_read_mode: tabula::ReadMode,
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
    /// What the anonymized copy did: the rule of every column, what was kept as it is.
    pub anonymization: AnonymizeReport,
    /// Production values searched for in the staging files and both reports.
    pub leak_scan: Option<LeakScan>,
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
    /// The spinner of the running phase, which a catalog's fill progress updates.
    #[cfg(feature = "cli")]
    bar: std::sync::Arc<std::sync::Mutex<Option<indicatif::ProgressBar>>>,
}

impl Phases {
    /// Shows how long computed-column fills on `catalog` are coming along, on the running
    /// phase's line.
    fn watch(&self, catalog: &tabula::Catalog) {
        #[cfg(feature = "cli")]
        {
            let bar = self.bar.clone();
            catalog.on_progress(move |p| {
                if let Some(bar) = bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    bar.set_message(p.to_string());
                }
            });
        }
        #[cfg(not(feature = "cli"))]
        let _ = catalog;
    }
}

impl Phases {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        #[cfg(feature = "cli")]
        let bar = {
            use indicatif::{ProgressBar, ProgressStyle};
            let bar = if self.progress { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(name.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(80));
            *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
            bar
        };
        let started = Instant::now();
        let out = f();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        #[cfg(feature = "cli")]
        {
            bar.finish_and_clear();
            *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
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

/// Runs the whole check for `app`.
pub fn run(app: &App, opts: &Options) -> Result<Outcome> {
    // What the application must give is checked before anything is opened or written.
    let Some(rules) = &app.anonymizer else {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            "the application gives no anonymization rules (App::anonymizer); nothing is copied without them",
        ));
    };
    let mut phases = Phases {
        progress: opts.progress,
        timings: Vec::new(),
        #[cfg(feature = "cli")]
        bar: std::sync::Arc::default(),
    };
    std::fs::create_dir_all(&opts.out).map_err(|e| io("creating", &opts.out, e))?;
    let (prod_path, key) = match &opts.prod {
        Some(p) => {
            let key = opts.key.clone().ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidArgument,
                    format!("no anonymization key: set {KEY_ENV} or pass --key-file PATH (the demo key is only used with the built-in demo catalog)"),
                )
            })?;
            if key.0 == DEMO_KEY {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "the demo key is public and only for the built-in demo catalog; give a secret key of your own for --prod",
                ));
            }
            (p.clone(), key.0)
        }
        None => {
            let Some(demo) = &app.demo else {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "no production catalog: pass --prod PATH (this application has no demo production catalog)",
                ));
            };
            let p = opts.out.join("demo-prod.db");
            for suffix in CATALOG_FILES {
                let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
            }
            phases.run("build demo production catalog", || demo(&p))?;
            (p, opts.key.clone().map(|k| k.0).unwrap_or_else(|| DEMO_KEY.to_string()))
        }
    };
    if key.chars().count() < MIN_KEY_LEN {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("the anonymization key is {} characters long; use at least {MIN_KEY_LEN}", key.chars().count()),
        ));
    }
    let prod = phases.run("open production (read-only)", || {
        // A `postgres://` URL: production on a server, read through a read-only connection.
        if let Some(url) = prod_path.to_str().filter(|p| p.starts_with("postgres://") || p.starts_with("postgresql://"))
        {
            return Catalog::connect_read_only(url);
        }
        if !prod_path.exists() {
            return Err(Error::new(
                ErrorCode::NotFound,
                format!("production catalog '{}' does not exist", prod_path.display()),
            ));
        }
        Catalog::open_read_only(&prod_path)
    })?;
    // How messages and reports name production: a server's URL without its password.
    let prod_shown = prod.location().to_string();
    let prod_ns = Path::parse(&app.namespace)?;
    if prod.list_tables(&prod_ns, tabula::Recursive::Yes).is_err() {
        return Err(Error::new(
            ErrorCode::NotFound,
            format!("production catalog '{prod_shown}' has no namespace '{}'", app.namespace),
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
                prod_shown,
                drift.join("\n")
            ),
        ));
    }
    let applied: Vec<String> = production.applied.iter().map(|a| a.id.clone()).collect();
    let staging_path = opts.out.join("staging.db");
    let staging = match &opts.staging {
        Some(url) => {
            let staging = Catalog::connect(url)?;
            // As a file starts afresh: the copies of earlier runs go.
            for dir in staging.list_dirs("", tabula::Recursive::No)? {
                if dir.to_string().starts_with(STAGING_PREFIX) {
                    staging.drop_dir(&dir, tabula::Force::Yes)?;
                }
            }
            staging
        }
        None => {
            for suffix in CATALOG_FILES {
                let p = PathBuf::from(format!("{}{suffix}", staging_path.display()));
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| io("removing old", &p, e))?;
                }
            }
            Catalog::open(&staging_path)?
        }
    };
    let staging_shown = staging.location().to_string();
    phases.watch(&staging);
    (app.register_production)(&staging);
    let ns = TestNamespace::new(&staging, STAGING_PREFIX.trim_end_matches('_'))?;
    let anonymizer = rules(&key);
    let anonymization = phases.run("anonymized copy", || {
        let report = anonymizer.copy(&prod, &app.namespace, &staging, &ns.path().to_string())?;
        app.migrations.mark_applied(&staging, ns.path(), &applied)?;
        Ok(report)
    })?;
    let copied = anonymization.tables.iter().map(|t| (t.source.clone(), t.rows_written)).collect();
    let udfs = phases.run("UDF checks", || {
        let mut out = Vec::new();
        for change in &app.udf_changes {
            let table = staging.get_table(ns.path().join(&change.table)?)?;
            let args = change.args.iter().map(|a| col(a.clone()));
            let report = UdfDiff::new(&change.old, &change.new).on_table(&table, args, 200)?;
            out.push(report.plan_recompute(&staging)?);
        }
        Ok(out)
    })?;
    (app.register_release)(&staging);
    let migrations = phases.run("pending migrations", || check_pending(&app.migrations, &staging, ns.path()))?;
    let namespace = ns.persist().to_string();
    let passed = migrations.passed() && udfs.iter().all(UdfDiffReport::passed);
    let mut outcome = Outcome {
        passed,
        prod: prod_shown,
        prod_read_mode: prod.read_mode(),
        staging: staging_shown,
        namespace,
        applied,
        production,
        copied,
        anonymization,
        leak_scan: None,
        migrations,
        udfs,
        timings: phases.timings,
        reports: Vec::new(),
    };
    let json_path = opts.out.join("report.json");
    let md_path = opts.out.join("report.md");
    outcome.reports = vec![json_path.display().to_string(), md_path.display().to_string()];
    // The scan covers both reports as they will be written: only its own line (counts and
    // column names, never values) differs between the scanned and the written text.
    drop(staging);
    let files: Vec<PathBuf> =
        CATALOG_FILES.iter().map(|s| PathBuf::from(format!("{}{s}", staging_path.display()))).collect();
    let scan = {
        let (json, md) = (render_json(&outcome)?, markdown(&outcome));
        let reports = [("report.json", json.as_str()), ("report.md", md.as_str())];
        match &opts.staging {
            Some(url) => anonymizer.leak_scan_on_server(&prod, &app.namespace, LEAK_SAMPLE, url, &reports)?,
            None => {
                let files: Vec<&FsPath> = files.iter().map(PathBuf::as_path).collect();
                anonymizer.leak_scan(&prod, &app.namespace, LEAK_SAMPLE, &files, &reports)?
            }
        }
    };
    outcome.passed &= scan.passed();
    outcome.leak_scan = Some(scan);
    std::fs::write(&json_path, render_json(&outcome)?).map_err(|e| io("writing", &json_path, e))?;
    std::fs::write(&md_path, markdown(&outcome)).map_err(|e| io("writing", &md_path, e))?;
    Ok(outcome)
}

fn render_json(outcome: &Outcome) -> Result<String> {
    serde_json::to_string_pretty(outcome).map_err(|e| Error::new(ErrorCode::Serde, e.to_string()))
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
    let how = match o.prod_read_mode {
        tabula::ReadMode::Direct => "read-only, in place",
        tabula::ReadMode::Immutable => "read-only, as an immutable file: its directory cannot be written",
        tabula::ReadMode::Copy => "read-only, from a private copy: its directory cannot be written",
    };
    writeln!(md, "- production: `{}` ({how}), applied: {}", o.prod, o.applied.join(", ")).ok();
    writeln!(
        md,
        "- staging copy: `{}`, namespace `{}`; rows copied: {}",
        o.staging,
        o.namespace,
        o.copied.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
    )
    .ok();
    writeln!(md, "\n## Anonymization\n").ok();
    match &o.leak_scan {
        Some(scan) if scan.passed() => writeln!(md, "- {scan}").ok(),
        Some(scan) => writeln!(md, "- **failure:** {scan}").ok(),
        None => writeln!(md, "- leak scan: not run yet").ok(),
    };
    let kept = o.anonymization.kept();
    writeln!(md, "- kept as they are: {}", if kept.is_empty() { "nothing".to_string() } else { kept.join(", ") }).ok();
    writeln!(
        md,
        "- free text scrubbed of {} values of mapped columns, besides emails, phones, cards, IBANs, IPs, URL credentials",
        o.anonymization.watched_in_text
    )
    .ok();
    writeln!(md, "\n| column | rule |\n|---|---|").ok();
    for t in &o.anonymization.tables {
        for (c, rule) in &t.rules {
            writeln!(md, "| {}.{c} | {rule} |", t.source).ok();
        }
        for c in &t.recomputed {
            writeln!(md, "| {}.{c} | recomputed on the copy |", t.source).ok();
        }
    }
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
    if let Some(scan) = &o.leak_scan {
        writeln!(s, "  {} {scan}", if scan.passed() { "ok  " } else { "FAIL" }).ok();
    }
    for r in &o.reports {
        writeln!(s, "  report: {r}").ok();
    }
    s
}
