//! Remembered UDF results: what a UDF returned for given arguments, kept beside the catalog
//! so a result is paid for once. A cache, not table data: it lives in a file of its own
//! (`<catalog>.results`) with its own connection, so each result is committed the moment it
//! is computed, outside the write that uses it. A killed or failed add, run again, finds what
//! it had already paid for; a preview's results serve the add that follows.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{err, Result};
use crate::types::Value;

/// `value`: the result's JSON. Failures are not kept: the next call tries them again.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS results(
    udf TEXT NOT NULL, version INTEGER NOT NULL, args BLOB NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (udf, version, args)) WITHOUT ROWID";

/// Where remembered results live.
#[derive(Debug, Clone)]
pub(crate) enum ResultsAt {
    /// A file beside a catalog file.
    File(PathBuf),
    /// Memory (an in-memory or read-only catalog): for this handle's life.
    Memory,
}

/// The remembered results of one catalog handle (and its clones); opened on first use.
pub(crate) struct Results {
    at: ResultsAt,
    conn: Mutex<Option<Connection>>,
}

/// The key of one call: a hash of its arguments.
pub(crate) type ArgsKey = [u8; 32];

/// The key of a call with `args`.
pub(crate) fn args_key(args: &[Value]) -> ArgsKey {
    let mut h = blake3::Hasher::new();
    for a in args {
        // One JSON text an argument, each ended by a separator no JSON text contains.
        h.update(serde_json::to_string(a).unwrap_or_default().as_bytes());
        h.update(&[0xff]);
    }
    *h.finalize().as_bytes()
}

impl Results {
    pub(crate) fn new(at: ResultsAt) -> Results {
        Results { at, conn: Mutex::new(None) }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if conn.is_none() {
            let opened = match &self.at {
                ResultsAt::File(path) => Connection::open(path).and_then(|c| {
                    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
                    c.busy_timeout(std::time::Duration::from_secs(30))?;
                    Ok(c)
                }),
                ResultsAt::Memory => Connection::open_in_memory(),
            }
            .and_then(|c| c.execute_batch(SCHEMA).map(|_| c))
            .map_err(|e| self.fail(e))?;
            *conn = Some(opened);
        }
        match conn.as_ref() {
            Some(c) => f(c).map_err(|e| self.fail(e)),
            None => Err(err!(Storage, "remembered UDF results: no connection")),
        }
    }

    fn fail(&self, e: rusqlite::Error) -> crate::error::Error {
        let at = match &self.at {
            ResultsAt::File(p) => p.display().to_string(),
            ResultsAt::Memory => ":memory:".into(),
        };
        err!(Storage, "remembered UDF results '{at}': {e} (delete the file to start afresh; it is only a cache)")
            .with_source(e)
    }

    /// What `udf@version` returned for each of `keys`, where remembered.
    pub(crate) fn get(&self, udf: &str, version: u32, keys: &[ArgsKey]) -> Result<Vec<Option<Value>>> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT value FROM results WHERE udf = ?1 AND version = ?2 AND args = ?3")?;
            keys.iter()
                .map(|k| {
                    let text: Option<String> =
                        stmt.query_row(params![udf, version, &k[..]], |r| r.get(0)).optional()?;
                    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
                })
                .collect()
        })
    }

    /// Remembers that `udf@version` returned `value` for `key` (committed at once).
    pub(crate) fn put(&self, udf: &str, version: u32, key: &ArgsKey, value: &Value) -> Result<()> {
        let text = serde_json::to_string(value).map_err(|e| err!(Storage, "could not keep a UDF result ({e})"))?;
        self.with(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO results(udf, version, args, value) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![udf, version, &key[..], text])
                .map(|_| ())
        })
    }

    /// Forgets the results of `udf` (name and version), or of every UDF; returns how many
    /// went.
    pub(crate) fn clear(&self, udf: Option<(&str, u32)>) -> Result<u64> {
        self.with(|c| {
            let n = match udf {
                None => c.execute("DELETE FROM results", [])?,
                Some((name, v)) => {
                    c.execute("DELETE FROM results WHERE udf = ?1 AND version = ?2", params![name, v])?
                }
            };
            Ok(n as u64)
        })
    }

    /// Forgets the results of every UDF version not in `keep`; returns how many went.
    pub(crate) fn keep_only(&self, keep: &[(String, u32)]) -> Result<u64> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT DISTINCT udf, version FROM results")?;
            let present: Vec<(String, u32)> =
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            let mut gone = 0;
            for (name, version) in present.iter().filter(|p| !keep.contains(p)) {
                gone += c.execute("DELETE FROM results WHERE udf = ?1 AND version = ?2", params![name, version])?;
            }
            Ok(gone as u64)
        })
    }
}
