//! The one error type of the crate: a stable [`ErrorCode`] that tests and callers match on,
//! and a message that names the object, what was wrong, and the fix.
//!
//! This module owns no I/O; `store` maps SQLite failures into these codes.

use std::fmt;
use std::sync::Arc;

/// What kind of failure an [`Error`] is. Stable: match on it, not on the message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A path is malformed or reserved.
    InvalidPath,
    /// A column name is malformed, reserved or duplicated.
    InvalidName,
    /// The named directory, table or column does not exist.
    NotFound,
    /// The object already exists (and `IfExists::Error` was asked for).
    AlreadyExists,
    /// A directory is not empty and the call needs it to be (use force).
    DirNotEmpty,
    /// The path names a directory where a table was expected, or the other way round.
    WrongKind,
    /// A value does not fit the column's type.
    TypeMismatch,
    /// A required column got no value or a null.
    NotNull,
    /// A write would give two live rows the same primary key.
    DuplicateKey,
    /// A row names a column the table does not have.
    UnknownColumn,
    /// An expression does not type-check against the table.
    InvalidExpr,
    /// A write was attempted on a read-only handle (a table version or a snapshot).
    ReadOnly,
    /// An argument is out of range or inconsistent.
    InvalidArgument,
    /// A UDF named by a computed column is not registered.
    UdfNotRegistered,
    /// A UDF is registered, but with another version than the one stored.
    UdfVersionMismatch,
    /// A UDF failed (returned an error, panicked, or returned the wrong type).
    UdfFailed,
    /// A column is still used by other columns (or views) and cannot be dropped.
    HasDependents,
    /// A revert was asked for where there is nothing to revert.
    NothingToRevert,
    /// The file is not a Tabula catalog.
    NotACatalog,
    /// The catalog was written by a newer Tabula with a newer format.
    FormatTooNew,
    /// The table changed underneath a running operation (e.g. reverted during a stream).
    Conflict,
    /// Another writer held the catalog for longer than the busy timeout.
    Busy,
    /// A call on a catalog handle was made from inside another call on the same handle on
    /// the same thread (an insert pulling rows from a stream of the same handle): it would
    /// wait for itself forever, so it fails at once.
    Reentrant,
    /// The connection to a PostgreSQL server was lost during the call (the server restarted
    /// or ended it, or the network or a proxy closed it): the server rolled the call back,
    /// so retry it; unless it was lost while committing, which the message says, when the
    /// call may or may not have been committed. (A connection found closed before a call
    /// began is replaced without an error.)
    Disconnected,
    /// SQLite or the file system failed.
    Storage,
    /// Rows could not be converted to or from a Rust type with serde.
    Serde,
}

/// A Tabula error: a stable [`code`](Error::code), a message meant for a person, and the
/// underlying error where there is one (SQLite's, the file system's), as
/// [`source`](std::error::Error::source). Two errors are equal when code and message are.
#[derive(Debug, Clone)]
pub struct Error {
    code: ErrorCode,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        self.code == other.code && self.message == other.message
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), source: None }
    }

    /// The same error, caused by `source` (kept for [`std::error::Error::source`]).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The stable kind of this error.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context: ` put before its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error { message: format!("{context}: {}", self.message), ..self }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A name or text as an error message shows it: quoted, and when long, its start and its
/// length, so a 10,000-character name does not make a 20 KB message.
pub(crate) fn shown(text: &str) -> String {
    const SHOWN: usize = 48;
    let count = text.chars().count();
    if count <= SHOWN {
        return format!("{text:?}");
    }
    let start: String = text.chars().take(SHOWN).collect();
    format!("{start:?}... ({count} characters)")
}

/// Shorthand for building an [`Error`] with `format!` arguments.
macro_rules! err {
    ($code:ident, $($arg:tt)*) => {
        $crate::error::Error::new($crate::error::ErrorCode::$code, format!($($arg)*))
    };
}
pub(crate) use err;
