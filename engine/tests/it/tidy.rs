//! Tidy checks of the engine's sources (in the manner of rust-analyzer's `tidy.rs`): the
//! module layering has no cycle, modules name each other by their own paths (not through
//! the `lib.rs` façade, which would hide a dependency), and only `store/` names rusqlite
//! or builds SQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to (`catalog/query.rs` -> `catalog`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// The file's code lines before its tests, without comments.
fn code_lines(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

/// `crate::name` paths in a line (macros' `$crate::` excluded: they must name the façade).
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = &rest[..at];
        let after = &rest[at + "crate::".len()..];
        let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !before.ends_with('$') && !name.is_empty() {
            out.push(name);
        }
        rest = after;
    }
    out
}

fn modules() -> BTreeSet<String> {
    files(&src()).iter().map(|f| module_of(f)).filter(|m| m != "lib").collect()
}

/// `module -> the modules it names`, with where.
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let modules = modules();
    let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files(&src()) {
        let from = module_of(&file);
        if from == "lib" {
            continue;
        }
        for (n, line) in code_lines(&file) {
            for to in crate_paths(&line) {
                if to != from && modules.contains(&to) {
                    let at = format!("{}:{n}", file.strip_prefix(src()).unwrap().display());
                    edges.entry(from.clone()).or_default().entry(to).or_insert(at);
                }
            }
        }
    }
    edges
}

#[test]
fn modules_name_each_other_not_the_facade() {
    let modules = modules();
    let mut found = Vec::new();
    for file in files(&src()) {
        if module_of(&file) == "lib" {
            continue;
        }
        for (n, line) in code_lines(&file) {
            for name in crate_paths(&line) {
                if !modules.contains(&name) {
                    found.push(format!("{}:{n}: crate::{name}", file.strip_prefix(src()).unwrap().display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "use the defining module's path (the façade hides a dependency):\n{}", found.join("\n"));
}

#[test]
fn no_two_modules_depend_on_each_other() {
    let edges = graph();
    // Depth-first search for a cycle; report it with where each step imports the next.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeMap<String, String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_string());
        for to in edges.get(m).map(|e| e.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            if let Some(cycle) = visit(&to, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            let steps: Vec<String> =
                cycle.windows(2).map(|w| format!("{} -> {} ({})", w[0], w[1], edges[&w[0]][&w[1]])).collect();
            panic!("modules import each other in a circle:\n{}", steps.join("\n"));
        }
    }
}

/// SQL text in a line: a statement keyword inside a string literal.
fn has_sql(line: &str) -> bool {
    const STATEMENTS: [&str; 9] = [
        "SELECT ",
        "INSERT INTO",
        "UPDATE ",
        "DELETE FROM",
        "CREATE TABLE",
        "CREATE INDEX",
        "ALTER TABLE",
        "DROP TABLE",
        "PRAGMA ",
    ];
    line.split('"').skip(1).step_by(2).any(|literal| STATEMENTS.iter().any(|s| literal.contains(s)))
}

#[test]
fn only_the_store_touches_sqlite() {
    let mut rusqlite = Vec::new();
    let mut sql: BTreeSet<String> = BTreeSet::new();
    for file in files(&src()) {
        let rel = file.strip_prefix(src()).unwrap().display().to_string();
        if rel.starts_with("store/") {
            continue;
        }
        for (n, line) in code_lines(&file) {
            if line.contains("rusqlite") {
                rusqlite.push(format!("{rel}:{n}"));
            }
            if has_sql(&line) {
                sql.insert(rel.clone());
            }
        }
    }
    assert!(rusqlite.is_empty(), "rusqlite is named outside store/: {rusqlite:?}");
    assert!(sql.is_empty(), "SQL is built outside store/ (add a store operation instead): {sql:?}");
}
