//! Remembered UDF results: what a UDF returned for given arguments, kept beside the catalog
//! so a result is paid for once. A cache, not table data: it lives in a file of its own
//! (`<catalog>.results`), or for a catalog on a server in its schema's `_tabula_results`,
//! with its own connection, so each result is committed the moment it is computed, outside
//! the write that uses it. A killed or failed add, run again (in any process, on any host of
//! a server catalog), finds what it had already paid for; a preview's results serve the add
//! that follows.

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
    /// The table `_tabula_results` of a catalog on a PostgreSQL server (its URL).
    #[cfg(feature = "postgres")]
    Server(String),
}

/// The table of remembered results on a server.
#[cfg(feature = "postgres")]
const SERVER_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS _tabula_results(
    udf TEXT COLLATE \"C\" NOT NULL, version BIGINT NOT NULL, args BYTEA NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (udf, version, args))";

/// The connection remembered results are read and written on.
enum Conn {
    Sqlite(Connection),
    #[cfg(feature = "postgres")]
    Server(postgres::Client),
}

/// The remembered results of one catalog handle (and its clones); opened on first use.
pub(crate) struct Results {
    at: ResultsAt,
    conn: Mutex<Option<Conn>>,
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

    /// Runs `sqlite` on a SQLite connection, or `server` on a server's, opened the first time.
    fn with<T>(
        &self,
        sqlite: impl FnOnce(&Connection) -> rusqlite::Result<T>,
        #[cfg(feature = "postgres")] mut server: impl FnMut(
            &mut postgres::Client,
        ) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if conn.is_none() {
            *conn = Some(self.open()?);
        }
        #[cfg(feature = "postgres")]
        if let Some(Conn::Server(c)) = conn.as_mut() {
            match server(c) {
                Ok(v) => return Ok(v),
                // The server ended the connection (a restart, an idle timeout): each statement
                // here commits alone and means the same run twice, so a new one runs it again.
                Err(_) if c.is_closed() => {}
                Err(e) => return Err(self.server_fail(e)),
            }
            *conn = Some(self.open()?);
            if let Some(Conn::Server(c)) = conn.as_mut() {
                return server(c).map_err(|e| self.server_fail(e));
            }
        }
        match conn.as_mut() {
            Some(Conn::Sqlite(c)) => sqlite(c).map_err(|e| self.fail(e)),
            _ => Err(err!(Storage, "remembered UDF results: no connection")),
        }
    }

    #[cfg(feature = "postgres")]
    fn server_fail(&self, e: postgres::Error) -> crate::error::Error {
        let e = super::pg::pg_error(&self.shown(), e);
        err!(Storage, "remembered UDF results: {e} (they are only a cache: drop _tabula_results to start afresh)")
    }

    fn open(&self) -> Result<Conn> {
        match &self.at {
            ResultsAt::File(path) => Connection::open(path)
                .and_then(|c| {
                    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
                    c.busy_timeout(std::time::Duration::from_secs(30))?;
                    c.execute_batch(SCHEMA)?;
                    Ok(Conn::Sqlite(c))
                })
                .map_err(|e| self.fail(e)),
            ResultsAt::Memory => Connection::open_in_memory()
                .and_then(|c| c.execute_batch(SCHEMA).map(|_| Conn::Sqlite(c)))
                .map_err(|e| self.fail(e)),
            #[cfg(feature = "postgres")]
            ResultsAt::Server(url) => {
                let fail = |e| super::pg::pg_error(&self.shown(), e);
                let mut client = super::tls::connect(url)?;
                if let Err(e) = client.batch_execute(SERVER_SCHEMA) {
                    // Two processes making it at once: one of them fails, and finds it made.
                    let made = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '_tabula_results'";
                    let found: i64 = client.query_one(made, &[]).map(|r| r.get(0)).unwrap_or(0);
                    if found == 0 {
                        return Err(fail(e));
                    }
                }
                Ok(Conn::Server(client))
            }
        }
    }

    /// Where the results live, as messages name it.
    fn shown(&self) -> String {
        match &self.at {
            ResultsAt::File(p) => p.display().to_string(),
            ResultsAt::Memory => ":memory:".into(),
            #[cfg(feature = "postgres")]
            ResultsAt::Server(url) => super::redacted_url(url),
        }
    }

    fn fail(&self, e: rusqlite::Error) -> crate::error::Error {
        err!(
            Storage,
            "remembered UDF results '{}': {e} (delete the file to start afresh; it is only a cache)",
            self.shown()
        )
        .with_source(e)
    }

    /// What `udf@version` returned for each of `keys`, where remembered.
    pub(crate) fn get(&self, udf: &str, version: u32, keys: &[ArgsKey]) -> Result<Vec<Option<Value>>> {
        let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        self.with(
            |c| {
                let mut stmt =
                    c.prepare_cached("SELECT value FROM results WHERE udf = ?1 AND version = ?2 AND args = ?3")?;
                keys.iter()
                    .map(|k| Ok(parse(stmt.query_row(params![udf, version, &k[..]], |r| r.get(0)).optional()?)))
                    .collect()
            },
            // One query for all the keys.
            #[cfg(feature = "postgres")]
            |c| {
                let args: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                let rows = c.query(
                    "SELECT args, value FROM _tabula_results WHERE udf = $1 AND version = $2 AND args = ANY($3)",
                    &[&udf, &i64::from(version), &args],
                )?;
                let mut found = std::collections::HashMap::with_capacity(rows.len());
                for row in rows {
                    found.insert(row.try_get::<_, Vec<u8>>(0)?, row.try_get::<_, String>(1)?);
                }
                Ok(keys.iter().map(|k| parse(found.remove(&k[..]))).collect())
            },
        )
    }

    /// Remembers that `udf@version` returned `value` for `key` (committed at once).
    pub(crate) fn put(&self, udf: &str, version: u32, key: &ArgsKey, value: &Value) -> Result<()> {
        let text = serde_json::to_string(value).map_err(|e| err!(Storage, "could not keep a UDF result ({e})"))?;
        self.with(
            |c| {
                c.prepare_cached("INSERT OR REPLACE INTO results(udf, version, args, value) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![udf, version, &key[..], text])
                    .map(|_| ())
            },
            #[cfg(feature = "postgres")]
            |c| {
                c.execute(
                    "INSERT INTO _tabula_results(udf, version, args, value) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (udf, version, args) DO UPDATE SET value = excluded.value",
                    &[&udf, &i64::from(version), &&key[..], &text],
                )
                .map(|_| ())
            },
        )
    }

    /// Forgets the results of `udf` (name and version), or of every UDF; returns how many
    /// went.
    pub(crate) fn clear(&self, udf: Option<(&str, u32)>) -> Result<u64> {
        self.with(
            |c| {
                let n = match udf {
                    None => c.execute("DELETE FROM results", [])?,
                    Some((name, v)) => {
                        c.execute("DELETE FROM results WHERE udf = ?1 AND version = ?2", params![name, v])?
                    }
                };
                Ok(n as u64)
            },
            #[cfg(feature = "postgres")]
            |c| match udf {
                None => c.execute("DELETE FROM _tabula_results", &[]),
                Some((name, v)) => {
                    c.execute("DELETE FROM _tabula_results WHERE udf = $1 AND version = $2", &[&name, &i64::from(v)])
                }
            },
        )
    }

    /// Forgets the results of every UDF version not in `keep`; returns how many went.
    pub(crate) fn keep_only(&self, keep: &[(String, u32)]) -> Result<u64> {
        self.with(
            |c| {
                let mut stmt = c.prepare("SELECT DISTINCT udf, version FROM results")?;
                let present: Vec<(String, u32)> =
                    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
                let mut gone = 0;
                for (name, version) in present.iter().filter(|p| !keep.contains(p)) {
                    gone += c.execute("DELETE FROM results WHERE udf = ?1 AND version = ?2", params![name, version])?;
                }
                Ok(gone as u64)
            },
            #[cfg(feature = "postgres")]
            |c| {
                let present = c.query("SELECT DISTINCT udf, version FROM _tabula_results", &[])?;
                let mut gone = 0;
                for row in present {
                    let (name, version): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
                    if !keep.iter().any(|(n, v)| *n == name && i64::from(*v) == version) {
                        gone += c.execute(
                            "DELETE FROM _tabula_results WHERE udf = $1 AND version = $2",
                            &[&name, &version],
                        )?;
                    }
                }
                Ok(gone)
            },
        )
    }
}
