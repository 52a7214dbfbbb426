//! Synthetic rows from a table's schema: realistic values chosen by column name and type
//! (word lists from `fake`), a null ratio for nullable columns, per-column overrides.
//!
//! Deterministic: every column draws from its own ChaCha8 stream seeded from (seed, column
//! name), so the same seed gives the same rows on every platform and run, and adding a
//! column does not change the others. `fake` is pinned to one exact version (its word lists
//! are data); a golden snapshot test pins the first rows of a seed.
//!
//! ```
//! use tabula::{Catalog, ColumnType, IfExists, Schema, Value};
//! use tabula_testkit::{Gen, Synth};
//!
//! # fn main() -> tabula::Result<()> {
//! let catalog = Catalog::in_memory()?;
//! let users = catalog.create_table("users", Schema::new()
//!     .required("user_id", ColumnType::Int)      // unique: 1, 2, 3, ...
//!     .required("email", ColumnType::String)     // a realistic email
//!     .nullable("bio", ColumnType::String)       // sentences, null 10% of the time
//!     .required("plan", ColumnType::String)
//!     .required("signed_up_at", ColumnType::Timestamp),
//!     IfExists::Error)?;
//! Synth::new(42)
//!     .column("plan", Gen::choice([("free", 9), ("pro", 1)]))
//!     .fill(&users, 1_000)?;
//! assert_eq!(users.count()?, 1_000);
//! // The same seed gives the same rows, always.
//! let again: Vec<_> = Synth::new(42).rows(&users.schema()?, 3).collect();
//! assert_eq!(again[0].value("user_id"), Some(&Value::Int(1)));
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use fake::locales::{Data, EN};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tabula::{ColumnDef, ColumnType, Result, Row, Table, TableSchema, Value, WriteResult};

/// A closure generator: the column's random stream and the row index give the value.
pub type GenFn = Arc<dyn Fn(&mut ChaCha8Rng, u64) -> Value + Send + Sync>;

/// A value generator for one column.
#[derive(Clone)]
pub enum Gen {
    /// Integers in `lo..=hi`.
    Range(i64, i64),
    /// Floats in `lo..hi`.
    FloatRange(f64, f64),
    /// One of the values, with integer weights.
    Choice(Vec<(Value, u32)>),
    /// A string from a small pattern language: `[A-Z]`, `[a-z]`, `[0-9]` or `\d`, an
    /// optional `{n}` repeat, and literal characters: `"[A-Z]{3}-[0-9]{4}"`.
    Pattern(String),
    /// Always this value.
    Const(Value),
    /// Words of lorem text, `min..=max` of them.
    Words(usize, usize),
    /// A closure of the column's random stream and the row index.
    With(GenFn),
    /// Text of one to three sentences drawn from a corpus the user gives (real-looking
    /// notes, reviews, anonymized production text), so a UDF reading it has something to
    /// react to: lorem filler gives a sentiment model nothing to see.
    Corpus(Arc<[String]>),
}

impl std::fmt::Debug for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gen::With(_) => f.write_str("With(..)"),
            Gen::Range(a, b) => write!(f, "Range({a}, {b})"),
            Gen::FloatRange(a, b) => write!(f, "FloatRange({a}, {b})"),
            Gen::Choice(c) => write!(f, "Choice({c:?})"),
            Gen::Pattern(p) => write!(f, "Pattern({p:?})"),
            Gen::Const(v) => write!(f, "Const({v})"),
            Gen::Words(a, b) => write!(f, "Words({a}, {b})"),
            Gen::Corpus(c) => write!(f, "Corpus({} sentences)", c.len()),
        }
    }
}

impl Gen {
    /// A closure generator: `Gen::with(|rng, i| Value::from(i as i64 * 2))`.
    pub fn with(f: impl Fn(&mut ChaCha8Rng, u64) -> Value + Send + Sync + 'static) -> Gen {
        Gen::With(Arc::new(f))
    }

    /// Text from a corpus: `Gen::corpus(["Arrived late.", "Great service!"])`.
    pub fn corpus<S: Into<String>>(sentences: impl IntoIterator<Item = S>) -> Gen {
        Gen::Corpus(sentences.into_iter().map(Into::into).collect())
    }

    /// Text in the shape of the texts of `column` in `table` (for example an anonymized
    /// copy of production): a corpus of up to `limit` of them.
    pub fn corpus_from(table: &Table, column: &str, limit: u64) -> Result<Gen> {
        let rows = table.select([tabula::col(column)]).where_(tabula::col(column).is_not_null()).head(limit)?;
        let texts: Vec<String> = rows.iter().filter_map(|r| r.get::<String>(column).ok()).collect();
        Ok(Gen::corpus(texts))
    }

    /// Weighted choices: `Gen::choice([("draft", 1), ("published", 3)])`.
    pub fn choice<V: Into<Value>>(items: impl IntoIterator<Item = (V, u32)>) -> Gen {
        Gen::Choice(items.into_iter().map(|(v, w)| (v.into(), w)).collect())
    }
}

/// What a column's name and type say it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    FirstName,
    LastName,
    FullName,
    Phone,
    Street,
    City,
    Country,
    Zip,
    Company,
    Url,
    Title,
    Text,
    Id,
    /// A birth date: 18 to 90 years before the reference day.
    BirthDate,
    /// A money amount: log-normal, most between 5 and 500, a few in the thousands.
    Amount,
    /// An age in years, 18 to 90.
    Age,
    /// A small count (quantity), mostly 1 to 3.
    Quantity,
    Plain,
}

fn kind_of(name: &str, ty: ColumnType) -> Kind {
    let n = name.to_ascii_lowercase();
    let has = |w: &str| n.contains(w);
    if n == "id" || n.ends_with("_id") {
        return Kind::Id;
    }
    if ty != ColumnType::String {
        return match ty {
            ColumnType::Date | ColumnType::Timestamp if has("birth") || has("born") || n == "dob" => Kind::BirthDate,
            ColumnType::Int | ColumnType::Float
                if ["amount", "price", "total", "salary", "cost", "revenue", "income", "balance", "fee"]
                    .iter()
                    .any(|w| has(w)) =>
            {
                Kind::Amount
            }
            ColumnType::Int if n == "age" || n.ends_with("_age") => Kind::Age,
            ColumnType::Int if has("quantity") || n == "qty" || has("count") => Kind::Quantity,
            _ => Kind::Plain,
        };
    }
    match () {
        _ if has("email") => Kind::Email,
        _ if has("first_name") || n == "first" => Kind::FirstName,
        _ if has("last_name") || n == "surname" => Kind::LastName,
        _ if has("name") || has("author") => Kind::FullName,
        _ if has("phone") || has("mobile") => Kind::Phone,
        _ if has("address") || has("street") => Kind::Street,
        _ if has("city") => Kind::City,
        _ if has("country") => Kind::Country,
        _ if has("zip") || has("postal") || has("postcode") => Kind::Zip,
        _ if has("company") || has("org") => Kind::Company,
        _ if has("url") || has("website") || has("link") => Kind::Url,
        _ if has("title") || has("subject") || has("headline") => Kind::Title,
        _ if has("text")
            || has("body")
            || has("description")
            || has("content")
            || has("comment")
            || has("summary")
            || has("bio")
            || has("about")
            || has("note") =>
        {
            Kind::Text
        }
        _ => Kind::Plain,
    }
}

/// The day birth dates count back from (2026-01-01), fixed so that data does not change
/// with the day it is generated.
const REFERENCE_DAY: i32 = 20_454;

/// A stable 64-bit hash (the first 8 bytes of blake3 over the parts, each length-prefixed),
/// for per-column seeds that never change.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h = blake3::Hasher::new();
    for part in parts {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let b = h.finalize();
    u64::from_le_bytes(b.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// An index below `len` (`len > 0`), drawn as a `u64` so that it is the same on 32- and
/// 64-bit targets (`gen_range` over `usize` samples a `u32` on one and a `u64` on the other).
fn index(rng: &mut ChaCha8Rng, len: usize) -> usize {
    rng.gen_range(0..len as u64) as usize
}

/// Generates rows for a schema; see the module docs.
#[derive(Debug, Clone)]
pub struct Synth {
    seed: u64,
    null_ratio: f64,
    overrides: HashMap<String, Gen>,
}

/// 2020-01-01T00:00:00Z and 2026-01-01T00:00:00Z, the range of generated times.
const TIME_RANGE: (i64, i64) = (1_577_836_800_000_000, 1_767_225_600_000_000);

impl Synth {
    /// A generator with this seed and a null ratio of 0.1 for nullable columns.
    pub fn new(seed: u64) -> Synth {
        Synth { seed, null_ratio: 0.1, overrides: HashMap::new() }
    }

    /// The share of nulls in nullable columns (0.0 to 1.0).
    pub fn null_ratio(mut self, ratio: f64) -> Synth {
        self.null_ratio = ratio.clamp(0.0, 1.0);
        self
    }

    /// Generates column `name` with `gen` instead of by its name and type.
    pub fn column(mut self, name: impl Into<String>, gen: Gen) -> Synth {
        self.overrides.insert(name.into(), gen);
        self
    }

    /// `n` rows for the stored columns of `schema`, generated lazily.
    pub fn rows(&self, schema: &TableSchema, n: u64) -> SynthRows {
        let columns: Vec<ColumnDef> = schema.columns.iter().filter(|c| !c.is_computed()).cloned().collect();
        let names: Arc<[String]> = columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>().into();
        let gens = columns
            .iter()
            .map(|c| ColumnGen {
                rng: ChaCha8Rng::seed_from_u64(stable_hash(&[&self.seed.to_le_bytes(), c.name.as_bytes()])),
                gen: self.overrides.get(&c.name).cloned(),
                kind: kind_of(&c.name, c.ty),
                ty: c.ty,
                null_ratio: if c.nullable { self.null_ratio } else { 0.0 },
            })
            .collect();
        SynthRows { names, gens, next: 0, end: n }
    }

    /// Inserts `n` generated rows into `table` in one call (one version), streaming them.
    pub fn fill(&self, table: &Table, n: u64) -> Result<WriteResult> {
        table.insert(self.rows(&table.schema()?, n))
    }
}

struct ColumnGen {
    rng: ChaCha8Rng,
    gen: Option<Gen>,
    kind: Kind,
    ty: ColumnType,
    null_ratio: f64,
}

/// The iterator [`Synth::rows`] returns.
pub struct SynthRows {
    names: Arc<[String]>,
    gens: Vec<ColumnGen>,
    next: u64,
    end: u64,
}

impl Iterator for SynthRows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.next >= self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let values = self.gens.iter_mut().map(|g| g.value(i)).collect();
        Some(Row::new(self.names.clone(), values))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end - self.next) as usize;
        (left, Some(left))
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[index(rng, items.len())]
}

fn digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

fn sentence(rng: &mut ChaCha8Rng, min: usize, max: usize, period: bool) -> String {
    let n = min + index(rng, max - min + 1);
    let mut s = String::with_capacity(n * 8);
    for w in 0..n {
        let word = pick(rng, EN::LOREM_WORD);
        if w == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                s.extend(first.to_uppercase());
                s.push_str(chars.as_str());
            }
        } else {
            s.push(' ');
            s.push_str(word);
        }
    }
    if period {
        s.push('.');
    }
    s
}

impl ColumnGen {
    fn value(&mut self, i: u64) -> Value {
        let rng = &mut self.rng;
        if self.null_ratio > 0.0 && rng.gen::<f64>() < self.null_ratio {
            return Value::Null;
        }
        if let Some(gen) = &self.gen {
            return generate(gen, rng, i);
        }
        let text = |s: String| Value::String(s);
        match (self.kind, self.ty) {
            (Kind::Id, ColumnType::Int) => Value::Int(i as i64 + 1),
            (Kind::Id, _) => text(format!("id-{:08}", i + 1)),
            (Kind::Email, _) => {
                let first = pick(rng, EN::NAME_FIRST_NAME).to_ascii_lowercase();
                let last = pick(rng, EN::NAME_LAST_NAME).to_ascii_lowercase().replace(['\'', ' '], "");
                let n = rng.gen_range(1..100);
                text(format!("{first}.{last}{n}@{}", pick(rng, EN::INTERNET_FREE_EMAIL_PROVIDER)))
            }
            (Kind::FirstName, _) => text(pick(rng, EN::NAME_FIRST_NAME).to_string()),
            (Kind::LastName, _) => text(pick(rng, EN::NAME_LAST_NAME).to_string()),
            (Kind::FullName, _) => {
                text(format!("{} {}", pick(rng, EN::NAME_FIRST_NAME), pick(rng, EN::NAME_LAST_NAME)))
            }
            (Kind::Phone, _) => text(format!("+1-{}-{}-{}", digits(rng, 3), digits(rng, 3), digits(rng, 4))),
            (Kind::Street, _) => text(format!(
                "{} {} {}",
                rng.gen_range(1..9999),
                pick(rng, EN::NAME_LAST_NAME),
                pick(rng, EN::ADDRESS_STREET_SUFFIX)
            )),
            (Kind::City, _) => text(format!("{}{}", pick(rng, EN::NAME_LAST_NAME), pick(rng, EN::ADDRESS_CITY_SUFFIX))),
            (Kind::Country, _) => text(pick(rng, EN::ADDRESS_COUNTRY).to_string()),
            (Kind::Zip, _) => text(digits(rng, 5)),
            (Kind::Company, _) => text(format!("{} {}", pick(rng, EN::NAME_LAST_NAME), pick(rng, EN::COMPANY_SUFFIX))),
            (Kind::Url, _) => text(format!(
                "https://www.{}.{}/{}",
                pick(rng, EN::LOREM_WORD),
                pick(rng, EN::INTERNET_DOMAIN_SUFFIX),
                pick(rng, EN::LOREM_WORD)
            )),
            (Kind::Title, _) => text(sentence(rng, 3, 7, false)),
            (Kind::Text, _) => {
                let n = rng.gen_range(2..=4);
                text((0..n).map(|_| sentence(rng, 5, 12, true)).collect::<Vec<_>>().join(" "))
            }
            (Kind::BirthDate, ColumnType::Date) => Value::Date(REFERENCE_DAY - rng.gen_range(18 * 365..90 * 365)),
            (Kind::BirthDate, _) => Value::Timestamp(
                i64::from(REFERENCE_DAY - rng.gen_range(18 * 365..90 * 365)) * 86_400_000_000
                    + rng.gen_range(0..86_400_000_000i64),
            ),
            (Kind::Amount, ty) => {
                // exp(N(ln 50, 1.2)) by Box-Muller: median 50, a long upper tail.
                let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                let amount = (50f64.ln() + 1.2 * z).exp();
                match ty {
                    ColumnType::Int => Value::Int(amount.round() as i64),
                    _ => Value::Float((amount * 100.0).round() / 100.0),
                }
            }
            (Kind::Age, _) => Value::Int(rng.gen_range(18..=90)),
            (Kind::Quantity, _) => Value::Int([1, 1, 1, 1, 2, 2, 3, 4, 5, 10][index(rng, 10)]),
            (_, ColumnType::Int) => Value::Int(rng.gen_range(0..1000)),
            (_, ColumnType::Float) => Value::Float((rng.gen_range(0.0..1000.0f64) * 100.0).round() / 100.0),
            (_, ColumnType::Bool) => Value::Bool(rng.gen_bool(0.5)),
            (_, ColumnType::Timestamp) => Value::Timestamp(rng.gen_range(TIME_RANGE.0..TIME_RANGE.1)),
            (_, ColumnType::Date) => Value::Date(rng.gen_range(18_262..20_454)),
            (_, ColumnType::Json) => Value::Json(serde_json::json!({
                "tag": pick(rng, EN::LOREM_WORD),
                "score": rng.gen_range(0..100),
            })),
            (_, ColumnType::Bytes) => Value::Bytes((0..16).map(|_| rng.gen::<u8>()).collect()),
            (_, ColumnType::String) => text(sentence(rng, 1, 3, false)),
        }
    }
}

fn generate(gen: &Gen, rng: &mut ChaCha8Rng, i: u64) -> Value {
    match gen {
        Gen::Range(lo, hi) => Value::Int(if lo >= hi { *lo } else { rng.gen_range(*lo..=*hi) }),
        Gen::FloatRange(lo, hi) => Value::Float(if lo >= hi { *lo } else { rng.gen_range(*lo..*hi) }),
        Gen::Const(v) => v.clone(),
        Gen::Words(min, max) => Value::String(sentence(rng, *min, (*max).max(*min), false)),
        Gen::With(f) => f(rng, i),
        Gen::Corpus(sentences) if sentences.is_empty() => Value::Null,
        Gen::Corpus(sentences) => {
            let n = 1 + index(rng, 3);
            let picked: Vec<&str> = (0..n).map(|_| sentences[index(rng, sentences.len())].as_str()).collect();
            Value::String(picked.join(" "))
        }
        Gen::Choice(items) => {
            let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
            if total == 0 {
                return Value::Null;
            }
            let mut at = rng.gen_range(0..total);
            for (v, w) in items {
                if at < u64::from(*w) {
                    return v.clone();
                }
                at -= u64::from(*w);
            }
            Value::Null
        }
        Gen::Pattern(p) => Value::String(pattern(p, rng)),
    }
}

/// Expands the small pattern language of [`Gen::Pattern`].
fn pattern(p: &str, rng: &mut ChaCha8Rng) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let (class, next): (Option<&str>, usize) = match chars[i] {
            '[' => match chars[i..].iter().position(|c| *c == ']') {
                Some(end) => {
                    let body: String = chars[i + 1..i + end].iter().collect();
                    let class = match body.as_str() {
                        "A-Z" => Some("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                        "a-z" => Some("abcdefghijklmnopqrstuvwxyz"),
                        "0-9" => Some("0123456789"),
                        _ => None,
                    };
                    (class, i + end + 1)
                }
                None => (None, i + 1),
            },
            '\\' if chars.get(i + 1) == Some(&'d') => (Some("0123456789"), i + 2),
            _ => (None, i + 1),
        };
        let mut repeat = 1;
        let mut after = next;
        if chars.get(next) == Some(&'{') {
            if let Some(end) = chars[next..].iter().position(|c| *c == '}') {
                let n: String = chars[next + 1..next + end].iter().collect();
                if let Ok(n) = n.parse::<usize>() {
                    repeat = n;
                    after = next + end + 1;
                }
            }
        }
        for _ in 0..repeat {
            match class {
                Some(set) => {
                    let set = set.as_bytes();
                    out.push(char::from(set[index(rng, set.len())]));
                }
                None => out.push(chars[i]),
            }
        }
        i = after;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let s = pattern("[A-Z]{3}-[0-9]{4}-x\\d", &mut rng);
        assert_eq!(s.len(), 11);
        assert!(s[..3].chars().all(|c| c.is_ascii_uppercase()), "{s}");
        assert_eq!(&s[3..4], "-");
        assert!(s[4..8].chars().all(|c| c.is_ascii_digit()), "{s}");
        assert_eq!(&s[8..10], "-x");
        assert!(s[10..].chars().all(|c| c.is_ascii_digit()), "{s}");
    }

    #[test]
    fn kinds_follow_names() {
        assert_eq!(kind_of("user_email", ColumnType::String), Kind::Email);
        assert_eq!(kind_of("author", ColumnType::String), Kind::FullName);
        assert_eq!(kind_of("doc_id", ColumnType::Int), Kind::Id);
        assert_eq!(kind_of("body", ColumnType::String), Kind::Text);
        assert_eq!(kind_of("created_at", ColumnType::Timestamp), Kind::Plain);
    }
}
