//! [`UdfDiff`]: run the old and the new version of a UDF on the same sample rows and see
//! what changes before a version bump reaches production.

use std::fmt::{self, Write as _};
use std::time::Instant;

use serde::Serialize;
use tabula::{Catalog, Error, ErrorCode, Expr, Recursive, Result, Table, Udf, Value};

/// One changed output, side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangedCell {
    /// The arguments, as text.
    pub input: String,
    /// The old output (or error), as text.
    pub old: String,
    /// The new output (or error), as text.
    pub new: String,
}

/// A computed column that calls the old version and will be recomputed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recompute {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// Its rows.
    pub rows: u64,
    /// Estimated time, from the new version's measured time per row.
    pub estimated_ms: f64,
}

/// The result of a [`UdfDiff`].
#[derive(Debug, Clone, Serialize)]
pub struct UdfDiffReport {
    /// `name@version` of the old UDF.
    pub old: String,
    /// `name@version` of the new UDF.
    pub new: String,
    /// Rows compared.
    pub rows: usize,
    /// Rows whose output changed.
    pub changed: usize,
    /// Up to ten changed rows.
    pub examples: Vec<ChangedCell>,
    /// Rows that fail with the new version but did not with the old.
    pub new_errors: Vec<ChangedCell>,
    /// Measured time per row of the old version, in microseconds.
    pub old_us_per_row: f64,
    /// Measured time per row of the new version, in microseconds.
    pub new_us_per_row: f64,
    /// Computed columns that call the old version (filled by [`UdfDiffReport::plan_recompute`]).
    pub recompute: Vec<Recompute>,
    /// The sample could not show a change: every input was the same (or null), as with
    /// redacted or constant columns. A vacuous comparison fails rather than passes.
    pub vacuous: bool,
    /// Why the change is not safe to ship (empty when it is).
    pub failures: Vec<String>,
}

/// Compares two versions of a UDF on sample rows.
pub struct UdfDiff {
    old: Udf,
    new: Udf,
}

const EXAMPLES: usize = 10;

impl UdfDiff {
    /// A diff of `old` against `new` (same name; normally different versions).
    pub fn new(old: &Udf, new: &Udf) -> UdfDiff {
        UdfDiff { old: old.clone(), new: new.clone() }
    }

    /// Runs both versions on the arguments `args` evaluated on up to `n` rows of `table`.
    pub fn on_table(&self, table: &Table, args: impl IntoIterator<Item = Expr>, n: u64) -> Result<UdfDiffReport> {
        let rows: Vec<Vec<Value>> = table.select(args).head(n)?.into_iter().map(|r| r.into_values()).collect();
        Ok(self.on_rows(&rows))
    }

    /// Runs both versions on argument rows.
    pub fn on_rows(&self, rows: &[Vec<Value>]) -> UdfDiffReport {
        let timed = |udf: &Udf| {
            let started = Instant::now();
            let out = udf.invoke(rows.to_vec());
            (out, started.elapsed().as_secs_f64() * 1e6 / rows.len().max(1) as f64)
        };
        let (old_out, old_us) = timed(&self.old);
        let (new_out, new_us) = timed(&self.new);
        let show = |r: &std::result::Result<Value, tabula::CellError>| match r {
            Ok(v) => v.to_string(),
            Err(e) => format!("error {e}"),
        };
        let mut changed = 0;
        let mut examples = Vec::new();
        let mut new_errors = Vec::new();
        for ((args, a), b) in rows.iter().zip(&old_out).zip(&new_out) {
            if a == b {
                continue;
            }
            changed += 1;
            let cell = ChangedCell {
                input: args.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "),
                old: show(a),
                new: show(b),
            };
            if a.is_ok() && b.is_err() {
                new_errors.push(cell.clone());
            }
            if examples.len() < EXAMPLES {
                examples.push(cell);
            }
        }
        let mut failures = Vec::new();
        let same_id = self.old.name() == self.new.name() && self.old.version() == self.new.version();
        if same_id && changed > 0 {
            failures.push(format!(
                "{}@{} changed its output on {changed} of {} rows but kept its version; bump the version (e.g. Udf::new(\"{}\", {}, ..)) so stored columns are recomputed",
                self.old.name(),
                self.old.version(),
                rows.len(),
                self.old.name(),
                self.old.version() + 1
            ));
        }
        if !new_errors.is_empty() {
            failures.push(format!("{} row(s) fail with the new version and did not before", new_errors.len()));
        }
        let distinct: std::collections::HashSet<String> = rows
            .iter()
            .filter(|r| r.iter().any(|v| !v.is_null()))
            .map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\u{1f}"))
            .collect();
        let vacuous = changed == 0 && distinct.len() <= 1;
        if vacuous {
            failures.push(format!(
                "vacuous: the {} sampled input(s) are all the same or null (redacted or constant data?), so nothing was \
                 compared; sample rows with variety (for free text: Rule::FreeText keeps its words, Gen::corpus gives \
                 synthetic text a UDF can read)",
                rows.len()
            ));
        }
        UdfDiffReport {
            old: format!("{}@{}", self.old.name(), self.old.version()),
            new: format!("{}@{}", self.new.name(), self.new.version()),
            rows: rows.len(),
            changed,
            examples,
            new_errors,
            old_us_per_row: old_us,
            new_us_per_row: new_us,
            recompute: Vec::new(),
            vacuous,
            failures,
        }
    }
}

impl UdfDiffReport {
    /// True when the change is safe to ship.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Finds every computed column in `catalog` that calls the old version, with its row
    /// count and the estimated cost of recomputing it with the new one.
    pub fn plan_recompute(mut self, catalog: &Catalog) -> Result<UdfDiffReport> {
        let (name, version) = self
            .old
            .split_once('@')
            .and_then(|(n, v)| v.parse::<u32>().ok().map(|v| (n.to_string(), v)))
            .ok_or_else(|| Error::new(ErrorCode::InvalidArgument, format!("bad UDF id '{}'", self.old)))?;
        for path in catalog.list_tables("", Recursive::Yes)? {
            let table = catalog.get_table(&path)?;
            let schema = table.schema()?;
            for c in &schema.columns {
                let Some(comp) = &c.computed else { continue };
                let mut calls = false;
                comp.expr.visit(&mut |e| {
                    if let Expr::Udf { name: n, version: v, .. } = e {
                        calls |= *n == name && *v == version;
                    }
                });
                if calls {
                    let rows = table.count()?;
                    self.recompute.push(Recompute {
                        table: path.to_string(),
                        column: c.name.clone(),
                        rows,
                        estimated_ms: rows as f64 * self.new_us_per_row / 1000.0,
                    });
                }
            }
        }
        Ok(self)
    }

    /// A stable text form without timings, for snapshots.
    pub fn to_text(&self) -> String {
        let mut out = format!("{} -> {}: {} of {} rows changed\n", self.old, self.new, self.changed, self.rows);
        for c in &self.examples {
            writeln!(out, "  ({}): {} => {}", c.input, c.old, c.new).ok();
        }
        for c in &self.new_errors {
            writeln!(out, "  new error on ({}): {}", c.input, c.new).ok();
        }
        for r in &self.recompute {
            writeln!(out, "  recomputes {}.{} ({} rows)", r.table, r.column, r.rows).ok();
        }
        for f in &self.failures {
            writeln!(out, "  failure: {f}").ok();
        }
        out
    }
}

impl fmt::Display for UdfDiffReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())?;
        write!(f, "  time per row: {:.2} us -> {:.2} us", self.old_us_per_row, self.new_us_per_row)
    }
}
