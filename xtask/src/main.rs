//! `cargo xtask`: the project's tasks. Run `cargo xtask --help`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use xtask::{bench, staging, workspace_root};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about = "Tabula's project tasks", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Anonymized staging copy of production, pending migrations and UDF checks, reports.
    StagingCheck {
        /// The production catalog (opened read-only). Default: a demo catalog built from
        /// the fixtures with the migrations production has applied.
        #[arg(long)]
        prod: Option<PathBuf>,
        /// A file whose first line is the anonymization key (at least 16 characters). Without
        /// it the key is read from TABULA_STAGING_KEY. There is no --key: a key on the
        /// command line is visible to every user of the machine and stays in shell history.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Where the staging catalog, report.json and report.md go.
        #[arg(long, default_value = "target/staging")]
        out: PathBuf,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
    },
    /// Deterministic QA datasets.
    Fixtures {
        #[command(subcommand)]
        action: FixturesAction,
    },
    /// Tabula against raw rusqlite on the same work, as ratios.
    Bench {
        /// Rows for the table workloads.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// A fast smoke run (fewer rows and repetitions, under a minute).
        #[arg(long)]
        quick: bool,
        /// Only the workloads whose name contains this (insert, select, builtin-column,
        /// udf-column, preview, revert, namespace-cycle, apply-nothing-pending, template-copy,
        /// synth, anonymize, peak-rss).
        #[arg(long)]
        only: Option<String>,
    },
    /// Runs what CI runs (.ci/run).
    Ci,
}

#[derive(Subcommand)]
enum FixturesAction {
    /// Regenerates the checked-in datasets.
    Generate,
    /// Regenerates them in memory and fails with a diff when the checked-in data drifted.
    Check,
}

fn main() -> ExitCode {
    // The bench measures peak memory in a child process of this binary.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("bench-rss-child") {
        return match args.get(2).map(|p| bench::rss_child(std::path::Path::new(p))) {
            Some(Ok(())) => ExitCode::SUCCESS,
            Some(Err(e)) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
            None => ExitCode::FAILURE,
        };
    }
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.task {
        Task::StagingCheck { prod, key_file, out, quiet } => {
            let out = if out.is_relative() { root.join(out) } else { out };
            let key = match staging::Key::from_file_or_env(key_file.as_deref()) {
                Ok(key) => key,
                Err(e) => {
                    eprintln!("staging check failed to run: {e}");
                    return ExitCode::from(2);
                }
            };
            let opts = staging::Options { prod, key, out, progress: !quiet };
            match staging::run(&staging::docs_app(), &opts) {
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
        Task::Fixtures { action } => {
            let dir = tabula_fixtures::data_dir();
            let result = match action {
                FixturesAction::Generate => tabula_fixtures::generate(&dir).map(|ms| {
                    for m in ms {
                        println!("wrote {} ({:?} rows, checksum {})", m.name, m.rows, m.checksum);
                    }
                    true
                }),
                FixturesAction::Check => tabula_fixtures::check(&dir).map(|drift| {
                    for d in &drift {
                        println!("{d}");
                    }
                    if drift.is_empty() {
                        println!("fixtures match their generators");
                    }
                    drift.is_empty()
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
        Task::Bench { rows, quick, only } => match bench::run(rows, quick, only.as_deref(), &root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench failed: {e}");
                ExitCode::from(2)
            }
        },
        Task::Ci => {
            let status = Command::new("bash").arg(root.join(".ci/run")).current_dir(&root).status();
            match status {
                Ok(s) if s.success() => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
    }
}
