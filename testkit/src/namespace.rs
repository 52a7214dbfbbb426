//! [`TestNamespace`]: a uniquely named directory per test, created with replace semantics
//! and dropped with force when the test ends (also when it panics). A lease registry in the
//! catalog records each namespace's owner (process id, host, times), so namespaces left
//! behind by a killed test process are reaped by the next one.
//!
//! A lease lasts [`LEASE_TTL`] (5 minutes) and a thread of the owning process renews the
//! leases of its live namespaces every [`LEASE_HEARTBEAT`] (a minute). What each platform
//! gets: where [`tabula::process`] can read the process table (Linux, macOS, Windows,
//! FreeBSD), a killed test's namespace is reaped by the next test process on the same host,
//! at most a minute later (each process reaps each catalog once a minute). From another host
//! (a catalog on a shared PostgreSQL server), or on a platform without a process table, the
//! lease is no longer renewed and is reaped once it expires: within 5 minutes. Leases record
//! the pid, not its start time, so if the pid of a killed test is reused by a live process
//! before the next run on its host, that namespace waits for its expiry too. A process
//! stopped for longer than the lease (a debugger at a breakpoint) can find its namespace
//! reaped by another host's test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tabula::{
    col, lit, Catalog, ColumnType, Error, ErrorCode, Force, IfExists, Path, Result, Retention, Schema, Table,
};

/// Where the lease registry lives in every catalog that has used test namespaces.
pub const LEASE_TABLE: &str = "tabula_testkit/leases";

/// How long a lease lasts unless renewed: what the namespace of a killed test waits before
/// a process that cannot check its owner (another host) reaps it.
pub const LEASE_TTL: Duration = Duration::from_secs(5 * 60);

/// How often a process renews the leases of its live namespaces.
pub const LEASE_HEARTBEAT: Duration = Duration::from_secs(60);

/// This process's live namespaces, whose leases the heartbeat renews.
static LIVE: Mutex<Vec<(Catalog, Path)>> = Mutex::new(Vec::new());

/// One namespace's lease, as recorded in [`LEASE_TABLE`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// The namespace directory.
    pub path: String,
    /// The owning process.
    pub pid: i64,
    /// The owning host.
    pub host: String,
    /// When it was taken, in microseconds since the epoch.
    pub created_us: i64,
    /// When it expires, in microseconds since the epoch.
    pub expires_us: i64,
}

/// A uniquely named test directory, dropped with force when this value is dropped.
///
/// Parallel tests never collide: the name is `{prefix}_{pid}_{n}_{nanos}`.
#[must_use = "the namespace is dropped (with everything in it) as soon as this value is"]
pub struct TestNamespace {
    catalog: Catalog,
    path: Path,
    keep: bool,
    /// The lease registry, opened once (its handle's calls read what they need anyway).
    leases: Table,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestNamespace {
    /// Creates a fresh namespace directory under the root: `{prefix}_{pid}_{n}_{nanos}`.
    /// First reaps namespaces whose owning process is gone (at most once a minute per
    /// process and catalog, so a long-running process reaps too, at no measurable cost).
    pub fn new(catalog: &Catalog, prefix: &str) -> Result<TestNamespace> {
        reap_once(catalog)?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let name = format!("{prefix}_{}_{}_{nanos:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let path = Path::parse(&name)?;
        let leases = lease_table(catalog)?;
        // The lease comes first and goes last: a process killed at any moment leaves at most
        // a lease without a directory (which the reaper clears), never a directory that no
        // lease names.
        let now = now_us();
        leases.insert_records([Lease {
            path: path.to_string(),
            pid: i64::from(std::process::id()),
            host: tabula::process::host_name(),
            created_us: now,
            expires_us: now + LEASE_TTL.as_micros() as i64,
        }])?;
        if let Err(e) = catalog.create_dir(&path, IfExists::ReplaceForce) {
            let _ = release(&leases, &path);
            return Err(e);
        }
        heartbeat(catalog, &path);
        Ok(TestNamespace { catalog: catalog.clone(), path, keep: false, leases })
    }

    /// Renews this namespace's lease for another [`LEASE_TTL`] (a thread of this process does
    /// it every [`LEASE_HEARTBEAT`] for every live namespace). Fails with `NotFound` when the
    /// lease is gone: another process reaped the namespace after its lease expired.
    pub fn renew(&self) -> Result<()> {
        renew(&self.catalog, &self.path)
    }

    /// The namespace's directory, for the application's setup code.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path()/name`, e.g. `ns.table("docs")` for `test_x_1_2_ab/docs`.
    pub fn child(&self, name: &str) -> Result<Path> {
        self.path.join(name)
    }

    /// Opens a table inside the namespace by its name.
    pub fn table(&self, name: &str) -> Result<Table> {
        self.catalog.get_table(self.child(name)?)
    }

    /// The catalog the namespace lives in.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Keeps the namespace after the test (for debugging): prints where it is and gives up
    /// its lease so it is not reaped.
    pub fn keep(mut self) -> Path {
        self.keep = true;
        forget(&self.catalog, &self.path);
        let _ = release(&self.leases, &self.path);
        eprintln!("tabula-testkit: kept namespace '{}' in {}", self.path, self.catalog.location());
        self.path.clone()
    }

    /// Keeps the namespace as a result of the run (a staging copy, say): gives up its lease,
    /// so it is not reaped, without printing anything. Returns its path.
    pub fn persist(mut self) -> Path {
        self.keep = true;
        forget(&self.catalog, &self.path);
        let _ = release(&self.leases, &self.path);
        self.path.clone()
    }

    /// Drops the namespace now, reporting any failure (dropping the value does the same,
    /// printing failures instead).
    pub fn close(mut self) -> Result<()> {
        self.keep = true;
        forget(&self.catalog, &self.path);
        self.catalog.drop_dir(&self.path, Force::Yes)?;
        release(&self.leases, &self.path)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        forget(&self.catalog, &self.path);
        let dropped = self.catalog.drop_dir(&self.path, Force::Yes).and_then(|_| release(&self.leases, &self.path));
        if let Err(e) = dropped {
            eprintln!("tabula-testkit: could not drop namespace '{}': {e}", self.path);
        }
    }
}

/// Has the heartbeat renew the lease of `path` in `catalog` (and starts it, the first time).
fn heartbeat(catalog: &Catalog, path: &Path) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).push((catalog.clone(), path.clone()));
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new().name("tabula-lease-heartbeat".into()).spawn(|| loop {
            std::thread::sleep(LEASE_HEARTBEAT);
            renew_live_leases();
        });
        if let Err(e) = spawned {
            eprintln!("tabula-testkit: no lease heartbeat ({e}); namespaces may be reaped after {LEASE_TTL:?}");
        }
    });
}

/// Stops renewing the lease of `path` in `catalog`.
fn forget(catalog: &Catalog, path: &Path) {
    let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    live.retain(|(c, p)| !(p == path && c.location() == catalog.location()));
}

/// Renews the lease of every live namespace of this process (what the heartbeat does each
/// [`LEASE_HEARTBEAT`]); returns how many it renewed. A failure (a busy or unreachable
/// catalog) is printed and the others are renewed all the same.
pub fn renew_live_leases() -> usize {
    // Renewed outside the lock: a namespace being made or dropped meanwhile does not wait.
    let live: Vec<(Catalog, Path)> = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut renewed = 0;
    for (catalog, path) in live {
        match renew(&catalog, &path) {
            Ok(()) => renewed += 1,
            Err(e) => eprintln!("tabula-testkit: could not renew the lease of namespace '{path}': {e}"),
        }
    }
    renewed
}

fn renew(catalog: &Catalog, path: &Path) -> Result<()> {
    let expires = now_us() + LEASE_TTL.as_micros() as i64;
    let done = lease_table(catalog)?.update([("expires_us", lit(expires))], col("path").eq(path.to_string()))?;
    if done.updated == 0 {
        return Err(Error::new(
            ErrorCode::NotFound,
            format!(
                "namespace '{path}' has no lease in {} any more: it expired and another process reaped the namespace \
                 (a process stopped for longer than {LEASE_TTL:?})",
                catalog.location()
            ),
        ));
    }
    Ok(())
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as i64
}

fn lease_table(catalog: &Catalog) -> Result<Table> {
    if let Ok(t) = catalog.get_table(LEASE_TABLE) {
        return Ok(t);
    }
    catalog.create_dir("tabula_testkit", IfExists::Ignore)?;
    catalog.create_table(
        LEASE_TABLE,
        Schema::new()
            .required("path", ColumnType::String)
            .required("pid", ColumnType::Int)
            .required("host", ColumnType::String)
            .required("created_us", ColumnType::Int)
            .required("expires_us", ColumnType::Int)
            // Renewals and releases find their lease by its key's index, not by reading
            // every lease.
            .primary_key(["path"]),
        IfExists::Ignore,
    )
}

/// Gives up the lease of `path` (a registry dropped meanwhile holds it no more either).
fn release(leases: &Table, path: &Path) -> Result<()> {
    match leases.delete(col("path").eq(path.to_string())) {
        Ok(_) => Ok(()),
        Err(e) if e.code() == ErrorCode::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// True when the lease's owner is certainly gone: its process no longer runs (on its own
/// host, on every platform [`tabula::process`] supports), or the lease expired.
fn orphaned(lease: &Lease, now: i64) -> bool {
    let owner = tabula::process::Holder { pid: lease.pid, started: 0, host: lease.host.clone() };
    lease.expires_us < now || owner.is_gone() == Some(true)
}

/// Drops every namespace whose lease is orphaned (its process died or it expired), and then
/// the registry's history (every namespace's life is two versions of it and a row version,
/// which nothing reads: kept, a shared server's registry would grow with every test ever
/// run); returns the paths reaped. [`TestNamespace::new`] calls this at most once a minute
/// per process and catalog.
pub fn reap_orphans(catalog: &Catalog) -> Result<Vec<String>> {
    let Ok(leases) = catalog.get_table(LEASE_TABLE) else { return Ok(Vec::new()) };
    let now = now_us();
    let mut reaped = Vec::new();
    for lease in leases.select_all().collect_as::<Lease>()? {
        if orphaned(&lease, now) {
            match catalog.drop_dir(lease.path.as_str(), Force::Yes) {
                Ok(()) => {}
                Err(e) if e.code() == tabula::ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
            leases.delete(col("path").eq(lease.path.clone()))?;
            reaped.push(lease.path);
        }
    }
    leases.compact(Retention::keep_versions(1))?;
    Ok(reaped)
}

/// How often one process reaps one catalog.
const REAP_EVERY: Duration = Duration::from_secs(60);

fn reap_once(catalog: &Catalog) -> Result<()> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
    let location = catalog.location().to_string();
    if location != ":memory:" {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let last = last.get_or_insert_with(HashMap::new);
        if last.get(&location).is_some_and(|t| t.elapsed() < REAP_EVERY) {
            return Ok(());
        }
        last.insert(location, Instant::now());
    }
    reap_orphans(catalog).map(|_| ())
}
