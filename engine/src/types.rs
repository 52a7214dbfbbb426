//! Column types, cell values, ids and their conversions (to and from Rust types and serde).
//!
//! Plain data; the SQLite encoding of each type lives in `store`.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A table version. Version 0 is the empty table as created; each mutating call adds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version(pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The id of a table in its catalog; stable across renames and moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId(pub i64);

/// The id of a column within its table; a replaced or re-added column gets a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ColumnId(pub u32);

/// The type of a column or an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnType {
    /// 64-bit signed integer.
    Int,
    /// 64-bit float. NaN cannot be stored (SQLite turns it into NULL), infinities can.
    Float,
    /// true or false.
    Bool,
    /// UTF-8 text.
    String,
    /// A point in time, UTC, with microsecond precision.
    Timestamp,
    /// A calendar date.
    Date,
    /// Any JSON document.
    Json,
    /// Raw bytes.
    Bytes,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl ColumnType {
    /// The type's name, as `Display` writes it ("Int", "String", ...).
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Int => "Int",
            ColumnType::Float => "Float",
            ColumnType::Bool => "Bool",
            ColumnType::String => "String",
            ColumnType::Timestamp => "Timestamp",
            ColumnType::Date => "Date",
            ColumnType::Json => "Json",
            ColumnType::Bytes => "Bytes",
        }
    }

    /// Int and Float.
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Int | ColumnType::Float)
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// No value.
    Null,
    /// An [`ColumnType::Int`].
    Int(i64),
    /// A [`ColumnType::Float`].
    Float(f64),
    /// A [`ColumnType::Bool`].
    Bool(bool),
    /// A [`ColumnType::String`].
    String(String),
    /// A [`ColumnType::Timestamp`]: microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    /// A [`ColumnType::Date`]: days since 1970-01-01.
    Date(i32),
    /// A [`ColumnType::Json`] document.
    Json(serde_json::Value),
    /// A [`ColumnType::Bytes`] blob.
    Bytes(Vec<u8>),
}

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The type of this value (`None` for null).
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self {
            Value::Null => return None,
            Value::Int(_) => ColumnType::Int,
            Value::Float(_) => ColumnType::Float,
            Value::Bool(_) => ColumnType::Bool,
            Value::String(_) => ColumnType::String,
            Value::Timestamp(_) => ColumnType::Timestamp,
            Value::Date(_) => ColumnType::Date,
            Value::Json(_) => ColumnType::Json,
            Value::Bytes(_) => ColumnType::Bytes,
        })
    }

    /// A short name of what this value is, for error messages ("Null", "Int", ...).
    pub fn type_name(&self) -> &'static str {
        self.column_type().map_or("Null", ColumnType::name)
    }

    /// The value as it will be stored in a column of type `ty`: Int widens to Float, a
    /// string parses as Timestamp/Date/Json when it is one; anything else is an error that
    /// says what was expected and found (the caller adds the column and row).
    #[inline]
    pub fn coerce_to(self, ty: ColumnType) -> std::result::Result<Value, String> {
        match (ty, self) {
            // The common cases first: every value written passes here.
            (ColumnType::Int, v @ Value::Int(_))
            | (ColumnType::String, v @ Value::String(_))
            | (ColumnType::Bool, v @ Value::Bool(_))
            | (_, v @ Value::Null) => Ok(v),
            (ColumnType::Float, Value::Float(f)) if f.is_nan() => {
                Err("found NaN, which SQLite cannot store (it would become NULL); use Null for a missing value".into())
            }
            (ColumnType::Float, Value::Int(i)) => Ok(Value::Float(i as f64)),
            (ColumnType::Timestamp, Value::String(s)) => parse_timestamp(&s)
                .map(Value::Timestamp)
                .ok_or_else(|| format!("expected Timestamp, found String {s:?} that is not an RFC 3339 time")),
            (ColumnType::Date, Value::String(s)) => parse_date(&s)
                .map(Value::Date)
                .ok_or_else(|| format!("expected Date, found String {s:?} that is not a YYYY-MM-DD date")),
            (ColumnType::Json, Value::Json(j)) => {
                let depth = json_depth(&j);
                if depth > MAX_JSON_DEPTH {
                    return Err(format!(
                        "found Json nested {depth} levels deep; the limit is {MAX_JSON_DEPTH} (it could not be read back)"
                    ));
                }
                Ok(Value::Json(j))
            }
            (ColumnType::Json, v) => Ok(Value::Json(v.to_json())),
            (ty, v) if v.column_type() == Some(ty) => Ok(v),
            (ty, v) => Err(format!("expected {ty}, found {} {v}", v.type_name())),
        }
    }

    /// This value as JSON (timestamps and dates as RFC 3339 / ISO strings, bytes as an array).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            Value::Bool(b) => J::Bool(*b),
            Value::String(s) => J::String(s.clone()),
            Value::Timestamp(t) => J::String(format_timestamp(*t)),
            Value::Date(d) => J::String(format_date(*d)),
            Value::Json(j) => j.clone(),
            Value::Bytes(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
        }
    }

    /// Converts JSON (for example a serialized struct field) into a value of type `ty`.
    pub fn from_json(json: serde_json::Value, ty: ColumnType) -> std::result::Result<Value, String> {
        use serde_json::Value as J;
        let found = |j: &J| format!("expected {ty}, found JSON {j}");
        Ok(match (ty, json) {
            (ColumnType::Json, j) => Value::Json(j),
            (_, J::Null) => Value::Null,
            (ColumnType::Int, J::Number(n)) => Value::Int(n.as_i64().ok_or_else(|| found(&J::Number(n.clone())))?),
            (ColumnType::Float, J::Number(n)) => Value::Float(n.as_f64().ok_or_else(|| found(&J::Number(n.clone())))?),
            (ColumnType::Bool, J::Bool(b)) => Value::Bool(b),
            (ColumnType::String, J::String(s)) => Value::String(s),
            (ColumnType::Timestamp | ColumnType::Date, J::String(s)) => Value::String(s).coerce_to(ty)?,
            (ColumnType::Timestamp, J::Number(n)) => {
                Value::Timestamp(n.as_i64().ok_or_else(|| found(&J::Number(n.clone())))?)
            }
            (ColumnType::Bytes, J::Array(items)) => {
                let mut bytes = Vec::with_capacity(items.len());
                for item in &items {
                    match item.as_u64() {
                        Some(b) if b <= 255 => bytes.push(b as u8),
                        _ => return Err(found(&J::Array(items.clone()))),
                    }
                }
                Value::Bytes(bytes)
            }
            (_, j) => return Err(found(&j)),
        })
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Timestamp(t) => write!(f, "timestamp '{}'", format_timestamp(*t)),
            Value::Date(d) => write!(f, "date '{}'", format_date(*d)),
            // A quote inside is doubled, so the text form parses back.
            Value::Json(j) => write!(f, "json '{}'", j.to_string().replace('\'', "''")),
            Value::Bytes(b) => {
                f.write_str("x'")?;
                for byte in b.iter().take(32) {
                    write!(f, "{byte:02x}")?;
                }
                if b.len() > 32 {
                    write!(f, "...({} bytes)", b.len())?;
                }
                f.write_str("'")
            }
        }
    }
}

/// The deepest Json a cell may hold: serde_json reads back at most 128 levels.
pub const MAX_JSON_DEPTH: usize = 120;

/// How deeply `j` nests (a scalar is 0), without recursion, so a hostile document cannot
/// overflow the stack.
fn json_depth(j: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(j, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            serde_json::Value::Object(m) => stack.extend(m.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// Microseconds since the epoch as RFC 3339 (`2024-05-01T12:00:00Z`, with fractions when any).
pub fn format_timestamp(micros: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => format!("{micros}us"),
    }
}

/// Days since the epoch as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    match NaiveDate::from_num_days_from_ce_opt(days.saturating_add(EPOCH_DAYS_FROM_CE)) {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => format!("{days}d"),
    }
}

/// Parses an RFC 3339 time into microseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc).timestamp_micros())
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(days_from_date)
}

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn days_from_date(d: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&d) - EPOCH_DAYS_FROM_CE
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::$variant(v $(as $cast)?.into())
            }
        }
    )*};
}
value_from!(i64 => Int, i32 => Int, u32 => Int, i16 => Int, u8 => Int, f64 => Float, f32 => Float,
    bool => Bool, String => String, &str => String, &String => String, Vec<u8> => Bytes,
    &[u8] => Bytes, serde_json::Value => Json);

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(t: DateTime<Utc>) -> Value {
        Value::Timestamp(t.timestamp_micros())
    }
}

impl From<NaiveDate> for Value {
    fn from(d: NaiveDate) -> Value {
        Value::Date(days_from_date(d))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// Types that can be read out of a [`Value`] (see `Row::get`).
pub trait FromValue: Sized {
    /// Converts, or says what was expected and what was found.
    fn from_value(value: &Value) -> std::result::Result<Self, String>;

    /// Converts an owned value (moving text and bytes instead of copying them).
    fn from_owned(value: Value) -> std::result::Result<Self, String> {
        Self::from_value(&value)
    }
}

macro_rules! from_value {
    ($($t:ty: $pat:pat => $out:expr, $want:literal;)*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> std::result::Result<Self, String> {
                match value {
                    $pat => Ok($out),
                    other => Err(format!("expected {}, found {} {}", $want, other.type_name(), other)),
                }
            }
        }
    )*};
}
from_value! {
    i64: Value::Int(i) => *i, "Int";
    f64: Value::Float(f) => *f, "Float";
    bool: Value::Bool(b) => *b, "Bool";
}

macro_rules! from_value_owned {
    ($($t:ty: $variant:ident, $want:literal;)*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> std::result::Result<Self, String> {
                match value {
                    Value::$variant(x) => Ok(x.clone()),
                    other => Err(format!("expected {}, found {} {}", $want, other.type_name(), other)),
                }
            }
            fn from_owned(value: Value) -> std::result::Result<Self, String> {
                match value {
                    Value::$variant(x) => Ok(x),
                    other => Err(format!("expected {}, found {} {}", $want, other.type_name(), other)),
                }
            }
        }
    )*};
}
from_value_owned! {
    String: String, "String";
    Vec<u8>: Bytes, "Bytes";
    serde_json::Value: Json, "Json";
}

impl FromValue for Value {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        Ok(value.clone())
    }
}

impl FromValue for DateTime<Utc> {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Timestamp(t) => {
                DateTime::<Utc>::from_timestamp_micros(*t).ok_or_else(|| format!("timestamp {t}us is out of range"))
            }
            other => Err(format!("expected Timestamp, found {} {other}", other.type_name())),
        }
    }
}

impl FromValue for NaiveDate {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Date(d) => NaiveDate::from_num_days_from_ce_opt(d.saturating_add(EPOCH_DAYS_FROM_CE))
                .ok_or_else(|| format!("date {d} is out of range")),
            other => Err(format!("expected Date, found {} {other}", other.type_name())),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_dates_round_trip_through_text() {
        let t = parse_timestamp("2024-05-01T12:30:00.250Z").unwrap();
        assert_eq!(format_timestamp(t), "2024-05-01T12:30:00.250Z");
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(format_date(-1), "1969-12-31");
    }

    #[test]
    fn coercion_widens_and_explains() {
        assert_eq!(Value::Int(2).coerce_to(ColumnType::Float), Ok(Value::Float(2.0)));
        assert_eq!(Value::from("2024-01-01").coerce_to(ColumnType::Date), Ok(Value::Date(19723)));
        let e = Value::from("x").coerce_to(ColumnType::Int).unwrap_err();
        assert_eq!(e, "expected Int, found String \"x\"");
        assert!(Value::Float(f64::NAN).coerce_to(ColumnType::Float).unwrap_err().contains("NaN"));
        assert_eq!(Value::Float(f64::INFINITY).coerce_to(ColumnType::Float), Ok(Value::Float(f64::INFINITY)));
    }
}
