//! [`TestEnv`]: a catalog for one test — a temporary file removed on drop, an in-memory one,
//! or a copy of a template catalog that is built once per key (also across parallel test
//! processes) and copied for each test in milliseconds.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tabula::{Catalog, Error, ErrorCode, Result};

/// A catalog owned by one test.
pub struct TestEnv {
    catalog: Catalog,
    // Dropped after the catalog (fields drop in order), so the file is closed first.
    dir: Option<tempfile::TempDir>,
    /// For a copy on a server: its database, dropped after the catalog.
    _server: Option<ServerCopy>,
}

/// What a test owns on a PostgreSQL server, dropped with its [`TestEnv`]: a database, or a
/// schema of the server's database.
struct ServerCopy {
    admin: String,
    /// The catalog's URL (for child processes).
    url: String,
    drop: String,
}

impl Drop for ServerCopy {
    fn drop(&mut self) {
        if let Ok(mut client) = tabula::connect_server(&self.admin) {
            let _ = client.batch_execute(&self.drop);
        }
    }
}

/// A name no other test uses: `tabula_test_<pid>_<n>_<nanos>`.
fn unique_name() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("tabula_test_{}_{n}_{nanos:x}", std::process::id())
}

fn io(what: &str, path: &FsPath, e: std::io::Error) -> Error {
    Error::new(ErrorCode::Storage, format!("{what} '{}': {e}", path.display()))
}

impl TestEnv {
    /// A catalog in a new temporary file, deleted when the `TestEnv` is dropped.
    pub fn new() -> Result<TestEnv> {
        let dir = tempdir()?;
        let catalog = Catalog::open(dir.path().join("catalog.db"))?;
        Ok(TestEnv { catalog, dir: Some(dir), _server: None })
    }

    /// A private in-memory catalog.
    pub fn in_memory() -> Result<TestEnv> {
        Ok(TestEnv { catalog: Catalog::in_memory()?, dir: None, _server: None })
    }

    /// A new, empty catalog on the PostgreSQL server `url` names: a schema of its own in the
    /// URL's database (`tabula_test_<pid>_<n>_<nanos>`), dropped with the `TestEnv`.
    /// [`TestEnv::url`] gives its URL, for processes the test starts.
    pub fn on_server(url: &str) -> Result<TestEnv> {
        let name = unique_name();
        let mut admin = tabula::connect_server(url)?;
        admin.batch_execute(&format!("CREATE SCHEMA {name}")).map_err(|e| server(url, e))?;
        TestEnv::in_schema(url, &name)
    }

    /// The catalog in schema `name` of the server `url` names, the schema dropped with the
    /// `TestEnv`.
    fn in_schema(url: &str, name: &str) -> Result<TestEnv> {
        let copy = ServerCopy {
            admin: url.to_string(),
            url: with_search_path(url, name),
            drop: format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
        };
        let catalog = Catalog::connect(&copy.url)?;
        Ok(TestEnv { catalog, dir: None, _server: Some(copy) })
    }

    /// The catalog's URL, for a catalog on a server (with its password, if the server's URL
    /// had one: for the test's own processes, not for output).
    pub fn url(&self) -> Option<&str> {
        self._server.as_ref().map(|s| s.url.as_str())
    }

    /// [`TestEnv::from_template`] on a PostgreSQL server: the template is a schema of the
    /// database `url` names (`postgres://user@host/db`), built once per key (by one process,
    /// the others wait on an advisory lock), and each test gets a schema of its own copied
    /// from it, dropped with the `TestEnv`. Templates are named `tabula_tpl_<hash>` and kept
    /// ([`template_schema`] names one; drop it to rebuild).
    ///
    /// A copy is made by the server in one statement (each table created like the
    /// template's, with its indexes, and filled from it; identity sequences set to where the
    /// template's are): a 10,000-row catalog in about 25 ms on the CI server. (A copied
    /// database, `CREATE DATABASE .. TEMPLATE`, took 20 ms on an idle server but 100-350 ms
    /// after a few seconds of writes: it checkpoints and copies the catalog's files.)
    pub fn from_template_on(url: &str, key: impl Hash, setup: impl FnOnce(&Catalog) -> Result<()>) -> Result<TestEnv> {
        let template = template_schema(&key);
        let mut admin = tabula::connect_server(url)?;
        // One builder; the others wait for it, then find the template.
        let lock = format!("SELECT pg_advisory_lock(hashtext('{template}'))");
        admin.batch_execute(&lock).map_err(|e| server(url, e))?;
        let built = build_on_server(url, &mut admin, &template, setup);
        let unlock = format!("SELECT pg_advisory_unlock(hashtext('{template}'))");
        let _ = admin.batch_execute(&unlock);
        built?;
        let name = unique_name();
        admin.batch_execute(&copy_schema(&template, &name)).map_err(|e| server(url, e))?;
        TestEnv::in_schema(url, &name)
    }

    /// A copy of the template catalog for `key`, built by `setup` the first time the key is
    /// seen (in this process or any other: a file lock makes one builder, the others wait).
    ///
    /// Make the key from what the setup depends on, typically the migration set's
    /// fingerprint and the data seed, so a change rebuilds the template. The identity of the
    /// running test executable (path, size, modification time) is always part of the key
    /// too, so a template never outlives the code that built it: after any change to the
    /// code, the next run builds afresh. The template lives in the system's temp directory
    /// under `tabula-templates/`; templates unused for a day are removed, and at most
    /// [`KEEP_TEMPLATES`] are kept.
    pub fn from_template(key: impl Hash, setup: impl FnOnce(&Catalog) -> Result<()>) -> Result<TestEnv> {
        let template = template_path(&key)?;
        ensure_template(&template, setup)?;
        // Mark it used, so that cleaning up never takes a template in use.
        if let Ok(f) = File::options().write(true).open(&template) {
            let _ = f.set_modified(SystemTime::now());
        }
        let dir = tempdir()?;
        let dest = dir.path().join("catalog.db");
        fs::copy(&template, &dest).map_err(|e| io("copying template", &template, e))?;
        let catalog = Catalog::open(&dest)?;
        Ok(TestEnv { catalog, dir: Some(dir), _server: None })
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

/// How many templates are kept at most; the least recently used go first.
pub const KEEP_TEMPLATES: usize = 64;

/// Templates unused for this long are removed.
const TEMPLATE_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Feeds a key's `Hash` into blake3.
struct Blake(blake3::Hasher);

impl Hasher for Blake {
    fn finish(&self) -> u64 {
        let h = self.0.finalize();
        let b = h.as_bytes();
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The running executable as it is now: its path, size and modification time. Rebuilding a
/// test binary after any change to the code changes it. Where it cannot be read, this
/// process's id: templates are then rebuilt by every process, never reused stale.
fn executable_identity() -> String {
    let exe = std::env::current_exe().ok();
    let meta = exe.as_ref().and_then(|e| fs::metadata(e).ok());
    match (exe, meta) {
        (Some(exe), Some(meta)) => {
            let modified = meta.modified().ok().and_then(|m| m.duration_since(UNIX_EPOCH).ok()).unwrap_or_default();
            format!("{}|{}|{}", exe.display(), meta.len(), modified.as_nanos())
        }
        _ => format!("pid {}", std::process::id()),
    }
}

/// Where the template catalog for `key` is kept by this executable (delete the file to force
/// a rebuild). The key is combined with the executable's identity, Tabula's format version
/// and this crate's version.
pub fn template_file(key: impl Hash) -> Result<PathBuf> {
    template_path(&key)
}

/// The name of the template schema [`TestEnv::from_template_on`] keeps on a server for
/// `key` in this executable (`DROP SCHEMA .. CASCADE` it to force a rebuild, or to clean up).
pub fn template_schema(key: impl Hash) -> String {
    format!("tabula_tpl_{}", template_hash(&key))
}

fn template_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("tabula-templates");
    fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
    Ok(dir)
}

fn template_path(key: &impl Hash) -> Result<PathBuf> {
    Ok(template_dir()?.join(format!("{}.db", template_hash(key))))
}

/// The key combined with the executable's identity, Tabula's format version and this
/// crate's version, as 32 hex digits.
fn template_hash(key: &impl Hash) -> String {
    let mut h = Blake(blake3::Hasher::new());
    key.hash(&mut h);
    h.0.update(&tabula::FORMAT_VERSION.to_le_bytes());
    h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.0.update(executable_identity().as_bytes());
    h.0.finalize().to_hex()[..32].to_string()
}

fn server(url: &str, e: postgres::Error) -> Error {
    let shown = tabula::redacted_url(url);
    let detail = e.as_db_error().map(|db| db.message().to_string()).unwrap_or_else(|| e.to_string());
    Error::new(ErrorCode::Storage, format!("PostgreSQL server '{shown}': {detail}"))
}

/// `url` with `schema` as the search path of its connections.
fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// The statement that copies schema `template` into a new schema `name`: each table created
/// like the template's (columns, defaults, identities, indexes) and filled from it, then
/// each identity sequence set to where the template's is.
fn copy_schema(template: &str, name: &str) -> String {
    format!(
        "DO $$
         DECLARE r record; at bigint; called boolean;
         BEGIN
           CREATE SCHEMA {name};
           FOR r IN SELECT c.relname FROM pg_class c
                    WHERE c.relnamespace = '{template}'::regnamespace AND c.relkind = 'r' LOOP
             EXECUTE format('CREATE TABLE {name}.%I (LIKE {template}.%I INCLUDING ALL)', r.relname, r.relname);
             EXECUTE format('INSERT INTO {name}.%I OVERRIDING SYSTEM VALUE SELECT * FROM {template}.%I',
                            r.relname, r.relname);
           END LOOP;
           FOR r IN SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                    WHERE c.relnamespace = '{template}'::regnamespace AND c.relkind = 'r' AND a.attidentity <> '' LOOP
             EXECUTE format('SELECT last_value, is_called FROM %s',
                            pg_get_serial_sequence(format('{template}.%I', r.relname), r.attname)) INTO at, called;
             PERFORM setval(pg_get_serial_sequence(format('{name}.%I', r.relname), r.attname), at, called);
           END LOOP;
         END $$"
    )
}

/// Builds the template schema `template` unless it exists: in a scratch schema renamed into
/// place when done, so a half-built template is never copied.
fn build_on_server(
    url: &str,
    admin: &mut postgres::Client,
    template: &str,
    setup: impl FnOnce(&Catalog) -> Result<()>,
) -> Result<()> {
    let exists = admin
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&template])
        .map_err(|e| server(url, e))?
        .is_some();
    if exists {
        return Ok(());
    }
    let scratch = format!("{template}_build_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {scratch} CASCADE; CREATE SCHEMA {scratch}"))
        .map_err(|e| server(url, e))?;
    // The tables the setup dropped go at once (no reader is in a template being built), not
    // into every copy.
    let built = Catalog::connect(&with_search_path(url, &scratch)).and_then(|catalog| {
        setup(&catalog).map_err(|e| e.context("building the test template"))?;
        catalog.drop_kept_tables()
    });
    if let Err(e) = built {
        let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {scratch} CASCADE"));
        return Err(e);
    }
    admin.batch_execute(&format!("ALTER SCHEMA {scratch} RENAME TO {template}")).map_err(|e| server(url, e))
}

/// Removes templates unused for a day, and the least recently used beyond
/// [`KEEP_TEMPLATES`] (none used within the last hour), with their lock files.
fn remove_stale_templates(dir: &FsPath) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    let mut templates: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .filter_map(|p| fs::metadata(&p).and_then(|m| m.modified()).ok().map(|m| (m, p)))
        .collect();
    templates.sort_by_key(|(m, _)| std::cmp::Reverse(*m));
    for (i, (modified, path)) in templates.iter().enumerate() {
        let age = now.duration_since(*modified).unwrap_or_default();
        if age > TEMPLATE_MAX_AGE || (i >= KEEP_TEMPLATES && age > Duration::from_secs(3600)) {
            let _ = fs::remove_file(path);
            let _ = fs::remove_file(path.with_extension("lock"));
        }
    }
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
        if let Some(dir) = path.parent() {
            remove_stale_templates(dir);
        }
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
