//! The child process of the process tests: `proctest-child SCENARIO ARGS...`.
//!
//! - `apply DB NAMESPACE START_US`: waits until START_US (microseconds since the epoch, so
//!   that every child starts at the same moment), applies [`tabula_proctests::migrations::app`]
//!   and prints the ids it applied, one a line.
//! - `hang DB NAMESPACE READY`: applies the steps with a seed step that hangs after its
//!   first change (creating READY then), to be killed there.
//! - `churn DB`: creates and drops test namespaces (each with a table) until it is killed.
//! - `hold DB`: takes a test namespace with a table, prints `READY` and sleeps until killed.
//! - `crash DB`: [`tabula_proctests::engine::crash_writer`] until killed.
//! - `writer DB ID OPS`: [`tabula_proctests::engine::concurrent_writer`], logging to `DB.logID`.
//! - `events DB NAME N`: [`tabula_proctests::engine::write_events`].
//! - `expensive DB COUNT_FILE`: [`tabula_proctests::engine::expensive_add`], to be killed.
//! - `memory TARGET ROWS`: [`tabula_proctests::engine::write_peaks`], measured by this
//!   binary's allocator (it counts the bytes allocated and not yet freed, and their peak).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tabula::{Catalog, ColumnType, IfExists, Path, Schema};
use tabula_proctests::{engine, migrations};
use tabula_testkit::{Migrations, TestNamespace};

#[global_allocator]
static HEAP: &peakmem_alloc::PeakMemAlloc<std::alloc::System> = &peakmem_alloc::INSTRUMENTED_SYSTEM;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proctest-child {}: {e}", args.join(" "));
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["apply", db, ns, start] => {
            let start: u128 = start.parse()?;
            let cat = Catalog::open(db)?;
            while SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() < start {
                std::thread::sleep(Duration::from_micros(200));
            }
            for id in migrations::app().apply(&cat, &Path::parse(ns)?)?.ids() {
                println!("{id}");
            }
            Ok(())
        }
        ["hang", db, ns, ready] => {
            let cat = Catalog::open(db)?;
            let steps = Migrations::new([migrations::settings(), migrations::seed_then_hang(PathBuf::from(ready))]);
            steps.apply(&cat, &Path::parse(ns)?)?;
            Err("the hanging step returned; it should have been killed".into())
        }
        ["churn", db] => {
            let cat = Catalog::open(db)?;
            loop {
                let ns = TestNamespace::new(&cat, "churn")?;
                cat.create_table(ns.child("t")?, Schema::new().required("x", ColumnType::Int), IfExists::Error)?;
                ns.close()?;
            }
        }
        ["hold", db] => {
            let cat = Catalog::open(db)?;
            let ns = TestNamespace::new(&cat, "test_orphan")?;
            cat.create_table(ns.child("t")?, Schema::new().required("x", ColumnType::Int), IfExists::Error)?;
            println!("READY");
            std::thread::sleep(Duration::from_secs(60));
            Err("the holder was not killed".into())
        }
        ["crash", db] => engine::crash_writer(db, &mut std::io::stdout()),
        ["writer", db, id, ops, log] => {
            let mut log = std::fs::File::create(log)?;
            engine::concurrent_writer(db, id.parse()?, ops.parse()?, &mut log)
        }
        ["events", db, name, n] => Ok(engine::write_events(db, name, n.parse()?)?),
        ["expensive", db, count] => engine::expensive_add(db, count),
        ["memory", target, rows] => {
            engine::write_peaks(target, rows.parse()?, &peakmem_alloc::INSTRUMENTED_SYSTEM, &mut std::io::stdout())
        }
        _ => Err("usage: proctest-child apply DB NAMESPACE START_US | hang DB NAMESPACE READY | churn DB | hold DB \
                  | crash DB | writer DB ID OPS LOG | events DB NAME N | expensive DB COUNT_FILE \
                  | memory TARGET ROWS"
            .into()),
    }
}
