//! `cargo xtask bench` (being written).

/// Runs the benchmarks.
pub fn run(_rows: u64, _quick: bool, _root: &std::path::Path) -> tabula::Result<()> {
    Err(tabula::Error::new(tabula::ErrorCode::InvalidArgument, "not written yet"))
}
