//! [`OpenOptions`]: how a catalog file is opened. Creating and opening are distinct, so a
//! mistyped path is an error instead of a new, empty catalog; durability and the busy
//! timeout are said, not assumed.

use std::time::Duration;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::store::{Opening, Store};

/// Whether opening may (or must) create the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Create {
    /// Open the file, creating a new catalog when it does not exist ([`Catalog::open`]).
    #[default]
    IfMissing,
    /// Open an existing catalog; a missing file is [`NotFound`](crate::ErrorCode::NotFound)
    /// ([`Catalog::open_existing`]): what a service wants, so a wrong path fails at start.
    Never,
    /// Create a new catalog; an existing file is
    /// [`AlreadyExists`](crate::ErrorCode::AlreadyExists) ([`Catalog::create`]).
    New,
}

/// What a committed write survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// A crash of the process (SQLite `synchronous=NORMAL` in WAL mode): the default. The
    /// file is always consistent; a power loss or OS crash may lose the last commits.
    #[default]
    Normal,
    /// A power loss too (`synchronous=FULL`): every commit waits for the disk. Slower.
    Full,
}

/// How many bytes of a catalog file reads map into memory by default; see
/// [`OpenOptions::memory_map`].
const DEFAULT_MEMORY_MAP: u64 = 64 << 20;

/// How [`Catalog`] files are opened: `OpenOptions::new().durability(Durability::Full).open(path)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    create: Create,
    durability: Durability,
    busy_timeout: Duration,
    read_only: bool,
    memory_map: u64,
    copy_fills_from: u64,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// The defaults: create when missing, [`Durability::Normal`], a 30 s busy timeout, read
    /// and write, the first 64 MiB of the file mapped for reading.
    pub fn new() -> OpenOptions {
        OpenOptions {
            create: Create::IfMissing,
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(30),
            read_only: false,
            memory_map: DEFAULT_MEMORY_MAP,
            copy_fills_from: crate::store::REBUILD_FROM,
        }
    }

    /// Whether the file may or must be created.
    pub fn create(mut self, create: Create) -> OpenOptions {
        self.create = create;
        self
    }

    /// What a committed write survives.
    pub fn durability(mut self, durability: Durability) -> OpenOptions {
        self.durability = durability;
        self
    }

    /// How long a write waits for another process's write before failing with
    /// [`Busy`](crate::ErrorCode::Busy).
    pub fn busy_timeout(mut self, timeout: Duration) -> OpenOptions {
        self.busy_timeout = timeout;
        self
    }

    /// How many bytes of the file reads map into memory (SQLite's `mmap_size`); 0 reads
    /// every page with `read()`. Mapped pages are read in place: a read of a page that is
    /// not mapped copies it from the OS's cache and allocates under a lock all of SQLite
    /// shares, so mapping makes reads faster and lets reads on several threads scale (two
    /// threads: 1.5x one thread's throughput unmapped, 1.8x mapped). The price: an I/O error
    /// on a mapped page (a failing disk, a network file system going away) stops the process
    /// with `SIGBUS` instead of returning an error (set 0 for a catalog on such storage),
    /// and the mapped pages count in the process's RSS (they are the OS's file cache, which
    /// it can drop at any time): the default of 64 MiB bounds that.
    pub fn memory_map(mut self, bytes: u64) -> OpenOptions {
        self.memory_map = bytes;
        self
    }

    /// On a PostgreSQL server, from how many live rows (10,000 by default) a fresh computed
    /// column is filled by copying its table into a new physical table with the column
    /// filled, which then takes its place, rather than by updating every row: an `UPDATE`
    /// writes each row anew and leaves the old version dead (100,000 rows: 294 ms in place,
    /// 172 by copy). A copy needs room for a second copy of the table until the readers
    /// that began before it end; `u64::MAX` keeps every fill in place. A file is always
    /// filled in place (SQLite updates rows where they are).
    pub fn copy_fills_from(mut self, rows: u64) -> OpenOptions {
        self.copy_fills_from = rows;
        self
    }

    /// Reads only (see [`Catalog::open_read_only`]); implies [`Create::Never`].
    pub fn read_only(mut self) -> OpenOptions {
        self.read_only = true;
        self
    }

    /// Connects to the catalog on a PostgreSQL server `url` names (see [`Catalog::connect`])
    /// with these options: [`read_only`](Self::read_only) (as
    /// [`Catalog::connect_read_only`]) and [`busy_timeout`](Self::busy_timeout), how long a
    /// write waits for another writer of the catalog, on any host. (Durability is the
    /// server's; nothing is mapped; `create` is not used: a writable connection makes the
    /// schema a catalog when it has none.)
    #[cfg(feature = "postgres")]
    pub fn connect(&self, url: &str) -> Result<Catalog> {
        Catalog::from_store(Store::connect(
            url,
            self.read_only,
            self.busy_timeout,
            self.copy_fills_from,
            crate::eval::holds,
        )?)
    }

    /// Opens the catalog at `path` with these options.
    pub fn open(&self, path: impl AsRef<std::path::Path>) -> Result<Catalog> {
        let opening = Opening {
            read_only: self.read_only,
            must_exist: self.read_only || self.create == Create::Never,
            must_be_new: !self.read_only && self.create == Create::New,
            full_sync: self.durability == Durability::Full,
            busy_timeout: self.busy_timeout,
            mmap_size: self.memory_map,
        };
        Catalog::from_store(Store::open(path.as_ref(), opening)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_sets_what_sqlite_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let normal = Catalog::open(dir.path().join("a.db")).unwrap();
        assert_eq!(normal.store().pragma("synchronous").unwrap().0, 1, "NORMAL");
        let full = OpenOptions::new().durability(Durability::Full).open(dir.path().join("b.db")).unwrap();
        assert_eq!(full.store().pragma("synchronous").unwrap().0, 2, "FULL");
    }

    #[test]
    fn memory_map_sets_every_connections_mmap_size() {
        let dir = tempfile::tempdir().unwrap();
        let default = Catalog::open(dir.path().join("a.db")).unwrap();
        assert_eq!(default.store().pragma("mmap_size").unwrap(), (64 << 20, Some(64 << 20)));
        let off = OpenOptions::new().memory_map(0).open(dir.path().join("b.db")).unwrap();
        assert_eq!(off.store().pragma("mmap_size").unwrap(), (0, Some(0)));
    }
}
