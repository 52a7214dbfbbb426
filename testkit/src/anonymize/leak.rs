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
        self.scan(source, source_dir, per_column, |search| {
            for file in files {
                let Ok(handle) = std::fs::File::open(file) else { continue };
                let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
                let name = file.display().to_string();
                search.reader(&name, std::io::BufReader::with_capacity(1 << 20, handle), size)?;
            }
            for (name, content) in texts {
                search.text(name, content);
            }
            Ok(())
        })
    }

    /// [`Anonymizer::leak_scan`] of a copy made into a catalog on a PostgreSQL server: every
    /// value of every table of the schema `url` connects to (table rows, their old versions,
    /// metadata, remembered results), each cast to text, is searched, and `texts`. Each table
    /// is an output named `<server>/<table>`.
    pub fn leak_scan_on_server(
        &self,
        source: &Catalog,
        source_dir: &str,
        per_column: usize,
        url: &str,
        texts: &[(&str, &str)],
    ) -> Result<LeakScan> {
        let shown = tabula::redacted_url(url);
        let fail = |e: postgres::Error| {
            let detail = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
            Error::new(ErrorCode::Storage, format!("leak scan of '{shown}': {detail}"))
        };
        self.scan(source, source_dir, per_column, |search| {
            let mut client = tabula::connect_server(url)?;
            let tables = client
                .query(
                    "SELECT c.relname::text, array_agg(quote_ident(a.attname::text) ORDER BY a.attnum)
                     FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                     WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
                       AND a.attnum > 0 AND NOT a.attisdropped
                     GROUP BY c.relname ORDER BY c.relname",
                    &[],
                )
                .map_err(fail)?;
            for table in tables {
                let (name, columns): (String, Vec<String>) = (table.get(0), table.get(1));
                let cast: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
                let sql = format!("SELECT {} FROM {}", cast.join(", "), name);
                let output = format!("{shown}/{name}");
                let mut bytes = 0u64;
                // Row by row as the server sends them: a copy of production may not fit in memory.
                let mut rows = client.query_raw(&sql, std::iter::empty::<&str>()).map_err(fail)?;
                while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows).map_err(fail)? {
                    for i in 0..row.len() {
                        if let Some(text) = row.try_get::<_, Option<&str>>(i).map_err(fail)? {
                            bytes += text.len() as u64;
                            search.value(&output, text);
                        }
                    }
                }
                search.outputs.push((output, bytes));
            }
            for (name, content) in texts {
                search.text(name, content);
            }
            Ok(())
        })
    }

    /// Samples the needles (see the module docs), then has `search` look through the outputs.
    fn scan(
        &self,
        source: &Catalog,
        source_dir: &str,
        per_column: usize,
        look: impl FnOnce(&mut Search) -> Result<()>,
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
        let mut search = Search { matcher, owner, hits: BTreeMap::new(), outputs: Vec::new() };
        look(&mut search)?;
        scan.outputs = search.outputs;
        scan.found = search
            .hits
            .into_iter()
            .map(|(column, (values, outputs))| Leak { column, values: values.len(), outputs })
            .collect();
        Ok(scan)
    }
}

/// What a leak scan looks for, and what it found where.
struct Search {
    matcher: AhoCorasick,
    /// The column (`table.column`) of each needle.
    owner: Vec<String>,
    /// By column: the needles found, and where.
    hits: BTreeMap<String, (HashSet<usize>, Vec<String>)>,
    /// What was searched, with sizes in bytes.
    outputs: Vec<(String, u64)>,
}

impl Search {
    fn note(&mut self, output: &str, needle: usize) {
        let entry = self.hits.entry(self.owner[needle].clone()).or_default();
        entry.0.insert(needle);
        if !entry.1.iter().any(|o| o == output) {
            entry.1.push(output.to_string());
        }
    }

    /// Searches every byte `reader` gives (output `name`, `size` bytes).
    fn reader(&mut self, name: &str, reader: impl std::io::Read, size: u64) -> Result<()> {
        let found: Vec<usize> = self
            .matcher
            .stream_find_iter(reader)
            .map(|m| {
                m.map(|m| m.pattern().as_usize())
                    .map_err(|e| Error::new(ErrorCode::Storage, format!("leak scan: reading '{name}': {e}")))
            })
            .collect::<Result<_>>()?;
        for needle in found {
            self.note(name, needle);
        }
        self.outputs.push((name.to_string(), size));
        Ok(())
    }

    /// Searches one value of output `name` (counted by the caller).
    fn value(&mut self, name: &str, content: &str) {
        let found: Vec<usize> = self.matcher.find_iter(content).map(|m| m.pattern().as_usize()).collect();
        for needle in found {
            self.note(name, needle);
        }
    }

    /// Searches `content`, an output of its own.
    fn text(&mut self, name: &str, content: &str) {
        self.value(name, content);
        self.outputs.push((name.to_string(), content.len() as u64));
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
