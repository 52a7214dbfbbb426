//! Reads of a table's rows as the store runs them: a [`Scan`] is built from typed pieces
//! (what to fetch, which rows, in which order) and run by the transaction as a plain read,
//! a count, the ordered row ids, the rows with some ids, or the rows after a row id. Only
//! this module knows how a read is written in SQL.

use super::meta::{Kind, TableMeta};
use super::shown::RustFilter;
use super::sql::{version_value, Params, Piece};
use super::Tx;
use crate::error::Result;
use crate::expr::Expr;
use crate::types::{ColumnType, Value, Version};

/// One read of a table (or view, or snapshot): fetched expressions, the rows it sees, an
/// order. Each piece binds its own literals, so that each statement made of some of them
/// binds exactly theirs (a count does not fetch, a page by row id does not order).
pub(crate) struct Scan {
    fetch: Vec<Piece>,
    source: String,
    /// The rows the scan sees.
    visible: Piece,
    /// Its filters.
    filters: Vec<Piece>,
    /// A view's filter, where the store's SQL runs it.
    view_filter: Option<Piece>,
    /// A view's filter Tabula evaluates for each read (see `store::shown`).
    shown: Option<RustFilter>,
    /// Order keys, each with whether it goes down.
    order: Vec<(Piece, bool)>,
    server: bool,
}

/// Which versions of the rows a scan sees.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seen {
    /// What the table shows now (a snapshot: its version; a pinned handle: `pinned`).
    Current(Option<Version>),
    /// A view's base as of this base version (a pinned view stream).
    BaseAt(Version),
}

impl Scan {
    /// A scan of `meta`'s rows as `seen`, its view filter included.
    pub(crate) fn new(tx: &super::Tx, meta: &TableMeta, seen: Seen) -> Result<Scan> {
        // A version the read chose (a pinned table handle, the version a stream started
        // at, a view stream's base version) is bound; what the object shows now is not a
        // value of the call (a view's or snapshot's root version is fixed for it).
        let at = |v: Version| Piece { sql: meta.layout.visible_at("b.", "?1"), values: vec![version_value(v)] };
        let visible = match seen {
            Seen::Current(Some(v)) if matches!(meta.kind, Kind::Table) => at(v),
            Seen::Current(_) => Piece::plain(meta.visible_sql()),
            Seen::BaseAt(v) => at(v),
        };
        let shown = RustFilter::of(tx, meta);
        let view_filter = match (&shown, &meta.view_filter) {
            (None, Some(filter)) => Some(Piece::read(meta, filter, tx.on_server())?),
            _ => None,
        };
        Ok(Scan {
            fetch: Vec::new(),
            source: meta.source_sql(),
            visible,
            filters: Vec::new(),
            view_filter,
            shown,
            order: Vec::new(),
            server: tx.on_server(),
        })
    }

    /// Fetches `expr` (no UDF) as the next result column.
    pub(crate) fn fetch(&mut self, meta: &TableMeta, expr: &Expr) -> Result<()> {
        self.fetch.push(Piece::read(meta, expr, self.server)?);
        Ok(())
    }

    /// Fetches stored column `name` as the next result column (null if it has none).
    pub(crate) fn fetch_column(&mut self, meta: &TableMeta, name: &str) {
        self.fetch.push(Piece::plain(meta.column_sql(name).unwrap_or_else(|| "NULL".into())));
    }

    /// Fetches a null (a scan that needs no column still returns one per row).
    pub(crate) fn fetch_null(&mut self) {
        self.fetch.push(Piece::plain("NULL"));
    }

    /// How many result columns the scan fetches.
    pub(crate) fn fetched(&self) -> usize {
        self.fetch.len()
    }

    /// Keeps only the rows where `expr` (no UDF) holds. Filters are tested before the rows'
    /// visibility: SQLite tests the terms in order, and a filter usually rejects more rows.
    pub(crate) fn filter(&mut self, meta: &TableMeta, expr: &Expr) -> Result<()> {
        self.filters.push(Piece::read(meta, expr, self.server)?);
        Ok(())
    }

    /// Orders by `expr` (no UDF), after the keys before it.
    pub(crate) fn order_by(&mut self, meta: &TableMeta, expr: &Expr, desc: bool) -> Result<()> {
        self.order.push((Piece::read(meta, expr, self.server)?, desc));
        Ok(())
    }

    /// Whether the scan has an order.
    pub(crate) fn is_ordered(&self) -> bool {
        !self.order.is_empty()
    }

    /// The fetched columns, their literals bound in `params`.
    fn fetch_sql(&self, params: &mut Params) -> String {
        self.fetch.iter().map(|f| params.splice(f)).collect::<Vec<_>>().join(", ")
    }

    /// The rows a view filter Tabula evaluates is tested on: the scan's filters and the
    /// rows it sees, and `extra` (SQL over `b.` with its own values; empty for none).
    fn among(&self, extra: &Piece) -> Piece {
        let mut params = Params::default();
        let mut terms: Vec<String> = self.filters.iter().map(|f| format!("({})", params.splice(f))).collect();
        terms.push(params.splice(&self.visible));
        if !extra.sql.is_empty() {
            terms.push(params.splice(extra));
        }
        Piece { sql: terms.join(" AND "), values: params.values }
    }

    /// Where the scan reads a view whose filter Tabula evaluates: the rows among those of
    /// `among` that it holds for (see [`Scan::among`]).
    fn member(&self, tx: &Tx, extra: &Piece) -> Result<Option<Piece>> {
        self.shown.as_ref().map(|shown| tx.shown_among(shown, &self.among(extra))).transpose()
    }

    /// `FROM .. WHERE ..` of the scan's rows, their literals bound in `params`, with
    /// `member` (see [`Scan::member`]).
    fn rows_sql(&self, params: &mut Params, member: Option<&Piece>) -> String {
        let mut terms: Vec<String> = self.filters.iter().map(|f| format!("({})", params.splice(f))).collect();
        terms.push(params.splice(&self.visible));
        terms.extend(self.view_filter.iter().chain(member).map(|f| params.splice(f)));
        format!("FROM {} WHERE {}", self.source, terms.join(" AND "))
    }

    /// The scan's order, then row order: the order rows were written in, on every backend
    /// (SQLite reads a table in that order anyway; a server's heap does not keep it). Nulls
    /// first going up, as SQLite orders them (a server would put them last).
    fn order_sql(&self, params: &mut Params) -> String {
        let keys = self.order.iter().map(|(key, desc)| {
            format!("{}{}", params.splice(key), if *desc { " DESC NULLS LAST" } else { " NULLS FIRST" })
        });
        let keys: Vec<String> = keys.chain(std::iter::once("b._rowid_".to_string())).collect();
        format!(" ORDER BY {}", keys.join(", "))
    }
}

/// `LIMIT .. OFFSET ..` of a read, its numbers bound.
fn limit_sql(limit: Option<u64>, offset: u64, params: &mut Params) -> String {
    let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
    match (limit, offset) {
        (None, 0) => String::new(),
        (limit, offset) => {
            let limit = params.int(limit.map_or(i64::MAX, clamp));
            format!(" LIMIT {limit} OFFSET {}", params.int(clamp(offset)))
        }
    }
}

impl Tx<'_> {
    /// The scan's rows in its order, after `offset`, at most `limit`; each decoded by
    /// `types` (one a fetched column) and handed to `each` until it returns `Ok(false)`.
    pub(crate) fn scan_rows(
        &self,
        scan: &Scan,
        limit: Option<u64>,
        offset: u64,
        types: &[Option<ColumnType>],
        each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        let member = scan.member(self, &Piece::default())?;
        let mut params = self.params();
        let fetch = scan.fetch_sql(&mut params);
        let rows = scan.rows_sql(&mut params, member.as_ref());
        let order = scan.order_sql(&mut params);
        let sql = format!("SELECT {fetch} {rows}{order}{}", limit_sql(limit, offset, &mut params));
        self.query_each(&sql, &params.values, types, each)
    }

    /// How many rows the scan has after `offset`, at most `limit`.
    pub(crate) fn scan_count(&self, scan: &Scan, limit: Option<u64>, offset: u64) -> Result<u64> {
        if let Some(shown) = &scan.shown {
            // The rows the view's filter holds for among the scan's are the scan's rows.
            let n = self.count_shown(shown, &scan.among(&Piece::default()))?.saturating_sub(offset);
            return Ok(limit.map_or(n, |l| n.min(l)));
        }
        let member = scan.member(self, &Piece::default())?;
        let mut params = self.params();
        let rows = scan.rows_sql(&mut params, member.as_ref());
        let sql = format!("SELECT count(*) FROM (SELECT 1 {rows}{}) AS counted", limit_sql(limit, offset, &mut params));
        Ok(self.query_i64(&sql, &params.values)? as u64)
    }

    /// The physical row ids of the scan's rows in its order (8 bytes a row: what an ordered
    /// stream keeps).
    pub(crate) fn scan_ordered_ids(&self, scan: &Scan, limit: Option<u64>, offset: u64) -> Result<Vec<i64>> {
        let member = scan.member(self, &Piece::default())?;
        let mut params = self.params();
        let rows = scan.rows_sql(&mut params, member.as_ref());
        let order = scan.order_sql(&mut params);
        let sql = format!("SELECT b._rowid_ {rows}{order}{}", limit_sql(limit, offset, &mut params));
        let mut ids = Vec::new();
        self.query_each(&sql, &params.values, &[Some(ColumnType::Int)], |v| {
            if let Some(Value::Int(id)) = v.first() {
                ids.push(*id);
            }
            Ok(true)
        })?;
        Ok(ids)
    }

    /// The scan's rows among physical row ids `ids` (in no particular order), each as its
    /// row id then the fetched columns (`types` starts with the row id's).
    pub(crate) fn scan_ids(
        &self,
        scan: &Scan,
        ids: &[i64],
        types: &[Option<ColumnType>],
        each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        // One parameter an id: the statement's text depends on how many ids, not which.
        let list: Vec<String> = (1..=ids.len()).map(|i| format!("?{i}")).collect();
        let wanted = Piece {
            sql: format!("b._rowid_ IN ({})", list.join(", ")),
            values: ids.iter().map(|id| Value::Int(*id)).collect(),
        };
        let member = scan.member(self, &wanted)?;
        let mut params = self.params();
        let fetch = scan.fetch_sql(&mut params);
        let rows = scan.rows_sql(&mut params, member.as_ref());
        let wanted = params.splice(&wanted);
        self.query_each(&format!("SELECT b._rowid_, {fetch} {rows} AND {wanted}"), &params.values, types, each)
    }

    /// The scan's next `batch` rows after physical row id `after`, in row id order, each as
    /// its row id then the fetched columns (`types` starts with the row id's).
    pub(crate) fn scan_after(
        &self,
        scan: &Scan,
        after: i64,
        batch: usize,
        types: &[Option<ColumnType>],
        mut each: impl FnMut(Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        let page = |member: Option<&Piece>, n: usize, each: &mut dyn FnMut(Vec<Value>) -> Result<bool>| {
            let mut params = self.params();
            let fetch = scan.fetch_sql(&mut params);
            let rows = scan.rows_sql(&mut params, member);
            let (after, n) = (params.int(after), params.int(n as i64));
            let sql = format!("SELECT b._rowid_, {fetch} {rows} AND b._rowid_ > {after} ORDER BY b._rowid_ LIMIT {n}");
            let (mut read, mut more) = (0, true);
            self.query_page(&sql, &params.values, types, |values| {
                read += 1;
                more = each(values)?;
                Ok(more)
            })?;
            Ok((read, more))
        };
        match &scan.shown {
            None => page(None, batch, &mut each).map(|_| ()),
            Some(shown) => self.shown_pages(shown, &scan.among(&Piece::default()), after, batch, |member, n| {
                page(Some(member), n, &mut each)
            }),
        }
    }

    /// The row versions of table `meta` visible at exactly one of versions `lo` and `hi`
    /// (`lo < hi`): what differs between them. In row identity order, a row's `lo` version
    /// before its `hi` one; each handed to `each` as its row identity, whether it is the
    /// `hi` version, and the physical `columns` (`c<id>` with its type).
    pub(crate) fn scan_changes(
        &self,
        meta: &TableMeta,
        lo: Version,
        hi: Version,
        columns: &[(u32, ColumnType)],
        mut each: impl FnMut(i64, bool, Vec<Value>) -> Result<bool>,
    ) -> Result<()> {
        let fetch: String = columns.iter().map(|(id, _)| format!(", c{id}")).collect();
        let sql = format!(
            "SELECT _id, {hi_seen}{fetch} FROM {phys} WHERE {lo_seen} != {hi_seen} ORDER BY _id, _vmin",
            hi_seen = meta.layout.visible_at("", "?2"),
            lo_seen = meta.layout.visible_at("", "?1"),
            phys = meta.phys
        );
        let mut types = vec![Some(ColumnType::Int), Some(ColumnType::Bool)];
        types.extend(columns.iter().map(|(_, ty)| Some(*ty)));
        self.query_each(&sql, &[version_value(lo), version_value(hi)], &types, |mut values| {
            let rest = values.split_off(2);
            match (&values[0], &values[1]) {
                (Value::Int(id), Value::Bool(at_hi)) => each(*id, *at_hi, rest),
                _ => Err(crate::error::err!(
                    Storage,
                    "a row of '{}' has no identity; the catalog may be damaged",
                    meta.path
                )),
            }
        })
    }

    /// How many rows `meta` shows now, and how many of their computed cells hold an error.
    pub(crate) fn rows_and_errors(&self, meta: &TableMeta) -> Result<(u64, u64)> {
        let scan = Scan::new(self, meta, Seen::Current(None))?;
        let member = scan.member(self, &Piece::default())?;
        let mut params = self.params();
        let rows = scan.rows_sql(&mut params, member.as_ref());
        let slots: Vec<String> = meta
            .schema
            .columns
            .iter()
            .filter(|c| c.is_computed())
            .filter_map(|c| meta.column_sql(&format!("{}#error", c.name)))
            .map(|slot| format!("(CASE WHEN {slot} IS NULL THEN 0 ELSE 1 END)"))
            .collect();
        // CAST: a server's sum of integers is a decimal.
        let errors = if slots.is_empty() {
            "0".to_string()
        } else {
            format!("CAST(coalesce(sum({}), 0) AS BIGINT)", slots.join(" + "))
        };
        let mut out = (0, 0);
        self.query_each(
            &format!("SELECT count(*), {errors} {rows}"),
            &params.values,
            &[Some(ColumnType::Int), Some(ColumnType::Int)],
            |v| {
                if let [Value::Int(rows), Value::Int(errors)] = v.as_slice() {
                    out = (*rows as u64, *errors as u64);
                }
                Ok(false)
            },
        )?;
        Ok(out)
    }
}
