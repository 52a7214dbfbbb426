//! Builtin functions: their names, type rules and their one implementation, in Rust.
//!
//! The same implementation runs in two places: inside SQLite, registered as an SQL function
//! (`tb_<name>`, see `store`), and in row-wise evaluation (UDF arguments, previews). So a
//! builtin gives the same result wherever it runs.

use serde::{Deserialize, Serialize};

use crate::types::{ColumnType, Value};

/// A builtin function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Func {
    /// `lower(s)`: Unicode lower case.
    Lower,
    /// `upper(s)`: Unicode upper case.
    Upper,
    /// `length(s)`: characters of a String, bytes of Bytes.
    Length,
    /// `contains(s, part)`.
    Contains,
    /// `starts_with(s, prefix)`.
    StartsWith,
    /// `ends_with(s, suffix)`.
    EndsWith,
    /// `concat(a, b, ...)`: null when any part is null.
    Concat,
    /// `substring(s, start, len)`: `len` characters from character `start` (0-based).
    Substring,
    /// `replace(s, from, to)`: every occurrence; an empty `from` changes nothing.
    Replace,
    /// `trim(s)`: without leading and trailing white space.
    Trim,
    /// `split(s, sep)`: a Json array of the parts (of the characters, for an empty `sep`).
    Split,
    /// `coalesce(a, b, ...)`: the first non-null argument.
    Coalesce,
    /// `abs(x)`.
    Abs,
    /// `round(x, digits)`: half away from zero.
    Round,
    /// `floor(x)`.
    Floor,
    /// `ceil(x)`.
    Ceil,
    /// `sqrt(x)`: null for negative `x`.
    Sqrt,
    /// `pow(x, y)`.
    Pow,
    /// `year(t)` of a Timestamp or Date.
    Year,
    /// `month(t)`, 1 to 12.
    Month,
    /// `day(t)`, day of the month.
    Day,
    /// `hour(t)` of a Timestamp.
    Hour,
    /// `minute(t)` of a Timestamp.
    Minute,
    /// `second(t)` of a Timestamp.
    Second,
    /// `json_get(j, key)`: a member of a Json object, or null.
    JsonGet,
    /// `json_index(j, i)`: an element of a Json array, or null.
    JsonIndex,
    /// Integer `+` (null on overflow).
    IntAdd,
    /// Integer `-` (null on overflow).
    IntSub,
    /// Integer `*` (null on overflow).
    IntMul,
    /// Integer `/`, truncating (null on division by zero or overflow).
    IntDiv,
    /// `%` (null on division by zero).
    Rem,
    /// Integer negation (null on overflow).
    IntNeg,
}

impl Func {
    /// The name shown in expressions and used (with a `tb_` prefix) in SQL.
    pub fn name(self) -> &'static str {
        use Func::*;
        match self {
            Lower => "lower",
            Upper => "upper",
            Length => "length",
            Contains => "contains",
            StartsWith => "starts_with",
            EndsWith => "ends_with",
            Concat => "concat",
            Substring => "substring",
            Replace => "replace",
            Trim => "trim",
            Split => "split",
            Coalesce => "coalesce",
            Abs => "abs",
            Round => "round",
            Floor => "floor",
            Ceil => "ceil",
            Sqrt => "sqrt",
            Pow => "pow",
            Year => "year",
            Month => "month",
            Day => "day",
            Hour => "hour",
            Minute => "minute",
            Second => "second",
            JsonGet => "json_get",
            JsonIndex => "json_index",
            IntAdd => "int_add",
            IntSub => "int_sub",
            IntMul => "int_mul",
            IntDiv => "int_div",
            Rem => "rem",
            IntNeg => "int_neg",
        }
    }

    /// Every builtin (what `store` registers in SQLite).
    pub(crate) const ALL: [Func; 32] = {
        use Func::*;
        [
            Lower, Upper, Length, Contains, StartsWith, EndsWith, Concat, Substring, Replace, Trim, Split, Coalesce,
            Abs, Round, Floor, Ceil, Sqrt, Pow, Year, Month, Day, Hour, Minute, Second, JsonGet, JsonIndex, IntAdd,
            IntSub, IntMul, IntDiv, Rem, IntNeg,
        ]
    };

    /// The result type for these argument types, or why they do not fit.
    pub(crate) fn result_type(self, args: &[Option<ColumnType>]) -> Result<ColumnType, String> {
        use ColumnType as T;
        use Func::*;
        let want = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("{} takes {n} argument(s), found {}", self.name(), args.len()))
            }
        };
        let is = |i: usize, ok: &[T]| -> Result<(), String> {
            match args[i] {
                None => Ok(()),
                Some(t) if ok.contains(&t) => Ok(()),
                Some(t) => Err(format!(
                    "argument {} of {} must be {}, found {t}",
                    i + 1,
                    self.name(),
                    ok.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" or ")
                )),
            }
        };
        let num = [T::Int, T::Float];
        let numeric_result = |args: &[Option<ColumnType>]| {
            if args.contains(&Some(T::Float)) {
                T::Float
            } else {
                T::Int
            }
        };
        Ok(match self {
            Lower | Upper | Trim => {
                want(1)?;
                is(0, &[T::String])?;
                T::String
            }
            Length => {
                want(1)?;
                is(0, &[T::String, T::Bytes])?;
                T::Int
            }
            Contains | StartsWith | EndsWith => {
                want(2)?;
                is(0, &[T::String])?;
                is(1, &[T::String])?;
                T::Bool
            }
            Concat => {
                if args.is_empty() {
                    return Err("concat takes at least one argument".into());
                }
                for i in 0..args.len() {
                    is(i, &[T::String])?;
                }
                T::String
            }
            Substring => {
                want(3)?;
                is(0, &[T::String])?;
                is(1, &[T::Int])?;
                is(2, &[T::Int])?;
                T::String
            }
            Replace => {
                want(3)?;
                (0..3).try_for_each(|i| is(i, &[T::String]))?;
                T::String
            }
            Split => {
                want(2)?;
                is(0, &[T::String])?;
                is(1, &[T::String])?;
                T::Json
            }
            Coalesce => {
                let known: Vec<T> = args.iter().flatten().copied().collect();
                let Some(first) = known.first().copied() else {
                    return Err("coalesce needs at least one argument that is not a bare null".into());
                };
                if known.iter().all(|t| *t == first) {
                    first
                } else if known.iter().all(|t| t.is_numeric()) {
                    T::Float
                } else {
                    return Err(format!(
                        "coalesce arguments must have one type, found {}",
                        known.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            Abs | Floor | Ceil => {
                want(1)?;
                is(0, &num)?;
                numeric_result(args)
            }
            Round => {
                want(2)?;
                is(0, &num)?;
                is(1, &[T::Int])?;
                numeric_result(&args[..1])
            }
            Sqrt => {
                want(1)?;
                is(0, &num)?;
                T::Float
            }
            Pow => {
                want(2)?;
                is(0, &num)?;
                is(1, &num)?;
                T::Float
            }
            Year | Month | Day => {
                want(1)?;
                is(0, &[T::Timestamp, T::Date])?;
                T::Int
            }
            Hour | Minute | Second => {
                want(1)?;
                is(0, &[T::Timestamp])?;
                T::Int
            }
            JsonGet => {
                want(2)?;
                is(0, &[T::Json])?;
                is(1, &[T::String])?;
                T::Json
            }
            JsonIndex => {
                want(2)?;
                is(0, &[T::Json])?;
                is(1, &[T::Int])?;
                T::Json
            }
            IntAdd | IntSub | IntMul | IntDiv => {
                want(2)?;
                is(0, &[T::Int])?;
                is(1, &[T::Int])?;
                T::Int
            }
            Rem => {
                want(2)?;
                is(0, &num)?;
                is(1, &num)?;
                numeric_result(args)
            }
            IntNeg => {
                want(1)?;
                is(0, &[T::Int])?;
                T::Int
            }
        })
    }

    /// Whether the result can be null even when no argument is.
    pub(crate) fn may_yield_null(self) -> bool {
        use Func::*;
        matches!(
            self,
            Sqrt | Pow
                | JsonGet
                | JsonIndex
                | IntAdd
                | IntSub
                | IntMul
                | IntDiv
                | Rem
                | IntNeg
                | Abs
                | Round
                | Coalesce
        )
    }

    /// Applies the function to typed arguments. Never fails: inputs outside the domain
    /// (division by zero, overflow, a missing Json member) give null.
    pub(crate) fn apply(self, args: &[Value]) -> Value {
        use Func::*;
        use Value as V;
        if self == Coalesce {
            return args.iter().find(|v| !v.is_null()).cloned().unwrap_or(V::Null);
        }
        if args.iter().any(Value::is_null) {
            return V::Null;
        }
        let s = |i: usize| match &args[i] {
            V::String(s) => s.as_str(),
            _ => "",
        };
        let int = |i: usize| match &args[i] {
            V::Int(n) => Some(*n),
            _ => None,
        };
        let float = |i: usize| match &args[i] {
            V::Int(n) => Some(*n as f64),
            V::Float(f) => Some(*f),
            _ => None,
        };
        let out = match self {
            Lower => V::String(s(0).to_lowercase()),
            Upper => V::String(s(0).to_uppercase()),
            Trim => V::String(s(0).trim().to_string()),
            Length => match &args[0] {
                V::Bytes(b) => V::Int(b.len() as i64),
                _ => V::Int(s(0).chars().count() as i64),
            },
            Contains => V::Bool(s(0).contains(s(1))),
            StartsWith => V::Bool(s(0).starts_with(s(1))),
            EndsWith => V::Bool(s(0).ends_with(s(1))),
            Concat => V::String((0..args.len()).map(s).collect()),
            Substring => {
                let start = int(1).unwrap_or(0).max(0) as usize;
                let len = int(2).unwrap_or(0).max(0) as usize;
                V::String(s(0).chars().skip(start).take(len).collect())
            }
            Replace => {
                if s(1).is_empty() {
                    V::String(s(0).to_string())
                } else {
                    V::String(s(0).replace(s(1), s(2)))
                }
            }
            Split => {
                let parts: Vec<serde_json::Value> = if s(1).is_empty() {
                    s(0).chars().map(|c| serde_json::Value::String(c.to_string())).collect()
                } else {
                    s(0).split(s(1)).map(|p| serde_json::Value::String(p.to_string())).collect()
                };
                V::Json(serde_json::Value::Array(parts))
            }
            // Handled before the null check above.
            Coalesce => V::Null,
            Abs => match &args[0] {
                V::Int(n) => n.checked_abs().map(V::Int).unwrap_or(V::Null),
                V::Float(f) => V::Float(f.abs()),
                _ => V::Null,
            },
            Floor => match &args[0] {
                V::Float(f) => V::Float(f.floor()),
                other => other.clone(),
            },
            Ceil => match &args[0] {
                V::Float(f) => V::Float(f.ceil()),
                other => other.clone(),
            },
            Round => {
                let digits = int(1).unwrap_or(0).clamp(-30, 30) as i32;
                match &args[0] {
                    V::Float(f) => {
                        let scale = 10f64.powi(digits);
                        let r = (f * scale).round() / scale;
                        V::Float(if r.is_finite() { r } else { *f })
                    }
                    V::Int(n) if digits >= 0 => V::Int(*n),
                    V::Int(n) => {
                        let scale = 10i64.checked_pow((-digits) as u32);
                        match scale {
                            Some(scale) => {
                                let half = scale / 2;
                                let r = if *n >= 0 { n.checked_add(half) } else { n.checked_sub(half) };
                                r.map(|r| V::Int(r / scale * scale)).unwrap_or(V::Null)
                            }
                            None => V::Int(0),
                        }
                    }
                    _ => V::Null,
                }
            }
            Sqrt => V::Float(float(0).unwrap_or(f64::NAN).sqrt()),
            Pow => V::Float(float(0).unwrap_or(f64::NAN).powf(float(1).unwrap_or(f64::NAN))),
            Year | Month | Day | Hour | Minute | Second => date_part(self, &args[0]),
            JsonGet => match &args[0] {
                V::Json(serde_json::Value::Object(m)) => m.get(s(1)).cloned().map(V::Json).unwrap_or(V::Null),
                _ => V::Null,
            },
            JsonIndex => match (&args[0], int(1)) {
                (V::Json(serde_json::Value::Array(items)), Some(i)) if i >= 0 => {
                    items.get(i as usize).cloned().map(V::Json).unwrap_or(V::Null)
                }
                _ => V::Null,
            },
            IntAdd => int_op(int(0), int(1), i64::checked_add),
            IntSub => int_op(int(0), int(1), i64::checked_sub),
            IntMul => int_op(int(0), int(1), i64::checked_mul),
            IntDiv => int_op(int(0), int(1), i64::checked_div),
            Rem => match (&args[0], &args[1]) {
                (V::Int(a), V::Int(b)) => a.checked_rem(*b).map(V::Int).unwrap_or(V::Null),
                _ => match (float(0), float(1)) {
                    (Some(a), Some(b)) => {
                        if b == 0.0 {
                            V::Null
                        } else {
                            V::Float(a % b)
                        }
                    }
                    _ => V::Null,
                },
            },
            IntNeg => int(0).and_then(i64::checked_neg).map(V::Int).unwrap_or(V::Null),
        };
        normalize(out)
    }
}

fn int_op(a: Option<i64>, b: Option<i64>, op: fn(i64, i64) -> Option<i64>) -> Value {
    match (a, b) {
        (Some(a), Some(b)) => op(a, b).map(Value::Int).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// NaN is not a value Tabula stores (SQLite turns it into NULL): every NaN result is null.
pub(crate) fn normalize(v: Value) -> Value {
    match v {
        Value::Float(f) if f.is_nan() => Value::Null,
        other => other,
    }
}

fn date_part(func: Func, v: &Value) -> Value {
    use chrono::{Datelike, Timelike};
    let dt = match v {
        Value::Timestamp(t) => chrono::DateTime::<chrono::Utc>::from_timestamp_micros(*t).map(|d| d.naive_utc()),
        Value::Date(d) => {
            chrono::NaiveDate::from_num_days_from_ce_opt(d.saturating_add(719_163)).and_then(|d| d.and_hms_opt(0, 0, 0))
        }
        _ => None,
    };
    let Some(dt) = dt else { return Value::Null };
    Value::Int(match func {
        Func::Year => i64::from(dt.year()),
        Func::Month => i64::from(dt.month()),
        Func::Day => i64::from(dt.day()),
        Func::Hour => i64::from(dt.hour()),
        Func::Minute => i64::from(dt.minute()),
        _ => i64::from(dt.second()),
    })
}

/// Casts `v` to `to`; null when it does not convert.
pub(crate) fn cast(v: &Value, to: ColumnType) -> Value {
    use ColumnType as T;
    use Value as V;
    let out = match (v, to) {
        (V::Null, _) => V::Null,
        (v, t) if v.column_type() == Some(t) => v.clone(),
        (V::Int(i), T::Float) => V::Float(*i as f64),
        (V::Float(f), T::Int) => {
            if f.is_finite() && *f >= -9.223_372_036_854_775e18 && *f < 9.223_372_036_854_775e18 {
                V::Int(f.trunc() as i64)
            } else {
                V::Null
            }
        }
        (V::Bool(b), T::Int) => V::Int(i64::from(*b)),
        (V::Int(i), T::Bool) => V::Bool(*i != 0),
        (V::Int(i), T::String) => V::String(i.to_string()),
        (V::Float(f), T::String) => V::String(format!("{f:?}")),
        (V::Bool(b), T::String) => V::String(b.to_string()),
        (V::Timestamp(t), T::String) => V::String(crate::types::format_timestamp(*t)),
        (V::Date(d), T::String) => V::String(crate::types::format_date(*d)),
        (V::Json(j), T::String) => V::String(j.to_string()),
        (V::String(s), T::Int) => s.trim().parse().map(V::Int).unwrap_or(V::Null),
        (V::String(s), T::Float) => s.trim().parse().map(V::Float).unwrap_or(V::Null),
        (V::String(s), T::Bool) => match s.trim() {
            "true" => V::Bool(true),
            "false" => V::Bool(false),
            _ => V::Null,
        },
        (V::String(s), T::Timestamp) => crate::types::parse_timestamp(s).map(V::Timestamp).unwrap_or(V::Null),
        (V::String(s), T::Date) => crate::types::parse_date(s).map(V::Date).unwrap_or(V::Null),
        (V::String(s), T::Json) => serde_json::from_str(s).map(V::Json).unwrap_or(V::Null),
        (V::Timestamp(t), T::Date) => V::Date(t.div_euclid(86_400_000_000) as i32),
        (V::Date(d), T::Timestamp) => V::Timestamp(i64::from(*d) * 86_400_000_000),
        (V::Timestamp(t), T::Int) => V::Int(*t),
        (V::Int(i), T::Timestamp) => V::Timestamp(*i),
        (v, T::Json) => V::Json(v.to_json()),
        _ => V::Null,
    };
    normalize(out)
}

/// Whether `cast(x as to)` is allowed for `x` of type `from`.
pub(crate) fn castable(from: ColumnType, to: ColumnType) -> bool {
    use ColumnType as T;
    from == to
        || to == T::Json
        || to == T::String && from != T::Bytes
        || matches!(
            (from, to),
            (T::Int, T::Float)
                | (T::Float, T::Int)
                | (T::Bool, T::Int)
                | (T::Int, T::Bool)
                | (T::String, T::Int | T::Float | T::Bool | T::Timestamp | T::Date)
                | (T::Timestamp, T::Date | T::Int)
                | (T::Date, T::Timestamp)
                | (T::Int, T::Timestamp)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_cases_give_null_not_panics() {
        assert_eq!(Func::IntAdd.apply(&[Value::Int(i64::MAX), Value::Int(1)]), Value::Null);
        assert_eq!(Func::IntDiv.apply(&[Value::Int(i64::MIN), Value::Int(-1)]), Value::Null);
        assert_eq!(Func::IntDiv.apply(&[Value::Int(7), Value::Int(0)]), Value::Null);
        assert_eq!(Func::IntDiv.apply(&[Value::Int(-7), Value::Int(2)]), Value::Int(-3));
        assert_eq!(Func::Rem.apply(&[Value::Float(5.5), Value::Int(2)]), Value::Float(1.5));
        assert_eq!(Func::Sqrt.apply(&[Value::Int(-1)]), Value::Null);
        assert_eq!(Func::Abs.apply(&[Value::Int(i64::MIN)]), Value::Null);
        assert_eq!(Func::Substring.apply(&[Value::from("héllo"), Value::Int(1), Value::Int(3)]), Value::from("éll"));
        assert_eq!(Func::Length.apply(&[Value::from("日本")]), Value::Int(2));
        assert_eq!(Func::Upper.apply(&[Value::from("straße")]), Value::from("STRASSE"));
        assert_eq!(
            Func::Split.apply(&[Value::from("a,b"), Value::from(",")]),
            Value::Json(serde_json::json!(["a", "b"]))
        );
        assert_eq!(Func::Round.apply(&[Value::Float(2.5), Value::Int(0)]), Value::Float(3.0));
        assert_eq!(Func::Round.apply(&[Value::Int(-150), Value::Int(-2)]), Value::Int(-200));
        assert_eq!(cast(&Value::from(" 42 "), ColumnType::Int), Value::Int(42));
        assert_eq!(cast(&Value::Float(1e300), ColumnType::Int), Value::Null);
    }
}
