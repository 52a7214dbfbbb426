//! The workloads on a PostgreSQL server (`cargo xtask bench --postgres URL`): Tabula's
//! catalog on the server against the raw `postgres` crate doing the same work its fastest
//! way, in the same database and run; and the testkit's namespace cycle and template clone
//! on the server.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Client;
use tabula::{col, Catalog, ColumnOptions, IfExists, Result, Udf};
use tabula_testkit::{template_schema, TestEnv};

use super::{err, median, namespace_cycles, rows, schema, text, time, word_count, Bench};

/// A raw connection to the catalog's schema of `env`.
fn raw_client(env: &TestEnv) -> Result<Client> {
    let url = env.url().ok_or_else(|| err("the bench's catalog is not on a server"))?;
    tabula::connect_server(url)
}

/// The raw side's table, as the bench's schema declares it (no key: Tabula's has none).
const RAW_TABLE: &str = "(id BIGINT NOT NULL, n BIGINT NOT NULL, text TEXT NOT NULL)";

/// The rows of the bench's table as the raw side has them: `(id, n, text)`.
fn raw_row(i: usize, s: &str) -> (i64, i64, &str) {
    (i as i64, (i as u64 % 100_000) as i64, s)
}

/// The fastest way to load rows with the `postgres` crate: one transaction, one
/// `COPY .. FROM STDIN BINARY`, its rows framed by hand and written 64 KiB at a time (a
/// header; each row its field count, each field its length and big-endian bytes; -1).
/// Measured on 100,000 rows: 60 ms, where the crate's `BinaryCopyInWriter` takes 78 (it runs
/// the client's event loop once a row; [`raw_copy_per_row`]) and prepared 32-row `INSERT`s
/// 298. `then` runs after the copy, in its transaction.
fn raw_copy(client: &mut Client, table: &str, texts: Vec<String>, then: &str) -> Result<()> {
    use std::io::Write;
    let mut tx = client.transaction().map_err(err)?;
    let mut sink = tx.copy_in(&format!("COPY {table}(id, n, text) FROM STDIN BINARY")).map_err(err)?;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
    for (i, s) in texts.iter().enumerate() {
        let (id, n, s) = raw_row(i, s);
        let len = i32::try_from(s.len()).map_err(err)?;
        buf.extend_from_slice(&3i16.to_be_bytes());
        for field in [&8i32.to_be_bytes()[..], &id.to_be_bytes(), &8i32.to_be_bytes(), &n.to_be_bytes()] {
            buf.extend_from_slice(field);
        }
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(s.as_bytes());
        if buf.len() >= 1 << 16 {
            sink.write_all(&buf).map_err(err)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    sink.write_all(&buf).map_err(err)?;
    sink.finish().map_err(err)?;
    tx.batch_execute(then).map_err(err)?;
    tx.commit().map_err(err)
}

/// [`raw_copy`] through the crate's `BinaryCopyInWriter`, one `write` a row.
fn raw_copy_per_row(client: &mut Client, table: &str, texts: Vec<String>, _: &str) -> Result<()> {
    let mut tx = client.transaction().map_err(err)?;
    let sink = tx.copy_in(&format!("COPY {table}(id, n, text) FROM STDIN BINARY")).map_err(err)?;
    let mut writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8, Type::TEXT]);
    for (i, s) in texts.iter().enumerate() {
        let (id, n, s) = raw_row(i, s);
        writer.write(&[&id, &n, &s]).map_err(err)?;
    }
    writer.finish().map_err(err)?;
    tx.commit().map_err(err)
}

impl Bench {
    fn server(&self) -> Result<&str> {
        self.server.as_deref().ok_or_else(|| err("no server"))
    }

    /// Appending the bench's rows to a new table in one call, against `COPY` into a bare
    /// table; and, reported beside it, the same table given a primary key after the copy
    /// (the bulk-load way: what one btree index costs the raw side; Tabula's table keeps one
    /// on its row versions' ids, built the same way on a first load), and the bare table
    /// loaded through the crate's row-by-row writer.
    pub(super) fn pg_insert(&mut self) -> Result<()> {
        let env = TestEnv::on_server(self.server()?)?;
        let mut client = raw_client(&env)?;
        let (mut t, mut r, mut keyed, mut per_row) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for rep in 0..self.reps {
            for side in [rep % 2, 1 - rep % 2] {
                if side == 0 {
                    let table = env.catalog().create_table(format!("t{rep}"), schema(), IfExists::Error)?;
                    let data = rows(self.rows);
                    t.push(time(|| table.insert(data))?.0);
                    env.catalog().drop_table(format!("t{rep}"), tabula::Force::No)?;
                } else {
                    let sides = [("raw", &mut r), ("raw_keyed", &mut keyed), ("raw_rows", &mut per_row)];
                    for (table, out) in sides {
                        client
                            .batch_execute(&format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table}{RAW_TABLE}"))
                            .map_err(err)?;
                        let then = if table == "raw_keyed" { "ALTER TABLE raw_keyed ADD PRIMARY KEY (id)" } else { "" };
                        let texts: Vec<String> = (0..self.rows).map(text).collect();
                        let copy = if table == "raw_rows" { raw_copy_per_row } else { raw_copy };
                        out.push(time(|| copy(&mut client, table, texts, then))?.0);
                    }
                }
            }
        }
        self.ratio("PostgreSQL: insert (raw: COPY into a bare table)", t.clone(), r, 0.7);
        self.ratio("PostgreSQL: insert (raw: the same, then a primary key)", t.clone(), keyed, None);
        self.ratio("PostgreSQL: insert (raw: COPY by BinaryCopyInWriter, a row a call)", t, per_row, None);
        Ok(())
    }

    /// The filtered select of 10% of the rows (no index on either side).
    pub(super) fn pg_select(&mut self) -> Result<()> {
        let env = TestEnv::on_server(self.server()?)?;
        let table = env.catalog().create_table("t", schema(), IfExists::Error)?;
        table.insert(rows(self.rows))?;
        let mut client = raw_client(&env)?;
        client.batch_execute(&format!("CREATE TABLE raw{RAW_TABLE}")).map_err(err)?;
        raw_copy(&mut client, "raw", (0..self.rows).map(text).collect(), "")?;
        client.batch_execute("ANALYZE raw").map_err(err)?;
        let (lo, hi) = ((self.rows / 5) as i64, (self.rows * 3 / 10) as i64);
        let q = table.select([col("id"), col("text")]).where_(col("n").ge(lo).and(col("n").lt(hi)));
        let stmt = client.prepare("SELECT id, text FROM raw WHERE n >= $1 AND n < $2").map_err(err)?;
        let (mut t, mut r) = (Vec::new(), Vec::new());
        for rep in 0..self.reps {
            for side in [rep % 2, 1 - rep % 2] {
                if side == 0 {
                    t.push(time(|| q.collect())?.0);
                } else {
                    let raw = || -> Result<Vec<(i64, String)>> {
                        let rows = client.query(&stmt, &[&lo, &hi]).map_err(err)?;
                        rows.iter()
                            .map(|row| Ok((row.try_get(0).map_err(err)?, row.try_get(1).map_err(err)?)))
                            .collect()
                    };
                    r.push(time(raw)?.0);
                }
            }
        }
        self.ratio("PostgreSQL: filtered select (10%)", t, r, None);
        Ok(())
    }

    /// One-row inserts, one call each, as a service writes: Tabula's (a transaction that
    /// takes the catalog's lock, reads the table's metadata, appends, records the version)
    /// against the raw side's prepared `INSERT` in autocommit, one exchange. A call on a
    /// server costs mostly its exchanges (`small_calls_take_few_exchanges_with_the_server`
    /// counts Tabula's: 5).
    pub(super) fn pg_small_insert(&mut self) -> Result<()> {
        let env = TestEnv::on_server(self.server()?)?;
        let table = env.catalog().create_table("t", schema(), IfExists::Error)?;
        let mut client = raw_client(&env)?;
        client.batch_execute(&format!("CREATE TABLE raw{RAW_TABLE}")).map_err(err)?;
        let stmt = client.prepare("INSERT INTO raw(id, n, text) VALUES ($1, $2, $3)").map_err(err)?;
        let calls: u64 = if self.reps == 1 { 20 } else { 200 };
        let (mut t, mut r) = (Vec::new(), Vec::new());
        for rep in 0..self.reps {
            for side in [rep % 2, 1 - rep % 2] {
                if side == 0 {
                    let one = || {
                        for i in 0..calls {
                            table.insert([tabula::row! {"id" => i as i64, "n" => i as i64, "text" => text(i)}])?;
                        }
                        Ok(())
                    };
                    t.push(time(one)?.0 / calls as f64);
                } else {
                    let one = || -> Result<()> {
                        for i in 0..calls {
                            let s = text(i);
                            client.execute(&stmt, &[&(i as i64), &(i as i64), &s]).map_err(err)?;
                        }
                        Ok(())
                    };
                    r.push(time(one)?.0 / calls as f64);
                }
            }
        }
        self.ratio("PostgreSQL: insert of one row, a call (ms a call)", t, r, None);
        Ok(())
    }

    /// A computed column added to a table of the bench's rows: a builtin (`length(text)`),
    /// against `ALTER TABLE` + `UPDATE raw SET len = length(text)`; and a Rust function,
    /// against what a competent engineer writes with the `postgres` crate: read `id, text`,
    /// compute, and write every value back with one `UPDATE .. FROM unnest($1, $2)` (the
    /// server joins on `id`), in one transaction.
    pub(super) fn pg_columns(&mut self) -> Result<()> {
        let env = TestEnv::on_server(self.server()?)?;
        let mut client = raw_client(&env)?;
        let udf = Udf::new("word_count", 1, word_count);
        env.catalog().register(&udf);
        let (mut bt, mut br, mut ut, mut ur) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for rep in 0..self.reps.min(5) {
            for side in [rep % 2, 1 - rep % 2] {
                if side == 0 {
                    for (name, out) in [("b", &mut bt), ("u", &mut ut)] {
                        let table = env.catalog().create_table(format!("{name}{rep}"), schema(), IfExists::Error)?;
                        table.insert(rows(self.rows))?;
                        let expr = if name == "b" { col("text").length() } else { udf.call([col("text")]) };
                        out.push(time(|| table.add_computed_column("c", expr, ColumnOptions::default()))?.0);
                        env.catalog().drop_table(format!("{name}{rep}"), tabula::Force::No)?;
                    }
                } else {
                    for (name, out) in [("raw_b", &mut br), ("raw_u", &mut ur)] {
                        client
                            .batch_execute(&format!("DROP TABLE IF EXISTS {name}; CREATE TABLE {name}{RAW_TABLE}"))
                            .map_err(err)?;
                        raw_copy(&mut client, name, (0..self.rows).map(text).collect(), "")?;
                        let run = |client: &mut Client| -> Result<()> {
                            let mut tx = client.transaction().map_err(err)?;
                            if name == "raw_b" {
                                tx.batch_execute(&format!(
                                    "ALTER TABLE {name} ADD COLUMN c BIGINT; UPDATE {name} SET c = length(text)"
                                ))
                                .map_err(err)?;
                            } else {
                                tx.batch_execute(&format!("ALTER TABLE {name} ADD COLUMN c BIGINT")).map_err(err)?;
                                let (mut ids, mut counts) = (Vec::new(), Vec::new());
                                for row in tx.query(&format!("SELECT id, text FROM {name}"), &[]).map_err(err)? {
                                    ids.push(row.try_get::<_, i64>(0).map_err(err)?);
                                    counts.push(word_count(row.try_get(1).map_err(err)?));
                                }
                                tx.execute(
                                    &format!(
                                        "UPDATE {name} SET c = v.c FROM unnest($1::bigint[], $2::bigint[]) AS v(id, c) \
                                         WHERE {name}.id = v.id"
                                    ),
                                    &[&ids, &counts],
                                )
                                .map_err(err)?;
                            }
                            tx.commit().map_err(err)
                        };
                        out.push(time(|| run(&mut client))?.0);
                    }
                }
            }
        }
        self.ratio("PostgreSQL: SQL builtin computed column", bt, br, None);
        self.ratio("PostgreSQL: Rust-UDF computed column", ut, ur, None);
        Ok(())
    }

    /// A test namespace's life on a server catalog: made, a table created in it, closed.
    pub(super) fn pg_namespace_cycle(&mut self) -> Result<()> {
        let env = TestEnv::on_server(self.server()?)?;
        let times = namespace_cycles(env.catalog(), if self.reps == 1 { 10 } else { 50 })?;
        let m = median(times.clone());
        self.absolute("PostgreSQL: namespace cycle", times, m, "ms median", "<= 20 ms".into(), m <= 20.0);
        Ok(())
    }

    /// A test's own copy of a 10,000-row template catalog (`TestEnv::from_template_on`),
    /// the template built once before.
    pub(super) fn pg_template_clone(&mut self) -> Result<()> {
        let url = self.server()?.to_string();
        let key = ("bench-template", std::process::id());
        let build = |cat: &Catalog| -> Result<()> {
            cat.create_dir("app", IfExists::Error)?;
            cat.create_table("app/t", schema(), IfExists::Error)?.insert(rows(10_000))?;
            Ok(())
        };
        drop(TestEnv::from_template_on(&url, key, build)?);
        let mut times = Vec::new();
        let mut copies = Vec::new();
        for _ in 0..if self.reps == 1 { 3 } else { 15 } {
            let (ms, env) = time(|| TestEnv::from_template_on(&url, key, build))?;
            times.push(ms);
            // Dropped outside the timing, a few at a time.
            copies.push(env);
            if copies.len() == 5 {
                copies.clear();
            }
        }
        drop(copies);
        let mut admin = tabula::connect_server(&url)?;
        admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", template_schema(key))).map_err(err)?;
        let m = median(times.clone());
        self.absolute("PostgreSQL: template clone (10k rows)", times, m, "ms median", "<= 100 ms".into(), m <= 100.0);
        Ok(())
    }
}
