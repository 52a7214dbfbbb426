//! [`Row`]: named values, as inserted (`row!`) and as returned by queries.

use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;

use crate::error::{err, Result};
use crate::types::{FromValue, Value};

/// One row: column names (shared by all rows of a result) and their values.
#[derive(Clone, PartialEq)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// A row from names and values of the same length.
    pub fn new(names: Arc<[String]>, values: Vec<Value>) -> Row {
        debug_assert_eq!(names.len(), values.len());
        Row { names, values }
    }

    /// A row from `(name, value)` pairs; see also the [`row!`](crate::row!) macro.
    pub fn from_pairs<N: Into<String>, V: Into<Value>>(pairs: impl IntoIterator<Item = (N, V)>) -> Row {
        let (names, values): (Vec<String>, Vec<Value>) = pairs.into_iter().map(|(n, v)| (n.into(), v.into())).unzip();
        Row { names: names.into(), values }
    }

    /// A row from column names and values, as the [`row!`](crate::row!) macro builds it.
    /// Rows built one after another with the same names share one name list (kept per
    /// thread), so building and inserting many rows does not allocate names for each.
    pub fn from_names(names: &[&str], values: Vec<Value>) -> Row {
        use std::cell::RefCell;
        thread_local! {
            static LAST: RefCell<Option<Arc<[String]>>> = const { RefCell::new(None) };
        }
        debug_assert_eq!(names.len(), values.len());
        let names = LAST.with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some(known) if known.len() == names.len() && known.iter().zip(names).all(|(a, b)| a == b) => {
                    known.clone()
                }
                _ => {
                    let fresh: Arc<[String]> = names.iter().map(|n| n.to_string()).collect::<Vec<_>>().into();
                    *last = Some(fresh.clone());
                    fresh
                }
            }
        });
        Row { names, values }
    }

    /// The value of column `name`, converted to `T`; the error names the column and says
    /// what was found.
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T> {
        let value = self
            .value(name)
            .ok_or_else(|| err!(UnknownColumn, "row has no column '{name}' (it has: {})", self.names.join(", ")))?;
        T::from_value(value).map_err(|why| err!(TypeMismatch, "column '{name}': {why}"))
    }

    /// The value of column `name`, if the row has that column.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.names.iter().position(|n| n == name).map(|i| &self.values[i])
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.names
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, consuming the row.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The shared column names and the values, consuming the row (rebuild one with
    /// [`Row::new`]).
    pub fn into_parts(self) -> (Arc<[String]>, Vec<Value>) {
        (self.names, self.values)
    }

    /// A row with the same column names (shared, not copied) and new values.
    pub fn with_values(&self, values: Vec<Value>) -> Row {
        debug_assert_eq!(self.names.len(), values.len());
        Row { names: self.names.clone(), values }
    }

    pub(crate) fn names_arc(&self) -> &Arc<[String]> {
        &self.names
    }

    /// `(name, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.names.iter().map(String::as_str).zip(&self.values)
    }

    /// The row as a JSON object (what `collect_as` deserializes from).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.iter().map(|(n, v)| (n.to_string(), v.to_json())).collect())
    }
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}: {value}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, &value.to_json())?;
        }
        map.end()
    }
}

/// Builds a [`Row`] for `insert`: `row! { "title" => "Intro", "rating" => 4 }`.
///
/// Values are anything that converts into a [`Value`], including `Option`s (`None` is null).
#[macro_export]
macro_rules! row {
    ($($name:expr => $value:expr),* $(,)?) => {
        $crate::Row::from_names(&[$(::core::convert::AsRef::<str>::as_ref(&$name)),*], vec![$($crate::Value::from($value)),*])
    };
}
