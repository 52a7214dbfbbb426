//! Model-based test: random sequences of operations on one table (keyed by `k`), a view of
//! it and a view of that view, checked after every step against a small in-memory model:
//! the current version and a few older ones of each, the views' versions (a view gets one
//! when a change of its base touches its rows or its columns) read as they were. Half the
//! cases run on a catalog file in the layout before format 5 (live rows at `_vmax =
//! i64::MAX`), the others on the suite's backend: in memory, or on the test server, where
//! half of them fill fresh computed columns by copying the table (`copy_fills_from(0)`;
//! a server does that for big tables only). In half the cases the views' filters compare
//! `x` as a Float (a cast), which a server cannot compute with Tabula's meaning: there
//! Tabula evaluates them for every read (`store::shown`). `TABULA_MODEL_CASES=5000 cargo
//! test model` runs the long form.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tabula::{
    col, lit, row, Catalog, ColumnOptions, ColumnType, ErrorCode, Force, IfExists, IfMissing, Schema, Table, Udf,
    Value, Version,
};

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<Option<i64>>),
    /// Sets `x` by key: each (key pick, x); a pick beyond the keys used makes a new key.
    Upsert(Vec<(i64, Option<i64>)>),
    /// Sets `x` by key, refusing (`strict`) or skipping keys no live row has.
    BatchUpdate {
        rows: Vec<(i64, Option<i64>)>,
        strict: bool,
    },
    Update {
        add: i64,
        modulo: i64,
        rest: i64,
    },
    Delete {
        modulo: i64,
        rest: i64,
    },
    AddColumn {
        name: usize,
        default: i64,
    },
    AddComputed {
        name: usize,
        udf: bool,
    },
    Replace {
        name: usize,
        udf: bool,
    },
    Drop {
        name: usize,
    },
    Rename {
        name: usize,
    },
    Revert,
    RevertTo(usize),
    /// Replaces the view with one filtering `x > threshold`.
    CreateView(i64),
    /// Sets the view's stored column `note` where `k % modulo == rest`.
    Note {
        value: i64,
        modulo: i64,
        rest: i64,
    },
    /// Reverts the view's latest version (refused when it follows the table).
    RevertView,
    /// Compacts the table, keeping its newest versions.
    Compact(u64),
}

/// Extra column names the operations draw from (`x` and `k` always exist).
const NAMES: [&str; 4] = ["a", "b", "p", "q"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => proptest::collection::vec(proptest::option::of(-20i64..40), 1..5).prop_map(Op::Insert),
        2 => keyed_rows().prop_map(Op::Upsert),
        2 => (keyed_rows(), any::<bool>()).prop_map(|(rows, strict)| Op::BatchUpdate { rows, strict }),
        2 => (-5i64..6, 1i64..4, 0i64..3).prop_map(|(add, modulo, rest)| Op::Update { add, modulo, rest }),
        1 => (1i64..4, 0i64..3).prop_map(|(modulo, rest)| Op::Delete { modulo, rest }),
        1 => (0usize..4, -3i64..3).prop_map(|(name, default)| Op::AddColumn { name, default }),
        2 => (0usize..4, any::<bool>()).prop_map(|(name, udf)| Op::AddComputed { name, udf }),
        1 => (0usize..4, any::<bool>()).prop_map(|(name, udf)| Op::Replace { name, udf }),
        1 => (0usize..4).prop_map(|name| Op::Drop { name }),
        1 => (0usize..4).prop_map(|name| Op::Rename { name }),
        2 => Just(Op::Revert),
        1 => (0usize..100).prop_map(Op::RevertTo),
        1 => (-5i64..30).prop_map(Op::CreateView),
        2 => (0i64..100, 1i64..4, 0i64..3).prop_map(|(value, modulo, rest)| Op::Note { value, modulo, rest }),
        1 => Just(Op::RevertView),
        1 => (1u64..4).prop_map(Op::Compact),
    ]
}

/// Rows of a batch by key: key picks (the keys used so far and a few new ones) and `x`.
fn keyed_rows() -> impl Strategy<Value = Vec<(i64, Option<i64>)>> {
    proptest::collection::vec((0i64..30, proptest::option::of(-20i64..40)), 1..5)
}

#[derive(Debug, Clone, PartialEq)]
enum ColDef {
    /// A stored Int column with the default it was added with.
    Stored { default: Option<i64> },
    /// `x * 2` in SQL, or `x + 1` through a UDF.
    Computed { udf: bool },
}

#[derive(Debug, Clone)]
struct ModelVersion {
    number: u64,
    columns: Vec<(String, ColDef)>,
    rows: BTreeMap<i64, BTreeMap<String, Value>>,
    /// Each row's identity (a key inserted again after a delete is another row).
    ids: BTreeMap<i64, u64>,
}

fn compute(udf: bool, x: &Value) -> Value {
    match x {
        Value::Int(x) if udf => x.checked_add(1).map(Value::Int).unwrap_or(Value::Null),
        Value::Int(x) => x.checked_mul(2).map(Value::Int).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn expr(udf: bool, inc: &Udf) -> tabula::Expr {
    if udf {
        inc.call([col("x")])
    } else {
        col("x") * 2
    }
}

/// A version of a view in the model: its number, the version of its base it shows, how
/// many of its own columns it has (the view: `vx`, then `note`; the view of it: `wx`), whether
/// it followed a change of its base, and the view's notes by row identity.
#[derive(Debug, Clone)]
struct ViewVersion {
    number: u64,
    base: u64,
    own: u8,
    follows: bool,
    notes: BTreeMap<u64, i64>,
}

/// The view of the view shows the view's rows with `x < W_LIMIT`, and `wx = vx + 1`.
const W_LIMIT: i64 = 30;

/// The `x` of the rows a change ended (old) and wrote (new), or `None` for a schema change.
type Touched = Option<Vec<(Option<Value>, Option<Value>)>>;

struct World {
    cat: crate::Scratch,
    /// The directory of the catalog file, for a catalog in the format 4 layout.
    _dir: Option<tempfile::TempDir>,
    t: Table,
    view: Table,
    /// A view of `view`.
    w: Table,
    inc: Udf,
    history: Vec<ModelVersion>,
    /// The versions compaction removed (views may still show one).
    compacted: Vec<ModelVersion>,
    last_number: u64,
    next_k: i64,
    /// The view shows rows with `x > threshold`.
    threshold: i64,
    view_versions: Vec<ViewVersion>,
    w_versions: Vec<ViewVersion>,
    /// The highest version number each view had.
    view_last: u64,
    w_last: u64,
    /// The last row identity given.
    last_id: u64,
    /// The views filter on `x` cast to a Float (the same rows; a server cannot run it).
    cast_filters: bool,
}

impl World {
    /// A world on a file in the layout before format 5 (`format_4`), else on the suite's
    /// backend: in memory, or on the test server, where `copy_fills` makes every fill of a
    /// fresh computed column copy the table (a server does that only for big tables).
    fn new(format_4: bool, copy_fills: bool, cast_filters: bool) -> World {
        let (cat, dir) = if format_4 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("cat.db");
            crate::format_4_file(&path);
            (crate::Scratch::file(Catalog::open(&path).unwrap()), Some(dir))
        } else {
            let options = tabula::OpenOptions::new();
            (crate::scratch_catalog(if copy_fills { options.copy_fills_from(0) } else { options }), None)
        };
        let inc = Udf::new("inc", 1, |x: i64| x.checked_add(1).ok_or("overflow"));
        cat.register(&inc);
        let schema = || Schema::new().required("k", ColumnType::Int).nullable("x", ColumnType::Int).primary_key(["k"]);
        // The table keeps its rows in the physical table of a dropped one (as a test
        // namespace's tables do): nothing of that one may show through in any version.
        let dropped = cat.create_table("dropped", schema(), IfExists::Error).unwrap();
        dropped.insert((0..5).map(|i| row! {"k" => 1000 + i, "x" => i})).unwrap();
        dropped.update([("x", lit(99))], col("k").gt(1002)).unwrap();
        cat.drop_table("dropped", Force::No).unwrap();
        let t = cat.create_table("t", schema(), IfExists::Error).unwrap();
        let first = ModelVersion {
            number: 0,
            columns: vec![
                ("k".into(), ColDef::Stored { default: None }),
                ("x".into(), ColDef::Stored { default: None }),
            ],
            rows: BTreeMap::new(),
            ids: BTreeMap::new(),
        };
        let (view, w) = (t.clone(), t.clone());
        let mut world = World {
            cat,
            _dir: dir,
            t,
            view,
            w,
            inc,
            history: vec![first],
            compacted: Vec::new(),
            last_number: 0,
            next_k: 0,
            threshold: 10,
            view_versions: Vec::new(),
            w_versions: Vec::new(),
            view_last: 0,
            w_last: 0,
            last_id: 0,
            cast_filters,
        };
        world.make_views(10, IfExists::Error);
        world
    }

    /// (Re)creates the view (`x > threshold`, with `vx`) and the view of it (with `wx`).
    fn make_views(&mut self, threshold: i64, if_exists: IfExists) {
        let (above, below) = match self.cast_filters {
            true => {
                let x = col("x").cast(ColumnType::Float);
                (x.clone().gt(threshold as f64), x.lt(W_LIMIT as f64))
            }
            false => (col("x").gt(threshold), col("x").lt(W_LIMIT)),
        };
        self.view = self.cat.create_view("v", &self.t, above, if_exists).unwrap();
        self.view.add_computed_column("vx", col("x") + 100, ColumnOptions::default()).unwrap();
        self.view.add_column("note", ColumnType::Int, Value::Null, IfExists::Error).unwrap();
        self.w = self.cat.create_view("w", &self.view, below, IfExists::Error).unwrap();
        self.w.add_computed_column("wx", col("vx") + 1, ColumnOptions::default()).unwrap();
        self.threshold = threshold;
        let base = self.current().number;
        let made = |number: u64, base: u64| ViewVersion {
            number,
            base,
            own: number as u8,
            follows: false,
            notes: BTreeMap::new(),
        };
        self.view_versions = vec![made(0, base), made(1, base), made(2, base)];
        self.w_versions = vec![made(0, 2), made(1, 2)];
        (self.view_last, self.w_last) = (2, 1);
    }

    fn current(&self) -> &ModelVersion {
        self.history.last().unwrap()
    }

    /// A new row identity.
    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Records the table's next version; the views follow it when it touched their rows
    /// (`touched`) or changed the columns they show (`None`).
    fn push(&mut self, mut next: ModelVersion, touched: Touched) {
        self.last_number += 1;
        next.number = self.last_number;
        self.history.push(next);
        let threshold = self.threshold;
        let in_view = move |x: &Value| matches!(x, Value::Int(x) if *x > threshold);
        let in_w = move |x: &Value| in_view(x) && matches!(x, Value::Int(x) if *x < W_LIMIT);
        let moves = |shown: &dyn Fn(&Value) -> bool| match &touched {
            None => true,
            Some(rows) => rows.iter().any(|(old, new)| old.iter().chain(new).any(shown)),
        };
        if !moves(&in_view) {
            return;
        }
        // Version numbers are never reused: the next is one past the highest ever.
        let follow = |versions: &mut Vec<ViewVersion>, last: &mut u64, base: u64| {
            let latest = versions.last().unwrap().clone();
            *last += 1;
            versions.push(ViewVersion { number: *last, base, follows: true, ..latest });
        };
        follow(&mut self.view_versions, &mut self.view_last, self.last_number);
        if moves(&in_w) {
            let v_now = self.view_versions.last().unwrap().number;
            follow(&mut self.w_versions, &mut self.w_last, v_now);
        }
    }

    /// Undoes the table's latest version in the model, and what the views did with it.
    fn pop(&mut self) {
        let reverted = self.history.pop().unwrap().number;
        let now = self.current().number;
        let unfollow = |versions: &mut Vec<ViewVersion>, gone: &[u64], now: u64| -> Vec<u64> {
            let removed: Vec<u64> =
                versions.iter().filter(|v| v.follows && gone.contains(&v.base)).map(|v| v.number).collect();
            versions.retain(|v| !removed.contains(&v.number));
            for v in versions.iter_mut().filter(|v| !v.follows && gone.contains(&v.base)) {
                v.base = now;
            }
            removed
        };
        let removed = unfollow(&mut self.view_versions, &[reverted], now);
        let v_now = self.view_versions.last().unwrap().number;
        unfollow(&mut self.w_versions, &removed, v_now);
    }

    fn has(&self, name: &str) -> Option<ColDef> {
        self.current().columns.iter().find(|(n, _)| n == name).map(|(_, d)| d.clone())
    }

    /// Applies `op` to the real table and the model alike.
    fn apply(&mut self, op: &Op) {
        let mut next = self.current().clone();
        let matches = |k: i64, modulo: i64, rest: i64| k % modulo == rest;
        match op {
            Op::Insert(xs) => {
                let rows: Vec<_> = xs
                    .iter()
                    .map(|x| {
                        let k = self.next_k;
                        self.next_k += 1;
                        (k, *x)
                    })
                    .collect();
                self.t.insert(rows.iter().map(|(k, x)| row! {"k" => *k, "x" => *x})).unwrap();
                let touched = rows.iter().map(|(_, x)| (None, Some(Value::from(*x)))).collect();
                for (k, x) in rows {
                    let mut r = BTreeMap::new();
                    for (name, def) in &next.columns {
                        let v = match (name.as_str(), def) {
                            ("k", _) => Value::Int(k),
                            ("x", _) => Value::from(x),
                            (_, ColDef::Stored { default }) => Value::from(*default),
                            (_, ColDef::Computed { udf }) => compute(*udf, &Value::from(x)),
                        };
                        r.insert(name.clone(), v);
                    }
                    next.rows.insert(k, r);
                    next.ids.insert(k, self.next_id());
                }
                self.push(next, Some(touched));
            }
            Op::Upsert(rows) | Op::BatchUpdate { rows, .. } => {
                // One row a key (a batch may not repeat one): the first of each.
                let mut batch: Vec<(i64, Option<i64>)> = Vec::new();
                for (k, x) in rows {
                    if !batch.iter().any(|(seen, _)| seen == k) {
                        batch.push((*k, *x));
                    }
                }
                let if_missing = match op {
                    Op::Upsert(_) => IfMissing::Insert,
                    Op::BatchUpdate { strict: true, .. } => IfMissing::Error,
                    _ => IfMissing::Ignore,
                };
                let result = self.t.batch_update(batch.iter().map(|(k, x)| row! {"k" => *k, "x" => *x}), if_missing);
                let missing = batch.iter().filter(|(k, _)| !next.rows.contains_key(k)).count();
                if if_missing == IfMissing::Error && missing > 0 {
                    assert_eq!(result.unwrap_err().code(), ErrorCode::NotFound);
                    return;
                }
                let done = result.unwrap();
                let cols = next.columns.clone();
                let (mut updated, mut inserted) = (0, 0);
                let mut touched = Vec::new();
                for (k, x) in &batch {
                    let x = Value::from(*x);
                    match next.rows.get_mut(k) {
                        Some(r) => {
                            updated += 1;
                            touched.push((Some(r["x"].clone()), Some(x.clone())));
                            for (name, def) in &cols {
                                if let ColDef::Computed { udf } = def {
                                    r.insert(name.clone(), compute(*udf, &x));
                                }
                            }
                            r.insert("x".into(), x);
                        }
                        None if if_missing == IfMissing::Insert => {
                            inserted += 1;
                            touched.push((None, Some(x.clone())));
                            let mut r = BTreeMap::new();
                            for (name, def) in &cols {
                                let v = match (name.as_str(), def) {
                                    ("k", _) => Value::Int(*k),
                                    ("x", _) => x.clone(),
                                    (_, ColDef::Stored { default }) => Value::from(*default),
                                    (_, ColDef::Computed { udf }) => compute(*udf, &x),
                                };
                                r.insert(name.clone(), v);
                            }
                            next.rows.insert(*k, r);
                            next.ids.insert(*k, self.next_id());
                            self.next_k = self.next_k.max(k + 1);
                        }
                        None => {}
                    }
                }
                assert_eq!((done.updated, done.inserted), (updated, inserted));
                if updated + inserted > 0 {
                    self.push(next, Some(touched));
                }
            }
            Op::Update { add, modulo, rest } => {
                let done = self.t.update([("x", col("x") + *add)], (col("k") % *modulo).eq(*rest)).unwrap();
                let cols = next.columns.clone();
                let mut n = 0;
                let mut touched = Vec::new();
                for (k, r) in next.rows.iter_mut() {
                    if matches(*k, *modulo, *rest) {
                        n += 1;
                        let x = match r["x"] {
                            Value::Int(x) => x.checked_add(*add).map(Value::Int).unwrap_or(Value::Null),
                            _ => Value::Null,
                        };
                        touched.push((Some(r["x"].clone()), Some(x.clone())));
                        for (name, def) in &cols {
                            if let ColDef::Computed { udf } = def {
                                r.insert(name.clone(), compute(*udf, &x));
                            }
                        }
                        r.insert("x".into(), x);
                    }
                }
                assert_eq!(done.updated, n);
                if n > 0 {
                    self.push(next, Some(touched));
                }
            }
            Op::Delete { modulo, rest } => {
                let done = self.t.delete((col("k") % *modulo).eq(*rest)).unwrap();
                let touched = next
                    .rows
                    .iter()
                    .filter(|(k, _)| matches(**k, *modulo, *rest))
                    .map(|(_, r)| (Some(r["x"].clone()), None))
                    .collect();
                let before = next.rows.len();
                next.rows.retain(|k, _| !matches(*k, *modulo, *rest));
                next.ids.retain(|k, _| !matches(*k, *modulo, *rest));
                assert_eq!(done.deleted as usize, before - next.rows.len());
                if done.deleted > 0 {
                    self.push(next, Some(touched));
                }
            }
            Op::AddColumn { name, default } => {
                let name = NAMES[*name];
                let result = self.t.add_column(name, ColumnType::Int, *default, IfExists::Error);
                if self.has(name).is_some() {
                    assert!(result.is_err());
                    return;
                }
                result.unwrap();
                next.columns.push((name.into(), ColDef::Stored { default: Some(*default) }));
                for r in next.rows.values_mut() {
                    r.insert(name.into(), Value::Int(*default));
                }
                self.push(next, None);
            }
            Op::AddComputed { name, udf } | Op::Replace { name, udf } => {
                let name = NAMES[*name];
                let replace = matches!(op, Op::Replace { .. });
                let opts = ColumnOptions::if_exists(if replace { IfExists::Replace } else { IfExists::Error });
                let result = self.t.add_computed_column(name, expr(*udf, &self.inc), opts);
                match (self.has(name), replace) {
                    // Replacing a column with its own definition changes nothing.
                    (Some(ColDef::Computed { udf: same }), true) if same == *udf => {
                        assert_eq!(result.unwrap().version, Version(self.current().number));
                        return;
                    }
                    // A replace takes over a stored column too (its values come back on revert).
                    (None, _) | (Some(_), true) => {
                        result.unwrap();
                    }
                    _ => {
                        assert!(result.is_err());
                        return;
                    }
                }
                match next.columns.iter_mut().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = ColDef::Computed { udf: *udf },
                    None => next.columns.push((name.into(), ColDef::Computed { udf: *udf })),
                }
                for r in next.rows.values_mut() {
                    let v = compute(*udf, &r["x"]);
                    r.insert(name.into(), v);
                }
                self.push(next, None);
            }
            Op::Drop { name } => {
                let name = NAMES[*name];
                let result = self.t.drop_column(name);
                if self.has(name).is_none() {
                    assert!(result.is_err());
                    return;
                }
                result.unwrap();
                next.columns.retain(|(n, _)| n != name);
                for r in next.rows.values_mut() {
                    r.remove(name);
                }
                self.push(next, None);
            }
            Op::Rename { name } => {
                // a <-> b and p <-> q, so names stay in the pool.
                let from = NAMES[*name];
                let to = NAMES[*name ^ 1];
                let result = self.t.rename_column(from, to);
                if self.has(from).is_none() || self.has(to).is_some() {
                    assert!(result.is_err());
                    return;
                }
                result.unwrap();
                for (n, _) in next.columns.iter_mut() {
                    if n == from {
                        *n = to.into();
                    }
                }
                for r in next.rows.values_mut() {
                    if let Some(v) = r.remove(from) {
                        r.insert(to.into(), v);
                    }
                }
                self.push(next, None);
            }
            Op::Revert => {
                let result = self.t.revert();
                if self.history.len() == 1 {
                    assert!(result.is_err());
                } else {
                    self.pop();
                    assert_eq!(result.unwrap(), Version(self.current().number));
                }
            }
            Op::CreateView(threshold) => self.make_views(*threshold, IfExists::ReplaceForce),
            Op::Note { value, modulo, rest } => {
                let done = self.view.update([("note", lit(*value))], (col("k") % *modulo).eq(*rest)).unwrap();
                let latest = self.view_versions.last().unwrap().clone();
                let ids = &self.current().ids;
                let hit: Vec<i64> =
                    self.view_rows(&latest).into_keys().filter(|k| matches(*k, *modulo, *rest)).collect();
                assert_eq!(done.updated, hit.len() as u64);
                if hit.is_empty() {
                    return;
                }
                let mut notes = latest.notes.clone();
                for k in &hit {
                    notes.insert(ids[k], *value);
                }
                // The view of the view follows every update of the view's stored values.
                self.view_last += 1;
                let base = self.current().number;
                self.view_versions.push(ViewVersion { number: self.view_last, base, follows: false, notes, ..latest });
                let w_latest = self.w_versions.last().unwrap().clone();
                self.w_last += 1;
                self.w_versions.push(ViewVersion {
                    number: self.w_last,
                    base: self.view_last,
                    follows: true,
                    ..w_latest
                });
            }
            Op::RevertView => {
                let latest = self.view_versions.last().unwrap().clone();
                if latest.follows {
                    assert_eq!(self.view.revert().unwrap_err().code(), ErrorCode::InvalidArgument);
                    return;
                }
                if latest.number <= 2 {
                    return; // keeps the views' columns
                }
                self.view.revert().unwrap();
                self.view_versions.pop();
                let v_now = self.view_versions.last().unwrap().number;
                self.w_versions.retain(|w| !(w.follows && w.base == latest.number));
                for w in self.w_versions.iter_mut().filter(|w| !w.follows && w.base == latest.number) {
                    w.base = v_now;
                }
            }
            Op::Compact(keep) => {
                let report = self.t.compact(tabula::Retention::keep_versions(*keep)).unwrap();
                let gone = self.history.len() - (*keep as usize).min(self.history.len());
                self.compacted.extend(self.history.drain(..gone));
                assert_eq!(report.oldest_kept, Version(self.history[0].number));
                assert_eq!(report.versions_removed, gone as u64);
            }
            Op::RevertTo(i) => {
                let target = self.history[i % self.history.len()].number;
                assert_eq!(self.t.revert_to(Version(target)).unwrap(), Version(target));
                while self.current().number > target {
                    self.pop();
                }
            }
        }
    }

    fn read(table: &Table) -> BTreeMap<i64, BTreeMap<String, Value>> {
        table
            .select_all()
            .collect()
            .unwrap()
            .into_iter()
            .map(|r| {
                let k = r.get::<i64>("k").unwrap();
                (k, r.iter().map(|(n, v)| (n.to_string(), v.clone())).collect())
            })
            .collect()
    }

    fn check(&self, step: usize) {
        let now = self.current();
        assert_eq!(self.t.version().unwrap(), Version(now.number), "step {step}: version");
        let names: Vec<String> = self.t.describe().unwrap().columns.into_iter().map(|c| c.name).collect();
        let want: Vec<String> = now.columns.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, want, "step {step}: columns");
        assert_eq!(World::read(&self.t), now.rows, "step {step}: rows");
        // Up to three older versions, opened read-only.
        for old in self.history.iter().rev().skip(1).step_by(2).take(3) {
            let pinned = self.cat.get_table(format!("t:{}", old.number)).unwrap();
            assert_eq!(World::read(&pinned), old.rows, "step {step}: version {}", old.number);
        }
        // The views, now and at a few older versions, as they were.
        // An older version of a view that shows a version of the table that compaction
        // removed cannot be read (the table reads back to its oldest kept version only).
        type Check<'a> = (&'a dyn Fn(&ViewVersion) -> Rows, &'a dyn Fn(&ViewVersion) -> u64);
        let check_views = |name: &str, table: &Table, versions: &[ViewVersion], (rows, table_version): Check| {
            let latest = versions.last().unwrap();
            assert_eq!(table.version().unwrap(), Version(latest.number), "step {step}: version of {name}");
            assert_eq!(World::read(table), rows(latest), "step {step}: {name}");
            for old in versions.iter().rev().skip(1).take(2) {
                let pinned = self.cat.get_table(format!("{name}:{}", old.number)).unwrap();
                if table_version(old) < self.history[0].number {
                    let e = pinned.select_all().collect().unwrap_err();
                    assert_eq!(e.code(), ErrorCode::NotFound, "step {step}: {name}:{}: {e}", old.number);
                    assert!(e.to_string().contains("compacted away"), "step {step}: {e}");
                } else {
                    assert_eq!(World::read(&pinned), rows(old), "step {step}: {name}:{}", old.number);
                }
            }
        };
        let v_base = |v: &ViewVersion| v.base;
        let w_base = |w: &ViewVersion| self.view_versions.iter().rfind(|v| v.number <= w.base).map_or(0, |v| v.base);
        check_views("v", &self.view, &self.view_versions, (&|v| self.view_rows(v), &v_base));
        check_views("w", &self.w, &self.w_versions, (&|v| self.w_rows(v), &w_base));
    }

    /// The rows of a version of the view: those of the table version it shows with
    /// `x > threshold`, with `vx = x + 100` once it has it.
    fn view_rows(&self, version: &ViewVersion) -> Rows {
        let base = self.compacted.iter().chain(&self.history).rfind(|h| h.number <= version.base).unwrap();
        base.rows
            .iter()
            .filter(|(_, r)| matches!(r["x"], Value::Int(x) if x > self.threshold))
            .map(|(k, r)| {
                let mut r = r.clone();
                if version.own >= 1 {
                    let vx = match r["x"] {
                        Value::Int(x) => Value::Int(x + 100),
                        _ => Value::Null,
                    };
                    r.insert("vx".into(), vx);
                }
                if version.own >= 2 {
                    r.insert("note".into(), Value::from(version.notes.get(&base.ids[k]).copied()));
                }
                (*k, r)
            })
            .collect()
    }

    /// The rows of a version of the view of the view: those of the view version it shows
    /// with `x < W_LIMIT`, with `wx = vx + 1` once it has it.
    fn w_rows(&self, version: &ViewVersion) -> Rows {
        let shown = self.view_versions.iter().find(|v| v.number == version.base).unwrap();
        self.view_rows(shown)
            .into_iter()
            .filter(|(_, r)| matches!(r["x"], Value::Int(x) if x < W_LIMIT))
            .map(|(k, mut r)| {
                if version.own >= 1 {
                    let wx = match r["vx"] {
                        Value::Int(vx) => Value::Int(vx + 1),
                        _ => Value::Null,
                    };
                    r.insert("wx".into(), wx);
                }
                (k, r)
            })
            .collect()
    }
}

/// Rows by `k`, each by column name.
type Rows = BTreeMap<i64, BTreeMap<String, Value>>;

/// 200 cases (100 on a server, where each takes ~0.2 s), or `TABULA_MODEL_CASES`.
fn cases() -> u32 {
    let default = if crate::test_server().is_some() { 100 } else { 200 };
    std::env::var("TABULA_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn table_and_views_match_the_model(
        format_4: bool,
        copy_fills: bool,
        cast_filters: bool,
        ops in proptest::collection::vec(op(), 1..25),
    ) {
        let mut world = World::new(format_4, copy_fills, cast_filters);
        for (step, op) in ops.iter().enumerate() {
            world.apply(op);
            world.check(step);
        }
        world.cat.integrity_check().unwrap();
    }
}
