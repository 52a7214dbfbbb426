//! Command-line pieces for an application's own `xtask` (feature `cli`): the staging check
//! and the fixtures, each a `clap::Args` to put in a subcommand and one call to run.
//!
//! ```no_run
//! use clap::{Parser, Subcommand};
//! use tabula_testkit::cli::{FixturesArgs, StagingArgs};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(subcommand)]
//!     task: Task,
//! }
//!
//! #[derive(Subcommand)]
//! enum Task {
//!     /// Anonymized staging copy of production, migration and UDF checks, reports.
//!     StagingCheck(StagingArgs),
//!     /// The QA datasets.
//!     Fixtures(FixturesArgs),
//! }
//!
//! # fn my_app() -> tabula_testkit::staging::App { unimplemented!() }
//! # fn my_fixtures() -> tabula_testkit::Fixtures { unimplemented!() }
//! fn main() -> std::process::ExitCode {
//!     match Cli::parse().task {
//!         Task::StagingCheck(args) => args.run(&my_app()),
//!         Task::Fixtures(args) => args.run(&my_fixtures()),
//!     }
//! }
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use crate::fixtures::{Fixtures, Format};
use crate::staging::{self, App, Key, Options};

/// `staging-check`: exit status 0 when every check passes, 1 when one fails, 2 when the
/// check could not run (bad input; production is never changed).
#[derive(clap::Args, Debug, Clone)]
pub struct StagingArgs {
    /// The production catalog, opened read-only: a file, or a `postgres://` URL of a catalog
    /// on a server (connected read-only). Without it, the application's demo production
    /// catalog is built and checked (with the public demo key).
    #[arg(long)]
    pub prod: Option<PathBuf>,
    /// A file whose first line is the anonymization key (at least 16 characters). Without
    /// it the key is read from TABULA_STAGING_KEY. There is no --key: a key on the command
    /// line is visible to every user of the machine and stays in shell history.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Where the staging catalog, report.json and report.md go.
    #[arg(long, default_value = "target/staging")]
    pub out: PathBuf,
    /// Makes the staging copy in a catalog on a PostgreSQL server (`postgres://` URL; its
    /// schema through `?options=-csearch_path%3Dname`) instead of `<out>/staging.db`. Earlier
    /// runs' copies there are dropped first; the leak scan reads every table of the schema.
    #[arg(long, value_name = "URL")]
    pub staging: Option<String>,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

impl StagingArgs {
    /// Runs the check of `app`, prints the summary, and returns the exit status.
    pub fn run(&self, app: &App) -> ExitCode {
        let key = match Key::from_file_or_env(self.key_file.as_deref()) {
            Ok(key) => key,
            Err(e) => {
                eprintln!("staging check failed to run: {e}");
                return ExitCode::from(2);
            }
        };
        let options = Options {
            prod: self.prod.clone(),
            key,
            out: self.out.clone(),
            staging: self.staging.clone(),
            progress: !self.quiet,
        };
        match staging::run(app, &options) {
            Ok(outcome) => {
                print!("{}", staging::summary(&outcome));
                if outcome.passed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("staging check failed to run: {e}");
                ExitCode::from(2)
            }
        }
    }
}

/// `fixtures generate | check | export`.
#[derive(clap::Args, Debug, Clone)]
pub struct FixturesArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: FixturesAction,
}

/// What `fixtures` does.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum FixturesAction {
    /// Regenerates the checked-in datasets and their manifests.
    Generate,
    /// Regenerates them in memory; fails naming each table and column that drifted.
    Check,
    /// Writes a dataset as one file a table, with its manifest, for other tools.
    Export {
        /// The dataset.
        name: String,
        /// The file format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// The directory to write into.
        #[arg(long, default_value = "target/fixtures")]
        out: PathBuf,
    },
}

impl FixturesArgs {
    /// Runs the action on `fixtures`; exit status 1 on drift, 2 on an error.
    pub fn run(&self, fixtures: &Fixtures) -> ExitCode {
        let result = match &self.action {
            FixturesAction::Generate => fixtures.generate().map(|manifests| {
                for m in manifests {
                    println!("wrote {} ({:?} rows, checksum {})", m.name, m.rows, m.checksum);
                }
                true
            }),
            FixturesAction::Check => fixtures.check().map(|drift| {
                for d in &drift {
                    println!("{d}");
                }
                if drift.is_empty() {
                    println!("fixtures match their generators");
                }
                drift.is_empty()
            }),
            FixturesAction::Export { name, format, out } => fixtures.export(name, out, *format).map(|files| {
                for f in files {
                    println!("wrote {}", f.display());
                }
                true
            }),
        };
        match result {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        }
    }
}
