//! Integration tests of the `tabula` engine: one binary, one module an area.
#![allow(clippy::unwrap_used)]

mod catalog;
mod computed;
mod concurrency;
mod derived;
mod equivalence;
mod expensive;
mod keys;
mod locks;
mod model;
mod query;
mod reliability;
mod rows;
mod tidy;
mod versions;

use tabula::{row, Catalog, ColumnType, IfExists, Recursive, Schema, Table};

/// Makes `path` an empty catalog file as a Tabula before format 5 created it: its live rows
/// are marked with `_vmax = i64::MAX` (there is no `live_vmax` key), and its format is 4.
/// Such files stay in that layout for good; tests of older formats start from one.
pub fn format_4_file(path: &std::path::Path) {
    drop(Catalog::open(path).unwrap());
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "DELETE FROM _tabula_meta WHERE key = 'live_vmax';
         UPDATE _tabula_meta SET value = '4' WHERE key = 'format_version'",
    )
    .unwrap();
}

/// A fresh catalog with directory `app`: in memory, or, when `TABULA_TEST_POSTGRES` names a
/// PostgreSQL server, in a new schema of its database (the suite on the second backend),
/// dropped when the test passes (see [`scratch_catalog`]).
pub fn catalog() -> Scratch {
    let cat = scratch_catalog(tabula::OpenOptions::new());
    cat.create_dir("app", IfExists::Error).unwrap();
    cat
}

/// A fresh empty catalog: in memory, or in a new schema of the test server connected with
/// `options` (which a memory catalog ignores), dropped with the catalog unless the test is
/// failing (that one stays to look at, until a later run reaps it).
pub fn scratch_catalog(options: tabula::OpenOptions) -> Scratch {
    let (cat, schema) = fresh_catalog(options);
    Scratch { cat, schema }
}

/// See [`scratch_catalog`].
pub struct Scratch {
    cat: Catalog,
    /// The server's URL and the catalog's schema there.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    schema: Option<(String, String)>,
}

impl Scratch {
    /// A catalog file's, which its test's temporary directory takes with it.
    pub fn file(cat: Catalog) -> Scratch {
        Scratch { cat, schema: None }
    }
}

impl std::ops::Deref for Scratch {
    type Target = Catalog;
    fn deref(&self) -> &Catalog {
        &self.cat
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        #[cfg(feature = "postgres")]
        if let (Some((url, schema)), false) = (&self.schema, std::thread::panicking()) {
            // Best effort: the reaper drops what is left.
            if let Ok(mut admin) = postgres::Client::connect(url, postgres::NoTls) {
                // A session of the test still in a transaction there keeps it for the reaper.
                let drop = format!("SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {schema} CASCADE");
                let _ = admin.batch_execute(&drop);
            }
        }
    }
}

/// The URL of the test server, when `TABULA_TEST_POSTGRES` names one (and the backend is
/// built): the suite then runs on it.
pub fn test_server() -> Option<String> {
    let url = std::env::var("TABULA_TEST_POSTGRES").map(|u| u.trim().to_string()).unwrap_or_default();
    (cfg!(feature = "postgres") && !url.is_empty()).then_some(url)
}

/// A fresh empty catalog, in memory or in a new schema of the test server (then with the
/// URL and the schema).
fn fresh_catalog(options: tabula::OpenOptions) -> (Catalog, Option<(String, String)>) {
    #[cfg(feature = "postgres")]
    if let Some(url) = test_server() {
        let (cat, schema) = server_catalog(&url, options);
        return (cat, Some((url, schema)));
    }
    let _ = options;
    (Catalog::in_memory().unwrap(), None)
}

/// Whether `cat` is on a PostgreSQL server (the few differences the suite checks as such).
pub fn on_server(cat: &Catalog) -> bool {
    cat.location().starts_with("postgres")
}

/// A catalog in a new schema `it_<unix seconds>_<pid>_<n>` of the server's database. The
/// first in a process drops the schemas of runs that began over an hour ago (a failed
/// test's schema is left to look at; see [`Scratch`]), so that a long-lived server does not
/// collect them.
#[cfg(feature = "postgres")]
fn server_catalog(url: &str, options: tabula::OpenOptions) -> (Catalog, String) {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static REAPED: std::sync::Once = std::sync::Once::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("the test server answers");
    REAPED.call_once(|| {
        let sql = "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^it_[0-9]+_[0-9]+(_[0-9]+)?$'";
        for row in client.query(sql, &[]).expect("the server's schemas") {
            let name: String = row.get(0);
            let parts: Vec<&str> = name.split('_').collect();
            // `it_<pid>_<n>`: made before schemas carried their time.
            let began = if parts.len() == 4 { parts[1].parse().unwrap_or(0) } else { 0 };
            if now.saturating_sub(began) > 3_600 {
                // Best effort: another run may be dropping it too.
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
            }
        }
    });
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let schema = format!("it_{now}_{}_{n}", std::process::id());
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("a schema of its own");
    let sep = if url.contains('?') { '&' } else { '?' };
    (options.connect(&format!("{url}{sep}options=-csearch_path%3D{schema}")).unwrap(), schema)
}

/// `app/docs(title String, words Int, score Float?, draft Bool)` with three rows.
pub fn docs(cat: &Catalog) -> Table {
    let t = cat
        .create_table(
            "app/docs",
            Schema::new()
                .required("title", ColumnType::String)
                .required("words", ColumnType::Int)
                .nullable("score", ColumnType::Float)
                .required("draft", ColumnType::Bool),
            IfExists::Error,
        )
        .unwrap();
    t.insert([
        row! { "title" => "alpha", "words" => 10, "score" => 0.5, "draft" => false },
        row! { "title" => "beta", "words" => 20, "score" => None::<f64>, "draft" => true },
        row! { "title" => "gamma", "words" => 30, "score" => 2.5, "draft" => false },
    ])
    .unwrap();
    t
}

/// Everything observable in a catalog, as text: directories, tables, their descriptions,
/// histories and rows. Two equal states mean nothing changed.
pub fn state(cat: &Catalog) -> String {
    let mut out = String::new();
    for dir in cat.list_dirs("", Recursive::Yes).unwrap() {
        out.push_str(&format!("dir {dir}\n"));
    }
    for path in cat.list_tables("", Recursive::Yes).unwrap() {
        let t = cat.get_table(&path).unwrap();
        out.push_str(&t.describe().unwrap().to_string());
        for v in t.history().unwrap() {
            out.push_str(&format!("  v{} {} {}\n", v.version, v.change, v.detail));
        }
        for r in t.select_all().collect().unwrap() {
            out.push_str(&format!("  {r}\n"));
        }
    }
    out
}

/// Asserts that `call` fails with `code` and leaves the catalog exactly as it was; returns
/// the error message for further checks.
pub fn fails_cleanly<T: std::fmt::Debug>(
    cat: &Catalog,
    code: tabula::ErrorCode,
    call: impl FnOnce() -> tabula::Result<T>,
) -> String {
    let before = state(cat);
    let e = call().expect_err("the call should fail");
    assert_eq!(e.code(), code, "unexpected error: {e}");
    assert_eq!(state(cat), before, "a failed call changed the catalog: {e}");
    e.to_string()
}
