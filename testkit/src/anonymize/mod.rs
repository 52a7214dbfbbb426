//! Anonymized copies of production data. Privacy fails closed: every stored column, of every
//! type, needs a rule, and keeping one as it is must be said ([`Rule::Keep`]); a column
//! without one stops the copy before anything is written. Pseudonyms are keyed and stable
//! (the same input gives the same output in every table and run with the same key, so joins
//! and group-bys survive; identifiers carry at least 64 keyed bits, so distinct people stay
//! distinct), formats survive, and computed columns are recomputed on the copy from the
//! anonymized inputs. Free text is scrubbed of what patterns find (emails, phones, cards,
//! IBANs, IP addresses, credentials in URLs) and of every value the copy pseudonymizes in a
//! mapped column (a customer's name written in a note becomes that customer's pseudonym).
//! Everything is transformed while it is copied: nothing original is ever written to the
//! target, so no old row version or journal page can hold it. Tables are copied at their current version (one version each, or one
//! a 10,000 rows when source and target are one handle); views and snapshots are not
//! copied (re-create them on the copy).
//!
//! ```
//! use tabula::{row, Catalog, ColumnType, IfExists, Schema};
//! use tabula_testkit::{Anonymizer, Rule};
//!
//! # fn main() -> tabula::Result<()> {
//! let prod = Catalog::in_memory()?;
//! prod.create_dir("app", IfExists::Error)?;
//! let users = prod.create_table("app/users",
//!     Schema::new().required("email", ColumnType::String).required("plan", ColumnType::String),
//!     IfExists::Error)?;
//! users.insert([row! {"email" => "ada@corp.example", "plan" => "pro"}])?;
//!
//! let staging = Catalog::in_memory()?;
//! Anonymizer::new("staging key")
//!     .rule("email", Rule::Email)
//!     .keep("plan")
//!     .copy(&prod, "app", &staging, "app")?;
//! let copy = staging.rows("app/users")?;
//! assert!(copy[0].get::<String>("email")?.contains("@example."));
//! # Ok(())
//! # }
//! ```

mod leak;
mod text;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use fake::locales::{Data, EN};
use tabula::{
    col, Catalog, ColumnDef, ColumnOptions, ColumnType, Error, ErrorCode, IfExists, Path, Recursive, Result, Row,
    Schema, TableKind, Value,
};

pub use leak::{Leak, LeakScan};
use text::{Dictionary, Kind, TextRule};

/// Rows a chunk when the source and the target share one catalog handle.
const COPY_CHUNK: usize = 10_000;

/// Rows a batch handed from the reading thread to the transforming ones.
const PIPE_CHUNK: usize = 512;

/// Threads that transform rows while one reads and one writes.
const TRANSFORM_THREADS: usize = 2;

/// Transformed chunks, put back in the order they were read.
struct InOrder {
    results: std::sync::mpsc::Receiver<(usize, Vec<Result<Row>>)>,
    waiting: BTreeMap<usize, Vec<Result<Row>>>,
    next: usize,
    current: std::vec::IntoIter<Result<Row>>,
}

impl Iterator for InOrder {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        loop {
            if let Some(row) = self.current.next() {
                return Some(row);
            }
            while !self.waiting.contains_key(&self.next) {
                let (seq, chunk) = self.results.recv().ok()?;
                self.waiting.insert(seq, chunk);
            }
            self.current = self.waiting.remove(&self.next).unwrap_or_default().into_iter();
            self.next += 1;
        }
    }
}

/// How one column is anonymized.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Copied as it is (must be written down: nothing is kept by default). Reports list
    /// every kept column.
    Keep,
    /// A pseudonymous email `u<16 hex digits>@example.<tld>` (64 keyed bits).
    Email,
    /// A pseudonymous person name (as many words as the original, up to three).
    Name,
    /// Every digit replaced, punctuation kept: `+1-555-0134` stays phone-shaped.
    Phone,
    /// A pseudonymous street address.
    Address,
    /// Free text with personal data replaced: what the patterns find (emails, phones,
    /// cards, IBANs, IP addresses, URL credentials) and every value this copy pseudonymizes
    /// in a mapped column, each by its pseudonym. Other words are kept. In Json, every key
    /// and every string.
    FreeText,
    /// Text replaced by keyed synthetic text of the same length and shape (case, digits,
    /// punctuation and spacing kept, no word of the original): for text that cannot be
    /// scrubbed with confidence.
    Synthetic,
    /// A keyed hash (hex), for identifiers that must join but not be read.
    Hash,
    /// Removed: null when the column allows it, else a placeholder of its type.
    Redact,
    /// Null (the column must be nullable).
    Null,
    /// The same value in every row.
    Constant(Value),
    /// Times and dates shifted by a keyed offset per entity (the value of `entity` in the
    /// same row), 1 to `max_days` days either way (never 0): intervals within one entity
    /// survive.
    DateShift {
        /// The column that identifies the entity (e.g. `user_id`).
        entity: String,
        /// The largest shift, in days.
        max_days: u32,
    },
    /// Numbers scaled by a keyed factor in `1 ± relative` (an Int that would come out
    /// unchanged moves by one).
    Noise {
        /// The largest relative change, e.g. 0.05.
        relative: f64,
    },
    /// Numbers rounded down to a multiple of `width`.
    Bucket {
        /// The bucket width.
        width: f64,
    },
    /// A keyed function of the value and its row, for what the built-ins do not cover; see
    /// [`Rule::custom`].
    Custom(CustomRule),
}

type CustomFn = dyn Fn(&Keyed, &Value, &Row) -> std::result::Result<Value, String> + Send + Sync;

/// A named custom rule: a keyed function of the value and its (original) row.
#[derive(Clone)]
pub struct CustomRule {
    name: String,
    f: Arc<CustomFn>,
}

impl fmt::Debug for CustomRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Custom({})", self.name)
    }
}

impl PartialEq for CustomRule {
    fn eq(&self, other: &CustomRule) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.f, &other.f)
    }
}

/// The anonymizer's key, as a custom rule sees it: keyed hashes, never the key itself.
pub struct Keyed<'a>(&'a Anonymizer);

impl Keyed<'_> {
    /// A keyed hash of `bytes` under `tag` (use one tag per purpose).
    pub fn hash(&self, tag: &str, bytes: &[u8]) -> [u8; 32] {
        self.0.hash(tag, bytes)
    }

    /// A keyed number in `[0, 1)`.
    pub fn unit(&self, tag: &str, bytes: &[u8]) -> f64 {
        self.0.unit(tag, bytes)
    }

    /// The pseudonym a built-in text rule gives `text`.
    pub fn pseudonym(&self, rule: &Rule, text: &str) -> String {
        self.0.pseudonym(rule, text)
    }
}

impl Rule {
    /// A custom rule named `name` (shown in reports): `f(keyed, value, row)` returns the
    /// value to write. It runs during the copy, on the original row, never on nulls.
    pub fn custom(
        name: &str,
        f: impl Fn(&Keyed, &Value, &Row) -> std::result::Result<Value, String> + Send + Sync + 'static,
    ) -> Rule {
        Rule::Custom(CustomRule { name: name.to_string(), f: Arc::new(f) })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::DateShift { entity, max_days } => write!(f, "DateShift({entity}, {max_days}d)"),
            Rule::Noise { relative } => write!(f, "Noise({relative})"),
            Rule::Bucket { width } => write!(f, "Bucket({width})"),
            Rule::Constant(v) => write!(f, "Constant({v})"),
            Rule::Custom(c) => write!(f, "Custom({})", c.name),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Copies tables with keyed pseudonyms; see the module docs.
#[derive(Clone)]
pub struct Anonymizer {
    key: [u8; 32],
    /// (table name relative to the copied directory, or `None` for every table; column; rule)
    rules: Vec<(Option<String>, String, Rule)>,
    sample: Option<(String, f64)>,
    limit: Option<u64>,
}

impl fmt::Debug for Anonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anonymizer").field("rules", &self.rules).field("sample", &self.sample).finish_non_exhaustive()
    }
}

/// What a copy did, table by table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AnonymizeReport {
    /// One entry a copied table.
    pub tables: Vec<TableReport>,
    /// How many values of mapped columns free text was scrubbed of (with their case forms).
    pub watched_in_text: usize,
}

impl AnonymizeReport {
    /// Every column copied as it is, as `table.column`: what a reviewer checks first.
    pub fn kept(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            for (c, rule) in &t.rules {
                if rule == "Keep" {
                    out.push(format!("{}.{c}", t.source));
                }
            }
        }
        out
    }
}

/// What a copy did to one table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableReport {
    /// The source table.
    pub source: String,
    /// The copy.
    pub target: String,
    /// Rows read from the source.
    pub rows_read: u64,
    /// Rows written to the copy (fewer when sampling or limiting).
    pub rows_written: u64,
    /// The rule of each stored column.
    pub rules: BTreeMap<String, String>,
    /// The computed columns recomputed on the copy.
    pub recomputed: Vec<String>,
}

impl Anonymizer {
    /// An anonymizer keyed by `key` (any bytes; keep it secret: the same key gives the same
    /// pseudonyms, and the output does not reveal it).
    pub fn new(key: impl AsRef<[u8]>) -> Anonymizer {
        Anonymizer {
            key: blake3::derive_key("tabula-testkit anonymizer v3 (blake3 keyed)", key.as_ref()),
            rules: Vec::new(),
            sample: None,
            limit: None,
        }
    }

    /// Applies `rule` to every column named `column`, in every table.
    pub fn rule(mut self, column: &str, rule: Rule) -> Anonymizer {
        self.rules.push((None, column.to_string(), rule));
        self
    }

    /// Applies `rule` to `column` of one table (its path relative to the copied directory);
    /// it wins over [`Anonymizer::rule`].
    pub fn table_rule(mut self, table: &str, column: &str, rule: Rule) -> Anonymizer {
        self.rules.push((Some(table.to_string()), column.to_string(), rule));
        self
    }

    /// Keeps every column named `column` as it is: shorthand for `rule(column, Rule::Keep)`.
    pub fn keep(self, column: &str) -> Anonymizer {
        self.rule(column, Rule::Keep)
    }

    /// Copies only a keyed sample of `fraction` of the values of `key_column`, the same in
    /// every table that has that column (so the sampled rows still join). Tables without
    /// the column are copied whole.
    pub fn sample(mut self, key_column: &str, fraction: f64) -> Anonymizer {
        self.sample = Some((key_column.to_string(), fraction.clamp(0.0, 1.0)));
        self
    }

    /// Copies at most `rows` rows of each table (after sampling).
    pub fn limit(mut self, rows: u64) -> Anonymizer {
        self.limit = Some(rows);
        self
    }

    fn rule_for(&self, table: &str, column: &str) -> Option<&Rule> {
        let specific = self.rules.iter().rev().find(|(t, c, _)| t.as_deref() == Some(table) && c == column);
        let general = self.rules.iter().rev().find(|(t, c, _)| t.is_none() && c == column);
        specific.or(general).map(|(_, _, r)| r)
    }

    /// 32 keyed bytes of `bytes` under `tag`: blake3 in keyed mode (a PRF under the
    /// anonymizer's derived key), over the tag, a zero byte and the bytes.
    pub(crate) fn hash(&self, tag: &str, bytes: &[u8]) -> [u8; 32] {
        // One-shot hashing of a stack buffer is several times faster than a streaming
        // `Hasher` on the short values pseudonyms are made of.
        let mut buf = [0u8; 192];
        let n = tag.len() + 1 + bytes.len();
        if n > buf.len() {
            let mut h = blake3::Hasher::new_keyed(&self.key);
            h.update(tag.as_bytes());
            h.update(&[0]);
            h.update(bytes);
            return *h.finalize().as_bytes();
        }
        buf[..tag.len()].copy_from_slice(tag.as_bytes());
        buf[tag.len() + 1..n].copy_from_slice(bytes);
        *blake3::keyed_hash(&self.key, &buf[..n]).as_bytes()
    }

    fn unit(&self, tag: &str, bytes: &[u8]) -> f64 {
        let h = self.hash(tag, bytes);
        let n = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        (n >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn pick<'a>(&self, items: &[&'a str], h: &[u8; 32], at: usize) -> &'a str {
        let n = u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]) as usize;
        items[n % items.len()]
    }

    /// The pseudonym of one text under a text rule (`Email`, `Name`, `Phone`, `Address`,
    /// `FreeText` (patterns only: the dictionary of a copy is built by `copy`), `Synthetic`,
    /// `Hash`); other rules leave it as it is.
    pub fn pseudonym(&self, rule: &Rule, text: &str) -> String {
        match rule {
            Rule::Email => {
                let h = self.hash("email", text.trim().to_lowercase().as_bytes());
                let tld = ["com", "org", "net"][usize::from(h[6]) % 3];
                format!("u{}@example.{tld}", hex(&h[..8]))
            }
            Rule::Name => {
                let h = self.hash("name", text.trim().as_bytes());
                let words = text.split_whitespace().count().clamp(1, 3);
                let mut out = vec![self.pick(EN::NAME_FIRST_NAME, &h, 0)];
                if words >= 3 {
                    out.push(self.pick(EN::NAME_FIRST_NAME, &h, 4));
                }
                if words >= 2 {
                    out.push(self.pick(EN::NAME_LAST_NAME, &h, 8));
                }
                out.join(" ")
            }
            Rule::Phone => {
                let h = self.hash("phone", text.chars().filter(char::is_ascii_digit).collect::<String>().as_bytes());
                let mut i = 0;
                text.chars()
                    .map(|c| {
                        if c.is_ascii_digit() {
                            let d = char::from(b'0' + h[i % 32] % 10);
                            i += 1;
                            d
                        } else {
                            c
                        }
                    })
                    .collect()
            }
            Rule::Address => {
                let h = self.hash("address", text.trim().as_bytes());
                let number = u16::from_le_bytes([h[12], h[13]]) % 9999 + 1;
                format!(
                    "{number} {} {}",
                    self.pick(EN::NAME_LAST_NAME, &h, 0),
                    self.pick(EN::ADDRESS_STREET_SUFFIX, &h, 4)
                )
            }
            Rule::FreeText => self.scrub(text.to_string(), &Dictionary::default()),
            Rule::Synthetic => self.synthetic(text),
            Rule::Hash => hex(&self.hash("hash", text.as_bytes())[..16]),
            _ => text.to_string(),
        }
    }

    fn apply(&self, rule: &Rule, column: &ColumnDef, value: Value, ctx: &Cell) -> std::result::Result<Value, String> {
        if value.is_null() {
            return Ok(value);
        }
        Ok(match (rule, value) {
            (Rule::Keep, v) => v,
            (Rule::Null, _) => Value::Null,
            (Rule::Constant(c), _) => c.clone(),
            (Rule::Redact, _) if column.nullable => Value::Null,
            (Rule::Redact, _) => match column.ty {
                ColumnType::String => Value::from("[redacted]"),
                ColumnType::Int => Value::Int(0),
                ColumnType::Float => Value::Float(0.0),
                ColumnType::Bool => Value::Bool(false),
                ColumnType::Timestamp => Value::Timestamp(0),
                ColumnType::Date => Value::Date(0),
                ColumnType::Json => Value::Json(serde_json::json!({})),
                ColumnType::Bytes => Value::Bytes(Vec::new()),
            },
            (Rule::Custom(c), _) => return Err(format!("custom rule '{}' runs on the whole row", c.name)),
            (Rule::FreeText, Value::String(s)) => Value::String(self.scrub(s, ctx.dictionary)),
            (Rule::FreeText, Value::Json(j)) => Value::Json(self.scrub_json(j, ctx.dictionary)),
            (Rule::Synthetic, Value::Json(j)) => Value::Json(self.synthetic_json(j)),
            (Rule::Hash, Value::Json(j)) => {
                Value::Json(serde_json::Value::String(self.pseudonym(rule, &j.to_string())))
            }
            (Rule::Hash, Value::Bytes(b)) => Value::Bytes(self.hash("hash", &b)[..16].to_vec()),
            (Rule::Hash, Value::Int(i)) => Value::Int(self.hash_int(i)),
            (r, Value::String(s)) if is_text_rule(r) => Value::String(self.pseudonym(r, &s)),
            (Rule::DateShift { max_days, .. }, v) => {
                let days = self.shift_days(ctx.entity.unwrap_or_default(), *max_days);
                match v {
                    Value::Timestamp(t) => Value::Timestamp(t.saturating_add(days * 86_400_000_000)),
                    Value::Date(d) => Value::Date(d.saturating_add(days as i32)),
                    other => {
                        return Err(format!("DateShift applies to Timestamp and Date, found {}", other.type_name()))
                    }
                }
            }
            (Rule::Noise { relative }, v) => {
                let bytes = v.to_string();
                let factor = 1.0 + relative * (2.0 * self.unit("noise", bytes.as_bytes()) - 1.0);
                match v {
                    Value::Float(f) => Value::Float(f * factor),
                    Value::Int(i) => {
                        let noisy = (i as f64 * factor).round() as i64;
                        // A small number could come out as it was: move it anyway.
                        Value::Int(if noisy != i {
                            noisy
                        } else if factor >= 1.0 {
                            i.saturating_add(1)
                        } else {
                            i - 1
                        })
                    }
                    other => return Err(format!("Noise applies to Int and Float, found {}", other.type_name())),
                }
            }
            (Rule::Bucket { width }, v) => match v {
                Value::Float(f) => Value::Float((f / width).floor() * width),
                Value::Int(i) => Value::Int(((i as f64 / width).floor() * width) as i64),
                other => return Err(format!("Bucket applies to Int and Float, found {}", other.type_name())),
            },
            (rule, v) => return Err(format!("rule {rule} does not apply to {} values", v.type_name())),
        })
    }

    pub(crate) fn hash_int(&self, i: i64) -> i64 {
        let h = self.hash("hash-int", &i.to_le_bytes());
        i64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) & i64::MAX
    }

    /// A keyed shift in days, never 0, the same for every date of one entity.
    fn shift_days(&self, entity: &str, max_days: u32) -> i64 {
        let max = u64::from(max_days.max(1));
        let h = self.hash("dateshift", entity.as_bytes());
        let n = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        let days = (n % max) as i64 + 1;
        if n >> 63 == 1 {
            -days
        } else {
            days
        }
    }

    fn scrub_json(&self, j: serde_json::Value, dictionary: &Dictionary) -> serde_json::Value {
        use serde_json::Value as J;
        match j {
            J::String(s) => J::String(self.scrub(s, dictionary)),
            J::Array(items) => J::Array(items.into_iter().map(|i| self.scrub_json(i, dictionary)).collect()),
            J::Object(m) => J::Object(
                m.into_iter().map(|(k, v)| (self.scrub(k, dictionary), self.scrub_json(v, dictionary))).collect(),
            ),
            other => other,
        }
    }

    fn synthetic_json(&self, j: serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match j {
            J::String(s) => J::String(self.synthetic(&s)),
            J::Array(items) => J::Array(items.into_iter().map(|i| self.synthetic_json(i)).collect()),
            J::Object(m) => {
                J::Object(m.into_iter().map(|(k, v)| (self.synthetic(&k), self.synthetic_json(v))).collect())
            }
            J::Number(n) => J::String(self.synthetic(&n.to_string())),
            other => other,
        }
    }

    /// Every value of a mapped column, with the pseudonym its column gives it (and the
    /// words of names, each with a keyed name), to be replaced wherever free text has it.
    fn dictionary(&self, plans: &[Plan]) -> Result<Dictionary> {
        let mut dictionary = Dictionary::default();
        for plan in plans {
            // Emails and phones in text are found by the patterns, and get the same pseudonym
            // as in their column (both rules hash a normalized form): no need to list them.
            let mapped: Vec<(&String, &Rule)> =
                plan.rules.iter().filter(|(_, r)| matches!(r, Rule::Name | Rule::Address | Rule::Hash)).collect();
            if mapped.is_empty() {
                continue;
            }
            for row in plan.table.select(mapped.iter().map(|(c, _)| col((*c).clone()))).stream()? {
                for ((_, rule), value) in mapped.iter().zip(row?.values()) {
                    match value {
                        Value::String(s) => {
                            let kind = match rule {
                                Rule::Name => TextRule::Name,
                                Rule::Address => TextRule::Address,
                                _ => TextRule::Hash,
                            };
                            dictionary.add(s, Kind::Value(kind));
                            if **rule == Rule::Name {
                                for (i, part) in s.split_whitespace().enumerate() {
                                    dictionary.add(part, if i == 0 { Kind::FirstName } else { Kind::LastName });
                                }
                            }
                        }
                        // Ids written in text.
                        Value::Int(i) => dictionary.add_id(*i),
                        _ => {}
                    }
                }
            }
        }
        Ok(dictionary)
    }

    /// Copies every table below `source_dir` of `source` into `target_dir` of `target`
    /// (created when missing), anonymized. Nothing is written unless every stored column of
    /// every table has a rule: the error lists the missing ones with their types and a
    /// suggested rule each.
    pub fn copy(
        &self,
        source: &Catalog,
        source_dir: &str,
        target: &Catalog,
        target_dir: &str,
    ) -> Result<AnonymizeReport> {
        let source_root = Path::parse(source_dir)?;
        let target_root = Path::parse(target_dir)?;
        let plans = self.plan(source, &source_root)?;
        let dictionary = self.dictionary(&plans)?;
        let mut report = AnonymizeReport { tables: Vec::new(), watched_in_text: dictionary.len() };
        let mut made = Made::default();
        for plan in plans {
            match self.copy_table(plan, &dictionary, source, target, &target_root, &mut made) {
                Ok(table) => report.tables.push(table),
                Err(e) => {
                    // A failed copy leaves the target as it was.
                    made.undo(target);
                    return Err(e);
                }
            }
        }
        Ok(report)
    }

    /// The rule of every stored column of every table below `root`; refuses (writing
    /// nothing) when a column has none or a rule does not fit its column.
    fn plan(&self, source: &Catalog, root: &Path) -> Result<Vec<Plan>> {
        let mut missing = Vec::new();
        let mut plans = Vec::new();
        for path in source.list_tables(root, Recursive::Yes)? {
            let table = source.get_table(&path)?;
            if table.kind()? != TableKind::Table {
                continue;
            }
            let relative = relative(&path, root);
            let schema = table.schema()?;
            let mut rules = BTreeMap::new();
            for c in schema.columns.iter().filter(|c| !c.is_computed()) {
                match self.rule_for(&relative, &c.name) {
                    Some(rule) => {
                        check_rule(rule, c, &schema).map_err(|why| {
                            Error::new(
                                ErrorCode::InvalidArgument,
                                format!("anonymize '{path}', column '{}': {why}", c.name),
                            )
                        })?;
                        rules.insert(c.name.clone(), rule.clone());
                    }
                    None => {
                        let sample = table.select([col(c.name.clone())]).head(20)?;
                        missing.push(format!("{relative}.{} {} (suggest {})", c.name, c.ty, suggest(c, &sample)));
                    }
                }
            }
            plans.push(Plan { path, relative, table, schema, rules });
        }
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "anonymize '{root}': these columns have no rule, and nothing is copied without one; give each a \
                     rule, or keep it as it is explicitly with .keep(..):\n  {}",
                    missing.join("\n  ")
                ),
            ));
        }
        Ok(plans)
    }

    fn copy_table(
        &self,
        plan: Plan,
        dictionary: &Dictionary,
        source: &Catalog,
        target: &Catalog,
        target_root: &Path,
        made: &mut Made,
    ) -> Result<TableReport> {
        let Plan { path, relative, table, schema, rules } = plan;
        let dest = target_root.join_relative(&relative)?;
        made.dirs.extend(ensure_dirs(target, &dest)?);
        let stored = Schema::from_columns(schema.columns.iter().filter(|c| !c.is_computed()));
        let copy = target.create_table(&dest, stored, IfExists::Error)?;
        made.tables.push(dest.clone());
        let stream = table.select(schema.columns.iter().filter(|c| !c.is_computed()).map(|c| col(c.name.clone())));
        let has_key = self.sample.as_ref().filter(|(k, _)| schema.column(k).is_some());
        let (mut read, mut written) = (0u64, 0u64);
        // Which source rows are copied (sampling, limit), with their index for error messages.
        let mut take = |row: Result<Row>| -> Option<Result<(u64, Row)>> {
            let row = match row {
                Ok(row) => row,
                Err(e) => return Some(Err(e)),
            };
            read += 1;
            if let Some((key, fraction)) = has_key {
                let v = row.value(key).map(|v| v.to_string()).unwrap_or_default();
                if self.unit("sample", v.as_bytes()) >= *fraction {
                    return None;
                }
            }
            if self.limit.is_some_and(|l| written >= l) {
                return None;
            }
            written += 1;
            Some(Ok((read - 1, row)))
        };
        let transform = |taken: Result<(u64, Row)>| -> Result<Row> {
            let (index, row) = taken?;
            self.transform(row, &schema.columns, &rules, dictionary).map_err(|why| {
                Error::new(ErrorCode::InvalidArgument, format!("anonymize '{path}', row {index}: {why}"))
            })
        };
        if source.same_handle(target) {
            // One connection cannot read a stream inside its own write: copy in chunks.
            let mut rows = stream.stream()?.filter_map(&mut take).map(transform).peekable();
            while rows.peek().is_some() {
                let chunk: Vec<Result<Row>> = rows.by_ref().take(COPY_CHUNK).collect();
                copy.insert_results(chunk)?;
            }
        } else {
            // Two connections: one thread reads, two transform, this one writes, so the copy
            // takes about the longest of these, not their sum. Rows keep their order.
            let rows = stream.stream()?;
            let (work, to_do) = std::sync::mpsc::sync_channel::<(usize, Vec<Result<(u64, Row)>>)>(4);
            let to_do = std::sync::Mutex::new(to_do);
            let (done, results) = std::sync::mpsc::sync_channel::<(usize, Vec<Result<Row>>)>(4);
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    let mut rows = rows.filter_map(&mut take).peekable();
                    let mut seq = 0;
                    while rows.peek().is_some() {
                        // The writer stopped (it failed): stop reading.
                        if work.send((seq, rows.by_ref().take(PIPE_CHUNK).collect())).is_err() {
                            break;
                        }
                        seq += 1;
                    }
                });
                for _ in 0..TRANSFORM_THREADS {
                    let (to_do, done, transform) = (&to_do, done.clone(), &transform);
                    scope.spawn(move || loop {
                        let next = to_do.lock().map_err(|_| ()).and_then(|r| r.recv().map_err(|_| ()));
                        let Ok((seq, chunk)) = next else { break };
                        if done.send((seq, chunk.into_iter().map(transform).collect())).is_err() {
                            break;
                        }
                    });
                }
                drop(done);
                copy.insert_results(InOrder {
                    results,
                    waiting: BTreeMap::new(),
                    next: 0,
                    current: Vec::new().into_iter(),
                })
            })?;
        }
        let mut recomputed = Vec::new();
        for c in schema.computed_order() {
            if let Some(computed) = &c.computed {
                copy.add_computed_column(
                    &c.name,
                    computed.expr.clone(),
                    ColumnOptions { if_exists: IfExists::Error, on_error: computed.on_error, ..Default::default() },
                )
                .map_err(|e| e.context(format_args!("recomputing '{}' on the copy of '{path}'", c.name)))?;
                recomputed.push(c.name.clone());
            }
        }
        Ok(TableReport {
            source: path.to_string(),
            target: dest.to_string(),
            rows_read: read,
            rows_written: written,
            rules: rules.into_iter().map(|(c, r)| (c, r.to_string())).collect(),
            recomputed,
        })
    }

    fn transform(
        &self,
        row: Row,
        columns: &[ColumnDef],
        rules: &BTreeMap<String, Rule>,
        dictionary: &Dictionary,
    ) -> std::result::Result<Row, String> {
        // What needs the whole original row (custom rules, date-shift entities) is read first;
        // then the values are moved out, not copied.
        let mut early: Vec<Option<std::result::Result<Value, String>>> = Vec::with_capacity(row.values().len());
        let mut entities: Vec<Option<String>> = Vec::with_capacity(row.values().len());
        for (name, value) in row.columns().iter().zip(row.values()) {
            let rule = rules.get(name).ok_or_else(|| format!("column '{name}' has no rule"))?;
            early.push(match rule {
                Rule::Custom(c) if !value.is_null() => Some((c.f)(&Keyed(self), value, &row)),
                _ => None,
            });
            entities.push(match rule {
                Rule::DateShift { entity, .. } => Some(row.value(entity).map(|e| e.to_string()).unwrap_or_default()),
                _ => None,
            });
        }
        let (names, values) = row.into_parts();
        let mut out = Vec::with_capacity(values.len());
        for (((name, value), early), entity) in names.iter().zip(values).zip(early).zip(&entities) {
            let result = match early {
                Some(result) => result,
                None => {
                    let column =
                        columns.iter().find(|c| c.name == *name).ok_or_else(|| format!("no column '{name}'"))?;
                    let rule = rules.get(name).ok_or_else(|| format!("column '{name}' has no rule"))?;
                    self.apply(rule, column, value, &Cell { dictionary, entity: entity.as_deref() })
                }
            };
            out.push(result.map_err(|why| format!("column '{name}': {why}"))?);
        }
        Ok(Row::new(names, out))
    }
}

/// What one table's copy needs: its rules, decided before anything is written.
struct Plan {
    path: Path,
    relative: String,
    table: tabula::Table,
    schema: tabula::TableSchema,
    rules: BTreeMap<String, Rule>,
}

/// What a rule may read besides the value: the copy's dictionary, the date-shift entity.
struct Cell<'a> {
    dictionary: &'a Dictionary,
    entity: Option<&'a str>,
}

fn is_text_rule(rule: &Rule) -> bool {
    matches!(
        rule,
        Rule::Email | Rule::Name | Rule::Phone | Rule::Address | Rule::FreeText | Rule::Synthetic | Rule::Hash
    )
}

fn check_rule(rule: &Rule, column: &ColumnDef, schema: &tabula::TableSchema) -> std::result::Result<(), String> {
    let ty = column.ty;
    let ok = match rule {
        Rule::Keep | Rule::Redact | Rule::Custom(_) => true,
        Rule::Null => {
            if !column.nullable {
                return Err("rule Null needs a nullable column; use Redact or Constant".into());
            }
            true
        }
        Rule::Constant(v) => {
            v.clone().coerce_to(ty).map_err(|why| format!("rule {rule} does not fit a {ty} column: {why}"))?;
            true
        }
        Rule::Email | Rule::Name | Rule::Phone | Rule::Address => ty == ColumnType::String,
        Rule::FreeText | Rule::Synthetic => matches!(ty, ColumnType::String | ColumnType::Json),
        Rule::Hash => matches!(ty, ColumnType::String | ColumnType::Json | ColumnType::Bytes | ColumnType::Int),
        Rule::DateShift { entity, .. } => {
            if schema.column(entity).is_none() {
                return Err(format!("DateShift names entity column '{entity}', which the table does not have"));
            }
            matches!(ty, ColumnType::Timestamp | ColumnType::Date)
        }
        Rule::Noise { .. } | Rule::Bucket { .. } => ty.is_numeric(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("rule {rule} does not apply to a {ty} column"))
    }
}

/// A rule suggestion from a column's name, type and a sample of its values.
fn suggest(column: &ColumnDef, sample: &[Row]) -> &'static str {
    let n = column.name.to_ascii_lowercase();
    let values: Vec<String> =
        sample.iter().filter_map(|r| r.values().first()).filter(|v| !v.is_null()).map(|v| v.to_string()).collect();
    let share = |f: &dyn Fn(&str) -> bool| values.iter().filter(|v| f(v)).count() * 2 > values.len().max(1);
    match column.ty {
        ColumnType::Bytes => return "Rule::Hash or Rule::Redact",
        ColumnType::Bool => return "Rule::Keep if it reveals nothing about a person, else Rule::Redact",
        ColumnType::Date | ColumnType::Timestamp => {
            return "Rule::DateShift { entity: <id column>, max_days: 30 }, or Rule::Keep if it is not about a person"
        }
        ColumnType::Int | ColumnType::Float => {
            return match () {
                _ if n.ends_with("id") || n.contains("ssn") || n.contains("number") => "Rule::Hash",
                _ => "Rule::Noise { relative: 0.05 } or Rule::Bucket { width: .. }, or Rule::Keep",
            }
        }
        _ => {}
    }
    match () {
        _ if n.contains("email") || share(&|v| v.contains('@') && !v.contains(' ')) => "Rule::Email",
        _ if n.contains("phone") || share(&|v| v.chars().filter(char::is_ascii_digit).count() >= 7 && v.len() < 24) => {
            "Rule::Phone"
        }
        _ if n.contains("name") || n.contains("author") => "Rule::Name",
        _ if n.contains("address") || n.contains("street") => "Rule::Address",
        _ if n.ends_with("id") || n.contains("token") || n.contains("key") => "Rule::Hash",
        _ if column.ty == ColumnType::Json || share(&|v| v.len() > 40 && v.contains(' ')) => {
            "Rule::FreeText, or Rule::Synthetic"
        }
        _ => "Rule::Keep if it holds no personal data, else Rule::Hash",
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn relative(path: &Path, root: &Path) -> String {
    let text = path.to_string();
    let root = root.to_string();
    if root.is_empty() {
        text
    } else {
        text.strip_prefix(&format!("{root}/")).unwrap_or(&text).to_string()
    }
}

/// Creates the missing directories above `table`; returns those it created.
fn ensure_dirs(catalog: &Catalog, table: &Path) -> Result<Vec<Path>> {
    let mut dirs: Vec<Path> = table.ancestors().collect();
    dirs.sort_by_key(Path::depth);
    let mut made = Vec::new();
    for dir in dirs {
        match catalog.create_dir(&dir, IfExists::Error) {
            Ok(()) => made.push(dir),
            Err(e) if e.code() == ErrorCode::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(made)
}

/// What a copy created in the target, to drop again when it fails.
#[derive(Default)]
struct Made {
    tables: Vec<Path>,
    dirs: Vec<Path>,
}

impl Made {
    fn undo(self, target: &Catalog) {
        // Best effort: the error that stopped the copy is the one to report.
        for t in self.tables.iter().rev() {
            let _ = target.drop_table(t, tabula::Force::Yes);
        }
        for d in self.dirs.iter().rev() {
            let _ = target.drop_dir(d, tabula::Force::Yes);
        }
    }
}
