//! [`MigrationCheck`]: run pending steps on representative data in an isolated namespace and
//! record, per step, the state before and after (schema, counts, per-column fingerprints,
//! sample rows), whether a second run is a no-op, whether reverting the step's versions
//! restores every fingerprint, and whether it destroys data.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;
use tabula::{col, Catalog, ChangeKind, ColumnDef, ColumnType, Force, IfExists, Path, Recursive, Result, Table, Value};

use super::{record, relative, run_step, versions, DataFn, Migration, MigrationCtx, Migrations};
use crate::namespace::TestNamespace;

/// Summary statistics of one column, enough to see whether its data changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnPrint {
    /// Null values.
    pub nulls: u64,
    /// Distinct non-null values.
    pub distinct: u64,
    /// The smallest value, as text.
    pub min: String,
    /// The largest value, as text.
    pub max: String,
    /// An order-independent hash of all values.
    pub hash: String,
}

/// One table's state in a [`StateSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TablePrint {
    /// The table's columns: `name Type` (`?` when nullable) and ` = expr` when computed.
    pub schema: Vec<String>,
    /// Row count.
    pub rows: u64,
    /// Fingerprint of every column.
    pub columns: BTreeMap<String, ColumnPrint>,
    /// The first rows, as text.
    pub sample: Vec<String>,
    /// The columns as the engine stores them: what the schema diff compares (the text in
    /// `schema` is what it shows).
    #[serde(skip)]
    pub(crate) defs: Vec<ColumnDef>,
}

/// The state of every table in a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct StateSnapshot {
    /// Tables by path relative to the namespace.
    pub tables: BTreeMap<String, TablePrint>,
}

/// How many sample rows a snapshot keeps per table.
const SAMPLE_ROWS: u64 = 3;

impl StateSnapshot {
    /// Takes the snapshot of every table below `namespace`.
    pub fn take(catalog: &Catalog, namespace: &Path) -> Result<StateSnapshot> {
        let mut tables = BTreeMap::new();
        for path in catalog.list_tables(namespace, Recursive::Yes)? {
            let table = catalog.get_table(&path)?;
            tables.insert(relative(&path, namespace), print_table(&table)?);
        }
        Ok(StateSnapshot { tables })
    }
}

/// The stable hash of a value's text (the same in every Rust release and on every platform,
/// so checksums in stored snapshots never drift).
fn value_hash(v: &Value) -> u64 {
    crate::synth::stable_hash(&[v.to_string().as_bytes()])
}

fn print_table(table: &Table) -> Result<TablePrint> {
    let info = table.describe()?;
    let defs = table.schema()?.columns;
    let schema = defs
        .iter()
        .map(|c| {
            let mut s = format!("{} {}{}", c.name, c.ty, if c.nullable { "?" } else { "" });
            if let Some(computed) = &c.computed {
                write!(s, " = {}", computed.expr).ok();
                if computed.on_error == tabula::OnError::Ignore {
                    s.push_str(" (errors kept)");
                }
            }
            if let (Some(default), false) = (&c.default, c.is_computed()) {
                write!(s, " default {default}").ok();
            }
            s
        })
        .collect();
    let mut columns = BTreeMap::new();
    let mut rows = 0;
    for c in &info.columns {
        let (mut nulls, mut n, mut sum) = (0u64, 0u64, 0u64);
        let mut distinct = HashSet::new();
        let (mut min, mut max): (Option<Value>, Option<Value>) = (None, None);
        for row in table.select([col(c.name.clone())]).stream()? {
            let v = row?.into_values().remove(0);
            n += 1;
            if v.is_null() {
                nulls += 1;
                continue;
            }
            let h = value_hash(&v);
            sum = sum.wrapping_add(h.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ h);
            distinct.insert(h);
            if min.as_ref().is_none_or(|m| less(&v, m)) {
                min = Some(v.clone());
            }
            if max.as_ref().is_none_or(|m| less(m, &v)) {
                max = Some(v);
            }
        }
        rows = n;
        let shown = |v: Option<Value>| v.map(|v| short(&v.to_string())).unwrap_or_else(|| "-".into());
        columns.insert(
            c.name.clone(),
            ColumnPrint {
                nulls,
                distinct: distinct.len() as u64,
                min: shown(min),
                max: shown(max),
                hash: format!("{sum:016x}"),
            },
        );
    }
    if info.columns.is_empty() {
        rows = table.count()?;
    }
    let sample = table.select_all().head(SAMPLE_ROWS)?.iter().map(|r| short(&r.to_string())).collect();
    Ok(TablePrint { schema, rows, columns, sample, defs })
}

fn less(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Timestamp(x), Value::Timestamp(y)) => x < y,
        (Value::Date(x), Value::Date(y)) => x < y,
        (Value::Bool(x), Value::Bool(y)) => x < y,
        _ => a.to_string() < b.to_string(),
    }
}

fn short(text: &str) -> String {
    if text.chars().count() <= 120 {
        return text.to_string();
    }
    let cut: String = text.chars().take(117).collect();
    format!("{cut}...")
}

/// What happened in one step of a [`MigrationCheck`].
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step id.
    pub id: String,
    /// Versions made, per table: `(before, after)`; `None` before means created.
    pub versions: BTreeMap<String, (Option<u64>, u64)>,
    /// The changes the step made, in words (from the tables' histories).
    pub changes: Vec<String>,
    /// Schema differences, `+ table.column ...`, `- table.column ...`, `~ table.column ...`.
    pub schema_diff: Vec<String>,
    /// Data differences: row counts and columns whose fingerprints changed.
    pub data_diff: Vec<String>,
    /// What the step destroys (dropped or replaced data, deleted rows, narrowed types).
    pub destructive: Vec<String>,
    /// Whether the step is marked as allowed to be destructive.
    pub destructive_allowed: bool,
    /// A second run made no version and changed no fingerprint.
    pub idempotent: bool,
    /// Reverting the step's versions restored every fingerprint.
    pub revert_restores: bool,
    /// Why the step fails the check (empty when it passes).
    pub failures: Vec<String>,
    /// State before the step.
    pub before: StateSnapshot,
    /// State after the step.
    pub after: StateSnapshot,
    /// Time to apply the step, in milliseconds.
    pub millis: f64,
}

impl StepReport {
    /// True when the step passes every check.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The result of a [`MigrationCheck`].
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// Applied steps whose code no longer matches what they did (see [`verify_applied`]).
    pub edited: Vec<String>,
    /// One report a checked (pending) step.
    pub steps: Vec<StepReport>,
}

impl MigrationReport {
    /// True when every step passes and no applied step was edited.
    pub fn passed(&self) -> bool {
        self.edited.is_empty() && self.steps.iter().all(StepReport::passed)
    }

    /// Every failure, prefixed with its step id.
    pub fn failures(&self) -> Vec<String> {
        let edited = self.edited.iter().cloned();
        edited.chain(self.steps.iter().flat_map(|s| s.failures.iter().map(move |f| format!("{}: {f}", s.id)))).collect()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A stable, readable text form (no times, no namespace names), for snapshots.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for e in &self.edited {
            writeln!(out, "edited after it was applied: {e}").ok();
        }
        for s in &self.steps {
            let verdict = if s.passed() { "ok" } else { "FAILED" };
            writeln!(out, "step {} [{verdict}]", s.id).ok();
            for f in &s.failures {
                writeln!(out, "  failure: {f}").ok();
            }
            for (t, (a, b)) in &s.versions {
                let a = a.map(|a| a.to_string()).unwrap_or_else(|| "new".into());
                writeln!(out, "  versions: {t} {a} -> {b}").ok();
            }
            section(&mut out, "changes", &s.changes);
            section(&mut out, "schema", &s.schema_diff);
            section(&mut out, "data", &s.data_diff);
            let destructive = if s.destructive.is_empty() {
                "none".to_string()
            } else {
                format!(
                    "{}{}",
                    s.destructive.join("; "),
                    if s.destructive_allowed { " (allowed)" } else { " (NOT allowed)" }
                )
            };
            writeln!(out, "  destructive: {destructive}").ok();
            writeln!(out, "  idempotent: {}", if s.idempotent { "yes" } else { "NO" }).ok();
            writeln!(out, "  revert restores: {}", if s.revert_restores { "yes" } else { "NO" }).ok();
        }
        out
    }
}

fn section(out: &mut String, name: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    writeln!(out, "  {name}:").ok();
    for l in lines {
        writeln!(out, "    {l}").ok();
    }
}

/// Checks pending migration steps on representative data in an isolated namespace.
pub struct MigrationCheck<'m> {
    migrations: &'m Migrations,
    applied_through: Option<String>,
    data: Option<Box<DataFn<'m>>>,
}

impl<'m> MigrationCheck<'m> {
    /// A check of every step of `migrations` (see [`MigrationCheck::applied_through`]).
    pub fn new(migrations: &'m Migrations) -> MigrationCheck<'m> {
        MigrationCheck { migrations, applied_through: None, data: None }
    }

    /// The steps up to and including `id` are already applied (as in production): they
    /// run first, unchecked, before the data is loaded.
    pub fn applied_through(mut self, id: &str) -> MigrationCheck<'m> {
        self.applied_through = Some(id.to_string());
        self
    }

    /// Loads representative data after the applied steps (synthetic rows, a fixture, an
    /// anonymized copy).
    pub fn data(mut self, load: impl Fn(&MigrationCtx) -> Result<()> + 'm) -> MigrationCheck<'m> {
        self.data = Some(Box::new(load));
        self
    }

    /// Runs the check in a fresh test namespace of `catalog` (dropped afterwards).
    pub fn run(&self, catalog: &Catalog) -> Result<MigrationReport> {
        let ns = TestNamespace::new(catalog, "migration_check")?;
        if let Some(last) = &self.applied_through {
            self.migrations.apply_through(catalog, ns.path(), last)?;
        } else {
            catalog.create_dir(ns.path(), IfExists::Ignore)?;
        }
        if let Some(load) = &self.data {
            load(&MigrationCtx::new(catalog, ns.path()))?;
        }
        check_pending(self.migrations, catalog, ns.path())
    }
}

/// Runs every applied step of `migrations` again in `namespace` (a copy: this writes) and
/// returns the ones whose code no longer matches what they did: running an applied,
/// idempotent step again must change nothing, so a step that makes a version or fails was
/// edited after it was applied (for example a computed column's expression changed).
pub fn verify_applied(migrations: &Migrations, catalog: &Catalog, namespace: &Path) -> Result<Vec<String>> {
    let applied: BTreeSet<String> = migrations.applied(catalog, namespace)?.into_iter().map(|a| a.id).collect();
    let mut edited = Vec::new();
    for step in migrations.steps().iter().filter(|s| applied.contains(&s.id)) {
        let before = versions(catalog, namespace)?;
        match run_step(step, catalog, namespace) {
            Ok(()) => {
                let after = versions(catalog, namespace)?;
                let changed: Vec<&String> = after.keys().filter(|t| before.get(*t) != after.get(*t)).collect();
                if !changed.is_empty() {
                    edited.push(format!(
                        "{}: running it again changed {} (its code differs from what was applied)",
                        step.id,
                        changed.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            Err(e) => edited.push(format!("{}: running it again failed: {e}", step.id)),
        }
    }
    Ok(edited)
}

/// Checks the steps of `migrations` not yet applied to `namespace` (which holds the data, in
/// a copy: this writes), applying each for good after checking it; first verifies that the
/// applied steps still match their code ([`verify_applied`]).
pub fn check_pending(migrations: &Migrations, catalog: &Catalog, namespace: &Path) -> Result<MigrationReport> {
    migrations.check_ids()?;
    let edited = verify_applied(migrations, catalog, namespace)?;
    let pending: BTreeSet<String> = migrations.pending(catalog, namespace)?.into_iter().collect();
    let mut steps = Vec::new();
    for step in migrations.steps().iter().filter(|s| pending.contains(&s.id)) {
        let report = check_step(step, catalog, namespace)?;
        let failed = !report.passed();
        steps.push(report);
        if failed {
            break;
        }
    }
    Ok(MigrationReport { edited, steps })
}

fn check_step(step: &Migration, catalog: &Catalog, ns: &Path) -> Result<StepReport> {
    let v0 = versions(catalog, ns)?;
    let before = StateSnapshot::take(catalog, ns)?;
    let started = Instant::now();
    run_step(step, catalog, ns)?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let v1 = versions(catalog, ns)?;
    let after = StateSnapshot::take(catalog, ns)?;
    let mut failures = Vec::new();
    let made: BTreeMap<String, (Option<u64>, u64)> = v1
        .iter()
        .filter(|(t, v)| v0.get(*t) != Some(v))
        .map(|(t, v)| (t.clone(), (v0.get(t).map(|v| v.0), v.0)))
        .collect();
    // What the versions did, in words, and what was dropped.
    let mut changes = Vec::new();
    let mut destructive = Vec::new();
    for (t, (was, _)) in &made {
        let table = catalog.get_table(ns.join_relative(t)?)?;
        for v in table.history()?.into_iter().rev() {
            if was.is_none_or(|w| v.version.0 > w) {
                // Every kind is named, so a kind the engine adds cannot pass unjudged.
                match v.change {
                    ChangeKind::DropColumn
                    | ChangeKind::ReplaceColumn
                    | ChangeKind::ReplaceComputedColumn
                    | ChangeKind::Delete => destructive.push(format!("{t}: {}", v.detail)),
                    ChangeKind::Update | ChangeKind::Recompute | ChangeKind::BatchUpdate => {
                        destructive.push(format!("{t}: {} (rewrites {} row(s))", v.detail, v.updated))
                    }
                    ChangeKind::Create
                    | ChangeKind::Insert
                    | ChangeKind::AddColumn
                    | ChangeKind::AddComputedColumn
                    | ChangeKind::RenameColumn
                    // Nullable, required or widened: no value is lost.
                    | ChangeKind::AlterColumn => {}
                }
                changes.push(format!("{t}: {}", v.detail));
            }
        }
    }
    for t in before.tables.keys().filter(|t| !after.tables.contains_key(*t)) {
        destructive.push(format!("drop table {t}"));
        changes.push(format!("drop table {t}"));
    }
    let (schema_diff, narrowed) = schema_diff(&before, &after);
    destructive.extend(narrowed);
    let data_diff = data_diff(&before, &after);
    // Idempotency: a second run makes no version and changes no fingerprint.
    let mut idempotent = true;
    match run_step(step, catalog, ns) {
        Ok(()) => {
            let v2 = versions(catalog, ns)?;
            if v2 != v1 {
                idempotent = false;
                let again: Vec<String> = v2
                    .iter()
                    .filter(|(t, v)| v1.get(*t) != Some(v))
                    .map(|(t, v)| {
                        format!("{t} {} -> {v}", v1.get(t).map(|v| v.to_string()).unwrap_or_else(|| "new".into()))
                    })
                    .collect();
                failures.push(format!("not idempotent: running it again made versions ({})", again.join(", ")));
            } else if StateSnapshot::take(catalog, ns)? != after {
                idempotent = false;
                failures.push("not idempotent: running it again changed the data".into());
            }
        }
        Err(e) => {
            idempotent = false;
            failures.push(format!("not idempotent: running it again failed: {e}"));
        }
    }
    // Revert: undo every version the step (and its second run) made; then apply it again.
    let v_now = versions(catalog, ns)?;
    let mut cannot = Vec::new();
    for (t, v) in &v_now {
        let path = ns.join_relative(t)?;
        let undone = match v0.get(t) {
            Some(was) if was != v => catalog.get_table(&path).and_then(|table| table.revert_to(*was)).map(|_| ()),
            None => catalog.drop_table(&path, Force::Yes),
            _ => Ok(()),
        };
        if let Err(e) = undone {
            cannot.push(format!("{t}: {e}"));
        }
    }
    let reverted = StateSnapshot::take(catalog, ns)?;
    let revert_restores = reverted == before;
    if !revert_restores {
        let lost: Vec<String> =
            before.tables.iter().filter(|(t, p)| reverted.tables.get(*t) != Some(p)).map(|(t, _)| t.clone()).collect();
        failures.push(format!(
            "revert does not restore the state before the step (differs in: {}); the step changes what versions cannot undo{}",
            lost.join(", "),
            if cannot.is_empty() { String::new() } else { format!(" ({})", cannot.join("; ")) }
        ));
    }
    if !destructive.is_empty() && !step.destructive_ok {
        failures.push(format!(
            "destructive but not marked as allowed ({}); mark it with .allow_destructive() if that is intended",
            destructive.join("; ")
        ));
    }
    // Leave the step applied, as it will be in production.
    if revert_restores {
        run_step(step, catalog, ns)?;
    }
    let final_versions = versions(catalog, ns)?;
    record(catalog, ns, step, &v0, &final_versions)?;
    Ok(StepReport {
        id: step.id.clone(),
        versions: made,
        changes,
        schema_diff,
        data_diff,
        destructive,
        destructive_allowed: step.destructive_ok,
        idempotent,
        revert_restores,
        failures,
        before,
        after,
        millis,
    })
}

/// The schema diff of two states, computed on the column definitions (type, nullability,
/// computed expression and its error policy, default), shown with their text; and the
/// changes that narrow what a column holds (a type changed other than Int to Float, or a
/// nullable column made required).
fn schema_diff(before: &StateSnapshot, after: &StateSnapshot) -> (Vec<String>, Vec<String>) {
    let mut diff = Vec::new();
    let mut narrowed = Vec::new();
    let tables: BTreeSet<&String> = before.tables.keys().chain(after.tables.keys()).collect();
    let columns = |p: Option<&TablePrint>| -> Vec<(ColumnDef, String)> {
        p.map(|p| p.defs.iter().cloned().zip(p.schema.iter().cloned()).collect()).unwrap_or_default()
    };
    let same = |a: &ColumnDef, b: &ColumnDef| {
        a.ty == b.ty && a.nullable == b.nullable && a.computed == b.computed && a.default == b.default
    };
    for t in tables {
        let (a, b) = (columns(before.tables.get(t)), columns(after.tables.get(t)));
        for (new, line) in &b {
            match a.iter().find(|(old, _)| old.name == new.name) {
                None => diff.push(format!("+ {t}.{line}")),
                Some((old, old_line)) if !same(old, new) => {
                    diff.push(format!("~ {t}.{old_line}  =>  {line}"));
                    let widened = old.ty == ColumnType::Int && new.ty == ColumnType::Float;
                    if old.ty != new.ty && !widened {
                        narrowed.push(format!("{t}.{}: type {} -> {}", new.name, old.ty, new.ty));
                    }
                    if old.nullable && !new.nullable {
                        narrowed.push(format!("{t}.{}: nullable -> required", new.name));
                    }
                }
                _ => {}
            }
        }
        for (old, line) in &a {
            if !b.iter().any(|(new, _)| new.name == old.name) {
                diff.push(format!("- {t}.{line}"));
            }
        }
    }
    (diff, narrowed)
}

fn data_diff(before: &StateSnapshot, after: &StateSnapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (t, b) in &after.tables {
        let a = before.tables.get(t);
        if a.map(|a| a.rows) != Some(b.rows) {
            out.push(format!(
                "{t}: {} rows (was {})",
                b.rows,
                a.map(|a| a.rows.to_string()).unwrap_or_else(|| "-".into())
            ));
        }
        for (c, print) in &b.columns {
            if a.and_then(|a| a.columns.get(c)) != Some(print) {
                out.push(format!(
                    "{t}.{c}: nulls {}, distinct {}, min {}, max {}",
                    print.nulls, print.distinct, print.min, print.max
                ));
            }
        }
    }
    out
}

/// Snapshot-tests a [`MigrationReport`]'s text form with `insta`.
#[macro_export]
macro_rules! assert_migration_snapshot {
    ($report:expr) => {
        $crate::__insta::assert_snapshot!($report.to_text())
    };
    ($name:expr, $report:expr) => {
        $crate::__insta::assert_snapshot!($name, $report.to_text())
    };
}
