//! Anonymized copies of production data: every text, JSON or bytes column is mapped by an
//! explicit rule (or explicitly kept), pseudonyms are keyed and stable (the same input gives
//! the same output in every table and run with the same key, so joins and group-bys
//! survive), formats survive, and computed columns are recomputed on the copy from the
//! anonymized inputs. Tables are copied at their current version (one version each, or one
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
//! assert!(copy[0].get::<String>("email")?.ends_with("@example.com"));
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use fake::locales::{Data, EN};
use regex::Regex;
use tabula::{
    col, Catalog, ColumnDef, ColumnOptions, ColumnType, Error, ErrorCode, IfExists, Path, Recursive, Result, Row,
    Schema, TableKind, Value,
};

/// Emails and phone numbers inside free text (constant patterns, compiled once).
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}").expect("the email pattern is valid")
});
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\d[\d\-. ()]{5,}\d").expect("the phone pattern is valid"));

/// Rows a chunk when the source and the target share one catalog handle.
const COPY_CHUNK: usize = 10_000;

/// How one column is anonymized.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Copied as it is (must be written down: nothing is kept by default).
    Keep,
    /// A pseudonymous email `u<hex>@example.<tld>`.
    Email,
    /// A pseudonymous person name (as many words as the original, up to three).
    Name,
    /// Every digit replaced, punctuation kept: `+1-555-0134` stays phone-shaped.
    Phone,
    /// A pseudonymous street address.
    Address,
    /// Free text with embedded emails and phone numbers replaced by their pseudonyms (in
    /// Json, every string inside). Other words are kept.
    FreeText,
    /// A keyed hash (hex), for identifiers that must join but not be read.
    Hash,
    /// Removed: null when the column allows it, else a placeholder of its type.
    Redact,
    /// Times and dates shifted by a keyed offset per entity (the value of `entity` in the
    /// same row), up to `max_days` either way: intervals within one entity survive.
    DateShift {
        /// The column that identifies the entity (e.g. `user_id`).
        entity: String,
        /// The largest shift, in days.
        max_days: u32,
    },
    /// Numbers scaled by a keyed factor in `1 ± relative`.
    Noise {
        /// The largest relative change, e.g. 0.05.
        relative: f64,
    },
    /// Numbers rounded down to a multiple of `width`.
    Bucket {
        /// The bucket width.
        width: f64,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::DateShift { entity, max_days } => write!(f, "DateShift({entity}, {max_days}d)"),
            Rule::Noise { relative } => write!(f, "Noise({relative})"),
            Rule::Bucket { width } => write!(f, "Bucket({width})"),
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
            key: blake3::derive_key("tabula-testkit anonymizer v1", key.as_ref()),
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

    fn hash(&self, tag: &str, bytes: &[u8]) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(tag.as_bytes());
        hasher.update(&[0]);
        hasher.update(bytes);
        *hasher.finalize().as_bytes()
    }

    fn unit(&self, tag: &str, bytes: &[u8]) -> f64 {
        let h = self.hash(tag, bytes);
        let n = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        (n >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&self, items: &[&'a str], h: &[u8; 32], at: usize) -> &'a str {
        let n = u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]) as usize;
        items[n % items.len()]
    }

    /// The pseudonym of one text under a text rule (`Email`, `Name`, `Phone`, `Address`,
    /// `FreeText`, `Hash`); other rules leave it as it is.
    pub fn pseudonym(&self, rule: &Rule, text: &str) -> String {
        match rule {
            Rule::Email => {
                let h = self.hash("email", text.trim().to_lowercase().as_bytes());
                let tld = ["com", "org", "net"][usize::from(h[6]) % 3];
                format!("u{}@example.{tld}", hex(&h[..5]))
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
            Rule::FreeText => {
                let text = EMAIL.replace_all(text, |m: &regex::Captures| self.pseudonym(&Rule::Email, &m[0]));
                PHONE
                    .replace_all(&text, |m: &regex::Captures| {
                        let digits = m[0].chars().filter(char::is_ascii_digit).count();
                        if digits >= 7 {
                            self.pseudonym(&Rule::Phone, &m[0])
                        } else {
                            m[0].to_string()
                        }
                    })
                    .into_owned()
            }
            Rule::Hash => hex(&self.hash("hash", text.as_bytes())[..16]),
            _ => text.to_string(),
        }
    }

    fn apply(
        &self,
        rule: &Rule,
        column: &ColumnDef,
        value: Value,
        entity_value: Option<&str>,
    ) -> std::result::Result<Value, String> {
        if value.is_null() {
            return Ok(value);
        }
        Ok(match (rule, value) {
            (Rule::Keep, v) => v,
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
            (Rule::FreeText, Value::Json(j)) => Value::Json(self.scrub_json(j)),
            (Rule::Hash, Value::Json(j)) => {
                Value::Json(serde_json::Value::String(self.pseudonym(rule, &j.to_string())))
            }
            (Rule::Hash, Value::Bytes(b)) => Value::Bytes(self.hash("hash", &b)[..16].to_vec()),
            (Rule::Hash, Value::Int(i)) => {
                let h = self.hash("hash-int", &i.to_le_bytes());
                Value::Int(i64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) & i64::MAX)
            }
            (r, Value::String(s)) if is_text_rule(r) => Value::String(self.pseudonym(r, &s)),
            (Rule::DateShift { max_days, .. }, v) => {
                // The entity's value in this row, read by the caller.
                let key = entity_value.unwrap_or_default();
                let span = u64::from(*max_days) * 2 + 1;
                let h = self.hash("dateshift", key.as_bytes());
                let days = (u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) % span) as i64
                    - i64::from(*max_days);
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
                    Value::Int(i) => Value::Int((i as f64 * factor).round() as i64),
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

    fn scrub_json(&self, j: serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match j {
            J::String(s) => J::String(self.pseudonym(&Rule::FreeText, &s)),
            J::Array(items) => J::Array(items.into_iter().map(|i| self.scrub_json(i)).collect()),
            J::Object(m) => J::Object(m.into_iter().map(|(k, v)| (k, self.scrub_json(v))).collect()),
            other => other,
        }
    }

    /// Copies every table below `source_dir` of `source` into `target_dir` of `target`
    /// (created when missing), anonymized. Nothing is written unless every text, Json and
    /// Bytes column has a rule: the error lists the missing ones with a suggested rule each.
    pub fn copy(
        &self,
        source: &Catalog,
        source_dir: &str,
        target: &Catalog,
        target_dir: &str,
    ) -> Result<AnonymizeReport> {
        let source_root = Path::parse(source_dir)?;
        let target_root = Path::parse(target_dir)?;
        let mut tables = Vec::new();
        for path in source.list_tables(&source_root, Recursive::Yes)? {
            let table = source.get_table(&path)?;
            if table.kind()? == TableKind::Table {
                let relative = relative(&path, &source_root);
                tables.push((path, relative, table));
            }
        }
        // Check every table before writing anything.
        let mut missing = Vec::new();
        let mut plans = Vec::new();
        for (path, relative, table) in &tables {
            let schema = table.schema()?;
            let mut rules = BTreeMap::new();
            for c in schema.columns.iter().filter(|c| !c.is_computed()) {
                match self.rule_for(relative, &c.name) {
                    Some(rule) => {
                        check_rule(rule, c, &schema).map_err(|why| {
                            Error::new(
                                ErrorCode::InvalidArgument,
                                format!("anonymize '{path}', column '{}': {why}", c.name),
                            )
                        })?;
                        rules.insert(c.name.clone(), rule.clone());
                    }
                    None if matches!(c.ty, ColumnType::String | ColumnType::Json | ColumnType::Bytes) => {
                        let sample = table.select([col(c.name.clone())]).head(20)?;
                        missing.push(format!("{relative}.{} (suggest {})", c.name, suggest(c, &sample)));
                    }
                    None => {
                        rules.insert(c.name.clone(), Rule::Keep);
                    }
                }
            }
            plans.push((path.clone(), relative.clone(), table.clone(), schema, rules));
        }
        if !missing.is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!(
                    "anonymize '{source_root}': these columns have no rule; give each a rule, or keep it explicitly with .keep(..):\n  {}",
                    missing.join("\n  ")
                ),
            ));
        }
        let mut report = AnonymizeReport { tables: Vec::new() };
        for (path, relative, table, schema, rules) in plans {
            let dest = target_root.join_path(&relative)?;
            ensure_dirs(target, &dest)?;
            let stored = Schema::from_columns(schema.columns.iter().filter(|c| !c.is_computed()));
            let copy = target.create_table(&dest, stored, IfExists::Error)?;
            let mut read = 0u64;
            let mut written = 0u64;
            let stream = table.select(schema.columns.iter().filter(|c| !c.is_computed()).map(|c| col(c.name.clone())));
            let has_key = self.sample.as_ref().filter(|(k, _)| schema.column(k).is_some());
            let rows = stream.stream()?.filter_map(|row| {
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
                Some(self.transform(row, &schema.columns, &rules).map_err(|why| {
                    Error::new(ErrorCode::InvalidArgument, format!("anonymize '{path}', row {}: {why}", read - 1))
                }))
            });
            if source.same_handle(target) {
                // One connection cannot read a stream inside its own write: copy in chunks.
                let mut rows = rows.peekable();
                while rows.peek().is_some() {
                    let chunk: Vec<Result<Row>> = rows.by_ref().take(COPY_CHUNK).collect();
                    copy.insert_results(chunk)?;
                }
            } else {
                copy.insert_results(rows)?;
            }
            let mut recomputed = Vec::new();
            for c in schema.computed_order() {
                if let Some(computed) = &c.computed {
                    copy.add_computed_column(
                        &c.name,
                        computed.expr.clone(),
                        ColumnOptions { if_exists: IfExists::Error, on_error: computed.on_error },
                    )
                    .map_err(|e| e.context(format_args!("recomputing '{}' on the copy of '{path}'", c.name)))?;
                    recomputed.push(c.name.clone());
                }
            }
            report.tables.push(TableReport {
                source: path.to_string(),
                target: dest.to_string(),
                rows_read: read,
                rows_written: written,
                rules: rules.into_iter().map(|(c, r)| (c, r.to_string())).collect(),
                recomputed,
            });
        }
        Ok(report)
    }

    fn transform(
        &self,
        row: Row,
        columns: &[ColumnDef],
        rules: &BTreeMap<String, Rule>,
    ) -> std::result::Result<Row, String> {
        // The entities of date shifts are read before the row's values are taken apart.
        let mut entities: Vec<Option<String>> = Vec::with_capacity(row.columns().len());
        for name in row.columns() {
            entities.push(match rules.get(name) {
                Some(Rule::DateShift { entity, .. }) => {
                    Some(row.value(entity).map(|e| e.to_string()).unwrap_or_default())
                }
                _ => None,
            });
        }
        let (names, values) = row.into_parts();
        let mut out = Vec::with_capacity(values.len());
        for ((name, value), entity) in names.iter().zip(values).zip(&entities) {
            let column = columns.iter().find(|c| c.name == *name).ok_or_else(|| format!("no column '{name}'"))?;
            let rule = rules.get(name).unwrap_or(&Rule::Keep);
            out.push(
                self.apply(rule, column, value, entity.as_deref()).map_err(|why| format!("column '{name}': {why}"))?,
            );
        }
        Ok(Row::new(names, out))
    }
}

fn is_text_rule(rule: &Rule) -> bool {
    matches!(rule, Rule::Email | Rule::Name | Rule::Phone | Rule::Address | Rule::FreeText | Rule::Hash)
}

fn check_rule(rule: &Rule, column: &ColumnDef, schema: &tabula::TableSchema) -> std::result::Result<(), String> {
    let ty = column.ty;
    let ok = match rule {
        Rule::Keep | Rule::Redact => true,
        Rule::Email | Rule::Name | Rule::Phone | Rule::Address => ty == ColumnType::String,
        Rule::FreeText => matches!(ty, ColumnType::String | ColumnType::Json),
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

/// A rule suggestion from a column's name and a sample of its values.
fn suggest(column: &ColumnDef, sample: &[Row]) -> &'static str {
    let n = column.name.to_ascii_lowercase();
    let values: Vec<String> =
        sample.iter().filter_map(|r| r.values().first()).filter(|v| !v.is_null()).map(|v| v.to_string()).collect();
    let share = |f: &dyn Fn(&str) -> bool| values.iter().filter(|v| f(v)).count() * 2 > values.len().max(1);
    match () {
        _ if column.ty == ColumnType::Bytes => "Rule::Hash or Rule::Redact",
        _ if n.contains("email") || share(&|v| v.contains('@') && !v.contains(' ')) => "Rule::Email",
        _ if n.contains("phone") || share(&|v| v.chars().filter(char::is_ascii_digit).count() >= 7 && v.len() < 24) => {
            "Rule::Phone"
        }
        _ if n.contains("name") || n.contains("author") => "Rule::Name",
        _ if n.contains("address") || n.contains("street") => "Rule::Address",
        _ if n.ends_with("id") || n.contains("token") || n.contains("key") => "Rule::Hash",
        _ if column.ty == ColumnType::Json || share(&|v| v.len() > 40 && v.contains(' ')) => "Rule::FreeText",
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

trait JoinPath {
    fn join_path(&self, relative: &str) -> Result<Path>;
}

impl JoinPath for Path {
    fn join_path(&self, relative: &str) -> Result<Path> {
        let mut out = self.clone();
        for part in relative.split('/') {
            out = out.join(part)?;
        }
        Ok(out)
    }
}

fn ensure_dirs(catalog: &Catalog, table: &Path) -> Result<()> {
    let mut dirs: Vec<Path> = table.ancestors().collect();
    dirs.sort_by_key(Path::depth);
    for dir in dirs {
        catalog.create_dir(&dir, IfExists::Ignore)?;
    }
    Ok(())
}
