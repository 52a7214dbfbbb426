//! How rows and listings are printed: aligned tables (a page at a time, so a table of any
//! size streams), JSON, JSON lines and CSV.

use std::io::{self, Write};

use clap::ValueEnum;
use tabula::{Row, Value};

/// How `show` prints rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, a page of rows at a time.
    Table,
    /// One JSON array.
    Json,
    /// One JSON object a line.
    Jsonl,
    /// Comma-separated values with a header.
    Csv,
}

/// Rows an aligned table measures and prints at once.
const PAGE: usize = 100;
/// Characters a cell of an aligned table shows at most.
const CELL: usize = 60;

/// Prints `header` and `rows` as aligned columns.
pub fn aligned<const N: usize>(out: &mut impl Write, header: &[&str; N], rows: &[[String; N]]) -> io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    line(out, header.iter().map(|h| h.to_string()), &widths)?;
    for row in rows {
        line(out, row.iter().cloned(), &widths)?;
    }
    Ok(())
}

fn line(out: &mut impl Write, cells: impl Iterator<Item = String>, widths: &[usize]) -> io::Result<()> {
    let mut text = String::new();
    for (cell, w) in cells.zip(widths) {
        text.push_str(&cell);
        text.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
    }
    writeln!(out, "{}", text.trim_end())
}

/// A value as plain text: strings unquoted, null empty, times in RFC 3339, bytes in hex.
pub fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Timestamp(t) => tabula::format_timestamp(*t),
        Value::Date(d) => tabula::format_date(*d),
        Value::Json(j) => j.to_string(),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        other => other.to_string(),
    }
}

/// A table cell: plain text on one line, `null` for null, cut at [`CELL`] characters.
fn cell(v: &Value) -> String {
    if v.is_null() {
        return "null".into();
    }
    let text: String = plain(v).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > CELL {
        format!("{}...", text.chars().take(CELL - 3).collect::<String>())
    } else {
        text
    }
}

/// Writes rows as they come, holding at most a page of them.
pub struct Pager<'a, W: Write> {
    format: Format,
    out: &'a mut W,
    page: Vec<Row>,
    rows: u64,
}

impl<'a, W: Write> Pager<'a, W> {
    pub fn new(format: Format, out: &'a mut W) -> Pager<'a, W> {
        Pager { format, out, page: Vec::new(), rows: 0 }
    }

    pub fn push(&mut self, row: Row) -> io::Result<()> {
        self.rows += 1;
        match self.format {
            Format::Table => {
                self.page.push(row);
                if self.page.len() == PAGE {
                    self.flush_page()?;
                }
            }
            Format::Json => {
                write!(self.out, "{}", if self.rows == 1 { "[\n  " } else { ",\n  " })?;
                write!(self.out, "{}", row.to_json())?;
            }
            Format::Jsonl => writeln!(self.out, "{}", row.to_json())?,
            Format::Csv => {
                if self.rows == 1 {
                    self.csv_record(row.columns().iter().map(String::as_str))?;
                }
                let values: Vec<String> = row.values().iter().map(plain).collect();
                self.csv_record(values.iter().map(String::as_str))?;
            }
        }
        Ok(())
    }

    /// One CSV record, quoted as the `csv` crate does.
    fn csv_record<'r>(&mut self, fields: impl Iterator<Item = &'r str>) -> io::Result<()> {
        let mut w = csv::WriterBuilder::new().buffer_capacity(256).from_writer(Vec::new());
        w.write_record(fields).map_err(io::Error::other)?;
        let bytes = w.into_inner().map_err(|e| io::Error::other(e.to_string()))?;
        self.out.write_all(&bytes)
    }

    fn flush_page(&mut self) -> io::Result<()> {
        let Some(first) = self.page.first() else { return Ok(()) };
        let names: Vec<String> = first.columns().to_vec();
        let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
        let cells: Vec<Vec<String>> = self.page.iter().map(|r| r.values().iter().map(cell).collect()).collect();
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        // The header heads the first page; later pages align on their own widths.
        if self.rows == self.page.len() as u64 {
            line(self.out, names.into_iter(), &widths)?;
        }
        for row in cells {
            line(self.out, row.into_iter(), &widths)?;
        }
        self.page.clear();
        self.out.flush()
    }

    pub fn finish(mut self) -> io::Result<()> {
        match self.format {
            Format::Table => {
                self.flush_page()?;
                writeln!(self.out, "({} row{})", self.rows, if self.rows == 1 { "" } else { "s" })?;
            }
            Format::Json if self.rows == 0 => writeln!(self.out, "[]")?,
            Format::Json => writeln!(self.out, "\n]")?,
            Format::Jsonl | Format::Csv => {}
        }
        Ok(())
    }
}
