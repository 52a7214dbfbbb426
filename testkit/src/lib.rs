//! # tabula-testkit
//!
//! Everything a test of a Tabula application needs: isolated namespaces that never leak,
//! throwaway and template catalogs, representative data (synthetic or anonymized), and
//! snapshot checks of migrations and UDF changes.
//!
//! The workflow, in a user's test:
//!
//! ```
//! use tabula::{ColumnType, IfExists, Schema};
//! use tabula_testkit::{TestEnv, TestNamespace};
//!
//! # fn main() -> tabula::Result<()> {
//! let env = TestEnv::new()?;                                  // a temp-file catalog
//! let ns = TestNamespace::new(env.catalog(), "test_myapp")?;  // a unique directory
//! // The application's setup code takes the namespace it should work in:
//! let docs = env.catalog().create_table(
//!     ns.path().join("docs")?,
//!     Schema::new().required("text", ColumnType::String),
//!     IfExists::Ignore,
//! )?;
//! assert_eq!(docs.count()?, 0);
//! # Ok(())
//! # }   // `ns` is dropped with force here, even if the test panicked; `env` deletes its file.
//! ```

mod anonymize;
#[cfg(feature = "cli")]
pub mod cli;
mod env;
mod fixtures;
mod migrate;
mod namespace;
pub mod staging;
mod strategy;
mod synth;
mod udf_diff;

pub use anonymize::{AnonymizeReport, Anonymizer, CustomRule, Keyed, Leak, LeakScan, Rule, TableReport};
pub use env::{template_file, template_schema, TestEnv, KEEP_TEMPLATES};
pub use fixtures::{checksum, Dataset, Drift as FixtureDrift, Fixtures, Format, LoadReport, Manifest};
pub use migrate::{
    check_pending, verify_applied, AppliedStep, ApplyReport, ColumnPrint, Drift, Migration, MigrationCheck,
    MigrationCtx, MigrationReport, MigrationStatus, Migrations, Recovery, StateSnapshot, StepDone, StepReport,
    TablePrint, MIGRATIONS_TABLE,
};

#[doc(hidden)]
pub use insta as __insta;
pub use namespace::{reap_orphans, renew_live_leases, Lease, TestNamespace, LEASE_HEARTBEAT, LEASE_TABLE, LEASE_TTL};
pub use strategy::{row_strategy, rows_strategy, value_strategy};
pub use synth::{Gen, GenFn, Synth, SynthRows};
pub use udf_diff::{ChangedCell, Recompute, UdfDiff, UdfDiffReport};
