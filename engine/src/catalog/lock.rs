//! Named advisory locks on a catalog ([`Catalog::lock`]): one holder at a time across
//! threads, handles and processes, for work that spans several calls (applying migrations).
//!
//! A lock is a row in the catalog with a lease. Its holder is identified by process id,
//! process start time and host, so a lock never needs a person to clear it:
//! - on the holder's own host, a holder whose process is gone (or whose pid now belongs to
//!   another process) has released it, whatever its lease says; a live holder keeps it;
//! - from another host, or where processes cannot be checked (see [`crate::process`]), the
//!   lock is free once its lease has expired. The holder renews the lease with [`CatalogLock::renew`].
//!
//! A holder may leave a note ([`CatalogLock::set_note`]): what it is in the middle of. The
//! next holder after one that died reads it from [`CatalogLock::taken_over`] and can finish
//! or undo that work. Releasing the lock clears the note.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::error::ErrorCode;
use crate::error::{err, Result};
use crate::process::Holder;
use crate::store::{now_micros, LockRow};
use crate::types::format_timestamp;

/// How long to wait for a lock and how long a lease lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// How long [`Catalog::lock`] waits for another holder before failing with
    /// [`ErrorCode::Busy`]. Default: 60 s.
    pub wait: Duration,
    /// How long the lock stays held without a [`CatalogLock::renew`] when its holder cannot be
    /// checked directly (another host). Default: 5 minutes.
    pub lease: Duration,
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions { wait: Duration::from_secs(60), lease: Duration::from_secs(300) }
    }
}

/// Who holds (or held) a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// The lock's name.
    pub name: String,
    /// The holder's process id.
    pub pid: i64,
    /// The holder's host name.
    pub host: String,
    /// When it took the lock, in microseconds since the epoch.
    pub since_us: i64,
    /// When its lease ends, in microseconds since the epoch.
    pub expires_us: i64,
    /// What the holder said it was doing, if anything.
    pub note: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} on host '{}' since {}", self.pid, self.host, format_timestamp(self.since_us))
    }
}

impl From<LockRow> for LockHolder {
    fn from(r: LockRow) -> LockHolder {
        LockHolder {
            name: r.name,
            pid: r.pid,
            host: r.host,
            since_us: r.since_us,
            expires_us: r.expires_us,
            note: r.note,
        }
    }
}

/// A held lock: released when dropped (or by [`CatalogLock::release`]).
#[must_use = "the lock is released as soon as this value is dropped"]
pub struct CatalogLock {
    catalog: Catalog,
    name: String,
    token: String,
    lease: Duration,
    taken_over: Option<LockHolder>,
    released: bool,
}

impl std::fmt::Debug for CatalogLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CatalogLock({})", self.name)
    }
}

/// Whether a lock was taken or who holds it.
#[derive(Debug)]
pub enum TryLock {
    /// Taken.
    Taken(CatalogLock),
    /// Someone else holds it.
    Held(LockHolder),
}

static TOKENS: AtomicU64 = AtomicU64::new(0);

impl Catalog {
    /// Takes the advisory lock `name`, waiting up to `options.wait` while another live holder
    /// has it. Fails with [`ErrorCode::Busy`] naming the holder when the wait runs out, and
    /// with [`ErrorCode::ReadOnly`] on a read-only catalog. Not re-entrant: a second `lock` of
    /// the same name in the same process waits like any other.
    pub fn lock(&self, name: &str, options: LockOptions) -> Result<CatalogLock> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let last = match self.try_lock(name, options.lease) {
                Ok(TryLock::Taken(lock)) => return Ok(lock),
                Ok(TryLock::Held(holder)) => Some(holder),
                // Another writer kept the catalog busy past its busy timeout: keep waiting.
                Err(e) if e.code() == ErrorCode::Busy => None,
                Err(e) => return Err(e),
            };
            if started.elapsed() >= options.wait {
                let who = last.map(|h| h.to_string()).unwrap_or_else(|| "another writer".into());
                return Err(err!(
                    Busy,
                    "lock '{name}' on catalog '{}' is held by {who}; waited {:.1} s. It is released when that \
                     process ends or finishes; wait longer with LockOptions::wait",
                    self.location(),
                    started.elapsed().as_secs_f64()
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Takes the lock `name` if it is free (or its holder is gone), without waiting.
    pub fn try_lock(&self, name: &str, lease: Duration) -> Result<TryLock> {
        let me = Holder::current();
        let token = format!("{}-{}-{}-{}", me.pid, me.started, now_micros(), TOKENS.fetch_add(1, Ordering::Relaxed));
        let taken = self.store().write(|tx| {
            let old = tx.lock_row(name)?;
            if let Some(old) = &old {
                if !gone(old) {
                    return Ok(Err(LockHolder::from(old.clone())));
                }
            }
            let now = now_micros();
            tx.put_lock(&LockRow {
                name: name.to_string(),
                token: token.clone(),
                pid: me.pid,
                process_start: me.started,
                host: me.host.clone(),
                since_us: now,
                expires_us: now.saturating_add(micros(lease)),
                note: None,
            })?;
            Ok(Ok(old.map(LockHolder::from)))
        })?;
        Ok(match taken {
            Ok(taken_over) => TryLock::Taken(CatalogLock {
                catalog: self.clone(),
                name: name.to_string(),
                token,
                lease,
                taken_over,
                released: false,
            }),
            Err(holder) => TryLock::Held(holder),
        })
    }

    /// Who holds the lock `name` now, if anyone (a holder that died still shows until the
    /// lock is taken again).
    pub fn lock_holder(&self, name: &str) -> Result<Option<LockHolder>> {
        Ok(self.store().read(|tx| tx.lock_row(name))?.map(LockHolder::from))
    }
}

impl CatalogLock {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The holder this lock was taken from because it had died or its lease had run out,
    /// with the note it left (what it was in the middle of).
    pub fn taken_over(&self) -> Option<&LockHolder> {
        self.taken_over.as_ref()
    }

    /// Extends the lease by its full length from now.
    pub fn renew(&self) -> Result<()> {
        self.touch(None, false)
    }

    /// Records what the holder is doing (or clears it with `None`), for whoever takes the
    /// lock if this process dies; also renews the lease.
    pub fn set_note(&self, note: Option<&str>) -> Result<()> {
        self.touch(note, true)
    }

    fn touch(&self, note: Option<&str>, set_note: bool) -> Result<()> {
        let expires = now_micros().saturating_add(micros(self.lease));
        let held = self.catalog.store().write(|tx| {
            let note = match set_note {
                true => note.map(str::to_string),
                false => tx.lock_row(&self.name)?.and_then(|r| r.note),
            };
            tx.touch_lock(&self.name, &self.token, expires, note.as_deref())
        })?;
        match held {
            true => Ok(()),
            false => Err(err!(
                Conflict,
                "lock '{}' was taken over by another process (its lease ran out); stop and start again",
                self.name
            )),
        }
    }

    /// Leaves the lock held, with its note, until this process ends (or, seen from another
    /// host, its lease runs out): for work that failed halfway and could not be undone, so
    /// that the next holder finds the note and deals with it, instead of a released lock
    /// that hides it.
    pub fn abandon(mut self) {
        self.released = true;
    }

    /// Releases the lock now, reporting a failure (dropping it does the same, silently).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.catalog.store().write(|tx| tx.delete_lock(&self.name, &self.token)).map(|_| ())
    }
}

impl Drop for CatalogLock {
    fn drop(&mut self) {
        if !self.released {
            // A lock that cannot be released here is released when this process ends.
            let _ = self.catalog.store().write(|tx| tx.delete_lock(&self.name, &self.token));
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// True when the holder of `row` is certainly gone: its process no longer runs (checked on
/// its own host), or its lease ran out.
fn gone(row: &LockRow) -> bool {
    let holder = Holder { pid: row.pid, started: row.process_start, host: row.host.clone() };
    holder.is_gone().unwrap_or(row.expires_us < now_micros())
}
