//! [`TestEnv`]: a catalog for one test — a temporary file removed on drop, an in-memory one,
//! or a copy of a template catalog that is built once per key (also across parallel test
//! processes) and copied for each test in milliseconds.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::path::{Path as FsPath, PathBuf};

use tabula::{Catalog, Error, ErrorCode, Result};

/// A catalog owned by one test.
pub struct TestEnv {
    catalog: Catalog,
    // Dropped after the catalog (fields drop in order), so the file is closed first.
    dir: Option<tempfile::TempDir>,
}

fn io(what: &str, path: &FsPath, e: std::io::Error) -> Error {
    Error::new(ErrorCode::Storage, format!("{what} '{}': {e}", path.display()))
}

impl TestEnv {
    /// A catalog in a new temporary file, deleted when the `TestEnv` is dropped.
    pub fn new() -> Result<TestEnv> {
        let dir = tempdir()?;
        let catalog = Catalog::open(dir.path().join("catalog.db"))?;
        Ok(TestEnv { catalog, dir: Some(dir) })
    }

    /// A private in-memory catalog.
    pub fn in_memory() -> Result<TestEnv> {
        Ok(TestEnv { catalog: Catalog::in_memory()?, dir: None })
    }

    /// A copy of the template catalog for `key`, built by `setup` the first time the key is
    /// seen (in this process or any other: a file lock makes one builder, the others wait).
    ///
    /// Make the key from what the setup depends on, typically the migration set's
    /// fingerprint and the data seed, so a change rebuilds the template. The template lives
    /// in the system's temp directory under `tabula-templates/`.
    pub fn from_template(key: impl Hash, setup: impl FnOnce(&Catalog) -> Result<()>) -> Result<TestEnv> {
        let template = template_path(&key)?;
        ensure_template(&template, setup)?;
        let dir = tempdir()?;
        let dest = dir.path().join("catalog.db");
        fs::copy(&template, &dest).map_err(|e| io("copying template", &template, e))?;
        let catalog = Catalog::open(&dest)?;
        Ok(TestEnv { catalog, dir: Some(dir) })
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The catalog's file (`None` for an in-memory catalog).
    pub fn file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("catalog.db"))
    }
}

fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("tabula-test-")
        .tempdir()
        .map_err(|e| Error::new(ErrorCode::Storage, format!("could not create a temporary directory: {e}")))
}

/// A hasher whose output does not depend on the Rust version or the process (FNV-1a), so
/// every test process agrees on the template's file name.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// Where the template catalog for `key` is kept (delete the file to force a rebuild). The
/// key is combined with Tabula's format version and this crate's version.
pub fn template_file(key: impl Hash) -> Result<PathBuf> {
    template_path(&key)
}

fn template_path(key: &impl Hash) -> Result<PathBuf> {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    key.hash(&mut h);
    tabula::FORMAT_VERSION.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    let dir = std::env::temp_dir().join("tabula-templates");
    fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
    Ok(dir.join(format!("{:016x}.db", h.finish())))
}

/// Builds the template at `path` unless it exists; one builder at a time across processes.
fn ensure_template(path: &FsPath, setup: impl FnOnce(&Catalog) -> Result<()>) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let lock_path = path.with_extension("lock");
    let lock = File::create(&lock_path).map_err(|e| io("creating lock", &lock_path, e))?;
    lock.lock().map_err(|e| io("locking", &lock_path, e))?;
    let built = if path.exists() {
        Ok(())
    } else {
        // Build in a scratch file, then copy it whole (backup API) and rename into place,
        // so no reader ever sees a half-built template.
        let scratch = tempdir()?;
        let catalog = Catalog::open(scratch.path().join("build.db"))?;
        setup(&catalog).map_err(|e| e.context("building the test template"))?;
        let partial = path.with_extension(format!("partial{}", std::process::id()));
        catalog.backup_to(&partial)?;
        fs::rename(&partial, path).map_err(|e| io("installing template", path, e))
    };
    let _ = lock.unlock();
    built
}
