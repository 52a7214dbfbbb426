//! `cargo xtask`: the project's tasks. Run `cargo xtask --help`.

use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use tabula_testkit::cli::{FixturesArgs, StagingArgs};
use xtask::{bench, workspace_root};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", about = "Tabula's project tasks", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Anonymized staging copy of production, pending migrations and UDF checks, reports
    /// (docs-app's; a downstream application's xtask does the same with its own App).
    StagingCheck(StagingArgs),
    /// docs-app's QA datasets.
    Fixtures(FixturesArgs),
    /// Tabula against raw rusqlite on the same work, as ratios.
    Bench {
        /// Rows for the table workloads.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// A fast smoke run (fewer rows and repetitions, under a minute).
        #[arg(long)]
        quick: bool,
        /// Only the workloads whose name contains this (insert, select, builtin-column,
        /// udf-column, udf-concurrency, preview, revert, namespace-cycle, apply-nothing-pending, template-copy,
        /// synth, anonymize, peak-rss; on a server: pg-insert, pg-select, pg-small-insert, pg-columns, pg-namespace-cycle,
        /// pg-template-clone).
        #[arg(long)]
        only: Option<String>,
        /// Also runs the workloads on this PostgreSQL server (a URL naming a database of it
        /// that the user may create schemas and databases from, such as
        /// `postgres://user@host/postgres`).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
    },
    /// Runs what CI runs (.ci/run).
    Ci,
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
        Task::StagingCheck(args) => {
            let args = StagingArgs {
                out: if args.out.is_relative() { root.join(&args.out) } else { args.out.clone() },
                ..args
            };
            args.run(&docs_app::staging_app())
        }
        Task::Fixtures(args) => args.run(&docs_app::fixtures()),
        Task::Bench { rows, quick, only, postgres } => {
            match bench::run(rows, quick, only.as_deref(), postgres.as_deref(), &root) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("bench failed: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Task::Ci => {
            let status = Command::new("bash").arg(root.join(".ci/run")).current_dir(&root).status();
            match status {
                Ok(s) if s.success() => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
    }
}
