//! Migrations as code: [`Migration`] (a stable id and idempotent setup code), [`Migrations`]
//! (an ordered set) and how they are applied in production, where several processes start at
//! once and a step can fail halfway:
//!
//! - **One applier at a time.** [`Migrations::apply`] holds the catalog lock
//!   `tabula_testkit/migrations:<namespace>` ([`Catalog::lock`]) from reading the pending
//!   steps to recording the last one. A second applier waits, then finds the steps applied
//!   and does nothing. A holder that dies releases the lock (see [`tabula::CatalogLock`]).
//!   With nothing pending, `apply` only reads: no lock, no write.
//! - **All-or-nothing steps.** Before a step runs, the lock's note records the versions of
//!   every table and the directories below the namespace. A step that fails is undone
//!   (tables it changed reverted, tables and directories it created dropped) before the error
//!   is returned. A process killed mid-step leaves the note behind; the next `apply` undoes
//!   the partial step first, then runs it. A step that cannot be undone (it dropped a table)
//!   keeps its note and the lock until the process ends, so no applier runs it again on top
//!   of what is left; the error says what could not be undone.
//! - **Status that tells the truth.** [`Migrations::status`]: applied steps (when, by which
//!   process and host, with what fingerprint), pending steps, and drift: an applied step the
//!   code does not know, or whose fingerprint changed.
//!
//! A step's fingerprint is a hash of its source, given by the [`migration!`](crate::migration!)
//! macro (or [`Migration::source`]); a step made with [`Migration::new`] alone has none.
//!
//! [`MigrationCheck`] (in `check`) runs pending steps on representative data in a test
//! namespace and reports what each does.

mod check;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tabula::{
    col, Catalog, ColumnType, Error, ErrorCode, Force, IfExists, LockHolder, LockOptions, Path, Recursive, Result,
    Schema, Table, Value, Version,
};

pub use check::{
    check_pending, verify_applied, ColumnPrint, MigrationCheck, MigrationReport, StateSnapshot, StepReport, TablePrint,
};

type StepFn = dyn Fn(&MigrationCtx) -> Result<()> + Send + Sync;
type DataFn<'m> = dyn Fn(&MigrationCtx) -> Result<()> + 'm;

/// One step of setup code, identified by a stable id (`"0003_add_summary"`).
#[derive(Clone)]
pub struct Migration {
    id: String,
    destructive_ok: bool,
    fingerprint: Option<String>,
    run: Arc<StepFn>,
}

impl fmt::Debug for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Migration({})", self.id)
    }
}

/// A step whose fingerprint is the hash of its own source: `migration!("0002_len", |ctx| ...)`.
/// Editing the closure's code (not its formatting or comments) changes the fingerprint, so
/// [`Migrations::status`] reports a step edited after it was applied. Code the closure calls
/// (helper functions, UDF bodies) is not part of it: version UDFs, and let the staging check
/// rerun applied steps on a copy ([`verify_applied`]).
#[macro_export]
macro_rules! migration {
    ($id:expr, $run:expr $(,)?) => {
        $crate::Migration::new($id, $run).source(stringify!($run))
    };
}

impl Migration {
    /// A step. It must be idempotent (use `IfExists::Ignore`): running it twice is the same
    /// as running it once. It has no fingerprint: prefer [`migration!`](crate::migration!).
    pub fn new(id: impl Into<String>, run: impl Fn(&MigrationCtx) -> Result<()> + Send + Sync + 'static) -> Migration {
        Migration { id: id.into(), destructive_ok: false, fingerprint: None, run: Arc::new(run) }
    }

    /// Fingerprints the step by its source text (white space and trailing commas are ignored,
    /// so reformatting does not change it). `migration!` passes the closure's own tokens; a
    /// step written as a function can pass `include_str!` of its file.
    pub fn source(mut self, text: &str) -> Migration {
        let mut compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for (with, without) in [(",)", ")"), (",]", "]"), (",}", "}")] {
            compact = compact.replace(with, without);
        }
        self.fingerprint = Some(blake3::hash(compact.as_bytes()).to_hex()[..32].to_string());
        self
    }

    /// Marks the step as allowed to lose or rewrite data (drop, replace, delete, narrow).
    pub fn allow_destructive(mut self) -> Migration {
        self.destructive_ok = true;
        self
    }

    /// The step's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fingerprint of the step's source, if it was given one.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }
}

/// What a step runs against: the catalog and the application's namespace, given at run
/// time, so the same code runs on production's directory and on a test namespace.
pub struct MigrationCtx<'a> {
    catalog: &'a Catalog,
    namespace: &'a Path,
}

impl<'a> MigrationCtx<'a> {
    /// A context for `namespace` in `catalog` (for running steps by hand).
    pub fn new(catalog: &'a Catalog, namespace: &'a Path) -> MigrationCtx<'a> {
        MigrationCtx { catalog, namespace }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        self.catalog
    }

    /// The application's directory.
    pub fn namespace(&self) -> &Path {
        self.namespace
    }

    /// `namespace/name`.
    pub fn path(&self, name: &str) -> Result<Path> {
        self.namespace.join_relative(name)
    }

    /// The table `namespace/name`.
    pub fn table(&self, name: &str) -> Result<Table> {
        self.catalog.get_table(self.path(name)?)
    }

    /// Creates (or keeps, when it exists with the same schema) the table `namespace/name`.
    pub fn create_table(&self, name: &str, schema: Schema) -> Result<Table> {
        self.catalog.create_table(self.path(name)?, schema, IfExists::Ignore)
    }
}

/// The record of one applied step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedStep {
    /// The namespace it was applied to.
    pub namespace: String,
    /// The step id.
    pub id: String,
    /// When, in microseconds since the epoch.
    pub applied_us: i64,
    /// The versions it made: `{"table": [before, after]}` (before is -1 for a new table).
    pub versions: serde_json::Value,
    /// The fingerprint of the step's source when it was applied (`None`: it had none, or
    /// it was applied by a testkit that did not record them).
    pub fingerprint: Option<String>,
    /// The process that applied it.
    pub pid: Option<i64>,
    /// The host that applied it.
    pub host: Option<String>,
}

/// Where applied steps are recorded (outside the application's namespace).
pub const MIGRATIONS_TABLE: &str = "tabula_testkit/migrations";

/// An ordered set of steps.
#[derive(Clone, Debug, Default)]
pub struct Migrations {
    steps: Vec<Migration>,
    lock: LockOptions,
}

/// What one `apply` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApplyReport {
    /// A partial step left by a process that died while applying it, undone before this
    /// apply ran anything.
    pub recovered: Option<Recovery>,
    /// The steps this call applied, in order.
    pub steps: Vec<StepDone>,
}

impl ApplyReport {
    /// The ids of the steps applied.
    pub fn ids(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.id.as_str()).collect()
    }
}

/// One step an `apply` ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDone {
    /// The step id.
    pub id: String,
    /// Versions made, per table below the namespace: `(before, after)`; `None` before
    /// means the step created the table.
    pub versions: BTreeMap<String, (Option<u64>, u64)>,
    /// Time the step took, in milliseconds.
    pub millis: f64,
}

/// A partial step found and undone by `apply`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovery {
    /// The step that was interrupted.
    pub step: String,
    /// The process that was running it, as `pid on host`.
    pub by: String,
    /// What was undone, in words (empty when the step had changed nothing yet, or had
    /// finished and been recorded just before its process died).
    pub undone: Vec<String>,
}

/// One way the code and what a namespace has applied disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Drift {
    /// An applied step the code does not have (removed or renamed, or applied by newer code).
    Unknown {
        /// The step id.
        id: String,
    },
    /// An applied step whose code changed since it was applied.
    Edited {
        /// The step id.
        id: String,
        /// The fingerprint recorded when it was applied.
        applied: String,
        /// The fingerprint of the code now.
        code: String,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Unknown { id } => write!(
                f,
                "step '{id}' is applied, but the code has no such step (was it removed or renamed, or applied by newer code?)"
            ),
            Drift::Edited { id, applied, code } => write!(
                f,
                "step '{id}' was edited after it was applied (fingerprint {applied} applied, {code} in the code); \
                 restore it and put the change in a new step"
            ),
        }
    }
}

/// What [`Migrations::status`] finds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationStatus {
    /// The namespace.
    pub namespace: String,
    /// The applied steps, in the order they were applied.
    pub applied: Vec<AppliedStep>,
    /// The ids of the steps the code has and the namespace has not applied, in order.
    pub pending: Vec<String>,
    /// Where the code and the applied steps disagree.
    pub drift: Vec<Drift>,
    /// Who is applying steps now (or died doing it), if anyone: `pid on host since ...`.
    pub applying: Option<String>,
}

impl fmt::Display for MigrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "migrations of '{}':", self.namespace)?;
        for a in &self.applied {
            let by = match (&a.pid, &a.host) {
                (Some(pid), Some(host)) => format!(" by process {pid} on '{host}'"),
                _ => String::new(),
            };
            let print = a.fingerprint.as_deref().unwrap_or("no fingerprint");
            writeln!(f, "  applied  {}  {}{by}  [{print}]", a.id, tabula::format_timestamp(a.applied_us))?;
        }
        for p in &self.pending {
            writeln!(f, "  pending  {p}")?;
        }
        for d in &self.drift {
            writeln!(f, "  DRIFT    {d}")?;
        }
        if let Some(who) = &self.applying {
            writeln!(f, "  applying now: {who}")?;
        }
        Ok(())
    }
}

/// The state of a namespace before a step, kept in the lock's note while the step runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InFlight {
    step: String,
    tables: BTreeMap<String, u64>,
    dirs: Vec<String>,
}

impl Migrations {
    /// The steps, in order; ids must be unique.
    pub fn new(steps: impl IntoIterator<Item = Migration>) -> Migrations {
        Migrations { steps: steps.into_iter().collect(), lock: LockOptions::default() }
    }

    /// How long `apply` waits for another applier (default: [`LockOptions::default`]).
    pub fn lock_options(mut self, options: LockOptions) -> Migrations {
        self.lock = options;
        self
    }

    /// The steps.
    pub fn steps(&self) -> &[Migration] {
        &self.steps
    }

    /// A fingerprint of the steps (for template keys): changes when a step is added,
    /// removed, renamed, or its fingerprinted source is edited.
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new();
        for s in &self.steps {
            h.update(s.id.as_bytes());
            h.update(b"\0");
            h.update(s.fingerprint.as_deref().unwrap_or("").as_bytes());
            h.update(b"\n");
        }
        h.finalize().to_hex()[..16].to_string()
    }

    fn check_ids(&self) -> Result<()> {
        let mut seen = HashSet::new();
        for s in &self.steps {
            if !seen.insert(&s.id) {
                return Err(Error::new(ErrorCode::InvalidArgument, format!("migration id '{}' is used twice", s.id)));
            }
        }
        Ok(())
    }

    /// The steps applied to `namespace`, in the order they were applied.
    pub fn applied(&self, catalog: &Catalog, namespace: &Path) -> Result<Vec<AppliedStep>> {
        let Ok(table) = catalog.get_table(MIGRATIONS_TABLE) else { return Ok(Vec::new()) };
        let names = table.schema()?.columns.iter().map(|c| c.name.clone()).collect::<BTreeSet<_>>();
        let rows = table.select_all().where_(col("namespace").eq(namespace.to_string())).order_by(col("applied_us"));
        if names.contains("fingerprint") {
            return rows.collect_as();
        }
        // Recorded by an older testkit: no fingerprints, processes or hosts.
        #[derive(Deserialize)]
        struct Old {
            namespace: String,
            id: String,
            applied_us: i64,
            versions: serde_json::Value,
        }
        Ok(rows
            .collect_as::<Old>()?
            .into_iter()
            .map(|o| AppliedStep {
                namespace: o.namespace,
                id: o.id,
                applied_us: o.applied_us,
                versions: o.versions,
                fingerprint: None,
                pid: None,
                host: None,
            })
            .collect())
    }

    /// The ids of the steps not yet applied to `namespace`.
    pub fn pending(&self, catalog: &Catalog, namespace: &Path) -> Result<Vec<String>> {
        let done: BTreeSet<String> = self.applied(catalog, namespace)?.into_iter().map(|a| a.id).collect();
        Ok(self.steps.iter().filter(|s| !done.contains(&s.id)).map(|s| s.id.clone()).collect())
    }

    /// The ids `apply` would run now, in order, without running anything (plan mode).
    pub fn plan(&self, catalog: &Catalog, namespace: &Path) -> Result<Vec<String>> {
        self.check_ids()?;
        self.pending(catalog, namespace)
    }

    /// Applied, pending and drifted steps of `namespace`, and who is applying steps now.
    pub fn status(&self, catalog: &Catalog, namespace: &Path) -> Result<MigrationStatus> {
        self.check_ids()?;
        let applied = self.applied(catalog, namespace)?;
        let done: BTreeSet<&str> = applied.iter().map(|a| a.id.as_str()).collect();
        let pending = self.steps.iter().filter(|s| !done.contains(s.id.as_str())).map(|s| s.id.clone()).collect();
        let mut drift = Vec::new();
        for a in &applied {
            match self.steps.iter().find(|s| s.id == a.id) {
                None => drift.push(Drift::Unknown { id: a.id.clone() }),
                Some(step) => {
                    if let (Some(was), Some(now)) = (&a.fingerprint, &step.fingerprint) {
                        if was != now {
                            drift.push(Drift::Edited { id: a.id.clone(), applied: was.clone(), code: now.clone() });
                        }
                    }
                }
            }
        }
        let applying = catalog.lock_holder(&lock_name(namespace))?.map(|h| describe_holder(&h));
        Ok(MigrationStatus { namespace: namespace.to_string(), applied, pending, drift, applying })
    }

    /// Records steps as applied to `namespace` without running them (for a copy of a
    /// namespace whose steps were applied where the data came from).
    pub fn mark_applied(&self, catalog: &Catalog, namespace: &Path, ids: &[String]) -> Result<()> {
        let now = versions(catalog, namespace)?;
        for id in ids {
            let Some(step) = self.steps.iter().find(|s| &s.id == id) else {
                return Err(Error::new(ErrorCode::NotFound, format!("there is no migration '{id}'")));
            };
            record(catalog, namespace, step, &now, &now)?;
        }
        Ok(())
    }

    /// Applies the pending steps to `namespace` in order, one applier at a time, each step
    /// all or nothing (see the module docs). Stops at the first failure: the steps before it
    /// stay applied, the failed one is undone and its error says what was undone.
    pub fn apply(&self, catalog: &Catalog, namespace: &Path) -> Result<ApplyReport> {
        self.apply_until(catalog, namespace, None)
    }

    /// Like [`Migrations::apply`], but only up to and including step `last`.
    pub fn apply_through(&self, catalog: &Catalog, namespace: &Path, last: &str) -> Result<ApplyReport> {
        if !self.steps.iter().any(|s| s.id == last) {
            return Err(Error::new(ErrorCode::NotFound, format!("there is no migration '{last}'")));
        }
        self.apply_until(catalog, namespace, Some(last))
    }

    /// The steps to run, in order, given what is pending.
    fn to_run(&self, pending: &[String], last: Option<&str>) -> Vec<&Migration> {
        let mut out = Vec::new();
        for step in &self.steps {
            if pending.contains(&step.id) {
                out.push(step);
            }
            if Some(step.id.as_str()) == last {
                break;
            }
        }
        out
    }

    fn apply_until(&self, catalog: &Catalog, namespace: &Path, last: Option<&str>) -> Result<ApplyReport> {
        self.check_ids()?;
        // Nothing to do is the common case at every start: read only, take no lock. A step
        // interrupted by a killed process is not recorded, so it shows as pending here.
        if self.to_run(&self.pending(catalog, namespace)?, last).is_empty() {
            return Ok(ApplyReport::default());
        }
        let lock = catalog.lock(&lock_name(namespace), self.lock)?;
        let mut report = ApplyReport::default();
        if let Some(dead) = lock.taken_over() {
            if let Some(note) = dead.note.as_deref().and_then(|n| serde_json::from_str::<InFlight>(n).ok()) {
                match self.recover(catalog, namespace, &note, dead) {
                    Ok(recovered) => report.recovered = Some(recovered),
                    Err(e) => {
                        // Keep the note for the next applier: the partial step is still there.
                        let _ = lock.set_note(dead.note.as_deref());
                        lock.abandon();
                        return Err(e);
                    }
                }
                lock.set_note(None)?;
            }
        }
        catalog.create_dir(namespace, IfExists::Ignore)?;
        // Read again under the lock: another applier may have finished meanwhile.
        let pending = self.pending(catalog, namespace)?;
        for step in self.to_run(&pending, last) {
            let before = InFlight::take(catalog, namespace, &step.id)?;
            let note = serde_json::to_string(&before).map_err(|e| Error::new(ErrorCode::Serde, e.to_string()))?;
            lock.set_note(Some(&note))?;
            let started = Instant::now();
            let ran = run_step(step, catalog, namespace).and_then(|()| {
                let after = versions(catalog, namespace)?;
                record(catalog, namespace, step, &before.versions(), &after)?;
                Ok(after)
            });
            let after = match ran {
                Ok(after) => after,
                Err(e) => {
                    let undone = undo(catalog, namespace, &before);
                    if undone.is_ok() {
                        lock.set_note(None)?;
                    } else {
                        // What is left of the step stays noted, so the next apply does not run
                        // the step again on top of it; the lock is held until this process ends.
                        lock.abandon();
                    }
                    return Err(failed_step(e, &step.id, undone));
                }
            };
            lock.set_note(None)?;
            report.steps.push(StepDone {
                id: step.id.clone(),
                versions: made(&before.versions(), &after),
                millis: started.elapsed().as_secs_f64() * 1000.0,
            });
        }
        lock.release()?;
        Ok(report)
    }

    /// Undoes the partial step of a process that died holding the lock.
    fn recover(&self, catalog: &Catalog, namespace: &Path, note: &InFlight, dead: &LockHolder) -> Result<Recovery> {
        let by = format!("process {} on '{}'", dead.pid, dead.host);
        let recorded = self.applied(catalog, namespace)?.iter().any(|a| a.id == note.step);
        if recorded {
            // It finished and was recorded; only the note was left.
            return Ok(Recovery { step: note.step.clone(), by, undone: Vec::new() });
        }
        let undone = undo(catalog, namespace, note)?;
        Ok(Recovery { step: note.step.clone(), by, undone })
    }
}

fn lock_name(namespace: &Path) -> String {
    format!("{MIGRATIONS_TABLE}:{namespace}")
}

fn describe_holder(h: &LockHolder) -> String {
    let step = h.note.as_deref().and_then(|n| serde_json::from_str::<InFlight>(n).ok()).map(|n| n.step);
    match step {
        Some(step) => format!("{h}, running step '{step}'"),
        None => h.to_string(),
    }
}

impl InFlight {
    fn take(catalog: &Catalog, namespace: &Path, step: &str) -> Result<InFlight> {
        let tables = versions(catalog, namespace)?.into_iter().map(|(t, v)| (t, v.0)).collect();
        let dirs = match catalog.list_dirs(namespace, Recursive::Yes) {
            Err(e) if e.code() == ErrorCode::NotFound => Vec::new(),
            other => other?.iter().map(|d| relative(d, namespace)).collect(),
        };
        Ok(InFlight { step: step.to_string(), tables, dirs })
    }

    fn versions(&self) -> BTreeMap<String, Version> {
        self.tables.iter().map(|(t, v)| (t.clone(), Version(*v))).collect()
    }
}

/// Brings `namespace` back to `before`: drops the tables and directories made since, reverts
/// the tables changed since. Returns what it did, in words; fails naming what it could not
/// undo (a dropped table cannot be brought back).
fn undo(catalog: &Catalog, namespace: &Path, before: &InFlight) -> Result<Vec<String>> {
    let now = versions(catalog, namespace)?;
    let mut done = Vec::new();
    let mut cannot = Vec::new();
    for (t, v) in &now {
        let path = namespace.join_relative(t)?;
        let result = match before.tables.get(t) {
            None => match catalog.drop_table(&path, Force::Yes) {
                Err(e) if e.code() == ErrorCode::NotFound => Ok(None), // a view, dropped with its base
                other => other.map(|()| Some(format!("dropped table {t}"))),
            },
            Some(was) if *was != v.0 => catalog
                .get_table(&path)
                .and_then(|table| table.revert_to(Version(*was)))
                .map(|_| Some(format!("reverted {t} to version {was}"))),
            Some(_) => Ok(None),
        };
        match result {
            Ok(Some(what)) => done.push(what),
            Ok(None) => {}
            Err(e) => cannot.push(format!("{t}: {e}")),
        }
    }
    for t in before.tables.keys().filter(|t| !now.contains_key(*t)) {
        cannot.push(format!("{t}: the step dropped it, and a dropped table cannot be restored"));
    }
    let mut dirs = match catalog.list_dirs(namespace, Recursive::Yes) {
        Err(e) if e.code() == ErrorCode::NotFound => Vec::new(),
        other => other?.iter().map(|d| relative(d, namespace)).filter(|d| !before.dirs.contains(d)).collect(),
    };
    dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for d in dirs {
        match catalog.drop_dir(namespace.join_relative(&d)?, Force::Yes) {
            Ok(()) => done.push(format!("dropped directory {d}")),
            Err(e) if e.code() == ErrorCode::NotFound => {}
            Err(e) => cannot.push(format!("{d}: {e}")),
        }
    }
    match cannot.is_empty() {
        true => Ok(done),
        false => Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "could not undo all of step '{}' in '{namespace}': {} (undone: {})",
                before.step,
                cannot.join("; "),
                if done.is_empty() { "nothing".to_string() } else { done.join(", ") }
            ),
        )),
    }
}

fn failed_step(e: Error, id: &str, undone: Result<Vec<String>>) -> Error {
    let tail = match undone {
        Ok(done) if done.is_empty() => "it had changed nothing".to_string(),
        Ok(done) => format!("undone: {}", done.join(", ")),
        Err(u) => format!("and it could not be fully undone: {u}"),
    };
    Error::new(e.code(), format!("{e}; step '{id}' is not applied, {tail}"))
}

fn run_step(step: &Migration, catalog: &Catalog, namespace: &Path) -> Result<()> {
    let ctx = MigrationCtx { catalog, namespace };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (step.run)(&ctx))) {
        Ok(result) => result.map_err(|e| e.context(format_args!("migration '{}'", step.id))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::new(ErrorCode::UdfFailed, format!("migration '{}' panicked: {msg}", step.id)))
        }
    }
}

/// The current version of every table below `namespace`.
fn versions(catalog: &Catalog, namespace: &Path) -> Result<BTreeMap<String, Version>> {
    let mut out = BTreeMap::new();
    let tables = match catalog.list_tables(namespace, Recursive::Yes) {
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(out),
        other => other?,
    };
    for path in tables {
        out.insert(relative(&path, namespace), catalog.get_table(&path)?.version()?);
    }
    Ok(out)
}

fn made(before: &BTreeMap<String, Version>, after: &BTreeMap<String, Version>) -> BTreeMap<String, (Option<u64>, u64)> {
    after
        .iter()
        .filter(|(t, v)| before.get(*t) != Some(v))
        .map(|(t, v)| (t.clone(), (before.get(t).map(|v| v.0), v.0)))
        .collect()
}

fn relative(path: &Path, root: &Path) -> String {
    let text = path.to_string();
    match root.is_root() {
        true => text,
        false => text.strip_prefix(&format!("{root}/")).map(str::to_string).unwrap_or(text),
    }
}

/// The record table, created on first use and given the columns newer testkits record.
fn migrations_table(catalog: &Catalog) -> Result<Table> {
    let table = match catalog.get_table(MIGRATIONS_TABLE) {
        Ok(t) => t,
        Err(_) => {
            catalog.create_dir("tabula_testkit", IfExists::Ignore)?;
            catalog.create_table(
                MIGRATIONS_TABLE,
                Schema::new()
                    .required("namespace", ColumnType::String)
                    .required("id", ColumnType::String)
                    .required("applied_us", ColumnType::Int)
                    .required("versions", ColumnType::Json)
                    .nullable("fingerprint", ColumnType::String)
                    .nullable("pid", ColumnType::Int)
                    .nullable("host", ColumnType::String),
                IfExists::Ignore,
            )?
        }
    };
    let schema = table.schema()?;
    for (name, ty) in [("fingerprint", ColumnType::String), ("pid", ColumnType::Int), ("host", ColumnType::String)] {
        if schema.column(name).is_none() {
            table.add_column(name, ty, Value::Null, IfExists::Ignore)?;
        }
    }
    Ok(table)
}

fn record(
    catalog: &Catalog,
    namespace: &Path,
    step: &Migration,
    before: &BTreeMap<String, Version>,
    after: &BTreeMap<String, Version>,
) -> Result<()> {
    let table = migrations_table(catalog)?;
    let mut versions = serde_json::Map::new();
    for (t, (was, now)) in made(before, after) {
        versions.insert(t, serde_json::json!([was.map(|w| w as i64).unwrap_or(-1), now]));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros() as i64;
    table.insert_records([AppliedStep {
        namespace: namespace.to_string(),
        id: step.id.clone(),
        applied_us: now,
        versions: serde_json::Value::Object(versions),
        fingerprint: step.fingerprint.clone(),
        pid: Some(i64::from(std::process::id())),
        host: Some(tabula::process::host_name()),
    }])?;
    Ok(())
}
