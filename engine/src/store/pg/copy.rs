//! Rows into a server with `COPY .. FROM STDIN BINARY`, the fastest way in: framed here in
//! PostgreSQL's binary copy format (a header, then each row its field count and each field
//! its length, -1 for null, and bytes, then -1) and sent 64 KiB at a time.
//!
//! Two ways: [`PgTx::copy_rows`] copies rows it is given whole, and a streaming copy
//! ([`PgTx::copy_open`], [`PgTx::copy_more`], [`PgTx::copy_close`]) stays open while the
//! caller gathers the rows: its connection moves to a thread that feeds the server, so
//! the server stores rows while the caller reads and checks the next ones, instead of the
//! two waiting for each other at every batch. No other statement can run on the
//! transaction meanwhile ([`PgTx::conn`] fails).

use std::io::Write;
use std::sync::mpsc;

use bytes::{BufMut, Bytes, BytesMut};
use postgres::types::{ToSql, Type};

use super::{Bound, Conn, PgTx};
use crate::error::{err, Error, Result};
use crate::types::Value;

/// Bytes of a binary copy sent at a time: `BinaryCopyInWriter` runs the client's event
/// loop once a row, which cost 100,000 rows 17 ms more (78 against 61 ms).
const PIECE: usize = 65_536;

/// Pieces a streaming copy's thread may have waiting: the caller runs at most this far
/// ahead of the server.
const QUEUED: usize = 8;

/// How the rows of one copy are framed.
struct Frame {
    table: String,
    columns: Vec<String>,
    /// The server's type of each column (as it types an insert's parameters).
    types: Vec<Type>,
    /// Fields a row: `columns.len()`.
    fields: i16,
    /// Whether each row starts with its row id (`columns` then starts with `_rowid_`).
    ids: bool,
    /// Values of a row given by the caller.
    width: usize,
    /// Values every row ends with.
    constants: Vec<Value>,
}

impl Frame {
    /// The binary copy format's header.
    fn header(buf: &mut BytesMut) {
        buf.put_slice(b"PGCOPY\n\xff\r\n\0");
        buf.put_i32(0);
        buf.put_i32(0);
    }

    /// Frames the rows of `values` (`width` values each) into `buf`, the `k`-th with row id
    /// `first + k` if this frame has ids, and hands `buf` to `send` whenever it holds a piece.
    fn rows(
        &self,
        buf: &mut BytesMut,
        first: i64,
        values: &[Value],
        mut send: impl FnMut(&mut BytesMut) -> Result<()>,
    ) -> Result<()> {
        let ids = usize::from(self.ids);
        for (k, chunk) in values.chunks(self.width).enumerate() {
            buf.put_i16(self.fields);
            if self.ids {
                buf.put_i32(8);
                buf.put_i64(first + k as i64);
            }
            for (i, (v, ty)) in chunk.iter().chain(&self.constants).zip(&self.types[ids..]).enumerate() {
                let column = || format!("column {} of a copy into '{}'", self.columns[ids + i], self.table);
                let bound = Bound::new(ids + i + 1, ty, v).map_err(|e| e.context(column()))?;
                let at = buf.len();
                buf.put_i32(0);
                let length = match bound.to_sql(ty, buf) {
                    Ok(postgres::types::IsNull::Yes) => -1,
                    Ok(postgres::types::IsNull::No) => i32::try_from(buf.len() - at - 4)
                        .map_err(|_| err!(InvalidArgument, "{}: a value is over 2 GiB", column()))?,
                    Err(e) => return Err(err!(Storage, "{}: {e}", column())),
                };
                buf[at..at + 4].copy_from_slice(&length.to_be_bytes());
            }
            if buf.len() >= PIECE {
                send(buf)?;
            }
        }
        Ok(())
    }
}

/// A copy kept open on its own thread (see the module's doc).
pub(super) struct Stream {
    frame: Frame,
    /// The row id of the next row.
    next: i64,
    buf: BytesMut,
    /// `None` once the copy is ended or abandoned.
    pieces: Option<mpsc::SyncSender<Piece>>,
    /// Gives the connection back, and what the server said of the copy.
    thread: std::thread::JoinHandle<(Conn, std::result::Result<u64, Failure>)>,
}

enum Piece {
    Bytes(Bytes),
    /// The copy is complete: end it.
    End,
}

/// Why a streaming copy did not end.
enum Failure {
    Server(postgres::Error),
    Sent(std::io::Error),
    /// The caller went away without ending it (its call failed): the server forgets it.
    Abandoned,
}

impl PgTx<'_> {
    /// The frame of a copy of `columns` into `table`, and the copy statement: `width`
    /// values a row from the caller, then `constants`, after the row id if `ids`.
    fn copy_frame(
        &self,
        conn: &mut Conn,
        table: &str,
        columns: &[String],
        ids: bool,
        width: usize,
        constants: &[Value],
    ) -> Result<(Frame, postgres::Statement)> {
        let fields =
            i16::try_from(columns.len()).ok().filter(|n| *n as usize == usize::from(ids) + width + constants.len());
        let Some(fields) = fields.filter(|_| width > 0) else {
            return Err(err!(Storage, "a copy into '{table}' was given rows of the wrong width (a bug in Tabula)"));
        };
        conn.sort_again().map_err(|e| self.fail(e))?;
        // The columns' types, as the server declares them: the parameters of an insert of them.
        let places: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let list = columns.join(", ");
        let insert = conn
            .prepare(&format!("INSERT INTO {table}({list}) VALUES ({})", places.join(", ")))
            .map_err(|e| self.fail(e))?;
        let copy = conn.prepare(&format!("COPY {table}({list}) FROM STDIN BINARY")).map_err(|e| self.fail(e))?;
        let frame = Frame {
            table: table.to_string(),
            columns: columns.to_vec(),
            types: insert.params().to_vec(),
            fields,
            ids,
            width,
            constants: constants.to_vec(),
        };
        Ok((frame, copy))
    }

    /// Appends rows to `table` with one `COPY`: the `k`-th row is, in the order of
    /// `columns`, its rowid `first + k` when `first` is given (`columns` then starts with
    /// `_rowid_`), the `k`-th `width` values of `values`, then `constants`.
    /// Returns how many rows it wrote. A value the server cannot take fails the call before
    /// the copy ends, and the copy is then abandoned with the transaction.
    pub(crate) fn copy_rows(
        &self,
        table: &str,
        columns: &[String],
        first: Option<i64>,
        values: &[Value],
        width: usize,
        constants: &[Value],
    ) -> Result<u64> {
        if width == 0 || !values.len().is_multiple_of(width) {
            return Err(err!(Storage, "a copy into '{table}' was given rows of the wrong width (a bug in Tabula)"));
        }
        let mut conn = self.conn()?;
        let (frame, copy) = self.copy_frame(&mut conn, table, columns, first.is_some(), width, constants)?;
        // One exchange starts the copy, one ends it.
        conn.exchanged(2);
        let mut sink = conn.client.copy_in(&copy).map_err(|e| self.fail(e))?;
        let mut buf = BytesMut::with_capacity(PIECE + 4096);
        Frame::header(&mut buf);
        frame.rows(&mut buf, first.unwrap_or(0), values, |buf| {
            sink.write_all(buf).map_err(|e| self.sent(table, e))?;
            buf.clear();
            Ok(())
        })?;
        buf.put_i16(-1);
        sink.write_all(&buf).map_err(|e| self.sent(table, e))?;
        sink.finish().map_err(|e| self.fail(e))
    }

    /// Opens a copy into `table` that rows are added to ([`PgTx::copy_more`]) while the
    /// caller gathers them, and that [`PgTx::copy_close`] ends; the rows are numbered from
    /// row id `first` (`columns` starts with `_rowid_`, then `width` values a row, then
    /// `constants`). Until it is closed no other statement runs on this transaction; if it
    /// is never closed, the transaction rolls back without it.
    pub(crate) fn copy_open(
        &self,
        table: &str,
        columns: &[String],
        first: i64,
        width: usize,
        constants: &[Value],
    ) -> Result<()> {
        let (frame, copy) = {
            let mut conn = self.conn()?;
            let framed = self.copy_frame(&mut conn, table, columns, true, width, constants)?;
            conn.exchanged(2);
            framed
        };
        let Some(mut conn) = self.client.borrow_mut().take() else {
            return Err(err!(
                Storage,
                "catalog '{}': a copy opened without a connection (a bug in Tabula)",
                self.location
            ));
        };
        let (pieces, received) = mpsc::sync_channel::<Piece>(QUEUED);
        let feed = move || {
            let result = (|| {
                let mut sink = conn.client.copy_in(&copy).map_err(Failure::Server)?;
                for piece in received {
                    match piece {
                        Piece::Bytes(bytes) => sink.write_all(&bytes).map_err(Failure::Sent)?,
                        Piece::End => return sink.finish().map_err(Failure::Server),
                    }
                }
                // Dropped without `finish`, the writer abandons the copy.
                Err(Failure::Abandoned)
            })();
            (conn, result)
        };
        let thread = std::thread::Builder::new().name("tabula-copy".into()).spawn(feed).map_err(|e| {
            err!(Storage, "catalog '{}': could not start a thread to copy rows into '{table}' ({e})", self.location)
        })?;
        let mut buf = BytesMut::with_capacity(PIECE + 4096);
        Frame::header(&mut buf);
        *self.stream.borrow_mut() = Some(Box::new(Stream { frame, next: first, buf, pieces: Some(pieces), thread }));
        Ok(())
    }

    /// Adds rows (`width` values each) to the open copy; they get the next row ids.
    pub(crate) fn copy_more(&self, values: &[Value]) -> Result<()> {
        let mut stream = self.stream.borrow_mut();
        let Some(Stream { frame, next, buf, pieces: Some(pieces), .. }) = stream.as_deref_mut() else {
            return Err(err!(
                Storage,
                "catalog '{}': rows were added to no open copy (a bug in Tabula)",
                self.location
            ));
        };
        if !values.len().is_multiple_of(frame.width) {
            return Err(err!(
                Storage,
                "a copy into '{}' was given rows of the wrong width (a bug in Tabula)",
                frame.table
            ));
        }
        let mut gone = false;
        let framed = frame.rows(buf, *next, values, |buf| {
            if pieces.send(Piece::Bytes(buf.split().freeze())).is_err() {
                gone = true;
                return Err(err!(Storage, "catalog '{}': the copy into '{}' stopped", self.location, frame.table));
            }
            buf.reserve(PIECE + 4096);
            Ok(())
        });
        *next += (values.len() / frame.width) as i64;
        drop(stream);
        if gone {
            // The thread ends before the copy does only when the copy failed: its error says why.
            return Err(match (self.copy_close(), framed) {
                (Err(e), _) | (Ok(_), Err(e)) => e,
                (Ok(_), Ok(())) => err!(Storage, "catalog '{}': a copy stopped early", self.location),
            });
        }
        framed
    }

    /// Ends the open copy; returns how many rows it wrote. The connection is the
    /// transaction's again.
    pub(crate) fn copy_close(&self) -> Result<u64> {
        let Some(mut stream) = self.stream.borrow_mut().take() else {
            return Err(err!(Storage, "catalog '{}': no copy was open to close (a bug in Tabula)", self.location));
        };
        stream.buf.put_i16(-1);
        let table = std::mem::take(&mut stream.frame.table);
        if let Some(pieces) = stream.pieces.take() {
            // A send fails only if the thread has ended: its result says why.
            let _ = pieces.send(Piece::Bytes(stream.buf.split().freeze())).and_then(|_| pieces.send(Piece::End));
        }
        let result = self.copy_join(*stream)?;
        result.map_err(|failure| match failure {
            Failure::Server(e) => self.fail(e),
            Failure::Sent(e) => self.sent(&table, e),
            Failure::Abandoned => {
                err!(Storage, "catalog '{}': the copy into '{table}' ended before its rows did", self.location)
            }
        })
    }

    /// Abandons an open copy, if there is one (its call failed): the server forgets it, and
    /// the connection is the transaction's again, to roll back.
    pub(super) fn copy_abandon(&self) {
        if let Some(mut stream) = self.stream.borrow_mut().take() {
            stream.pieces = None;
            let _ = self.copy_join(*stream);
        }
    }

    /// Waits for a copy's thread and takes its connection back.
    fn copy_join(&self, stream: Stream) -> Result<std::result::Result<u64, Failure>> {
        drop(stream.pieces);
        let (conn, result) = stream.thread.join().map_err(|_| {
            err!(Storage, "catalog '{}': the thread copying rows in panicked; the call is rolled back", self.location)
        })?;
        *self.client.borrow_mut() = Some(conn);
        Ok(result)
    }

    /// The error of a copy whose bytes could not be sent.
    fn sent(&self, table: &str, e: std::io::Error) -> Error {
        err!(Storage, "catalog '{}': a copy into '{table}' failed ({e})", self.location)
    }
}
