//! QA fixtures for anyone's schema: named datasets declared in the application's code
//! (tables, schemas, row counts, a seed, column generators), generated deterministically by
//! [`Synth`], checked in next to the code with a manifest (generator, seed, schema, rows,
//! checksum, Tabula version), checked for drift, loaded into a namespace, and exported as
//! JSON lines or CSV for QA people who use other tools.
//!
//! ```
//! use tabula::{Catalog, ColumnType, Path, Schema};
//! use tabula_testkit::{Dataset, Fixtures, Gen, Synth};
//!
//! # fn main() -> tabula::Result<()> {
//! let dir = tempfile::tempdir().map_err(|e| tabula::Error::new(tabula::ErrorCode::Storage, e.to_string()))?;
//! let fixtures = Fixtures::new(dir.path()).dataset(
//!     Dataset::new("shop-small", 42)
//!         .table("customers", Schema::new().required("customer_id", ColumnType::Int).required("name", ColumnType::String), 20, |s| s)
//!         .table("orders", Schema::new().required("customer_id", ColumnType::Int).required("total", ColumnType::Float), 50,
//!             |s| s.column("customer_id", Gen::Range(1, 20))),
//! );
//! fixtures.generate()?;                       // writes shop-small.jsonl and its manifest
//! assert!(fixtures.check()?.is_empty());      // nothing drifted
//! let catalog = Catalog::in_memory()?;
//! let report = fixtures.load("shop-small", &catalog, &Path::parse("qa")?)?;
//! assert_eq!(report.rows["orders"], 50);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};

use serde::{Deserialize, Serialize};
use tabula::{Catalog, Error, ErrorCode, IfExists, Path, Result, Schema};

use crate::synth::Synth;

/// A named dataset: tables generated from one seed.
#[derive(Debug, Clone)]
pub struct Dataset {
    name: String,
    seed: u64,
    checked_in: bool,
    tables: Vec<TableSpec>,
}

/// One table of a dataset.
#[derive(Debug, Clone)]
struct TableSpec {
    name: String,
    schema: Schema,
    rows: u64,
    synth: Synth,
}

/// Provenance and checksum of a generated dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Dataset name.
    pub name: String,
    /// What generated it.
    pub generator: String,
    /// The seed.
    pub seed: u64,
    /// The columns of each table (`name Type`, `?` when nullable).
    pub schema: BTreeMap<String, Vec<String>>,
    /// Row count of each table.
    pub rows: BTreeMap<String, u64>,
    /// A checksum of the data (blake3 of its JSON lines).
    pub checksum: String,
    /// The Tabula version that made it.
    pub tabula_version: String,
}

/// What [`Fixtures::load`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// The dataset.
    pub dataset: String,
    /// Rows inserted per table.
    pub rows: BTreeMap<String, u64>,
}

/// One difference between checked-in data and what its generator makes now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The dataset.
    pub dataset: String,
    /// The table, when the difference is in one.
    pub table: Option<String>,
    /// The column, when the difference is in one.
    pub column: Option<String>,
    /// What differs.
    pub what: String,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dataset)?;
        if let Some(t) = &self.table {
            write!(f, ", table {t}")?;
        }
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Format {
    /// One JSON object a line (`TABLE.jsonl`).
    Jsonl,
    /// Comma-separated values with a header line (`TABLE.csv`).
    Csv,
}

impl Dataset {
    /// An empty dataset named `name` whose tables derive their generators from `seed`.
    /// It is checked in (written by [`Fixtures::generate`]) unless
    /// [`Dataset::generated_on_demand`] says otherwise.
    pub fn new(name: impl Into<String>, seed: u64) -> Dataset {
        Dataset { name: name.into(), seed, checked_in: true, tables: Vec::new() }
    }

    /// A table of `rows` rows with `schema`; `synth` adjusts its generator (seeded from the
    /// dataset's seed and the table's position), e.g. `|s| s.column("customer_id", Gen::Range(1, 20))`.
    pub fn table(
        mut self,
        name: impl Into<String>,
        schema: Schema,
        rows: u64,
        synth: impl FnOnce(Synth) -> Synth,
    ) -> Dataset {
        let seed = self.seed.wrapping_add(self.tables.len() as u64);
        self.tables.push(TableSpec { name: name.into(), schema, rows, synth: synth(Synth::new(seed)) });
        self
    }

    /// Not checked in: generated when loaded (for large datasets).
    pub fn generated_on_demand(mut self) -> Dataset {
        self.checked_in = false;
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dataset's rows as JSON lines (`{"row": {..}, "table": ..}`), and its manifest.
    pub fn generate(&self) -> Result<(String, Manifest)> {
        let catalog = Catalog::in_memory()?;
        let mut lines = String::new();
        let mut rows = BTreeMap::new();
        let mut schema = BTreeMap::new();
        for spec in &self.tables {
            let path = Path::parse(&spec.name)?;
            let table = catalog.create_table(path, spec.schema.clone(), IfExists::Error)?;
            for row in spec.synth.rows(&table.schema()?, spec.rows) {
                let line = serde_json::json!({ "table": spec.name, "row": row.to_json() });
                lines.push_str(&line.to_string());
                lines.push('\n');
            }
            rows.insert(spec.name.clone(), spec.rows);
            schema.insert(spec.name.clone(), spec.schema.to_string().split(", ").map(str::to_string).collect());
        }
        let manifest = Manifest {
            name: self.name.clone(),
            generator: "tabula-testkit Synth".to_string(),
            seed: self.seed,
            schema,
            rows,
            checksum: checksum(&lines),
            tabula_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        Ok((lines, manifest))
    }
}

/// The checksum the manifests record: blake3 of the data, as hex.
pub fn checksum(data: &str) -> String {
    blake3::hash(data.as_bytes()).to_hex()[..32].to_string()
}

/// An application's datasets and the directory its checked-in ones live in (write it as
/// `concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")` so it works from any directory).
#[derive(Debug, Clone)]
pub struct Fixtures {
    dir: PathBuf,
    datasets: Vec<Dataset>,
}

fn io(what: &str, path: &FsPath, e: impl fmt::Display) -> Error {
    Error::new(ErrorCode::Storage, format!("{what} '{}': {e}", path.display()))
}

impl Fixtures {
    /// No datasets yet, checked in under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Fixtures {
        Fixtures { dir: dir.into(), datasets: Vec::new() }
    }

    /// Adds a dataset.
    pub fn dataset(mut self, dataset: Dataset) -> Fixtures {
        self.datasets.push(dataset);
        self
    }

    /// The datasets.
    pub fn datasets(&self) -> impl Iterator<Item = &Dataset> {
        self.datasets.iter()
    }

    /// The directory of the checked-in data.
    pub fn dir(&self) -> &FsPath {
        &self.dir
    }

    /// The dataset called `name`.
    pub fn get(&self, name: &str) -> Result<&Dataset> {
        self.datasets.iter().find(|d| d.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.datasets.iter().map(|d| d.name.as_str()).collect();
            Error::new(ErrorCode::NotFound, format!("no dataset '{name}' (there are: {})", names.join(", ")))
        })
    }

    fn data_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.jsonl"))
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.manifest.json"))
    }

    /// Writes the data and manifest of every checked-in dataset.
    pub fn generate(&self) -> Result<Vec<Manifest>> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io("creating", &self.dir, e))?;
        let mut out = Vec::new();
        for ds in self.datasets.iter().filter(|d| d.checked_in) {
            let (data, manifest) = ds.generate()?;
            let path = self.data_path(&ds.name);
            std::fs::write(&path, &data).map_err(|e| io("writing", &path, e))?;
            let text =
                serde_json::to_string_pretty(&manifest).map_err(|e| Error::new(ErrorCode::Serde, e.to_string()))?;
            let path = self.manifest_path(&ds.name);
            std::fs::write(&path, text + "\n").map_err(|e| io("writing", &path, e))?;
            out.push(manifest);
        }
        Ok(out)
    }

    /// Regenerates every checked-in dataset and compares it with what is checked in; returns
    /// every difference, named by table and column (empty when nothing drifted).
    pub fn check(&self) -> Result<Vec<Drift>> {
        let mut drift = Vec::new();
        for ds in self.datasets.iter().filter(|d| d.checked_in) {
            let (data, manifest) = ds.generate()?;
            let at = |table: Option<&str>, column: Option<&str>, what: String| Drift {
                dataset: ds.name.clone(),
                table: table.map(str::to_string),
                column: column.map(str::to_string),
                what,
            };
            let stored: Option<Manifest> =
                std::fs::read_to_string(self.manifest_path(&ds.name)).ok().and_then(|t| serde_json::from_str(&t).ok());
            let Some(stored) = stored else {
                drift.push(at(None, None, format!("no manifest in {} (run generate)", self.dir.display())));
                continue;
            };
            for (table, columns) in &manifest.schema {
                if stored.schema.get(table) != Some(columns) {
                    let was = stored.schema.get(table).map(|c| c.join(", ")).unwrap_or_else(|| "absent".into());
                    drift.push(at(Some(table), None, format!("schema was {was}, now {}", columns.join(", "))));
                }
                if stored.rows.get(table) != manifest.rows.get(table) {
                    drift.push(at(
                        Some(table),
                        None,
                        format!("rows were {:?}, now {:?}", stored.rows.get(table), manifest.rows.get(table)),
                    ));
                }
            }
            if stored.seed != manifest.seed {
                drift.push(at(None, None, format!("seed was {}, now {}", stored.seed, manifest.seed)));
            }
            let checked_in = std::fs::read_to_string(self.data_path(&ds.name)).unwrap_or_default();
            if checksum(&checked_in) != stored.checksum {
                drift.push(at(None, None, "the checked-in data does not match its manifest's checksum".into()));
            }
            // Cell by cell: which columns of which tables changed, with the first row.
            let parse = |text: &str| -> Vec<(String, serde_json::Map<String, serde_json::Value>)> {
                text.lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .map(|v| {
                        (
                            v["table"].as_str().unwrap_or_default().to_string(),
                            v["row"].as_object().cloned().unwrap_or_default(),
                        )
                    })
                    .collect()
            };
            let (old, new) = (parse(&checked_in), parse(&data));
            let mut changed: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
            for (i, ((t, a), (_, b))) in old.iter().zip(&new).enumerate() {
                for (c, v) in b {
                    if a.get(c) != Some(v) {
                        let e = changed.entry((t.clone(), c.clone())).or_insert((0, i + 1));
                        e.0 += 1;
                    }
                }
            }
            for ((t, c), (n, first)) in changed {
                drift.push(at(Some(&t), Some(&c), format!("{n} value(s) differ, first at line {first}")));
            }
            if old.len() != new.len() {
                drift.push(at(None, None, format!("{} lines checked in, {} generated", old.len(), new.len())));
            }
        }
        Ok(drift)
    }

    /// The rows of dataset `name` as JSON lines: the checked-in file, verified against its
    /// manifest, or generated now for a dataset generated on demand.
    fn data(&self, name: &str) -> Result<(String, Manifest)> {
        let ds = self.get(name)?;
        if !ds.checked_in {
            return ds.generate();
        }
        let path = self.manifest_path(name);
        let manifest: Manifest = std::fs::read_to_string(&path)
            .map_err(|e| io("reading the manifest", &path, e))
            .and_then(|t| serde_json::from_str(&t).map_err(|e| io("parsing the manifest", &path, e)))?;
        let path = self.data_path(name);
        let data = std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))?;
        if checksum(&data) != manifest.checksum {
            return Err(Error::new(
                ErrorCode::Storage,
                format!("dataset '{name}': '{}' does not match its manifest's checksum; regenerate it", path.display()),
            ));
        }
        Ok((data, manifest))
    }

    /// Loads dataset `name` into `namespace` of `catalog`: each table is created when missing
    /// (with the dataset's schema), and its rows are inserted in one call.
    pub fn load(&self, name: &str, catalog: &Catalog, namespace: &Path) -> Result<LoadReport> {
        let ds = self.get(name)?;
        let (data, _) = self.data(name)?;
        catalog.create_dir(namespace, IfExists::Ignore)?;
        let mut by_table: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for (i, line) in data.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::new(ErrorCode::Serde, format!("dataset '{name}', line {}: {e}", i + 1)))?;
            let table = v["table"].as_str().unwrap_or_default().to_string();
            by_table.entry(table).or_default().push(v["row"].clone());
        }
        let mut report = LoadReport { dataset: name.to_string(), rows: BTreeMap::new() };
        for spec in &ds.tables {
            let table = catalog.create_table(namespace.join(&spec.name)?, spec.schema.clone(), IfExists::Ignore)?;
            let done = table.insert_records(by_table.remove(&spec.name).unwrap_or_default())?;
            report.rows.insert(spec.name.clone(), done.inserted);
        }
        Ok(report)
    }

    /// Writes dataset `name` into `out`: one file a table in `format`, and its manifest.
    /// Returns the files written.
    pub fn export(&self, name: &str, out: &FsPath, format: Format) -> Result<Vec<PathBuf>> {
        let ds = self.get(name)?;
        let (data, manifest) = self.data(name)?;
        std::fs::create_dir_all(out).map_err(|e| io("creating", out, e))?;
        let mut written = Vec::new();
        for spec in &ds.tables {
            let rows: Vec<serde_json::Map<String, serde_json::Value>> = data
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["table"] == spec.name.as_str())
                .filter_map(|v| v["row"].as_object().cloned())
                .collect();
            let columns: Vec<String> =
                spec.schema.to_string().split(", ").filter_map(|c| c.split(' ').next()).map(str::to_string).collect();
            let path = out.join(format!("{}.{}", spec.name, if format == Format::Csv { "csv" } else { "jsonl" }));
            match format {
                Format::Jsonl => {
                    let text: String =
                        rows.iter().map(|r| serde_json::Value::Object(r.clone()).to_string() + "\n").collect();
                    std::fs::write(&path, text).map_err(|e| io("writing", &path, e))?;
                }
                Format::Csv => {
                    let mut w = csv::Writer::from_path(&path).map_err(|e| io("writing", &path, e))?;
                    w.write_record(&columns).map_err(|e| io("writing", &path, e))?;
                    for r in &rows {
                        let cells = columns.iter().map(|c| match r.get(c) {
                            None | Some(serde_json::Value::Null) => String::new(),
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                        });
                        w.write_record(cells).map_err(|e| io("writing", &path, e))?;
                    }
                    w.flush().map_err(|e| io("writing", &path, e))?;
                }
            }
            written.push(path);
        }
        let path = out.join(format!("{name}.manifest.json"));
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| Error::new(ErrorCode::Serde, e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| io("writing", &path, e))?;
        written.push(path);
        Ok(written)
    }
}
