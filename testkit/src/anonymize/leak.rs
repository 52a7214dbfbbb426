//! The leak scan: take original values from production, search every byte of what a copy
//! produced (the catalog file, its `-wal` and `-shm`, reports) for them. It checks the whole
//! pipeline, not only the anonymizer: an old row version left in a journal, a report quoting
//! production text, a rule that keeps what it should not.
//!
//! What is looked for, per column (at most `per_column` values each, 6 bytes or longer, since
//! shorter ones occur by chance): the text form of every value a rule changes (`Keep`,
//! `Bucket`, `Constant`, `Null` and `Redact` are not looked for: they keep or drop on
//! purpose); for free text, what the patterns find in it and the words of mapped names. A
//! value that is also a possible pseudonym (a name from the pseudonym lists) is not looked
//! for, since the copy may contain it for someone else; the scan counts those as skipped.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path as FsPath;

use aho_corasick::AhoCorasick;
use fake::locales::{Data, EN};
use tabula::{col, Catalog, Error, ErrorCode, Path, Result, Value};

use super::{text, Anonymizer, Rule};

/// Values shorter than this are not looked for: they occur by chance.
const MIN_LEN: usize = 6;

/// What a [`LeakScan`] found for one column (never the value itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Leak {
    /// `table.column` in production.
    pub column: String,
    /// How many of its sampled values were found.
    pub values: usize,
    /// Where.
    pub outputs: Vec<String>,
}

/// The result of [`Anonymizer::leak_scan`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeakScan {
    /// Original values looked for.
    pub checked: usize,
    /// Values not looked for because a pseudonym may equal them (common names).
    pub skipped: usize,
    /// What was searched, with sizes in bytes.
    pub outputs: Vec<(String, u64)>,
    /// Columns whose values were found: empty when nothing leaked.
    pub found: Vec<Leak>,
}

impl LeakScan {
    /// True when no value was found.
    pub fn passed(&self) -> bool {
        self.found.is_empty()
    }
}

impl fmt::Display for LeakScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let found: usize = self.found.iter().map(|l| l.values).sum();
        write!(f, "leak scan: {} values checked in {} outputs, {found} found", self.checked, self.outputs.len())?;
        for l in &self.found {
            write!(f, "; {} value(s) of {} in {}", l.values, l.column, l.outputs.join(", "))?;
        }
        Ok(())
    }
}

impl Anonymizer {
    /// Samples original values of every column below `source_dir` that this anonymizer
    /// changes and searches every byte of `files` (missing ones are skipped) and `texts`
    /// (name, content) for them. See the module docs for what is looked for.
    pub fn leak_scan(
        &self,
        source: &Catalog,
        source_dir: &str,
        per_column: usize,
        files: &[&FsPath],
        texts: &[(&str, &str)],
    ) -> Result<LeakScan> {
        let plans = self.plan(source, &Path::parse(source_dir)?)?;
        let possible: HashSet<&str> = EN::NAME_FIRST_NAME.iter().chain(EN::NAME_LAST_NAME).copied().collect();
        let mut needles: Vec<String> = Vec::new();
        let mut owner: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut skipped = 0;
        for plan in &plans {
            for (name, rule) in &plan.rules {
                if matches!(rule, Rule::Keep | Rule::Bucket { .. } | Rule::Constant(_) | Rule::Null | Rule::Redact) {
                    continue;
                }
                let label = format!("{}.{name}", plan.relative);
                let mut taken = 0;
                for row in plan.table.select([col(name.clone())]).stream()? {
                    if taken >= per_column {
                        break;
                    }
                    let Some(value) = row?.into_values().into_iter().next() else { continue };
                    let mut pieces = Vec::new();
                    originals(rule, &value, &mut pieces);
                    if pieces.is_empty() {
                        continue;
                    }
                    taken += 1;
                    for piece in pieces {
                        if piece.len() < MIN_LEN || !seen.insert(piece.clone()) {
                            continue;
                        }
                        if piece.split_whitespace().all(|w| possible.contains(w)) {
                            skipped += 1;
                            continue;
                        }
                        needles.push(piece);
                        owner.push(label.clone());
                    }
                }
            }
        }
        let mut scan = LeakScan { checked: needles.len(), skipped, outputs: Vec::new(), found: Vec::new() };
        if needles.is_empty() {
            return Ok(scan);
        }
        let matcher = AhoCorasick::new(&needles)
            .map_err(|e| Error::new(ErrorCode::InvalidArgument, format!("leak scan: cannot index the values: {e}")))?;
        let mut hits: BTreeMap<String, (HashSet<usize>, Vec<String>)> = BTreeMap::new();
        let mut note = |output: &str, needle: usize| {
            let entry = hits.entry(owner[needle].clone()).or_default();
            entry.0.insert(needle);
            if !entry.1.iter().any(|o| o == output) {
                entry.1.push(output.to_string());
            }
        };
        for file in files {
            let Ok(handle) = std::fs::File::open(file) else { continue };
            let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
            let name = file.display().to_string();
            let reader = std::io::BufReader::with_capacity(1 << 20, handle);
            for m in matcher.stream_find_iter(reader) {
                let m = m.map_err(|e| Error::new(ErrorCode::Storage, format!("leak scan: reading '{name}': {e}")))?;
                note(&name, m.pattern().as_usize());
            }
            scan.outputs.push((name, size));
        }
        for (name, content) in texts {
            for m in matcher.find_iter(content) {
                note(name, m.pattern().as_usize());
            }
            scan.outputs.push((name.to_string(), content.len() as u64));
        }
        scan.found = hits
            .into_iter()
            .map(|(column, (values, outputs))| Leak { column, values: values.len(), outputs })
            .collect();
        Ok(scan)
    }
}

/// The original pieces of `value` a rule must not let through.
fn originals(rule: &Rule, value: &Value, out: &mut Vec<String>) {
    match (rule, value) {
        (_, Value::Null) => {}
        (Rule::FreeText, Value::String(s)) => found_in(s, out),
        (Rule::FreeText, Value::Json(j)) => json_strings(j, &mut |s| found_in(s, out)),
        (Rule::Name, Value::String(s)) => {
            out.push(s.trim().to_string());
            out.extend(s.split_whitespace().map(str::to_string));
        }
        (_, Value::String(s)) => out.push(s.trim().to_string()),
        (_, Value::Json(j)) => json_strings(j, &mut |s| out.push(s.to_string())),
        (_, Value::Bytes(_)) | (_, Value::Bool(_)) => {}
        (_, other) => out.push(other.to_string()),
    }
}

fn found_in(text: &str, out: &mut Vec<String>) {
    out.extend(text::find(text).into_iter().map(|(s, e, _)| text[s..e].to_string()));
}

fn json_strings(j: &serde_json::Value, f: &mut dyn FnMut(&str)) {
    match j {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(items) => items.iter().for_each(|i| json_strings(i, f)),
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                f(k);
                json_strings(v, f);
            }
        }
        _ => {}
    }
}
