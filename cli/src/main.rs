//! `tabula`: look inside a Tabula catalog without writing Rust. Lists, describes, shows and
//! exports tables, reverts a table, compacts and checks a catalog.
//!
//! Reads open the catalog read-only, so they change nothing. A write that computes a UDF
//! column (an import into such a table) needs the UDF's code, which lives in the application:
//! the CLI says so and changes nothing.

mod output;

use std::collections::BTreeSet;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use tabula::{
    col, Catalog, ColumnDef, ErrorCode, Expr, ListingKind, Recursive, Retention, RowChange, Table, TableKind, Version,
};

use output::{Format, Pager};

/// Look inside a Tabula catalog: list, describe, show, export, revert, compact, check.
#[derive(Debug, Parser)]
#[command(name = "tabula", version, propagate_version = true)]
struct Cli {
    /// The catalog file.
    #[arg(short, long, env = "TABULA_CATALOG", global = true, value_name = "FILE")]
    catalog: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Directories and tables, with their kind, row counts, versions and error cells.
    Ls {
        /// The directory to list (the root when left out).
        dir: Option<String>,
        /// Everything below it too.
        #[arg(short, long)]
        recursive: bool,
    },
    /// A table's columns: types, computed expressions (with their UDF name@version), on_error,
    /// and the views and snapshots that read it.
    Describe {
        /// The table (`dir/table`, or `dir/table:VERSION`).
        table: String,
    },
    /// A table's versions: when, what kind of change, rows inserted, updated and deleted.
    History {
        /// The table.
        table: String,
    },
    /// What changed between two versions of a table: its columns, and the rows added,
    /// removed and changed (an updated row is one change).
    Diff {
        /// The table.
        table: String,
        /// The earlier version.
        from: u64,
        /// The later version (an earlier one reads the diff backwards).
        to: u64,
        /// Text, or one JSON document.
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
    },
    /// Rows, streamed: an aligned table a page at a time, or JSON, JSON lines or CSV.
    Show {
        /// The table (`dir/table`, or `dir/table:VERSION` for an older version).
        table: String,
        /// Only rows where this holds, in the text form `describe` prints: `words > 10 and not draft`.
        #[arg(long = "where", value_name = "EXPR")]
        filter: Option<String>,
        /// Only these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// At most this many rows.
        #[arg(long)]
        limit: Option<u64>,
        /// How rows are printed.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Every row of a table, for a file: JSON lines (the default) or CSV.
    Export {
        /// The table (`dir/table`, or `dir/table:VERSION`).
        table: String,
        /// Only rows where this holds.
        #[arg(long = "where", value_name = "EXPR")]
        filter: Option<String>,
        /// The file format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
    /// Inserts JSON lines (one object a row) into a table, as one version.
    Import {
        /// The table.
        table: String,
        /// The file to read (standard input when left out).
        file: Option<PathBuf>,
    },
    /// Undoes a table's latest version, or every version after `--to`.
    Revert {
        /// The table.
        table: String,
        /// The version to go back to (the one before the latest when left out).
        #[arg(long, value_name = "VERSION")]
        to: Option<u64>,
        /// Do it without asking (needed when standard input is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Removes what no kept version needs: old row versions, dropped columns' storage.
    Compact {
        /// One table (every table when left out).
        table: Option<String>,
        /// Keep only the newest N versions of each table (every version when left out).
        #[arg(long, value_name = "N")]
        keep: Option<u64>,
    },
    /// Checks the file (SQLite's integrity, no dangling objects) and lists the UDFs its
    /// computed columns need. Exits 1 when it finds a problem.
    Check,
    /// Prints a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiffFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

/// Why a command failed: one line for the user, exit code 2.
#[derive(Debug)]
enum Failure {
    /// `check` found problems (exit code 1).
    Check(String),
    Tabula(tabula::Error),
    Usage(String),
    Io(io::Error),
}

impl From<tabula::Error> for Failure {
    fn from(e: tabula::Error) -> Failure {
        Failure::Tabula(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Io(e)
    }
}

type Result<T> = std::result::Result<T, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `tabula show ... | head`: the reader has what it wanted.
        Err(Failure::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Check(message)) => {
            eprintln!("tabula: check failed: {}", message.replace('\n', " "));
            ExitCode::from(1)
        }
        Err(failure) => {
            let message = match failure {
                Failure::Check(message) => message,
                Failure::Tabula(e) => e.to_string(),
                Failure::Usage(message) => message,
                Failure::Io(e) => format!("I/O error: {e}"),
            };
            eprintln!("tabula: {}", message.replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tabula", &mut out);
        }
        Command::Ls { dir, recursive } => ls(&read(&cli.catalog)?, dir.as_deref().unwrap_or(""), recursive, &mut out)?,
        Command::Describe { table } => describe(&read(&cli.catalog)?.get_table(table.as_str())?, &mut out)?,
        Command::History { table } => history(&read(&cli.catalog)?.get_table(table.as_str())?, &mut out)?,
        Command::Diff { table, from, to, format } => {
            diff(&read(&cli.catalog)?, &table, Version(from), Version(to), format, &mut out)?
        }
        Command::Show { table, filter, columns, limit, format } => {
            let cat = read(&cli.catalog)?;
            show(&cat.get_table(table.as_str())?, filter.as_deref(), &columns, limit, format, &mut out)?
        }
        Command::Export { table, filter, format } => {
            let format = match format {
                ExportFormat::Jsonl => Format::Jsonl,
                ExportFormat::Csv => Format::Csv,
            };
            show(&read(&cli.catalog)?.get_table(table.as_str())?, filter.as_deref(), &[], None, format, &mut out)?
        }
        Command::Import { table, file } => import(&write(&cli.catalog)?.get_table(table.as_str())?, file, &mut out)?,
        Command::Revert { table, to, yes } => {
            revert(&write(&cli.catalog)?.get_table(table.as_str())?, to, yes, &mut out)?
        }
        Command::Compact { table, keep } => compact(&write(&cli.catalog)?, table.as_deref(), keep, &mut out)?,
        Command::Check => check(&read(&cli.catalog)?, &mut out)?,
    }
    out.flush()?;
    Ok(())
}

fn catalog_path(path: &Option<PathBuf>) -> Result<&PathBuf> {
    path.as_ref().ok_or_else(|| Failure::Usage("which catalog? pass --catalog FILE or set TABULA_CATALOG".into()))
}

/// The catalog, read-only: a read cannot change it. Unmapped: one pass over a table gains
/// little from mapping, and the memory `tabula show` uses stays what it holds (a page).
fn read(path: &Option<PathBuf>) -> Result<Catalog> {
    Ok(Catalog::options().read_only().memory_map(0).open(catalog_path(path)?)?)
}

/// The catalog, for a write; it must exist.
fn write(path: &Option<PathBuf>) -> Result<Catalog> {
    Ok(Catalog::open_existing(catalog_path(path)?)?)
}

fn kind_name(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Table => "table",
        TableKind::View => "view",
        TableKind::Snapshot => "snapshot",
    }
}

fn ls(cat: &Catalog, dir: &str, recursive: bool, out: &mut impl Write) -> Result<()> {
    let recursive = if recursive { Recursive::Yes } else { Recursive::No };
    let show = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
    let rows: Vec<[String; 5]> = cat
        .ls(dir, recursive)?
        .into_iter()
        .map(|l| {
            let (kind, path) = match l.kind {
                ListingKind::Dir => ("dir", format!("{}/", l.path)),
                ListingKind::Table => ("table", l.path.to_string()),
                ListingKind::View => ("view", l.path.to_string()),
                ListingKind::Snapshot => ("snapshot", l.path.to_string()),
            };
            [kind.to_string(), path, show(l.rows), show(l.version.map(|v| v.0)), show(l.error_cells)]
        })
        .collect();
    output::aligned(out, &["kind", "path", "rows", "version", "errors"], &rows)?;
    Ok(())
}

fn describe(t: &Table, out: &mut impl Write) -> Result<()> {
    let info = t.describe()?;
    let kind = kind_name(t.kind()?);
    writeln!(
        out,
        "{kind} {} (version {}{})",
        info.path,
        info.version,
        if info.read_only { ", read-only" } else { "" }
    )?;
    let mut rows = Vec::new();
    for c in t.schema()?.columns {
        let ty = format!("{}{}", c.ty, if c.nullable { "?" } else { "" });
        let (definition, on_error) = match &c.computed {
            Some(computed) => (format!("= {}", computed.expr), format!("{:?}", computed.on_error).to_lowercase()),
            None => (c.default.as_ref().map(|d| format!("default {d}")).unwrap_or_default(), String::new()),
        };
        rows.push([c.name, ty, definition, on_error]);
    }
    output::aligned(out, &["column", "type", "definition", "on_error"], &rows)?;
    if !info.primary_key.is_empty() {
        writeln!(out, "primary key: {}", info.primary_key.join(", "))?;
    }
    let dependents: Vec<String> = t.dependents()?.iter().map(|p| p.to_string()).collect();
    if !dependents.is_empty() {
        writeln!(out, "read by: {}", dependents.join(", "))?;
    }
    Ok(())
}

fn history(t: &Table, out: &mut impl Write) -> Result<()> {
    let rows: Vec<[String; 7]> = t
        .history()?
        .into_iter()
        .map(|v| {
            [
                v.version.to_string(),
                tabula::format_timestamp(v.created_at),
                v.change.to_string(),
                v.inserted.to_string(),
                v.updated.to_string(),
                v.deleted.to_string(),
                v.detail,
            ]
        })
        .collect();
    output::aligned(out, &["version", "time", "change", "inserted", "updated", "deleted", "detail"], &rows)?;
    Ok(())
}

fn show(
    t: &Table,
    filter: Option<&str>,
    columns: &[String],
    limit: Option<u64>,
    format: Format,
    out: &mut impl Write,
) -> Result<()> {
    let mut q = if columns.is_empty() { t.select_all() } else { t.select(columns.iter().map(col)) };
    if let Some(text) = filter {
        q = q.where_(Expr::parse(text)?);
    }
    if let Some(n) = limit {
        q = q.limit(n);
    }
    let mut pager = Pager::new(format, out);
    for row in q.stream()? {
        pager.push(row?)?;
    }
    pager.finish()?;
    Ok(())
}

/// A column as the schema diff shows it: `name Type? = expr` or `name Type default v`.
fn column_text(c: &ColumnDef) -> String {
    let mut text = format!("{} {}{}", c.name, c.ty, if c.nullable { "?" } else { "" });
    if let Some(computed) = &c.computed {
        text.push_str(&format!(" = {}", computed.expr));
    }
    if let Some(default) = &c.default {
        text.push_str(&format!(" default {default}"));
    }
    text
}

fn diff(
    cat: &Catalog,
    table: &str,
    from: Version,
    to: Version,
    format: DiffFormat,
    out: &mut impl Write,
) -> Result<()> {
    let t = cat.get_table(table)?;
    let schema = |v: Version| -> Result<Vec<ColumnDef>> {
        let at = format!("{}:{v}", t.path());
        Ok(cat.get_table(at.as_str())?.schema()?.columns)
    };
    let (before, after) = (schema(from)?, schema(to)?);
    let mut columns: Vec<(char, String)> = Vec::new();
    for c in &after {
        match before.iter().find(|b| b.name == c.name) {
            None => columns.push(('+', column_text(c))),
            Some(b) if column_text(b) != column_text(c) => {
                columns.push(('~', format!("{} -> {}", column_text(b), column_text(c))))
            }
            Some(_) => {}
        }
    }
    for b in before.iter().filter(|b| !after.iter().any(|c| c.name == b.name)) {
        columns.push(('-', column_text(b)));
    }
    let json = format == DiffFormat::Json;
    if json {
        let schema: Vec<serde_json::Value> = columns
            .iter()
            .map(|(sign, text)| serde_json::json!({"change": change_name(*sign), "column": text}))
            .collect();
        write!(
            out,
            "{{\"table\": {}, \"from\": {}, \"to\": {}, \"columns\": {}, \"rows\": [",
            serde_json::Value::String(t.path().to_string()),
            from.0,
            to.0,
            serde_json::Value::Array(schema)
        )?;
    } else {
        writeln!(out, "{} {from} -> {to}", t.path())?;
        writeln!(out, "columns:{}", if columns.is_empty() { " unchanged" } else { "" })?;
        for (sign, text) in &columns {
            writeln!(out, "  {sign} {text}")?;
        }
        writeln!(out, "rows:")?;
    }
    let mut counts = [0u64; 3];
    let mut io_error = None;
    t.diff(from, to, |change| {
        let written = if json {
            let entry = match &change {
                RowChange::Added(row) => serde_json::json!({"change": "added", "row": row.to_json()}),
                RowChange::Removed(row) => serde_json::json!({"change": "removed", "row": row.to_json()}),
                RowChange::Changed { before, after } => {
                    serde_json::json!({"change": "changed", "before": before.to_json(), "after": after.to_json()})
                }
            };
            let first = counts.iter().sum::<u64>() == 0;
            write!(out, "{}{entry}", if first { "\n  " } else { ",\n  " })
        } else {
            match &change {
                RowChange::Added(row) => writeln!(out, "  + {row}"),
                RowChange::Removed(row) => writeln!(out, "  - {row}"),
                RowChange::Changed { before, after } => {
                    let cells: Vec<String> = after
                        .iter()
                        .filter_map(|(name, v)| match before.value(name) {
                            Some(old) if old != v => Some(format!("{name}: {old} -> {v}")),
                            _ => None,
                        })
                        .collect();
                    writeln!(out, "  ~ {before}\n      {}", cells.join(", "))
                }
            }
        };
        counts[match change {
            RowChange::Added(_) => 0,
            RowChange::Removed(_) => 1,
            RowChange::Changed { .. } => 2,
        }] += 1;
        match written {
            Ok(()) => Ok(true),
            Err(e) => {
                io_error = Some(e);
                Ok(false)
            }
        }
    })?;
    if let Some(e) = io_error {
        return Err(Failure::Io(e));
    }
    if json {
        writeln!(out, "{}]}}", if counts.iter().sum::<u64>() == 0 { "" } else { "\n" })?;
    } else {
        writeln!(out, "({} added, {} removed, {} changed)", counts[0], counts[1], counts[2])?;
    }
    Ok(())
}

fn change_name(sign: char) -> &'static str {
    match sign {
        '+' => "added",
        '-' => "removed",
        _ => "changed",
    }
}

fn import(t: &Table, file: Option<PathBuf>, out: &mut impl Write) -> Result<()> {
    let input: Box<dyn BufRead> = match &file {
        Some(path) => Box::new(io::BufReader::new(
            std::fs::File::open(path).map_err(|e| Failure::Usage(format!("cannot read '{}': {e}", path.display())))?,
        )),
        None => Box::new(io::stdin().lock()),
    };
    let mut records = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| Failure::Usage(format!("line {}: not a JSON object ({e}); nothing was imported", i + 1)))?;
        records.push(record);
    }
    let result = t.insert_records(records).map_err(|e| match e.code() {
        ErrorCode::UdfNotRegistered => Failure::Usage(format!(
            "{e}; a write that computes a UDF column must run in the application (or its xtask), where the UDF is registered; nothing was imported"
        )),
        _ => Failure::Tabula(e),
    })?;
    writeln!(out, "imported {} rows into {} (version {})", result.inserted, t.path(), result.version)?;
    Ok(())
}

fn revert(t: &Table, to: Option<u64>, yes: bool, out: &mut impl Write) -> Result<()> {
    let history = t.history()?;
    let current = t.version()?;
    let target = match to {
        Some(v) => Version(v),
        // History is newest first: the newest version before the current one.
        None => history.iter().map(|v| v.version).find(|v| *v < current).ok_or_else(|| {
            Failure::Usage(format!("{} is at its first version ({current}); there is nothing to revert", t.path()))
        })?,
    };
    let undone: Vec<_> = history.iter().filter(|v| v.version > target).collect();
    let summary: Vec<String> = undone.iter().map(|v| format!("version {} ({})", v.version, v.detail)).collect();
    if !yes {
        if !io::stdin().is_terminal() {
            return Err(Failure::Usage(format!(
                "revert {} to version {target} undoes {}; pass --yes to confirm (standard input is not a terminal)",
                t.path(),
                summary.join(", ")
            )));
        }
        eprint!("Revert {} to version {target}, undoing {}? [y/N] ", t.path(), summary.join(", "));
        let mut answer = String::new();
        io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Failure::Usage("not reverted".into()));
        }
    }
    let now = t.revert_to(target)?;
    writeln!(out, "reverted {} to version {now}; undid:", t.path())?;
    for line in summary {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

fn compact(cat: &Catalog, table: Option<&str>, keep: Option<u64>, out: &mut impl Write) -> Result<()> {
    let retention = keep.map_or(Retention::All, Retention::Versions);
    let reports = match table {
        Some(path) => {
            let t = cat.get_table(path)?;
            vec![(t.path().clone(), t.compact(retention)?)]
        }
        None => cat.compact(retention)?,
    };
    let rows: Vec<[String; 5]> = reports
        .into_iter()
        .map(|(path, r)| {
            [
                path.to_string(),
                r.oldest_kept.to_string(),
                r.versions_removed.to_string(),
                r.rows_removed.to_string(),
                r.columns_removed.to_string(),
            ]
        })
        .collect();
    output::aligned(
        out,
        &["table", "oldest kept", "versions removed", "row versions removed", "columns removed"],
        &rows,
    )?;
    Ok(())
}

fn check(cat: &Catalog, out: &mut impl Write) -> Result<()> {
    cat.integrity_check().map_err(|e| Failure::Check(e.to_string()))?;
    let tables = cat.list_tables("", Recursive::Yes)?;
    writeln!(
        out,
        "integrity: ok ({} tables; file format {}, this tabula reads up to {})",
        tables.len(),
        cat.format_version()?,
        tabula::FORMAT_VERSION
    )?;
    let mut needs = Vec::new();
    for path in &tables {
        for c in cat.get_table(path)?.schema()?.columns {
            let mut udfs = BTreeSet::new();
            if let Some(computed) = &c.computed {
                collect_udfs(&computed.expr, &mut udfs);
            }
            for udf in udfs {
                needs.push([udf, format!("{path}.{}", c.name)]);
            }
        }
    }
    if needs.is_empty() {
        writeln!(out, "UDFs needed: none")?;
    } else {
        writeln!(out, "UDFs the application must register to write these tables:")?;
        output::aligned(out, &["udf", "column"], &needs)?;
    }
    Ok(())
}

fn collect_udfs(e: &Expr, into: &mut BTreeSet<String>) {
    match e {
        Expr::Udf { name, version, args, .. } => {
            into.insert(format!("{name}@{version}"));
            args.iter().for_each(|a| collect_udfs(a, into));
        }
        Expr::Unary { arg, .. } => collect_udfs(arg, into),
        Expr::Binary { left, right, .. } => {
            collect_udfs(left, into);
            collect_udfs(right, into);
        }
        Expr::Func { args, .. } => args.iter().for_each(|a| collect_udfs(a, into)),
        Expr::If { cond, then, otherwise } => {
            for part in [cond, then, otherwise] {
                collect_udfs(part, into);
            }
        }
        Expr::Cast { expr, .. } | Expr::Alias { expr, .. } => collect_udfs(expr, into),
        Expr::Column(_) | Expr::Literal(_) | Expr::CellError { .. } => {}
    }
}
