//! Which base rows a view shows where the store's SQL cannot run the view's filter with
//! Tabula's meaning: on a server, a filter using Tabula's other functions (`upper`, `round`,
//! ...), Float arithmetic or casts. Tabula reads the filter's inputs of the rows a statement
//! would test, evaluates the filter itself (`RowTest`, given by the catalog), and the
//! statement reads the rows it holds for by physical row id, bound as one list:
//! `b._rowid_ = ANY(..)`. Nothing is written, so this works in read-only
//! transactions and on a read-only role. Reads that page (streams, a view's computed
//! columns) evaluate a window of rows at a time, so each page costs about its own rows.

use super::meta::TableMeta;
use super::sql::{portable_predicate, sql_for_read, Params, Piece};
use super::Tx;
use crate::error::Result;
use crate::expr::Expr;
use crate::types::{ColumnType, Value};

/// Rows a window of a paged read evaluates the filter on: enough that a page of a selective
/// view takes few windows, few enough that the ids bound stay small.
const WINDOW: usize = 8192;

/// Rows read at a time when all the rows a statement tests are evaluated.
const ALL_WINDOW: usize = 65_536;

/// A view's filter that Tabula evaluates for the store (see the module's doc).
pub(crate) struct RustFilter {
    filter: Expr,
    /// The columns the filter reads, in the order fetched.
    names: Vec<String>,
    /// `b._rowid_, <each column's SQL>`.
    select: String,
    types: Vec<Option<ColumnType>>,
    source: String,
}

impl RustFilter {
    /// The filter of view `meta` when this transaction's SQL cannot run it with Tabula's
    /// meaning; `None` when it can (always on SQLite, which runs Tabula's functions).
    pub(crate) fn of(tx: &Tx, meta: &TableMeta) -> Option<RustFilter> {
        let filter = meta.view_filter.as_ref()?;
        if !tx.on_server() || portable_predicate(filter, &meta.schema) {
            return None;
        }
        // `errortype(c)` / `errormsg(c)` are read by the server (a part of the error slot's
        // text, the same SQL on every backend) as columns `c#Type` / `c#Message`.
        let mut parts: Vec<(String, String)> = Vec::new();
        filter.visit(&mut |e| {
            if let Expr::CellError { column, part } = e {
                let sql = sql_for_read(meta, e, &mut Params::default()).unwrap_or_else(|_| "NULL".into());
                parts.push((format!("{column}#{part:?}"), sql));
            }
        });
        let filter = filter.replace_cell_errors(&|c, part| Expr::Column(format!("{c}#{part:?}")));
        let names: Vec<String> = filter.columns().into_iter().collect();
        let mut select = vec!["b._rowid_".to_string()];
        let mut types = vec![Some(ColumnType::Int)];
        for name in &names {
            match parts.iter().find(|(part, _)| part == name) {
                Some((_, sql)) => {
                    select.push(sql.clone());
                    types.push(Some(ColumnType::String));
                }
                None => {
                    select.push(meta.column_sql(name).unwrap_or_else(|| "NULL".into()));
                    types.push(meta.schema.column(name).map(|c| c.ty));
                }
            }
        }
        Some(RustFilter { filter, names, select: select.join(", "), types, source: meta.source_sql() })
    }
}

/// The rows of a window where a [`RustFilter`] holds.
struct Window {
    ids: Vec<i64>,
    /// The last row id the window tested (`None`: no row was left to test).
    through: Option<i64>,
    /// Whether the window was full (rows may be left after it).
    full: bool,
}

/// SQL over `b.` that holds for the rows `ids`, bound as one parameter: a list the server
/// makes an array constant when it plans the statement (under `force_custom_plan`, see
/// [`Tx::rows_shown`]), which it searches with its row id index or a hash table, whatever
/// its statistics. (`b._rowid_ IN (SELECT unnest(..))` was a join the server could plan
/// as a nested loop over both sides when a fresh table had no statistics yet: 8,192
/// rows against 2,048 ids took 490 ms instead of 1.)
fn member(ids: &[i64]) -> Piece {
    // (A server returns rows in no particular order without `ORDER BY`.)
    let (Some(low), Some(high)) = (ids.iter().min(), ids.iter().max()) else {
        return Piece::plain("1 = 0");
    };
    let mut list = String::with_capacity(ids.len() * 8);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        list.push_str(&id.to_string());
    }
    Piece {
        sql: "(b._rowid_ BETWEEN CAST(?2 AS BIGINT) AND CAST(?3 AS BIGINT) AND b._rowid_ = \
              ANY(CAST(string_to_array(CAST(?1 AS TEXT), ',') AS BIGINT[])))"
            .into(),
        values: vec![Value::String(list), Value::Int(*low), Value::Int(*high)],
    }
}

impl Tx<'_> {
    /// View `meta`'s filter as SQL over `b.`, for a statement that tests it on the base rows
    /// `rows` (SQL over `b.`: the statement's own condition, or one it implies): the filter
    /// itself where this SQL computes it with Tabula's meaning, else the rows among `rows`
    /// where Tabula finds it holds. `meta` must be a view.
    pub(crate) fn shown_sql(&self, meta: &TableMeta, rows: &str, params: &mut Params) -> Result<String> {
        self.shown_sql_among(meta, &Piece::plain(rows), params)
    }

    /// [`Tx::shown_sql`] for rows whose condition binds values.
    pub(crate) fn shown_sql_among(&self, meta: &TableMeta, rows: &Piece, params: &mut Params) -> Result<String> {
        match (RustFilter::of(self, meta), &meta.view_filter) {
            (Some(f), _) => Ok(params.splice(&member(&self.all_rows_shown(&f, rows)?))),
            (None, Some(filter)) => sql_for_read(meta, filter, params),
            (None, None) => Err(crate::error::err!(Storage, "'{}' has no filter to test (a bug in Tabula)", meta.path)),
        }
    }

    /// SQL over `b.` that holds for the rows among `rows` (SQL over `b.`) where `f` holds.
    pub(crate) fn shown_among(&self, f: &RustFilter, rows: &Piece) -> Result<Piece> {
        Ok(member(&self.all_rows_shown(f, rows)?))
    }

    /// How many rows among `rows` (SQL over `b.`) `f` holds for.
    pub(crate) fn count_shown(&self, f: &RustFilter, rows: &Piece) -> Result<u64> {
        Ok(self.all_rows_shown(f, rows)?.len() as u64)
    }

    /// A paged read of a view whose filter Tabula evaluates: the rows of `rows` (SQL over
    /// `b.`) after row id `after` are tested a window at a time, and `page(condition,
    /// wanted)` reads those of each window the filter holds for (`condition`: SQL over `b.`;
    /// the page reads at most `wanted` rows, in row id order, and returns how many it read
    /// and whether its reader wants more), until `batch` rows were read or none is left.
    pub(crate) fn shown_pages(
        &self,
        f: &RustFilter,
        rows: &Piece,
        after: i64,
        batch: usize,
        mut page: impl FnMut(&Piece, usize) -> Result<(usize, bool)>,
    ) -> Result<()> {
        let (mut cursor, mut left) = (after, batch);
        while left > 0 {
            let window = self.rows_shown(f, rows, (cursor, WINDOW.max(batch)))?;
            let Some(through) = window.through else { return Ok(()) };
            if !window.ids.is_empty() {
                let (read, more) = page(&member(&window.ids), left)?;
                left = left.saturating_sub(read);
                if !more {
                    return Ok(());
                }
            }
            if !window.full {
                return Ok(());
            }
            cursor = through;
        }
        Ok(())
    }

    /// The row ids among `rows` (SQL over `b.`) where `f` holds, read
    /// [`ALL_WINDOW`] rows at a time: a window comes in one exchange, where a streamed read
    /// runs the client's event loop once a row (a count of a view of 100,000 rows 72 -> 53 ms).
    fn all_rows_shown(&self, f: &RustFilter, rows: &Piece) -> Result<Vec<i64>> {
        let (mut ids, mut cursor) = (Vec::new(), i64::MIN);
        loop {
            let window = self.rows_shown(f, rows, (cursor, ALL_WINDOW))?;
            ids.extend(window.ids);
            match window.through {
                Some(through) if window.full => cursor = through,
                _ => return Ok(ids),
            }
        }
    }

    /// The row ids where `f` holds among the first `n` rows of `rows` (SQL over `b.`)
    /// after row id `after` (`window` is `(after, n)`).
    fn rows_shown(&self, f: &RustFilter, rows: &Piece, window: (i64, usize)) -> Result<Window> {
        let test = self.row_test()?;
        // Every statement of this transaction is planned with its parameters' values, so the
        // ids [`member`] binds are a constant (a statement run often with other values
        // could otherwise get a plan for any value, which searches the list row by row).
        self.execute_batch("SET LOCAL plan_cache_mode = force_custom_plan")?;
        let (after, n) = window;
        let mut params = self.params();
        let rows_sql = params.splice(rows);
        let (after_at, limit) = (params.int(after), params.int(n as i64));
        let sql = format!(
            "SELECT {} FROM {} WHERE {rows_sql} AND b._rowid_ > {after_at} ORDER BY b._rowid_ LIMIT {limit}",
            f.select, f.source
        );
        let (mut ids, mut rows_read) = (Vec::new(), Vec::new());
        self.query_page(&sql, &params.values, &f.types, |mut values| {
            if let Value::Int(id) = values.remove(0) {
                ids.push(id);
                rows_read.push(values);
            }
            Ok(true)
        })?;
        let holds = test(&f.filter, &f.names, &rows_read)?;
        let (through, full) = (ids.last().copied(), ids.len() == n);
        ids = ids.into_iter().zip(holds).filter(|(_, h)| *h).map(|(id, _)| id).collect();
        Ok(Window { ids, through, full })
    }
}
