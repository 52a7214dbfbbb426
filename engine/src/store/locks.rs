//! Named advisory locks: `_tabula_locks`, one row a held lock, created on first use (older
//! catalogs simply do not have it yet). A row names its holder (process, its start time,
//! host), when it was taken, when its lease expires, a token only the holder knows, and an
//! optional note the holder leaves for whoever takes the lock after it died.
//!
//! This module only reads and writes rows; whether a holder is gone is decided by
//! `catalog::lock`, which owns the rules.

use super::Tx;
use crate::error::Result;

pub(super) const CREATE_LOCKS: &str = "CREATE TABLE IF NOT EXISTS _tabula_locks(
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
        // A server catalog has it from its creation.
        if self.on_server() {
            return Ok(true);
        }
        let n: i64 = self
            .sqlite()?
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = '_tabula_locks'", [], |r| r.get(0))
            .map_err(|e| self.fail(e))?;
        Ok(n > 0)
    }

    /// The row of lock `name`, if someone holds (or held and died holding) it.
    pub(crate) fn lock_row(&self, name: &str) -> Result<Option<LockRow>> {
        if !self.has_locks_table()? {
            return Ok(None);
        }
        let row = self.query_row(
            "SELECT name, token, pid, process_start, host, since_us, expires_us, note
             FROM _tabula_locks WHERE name = ?1",
            &[name.into()],
            8,
        )?;
        row.map(|r| {
            Ok(LockRow {
                name: r.text(0)?,
                token: r.text(1)?,
                pid: r.int(2)?,
                process_start: r.int(3)?,
                host: r.text(4)?,
                since_us: r.int(5)?,
                expires_us: r.int(6)?,
                note: r.opt_text(7)?,
            })
        })
        .transpose()
    }

    /// Writes `row` as the holder of its lock (replacing a stale holder's row).
    pub(crate) fn put_lock(&self, row: &LockRow) -> Result<()> {
        if !self.on_server() {
            self.execute_batch(CREATE_LOCKS)?;
        }
        self.execute(
            "INSERT INTO _tabula_locks(name, token, pid, process_start, host, since_us, expires_us, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(name) DO UPDATE SET token = excluded.token, pid = excluded.pid,
             process_start = excluded.process_start, host = excluded.host, since_us = excluded.since_us,
             expires_us = excluded.expires_us, note = excluded.note",
            &[
                row.name.as_str().into(),
                row.token.as_str().into(),
                row.pid.into(),
                row.process_start.into(),
                row.host.as_str().into(),
                row.since_us.into(),
                row.expires_us.into(),
                row.note.as_deref().into(),
            ],
        )?;
        Ok(())
    }

    /// Sets the lease end and the note of lock `name` if `token` still holds it; false when
    /// it does not (the lock was taken over).
    pub(crate) fn touch_lock(&self, name: &str, token: &str, expires_us: i64, note: Option<&str>) -> Result<bool> {
        if !self.has_locks_table()? {
            return Ok(false);
        }
        let n = self.execute(
            "UPDATE _tabula_locks SET expires_us = ?3, note = ?4 WHERE name = ?1 AND token = ?2",
            &[name.into(), token.into(), expires_us.into(), note.into()],
        )?;
        Ok(n == 1)
    }

    /// Removes lock `name` if `token` holds it; false when it does not.
    pub(crate) fn delete_lock(&self, name: &str, token: &str) -> Result<bool> {
        if !self.has_locks_table()? {
            return Ok(false);
        }
        let n =
            self.execute("DELETE FROM _tabula_locks WHERE name = ?1 AND token = ?2", &[name.into(), token.into()])?;
        Ok(n == 1)
    }
}
