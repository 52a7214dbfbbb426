//! The child process of the process tests: `proctest-child SCENARIO ARGS...`.
//!
//! - `apply DB NAMESPACE START_US`: waits until START_US (microseconds since the epoch, so
//!   that every child starts at the same moment), applies [`tabula_proctests::app`] and
//!   prints the ids it applied, one a line.
//! - `hang DB NAMESPACE READY`: applies the steps with a seed step that hangs after its
//!   first change (creating READY then), to be killed there.
//! - `churn DB`: creates and drops test namespaces (each with a table) until it is killed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tabula::{Catalog, Path};
use tabula_testkit::Migrations;

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
    match args {
        [scenario, db, ns, extra] if scenario == "apply" => {
            let start: u128 = extra.parse()?;
            let cat = Catalog::open(db)?;
            while SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() < start {
                std::thread::sleep(Duration::from_micros(200));
            }
            for id in tabula_proctests::app().apply(&cat, &Path::parse(ns)?)?.ids() {
                println!("{id}");
            }
            Ok(())
        }
        [scenario, db, ns, ready] if scenario == "hang" => {
            let cat = Catalog::open(db)?;
            let steps =
                Migrations::new([tabula_proctests::settings(), tabula_proctests::seed_then_hang(PathBuf::from(ready))]);
            steps.apply(&cat, &Path::parse(ns)?)?;
            Err("the hanging step returned; it should have been killed".into())
        }
        [scenario, db] if scenario == "churn" => {
            let cat = Catalog::open(db)?;
            loop {
                let ns = tabula_testkit::TestNamespace::new(&cat, "churn")?;
                let schema = tabula::Schema::new().required("x", tabula::ColumnType::Int);
                cat.create_table(ns.child("t")?, schema, tabula::IfExists::Error)?;
                ns.close()?;
            }
        }
        _ => Err("usage: proctest-child apply DB NAMESPACE START_US | hang DB NAMESPACE READY | churn DB".into()),
    }
}
