//! Named advisory locks: `_tabula_locks`, one row a held lock, created on first use (older
//! catalogs simply do not have it yet). A row names its holder (process, its start time,
//! host), when it was taken, when its lease expires, a token only the holder knows, and an
//! optional note the holder leaves for whoever takes the lock after it died.
//!
//! This module only reads and writes rows; whether a holder is gone is decided by
//! `catalog::lock`, which owns the rules.

use rusqlite::{params, OptionalExtension};

use super::Tx;
use crate::error::Result;

const CREATE_LOCKS: &str = "CREATE TABLE IF NOT EXISTS _tabula_locks(
    name TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_start INTEGER NOT NULL,
    host TEXT NOT NULL,
    since_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    note TEXT) WITHOUT ROWID";

/// One held lock, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockRow {
    pub(crate) name: String,
    pub(crate) token: String,
    pub(crate) pid: i64,
    pub(crate) process_start: i64,
    pub(crate) host: String,
    pub(crate) since_us: i64,
    pub(crate) expires_us: i64,
    pub(crate) note: Option<String>,
}

impl Tx<'_> {
    fn has_locks_table(&self) -> Result<bool> {
        let n: i64 = self
            .tx
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = '_tabula_locks'", [], |r| r.get(0))
            .map_err(|e| self.fail(e))?;
        Ok(n > 0)
    }

    /// The row of lock `name`, if someone holds (or held and died holding) it.
    pub(crate) fn lock_row(&self, name: &str) -> Result<Option<LockRow>> {
        if !self.has_locks_table()? {
            return Ok(None);
        }
        self.tx
            .query_row(
                "SELECT name, token, pid, process_start, host, since_us, expires_us, note
                 FROM _tabula_locks WHERE name = ?1",
                [name],
                |r| {
                    Ok(LockRow {
                        name: r.get(0)?,
                        token: r.get(1)?,
                        pid: r.get(2)?,
                        process_start: r.get(3)?,
                        host: r.get(4)?,
                        since_us: r.get(5)?,
                        expires_us: r.get(6)?,
                        note: r.get(7)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// Writes `row` as the holder of its lock (replacing a stale holder's row).
    pub(crate) fn put_lock(&self, row: &LockRow) -> Result<()> {
        self.tx.execute_batch(CREATE_LOCKS).map_err(|e| self.fail(e))?;
        self.tx
            .execute(
                "INSERT OR REPLACE INTO _tabula_locks(name, token, pid, process_start, host, since_us, expires_us, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![row.name, row.token, row.pid, row.process_start, row.host, row.since_us, row.expires_us, row.note],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Sets the lease end and the note of lock `name` if `token` still holds it; false when
    /// it does not (the lock was taken over).
    pub(crate) fn touch_lock(&self, name: &str, token: &str, expires_us: i64, note: Option<&str>) -> Result<bool> {
        if !self.has_locks_table()? {
            return Ok(false);
        }
        let n = self
            .tx
            .execute(
                "UPDATE _tabula_locks SET expires_us = ?3, note = ?4 WHERE name = ?1 AND token = ?2",
                params![name, token, expires_us, note],
            )
            .map_err(|e| self.fail(e))?;
        Ok(n == 1)
    }

    /// Removes lock `name` if `token` holds it; false when it does not.
    pub(crate) fn delete_lock(&self, name: &str, token: &str) -> Result<bool> {
        if !self.has_locks_table()? {
            return Ok(false);
        }
        let n = self
            .tx
            .execute("DELETE FROM _tabula_locks WHERE name = ?1 AND token = ?2", params![name, token])
            .map_err(|e| self.fail(e))?;
        Ok(n == 1)
    }
}
