//! `proptest` strategies for rows of a schema. Values shrink toward small, readable ones
//! (0, short lowercase strings, the epoch of the generated time range), so a failing case is
//! easy to read.

use std::sync::Arc;

use proptest::collection::SizeRange;
use proptest::prelude::*;
use tabula::{ColumnType, Row, TableSchema, Value};

/// A strategy for one value of a column type (never null).
pub fn value_strategy(ty: ColumnType) -> BoxedStrategy<Value> {
    match ty {
        ColumnType::Int => prop_oneof![4 => -100i64..100, 1 => any::<i64>()].prop_map(Value::Int).boxed(),
        ColumnType::Float => prop_oneof![
            4 => (-100i32..100).prop_map(|n| f64::from(n) / 4.0),
            1 => proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
        ]
        .prop_map(Value::Float)
        .boxed(),
        ColumnType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ColumnType::String => prop_oneof![4 => "[a-z ]{0,12}", 1 => "\\PC{0,8}"].prop_map(Value::String).boxed(),
        ColumnType::Timestamp => {
            (0i64..86_400_000_000 * 365 * 5).prop_map(|t| Value::Timestamp(1_577_836_800_000_000 + t)).boxed()
        }
        ColumnType::Date => (0i32..3650).prop_map(|d| Value::Date(18_262 + d)).boxed(),
        ColumnType::Json => prop_oneof![
            (-10i64..10).prop_map(|n| serde_json::json!({ "n": n })),
            "[a-z]{0,6}".prop_map(|s| serde_json::json!([s])),
        ]
        .prop_map(Value::Json)
        .boxed(),
        ColumnType::Bytes => proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes).boxed(),
    }
}

/// A strategy for rows of the stored columns of `schema` (nullable columns are sometimes null).
pub fn row_strategy(schema: &TableSchema) -> BoxedStrategy<Row> {
    let stored: Vec<_> = schema.columns.iter().filter(|c| !c.is_computed()).collect();
    let names: Arc<[String]> = stored.iter().map(|c| c.name.clone()).collect::<Vec<_>>().into();
    let values: Vec<BoxedStrategy<Value>> = stored
        .iter()
        .map(|c| {
            let value = value_strategy(c.ty);
            if c.nullable {
                proptest::option::weighted(0.8, value).prop_map(|v| v.unwrap_or(Value::Null)).boxed()
            } else {
                value
            }
        })
        .collect();
    values.prop_map(move |values| Row::new(names.clone(), values)).boxed()
}

/// A strategy for a list of rows of `schema`.
pub fn rows_strategy(schema: &TableSchema, size: impl Into<SizeRange>) -> BoxedStrategy<Vec<Row>> {
    proptest::collection::vec(row_strategy(schema), size).boxed()
}
