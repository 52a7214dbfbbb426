//! `cargo xtask staging-check | fixtures`: the shop's staging gate and QA datasets.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tabula_testkit::cli::{FixturesArgs, StagingArgs};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Checks this release against an anonymized copy of production.
    StagingCheck(StagingArgs),
    /// The QA datasets: generate, check, export.
    Fixtures(FixturesArgs),
}

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::StagingCheck(args) => args.run(&shop::staging_app()),
        Task::Fixtures(args) => args.run(&shop::fixtures()),
    }
}
