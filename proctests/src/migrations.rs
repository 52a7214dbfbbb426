//! The migrations the process tests apply: many appliers at once, one killed mid-step.

use std::path::PathBuf;
use std::time::Duration;

use tabula::{row, ColumnType, Schema};
use tabula_testkit::{migration, Migration, Migrations};

/// `settings(key)`, the table the seed step fills.
pub fn settings() -> Migration {
    migration!("0001_settings", |ctx| {
        ctx.create_table("settings", Schema::new().required("key", ColumnType::String))?;
        ctx.create_table("runs", Schema::new().required("step", ColumnType::String))?;
        Ok(())
    })
}

/// Inserts the default row: not idempotent, so a second run shows as a second row. Each run
/// is also counted in `runs`.
pub fn seed() -> Migration {
    migration!("0002_seed", |ctx| {
        ctx.table("settings")?.insert([row! {"key" => "default"}])?;
        ctx.table("runs")?.insert([row! {"step" => "0002_seed"}])?;
        Ok(())
    })
}

/// The seed step of a process that hangs halfway: it inserts the row, then says so by
/// creating `ready` and sleeps until it is killed.
pub fn seed_then_hang(ready: PathBuf) -> Migration {
    Migration::new("0002_seed", move |ctx| {
        ctx.table("settings")?.insert([row! {"key" => "default"}])?;
        std::fs::write(&ready, b"inserted")
            .map_err(|e| tabula::Error::new(tabula::ErrorCode::Storage, e.to_string()))?;
        std::thread::sleep(Duration::from_secs(120));
        Ok(())
    })
}

/// The application's steps: settings, then the seed.
pub fn app() -> Migrations {
    Migrations::new([settings(), seed()])
}
