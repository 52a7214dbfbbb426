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

/// How [`Catalog`] files are opened: `OpenOptions::new().durability(Durability::Full).open(path)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    create: Create,
    durability: Durability,
    busy_timeout: Duration,
    read_only: bool,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// The defaults: create when missing, [`Durability::Normal`], a 30 s busy timeout, read
    /// and write.
    pub fn new() -> OpenOptions {
        OpenOptions {
            create: Create::IfMissing,
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(30),
            read_only: false,
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

    /// Reads only (see [`Catalog::open_read_only`]); implies [`Create::Never`].
    pub fn read_only(mut self) -> OpenOptions {
        self.read_only = true;
        self
    }

    /// Opens the catalog at `path` with these options.
    pub fn open(&self, path: impl AsRef<std::path::Path>) -> Result<Catalog> {
        let opening = Opening {
            read_only: self.read_only,
            must_exist: self.read_only || self.create == Create::Never,
            must_be_new: !self.read_only && self.create == Create::New,
            full_sync: self.durability == Durability::Full,
            busy_timeout: self.busy_timeout,
        };
        Catalog::from_store(Store::open(path.as_ref(), opening)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `synchronous` of the connection that writes (what durability is about).
    fn synchronous(cat: &Catalog) -> i64 {
        cat.store().synchronous().unwrap()
    }

    #[test]
    fn durability_sets_what_sqlite_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let normal = Catalog::open(dir.path().join("a.db")).unwrap();
        assert_eq!(synchronous(&normal), 1, "NORMAL");
        let full = OpenOptions::new().durability(Durability::Full).open(dir.path().join("b.db")).unwrap();
        assert_eq!(synchronous(&full), 2, "FULL");
    }
}
