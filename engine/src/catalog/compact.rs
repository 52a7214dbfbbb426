//! Compaction with a retention: what a table keeps of its history ([`Retention`]), and
//! [`Table::compact`] / [`Catalog::compact`], which remove what no kept version needs (the
//! store's `compact` module says what that is).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::catalog::Recursive;
use crate::catalog::{Catalog, Table};
use crate::error::{err, Result};
use crate::path::Path;
use crate::store::{CompactReport, Kind};
use crate::types::Version;

/// Which versions a compaction keeps. The default keeps every version, so nothing a user
/// can read or revert to is lost without asking; it still removes what no version needs
/// (columns of reverted versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Every version.
    #[default]
    All,
    /// The `n` newest versions (at least 1: the current one).
    Versions(u64),
    /// The versions made at or after this time, and always the current one.
    Since(SystemTime),
}

impl Retention {
    /// The `n` newest versions.
    pub fn keep_versions(n: u64) -> Retention {
        Retention::Versions(n)
    }

    /// The versions made at or after `time` (and the current one).
    pub fn keep_since(time: SystemTime) -> Retention {
        Retention::Since(time)
    }
}

impl Table {
    /// Removes what no kept version needs: older versions (by `retention`), row versions
    /// only they showed, and physical columns no kept version has. One transaction; it
    /// makes no version (what the kept versions show does not change). Afterwards the
    /// table reads and reverts back to [`CompactReport::oldest_kept`], not past it.
    pub fn compact(&self, retention: Retention) -> Result<CompactReport> {
        if self.pinned.is_some() {
            return Err(err!(ReadOnly, "'{}' is a read-only version; compact the table itself", self.display_path()));
        }
        self.catalog
            .store()
            .write(|tx| {
                let meta = self.meta(tx)?;
                let versions = tx.versions(meta.id)?;
                let oldest = versions.last().map_or(Version(0), |v| v.version);
                let keep_from = match retention {
                    Retention::All => oldest,
                    Retention::Versions(0) => {
                        return Err(err!(
                            InvalidArgument,
                            "compact '{}': keep_versions(0) would keep no version; keep at least 1 (the current one)",
                            meta.path
                        ))
                    }
                    Retention::Versions(n) => {
                        let n = usize::try_from(n).unwrap_or(usize::MAX).min(versions.len());
                        versions.get(n.saturating_sub(1)).map_or(oldest, |v| v.version)
                    }
                    Retention::Since(time) => {
                        let since = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
                        versions
                            .iter()
                            .filter(|v| v.created_at >= since || v.version == meta.version)
                            .map(|v| v.version)
                            .min()
                            .unwrap_or(meta.version)
                    }
                };
                tx.compact_table(&meta, keep_from.min(meta.version))
            })
            .map_err(|e| e.context(format_args!("compact '{}'", self.display_path())))
    }
}

impl Catalog {
    /// Compacts every table (not views or snapshots, which have no rows of their own to
    /// shed) with `retention`, each in its own transaction; returns each table's report. The
    /// remembered results of UDF versions no computed column uses are forgotten.
    pub fn compact(&self, retention: Retention) -> Result<Vec<(Path, CompactReport)>> {
        let mut out = Vec::new();
        let mut used = Vec::new();
        for path in self.list_tables("", Recursive::Yes)? {
            let table = self.get_table(&path)?;
            let is_table = self.store().read(|tx| Ok(matches!(table.meta(tx)?.kind, Kind::Table)))?;
            if is_table {
                out.push((path, table.compact(retention)?));
            }
            for c in table.schema()?.columns {
                c.computed.iter().for_each(|comp| {
                    comp.expr.visit(&mut |e| {
                        if let crate::expr::Expr::Udf { name, version, .. } = e {
                            used.push((name.clone(), *version));
                        }
                    })
                });
            }
        }
        // Remembered results of UDF versions no column uses any more go too.
        self.inner.udfs.results().keep_only(&used)?;
        Ok(out)
    }
}
