//! The app's UDFs. Each change of behaviour gets a new version.

use tabula::{ColumnType, Udf, Value};

/// Dimensions of [`toy_embed`] vectors.
pub const EMBED_DIM: usize = 8;

/// `summarize@1`: the first sentence, at most 80 characters.
pub fn summarize_v1() -> Udf {
    Udf::new("summarize", 1, |body: String| first_sentence(&body))
}

/// `summarize@2`: the first sentence and the body's word count.
pub fn summarize_v2() -> Udf {
    Udf::new("summarize", 2, |body: String| {
        format!("{} ({} words)", first_sentence(&body), body.split_whitespace().count())
    })
}

fn first_sentence(body: &str) -> String {
    let first = body.split(['.', '!', '?']).next().unwrap_or("").trim();
    first.chars().take(80).collect()
}

/// `toy_embed@1`: a batch UDF standing in for a model: a normalized bag of hashed words.
pub fn toy_embed() -> Udf {
    Udf::batch("toy_embed", 1, [ColumnType::String], ColumnType::Json, |rows| {
        rows.iter()
            .map(|args| match &args[0] {
                Value::String(body) => Ok(Value::Json(embed(body))),
                other => Err(format!("toy_embed needs text, found {other}")),
            })
            .collect()
    })
}

fn embed(body: &str) -> serde_json::Value {
    let mut v = [0f64; EMBED_DIM];
    for word in body.split_whitespace() {
        let h = word
            .to_lowercase()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        v[(h % EMBED_DIM as u64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1.0);
    serde_json::Value::Array(v.iter().map(|x| serde_json::json!((x / norm * 1000.0).round() / 1000.0)).collect())
}

/// The UDFs the current code uses (one version of each).
pub(crate) fn current() -> Vec<Udf> {
    vec![summarize_v2(), toy_embed()]
}
