//! A view's own stored columns: values a user sets on the rows a view shows (`update` on the
//! view), kept in `<phys>_stored` by root row identity with the view's versions as row
//! versions (`_vmin`, `_vmax`), so every view version reads the values it had and a revert
//! of the view brings the old ones back. A row without a stored row shows nulls.

use super::meta::stored_name;
use super::sql::{sql_for_read, version_value};
use super::{column_level, TableMeta, Tx};
use crate::error::{err, Result};
use crate::expr::Expr;
use crate::types::{ColumnType, Value, Version};

impl Tx<'_> {
    /// Sets the stored columns `set` of view `meta` (its own) to expressions over the view's
    /// rows, in the rows it shows where `where_` holds, as its version `version`: those rows
    /// get new versions of their stored values. Returns how many rows.
    pub(crate) fn update_view_stored(
        &self,
        meta: &TableMeta,
        version: Version,
        set: &[(String, Expr)],
        where_: &Expr,
    ) -> Result<u64> {
        if meta.view_filter.is_none() {
            return Err(err!(InvalidArgument, "'{}' is not a view", meta.path));
        }
        let stored = stored_name(&meta.phys);
        let level = meta.level();
        let mut params = self.params();
        let (mut targets, mut values) = (
            vec!["_id".to_string(), "_vmin".into(), "_vmax".into()],
            vec!["b._id".to_string(), params.version(version), meta.layout.live().to_string()],
        );
        for c in meta.schema.columns.iter().filter(|c| column_level(c.id) == level && !c.is_computed()) {
            targets.push(format!("c{}", c.id.0));
            values.push(match set.iter().find(|(n, _)| *n == c.name) {
                Some((_, expr)) => sql_for_read(meta, expr, &mut params)?,
                None => meta.column_sql(&c.name).unwrap_or_else(|| "NULL".into()),
            });
        }
        let shown = self.shown_sql(meta, &meta.visible_sql(), &mut params)?;
        let chosen = sql_for_read(meta, where_, &mut params)?;
        let n = self.execute(
            &format!(
                "INSERT INTO {stored}({}) SELECT {} FROM {} WHERE {} AND {shown} AND {chosen}",
                targets.join(", "),
                values.join(", "),
                meta.source_sql(),
                meta.visible_sql(),
            ),
            &params.values,
        )?;
        self.end_replaced_stored(meta, version)?;
        Ok(n)
    }

    /// A page of the rows view `meta` shows now (those of its base visible now, before its
    /// filter): the first `limit` after base physical rowid `after`, in rowid order, each
    /// as its rowid, its identity, then the values of `names` (columns of the view).
    pub(crate) fn view_rows(
        &self,
        meta: &TableMeta,
        names: &[String],
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, i64, Vec<Value>)>> {
        let mut select = vec!["b._rowid_".to_string(), "b._id".into()];
        let mut types = vec![Some(ColumnType::Int), Some(ColumnType::Int)];
        for name in names {
            let column = meta.schema.column(name).ok_or_else(|| err!(UnknownColumn, "no column '{name}'"))?;
            select.push(meta.column_sql(name).unwrap_or_else(|| "NULL".into()));
            types.push(Some(column.ty));
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE {} AND b._rowid_ > ?1 ORDER BY b._rowid_ LIMIT ?2",
            select.join(", "),
            meta.source_sql(),
            meta.visible_sql()
        );
        let mut out = Vec::new();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query_page(&sql, &[Value::Int(after), Value::Int(limit)], &types, |values| {
            let mut values = values.into_iter();
            if let (Some(Value::Int(rowid)), Some(Value::Int(id))) = (values.next(), values.next()) {
                out.push((rowid, id, values.collect()));
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Adds, as view `meta`'s version `version`, new versions of its own stored values: for
    /// each row identity, every own stored column's value in schema order (what
    /// [`Tx::update_view_stored`] computes in SQL, computed by the caller). The versions
    /// they replace stay live until [`Tx::end_replaced_stored`], so that a write can add its
    /// rows a batch at a time.
    pub(crate) fn add_view_stored(&self, meta: &TableMeta, version: Version, rows: &[(i64, Vec<Value>)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let level = meta.level();
        let mut columns = vec!["_id".to_string()];
        columns.extend(
            meta.schema
                .columns
                .iter()
                .filter(|c| column_level(c.id) == level && !c.is_computed())
                .map(|c| format!("c{}", c.id.0)),
        );
        let width = columns.len();
        columns.extend(["_vmin".to_string(), "_vmax".into()]);
        let values: Vec<Value> = rows
            .iter()
            .flat_map(|(id, values)| std::iter::once(Value::Int(*id)).chain(values.iter().cloned()))
            .collect();
        let constants = [Value::Int(version.0 as i64), Value::Int(meta.layout.live())];
        self.copy_rows(&stored_name(&meta.phys), &columns, None, &values, width, &constants).map(|_| ())
    }

    /// Ends the stored value versions of view `meta` that its version `version` replaced.
    pub(crate) fn end_replaced_stored(&self, meta: &TableMeta, version: Version) -> Result<()> {
        let stored = stored_name(&meta.phys);
        self.execute(
            &format!(
                "UPDATE {stored} SET _vmax = ?1 WHERE {live} AND _vmin < ?1
                 AND _id IN (SELECT _id FROM {stored} WHERE {live} AND _vmin = ?1)",
                live = meta.layout.is_live("")
            ),
            &[version_value(version)],
        )?;
        Ok(())
    }

    /// How many rows view `meta` shows now whose values of the stored columns of view
    /// `changed` (a view it reads through, or itself) its version `version` set.
    pub(crate) fn rows_with_stored_change(
        &self,
        meta: &TableMeta,
        changed: &TableMeta,
        version: Version,
    ) -> Result<u64> {
        if meta.view_filter.is_none() {
            return Ok(0);
        }
        let stored = stored_name(&changed.phys);
        let mut params = self.params();
        let shown = self.shown_sql(meta, &meta.visible_sql(), &mut params)?;
        let v = params.version(version);
        let n = self.query_i64(
            &format!(
                "SELECT count(*) FROM {} WHERE {} AND {shown} AND b._id IN
                 (SELECT _id FROM {stored} WHERE _vmin = {v} OR ({ended}))",
                meta.source_sql(),
                meta.visible_sql(),
                ended = meta.layout.ended_at("", &v)
            ),
            &params.values,
        )?;
        Ok(n as u64)
    }
}
